"""Seasonal report of a town: the summer's indices, canicule episodes, heat-island maps, site
rankings and intervention results, with the licence and the data sources.

HTML is one self-contained file (maps embedded as ``data:`` PNG URIs, CSS inline), rendered from
the Jinja2 template packaged next to this module, so it can be mailed or put on a town website as
is. The optional PDF is built from matplotlib figures (``PdfPages``): pip-only, no browser or
system library, at the cost of a plainer layout than the HTML.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from heatwatch.core import privacy
from heatwatch.core.influx import InfluxClient
from heatwatch.core.interventions import InterventionStore
from heatwatch.core.maintenance import breaks_or_empty
from heatwatch.core.model import Town
from heatwatch.core.registry import Registry
from heatwatch.core.settings import ApiSettings

from ..errors import ApiError
from ..formats import LICENCE
from ..insights import queries
from ..insights.effect import EffectWindow, evaluate, match_controls
from ..insights.idw import Grid
from ..insights.rankings import DEFAULT_THRESHOLDS, canicule_episodes, ranking_columns, season_window, threshold_column
from ..insights.render import render_png
from ..insights.rkmap import choose_method
from ..insights.season import season_ranking
from ..routes.maps import MapRequest, build_grid, map_values, positioned

TEMPLATES = Path(__file__).resolve().parent / "templates"
SOURCES = [
    "Capteurs de température et d'humidité du réseau heatwatch de la commune (positions et types de site : "
    "registre des capteurs).",
    "Agrégats horaires et journaliers calculés par heatwatch analytics (contrôle qualité inspiré de CrowdQC+, "
    "ICU = température du capteur − référence rurale, définition du Rennes Urban Network).",
    "Seuils de canicule : Météo-France / Santé publique France (SACS), IBMn et IBMx sur 3 jours.",
]


@dataclass
class MapImage:
    title: str
    caption: str
    png: bytes
    grid: Grid
    method: str = "inverse distance weighting"
    method_reason: str = ""
    cv: dict[str, Any] | None = None

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class ReportData:
    town: Town
    season: int
    window: tuple[dt.date, dt.date]
    generated: str
    producer: str
    summary: dict[str, Any]
    episodes: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    ranking_columns: list[str]
    thresholds: list[float]
    maps: list[MapImage] = field(default_factory=list)
    interventions: list[dict[str, Any]] = field(default_factory=list)
    #: the "drivers and priorities" section (docs/science/drivers.md); None when the town has no layers
    drivers: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    licence: dict[str, str] = field(default_factory=lambda: dict(LICENCE))
    sources: list[str] = field(default_factory=lambda: list(SOURCES))


async def _map(client: InfluxClient, town: Town, sensors: list[Any], req: MapRequest, title: str, caption: str,
               producer: str, layers_dir: Path | None = None) -> MapImage | None:
    mv = await map_values(client, town, req, sensors)
    points = positioned(mv.values, sensors, town)
    try:
        grid = build_grid(points, 100.0, 2.0, 600.0)
    except ApiError:
        return None  # no positioned sensor with data: the report says so instead of a map
    if mv.compared_on is not None:
        caption += f" sur {mv.compared_on['common_days']} jours communs à tous les capteurs cartographiés"
        if mv.left_out:
            caption += " ; hors carte (non comparables) : " + ", ".join(sorted(mv.left_out))
    method = None
    if layers_dir is not None:
        method = await asyncio.to_thread(choose_method, "auto", grid, points, town, sensors, layers_dir, 2.0, 600.0)
        grid = method.grid
    png = render_png(grid, f"{town.name} — {title}", caption, f"{producer} · Etalab-2.0", label_sensors=True,
                     note=method.note() if method else None)
    image = MapImage(title, caption, png, grid)
    if method is not None:
        image.method, image.method_reason = method.method, method.reason
        image.cv = method.details.get("cross_validation")
    return image


async def gather(client: InfluxClient, settings: ApiSettings, town: Town, season: int, registry: Registry | None,
                 store: InterventionStore | None, producer: str,
                 thresholds: list[float] | None = None) -> ReportData:
    thr = list(thresholds or DEFAULT_THRESHOLDS)
    tz = ZoneInfo(town.timezone)
    first, last = season_window(season)
    ranking, summary = await season_ranking(client, town, registry, season, thr)
    town_rows = await queries.town_daily_rows(client, town.id, first, last, tz)
    episodes = canicule_episodes(town_rows)
    sensors = list(registry.list(town=town.id, include_retired=True)) if registry is not None else []
    data = ReportData(town=town, season=season, window=(first, last),
                      generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), producer=producer,
                      summary=summary, episodes=episodes, ranking=ranking, ranking_columns=ranking_columns(thr),
                      thresholds=thr)
    if not summary.get("days"):
        data.notes.append(f"La saison {season} n'a pas commencé : aucune donnée.")
        return data
    end = min(last, dt.date.fromisoformat(summary["to"]))
    # Nights are filed under the morning they end: the season's last night starts the evening before `end`.
    requests = [
        (MapRequest("night", first, end - dt.timedelta(days=1), None), "ICU nocturne moyen de la saison",
         "moyenne des maxima nocturnes (uhi_night_max_mean) de chaque capteur"),
        (MapRequest("day", first, end, None), "ICU moyen journalier de la saison",
         "moyenne des ICU journaliers (uhi_mean_mean) de chaque capteur"),
    ]
    hottest = summary.get("town_uhi_max_date")
    if hottest:
        night = dt.date.fromisoformat(hottest) - dt.timedelta(days=1)
        requests.append((MapRequest("night", night, night, None),
                         f"nuit du {night.isoformat()} (ICU de la ville le plus fort de la saison)",
                         "maximum nocturne de l'ICU (uhi_night_max) de chaque capteur"))
    for req, title, caption in requests:
        image = await _map(client, town, sensors, req, title, caption, producer, settings.layers_dir)
        if image is None:
            data.notes.append(f"Carte « {title} » : aucun capteur positionné n'a de données.")
        else:
            data.maps.append(image)
    if store is not None:
        refs = list(dict.fromkeys([*town.reference_sensors, *(s.id for s in sensors if s.is_reference)]))
        everything = store.list(town.id)
        for item, window in season_interventions(everything, season):
            if item.controls is not None:
                controls, source = list(item.controls), "recorded with the intervention"
            else:
                start, end = item.works
                b0, _, _, a1 = window.spans(start, end or start)
                controls, source = match_controls(town, sensors, item.sensors,
                                                  [o for o in everything if o.id != item.id], b0, a1)
            data.interventions.append(await evaluate(client, town, item, controls, window, controls_source=source,
                                                     references=refs,
                                                     breaks=breaks_or_empty(settings.data_dir, town.id)))
    data.drivers = await drivers_section(client, settings, town, season, registry, data.interventions)
    return data


async def drivers_section(client: InfluxClient, settings: ApiSettings, town: Town, season: int,
                          registry: Registry | None, interventions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What drives the town's heat, where greening pays most, and the model's estimate of recorded works beside
    their measured effect; None when the town has no layers (the report then says how to add them)."""
    from heatwatch.core.layers import LayerStore
    from heatwatch.core.layers.context import cover_for

    from ..insights.biodiversity import build_cells, priorities
    from ..insights.scenarios import site_scenario
    from ..insights.townmodel import town_season

    store = LayerStore(settings.layers_dir, town.id)
    if not store.list():
        return None
    ts = await town_season(client, town, registry, settings.layers_dir, season)
    out: dict[str, Any] = {"layers": [i.describe() for i in store.list()], "models": ts.describe_models(),
                           "priorities": [], "biodiversity": None, "interventions": []}
    if "uhi_night" not in ts.models:
        return out
    model = ts.model("uhi_night")

    def cells() -> tuple[Any, list[dict[str, Any]]]:
        grid = build_cells(model, store, cover_for(store, town, ts.sensors), ts.sensors, 200.0)
        return grid, priorities(grid, model)

    grid, prio = await asyncio.to_thread(cells)
    out["priorities"] = prio[:10]
    out["biodiversity"] = grid.summary
    contexts = ts.contexts
    for it in interventions:
        i = it["intervention"]
        if i.get("canopy_points") is None and i.get("sealed_points") is None:
            continue
        ests = [site_scenario(model, contexts[s], i.get("canopy_points") or 0.0, i.get("sealed_points") or 0.0)
                for s in it["treated"] if s in contexts]
        night = it.get("outcomes", {}).get("uhi_night", {})
        out["interventions"].append({"site": i["site"], "kind": i["kind"], "canopy_points": i.get("canopy_points"),
                                     "sealed_points": i.get("sealed_points"),
                                     "estimate": ests[0] if len(ests) == 1 else (ests[0] if ests else None),
                                     "measured": night})
    return out


def season_interventions(items: list[Any], season: int) -> list[tuple[Any, EffectWindow]]:
    """The interventions a season's report evaluates, each with its window: works that ended during the
    season, compared over the days around them; and works of the off-season before it (16 September
    of the year before to 31 May), compared summer to summer — a planting in winter has no summer days
    around it."""
    first, last = season_window(season)
    previous_end = season_window(season - 1)[1]
    out = []
    for item in items:
        _, end = item.works
        if end is None:
            if item.start is not None and item.start.year == season:
                out.append((item, EffectWindow()))  # in progress: the report says so
            continue
        if first <= end <= last:
            out.append((item, EffectWindow()))
        elif previous_end < end < first:
            out.append((item, EffectWindow(mode="seasons")))
    return out


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    return env


def _num(value: Any, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, int):
        return str(value)
    try:
        return f"{float(value):{'+' if sign else ''}.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


COLUMN_LABELS = {
    "rank": "rang", "sensor": "capteur", "name": "site", "site_class": "type", "days_compared": "jours comparés",
    "uhi_night_max_mean": "moyenne des maxima nocturnes d'ICU (°C)",
    "uhi_night_max_max": "plus fort maximum nocturne d'ICU (°C)",
    "uhi_mean_mean": "moyenne de l'ICU journalier (°C)",
    "tropical_nights": "nuits tropicales", "tn_mean": "Tn moy. (°C)", "tx_max": "Tx max (°C)", "note": "remarque",
    "trust": "confiance",  # official, provisional or confirmed: a resident's sensor is never shown as the town's
}


def render_html(data: ReportData) -> str:
    shown = ["rank", "sensor", "name", "site_class", "trust", "days_compared", "uhi_night_max_mean",
             "uhi_night_max_max", "uhi_mean_mean", "tropical_nights", *(threshold_column(t) for t in data.thresholds),
             "tn_mean", "tx_max", "note"]
    labels = COLUMN_LABELS | {threshold_column(t): f"heures ≥ {t:g} °C" for t in data.thresholds}
    return environment().get_template("report.html.j2").render(d=data, columns=shown, labels=labels)


def render_pdf(data: ReportData, path: Path) -> None:
    """A figure-based PDF: summary page, one page per map, ranking table, intervention results."""
    import io

    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    a4 = (8.27, 11.69)
    with PdfPages(path, metadata={"Title": f"heatwatch — {data.town.name}, été {data.season}",
                                  "Subject": "Îlots de chaleur urbains", "Keywords": "Etalab-2.0"}) as pdf:
        fig = Figure(figsize=a4)
        lines = [f"heatwatch — {data.town.name} ({data.town.departement}), été {data.season}",
                 f"Saison {data.window[0]} – {data.window[1]} · généré le {data.generated}", ""]
        s = data.summary
        lines += [f"Jours de canicule : {s.get('canicule_days', 0)}   IBMn max : {_num(s.get('ibmn_max'))} °C   "
                  f"IBMx max : {_num(s.get('ibmx_max'))} °C",
                  f"ICU moyen de la ville : {_num(s.get('town_uhi_mean'))} °C   ICU max : "
                  f"{_num(s.get('town_uhi_max'))} °C ({s.get('town_uhi_max_date') or '—'})",
                  f"Nuits tropicales (capteur × nuit) : {s.get('sensor_tropical_nights', 0)}", "",
                  "Épisodes de canicule :"]
        lines += [f"  {e['start']} → {e['end']} ({e['days']} j), IBMn max {_num(e['ibmn_max'])}, IBMx max "
                  f"{_num(e['ibmx_max'])}" for e in data.episodes] or ["  aucun"]
        lines += ["", "Interventions :"]
        for it in data.interventions:
            i = it["intervention"]
            works = i["end"] if i["start"] == i["end"] else f"{i['start']} → {i['end'] or '…'}"
            lines.append(f"  {works} {i['kind']} — {i['site']}")
            for o in it["outcomes"].values():
                lines.append("    " + o["conclusion"][:150])
        if not data.interventions:
            lines.append("  aucune intervention enregistrée cette année")
        lines += ["", *data.notes, "", f"Licence : {data.licence['title']} ({data.licence['url']})",
                  f"Producteur : {data.producer}", "Sources :", *(f"  • {x}" for x in data.sources)]
        fig.text(0.06, 0.96, "\n".join(lines), va="top", fontsize=7.5, family="DejaVu Sans", wrap=True)
        pdf.savefig(fig)
        for m in data.maps:
            fig = Figure(figsize=a4)
            ax = fig.add_axes((0.03, 0.1, 0.94, 0.8))
            ax.imshow(imread(io.BytesIO(m.png), format="png"))
            ax.set_axis_off()
            fig.text(0.05, 0.95, m.title, fontsize=11)
            pdf.savefig(fig)
        fig = Figure(figsize=(11.69, 8.27))
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
        ax.set_axis_off()
        cols = ["rank", "sensor", "trust", "days_compared", "uhi_night_max_mean", "uhi_mean_mean", "tropical_nights",
                *(threshold_column(t) for t in data.thresholds)]
        cells = [[_num(r.get(c), 2) if isinstance(r.get(c), float) else ("—" if r.get(c) is None else str(r.get(c)))
                  for c in cols] for r in data.ranking[:40]]
        if cells:
            table = ax.table(cellText=cells, colLabels=cols, loc="upper center")
            table.auto_set_font_size(False)
            table.set_fontsize(7)
        common = data.summary.get("compared_on", {}).get("common_days")
        fig.text(0.02, 0.96, f"Classement des sites, été {data.season} (moyenne des maxima nocturnes d'ICU sur "
                             f"{common} jours communs)", fontsize=11)
        pdf.savefig(fig)
        fig = Figure(figsize=a4)
        fig.text(0.06, 0.96, "\n".join(drivers_lines(data.drivers)), va="top", fontsize=7.5, family="DejaVu Sans",
                 wrap=True)
        pdf.savefig(fig)


def drivers_lines(dr: dict[str, Any] | None) -> list[str]:
    """The "drivers and priorities" section as text lines (the PDF's page)."""
    lines = ["Facteurs et priorités — ce qui chauffe, et où verdir", ""]
    if dr is None:
        return [*lines, "Aucune couche géographique importée (heatwatch layers import)."]
    for key, m in dr["models"].items():
        lines.append("ICU nocturne de la saison :" if key == "uhi_night" else "Heures ≥ 30 °C :")
        if m["status"] != "ok":
            lines.append(f"  le modèle ne se prononce pas : {m['reason']}")
            continue
        lines += [f"  {e['text']}" for e in m["effects"]]
        lines.append(f"  {m['n_sites']} sites · erreur en validation croisée {_num(m['cv_rmse'], 2)} {m['unit']} "
                     f"(moyenne de la ville : {_num(m['cv_rmse_null'], 2)})")
    if dr["priorities"]:
        lines += ["", "Où verdir en priorité (îlots de 200 m) :"]
        lines += [f"  {p['rank']}. {p['cell']} ICU {_num(p['uhi_model'], 2)} °C, imperméabilisé "
                  f"{_num(p['impervious'], 0)} %, habitants {_num(p['residents'], 0)} : +{_num(p['canopy_added'], 0)} "
                  f"pts de canopée → {_num(p['cooling_c'], 2, True)} °C [{_num(p['cooling_lo'], 2, True)}, "
                  f"{_num(p['cooling_hi'], 2, True)}]" for p in dr["priorities"]]
    for i in dr["interventions"]:
        est = i["estimate"]["text"] if i["estimate"] else "—"
        meas = i["measured"]
        got = (f"{_num(meas.get('estimate'), 2, True)} °C" if meas.get("status") == "ok" else "données insuffisantes")
        lines.append(f"  {i['site']} : estimation {est} · mesuré {got}")
    lines += ["", "Estimations d'un modèle (associations entre sites), pas des mesures : docs/science/drivers.md."]
    return lines


async def collect(settings: ApiSettings, town: Town, season: int, registry: Registry | None = None) -> ReportData:
    privacy.configure(settings.privacy_grid_m)  # the report is public: private sites on the same grid as the api
    store = InterventionStore.for_data_dir(settings.data_dir)
    async with InfluxClient.from_settings(settings) as client:
        return await gather(client, settings, town, season, registry, store, settings.api.producer)


def write_report(settings: ApiSettings, town_id: str, season: int, out_dir: Path, pdf: bool = False,
                 registry: Registry | None = None) -> list[Path]:
    """Gather, render and write ``heatwatch-<town>-<season>.html`` (and ``.pdf``); the written paths."""
    town = settings.towns[town_id]
    data = asyncio.run(collect(settings, town, season, registry))
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"heatwatch-{town.id}-{season}.html"
    html.write_text(render_html(data), encoding="utf-8")
    written = [html]
    if pdf:
        path = out_dir / f"heatwatch-{town.id}-{season}.pdf"
        render_pdf(data, path)
        written.append(path)
    return written
