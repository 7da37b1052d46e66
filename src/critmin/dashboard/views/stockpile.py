"""Stockpile and finance (``/stockpile``): the joint US–Japan stockpile plan against stockpiling alone and the
rules of thumb, the budget frontier, the finance portfolio, the cost of a price floor and of a CfD, and the
permitting timelines of projects (a Gantt chart).

State (query string): the plan's ``holders``, ``commodity``, ``draws``, ``seed``, ``months``, ``budget`` (USD m,
empty = no cap), ``share`` (σ, the share a partner may draw), ``frontier`` (budgets in USD m); the portfolio's
``budgets`` (``grant=500,loan=3000``, USD m) and ``invest_months``; the measures' ``price`` (USD/kg, floor and
CfD strike), ``volume`` (t/yr), ``years``, ``paths``; the timelines' ``projects`` and ``track``.
``format=csv|xlsx&table=NAME`` downloads a table shown (plan, holders, comparison, frontier, portfolio, rerun,
floor, cfd, permitting).

The page draws at once; each section is computed by its own request (``/stockpile/section/NAME``), cached by
its inputs. Every number is :func:`critmin.stockpile`'s, :func:`critmin.invest`'s,
:func:`critmin.policy_measure`'s or :func:`critmin.permitting`'s.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from critmin.dashboard import common
from critmin.errors import ConfigError, DataError

router = APIRouter()

SECTIONS = ("plan", "invest", "measures", "permitting")
#: Download name → (section, table of its result).
TABLES = {"plan": ("plan", "plan"), "holders": ("plan", "holders"), "comparison": ("plan", "comparison"),
          "frontier": ("plan", "frontier"), "portfolio": ("invest", "portfolio"), "rerun": ("invest", "rerun"),
          "floor": ("measures", "floor"), "cfd": ("measures", "cfd"), "permitting": ("permitting", "permitting")}
#: Projects whose timelines are drawn by default: the curated ones still in feasibility or permitting.
DEFAULT_STATUSES = ("feasibility", "permitting")
TRACKS = ("ordinary", "fast41", "eu_crma")
FLOOR_PRESET = "dod_mp_ndpr_floor"


def _float(q, name: str, default: float | None, lo: float | None = None, hi: float | None = None) -> float | None:
    text = q.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise common.BadInput(name, f"{text!r} is not a number") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise common.BadInput(name, f"{value:g} must be in {lo:g}..{hi:g}")
    return value


def _int(q, name: str, default: int, lo: int, hi: int) -> int:
    value = _float(q, name, default, lo, hi)
    if value != int(value):
        raise common.BadInput(name, f"{value:g} is not a whole number")
    return int(value)


def _list(q, name: str, default: str) -> list[str]:
    return [x.strip() for x in (q.get(name) if q.get(name) is not None else default).split(",") if x.strip()]


def default_projects(request: Request) -> list[str]:
    p = common.catalog(request).table("projects")
    return sorted(p.loc[p["status"].isin(DEFAULT_STATUSES), "project_id"].astype(str))


def inputs(request: Request) -> dict:
    q = request.query_params
    frontier = _list(q, "frontier", "10,25,50,100")
    budgets = []
    for b in frontier:
        try:
            budgets.append(float(b))
        except ValueError:
            raise common.BadInput("frontier", f"{b!r} is not a budget in USD m") from None
    track = q.get("track") or "fast41"
    if track not in TRACKS:
        raise common.BadInput("track", f"{track!r}: use one of {', '.join(TRACKS)}")
    projects = _list(q, "projects", ",".join(default_projects(request)))
    known = set(common.catalog(request).table("projects")["project_id"].astype(str))
    for p in projects:
        if p not in known:
            raise common.BadInput("projects", f"unknown project {p!r} (the curated projects table, on Data)", 404)
    return {"holders": ",".join(_list(q, "holders", "USA,JPN")),
            "commodity": _list(q, "commodity", "rare-earths,gallium"),
            "draws": _int(q, "draws", 2000, 10, 200_000), "seed": _int(q, "seed", 1, 0, 2**32 - 1),
            "months": _int(q, "months", 12, 1, 120), "budget": _float(q, "budget", None, 0, 1e6),
            "share": _float(q, "share", 1.0, 0, 1), "frontier": budgets,
            "budgets": (q.get("budgets") or "grant=500,loan=3000").replace(" ", ""),
            "invest_months": _int(q, "invest_months", 60, 1, 240),
            "price": _float(q, "price", 110.0, 0.01, 1e5), "volume": _float(q, "volume", 1294.0, 0.001, 1e7),
            "years": _int(q, "years", 10, 1, 50), "paths": _int(q, "paths", 2000, 100, 200_000),
            "projects": projects, "track": track}


def _key(request: Request, section: str, inp: dict) -> tuple:
    used = {"plan": ("holders", "commodity", "draws", "seed", "months", "budget", "share", "frontier"),
            "invest": ("holders", "commodity", "draws", "seed", "budgets", "invest_months", "track"),
            "measures": ("price", "volume", "years", "paths"),
            "permitting": ("projects", "track", "paths")}[section]
    return ("stockpile", section, common.data_key(request),
            *((k, tuple(v) if isinstance(v, list) else v) for k, v in ((k, inp[k]) for k in used)))


def _bad(field: str, exc: Exception) -> common.BadInput:
    """The API's error as a 400 on the form field it is about (the holders when it names them)."""
    text = str(exc)
    return common.BadInput("holders" if "holder" in text.lower() else field, text)


def compute(request: Request, section: str, inp: dict) -> dict[str, Any]:
    """The section's results (cached by the inputs it uses): tables, meta and notes."""
    import critmin

    cat = common.catalog(request)

    def plan():
        try:
            r = critmin.stockpile(inp["holders"], draws=inp["draws"], months=inp["months"], seed=inp["seed"],
                                  joint_budget=inp["budget"] * 1e6 if inp["budget"] is not None else None,
                                  share=inp["share"], commodity=inp["commodity"],
                                  frontier=[b * 1e6 for b in inp["frontier"]] or None, catalog=cat)
        except (ConfigError, DataError) as exc:
            raise _bad("commodity", exc) from None
        return {"tables": r.tables, "meta": r.meta, "notes": r.notes}

    def invest():
        try:
            r = critmin.invest(inp["budgets"], holders=inp["holders"], draws=inp["draws"], seed=inp["seed"],
                               months=inp["invest_months"], commodity=inp["commodity"],
                               track=inp["track"], catalog=cat)
        except (ConfigError, DataError) as exc:
            raise _bad("budgets", exc) from None
        return {"tables": r.tables, "meta": r.meta, "notes": r.notes}

    def measures():
        try:
            floor = critmin.policy_measure("floor", catalog=cat, preset=FLOOR_PRESET, price=inp["price"],
                                           volume_t=inp["volume"], years=inp["years"], paths=inp["paths"])
            cfd = critmin.policy_measure("cfd", catalog=cat, commodity="ndpr", price=inp["price"],
                                         volume_t=inp["volume"], years=inp["years"], paths=inp["paths"])
        except (ConfigError, DataError) as exc:
            raise _bad("price", exc) from None
        return {"tables": {"floor": floor.to_frame(), "cfd": cfd.to_frame()},
                "meta": {"floor": floor.meta, "cfd": cfd.meta},
                "notes": [*floor.notes, *[n for n in cfd.notes if n not in floor.notes]]}

    def permitting():
        frames, notes = [], []
        for p in inp["projects"]:
            try:
                r = critmin.permitting(p, track=inp["track"], paths=inp["paths"], catalog=cat)
            except ConfigError as exc:
                if inp["track"] == "ordinary":
                    raise _bad("projects", exc) from None
                notes.append(f"{p}: {exc}; the ordinary track only")
                r = critmin.permitting(p, track="ordinary", paths=inp["paths"], catalog=cat)
            frames.append(r.to_frame().assign(project_id=p))
            notes += [n for n in r.notes if n not in notes]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return {"tables": {"permitting": table}, "meta": {}, "notes": notes}

    fn = {"plan": plan, "invest": invest, "measures": measures, "permitting": permitting}[section]
    return common.cached(_key(request, section, inp), fn)


# ---------------------------------------------------------------------------------------------------- charts
def _frontier_chart(frontier: pd.DataFrame) -> str:
    fig = go.Figure()
    x = frontier["budget_usd"] / 1e6
    fig.add_trace(go.Scatter(x=x, y=frontier["expected_unmet_cost_usd"] / 1e6, mode="lines+markers",
                             name="expected cost of unmet demand"))
    fig.add_trace(go.Scatter(x=x, y=frontier["cvar_unmet_cost_usd"] / 1e6, mode="lines+markers",
                             name="CVaR of the cost of unmet demand", yaxis="y2"))
    fig.update_layout(title="Budget frontier: cost of unmet demand",
                      xaxis_title="joint budget, USD m", yaxis_title="expected, USD m",
                      yaxis2=dict(title="CVaR, USD m", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.3), margin=dict(l=60, r=60, t=50, b=40))
    return common.figure(fig, div_id="fig-frontier", height=380)


def _comparison_chart(comp: pd.DataFrame) -> str:
    labels = [str(p)[:48] for p in comp["plan"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=comp["spend_usd"] / 1e6, name="spend"))
    fig.add_trace(go.Bar(x=labels, y=comp["expected_unmet_cost_usd"] / 1e6, name="expected cost of unmet demand"))
    fig.add_trace(go.Bar(x=labels, y=comp["objective_usd"] / 1e6, name="objective (holding + unmet cost)"))
    fig.update_layout(barmode="group", title="Joint, alone, rules of thumb",
                      yaxis_title="USD m", legend=dict(orientation="h", y=-0.6),
                      margin=dict(l=60, r=10, t=50, b=40))
    return common.figure(fig, div_id="fig-comparison", height=520)


def _plan_chart(plan: pd.DataFrame) -> str:
    fig = go.Figure()
    for holder, g in plan.groupby("holder", sort=False):
        fig.add_trace(go.Bar(x=g["commodity"], y=g["days"].clip(lower=0), name=str(holder),
                             customdata=g["stock_t"].clip(lower=0),
                             hovertemplate="%{x}: %{y:.1f} days, %{customdata:,.1f} t<extra>" + str(holder)
                                           + "</extra>"))
    fig.update_layout(barmode="group", title="Stock targets, days of consumption", yaxis_title="days",
                      margin=dict(l=60, r=10, t=50, b=40))
    return common.figure(fig, div_id="fig-plan", height=340)


def _rerun_chart(rerun: pd.DataFrame) -> str:
    labels = [f"{a} · {c} {s}" for a, c, s in zip(rerun["consumer"], rerun["commodity"], rerun["stage"], strict=True)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=rerun["expected_shortfall_before_t"], name="expected shortfall before"))
    fig.add_trace(go.Bar(x=labels, y=rerun["expected_shortfall_after_t"], name="after the portfolio"))
    fig.update_layout(barmode="group", title="The portfolio re-run on the ensemble", yaxis_title="t",
                      margin=dict(l=60, r=10, t=50, b=80))
    return common.figure(fig, div_id="fig-rerun", height=340)


def permitting_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per project × track: time to first production (P5, P50, P95), permit stages, P(within horizon)."""
    res = table[table["section"] == "result"]
    rows = []
    for p, g in res.groupby("project_id", sort=False):
        for q in g["quantity"]:
            if not q.startswith("time to first production ("):
                continue
            track = q[len("time to first production ("):-1]
            total = g[g["quantity"] == q].iloc[0]
            permit = g[g["quantity"] == f"permit stages ({track})"].iloc[0]
            within = g[g["quantity"].str.startswith("P(producing within") & g["quantity"].str.endswith(f"({track})")]
            rows.append({"project_id": p, "track": track, "p5_months": total["p5"], "p50_months": total["p50"],
                         "p95_months": total["p95"], "permit_p50_months": permit["p50"],
                         "p_within_horizon": within["mean"].iloc[0] if len(within) else None,
                         "remaining": total["note"].removeprefix("remaining stages: ")})
    return pd.DataFrame(rows)


def _gantt(rows: pd.DataFrame) -> str:
    fig = go.Figure()
    for track, g in rows.groupby("track", sort=False):
        labels = [str(p) for p in g["project_id"]]
        fig.add_trace(go.Bar(y=labels, x=g["p50_months"], base=0, orientation="h", name=f"{track} track (median)",
                             error_x=dict(type="data", symmetric=False, array=g["p95_months"] - g["p50_months"],
                                          arrayminus=g["p50_months"] - g["p5_months"], color="#4a4a4a"),
                             customdata=g[["p5_months", "p95_months", "permit_p50_months", "remaining"]].values,
                             hovertemplate="%{y}: median %{x:.0f} months (P5 %{customdata[0]:.0f}, "
                                           "P95 %{customdata[1]:.0f}); permit stages %{customdata[2]:.0f} "
                                           "months; stages left: %{customdata[3]}<extra>" + str(track) + "</extra>"))
    fig.update_layout(barmode="group", title="Months from now to first production (bar: median; line: P5–P95)",
                      xaxis_title="months from now", yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", y=-0.15), margin=dict(l=170, r=10, t=50, b=40))
    n = rows["project_id"].nunique()
    return common.figure(fig, div_id="fig-gantt", height=max(300, 46 * n + 120))


def section_context(request: Request, section: str, inp: dict) -> dict:
    res = compute(request, section, inp)
    t = res["tables"]
    ctx: dict[str, Any] = {"section": section, "inp": inp, "notes": res["notes"], "meta": res["meta"]}
    if section == "plan":
        ctx["charts"] = [_plan_chart(t["plan"]), _comparison_chart(t["comparison"])]
        if "frontier" in t and len(t["frontier"]):
            ctx["charts"].append(_frontier_chart(t["frontier"]))
        ctx.update(plan=t["plan"].to_dict("records"), holders=t["holders"].to_dict("records"),
                   comparison=t["comparison"].to_dict("records"),
                   frontier=t["frontier"].to_dict("records") if "frontier" in t else [])
    elif section == "invest":
        port = t["portfolio"]
        ctx["charts"] = [_rerun_chart(t["rerun"])] if len(t["rerun"]) else []
        ctx.update(portfolio=port.to_dict("records"), ineligible=t["ineligible"].to_dict("records"),
                   instruments=t["instruments"].to_dict("records"))
    elif section == "measures":
        ctx.update(floor=t["floor"].to_dict("records"), cfd=t["cfd"].to_dict("records"),
                   titles=[res["meta"]["floor"].get("title"), res["meta"]["cfd"].get("title")])
    else:
        rows = permitting_rows(t["permitting"])
        ctx["charts"] = [_gantt(rows)] if len(rows) else []
        ctx["timelines"] = rows.to_dict("records")
    return ctx


#: Dataset tables the section results read (the ensemble, the rules of thumb, projects, prices).
SOURCE_TABLES = ("production", "trade", "export_controls", "demand_parameters", "stockpile_programs", "projects",
                 "prices")


@router.get("/stockpile", response_class=HTMLResponse)
def stockpile_page(request: Request, format: str | None = None, table: str | None = None) -> Response:
    fmt = common.check_format(format)
    inp = inputs(request)
    if fmt:
        if table not in TABLES:
            raise common.BadInput("table", f"{table!r}: download one of {', '.join(TABLES)}")
        section, name = TABLES[table]
        frame = compute(request, section, inp)["tables"][name]
        return common.download(frame, fmt, f"stockpile-{table}")
    cat = common.catalog(request)
    projects = cat.table("projects")[["project_id", "name", "country", "status"]]
    return common.render(request, "stockpile.html", inp=inp, sections=SECTIONS, tracks=TRACKS,
                         all_projects=projects.to_dict("records"), sources=common.sources_for(SOURCE_TABLES, cat),
                         query=request.url.query)


@router.get("/stockpile/section/{section}", response_class=HTMLResponse)
def stockpile_section(request: Request, section: str) -> Response:
    if section not in SECTIONS:
        raise common.BadInput("section", f"{section!r}: one of {', '.join(SECTIONS)}", 404)
    try:
        ctx = section_context(request, section, inputs(request))
    except common.BadInput as exc:
        return common.templates.TemplateResponse(request, "scenarios_error.html",
                                                 {"field": exc.field, "message": exc.message},
                                                 status_code=exc.status)
    return common.templates.TemplateResponse(request, f"stockpile_{section}.html",
                                             {"query": request.url.query, **ctx})


def warm(app) -> None:
    """Compute the default view into the cache (the dashboard calls this in a background thread at start-up)."""
    from types import SimpleNamespace

    from starlette.datastructures import QueryParams

    request = SimpleNamespace(app=app, query_params=QueryParams(""))
    inp = inputs(request)
    for section in SECTIONS:
        compute(request, section, inp)
