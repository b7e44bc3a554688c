// heatwatch dashboard: plain JavaScript on top of the public /v1 API and the /v1/live event stream.
// Leaflet (map) and uPlot (charts) come from npm at install time and are served under /vendor; the
// page still works without them (list, alerts) and without internet (no tiles: plain background).
"use strict";

(function () {
  const I18N = window.HW_I18N;
  // Thresholds and QC flags come from the server (/dashboard/config.json): the alert thresholds of
  // analytics and the api's "offline" age, so the page marks exactly what raises alerts.
  const qcBits = () => Object.values(state.config.qc_flags || {});
  // Information-only flags (a sparse month) do not make a value bad (docs/science/qc.md).
  const qcInfo = () => state.config.qc_info_flags || 0;
  const staleMs = () => (state.config.thresholds ? state.config.thresholds.stale_after_s * 1000 : Infinity);
  // The battery alert's own thresholds: volts where the device reports volts, else its percent of charge.
  const lowBattery = (v, pct) => !!state.config.thresholds && (v !== null ? v < state.config.thresholds.battery_v
    : pct !== null && pct !== undefined && pct < state.config.thresholds.battery_pct);
  const T_SCALE = { min: 10, max: 40, step: 5 };
  const UHI_SCALE = { min: -2, max: 6, step: 1 };

  const state = {
    lang: "fr",
    mode: "temperature",
    config: { vendor: {}, tiles_url: null, thresholds: null, qc_flags: {} },
    towns: [],
    town: null, // the town object of /v1/towns
    sensors: new Map(), // id -> {id, name, lat, lon, reference, status, latest:{ts, temperature, humidity, battery_v}, qc, uhiHourly}
    alerts: [], // newest first
    closedAlerts: new Map(), // "sensor|kind" -> when its last alert closed (ms): late copies of it stay out
    selected: null,
    source: null,
    map: null,
    layer: null,
    markers: new Map(),
    dayChart: null,
    dayData: null,
    monthChart: null,
    loadSeq: 0,
    liveState: "connecting",
  };

  // Helpers -------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function t(key, vars) {
    let s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.fr[key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll("{" + k + "}", String(v));
    return s;
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  async function getJSON(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" } });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error.message || msg; } catch (_) { /* not our JSON error */ }
      const err = new Error(msg);
      err.status = r.status;
      throw err;
    }
    return r.json();
  }

  const fmt1 = (v) => (v === null || v === undefined || Number.isNaN(v) ? "—" : v.toLocaleString(state.lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 }));
  const isoAgo = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

  function ago(ms) {
    if (!ms) return t("never");
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 10) return t("just_now");
    if (s < 90) return t("ago_s", { n: s });
    if (s < 90 * 60) return t("ago_min", { n: Math.round(s / 60) });
    if (s < 36 * 3600) return t("ago_h", { n: Math.round(s / 3600) });
    return t("ago_d", { n: Math.round(s / 86400) });
  }

  function localTime(ms) {
    return new Date(ms).toLocaleString(state.lang === "fr" ? "fr-FR" : "en-GB", { timeZone: state.town ? state.town.timezone : "Europe/Paris" });
  }

  // Colour scales: a blue→yellow→red ramp for temperature, a blue→white→red diverging ramp for UHI.
  // Text on a marker is black or white, whichever contrasts more with its fill.
  const T_STOPS = [[10, [49, 54, 149]], [17, [69, 117, 180]], [22, [171, 217, 233]], [26, [254, 224, 144]], [30, [253, 174, 97]], [34, [244, 109, 67]], [38, [165, 0, 38]]];
  const UHI_STOPS = [[-2, [33, 102, 172]], [0, [247, 247, 247]], [2, [253, 219, 199]], [4, [239, 138, 98]], [6, [178, 24, 43]]];

  function ramp(stops, v) {
    if (v <= stops[0][0]) return stops[0][1];
    for (let i = 1; i < stops.length; i++) {
      const [x1, c1] = stops[i];
      const [x0, c0] = stops[i - 1];
      if (v <= x1) {
        const f = (v - x0) / (x1 - x0);
        return c0.map((c, j) => Math.round(c + f * (c1[j] - c)));
      }
    }
    return stops[stops.length - 1][1];
  }

  function colourFor(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return { bg: "#c3cad2", fg: "#1b1f24" };
    const rgb = ramp(state.mode === "uhi" ? UHI_STOPS : T_STOPS, v);
    const lum = rgb.map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    const L = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return { bg: `rgb(${rgb.join(",")})`, fg: L > 0.179 ? "#000000" : "#ffffff" };
  }

  // Sensor values -------------------------------------------------------------------------------

  function referenceTemperature() {
    // docs/science/uhi.md: the reference is the lowest among the town's rural reference sensors; only fresh ones count.
    let best = null;
    for (const s of state.sensors.values()) {
      const l = s.latest;
      if (!s.reference || !l || l.temperature === null || Date.now() - l.ts > staleMs()) continue;
      if (best === null || l.temperature < best) best = l.temperature;
    }
    return best;
  }

  function uhiOf(s, ref) {
    const l = s.latest;
    if (ref !== null && l && l.temperature !== null && Date.now() - l.ts <= staleMs()) return Math.round((l.temperature - ref) * 10) / 10;
    return s.uhiHourly === undefined ? null : s.uhiHourly;
  }

  function valueOf(s, ref) {
    if (state.mode === "uhi") return uhiOf(s, ref);
    return s.latest ? s.latest.temperature : null;
  }

  function statusOf(s) {
    if (s.status === "retired") return "retired";
    if (!s.latest) return "no_data";
    if (Date.now() - s.latest.ts > staleMs()) return "offline";
    return s.status === "unregistered" ? "unregistered" : "ok";
  }

  function qcText(qc) {
    if (qc === null || qc === undefined) return { text: t("qc_none"), cls: "" };
    if (qc === 0) return { text: t("qc_ok"), cls: "qc-ok" };
    return { text: qcBits().filter((b) => qc & b).map((b) => t("qc_" + b)).join(", "),
             cls: (qc & ~qcInfo()) === 0 ? "qc-ok" : "qc-bad" };
  }

  // Town loading ----------------------------------------------------------------------------------

  async function loadTown(townId) {
    const seq = ++state.loadSeq;
    document.body.dataset.ready = "";
    state.town = state.towns.find((x) => x.id === townId) || state.towns[0];
    state.selected = null;
    state.sensors = new Map();
    state.alerts = [];
    state.closedAlerts = new Map();
    const q = encodeURIComponent(state.town.id);
    try {
      const body = await getJSON(`/v1/sensors?town=${q}`);
      if (seq !== state.loadSeq) return;
      for (const it of body.data) {
        const l = it.latest;
        state.sensors.set(it.id, {
          id: it.id,
          name: it.name || it.id,
          lat: it.latitude,
          lon: it.longitude,
          reference: Boolean(it.reference) || it.site_class === "rural_reference" || (state.town.reference_sensors || []).includes(it.id),
          status: it.status,
          // official (the town's), provisional or confirmed (a resident's or crowd sensor): shown on the marker
          trust: it.trust || "official",
          latest: l ? { ts: Date.parse(l.time), temperature: l.temperature, humidity: l.humidity, battery_v: l.battery_v, battery_pct: l.battery_pct ?? null } : null,
          qc: undefined,
          uhiHourly: undefined,
        });
      }
    } catch (e) {
      showError(e);
    }
    if (seq !== state.loadSeq) return;
    buildMap();
    renderAll();
    connectLive();
    await Promise.allSettled([loadAlerts(seq), loadHourly(seq), loadMonth(seq)]);
    if (seq !== state.loadSeq) return;
    const first = [...state.sensors.values()].find((s) => !s.reference && s.latest) || [...state.sensors.values()][0];
    if (first && !state.selected) await selectSensor(first.id, false);
    renderAll();
    document.body.dataset.ready = state.town.id;
  }

  async function loadAlerts(seq) {
    try {
      const body = await getJSON(`/v1/alerts?town=${encodeURIComponent(state.town.id)}&status=open`);
      if (seq !== state.loadSeq) return;
      for (const a of body.data) addAlert({ ...a, ts: Date.parse(a.time) }, false);
      $("alerts-empty").textContent = t("no_alerts");
    } catch (e) {
      $("alerts-empty").textContent = t("alerts_unavailable");
    }
    renderAlerts();
  }

  async function loadHourly(seq) {
    // The newest hourly aggregate of each sensor gives its QC flags and its computed UHI.
    const from = isoAgo(Date.now() - 3 * 3600 * 1000);
    try {
      const body = await getJSON(`/v1/hourly?town=${encodeURIComponent(state.town.id)}&from=${encodeURIComponent(from)}&limit=5000`);
      if (seq !== state.loadSeq) return;
      for (const row of body.data) {
        const s = state.sensors.get(row.sensor);
        if (!s) continue;
        s.qc = row.qc;
        s.uhiHourly = row.uhi;
      }
    } catch (_) { /* analytics not running yet: QC shows "not computed" */ }
  }

  const alertCondition = (a) => [a.sensor || "", a.kind || ""].join("|"); // a town-level alert has no sensor
  const msOf = (v) => (typeof v === "number" ? v : typeof v === "string" ? Date.parse(v) : NaN);

  // An alert event of the stream or an open alert of the REST API; true when the list changed.
  // Analytics publishes event "open" and, when the condition ends, "close" for the same sensor and kind.
  function addAlert(a, live) {
    const cond = alertCondition(a);
    if (a.event === "close") {
      const ended = msOf(a.ended);
      const at = Number.isNaN(ended) ? a.ts : ended;
      state.closedAlerts.set(cond, Math.max(state.closedAlerts.get(cond) ?? -Infinity, at));
      const before = state.alerts.length;
      state.alerts = state.alerts.filter((x) => x.cond !== cond);
      return state.alerts.length !== before;
    }
    // An open alert the page already saw closed (a REST answer overtaken by the close event) stays out.
    const started = msOf(a.started);
    if ((Number.isNaN(started) ? a.ts : started) <= (state.closedAlerts.get(cond) ?? -Infinity)) return false;
    const key = [cond, a.ts].join("|");
    if (state.alerts.some((x) => x.key === key)) return false;
    state.alerts.unshift({ ...a, key, cond, live });
    state.alerts.sort((x, y) => y.ts - x.ts);
    if (state.alerts.length > 200) state.alerts.length = 200;
    return true;
  }

  // Live stream -------------------------------------------------------------------------------------

  function setLive(st) {
    state.liveState = st;
    const box = $("live");
    box.dataset.state = st;
    const key = { open: "live_open", error: "live_error", "broker-down": "live_broker_down", connecting: "live_connecting", unavailable: "live_unavailable" }[st];
    $("live-text").textContent = t(key);
  }

  function connectLive() {
    if (state.source) state.source.close();
    if (!window.EventSource) { setLive("unavailable"); return; }
    setLive("connecting");
    // last_event_id=0: on first connection, replay the alerts the server buffered; the browser then
    // resumes with Last-Event-ID by itself and misses none.
    state.lastAlertAtConnect = null;
    const src = new EventSource(`/v1/live?town=${encodeURIComponent(state.town.id)}&last_event_id=0`);
    state.source = src;
    src.addEventListener("hello", (ev) => {
      const d = JSON.parse(ev.data);
      // Alerts up to this id are a replay of what the server buffered, not news.
      if (state.lastAlertAtConnect === null) state.lastAlertAtConnect = d.last_alert_id; // first hello only: after a reconnection, replayed alerts are news
      setLive(d.mqtt_connected ? "open" : "broker-down");
    });
    src.addEventListener("status", (ev) => setLive(JSON.parse(ev.data).mqtt_connected ? "open" : "broker-down"));
    src.addEventListener("reading", (ev) => onReading(JSON.parse(ev.data)));
    src.addEventListener("alert", (ev) => {
      const a = JSON.parse(ev.data);
      if (addAlert(a, a.id > (state.lastAlertAtConnect ?? Infinity))) renderAlerts();
    });
    src.addEventListener("gap", () => loadAlerts(state.loadSeq));
    src.onerror = () => { if (src.readyState !== EventSource.CLOSED) setLive("error"); else setLive("unavailable"); };
  }

  function onReading(r) {
    if (!state.town || r.town !== state.town.id) return;
    let s = state.sensors.get(r.sensor);
    if (!s) {
      // Heard live before the registry or the database knew it: listed, not on the map (no position).
      s = { id: r.sensor, name: r.sensor, lat: null, lon: null, reference: false, status: "unregistered", latest: null };
      state.sensors.set(r.sensor, s);
    }
    if (s.latest && s.latest.ts > r.ts) return;
    s.latest = { ts: r.ts, temperature: r.temperature, humidity: r.humidity, battery_v: r.battery_v ?? (s.latest ? s.latest.battery_v : null),
                 battery_pct: r.battery_pct ?? (s.latest ? s.latest.battery_pct : null) };
    if (s.status === "no_data" || s.status === "offline") s.status = "ok";
    if (s.reference || state.mode === "uhi") renderMarkers();
    else { renderMarker(s, true); if (state.cluster) state.cluster.refreshClusters(state.markers.get(s.id)); }
    renderTable();
    appendDayPoint(s, r);
  }

  // Map -------------------------------------------------------------------------------------------------

  function buildMap() {
    const box = $("map");
    if (!window.L) {
      box.hidden = true;
      $("map-note").hidden = false;
      $("map-note").textContent = t("map_missing");
      return;
    }
    if (!state.map) {
      // maxZoom on the map itself: without tiles (offline) the cluster plugin needs it to know when to spiderfy.
      state.map = L.map(box, { zoomControl: true, keyboard: true, attributionControl: true, maxZoom: 19 });
      L.control.scale({ metric: true, imperial: false }).addTo(state.map);
      state.offline = !state.config.tiles_url;
      if (state.config.tiles_url) {
        // Offline (no internet, tile server down): after a few failures with no success, drop the
        // tiles and say so, rather than retrying every tile on every pan.
        const tiles = L.tileLayer(state.config.tiles_url, { maxZoom: 19, attribution: state.config.tiles_attribution });
        let ok = 0, failed = 0;
        tiles.on("tileload", () => { ok++; state.offline = false; $("map-note").hidden = true; });
        tiles.on("tileerror", () => {
          if (++failed >= 4 && ok === 0 && state.map.hasLayer(tiles)) {
            tiles.remove();
            state.offline = true;
            showMapNote();
          }
        });
        tiles.addTo(state.map);
      }
      showMapNote();
    }
    if (state.layer) state.layer.remove();
    if (state.cluster) state.cluster.remove();
    state.layer = L.layerGroup().addTo(state.map);
    // Sites a few metres apart (a square, both ends of a street) would hide each other: nearby markers are grouped
    // into a cluster showing how many and the hottest value; a click zooms in, or fans them out ("spiderfy") when
    // zooming cannot part them. Leaflet.markercluster, from npm like Leaflet; without it, plain markers.
    state.cluster = L.markerClusterGroup ? L.markerClusterGroup({
      maxClusterRadius: 30, showCoverageOnHover: false, spiderfyOnMaxZoom: true, zoomToBoundsOnClick: true,
      spiderLegPolylineOptions: { weight: 1.5, color: "#33404d", opacity: 0.6 }, iconCreateFunction: clusterIcon,
    }).addTo(state.map) : null;
    state.markers = new Map();
    const pts = [...state.sensors.values()].filter((s) => s.lat !== null && s.lon !== null && s.lat !== undefined);
    // The view first: Leaflet only creates marker elements once the map has one.
    const bounds = pts.length ? L.latLngBounds(pts.map((s) => [s.lat, s.lon])) : L.latLng(state.town.latitude, state.town.longitude).toBounds(3000);
    state.map.fitBounds(bounds.pad(0.15));
    // The town outline we have offline: the instrumented area (convex hull of the sensors) and the town centre.
    const hull = convexHull(pts.map((s) => [s.lat, s.lon]));
    if (hull.length >= 3) {
      L.polygon(hull, { color: "#33404d", weight: 2, dashArray: "6 4", fill: true, fillColor: "#ffffff", fillOpacity: 0.55, interactive: false })
        .bindTooltip(t("area")).addTo(state.layer);
    }
    L.marker([state.town.latitude, state.town.longitude], {
      icon: L.divIcon({ className: "town-label", html: el("span", { text: state.town.name }), iconSize: null }),
      interactive: false, keyboard: false,
    }).addTo(state.layer);
    for (const s of pts) {
      const m = L.marker([s.lat, s.lon], { icon: markerIcon(s, null), keyboard: true, title: s.id + " — " + s.name, riseOnHover: true, sensor: s.id });
      // Leaflet turns Enter on a focused marker into a click: keyboard users select sensors the same way.
      m.on("click", () => selectSensor(s.id, true));
      m.addTo(state.cluster || state.layer);
      state.markers.set(s.id, m);
    }
    if (state.cluster) state.cluster.on("animationend spiderfied unspiderfied", () => renderMarkers());
    setTimeout(() => state.map.invalidateSize(), 0);
  }

  function showMapNote() {
    $("map-note").hidden = !state.offline;
    $("map-note").textContent = t("map_offline");
  }

  function convexHull(points) {
    // Andrew's monotone chain on (lat, lon): fine at town scale.
    const p = points.slice().sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    if (p.length < 3) return p;
    const cross = (o, a, b) => (a[1] - o[1]) * (b[0] - o[0]) - (a[0] - o[0]) * (b[1] - o[1]);
    const lower = [];
    for (const q of p) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop(); lower.push(q); }
    const upper = [];
    for (const q of p.slice().reverse()) { while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop(); upper.push(q); }
    return lower.slice(0, -1).concat(upper.slice(0, -1));
  }

  function markerIcon(s, ref) {
    const v = valueOf(s, ref === null ? referenceTemperature() : ref);
    const c = colourFor(v);
    const classes = ["v"];
    if (s.reference) classes.push("ref");
    if (s.trust && s.trust !== "official") classes.push("citizen", s.trust);
    if (statusOf(s) !== "ok") classes.push("stale");
    if (state.selected === s.id) classes.push("selected");
    const span = el("span", {
      class: classes.join(" "), "data-sensor": s.id, "data-value": v === null ? "" : String(v),
      "data-trust": s.trust || "official",
      style: `background:${c.bg};color:${c.fg}`, text: v === null ? "—" : fmt1(v),
    });
    return L.divIcon({ className: "hw-marker", html: span, iconSize: null });
  }

  // A cluster: how many sensors, coloured by the hottest of them (in the map's mode), named for screen readers.
  function clusterIcon(cluster) {
    const ref = referenceTemperature();
    const values = cluster.getAllChildMarkers().map((m) => m.options.sensor).filter(Boolean)
      .map((id) => valueOf(state.sensors.get(id), ref)).filter((v) => v !== null && v !== undefined);
    const top = values.length ? Math.max(...values) : null;
    const c = colourFor(top);
    const n = cluster.getChildCount();
    const label = t("cluster_label", { n, v: top === null ? t("no_value") : fmt1(top) + " °C" });
    const span = el("span", { class: "cl", style: `background:${c.bg};color:${c.fg}`, "data-count": String(n),
                              "data-value": top === null ? "" : String(top), title: label },
      el("strong", { text: String(n) }), el("span", { class: "sr-only", text: " " + label }));
    return L.divIcon({ className: "hw-cluster", html: span, iconSize: L.point(40, 40) });
  }

  function markerLabel(s, ref) {
    const v = valueOf(s, ref);
    const what = state.mode === "uhi" ? t("mode_uhi") : t("mode_t");
    const trust = s.trust && s.trust !== "official" ? " (" + t("trust_" + s.trust) + ")" : "";
    return `${s.id} ${s.name}${s.reference ? " (" + t("reference") + ")" : ""}${trust} : ${what} ${v === null ? t("no_value") : fmt1(v) + " °C"}, ${t("status_" + statusOf(s))}`;
  }

  function renderMarker(s, flash, ref) {
    const m = state.markers.get(s.id);
    if (!m) return;
    const r = ref === undefined ? referenceTemperature() : ref;
    m.setIcon(markerIcon(s, r));
    const e = m.getElement();
    if (e) {
      e.setAttribute("aria-label", markerLabel(s, r));
      e.setAttribute("role", "button");
      if (flash) {
        const span = e.querySelector("span");
        if (span) span.classList.add("flash");
      }
    }
  }

  function renderMarkers() {
    const ref = referenceTemperature();
    for (const s of state.sensors.values()) renderMarker(s, false, ref);
    if (state.cluster) state.cluster.refreshClusters();
  }

  // Every marker of the map: its value, and whether it is drawn on its own or inside a cluster (tests, debugging).
  function markerStates() {
    const out = {};
    for (const [id, m] of state.markers) {
      const parent = state.cluster ? state.cluster.getVisibleParent(m) : m;
      out[id] = { value: m.options.icon.options.html.dataset.value, trust: m.options.icon.options.html.dataset.trust,
                  cluster: parent && parent !== m && parent.getChildCount ? parent.getChildCount() : null };
    }
    return out;
  }

  function renderLegend() {
    const sc = state.mode === "uhi" ? UHI_SCALE : T_SCALE;
    $("legend-title").textContent = t(state.mode === "uhi" ? "legend_uhi" : "legend_t");
    $("legend-help").textContent = t(state.mode === "uhi" ? "legend_help_uhi" : "legend_help_t");
    const ul = $("legend-scale");
    ul.replaceChildren();
    for (let v = sc.min; v <= sc.max; v += sc.step) {
      const c = colourFor(v);
      ul.append(el("li", {}, el("span", { class: "sw", style: `background:${c.bg}`, "aria-hidden": "true" }), el("span", { text: (v > 0 && state.mode === "uhi" ? "+" : "") + v + " °C" })));
    }
  }

  // Table and alerts -------------------------------------------------------------------------------------

  function renderTable() {
    const tbody = $("sensors").querySelector("tbody");
    const ref = referenceTemperature();
    const rows = [...state.sensors.values()].sort((a, b) => (valueOf(b, ref) ?? -99) - (valueOf(a, ref) ?? -99) || a.id.localeCompare(b.id));
    tbody.replaceChildren(...rows.map((s) => {
      const l = s.latest;
      const st = statusOf(s);
      const qc = qcText(s.qc);
      const batt = l && l.battery_v !== null && l.battery_v !== undefined ? l.battery_v : null;
      return el("tr", { class: state.selected === s.id ? "selected" : null, "data-sensor": s.id },
        // The id is what is printed on the device; the site name, often long, is shortened by CSS.
        el("td", { class: "sensor" }, el("button", { type: "button", class: "pick", "aria-label": t("select_sensor", { name: s.id + " " + s.name }), onclick: () => selectSensor(s.id, true), text: s.id }),
          s.reference ? el("span", { class: "tag", text: t("reference") }) : null,
          s.name !== s.id ? el("span", { class: "site", title: s.name, text: s.name }) : null),
        el("td", { class: "num", text: fmt1(l ? l.temperature : null) }),
        el("td", { class: "num", text: fmt1(uhiOf(s, ref)) }),
        el("td", { title: l ? localTime(l.ts) : "", text: ago(l ? l.ts : null) }),
        // Devices that report charge in percent (Milesight, SenseCAP) show it as such: no volts to compare.
        el("td", { class: "num" + (lowBattery(batt, l ? l.battery_pct : null) ? " low-batt" : ""), text: batt !== null ? batt.toFixed(2) + " V"
          : l && l.battery_pct !== null && l.battery_pct !== undefined ? Math.round(l.battery_pct) + " %" : "—" }),
        el("td", { class: "st st-" + st, text: t("status_" + st) }),
        el("td", { class: qc.cls, text: qc.text }));
    }));
  }

  // "28 h", "45 min", "3 j": how long, in words a technician reads at a glance.
  function duration(minutes) {
    if (minutes < 90) return t("dur_min", { n: Math.max(1, Math.round(minutes)) });
    if (minutes < 10 * 60 && Math.round(minutes) % 60 !== 0) {
      const m = Math.round(minutes);
      return t("dur_hm", { h: Math.floor(m / 60), m: String(m % 60).padStart(2, "0") });
    }
    if (minutes < 48 * 60) return t("dur_h", { n: Math.round(minutes / 60) });
    return t("dur_d", { n: Math.round(minutes / 1440) });
  }

  const num = (v, digits) => v.toLocaleString(state.lang, { maximumFractionDigits: digits, minimumFractionDigits: 0 });

  // What an alert says, in the page's language, from its kind, value and threshold (analytics' own message is
  // English and technical: it stays in the logs and on MQTT). The rules are in docs/alerts.md.
  function alertText(a) {
    const v = typeof a.value === "number" ? a.value : null;
    const thr = typeof a.threshold === "number" ? a.threshold : null;
    if (v === null) return a.message || "";
    switch (a.kind) {
      case "offline": return t(a.sensor ? "al_offline" : "al_offline_town", { d: duration(v) });
      case "battery": return thr !== null && thr > 5 ? t("al_battery_pct", { v: num(v, 0), thr: num(thr, 0) })
        : t("al_battery_v", { v: num(v, 2), thr: num(thr ?? 0, 2) });
      case "temperature": return t("al_temperature", { v: fmt1(v), thr: num(thr ?? 0, 1) });
      case "heat_index": return t("al_heat_index", { v: fmt1(v), thr: num(thr ?? 0, 1) });
      case "uhi_night": return t("al_uhi_night", { v: fmt1(v), thr: num(thr ?? 0, 1) });
      case "canicule": return t("al_canicule", { v: fmt1(v), thr: num(thr ?? 0, 1) });
      case "qc": {
        // The flags analytics names ("PERSISTENCE|DRIFT"), in words.
        const m = /\(([A-Z_|]+)\)/.exec(a.message || "");
        const flags = m ? m[1].split("|").map((name) => state.config.qc_flags && state.config.qc_flags[name])
          .filter(Boolean).map((bit) => t("qc_" + bit)).join(", ") : "";
        return t("al_qc", { d: duration(v * 60) }) + (flags ? " : " + flags : "");
      }
      default: return a.message || "";
    }
  }

  function renderAlerts() {
    const ul = $("alerts");
    ul.replaceChildren(...state.alerts.map((a) => {
      const s = state.sensors.get(a.sensor);
      const kindName = I18N[state.lang]["kind_" + a.kind] || I18N.fr["kind_" + a.kind] || a.kind || "alert";
      const started = msOf(a.started); // acks.js acknowledges the alert by town, sensor, kind and start
      return el("li", { "data-alert-id": a.id ?? "", "data-kind": a.kind ?? "", "data-sensor": a.sensor || "",
        "data-town": state.town.id, "data-started": Number.isNaN(started) ? "" : String(started) },
        el("div", {}, el("span", { class: "kind", text: kindName }), " — ", el("span", { text: a.sensor || state.town.name }), s && s.name !== s.id ? el("span", { class: "site", text: " " + s.name }) : null,
          a.live ? el("span", { class: "new", text: t("alert_new") }) : null),
        el("div", { class: "what", title: a.message || "", text: alertText(a) }),
        el("div", { class: "when", title: localTime(a.ts), text: ago(a.ts) }));
    }));
    $("alerts-count").textContent = String(state.alerts.length);
    $("alerts-count").dataset.n = String(state.alerts.length);
    $("alerts-empty").hidden = state.alerts.length > 0;
  }

  function renderAll() {
    renderLegend();
    renderMarkers();
    renderTable();
    renderAlerts();
  }

  // Charts -----------------------------------------------------------------------------------------------

  function chartWidth(id) {
    return Math.max(260, $(id).clientWidth || 600);
  }

  async function readings24h(sensor) {
    const from = encodeURIComponent(isoAgo(Date.now() - 24 * 3600 * 1000));
    const body = await getJSON(`/v1/readings?town=${encodeURIComponent(state.town.id)}&sensor=${encodeURIComponent(sensor)}&from=${from}&limit=10000`);
    return body.data.filter((r) => r.temperature !== null).map((r) => [Date.parse(r.time) / 1000, r.temperature]);
  }

  function referenceSensor() {
    const refs = [...state.sensors.values()].filter((s) => s.reference);
    refs.sort((a, b) => (a.latest ? a.latest.temperature : 99) - (b.latest ? b.latest.temperature : 99));
    return refs[0] || null;
  }

  function mergeSeries(a, b) {
    // uPlot wants one x array: union of both series' times, nulls where a series has no point.
    const xs = [...new Set([...a.map((p) => p[0]), ...b.map((p) => p[0])])].sort((x, y) => x - y);
    const ma = new Map(a), mb = new Map(b);
    return [xs, xs.map((x) => ma.get(x) ?? null), xs.map((x) => mb.get(x) ?? null)];
  }

  async function selectSensor(id, focusChart) {
    state.selected = id;
    renderMarkers();
    renderTable();
    const s = state.sensors.get(id);
    $("day-sensor").textContent = s ? (s.name !== s.id ? `${s.id} (${s.name})` : s.id) : "—";
    const ref = referenceSensor();
    const seq = state.loadSeq;
    let own = [], refs = [];
    try {
      [own, refs] = await Promise.all([readings24h(id), ref && ref.id !== id ? readings24h(ref.id) : Promise.resolve([])]);
    } catch (e) {
      $("day-desc").textContent = t("load_error", { msg: e.message });
      return;
    }
    if (seq !== state.loadSeq || state.selected !== id) return;
    state.dayData = { sensor: id, ref: ref && ref.id !== id ? ref.id : null, own, refs };
    drawDay();
    if (focusChart && window.matchMedia("(max-width: 900px)").matches) $("day-title").scrollIntoView({ behavior: "smooth" });
  }

  function drawDay() {
    const d = state.dayData;
    const box = $("chart-day");
    if (!d) { $("day-desc").textContent = t("day_pick"); return; }
    const s = state.sensors.get(d.sensor);
    const ref = d.ref ? state.sensors.get(d.ref) : null;
    $("day-desc").textContent = d.own.length === 0 ? t("day_empty")
      : ref ? t("day_desc", { name: d.sensor, ref: ref.id }) : t("day_no_ref", { name: d.sensor });
    if (!window.uPlot) { box.textContent = t("chart_missing"); return; }
    if (state.dayChart) { state.dayChart.destroy(); state.dayChart = null; }
    box.replaceChildren();
    const data = mergeSeries(d.own, d.refs);
    state.dayChart = new uPlot({
      width: chartWidth("chart-day"), height: 240,
      ...timeOpts(false),
      series: [{ label: t("s_time"), value: (u, v) => (v === null ? "—" : fmtTime(v, false)) }, { label: d.sensor, stroke: "#c0392b", width: 2, spanGaps: true, value: (u, v) => (v === null ? "—" : fmt1(v) + " °C") },
        { label: ref ? ref.id + " (" + t("s_reference") + ")" : t("s_reference"), stroke: "#1f5fa8", width: 2, spanGaps: true, value: (u, v) => (v === null ? "—" : fmt1(v) + " °C") }],
      axes: [{ values: (u, splits) => splits.map((v) => fmtTime(v, false)) }, { label: "°C" }],
    }, data, box);
  }

  function appendDayPoint(s, r) {
    const d = state.dayData;
    if (!d || r.temperature === null || (s.id !== d.sensor && s.id !== d.ref)) return;
    const arr = s.id === d.sensor ? d.own : d.refs;
    const x = r.ts / 1000;
    if (arr.length && arr[arr.length - 1][0] >= x) return;
    arr.push([x, r.temperature]);
    const cut = Date.now() / 1000 - 24 * 3600;
    while (arr.length && arr[0][0] < cut) arr.shift();
    if (state.dayChart) state.dayChart.setData(mergeSeries(d.own, d.refs)); else drawDay();
  }

  // Chart times in the town's time zone and the page's language, 24 h clock.
  function fmtTime(sec, dateOnly) {
    const opts = dateOnly ? { day: "numeric", month: "short" } : { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    return new Date(sec * 1000).toLocaleString(state.lang === "fr" ? "fr-FR" : "en-GB", { timeZone: state.town.timezone, ...opts });
  }

  function timeOpts(days) {
    return { scales: { x: { time: true }, ...(days ? { uhi: { auto: true } } : {}) }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), state.town.timezone) };
  }

  // The vigilance season of Météo-France's heat-wave warnings: 1 June – 15 September (docs/science/canicule.md).
  // Its newest summer: this year's from June on, else last year's.
  function seasonYear(now) {
    return now.getMonth() >= 5 ? now.getFullYear() : now.getFullYear() - 1;
  }

  function inSeason(now) {
    const m = now.getMonth(), d = now.getDate();
    return (m >= 5 && m <= 7) || (m === 8 && d <= 15);
  }

  function periodQuery(period) {
    if (period === "season") {
      const y = state.season;
      return `from=${y}-06-01&to=${y}-09-16`; // "to" is exclusive
    }
    return `from=${new Date(Date.now() - 30 * 86400 * 1000).toISOString().slice(0, 10)}`;
  }

  function fillPeriods() {
    const sel = $("month-period");
    const keep = state.monthPeriod;
    sel.replaceChildren(el("option", { value: "30d", text: t("period_30d") }),
      el("option", { value: "season", text: t("period_season", { y: state.season }) }));
    sel.value = keep || "30d";
  }

  async function fetchIndices(period) {
    return getJSON(`/v1/indices?town=${encodeURIComponent(state.town.id)}&${periodQuery(period)}`);
  }

  // Outside the vigilance season the last 30 days say little about heat: the card opens on the last summer when
  // the town has indices for it (a technician's first look, the demo's summer), and on the last 30 days otherwise.
  async function loadMonth(seq, chosen) {
    const box = $("chart-month");
    let period = chosen || state.monthPeriod;
    let body;
    try {
      if (!period) {
        period = "30d";
        if (!inSeason(new Date())) {
          const summer = await fetchIndices("season");
          if ((summer.data || []).length) { period = "season"; body = summer; }
        }
      }
      if (!body) body = await fetchIndices(period);
    } catch (e) {
      $("month-desc").textContent = t("month_unavailable");
      return;
    }
    if (seq !== state.loadSeq) return;
    state.monthPeriod = period;
    $("month-period").value = period;
    const thr = (body.meta && body.meta.canicule_thresholds) || state.town.canicule_thresholds || {};
    const rows = body.data || [];
    state.month = { rows, thr, period };
    drawMonth();
    if (!rows.length) box.setAttribute("data-empty", "true"); else box.removeAttribute("data-empty");
  }

  // The time axis of the daily chart: at least a week wide (uPlot would stretch one or two days over years),
  // ticks on whole days in the town's time zone, labelled "12 juil.".
  const DAY_S = 86400;
  const DAY_INCRS = [DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 28 * DAY_S, 91 * DAY_S];

  // uPlot widens a single point of a time scale by 86400 / ms, which with times in seconds is a thousand days.
  function dayRange(xs) {
    let lo = Math.min(...xs) - DAY_S / 2, hi = Math.max(...xs) + DAY_S / 2;
    if (hi - lo < 7 * DAY_S) lo = hi - 7 * DAY_S;
    return { min: lo, max: hi };
  }

  function drawMonth() {
    const box = $("chart-month");
    const m = state.month;
    if (!m) return;
    const { rows, thr } = m;
    $("month-desc").textContent = rows.length ? t("month_desc", { tn: thr.ibmn, tx: thr.ibmx, source: thr.source || "" })
      : t(m.period === "season" ? "season_empty" : "month_empty");
    if (!window.uPlot) { box.textContent = t("chart_missing"); return; }
    if (state.monthChart) { state.monthChart.destroy(); state.monthChart = null; }
    box.replaceChildren();
    if (!rows.length) return;
    const xs = rows.map((r) => Date.parse(r.time) / 1000);
    const col = (k) => rows.map((r) => (typeof r[k] === "number" ? r[k] : null));
    const fmtC = (u, v) => (v === null || v === undefined ? "—" : fmt1(v) + " °C");
    const opts = timeOpts(true);
    const dayLabels = (u, splits) => {
      const labels = splits.map((v) => fmtTime(v, true));
      state.monthAxis = labels; // what the axis shows, for the tests
      return labels;
    };
    state.monthChart = new uPlot({
      width: chartWidth("chart-month"), height: 260,
      ...opts,
      // With few days, every point is drawn: a single day is a dot, not an empty chart.
      series: [{ label: t("s_date"), value: (u, v) => (v === null ? "—" : fmtTime(v, true)) },
        { label: t("s_ibmn"), stroke: "#1f5fa8", width: 2, value: fmtC },
        { label: t("s_ibmx"), stroke: "#c0392b", width: 2, value: fmtC },
        { label: t("s_thr_n"), stroke: "#1f5fa8", dash: [6, 4], width: 1, value: fmtC },
        { label: t("s_thr_x"), stroke: "#c0392b", dash: [6, 4], width: 1, value: fmtC },
        { label: t("s_uhi_mean"), stroke: "#b35806", width: 2, scale: "uhi", value: fmtC },
        { label: t("s_uhi_max"), stroke: "#542788", width: 1, scale: "uhi", value: fmtC }]
        .map((x, i) => (i === 0 ? x : { ...x, points: { show: rows.length <= 14 } })),
      axes: [{ values: dayLabels, incrs: DAY_INCRS, space: 60 }, { label: "Tn / Tx °C" }, { scale: "uhi", side: 1, label: t("mode_uhi") + " °C", grid: { show: false } }],
    }, [xs, col("ibmn"), col("ibmx"), xs.map(() => thr.ibmn ?? null), xs.map(() => thr.ibmx ?? null), col("uhi_mean"), col("uhi_max")], box);
    state.monthChart.setScale("x", dayRange(xs));
  }

  // Language, errors, start-up ----------------------------------------------------------------------

  function applyLang() {
    document.documentElement.lang = state.lang;
    for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
    for (const e of document.querySelectorAll("[data-i18n-aria]")) e.setAttribute("aria-label", t(e.dataset.i18nAria));
    const b = $("lang");
    b.textContent = t("lang_button");
    // The visible text first: what a voice-control user says is part of the name (WCAG 2.5.3).
    b.setAttribute("aria-label", t("lang_button") + ": " + t("lang_label"));
    b.setAttribute("lang", state.lang === "fr" ? "en" : "fr");
    document.title = state.lang === "fr" ? "heatwatch — îlots de chaleur en direct" : "heatwatch — live urban heat islands";
    setLive(state.liveState);
    if (state.season) fillPeriods();
    if (state.town) {
      renderAll();
      drawDay();
      drawMonth();
      if (state.map) showMapNote();
    }
  }

  function showError(e) {
    console.error("heatwatch dashboard:", e); // eslint-disable-line no-console -- surfaced to tests and users' devtools
    $("map-note").hidden = false;
    $("map-note").textContent = t("load_error", { msg: e.message });
  }

  function loadAsset(tag, attrs) {
    return new Promise((resolve) => {
      const e = el(tag, attrs);
      e.onload = () => resolve(true);
      e.onerror = () => resolve(false);
      document.head.append(e);
    });
  }

  async function loadVendors() {
    // Only what the server says is installed: a missing library degrades the page without a 404.
    const v = state.config.vendor || {};
    const jobs = [];
    if (v.leaflet) {
      // The cluster plugin extends L: it loads once Leaflet has.
      jobs.push(loadAsset("link", { rel: "stylesheet", href: "/vendor/leaflet/leaflet.css" }),
        loadAsset("script", { src: "/vendor/leaflet/leaflet.js" }).then((ok) => ok && v.markercluster && Promise.all([
          loadAsset("link", { rel: "stylesheet", href: "/vendor/markercluster/MarkerCluster.css" }),
          loadAsset("script", { src: "/vendor/markercluster/leaflet.markercluster.js" })])));
    }
    if (v.uplot) jobs.push(loadAsset("link", { rel: "stylesheet", href: "/vendor/uplot/uPlot.min.css" }), loadAsset("script", { src: "/vendor/uplot/uPlot.iife.min.js" }));
    await Promise.all(jobs);
  }

  async function start() {
    const saved = (() => { try { return localStorage.getItem("heatwatch.lang"); } catch (_) { return null; } })();
    const asked = new URLSearchParams(location.search).get("lang");
    state.lang = asked === "en" || asked === "fr" ? asked : saved === "en" ? "en" : "fr";
    applyLang();
    try { state.config = await getJSON("/dashboard/config.json"); } catch (_) { /* defaults: no vendor, no tiles */ }
    await loadVendors();
    const towns = await getJSON("/v1/towns");
    state.towns = towns.data;
    const sel = $("town");
    sel.replaceChildren(...state.towns.map((x) => el("option", { value: x.id, text: x.name })));
    const wanted = new URLSearchParams(location.search).get("town") || location.hash.slice(1);
    if (state.towns.some((x) => x.id === wanted)) sel.value = wanted;
    sel.addEventListener("change", () => {
      history.replaceState(null, "", "#" + sel.value);
      loadTown(sel.value);
    });
    state.season = seasonYear(new Date());
    fillPeriods();
    $("month-period").addEventListener("change", (ev) => loadMonth(state.loadSeq, ev.target.value));
    $("lang").addEventListener("click", () => {
      state.lang = state.lang === "fr" ? "en" : "fr";
      try { localStorage.setItem("heatwatch.lang", state.lang); } catch (_) { /* private mode */ }
      applyLang();
    });
    for (const r of document.querySelectorAll("input[name=mode]")) {
      r.addEventListener("change", () => { state.mode = r.value; renderAll(); });
    }
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.dayChart) state.dayChart.setSize({ width: chartWidth("chart-day"), height: 240 });
        if (state.monthChart) state.monthChart.setSize({ width: chartWidth("chart-month"), height: 260 });
      }, 150);
    });
    // "Seen … ago" must age even when nothing arrives, and REST-only facts (QC, alerts) refresh slowly.
    setInterval(() => { if (state.town) { renderTable(); renderAlerts(); } }, 15000);
    setInterval(() => { if (state.town) { loadHourly(state.loadSeq).then(renderTable); } }, 300000);
    await loadTown(sel.value || state.towns[0].id);
  }

  window.heatwatch = { state, markers: markerStates };
  start().catch(showError);
})();
