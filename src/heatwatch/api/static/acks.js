// Acknowledging alerts from the dashboard, for a technician holding the admin token (entered in the
// "Messages rejetés" card; it stays in this tab's sessionStorage): each open alert gets an "Acquitter"
// button, and an acknowledged one says who took it in hand and when. An acknowledgement stops the reminders
// analytics sends (docs/alerts.md). Self-contained like deadletters.js: it decorates the items dashboard.js
// renders in #alerts (each carries data-town, data-sensor, data-kind and data-started). Below the list, the
// notifications every attempt of which failed (e-mails, webhooks: the dead letters of /v1/notifications/deliveries),
// each with its error and a button to send it again. Without the token, nothing changes on the page.
"use strict";

(function () {
  const TEXT = {
    fr: { ack: "Acquitter", acked: "Acquittée par {by}, {at}", who: "Votre nom (il sera montré aux collègues) :",
      gone: "Cette alerte n'est plus en cours.", failed: "Acquittement impossible", label: "Acquitter l'alerte {what}",
      dead: "Notifications en échec", resend: "Renvoyer", queued: "renvoi demandé" },
    en: { ack: "Acknowledge", acked: "Acknowledged by {by}, {at}", who: "Your name (shown to colleagues):",
      gone: "This alert is no longer open.", failed: "Cannot acknowledge", label: "Acknowledge the alert {what}",
      dead: "Failed notifications", resend: "Send again", queued: "queued again" },
  };
  const TOKEN = "heatwatch.adminToken";
  const NAME = "heatwatch.technician";
  const lang = () => (document.documentElement.lang === "en" ? "en" : "fr");
  const tr = (k, vars) => (TEXT[lang()][k] || TEXT.fr[k]).replace(/\{(\w+)\}/g, (_, v) => (vars && vars[v]) ?? "");
  const token = () => sessionStorage.getItem(TOKEN) || "";
  const acks = new Map(); // "town|sensor|kind|started" -> {by, at}
  let loadedTown = null;
  let loadedAt = 0;
  let busy = false;

  const keyOf = (town, sensor, kind, started) => [town, sensor || "", kind, started].join("|");

  async function call(path, init) {
    const r = await fetch(path, { ...init, headers: { ...(init && init.headers), Accept: "application/json",
      Authorization: `Bearer ${token()}` } });
    let body = null;
    try { body = await r.json(); } catch (_) { /* 204 or not JSON */ }
    return { status: r.status, body };
  }

  async function loadAcks(town) {
    const { status, body } = await call(`/v1/notifications/acks?town=${encodeURIComponent(town)}`);
    if (status !== 200) return;
    for (const a of body.data) acks.set(keyOf(a.town, a.sensor, a.kind, a.started), a);
    loadedTown = town;
    loadedAt = Date.now();
  }

  function when(iso) {
    return new Date(iso).toLocaleString(lang() === "fr" ? "fr-FR" : "en-GB", { timeZone: "Europe/Paris",
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  async function acknowledge(li, button) {
    let by = localStorage.getItem(NAME) || "";
    if (!by) {
      by = (window.prompt(tr("who")) || "").trim();
      if (!by) return;
      localStorage.setItem(NAME, by.slice(0, 80));
    }
    button.disabled = true;
    const d = li.dataset;
    const { status, body } = await call("/v1/notifications/acks", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ town: d.town, sensor: d.sensor || null, kind: d.kind, started: Number(d.started),
        by: by.slice(0, 80) }),
    });
    if (status === 200 || status === 201) {
      acks.set(keyOf(body.town, body.sensor, body.kind, body.started), body);
      decorate();
      return;
    }
    button.disabled = false;
    const msg = status === 404 ? tr("gone") : `${tr("failed")} (HTTP ${status})`;
    let note = li.querySelector(".ack-error");
    if (!note) {
      note = document.createElement("div");
      note.className = "ack-error";
      note.setAttribute("role", "status");
      li.append(note);
    }
    note.textContent = msg;
  }

  function decorate() {
    if (!token()) return;
    for (const li of document.querySelectorAll("#alerts li[data-started]")) {
      const d = li.dataset;
      if (!d.started || !d.town) continue;
      const ack = acks.get(keyOf(d.town, d.sensor, d.kind, d.started));
      const have = li.querySelector(".ack");
      if (ack) {
        if (have && have.dataset.by === ack.by) continue;
        if (have) have.remove();
        const p = document.createElement("div");
        p.className = "ack";
        p.dataset.by = ack.by;
        p.textContent = tr("acked", { by: ack.by, at: when(ack.at) });
        li.append(p);
      } else if (!have) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "ack";
        b.textContent = tr("ack");
        b.setAttribute("aria-label", tr("label", { what: li.querySelector(".what")?.textContent || d.kind }));
        b.addEventListener("click", () => acknowledge(li, b));
        li.append(b);
      }
    }
  }

  let deadAt = 0;

  async function loadDead() {
    const { status, body } = await call("/v1/notifications/deliveries?status=dead&limit=20");
    if (status !== 200) return;
    deadAt = Date.now();
    let box = document.getElementById("notify-dead");
    if (!body.data.length) {
      if (box) box.remove();
      return;
    }
    if (!box) {
      box = document.createElement("details");
      box.id = "notify-dead";
      document.getElementById("alerts").closest("section").append(box);
    }
    const summary = document.createElement("summary");
    summary.textContent = `${tr("dead")} (${body.data.length})`;
    const ul = document.createElement("ul");
    for (const d of body.data) {
      const li = document.createElement("li");
      li.dataset.delivery = d.id;
      li.textContent = `${d.subject || d.reason} — ${d.last_error || ""} `;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = tr("resend");
      b.addEventListener("click", async () => {
        b.disabled = true;
        const r = await call(`/v1/notifications/deliveries/${d.id}/retry`, { method: "POST" });
        b.replaceWith(document.createTextNode(r.status === 200 ? tr("queued") : `HTTP ${r.status}`));
      });
      li.append(b);
      ul.append(li);
    }
    const open = box.open;
    box.replaceChildren(summary, ul);
    box.open = open;
  }

  async function refresh() {
    if (!token() || busy) return;
    if (Date.now() - deadAt > 60_000) {
      deadAt = Date.now();
      loadDead().catch(() => { /* the api is down: try again later */ });
    }
    const town = document.querySelector("#alerts li[data-town]")?.dataset.town;
    if (!town) return;
    if (town !== loadedTown || Date.now() - loadedAt > 30_000) {
      busy = true;
      try { await loadAcks(town); } catch (_) { /* the api is down: the buttons stay */ } finally { busy = false; }
    }
    decorate();
  }

  function start() {
    const style = document.createElement("style");
    style.textContent = ".alerts li .ack { margin-top: .25rem; font-size: .85rem; }" +
      ".alerts li div.ack { color: #1b5e20; } .alerts li .ack-error { color: #8b0000; font-size: .85rem; }" +
      "#notify-dead { margin-top: .5rem; font-size: .85rem; } #notify-dead li { margin: .2rem 0; }";
    document.head.append(style);
    const list = document.getElementById("alerts");
    if (!list) return;
    // dashboard.js re-renders the list's items: decorate each new rendering (childList of the list only, so our
    // own additions inside items do not trigger us again).
    new MutationObserver(() => { refresh(); }).observe(list, { childList: true });
    setInterval(refresh, 5_000); // the token may have just been entered in the dead-letters card
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
