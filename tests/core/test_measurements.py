"""The stored schema is defined once: every writer and reader takes its names and types from it."""

from __future__ import annotations

import re

import pytest

from heatwatch.core.measurements import AGGREGATES, DAILY_BLOCKING, INFO_FLAGS, MEASUREMENTS, VALUE_FLAGS, QcFlag


def test_schema_is_well_formed() -> None:
    for m in MEASUREMENTS.values():
        names = [*m.tag_names, *m.field_names]
        assert len(set(names)) == len(names), m.name
        assert "time" not in names
        for n in (m.name, *names):
            assert re.fullmatch(r"[a-z][a-z0-9_]*", n), n  # plain identifiers: no escaping anywhere
        # Every series belongs to a town, except an official station's, which several towns may share.
        assert m.rp in ("raw", "agg") and m.tags[0].name == ("station" if m.name == "station_hourly" else "town")
    assert MEASUREMENTS["reading"].rp == "raw" and all(m.rp == "agg" for m in AGGREGATES)


def test_col_checks_the_name_against_the_schema() -> None:
    daily = MEASUREMENTS["daily"]
    assert daily.col("uhi_night_max") == '"uhi_night_max"' and daily.col("sensor") == '"sensor"'
    with pytest.raises(KeyError, match="no tag or field 'uhi'"):
        daily.col("uhi")  # an hourly field: a reader asking daily for it fails where it is built


def test_qc_flags() -> None:
    assert [int(f) for f in QcFlag] == [1 << i for i in range(13)]
    assert not VALUE_FLAGS & (QcFlag.AVAILABILITY | INFO_FLAGS)
    assert DAILY_BLOCKING == (QcFlag.AVAILABILITY | QcFlag.UNPLACED | QcFlag.DRIFT | QcFlag.MONTH_FLAGGED
                              | QcFlag.MONTH_CORRELATION)


def test_analytics_writes_what_the_schema_says() -> None:
    from heatwatch.analytics import aggregate, writer

    assert writer.SCHEMA == {m.name: (m.tag_names, m.kinds) for m in AGGREGATES}
    assert aggregate.HOURLY_COLUMNS == MEASUREMENTS["hourly"].columns
    assert aggregate.DAILY_COLUMNS == MEASUREMENTS["daily"].columns
    assert aggregate.TOWN_DAILY_COLUMNS == MEASUREMENTS["town_daily"].columns


def test_api_datasets_publish_what_the_schema_says() -> None:
    from heatwatch.core.datasets import DATASETS, FRICTIONLESS

    for ds in DATASETS.values():
        m = MEASUREMENTS[ds.measurement]
        assert ds.rp == m.rp and ds.tag_keys == m.tag_names
        assert ds.fields == list(m.field_names)  # every stored field is published, in schema order
        for c in ds.columns:
            if c.name in m.field_names:
                f = m.field(c.name)
                assert (c.type, c.unit, c.description) == (FRICTIONLESS[f.kind], f.unit, f.description)
