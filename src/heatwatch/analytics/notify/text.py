"""What a notification says, in French or English: the dashboard's words (docs/alerts.md, "What an alert says"),
never analytics' technical message alone. Pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from heatwatch.core.notifications import Ack, StoredAlert

KIND = {
    "fr": {"temperature": "Chaleur", "heat_index": "Indice de chaleur", "uhi_night": "Îlot de chaleur nocturne",
           "canicule": "Canicule", "offline": "Capteur muet", "battery": "Batterie faible",
           "qc": "Contrôle qualité"},
    "en": {"temperature": "Heat", "heat_index": "Heat index", "uhi_night": "Night-time heat island",
           "canicule": "Heat wave (canicule)", "offline": "Silent sensor", "battery": "Low battery",
           "qc": "Quality control"},
}

WORDS = {
    "fr": {
        "open": "Alerte", "renotify": "Rappel — alerte non acquittée", "close": "Fin d'alerte",
        "digest": "Synthèse quotidienne", "town": "toute la ville", "since": "depuis le",
        "ended": "terminée le", "acked": "acquittée par {by} le {at}", "not_acked": "non acquittée",
        "ack_hint": "Acquitter sur le tableau de bord : {url}", "ack_hint_nourl": "Acquitter sur le tableau de bord.",
        "digest_none": "Aucune alerte ces dernières 24 heures.", "digest_open": "Alertes en cours",
        "digest_closed": "Alertes terminées", "digest_head": "{town} — alertes du {start} au {end}",
        "technical": "Message technique",
        "offline": "silencieux depuis {d}", "offline_town": "aucune mesure d'aucun capteur depuis {d}",
        "battery_v": "batterie à {v} V (seuil {thr} V)", "battery_pct": "batterie à {v} % (seuil {thr} %)",
        "temperature": "{v} °C (seuil {thr} °C)", "heat_index": "indice de chaleur {v} °C (seuil {thr} °C)",
        "uhi_night": "{v} °C de plus que la référence rurale (seuil {thr} °C)",
        "canicule": "IBMx {v} °C (seuil {thr} °C)", "qc": "mesures rejetées par le contrôle qualité depuis {d}",
        "min": "{n} min", "h_min": "{h} h {m:02d}", "h": "{n} h", "d": "{n} j",
    },
    "en": {
        "open": "Alert", "renotify": "Reminder — unacknowledged alert", "close": "Alert ended",
        "digest": "Daily digest", "town": "whole town", "since": "since",
        "ended": "ended", "acked": "acknowledged by {by} at {at}", "not_acked": "not acknowledged",
        "ack_hint": "Acknowledge on the dashboard: {url}", "ack_hint_nourl": "Acknowledge on the dashboard.",
        "digest_none": "No alert in the last 24 hours.", "digest_open": "Open alerts",
        "digest_closed": "Ended alerts", "digest_head": "{town} — alerts from {start} to {end}",
        "technical": "Technical message",
        "offline": "silent for {d}", "offline_town": "no reading from any sensor for {d}",
        "battery_v": "battery at {v} V (threshold {thr} V)", "battery_pct": "battery at {v} % (threshold {thr} %)",
        "temperature": "{v} °C (threshold {thr} °C)", "heat_index": "heat index {v} °C (threshold {thr} °C)",
        "uhi_night": "{v} °C above the rural reference (threshold {thr} °C)",
        "canicule": "IBMx {v} °C (threshold {thr} °C)", "qc": "readings rejected by quality control for {d}",
        "min": "{n} min", "h_min": "{h} h {m:02d}", "h": "{n} h", "d": "{n} d",
    },
}


def num(v: float, digits: int, lang: str) -> str:
    s = f"{v:.{digits}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s.replace(".", ",") if lang == "fr" else s


def duration(minutes: float, lang: str) -> str:
    """Minutes below 90 min, hours and minutes below 10 h, hours below 48 h, then days (as the dashboard)."""
    w = WORDS[lang]
    if minutes < 90:
        return w["min"].format(n=round(minutes))
    if minutes < 600:
        h, m = divmod(round(minutes), 60)
        return w["h_min"].format(h=h, m=m)
    if minutes < 48 * 60:
        return w["h"].format(n=round(minutes / 60))
    return w["d"].format(n=round(minutes / 1440))


def describe(kind: str, sensor: str, value: float, threshold: float, lang: str) -> str:
    w = WORDS[lang]
    if kind == "offline":
        return w["offline" if sensor else "offline_town"].format(d=duration(value, lang))
    if kind == "battery":
        if threshold > 5:
            return w["battery_pct"].format(v=num(value, 0, lang), thr=num(threshold, 0, lang))
        return w["battery_v"].format(v=num(value, 2, lang), thr=num(threshold, 2, lang))
    if kind == "qc":
        return w["qc"].format(d=duration(value * 60, lang))
    if kind in w:
        return w[kind].format(v=num(value, 1, lang), thr=num(threshold, 1, lang))
    return f"{value:g} / {threshold:g}"


def local(ms: int, tz: str, lang: str) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(ZoneInfo(tz))
    return t.strftime("%d/%m/%Y %H:%M") if lang == "fr" else t.strftime("%Y-%m-%d %H:%M")


def alert_line(a: StoredAlert, ack: Ack | None, town_name: str, tz: str, lang: str) -> str:
    w = WORDS[lang]
    where = a.sensor or w["town"]
    line = (f"{KIND[lang].get(a.kind, a.kind)} — {where} — {describe(a.kind, a.sensor, a.value, a.threshold, lang)}"
            f" — {w['since']} {local(a.started, tz, lang)}")
    if a.ended is not None:
        line += f", {w['ended']} {local(a.ended, tz, lang)}"
    if ack is not None:
        line += f" — {w['acked'].format(by=ack.by, at=local(ack.at, tz, lang))}"
    return line


def alert_message(reason: str, a: StoredAlert, ack: Ack | None, town_name: str, tz: str, lang: str,
                  dashboard_url: str | None) -> tuple[str, str]:
    """(subject, plain text) of an alert's opening, reminder or end."""
    w = WORDS[lang]
    where = a.sensor or w["town"]
    subject = (f"[heatwatch] {town_name} — {w[reason]} : {KIND[lang].get(a.kind, a.kind)} — {where}"
               if lang == "fr" else
               f"[heatwatch] {town_name} — {w[reason]}: {KIND[lang].get(a.kind, a.kind)} — {where}")
    lines = [f"{town_name} — {w[reason]}", "", alert_line(a, ack, town_name, tz, lang), ""]
    if reason != "close" and ack is None:
        lines.append(w["ack_hint"].format(url=dashboard_url) if dashboard_url else w["ack_hint_nourl"])
        lines.append("")
    lines.append(f"{w['technical']} : {a.message}" if lang == "fr" else f"{w['technical']}: {a.message}")
    return subject, "\n".join(lines) + "\n"


def digest_message(town_name: str, tz: str, lang: str, start_ms: int, end_ms: int,
                   alerts: list[tuple[StoredAlert, Ack | None]], dashboard_url: str | None) -> tuple[str, str]:
    w = WORDS[lang]
    head = w["digest_head"].format(town=town_name, start=local(start_ms, tz, lang), end=local(end_ms, tz, lang))
    subject = f"[heatwatch] {town_name} — {w['digest']} ({local(end_ms, tz, lang)[:10]})"
    lines = [head, ""]
    still = [(a, k) for a, k in alerts if a.ended is None]
    ended = [(a, k) for a, k in alerts if a.ended is not None]
    if not alerts:
        lines.append(w["digest_none"])
    for title, group in ((w["digest_open"], still), (w["digest_closed"], ended)):
        if group:
            lines.append(f"{title} ({len(group)})")
            lines += [f"- {alert_line(a, k, town_name, tz, lang)}" for a, k in group]
            lines.append("")
    if dashboard_url:
        lines += ["", dashboard_url]
    return subject, "\n".join(lines).rstrip() + "\n"


def alert_json(a: StoredAlert, ack: Ack | None) -> dict[str, Any]:
    """An alert as webhooks carry it (the fields of the MQTT alert event, times in epoch ms, plus its ack)."""
    return {"town": a.town, "sensor": a.sensor or None, "kind": a.kind, "value": a.value, "threshold": a.threshold,
            "message": a.message, "state": a.state, "started": a.started, "ended": a.ended,
            "ack": None if ack is None else {"by": ack.by, "at": ack.at, "note": ack.note}}
