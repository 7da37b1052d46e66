"""Scenario lab (``/scenarios``): run a preset or edited events, see shortfall, price and days of cover over
time, compare scenarios side by side.

State (the query string, so a link reproduces the view):

- ``preset`` — a shipped preset (``critmin scenario list``); ``importer`` — consumers and blocs
  (``USA,JPN,USA+JPN``); ``consumer`` — whose paths the charts show (default the last importer);
- edited events, one value per event in each of ``type``, ``country``, ``commodities``, ``stage``, ``cut``
  (the share withheld, 0..1), ``start`` (YYYY-MM), ``duration`` (months; empty = to the end of the horizon),
  with ``edit=1``: they replace the preset's events, everything else of the preset (responses, horizon,
  parameters) is kept, and so are the keys of a preset's event the form does not show (``targets``,
  ``ramp_months``). The edited scenario is checked by the same validator as a scenario file
  (:func:`critmin.supplychain.scenario.parse_scenario`); an error names the event and the field and answers 400;
- a stockpile response: ``stock_USA``, ``stock_JPN`` (t held), ``stock_stage``, ``stock_release`` (t/month at
  most), the scenario file's ``responses: stockpile`` (its days of cover are then drawn);
- ``compare`` — two or more presets, comma separated: their summaries and paths side by side;
- ``format=csv|xlsx`` — the summary table shown.

Every number is :func:`critmin.scenario`'s: the view calls the function behind it,
:func:`critmin.supplychain.run.run_scenario`, with the network built once per dataset (its ``network=``
argument), and the tests check the figures against :func:`critmin.scenario`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from critmin.dashboard import common
from critmin.errors import ConfigError, DataError

router = APIRouter()

DEFAULT_PRESET = "china-ree-2010-quota"
DEFAULT_IMPORTER = "USA,JPN,USA+JPN"
#: The edited-event fields, in the form's column order: query name → (scenario YAML key, label).
EVENT_FIELDS = {"type": ("type", "type"), "country": ("country", "country"),
                "commodities": ("commodities", "commodities"), "stage": ("stage", "stage"),
                "cut": ("fraction", "cut (share withheld)"), "start": ("start", "start (YYYY-MM)"),
                "duration": ("duration_months", "duration (months)")}
_KEY_TO_FIELD = {key: name for name, (key, _) in EVENT_FIELDS.items()}
#: What a chart shows: (variable of the scenario Dataset, title).
METRICS = (("shortfall", "Shortfall"), ("price", "Price"), ("days_of_cover", "Days of cover"))


def presets() -> list[str]:
    from critmin.supplychain.presets import list_presets

    return list_presets()


def _preset_doc(name: str) -> dict:
    from critmin.supplychain.presets import preset_text

    if name not in presets():
        raise common.BadInput("preset", f"unknown preset {name!r}; presets: {', '.join(presets())}", 404)
    return yaml.safe_load(preset_text(name))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def preset_events(name: str) -> list[dict[str, str]]:
    """The preset's events as form rows (query name → text)."""
    rows = []
    for ev in _preset_doc(name)["events"]:
        cut = 1.0 if ev.get("ban") else ev.get("fraction")
        rows.append({"type": _text(ev.get("type")), "country": _text(ev.get("country")),
                     "commodities": _text(ev.get("commodities")), "stage": _text(ev.get("stage")),
                     "cut": _text(cut), "start": _text(ev.get("start")), "duration": _text(ev.get("duration_months"))})
    return rows


def edited_events(request: Request) -> list[dict[str, str]] | None:
    """The events of the query string (``edit=1``), one dict per event; ``None`` when the preset's are used."""
    q = request.query_params
    if q.get("edit") != "1":
        return None
    lists = {name: q.getlist(name) for name in EVENT_FIELDS}
    n = max((len(v) for v in lists.values()), default=0)
    if n == 0:
        raise common.BadInput("events", "edit=1 but no event given (type, country, commodities, stage, cut, start, "
                                        "duration, one value per event)")
    for name, values in lists.items():
        if len(values) != n:
            raise common.BadInput(name, f"{len(values)} value(s) for {n} event(s): give one per event (empty for "
                                        "the default)")
    return [{name: lists[name][i].strip() for name in EVENT_FIELDS} for i in range(n)]


def _number(text: str) -> Any:
    """A form value as YAML would read it (``0.4`` → 0.4, ``24`` → 24), so the validator sees numbers."""
    value = yaml.safe_load(text)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text


def _event_mapping(row: dict[str, str]) -> dict:
    ev: dict[str, Any] = {}
    if row["type"]:
        ev["type"] = row["type"]
    if row["country"]:
        ev["country"] = row["country"]
    if row["commodities"]:
        ev["commodities"] = [c.strip() for c in row["commodities"].split(",") if c.strip()]
    if row["stage"]:
        ev["stage"] = [s.strip() for s in row["stage"].split(",") if s.strip()]
    if row["cut"]:
        ev["fraction"] = _number(row["cut"])
    if row["start"]:
        ev["start"] = row["start"]
    if row["duration"]:
        ev["duration_months"] = _number(row["duration"])
    return ev


def _merged(original: dict | None, row: dict[str, str]) -> dict:
    """An edited event: the form's fields over the preset's event of the same position, whose other keys
    (``targets``, ``ramp_months``, ``note``) are kept; a field left empty is dropped (its default applies)."""
    ev = {k: v for k, v in (original or {}).items() if k not in {key for key, _ in EVENT_FIELDS.values()} | {"ban"}}
    ev.update(_event_mapping(row))
    return ev


def build_scenario(preset: str, rows: list[dict[str, str]] | None, stock: dict | None = None):
    """The preset with its events replaced by ``rows`` (``None``: the preset's) and a stockpile response (``stock``:
    holder → t, ``stage``, ``release``), validated like a scenario file; a problem raises
    :class:`~critmin.dashboard.common.BadInput` naming the event (1-based) and the form field."""
    from critmin.supplychain.scenario import parse_scenario

    doc = _preset_doc(preset)
    doc["name"] = f"{preset} (edited)"
    if stock:
        sp = {"stage": stock["stage"], **stock["holders"]}
        if stock.get("release") is not None:
            sp["release_max_per_month"] = stock["release"]
        doc["responses"] = {**(doc.get("responses") or {}), "stockpile": sp}
        try:   # the stockpile checked first, on the preset's events, so that its errors name its fields
            parse_scenario(yaml.safe_dump(doc, sort_keys=False), file="edited scenario")
        except DataError as exc:
            col = {"release_max_per_month": "release", None: "USA"}.get(exc.column, exc.column)
            raise common.BadInput(f"stock_{col}", f"stockpile, {exc.column or 'holding'}: {exc.reason}", 400) from None
    if rows is None:
        return parse_scenario(yaml.safe_dump(doc, sort_keys=False), file="edited scenario")
    base = {k: v for k, v in doc.items() if k != "events"}
    originals = doc["events"]
    events = [_merged(originals[i] if i < len(originals) else None, r) for i, r in enumerate(rows)]
    for i, ev in enumerate(events):     # one event at a time, so the error can name it
        try:
            parse_scenario(yaml.safe_dump({**base, "events": [ev]}, sort_keys=False), file=f"event {i + 1}")
        except DataError as exc:
            field = _KEY_TO_FIELD.get(exc.column or "", exc.column or "event")
            raise common.BadInput(f"{field}[{i + 1}]", f"event {i + 1}, {EVENT_FIELDS.get(field, (0, field))[1]}: "
                                                       f"{exc.reason}", 400) from None
    try:
        return parse_scenario(yaml.safe_dump({**doc, "events": events}, sort_keys=False), file="edited scenario")
    except DataError as exc:
        raise common.BadInput(exc.column or "scenario", exc.reason, 400) from None


#: The stockpile response the form can add: holders (ISO3 consumers of the network) and their fields.
STOCK_HOLDERS = ("USA", "JPN")


def stock_inputs(request: Request) -> dict | None:
    """The stockpile of the form (``stock_USA``, ``stock_JPN`` in t, ``stock_stage``, ``stock_release`` in
    t/month), or ``None`` when no holding is given."""
    q = request.query_params
    holders = {}
    for h in STOCK_HOLDERS:
        text = (q.get(f"stock_{h}") or "").strip()
        if text:
            value = _number(text)
            if not isinstance(value, int | float) or value < 0:
                raise common.BadInput(f"stock_{h}", f"{text!r}: give the tonnes {h} holds (a number ≥ 0)")
            holders[h] = value
    if not holders:
        return None
    release = (q.get("stock_release") or "").strip()
    rel = _number(release) if release else None
    if rel is not None and (not isinstance(rel, int | float) or rel < 0):
        raise common.BadInput("stock_release", f"{release!r}: give the most released per month, t (≥ 0)")
    stage = q.get("stock_stage") or "refine"
    return {"holders": holders, "stage": stage, "release": rel}


def network(request: Request):
    """The supply-chain network of the app's dataset, built once (what every scenario run starts from)."""
    from critmin.supplychain.network import build_network

    cat = common.catalog(request)
    return common.cached(("scenario-network", common.data_key(request)), lambda: build_network(cat))


def run(request: Request, spec, importer: str, key: tuple):
    """A scenario run, cached by its inputs: :func:`critmin.supplychain.run.run_scenario` — what
    :func:`critmin.scenario` and ``critmin scenario run`` call — on the network built once per dataset (the
    function's ``network=`` argument), so a new preset costs its simulation only."""
    from critmin.results import Result
    from critmin.supplychain.run import run_scenario

    cat = common.catalog(request)

    def go_():
        try:
            ds, summary = run_scenario(spec, catalog=cat, importers=importer, network=network(request))
        except ConfigError as exc:
            raise common.BadInput("importer", str(exc)) from None
        return Result("scenario", {"summary": summary}, "summary", data=ds)

    return common.cached(("scenario", common.data_key(request), importer, *key), go_)


def _edited_key(rows: list[dict[str, str]]) -> tuple:
    return tuple(tuple(r[f] for f in EVENT_FIELDS) for r in rows)


def _charts(results: list[tuple[str, Any]], consumer: str, compare: bool) -> list[str]:
    """One chart per metric: a line per (scenario,) commodity · stage for ``consumer``."""
    out = []
    for var, title in METRICS:
        fig = go.Figure()
        unit = ""
        for label, res in results:
            ds = res.to_xarray()
            if consumer not in ds["consumer"].values:
                continue
            unit = ds[var].attrs.get("units", "")
            x = list(ds["month"].values) if compare else list(ds["period"].values)
            for c in ds["commodity"].values:
                for s in ds["stage"].values:
                    y = ds[var].sel(consumer=consumer, commodity=c, stage=s)
                    if bool(y.isnull().all()):
                        continue
                    name = f"{label} · {c} {s}" if compare else f"{c} {s}"
                    fig.add_trace(go.Scatter(x=x, y=y.values, mode="lines", name=name))
        fig.update_layout(title=f"{title} · {consumer} ({unit})", margin=dict(l=60, r=10, t=50, b=40),
                          legend=dict(orientation="h", y=-0.25), hovermode="x unified",
                          xaxis_title="months from the scenario's start" if compare else "month",
                          yaxis_title=unit)
        out.append(common.figure(fig, div_id=f"fig-scenario-{var.replace('_', '-')}", height=380))
    return out


def _summary_rows(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


def _state(request: Request) -> dict:
    q = request.query_params
    preset = q.get("preset") or DEFAULT_PRESET
    importer = (q.get("importer") or DEFAULT_IMPORTER).strip()
    # ``compare=a,b`` (the page's script and shared links) or the form's checkboxes without the script
    compare = [c.strip() for c in (q.get("compare") or ",".join(q.getlist("compare-pick"))).split(",") if c.strip()]
    if compare:
        if len(compare) < 2:
            raise common.BadInput("compare", "give two or more presets, comma separated")
        for c in compare:
            if c not in presets():
                raise common.BadInput("compare", f"unknown preset {c!r}; presets: {', '.join(presets())}", 404)
    labels = [x.strip() for x in importer.split(",") if x.strip()]
    if not labels:
        raise common.BadInput("importer", "give at least one importer (USA, JPN, ROW or a bloc such as USA+JPN)")
    consumer = q.get("consumer") or labels[-1]
    if consumer not in labels:
        raise common.BadInput("consumer", f"{consumer!r} is not one of the importers shown ({importer})")
    return {"preset": preset, "importer": importer, "compare": compare, "consumer": consumer, "labels": labels}


def results(request: Request) -> dict:
    """Everything the results part of the page shows, computed (or taken from the cache)."""
    st = _state(request)
    rows = stock = None
    if st["compare"]:
        runs = [(p, run(request, p, st["importer"], (p,))) for p in st["compare"]]
    else:
        _preset_doc(st["preset"])
        rows = edited_events(request)
        stock = stock_inputs(request)
        if rows is None and stock is None:
            runs = [(st["preset"], run(request, st["preset"], st["importer"], (st["preset"],)))]
        else:
            spec = build_scenario(st["preset"], rows, stock)
            key = (st["preset"], _edited_key(rows) if rows else None, repr(sorted((stock or {}).items())))
            runs = [(spec.name, run(request, spec, st["importer"], key))]
    summary = pd.concat([r.to_frame() for _, r in runs], ignore_index=True)
    source_ids: set[str] = set()
    assumptions: list[str] = []
    for _, r in runs:
        ds = r.to_xarray()
        source_ids |= set(ds.attrs.get("source_ids", []))
        comms = [str(c) for c in ds["commodity"].values]
        assumptions += [a for a in ds.attrs.get("assumptions", []) if any(a.startswith(c) for c in comms)
                        and a not in assumptions]
    descriptions = [(label, r.to_xarray().attrs.get("description", "")) for label, r in runs]
    return {**st, "rows": rows, "stock": stock, "summary": summary, "records": _summary_rows(summary),
            "charts": _charts(runs, st["consumer"], bool(st["compare"])), "descriptions": descriptions,
            "assumptions": assumptions,
            "sources": common.sources_for([], common.catalog(request), ids=sorted(source_ids))}


def _download_name(st: dict) -> str:
    return "scenarios-" + "-vs-".join(st["compare"]) if st["compare"] else f"scenario-{st['preset']}"


@router.get("/scenarios", response_class=HTMLResponse)
def scenarios_page(request: Request, format: str | None = None) -> Response:
    fmt = common.check_format(format)
    ctx = results(request)
    if fmt:
        return common.download(ctx["summary"], fmt, _download_name(ctx))
    rows = ctx["rows"] or preset_events(ctx["preset"])
    return common.render(request, "scenarios.html", presets=presets(), events=rows, fields=EVENT_FIELDS,
                         **ctx)


@router.get("/scenarios/run", response_class=HTMLResponse)
def scenarios_fragment(request: Request) -> Response:
    """The results part of the page alone (the page's script swaps it in); errors answer 4xx with a message
    naming the field."""
    try:
        ctx = results(request)
    except common.BadInput as exc:
        return common.templates.TemplateResponse(request, "scenarios_error.html",
                                                 {"field": exc.field, "message": exc.message},
                                                 status_code=exc.status)
    return common.templates.TemplateResponse(request, "scenarios_results.html",
                                             {"url_with": common.url_with, **ctx})


@router.get("/scenarios/events", response_class=HTMLResponse)
def scenarios_events(request: Request, preset: str = DEFAULT_PRESET) -> Response:
    """The event rows of a preset (the form's editor is refilled when another preset is picked)."""
    return common.templates.TemplateResponse(request, "scenarios_events.html",
                                             {"events": preset_events(preset), "fields": EVENT_FIELDS})


def warm(app) -> None:
    """Compute the default view into the cache (the dashboard calls this in a background thread at start-up)."""
    from types import SimpleNamespace

    from starlette.datastructures import QueryParams

    request = SimpleNamespace(app=app, query_params=QueryParams(""))
    results(request)
