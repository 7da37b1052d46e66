"""Readers behind the network: USGS salient statistics, processing shares, prices and the cited response parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from critmin.units import mass_factor

#: Stages modelled per commodity, upstream → downstream, with what the stage means for that commodity.
#: Reference price per commodity: the USGS MCS series (``prices`` table, "mcs: " prefix) and why.
PRICE_SERIES: dict[str, tuple[str, str]] = {
    "rare-earths": ("Neodymium-praseodymium (NdPr) oxide", "NdPr oxide drives magnet value; applied to every "
                    "REO tonne it overstates the value of light, low-value oxides"),
    "cobalt": ("London Metal Exchange (LME), cash", "LME cash"),
    "nickel": ("Dollars per metric ton", "LME cash"),
    "graphite": ("Flake", "import unit value of flake graphite"),
    "germanium": ("Germanium metal", "metal"),
    "indium": ("U.S. warehouse", "U.S. warehouse price"),
    "tellurium": ("United States", "U.S. price"),
    "tungsten": ("tungsten trioxide", "Rotterdam concentrate, per mtu WO3 converted to USD per t W"),
}

#: Unit conversions of price units to USD per tonne of the stage basis. A price per X is multiplied by the
#: number of X in a tonne, taken from the unit registry (:mod:`critmin.units`), not written here.
_PRICE_FACTORS = {"USD/t": mass_factor("t", to="tonne"), "USD/kg": mass_factor("t", to="kilogram"),
                  "USD/lb": mass_factor("t", to="pound"),
                  # 1 dry metric ton unit = 10 kg WO3; WO3 is 79.3 % W by mass → USD per t W
                  "dollars per dry metric ton unit": mass_factor("t", to="kilogram") / 10.0 / 0.793}

#: The cited response parameters come from ``demand_parameters``; where a commodity has none, the value of
#: this reference commodity is used *by analogy* (stated in the assumptions).
ANALOGUE = {"substitution_rate_max": "rare-earths", "non_china_supply_rampup_rate": "rare-earths",
            "price_elasticity_of_demand": "cobalt", "price_spike_multiple": "neodymium"}


def _usa_statistic(sal: pd.DataFrame, rows: list[tuple[int, str, str]]) -> float:
    """Signed sum of USGS salient rows; NaN if any row is missing or withheld."""
    total = 0.0
    for sign, stat, detail in rows:
        v = sal.loc[(sal.statistic == stat) & (sal.detail == detail), "value"]
        if v.empty or not np.isfinite(v.iloc[0]):
            return float("nan")
        total += sign * float(v.iloc[0])
    return total


def _pick_processing(ps: pd.DataFrame, commodity: str, stage: str, year: int) -> pd.DataFrame:
    """Rows of the cited processing-shares table for one stage: latest year ≤ ``year`` (else the earliest after),
    then the basis with the most countries (the table mixes bases, e.g. all REEs vs magnet REEs)."""
    rows = ps[(ps.commodity == commodity) & (ps.stage_id == stage)]
    if rows.empty:
        return rows
    years = sorted(rows.year.unique())
    past = [y for y in years if y <= year]
    y = past[-1] if past else years[0]
    rows = rows[rows.year == y]
    best = rows.groupby("basis").size().sort_values(ascending=False).index[0]
    return rows[rows.basis == best]


def _prices(prices: pd.DataFrame, commodities: list[str], year: int, notes: list[str]) -> dict[str, float]:
    mcs = prices[prices.series.str.startswith("mcs: ") & prices.commodity.isin(commodities)]
    out = {}
    for c in commodities:
        rows = mcs[mcs.commodity == c]
        if c in PRICE_SERIES:
            rows = rows[rows.series.str.contains(PRICE_SERIES[c][0], regex=False)]
        rows = rows[rows.unit.isin(list(_PRICE_FACTORS))]
        if rows.empty:
            out[c] = float("nan")
            notes.append(f"{c}: no USGS MCS price; unmet value is not computed (NaN).")
            continue
        avail = sorted(rows.period.astype(int).unique())
        y = max([p for p in avail if p <= year] or avail[:1])
        r = rows[rows.period.astype(int) == y].iloc[0]
        out[c] = float(r.value) * _PRICE_FACTORS[r.unit]
        why = PRICE_SERIES.get(c, ("", "the only MCS price series"))[1]
        notes.append(f"{c}: reference price {out[c]:,.0f} USD/t from USGS MCS '{r.series[5:]}' {y} "
                     f"({r.value:g} {r.unit}; {why}).")
    return out


def response_parameters(catalog, commodities: list[str]) -> pd.DataFrame:
    """Cited response parameters per commodity from ``demand_parameters``, by analogy where missing.

    Returns
    -------
    DataFrame with columns ``commodity, parameter, value, unit, source`` (source = citation, or
    "by analogy to X: citation").
    """
    dp = catalog.table("demand_parameters")
    rows = []
    for param, ref in ANALOGUE.items():
        have = dp[dp.parameter == param].set_index("commodity")
        for c in commodities:
            key = c if c in have.index else ref
            if key not in have.index:
                continue
            r = have.loc[key]
            r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
            src = r.citation if key == c else f"by analogy to {key} (no published value for {c}): {r.citation}"
            rows.append({"commodity": c, "parameter": param, "value": float(r.value), "unit": r.unit, "source": src})
    return pd.DataFrame(rows, columns=["commodity", "parameter", "value", "unit", "source"])


