"""A scenario applied to a network: month profiles, target weights, responses and the kernel's cut arrays."""

from __future__ import annotations

import numpy as np
import xarray as xr

from critmin.constants import COMMODITY, RESIDUAL, STAGE, STAGES
from critmin.errors import ConfigError
from critmin.supplychain.indirect import PROCESSOR, combine, flow_weights, indirect_cuts, peak_notes
from critmin.supplychain.kernel import CONSUMER, MONTH, SUPPLIER, Responses
from critmin.supplychain.scenario import Event, Scenario, _month_index


def scenario_start(scenario: Scenario) -> str:
    """Month 0 of the horizon: the scenario's ``start`` or its earliest event start."""
    if scenario.start:
        return scenario.start
    starts = [e.start for e in scenario.events if e.start]
    if not starts:
        raise ConfigError(f"scenario {scenario.name!r}: give 'start' (YYYY-MM) or a start for an event")
    return min(starts, key=_month_index)


def month_labels(scenario: Scenario) -> list[str]:
    """``YYYY-MM`` of each simulated month."""
    m0 = _month_index(scenario_start(scenario))
    return [f"{(m0 + t) // 12}-{(m0 + t) % 12 + 1:02d}" for t in range(scenario.horizon_months)]


def _profile(event: Event, m0: int, months: int) -> np.ndarray:
    """Fraction withheld (or extra demand) per month: linear ramp to ``fraction``, held for the duration."""
    t0 = (_month_index(event.start) - m0) if event.start else 0
    t = np.arange(months)
    dur = event.duration_months if event.duration_months is not None else months - t0
    on = (t >= t0) & (t < t0 + dur)
    ramp = np.clip((t - t0 + 1) / event.ramp_months, 0.0, 1.0) if event.ramp_months > 0 else np.ones(months)
    return event.fraction * ramp * on


def _target_weights(event: Event, network, groups: dict) -> xr.DataArray:
    """(commodity, stage, consumer) share of each consumer's flow from ``event.country`` the event reaches.

    Named consumers are in or out; ROW is hit in proportion to the exporter's third-country exports going to
    the targets (BACI), times the exported share ε for export restrictions (outages also hit home use)."""
    base = network.baseline
    cons = list(base.demand[CONSUMER].values)
    named = [k for k in cons if k != RESIDUAL]
    comm = list(base.demand[COMMODITY].values)
    stages_ax = list(base.demand[STAGE].values)
    w = xr.zeros_like(base.demand)
    if event.targets == "all":
        inside = set(named) | {RESIDUAL}
        row_tau = xr.ones_like(w.sel({CONSUMER: RESIDUAL}, drop=True))
    else:
        if isinstance(event.targets, dict):
            members = set(groups[event.targets["outside"]]["members"])
            inside = {k for k in named if k not in members}
            want = lambda imp: ~imp.isin(members)  # noqa: E731
        else:
            inside = {k for k in named if k in event.targets}
            want = lambda imp: imp.isin(event.targets)  # noqa: E731
        te = network.third_exports
        te = te[te.exporter == event.country]
        tot = te.groupby(["commodity", "stage"]).quantity.sum()
        hit = te[want(te.importer)].groupby(["commodity", "stage"]).quantity.sum()
        tau = (hit.reindex(tot.index).fillna(0.0) / tot).fillna(0.0)
        row_tau = xr.zeros_like(w.sel({CONSUMER: RESIDUAL}, drop=True))
        if len(tau):
            arr = xr.DataArray.from_series(tau).rename({"commodity": COMMODITY, "stage": STAGE})
            row_tau = (row_tau + arr.reindex({COMMODITY: comm, STAGE: stages_ax})).fillna(0.0)
        if RESIDUAL in (event.targets if isinstance(event.targets, list) else []):
            row_tau = xr.ones_like(row_tau)
        if isinstance(event.targets, dict):
            # no BACI flows to tell which third countries are hit: all of ROW (upper bound)
            known_tau = xr.DataArray.from_series(tot > 0).reindex({COMMODITY: comm, STAGE: stages_ax}) \
                if len(tot) else xr.zeros_like(row_tau, dtype=bool)
            row_tau = row_tau.where(known_tau.fillna(False).astype(bool), 1.0)
    for k in named:
        w.loc[{CONSUMER: k}] = 1.0 if k in inside else 0.0
    eps = network.row_export_share.sel({SUPPLIER: event.country}, drop=True) \
        if event.country in network.row_export_share[SUPPLIER].values else 1.0
    row = row_tau * (eps if event.type == "export_restriction" else 1.0)
    w.loc[{CONSUMER: RESIDUAL}] = row
    return w


def _processor_targets(event: Event, procs: list[str], groups: dict) -> xr.DataArray:
    """(processor,) 1 where the event reaches the country's flow to that processor country, else 0.

    An export restriction does not restrict the country itself; an outage also starves its own processors.
    ``ROW`` (other countries) is reached by ``all``, by a list naming ROW, and by ``{outside: group}`` (other
    countries are not known to be members: an upper bound, as for the ROW consumer)."""
    p = np.array(procs)
    if event.targets == "all":
        hit = np.ones(len(p), dtype=bool)
    elif isinstance(event.targets, dict):
        members = set(groups[event.targets["outside"]]["members"])
        hit = ~np.isin(p, list(members))
    else:
        hit = np.isin(p, event.targets)
    if event.type == "export_restriction":
        hit &= p != event.country
    return xr.DataArray(hit.astype(float), dims=[PROCESSOR], coords={PROCESSOR: procs})


def _commodity_array(value, network, default: xr.DataArray | float) -> xr.DataArray:
    comm = list(network.baseline.price0[COMMODITY].values)
    base = default if isinstance(default, xr.DataArray) else xr.DataArray(np.full(len(comm), float(default)),
                                                                              dims=[COMMODITY],
                                                                              coords={COMMODITY: comm})
    if value is None:
        return base
    if isinstance(value, dict):
        out = base.copy()
        for c, v in value.items():
            if c in comm:
                out.loc[c] = float(v)
        return out
    return xr.full_like(base, float(value))


def default_responses(network) -> dict[str, xr.DataArray]:
    """Cited defaults per commodity (network.parameters): ramp, substitution; recycling and leakage 0."""
    pv = network.parameters.set_index(["commodity", "parameter"]).value
    comm = list(network.baseline.price0[COMMODITY].values)

    def arr(param):
        return xr.DataArray([float(pv.get((c, param), 0.0)) for c in comm], dims=[COMMODITY],
                            coords={COMMODITY: comm})

    return {"ramp": arr("non_china_supply_rampup_rate"), "substitution": arr("substitution_rate_max")}


def to_cut(scenario: Scenario, network, groups: dict | None = None
           ) -> tuple[xr.DataArray, xr.DataArray, Responses]:
    """Turn a scenario into the kernel's inputs.

    Returns
    -------
    cut : DataArray (commodity, stage, supplier, consumer, month), fraction withheld (0..1); several events
        on the same flow combine as independent cuts, 1 − Π(1 − cut_e). Where the network has feed mixes, the
        indirect cuts of :mod:`critmin.supplychain.indirect` (processor countries' outputs lost because their
        feeders withhold) are combined with them the same way; ``cut.attrs["indirect"]`` states the largest.
    surge : DataArray (commodity, stage, consumer, month), extra demand as a share of baseline demand.
    responses : kernel Responses.
    """
    from critmin.importers import groups as all_groups

    groups = groups if groups is not None else all_groups()
    base = network.baseline
    months = scenario.horizon_months
    m0 = _month_index(scenario_start(scenario))
    month = xr.DataArray(np.arange(months), dims=[MONTH], coords={MONTH: np.arange(months)})
    keep = xr.zeros_like(base.share) + xr.zeros_like(month, dtype=float) + 1.0  # Π(1 − cut_e)
    surge = xr.zeros_like(base.demand) + xr.zeros_like(month, dtype=float)
    modelled = set(network.stages)
    # direct cuts on the flows into processor countries (indirect.py): one row per country that cuts
    network_has_feed = getattr(network, "feed_mix", None) is not None
    cutters = list(dict.fromkeys(e.country for e in scenario.events if e.type != "demand_surge"))
    if network_has_feed:
        procs = [str(p) for p in network.feed_mix[PROCESSOR].values]
        cutters = [j for j in cutters if j in procs]
        keep_in = np.ones((base.demand.sizes[COMMODITY], base.demand.sizes[STAGE], len(cutters), len(procs), months))
    for e in scenario.events:
        comms = [c for c in e.commodities if c in modelled]
        if not comms:
            raise ConfigError(f"scenario {scenario.name!r}: none of {', '.join(e.commodities)} is modelled")
        stages = e.stages or list(STAGES)
        sel_c = xr.DataArray(np.isin(base.demand[COMMODITY].values, comms), dims=[COMMODITY],
                             coords={COMMODITY: base.demand[COMMODITY].values})
        sel_s = xr.DataArray(np.isin(base.demand[STAGE].values, stages), dims=[STAGE],
                             coords={STAGE: base.demand[STAGE].values})
        prof = xr.DataArray(_profile(e, m0, months), dims=[MONTH], coords={MONTH: np.arange(months)})
        if e.type == "demand_surge":
            who = xr.zeros_like(base.demand[CONSUMER], dtype=float)
            if e.targets == "all":
                who[:] = 1.0
            elif isinstance(e.targets, list):
                who[:] = np.isin(base.demand[CONSUMER].values, e.targets)
            else:
                members = set(groups[e.targets["outside"]]["members"])
                who[:] = [k == RESIDUAL or k not in members for k in base.demand[CONSUMER].values]
            surge = surge + sel_c * sel_s * who * prof
            continue
        w = _target_weights(e, network, groups)
        sup = xr.DataArray(base.share[SUPPLIER].values == e.country, dims=[SUPPLIER],
                           coords={SUPPLIER: base.share[SUPPLIER].values})
        keep = keep * (1.0 - sel_c * sel_s * w * sup * prof)
        if network_has_feed:
            # the same event on the country's flows into processor countries (feeds their next stage)
            hit = _processor_targets(e, procs, groups)
            j = cutters.index(e.country)
            keep_in[:, :, j] *= (1.0 - (sel_c * sel_s * hit * prof)).transpose(COMMODITY, STAGE, PROCESSOR,
                                                                                 MONTH).values
    cut = (1.0 - keep).clip(0.0, 1.0).transpose(COMMODITY, STAGE, SUPPLIER, CONSUMER, MONTH)
    notes: list[str] = []
    if network_has_feed and cutters:
        direct_in = xr.DataArray(1.0 - keep_in, dims=[COMMODITY, STAGE, SUPPLIER, PROCESSOR, MONTH],
                                 coords={COMMODITY: base.demand[COMMODITY].values, STAGE: base.demand[STAGE].values,
                                         SUPPLIER: cutters, PROCESSOR: procs, MONTH: np.arange(months)})
        ind = indirect_cuts(direct_in, network.feed_mix, network.feed_stage)
        cut = combine(cut, ind, flow_weights(base.share, network.row_export_share))
        notes = peak_notes(ind, network.feed_mix)
    cut.attrs["indirect"] = notes

    r = scenario.responses
    d = default_responses(network)
    stock = r.get("stockpile") or {"stage": "refine", "holdings": {}, "release_max": None}
    cons = list(base.demand[CONSUMER].values)
    comm = list(base.demand[COMMODITY].values)
    stock0 = xr.DataArray(np.zeros((len(comm), len(cons))), dims=[COMMODITY, CONSUMER],
                          coords={COMMODITY: comm, CONSUMER: cons})
    for who, v in stock["holdings"].items():
        if who in cons:
            stock0.loc[{CONSUMER: who}] = _commodity_array(v, network, 0.0)
    rel = stock["release_max"]
    if rel is None:
        release = stock0.copy()  # no limit given: the whole holding may go in one month
    elif isinstance(rel, dict):
        release = xr.zeros_like(stock0)
        for who, v in rel.items():
            if who in cons:
                release.loc[{CONSUMER: who}] = float(v)
    else:
        release = xr.full_like(stock0, float(rel))
    starts = [(_month_index(e.start) - m0) if e.start else 0 for e in scenario.events]
    rstart = (_month_index(r["start"]) - m0) if "start" in r else max(min(starts), 0)
    responses = Responses(
        leakage=_commodity_array(r.get("rerouting_leakage"), network, 0.0),
        ramp=_commodity_array(r.get("spare_capacity_ramp"), network, d["ramp"]),
        substitution=_commodity_array(r.get("substitution_rate"), network, d["substitution"]),
        recycling=_commodity_array(r.get("recycling_rate"), network, 0.0),
        stock0=stock0, release_max=release, stock_stage=stock["stage"], response_start=int(max(rstart, 0)))
    return cut, surge.transpose(COMMODITY, STAGE, CONSUMER, MONTH), responses


__all__ = ["default_responses", "month_labels", "scenario_start", "to_cut"]
