"""Run a scenario on the network: load → build → cut → simulate → bloc rows → summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, STAGE
from critmin.importers import parse_importers
from critmin.supplychain.kernel import CONSUMER, MONTH, simulate
from critmin.supplychain.network import Network, build_network, with_bloc
from critmin.supplychain.scenario import Scenario, load_scenario
from critmin.supplychain.scenario_cuts import month_labels, to_cut

SUMMARY_COLUMNS = ["scenario", "consumer", "commodity", "stage", "basis", "demand_t_per_month",
                   "peak_shortfall_t", "peak_shortfall_pct", "cumulative_unmet_t", "unmet_value_usd",
                   "peak_price_multiple", "months_with_shortfall", "recovery_month", "days_of_cover_end"]


def resolve(spec_or_path) -> Scenario:
    """A Scenario, a preset name or a YAML file path → validated Scenario."""
    from critmin.supplychain.presets import list_presets, load_preset

    if isinstance(spec_or_path, Scenario):
        return spec_or_path
    text = str(spec_or_path)
    if text in list_presets():
        return load_preset(text)
    return load_scenario(Path(text))


def _apply_parameters(network: Network, scenario: Scenario) -> Network:
    """Scenario overrides of elasticity and price cap (number or per commodity)."""
    base = network.baseline
    changes = {}
    for key, attr in (("elasticity", "elasticity"), ("price_cap", "price_cap")):
        if key in scenario.parameters:
            v = scenario.parameters[key]
            arr = getattr(base, attr).copy()
            if isinstance(v, dict):
                for c, x in v.items():
                    if c in arr[COMMODITY].values:
                        arr.loc[c] = float(x)
            else:
                arr[:] = float(v)
            changes[attr] = arr
    if not changes:
        return network
    return dataclasses.replace(network, baseline=dataclasses.replace(base, **changes))


def simulate_scenario(scenario: Scenario, network: Network) -> xr.Dataset:
    """Simulate on an already built network; returns the kernel Dataset restricted to the scenario's
    commodities, unknown demands masked (NaN), months labelled ``YYYY-MM`` (coordinate ``period``)."""
    network = _apply_parameters(network, scenario)
    cut, surge, responses = to_cut(scenario, network)
    ds = simulate(network.baseline, cut, responses, months=scenario.horizon_months, surge=surge)
    comms = [c for c in scenario.commodities if c in network.stages]
    ds = ds.sel({COMMODITY: comms})
    known = network.known.sel({COMMODITY: comms})
    # stages a commodity does not have carry no demand at all: drop them from the outputs, mask unknowns
    has_stage = xr.DataArray([[s in network.stages[c] for s in ds[STAGE].values] for c in comms],
                             dims=[COMMODITY, STAGE], coords={COMMODITY: comms, STAGE: ds[STAGE].values})
    ds = ds.where(known & has_stage)
    ds = ds.assign_coords(period=(MONTH, month_labels(scenario)))
    ds.attrs.update(scenario=scenario.name, description=scenario.description, data_year=network.year,
                    assumptions=[*network.assumptions, *cut.attrs.get("indirect", [])],
                    source_ids=list(network.source_ids))
    ds["cut"] = cut.sel({COMMODITY: comms})
    return ds


def summarise(ds: xr.Dataset, network: Network, name: str) -> pd.DataFrame:
    """Per consumer × commodity × stage: peak shortfall (t/month, % of demand), cumulative unmet (t), its value
    (USD), peak price multiple, months with shortfall, first month back to ~0 after the peak, days of cover."""
    sf = ds["shortfall"]
    dem = ds["demand"]
    tol = 1e-6 * dem.max(MONTH)
    pct = (sf / dem.where(dem > 0)).max(MONTH) * 100.0
    price0 = network.baseline.price0.sel({COMMODITY: ds[COMMODITY].values})
    peak_t = sf.fillna(0.0).argmax(MONTH)
    after = xr.DataArray(np.arange(ds.sizes[MONTH]), dims=[MONTH]) > peak_t
    recovered = (after & (sf <= tol) & (sf.max(MONTH) > tol))
    rec_month = recovered.argmax(MONTH).where(recovered.any(MONTH))
    out = xr.Dataset({
        "demand_t_per_month": dem.isel({MONTH: 0}, drop=True),
        "peak_shortfall_t": sf.max(MONTH),
        "peak_shortfall_pct": pct.fillna(0.0).where(sf.max(MONTH).notnull()),
        "cumulative_unmet_t": ds["cumulative_unmet"].isel({MONTH: -1}, drop=True),
        "unmet_value_usd": ds["unmet_value"].isel({MONTH: -1}, drop=True),
        "peak_price_multiple": (ds["price"] / price0).max(MONTH),
        "months_with_shortfall": (sf > tol).sum(MONTH).where(sf.max(MONTH).notnull()),
        "recovery_month": rec_month,
        "days_of_cover_end": ds["days_of_cover"].isel({MONTH: -1}, drop=True),
    })
    df = out.drop_vars([v for v in out.coords if v not in (CONSUMER, COMMODITY, STAGE)]).to_dataframe().reset_index()
    df = df.dropna(subset=["demand_t_per_month"])
    df["basis"] = [network.basis.get((c, s), "") for c, s in zip(df.commodity, df.stage, strict=True)]
    df["scenario"] = name
    return df[SUMMARY_COLUMNS].sort_values(["consumer", "commodity", "stage"], key=_order).reset_index(drop=True)


def _order(col: pd.Series) -> pd.Series:
    if col.name == "stage":
        from critmin.constants import STAGES
        return col.map({s: i for i, s in enumerate(STAGES)})
    return col


def run_scenario(spec_or_path, catalog=None, importers: str = "USA,JPN,USA+JPN",
                 network: Network | None = None) -> tuple[xr.Dataset, pd.DataFrame]:
    """Run a scenario (preset name, YAML path or Scenario) on the bundled data.

    Parameters
    ----------
    spec_or_path : preset name, path to a YAML file, or a :class:`Scenario`.
    catalog : Catalog (default: the bundled dataset).
    importers : consumers to report: ``USA``, ``JPN``, ``ROW`` and blocs of them (``USA+JPN``).
    network : an already built network (skips the build; the Monte Carlo reuses one).

    Returns
    -------
    (Dataset (consumer, commodity, stage, month) of the kernel outputs in t/month, t, USD, d;
     summary DataFrame, one row per consumer × commodity × stage)
    """
    from critmin.reference.catalog import Catalog

    scenario = resolve(spec_or_path)
    wanted = parse_importers(importers)
    if network is None:
        network = build_network(catalog or Catalog())
    ds = simulate_scenario(scenario, network)
    blocs = {i.label: list(i.members) for i in wanted if i.is_bloc}
    for b, members in blocs.items():
        bad = [m for m in members if m not in network.consumers]
        if bad:
            from critmin.errors import ConfigError
            raise ConfigError(f"importer {b}: the supply-chain model has consumers {', '.join(network.consumers)}"
                              f" only; {', '.join(bad)} is inside ROW")
    if blocs:
        ds = with_bloc(ds, blocs)
    labels = [i.label for i in wanted]
    missing = [x for x in labels if x not in ds[CONSUMER].values]
    if missing:
        from critmin.errors import ConfigError
        raise ConfigError(f"importer {', '.join(missing)} is not a consumer of the supply-chain model "
                          f"({', '.join(network.consumers)} and blocs of them)")
    ds = ds.sel({CONSUMER: labels})
    return ds, summarise(ds, network, scenario.name)


__all__ = ["SUMMARY_COLUMNS", "resolve", "run_scenario", "simulate_scenario", "summarise"]
