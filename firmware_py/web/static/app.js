"use strict";
// The tablet page: one WebSocket for live state, jobs submitted over HTTP with the CSRF token.
const S = {csrf: null, view: "vehicle", vehicle: {}, jobs: {}, tickets: [], ws: null, wsUp: false, lastJob: {}, live: {}, coding: null, codingEcu: null, packages: [], journal: [], pkg: "", cached: {}};
const $ = (sel) => document.querySelector(sel);

// the page's language (i18n.js) and the tab labels in it
async function loadLanguage(lang) {
  await loadMessages(lang);
  const tabs = {vehicle: _("Vehicle"), faults: _("Fault memory"), live: _("Live data"), coding: _("Coding"), service: _("Service"),
    reports: _("Reports"), programming: _("Programming"), bridge: _("ENET bridge"), helpdesk: _("Help desk"), tickets: _("Tickets"), log: _("Session log")};
  document.querySelectorAll("#tabs button").forEach((b) => { if (tabs[b.dataset.view]) b.textContent = tabs[b.dataset.view]; });
  document.querySelectorAll("#language button").forEach((b) => b.classList.toggle("active", b.dataset.lang === lang));
  document.documentElement.lang = lang;  // once the texts are there
}
// name="value" with the value escaped (a text inside the quotes of a template would hide it from
// the catalogue's extractor: docs/translating.md)
const attr = (name, value) => `${name}="${esc(value)}"`;
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

async function api(method, url, body) {
  const headers = {"Content-Type": "application/json"};
  if (S.csrf) headers["X-CSRF-Token"] = S.csrf;
  const r = await fetch(url, {method, headers, body: body ? JSON.stringify(body) : undefined});
  if (r.status === 401) { location.reload(); throw new Error(_("This tablet is not paired")); }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.message || r.statusText), {data});
  return data;
}
function errText(e) { const d = e.data || {}; return d.message || d.i18n ? errorText(d) : e.message; }

async function runJob(kind, ecu, params) {
  try {
    const job = await api("POST", "/api/jobs", {kind, ecu: ecu || null, params: params || {}});
    // The WebSocket may already have brought newer states of this job than the POST's answer.
    if (!S.jobs[job.id]) S.jobs[job.id] = job;
    S.lastJob[kind] = job.id; render();
    return job;
  } catch (e) { flash(errText(e)); }
}
// The newest service status read from the car: a status read or reset, or a service recorded
// (it reads the status again after resetting the items done).
function serviceStatus() {
  return (Object.values(S.jobs).filter((j) => (j.kind === "service_reset" || j.kind === "service_history") && j.result && j.result.cbs)
    .sort((a, b) => b.created - a.created)[0] || {}).result;
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
    if (ev.kind.startsWith("helpdesk.") && window.onHelpdesk) { window.onHelpdesk(ev); return; }
    if (ev.kind === "tickets.changed") { loadTickets(); return; }
    if (ev.kind === "maps.offered") { loadMaps(); return; }
    if (ev.kind === "vehicle.state") { S.vehicle = ev.vehicle || {}; header(); if (S.view === "vehicle") render(); return; }
    if (ev.kind.startsWith("job.")) {
      if (ev.job) S.jobs[ev.job.id] = ev.job;
      const job = S.jobs[ev.job_id];
      if (job && (ev.kind === "job.progress" || ev.kind === "job.step")) { job.progress = Object.assign(job.progress || {}, ev); }
      if (job && job.kind === "read_live_data" && ev.values) {
        for (const [k, v] of Object.entries(ev.values)) { (S.live[k] = S.live[k] || []).push(v); if (S.live[k].length > 120) S.live[k].shift(); }
      }
      if (job && job.kind === "programming" && ev.kind !== "job.progress") loadPackages();
      if (job && job.kind === "map_update" && ev.kind === "job.done") loadMaps();
      render();
    }
  };
}

function header() {
  const v = S.vehicle || {};
  $("#vin").textContent = v.vin || _("no vehicle");
  $("#link").textContent = v.link || "-";
  $("#link-dot").className = "dot " + (v.connected ? "on" : "off");
  // battery_source: "box" (the box's own ADC on OBD pin 16) or "vehicle" (the car's report)
  const volts = v.battery_voltage ? num(v.battery_voltage, 1) : "";
  $("#battery").textContent = !volts ? "" : v.battery_source === "box" ? _("{volts} V (measured by the box)", {volts})
    : v.battery_source === "vehicle" ? _("{volts} V (reported by the car)", {volts}) : _("{volts} V", {volts});
  $("#ws").textContent = S.wsUp ? _("live") : _("reconnecting");
  $("#ws-dot").className = "dot " + (S.wsUp ? "on" : "off");
}

// a job's state as the page shows it
function stateText(state) {
  return ({queued: _("queued"), running: _("running"), done: _("done"), failed: _("failed"), cancelled: _("cancelled"), waiting: _("waiting")})[state] || state;
}
// a job's kind and who asked, as the session log shows them (the kinds of gateway/tariffs.py)
function kindText(kind) {
  return ({read_vin: _("Read the VIN"), identify: _("Identify the vehicle"), read_fault_memory: _("Read the fault memory"),
    clear_fault_memory: _("Clear the fault memory"), read_live_data: _("Live data"), read_did: _("Read a data identifier"),
    coding: _("Coding"), programming: _("Programming"), service_reset: _("Service reset"), service_history: _("Service booklet"),
    emissions_data: _("Emissions check (OBD)"), vehicle_test_report: _("Vehicle test report"), raw_uds: _("Raw UDS requests"),
    enet_bridge: _("ENET bridge"), repair_information: _("Repair information"), map_update: _("Map update"),
    help_desk_request: _("Help desk request")})[kind] || kind;
}
function originText(origin) {
  return ({tablet: _("tablet"), portal: _("portal"), cli: _("command line")})[origin] || origin;
}
function latest(kind) { const id = S.lastJob[kind]; if (id) return S.jobs[id];
  return Object.values(S.jobs).filter((j) => j.kind === kind).sort((a, b) => b.created - a.created)[0]; }
function jobLine(job) {
  if (!job) return "";
  const p = job.progress || {};
  const pct = job.state === "done" ? 100 : (p.percent || 0);
  let s = `<div class="row"><span class="badge ${job.state === "failed" ? "bad" : job.state === "done" ? "ok" : "warn"}">${esc(stateText(job.state))}</span>`;
  if (p.step) s += `<span data-testid="job-step">${esc(p.step_i18n ? tr(p.step_i18n) : _(p.step))}</span>`;
  s += `</div>`;
  if (job.state === "running" || job.state === "queued" || job.kind === "programming")
    s += `<div class="progress" data-testid="progress"><div data-pct="${pct}"></div></div><p class="muted">${num(pct, 0)} %${p.rate ? " - " + _("{rate} KiB/s", {rate: num(p.rate / 1024, 0)}) : ""}${p.time_left != null ? " - " + _("{seconds} s left", {seconds: num(Math.round(p.time_left))}) : ""}</p>`;
  if (job.error) s += `<p class="error">${esc(errorText(job.error))}</p>`;
  return s;
}

// A navigation map update (docs/maps.md), started here, by the portal or on the box's CLI.
function mapCard(job) {
  const vin = (S.vehicle || {}).vin;
  const offers = (S.mapOffers || []).filter((o) => !vin || o.vin === vin);
  const running = job && (job.state === "running" || job.state === "queued");
  const list = offers.length ? `<table data-testid="map-offers"><tbody>${offers.map((o) => `<tr><td>${esc(o.map)}</td><td>${num(o.bytes / 1048576, 0)} MiB</td><td class="muted">${esc(_("for {vin}", {vin: o.vin}))}</td>
    <td><button class="primary" data-action="map-install" data-offer="${esc(o.offer)}" ${running ? "disabled" : ""} ${attr("data-confirm", _("Install the map {map} now? Keep the ignition on and a charger connected.", {map: o.map}))}>${esc(_("Install"))}</button></td></tr>`).join("")}</tbody></table>` : "";
  if (!job) return list ? `<section class="card" data-testid="map-update"><h2>${esc(_("Navigation map update"))}</h2>${list}</section>` : "";
  const p = job.progress || {}, r = job.result;
  const phase = { download: _("downloading the map package"), install: _("writing it into the head unit") }[p.phase];
  const mib = (n) => num(n / 1048576, 0);
  return `<section class="card" data-testid="map-update"><h2>${esc(_("Navigation map update"))}</h2>${jobLine(job)}
    ${job.state === "running" && phase ? `<p class="muted" data-testid="map-phase">${esc(phase)}${p.total ? " - " + esc(_("{done} of {total} MiB", {done: mib(p.bytes), total: mib(p.total)})) : ""}</p>` : ""}
    ${r ? `<p class="ok" data-testid="map-active">${esc(_("{map} installed and active in {ecu} ({size} MiB)", {map: r.map, ecu: r.ecu, size: mib(r.bytes)}))}</p>` : ""}${list}</section>`;
}

function snapshotText(s) {
  const parts = [];
  if (s.mileage_km != null) parts.push(num(s.mileage_km) + " km");
  if (s.voltage_v != null) parts.push(num(s.voltage_v, 1) + " V");
  if (s.raw) parts.push(_("raw {data}", {data: s.raw}));  // what the box cannot decode (docs/diagnosis.md)
  return esc(parts.join(" · "));
}

// A report (firmware_py/reports/model.py) as HTML: the same sections the PDF shows.
function reportHtml(rep, job) {
  const v = rep.vehicle || {}, verdict = rep.verdict;
  let html = `<article class="report" data-testid="report-${esc(rep.kind)}"><h2>${esc(_(rep.title))}</h2>
    <table class="facts"><tbody><tr><th>${esc(_("Vehicle (VIN)"))}</th><td data-testid="report-vin">${esc(v.vin || _("not read"))}</td></tr>
    <tr><th>${esc(_("Model"))}</th><td>${esc(v.model || "-")}</td></tr><tr><th>${esc(_("Created"))}</th><td>${esc(rep.created)}</td></tr></tbody></table>`;
  if (verdict) html += `<div class="verdict ${verdict.ok ? "ok" : "bad"}" data-testid="verdict"><b>${esc(_(verdict.headline))}</b>
    ${verdict.reasons.length ? `<ul>${verdict.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : ""}
    ${verdict.notes.map((n) => `<p class="muted">${esc(_("Note: {note}", {note: n}))}</p>`).join("")}</div>`;
  for (const s of rep.sections || []) {
    // the report was made in English when it was read; its fixed texts are shown in the page's
    // language, its readings as they are (the PDF is made in the language asked for)
    html += `<section class="report-part"><h3>${esc(_(s.title))}</h3>`;
    if (s.table) html += s.table.length ? `<table><thead><tr>${s.header.map((h) => `<th>${esc(_(h))}</th>`).join("")}</tr></thead>
      <tbody>${s.table.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>` : `<p class="muted">${esc(_("none"))}</p>`;
    else html += `<table class="facts"><tbody>${s.rows.map(([k, val]) => `<tr><th>${esc(_(k))}</th><td>${esc(val)}</td></tr>`).join("")}</tbody></table>`;
    if (s.note) html += `<p class="muted">${esc(_(s.note))}</p>`;
    html += `</section>`;
  }
  return html + `<div class="row no-print"><button class="plain" data-action="print">${esc(_("Print"))}</button>
    <a class="button" href="/api/jobs/${esc(job.id)}/report.pdf?lang=${I18N.lang}" download data-testid="report-pdf">${esc(_("Download PDF"))}</a></div></article>`;
}

// -- views ---------------------------------------------------------------------------------------
const views = {
  reports() {
    const parts = [["emissions_data", _("Emissions check (OBD)"), _("Readiness, MIL, fault codes, CALID/CVN and the exhaust limit values: is the car ready for the emissions test? Needs a ticket that includes inspection data.")],
      ["vehicle_test_report", _("Vehicle test report"), _("Every ECU's fault memory, the battery and the service items, for the customer; kept on the box and sent to the portal.")]];
    return `<p id="message"></p>` + parts.map(([kind, title, what]) => {
      const job = latest(kind); const rep = job && job.state === "done" && job.result;
      return `<section class="card${S.printing && S.printing !== kind ? " no-print" : ""}" data-testid="card-${kind}"><div class="no-print"><h2>${esc(title)}</h2><p class="muted">${esc(what)}</p>
        <div class="row"><button class="primary" data-job="${kind}">${esc(rep ? _("Read again") : _("Read"))}</button></div>${jobLine(job)}</div>
        ${rep ? reportHtml(rep, job) : ""}</section>`;
    }).join("");
  },
  vehicle() {
    const job = latest("identify"); const r = job && job.result;
    // an ECU's part number links to its catalogue entry on the portal, with the installed SVK:
    // the portal says whether newer software exists ([web] repair_info_url)
    // a valid package in the box's store with a newer version for this ECU
    const newerPackage = (e) => {
      const newer = (S.packages || []).filter((p) => p.valid && p.ecu === e.name && e.sw_version && newerVersion(p.version, e.sw_version)).map((p) => p.version);
      return newer.length ? `<br><span class="badge" data-testid="newer-package">${esc(_("newer in the package store: {versions}", {versions: newer.join(", ")}))}</span>` : "";
    };
    const partLink = (e) => S.infoUrl && e.part_number ? `<br><a data-testid="part-info" target="_blank" rel="noopener noreferrer" href="${esc(S.infoUrl + "/parts/" + encodeURIComponent(e.part_number) + "?" + (e.svk || []).map((s) => "sw=" + encodeURIComponent(s.sgbm_id + ":" + s.version)).concat(e.sw_version ? ["ecu=" + encodeURIComponent(e.name), "version=" + encodeURIComponent(e.sw_version)] : []).join("&"))}">${esc(_("Catalogue"))}</a>` : "";
    let rows = "";
    for (const e of (r && r.ecus) || []) {
      rows += `<tr><td><b>${esc(e.name)}</b><br><span class="muted">0x${Number(e.address).toString(16).toUpperCase().padStart(2, "0")}</span></td>
        <td>${esc(pick(e.descriptions, e.description))}</td><td>${e.present === false ? `<span class="badge">${esc(_("absent"))}</span>` : esc(e.sw_version || "") + newerPackage(e)}</td>
        <td>${esc(e.part_number || "")}${partLink(e)}</td></tr>`;
    }
    const ticketText = (t) => t.time_left_text ? _("{tariff} ({state}, {time} left)", {tariff: _(t.tariff_name), state: ticketState(t.state), time: timeLeft(t)})
      : _("{tariff} ({state})", {tariff: _(t.tariff_name), state: ticketState(t.state)});
    return `<section class="card"><h2>${esc(_("Vehicle"))}</h2><p id="message"></p>
      <div class="row"><button class="primary" data-job="identify">${esc(_("Identify vehicle"))}</button></div>${jobLine(job)}
      ${r ? `<p>${esc(_("VIN"))} <b data-testid="vehicle-vin">${esc(r.vin)}</b>${r.model ? ` &middot; <span data-testid="model">${esc(r.model)}</span>` : ""}</p>` : ""}
      <p class="muted">${esc(S.tickets.length ? _("Tickets: {tickets}", {tickets: S.tickets.map(ticketText).join("; ")}) : _("Tickets: none - reading the VIN, identifying and reading fault memory are free"))}</p>
      <table><thead><tr><th>${esc(_("ECU"))}</th><th>${esc(_("What"))}</th><th>${esc(_("Software"))}</th><th>${esc(_("Part number"))}</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
  faults() {
    // a fault code links to the portal's repair information for it (docs/web.md, [web] repair_info_url)
    const infoLink = (d) => S.infoUrl && d.code ? `<br><a data-testid="dtc-info" target="_blank" rel="noopener noreferrer" href="${esc(S.infoUrl + "/dtc?code=" + encodeURIComponent(d.code) + (S.vehicle.vin ? "&vin=" + encodeURIComponent(S.vehicle.vin) : ""))}">${esc(_("Repair information"))}</a>` : "";
    // ... and to what the box keeps of it for this car: shown without the portal (docs/web.md)
    const boxInfo = (d) => {
      if (!S.vehicle.vin || !d.code) return "";
      const c = S.cached[S.vehicle.vin + "/" + d.code];
      const button = `<br><button class="plain" data-action="dtc-cached" data-code="${esc(d.code)}" data-testid="dtc-cached-open">${esc(_("On the box"))}</button>`;
      if (!c) return button;
      const steps = (i) => ((i.record && i.record.steps) || []).map((st) => `<li>${esc(translated(st, "text"))}${st.torque_nm ? ` (${esc(num(st.torque_nm))} Nm)` : ""}</li>`).join("");
      return `<div data-testid="dtc-cached">${c.instructions.map((i) => `<p><b>${esc(translated(i.record || i, "title"))}</b></p><ol>${steps(i)}</ol>`).join("") || `<p class="muted">${esc(_("No instruction for this code in the box's cache."))}</p>`}
        ${c.campaigns.map((k) => `<p><span class="badge">${esc(_("campaign"))}</span> ${esc(k.id)}: ${esc(translated(k, "title"))}</p>`).join("")}
        <p class="muted">${esc(_("Content {version}, kept on the box", {version: c.content_version}))}</p></div>`;
    };
    const job = latest("read_fault_memory"); const r = job && job.result;
    let html = `<section class="card"><h2>${esc(_("Fault memory"))}</h2><p id="message"></p><div class="row">
      <button class="primary" data-job="read_fault_memory">${esc(_("Read all ECUs"))}</button>
      <button class="danger" data-job="clear_fault_memory" ${attr("data-confirm", _("Clear the fault memory of every ECU?"))}>${esc(_("Clear all"))}</button></div>
      ${jobLine(job)}${jobLine(latest("clear_fault_memory"))}</section>`;
    for (const ecu of (r && r.ecus) || []) {
      const dtcs = ecu.dtcs || [];
      html += `<section class="card" data-testid="ecu-faults"><div class="row"><h2>${esc(ecu.name)}</h2><span class="muted">${esc(dtcs.length === 1 ? _("1 fault") : _("{n} faults", {n: dtcs.length}))}</span>
        ${ecu.error ? `<span class="error">${esc(errorText(ecu.error))}</span>` : ""}
        <button class="danger push" data-job="clear_fault_memory" data-ecu="${esc(ecu.name)}" ${attr("data-confirm", _("Clear the fault memory of {ecu}?", {ecu: ecu.name}))}>${esc(_("Clear"))}</button></div>
        <table><tbody>${dtcs.map((d) => `<tr><td><b>${esc(d.code || d.id)}</b>${infoLink(d)}${boxInfo(d)}</td><td>${esc(pick(d.texts, d.text))}</td>
          <td>${(d.status_names || []).map((n) => `<span class="badge">${esc(_(n))}</span>`).join("")}</td>
          <td class="muted">${(d.snapshots || []).map(snapshotText).join("<br>") || esc(d.snapshots_note_i18n ? tr(d.snapshots_note_i18n) : d.snapshots_note || "")}</td></tr>`).join("")}</tbody></table></section>`;
    }
    return html;
  },
  live() {
    const job = latest("read_live_data");
    const running = job && (job.state === "running" || job.state === "queued");
    let cards = "";
    for (const [key, series] of Object.entries(S.live)) {
      const last = series[series.length - 1];
      cards += `<div class="plot" data-testid="live-value"><div class="row"><b>${esc(key)}</b><span class="muted">${esc(pick(last.names, last.name))}</span>
        <span class="push"><b>${esc(typeof last.value === "number" ? num(last.value) : last.value)}</b></span></div>${sparkline(series.map((p) => Number(p.value)))}</div>`;
    }
    return `<section class="card"><h2>${esc(_("Live data"))}</h2><p id="message"></p><div class="row">
      <button class="primary" data-action="live-start" ${running ? "disabled" : ""}>${esc(_("Start"))}</button>
      <button class="plain" data-action="live-stop" ${running ? "" : "disabled"}>${esc(_("Stop"))}</button>
      <span class="muted">${esc(_("engine speed, coolant temperature, battery voltage (DME)"))}</span></div>${cards}</section>`;
  },
  coding() {
    const descs = S.coding || {};
    const ecu = S.codingEcu || Object.keys(descs)[0] || "BDC";
    const job = latest("coding");
    const r = job && job.result && job.result.ecu === ecu ? job.result : null;
    const now = r ? (r.after || r.before) : null;
    let rows = "";
    for (const p of (descs[ecu] || {}).params || []) {
      const value = now ? now[p.name] : "";
      // a value's name is what the job is given; its label (the data file's) what the reader sees
      const shown = (v) => pick((p.value_labels || {})[v], String(v));
      const input = p.values.length
        ? `<select data-param="${esc(p.name)}">${p.values.map((v) => `<option value="${esc(v)}" ${v === value ? "selected" : ""}>${esc(shown(v))}</option>`).join("")}</select>`
        : `<input data-param="${esc(p.name)}" type="number" min="0" max="${p.max}" value="${esc(value)}">`;
      rows += `<tr><td>${esc(pick(p.labels, p.name.replace(/_/g, " ")))}</td><td data-testid="coding-now">${now ? esc(shown(value)) : "-"}</td><td>${input}</td></tr>`;
    }
    return `<section class="card"><h2>${esc(_("Coding"))}</h2><p id="message"></p><div class="row">
      <select id="coding-ecu">${Object.keys(descs).map((e) => `<option ${e === ecu ? "selected" : ""}>${esc(e)}</option>`).join("")}</select>
      <button class="plain" data-action="coding-read">${esc(_("Read"))}</button>
      <button class="primary" data-action="coding-write" ${now ? "" : "disabled"}>${esc(_("Write changes"))}</button>
      <button class="danger" data-action="coding-restore" ${attr("data-confirm", _("Put the previous coding of {ecu} back?", {ecu}))}>${esc(_("Restore previous"))}</button></div>
      ${jobLine(job)}${r && r.verified ? `<p class="ok" data-testid="coding-verified">${esc(_("Written and verified."))}</p>` : ""}
      <table><thead><tr><th>${esc(_("Parameter"))}</th><th>${esc(_("In the ECU"))}</th><th>${esc(_("New value"))}</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
  service() {
    const job = latest("service_reset");
    // the newest result that shows the status (a read or a reset), and the newest battery
    const done = Object.values(S.jobs).filter((j) => j.kind === "service_reset" && j.result).sort((a, b) => b.created - a.created);
    const status = serviceStatus();
    const battery = (done.find((j) => j.result.battery) || {}).result;
    const b = battery && battery.battery;
    const rows = ((status && status.cbs) || []).map((i) => `<tr data-testid="cbs-item"><td><b>${esc(pick(i.texts, i.text))}</b></td>
      <td><div class="progress"><div data-pct="${Number(i.availability)}"></div></div><span class="muted">${esc(num(i.availability))} %</span></td>
      <td>${i.remaining_km == null ? "-" : esc(num(i.remaining_km)) + " km"}</td><td>${esc(_("{n} months", {n: i.remaining_months}))}</td>
      <td>${i.due ? `<span class="badge bad">${esc(_("due"))}</span>` : ""}</td>
      <td><button class="primary" data-action="service-reset" data-item="${esc(i.name)}" ${attr("data-confirm", _("Was the service done? Reset {item}?", {item: pick(i.texts, i.text)}))}>${esc(_("Reset"))}</button></td></tr>`).join("");
    const resetDone = job && job.state === "done" && job.result && job.result.action === "reset" ? job.result.after : null;
    return `<section class="card"><h2>${esc(_("Service"))}</h2><p id="message"></p><div class="row">
      <button class="plain" data-action="service-read">${esc(_("Read service status"))}</button></div>${jobLine(job)}
      ${resetDone ? `<p class="ok" data-testid="service-verified">${esc(_("{item} reset: {percent} % left, read back from the ECU.", {item: pick(resetDone.texts, resetDone.text), percent: num(resetDone.availability)}))}</p>` : ""}
      <table><thead><tr><th>${esc(_("Service"))}</th><th>${esc(_("Left"))}</th><th>${esc(_("Distance"))}</th><th>${esc(_("Time"))}</th><th></th><th></th></tr></thead><tbody>${rows}</tbody></table></section>
      <section class="card"><h2>${esc(_("Battery registration"))}</h2>
      ${b ? `<p data-testid="battery">${esc(_("Registered: {capacity} Ah {technology} at {km} km", {capacity: num(b.capacity_ah), technology: String(b.technology).toUpperCase(), km: num(b.registered_km)}))}</p>` : `<p class="muted">${esc(_("Read the service status to see the registered battery."))}</p>`}
      <div class="row"><label>${esc(_("Capacity (Ah)"))} <input id="battery-ah" type="number" min="40" max="130" value="${esc(S.batteryAh || (b ? b.capacity_ah : 80))}"></label>
      <select id="battery-tech">${["agm", "efb", "flooded"].map((t) => `<option value="${t}" ${t === S.batteryTech ? "selected" : ""}>${t.toUpperCase()}</option>`).join("")}</select>
      <button class="primary" data-action="battery-register" ${attr("data-confirm", _("Register the new battery? The energy management charges it by this capacity and type."))}>${esc(_("Register new battery"))}</button></div></section>`;
  },
  programming() {
    const job = latest("programming");
    const pk = S.packages || [];
    const chosen = pk.find((p) => p.file === S.pkg);
    const anyText = _("any");
    const unfinished = (S.journal || []).filter((j) => j.state === "running" || j.state === "stopped");
    return `<section class="card"><h2>${esc(_("Programming"))}</h2><p id="message"></p>
      <div class="row"><select id="pkg"><option value="">${esc(_("choose a package"))}</option>${pk.map((p) => `<option value="${esc(p.file)}" ${p.file === S.pkg ? "selected" : ""}>${esc(p.valid ? p.file : _("{file} (invalid)", {file: p.file}))}</option>`).join("")}</select>
      <label class="plain">${esc(_("Upload a package"))} <input id="pkg-upload" type="file" accept=".vcipkg"></label></div>
      ${chosen ? `<table data-testid="precheck"><tbody>
        <tr><td>${esc(_("signature"))}</td><td>${chosen.valid ? `<span class="badge ok">${esc(_("valid"))}</span> ${esc(chosen.publisher)}` : `<span class="badge bad">${esc(errorText(chosen.error))}</span>`}</td></tr>
        ${chosen.valid ? `<tr><td>${esc(_("target"))}</td><td>${esc(chosen.ecu)} -> ${esc(chosen.version)} (${num(chosen.bytes / 1024, 0)} KiB)</td></tr>
        <tr><td>${esc(_("expects"))}</td><td>${esc(_("hardware {hardware}, software {software} (checked on the ECU before erasing)", {hardware: chosen.expects_hw || anyText, software: (chosen.expects_sw || []).join(", ") || anyText}))}</td></tr>
        <tr><td>${esc(_("battery"))}</td><td>${esc(_("at least {volts} V (checked before erasing; connect a charger)", {volts: num(13, 1)}))}</td></tr>
        <tr><td>${esc(_("ticket"))}</td><td>${esc(_("needs programming (Basic)"))}</td></tr>` : ""}
      </tbody></table>` : ""}
      <div class="row"><button class="primary" data-action="flash-start" ${attr("data-confirm", _("Program the ECU now? Keep the ignition on and a charger connected."))} ${chosen && chosen.valid ? "" : "disabled"}>${esc(_("Start programming"))}</button></div>
      ${job ? `<h2>${esc(job.params.package ? job.params.package.split("/").pop() : _("resume"))}</h2>${jobLine(job)}` : ""}
      ${unfinished.map((j) => `<p class="error">${esc(j.where)}</p><button class="primary" data-action="flash-resume" data-job="programming" data-resume="${esc(j.job_id)}">${esc(_("Resume"))}</button>`).join("")}
      </section>${mapCard(latest("map_update"))}`;
  },
  bridge() {
    // the workshop's own tester (ISTA, E-Sys, Tool32) through the box: docs/enet.md
    const job = latest("enet_bridge");
    const open = job && (job.state === "running" || job.state === "queued");
    const p = (job && job.progress) || {};
    const ports = Object.entries(p.ports || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    return `<section class="card"><h2>${esc(_("ENET bridge"))}</h2><p id="message"></p>
      <p class="muted">${esc(_("Lends the car's ENET to the workshop's tester software on this Wi-Fi: HSFZ 6801/6811 and DoIP 13400, only for the address below. Below the programming voltage floor the box refuses erase and download."))}</p>
      ${open ? `<p data-testid="bridge-state"><span class="badge ok">${esc(_("open"))}</span> ${esc(_("for {client}", {client: job.params.client}))} ${p.mode ? "(" + esc(p.mode) + ")" : ""} ${ports ? esc(_("ports {ports}", {ports})) : ""}${p.refused ? ` <span class="badge bad">${esc(_("{n} refused", {n: p.refused}))}</span>` : ""}</p>
        <div class="row"><button class="danger" data-action="bridge-close">${esc(_("Close the bridge"))}</button></div>`
      : `<div class="row"><label>${esc(_("Tester address"))} <input id="bridge-client" value="${esc(S.bridgeClient || S.myAddress || "")}"></label>
        <button class="primary" data-action="bridge-open">${esc(_("Open the bridge"))}</button></div>${job ? jobLine(job) : ""}`}</section>`;
  },
  tickets() {
    const rows = S.tickets.map((t) => `<tr><td>${esc(t.tariff_name ? _(t.tariff_name) : t.tariff)}</td><td>${esc((t.scopes || []).join(", "))}</td><td>${esc(timeLeft(t))}</td></tr>`).join("");
    return `<section class="card"><h2>${esc(_("Tickets"))}</h2><p id="message"></p>
      <textarea id="token" rows="3" ${attr("placeholder", _("Paste a ticket"))}></textarea>
      <label class="plain">${esc(_("or a ticket file"))} <input id="ticket-file" type="file" accept=".txt,.ticket,text/plain"></label>
      <div class="row"><button class="primary" data-action="add-ticket">${esc(_("Add ticket"))}</button></div>
      <table><thead><tr><th>${esc(_("Tariff"))}</th><th>${esc(_("Allows"))}</th><th>${esc(_("Time left"))}</th></tr></thead><tbody>${rows}</tbody></table></section>`;
  },
  log() {
    const tablets = (S.tablets || []).map((t) => `<tr><td>${esc(t.name)}</td><td>${esc(t.how)}</td>
      <td>${new Date(t.paired_at * 1000).toLocaleString(I18N.lang)}</td><td><button class="danger" data-action="unpair" data-tablet="${esc(t.id)}" ${attr("data-confirm", _("Unpair {tablet}?", {tablet: t.name}))}>${esc(_("Unpair"))}</button></td></tr>`).join("");
    const rows = Object.values(S.jobs).sort((a, b) => b.created - a.created).map((j) => `<tr><td>${new Date(j.created * 1000).toLocaleTimeString(I18N.lang)}</td>
      <td data-testid="log-kind">${esc(kindText(j.kind))}${j.ecu ? " " + esc(j.ecu) : ""}</td><td>${esc(originText(j.origin))} ${esc(j.who)}</td><td>${esc(stateText(j.state))}</td></tr>`).join("");
    return `<section class="card"><h2>${esc(_("Session log"))}</h2><p><a href="/api/trace" download data-testid="trace">${esc(_("Download the trace of the vehicle link (pcap, opens in Wireshark)"))}</a></p><table><thead><tr><th>${esc(_("When"))}</th><th>${esc(_("Job"))}</th><th>${esc(_("By"))}</th><th>${esc(_("State"))}</th></tr></thead><tbody>${rows}</tbody></table></section>
      <section class="card"><h2>${esc(_("Paired tablets"))}</h2><table><thead><tr><th>${esc(_("Tablet"))}</th><th>${esc(_("Paired by"))}</th><th>${esc(_("Since"))}</th><th></th></tr></thead><tbody>${tablets}</tbody></table></section>`;
  },
};
function sparkline(values) {
  const w = 300, h = 60, n = values.length;
  if (n < 2) return "";
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const pts = values.map((v, i) => `${(i / (n - 1) * w).toFixed(1)},${(h - 4 - (v - lo) / span * (h - 8)).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" class="spark" aria-hidden="true"><polyline fill="none" stroke="#0a6ebd" stroke-width="2" points="${pts}"/></svg>`;
}
// a ticket's state and time left in the page's language (the box sends both in English too)
function ticketState(state) {
  return ({valid: _("valid"), "not activated": _("not activated"), expired: _("expired"), revoked: _("revoked"), "used up": _("used up"), "not yet valid": _("not yet valid")})[state] || state;
}
function timeLeft(t) {
  if (t.time_left == null) return t.time_left_text || "";
  const s = Math.max(0, Math.floor(t.time_left)), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? _("{days} d {hours} h", {days: d, hours: h}) : _("{hours} h {minutes} min", {hours: h, minutes: m});
}
function newerVersion(a, b) { // "12.05.00" > "12.04.00", part by part as numbers
  const x = String(a).split(".").map(Number), y = String(b).split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) { if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0); }
  return false;
}
// the vehicle page's "newer in the package store" needs the list too; only that page is rendered
// again (the programming page's file input must not be replaced under a choice being made)
async function loadPackageList() { try { S.packages = (await api("GET", "/api/packages")).packages; if (S.view === "vehicle") render(); } catch (e) { /* shown elsewhere */ } }
// The packages and the map offers in one render: a re-render replaces the file input (a test
// or a technician choosing a file at that moment would lose the choice).
async function loadPackages() { try {
  const [r, maps] = await Promise.all([api("GET", "/api/packages"), api("GET", "/api/maps").catch(() => ({offers: S.mapOffers || []}))]);
  S.packages = r.packages; S.journal = r.journal; S.mapOffers = maps.offers; S.packagesLoaded = true; render(); } catch (e) { /* shown elsewhere */ } }
async function loadMaps() { try { S.mapOffers = (await api("GET", "/api/maps")).offers; render(); } catch (e) { /* shown elsewhere */ } }
async function loadTablets() { try { S.tablets = (await api("GET", "/api/tablets")).tablets; render(); } catch (e) { /* unpaired itself: reload shows pairing */ } }
async function loadCoding() { try { S.coding = await api("GET", "/api/coding"); render(); } catch (e) { /* shown elsewhere */ } }
// Uploaded as soon as it is chosen: a re-render (live events) would lose a file input's choice.
async function uploadPackage(f) {
  if (!f) return;
  const r = await fetch("/api/packages?name=" + encodeURIComponent(f.name), {method: "POST", headers: {"X-CSRF-Token": S.csrf}, body: f});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) return flash(data.message || data.i18n ? errorText(data) : _("The upload failed"));
  S.pkg = data.file; await loadPackages();
}
function codingChanges() {
  const out = {};
  document.querySelectorAll("[data-param]").forEach((el) => { out[el.dataset.param] = el.value; });
  return out;
}

async function addTicket() {
  try { await api("POST", "/api/tickets", {token: $("#token").value.trim()}); await loadTickets(); }
  catch (e) { flash(errText(e)); }
}
async function loadTickets() { try { S.tickets = (await api("GET", "/api/tickets")).tickets; S.ticketsLoaded = true; render(); } catch (e) { /* shown elsewhere */ } }

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
  const a = b.dataset.action;
  if (a === "flash-resume") runJob("programming", null, {resume: b.dataset.resume});
  else if (a === "map-install") runJob("map_update", null, {offer: b.dataset.offer});
  else if (b.dataset.job) runJob(b.dataset.job, b.dataset.ecu);
  else if (a === "add-ticket") addTicket();
  else if (a === "dtc-cached") { const key = S.vehicle.vin + "/" + b.dataset.code; api("GET", `/api/info/${encodeURIComponent(S.vehicle.vin)}/dtc/${encodeURIComponent(b.dataset.code)}`).then((c) => { S.cached[key] = c; render(); }).catch((e) => flash(errText(e))); }
  else if (a === "unpair") api("DELETE", `/api/tablets/${b.dataset.tablet}`).then(loadTablets).catch((e) => flash(errText(e)));
  else if (a === "live-start") { S.live = {}; runJob("read_live_data", null, {duration: 300, interval: 0.5}); }
  else if (a === "live-stop") { const j = latest("read_live_data"); if (j) api("POST", `/api/jobs/${j.id}/cancel`).catch((e) => flash(errText(e))); }
  else if (a === "coding-read") runJob("coding", S.codingEcu || "BDC", {action: "read"});
  else if (a === "coding-write") runJob("coding", S.codingEcu || "BDC", {action: "set", changes: codingChanges()});
  else if (a === "coding-restore") runJob("coding", S.codingEcu || "BDC", {action: "restore"});
  else if (a === "print") { S.printing = b.closest("[data-testid^=card-]").dataset.testid.slice(5); render(); window.print(); S.printing = null; render(); }
  else if (a === "service-read") runJob("service_reset", null, {action: "read"});
  else if (a === "service-reset") runJob("service_reset", null, {action: "reset", item: b.dataset.item});
  else if (a === "battery-register") runJob("service_reset", null, {action: "register_battery", capacity_ah: Number($("#battery-ah").value), technology: $("#battery-tech").value});
  else if (a === "bridge-open") api("POST", "/api/bridge/open", {client: $("#bridge-client").value.trim() || null}).then((j) => { S.jobs[j.id] = S.jobs[j.id] || j; S.lastJob.enet_bridge = j.id; render(); }).catch((e) => flash(errText(e)));
  else if (a === "bridge-close") api("POST", "/api/bridge/close").catch((e) => flash(errText(e)));
  else if (a === "flash-start") { const p = (S.packages || []).find((x) => x.file === S.pkg); if (p) runJob("programming", p.ecu, {package: p.file}); }
});
document.addEventListener("change", (ev) => {
  if (ev.target.id === "coding-ecu") { S.codingEcu = ev.target.value; render(); }
  if (ev.target.id === "pkg") { S.pkg = ev.target.value; render(); }
  // kept in the state: live events re-render the view while the technician types
  if (ev.target.id === "battery-ah") S.batteryAh = ev.target.value;
  if (ev.target.id === "battery-tech") S.batteryTech = ev.target.value;
  if (ev.target.id === "bridge-client") S.bridgeClient = ev.target.value;
  if (ev.target.id === "pkg-upload") uploadPackage(ev.target.files[0]);
  if (ev.target.id === "ticket-file" && ev.target.files[0]) ev.target.files[0].text().then((t) => { $("#token").value = t.trim(); addTicket(); });
});
document.querySelectorAll("#tabs button").forEach((b) => b.onclick = () => {
  document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
  S.view = b.dataset.view;
  if (S.view === "tickets") { S.ticketsLoaded = false; loadTickets(); }
  if (S.view === "programming") loadPackages();  // and the map offers
  if (S.view === "coding") loadCoding();
  if (S.view === "log") loadTablets();
  if (S.view === "vehicle") loadTickets();
  if (S.view === "bridge") api("GET", "/api/bridge").then((r) => { S.myAddress = r.your_address; if (r.job) { S.jobs[r.job.id] = r.job; S.lastJob.enet_bridge = r.job.id; } render(); }).catch(() => {});
  render();
});
// the language switch in the header: remembered on this tablet (and in a cookie for the box)
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("#language button[data-lang]");
  if (!b) return;
  localStorage.setItem("vci_lang", b.dataset.lang);
  loadLanguage(b.dataset.lang).then(render);
});
(async () => { await loadLanguage(chooseLanguage()); const s = await api("GET", "/api/session"); S.csrf = s.csrf; S.infoUrl = s.repair_info_url || ""; connect(); render(); loadTickets(); loadPackageList(); })();
