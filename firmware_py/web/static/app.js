"use strict";
// The tablet page: one WebSocket for live state, jobs submitted over HTTP with the CSRF token.
const S = {csrf: null, view: "vehicle", vehicle: {}, jobs: {}, tickets: [], ws: null, wsUp: false, lastJob: {}};
const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

async function api(method, url, body) {
  const headers = {"Content-Type": "application/json"};
  if (S.csrf) headers["X-CSRF-Token"] = S.csrf;
  const r = await fetch(url, {method, headers, body: body ? JSON.stringify(body) : undefined});
  if (r.status === 401) { location.reload(); throw new Error("not paired"); }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.message || r.statusText), {data});
  return data;
}
function errText(e) { const d = e.data || {}; return (d.message || e.message) + (d.hint ? ". " + d.hint : ""); }

async function runJob(kind, ecu, params) {
  try {
    const job = await api("POST", "/api/jobs", {kind, ecu: ecu || null, params: params || {}});
    S.jobs[job.id] = job; S.lastJob[kind] = job.id; render();
    return job;
  } catch (e) { flash(errText(e)); }
}
function flash(text) { const m = $("#message"); if (m) { m.textContent = text; m.className = "error"; } else alert(text); }

// -- live events -------------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/events");
  S.ws = ws;
  ws.onopen = () => { S.wsUp = true; header(); };
  ws.onclose = () => { S.wsUp = false; header(); setTimeout(connect, 1500); };
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.kind === "hello") { S.vehicle = ev.vehicle || {}; for (const j of ev.jobs || []) S.jobs[j.id] = j; render(); return; }
    if (ev.kind === "vehicle.state") { S.vehicle = ev.vehicle || {}; header(); if (S.view === "vehicle") render(); return; }
    if (ev.kind.startsWith("job.")) {
      if (ev.job) S.jobs[ev.job.id] = ev.job;
      const job = S.jobs[ev.job_id];
      if (job && (ev.kind === "job.progress" || ev.kind === "job.step")) { job.progress = Object.assign(job.progress || {}, ev); }
      render();
    }
  };
}

function header() {
  const v = S.vehicle || {};
  $("#vin").textContent = v.vin || "no vehicle";
  $("#link").textContent = v.link || "-";
  $("#link-dot").className = "dot " + (v.connected ? "on" : "off");
  $("#battery").textContent = v.battery_voltage ? v.battery_voltage.toFixed(1) + " V" : "";
  $("#ws").textContent = S.wsUp ? "live" : "reconnecting";
  $("#ws-dot").className = "dot " + (S.wsUp ? "on" : "off");
}

function latest(kind) { const id = S.lastJob[kind]; if (id) return S.jobs[id];
  return Object.values(S.jobs).filter((j) => j.kind === kind).sort((a, b) => b.created - a.created)[0]; }
function jobLine(job) {
  if (!job) return "";
  const p = job.progress || {};
  const pct = job.state === "done" ? 100 : (p.percent || 0);
  let s = `<div class="row"><span class="badge ${job.state === "failed" ? "bad" : job.state === "done" ? "ok" : "warn"}">${esc(job.state)}</span>`;
  if (p.step) s += `<span>${esc(p.step)}</span>`;
  s += `</div>`;
  if (job.state === "running" || job.state === "queued" || job.kind === "programming")
    s += `<div class="progress" data-testid="progress"><div data-pct="${pct}"></div></div><p class="muted">${pct.toFixed ? pct.toFixed(0) : pct} %${p.rate ? " - " + (p.rate / 1024).toFixed(0) + " KiB/s" : ""}${p.time_left != null ? " - " + Math.round(p.time_left) + " s left" : ""}</p>`;
  if (job.error) s += `<p class="error">${esc(job.error.message)}${job.error.hint ? ". " + esc(job.error.hint) : ""}</p>`;
  return s;
}

function snapshotText(s) {
  const parts = [];
  if (s.mileage_km != null) parts.push(Number(s.mileage_km).toLocaleString() + " km");
  if (s.voltage_v != null) parts.push(Number(s.voltage_v).toFixed(1) + " V");
  return esc(parts.join(" · "));
}

// -- views ---------------------------------------------------------------------------------------
const views = {
  vehicle() {
    const job = latest("identify"); const r = job && job.result;
    let rows = "";
    for (const e of (r && r.ecus) || []) {
      rows += `<tr><td><b>${esc(e.name)}</b><br><span class="muted">0x${Number(e.address).toString(16).toUpperCase().padStart(2, "0")}</span></td>
        <td>${esc(e.description || "")}</td><td>${e.present === false ? '<span class="badge">absent</span>' : esc(e.sw_version || "")}</td>
        <td>${esc(e.part_number || "")}</td></tr>`;
    }
    return `<section class="card"><h2>Vehicle</h2><p id="message"></p>
      <div class="row"><button class="primary" data-job="identify">Identify vehicle</button></div>${jobLine(job)}
      ${r ? `<p>VIN <b data-testid="vehicle-vin">${esc(r.vin)}</b></p>` : ""}
      <table><thead><tr><th>ECU</th><th>What</th><th>Software</th><th>Part number</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
  faults() {
    const job = latest("read_fault_memory"); const r = job && job.result;
    let html = `<section class="card"><h2>Fault memory</h2><p id="message"></p><div class="row">
      <button class="primary" data-job="read_fault_memory">Read all ECUs</button>
      <button class="danger" data-job="clear_fault_memory" data-confirm="Clear the fault memory of every ECU?">Clear all</button></div>
      ${jobLine(job)}${jobLine(latest("clear_fault_memory"))}</section>`;
    for (const ecu of (r && r.ecus) || []) {
      const dtcs = ecu.dtcs || [];
      html += `<section class="card" data-testid="ecu-faults"><div class="row"><h2>${esc(ecu.name)}</h2><span class="muted">${dtcs.length} fault(s)</span>
        ${ecu.error ? `<span class="error">${esc(ecu.error.message)}</span>` : ""}
        <button class="danger push" data-job="clear_fault_memory" data-ecu="${esc(ecu.name)}" data-confirm="Clear the fault memory of ${esc(ecu.name)}?">Clear</button></div>
        <table><tbody>${dtcs.map((d) => `<tr><td><b>${esc(d.code || d.id)}</b></td><td>${esc(d.text || "")}</td>
          <td>${(d.status_names || []).map((n) => `<span class="badge">${esc(n)}</span>`).join("")}</td>
          <td class="muted">${(d.snapshots || []).map(snapshotText).join("<br>")}</td></tr>`).join("")}</tbody></table></section>`;
    }
    return html;
  },
  live() { return `<section class="card"><h2>Live data</h2><p class="muted">Not built yet (issue 5).</p></section>`; },
  coding() { return `<section class="card"><h2>Coding</h2><p class="muted">Not built yet (issue 5).</p></section>`; },
  programming() { return `<section class="card"><h2>Programming</h2><p class="muted">Not built yet (issue 5).</p></section>`; },
  tickets() {
    const rows = S.tickets.map((t) => `<tr><td>${esc(t.tariff_name || t.tariff)}</td><td>${esc((t.scopes || []).join(", "))}</td><td>${esc(t.time_left_text || t.time_left || "")}</td></tr>`).join("");
    return `<section class="card"><h2>Tickets</h2><p id="message"></p>
      <textarea id="token" rows="3" placeholder="Paste a ticket"></textarea>
      <div class="row"><button class="primary" data-action="add-ticket">Add ticket</button></div>
      <table><thead><tr><th>Tariff</th><th>Allows</th><th>Time left</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
  log() {
    const rows = Object.values(S.jobs).sort((a, b) => b.created - a.created).map((j) => `<tr><td>${new Date(j.created * 1000).toLocaleTimeString()}</td>
      <td>${esc(j.kind)}${j.ecu ? " " + esc(j.ecu) : ""}</td><td>${esc(j.origin)} ${esc(j.who)}</td><td>${esc(j.state)}</td></tr>`).join("");
    return `<section class="card"><h2>Session log</h2><table><thead><tr><th>When</th><th>Job</th><th>By</th><th>State</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
};
async function addTicket() {
  try { await api("POST", "/api/tickets", {token: $("#token").value.trim()}); await loadTickets(); }
  catch (e) { flash(errText(e)); }
}
async function loadTickets() { try { S.tickets = (await api("GET", "/api/tickets")).tickets; render(); } catch (e) { /* shown elsewhere */ } }

function render() {
  header();
  $("#view").innerHTML = views[S.view]();
  // Widths are set through the CSSOM: the page's CSP forbids inline style attributes.
  document.querySelectorAll("[data-pct]").forEach((el) => { el.style.width = el.dataset.pct + "%"; });
}
// One delegated click handler: the CSP forbids inline onclick attributes.
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-job], button[data-action]");
  if (!b) return;
  if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
  if (b.dataset.job) runJob(b.dataset.job, b.dataset.ecu);
  else if (b.dataset.action === "add-ticket") addTicket();
});
document.querySelectorAll("#tabs button").forEach((b) => b.onclick = () => {
  document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
  S.view = b.dataset.view; if (S.view === "tickets") loadTickets(); render();
});
(async () => { S.csrf = (await api("GET", "/api/session")).csrf; connect(); render(); })();
