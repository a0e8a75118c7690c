"use strict";
// The portal console: boxes online, jobs with live progress, records received (portal/console.py).
const $ = (s) => document.querySelector(s);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const jobs = {};
const early = {}; // events that came before the POST that started their job returned
let boxes = {};

function renderBoxes() {
  const names = Object.keys(boxes).sort();
  $("#no-boxes").hidden = names.length > 0;
  $("#boxes tbody").innerHTML = names.map((b) => `<tr data-box="${esc(b)}"><td><b>${esc(b)}</b></td>
    <td><span class="dot ${boxes[b] === "online" ? "on" : "off"}"></span><span data-testid="box-state">${esc(boxes[b])}</span></td>
    <td><button type="button" data-pick="${esc(b)}">Use</button></td></tr>`).join("");
  const sel = $("#box"), keep = sel.value;
  sel.innerHTML = names.map((b) => `<option value="${esc(b)}">${esc(b)} (${esc(boxes[b])})</option>`).join("");
  if (names.includes(keep)) sel.value = keep;
}

function summary(job) {
  const r = job.result || {};
  if (job.kind === "identify" && r.vin) {
    return `<p>VIN <b data-testid="vin">${esc(r.vin)}</b>${r.model ? " &middot; " + esc(r.model) : ""} &middot; ${(r.ecus || []).length} ECUs</p>`;
  }
  if (job.kind === "read_fault_memory" && r.ecus) {
    return r.ecus.map((e) => `<p><b>${esc(e.name || e.ecu)}</b>: ${(e.dtcs || []).length ? "" : "no faults"}</p>
      <ul>${(e.dtcs || []).map((d) => `<li data-testid="dtc"><b>${esc(d.code || d.id)}</b> ${esc(d.text || "")}</li>`).join("")}</ul>`).join("");
  }
  if (job.kind === "service_reset" && r.cbs) {
    return `<ul>${r.cbs.map((i) => `<li data-testid="cbs-item"><b>${esc(i.text)}</b> ${esc(i.availability)} %${i.remaining_km == null ? "" : ", " + esc(i.remaining_km) + " km"}, ${esc(i.remaining_months)} months${i.due ? ' <span class="badge">due</span>' : ""}</li>`).join("")}</ul>`;
  }
  return `<pre>${esc(JSON.stringify(job.result ?? job.error, null, 2))}</pre>`;
}

function renderJob(id) {
  const j = jobs[id];
  let el = document.getElementById("job-" + id);
  if (!el) {
    el = document.createElement("div");
    el.className = "job"; el.id = "job-" + id; el.dataset.testid = "job";
    $("#no-jobs")?.remove();
    $("#jobs").prepend(el);
  }
  const badge = { running: "", done: "ok", failed: "bad", denied: "bad", error: "bad" }[j.state] ?? "";
  el.innerHTML = `<h3>${esc(j.box)} &middot; ${esc(j.kind)}${j.ecu ? " &middot; " + esc(j.ecu) : ""}
      <span class="badge ${badge}" data-testid="job-state">${esc(j.state)}</span>
      ${j.state === "running" ? `<button type="button" data-cancel="${esc(id)}">Cancel</button>` : ""}</h3>
    <div class="progress"><div></div></div>
    <p class="muted" data-testid="job-step">${esc(j.step || "")}${j.percent ? " &middot; " + j.percent.toFixed(1) + " %" : ""}</p>
    ${j.reason ? `<p class="error" data-testid="job-reason">${esc(j.reason)}</p>` : ""}
    ${j.final ? summary(j.final) : ""}`;
  el.querySelector(".progress > div").style.width = `${j.percent || 0}%`; // CSP: no inline styles
}

function onJob(ev) {
  const j = jobs[ev.job];
  if (!j) { (early[ev.job] ||= []).push(ev); return; }
  const b = ev.body || {};
  if (ev.message === "job.accepted") j.state = "running";
  else if (ev.message === "job.event") {
    if (b.step) j.step = b.step;
    if (b.percent != null) j.percent = Number(b.percent);
    if (b.values) j.step = Object.entries(b.values).map(([k, v]) => `${v.name || k} ${v.value ?? "-"}`).join(" \u00b7 ");
  } else if (ev.message === "job.result") {
    j.final = b.job || {}; j.state = j.final.state || "done";
    if (j.state === "done") j.percent = 100;
    if (j.final.error) j.reason = j.final.error.message || JSON.stringify(j.final.error);
  } else if (ev.message === "job.denied" || ev.message === "error") {
    j.state = ev.message === "job.denied" ? "denied" : "error";
    j.reason = [b.message, b.hint].filter(Boolean).join(" \u2014 ");
  }
  renderJob(ev.job);
}

function recordRow(box, r) {
  const job = (r.body && r.body.job) || {};
  const when = r.received ? new Date(r.received * 1000) : new Date();
  return `<tr data-testid="record"><td>${esc(when.toLocaleTimeString())}</td><td>${esc(box)}</td>
    <td>${esc(r.kind)}: ${esc(job.kind || "")} ${esc(job.ecu || "")} <span class="badge">${esc(job.state || "")}</span></td>
    <td>${esc((r.body && r.body.vin) || "")}</td></tr>`;
}

async function loadRecords() {
  const res = await fetch("/api/records");
  if (res.ok) $("#records tbody").innerHTML = (await res.json()).map((r) => recordRow(r.box, r)).join("");
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/events");
  ws.onopen = () => { $("#link").className = "dot on"; $("#link-text").textContent = "live"; };
  ws.onclose = () => { $("#link").className = "dot off"; $("#link-text").textContent = "reconnecting"; setTimeout(connect, 1000); };
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "boxes") { boxes = ev.boxes; renderBoxes(); }
    else if (ev.type === "job") onJob(ev);
    else if (ev.type === "record") $("#records tbody").insertAdjacentHTML("afterbegin", recordRow(ev.box, ev.record));
  };
}

$("#jobs").addEventListener("click", async (e) => {
  const id = e.target.dataset.cancel;
  if (!id) return;
  e.target.disabled = true;
  const res = await fetch(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  if (!res.ok) $("#form-error").textContent = await res.text();
});

$("#boxes").addEventListener("click", (e) => { const b = e.target.dataset.pick; if (b) $("#box").value = b; });

$("#job-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#form-error").textContent = "";
  const params = {};
  for (const line of $("#params").value.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i < 1) { $("#form-error").textContent = `"${t}" is not key=value`; return; }
    let key = t.slice(0, i).trim(), value = t.slice(i + 1).trim();
    if (key.endsWith(":")) {  // key:=JSON for numbers, true/false and lists; key=value is text
      key = key.slice(0, -1).trim();
      try { value = JSON.parse(value); } catch (err) { $("#form-error").textContent = `"${t}": not JSON after :=`; return; }
    }
    params[key] = value;
  }
  const body = { box: $("#box").value, kind: $("#kind").value, ecu: $("#ecu").value.trim() || null, params, ticket: $("#ticket").value.trim() || null };
  const res = await fetch("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) { $("#form-error").textContent = await res.text(); return; }
  const started = await res.json();
  jobs[started.job] = { box: body.box, kind: body.kind, ecu: body.ecu, state: "sent", percent: 0 };
  renderJob(started.job);
  for (const ev of early[started.job] || []) onJob(ev);
  delete early[started.job];
});

loadRecords();
connect();
