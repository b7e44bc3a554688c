"""`heatwatch simulate` argument handling, without a broker."""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from heatwatch.core.settings import CoreSettings
from heatwatch.simulate import cli, read_sensors_csv


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_no_range_means_live_and_a_range_means_replay() -> None:
    assert cli.options_from_args(_parse()).live
    opts = cli.options_from_args(_parse("--start", "2025-07-01", "--duration", "7d", "--rate", "500",
                                        "--sensors", "500", "--format", "senml", "--seed", "3",
                                        "--heatwave-start", "2025-07-04", "--heatwave-days", "4", "--no-faults"))
    assert not opts.live and opts.duration == timedelta(days=7) and opts.rate == 500 and opts.sensors == 500
    assert opts.format == "senml" and opts.seed == 3 and opts.faults is False
    assert opts.heatwave is not None and opts.heatwave.start == date(2025, 7, 4) and opts.heatwave.days == 4
    assert cli.options_from_args(_parse("--no-heatwave", "--duration", "1h")).heatwave is None


def test_durations() -> None:
    assert cli.parse_duration("1d12h") == timedelta(hours=36)
    assert cli.parse_duration("90") == timedelta(seconds=90)
    assert cli.parse_duration("5m") == timedelta(minutes=5)
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_duration("5 parsecs")


def test_dry_run_prints_topic_and_payload(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--dry-run", "--start", "2025-07-01", "--duration", "10m", "--towns", "vitre")
    assert cli.run(args, CoreSettings.load()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 14 * 2
    for line in lines:
        topic, payload = line.split(" ", 1)
        assert topic.split("/")[0] in ("heat", "senml", "v3")
        json.loads(payload)


def test_export_sensors(tmp_path: Path) -> None:
    out = tmp_path / "sensors.csv"
    assert cli.run(_parse("--export-sensors", str(out), "--sensors", "60"), CoreSettings.load()) == 0
    assert len(read_sensors_csv(out)) == 60


def test_bad_range_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_parse("--dry-run", "--start", "2025-07-02", "--end", "2025-07-01"), CoreSettings.load()) == 2
    assert "end must be after start" in capsys.readouterr().err
