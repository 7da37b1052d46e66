"""Reporting an ensemble: VaR and CVaR, the upper tails they come from, and the long table (pure).

*Statistics.* L = cumulative unmet demand over the horizon (t, the stage's basis) per draw. VaR_α is the
⌈α·n⌉-th smallest L; CVaR_α = VaR_α + E[(L − VaR_α)⁺] / (1 − α) (Rockafellar & Uryasev 2002), exact for
the empirical distribution; expected shortfall = E[L]; p_shortfall = P(L > 0).

The Monte Carlo (:func:`critmin.supplychain.ensemble.run_ensemble`) computes them from the merged upper tails of
its chunks (:func:`upper_tail`, :func:`merge_tails`), so it never holds every draw.

References
----------
Rockafellar, R. T. & Uryasev, S. (2002). Conditional value-at-risk for general loss distributions.
J. Banking & Finance 26(7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY
from critmin.supplychain.kernel import CONSUMER, STAGE

#: VaR / CVaR levels of the ensemble.
ALPHAS = (0.95, 0.99)


def tail_size(n_total: int) -> int:
    """Largest draws kept per cell: enough for VaR/CVaR at the smallest α (exact order statistics)."""
    return n_total - math.ceil(min(ALPHAS) * n_total) + 1


def upper_tail(values: np.ndarray, tail: int) -> np.ndarray:
    """The ``tail`` largest positive values of a 1-d sample, ascending (a zero loss is never in a tail)."""
    v = values[values > 0]
    if v.size > tail:
        v = np.partition(v, v.size - tail)[v.size - tail:]
    return np.sort(v)


def merge_tails(a: np.ndarray, b: np.ndarray, tail: int) -> np.ndarray:
    """The ``tail`` largest values of two tails (not sorted: sort once, after the last merge)."""
    merged = np.concatenate([a, b])
    if merged.size > tail:
        merged = np.partition(merged, merged.size - tail)[merged.size - tail:]
    return merged


def tidy(ds: xr.Dataset, consumers: Sequence[str] | None = None, *, top_suppliers: int = 3) -> pd.DataFrame:
    """Long table of an ensemble: one row per commodity × stage × consumer with demand > 0.

    Columns: commodity, stage, consumer, demand_t, expected_shortfall_t, var_95_t, var_99_t, cvar_95_t,
    cvar_99_t, p_shortfall, top_contributors (``CHN 71%; COD 20%`` of the expected shortfall), seed, n_draws.
    """
    keep = ["expected_shortfall", "var_95", "var_99", "cvar_95", "cvar_99", "p_shortfall", "demand"]
    frame = ds[keep].to_dataframe().reset_index()
    if consumers is not None:
        frame = frame[frame[CONSUMER].isin(list(consumers))]
    frame = frame[frame["demand"] > 0]
    contrib = ds["contribution"]
    es = ds["expected_shortfall"]
    shares = (contrib / es.where(es > 0))
    tops = []
    for r in frame.itertuples(index=False):
        s = shares.sel({COMMODITY: r.commodity, STAGE: r.stage, CONSUMER: r.consumer}).to_series().dropna()
        s = s[s > 0.005].sort_values(ascending=False).head(top_suppliers)
        tops.append("; ".join(f"{k} {v:.0%}" for k, v in s.items()))
    frame = frame.assign(top_contributors=tops, seed=ds.attrs["seed"], n_draws=ds.attrs["n_draws"])
    frame = frame.rename(columns={"demand": "demand_t", **{k: f"{k}_t" for k in keep[:5]}})
    order = {k: i for i, k in enumerate(ds[CONSUMER].values)}
    frame = frame.sort_values([CONSUMER, "expected_shortfall_t"], key=lambda c: c.map(order) if c.name == CONSUMER
                              else -c, kind="stable")
    cols = [COMMODITY, STAGE, CONSUMER, "demand_t", "expected_shortfall_t", "var_95_t", "var_99_t", "cvar_95_t",
            "cvar_99_t", "p_shortfall", "top_contributors", "seed", "n_draws"]
    return frame[cols].reset_index(drop=True)


__all__ = ["ALPHAS", "merge_tails", "tail_size", "tidy", "upper_tail"]
