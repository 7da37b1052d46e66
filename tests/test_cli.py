"""End-to-end: the CLI on the bundled dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from critmin.cli.main import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def run(*args):
    res = runner.invoke(app, list(args))
    return res


@pytest.mark.parametrize("method", ["geopolrisk", "eu-sr", "usgs", "hhi"])
def test_assess_every_method_csv(method, tmp_path):
    out = tmp_path / "x.csv"
    res = run("assess", "--method", method, "--importer", "USA,JPN,USA+JPN", "--format", "csv", "--out", str(out))
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(frame.columns) == ["method", "commodity", "stage", "importer", "year", "indicator", "value", "unit"]
    assert set(frame.importer) == {"USA", "JPN", "USA+JPN"}
    assert {"rare-earths", "cobalt", "graphite", "nickel", "lithium"} <= set(frame.commodity)


def test_assess_table_view_and_formats(tmp_path):
    res = run("assess", "--method", "geopolrisk", "--importer", "JPN")
    assert res.exit_code == 0, res.output
    assert "geopolrisk" in res.output and "JPN" in res.output
    for fmt in ("json", "parquet", "xlsx"):
        out = tmp_path / f"x.{fmt}"
        res = run("assess", "--method", "eu-sr", "--importer", "USA+JPN", "--format", fmt, "--out", str(out))
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["rows"] and doc["sources"]
    xl = pd.read_excel(tmp_path / "x.xlsx", sheet_name=None)
    assert set(xl) == {"data", "Sources"} and len(xl["Sources"]) > 0


def test_priorities_table_has_thresholds_and_reasons(tmp_path):
    res = run("priorities", "--importer", "USA,JPN,USA+JPN")
    assert res.exit_code == 0, res.output
    assert "non-allied" in res.output and "USA+JPN" in res.output
    out = tmp_path / "p.csv"
    res = run("priorities", "--format", "csv", "--out", str(out))
    assert res.exit_code == 0, res.output
    p = pd.read_csv(out)
    assert {"rank", "priority", "reason", "geopolrisk_score", "eu_sr", "usgs_sr"} <= set(p.columns)
    usa = p[p.importer == "USA"].set_index("commodity")
    assert bool(usa.loc["rare-earths", "priority"])
    assert "China" in usa.loc["rare-earths", "reason"]


def test_data_info_and_show(tmp_path):
    res = run("data", "info")
    assert res.exit_code == 0, res.output
    assert "usgs-mcs-2026" in res.output and "Etalab" in res.output
    res = run("data", "show", "production", "-w", "commodity=rare-earths", "-w", "year=2025", "-w", "country=CHN")
    assert res.exit_code == 0, res.output
    assert re.search(r"270[, ]?000", res.output.replace("2.7e+05", "270000"))
    out = tmp_path / "t.csv"
    res = run("data", "show", "trade", "-w", "hs6=284690", "-w", "year=2024", "-w", "importer=JPN",
              "--format", "csv", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out)) > 0


def test_show_bad_filter_exit_2():
    res = run("data", "show", "production", "-w", "colour=red")
    assert res.exit_code == 2 and "unknown column" in res.output


def test_readme_quickstart_matches_ci():
    readme = (REPO / "README.md").read_text("utf-8")
    block = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    assert len(lines) == 2
    assert "critmin" in lines[0]
    ci = (REPO / ".ci" / "run").read_text("utf-8")
    assert lines[1] in ci
