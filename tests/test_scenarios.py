"""Scenario files: every preset runs on the bundled data; bad files fail with file, line and key; CLI exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from critmin.errors import DataError
from critmin.supplychain.presets import list_presets, load_preset
from critmin.supplychain.scenario import load_scenario, parse_scenario

GOOD = """\
name: test
horizon_months: 12
start: 2025-01
events:
  - type: export_restriction
    country: CHN
    commodities: [graphite]
    stage: mine
    fraction: 0.5
    targets: all
    start: 2025-02
    duration_months: 6
responses:
  stockpile: {stage: mine, USA: 1000, release_max_per_month: 300}
"""


#: Presets whose cut meets no flow on the 2024 baseline (a finding, stated in their descriptions): Indonesia
#: already exports no nickel ore; China exports no antimony ore (it imports it), and critmin has no trade code
#: for antimony oxide or metal.
NO_EXPOSURE = {"indonesia-nickel-2014", "indonesia-nickel-2020", "china-antimony-2024"}


@pytest.fixture(scope="module")
def network():
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network

    return build_network(Catalog())


def test_presets_cover_the_catalogue_list():
    names = set(list_presets())
    assert {"china-ree-2010-quota", "china-ree-2025-04", "china-ree-2025-10", "china-ree-2025-10-suspended",
            "china-ga-ge-2023", "china-us-ban-2024", "china-graphite-2023", "china-antimony-2024",
            "china-5metals-2025", "drc-cobalt-2025", "indonesia-nickel-2014", "indonesia-nickel-2020"} <= names


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_runs(name, network):
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.run import run_scenario

    sc = load_preset(name)
    assert "CHN-" in sc.description or "COD-" in sc.description or "IDN-" in sc.description  # cites event_id
    ds, summary = run_scenario(name, catalog=Catalog(), importers="USA,JPN,USA+JPN,ROW", network=network)
    assert len(summary) > 0 and set(summary.consumer) <= {"USA", "JPN", "USA+JPN", "ROW"}
    assert (summary.peak_shortfall_t.dropna() >= 0).all()
    assert (summary.peak_shortfall_pct.dropna() <= 100 + 1e-9).all()
    sf = ds["shortfall"]
    assert float(sf.min()) >= -1e-9
    assert float(sf.max()) > 0 or name in NO_EXPOSURE


def test_stockpile_in_a_scenario_lowers_shortfall(network):
    from critmin.supplychain.run import simulate_scenario

    with_stock = simulate_scenario(parse_scenario(GOOD), network)
    without = simulate_scenario(parse_scenario(GOOD.replace("USA: 1000", "USA: 0")), network)
    a = with_stock["cumulative_unmet"].sel(consumer="USA", stage="mine", commodity="graphite").isel(month=-1)
    b = without["cumulative_unmet"].sel(consumer="USA", stage="mine", commodity="graphite").isel(month=-1)
    assert float(b - a) == pytest.approx(min(1000.0, float(b)), rel=1e-9)
    assert float(with_stock["days_of_cover"].sel(consumer="USA", stage="mine", commodity="graphite").isel(month=0)) > 0


def test_targets_named_and_outside_group(network):
    from critmin.supplychain.run import simulate_scenario

    only_usa = simulate_scenario(parse_scenario(GOOD.replace("targets: all", "targets: [USA]")), network)
    sf = only_usa["shortfall"].sel(stage="mine", commodity="graphite").max("month")
    assert float(sf.sel(consumer="USA")) > 0 and float(sf.sel(consumer="JPN")) == 0
    outside = simulate_scenario(parse_scenario(GOOD.replace("targets: all", "targets: {outside: msp}")), network)
    sf = outside["shortfall"].sel(stage="mine", commodity="graphite").max("month")
    assert float(sf.sel(consumer="USA")) == 0 and float(sf.sel(consumer="JPN")) == 0


BAD = [
    ("country: CHN", "country: XYZ", "country", 6),
    ("commodities: [graphite]", "commodities: [unobtainium]", "commodities", 7),
    ("duration_months: 6", "duration_months: -3", "duration_months", 12),
    ("fraction: 0.5", "fraction: 1.5", "fraction", 9),
    ("    targets: all", "    targets: all\n    colour: red", "colour", 11),
    ("stage: mine\n", "stage: smelting\n", "stage", 8),
    ("start: 2025-02", "start: 2025-13", "start", 11),
    ("horizon_months: 12", "horizon: 12", "horizon", 2),
]


@pytest.mark.parametrize(("old", "new", "key", "line"), BAD)
def test_bad_file_names_file_line_key(tmp_path, old, new, key, line):
    assert old in GOOD
    path = tmp_path / "bad.yml"
    path.write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_scenario(path)
    e = err.value
    assert e.file == "bad.yml" and e.column == key and e.row == line, str(e)
    assert f"line {line}" in str(e) and "bad.yml" in str(e)


def test_yaml_syntax_error_has_line(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("name: x\nevents: [\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_scenario(path)
    assert err.value.file == "broken.yml" and err.value.row is not None


def _app():
    from critmin.cli.scenario_cmd import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_cli_list_show_run(tmp_path):
    runner = CliRunner()
    app = _app()
    res = runner.invoke(app, ["scenario", "list"])
    assert res.exit_code == 0 and "china-ree-2010-quota" in res.output
    res = runner.invoke(app, ["scenario", "show", "china-ga-ge-2023"])
    assert res.exit_code == 0 and "CHN-2023-GA-GE" in res.output
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["scenario", "run", "china-graphite-2023", "--importer", "USA,USA+JPN", "--format",
                              "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    import pandas as pd

    frame = pd.read_csv(out)
    assert set(frame.consumer) == {"USA", "USA+JPN"} and {"peak_shortfall_pct", "unmet_value_usd"} <= set(frame)
    assert np.isfinite(frame.peak_shortfall_t).all()
    # Japan's gallium demand is unknown in the bundled data: the bloc is not reported as a partial sum
    res = runner.invoke(app, ["scenario", "run", "china-ga-ge-2023", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert "USA" in set(frame.consumer) and "USA+JPN" not in set(frame[frame.commodity == "gallium"].consumer)


def test_cli_bad_file_exit_2_nothing_written(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(GOOD.replace("fraction: 0.5", "fraction: 2"), encoding="utf-8")
    out = tmp_path / "never.csv"
    res = CliRunner().invoke(_app(), ["scenario", "run", str(bad), "--format", "csv", "--out", str(out)])
    assert res.exit_code == 2
    assert "bad.yml" in res.output and "line 9" in res.output and "fraction" in res.output
    assert not out.exists()


def test_negative_apparent_consumption_is_flagged():
    """US rare-earth metal: production 0 + imports − exports < 0 in the bundled trade: the network says so
    instead of showing a demand of 0 without comment."""
    from critmin.reference.catalog import Catalog
    from critmin.supplychain.network import build_network

    net = build_network(Catalog(), ["rare-earths"])
    flagged = [a for a in net.assumptions if "apparent consumption is negative" in a]
    assert any("rare-earths metal" in a and "USA" in a for a in flagged)


def test_scenario_says_why_an_importer_has_no_rows():
    """USA+JPN for gallium/germanium: Japan's demand is unknown, so the bloc is unknown and has no rows; the
    command says so instead of printing an empty table without comment."""
    from typer.testing import CliRunner

    from critmin.cli.main import app

    res = CliRunner().invoke(app, ["scenario", "run", "china-ga-ge-2023", "--importer", "usa-jpn,USA"])
    assert res.exit_code == 0, res.output
    assert "no rows for usa-jpn" in res.output
