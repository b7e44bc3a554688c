"""The repository's Table Schemas (schemas/) are the code's, and the published qc bit table is the science doc's."""

from __future__ import annotations

import json
import re
from pathlib import Path

from heatwatch.core.datasets import DATASETS, table_schema, table_schemas
from heatwatch.core.measurements import HOURLY, QcFlag, qc_flag_table

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_are_generated_from_the_stored_schema():
    committed = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "schemas").glob("*.json")}
    assert committed == table_schemas(), "regenerate with: python -m heatwatch.core.datasets schemas"


def test_schema_follows_the_measurement():
    schema = table_schema(DATASETS["hourly"])
    names = [f["name"] for f in schema["fields"]]
    # the stored point, then the sensor's network and trust (as the registry says when the file is made)
    assert names == ["time", "town", "sensor", *HOURLY.field_names, "network", "trust"]
    by = {f["name"]: f for f in schema["fields"]}
    assert by["t_mean"]["unit"] == "°C" and by["t_mean"]["type"] == "number"
    assert by["qc"]["constraints"] == {"minimum": 0, "maximum": sum(int(f) for f in QcFlag)}
    assert schema["primaryKey"] == ["time", "town", "sensor"]
    assert by["trust"]["constraints"] == {"enum": ["official", "provisional", "confirmed"]}
    french = table_schema(DATASETS["hourly"], decimal=",", local_times=True)
    fb = {f["name"]: f for f in french["fields"]}
    assert fb["t_mean"]["decimalChar"] == "," and "decimalChar" not in fb["n"] and fb["time"]["format"] == "any"


def test_qc_doc_table_matches_the_code():
    text = (ROOT / "docs/science/qc.md").read_text(encoding="utf-8")
    doc = {int(b): n for b, n in re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", text, re.M)}
    assert doc == {f.bit: f.name for f in qc_flag_table()}
    interop = (ROOT / "docs/interop.md").read_text(encoding="utf-8")
    published = {int(b): n for b, n in re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", interop, re.M)}
    assert published == doc
