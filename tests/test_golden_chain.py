"""Golden files: the supply-chain outputs on the bundled data, recorded and compared.

What is recorded (``tests/golden/``, described in ``tests/golden/README.md``):

* ``risk_default.csv``: ``critmin risk --draws 20000 --seed 20251030 --format csv`` (every other option at its
  default: the nine priority commodities, importers USA, JPN, USA+JPN, 12 months);
* ``risk_default_ensemble.csv`` and ``risk_default_contributions.csv``: the same run's ensemble
  (:func:`critmin.supplychain.risk.assess_risk`) for every consumer including ROW, and each supplier's
  contribution to the expected shortfall (non-zero values only);
* ``scenario_<preset>.csv``: ``critmin scenario run <preset> --format csv`` for two presets.

Comparison: the same columns in the same order and the same rows in the same order; integers and strings
exactly, floats to a relative 1e-12 (NaN equals NaN). These files guard refactors: the numbers must not move.

When a change of these outputs is intended (a model change, a data update), re-record them with
``CRITMIN_RECORD_GOLDEN=1 pytest tests/test_golden_chain.py`` and explain the change — what moved, by how much
and why — in ``tests/golden/README.md`` in the same commit. An unexplained change of a golden file is a defect.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

GOLDEN = Path(__file__).resolve().parent / "golden"
RECORD = os.environ.get("CRITMIN_RECORD_GOLDEN") == "1"
DRAWS, SEED = 20_000, 20251030
PRESETS = ("drc-cobalt-2025", "china-ree-2025-10")
RTOL = 1e-12


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _compare(got: pd.DataFrame, name: str) -> None:
    """``got`` against ``tests/golden/<name>`` (both as read back from CSV, so dtypes match)."""
    path = GOLDEN / name
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        got.to_csv(path, index=False, lineterminator="\n")
        return
    want = _read(path)
    assert list(got.columns) == list(want.columns), f"{name}: columns differ"
    assert len(got) == len(want), f"{name}: {len(got)} rows, golden has {len(want)}"
    for col in want.columns:
        g, w = got[col], want[col]
        if pd.api.types.is_float_dtype(w) or pd.api.types.is_float_dtype(g):
            gv, wv = g.to_numpy(float), w.to_numpy(float)
            ok = np.isclose(gv, wv, rtol=RTOL, atol=0.0, equal_nan=True)
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise AssertionError(f"{name}, column {col}: {int((~ok).sum())} value(s) beyond rel {RTOL}; "
                                     f"first at row {i}: {gv[i]!r} vs golden {wv[i]!r}")
        else:
            bad = ~((g.isna() & w.isna()) | (g.astype(str) == w.astype(str))).to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise AssertionError(f"{name}, column {col}: {int(bad.sum())} value(s) differ; first at row {i}: "
                                     f"{g.iloc[i]!r} vs golden {w.iloc[i]!r}")


def _cli(args: list[str], out: Path) -> pd.DataFrame:
    from critmin.cli.main import app

    res = CliRunner().invoke(app, [*args, "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return _read(out)


def test_risk_cli_default(tmp_path):
    got = _cli(["risk", "--draws", str(DRAWS), "--seed", str(SEED)], tmp_path / "risk.csv")
    _compare(got, "risk_default.csv")


def test_risk_ensemble_and_contributions(tmp_path):
    from critmin.supplychain.risk import assess_risk

    ds, _, _ = assess_risk(draws=DRAWS, seed=SEED)
    stats = ["demand", "expected_shortfall", "var_95", "var_99", "cvar_95", "cvar_99", "p_shortfall"]
    ens = ds[stats].to_dataframe().reset_index()
    ens = ens[ens["demand"] > 0]
    contrib = ds["contribution"].to_dataframe().reset_index()
    contrib = contrib[contrib["contribution"] != 0]
    for frame, name in ((ens, "risk_default_ensemble.csv"), (contrib, "risk_default_contributions.csv")):
        frame.to_csv(tmp_path / name, index=False, lineterminator="\n")   # the same CSV round trip as the golden
        _compare(_read(tmp_path / name), name)


@pytest.mark.parametrize("preset", PRESETS)
def test_scenario_preset(tmp_path, preset):
    got = _cli(["scenario", "run", preset], tmp_path / f"{preset}.csv")
    _compare(got, f"scenario_{preset}.csv")
