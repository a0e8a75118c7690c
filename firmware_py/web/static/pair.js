"use strict";
const $ = (id) => document.getElementById(id);
let req = null, started = 0, windowS = 60;

async function post(url, body) {
  const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  let data = {};
  try { data = await r.json(); } catch (e) { /* empty */ }
  return {status: r.status, data};
}
function say(err) { $("message").textContent = errorText(err); }
// the page's texts in the chosen language (i18n.js); the same EN/DE switch as the tablet page
async function showLanguage(lang) {
  await loadMessages(lang);
  const texts = {"t-title": _("Pair this tablet with the box"),
    "t-intro": _("Only a tablet at the box may use it. Tap Pair, then within one minute press the button on the box, or type the code printed on the box's label."),
    "pair": _("Pair"), "status": _("Waiting for the box's button ..."), "t-request": _("This tablet's request:"),
    "t-names": _("(the box names it when it pairs)"), "t-or-code": _("or enter the label code:"), "send-code": _("Send code")};
  for (const [id, text] of Object.entries(texts)) $(id).textContent = text;
  $("name").placeholder = _("Name of this tablet");
  document.querySelectorAll("#language button").forEach((b) => b.classList.toggle("active", b.dataset.lang === lang));
  document.documentElement.lang = lang;
}
document.querySelectorAll("#language button").forEach((b) => b.onclick = () => { localStorage.setItem("vci_lang", b.dataset.lang); showLanguage(b.dataset.lang); });
showLanguage(chooseLanguage());

$("pair").onclick = async () => {
  say(null);
  const r = await post("/api/pair", {name: $("name").value || _("tablet")});
  if (r.status !== 200) { say(r.data); return; }
  req = r.data; started = Date.now(); windowS = r.data.window;
  $("short-code").textContent = r.data.short_code || "";
  $("waiting").hidden = false; $("pair").disabled = true;
  const countdown = setInterval(() => {  // local countdown of the pairing window (no server polling)
    const left = Math.max(0, windowS - (Date.now() - started) / 1000);
    $("timer").style.width = (100 * left / windowS) + "%";
    if (!req || left === 0) clearInterval(countdown);
  }, 500);
  poll();
};
$("send-code").onclick = async () => {
  if (!req) return;
  const r = await post(`/api/pair/${req.id}/code`, {code: $("code").value});
  if (r.status !== 200) { say(r.data); return; }
  // the waiting long poll sees the approval; no second one
};
let polling = false;
async function poll() {
  if (!req || polling) return;
  polling = true;
  const r = await post(`/api/pair/${req.id}/collect`, {claim: req.claim, wait: 20});  // long poll
  polling = false;
  if (r.status === 200) { $("status").textContent = _("Paired."); location.reload(); return; }
  if (r.status !== 202) { say(r.data); req = null; $("pair").disabled = false; $("waiting").hidden = true; return; }
  if (r.data.use_code) $("status").textContent = _("Several tablets are asking to pair: type the code from the box's label.");
  poll();
}
