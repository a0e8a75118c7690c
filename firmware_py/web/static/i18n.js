"use strict";
// Languages of the box's pages (docs/translating.md), shared by the pairing page and the tablet
// page. The box's catalogue for the chosen language is loaded before the first render.
// _("English text", {name: value}) translates a whole sentence and fills its {name} placeholders;
// tr() translates a text the box sent as {message, values} (an error, a refusal:
// firmware_py/i18n.py Text).
const I18N = {lang: "en", messages: {}};
function _(text, values) {
  const t = I18N.messages[text];
  const s = typeof t === "string" ? t : text;
  return values ? s.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m)) : s;
}
function tr(t) {
  if (!t) return "";
  if (typeof t === "string") return _(t);
  const values = {};
  // a nested text is translated with it; a data file's {en, de} is chosen for the page
  for (const [k, v] of Object.entries(t.values || {})) values[k] = v && typeof v === "object" ? ("message" in v ? tr(v) : pick(v)) : v;
  return _(t.message, values);
}
// An error the box sent (VciError.to_dict): its texts as templates (i18n) in this page's
// language, else its English as sent.
function errorText(err) {
  if (!err) return "";
  const i = err.i18n;
  if (i && i.message) return i.hint ? _("{message}. {hint}", {message: tr(i.message), hint: tr(i.hint)}) : tr(i.message);
  return (err.message || "") + (err.hint ? ". " + err.hint : "");
}
// numbers in the page's language: 13,6 V in German
const num = (v, digits) => Number(v).toLocaleString(I18N.lang, digits == null ? {} : {minimumFractionDigits: digits, maximumFractionDigits: digits});
// a repair-information record's text in the page's language (the content's "i18n" table), else its English
const translated = (record, key) => ((record.i18n || {})[I18N.lang] || {})[key] || record[key] || "";
// a text the vehicle data carries in several languages ({en, de}), or one string
const pick = (texts, fallback) => (texts && typeof texts === "object" ? texts[I18N.lang] || texts.en : texts) || fallback || "";
function chooseLanguage() {
  const saved = localStorage.getItem("vci_lang");
  if (saved === "en" || saved === "de") return saved;
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const base = String(l).slice(0, 2).toLowerCase();
    if (base === "de" || base === "en") return base;
  }
  return "en";
}
// the messages of ``lang``; the box answers in it too (errors, reports: firmware_py/web/i18n_routes.py)
async function loadMessages(lang) {
  I18N.lang = lang;
  document.cookie = "vci_lang=" + lang + "; path=/; SameSite=Strict; max-age=31536000";
  I18N.messages = lang === "en" ? {} : ((await fetch("/i18n/" + lang + ".json").then((r) => r.json()).catch(() => ({}))).messages || {});
}
