"""The multi-stage supply network per commodity, built from the bundled data (production, BACI, USGS, cited shares).

A :class:`Network` holds a kernel :class:`~critmin.supplychain.kernel.Baseline` over the dims
``commodity, stage, supplier, consumer`` plus everything a scenario needs to turn events into cuts, and an
``assumptions`` list saying in plain words which numbers were used and where data were missing.

Per commodity c and stage s (all tonnes are per year in the data and per month in the Baseline):

* **World output W and supplier mix m_i** — USGS production at the stage (country rows + the residual,
  supplier ``ROW``); else the cited ``processing_shares`` table (latest year ≤ data year) with W normalised to
  the upstream stage's output (contained-element mass balance; the basis then says so); else, for stages known
  only from trade (e.g. rare-earth metal), world exports by exporter, W = world exports (gross weight).
* **USA demand** — USGS apparent consumption (or the named salient statistic, :data:`USA_STATISTICS`), in the
  USGS basis of that commodity; else production + imports − exports where production and BACI share a basis.
* **JPN demand** — own production plus its BACI net imports converted to the stage basis with the USA's ratio
  κ = (USA net imports in the USGS basis) / (USA net imports in BACI gross weight): a ratio of like to like,
  assuming both import the same product mix. Stages whose output is known only as shares keep each consumer's
  share of the upstream stage's demand (normalised, stated). Where none of this is possible the demand is
  unknown: it is carried as 0 in the simulation and masked (NaN) in the outputs (``known``).
* **ROW demand** = W − USA − JPN (clipped ≥ 0); its supplier mix is world output less what USA and JPN take.
* **Shares** — the consumer's own production is its domestic share u (supplier = itself); the rest is split
  by the consumer's BACI imports by exporter at that stage (quantities), or by the world mix where no trade.
* **ROW export share ε_i** — ROW includes the exporting countries themselves (China's own use of Chinese
  oxide); an export restriction only cuts what crosses a border. ε_i = i's BACI exports to third countries
  (not USA/JPN), scaled to the stage basis by i's flows to USA/JPN, over i's supply to ROW; for a supplier
  that sells nothing to USA/JPN, the bound (share of world exports) / (share of world output); 1 at stages
  without trade data (an upper bound, stated).

The scenarios replay past events on this (latest data year) baseline; they do not reconstruct the market
of the event's own year.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from critmin.constants import COMMODITY, RESIDUAL, ROW_COUNTRY, ROW_RESIDUAL, STAGE, STAGES
from critmin.errors import ConfigError
from critmin.supplychain.kernel import CONSUMER, SUPPLIER, Baseline
from critmin.supplychain.network_data import (
    _pick_processing,
    _prices,
    _usa_statistic,
    response_parameters,
)

#: Stages modelled per commodity, upstream → downstream, with what the stage means for that commodity.
CHAINS: dict[str, dict[str, str]] = {
    "rare-earths": {"mine": "mining (REO)", "refine": "separation (oxides, compounds)",
                    "metal": "metal and alloy", "component": "NdFeB magnets"},
    "lithium": {"mine": "mining", "refine": "chemicals (carbonate, hydroxide)", "component": "cathode"},
    "graphite": {"mine": "mining (natural)", "refine": "anode material (battery-grade)"},
    "cobalt": {"mine": "mining", "refine": "refined chemicals and metal"},
    "nickel": {"mine": "mining", "refine": "refined nickel (Class 1 and 2)"},
    "gallium": {"refine": "primary (low-purity) gallium"},
    "germanium": {"refine": "refined germanium"},
    "antimony": {"mine": "mining (ores and concentrates)"},
    "tungsten": {"mine": "mining (concentrates)", "metal": "tungsten powders"},
    "molybdenum": {"mine": "mining (concentrates)"},
    "bismuth": {"refine": "refined bismuth"},
    "indium": {"refine": "refined indium"},
    "tellurium": {"refine": "refined tellurium"},
}

#: USGS salient statistics (table ``us_salient``) giving U.S. demand and production at a stage, as signed
#: sums of (statistic, detail) rows. Chosen by hand: each USGS chapter names its statistics differently.
USA_STATISTICS: dict[tuple[str, str], dict[str, list[tuple[int, str, str]]]] = {
    ("rare-earths", "mine"): {
        "demand": [(1, "production", "Production: Mineral concentrates"), (-1, "exports", "Exports: Ores and compounds")],
        "production": [(1, "production", "Production: Mineral concentrates")]},
    ("rare-earths", "refine"): {
        "demand": [(1, "apparent_consumption", "Consumption, apparent, compounds and metals")],
        "production": [(1, "production", "Production: Compounds and metals")]},
    ("graphite", "mine"): {"demand": [(1, "apparent_consumption", "Consumption, apparent")],
                           "production": [(1, "production", "Production, mine")]},
    ("cobalt", "refine"): {"demand": [(1, "apparent_consumption", "Consumption (includes secondary): Apparent")],
                           "production": [(1, "production", "Production: Secondary")]},
    ("nickel", "mine"): {
        "demand": [(1, "production", "Production: Mine"), (1, "imports", "Imports: Ores and concentrates"),
                   (-1, "exports", "Exports: Ores and concentrates")],
        "production": [(1, "production", "Production: Mine")]},
    ("nickel", "refine"): {"demand": [(1, "apparent_consumption", "Consumption: Apparent, primary")],
                           "production": []},
    ("antimony", "mine"): {
        "demand": [(1, "imports", "Imports for consumption: Ore and concentrates"),
                   (-1, "exports", "Exports: Ore and concentrates")],
        "production": [(1, "production", "Production: Mine (recoverable antimony)")]},
    ("gallium", "refine"): {"demand": [(1, "other", "Consumption, reported")],
                            "production": [(1, "production", "Production, primary")]},
    ("germanium", "refine"): {
        "demand": [(1, "imports", "Imports for consumption: Germanium metal"),
                   (1, "imports", "Imports for consumption: Germanium dioxide"),
                   (-1, "exports", "Exports: Germanium metal"), (-1, "exports", "Exports: Germanium dioxide")],
        "production": [(1, "production", "Production, refinery: Primary")]},
    ("tungsten", "mine"): {
        "demand": [(1, "imports", "Imports for consumption: Ores and concentrates"),
                   (-1, "exports", "Exports: Ores and concentrates")],
        "production": [(1, "production", "Production: Mine")]},
    ("tungsten", "metal"): {
        "demand": [(1, "imports", "Imports for consumption: Other forms"), (-1, "exports", "Exports: Other forms")],
        "production": []},
    ("molybdenum", "mine"): {"demand": [(1, "apparent_consumption", "Consumption: Apparent")],
                             "production": [(1, "production", "Production, mine")]},
    ("bismuth", "refine"): {"demand": [(1, "apparent_consumption", "Consumption: Apparent")],
                            "production": [(1, "production", "Production: Refinery")]},
    ("indium", "refine"): {"demand": [(1, "other", "Consumption, estimated")],
                           "production": [(1, "production", "Production, refinery")]},
    ("lithium", "refine"): {"demand": [(1, "imports", "Imports for consumption"), (-1, "exports", "Exports")],
                            "production": []},
}

CONSUMERS_DEFAULT = ("USA", "JPN", "ROW")
MONTHS_PER_YEAR = 12.0


@dataclass
class Network:
    """The undisturbed multi-stage network and what was assumed to build it.

    Attributes
    ----------
    baseline : kernel Baseline; demand in t/month of each stage's basis.
    suppliers : supplier axis (ISO3 codes plus ``ROW`` = other countries).
    stages : per commodity, the modelled stages upstream → downstream.
    basis : (commodity, stage) → what a tonne is of.
    known : (commodity, stage, consumer) bool — False where the demand could not be determined (masked NaN).
    row_export_share : (commodity, stage, supplier) ε, share of a supplier's flow to ROW that is exported.
    third_exports : long table (commodity, stage, exporter, importer, quantity t gross) of BACI exports to
        countries other than the named consumers, to split ROW by a scenario's targets.
    parameters : long table of the response parameters used (commodity, parameter, value, unit, source).
    year : data year.
    assumptions : plain-English statements with the numbers used.
    feed_mix : (commodity, stage, supplier, processor) fraction of processor country p's feed for its output at
        ``stage`` coming from supplier j at the previous modelled stage (:func:`critmin.supplychain.indirect.
        feed_mixes`); sums to 1 over ``supplier`` where p has a feed mix, else 0. ``processor`` has the labels of
        ``supplier``.
    feed_stage : (commodity, stage) int, position on the stage axis of the stage feeding each stage (−1: none).
    """

    baseline: Baseline
    suppliers: list[str]
    stages: dict[str, list[str]]
    basis: dict[tuple[str, str], str]
    known: xr.DataArray
    row_export_share: xr.DataArray
    third_exports: pd.DataFrame
    parameters: pd.DataFrame
    year: int
    consumers: tuple[str, ...] = CONSUMERS_DEFAULT
    assumptions: list[str] = field(default_factory=list)
    source_ids: list[str] = field(default_factory=list)
    feed_mix: xr.DataArray | None = None
    feed_stage: xr.DataArray | None = None

    @property
    def commodities(self) -> list[str]:
        return list(self.stages)


def build_network(catalog, commodities: list[str] | None = None, year: int | None = None,
                  consumers: tuple[str, ...] = CONSUMERS_DEFAULT) -> Network:
    """Build the multi-stage network from the bundled (or user) tables.

    Parameters
    ----------
    catalog : critmin.reference.catalog.Catalog
    commodities : list of commodity ids (default: every commodity in :data:`CHAINS`).
    year : data year (default: the latest year with both production and BACI trade).
    consumers : consumer labels; the last must be ``ROW`` (rest of world = world − the named consumers).

    Returns
    -------
    Network
    """
    commodities = list(commodities or CHAINS)
    unknown = [c for c in commodities if c not in CHAINS]
    if unknown:
        raise ConfigError(f"no supply-chain network for {', '.join(unknown)}; modelled: {', '.join(CHAINS)}")
    if consumers[-1] != RESIDUAL:
        raise ConfigError("the last consumer must be ROW (the rest of the world closes the mass balance)")
    named = list(consumers[:-1])
    prod = catalog.table("production")
    trade = catalog.table("trade")
    if year is None:
        year = int(min(prod.year.max(), trade.year.max()))
    prod = prod[(prod.year == year) & prod.commodity.isin(commodities)
                & prod.row_type.isin([ROW_COUNTRY, ROW_RESIDUAL])]
    trade = trade[(trade.year == year) & trade.commodity.isin(commodities)]
    sal = catalog.table("us_salient")
    sal = sal[sal.year == year]
    ps = catalog.table("processing_shares")
    notes: list[str] = [f"Data year {year}: USGS MCS production, CEPII BACI trade and USGS salient statistics of "
                        f"{year}; past events are replayed on this baseline."]

    recs = []  # one record per (commodity, stage): world, demand, shares
    stages: dict[str, list[str]] = {}
    basis: dict[tuple[str, str], str] = {}
    third = []
    stage_info: dict[tuple[str, str], dict] = {}
    for c in commodities:
        stages[c] = []
        up_w, up_basis, up_demand = None, None, None
        for s in (st for st in STAGES if st in CHAINS[c]):
            label = f"{c} {s} ({CHAINS[c][s]})"
            p_cs = prod[(prod.commodity == c) & (prod.stage == s)]
            t_cs = trade[(trade.commodity == c) & (trade.stage == s)]
            ps_cs = _pick_processing(ps, c, s, year)
            trade_only = False
            # --- world output and supplier mix -------------------------------------------------------
            if not p_cs.empty and p_cs.value.sum() > 0:
                world = p_cs.groupby("country").value.sum()
                W, b = float(world.sum()), str(p_cs.basis.iloc[0])
                notes.append(f"{label}: world output {W:,.0f} t ({b}), USGS MCS {year}.")
            elif not ps_cs.empty and up_w is not None and stages[c] and \
                    basis[(c, stages[c][-1])].startswith("gross weight of traded"):
                notes.append(f"{label}: skipped — only a world mix (processing shares) and the upstream stage is "
                             "known only from trade, so neither the stage's output nor USA/JPN demand can be "
                             "stated in a physical basis.")
                continue
            elif not ps_cs.empty and up_w is not None:
                world = ps_cs.groupby("country").share.sum()
                world = world / world.sum() * up_w
                W = up_w
                b = f"{up_basis}, normalised to {stages[c][-1]} output"
                notes.append(f"{label}: no production by country; world mix from the cited processing-shares "
                             f"table ({ps_cs.year.iloc[0]}, {ps_cs.basis.iloc[0]}: "
                             + ", ".join(f"{k} {v:.1%}" for k, v in (world / W).sort_values(ascending=False).items())
                             + f"; {ps_cs.citation.iloc[0][:80]}), output normalised to the upstream stage's "
                             f"{W:,.0f} t ({up_basis}).")
            elif not ps_cs.empty:
                world = ps_cs.groupby("country").share.sum()
                world = world / world.sum()
                W, b = float("nan"), f"{ps_cs.basis.iloc[0]} (shares only)"
                notes.append(f"{label}: world output unknown (no production data); mix from the cited "
                             f"processing-shares table ({ps_cs.year.iloc[0]}); ROW demand unknown.")
            elif not t_cs.empty:
                world = t_cs.groupby("exporter").quantity.sum()
                W, b, trade_only = float(world.sum()), "gross weight of traded product (BACI)", True
                notes.append(f"{label}: known only from trade: world = world exports {W:,.0f} t gross weight "
                             f"(BACI HS {', '.join(sorted(t_cs.hs6.unique()))}); ROW means other importers; "
                             "domestic production of USA/JPN unknown (u = 0).")
            else:
                notes.append(f"{label}: skipped — no production, trade or processing-share data in the bundled "
                             "dataset.")
                continue
            world = world[world > 0]
            stages[c].append(s)
            basis[(c, s)] = b
            # --- named consumers: production, demand, import mix ----------------------------------------
            imp = t_cs[t_cs.importer.isin(named)].groupby(["importer", "exporter"]).quantity.sum()
            exp = t_cs[t_cs.exporter.isin(named)].groupby("exporter").quantity.sum()
            same_basis = (not p_cs.empty and "gross weight" in b) or trade_only
            D, P = {}, {}
            spec = USA_STATISTICS.get((c, s))
            for k in named:
                P[k] = float(world.get(k, 0.0)) if not trade_only else 0.0
                m_k = float(imp.loc[k].sum()) if k in imp.index.get_level_values(0) else 0.0
                x_k = float(exp.get(k, 0.0))
                D[k] = float("nan")
                if k == "USA" and spec is not None:
                    D[k] = _usa_statistic(sal[sal.commodity == c], spec["demand"])
                    if spec["production"]:
                        pv = _usa_statistic(sal[sal.commodity == c], spec["production"])
                        P[k] = pv if np.isfinite(pv) else P[k]
                    if np.isfinite(D[k]):
                        notes.append(f"{label}: USA demand {max(D[k], 0):,.0f} t/yr, production {P[k]:,.0f} t "
                                     f"from USGS salient statistics ({'; '.join(d for _, _, d in spec['demand'])}).")
                if not np.isfinite(D[k]) and same_basis and not t_cs.empty:
                    D[k] = P[k] + m_k - x_k
                    notes.append(f"{label}: {k} apparent consumption = production {P[k]:,.0f} + imports "
                                 f"{m_k:,.0f} − exports {x_k:,.0f} t (BACI, same basis).")
                    if D[k] < 0:
                        notes.append(f"{label}: WARNING {k} apparent consumption is negative ({D[k]:,.0f} t: "
                                     "exports exceed production plus imports, i.e. re-exports, stock releases or "
                                     "forms the trade data do not show); its demand is taken as 0 and this "
                                     "consumer's figures for the stage are not reliable.")
            # JPN (and any other named consumer) from USA's like-for-like conversion ratio κ
            usa_ni_gross = (float(imp.loc["USA"].sum()) if "USA" in imp.index.get_level_values(0) else 0.0) \
                - float(exp.get("USA", 0.0))
            kappa = ((D.get("USA", np.nan) - P.get("USA", 0.0)) / usa_ni_gross
                     if usa_ni_gross > 0 else float("nan"))
            for k in named:
                if np.isfinite(D[k]):
                    continue
                m_k = float(imp.loc[k].sum()) if k in imp.index.get_level_values(0) else 0.0
                ni = m_k - float(exp.get(k, 0.0))
                if not t_cs.empty and np.isfinite(kappa) and kappa > 0:
                    D[k] = P[k] + ni * kappa
                    notes.append(f"{label}: {k} demand = production {P[k]:,.0f} + net imports {ni:,.0f} t gross "
                                 f"× κ {kappa:.3f} (USA's USGS net imports per BACI gross tonne) = {max(D[k], 0):,.0f} "
                                 f"t/yr" + (" — κ > 1: the USGS statistic covers more products than the HS codes, "
                                            "indicative only" if kappa > 1 else "") + ".")
                elif up_demand is not None and np.isfinite(up_demand.get(k, np.nan)) and np.isfinite(W) \
                        and up_demand["_W"] > 0:
                    D[k] = up_demand[k] / up_demand["_W"] * W
                    notes.append(f"{label}: {k} demand expressed as its share of {stages[c][-2]}-stage world demand "
                                 f"({up_demand[k] / up_demand['_W']:.2%}) × {W:,.0f} t (normalised: no consumer data "
                                 "at this stage).")
                else:
                    notes.append(f"{label}: {k} demand unknown (no USGS statistic, no trade code, no usable ratio); "
                                 "masked in the outputs.")
            known = {k: bool(np.isfinite(D[k])) for k in named}
            Dn = {k: (max(D[k], 0.0) if known[k] else 0.0) for k in named}
            u = {k: (min(P[k] / Dn[k], 1.0) if Dn[k] > 0 else 0.0) for k in named}
            # import mix per named consumer: BACI quantities by exporter, else the world mix without itself
            mixes = {}
            for k in named:
                if k in imp.index.get_level_values(0) and imp.loc[k].drop(k, errors="ignore").sum() > 0:
                    mix = imp.loc[k].drop(k, errors="ignore")
                else:
                    mix = world.drop(k, errors="ignore")
                    if Dn[k] > 0 and u[k] < 1:
                        notes.append(f"{label}: {k} import mix from the world supplier mix (no bilateral trade).")
                mix = mix / mix.sum() if mix.sum() > 0 else mix
                sh = mix * (1.0 - u[k])
                sh.loc[k] = sh.get(k, 0.0) + u[k]
                mixes[k] = sh
            # ROW: world minus the named consumers
            if np.isfinite(W):
                d_row = max(W - sum(Dn.values()), 0.0)
                taken = sum(mixes[k] * Dn[k] for k in named) if named else 0.0
                row_sup = (world.sub(taken, fill_value=0.0)).clip(lower=0.0)
                row_sup = row_sup.drop(named, errors="ignore")
                if row_sup.sum() <= 0:
                    row_sup = world.drop(named, errors="ignore")
                row_mix = row_sup / row_sup.sum()
                known_row = True
                if W - sum(Dn.values()) < 0:
                    notes.append(f"{label}: USA+JPN demand exceeds world output; ROW demand clipped to 0.")
            else:
                d_row, row_mix, known_row, row_sup = 0.0, world / world.sum(), False, world * 0
            # ε: exported share of each supplier's flow to ROW
            # scale BACI gross tonnes to the stage basis with the model's flows to USA/JPN where both exist
            # (consumers with unknown demand, or a flow the model does not carry, give no scale)
            scaled = [k for k in named if known[k] and Dn[k] > 0]
            to_named = pd.concat([mixes[k] * Dn[k] for k in scaled]).groupby(level=0).sum() if scaled \
                else pd.Series(dtype=float)
            x3 = t_cs[~t_cs.importer.isin(named)].groupby("exporter").quantity.sum()
            xn = t_cs[t_cs.importer.isin(scaled)].groupby("exporter").quantity.sum()
            flow_row = row_mix * d_row
            scale = (to_named.reindex(xn.index) / xn).replace([np.inf, -np.inf, 0.0], np.nan)
            e3 = (x3 * scale.reindex(x3.index)).dropna()
            eps = (e3 / flow_row.reindex(e3.index)).clip(upper=1.0).dropna()
            if not t_cs.empty and not trade_only:
                # suppliers not selling to USA/JPN: upper bound as if the world exported all its output,
                # ε ≤ (share of world exports) / (share of world output) — a ratio of shares, basis-free;
                # a supplier with no recorded exports at all gets 0 (observed)
                xs = t_cs.groupby("exporter").quantity.sum()
                bound = ((xs / xs.sum()).reindex(row_mix.index).fillna(0.0) / (world / world.sum())
                         .reindex(row_mix.index)).clip(upper=1.0)
                if RESIDUAL in bound.index:
                    bound[RESIDUAL] = 1.0  # "other countries" cannot be matched to BACI exporters
                eps = eps.reindex(row_mix.index).fillna(bound).fillna(1.0)
            else:
                eps = eps.reindex(row_mix.index).fillna(1.0)
            if not trade_only and not t_cs.empty:
                big = row_mix.sort_values(ascending=False).index[:3]
                notes.append(f"{label}: exported share ε of main ROW suppliers' flow (rest is consumed at home, "
                             "not hit by export restrictions): "
                             + ", ".join(f"{i} {eps[i]:.0%}" for i in big) + ".")
            if not t_cs.empty:
                third.append(t_cs[~t_cs.importer.isin(named)].groupby(["exporter", "importer"]).quantity.sum()
                              .reset_index().assign(commodity=c, stage=s))
            # ROW's "domestic" part is what its suppliers consume at home (not exported): only the exported
            # part can be withheld by an export restriction, and it is what the kernel books as imports.
            u_row = float((row_mix * (1.0 - eps)).sum())
            # what the feed mixes of the next stage's processors need (indirect.feed_mixes): output by country,
            # basis, BACI flows and stage-basis tonnes per BACI gross tonne (1 where both are gross weight)
            k_feed = 1.0 if same_basis else (kappa if np.isfinite(kappa) and kappa > 0 else float("nan"))
            stage_info[(c, s)] = {"world": world, "basis": b, "trade": t_cs[["exporter", "importer", "quantity"]],
                                  "kappa": k_feed}
            recs.append({"commodity": c, "stage": s, "W": W, "D": {**Dn, RESIDUAL: d_row},
                         "known": {**known, RESIDUAL: known_row}, "u": {**u, RESIDUAL: u_row},
                         "mix": {**mixes, RESIDUAL: row_mix}, "eps": eps})
            if not trade_only:
                up_w, up_basis = W, b
            up_demand = {**{k: (Dn[k] if known[k] else np.nan) for k in named}, "_W": W}
        if not stages[c]:
            del stages[c]

    net = _assemble(catalog, recs, stages, basis, third, year, consumers, notes, stage_info)
    prices = catalog.table("prices")
    net.source_ids = sorted(set(prod.source) | set(trade.source) | set(sal.source) | set(ps.source)
                            | set(catalog.table("demand_parameters").source)
                            | set(prices[prices.series.str.startswith("mcs: ")].source))
    return net


def _assemble(catalog, recs, stages, basis, third, year, consumers, notes, stage_info=None) -> Network:
    """Records → labelled arrays (one vectorised pivot per quantity)."""
    from critmin.supplychain.indirect import PROCESSOR, feed_mixes, feed_stage_index

    commodities = list(stages)
    stage_axis = [s for s in STAGES if any(s in v for v in stages.values())]
    share_rows, eps_rows = [], []
    for r in recs:
        for k, mix in r["mix"].items():
            share_rows.append(pd.DataFrame({"commodity": r["commodity"], "stage": r["stage"], "consumer": k,
                                            "supplier": mix.index, "value": mix.to_numpy(float)}))
        eps_rows.append(pd.DataFrame({"commodity": r["commodity"], "stage": r["stage"],
                                      "supplier": r["eps"].index, "value": r["eps"].to_numpy(float)}))
    shares = pd.concat(share_rows, ignore_index=True)
    # processors of a stage: every country supplying some consumer there; their feed mixes one stage up
    pos = shares[shares.value > 0]
    procs = {key: sorted(set(g.supplier)) for key, g in pos.groupby(["commodity", "stage"])}
    feed, feed_notes = feed_mixes(stage_info or {}, {c: v for c, v in stages.items() if stage_info}, procs)
    suppliers = sorted(set(shares.supplier) | set(feed.supplier) | set(feed.processor))
    coords = {COMMODITY: commodities, STAGE: stage_axis, SUPPLIER: suppliers, CONSUMER: list(consumers),
              PROCESSOR: suppliers}

    def arr(rows: pd.DataFrame, dims: list[str], fill: float) -> xr.DataArray:
        s = rows.groupby(dims).value.sum()
        da = xr.DataArray.from_series(s).reindex({d: coords[d] for d in dims}).fillna(fill)
        return da.transpose(*dims).astype(float)

    share = arr(shares, [COMMODITY, STAGE, SUPPLIER, CONSUMER], 0.0)
    flat = pd.DataFrame([{"commodity": r["commodity"], "stage": r["stage"], "consumer": k,
                          "D": r["D"][k] / MONTHS_PER_YEAR, "u": r["u"][k], "known": r["known"][k]}
                         for r in recs for k in consumers])
    demand = arr(flat.rename(columns={"D": "value"}), [COMMODITY, STAGE, CONSUMER], 0.0)
    domestic = arr(flat.rename(columns={"u": "value"}), [COMMODITY, STAGE, CONSUMER], 0.0)
    known = arr(flat.assign(value=flat.known.astype(float)), [COMMODITY, STAGE, CONSUMER], 0.0) > 0
    eps = arr(pd.concat(eps_rows, ignore_index=True), [COMMODITY, STAGE, SUPPLIER], 1.0)
    demand.attrs["units"] = "t/month"
    fm = (arr(feed, [COMMODITY, STAGE, SUPPLIER, PROCESSOR], 0.0) if len(feed) else
          xr.DataArray(np.zeros((len(commodities), len(stage_axis), len(suppliers), len(suppliers))),
                       dims=[COMMODITY, STAGE, SUPPLIER, PROCESSOR],
                       coords={k: coords[k] for k in (COMMODITY, STAGE, SUPPLIER, PROCESSOR)}))
    fm.attrs.update(units="1", long_name="fraction of a processor's feed from each supplier at the previous stage")
    notes += feed_notes
    notes.append("Indirect cuts: a processor country's output is cut in proportion to the share of its feed that "
                 "its feeders withhold (carried down the chain, mine → refine → metal → component); processors do "
                 "not re-source feed within the month (the consumers' ramp-up, substitution and recycling stand in "
                 "for their responses); the loss is shared pro rata by the processor's customers; ROW is cut on "
                 "the exported share ε only (its home use is starved by the kernel's own upstream term); a "
                 "consumer's own processors are starved only by the kernel (u · f_up), so where its upstream "
                 "demand is unknown (e.g. JPN cobalt mining) they are not starved.")

    params = response_parameters(catalog, commodities)
    pv = params.set_index(["commodity", "parameter"]).value
    price0 = xr.DataArray([_prices(catalog.table("prices"), [c], year, notes)[c] for c in commodities],
                          dims=[COMMODITY], coords={COMMODITY: commodities}, attrs={"units": "USD/t"})
    elast = xr.DataArray([pv.get((c, "price_elasticity_of_demand"), np.nan) for c in commodities],
                         dims=[COMMODITY], coords={COMMODITY: commodities})
    cap = xr.DataArray([pv.get((c, "price_spike_multiple"), np.nan) for c in commodities],
                       dims=[COMMODITY], coords={COMMODITY: commodities})
    for _, r in params.iterrows():
        if r.source.startswith("by analogy") and r.commodity == commodities[0]:
            notes.append(f"{r.parameter} = {r.value:g} {r.unit} for commodities without a published value, "
                         f"{r.source.split(':')[0]} (explicit default, override in the scenario).")
    base = Baseline(demand=demand, share=share, domestic=domestic, price0=price0, elasticity=elast, price_cap=cap)
    third_df = (pd.concat(third, ignore_index=True) if third else
                pd.DataFrame(columns=["exporter", "importer", "quantity", "commodity", "stage"]))
    notes.append("Consumers USA and JPN are separate rows; the bloc USA+JPN is their sum (with_bloc), so flows "
                 "between them are internal to the bloc.")
    return Network(baseline=base, suppliers=suppliers, stages=stages, basis=basis, known=known,
                   row_export_share=eps, third_exports=third_df, parameters=params, year=year,
                   consumers=tuple(consumers), assumptions=notes, feed_mix=fm,
                   feed_stage=feed_stage_index(stages, commodities, stage_axis))


def with_bloc(ds: xr.Dataset, blocs: dict[str, list[str]] | None = None) -> xr.Dataset:
    """Add derived bloc consumers (default ``USA+JPN``) as the sum of their members' rows.

    Extensive quantities (t, USD) are summed; ``price`` is the demand-weighted mean and ``days_of_cover``
    is recomputed from the summed stock and demand. Where a member's demand is unknown (NaN) the bloc is NaN.

    Parameters
    ----------
    ds : Dataset with a ``consumer`` dim (kernel output).
    blocs : label → member consumers.
    """
    blocs = blocs or {"USA+JPN": ["USA", "JPN"]}
    parts = []
    for label, members in blocs.items():
        sub = ds.sel({CONSUMER: members})
        # skipna=False: a bloc with a member whose demand is unknown is unknown, never a partial sum
        summed = sub.drop_vars([v for v in ("price", "days_of_cover") if v in sub]).sum(CONSUMER, skipna=False)
        if "price" in ds:
            w = sub["demand"].fillna(0)
            summed["price"] = (sub["price"] * w).sum(CONSUMER) / w.sum(CONSUMER).where(w.sum(CONSUMER) > 0)
            summed["price"] = summed["price"].fillna(sub["price"].mean(CONSUMER)).where(summed["demand"].notnull())
        if "days_of_cover" in ds and "stock" in ds:
            daily = summed["demand"] / (365.0 / 12.0)
            summed["days_of_cover"] = ((summed["stock"] / daily.where(daily > 0)).fillna(0.0)
                                       .where(summed["demand"].notnull()))
        parts.append(summed.expand_dims({CONSUMER: [label]}))
    out = xr.concat([ds, *parts], dim=CONSUMER, data_vars="all")
    for v in ds.data_vars:
        out[v].attrs = ds[v].attrs
    return out


__all__ = ["CHAINS", "USA_STATISTICS", "Network", "build_network", "response_parameters", "with_bloc"]
