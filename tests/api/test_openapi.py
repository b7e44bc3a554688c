"""The OpenAPI document shows what each public endpoint answers, in every format it offers: a 200
example per media type, JSON examples valid against the documented schema (with the licence envelope),
CSV examples shaped like the real exports. Live answers are checked against the same schemas and
headers, so the documentation cannot drift from the code."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from heatwatch.api.app import create_app
from heatwatch.core.settings import Settings

JSON, GEOJSON, CSV, PARQUET, JSONLD = ("application/json", "application/geo+json", "text/csv",
                                       "application/vnd.apache.parquet", "application/ld+json")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JSONISH = (JSON, GEOJSON, JSONLD)

# The public endpoints and the formats each one documents.
MEDIA = {
    "/v1/towns": {JSON, GEOJSON},
    "/v1/latest": {JSON, CSV, GEOJSON},
    "/v1/sensors": {JSON, CSV, GEOJSON},
    "/v1/readings": {JSON, CSV, PARQUET, XLSX},
    "/v1/hourly": {JSON, CSV, PARQUET, XLSX},
    "/v1/daily": {JSON, CSV, PARQUET, XLSX},
    "/v1/indices": {JSON, CSV, PARQUET, XLSX},
    "/v1/canicule-episodes": {JSON, CSV, PARQUET, XLSX},
    "/v1/alerts": {JSON, CSV, PARQUET, XLSX},
    "/v1/uhi": {JSON, CSV, GEOJSON},
    "/v1/catalog": {JSONLD},
    "/v1/datapackage.json": {JSON},
}
# Not a licence envelope: the catalogue documents carry the licence in their own vocabulary.
NO_ENVELOPE = {"/v1/catalog", "/v1/datapackage.json"}

# Live queries on the conftest data set, one per endpoint.
LIVE = {
    "/v1/towns": {},
    "/v1/latest": {"town": "vitre"},
    "/v1/sensors": {"town": "vitre"},
    "/v1/readings": {"town": "vitre", "from": "2024-07-20T00:00:00Z", "to": "2024-07-20T01:00:00Z"},
    "/v1/hourly": {"town": "vitre", "from": "2024-07-19", "to": "2024-07-20"},
    "/v1/daily": {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"},
    "/v1/indices": {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"},
    "/v1/canicule-episodes": {"town": "vitre", "from": "2024-07-10", "to": "2024-07-25"},
    "/v1/alerts": {"town": "vitre", "from": "2024-07-01", "to": "2024-08-01"},
    "/v1/uhi": {"town": "vitre", "at": "2024-07-19T05:30:00Z"},
    "/v1/catalog": {},
    "/v1/datapackage.json": {},
}
FORMAT_PARAM = {JSON: "json", GEOJSON: "geojson", CSV: "csv"}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Building the document needs no database: an address nothing listens on is enough.
    settings = Settings.load(influx_url="http://127.0.0.1:9", influx_db="openapi",
                             data_dir=tmp_path_factory.mktemp("openapi"))
    return create_app(settings).openapi()


def _inline(node: Any, schemas: dict[str, Any]) -> Any:
    """The schema with every local $ref replaced by its target (the document has no recursive ones)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(schemas[node["$ref"].rsplit("/", 1)[-1]], schemas)
        return {k: _inline(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, schemas) for v in node]
    return node


def _validator(doc: dict[str, Any], path: str, media: str) -> Draft202012Validator | None:
    entry = doc["paths"][path]["get"]["responses"]["200"]["content"][media]
    schema = entry.get("schema")
    if not schema:
        return None
    inlined = _inline(schema, doc["components"]["schemas"])
    Draft202012Validator.check_schema(inlined)
    return Draft202012Validator(inlined, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _assert_valid(validator: Draft202012Validator, value: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def _assert_envelope(meta: dict[str, Any]) -> None:
    assert meta["licence"]["id"] == "Etalab-2.0"
    assert meta["licence"]["url"].startswith("https://www.etalab.gouv.fr/")
    assert meta["producer"]
    assert "last_update" in meta
    assert set(meta["query"]) == {"path", "params"}


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


@pytest.mark.parametrize("path", sorted(MEDIA))
def test_every_documented_format_has_an_example(doc, path):
    content = doc["paths"][path]["get"]["responses"]["200"]["content"]
    assert set(content) == MEDIA[path]
    for media, entry in content.items():
        if media in (PARQUET, XLSX):  # binary: an example is a link to a sample file
            (sample,) = entry["examples"].values()
            assert sample["externalValue"].endswith("format=" + ("parquet" if media == PARQUET else "xlsx"))
            assert sample["summary"]
            continue
        assert "example" in entry, (path, media)
        example = entry["example"]
        if media == CSV:
            assert isinstance(example, str) and example.endswith("\r\n") and "\n" not in example.replace("\r\n", "")
            header, *rows = _csv_rows(example)
            assert rows and all(len(r) == len(header) for r in rows), (path, example)
            continue
        validator = _validator(doc, path, media)
        assert validator is not None, (path, media)
        _assert_valid(validator, example, f"{path} {media} example")
        if path in NO_ENVELOPE:
            continue
        _assert_envelope(example["meta"])
        if media == GEOJSON:
            assert example["type"] == "FeatureCollection" and example["features"]
            for f in example["features"]:
                assert f["type"] == "Feature" and (f["geometry"] is None or f["geometry"]["type"] == "Point")
        else:
            assert example["data"], path
            assert example["meta"]["query"]["path"] == path


def test_examples_agree_across_formats(doc):
    """The JSON rows and the CSV lines of an example are the same data."""
    for path, media in MEDIA.items():
        if not {JSON, CSV} <= media or path == "/v1/sensors":  # sensors' CSV flattens 'latest'
            continue
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        rows = content[JSON]["example"]["data"]
        header, *lines = _csv_rows(content[CSV]["example"])
        assert header == list(rows[0]), path
        assert [line[header.index("time")] for line in lines] == [r["time"] for r in rows], path


def test_live_answers_match_the_documented_schemas_and_examples(doc, client, dataset):
    for path, params in LIVE.items():
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        for media in sorted(MEDIA[path] - {PARQUET, XLSX}):
            query = dict(params)
            if media in FORMAT_PARAM and len(MEDIA[path] - {PARQUET, XLSX}) > 1:
                query["format"] = FORMAT_PARAM[media]
            r = client.get(path, params=query)
            assert r.status_code == 200, (path, media, r.text)
            assert r.headers["content-type"].split(";")[0] == media, (path, media)
            if media == CSV:
                live_header = _csv_rows(r.text)[0]
                assert live_header == _csv_rows(content[CSV]["example"])[0], path
                continue
            body = r.json()
            _assert_valid(_validator(doc, path, media), body, f"{path} {media} live answer")
            if path not in NO_ENVELOPE and media == JSON:
                # Same row keys as the example, in the same order.
                assert list(body["data"][0]) == list(content[JSON]["example"]["data"][0]), path


def test_openapi_served_with_examples(client):
    served = client.get("/openapi.json").json()
    ok = served["paths"]["/v1/indices"]["get"]["responses"]["200"]["content"]
    assert ok[JSON]["example"]["meta"]["licence"]["id"] == "Etalab-2.0"
    assert ok[CSV]["example"].startswith("time,date,town,ibmn,ibmx,canicule,")
    assert "Meta" in served["components"]["schemas"]
