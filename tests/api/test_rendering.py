"""The exact bytes the renderers write (times, JSON rows, CSV), pinned for tricky inputs: daylight-saving changes
in Europe/Paris, milliseconds, None, integers where the database's JSON dropped ``.0``, decimal commas. The
renderers are memoised and built for speed; these tests are what shows the speed changed nothing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from heatwatch.api.formats import dumps, envelope, json_rows
from heatwatch.api.timeutil import iso_local, iso_z, local_date
from heatwatch.core.datasets import DAILY, Column, Dataset
from heatwatch.core.tabular import CsvRenderer, Style, dataset_csv_renderer

PARIS = ZoneInfo("Europe/Paris")
KOLKATA = ZoneInfo("Asia/Kolkata")
CHATHAM = ZoneInfo("Pacific/Chatham")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# The obvious implementations: what the memoised ones must agree with, input by input.
def ref_iso_z(t: int | float) -> str:
    dt = datetime.fromtimestamp(int(t) / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{int(t) % 1000:03d}Z" if int(t) % 1000 else "Z")


def ref_iso_local(t: int | float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(int(t) / 1000, tz).isoformat(timespec="milliseconds" if int(t) % 1000 else "seconds")


def ref_local_date(t: int | float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t / 1000, tz).date().isoformat()


@pytest.mark.parametrize(("t", "want"), [
    (0, "1970-01-01T00:00:00Z"),
    (1, "1970-01-01T00:00:00.001Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (1_720_000_000_123, "2024-07-03T09:46:40.123Z"),
    (1_720_000_000_000.0, "2024-07-03T09:46:40Z"),
    (1_720_000_000_999.9, "2024-07-03T09:46:40.999Z"),  # truncated, as int() does
    (ms("2024-02-29T23:59:59.500+00:00"), "2024-02-29T23:59:59.500Z"),
    (ms("2100-12-31T23:59:59+00:00"), "2100-12-31T23:59:59Z"),
    (253_402_300_799_000, "9999-12-31T23:59:59Z"),
    (None, None),
])
def test_iso_z(t: int | float | None, want: str | None) -> None:
    for _ in range(2):  # the second answer comes from the memo
        assert iso_z(t) == want
        assert Style().time(t) == want


@pytest.mark.parametrize(("t", "tz", "want"), [
    # spring forward: 02:00 local does not exist
    (ms("2024-03-31T00:59:59.999+00:00"), PARIS, "2024-03-31T01:59:59.999+01:00"),
    (ms("2024-03-31T01:00:00+00:00"), PARIS, "2024-03-31T03:00:00+02:00"),
    # fall back: 02:00–03:00 local happens twice
    (ms("2024-10-27T00:30:00+00:00"), PARIS, "2024-10-27T02:30:00+02:00"),
    (ms("2024-10-27T01:30:00+00:00"), PARIS, "2024-10-27T02:30:00+01:00"),
    (ms("2024-07-19T22:00:00+00:00"), PARIS, "2024-07-20T00:00:00+02:00"),
    (ms("2024-07-19T22:00:00+00:00"), KOLKATA, "2024-07-20T03:30:00+05:30"),
    (ms("2024-07-19T22:00:00.050+00:00"), CHATHAM, "2024-07-20T10:45:00.050+12:45"),
    (ms("2024-07-19T22:00:00+00:00"), ZoneInfo("UTC"), "2024-07-19T22:00:00+00:00"),
    (None, PARIS, None),
])
def test_iso_local(t: int | None, tz: ZoneInfo, want: str | None) -> None:
    for _ in range(2):
        assert iso_local(t, tz) == want
        assert Style(tz=tz).time(t) == want
        if t is not None:
            assert Style(tz=tz).time_of()(t) == want


@pytest.mark.parametrize(("t", "tz", "want"), [
    (ms("2024-10-26T22:00:00+00:00"), PARIS, "2024-10-27"),  # local midnight, still +02:00
    (ms("2024-10-27T22:59:59.999+00:00"), PARIS, "2024-10-27"),  # 23:59:59.999 at +01:00: a 25-hour day
    (ms("2024-10-27T23:00:00+00:00"), PARIS, "2024-10-28"),
    (ms("2024-03-30T23:00:00+00:00"), PARIS, "2024-03-31"),  # a 23-hour day
    (ms("2024-03-31T21:59:59+00:00"), PARIS, "2024-03-31"),
    (ms("2024-03-31T22:00:00+00:00"), PARIS, "2024-04-01"),
    (ms("2024-03-31T22:00:00+00:00"), ZoneInfo("UTC"), "2024-03-31"),
])
def test_local_date(t: int, tz: ZoneInfo, want: str) -> None:
    for _ in range(2):
        assert local_date(t, tz) == want


def test_time_formatting_agrees_with_the_obvious_implementation() -> None:
    """Random instants 1900–2200 in zones with odd offsets, asked twice (computed, then from the memo) and
    interleaved across zones: the memo is keyed by zone, never answers one zone's time for another."""
    rng = random.Random(15)
    zones = [PARIS, KOLKATA, CHATHAM, ZoneInfo("America/St_Johns"), ZoneInfo("Australia/Lord_Howe"),
             ZoneInfo("UTC")]
    lo, hi = ms("1900-01-01T00:00:00+00:00"), ms("2200-01-01T00:00:00+00:00")
    instants = [rng.randrange(lo, hi) for _ in range(3000)]
    instants += [t // 3_600_000 * 3_600_000 for t in instants[:500]]  # whole hours, no milliseconds
    instants += [float(t) for t in instants[:200]]
    for _ in range(2):
        for t in instants:
            assert iso_z(t) == ref_iso_z(t), t
            for tz in zones:
                assert iso_local(t, tz) == ref_iso_local(t, tz), (t, tz)
                assert local_date(t, tz) == ref_local_date(t, tz), (t, tz)


# JSON rows -------------------------------------------------------------------------------------------------


def daily_row(t: int, **over: object) -> list[object]:
    values = {"time": t, "date": local_date(t, PARIS), "town": "vitre", "sensor": "v-centre", "tn": 20.5, "tx": 31,
              "t_mean": 24.25, "rh_mean": None, "heat_index_max": 33.1, "humidex_max": 36, "uhi_mean": -0.0,
              "uhi_night_max": 2.2, "hours_ge_30": 3, "tropical_night": True, "coverage": 1, "qc": 0,
              "network": "town", "trust": None} | over
    return [values[n] for n in DAILY.names]


ROWS = [daily_row(ms("2024-10-26T22:00:00+00:00")),
        daily_row(ms("2024-10-27T23:00:00.250+00:00"), tropical_night=False, tn=None, sensor="v-parc"),
        daily_row(ms("2024-03-30T23:00:00+00:00"), trust="provisional", network="citizen", coverage=0.958)]


def test_json_rows_pinned() -> None:
    want_utc = (
        b'[{"time":"2024-10-26T22:00:00Z","date":"2024-10-27","town":"vitre","sensor":"v-centre","tn":20.5,"tx":31,'
        b'"t_mean":24.25,"rh_mean":null,"heat_index_max":33.1,"humidex_max":36,"uhi_mean":-0.0,"uhi_night_max":2.2,'
        b'"hours_ge_30":3,"tropical_night":true,"coverage":1,"qc":0,"network":"town","trust":null},'
        b'{"time":"2024-10-27T23:00:00.250Z","date":"2024-10-28","town":"vitre","sensor":"v-parc","tn":null,"tx":31,'
        b'"t_mean":24.25,"rh_mean":null,"heat_index_max":33.1,"humidex_max":36,"uhi_mean":-0.0,"uhi_night_max":2.2,'
        b'"hours_ge_30":3,"tropical_night":false,"coverage":1,"qc":0,"network":"town","trust":null},'
        b'{"time":"2024-03-30T23:00:00Z","date":"2024-03-31","town":"vitre","sensor":"v-centre","tn":20.5,"tx":31,'
        b'"t_mean":24.25,"rh_mean":null,"heat_index_max":33.1,"humidex_max":36,"uhi_mean":-0.0,"uhi_night_max":2.2,'
        b'"hours_ge_30":3,"tropical_night":true,"coverage":0.958,"qc":0,"network":"citizen","trust":"provisional"}]')
    before = [r[:] for r in ROWS]
    for _ in range(2):
        assert dumps(json_rows(DAILY, ROWS)) == want_utc
    assert ROWS == before  # the rows are left as they were
    local = dumps(json_rows(DAILY, ROWS, Style(tz=PARIS)))
    assert [r["time"] for r in orjson.loads(local)] == [
        "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00.250+01:00", "2024-03-31T00:00:00+01:00"]
    assert local.replace(b"+02:00", b"").replace(b"+01:00", b"").replace(b"2024-10-27T00:00:00", b"") == \
        want_utc.replace(b"Z", b"").replace(b"2024-10-26T22:00:00", b"").replace(
            b"2024-10-27T23:00:00.250", b"2024-10-28T00:00:00.250").replace(b"2024-03-30T23", b"2024-03-31T00")


def test_json_rows_in_an_envelope_and_edge_cases() -> None:
    ds = Dataset("t", "m", "rp", "T", "test", "HOURLY", (Column("time", "datetime", "t"), Column("v", "number", "v")))
    assert dumps(envelope({"n": 1}, json_rows(ds, iter([[None, 1.5], [1, None]])))) == \
        b'{"meta":{"n":1},"data":[{"time":null,"v":1.5},{"time":"1970-01-01T00:00:00.001Z","v":null}]}'
    assert json_rows(ds, []) == []
    with pytest.raises(ValueError):
        json_rows(ds, [[1, 2.0], [1, 2.0, 3]])


def test_held_rows_are_written_as_json_rows_writes_them() -> None:
    """A JSON page of held rows (tags and fields written once per row, the rest per answer) is byte for byte the
    page written from the finished rows, for every time style, network and trust, odd values included."""
    from heatwatch.api.formats import held_json_rows, held_layout, stored_json, stored_names
    from heatwatch.core.datasets import TOWN_DAILY

    assert held_layout(DAILY) and held_layout(TOWN_DAILY)
    rng = random.Random(7)
    values = [None, 0, -0.0, 24.0, 24, 1e-7, 123456789.123, 1.5e300, True, False, "a \"quoted\" \\ name é ☀"]
    stored = []
    t = ms("2024-03-30T22:00:00+00:00")
    for _ in range(300):
        t += rng.choice([0, 3_600_000, 86_400_000, 250])
        sensor = rng.choice(["v-centre", "v-parc", "c-jardin"])
        stored.append([t, "vitre", sensor, *(rng.choice(values) for _ in DAILY.fields)])
    names = stored_names(DAILY)
    texts = [stored_json(names, row) for row in stored]
    pairs = {"v-centre": ("town", "official"), "v-parc": ("citizen", "confirmed"), "c-jardin": ("citizen", None)}

    tail = {sensor: b',"network":' + dumps(network) + b',"trust":' + dumps(trust) + b"}"
            for sensor, (network, trust) in pairs.items()}

    before = [r[:] for r in stored]
    for style in (Style(), Style(tz=PARIS), Style(tz=CHATHAM)):
        for _ in range(2):  # the second time from the prefixes written the first
            finished = [[r[0], local_date(r[0], PARIS), *r[1:], *pairs[r[2]]] for r in stored]
            want = dumps(envelope({"n": 1}, json_rows(DAILY, finished, style)))
            times = [r[0] for r in stored]
            assert dumps(envelope({"n": 1}, held_json_rows(DAILY, stored, texts, times, style, PARIS, tail))) == want
            # one sensor's rows, the sensor given: its end written without reading the rows
            mine = [k for k, r in enumerate(stored) if r[2] == "v-parc"]
            assert mine
            assert dumps(held_json_rows(DAILY, [], [texts[k] for k in mine], [times[k] for k in mine], style, PARIS,
                                        tail, "v-parc")) == dumps(json_rows(DAILY, [finished[k] for k in mine], style))
    assert stored == before
    # a dataset without date nor sensor columns: the town's indices
    town_rows = [[r[0], "vitre", *(rng.choice(values) for _ in TOWN_DAILY.fields)] for r in stored[:40]]
    town_texts = [stored_json(stored_names(TOWN_DAILY), r) for r in town_rows]
    want = dumps([{"time": iso_z(r[0]), "date": local_date(r[0], PARIS), **dict(zip(TOWN_DAILY.names[2:], r[1:],
                                                                                       strict=True))}
                  for r in town_rows])
    assert dumps(held_json_rows(TOWN_DAILY, town_rows, town_texts, [r[0] for r in town_rows], Style(), PARIS,
                                None)) == want
    assert dumps(held_json_rows(DAILY, [], [], [], Style(), PARIS, tail)) == b"[]"


# CSV -------------------------------------------------------------------------------------------------------


def test_csv_pinned_comma_and_french() -> None:
    head = ",".join(DAILY.names).encode() + b"\r\n"
    r = dataset_csv_renderer(DAILY, Style())
    assert r.head() == head
    assert r.batch([row[:] for row in ROWS]) == (
        b"2024-10-26T22:00:00Z,2024-10-27,vitre,v-centre,20.5,31,24.25,,33.1,36,-0.0,2.2,3,true,1,0,town,\r\n"
        b"2024-10-27T23:00:00.250Z,2024-10-28,vitre,v-parc,,31,24.25,,33.1,36,-0.0,2.2,3,false,1,0,town,\r\n"
        b"2024-03-30T23:00:00Z,2024-03-31,vitre,v-centre,20.5,31,24.25,,33.1,36,-0.0,2.2,3,true,0.958,0,citizen,"
        b"provisional\r\n")
    fr = dataset_csv_renderer(DAILY, Style(";", ",", PARIS))
    assert fr.head() == "\ufeff".encode() + head.replace(b",", b";")
    assert fr.batch([row[:] for row in ROWS]) == (
        b"2024-10-27T00:00:00+02:00;2024-10-27;vitre;v-centre;20,5;31,0;24,25;;33,1;36,0;-0,0;2,2;3;true;1,0;0;town;"
        b"\r\n"
        b"2024-10-28T00:00:00.250+01:00;2024-10-28;vitre;v-parc;;31,0;24,25;;33,1;36,0;-0,0;2,2;3;false;1,0;0;town;"
        b"\r\n"
        b"2024-03-31T00:00:00+01:00;2024-03-31;vitre;v-centre;20,5;31,0;24,25;;33,1;36,0;-0,0;2,2;3;true;0,958;0;"
        b"citizen;provisional\r\n")


def test_csv_quoting_and_unknown_types() -> None:
    """Fields holding the separator, a quote or a line break are quoted; without declared types, booleans and
    (with a decimal comma) floats are found cell by cell, and integers stay as they are."""
    r = CsvRenderer(["time", "a", "b", "c"], ";", bool_cols=None, style=Style(";", ","))
    assert r.batch([[0, 'x;"y"', 1.25, True], [1000, "l\nb", 3, None], [None, "", -0.5, False]]) == (
        b'1970-01-01T00:00:00Z;"x;""y""";1,25;true\r\n'
        b'1970-01-01T00:00:01Z;"l\nb";3;\r\n'
        b";;-0,5;false\r\n")


def _cells(rng: random.Random, kind: str) -> object:
    if rng.random() < 0.15:
        return None
    if kind == "number":
        return rng.choice([rng.randint(-40, 45), round(rng.uniform(-40, 45), rng.randint(0, 3)), -0.0, 0.0, 1e16,
                           1.5e-05, 123456789.125, float("nan"), float("inf")])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        return rng.randint(-3, 10**6)
    return "".join(rng.choice('ab é;,"\r\n\t 0.') for _ in range(rng.randint(0, 6)))


def test_csv_by_columns_writes_what_csv_writer_writes() -> None:
    """Columns of random plain cells (strings full of separators, quotes and line breaks; floats that repr with an
    exponent; None) against csv.writer, for both separators."""
    import csv
    import io

    from heatwatch.core.tabular import csv_rows_text

    rng = random.Random(7)
    kinds = ["time", "string", "number", "boolean", "integer", "string"]
    for _ in range(200):
        rows = [[_cells(rng, k) for k in kinds] for _ in range(rng.randint(1, 12))]
        for sep in (",", ";"):
            buf = io.StringIO()
            csv.writer(buf, delimiter=sep, lineterminator="\r\n").writerows(rows)
            assert csv_rows_text(list(zip(*rows, strict=True)), sep) == buf.getvalue(), rows


def test_csv_renderer_by_columns_agrees_with_row_by_row() -> None:
    """The column-at-a-time batch against the row-by-row one (the renderer's own fallback, and how it wrote every
    batch before) on random daily rows, in every style; the rows are left as they were."""
    rng = random.Random(11)
    base = ms("2024-03-30T23:00:00+00:00")
    for style in (Style(), Style(";", ","), Style(";", ",", PARIS), Style(";", ".", KOLKATA)):
        for _ in range(30):
            rows = []
            for _ in range(rng.randint(1, 40)):
                row = [base + rng.randrange(-3, 400) * 3_600_000 + rng.choice([0, 0, 250]),
                       *[_cells(rng, c.type if c.type != "string" else "string") for c in DAILY.columns[1:]]]
                rows.append(row)
            r = dataset_csv_renderer(DAILY, style)
            before = [row[:] for row in rows]
            fast = r.batch(rows)
            assert rows == before
            assert fast == dataset_csv_renderer(DAILY, style)._rows([row[:] for row in rows])


def test_csv_bytes_pinned_and_by_columns() -> None:
    """The small CSV answers (latest, sensors, rankings): booleans in any column, decimal commas on floats only,
    missing keys empty, rows of one field written by csv.writer."""
    from heatwatch.api.respond import csv_bytes

    rows = [{"sensor": "v;1", "time": "2024-07-20T00:00:00Z", "t": 21.5, "n": 3, "ok": True},
            {"sensor": 'say "hi"', "time": None, "t": None, "n": 24, "ok": False, "extra": "ignored"},
            {"sensor": "v2", "t": -0.0}]
    assert csv_bytes(["sensor", "time", "t", "n", "ok"], rows, ";") == (
        "\ufeffsensor;time;t;n;ok\r\n"
        '"v;1";2024-07-20T00:00:00Z;21,5;3;true\r\n'
        '"say ""hi""";;;24;false\r\n'
        "v2;;-0,0;;\r\n").encode()
    assert csv_bytes(["sensor", "t"], rows, ",") == (
        b'sensor,t\r\nv;1,21.5\r\n"say ""hi""",\r\nv2,-0.0\r\n')
    assert csv_bytes(["t"], rows, ",") == b't\r\n21.5\r\n""\r\n-0.0\r\n'
    assert csv_bytes(["sensor", "t"], [], ";") == "\ufeffsensor;t\r\n".encode()


def test_dumps_keys_that_are_not_strings() -> None:
    """Tried without OPT_NON_STR_KEYS first (faster): a payload with int or date keys is still written whole."""
    import datetime

    assert dumps({"a": {1: "x", datetime.date(2024, 7, 20): [1.5, None, True]}, "b": -0.0}) == \
        b'{"a":{"1":"x","2024-07-20":[1.5,null,true]},"b":-0.0}'
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_normalised_pairs_are_what_parsing_the_normalised_query_gives() -> None:
    """The guard keeps the pairs it computed (meta.query and next links read them) instead of parsing its own
    string again: the same pairs, whatever the query holds (escapes, '+', blanks, UTF-8, bytes that are not)."""
    from urllib.parse import parse_qsl, urlencode

    from heatwatch.api.errors import ApiError
    from heatwatch.api.params import ParamSpec, normalised_pairs

    spec = ParamSpec(frozenset({"a", "b", "from", "tz", "x y", "é"}), frozenset({"b"}),
                     (("tz", "Europe/Paris"), ("x y", "1 2")))
    rng = random.Random(3)
    pieces = ["a", "b", "from", "tz", "x+y", "x%20y", "%C3%A9", "\xe9".encode("latin-1").decode("latin-1")]
    values = ["", "2024-07-01", "2024-07-01T00:00:00%2B02:00", "a+b", "%26%3D", "%FF", "%C3%A9t%C3%A9", "x=y", "Z"]
    checked = 0
    for _ in range(500):
        names = rng.sample(pieces, rng.randint(0, 4))
        query = "&".join(n if rng.random() < 0.1 else f"{n}={rng.choice(values)}" for n in names)
        try:
            pairs = normalised_pairs(query.encode("latin-1"), spec)
        except ApiError:  # refused (a name given twice)
            continue
        # the string the guard keeps for the caches (urlencode of the pairs) parses back into the same pairs
        assert parse_qsl(urlencode(pairs), keep_blank_values=True) == pairs, query
        checked += 1
    assert checked > 300


def test_csv_number_memo_keeps_equal_numbers_apart() -> None:
    """Numbers whose texts are memoised: 24 and 24.0, 1 and True, 0.0 and -0.0 are equal as keys of a dict but are
    written differently; each keeps its own text on the second pass (from the memo) as on the first."""
    from heatwatch.core.tabular import csv_rows_text

    col = [24, 24.0, 1, True, 1.0, 0.0, -0.0, 0, float("nan"), float("inf"), 1e16, 1e-05, None, 2.5]
    want = "24\r\n24.0\r\n1\r\nTrue\r\n1.0\r\n0.0\r\n-0.0\r\n0\r\nnan\r\ninf\r\n1e+16\r\n1e-05\r\n\r\n2.5\r\n"
    for _ in range(3):
        assert csv_rows_text([col, [""] * len(col)], ";") == want.replace("\r\n", ";\r\n")
    number = Column("v", "number", "v")
    ds = Dataset("t", "m", "rp", "T", "test", "HOURLY", (Column("time", "datetime", "t"), number))
    rows = [[0, v] for v in col if v is not True]
    for _ in range(3):
        assert dataset_csv_renderer(ds, Style(";", ",")).batch([r[:] for r in rows]).decode().split("\r\n")[:-1] == [
            "1970-01-01T00:00:00Z;" + t for t in ["24,0", "24,0", "1,0", "1,0", "0,0", "-0,0", "0,0", "nan", "inf",
                                                  "1e+16", "1e-05", "", "2,5"]]


def test_json_stream_writes_the_rows_of_every_batch() -> None:
    """A streamed JSON export: the envelope around the objects of every batch, empty batches included."""
    import asyncio

    from heatwatch.api.formats import json_stream

    async def batches() -> AsyncIterator[list[list[object]]]:
        yield [r[:] for r in ROWS[:2]]
        yield []
        yield [r[:] for r in ROWS[2:]]

    async def body() -> bytes:
        return b"".join([chunk async for chunk in json_stream({"n": 1}, DAILY, batches(), Style(tz=PARIS))])

    out = asyncio.run(body())
    assert out == b'{"meta":{"n":1},"data":[' + b",".join(dumps(r) for r in json_rows(DAILY, ROWS, Style(tz=PARIS))) \
        + b"]}"
    assert len(orjson.loads(out)["data"]) == 3
