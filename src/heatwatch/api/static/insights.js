// heatwatch decision support on the dashboard: interpolated heat-island map (PNG from
// /v1/towns/{town}/uhi-map) and the season's site ranking (/v1/towns/{town}/rankings).
// Self-contained on purpose: it reads the town from the page's #town select and the language from
// <html lang>, and adds its own card to <main>, so dashboard.js needs no change.
"use strict";

(function () {
  const TEXT = {
    fr: {
      title: "Îlot de chaleur : carte interpolée et classement",
      kind: "Carte", night: "Nuit (ICU nocturne max)", day: "Journée (ICU moyen)", season_night: "Saison (moy. des max. nocturnes, jours communs)",
      date: "Date", season: "Saison", newest: "dernière disponible", geojson: "GeoJSON", csv: "CSV",
      alt: "Carte interpolée de l'intensité de l'îlot de chaleur", none: "Pas de carte : aucune donnée pour cette date.",
      ranking: "Sites les plus chauds la nuit, été", rank: "Rang", site: "Site", night_mean: "Moy. des max. nocturnes d’ICU °C",
      tropical: "Nuits tropicales", hours30: "Heures ≥ 30 °C", no_rank: "Aucune donnée pour cette saison.",
      common: "comparés sur les {n} mêmes nuits",
      method: "Interpolation par inverse de la distance ; cellules vides à plus de 600 m d'un capteur. La carte ne connaît ni le bâti ni la végétation.",
    },
    en: {
      title: "Heat island: interpolated map and ranking",
      kind: "Map", night: "Night (max nocturnal UHI)", day: "Day (mean UHI)", season_night: "Season (mean nightly max, common days)",
      date: "Date", season: "Season", newest: "newest available", geojson: "GeoJSON", csv: "CSV",
      alt: "Interpolated map of the urban heat island intensity", none: "No map: no data for this date.",
      ranking: "Hottest sites at night, summer", rank: "Rank", site: "Site", night_mean: "Mean nightly max UHI °C",
      tropical: "Tropical nights", hours30: "Hours ≥ 30 °C", no_rank: "No data for this season.",
      common: "compared on the same {n} nights",
      method: "Inverse distance weighting; cells farther than 600 m from every sensor are left empty. The map knows no buildings or vegetation.",
    },
  };
  const lang = () => (document.documentElement.lang === "en" ? "en" : "fr");
  const tr = (k) => TEXT[lang()][k] || TEXT.fr[k] || k;
  // Before June the newest complete summer is last year's. Outside the vigilance season (1 June – 15 September) the
  // map opens on that summer's nights rather than on last night, which says little about heat.
  const now = new Date();
  const inSeason = (now.getMonth() >= 5 && now.getMonth() <= 7) || (now.getMonth() === 8 && now.getDate() <= 15);
  const state = { town: null, kind: inSeason ? "night" : "season", date: "",
                  season: now.getFullYear() - (now.getMonth() < 5 ? 1 : 0), seq: 0 };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function mapQuery(format) {
    const q = new URLSearchParams({ format });
    if (state.kind === "season") {
      q.set("kind", "night");
      q.set("from", `${state.season}-06-01`);
      q.set("to", `${state.season}-09-14`);
    } else {
      q.set("kind", state.kind);
      if (state.date) q.set("date", state.date);
    }
    return `/v1/towns/${encodeURIComponent(state.town)}/uhi-map?${q}`;
  }

  function render() {
    let card = document.getElementById("insights");
    if (!card) {
      card = el("section", { id: "insights", class: "card insights-card", "aria-labelledby": "insights-title" });
      document.querySelector("main").append(card);
    }
    const kinds = ["night", "day", "season"].map((k) =>
      el("option", { value: k, text: tr(k === "season" ? "season_night" : k), ...(k === state.kind ? { selected: "" } : {}) }));
    const controls = el("div", { class: "insights-controls" },
      el("label", { for: "insights-kind", text: tr("kind") }),
      el("select", { id: "insights-kind", onchange: (e) => { state.kind = e.target.value; render(); } }, ...kinds),
      el("label", { for: "insights-date", text: tr("date") }),
      el("input", { id: "insights-date", type: "date", value: state.date, title: tr("newest"),
                    onchange: (e) => { state.date = e.target.value; render(); } }),
      el("label", { for: "insights-season", text: tr("season") }),
      el("input", { id: "insights-season", type: "number", min: "2000", max: "2100", value: String(state.season),
                    onchange: (e) => { state.season = Number(e.target.value) || state.season; render(); } }));
    const img = el("img", { id: "insights-map", alt: tr("alt"), width: "825", height: "726", hidden: "" });
    const note = el("p", { id: "insights-map-note", class: "note", hidden: "" });
    img.addEventListener("error", () => { img.hidden = true; note.hidden = false; note.textContent = tr("none"); });
    const links = el("p", { class: "note" },
      el("a", { href: mapQuery("geojson"), text: tr("geojson") }), " · ",
      el("a", { href: `/v1/towns/${encodeURIComponent(state.town)}/rankings?season=${state.season}&format=csv`, text: tr("csv") }),
      " · ", tr("method"));
    const table = el("table", { id: "insights-ranking" },
      el("caption", { text: `${tr("ranking")} ${state.season}` }),
      el("thead", {}, el("tr", {}, ...["rank", "site", "night_mean", "tropical", "hours30"].map((k) =>
        el("th", { scope: "col", class: k === "site" ? null : "num", text: tr(k) })))),
      el("tbody", {}));
    card.replaceChildren(el("h2", { id: "insights-title", text: tr("title") }), controls,
      el("div", { class: "insights-body" }, el("figure", {}, img, note), table), links);
    loadRanking(table.querySelector("tbody"), img, note, table.querySelector("caption"));
  }

  async function loadRanking(tbody, img, note, caption) {
    const seq = ++state.seq;
    let rows = [];
    let reporting = 0;
    let common = null;
    try {
      const r = await fetch(`/v1/towns/${encodeURIComponent(state.town)}/rankings?season=${state.season}`,
                            { headers: { Accept: "application/json" } });
      if (r.ok) {
        const body = await r.json();
        rows = body.data;
        reporting = (body.meta.season && body.meta.season.sensors_reporting) || 0;
        common = body.meta.season && body.meta.season.compared_on;
      }
    } catch (_) { /* offline: the table says there is no data */ }
    if (seq !== state.seq) return; // a newer town or season was asked meanwhile
    // Ask for the map only when the season has daily data (or a date was picked): a 404 image would
    // otherwise be the normal state of a new deployment, and an error in the console.
    if (state.date || reporting > 0) {
      img.src = mapQuery("png");
      img.hidden = false;
    } else {
      note.hidden = false;
      note.textContent = tr("none");
    }
    const fmt = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString(lang(), { maximumFractionDigits: 1, minimumFractionDigits: 1 }));
    const ranked = rows.filter((x) => x.rank !== null).slice(0, 10);
    // Every ranked site is compared on the same days: say how many.
    if (common && common.common_days) caption.textContent = `${tr("ranking")} ${state.season} — ${tr("common").replace("{n}", common.common_days)}`;
    tbody.replaceChildren(...(ranked.length ? ranked.map((x) => el("tr", {},
      el("td", { class: "num", text: String(x.rank) }),
      el("td", { text: x.name || x.sensor, title: x.name ? `${x.sensor} — ${x.name}` : x.sensor }),
      el("td", { class: "num", text: fmt(x.uhi_night_max_mean) }),
      el("td", { class: "num", text: String(x.tropical_nights) }),
      el("td", { class: "num", text: String(x.hours_ge_30 ?? "—") })))
      : [el("tr", {}, el("td", { colspan: "5", text: tr("no_rank") }))]));
  }

  function townChanged() {
    const sel = document.getElementById("town");
    const town = sel && sel.value;
    if (town && town !== state.town) { state.town = town; render(); }
  }

  function start() {
    const sel = document.getElementById("town");
    if (!sel || !document.querySelector("main")) return;
    sel.addEventListener("change", townChanged);
    // The dashboard fills the town list asynchronously and marks the loaded town on <body data-ready>;
    // the language button flips <html lang>: follow both without touching dashboard.js.
    new MutationObserver(townChanged).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
    new MutationObserver(() => { if (state.town) render(); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
    townChanged();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
