"""Sensor registry: CRUD, resolve/ensure snapshot, CSV and GeoJSON round trips, bad rows."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatwatch.core.errors import RegistryError
from heatwatch.core.model import RESERVED_IDS, Sensor, SiteClass
from heatwatch.core.registry import (
    FIELDS,
    Registry,
    example_files,
    sensors_from_csv,
    sensors_from_geojson,
    sensors_to_csv,
    sensors_to_geojson,
)

HEADER = ",".join(FIELDS)


def sensor(id: str = "vit-01", town: str = "vitre", **kw: object) -> Sensor:
    return Sensor(id=id, town=town, **kw)  # type: ignore[arg-type]


@pytest.fixture
def reg(tmp_path: Path):
    with Registry(tmp_path / "var" / "registry.sqlite") as r:
        yield r


# CRUD ------------------------------------------------------------------------------------


def test_upsert_get_list_retire(reg: Registry) -> None:
    a = sensor("vit-01", latitude=48.1, longitude=-1.2, site_class=SiteClass.urban, installed=date(2024, 5, 1))
    b = sensor("so-01", "saint-omer", name="Place Foch")
    c = sensor("vit-02")
    for s in (a, b, c):
        reg.upsert(s)
    assert reg.get("vit-01") == a
    assert reg.get("nope") is None
    assert [s.id for s in reg.list()] == ["so-01", "vit-01", "vit-02"]  # by town, then id
    assert [s.id for s in reg.list("vitre")] == ["vit-01", "vit-02"]
    reg.upsert(a.model_copy(update={"name": "Place du Château"}))
    assert reg.get("vit-01").name == "Place du Château"  # type: ignore[union-attr]
    reg.retire("vit-02")
    assert [s.id for s in reg.list("vitre")] == ["vit-01"]
    assert [s.id for s in reg.list("vitre", include_retired=True)] == ["vit-01", "vit-02"]
    assert reg.get("vit-02").retired  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="no sensor"):
        reg.retire("nope")


def test_empty_optional_text_is_stored_as_none(reg: Registry) -> None:
    reg.upsert(sensor(lcz="", mqtt_identity="", device_profile=""))
    s = reg.get("vit-01")
    assert s is not None and (s.lcz, s.mqtt_identity, s.device_profile) == (None, None, None)


def test_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with Registry(path) as r:
        r.upsert(sensor(mqtt_identity="eui-a84041000001"))
    with Registry(path) as r:
        assert r.resolve("eui-a84041000001") == ("vitre", "vit-01")


def test_towns_are_checked_when_given(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite", towns=["vitre"]) as r:
        r.upsert(sensor())
        with pytest.raises(RegistryError, match="unknown town 'saint-omer'"):
            r.upsert(sensor("so-1", "saint-omer"))
        with pytest.raises(RegistryError, match="unknown town"):
            r.ensure("lille", "x-1")


# resolve / ensure --------------------------------------------------------------------------


def test_resolve_by_identity_then_id(reg: Registry) -> None:
    reg.upsert(sensor("vit-03", mqtt_identity="eui-a840411f8182c3d4", device_profile="dragino-lht65"))
    reg.upsert(sensor("so-01", "saint-omer"))
    assert reg.resolve("eui-a840411f8182c3d4") == ("vitre", "vit-03")
    assert reg.device_profile("eui-a840411f8182c3d4") == "dragino-lht65"
    assert reg.resolve("so-01") == ("saint-omer", "so-01")
    assert reg.device_profile("so-01") is None
    assert reg.resolve("unknown") is None


def test_identity_wins_over_a_sensor_id_spelled_the_same(reg: Registry) -> None:
    reg.upsert(sensor("dev-1", "saint-omer"))
    reg.upsert(sensor("vit-09", mqtt_identity="dev-1"))
    assert reg.resolve("dev-1") == ("vitre", "vit-09")


def test_resolve_cache_invalidated_on_writes(reg: Registry) -> None:
    assert reg.resolve("eui-1") is None
    reg.upsert(sensor("vit-01", mqtt_identity="eui-1"))
    assert reg.resolve("eui-1") == ("vitre", "vit-01")
    reg.upsert(sensor("vit-01", mqtt_identity="eui-2"))
    assert reg.resolve("eui-1") is None and reg.resolve("eui-2") == ("vitre", "vit-01")


def test_retired_sensor_releases_its_identity(reg: Registry) -> None:
    reg.upsert(sensor("vit-05", mqtt_identity="eui-7"))
    with pytest.raises(RegistryError, match="already belongs to active sensor 'vit-05'"):
        reg.upsert(sensor("vit-06", mqtt_identity="eui-7"))
    reg.retire("vit-05")
    reg.upsert(sensor("vit-06", mqtt_identity="eui-7"))
    assert reg.resolve("eui-7") == ("vitre", "vit-06")


def test_writes_by_another_process_seen_after_recheck(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with Registry(path, recheck_s=0) as ingest, Registry(path) as api:
        assert ingest.resolve("eui-9") is None
        api.upsert(sensor("vit-01", mqtt_identity="eui-9"))
        assert ingest.resolve("eui-9") == ("vitre", "vit-01")


def test_ensure(reg: Registry) -> None:
    reg.upsert(sensor("vit-01", latitude=48.1, longitude=-1.2, site_class=SiteClass.urban))
    assert reg.ensure("vitre", "vit-01") is False
    assert reg.get("vit-01").site_class is SiteClass.urban  # type: ignore[union-attr]  # untouched
    assert reg.ensure("vitre", "eui-a84041ffff000001") is True
    assert reg.ensure("vitre", "eui-a84041ffff000001") is False
    new = reg.get("eui-a84041ffff000001")
    assert new == sensor("eui-a84041ffff000001", site_class=SiteClass.unplaced)
    assert reg.resolve("eui-a84041ffff000001") == ("vitre", "eui-a84041ffff000001")
    assert reg.ensure("saint-omer", "vit-01") is False  # ids are global: not moved to another town
    with pytest.raises(RegistryError):
        reg.ensure("vitre", "bad id with spaces")


def test_ensure_sees_sensor_added_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with Registry(path, recheck_s=3600) as ingest, Registry(path) as api:
        assert ingest.resolve("x") is None  # snapshot taken, will not be rechecked
        api.upsert(sensor("vit-01"))
        assert ingest.ensure("vitre", "vit-01") is False


def test_thread_safety(reg: Registry) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                reg.ensure("vitre", f"t{n}-{i}")
                reg.upsert(sensor(f"u{n}-{i}", mqtt_identity=f"id-{n}-{i}"))
                assert reg.resolve(f"id-{n}-{i}") == ("vitre", f"u{n}-{i}")
                reg.list("vitre")
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(reg.list()) == 400


# Files -----------------------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(lambda i: i.lower() not in RESERVED_IDS)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
opt_text = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
sensors_st = st.lists(
    st.builds(
        Sensor,
        id=ids,
        town=st.sampled_from(["vitre", "saint-omer"]),
        name=text,
        latitude=st.none() | st.floats(-90, 90),
        longitude=st.none() | st.floats(-180, 180),
        site_class=st.sampled_from(list(SiteClass)),
        lcz=opt_text,
        height_m=st.none() | st.floats(0, 100),
        owner=text,
        installed=st.none() | st.dates(),
        device_profile=opt_text,
        mqtt_identity=st.none(),
        retired=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda s: s.id,
)


def by_id(sensors: list[Sensor]) -> list[Sensor]:
    return sorted(sensors, key=lambda s: (s.town, s.id))


@given(sensors_st)
def test_csv_text_round_trip(sensors: list[Sensor]) -> None:
    assert sensors_from_csv(sensors_to_csv(sensors)) == sensors


@given(sensors_st)
def test_geojson_text_round_trip(sensors: list[Sensor]) -> None:
    assert sensors_from_geojson(sensors_to_geojson(sensors)) == sensors


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".json"])
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(sensors=sensors_st)
def test_file_round_trip_through_registries(tmp_path: Path, suffix: str, sensors: list[Sensor]) -> None:
    with Registry(tmp_path / f"a{suffix}.sqlite") as a, Registry(tmp_path / f"b{suffix}.sqlite") as b:
        for s in a.list(include_retired=True):  # hypothesis reuses tmp_path: start empty
            a._db.execute("DELETE FROM sensor WHERE id = ?", (s.id,))
        a._invalidate()
        b._db.execute("DELETE FROM sensor")
        b._invalidate()
        assert a.upsert_many(sensors) == len(sensors)
        f = tmp_path / f"export{suffix}"
        assert a.export_file(f) == len(sensors)
        assert b.import_file(f) == len(sensors)
        assert b.list(include_retired=True) == by_id(sensors)


def test_export_one_town_and_geojson_shape(reg: Registry, tmp_path: Path) -> None:
    reg.upsert(sensor("vit-01", latitude=48.12445, longitude=-1.21045, site_class=SiteClass.urban))
    reg.upsert(sensor("vit-02"))
    reg.upsert(sensor("so-01", "saint-omer", latitude=50.7496, longitude=2.2523))
    f = tmp_path / "vitre.geojson"
    assert reg.export_file(f, town="vitre") == 2
    doc = json.loads(f.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    placed, unplaced = doc["features"]
    assert placed["geometry"] == {"type": "Point", "coordinates": [-1.21045, 48.12445]}
    assert "latitude" not in placed["properties"] and placed["properties"]["id"] == "vit-01"
    assert unplaced["geometry"] is None


def test_import_is_atomic_and_upserts(reg: Registry, tmp_path: Path) -> None:
    reg.upsert(sensor("vit-01", name="old"))
    reg.upsert(sensor("vit-99", name="kept"))
    f = tmp_path / "s.csv"
    head = ",".join(FIELDS[:13])  # the fields up to `retired`: a file may leave later columns out
    f.write_text(f"{head}\nvit-01,vitre,new,,,,,,town,,,,false\nvit-02,vitre,,,,,,,town,,,,false\n",
                 encoding="utf-8")
    assert reg.import_file(f) == 2
    assert reg.get("vit-01").name == "new"  # type: ignore[union-attr]
    assert reg.get("vit-99").name == "kept"  # type: ignore[union-attr]
    f.write_text(f"{head}\nvit-03,vitre,,,,,,,,,,,\nvit-04,vitre,,95,,,,,,,,,\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="row 3: latitude"):
        reg.import_file(f)
    assert reg.get("vit-03") is None  # nothing of the failed file was written


def test_import_identity_clash_rolls_back(reg: Registry, tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("id,town,mqtt_identity\nvit-01,vitre,eui-1\nvit-02,vitre,eui-1\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="eui-1"):
        reg.import_file(f)
    assert reg.list() == []


def test_csv_partial_columns_semicolons_bom_blank_lines() -> None:
    out = sensors_from_csv("\ufeffid;town;latitude;longitude;site_class\r\nvit-01;vitre;48.1;-1.2;park\r\n\r\n")
    assert out == [sensor(latitude=48.1, longitude=-1.2, site_class=SiteClass.park)]
    assert out[0].owner == "town"  # column absent: model default


@pytest.mark.parametrize("csv_text, message", [
    ("", "empty file"),
    ("id,town,colour\n", "row 1: unknown column"),
    ("id,name\n", "row 1: missing column"),
    ("id,town,id\n", "row 1: repeated column"),
    ("id,town\nvit-01,vitre,extra\n", "row 2: 3 cells"),
    ("id,town\nbad id,vitre\n", "row 2: id"),
    ("id,town\nvit-01,Vitré\n", "row 2: town"),
    ("id,town,site_class\nvit-01,vitre,forest\n", "row 2: site_class"),
    ("id,town,height_m\nvit-01,vitre,-3\n", "row 2: height_m"),
    ("id,town,installed\nvit-01,vitre,14/05/2024\n", "row 2: installed"),
    ("id,town,retired\nvit-01,vitre,maybe\n", "row 2: retired"),
    ("id,town\n\nvit-01,vitre\nvit-01,vitre\n", "appears twice"),
])
def test_bad_csv(tmp_path: Path, reg: Registry, csv_text: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(csv_text, encoding="utf-8")
    with pytest.raises(RegistryError, match=message) as info:
        reg.import_file(f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("doc, message", [
    ("{", "not valid JSON"),
    ({"type": "Feature"}, "FeatureCollection"),
    ({"type": "FeatureCollection", "features": [1]}, "feature 1: not a GeoJSON Feature"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"id": "a", "town": "vitre"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": []}, "properties": {}}]},
     "feature 2: geometry"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": ["x", 1]}, "properties": {}}]},
     "coordinates"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"id": "a", "town": "vitre", "colour": 1}}]},
     "unknown properties"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.0, 95.0]},
         "properties": {"id": "a", "town": "vitre"}}]},
     "feature 1: latitude"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.0, 50.0]},
         "properties": {"id": "a", "town": "vitre", "latitude": 49.0}}]},
     "disagrees"),
])
def test_bad_geojson(tmp_path: Path, reg: Registry, doc: object, message: str) -> None:
    f = tmp_path / "bad.geojson"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    with pytest.raises(RegistryError, match=message):
        reg.import_file(f)


def test_geojson_feature_id_and_altitude_accepted() -> None:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "so-01", "geometry": {"type": "Point", "coordinates": [2.2523, 50.7496, 12.0]},
         "properties": {"town": "saint-omer", "site_class": "urban"}}]}
    [s] = sensors_from_geojson(json.dumps(doc))
    assert (s.id, s.latitude, s.longitude) == ("so-01", 50.7496, 2.2523)


def test_unknown_extension_and_missing_file(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unknown file type"):
        reg.import_file(tmp_path / "s.xlsx")
    with pytest.raises(RegistryError, match="cannot read"):
        reg.import_file(tmp_path / "missing.csv")
    with pytest.raises(RegistryError, match="unknown file type"):
        reg.export_file(tmp_path / "s.txt")


def test_load_examples(reg: Registry) -> None:
    files = example_files()
    if not files:
        pytest.skip("packaged example registries not present in this build")
    n = reg.load_examples()
    assert n == sum(len(sensors_from_csv(t)) for _, t in files) > 0
    towns = {s.town for s in reg.list(include_retired=True)}
    assert towns <= {"vitre", "saint-omer"}
    # Every LoRaWAN example resolves through its TTS device id.
    for s in reg.list():
        if s.mqtt_identity:
            assert reg.resolve(s.mqtt_identity) == (s.town, s.id)


# Identity and town binding ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["a840414e31851234", "A8-40-41-4E-31-85-12-34", "a8:40:41:4e:31:85:12:34",
                                      "A840 414E 3185 1234"])
def test_deveui_identity_is_canonical_and_resolves(reg: Registry, spelling: str) -> None:
    reg.upsert(sensor(mqtt_identity=spelling))
    assert reg.get("vit-01").mqtt_identity == "A840414E31851234"
    assert reg.resolve("A840414E31851234") == ("vitre", "vit-01")


def test_tts_eui_device_id_also_resolves_by_deveui(reg: Registry) -> None:
    reg.upsert(sensor(mqtt_identity="eui-a840414e31851234", device_profile="dragino-lht65"))
    assert reg.get("vit-01").mqtt_identity == "eui-a840414e31851234"  # a device id: kept as written
    assert reg.resolve("eui-a840414e31851234") == reg.resolve("A840414E31851234") == ("vitre", "vit-01")
    assert reg.device_profile("A840414E31851234") == "dragino-lht65"


def test_one_deveui_one_active_sensor_whatever_the_spelling(reg: Registry) -> None:
    reg.upsert(sensor("vit-01", mqtt_identity="eui-a840414e31851234"))
    with pytest.raises(RegistryError, match="A840414E31851234 already belongs"):
        reg.upsert(sensor("vit-02", mqtt_identity="A8-40-41-4E-31-85-12-34"))
    reg.retire("vit-01")
    reg.upsert(sensor("vit-02", mqtt_identity="A8-40-41-4E-31-85-12-34"))  # a retired sensor released it


@pytest.mark.parametrize("bad_id", ["alerts", "live", "Recompute", "heatwatch"])
def test_reserved_words_are_not_sensor_ids(reg: Registry, bad_id: str) -> None:
    with pytest.raises(RegistryError, match="reserves"):
        reg.upsert(sensor(bad_id))


def test_a_sensor_id_cannot_be_a_town_id(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite", towns={"vitre", "saint-omer"}) as r:
        with pytest.raises(RegistryError, match="cannot be a town id"):
            r.upsert(sensor("saint-omer", "vitre"))
        with pytest.raises(RegistryError, match="cannot be a town id"):
            r.ensure("vitre", "saint-omer")


def test_town_of(reg: Registry) -> None:
    reg.upsert(sensor("vit-01", "vitre"))
    reg.upsert(sensor("so-01", "saint-omer"))
    reg.retire("so-01")
    reg.ensure("vitre", "vit-02")
    assert (reg.town_of("vit-01"), reg.town_of("so-01"), reg.town_of("vit-02"), reg.town_of("x")) == \
        ("vitre", "saint-omer", "vitre", None)


def test_list_is_read_again_as_soon_as_anything_changed(tmp_path: Path) -> None:
    """list() keeps its sensors between calls (the api asks at every uncached answer) but never answers from before
    a change: another connection's commit, this one's writes, a sensor registered on first sight."""
    path = tmp_path / "r.sqlite"
    api, cli = Registry(path, towns=["vitre"]), Registry(path, towns=["vitre"])
    cli.upsert(Sensor(id="a", town="vitre"))
    first = api.list(town="vitre")
    assert [s.id for s in first] == ["a"] and api.list(town="vitre")[0] is first[0]  # shared until a change
    cli.upsert(Sensor(id="b", town="vitre", latitude=48.1, longitude=-1.2))  # another connection, no recheck delay
    assert [s.id for s in api.list(town="vitre")] == ["a", "b"]
    cli.retire("a")
    assert [s.id for s in api.list(town="vitre")] == ["b"]
    assert [s.id for s in api.list(town="vitre", include_retired=True)] == ["a", "b"]
    api.upsert(Sensor(id="c", town="vitre"))  # its own write
    assert [s.id for s in api.list()] == ["b", "c"]
    assert api.ensure("vitre", "d") and [s.id for s in api.list()] == ["b", "c", "d"]
    api.close()
    cli.close()
