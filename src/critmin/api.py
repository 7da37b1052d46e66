"""The public Python API: one function per command line, each returning the stage's result.

Every function takes the same options as its command (same names, same defaults, same errors) and
returns a :class:`critmin.results.Result` (``.to_frame()``, ``.to_xarray()``, ``.meta``), except
:func:`load` (a table) and :func:`assess` (an ``xarray.Dataset``, or its long table with ``tidy=True``).
The command line is a thin adapter over the same workflows; nothing here writes files unless asked to
(``out=``).

============================  ==================================================
``critmin.load``              ``critmin data show TABLE``
``critmin.assess``            ``critmin assess``
``critmin.priorities``        ``critmin priorities``
``critmin.scenario``          ``critmin scenario run``
``critmin.risk``              ``critmin risk``
``critmin.stockpile``         ``critmin stockpile plan``
``critmin.stockpile_simulate````critmin stockpile simulate``
``critmin.invest``            ``critmin invest select``
``critmin.policy_measure``    ``critmin policy floor|cfd|offtake|tariff``
``critmin.permitting``        ``critmin policy permitting``
``critmin.monitor``           ``critmin monitor``
``critmin.map``               ``critmin map``
``critmin.brief``             ``critmin brief``
============================  ==================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import xarray as xr

from critmin import workflows
from critmin.reference.catalog import Catalog
from critmin.results import Result


def _catalog(data: str | Path | None, catalog: Catalog | None) -> Catalog:
    return catalog or Catalog(data)


def load(table: str, data: str | Path | None = None) -> pd.DataFrame:
    """A table of the bundled dataset (or of the user's ``data`` folder where it holds one)."""
    return Catalog(data).table(table)


def assess(method: str = "geopolrisk", importer: str | list[str] = workflows.DEFAULT_IMPORTERS,
           year: int | None = None, stage: str = "mine", data: str | Path | None = None,
           params: str | Path | None = None, tidy: bool = False, **kw) -> xr.Dataset | pd.DataFrame:
    """Run a criticality method.

    Parameters
    ----------
    method : {"geopolrisk", "eu-sr", "usgs", "hhi"}
    importer : str or list of str
        ``"USA"``, ``"JPN"``, a bloc ``"USA+JPN"``, a group (``"g7"``, ``"msp"``), or a comma list.
    year : int, optional
        Data year (default: latest year with production and trade).
    stage : {"mine", "refine", "metal", "component"}
    data : path, optional
        Folder with the user's own tables (README, "Bring your own data").
    tidy : bool
        Return the long table (``method, commodity, stage, importer, year, indicator, value, unit``).

    Returns
    -------
    xarray.Dataset (commodity × importer × year; ``attrs`` hold citation, sources, notes) or DataFrame.
    """
    ds = workflows.assess(method, importer, year, stage, data, params, **kw)
    return workflows.tidy(ds) if tidy else ds


def priorities(importer: str | list[str] = workflows.DEFAULT_IMPORTERS, year: int | None = None,
               data: str | Path | None = None, params: str | Path | None = None,
               groups_file: str | Path | None = None, allies: str = "msp",
               as_of: dt.date | str | None = None, catalog: Catalog | None = None) -> Result:
    """Priority minerals per importer (``critmin priorities``).

    Tables: ``priorities`` (ranked, one row per importer × commodity; the main table), ``stages`` (per
    importer × commodity × stage indicators), ``shares`` (supplier shares), ``reliance`` (import reliance and
    partners), ``export_controls`` (status of every measure on ``as_of``), ``controls_binding`` (measures
    that flag a priority). ``meta``: years, as-of date, thresholds, rule, sources, notes.
    """
    res = workflows.priority_engine(importer, year, data, params, groups_file, allies, catalog, as_of)
    return Result("priorities", {"priorities": res.table, "stages": res.stages, "shares": res.shares,
                                 "reliance": res.reliance, "export_controls": res.measures,
                                 "controls_binding": res.controls}, "priorities", meta=res.meta)


def scenario(name: str | Path, importer: str = "USA,JPN,USA+JPN", catalog: Catalog | None = None) -> Result:
    """Run a disruption scenario (``critmin scenario run``): a preset name, a YAML file or a Scenario.

    Tables: ``summary`` (one row per consumer × commodity × stage); data: the month-by-month paths
    (``xarray.Dataset`` over consumer, commodity, stage, month).
    """
    from critmin.supplychain.run import run_scenario

    ds, summary = run_scenario(name, catalog=catalog, importers=importer)
    return Result("scenario", {"summary": summary}, "summary", data=ds,
                  meta={"scenario": str(name), **{k: v for k, v in ds.attrs.items() if isinstance(v, str | int)}})


def risk(importer: str = "USA,JPN,USA+JPN", commodity: str | list[str] | None = None, *, draws: int = 100_000,
         seed: int = 0, months: int = 12, workers: int | None = None, scheduler: str | None = None,
         hazards: str | Path | None = None, catalog: Catalog | None = None,
         progress: Callable[[int, int], None] | None = None, ensemble=None) -> Result:
    """Monte Carlo risk of unmet demand (``critmin risk``): expected shortfall, VaR/CVaR, P(shortfall),
    supplier contributions per importer × commodity × stage; the seed and draw count are in ``meta``.
    ``progress(done_chunks, n_chunks)`` is called as chunks finish; ``ensemble`` (an
    :class:`~critmin.supplychain.shared_ensemble.Ensemble`) runs on an analysis's one ensemble."""
    from critmin.supplychain.risk import assess_risk

    comms = _list(commodity)
    ds, frame, meta = assess_risk(importer, comms, draws=draws, seed=seed, months=months, workers=workers,
                                  scheduler=scheduler, hazards_file=hazards, catalog=catalog or Catalog(),
                                  progress=progress, ensemble=ensemble)
    return Result("risk", {"risk": frame}, "risk", data=ds, meta={**meta, "seed": seed, "draws": draws,
                                                                 "months": months})


def _list(value: str | list[str] | None) -> list[str] | None:
    """A comma list or a list, as a list (None stays None)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return None if value is None else list(value)


def _outcome(kind: str, outcome, main: str) -> Result:
    return Result(kind, dict(outcome.tables), main, meta={**outcome.attrs, "notes": list(outcome.notes)})


def stockpile(holders: str | list[str] = "USA,JPN", *, draws: int = 2000, months: int = 12, seed: int = 1,
              budget: float | None = None, joint_budget: float | None = None, share: float = 1.0,
              cvar_alpha: float = 0.95, cvar_weight: float = 0.0, min_days: float | None = None,
              high_risk: list[str] | None = None, commodity: list[str] | None = None,
              frontier: list[float] | None = None, catalog: Catalog | None = None, ensemble=None) -> Result:
    """Joint complementary stockpile (``critmin stockpile plan``): the plan (main table), the comparison
    with stockpiling alone and rules of thumb, and the efficient frontier when ``frontier`` budgets are given.
    ``ensemble``: an analysis's one ensemble (default: the one ``critmin risk --seed SEED`` runs)."""
    from critmin.optimize.workflow import stockpile_plan

    out = stockpile_plan(catalog or Catalog(), holders=_list(holders), draws=draws, months=months, seed=seed,
                         budget=budget, joint_budget=joint_budget, share=share, cvar_alpha=cvar_alpha,
                         cvar_weight=cvar_weight, min_days=min_days, high_risk=list(high_risk or []),
                         commodities=_list(commodity), frontier=frontier, ensemble=ensemble)
    return _outcome("stockpile", out, "plan")


def stockpile_simulate(plan: str | Path, holders: str | list[str] = "USA,JPN", *, draws: int = 2000, months: int = 12,
                       seed: int = 1, share: float = 1.0, catalog: Catalog | None = None) -> Result:
    """Month-by-month drawdown of a plan CSV (``commodity, holder, stock_t``) (``critmin stockpile simulate``)."""
    from critmin.optimize.workflow import stockpile_simulate as run

    out = run(catalog or Catalog(), plan_csv=Path(plan), holders=_list(holders), draws=draws, months=months,
              seed=seed, share=share)
    return _outcome("stockpile-simulate", out, "drawdown")


def invest(budgets: str | dict[str, float], *, candidates: str | Path | None = None,
           instruments: str | Path | None = None, holders: str | list[str] = "USA,JPN", draws: int = 2000,
           months: int = 12, seed: int = 1, start_year: int = 2026, max_country_share: float = 1.0,
           certified_only: bool = False, track: str = "ordinary", commodity: str | list[str] | None = None,
           catalog: Catalog | None = None, ensemble=None) -> Result:
    """Finance portfolio of projects × instruments (``critmin invest select``), re-evaluated on the ensemble.
    ``budgets``: ``"grant=100,loan=500"`` (USD m) or a dict."""
    from critmin.optimize.workflow import invest_select, parse_budgets

    b = parse_budgets(budgets) if isinstance(budgets, str) else dict(budgets)
    out = invest_select(catalog or Catalog(), candidates=Path(candidates) if candidates else None, budgets=b,
                        draws=draws, months=months, seed=seed, holders=_list(holders), start_year=start_year,
                        max_country_share=max_country_share, instruments=Path(instruments) if instruments else None,
                        certified_only=certified_only, track=track, commodities=_list(commodity), ensemble=ensemble)
    return _outcome("invest", out, "portfolio")


def policy_measure(kind: str, catalog: Catalog | None = None, **options) -> Result:
    """A pricing measure (``critmin policy floor|cfd|offtake|tariff``): ``kind`` is the sub-command, the
    options are :func:`critmin.policy.workflow.evaluate_measure`'s (``commodity``, ``price``, ``volume_t``,
    ``years``, ``paths``, ``seed`` …). Main table: the cost to government and the project's NPV/IRR."""
    from critmin.policy.workflow import measure_result

    return measure_result(kind, catalog=catalog, **options)


def permitting(project: str, *, track: str = "ordinary", horizon: float = 120.0,
               months_saved: tuple[float, ...] = (1.0, 3.0, 6.0, 12.0), relief: float | None = None,
               params: str | Path | None = None, paths: int | None = None, seed: int | None = None,
               catalog: Catalog | None = None) -> Result:
    """Time to first production of a project by permitting track (``critmin policy permitting``)."""
    from critmin.policy.defaults import DEFAULT_PATHS, DEFAULT_SEED
    from critmin.policy.workflow import permitting as run

    frame, meta = run(project, track=track, horizon_months=horizon, months_saved=tuple(months_saved),
                      relief_t_per_month=relief, paths=paths or DEFAULT_PATHS,
                      seed=DEFAULT_SEED if seed is None else seed, params=params, catalog=catalog or Catalog())
    return Result("permitting", {"permitting": frame}, "permitting", meta=meta)


def monitor(data: str | Path, catalog: Catalog | None = None, thresholds: str | Path | None = None) -> Result:
    """Alerts from new trade, prices or export-control events against the baseline (``critmin monitor``);
    ``thresholds``: a YAML overriding ``monitor/thresholds.yml``."""
    from critmin.monitor.workflow import monitor_result

    return monitor_result(data, catalog=catalog, thresholds=thresholds)


def map(commodity: str | list[str] | None = None, stage: str | list[str] | None = None,
        data: str | Path | None = None, out: str | Path | None = None, geojson: str | Path | None = None,
        gpkg: str | Path | None = None) -> Result:
    """Resource map layers (``critmin map``); files are written only where ``out``/``geojson``/``gpkg`` say.
    Tables ``deposits`` and ``projects``; ``meta['figure']`` is the Plotly figure."""
    from critmin.geo.workflow import build_map

    m = build_map(commodity, stage, data, out, geojson, gpkg)
    return Result("map", {"deposits": m.deposits, "projects": m.projects}, "projects",
                  meta={"figure": m.figure, "written": [str(p) for p in m.written], "notes": list(m.notes)})


def brief(importer: str = "USA,JPN,USA+JPN", year: int | None = None, data: str | Path | None = None,
          out: str | Path | None = None, monitor: str | Path | None = None, params: str | Path | None = None,
          groups_file: str | Path | None = None, allies: str = "msp", as_of: dt.date | str | None = None,
          progress: Callable[[str], None] | None = None) -> Result:
    """The Rapid Response brief (``critmin brief``): every table of the report; written to ``out`` when given.
    ``progress(step)`` is called with each stage's name as it starts (``"writing"`` last)."""
    from critmin.chain import run_chain
    from critmin.report.brief import build_brief, write_brief

    chain = run_chain(importer, year, data, params, groups_file, allies, monitor, as_of=as_of, progress=progress)
    b = build_brief(chain=chain)
    written = None
    if out is not None:
        if progress is not None:
            progress("writing")
        written = str(write_brief(b, out))
    return Result("brief", dict(b.tables), "priorities",
                  meta={**b.meta, "summary": b.summary, "assumptions": b.assumptions, "notes": b.notes,
                        "sources": b.sources, "written": written, "chain": chain})
