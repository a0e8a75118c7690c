"use strict";
// The console's service booklet (by VIN) and help desk (requests, bundles, answers).
(() => {
  const q = (sel) => document.querySelector(sel);
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const when = (t) => t ? new Date(t * 1000).toLocaleString() : "";
  async function get(url) { const r = await fetch(url); if (!r.ok) throw new Error(await r.text()); return r.json(); }

  async function booklet(vin) {
    const r = await get(`/api/booklet/${encodeURIComponent(vin)}`);
    q("#booklet tbody").innerHTML = r.entries.map((e) => `<tr data-testid="portal-booklet-entry"><td>${esc(e.index)}</td><td>${esc(e.date)}</td>
      <td>${esc(Number(e.mileage_km).toLocaleString())} km</td><td>${esc(e.items.join(", "))}</td><td>${esc(e.workshop)}</td><td>${esc(e.note)}</td>
      <td>${esc(e.box)}</td><td>${e.flag ? `<span class="badge bad">${esc(e.flag)}</span>` : ""}</td></tr>`).join("")
      || `<tr><td colspan="8" class="muted">No entries for ${esc(vin)}</td></tr>`;
  }
  async function requests() {
    const r = await get("/api/helpdesk");
    q("#helpdesk tbody").innerHTML = r.requests.map((x) => `<tr data-testid="portal-helpdesk-request"><td>${esc(when(x.received))}</td><td>${esc(x.box)}</td><td>${esc(x.vin)}</td>
      <td>${esc(x.question)}</td><td>${x.answer ? "answered" : x.complete ? "complete" : "arriving" + (x.problem ? ": " + esc(x.problem) : "")}</td>
      <td><button data-request="${esc(x.id)}">Show</button></td></tr>`).join("");
  }
  async function show(rid) {
    const r = await get(`/api/helpdesk/${encodeURIComponent(rid)}`);
    const atts = (r.attachments || []).map((a) => `<li>${r.complete ? `<a href="/api/helpdesk/${encodeURIComponent(rid)}/attachments/${encodeURIComponent(a.name)}">${esc(a.name)}</a>` : esc(a.name)}
      ${esc(a.size)} bytes, SHA-256 ${esc(a.sha256)}</li>`).join("");
    const b = r.bundle || {}, ident = b.identification || {};
    const faults = (Array.isArray(b.fault_memory) ? b.fault_memory : []).flatMap((e) => (e.dtcs || []).map((d) => `${e.name}: ${d.code} ${d.text}`));
    q("#helpdesk-request").innerHTML = `<h3>Request ${esc(rid)} from ${esc(r.box)}</h3>
      <p><b>Question:</b> ${esc(r.question)}</p><p><b>Contact:</b> ${esc(r.contact)} &middot; <b>Vehicle:</b> ${esc(r.vin)} ${esc(ident.model || "")}</p>
      <p><b>Fault memory:</b> ${esc(faults.join("; ") || "none")}</p><p><b>Session log:</b> ${esc((b.session_log || []).length)} jobs &middot; <b>Battery history:</b> ${esc((b.battery_history || []).length)} readings</p>
      <ul data-testid="portal-helpdesk-attachments">${atts}</ul>
      ${r.answer ? `<p data-testid="portal-helpdesk-answer"><b>Answer</b> (${esc(r.answered_by)}): ${esc(r.answer)}</p>` : ""}
      <label>Answer <textarea id="hd-answer" rows="3"></textarea></label><button class="primary" data-answer="${esc(rid)}">Send answer to the box</button>`;
  }
  document.addEventListener("submit", (ev) => {
    if (ev.target.id !== "booklet-form") return;
    ev.preventDefault();
    booklet(q("#booklet-vin").value.trim()).catch((e) => alert(e.message));
  });
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-request], button[data-answer]");
    if (!b) return;
    if (b.dataset.request) show(b.dataset.request).catch((e) => alert(e.message));
    else fetch(`/api/helpdesk/${encodeURIComponent(b.dataset.answer)}/answer`, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({answer: q("#hd-answer").value})}).then(async (r) => { if (!r.ok) throw new Error(await r.text()); return show(b.dataset.answer); }).then(requests).catch((e) => alert(e.message));
  });
  requests().catch(() => {});
  setInterval(() => requests().catch(() => {}), 5000);
})();
