"""Second-order disruptions: a supplier country's upstream loss passed on to its export customers.

The kernel (:mod:`critmin.supplychain.kernel`) starves a consumer's *own* processors when the consumer's
upstream supply is cut (``lost += u · D · f_up``). It knows nothing of the processors abroad that sell to the
consumer: China's cobalt refineries run largely on Congolese feed, so a DR Congo ore ban also cuts the refined
cobalt China exports to the USA and Japan. This module turns direct cuts on the flows *into* processor
countries into **indirect cuts on those processors' outputs**, which then enter the kernel as extra ``cut``
(no kernel signature changes, every kernel identity still holds).

Per commodity c, processor country p (a supplier of some consumer at stage s') and feed stage s (the modelled
stage before s' in c's chain, e.g. mine before metal for tungsten):

    tot[j → p, s]  = 1 − (1 − cut[j → p, s]) · (1 − ind[j, s])          feeder j's flow to p that is missing
    ind[p, s']     = min(1, Σ_j feed_mix[p, j] · tot[j → p, s])           share of p's stage-s' output lost

``cut[j → p, s]`` is the direct cut on j's stage-s flow to p (events whose targets include p; a country's
export restriction does not restrict itself, an outage does hit its own processors). ``ind[j, s]`` is the
feeder's own indirect loss at stage s, so a mine-stage ban reaches the metal and component stages. At the
consumer, ``cut_flow[p → k, s'] = 1 − (1 − cut[p → k, s']) · (1 − w[p, k] · ind[p, s'])`` with w = 1 for a
named consumer k ≠ p, w = ε_p (the exported share, ``Network.row_export_share``) for ``ROW`` — ROW's home
use of p's output is already starved by the kernel through ROW's own ``u · f_up`` — and w = 0 for the
consumer's own production (k = p: the kernel's ``u · f_up`` is the one mechanism for a consumer's own
processors; where its upstream demand is unknown they are not starved, stated).

Leakage: the formula's factor (1 − leakage) is applied by the kernel, once, when the indirect cut enters as a
cut on p's flows (``withheld = share · D · cut · (1 − leakage)``), so the functions here take none; with a
per-consumer leakage the consumer's value is used (an approximation; scenarios set it per commodity).

Approximations (also in ``Network.assumptions``): processors do not re-source feed within the month (the
spare-capacity ramp of the consumer stands in for it: processors' own responses are the consumers'
responses); the loss is shared pro rata by all of a processor's customers; feed mixes are one data year's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, RESIDUAL, STAGE
from critmin.supplychain.kernel import CONSUMER, MONTH, SUPPLIER

PROCESSOR = "processor"


# --- feed mixes from the data (run once per network build) -----------------------------------------------

def feed_mixes(info: Mapping[tuple[str, str], dict], stages: Mapping[str, Sequence[str]],
               processors: Mapping[tuple[str, str], Sequence[str]]) -> tuple[pd.DataFrame, list[str]]:
    """Feed mix of every processor country at each stage after a commodity's first modelled stage.

    Parameters
    ----------
    info : (commodity, stage) → {"world": Series t/yr of the stage basis by country (``ROW`` = other
        countries), "basis": str, "trade": BACI DataFrame (exporter, importer, quantity t gross) of the stage,
        "kappa": stage-basis tonnes per BACI gross tonne (NaN: unknown)}.
    stages : commodity → modelled stages, upstream → downstream.
    processors : (commodity, output stage) → countries supplying some consumer at that stage.

    Returns
    -------
    feed : long DataFrame ``commodity, stage, processor, supplier, value, method`` — ``stage`` is the output
        stage s' fed, ``supplier`` the feeder j at the previous modelled stage, ``value`` the fraction of
        p's feed from j (sums to 1 per processor).
    notes : assumptions with the numbers used.

    Notes
    -----
    Three ways, tried in order, for processor p of stage s' fed from stage s:

    1. **BACI** (stage s has bilateral trade and a basis ratio κ): own stage-s production less own exports
       (× κ, ≥ 0) plus imports by exporter (BACI gross tonnes × κ). κ is the network's like-for-like
       ratio (1 for gross-weight bases).
    2. **Mass balance** (p's stage-s' output is stated in the stage-s basis, e.g. refining output normalised to
       mine output): p's feed = its stage-s' output; own production covers min(own, feed), the rest is
       imported in p's BACI import mix at stage s if it has one (shares only, basis-free), else in the mix of
       the world's *surplus* at stage s (each country's output less its own stage-s' use, ≥ 0). This is the
       assumption where BACI does not cover stage s (cobalt, rare-earth and lithium mining: no concentrate
       trade code in the bundled subset).
    3. **As other countries**: a processor with neither (e.g. Belgium refining cobalt, inside "other
       countries" of the output table) gets the feed mix of ``ROW`` (other countries).

    Otherwise no feed mix (stated) and the processor's output is not cut indirectly.
    """
    rows, notes = [], []
    for c, chain in stages.items():
        for s_prev, s_next in pairwise(chain):
            prev, nxt = info[(c, s_prev)], info[(c, s_next)]
            wp = prev["world"].astype(float)
            trade, kappa = prev["trade"], float(prev["kappa"])
            mass_ok = nxt["basis"] == prev["basis"] or nxt["basis"].startswith(f"{prev['basis']}, normalised")
            need = nxt["world"].astype(float) if mass_ok else None
            surplus = (wp.sub(need, fill_value=0.0) if need is not None else wp).clip(lower=0.0)
            has_trade = trade is not None and not trade.empty
            imp = trade.groupby(["importer", "exporter"]).quantity.sum() if has_trade else pd.Series(dtype=float)
            exp = trade.groupby("exporter").quantity.sum() if has_trade else pd.Series(dtype=float)
            procs = list(dict.fromkeys([RESIDUAL, *processors.get((c, s_next), [])]))
            mixes: dict[str, tuple[pd.Series, str]] = {}
            for p in procs:
                F, how = None, ""
                p_imp = imp.loc[p].drop(p, errors="ignore") if p in imp.index.get_level_values(0) else None
                if p != RESIDUAL and has_trade and np.isfinite(kappa) and kappa > 0:
                    own = max(float(wp.get(p, 0.0)) - float(exp.get(p, 0.0)) * kappa, 0.0)
                    F = (p_imp * kappa) if p_imp is not None else pd.Series(dtype=float)
                    F = pd.concat([F, pd.Series({p: own})])
                    how = f"BACI, κ {kappa:.3g}"
                    if F.sum() <= 0:
                        F = None
                if F is None and need is not None and float(need.get(p, 0.0)) > 0:
                    n_p = float(need[p])
                    own = min(float(wp.get(p, 0.0)), n_p)
                    if p_imp is not None and p != RESIDUAL and p_imp.sum() > 0:
                        mix, how = p_imp / p_imp.sum(), "mass balance, BACI import mix"
                    else:
                        sp = surplus.drop(p, errors="ignore")
                        mix, how = (sp / sp.sum() if sp.sum() > 0 else sp), "mass balance, world surplus mix"
                    F = mix * (n_p - own)
                    F = F.add(pd.Series({p: own}), fill_value=0.0)
                if F is None and p != RESIDUAL and RESIDUAL in mixes:
                    F, how = mixes[RESIDUAL][0], "as other countries"
                if F is None or F.sum() <= 0:
                    continue
                F = F.groupby(level=0).sum()
                F = F[F > 0] / F.sum()
                mixes[p] = (F, how)
                rows.append(pd.DataFrame({"commodity": c, "stage": s_next, "processor": p, "supplier": F.index,
                                          "value": F.to_numpy(float), "method": how}))
            if not mixes:
                notes.append(f"{c} {s_next}: no feed mix (no bilateral trade with a basis ratio at {s_prev} and "
                             f"the {s_next} output is not stated in the {s_prev} basis): its processors' outputs "
                             "are not cut by upstream losses abroad.")
                continue
            out = nxt["world"].astype(float)
            big = [p for p in out.sort_values(ascending=False).index if p in mixes][:4]
            big += [p for p in mixes if p not in big and p != RESIDUAL][: max(0, 4 - len(big))]
            notes.append(f"{c} {s_next}: processors' feed at the {s_prev} stage (share of feed by origin) — "
                         + "; ".join(f"{p} [{mixes[p][1]}]: " + ", ".join(
                             f"{j} {v:.0%}" for j, v in mixes[p][0].sort_values(ascending=False).head(3).items())
                             for p in big)
                         + f"; {len(mixes)} processors in all.")
    cols = ["commodity", "stage", "processor", "supplier", "value", "method"]
    feed = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    return feed[cols], notes


def feed_stage_index(stages: Mapping[str, Sequence[str]], commodities: Sequence[str],
                     stage_axis: Sequence[str]) -> xr.DataArray:
    """(commodity, stage) position on ``stage_axis`` of the stage feeding each stage (−1: none).

    The previous *modelled* stage of the commodity's chain, not of the shared axis (tungsten: mine → metal).
    """
    out = np.full((len(commodities), len(stage_axis)), -1, dtype=int)
    for ci, c in enumerate(commodities):
        chain = list(stages.get(c, []))
        for a, b in pairwise(chain):
            out[ci, list(stage_axis).index(b)] = list(stage_axis).index(a)
    return xr.DataArray(out, dims=[COMMODITY, STAGE], coords={COMMODITY: list(commodities), STAGE: list(stage_axis)})


# --- the pure, vectorised mapping --------------------------------------------------------------------------

def indirect_cuts(direct_in: xr.DataArray, feed_mix: xr.DataArray, feed_stage: xr.DataArray) -> xr.DataArray:
    """Share of each processor country's output lost because its feeders withhold (carried down the chain).

    Parameters
    ----------
    direct_in : DataArray (..., commodity, stage, supplier, processor, month), 0..1
        Direct cut on feeder j's stage-s flow to processor p (targets including p). The ``supplier`` axis
        may hold only the countries that cut (the others are 0); every label must be on the processor axis.
    feed_mix : DataArray (commodity, stage, supplier, processor), 0..1
        Fraction of p's feed for its stage-s' output (``stage`` = s') coming from j at the feed stage;
        sums to 1 over ``supplier`` where p has a feed mix, 0 elsewhere.
    feed_stage : DataArray (commodity, stage) int
        Position on the stage axis of the stage feeding each stage (−1: first stage, nothing upstream).

    Returns
    -------
    DataArray (..., commodity, stage, processor, month), 0..1
        ``ind[p, s'] = min(1, Σ_j feed_mix[p, j] · (1 − (1 − direct_in[j → p, s]) · (1 − ind[j, s])))``,
        0 at each commodity's first stage. Stages are processed upstream → downstream (a loop of ≤ 4);
        everything else is vectorised.
    """
    procs = [str(p) for p in feed_mix[PROCESSOR].values]
    fm = feed_mix.reindex({SUPPLIER: procs}, fill_value=0.0)          # feeders are processors one stage up
    d = direct_in.reindex({PROCESSOR: procs}, fill_value=0.0)
    cutters = [str(j) for j in d[SUPPLIER].values]
    stage_axis = list(feed_mix[STAGE].values)
    lead = [x for x in d.dims if x not in (COMMODITY, STAGE, SUPPLIER, PROCESSOR, MONTH)]
    zero = xr.zeros_like(d.isel({STAGE: 0, SUPPLIER: 0}, drop=True), dtype=float)    # (..., C, P, T)
    per_stage: list[xr.DataArray] = []
    for s in stage_axis:
        prev = feed_stage.sel({STAGE: s}, drop=True)                  # (C,) feed-stage positions
        ind = zero
        for pi in sorted({int(v) for v in prev.values if v >= 0}):
            take = (prev == pi)
            up = per_stage[pi].rename({PROCESSOR: SUPPLIER})           # feeders' own losses (..., C, J, T)
            f = fm.sel({STAGE: s}, drop=True)                          # (C, J, P)
            d_s = d.isel({STAGE: pi}, drop=True)                      # (..., C, J_cut, P, T)
            # Σ_j f·ind_j  +  Σ_{j cutting} f·d·(1 − ind_j): the expansion of f·(1 − (1 − d)(1 − ind_j))
            via_up = xr.dot(f, up, dim=SUPPLIER)
            via_cut = (f.sel({SUPPLIER: cutters}) * d_s * (1.0 - up.sel({SUPPLIER: cutters}))).sum(SUPPLIER)
            ind = xr.where(take, (via_up + via_cut).clip(0.0, 1.0), ind)
        per_stage.append(ind.transpose(*lead, COMMODITY, PROCESSOR, MONTH))
    out = xr.concat(per_stage, dim=STAGE).assign_coords({STAGE: stage_axis})
    return out.transpose(*lead, COMMODITY, STAGE, PROCESSOR, MONTH)


def flow_weights(share: xr.DataArray, row_export_share: xr.DataArray | None) -> xr.DataArray:
    """(commodity, stage, supplier, consumer) weight w of a processor's indirect loss on each flow.

    1 for a named consumer other than the supplier, ε (exported share) for ``ROW``, 0 for the consumer's own
    production (its own processors are the kernel's ``u · f_up``). Zero where there is no flow.
    """
    cons = [str(k) for k in share[CONSUMER].values]
    sups = [str(i) for i in share[SUPPLIER].values]
    own = xr.DataArray(np.equal.outer(np.array(sups), np.array(cons)), dims=[SUPPLIER, CONSUMER],
                       coords={SUPPLIER: sups, CONSUMER: cons})
    is_row = xr.DataArray(np.array(cons) == RESIDUAL, dims=[CONSUMER], coords={CONSUMER: cons})
    eps = (row_export_share.reindex({SUPPLIER: sups}).fillna(1.0) if row_export_share is not None
           else xr.ones_like(share.isel({CONSUMER: 0}, drop=True)))
    w = xr.where(is_row, eps, 1.0).where(~own, 0.0)
    return (w * (share > 0)).transpose(COMMODITY, STAGE, SUPPLIER, CONSUMER).astype(float)


def combine(cut: xr.DataArray, ind: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Direct and indirect cuts on each flow as independent losses: 1 − (1 − cut) · (1 − w · ind).

    Parameters
    ----------
    cut : (..., commodity, stage, supplier, consumer, month) direct cuts, 0..1
    ind : (..., commodity, stage, processor, month) from :func:`indirect_cuts`
    weights : (commodity, stage, supplier, consumer) from :func:`flow_weights`
    """
    sups = [str(i) for i in cut[SUPPLIER].values]
    ind_s = ind.rename({PROCESSOR: SUPPLIER}).reindex({SUPPLIER: sups}, fill_value=0.0)
    out = 1.0 - (1.0 - cut) * (1.0 - weights * ind_s)
    return out.clip(0.0, 1.0).transpose(*cut.dims)


def peak_notes(ind: xr.DataArray, feed_mix: xr.DataArray, top: int = 3, floor: float = 0.005) -> list[str]:
    """Plain-English statements of the largest indirect losses of a scenario, with the feed shares behind them."""
    peak = ind.max(MONTH)
    notes = []
    for (c, s), sub in peak.to_series().groupby(level=[0, 1]):
        sub = sub.droplevel([0, 1])
        sub = sub[sub > floor].sort_values(ascending=False).head(top)
        if sub.empty:
            continue
        parts = []
        for p, v in sub.items():
            fm = feed_mix.sel({COMMODITY: c, STAGE: s, PROCESSOR: p}).to_series()
            fm = fm[fm > 0].sort_values(ascending=False).head(2)
            parts.append(f"{p} −{v:.0%} (feed: " + ", ".join(f"{j} {x:.0%}" for j, x in fm.items()) + ")")
        notes.append(f"indirect: {c} {s} output lost by processors whose feed is cut, at the peak: "
                     + "; ".join(parts) + ". Applied to their exports (ROW: the exported share ε only).")
    return notes


__all__ = ["PROCESSOR", "combine", "feed_mixes", "feed_stage_index", "flow_weights", "indirect_cuts", "peak_notes"]
