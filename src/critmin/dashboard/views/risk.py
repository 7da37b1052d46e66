"""Risk (``/risk``): the Monte Carlo distribution of unmet demand — expected shortfall, VaR and CVaR at 95 % and
99 %, the probability of any shortfall and who drives it — per importer × commodity × stage.

State: ``importer`` (``USA,JPN,USA+JPN``), ``commodity`` (comma list; empty = the nine priority commodities),
``draws`` (default 20,000: about a second on two cores), ``seed``, ``months``, ``consumer`` (whose figures the
charts show); ``format=csv|xlsx`` downloads the table (computed at once when it is not in the cache).

A run goes to a background thread (one at a time): ``POST /risk/run`` answers a job id, ``GET
/risk/status/{id}`` its progress (chunks of draws done), ``POST /risk/cancel/{id}`` stops it after the chunk
being computed (the network build before the first chunk runs to its end). Finished results are kept by their
inputs: the same inputs are answered from the cache without a new run.

The numbers are :func:`critmin.risk`'s — the function ``critmin risk`` calls — with the same default chunk of
25,000 draws, so ``critmin risk --draws N --seed S`` gives the same figures; the dashboard only adds the progress
callback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from critmin.dashboard import common
from critmin.errors import ConfigError


@contextlib.asynccontextmanager
async def _lifespan(app) -> AsyncIterator[None]:
    """On shutdown, cancel the runs still queued or running (the server does not wait for a long one)."""
    yield
    for job in list(_JOBS.values()):
        if job.state in ("queued", "running"):
            job.cancel.set()


router = APIRouter(lifespan=_lifespan)

DEFAULT_IMPORTER = "USA,JPN,USA+JPN"
DEFAULT_DRAWS = 20_000
MAX_DRAWS = 2_000_000
#: Statistics the chart shows: (column of the risk table, label).
STATS = (("expected_shortfall_t", "expected"), ("var_95_t", "VaR 95 %"), ("cvar_95_t", "CVaR 95 %"),
         ("var_99_t", "VaR 99 %"), ("cvar_99_t", "CVaR 99 %"))
#: Finished runs kept (by inputs).
KEEP = 32


class Cancelled(Exception):
    """Raised from the progress callback when the run's cancel flag is set."""


@dataclass
class Job:
    id: str
    key: tuple
    inputs: dict
    state: str = "queued"            # queued → running → done | cancelled | failed
    done: int = 0
    total: int = 0
    message: str = "waiting for the previous run to finish"
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    future: Any = None


_JOBS: dict[str, Job] = {}
_RESULTS: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.Lock()
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="critmin-risk")


def _int(q, name: str, default: int, lo: int, hi: int) -> int:
    text = q.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise common.BadInput(name, f"{text!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise common.BadInput(name, f"{value} must be in {lo:,}..{hi:,}")
    return value


def inputs(request: Request, q=None) -> dict:
    """The run's inputs from a query string or form, checked (a bad one names its field)."""
    from critmin.supplychain.risk import PRIORITY_COMMODITIES

    q = q if q is not None else request.query_params
    importer = (q.get("importer") or DEFAULT_IMPORTER).replace(" ", "")
    labels = [x for x in importer.split(",") if x]
    if not labels:
        raise common.BadInput("importer", "give at least one importer (USA, JPN or a bloc such as USA+JPN)")
    comm_text = (q.get("commodity") or "").replace(" ", "")
    commodities = [c for c in comm_text.split(",") if c]
    known = _modelled()
    for c in commodities:
        if c not in known:
            raise common.BadInput("commodity", f"unknown commodity {c!r}; modelled: {', '.join(known)}")
    consumer = q.get("consumer") or labels[-1]
    if consumer not in labels:
        raise common.BadInput("consumer", f"{consumer!r} is not one of the importers ({importer})")
    return {"importer": ",".join(labels), "commodity": ",".join(commodities),
            "commodities": commodities or list(PRIORITY_COMMODITIES), "draws": _int(q, "draws", DEFAULT_DRAWS, 1,
                                                                                    MAX_DRAWS),
            "seed": _int(q, "seed", 0, 0, 2**32 - 1), "months": _int(q, "months", 12, 1, 600), "consumer": consumer,
            "labels": labels}


def _modelled() -> list[str]:
    from critmin.supplychain.network import CHAINS

    return sorted(CHAINS)


def _key(request: Request, inp: dict) -> tuple:
    return ("risk", common.data_key(request), inp["importer"], tuple(inp["commodities"]), inp["draws"], inp["seed"],
            inp["months"])


def _compute(request: Request, inp: dict, progress=None):
    from critmin import api

    try:
        res = api.risk(inp["importer"], inp["commodities"], draws=inp["draws"], seed=inp["seed"],
                       months=inp["months"], catalog=common.catalog(request), progress=progress)
        return res.data, res.tables["risk"], res.meta
    except ConfigError as exc:
        raise common.BadInput("importer", str(exc)) from None


def _store(key: tuple, result: Any) -> None:
    with _LOCK:
        _RESULTS[key] = result
        _RESULTS.move_to_end(key)
        while len(_RESULTS) > KEEP:
            _RESULTS.popitem(last=False)


def cached_result(key: tuple) -> Any:
    with _LOCK:
        if key in _RESULTS:
            _RESULTS.move_to_end(key)
            return _RESULTS[key]
    return None


def _work(request: Request, job: Job) -> None:
    if job.cancel.is_set():
        job.state, job.message = "cancelled", "cancelled before it started"
        return
    job.state, job.message = "running", "building the network and the hazards"

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total
        job.message = f"{done} of {total} chunk(s) of draws"
        if job.cancel.is_set():
            raise Cancelled

    try:
        result = _compute(request, job.inputs, progress)
    except Cancelled:
        job.state, job.message = "cancelled", f"cancelled after {job.done} of {job.total} chunk(s)"
        return
    except common.BadInput as exc:
        job.state, job.message = "failed", f"{exc.field}: {exc.message}"
        return
    except Exception as exc:  # reported to the page, which shows it
        job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"
        return
    _store(job.key, result)
    job.result = result
    job.state, job.message = "done", "done"


def _public(job: Job, cached: bool = False) -> dict:
    return {"id": job.id, "state": job.state, "done": job.done, "total": job.total, "message": job.message,
            "cached": cached, "draws": job.inputs["draws"], "seed": job.inputs["seed"]}


def settings(result, inp: dict) -> dict:
    """What the figures were computed with, shown next to them."""
    ds, _frame, meta = result
    a = ds.attrs
    responses = [n for n in meta["notes"] if n.startswith("responses:")]
    return {"draws": a.get("n_draws"), "seed": a.get("seed"), "months": a.get("months"), "chunk": a.get("chunk"),
            "chunks": a.get("n_chunks"), "hazard_window": a.get("hazard_window"),
            "catalogue_as_of": a.get("catalogue_as_of"), "estimator": a.get("estimator"),
            "responses": responses[0].removeprefix("responses: ") if responses else "",
            "importer": inp["importer"], "commodities": ", ".join(inp["commodities"])}


def _chart(frame: pd.DataFrame, consumer: str) -> str:
    sub = frame[(frame["consumer"] == consumer) & (frame["demand_t"] > 0)].copy()
    sub = sub.sort_values("expected_shortfall_t", ascending=False)
    labels = [f"{c} · {s}" for c, s in zip(sub["commodity"], sub["stage"], strict=True)]
    fig = go.Figure()
    for col, label in STATS:
        fig.add_trace(go.Bar(x=labels, y=sub[col], name=label))
    fig.update_layout(barmode="group", title=f"Unmet demand over the horizon · {consumer}",
                      yaxis_title="t of each stage's basis (log scale)", yaxis_type="log",
                      margin=dict(l=60, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.45))
    return common.figure(fig, div_id="fig-risk", height=520)


def _p_chart(frame: pd.DataFrame, consumer: str) -> str:
    sub = frame[(frame["consumer"] == consumer) & (frame["demand_t"] > 0)].sort_values("p_shortfall")
    fig = go.Figure(go.Bar(y=[f"{c} · {s}" for c, s in zip(sub["commodity"], sub["stage"], strict=True)],
                           x=sub["p_shortfall"] * 100, orientation="h", name="P(any shortfall)",
                           text=[f"{v * 100:.1f} %" for v in sub["p_shortfall"]], textposition="auto"))
    fig.update_layout(title=f"Probability of any shortfall · {consumer}", xaxis_title="%",
                      margin=dict(l=150, r=10, t=50, b=40))
    return common.figure(fig, div_id="fig-risk-p", height=max(260, 28 * len(sub) + 100))


def _contribution_chart(ds, frame: pd.DataFrame, consumer: str) -> str | None:
    """Each supplier country's contribution to the expected shortfall (the Dataset's ``contribution``, which adds up
    to the expected shortfall), stacked per commodity · stage."""
    if "contribution" not in ds or consumer not in ds["consumer"].values:
        return None
    sub = frame[(frame["consumer"] == consumer) & (frame["expected_shortfall_t"] > 0)]
    if sub.empty:
        return None
    sub = sub.sort_values("expected_shortfall_t")
    labels = [f"{c} · {s}" for c, s in zip(sub["commodity"], sub["stage"], strict=True)]
    con = ds["contribution"].sel(consumer=consumer)
    fig = go.Figure()
    for sup in con["supplier"].values:
        x = [float(con.sel(supplier=sup, commodity=c, stage=s)) for c, s in zip(sub["commodity"], sub["stage"],
                                                                                  strict=True)]
        if any(v > 0 for v in x):
            fig.add_trace(go.Bar(y=labels, x=x, orientation="h", name=str(sup)))
    fig.update_layout(barmode="stack", title=f"Who drives the expected shortfall · {consumer}",
                      xaxis_title="t of each stage's basis", legend=dict(orientation="h", y=-0.3),
                      margin=dict(l=150, r=10, t=50, b=40))
    return common.figure(fig, div_id="fig-risk-contrib", height=max(280, 30 * len(sub) + 140))


def view(request: Request, result, inp: dict) -> dict:
    ds, frame, meta = result
    shown = frame[frame["consumer"] == inp["consumer"]]
    charts = [_chart(frame, inp["consumer"]), _p_chart(frame, inp["consumer"]),
              _contribution_chart(ds, frame, inp["consumer"])]
    return {"inp": inp, "records": shown.to_dict("records"), "charts": [c for c in charts if c],
            "settings": settings(result, inp), "notes": meta["notes"], "sources": page_sources(request)}


#: The dataset tables the Monte Carlo reads (its hazards, network and demands); their sources are the run's.
SOURCE_TABLES = ("export_controls", "production", "trade")


def page_sources(request: Request) -> list[dict]:
    return common.sources_for(SOURCE_TABLES, common.catalog(request))


@router.get("/risk", response_class=HTMLResponse)
def risk_page(request: Request, format: str | None = None) -> Response:
    fmt = common.check_format(format)
    inp = inputs(request)
    key = _key(request, inp)
    result = cached_result(key)
    if fmt:
        if result is None:
            result = _compute(request, inp)
            _store(key, result)
        return common.download(result[1], fmt, f"risk-{inp['draws']}-draws-seed-{inp['seed']}")
    ctx = view(request, result, inp) if result is not None else {"inp": inp, "sources": page_sources(request)}
    return common.render(request, "risk.html", cached=result is not None, modelled=_modelled(), **ctx)


@router.get("/risk/result", response_class=HTMLResponse)
def risk_result(request: Request) -> Response:
    """The results part of the page for finished inputs (404 while they are not computed)."""
    inp = inputs(request)
    result = cached_result(_key(request, inp))
    if result is None:
        raise common.BadInput("draws", "no finished run for these inputs: start one with POST /risk/run", 404)
    return common.templates.TemplateResponse(request, "risk_results.html",
                                             {"url_with": common.url_with, **view(request, result, inp)})


@router.post("/risk/run")
async def risk_run(request: Request) -> JSONResponse:
    """Start a run for the form's inputs (or answer the finished one from the cache, or the one running)."""
    raw = (await request.body()).decode("utf-8", "replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            body = {str(k): str(v) for k, v in json.loads(raw or "{}").items()}
        except (ValueError, AttributeError):
            raise common.BadInput("body", "not a JSON object of the run's inputs") from None
    else:   # the page's form, URL-encoded (python-multipart is not needed for that)
        body = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
    inp = inputs(request, body)
    job, cached = start(request, inp)
    return JSONResponse(_public(job, cached=cached), status_code=202 if job.state in ("queued", "running") else 200)


def start(request: Request, inp: dict) -> tuple[Job, bool]:
    """The job for these inputs: a finished one from the cache (``True``), the one already queued or running, or
    a new one handed to the background thread."""
    key = _key(request, inp)
    with _LOCK:
        if key in _RESULTS:
            done = Job(id=uuid.uuid4().hex, key=key, inputs=inp, state="done", message="from the cache")
            _JOBS[done.id] = done
            return done, True
        for job in _JOBS.values():
            if job.key == key and job.state in ("queued", "running"):
                return job, False
        job = Job(id=uuid.uuid4().hex, key=key, inputs=inp)
        _JOBS[job.id] = job
        _prune()
    job.future = _POOL.submit(_work, request, job)
    return job, False


def _prune(keep: int = 200) -> None:
    """Forget the oldest finished jobs beyond ``keep`` (their results stay in the cache)."""
    finished = [k for k, j in _JOBS.items() if j.state not in ("queued", "running")]
    for k in finished[:max(0, len(_JOBS) - keep)]:
        _JOBS.pop(k, None)


def _job(job_id: str) -> Job:
    job = _JOBS.get(job_id)
    if job is None:
        raise common.BadInput("id", f"no run {job_id!r}", 404)
    return job


@router.get("/risk/status/{job_id}")
def risk_status(job_id: str) -> JSONResponse:
    return JSONResponse(_public(_job(job_id)))


@router.post("/risk/cancel/{job_id}")
def risk_cancel(job_id: str) -> JSONResponse:
    job = _job(job_id)
    if job.state in ("queued", "running"):
        job.cancel.set()
        job.message = "cancelling after the chunk being computed"
        if job.state == "queued":
            job.state, job.message = "cancelled", "cancelled before it started"
    return JSONResponse(_public(job))


def warm(app) -> None:
    """Compute the default view into the cache (the dashboard calls this in a background thread at start-up)."""
    from types import SimpleNamespace

    from starlette.datastructures import QueryParams

    request = SimpleNamespace(app=app, query_params=QueryParams(""))
    job, _cached = start(request, inputs(request, {}))   # a page opened meanwhile follows this run's progress
    if job.future is not None:
        job.future.result()
