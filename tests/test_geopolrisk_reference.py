"""Regression: the GeoPolRisk reference workbook of geopolrisk-py (USA, 2022), through the public --data path.

Reference values: sheet ``GeoPolRisk`` of ``tests/data/Testing case - tool.xlsx`` in akoyamp/geopolrisk-py
(commit 1d96e9b000de4d37e1971045cad869a10afa7067); Koyamparambath et al., JOSS doi:10.21105/joss.09600.
Inputs transcribed in ``tests/regression/geopolrisk_usa_2022`` (see its CITATION.md).
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import REGRESSION

import critmin

DATA = REGRESSION / "geopolrisk_usa_2022"

# material: (HHI, score, CF) from the workbook, full precision
EXPECTED = {
    "nickel": (0.26749007657640966, 3.2304331527637555e-4, 3.7927385852119812e-3),
    "manganese": (0.20351833729028621, 0.11095590775245055, 0.10860404642372944),
    "graphite": (0.470663478647389, 0.27497413262676956, 1.4956581418407857),
}


def _check(frame: pd.DataFrame) -> None:
    for material, (h, score, cf) in EXPECTED.items():
        sel = frame[(frame.commodity == material) & (frame.importer == "USA")].set_index("indicator")["value"]
        assert sel["hhi"] == pytest.approx(h, rel=1e-9)
        assert sel["score"] == pytest.approx(score, rel=1e-9)
        assert sel["cf"] == pytest.approx(cf, rel=1e-9)


def test_python_api_reproduces_workbook():
    _check(critmin.assess("geopolrisk", importer="USA", year=2022, data=DATA, tidy=True))


def test_cli_reproduces_workbook(tmp_path):
    out = tmp_path / "gpr.csv"
    proc = subprocess.run([sys.executable, "-m", "critmin.cli.main", "assess", "--method", "geopolrisk",
                           "--importer", "USA", "--year", "2022", "--data", str(DATA), "--format", "csv",
                           "--out", str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(frame.columns) == ["method", "commodity", "stage", "importer", "year", "indicator", "value", "unit"]
    _check(frame)
    assert {"hhi", "import_risk", "score", "price", "cf"} <= set(frame.indicator)


def test_intermediate_terms_match_workbook():
    """Workbook columns: domestic production, numerator, total trade, import risk, price (nickel)."""
    ds = critmin.assess("geopolrisk", importer="USA", year=2022, data=DATA)
    ni = ds.sel(commodity="nickel", importer="USA", year=2022)
    assert float(ni["domestic_production"]) == pytest.approx(17500)
    assert float(ni["total_imports"]) == pytest.approx(37.495, rel=1e-6)
    assert float(ni["price"]) == pytest.approx(4.806774, rel=1e-6)
    assert ds.attrs["citation"].startswith("Gemechu")
