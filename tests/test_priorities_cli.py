"""``critmin priorities`` on the command line: bad --as-of / --year exit 2 with one line; CSV output."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from typer.testing import CliRunner

import critmin
from critmin import workflows
from critmin.cli.main import app
from critmin.errors import ConfigError

runner = CliRunner()


def _error_lines(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.strip()]


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday"])
def test_bad_as_of_exits_2_with_one_line(value):
    res = runner.invoke(app, ["priorities", "--as-of", value])
    assert res.exit_code == 2, res.output
    lines = _error_lines(res)
    assert len(lines) == 1, res.output
    assert "--as-of" in lines[0] and value in lines[0] and "YYYY-MM-DD" in lines[0]
    assert "Traceback" not in res.output


def test_year_outside_the_data_exits_2_naming_the_covered_years():
    years = sorted(set(critmin.load("production")["year"].astype(int)))
    res = runner.invoke(app, ["priorities", "--year", "2010"])
    assert res.exit_code == 2, res.output
    lines = _error_lines(res)
    assert len(lines) == 1, res.output
    assert "--year 2010" in lines[0] and f"{years[0]}-{years[-1]}" in lines[0]


def test_priorities_csv_for_one_importer():
    res = runner.invoke(app, ["priorities", "--importer", "USA", "--format", "csv", "--as-of", "2026-12-04"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False, na_values=[""])
    assert set(frame["importer"]) == {"USA"}
    assert "gallium" in set(frame["commodity"])
    assert (frame["as_of"] == "2026-12-04").all()
    ga = frame.set_index("commodity").loc["gallium"]
    assert bool(ga["priority"]) and "China" in ga["reason"]


def test_parse_as_of():
    assert workflows.parse_as_of("2026-12-04") == dt.date(2026, 12, 4)
    assert workflows.parse_as_of(" 2026-12-04 ") == dt.date(2026, 12, 4)
    assert workflows.parse_as_of(None, 2024) == dt.date(2024, 12, 31)     # a past year: its own 31 December
    assert workflows.parse_as_of(None) == dt.date.today()
    assert workflows.parse_as_of(dt.datetime(2025, 1, 2, 13, 0)) == dt.date(2025, 1, 2)
    for bad in ("2026-13-01", "yesterday", "2026/12/04"):
        with pytest.raises(ConfigError, match="--as-of"):
            workflows.parse_as_of(bad)


@pytest.mark.parametrize(("args", "needle"), [
    (["assess", "--year", "2010"], "--year 2010: production data at stage mine cover"),
    (["assess", "--stage", "refining"], "--stage 'refining': expected one of mine, refine, metal, component"),
])
def test_assess_bad_year_or_stage_exits_2_with_one_line(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    lines = _error_lines(res)
    assert len(lines) == 1 and needle in lines[0]


def test_priorities_on_user_data_with_importers_without_trade():
    """Your own tables (here the GeoPolRisk regression set: USA imports only) with the default importers: JPN and
    the bloc have no trade rows, which leaves their reliance unknown instead of failing."""
    res = runner.invoke(app, ["priorities", "--data", "tests/regression/geopolrisk_usa_2022", "--format", "csv",
                              "--as-of", "2026-12-04"])
    assert res.exit_code == 0, res.output
    assert "JPN" in res.output and "USA+JPN" in res.output
