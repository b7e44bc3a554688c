"""The technicians' dashboard at ``/``: a static page, its own assets, and the front-end libraries.

The page is plain HTML/CSS/JS under ``api/static`` and talks to the public ``/v1`` endpoints and to
``/v1/live``, like any other client would. Leaflet and uPlot are not in the repository: they are
installed from the npm registry (``npm ci --prefix frontend``) and served from
``frontend/node_modules``, only the ``dist`` folders, under ``/vendor``. Where that folder is looked
for: ``HEATWATCH_FRONTEND_DIR`` if set, else ``frontend/`` of the source checkout, else
``./frontend`` of the working directory (an installed wheel has no checkout next to it).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from heatwatch.core.logging import get_logger
from heatwatch.core.measurements import INFO_FLAGS, QcFlag
from heatwatch.core.settings import ApiSettings, DashboardOptions

from ..formats import JSONBytes

log = get_logger("heatwatch.api.dashboard")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_CHECKOUT_FRONTEND = Path(__file__).resolve().parents[4] / "frontend"

# npm package → the folder of it that the page loads (nothing else of node_modules is exposed).
VENDOR = {"leaflet": "leaflet/dist", "uplot": "uplot/dist", "markercluster": "leaflet.markercluster/dist"}


def frontend_dir(config: DashboardOptions) -> Path | None:
    candidates = [config.frontend_dir] if config.frontend_dir else [_CHECKOUT_FRONTEND, Path.cwd() / "frontend"]
    for c in candidates:
        if c is not None and (c / "node_modules").is_dir():
            return c
    return None


router = APIRouter(include_in_schema=False)


def _page(name: str) -> Response:
    # no-cache: a new release's page must not be mixed with an old cached script.
    return FileResponse(STATIC_DIR / name, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/")
async def index() -> Response:
    return _page("index.html")


@router.get("/contribute")
async def contribute_page() -> Response:
    """Residents register their sensor here (POST /v1/contribute, docs/citizens.md)."""
    return _page("contribute.html")


@router.get("/maintenance")
async def maintenance_page() -> Response:
    """The technicians' maintenance view: sensors to visit, battery and radio trends, QC history, visit log
    (/v1/maintenance, docs/maintenance.md)."""
    return _page("maintenance.html")


@router.get("/governance")
async def governance_page() -> Response:
    """Who produces which data, licences, retention, processing, rights (GET /v1/governance)."""
    return _page("governance.html")


@router.get("/dashboard/config.json")
async def dashboard_config(request: Request) -> JSONBytes:
    """What the page needs to know about this server: which libraries it can load, which tiles, and the
    thresholds it marks values against — the alert thresholds of analytics (``HEATWATCH_ALERT_*``) and
    the api's own "offline" age — so the page never disagrees with the alerts."""
    settings: ApiSettings = request.app.state.settings
    cfg = settings.dashboard
    thresholds = settings.alert_thresholds.public()
    thresholds["stale_after_s"] = settings.stale_after_s
    return JSONBytes({"vendor": request.app.state.dashboard_vendor, "tiles_url": cfg.tiles_url or None,
                      "tiles_attribution": cfg.tiles_attribution, "thresholds": thresholds,
                      "qc_flags": {f.name: int(f) for f in QcFlag},
                      "qc_info_flags": int(INFO_FLAGS),
                      # residents' sites are shown on this grid, never exactly (docs/privacy.md)
                      "privacy_grid_m": settings.privacy_grid_m},
                     headers={"Cache-Control": "no-cache"})


def install(app: FastAPI, config: DashboardOptions) -> None:
    """Add the page, its assets and the ``/vendor`` mounts. Mounts are not carried by routers,
    hence a function rather than a router the app includes."""
    available: dict[str, bool] = dict.fromkeys(VENDOR, False)
    app.state.dashboard_vendor = available
    if not config.enabled:
        return
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    base = frontend_dir(config)
    for name, sub in VENDOR.items():
        folder = base / "node_modules" / sub if base else None
        if folder is not None and folder.is_dir():
            app.mount(f"/vendor/{name}", StaticFiles(directory=folder), name=f"vendor-{name}")
            available[name] = True
    missing = [n for n, ok in available.items() if not ok]
    if missing:
        # The page then shows the sensor list without map and charts.
        log.warning("dashboard.libraries_missing", missing=missing,
                    looked_in=str(base or config.frontend_dir or _CHECKOUT_FRONTEND),
                    fix="npm ci --prefix frontend, or set HEATWATCH_FRONTEND_DIR")
