// The maintenance page (/maintenance): the sensors to visit this week with their reasons, every sensor's battery,
// radio, QC and visits, one sensor's trends (uPlot, from npm like the dashboard's) and QC history, and the visit
// form for technicians. Reads the public /v1/maintenance endpoints; with the technicians' token (kept in this tab's
// sessionStorage, the same key as the dashboard's dead letters) it also sees who visited and their notes, and records
// visits (POST /v1/maintenance/visits).
"use strict";

(function () {
  const TEXT = {
    fr: {
      skip: "Aller aux capteurs à visiter", subtitle: "maintenance des capteurs", town: "Commune", back: "Tableau de bord",
      to_visit: "Capteurs à visiter cette semaine", csv: "Exporter (CSV)",
      to_visit_caption: "Capteurs à visiter, le plus urgent en premier, avec la raison",
      col_rank: "N°", col_sensor: "Capteur", col_reasons: "Raisons", col_days_left: "Batterie : jours restants",
      col_seen: "Vu", col_visit: "Dernière visite", none_to_visit: "Aucun capteur à visiter.", all: "Tous les capteurs",
      all_caption: "Batterie, signal radio, contrôle qualité, messages rejetés et visites de chaque capteur",
      col_battery: "Batterie", col_rssi: "RSSI (dBm, 7 j)", col_qc: "Heures signalées (7 j)", col_dead: "Messages rejetés",
      detail: "Détail", qc_history: "Historique du contrôle qualité", qc_caption: "Heures signalées par jour et par motif, et visites",
      col_day: "Jour", col_hours: "Heures signalées", col_flags: "Motifs", col_visit_day: "Visite", visit_log: "Journal des visites",
      record: "Enregistrer une visite",
      record_hint: "Réservé aux techniciens (jeton d'administration). Un capteur remplacé, déplacé ou réétalonné commence une nouvelle série : le contrôle qualité repart de la visite.",
      token: "Jeton d'administration", use_token: "Utiliser", forget: "Oublier le jeton", when: "Date et heure",
      who: "Technicien", actions: "Ce qui a été fait", note: "Note", save: "Enregistrer",
      licence: "Données sous Licence Ouverte / Etalab 2.0.", api_docs: "Documentation de l'API",
      lang_button: "EN", lang_label: "Switch to English", loading: "chargement…", error: "Impossible de lire la maintenance",
      never: "jamais", ago_min: "il y a {n} min", ago_h: "il y a {n} h", ago_d: "il y a {n} j", none: "—",
      falling: "en baisse", not_falling: "stable", too_few: "pas assez de mesures", low: "sous le seuil",
      battery_chart: "Batterie (médiane par 6 h)", rssi_chart: "RSSI (dBm, médiane par 6 h)", no_series: "Aucune mesure dans la période.",
      chart_missing: "Graphique indisponible : bibliothèque uPlot non installée (npm ci --prefix frontend).",
      battery_desc: "Seuil d'alerte {thr} {unit}. {est}", est_days: "Estimation : seuil atteint dans {d} jours ({lo}–{hi}).",
      est_none: "Pas d'estimation ({s}).", rssi_desc: "RSSI : dernier {last} dBm ; médiane 7 j {m7} dBm, 7 j précédents {p7} dBm. SNR : dernier {slast} dB ; médiane 7 j {s7} dB, 7 j précédents {sp7} dB.",
      saved: "Visite enregistrée.", recompute: "Recalcul demandé à l'analyse depuis le {d}.",
      recompute_no: "Visite enregistrée ; le recalcul n'a pas pu être demandé ({r}) : elle s'appliquera au prochain recalcul.",
      denied: "Jeton refusé.", need_token: "Saisissez d'abord le jeton d'administration.", new_series: "nouvelle série",
      by: "par", sensors_n: "{n} capteurs",
      a_cleaned: "nettoyé", a_moved: "déplacé", a_replaced: "remplacé", a_recalibrated: "réétalonné", a_battery: "pile changée",
      a_inspected: "inspecté", a_other: "autre",
      r_silent: "muet", r_battery_low: "batterie faible", r_battery: "batterie bientôt vide", r_drift: "dérive",
      r_level_shift: "saut de niveau", r_qc: "contrôle qualité",
    },
    en: {
      skip: "Skip to the sensors to visit", subtitle: "sensor maintenance", town: "Town", back: "Dashboard",
      to_visit: "Sensors to visit this week", csv: "Export (CSV)",
      to_visit_caption: "Sensors to visit, most urgent first, with the reason",
      col_rank: "#", col_sensor: "Sensor", col_reasons: "Reasons", col_days_left: "Battery: days left", col_seen: "Seen",
      col_visit: "Last visit", none_to_visit: "No sensor to visit.", all: "All sensors",
      all_caption: "Battery, radio signal, quality control, rejected messages and visits of each sensor",
      col_battery: "Battery", col_rssi: "RSSI (dBm, 7 d)", col_qc: "Flagged hours (7 d)", col_dead: "Rejected messages",
      detail: "Detail", qc_history: "Quality-control history", qc_caption: "Flagged hours per day and flag, and visits",
      col_day: "Day", col_hours: "Flagged hours", col_flags: "Flags", col_visit_day: "Visit", visit_log: "Visit log",
      record: "Record a visit",
      record_hint: "For technicians (admin token). A sensor replaced, moved or recalibrated starts a new series: quality control restarts at the visit.",
      token: "Admin token", use_token: "Use", forget: "Forget the token", when: "Date and time", who: "Technician",
      actions: "What was done", note: "Note", save: "Save", licence: "Data under Licence Ouverte / Etalab 2.0.",
      api_docs: "API documentation", lang_button: "FR", lang_label: "Passer en français", loading: "loading…",
      error: "Cannot read the maintenance view", never: "never", ago_min: "{n} min ago", ago_h: "{n} h ago",
      ago_d: "{n} d ago", none: "—", falling: "falling", not_falling: "steady", too_few: "too few readings",
      low: "below threshold", battery_chart: "Battery (6-hour median)", rssi_chart: "RSSI (dBm, 6-hour median)",
      no_series: "No reading in the period.",
      chart_missing: "Chart unavailable: uPlot is not installed (npm ci --prefix frontend).",
      battery_desc: "Alert threshold {thr} {unit}. {est}", est_days: "Estimate: threshold reached in {d} days ({lo}–{hi}).",
      est_none: "No estimate ({s}).", rssi_desc: "RSSI: last {last} dBm; 7-day median {m7} dBm, previous 7 days {p7} dBm. SNR: last {slast} dB; 7-day median {s7} dB, previous 7 days {sp7} dB.",
      saved: "Visit saved.", recompute: "Analytics asked to recompute from {d}.",
      recompute_no: "Visit saved; the recompute could not be requested ({r}): it applies at the next recompute.",
      denied: "Token refused.", need_token: "Enter the admin token first.", new_series: "new series", by: "by",
      sensors_n: "{n} sensors",
      a_cleaned: "cleaned", a_moved: "moved", a_replaced: "replaced", a_recalibrated: "recalibrated",
      a_battery: "battery changed", a_inspected: "inspected", a_other: "other",
      r_silent: "silent", r_battery_low: "battery low", r_battery: "battery soon empty", r_drift: "drift",
      r_level_shift: "level shift", r_qc: "quality control",
    },
  };
  const ACTIONS = ["cleaned", "moved", "replaced", "recalibrated", "battery", "inspected", "other"];
  const KEY = "heatwatch.adminToken";
  const state = { town: null, towns: [], body: null, sensor: null, detail: null, charts: [], vendor: {} };
  const $ = (sel) => document.querySelector(sel);
  const lang = () => (document.documentElement.lang === "en" ? "en" : "fr");
  const t = (k, vars) => {
    let s = TEXT[lang()][k] || TEXT.fr[k] || k;
    for (const [name, v] of Object.entries(vars || {})) s = s.replaceAll(`{${name}}`, v);
    return s;
  };
  const num = (v, digits) => (v === null || v === undefined ? t("none")
    : Number(v).toLocaleString(lang() === "en" ? "en-GB" : "fr-FR", { maximumFractionDigits: digits ?? 1 }));
  const token = () => sessionStorage.getItem(KEY) || "";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function ago(iso) {
    if (!iso) return t("never");
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 3600) return t("ago_min", { n: Math.max(0, Math.round(s / 60)) });
    if (s < 48 * 3600) return t("ago_h", { n: Math.round(s / 3600) });
    return t("ago_d", { n: Math.round(s / 86400) });
  }

  const day = (iso) => (iso ? new Date(iso).toLocaleDateString(lang() === "en" ? "en-GB" : "fr-FR") : t("none"));
  const actions = (list) => (list || []).map((a) => t(`a_${a}`)).join(", ");
  const visitText = (v) => (v ? `${day(v.at)} : ${actions(v.actions)}` : t("none"));

  async function getJSON(path, auth) {
    const headers = auth && token() ? { Authorization: `Bearer ${token()}` } : {};
    const r = await fetch(path, { headers });
    if (r.status === 403 && auth) {
      sessionStorage.removeItem(KEY);
      throw new Error(t("denied"));
    }
    if (!r.ok) throw new Error(`${t("error")} (HTTP ${r.status})`);
    return r.json();
  }

  function status(msg) { $("#status").textContent = msg || ""; }

  function applyText() {
    document.title = `heatwatch — ${t("subtitle")}`;
    for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
    const b = $("#lang");
    b.textContent = t("lang_button");
    b.setAttribute("lang", lang() === "en" ? "fr" : "en");
    b.setAttribute("aria-label", `${t("lang_button")}: ${t("lang_label")}`);
    renderActions();
  }

  function renderActions() {
    const box = $("#v-actions");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    box.replaceChildren(...ACTIONS.map((a) => el("span", {},
      el("input", { type: "checkbox", id: `va-${a}`, value: a, checked: checked.has(a) }),
      el("label", { for: `va-${a}`, text: ` ${t(`a_${a}`)}` }))));
  }

  // The server's reasons are in English with their figures: said again here in the page's language.
  function reasonText(r) {
    if (lang() === "en") return r.text;
    switch (r.code) {
      case "silent": return r.silent_s === null ? "aucune mesure dans la période" : `muet depuis ${dur(r.silent_s)}`;
      case "battery": return `batterie vide dans environ ${num(r.days_left, 0)} jours`;
      case "battery_low": return "batterie sous le seuil d'alerte";
      case "drift": return `dérive par rapport à ses voisins (${r.days} des 7 derniers jours)`;
      case "level_shift": return `saut de niveau : ${r.hours} h signalées STEP en 7 jours`;
      case "qc": return `contrôle qualité répété : ${r.flags.join(", ")}`;
      default: return r.text;
    }
  }

  function dur(s) {
    const h = s / 3600;
    return h < 1 ? `${Math.round(s / 60)} min` : h < 48 ? `${Math.round(h)} h` : `${Math.round(h / 24)} jours`;
  }

  function reasonList(reasons) {
    return el("span", {}, ...reasons.map((r) => el("span", { class: "reason", "data-code": r.code, text: reasonText(r) })));
  }

  function pick(sensor) {
    return el("button", { type: "button", class: "link", "data-sensor": sensor, onclick: () => select(sensor), text: sensor });
  }

  function render() {
    const b = state.body;
    if (!b) return;
    const docs = Object.fromEntries(b.data.map((d) => [d.sensor, d]));
    const tv = $("#to-visit tbody");
    tv.replaceChildren(...b.to_visit.map((id, i) => {
      const d = docs[id];
      return el("tr", { "data-sensor": id },
        el("td", { class: "num", text: String(i + 1) }),
        el("td", { class: "sensor" }, pick(id), d.name ? el("span", { class: "site", text: d.name }) : null),
        el("td", { class: "sensor" }, reasonList(d.reasons)),
        el("td", { class: "num", text: num(d.battery.days_left, 0) }),
        el("td", { text: ago(d.last_seen) }),
        el("td", { text: visitText(d.last_visit) }));
    }));
    $("#visit-count").textContent = String(b.to_visit.length);
    $("#visit-count").dataset.n = String(b.to_visit.length);
    $("#to-visit-empty").hidden = b.to_visit.length > 0;
    const all = $("#sensors tbody");
    all.replaceChildren(...b.data.map((d) => el("tr", { "data-sensor": d.sensor, "aria-selected": String(d.sensor === state.sensor) },
      el("td", { class: "sensor" }, pick(d.sensor)),
      el("td", { text: ago(d.last_seen) }),
      el("td", { class: "num", text: d.battery.unit ? `${num(d.battery.last, 2)} ${d.battery.unit}` : t("none") }),
      el("td", { class: "num", text: d.battery.days_left !== null ? num(d.battery.days_left, 0) : t(d.battery.status) }),
      el("td", { class: "num", text: num(d.radio.rssi_median_7d, 0) }),
      el("td", { class: "num", text: String(d.qc.hours_flagged_7d) }),
      el("td", { class: "num", text: String(d.dead_letters.total) }),
      el("td", { text: visitText(d.last_visit) }))));
    const sel = $("#v-sensor");
    const keep = sel.value;
    sel.replaceChildren(...b.data.map((d) => el("option", { value: d.sensor, text: d.sensor })));
    if (keep) sel.value = keep;
    $("#csv").setAttribute("href", `/v1/maintenance/to-visit?town=${encodeURIComponent(state.town)}&format=csv&sep=%3B`);
  }

  async function load() {
    status(t("loading"));
    try {
      state.body = await getJSON(`/v1/maintenance?town=${encodeURIComponent(state.town)}`, true);
      status(t("sensors_n", { n: state.body.data.length }));
    } catch (e) {
      status(e.message);
      return;
    }
    render();
    const first = state.sensor && state.body.data.some((d) => d.sensor === state.sensor) ? state.sensor
      : state.body.to_visit[0] || (state.body.data[0] && state.body.data[0].sensor);
    if (first) await select(first);
    document.body.dataset.ready = state.town;
  }

  async function select(sensor) {
    state.sensor = sensor;
    for (const tr of document.querySelectorAll("#sensors tbody tr")) tr.setAttribute("aria-selected", String(tr.dataset.sensor === sensor));
    $("#detail-sensor").textContent = sensor;
    $("#v-sensor").value = sensor;
    try {
      state.detail = (await getJSON(`/v1/maintenance/${encodeURIComponent(sensor)}`, true)).data;
    } catch (e) {
      status(e.message);
      return;
    }
    renderDetail();
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) return;
    const b = d.battery;
    const est = b.days_left !== null
      ? t("est_days", { d: num(b.days_left, 0), lo: num(b.days_left_range && b.days_left_range[1], 0), hi: num(b.days_left_range && b.days_left_range[0], 0) })
      : t("est_none", { s: t(b.status) });
    $("#battery-desc").textContent = b.unit ? t("battery_desc", { thr: num(b.threshold, 2), unit: b.unit, est }) : t("no_series");
    const r = d.radio;
    $("#rssi-desc").textContent = t("rssi_desc", { last: num(r.rssi_last, 0), m7: num(r.rssi_median_7d, 0), p7: num(r.rssi_median_prev_7d, 0),
      slast: num(r.snr_last, 1), s7: num(r.snr_median_7d, 1), sp7: num(r.snr_median_prev_7d, 1) });
    chart("#chart-battery", 0, d.series, b.unit === "%" ? "battery_pct" : "battery_v", `${t("battery_chart")} (${b.unit || ""})`, b.threshold);
    chart("#chart-rssi", 1, d.series, "rssi", t("rssi_chart"), null);
    $("#qc-history tbody").replaceChildren(...[...d.qc_history].reverse().map((h) => el("tr", {},
      el("td", { text: day(h.day) }),
      el("td", { class: "num", text: String(h.hours_flagged) }),
      el("td", { text: Object.entries(h.flags).map(([f, n]) => `${f} ${n} h`).join(", ") || t("none") }),
      el("td", { text: h.visit ? actions(h.visit) : "" }))));
    $("#visit-log").replaceChildren(...d.visit_log.map((v) => el("li", {},
      el("strong", { text: visitText(v) }), v.new_series ? ` (${t("new_series")})` : "",
      v.who ? ` — ${t("by")} ${v.who}` : "", v.note ? el("div", { class: "note", text: v.note }) : null)));
    if (!d.visit_log.length) $("#visit-log").append(el("li", { text: t("none") }));
  }

  function chart(sel, slot, series, field, label, threshold) {
    const box = $(sel);
    if (state.charts[slot]) { state.charts[slot].destroy(); state.charts[slot] = null; }
    box.replaceChildren();
    const pts = (series || []).filter((p) => p[field] !== null && p[field] !== undefined);
    if (!pts.length) { box.textContent = t("no_series"); return; }
    if (!window.uPlot) { box.textContent = t("chart_missing"); return; }
    const x = pts.map((p) => Date.parse(p.time) / 1000);
    const data = [x, pts.map((p) => p[field])];
    const lines = [{}, { label, stroke: "#0b5cad", width: 2 }];
    if (threshold !== null && threshold !== undefined) {
      data.push(x.map(() => threshold));
      lines.push({ label: "seuil / threshold", stroke: "#a3141d", dash: [6, 4], width: 1 });
    }
    state.charts[slot] = new uPlot({ width: Math.max(280, box.clientWidth || 600), height: 220, series: lines,
      scales: { x: { time: true } } }, data, box);
  }

  async function recordVisit(ev) {
    ev.preventDefault();
    if (!token()) { status(t("need_token")); $("#token").focus(); return; }
    const chosen = [...document.querySelectorAll("#v-actions input:checked")].map((i) => i.value);
    const at = $("#v-at").value ? new Date($("#v-at").value).toISOString() : new Date().toISOString();
    const body = { sensor: $("#v-sensor").value, at, who: $("#v-who").value.trim(), actions: chosen.length ? chosen : ["inspected"],
      note: $("#v-note").value };
    const r = await fetch("/v1/maintenance/visits", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` } });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401 || r.status === 403) { sessionStorage.removeItem(KEY); status(t("denied")); return; }
    if (!r.ok) { status((answer.error && answer.error.message) || `HTTP ${r.status}`); return; }
    const rc = answer.recompute;
    $("#v-note").value = "";
    state.sensor = body.sensor;
    await load();
    status(`${t("saved")} ${rc ? (rc.queued ? t("recompute", { d: rc.from }) : t("recompute_no", { r: rc.reason })) : ""}`);
  }

  async function loadVendor() {
    try {
      const cfg = await getJSON("/dashboard/config.json");
      state.vendor = cfg.vendor || {};
    } catch (e) { state.vendor = {}; }
    if (!state.vendor.uplot) return;
    await new Promise((resolve) => {
      document.head.append(el("link", { rel: "stylesheet", href: "/vendor/uplot/uPlot.min.css" }));
      const s = el("script", { src: "/vendor/uplot/uPlot.iife.min.js" });
      s.addEventListener("load", resolve);
      s.addEventListener("error", resolve);
      document.head.append(s);
    });
  }

  async function start() {
    const saved = localStorage.getItem("heatwatch.lang");
    if (saved === "en" || saved === "fr") document.documentElement.lang = saved;
    applyText();
    $("#lang").addEventListener("click", () => {
      document.documentElement.lang = lang() === "en" ? "fr" : "en";
      localStorage.setItem("heatwatch.lang", lang());
      applyText();
      render();
      renderDetail();
    });
    $("#token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("#token").value.trim();
      if (v) sessionStorage.setItem(KEY, v);
      $("#token").value = "";
      load();
    });
    $("#forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); load(); });
    $("#visit-form").addEventListener("submit", recordVisit);
    // Now, in local time, as the form's default (a visit is recorded once done).
    const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
    $("#v-at").value = now.toISOString().slice(0, 16);
    $("#town").addEventListener("change", () => { state.town = $("#town").value; location.hash = state.town; state.sensor = null; load(); });
    const [towns] = await Promise.all([getJSON("/v1/towns").catch(() => ({ data: [] })), loadVendor()]);
    state.towns = towns.data || [];
    $("#town").replaceChildren(...state.towns.map((tw) => el("option", { value: tw.id, text: tw.name || tw.id })));
    const wanted = location.hash.slice(1);
    state.town = state.towns.some((tw) => tw.id === wanted) ? wanted : (state.towns[0] && state.towns[0].id);
    $("#town").value = state.town;
    if (state.town) await load();
  }

  window.heatwatchMaintenance = { state, select };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
