"""The Rapid Response brief: one offline HTML report plus the tables behind every number.

``build_brief`` shapes what :func:`critmin.chain.run_chain` computed (summary, figures, assumptions, sources:
the brief computes no number of its own), ``write_brief`` renders and writes the folder atomically:
``index.html`` (self-contained: Plotly's JavaScript inlined, no network at view time), ``tables/*.csv`` and
``tables.xlsx`` (every table plus a Sources sheet).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from critmin._version import __version__
from critmin.chain import (  # the chain's settings and stage helpers are the brief's (re-exported)
    BRIEF_BUDGETS,
    OPT_DRAWS,
    OPT_HORIZON_MONTHS,
    RISK_DRAWS,
    RISK_SEED,
    Chain,
    run_chain,
)
from critmin.chain import MODEL_CONSUMERS as MODEL_CONSUMERS
from critmin.chain import data_gaps as data_gaps
from critmin.chain import modelled_importers as modelled_importers
from critmin.errors import ConfigError, CritminError
from critmin.importers import groups
from critmin.methods.registry import load_params
from critmin.reference.catalog import Catalog
from critmin.reference.countries import country_name
from critmin.report.export import human

#: Sections of the brief in reading order; those of later issues say plainly they are not available yet.
PENDING: dict[str, str] = {}


@dataclass
class Brief:
    """Everything the brief shows; every number in the summary points at one of ``tables``."""

    importers: list[str]
    year: int
    tables: dict[str, pd.DataFrame]
    summary: dict
    figures: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)
    assumptions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_model: list[str] = field(default_factory=list)
    notes_opt: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _parents() -> dict[str, str]:
    from critmin.workflows.priorities import _read_mapping

    m = _read_mapping("commodity_parents.csv")
    return dict(zip(m["commodity"], m["parent"], strict=True))


def summary_chips(prio: pd.DataFrame, importer: str, n: int) -> list[str]:
    """The first ``n`` priorities of ``importer`` in rank order, elements of a group that is itself a priority
    (individual rare earths under ``rare-earths``) folded into the group's chip: "rare-earths (+ 14 elements)"."""
    p = prio[(prio["importer"] == importer) & prio["priority"]].sort_values("rank")
    parents = _parents()
    prios = set(p["commodity"])
    members: dict[str, list[str]] = {}
    order: list[str] = []
    for c in p["commodity"]:
        head = parents.get(c) if parents.get(c) in prios else c
        if head not in members:
            members[head] = []
            order.append(head)
        if head != c:
            members[head].append(c)
    out = []
    for head in order[:n]:
        kids = members[head]
        out.append(head if not kids else f"{head} (+ {len(kids)} elements)")
    return out


#: Dataset tables the brief's sections read (priorities, network, scenarios, risk, stockpile, finance,
#: pricing, delivery, map): their sources are the brief's sources.
BRIEF_TABLES = ("production", "trade", "us_salient", "import_sources", "governance", "prices", "export_controls",
                "processing_shares", "demand_parameters", "stockpile_programs", "projects", "deposits",
                "critical_lists", "eu_crm_supply", "eu_crm_scores")


def brief_source_ids(cat: Catalog, tables: dict[str, pd.DataFrame], extra: list[str]) -> list[str]:
    """Every source a number of the brief came from: the sources of the dataset tables its sections read
    (from the MANIFEST, or the user's files), those named in its own tables' ``source`` columns, and ``extra``."""
    ids = set(extra)
    try:
        man = cat.manifest.get("tables", {})
    except CritminError:  # user tables only
        man = {}
    for name in BRIEF_TABLES:
        if name in getattr(cat, "user", {}):
            frame = cat.user[name]
            if "source" in frame:
                ids |= set(frame["source"].astype(str))
        elif name in man:
            ids |= set(man[name].get("sources", []))
    known = {s["id"] for s in cat.manifest.get("sources", [])} if man else set()
    for frame in tables.values():
        if isinstance(frame, pd.DataFrame) and "source" in frame:
            for cell in frame["source"].dropna().astype(str).unique():
                ids |= {p.strip() for p in cell.split(";") if p.strip() in known}
    return sorted(ids)


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.0f}%"


def urgent_vulnerabilities(prio: pd.DataFrame, stages: pd.DataFrame, importer: str, n: int = 3) -> list[dict]:
    """The ``n`` most urgent vulnerabilities for ``importer``: priority minerals with the most concentrated,
    least allied stage, in plain words with the numbers and the table each number comes from."""
    p = prio[(prio["importer"] == importer) & prio["priority"]].sort_values("composite", ascending=False)
    parents = _parents()
    listed = set(p["commodity"])
    # one entry per group: an element whose group is itself a priority is told through the group
    p = p[~p["commodity"].map(lambda c: parents.get(c) in listed)]
    out = []
    for r in p.itertuples(index=False):
        st = stages[stages["commodity"] == r.commodity]
        if st.empty:
            continue
        worst = st.assign(gap=st["top_share"] - st["allied_share_low"].fillna(0)).sort_values(
            "gap", ascending=False).iloc[0]
        allied = (_pct(worst.allied_share) if pd.notna(worst.allied_share) else
                  f"between {_pct(worst.allied_share_low)} and {_pct(worst.allied_share_high)} "
                  f"({_pct(worst.unallocated_share)} of the stage is not allocated to countries)")
        text = (f"{r.commodity}: {country_name(worst.top_supplier)} holds {_pct(worst.top_share)} of the "
                f"{worst.stage} stage ({worst.year}, {worst.basis}); allied suppliers hold {allied}.")
        if pd.notna(r.top_import_share):
            text += (f" {country_name(r.top_import_partner)} supplies {_pct(r.top_import_share)} of {importer}'s "
                     f"imports ({r.import_basis}).")
        out.append({"commodity": r.commodity, "stage": worst.stage, "text": text,
                    "tables": "stage_vulnerabilities.csv; priorities.csv"})
        if len(out) == n:
            break
    return out


def build_brief(importer: str = "USA,JPN,USA+JPN", year: int | None = None, data: str | Path | None = None,
                params: str | Path | None = None, groups_file: str | Path | None = None, allies: str = "msp",
                monitor_dir: str | Path | None = None,
                progress: Callable[[str], None] | None = None, risk_draws: int = RISK_DRAWS,
                risk_seed: int = RISK_SEED, as_of=None, chain: Chain | None = None) -> Brief:
    """Shape the chain's results into the brief (summary, figures, assumptions, sources); no files written.

    The numbers come from :func:`critmin.chain.run_chain` (run here unless ``chain`` is given): the brief
    computes none of its own."""
    ch = chain or run_chain(importer, year, data, params, groups_file, allies, monitor_dir, progress=progress,
                            risk_draws=risk_draws, risk_seed=risk_seed, as_of=as_of)
    cat, imps, tables = ch.catalog, ch.importers, ch.tables
    prio, meta = ch.priorities.table, ch.priorities.meta
    stages, matrix = tables["stage_vulnerabilities"], tables["criticality_matrix"]
    alerts = tables.get("alerts")
    risk_table, risk_meta, scen_meta, scen_paths = tables["risk"], ch.risk_meta, ch.scenario_meta, ch.scenario_paths
    y, risk_draws, risk_seed = meta["year"], ch.risk_draws, ch.risk_seed
    map_fig, model_note = ch.map_figure, ch.model_note
    sp_notes, fin_notes, pr_notes = ch.notes_stockpile, ch.notes_finance, ch.notes_pricing
    summary = {
        "priorities": {imp.label: summary_chips(prio, imp.label, 12) for imp in imps},
        "priority_counts": {imp.label: int((prio["priority"] & (prio["importer"] == imp.label)).sum()) for imp in imps},
        "urgent": urgent_vulnerabilities(prio, stages, imps[-1].label if len(imps) else "", 3),
        "urgent_importer": imps[-1].label if len(imps) else "",
        "alerts": 0 if alerts is None else len(alerts),
    }
    prm = load_params(params)
    assumptions = [
        {"name": "priority rule", "value": f"single-supplier share ≥ {meta['thresholds']['single_supplier_share']}",
         "reason": prm["priorities"]["reason"]},
        {"name": "allied group", "value": allies, "reason": groups(groups_file).get(allies.lower(), {}).get("source", "")},
        {"name": "EU SR: EoL-RIR", "value": prm["eu_sr"]["eol_rir"]["default"], "reason": prm["eu_sr"]["eol_rir"]["reason"]},
        {"name": "EU SR: substitution index", "value": prm["eu_sr"]["substitution_index"]["default"],
         "reason": prm["eu_sr"]["substitution_index"]["reason"]},
        {"name": "EU SR: export-restriction t", "value": "ban 1.2 · quota/licensing/tax 1.1",
         "reason": prm["eu_sr"]["export_restriction_t"]["reason"]},
        {"name": "USGS-style EV", "value": prm["usgs"]["economic_vulnerability"]["default"],
         "reason": prm["usgs"]["economic_vulnerability"]["reason"]},
        {"name": "importance (matrix x-axis)", "value": "import value, USD",
         "reason": "Value of all traded forms of the commodity imported from outside the importer (CEPII BACI HS92 "
                   "and HS17 subsets); a proxy for economic importance, which needs input-output data critmin "
                   "does not bundle."},
        {"name": "composite: impact weight", "value": meta["impact_weight"],
         "reason": prm["priorities"]["impact_weight"]["reason"]},
        {"name": "export controls as of", "value": meta["as_of"],
         "reason": "Measures of the cited register judged in force, suspended, announced or ended on this date "
                   "(--as-of; default the day the brief is made)."},
        {"name": "Monte Carlo", "value": f"{risk_draws:,} draws, seed {risk_seed}, 12 months",
         "reason": "Disruptions drawn from the cited export-control catalogue (Jeffreys-prior rates, Kaplan-Meier "
                   "durations, magnitudes by measure); same seed, same numbers. " + " ".join(risk_meta["notes"][:1])},
        {"name": "one ensemble", "value": f"risk: {ch.ensemble.describe(12, risk_draws)}; stockpile: "
                                          f"{ch.ensemble.describe(12, OPT_DRAWS)}; finance: "
                                          f"{ch.ensemble.describe(OPT_HORIZON_MONTHS, OPT_DRAWS)}",
         "reason": "One ensemble object (network, hazards, cited responses, seed, chunking) is built once and handed "
                   "to the Monte Carlo, the stockpile LP and the portfolio: the stockpile LP is solved on the first "
                   "draws of the Monte Carlo itself; the finance re-run takes the same ensemble over the longer "
                   "horizon projects need (a draw's events depend on its horizon, so those are other futures of the "
                   "same model). An LP over all draws would not solve in the brief's time budget."},
        {"name": "scenario presets", "value": ", ".join(scen_meta["presets"]),
         "reason": "Every preset that touches a priority mineral, replayed on the latest data year; each preset "
                   "cites its catalogue events."},
    ]
    from critmin.report import figures

    figs = {"matrix": figures.criticality_matrix(matrix.dropna(subset=["importance_usd"]), [i.label for i in imps]),
            "stages": figures.stage_shares(stages)}
    if map_fig is not None:
        figs["map"] = map_fig
    focus = [i.label for i in imps][-1]
    if scen_paths:
        figs["scenarios"] = figures.scenario_paths(scen_paths, focus)
    if len(risk_table):
        rfocus = focus if focus in set(risk_table["consumer"]) else str(risk_table["consumer"].iloc[0])
        figs["risk"] = figures.risk_bars(risk_table, rfocus)
    if len(tables.get("stockpile_plan", [])):
        figs["stockpile"] = figures.stockpile_days(tables["stockpile_plan"])
    if len(tables.get("delivery_timeline", [])):
        figs["delivery"] = figures.delivery_timeline(tables["delivery_timeline"])
    sources = cat.sources(brief_source_ids(cat, tables, meta["sources"] + list(risk_meta.get("sources", []))))
    return Brief(importers=[i.label for i in imps], year=y, tables=tables, summary=summary, figures=figs,
                 sources=sources, assumptions=assumptions, notes=meta.get("notes", []),
                 notes_model=list(scen_meta["assumptions"]), notes_opt=[*sp_notes, *fin_notes, *pr_notes],
                 meta={**meta, "model_note": model_note, "data": str(data) if data else "bundled", "version": __version__,
                       "generated": dt.date.today().isoformat(), "risk_draws": risk_draws, "risk_seed": risk_seed,
                       "presets": scen_meta["presets"], "opt_draws": OPT_DRAWS, "opt_horizon": OPT_HORIZON_MONTHS,
                       "budgets": dict(BRIEF_BUDGETS),
                       "ensemble_risk": ch.ensemble.describe(12, risk_draws),
                       "ensemble_stockpile": ch.ensemble.describe(12, OPT_DRAWS),
                       "ensemble_finance": ch.ensemble.describe(OPT_HORIZON_MONTHS, OPT_DRAWS)})


def _table_html(frame: pd.DataFrame, max_rows: int = 40, cols: list[str] | None = None, name: str | None = None,
                all_cols: int | None = None) -> str:
    """A table of the brief inside a ``.wide`` box (it scrolls on a narrow screen; print keeps it in the page):
    ``cols`` (those present) and the first ``max_rows`` rows, numbers through :func:`human`, headers breakable
    after underscores; when rows or columns are left out a line says how many and that ``name``.csv has all
    (``all_cols``: the CSV's number of columns when ``frame`` has columns made for the page)."""
    import re

    f = frame[[c for c in cols if c in frame]] if cols else frame
    shown = f.head(max_rows)
    html_text = shown.to_html(index=False, classes="data", border=0, na_rep="–", float_format=human, escape=True)
    # break opportunities after _ ; / so snake_case headers, ids and lists wrap instead of widening the table
    html_text = re.sub(r"(<t[hd][^>]*>)([^<]*)(</t[hd]>)",
                       lambda m: m[1] + re.sub(r"([_;/])(?=\S)", r"\1<wbr>", m[2]) + m[3], html_text)
    note = ""
    n_cols = frame.shape[1] if all_cols is None else all_cols
    if name and (len(shown) < len(frame) or shown.shape[1] < n_cols):
        what = []
        if shown.shape[1] < n_cols:
            what.append(f"{shown.shape[1]} of {n_cols} columns")
        if len(shown) < len(frame):
            what.append(f"{len(shown)} of {len(frame)} rows")
        note = f'<p class="src">Shown: {" and ".join(what)}; every one is in {html.escape(name)}.csv.</p>'
    return f'<div class="wide">{html_text}</div>{note}'


def _geo_script() -> str:
    """Registers an empty base topology so Plotly's geo code never fetches one (see critmin.geo.figure)."""
    try:
        from critmin.geo.figure import offline_geo_script
    except ImportError:
        return ""
    return offline_geo_script()


def render_html(brief: Brief) -> str:
    """Render the brief to one self-contained HTML string (Plotly JS inlined once)."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from plotly.offline import get_plotlyjs

    from critmin.report.figures import amount_text, days_text

    env = Environment(loader=PackageLoader("critmin.report", "templates"), autoescape=select_autoescape(["html"]))
    fig_html = {k: f.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{k}",
                             config={"displaylogo": False, "topojsonURL": "", "responsive": True})
                for k, f in brief.figures.items()}
    prio_cols = ["importer", "rank", "commodity", "priority", "composite", "risk_stage", "reliance",
                 "geopolrisk_score", "eu_sr", "usgs_sr", "eu_published_sr", "reason"]
    stage_cols = ["commodity", "stage", "year", "basis", "top_supplier", "top_share", "allied_share",
                  "allied_share_low", "allied_share_high", "hhi", "data"]
    # columns the page shows (each fits a printed page); the CSV of the same name has every column
    show = {
        "map_facilities": ["id", "name", "country", "commodity", "stage", "kind", "status", "source", "detail"],
        "scenario_results": ["scenario", "consumer", "commodity", "stage", "basis", "demand_t_per_month",
                             "peak_shortfall_pct", "cumulative_unmet_t", "unmet_value_usd", "peak_price_multiple",
                             "months_with_shortfall", "recovery_month", "days_of_cover_end"],
        "risk": ["commodity", "stage", "consumer", "demand_t", "expected_shortfall_t", "var_95_t", "cvar_95_t",
                 "var_99_t", "cvar_99_t", "p_shortfall", "top_contributors"],
        "stockpile_plan": ["commodity", "holder", "stock", "basis", "days_of_cover", "stock_usd",
                           "expected_shortfall_no_stock_t", "expected_unmet_t"],
        # expected_unmet_t there sums tonnes of different bases across commodities: costs only on the page
        "stockpile_comparison": ["plan", "spend_usd", "expected_unmet_cost_usd", "cvar_unmet_cost_usd",
                                 "objective_usd"],
        # no rank and no instrument: not selected (the CSV's "selected" column says so too)
        "finance_portfolio": ["rank", "name", "country", "commodity", "instruments_usd_m",
                              "capacity_tpa_network", "network_basis", "p_produces_within",
                              "median_months_to_production", "public_cost_usd", "marginal_shortfall_avoided_t",
                              "shortfall_avoided_t_per_musd", "allied_share_gained"],
        "finance_rerun": ["consumer", "commodity", "stage", "expected_shortfall_before_t",
                          "expected_shortfall_after_t", "expected_shortfall_avoided_t", "cvar_95_before_t",
                          "cvar_95_after_t", "cvar_95_avoided_t", "cvar_99_avoided_t"],
        "delivery_timeline": ["name", "country", "commodity", "stage", "status", "capacity_tpa", "selected", "track",
                              "median_months", "p5_months", "p95_months", "months_saved_by_track"],
    }
    t = dict(brief.tables)
    plan = t.get("stockpile_plan")
    if plan is not None and len(plan):
        # every stock figure with its unit and basis; days of cover rounded as read
        unit = plan["unit"].astype(str) if "unit" in plan else pd.Series("t", index=plan.index)
        t["stockpile_plan"] = plan.assign(
            stock=[f"{amount_text(v)}\u00a0{u}" for v, u in zip(plan["stock_t"], unit, strict=True)],
            basis=plan["basis"] if "basis" in plan else "not stated",
            days_of_cover=[days_text(d) for d in plan["days"]])
    port = t.get("finance_portfolio")
    if port is not None and len(port):
        kinds = [c for c in ("grant", "loan", "guarantee", "equity", "offtake", "price_floor") if f"{c}_usd_m" in port]
        t["finance_portfolio"] = port.assign(instruments_usd_m=[
            "; ".join(f"{k.replace('_', ' ')} {human(r[f'{k}_usd_m'])}" for k in kinds
                      if pd.notna(r[f"{k}_usd_m"]) and r[f"{k}_usd_m"] > 0) or "–"
            for _, r in port.iterrows()])

    def table(key: str, rows: int) -> str | None:
        if not len(t.get(key, [])):
            return None
        # the plan's page columns hold all of its CSV columns (stock = stock_t with its unit)
        return _table_html(t[key], rows, show.get(key), key,
                           0 if key == "stockpile_plan" else brief.tables[key].shape[1])

    return env.get_template("brief.html.j2").render(
        b=brief, plotlyjs=get_plotlyjs(), fig=fig_html, pending=PENDING, geo_script=_geo_script(),
        prio_html={imp: _table_html(t["priorities"][(t["priorities"]["importer"] == imp) & t["priorities"]["priority"]],
                                    200, prio_cols, "priorities") for imp in brief.importers},
        controls_html=_table_html(t["export_controls_as_of"][["event_id", "country", "commodity", "status",
                                                                "since", "until", "label"]], 200)
        if len(t.get("export_controls_as_of", [])) else None,
        gaps_html=_table_html(t["data_gaps"], 300, None, "data_gaps") if len(t.get("data_gaps", [])) else None,
        stage_html=_table_html(t["stage_vulnerabilities"], 80, stage_cols, "stage_vulnerabilities"),
        matrix_html=_table_html(t["criticality_matrix"].sort_values(["importer", "supply_risk"],
                                                                      ascending=[True, False]), 30, None,
                                "criticality_matrix"),
        alerts_html=_table_html(t["alerts"], 50, None, "alerts") if "alerts" in t else None,
        map_table_html=table("map_facilities", 40),
        scen_html=_table_html(t["scenario_results"].sort_values("cumulative_unmet_t", ascending=False), 40,
                              show["scenario_results"], "scenario_results")
        if len(t.get("scenario_results", [])) else None,
        risk_html=table("risk", 60),
        opt_html={k: table(k, 40) for k in ("stockpile_plan", "stockpile_holders", "stockpile_comparison",
                                             "finance_portfolio", "finance_rerun", "finance_allied_share",
                                             "finance_ineligible", "pricing_floor", "delivery_timeline")
                  if len(t.get(k, []))},
        unlabelled=(brief.figures["matrix"].layout.meta or {}).get("unlabelled_priorities", {})
        if "matrix" in brief.figures else {},
        country_name=country_name, esc=html.escape)


def write_brief(brief: Brief, out_dir: str | Path) -> Path:
    """Write ``index.html``, ``tables/*.csv`` and ``tables.xlsx`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise ConfigError(f"folder {str(parent)!r} does not exist")
    text = render_html(brief)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the brief is meant to be shared
    try:
        (tmp / "tables").mkdir()
        for name, frame in brief.tables.items():
            frame.to_csv(tmp / "tables" / f"{name}.csv", index=False, lineterminator="\n")
        with pd.ExcelWriter(tmp / "tables.xlsx", engine="openpyxl") as xw:
            for name, frame in brief.tables.items():
                frame.to_excel(xw, sheet_name=name[:31], index=False)
            pd.DataFrame(brief.sources, columns=["id", "publisher", "title", "licence", "url"]).to_excel(
                xw, sheet_name="Sources", index=False)
            pd.DataFrame(brief.assumptions).to_excel(xw, sheet_name="Assumptions", index=False)
        (tmp / "index.html").write_text(text, "utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            os.replace(out, old / "prev")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
