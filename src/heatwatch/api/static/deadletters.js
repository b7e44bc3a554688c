// Dead letters on the dashboard, for a technician holding the admin token: what ingest could not store,
// counted per reason and per device (/v1/admin/deadletters/summary), with a replay button per device
// (/v1/admin/deadletters/replay) once its cause is fixed (a device profile added, a registry entry corrected).
// Self-contained like insights.js: it adds its own card to <main>. The token stays in this tab's
// sessionStorage and is only ever sent to this server's admin endpoints.
"use strict";

(function () {
  const TEXT = {
    fr: {
      title: "Messages rejetés", token: "Jeton d'administration", show: "Afficher", forget: "Oublier le jeton",
      hint: "Réservé aux techniciens : les messages que l'ingestion n'a pas pu enregistrer, par motif et par capteur.",
      denied: "Jeton refusé.", error: "Impossible de lire les messages rejetés", none: "Aucun message rejeté.",
      total: "messages rejetés", devices: "appareils", device: "Appareil", network: "Réseau", where: "Commune / application",
      count: "Nombre", reasons: "Motifs", last: "Dernier", detail: "Détail", replay: "Rejouer", replayed: "rejoués",
      refresh: "Actualiser",
    },
    en: {
      title: "Rejected messages", token: "Admin token", show: "Show", forget: "Forget the token",
      hint: "For technicians: the messages ingest could not store, per reason and per device.",
      denied: "Token refused.", error: "Cannot read the rejected messages", none: "No rejected message.",
      total: "rejected messages", devices: "devices", device: "Device", network: "Network", where: "Town / application",
      count: "Count", reasons: "Reasons", last: "Latest", detail: "Detail", replay: "Replay", replayed: "replayed",
      refresh: "Refresh",
    },
  };
  const KEY = "heatwatch.adminToken";
  const lang = () => (document.documentElement.lang === "en" ? "en" : "fr");
  const tr = (k) => TEXT[lang()][k] || TEXT.fr[k] || k;
  const state = { summary: null, message: "", busy: false };

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

  const token = () => sessionStorage.getItem(KEY) || "";

  async function call(path, init) {
    const r = await fetch(path, { ...init, headers: { ...(init && init.headers), Authorization: `Bearer ${token()}` } });
    if (r.status === 401 || r.status === 403) {
      sessionStorage.removeItem(KEY);
      state.summary = null;
      throw new Error(tr("denied"));
    }
    if (!r.ok) throw new Error(`${tr("error")} (HTTP ${r.status})`);
    return r.json();
  }

  async function load() {
    if (!token()) return render();
    try {
      state.summary = await call("/v1/admin/deadletters/summary?limit=50");
      state.message = "";
    } catch (e) {
      state.message = e.message;
    }
    render();
  }

  async function replay(device) {
    state.busy = true;
    render();
    try {
      const body = await call("/v1/admin/deadletters/replay", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ device }),
      });
      state.message = `${device} : ${body.replayed.length} ${tr("replayed")}`;
    } catch (e) {
      state.message = e.message;
    }
    state.busy = false;
    // The ingester decodes the replayed messages again; what fails again comes back here.
    setTimeout(load, 1500);
    render();
  }

  function tokenForm() {
    const input = el("input", { id: "dl-token", type: "password", autocomplete: "off" });
    return el("form", {
      class: "dl-token", onsubmit: (ev) => {
        ev.preventDefault();
        if (input.value) sessionStorage.setItem(KEY, input.value.trim());
        load();
      },
    }, el("label", { for: "dl-token", text: tr("token") }), input, el("button", { type: "submit", text: tr("show") }));
  }

  function table(s) {
    const rows = s.by_device.map((d) => el("tr", {},
      el("td", {}, el("code", { text: d.device })),
      el("td", { text: d.network }),
      el("td", { text: d.town || d.application || "—" }),
      el("td", { class: "num", text: String(d.count) }),
      el("td", { text: Object.entries(d.reasons).map(([r, n]) => `${r} (${n})`).join(", ") }),
      el("td", { text: new Date(d.last_received).toLocaleString(lang() === "en" ? "en-GB" : "fr-FR") }),
      el("td", { class: "dl-detail", text: d.last_detail }),
      el("td", {}, d.network === "influx" ? null : el("button", {
        type: "button", "data-device": d.device, onclick: () => replay(d.device),
        ...(state.busy ? { disabled: "disabled" } : {}), text: tr("replay"),
      })),
    ));
    return el("div", { class: "table-wrap" }, el("table", { id: "deadletters-table" },
      el("thead", {}, el("tr", {}, ...["device", "network", "where", "count", "reasons", "last", "detail", "replay"]
        .map((k) => el("th", { scope: "col", text: tr(k) })))),
      el("tbody", {}, ...rows)));
  }

  function render() {
    let card = document.getElementById("deadletters");
    if (!card) {
      card = el("section", { id: "deadletters", class: "card deadletters-card", "aria-labelledby": "deadletters-title" });
      document.querySelector("main").append(card);
    }
    card.replaceChildren();
    card.append(el("h2", { id: "deadletters-title", text: tr("title") }), el("p", { class: "note", text: tr("hint") }));
    if (!token()) {
      card.append(tokenForm());
    } else if (state.summary) {
      const s = state.summary;
      card.append(el("p", { id: "deadletters-totals" },
        el("strong", { text: String(s.total) }), ` ${tr("total")} · ${s.devices} ${tr("devices")} `,
        ...Object.entries(s.by_reason).map(([r, n]) => el("span", { class: "dl-reason", "data-reason": r, text: `${r} ${n}` }))));
      card.append(s.total ? table(s) : el("p", { class: "note", text: tr("none") }));
      card.append(el("p", {},
        el("button", { type: "button", onclick: load, text: tr("refresh") }), " ",
        el("button", { type: "button", onclick: () => { sessionStorage.removeItem(KEY); state.summary = null; render(); }, text: tr("forget") })));
    }
    if (state.message) card.append(el("p", { class: "note", role: "status", text: state.message }));
  }

  // Re-render in the other language when the page's language toggles.
  new MutationObserver(render).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
