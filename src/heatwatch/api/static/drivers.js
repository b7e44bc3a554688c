// heatwatch on the dashboard: "drivers and priorities" — what heats each site (/uhi-drivers), where greening
// pays most (/greening-priorities), heat × biodiversity (/heat-biodiversity), the site context and the town's
// own layers, on a Leaflet map with a layer switcher. Self-contained like insights.js: it reads the town from
// #town and the language from <html lang>, and adds its own card to <main>.
"use strict";

(function () {
  const TEXT = {
    fr: {
      title: "Facteurs et priorités : ce qui chauffe, et où verdir",
      season: "Saison", uhi_night: "ICU nocturne de la saison", hot_hours: "Heures ≥ 30 °C",
      sites: "{n} sites · erreur en validation croisée {cv} {u} (moyenne de la ville : {null})",
      refused: "Le modèle ne se prononce pas : ", no_layers: "Aucune couche importée pour cette commune (heatwatch layers import).",
      layers: "Couches", priorities: "Priorités de verdissement", biodiv: "Chaleur × biodiversité", context: "Contexte des capteurs",
      top: "Où verdir d'abord", cell: "Îlot", uhi: "ICU modélisé °C", sealed: "Imperméabilisé %", people: "Habitants",
      cooling: "+{c} pts de canopée", caveat: "Estimations d'un modèle (associations entre sites), pas des mesures.",
      downloads: "Télécharger", canopy: "canopée 100 m", imperv: "imperméabilisé 100 m", map_alt: "Carte des facteurs et priorités",
      classes: { "cool refuge": "refuge frais", "hot and poor": "chaud et pauvre", "hot but rich": "chaud mais riche",
                 "cool but poor": "frais mais pauvre", intermediate: "intermédiaire", "too few observations": "trop peu d'observations" },
    },
    en: {
      title: "Drivers and priorities: what heats, and where to green",
      season: "Season", uhi_night: "Season's nocturnal UHI", hot_hours: "Hours ≥ 30 °C",
      sites: "{n} sites · cross-validated error {cv} {u} (town mean: {null})",
      refused: "The model does not speak: ", no_layers: "No layer imported for this town (heatwatch layers import).",
      layers: "Layers", priorities: "Greening priorities", biodiv: "Heat × biodiversity", context: "Sensors' context",
      top: "Where to green first", cell: "Block", uhi: "Modelled UHI °C", sealed: "Sealed %", people: "Residents",
      cooling: "+{c} pts of canopy", caveat: "Model estimates (associations between sites), not measurements.",
      downloads: "Download", canopy: "canopy 100 m", imperv: "sealed 100 m", map_alt: "Map of drivers and priorities",
      classes: { "cool refuge": "cool refuge", "hot and poor": "hot and poor", "hot but rich": "hot but rich",
                 "cool but poor": "cool but poor", intermediate: "intermediate", "too few observations": "too few observations" },
    },
  };
  const CLASS_COLOURS = { "cool refuge": "#1a9850", "hot and poor": "#d73027", "hot but rich": "#fc8d59",
                          "cool but poor": "#91bfdb", intermediate: "#ffffbf", "too few observations": "#cccccc" };
  const KIND_STYLE = { vegetation: "#4daf4a", trees: "#1b7837", water: "#2c7fb8", perimeter: "#984ea3",
                       buildings: "#666666", population: "#ff7f00", biodiversity: "#e7298a" };
  const lang = () => (document.documentElement.lang === "en" ? "en" : "fr");
  const tr = (k) => TEXT[lang()][k] || TEXT.fr[k] || k;
  const now = new Date();
  const state = { town: null, season: now.getFullYear() - (now.getMonth() < 5 ? 1 : 0), seq: 0, map: null };

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
  const base = () => `/v1/towns/${encodeURIComponent(state.town)}`;
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    return { ok: r.ok, status: r.status, body: r.ok || r.status === 409 ? await r.json() : null };
  }
  const fmt = (v, d = 1) => (v === null || v === undefined ? "—" : Number(v).toLocaleString(lang(), { maximumFractionDigits: d, minimumFractionDigits: d }));
  const heat = (v, lo, hi) => { // blue → yellow → red over the cells' range
    const t = Math.max(0, Math.min(1, (v - lo) / Math.max(hi - lo, 1e-6)));
    const r = Math.round(t < 0.5 ? 69 + t * 2 * 186 : 255), g = Math.round(t < 0.5 ? 117 + t * 2 * 138 : 255 - (t - 0.5) * 2 * 200);
    const b = Math.round(t < 0.5 ? 180 - t * 2 * 80 : 100 - (t - 0.5) * 2 * 100);
    return `rgb(${r},${g},${b})`;
  };

  const PRED_FR = { canopy_100: "canopée à 100 m", vegetation_100: "végétation à 100 m",
                    impervious_100: "surface imperméabilisée à 100 m" };
  // The api's text is English; in French the same figures are said in French.
  function effectText(e) {
    if (lang() === "en") return e.text;
    const nd = e.unit === "h" ? 0 : (e.ci95[1] - e.ci95[0] >= 0.2 ? 1 : 2);
    const f = (v) => { const t = Number(v).toLocaleString("fr", { maximumFractionDigits: nd, minimumFractionDigits: nd, signDisplay: "exceptZero" }); return t.replace("-", "−"); };
    return `${f(e.effect)} ${e.unit} [${f(e.ci95[0])}, ${f(e.ci95[1])}] par ${e.per.replace("points", "points de")} ${PRED_FR[e.predictor] || e.label}`;
  }

  function render() {
    let card = document.getElementById("drivers");
    if (!card) {
      card = el("section", { id: "drivers", class: "card drivers-card", "aria-labelledby": "drivers-title" });
      document.querySelector("main").append(card);
    }
    if (state.map) { state.map.remove(); state.map = null; }
    const controls = el("div", { class: "insights-controls" },
      el("label", { for: "drivers-season", text: tr("season") }),
      el("input", { id: "drivers-season", type: "number", min: "2000", max: "2100", value: String(state.season),
                    onchange: (e) => { state.season = Number(e.target.value) || state.season; render(); } }));
    const effects = el("div", { id: "drivers-effects", "aria-live": "polite" });
    const mapBox = el("div", { id: "drivers-map", class: "drivers-map", role: "region", "aria-label": tr("map_alt") });
    const top = el("table", { id: "drivers-priorities" }, el("caption", { text: tr("top") }),
      el("thead", {}, el("tr", {}, ...["cell", "uhi", "sealed", "people", "cooling"].map((k) =>
        el("th", { scope: "col", class: k === "cell" ? null : "num", text: k === "cooling" ? tr("cooling").replace("{c}", "20") : tr(k) })))),
      el("tbody", {}));
    const q = `season=${state.season}`;
    const links = el("p", { class: "note", id: "drivers-links" }, tr("downloads"), " : ",
      el("a", { href: `${base()}/greening-priorities?${q}&format=csv&limit=5000`, text: `${tr("priorities")} CSV` }), " · ",
      el("a", { href: `${base()}/greening-priorities?${q}&format=geojson&limit=5000`, text: "GeoJSON" }), " · ",
      el("a", { href: `${base()}/heat-biodiversity?${q}&format=csv`, text: `${tr("biodiv")} CSV` }), " · ",
      el("a", { href: `${base()}/heat-biodiversity?${q}&format=geojson`, text: "GeoJSON" }), " · ",
      el("a", { href: `${base()}/site-context?format=csv`, text: `${tr("context")} CSV` }), " · ", tr("caveat"));
    card.replaceChildren(el("h2", { id: "drivers-title", text: tr("title") }), controls, effects,
      el("div", { class: "drivers-body" }, mapBox, el("div", { class: "table-wrap" }, top)), links);
    load(effects, mapBox, top.querySelector("tbody"));
  }

  async function load(effects, mapBox, tbody) {
    const seq = ++state.seq;
    const q = `season=${state.season}`;
    let drivers, layers, prio = { ok: false }, bio = { ok: false }, ctx = { ok: false };
    try {
      [drivers, layers] = await Promise.all([getJSON(`${base()}/uhi-drivers?${q}`), getJSON(`${base()}/layers`)]);
      // The grids exist only when the season's model speaks (else a 409): ask for them only then, and for the
      // map's layers only when the town has some.
      const speaks = drivers.ok && drivers.body.data.uhi_night && drivers.body.data.uhi_night.status === "ok";
      const hasLayers = layers.ok && layers.body.data.length > 0;
      [prio, bio, ctx] = await Promise.all([
        speaks ? getJSON(`${base()}/greening-priorities?${q}&format=geojson&limit=5000`) : prio,
        speaks ? getJSON(`${base()}/heat-biodiversity?${q}&format=geojson`) : bio,
        hasLayers ? getJSON(`${base()}/site-context?format=geojson`) : ctx]);
    } catch (_) { return; } // offline: the card stays empty
    if (seq !== state.seq) return;
    const layerList = (layers.body && layers.body.data) || [];
    const blocks = [];
    if (!layerList.length) blocks.push(el("p", { class: "note", text: tr("no_layers") }));
    for (const key of ["uhi_night", "hot_hours"]) {
      const m = drivers.body && drivers.body.data && drivers.body.data[key];
      if (!m) continue;
      if (m.status !== "ok") { blocks.push(el("p", { class: "note" }, el("b", { text: `${tr(key)} — ` }), tr("refused") + m.reason)); continue; }
      blocks.push(el("p", { class: "drivers-model" }, el("b", { text: `${tr(key)} : ` }),
        el("span", { text: m.effects.map(effectText).join(" ; ") }), el("br"),
        el("span", { class: "note", text: tr("sites").replace("{n}", m.n_sites).replace("{cv}", fmt(m.cv_rmse, 2))
          .replace("{null}", fmt(m.cv_rmse_null, 2)).replace("{u}", m.unit) })));
    }
    effects.replaceChildren(...blocks);
    const feats = (prio.ok && prio.body.features) || [];
    tbody.replaceChildren(...feats.slice(0, 8).map((f) => { const p = f.properties; return el("tr", {},
      el("td", { text: `${p.rank}. ${p.cell}` }), el("td", { class: "num", text: fmt(p.uhi_model, 2) }),
      el("td", { class: "num", text: fmt(p.impervious, 0) }), el("td", { class: "num", text: p.residents === null ? "—" : fmt(p.residents, 0) }),
      el("td", { class: "num", text: `${fmt(p.cooling_c, 2)} [${fmt(p.cooling_lo, 2)}, ${fmt(p.cooling_hi, 2)}]` })); }));
    if (typeof L === "undefined" || !layerList.length) { mapBox.hidden = true; return; } // no Leaflet, or nothing to map
    const map = state.map = L.map(mapBox, { zoomControl: true, keyboard: true });
    L.control.scale({ metric: true, imperial: false }).addTo(map);
    const overlays = {};
    let bounds = null;
    if (feats.length) {
      const vals = feats.map((f) => f.properties.score);
      const g = L.geoJSON(prio.body, { style: (f) => ({ color: "#555", weight: 0.5, fillOpacity: 0.65,
        fillColor: heat(f.properties.score, Math.min(...vals), Math.max(...vals)) }),
        onEachFeature: (f, l) => l.bindTooltip(`${f.properties.rank}. ${f.properties.cell} — ${tr("uhi")} ${fmt(f.properties.uhi_model, 2)}, ${tr("sealed")} ${fmt(f.properties.impervious, 0)}`) });
      overlays[tr("priorities")] = g.addTo(map);
      bounds = g.getBounds();
    }
    if (bio.ok && bio.body.features && bio.body.features.length) {
      overlays[tr("biodiv")] = L.geoJSON(bio.body, { style: (f) => ({ color: "#555", weight: 0.5, fillOpacity: 0.6,
        fillColor: CLASS_COLOURS[f.properties.class] || "#ccc" }),
        onEachFeature: (f, l) => l.bindTooltip(`${TEXT[lang()].classes[f.properties.class] || f.properties.class} — ${f.properties.species} sp., ${f.properties.obs_days} j`) });
    }
    if (ctx.ok && ctx.body.features) {
      const g = L.geoJSON(ctx.body, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 6, color: "#000", weight: 1,
        fillColor: "#fff", fillOpacity: 0.9 }),
        onEachFeature: (f, l) => l.bindTooltip(`${f.properties.sensor}: ${tr("canopy")} ${fmt(f.properties.canopy_100, 0)} %, ${tr("imperv")} ${fmt(f.properties.impervious_100, 0)} %`) });
      overlays[tr("context")] = g.addTo(map);
      if (!bounds && g.getLayers().length) bounds = g.getBounds();
    }
    for (const info of layerList) {
      if (info.geometry !== "vector" || info.features > 20000 || info.kind === "buildings" || info.kind === "biodiversity") continue;
      const group = L.layerGroup();
      let loaded = false;
      group.on("add", async () => { // fetched when switched on: a tree inventory can be large
        if (loaded) return;
        loaded = true;
        try {
          const r = await fetch(info.href, { headers: { Accept: "application/geo+json" } });
          if (!r.ok) return;
          const colour = KIND_STYLE[info.kind] || "#333";
          group.addLayer(L.geoJSON(await r.json(), { style: { color: colour, weight: 1, fillOpacity: 0.25 },
            pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3, color: colour, weight: 1, fillOpacity: 0.6 }) }));
        } catch (_) { /* the switch stays, empty */ }
      });
      overlays[`${tr("layers")} : ${info.name} (${info.licence})`] = group;
    }
    L.control.layers(null, overlays, { collapsed: false }).addTo(map);
    if (bounds && bounds.isValid()) map.fitBounds(bounds.pad(0.05));
    else map.setView([48.12, -1.21], 13);
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
    new MutationObserver(townChanged).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
    new MutationObserver(() => { if (state.town) render(); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
    townChanged();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
