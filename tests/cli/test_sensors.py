"""``heatwatch sensors import/export/list`` against a registry in a temporary data dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from heatwatch.cli import sensors
from heatwatch.core.registry import FIELDS, Registry
from heatwatch.core.settings import Settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="heatwatch sensors")
    sensors.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(data_dir=tmp_path / "var")


def write_csv(path: Path, rows: list[str]) -> Path:
    # The rows give the fields up to `retired`; a file may leave the later (participatory) columns out.
    path.write_text(",".join(FIELDS[:13]) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_import_export_list(tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "in.csv", [
        "vit-01,vitre,Place du Château,48.12445,-1.21045,urban,LCZ 2,3.5,town,2024-05-14,dragino-lht65,eui-1,false",
        "so-01,saint-omer,,,,unplaced,,,town,,senml,,false",
        "vit-02,vitre,old,,,unplaced,,,town,,,,true",
    ])
    assert sensors.run(parse("import", str(src)), settings) == 0
    assert "imported 3 sensor(s)" in capsys.readouterr().out

    out = tmp_path / "vitre.geojson"
    assert sensors.run(parse("export", str(out), "--town", "vitre"), settings) == 0
    assert "exported 2 sensor(s)" in capsys.readouterr().out
    assert [f["properties"]["id"] for f in json.loads(out.read_text())["features"]] == ["vit-01", "vit-02"]

    back = tmp_path / "all.csv"
    assert sensors.run(parse("export", str(back)), settings) == 0
    with Registry(tmp_path / "other.sqlite") as other:
        assert other.import_file(back) == 3
        with Registry(settings.registry_path) as reg:
            assert other.list(include_retired=True) == reg.list(include_retired=True)

    capsys.readouterr()
    assert sensors.run(parse("list"), settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["saint-omer\tso-01\tunplaced\tunplaced\t",
                     "vitre\tvit-01\turban\t48.12445,-1.21045\tPlace du Château"]
    assert sensors.run(parse("list", "--town", "vitre", "--all"), settings) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("old retired")


def test_bad_row_reports_row_and_imports_nothing(tmp_path: Path, settings: Settings,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "in.csv", ["vit-01,vitre,,,,,,,town,,,,false", "vit-02,vitre,,91,,,,,town,,,,false"])
    assert sensors.run(parse("import", str(src)), settings) == 1
    err = capsys.readouterr().err
    assert "row 3" in err and "latitude" in err
    with Registry(settings.registry_path) as reg:
        assert reg.list() == []


def test_unknown_town_rejected(tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "in.csv", ["lil-01,lille,,,,,,,town,,,,false"])
    assert sensors.run(parse("import", str(src)), settings) == 1
    assert "unknown town 'lille'" in capsys.readouterr().err
    assert sensors.run(parse("export", str(tmp_path / "x.csv"), "--town", "lille"), settings) == 2


def test_unknown_device_profile_warns(tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "in.csv", ["vit-01,vitre,,,,,,,town,,dragino-lht99,eui-1,false",
                                          "vit-02,vitre,,,,,,,town,,native,,false"])
    assert sensors.run(parse("import", str(src)), settings) == 0
    err = capsys.readouterr().err
    assert "vit-01 (dragino-lht99)" in err and "vit-02" not in err


def test_missing_subcommand_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit):
        parse()
