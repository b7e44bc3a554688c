"""``heatwatch report``: a synthetic summer in the real influxd, an intervention recorded, the HTML and PDF
written, self-contained, with indices, episodes, maps, rankings, intervention results and the licence."""

from __future__ import annotations

import base64
import re
from datetime import date

import pytest

from heatwatch.cli import main
from heatwatch.core.interventions import InterventionIn, InterventionStore
from support.insights_data import INTERVENTION_DAY, TREATED, load_registry, season, write_agg


@pytest.fixture
def env(influxd, db_name, tmp_path, monkeypatch):
    data = tmp_path / "var"
    monkeypatch.setenv("HEATWATCH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("HEATWATCH_INFLUX_DB", db_name)
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(data))
    load_registry(data / "registry.sqlite")
    write_agg(influxd.url, db_name, season().lines)
    InterventionStore.for_data_dir(data).add(InterventionIn(
        town="vitre", site="Place Notre-Dame (EXAMPLE)", sensors=[TREATED], date=INTERVENTION_DAY,
        kind="tree_planting"))
    return tmp_path


def test_report_html_and_pdf(env, capsys):
    out = env / "out"
    assert main(["report", "--town", "vitre", "--season", "2025", "--out", str(out), "--pdf"]) == 0
    printed = capsys.readouterr().out.split()
    html_path, pdf_path = out / "heatwatch-vitre-2025.html", out / "heatwatch-vitre-2025.pdf"
    assert printed == [str(html_path), str(pdf_path)]
    html = html_path.read_text(encoding="utf-8")
    # Self-contained: no external resource, every image a PNG data URI that decodes.
    assert not re.search(r'(src|href)="(?!data:|https://www\.etalab\.gouv\.fr)', html)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3  # season nights, season days, the hottest night
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "Vitré" in html and "été 2025" in html
    assert "2025-07-01" in html and "2025-07-05" in html  # the canicule episode
    assert "Etalab-2.0" in html and "Licence Ouverte" in html and "Sources" in html
    assert "vitre-centre-02" in html and "heures ≥ 35 °C" in html  # ranking with the hot-hour thresholds
    assert "Place Notre-Dame (EXAMPLE)" in html and "decreased" in html  # the intervention's measured cooling
    assert pdf_path.read_bytes().startswith(b"%PDF") and pdf_path.stat().st_size > 20_000


def test_report_for_a_season_without_data(env, capsys):
    assert main(["report", "--town", "vitre", "--season", "2019", "--out", str(env / "o")]) == 0
    html = (env / "o" / "heatwatch-vitre-2019.html").read_text(encoding="utf-8")
    assert "Aucune carte" in html and "Aucun épisode" in html and "Aucune intervention" in html


def test_report_arguments(env, capsys, monkeypatch):
    assert main(["report", "--town", "paris", "--season", "2025"]) == 2
    assert "unknown town" in capsys.readouterr().err
    assert main(["report", "--town", "vitre", "--season", "1900"]) == 2
    monkeypatch.setenv("HEATWATCH_INFLUX_URL", "http://127.0.0.1:9")  # nothing listens there
    assert main(["report", "--town", "vitre", "--season", "2025", "--out", str(env / "x")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert date.today().year >= 2025


def test_report_drivers_and_priorities_section(influxd, db_name, tmp_path, monkeypatch, capsys):
    """Vitré with its layers and a summer made from them: the report maps by regression-kriging, reads the canopy
    effect, lists where to green first, and sets the model's estimate of recorded works beside the measurement."""
    from heatwatch.core.registry import Registry
    from heatwatch.core.settings import CoreSettings
    from support.layers_town import SEASON, import_layers, layered_season

    data = tmp_path / "var"
    for k, v in (("INFLUX_URL", influxd.url), ("INFLUX_DB", db_name), ("DATA_DIR", str(data))):
        monkeypatch.setenv(f"HEATWATCH_{k}", v)
    load_registry(data / "registry.sqlite")
    with Registry(data / "registry.sqlite") as reg:
        sensors = reg.list(town="vitre")
    town = CoreSettings.load().towns["vitre"]
    store = import_layers(data / "layers", town, sensors)
    write_agg(influxd.url, db_name, layered_season(store, town, sensors).lines)
    InterventionStore.for_data_dir(data).add(InterventionIn(
        town="vitre", site="Parvis de la gare", sensors=["vitre-gare-01"], start=date(2025, 6, 20),
        end=date(2025, 6, 22), kind="tree_planting", canopy_points=15))
    out = tmp_path / "out"
    assert main(["report", "--town", "vitre", "--season", str(SEASON), "--out", str(out), "--pdf"]) == 0
    html = (out / f"heatwatch-vitre-{SEASON}.html").read_text(encoding="utf-8")
    assert "Facteurs et priorités" in html
    assert "per +10 points of tree canopy within 100 m" in html and "13 sites" in html
    assert "Où verdir en priorité" in html and "L93_" in html
    assert "Chaleur et biodiversité" in html and "cool refuge" in html
    assert "Travaux : estimation du modèle et effet mesuré" in html and "Parvis de la gare" in html
    assert "Régression-krigeage" in html  # the season's maps
    assert (out / f"heatwatch-vitre-{SEASON}.pdf").stat().st_size > 20_000
