"""Overview (``/``): priority minerals per importer, alerts, export-control measures in force and their deadlines.

State in the query string: ``importer`` (as ``--importer``: ``USA,JPN,USA+JPN``, a group, a bloc, a comma list),
``as_of`` (as ``--as-of``: the date measures are judged on), ``top`` (rows per importer). Downloads:
``format=csv|xlsx`` with ``table=priorities|measures|alerts``. Numbers: :func:`critmin.api.priorities` (and
:func:`critmin.api.monitor` when the dashboard was started with a monitor folder).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from fastapi import APIRouter, Query, Request

from critmin import api
from critmin.dashboard.common import (
    BadInput,
    cached,
    catalog,
    check_format,
    data_key,
    download,
    figure,
    render,
    sources_for,
)
from critmin.errors import CritminError

router = APIRouter()

DEFAULT_IMPORTERS = "USA,JPN,USA+JPN"

#: Days ahead of ``as_of`` within which a measure's deadline (a suspension ending, an announced ban starting, a
#: time-limited licensing regime ending) is raised as an alert. A display choice, not a model parameter.
ALERT_HORIZON_DAYS = 365

#: Columns of the priorities table as shown (the download has every column).
PRIORITY_COLUMNS = ["importer", "rank", "commodity", "priority", "composite", "risk_stage", "risk_stage_supplier",
                    "risk_stage_share", "risk_stage_allied_share", "reliance", "controls_in_force", "reason"]
MEASURE_COLUMNS = ["event_id", "country", "commodity", "measure", "targets", "status", "since", "until",
                   "days_left", "label"]
LIVE = ("in_force", "suspended", "announced")
TABLES = ("priorities", "measures", "alerts")


def parse_inputs(importer: str, as_of: str | None, top: int) -> tuple[str, dt.date, int]:
    """The view's inputs checked: unknown importers, bad dates and a bad ``top`` are :class:`BadInput`."""
    from critmin.importers import parse_importers
    from critmin.workflows import parse_as_of

    spec = ",".join(p.strip() for p in (importer or "").split(",") if p.strip())
    if not spec:
        raise BadInput("importer", "give at least one importer (USA, JPN, USA+JPN, a group such as g7)")
    try:
        parse_importers(spec)
    except CritminError as exc:
        raise BadInput("importer", f"{spec!r}: {exc}") from None
    try:
        day = parse_as_of(as_of or None)
    except CritminError:
        raise BadInput("as_of", f"{as_of!r}: expected a date YYYY-MM-DD, e.g. 2026-12-04") from None
    if not 1 <= top <= 100:
        raise BadInput("top", f"must be in 1..100 (got {top})")
    return spec, day, top


def priorities(request: Request, importer: str, day: dt.date):
    """``critmin.priorities`` for the importers on ``day``, cached by inputs."""
    cat = catalog(request)
    return cached(("priorities", data_key(request), importer, day.isoformat()),
                  lambda: api.priorities(importer, as_of=day, catalog=cat))


def engine_importers(label: str) -> str:
    """The importers to run the engine for when one importer's rows are wanted: the default set when it holds
    ``label`` (each importer's rows do not depend on the others asked with it, so the overview's cached run
    serves the mineral pages), else ``label`` alone."""
    return DEFAULT_IMPORTERS if label in DEFAULT_IMPORTERS.split(",") else label


def warm(app) -> None:
    """Run the default overview's engine call once, so the first page a user opens is served from the cache."""
    from types import SimpleNamespace

    priorities(SimpleNamespace(app=app), DEFAULT_IMPORTERS, dt.date.today())


def measures_table(res, day: dt.date) -> pd.DataFrame:
    """Measures in force, suspended or announced on ``day`` (from the priorities result), with days to the
    deadline (``until``), soonest deadline first."""
    m = res.tables["export_controls"]
    live = m[m["status"].astype(str).isin(LIVE)].copy()
    until = pd.to_datetime(live["until"], errors="coerce")
    live["days_left"] = (until - pd.Timestamp(day)).dt.days.astype("Int64")
    live = live.sort_values(["days_left", "country", "commodity"], na_position="last", kind="stable")
    return live[[c for c in MEASURE_COLUMNS if c in live.columns]].reset_index(drop=True)


def alerts_table(request: Request, res, measures: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Alerts: every deadline within :data:`ALERT_HORIZON_DAYS`, then the monitor's alerts when a monitor folder
    was given to the dashboard."""
    rows = []
    soon = measures[measures["days_left"].notna() & (measures["days_left"] >= 0)
                    & (measures["days_left"] <= ALERT_HORIZON_DAYS)]
    prio = res.tables["priorities"]
    flagged = set(prio.loc[prio["priority"].astype(bool), "commodity"])
    for r in soon.itertuples(index=False):
        what = {"suspended": "suspension ends: the measure applies again",
                "announced": "announced measure comes into force",
                "in_force": "measure ends or is due for renewal"}.get(str(r.status), "deadline")
        rows.append({"kind": "deadline", "date": r.until, "days_left": int(r.days_left), "commodity": r.commodity,
                     "country": r.country, "priority_mineral": r.commodity in flagged,
                     "message": f"{r.label} — {what}", "event_id": r.event_id})
    out = pd.DataFrame(rows, columns=["kind", "date", "days_left", "commodity", "country", "priority_mineral",
                                      "message", "event_id"])
    folder = request.app.state.monitor
    if folder:
        mon = cached(("monitor", data_key(request), str(folder)),
                     lambda: api.monitor(folder, catalog=catalog(request)).to_frame())
        if len(mon):
            extra = pd.DataFrame({"kind": "monitor: " + mon["rule"].astype(str) + " (" + mon["severity"].astype(str)
                                          + ")",
                                  "date": mon["period"].astype(str), "commodity": mon["commodity"],
                                  "country": mon["partner_or_country"],
                                  "priority_mineral": mon["commodity"].isin(flagged), "message": mon["message"]})
            out = pd.concat([extra, out], ignore_index=True)
    return out


def composite_figure(prio: pd.DataFrame, top: int):
    """Composite score of the commodities in any importer's first ``top`` ranks, importer by importer (a heat map
    in the colour-blind-safe cividis scale; priorities marked ●)."""
    import plotly.graph_objects as go

    ranked = prio[prio["rank"].notna()]
    shown = ranked[ranked["rank"] <= top]["commodity"].drop_duplicates().tolist()
    importers = prio["importer"].drop_duplicates().tolist()
    grid = prio[prio["commodity"].isin(shown)].pivot_table(index="importer", columns="commodity", values="composite",
                                                           aggfunc="first").reindex(index=importers, columns=shown)
    flag = prio[prio["commodity"].isin(shown)].pivot_table(index="importer", columns="commodity", values="priority",
                                                           aggfunc="first").reindex(index=importers, columns=shown)
    text = [["●" if v is True or v == 1 else "" for v in row] for row in flag.to_numpy()]
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=shown, y=importers, colorscale="Cividis", text=text,
                               texttemplate="%{text}", colorbar=dict(title="composite"),
                               hovertemplate="%{y} · %{x}: composite %{z:.3f}<extra></extra>"))
    fig.update_layout(height=140 + 40 * len(importers), margin=dict(l=80, r=20, t=10, b=90),
                      xaxis=dict(tickangle=-40), yaxis=dict(autorange="reversed"))
    return fig


@router.get("/", name="overview")
def overview(request: Request,
             importer: str = Query(DEFAULT_IMPORTERS, description="importers, as --importer"),
             as_of: str | None = Query(None, description="date YYYY-MM-DD on which measures are judged"),
             top: int = Query(10, description="rows per importer"),
             table: str = Query("priorities", description="table to download"),
             format: str | None = Query(None, description="csv or xlsx: download the table")):
    """The overview page, or one of its tables as CSV/XLSX."""
    fmt = check_format(format)
    spec, day, top = parse_inputs(importer, as_of, top)
    res = priorities(request, spec, day)
    prio = res.tables["priorities"]
    measures = measures_table(res, day)
    alerts = alerts_table(request, res, measures, day)
    if fmt:
        if table not in TABLES:
            raise BadInput("table", f"{table!r}: one of {', '.join(TABLES)}")
        frame = {"priorities": prio, "measures": measures, "alerts": alerts}[table]
        return download(frame, fmt, f"critmin-{table}-{spec.replace(',', '_').replace('+', '-')}-{day}")
    groups = []
    for imp, rows in prio.groupby("importer", sort=False):
        shown = rows.sort_values("rank", na_position="last").head(top)
        groups.append({"importer": imp, "rows": shown[[c for c in PRIORITY_COLUMNS if c in shown]].to_dict("records"),
                       "n_priority": int(rows["priority"].astype(bool).sum()), "n": len(rows)})
    cat = catalog(request)
    fig = cached(("fig-composite", data_key(request), spec, day.isoformat(), top),
                 lambda: figure(composite_figure(prio, top), "fig-composite"))
    return render(request, "overview.html", fig=fig, importer=spec, as_of=day.isoformat(), top=top, groups=groups,
                  measures=measures.to_dict("records"), alerts=alerts.to_dict("records"), meta=res.meta,
                  horizon=ALERT_HORIZON_DAYS, monitor=request.app.state.monitor,
                  sources=sources_for([], cat, ids=res.meta.get("sources", [])))
