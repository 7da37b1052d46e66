"""The analysis chain behind the brief, as named stages with typed results.

``Catalog → Priorities → Network/Ensemble → {scenarios, Monte Carlo risk, StockpilePlan, Portfolio,
PolicyCosts, DeliveryPlan} → map`` — each stage a call into the workflows with its result kept in one
:class:`Chain`; one ensemble (the Monte Carlo's draws) is built once and handed to the stockpile. The brief
(:mod:`critmin.report.brief`) and the Python API only shape and render what the chain returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from critmin import workflows
from critmin.importers import Importer, groups, parse_importers
from critmin.reference.catalog import Catalog
from critmin.supplychain.shared_ensemble import Ensemble, build_ensemble

#: Illustrative public-finance envelope of the brief (USD m): an explicit input, not a programme figure;
#: ``critmin invest select --budgets`` takes any other.
BRIEF_BUDGETS = {"grant": 500.0, "loan": 3000.0}
#: Ensemble size behind the stockpile LP and the portfolio (scenarios of the stochastic programmes).
OPT_DRAWS, OPT_HORIZON_MONTHS = 2000, 36


#: Default ensemble of the brief: enough draws for stable 99 % tails, quick enough for the 60 s budget.
RISK_DRAWS, RISK_SEED = 200_000, 20251030


#: Consumers of the multi-stage supply-chain model (the rest of the world is ROW).
MODEL_CONSUMERS = ("USA", "JPN")


def modelled_importers(imps) -> tuple[list[str], str]:
    """Importers the supply-chain sections can show (members among the model's consumers), as member specs
    (``usa-jpn`` → ``USA+JPN``), and a note naming those it cannot, instead of dropping them silently."""
    specs = list(dict.fromkeys("+".join(m for m in MODEL_CONSUMERS if m in i.members) for i in imps
                               if set(i.members) <= set(MODEL_CONSUMERS)))
    missing = [i.label for i in imps if not set(i.members) <= set(MODEL_CONSUMERS)]
    note = ""
    if missing:
        note = (f"scenarios, Monte Carlo risk, stockpile and finance model {', '.join(MODEL_CONSUMERS)}, their bloc "
                f"and the rest of the world only: {', '.join(missing)} not shown there")
    if not specs:
        specs = ["USA", "JPN", "USA+JPN"]
        note += "; those sections show USA, JPN and USA+JPN instead"
    return specs, note


def _scenarios(cat: Catalog, priority: list[str], importers: list[str]) -> tuple[dict, dict, dict]:
    """Run every preset that touches a priority mineral on one network; summary and paths per preset."""
    from critmin.supplychain.network import build_network
    from critmin.supplychain.presets import list_presets, load_preset
    from critmin.supplychain.run import run_scenario

    consumers = [c for c in ("USA", "JPN") if any(c in i.split("+") for i in importers)] or ["USA", "JPN"]
    chosen = [p for p in list_presets()
              if set(load_preset(p).commodities) & set(priority)]
    net = build_network(cat, consumers=(*consumers, "ROW"))
    wanted = ",".join([i for i in importers if all(m in consumers for m in i.split("+"))])
    summaries, paths = [], {}
    for name in chosen:
        ds, summary = run_scenario(name, catalog=cat, importers=wanted, network=net)
        summaries.append(summary)
        focus = importers[-1] if importers[-1] in ds["consumer"].values else str(ds["consumer"].values[0])
        sel = ds.sel(consumer=focus)
        dem = sel["demand"].where(sel["demand"] > 0)
        frame = (100 * sel["shortfall"] / dem).to_dataframe(name="shortfall_pct").reset_index()
        frame = frame.dropna(subset=["shortfall_pct"])
        keep = frame.groupby(["commodity", "stage"])["shortfall_pct"].transform("max") > 0
        paths[name] = frame[keep][["commodity", "stage", "month", "shortfall_pct"]]
    table = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    # most severe preset first (largest peak shortfall share for the focus consumer)
    paths = dict(sorted(paths.items(), key=lambda kv: -(kv[1]["shortfall_pct"].max() if len(kv[1]) else 0.0)))
    return {"scenario_results": table}, paths, {"presets": chosen, "assumptions": net.assumptions}


def _risk(cat: Catalog, importers: list[str], draws: int, ensemble: Ensemble) -> tuple[pd.DataFrame, dict]:
    """The brief's Monte Carlo on the one ensemble (network of every model consumer: USA, JPN, ROW), whose draws
    the stockpile and finance sections use too; the table keeps the importers asked for."""
    from critmin.supplychain.risk import assess_risk

    labels = list(dict.fromkeys([*MODEL_CONSUMERS, *importers]))
    _ds, frame, meta = assess_risk(",".join(labels), draws=draws, seed=ensemble.seed, catalog=cat,
                                   chunk=ensemble.chunk, ensemble=ensemble)
    return frame[frame["consumer"].isin(importers)].reset_index(drop=True), meta


def _stockpile(cat: Catalog, priority: list[str], seed: int, ensemble: Ensemble) -> tuple[dict, list[str]]:
    from critmin.optimize.workflow import stockpile_plan
    from critmin.supplychain.risk import PRIORITY_COMMODITIES

    comms = [c for c in PRIORITY_COMMODITIES if c in priority] or list(PRIORITY_COMMODITIES)
    out = stockpile_plan(cat, holders=["USA", "JPN"], draws=OPT_DRAWS, months=12, seed=seed, budget=None,
                         joint_budget=None, share=1.0, cvar_alpha=0.95, cvar_weight=0.0, min_days=None,
                         high_risk=comms, commodities=comms, ensemble=ensemble)
    return {f"stockpile_{k}": v for k, v in out.tables.items()}, out.notes


def _finance(cat: Catalog, seed: int, ensemble: Ensemble) -> tuple[dict, list[str]]:
    import datetime as _dt

    from critmin.optimize.workflow import invest_select

    out = invest_select(cat, candidates=None, budgets=dict(BRIEF_BUDGETS), draws=OPT_DRAWS,
                        months=OPT_HORIZON_MONTHS, seed=seed, holders=["USA", "JPN"],
                        start_year=_dt.date.today().year, max_country_share=1.0, instruments=None,
                        certified_only=False, ensemble=ensemble)
    return {f"finance_{k}": v for k, v in out.tables.items()}, out.notes


def _pricing(seed: int) -> tuple[dict, list[str]]:
    from critmin.policy.workflow import evaluate_measure

    frame, meta = evaluate_measure("floor", preset="dod_mp_ndpr_floor", volume_t=1000.0, paths=5000, seed=seed)
    return {"pricing_floor": frame}, list(meta.get("notes", []))


def delivery_plan(cat: Catalog, selected: set[str], seed: int, n: int = 5000) -> pd.DataFrame:
    """DeliveryPlan stage: months to first production of every project the permitting model covers (tracks by country)."""
    from critmin.errors import CritminError
    from critmin.policy import permitting as PM

    prm = PM.load_params()
    eu = set(groups()["eu27"]["members"])
    rows = []
    for r in cat.table("projects").to_dict("records"):
        country = str(r.get("country") or "")
        track = "fast41" if country == "USA" else "eu_crma" if country in eu else "ordinary"
        try:
            t_ord = PM.time_to_first_production(r, "ordinary", n, np.random.default_rng(seed), prm)
            t_tr = (t_ord if track == "ordinary"
                    else PM.time_to_first_production(r, track, n, np.random.default_rng(seed), prm))
        except CritminError:
            continue  # frameworks, finance facilities: no production timeline
        if float(np.max(t_ord)) == 0.0:
            continue  # already producing
        rows.append({"project_id": r["project_id"], "name": r.get("name", ""), "country": country,
                     "commodity": r.get("commodity", ""), "stage": r.get("stage_id", ""),
                     "status": r.get("status", ""), "capacity_tpa": r.get("capacity_tpa"),
                     "selected": r["project_id"] in selected, "track": track,
                     "median_months": float(np.median(t_tr)), "p5_months": float(np.percentile(t_tr, 5)),
                     "p95_months": float(np.percentile(t_tr, 95)),
                     "median_months_ordinary": float(np.median(t_ord)),
                     "months_saved_by_track": float(np.median(t_ord) - np.median(t_tr))})
    return pd.DataFrame(rows).sort_values("median_months").reset_index(drop=True) if rows else pd.DataFrame()




def data_gaps(prio: pd.DataFrame) -> pd.DataFrame:
    """What the data cannot say, per importer × commodity: no supply shares, reliance unknown, traded forms
    missing from the bundled trade data (``mappings/trade_gaps.csv``)."""
    rows = []
    for r in prio.itertuples(index=False):
        if isinstance(r.no_data_reason, str) and r.no_data_reason:
            rows.append({"importer": r.importer, "commodity": r.commodity, "gap": "supply shares",
                         "detail": r.no_data_reason})
        if pd.isna(r.reliance) and pd.isna(r.reliance_low):
            rows.append({"importer": r.importer, "commodity": r.commodity, "gap": "import reliance",
                         "detail": str(r.reliance_note)})
        if isinstance(r.import_gaps, str) and r.import_gaps:
            rows.append({"importer": r.importer, "commodity": r.commodity, "gap": "traded forms",
                         "detail": f"not in the bundled trade data: {r.import_gaps}"})
    return pd.DataFrame(rows, columns=["importer", "commodity", "gap", "detail"])


@dataclass
class Chain:
    """Every stage's result for one set of inputs (importers parsed once, one catalog, one ensemble)."""

    catalog: Catalog
    importers: list[Importer]
    priorities: workflows.PriorityResult
    tables: dict[str, pd.DataFrame]
    scenario_paths: dict
    scenario_meta: dict
    risk_meta: dict
    risk_draws: int
    risk_seed: int
    ensemble: Ensemble | None = None
    map_figure: object = None
    model_note: str = ""
    notes_stockpile: list[str] = field(default_factory=list)
    notes_finance: list[str] = field(default_factory=list)
    notes_pricing: list[str] = field(default_factory=list)


def run_chain(importer: str | list[Importer] = "USA,JPN,USA+JPN", year: int | None = None,
              data: str | Path | None = None, params: str | Path | None = None,
              groups_file: str | Path | None = None, allies: str = "msp", monitor_dir: str | Path | None = None,
              *, progress: Callable[[str], None] | None = None, risk_draws: int = RISK_DRAWS,
              risk_seed: int = RISK_SEED, as_of=None) -> Chain:
    """Run every stage once, in order, and keep each result (no files written)."""
    step = progress or (lambda _msg: None)
    cat = Catalog(data)
    imps = importer if isinstance(importer, list) and all(isinstance(i, Importer) for i in importer) \
        else parse_importers(importer, groups_file)
    step("priorities")
    engine = workflows.priority_engine([i.label for i in imps], year, None, params, groups_file, allies,
                                       catalog=cat, as_of=as_of)
    prio, meta, runs = engine.table, engine.meta, engine.runs
    y = meta["year"]
    allied = workflows.allied_members(allies, groups_file)
    step("criticality matrix")
    # the matrix's two axes come from the engine: supply risk of the riskiest stage, import value of all forms
    matrix = prio[["importer", "commodity", "supply_risk", "risk_stage", "composite", "priority",
                   "import_value_usd", "trade_year"]].rename(columns={"import_value_usd": "importance_usd"})
    # a commodity traded only under an HS code shared with other elements (gallium, germanium: HS 811292) is
    # placed at that code's import value, an upper bound, and says so, rather than left off the matrix
    shared = prio["import_value_shared_usd"] if "import_value_shared_usd" in prio else None
    matrix["importance_basis"] = "import value of its own traded forms"
    if shared is not None:
        use = matrix["importance_usd"].isna() & shared.notna()
        matrix.loc[use, "importance_usd"] = shared[use]
        matrix.loc[use, "importance_basis"] = "upper bound: imports under an HS code shared with other elements"
    step("vulnerabilities by stage")
    priority_commodities = sorted(set(prio.loc[prio["priority"], "commodity"]))
    stages = workflows.stage_vulnerabilities(cat, y, allied, priority_commodities)
    tables = {"priorities": prio, "criticality_matrix": matrix, "stage_vulnerabilities": stages,
              "export_controls_as_of": engine.measures.drop(columns=["other_scope"], errors="ignore"),
              "data_gaps": data_gaps(prio)}
    for method in ("geopolrisk", "eu-sr", "usgs"):
        step(f"method {method}")
        frames = [workflows.tidy(ds) for key, ds in runs.items() if key.split("/")[0] == method]
        tables[f"assess_{method.replace('-', '_')}"] = pd.concat(frames, ignore_index=True) if frames else \
            pd.DataFrame(columns=workflows.TIDY_COLUMNS)
    if monitor_dir is not None:
        step("monitoring")
        from critmin.monitor.workflow import run_monitor

        alerts, _ = run_monitor(monitor_dir, catalog=cat, priority_commodities=set(priority_commodities))
        tables["alerts"] = alerts
    step("scenarios")
    model_specs, model_note = modelled_importers(imps)
    scen_tables, scen_paths, scen_meta = _scenarios(cat, priority_commodities, model_specs)
    tables.update(scen_tables)
    step("Monte Carlo risk")
    # One ensemble (network, hazards, cited responses, seed, chunking), built once and handed to the Monte Carlo,
    # the stockpile LP (its first OPT_DRAWS draws over 12 months) and the portfolio (over OPT_HORIZON_MONTHS)
    ensemble = build_ensemble(cat, seed=risk_seed)
    risk_table, risk_meta = _risk(cat, model_specs, risk_draws, ensemble)
    tables["risk"] = risk_table
    step("stockpile and finance")
    sp_tables, sp_notes = _stockpile(cat, priority_commodities, risk_seed, ensemble)
    tables.update(sp_tables)
    fin_tables, fin_notes = _finance(cat, risk_seed, ensemble)
    tables.update(fin_tables)
    pr_tables, pr_notes = _pricing(risk_seed)
    tables.update(pr_tables)
    port = fin_tables.get("finance_portfolio", pd.DataFrame())
    selected = set(port["project_id"]) if "project_id" in port else set()
    tables["delivery_timeline"] = delivery_plan(cat, selected, risk_seed)
    step("resource map")
    from critmin.geo import workflow as geo_workflow

    layers, map_fig = geo_workflow.brief_map(cat, priority_commodities)
    tables.update(layers)
    return Chain(catalog=cat, importers=imps, priorities=engine, tables=tables, scenario_paths=scen_paths,
                 scenario_meta=scen_meta, risk_meta=risk_meta, risk_draws=risk_draws, risk_seed=risk_seed,
                 ensemble=ensemble, map_figure=map_fig, model_note=model_note, notes_stockpile=sp_notes,
                 notes_finance=fin_notes, notes_pricing=pr_notes)
