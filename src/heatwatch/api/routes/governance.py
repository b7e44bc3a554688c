"""``GET /v1/governance``: who produces which data, under which licence, kept how long, processed how, checked
by which rules, and how to contribute or object (docs/citizens.md, docs/charter.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter

from heatwatch.core.contributors import CHARTER_VERSION, LICENCES, PURPOSE
from heatwatch.core.provenance import ODBL, licence_of, source_of
from heatwatch.core.trust import trust_of

from ..deps import CtxDep
from ..formats import LICENCE
from ..responses import JSONBytes
from ..sensorinfo import list_sensors
from .contribute import retention_text

router = APIRouter(prefix="/v1", tags=["governance"])


def sources(sensors: list[Any]) -> dict[str, dict[str, Any]]:
    """Sensors per source (town network, contributors, sensor.community, other imports) with their trust and the
    licences their data is under (core/provenance.py: the catalogue and the datapackage say the same)."""
    out: dict[str, dict[str, Any]] = {}
    for s in sensors:
        e = out.setdefault(source_of(s).id, {"sensors": 0, "trust": Counter(), "licences": Counter()})
        e["sensors"] += 1
        e["trust"][trust_of(s)] += 1
        e["licences"][licence_of(s)["id"]] += 1
    return {k: {"sensors": v["sensors"], "trust": dict(v["trust"]), "licences": dict(v["licences"])}
            for k, v in sorted(out.items())}


@router.get("/governance", summary="Data governance: producers, licences, retention, processing, QC, rights",
            description="Who produces which dataset and under which licence, how long data is kept, the processing "
                        "applied, the quality-control rules, how residents contribute, object or withdraw, and the "
                        "charter they agree to. Counts per source and town are live.")
async def governance(ctx: CtxDep) -> JSONBytes:
    st = ctx.settings
    towns = {}
    for t in st.towns.values():
        towns[t.id] = {"name": t.name, "sources": sources(list_sensors(ctx.registry, t.id, include_retired=False))}
    body = {
        "meta": ctx.meta(None),
        "controller": {"name": ctx.config.producer, "contact": ctx.config.contact_email},
        "purpose": PURPOSE,
        "datasets": [
            {"source": "town_network", "producer": ctx.config.producer,
             "what": "the town's own sited sensors (registry owner town)", "licence": LICENCE, "trust": "official",
             "weight_in_town_indices": 1.0},
            {"source": "contributors", "producer": "residents (registered through /v1/contribute)",
             "what": "residents' sensors (registry owner citizen)",
             "licence": "the one each resident chose at registration: " + " or ".join(LICENCES.values()),
             "trust": "provisional, then confirmed after the probation period",
             "weight_in_town_indices": "0 while provisional; the citizen weight once confirmed (analytics setting "
                                       "HEATWATCH_ANALYTICS_CITIZEN_WEIGHT, default 0.5)"},
            {"source": "sensor.community", "producer": "sensor.community contributors (https://sensor.community)",
             "what": "imported archive files and the data API for the town's bounding box",
             "licence": ODBL, "attribution": "© sensor.community contributors, ODbL 1.0",
             "trust": "provisional, then confirmed like residents' sensors"},
        ],
        "towns": towns,
        "retention": retention_text(st.raw_retention),
        "processing": [
            "ingest: validation of range and time, storage of every accepted reading (docs/architecture.md)",
            "analytics: hourly and daily aggregates, heat-stress indices, urban heat island against the rural "
            "reference, canicule indicators (docs/science/)",
            "quality control: the town network by fault shapes against its peers; citizen and crowd sensors by "
            "the crowd profile — CrowdQC+ town-wide z-score, radiation signature, monthly flagged share, "
            "correlation and availability (docs/science/qc.md); flagged data is kept out of indices, never deleted",
        ],
        "qc_rules": "docs/science/qc.md",
        "privacy": {"private_sites": "every site whose owner is citizen or crowd",
                    "published_position": f"centre of its {st.privacy_grid_m} m grid cell (Lambert-93)",
                    "never_published": ["names or pseudonyms", "contacts", "exact positions of private sites",
                                        "site descriptions"],
                    "doc": "docs/privacy.md"},
        "network_filter": "town indices without any citizen data: /v1/indices?network=town; the town network's "
                          "rows alone: /v1/readings, /v1/hourly, /v1/daily with network=town",
        "provenance": {"catalogue": "GET /v1/catalog: each dataset's dct:provenance names its sources and their "
                                    "licences; where a source is under the ODbL, the per-sensor datasets' "
                                    "distributions carry the ODbL (share-alike) and network=town ones the Licence "
                                    "Ouverte",
                       "datapackage": "GET /v1/datapackage.json: sources and licenses per resource",
                       "rows": "every row about a sensor carries its network and trust",
                       "doc": "docs/citizens.md"},
        "contribute": {"how": "POST /v1/contribute (or the page /contribute): pseudonym, contact, device, position, "
                              "site, explicit consent to the charter",
                       "charter_version": CHARTER_VERSION, "charter": "docs/charter.md",
                       "licences": LICENCES},
        "rights": {"access_and_portability": "GET /v1/contribute/me and /v1/contribute/me/export (JSON, CSV)",
                   "withdrawal_and_erasure": "POST /v1/contribute/me/withdraw: personal data deleted at once, "
                                             "readings and aggregates erased and the town's indices recomputed",
                   "object": f"write to {ctx.config.contact_email} (a resident near a town sensor, a data user)"},
    }
    return JSONBytes(body, headers={"Cache-Control": "public, max-age=60"})
