"use strict";
// The service booklet (on the Service page) and the Technical Help Desk page: jobs through the
// page's one job submission (app.js runJob), the help desk's answers from /api/helpdesk.
(() => {
  const serviceView = views.service;
  let requests = [], loaded = false, shownFor = null, asked = 0;
  // only the newest GET's list counts: an older one answered later would put back a list without
  // the request just sent, and the view does not ask again for the same request (shownFor)
  const load = () => {
    const n = ++asked;
    return api("GET", "/api/helpdesk").then((r) => { if (n !== asked) return; requests = r.requests; loaded = true; render(); }).catch(() => {});
  };
  window.onHelpdesk = () => load();

  function bookletCard() {
    const job = latest("service_history");
    const done = Object.values(S.jobs).filter((j) => j.kind === "service_history" && j.result).sort((a, b) => b.created - a.created);
    const history = (done[0] && done[0].result.history) || [];
    const status = serviceStatus();
    const items = (status && status.cbs) || [];
    const rows = history.map((e) => `<tr data-testid="booklet-entry"><td>${esc(e.index)}</td><td>${esc(e.date)}</td>
      <td>${esc(num(e.mileage_km))} km</td><td>${esc(e.items.join(", "))}</td><td>${esc(e.workshop)}</td><td>${esc(e.note)}</td></tr>`).join("");
    const recorded = job && job.state === "done" && job.result && job.result.entry && job.result.action === "record" ? job.result : null;
    const choose = items.length ? items.map((i) => `<label><input type="checkbox" class="booklet-item" value="${esc(i.name)}" ${(S.bookletItems || []).includes(i.name) ? "checked" : ""}> ${esc(pick(i.texts, i.text))}</label>`).join(" ")
      : `<p class="muted">${esc(_("Read the service status to choose the items done."))}</p>`;
    const values = recorded && {entry: recorded.entry.index, km: num(recorded.entry.mileage_km), items: (recorded.reset || []).join(", ")};
    const said = !recorded ? "" : recorded.reset && recorded.reset.length
      ? (recorded.new ? _("Recorded: entry {entry} at {km} km (reset first: {items}), read back from the car; it goes to the portal's booklet.", values)
        : _("Already recorded: entry {entry} at {km} km (reset first: {items}), read back from the car; it goes to the portal's booklet.", values))
      : (recorded.new ? _("Recorded: entry {entry} at {km} km, read back from the car; it goes to the portal's booklet.", values)
        : _("Already recorded: entry {entry} at {km} km, read back from the car; it goes to the portal's booklet.", values));
    return `<section class="card"><h2>${esc(_("Service booklet"))}</h2><div class="row">
      <button class="plain" data-action="booklet-read">${esc(_("Read service booklet"))}</button></div>${jobLine(job)}
      ${recorded ? `<p class="ok" data-testid="booklet-recorded">${esc(said)}</p>` : ""}
      <table><thead><tr><th>#</th><th>${esc(_("Date"))}</th><th>${esc(_("Mileage"))}</th><th>${esc(_("Service"))}</th><th>${esc(_("Workshop"))}</th><th>${esc(_("Note"))}</th></tr></thead><tbody>${rows}</tbody></table>
      <h3>${esc(_("Record a service"))}</h3><div class="row">${choose}</div>
      <div class="row"><label>${esc(_("Note"))} <input id="booklet-note" maxlength="28" value="${esc(S.bookletNote || "")}"></label>
      <button class="primary" data-action="booklet-record">${esc(_("Reset and record service"))}</button></div></section>`;
  }
  views.service = () => serviceView() + bookletCard();

  views.helpdesk = () => {
    const job = latest("help_desk_request");
    const sent = job && job.state === "done" && job.result ? job.result.request : null;
    if (!loaded || (sent && !requests.some((r) => r.id === sent) && shownFor !== sent)) { shownFor = sent; load(); }
    const list = requests.map((r) => `<li data-testid="helpdesk-request"><b>${esc(r.question)}</b> <span class="badge ${r.state === "answered" ? "ok" : "warn"}">${esc(r.state === "answered" ? _("answered") : r.state === "waiting" ? _("waiting") : r.state === "sent" ? _("sent") : r.state)}</span>
      ${r.answer ? `<p data-testid="helpdesk-answer">${esc(_("Answer: {answer}", {answer: r.answer}))}</p>` : ""}</li>`).join("");
    return `<section class="card"><h2>${esc(_("Technical Help Desk"))}</h2><p id="message"></p>
      <p class="muted">${esc(_("The request carries the vehicle's identification and software versions, its fault memory with details, the session log, the battery history and the traces of this session. It uses a Technical Help Desk ticket once the portal has it."))}</p>
      <label>${esc(_("Question"))}<br><textarea id="hd-question" rows="4" cols="60" maxlength="4000">${esc(S.hdQuestion || "")}</textarea></label>
      <div class="row"><label>${esc(_("Your contact"))} <input id="hd-contact" maxlength="200" value="${esc(S.hdContact || "")}"></label>
      <button class="primary" data-action="helpdesk-send">${esc(_("Send to the help desk"))}</button></div>${jobLine(job)}</section>
      <section class="card"><h2>${esc(_("Requests"))}</h2><ul>${list || `<li class="muted">${esc(_("none yet"))}</li>`}</ul></section>`;
  };

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    const a = b.dataset.action;
    if (a === "booklet-read") runJob("service_history", null, {action: "read"});
    else if (a === "booklet-record") {
      const items = [...document.querySelectorAll(".booklet-item:checked")].map((x) => x.value);
      if (!items.length) { flash(_("Choose the service items done")); return; }
      if (!confirm(_("Reset {items} where not yet reset, and record the service in the car's booklet?", {items: items.join(", ")}))) return;
      runJob("service_history", null, {action: "record", items, note: $("#booklet-note").value.trim(), reset: true});
    } else if (a === "helpdesk-send") {
      runJob("help_desk_request", null, {question: $("#hd-question").value.trim(), contact: $("#hd-contact").value.trim()}).then(load);
    }
  });
  document.addEventListener("change", (ev) => {
    if (ev.target.classList.contains("booklet-item")) S.bookletItems = [...document.querySelectorAll(".booklet-item:checked")].map((x) => x.value);
    if (ev.target.id === "booklet-note") S.bookletNote = ev.target.value;
    if (ev.target.id === "hd-question") S.hdQuestion = ev.target.value;
    if (ev.target.id === "hd-contact") S.hdContact = ev.target.value;
  });
})();
