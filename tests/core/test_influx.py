"""The InfluxDB adapter against the real influxd: escaping round trips, setup, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatwatch.core.errors import (
    EncodeError,
    InfluxClientError,
    InfluxUnavailable,
    InfluxWriteError,
)
from heatwatch.core.influx import AGG_RP, RAW_RP, InfluxClient, ident
from heatwatch.core.lineprotocol import Point, encode
from heatwatch.stack.embedded import free_port

pytestmark = pytest.mark.anyio

# Tag values: anything printable but newlines; line protocol cannot carry a trailing backslash.
awkward = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r"),
    min_size=1,
    max_size=30,
).filter(lambda s: not s.endswith("\\") and s.strip() == s and s != "")
# String fields may hold newlines, tabs and any quote or backslash.
string_field = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=60
)


async def test_setup_is_idempotent_and_updates_raw_retention(influxd, db_name):
    async with InfluxClient(influxd.url, db_name) as c:
        await c.setup()
        await c.setup()
        await c.setup("30d")
        rps = {r["name"]: r for r in await c.query_records(f"SHOW RETENTION POLICIES ON {ident(db_name)}")}
        assert rps[RAW_RP]["duration"] == "720h0m0s"
        assert rps[RAW_RP]["default"] is True
        # Aggregates in a database of their own (grants are per database), kept forever.
        agg = {r["name"]: r for r in await c.query_records(f"SHOW RETENTION POLICIES ON {ident(c.agg_database)}")}
        assert c.agg_database == f"{db_name}_agg"
        assert agg[AGG_RP]["duration"] == "0s" and agg[AGG_RP]["default"] is True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=awkward, text=string_field, value=st.floats(allow_nan=False, allow_infinity=False, width=64))
async def test_awkward_values_round_trip(influxd, tag, text, value):
    # One database for all examples: each example writes a distinct timestamp and reads it back.
    async with InfluxClient(influxd.url, "roundtrip", gzip=True) as c:
        await c.setup()
        # Within one week, so every example lands in the same shard.
        ts = 1_700_000_000_000 + hash((tag, text, value)) % 600_000_000
        await c.write_points(
            [Point("odd measurement,x", {"kind": tag, "town": "vitre"}, {"label": text, "v": value}, ts)],
            rp=AGG_RP,
        )
        rows = await c.query_records(
            'SELECT "label", "v", "kind" FROM "roundtrip_agg"."agg"."odd measurement,x" WHERE time = $t AND kind = $k',
            {"t": ts * 1_000_000, "k": tag},
        )
        assert len(rows) == 1
        assert rows[0]["label"] == text
        assert rows[0]["kind"] == tag
        # JSON may render a large integral float as an integer literal.
        assert float(rows[0]["v"]) == value


def test_unrepresentable_values_raise():
    for bad in ["", "ends\\", "new\nline"]:
        with pytest.raises(EncodeError):
            encode(Point("m", {"t": bad} if bad else {"": "x"}, {"f": 1.0}, 1))
    with pytest.raises(EncodeError):
        encode(Point("m", {}, {"f": float("nan")}, 1))
    with pytest.raises(EncodeError):
        encode(Point("m", {}, {}, 1))


def test_identifiers_are_strict():
    assert ident("reading") == '"reading"'
    for bad in ['a"b', "a;b", "", "1abc", 'x" OR 1=1 --']:
        with pytest.raises(ValueError):
            ident(bad)


async def test_bind_parameters_neutralise_injection(influxd, db_name):
    async with InfluxClient(influxd.url, db_name) as c:
        await c.setup()
        await c.write_lines(["reading,town=vitre,sensor=a temperature=20.0 1700000000000"])
        hostile = "a' OR sensor =~ /.*/ --"
        rows = await c.query_records("SELECT * FROM reading WHERE sensor = $s", {"s": hostile})
        assert rows == []
        rows = await c.query_records("SELECT * FROM reading WHERE sensor = $s", {"s": "a"})
        assert len(rows) == 1


async def test_errors_are_typed_with_server_message(influxd, db_name):
    async with InfluxClient(influxd.url, db_name) as c:
        await c.setup()
        with pytest.raises(InfluxWriteError) as exc:
            await c.write_lines(["this is not line protocol"])
        assert exc.value.status == 400 and "unable to parse" in exc.value.message
        with pytest.raises(InfluxClientError) as exc:
            await c.query("SELEC nothing")
        assert "error parsing query" in exc.value.message
    async with InfluxClient(influxd.url, "no_such_db") as c:
        with pytest.raises(InfluxWriteError) as exc:
            await c.write_lines(["m f=1 1"])
        assert exc.value.status == 404 and "database not found" in exc.value.message
    async with InfluxClient(f"http://127.0.0.1:{free_port()}", "x", timeout=2) as c:
        with pytest.raises(InfluxUnavailable):
            await c.ping()


async def test_query_csv_returns_rows_and_raises_statement_errors(influxd, db_name):
    async with InfluxClient(influxd.url, db_name) as c:
        await c.setup()
        assert await c.query_csv("SELECT * FROM reading") == b""
        await c.write_lines(["reading,town=vitre,sensor=a temperature=20.5 1700000000000"])
        body = await c.query_csv("SELECT temperature FROM reading WHERE sensor = $s", {"s": "a"})
        assert body.splitlines() == [b"name,tags,time,temperature", b"reading,,1700000000000,20.5"]
        with pytest.raises(InfluxClientError):  # a parse error is a 400, in CSV as in JSON
            await c.query_csv("SELECT FROM WHERE")
