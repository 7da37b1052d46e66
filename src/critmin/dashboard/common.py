"""What every dashboard view shares: templates, rendering, downloads, figures, the catalog, the cache, sources.

Views call :func:`render` with a template that extends ``base.html``; :func:`download` turns the table a view
shows into CSV or XLSX (the view's URL plus ``format=csv|xlsx``); :func:`figure` turns a Plotly figure into a
``<div>`` drawn by the one plotly.min.js the page loads; :func:`cached` keeps results by their inputs;
:func:`sources_for` gives the provenance list a view shows (each entry links to ``/data``). Bad input raises
:class:`BadInput`, which the app answers with HTTP 400 (or 404) naming the field.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from critmin.reference.catalog import Catalog

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

#: Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), darkest first so the first
#: series contrast well with the white background; the yellow comes last (low contrast, use for fills only).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

#: Plotly config of every figure: no request to a CDN for map topology, no link to plotly.com.
PLOTLY_CONFIG = {"topojsonURL": "", "displaylogo": False, "responsive": True}

#: Download formats a view offers.
FORMATS = ("csv", "xlsx")

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


class BadInput(Exception):
    """A query value the view cannot use; answered with ``status`` (400, or 404 for an unknown thing) and a
    message that names the ``field``."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


def catalog(request: Request) -> Catalog:
    """The app's one :class:`Catalog` (the bundled dataset with the ``--data`` tables), loaded once."""
    return request.app.state.catalog


def data_key(request: Request) -> str:
    """The part of every cache key that names the dataset (``--data`` folder or the bundled one)."""
    return str(request.app.state.data or "bundled")


_CACHE: OrderedDict[Hashable, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[Hashable, threading.Lock] = {}
CACHE_SIZE = 256


def cached(key: Hashable, fn: Callable[[], Any]) -> Any:
    """``fn()`` computed once per ``key`` (a tuple of every input, :func:`data_key` included) and kept in a
    least-recently-used cache of :data:`CACHE_SIZE` entries; concurrent callers of one key wait for one run."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        try:
            value = fn()   # an error is not cached: the next caller tries again
        except BaseException:
            with _CACHE_LOCK:
                _KEY_LOCKS.pop(key, None)
            raise
        with _CACHE_LOCK:
            _CACHE[key] = value
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
            _KEY_LOCKS.pop(key, None)
    return value


def clear_cache() -> None:
    """Forget every cached result (benchmarks measure first renders with it)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def check_format(fmt: str | None) -> str | None:
    """``None`` (the page) or a known download format; anything else is a :class:`BadInput` on ``format``."""
    if fmt is None or fmt == "":
        return None
    f = fmt.strip().lower()
    if f not in FORMATS:
        raise BadInput("format", f"{fmt!r} is not a download format; use one of {', '.join(FORMATS)}")
    return f


def download(frame: pd.DataFrame, fmt: str, name: str) -> Response:
    """The table as a CSV or XLSX attachment ``name.csv`` / ``name.xlsx``."""
    f = check_format(fmt)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "table"
    out = frame.copy()
    for col in out.columns:   # lists and dicts (e.g. partners) as text, so both formats hold them
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: "; ".join(map(str, v)) if isinstance(v, list | tuple) else v)
    if f == "csv":
        return Response(out.to_csv(index=False), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{safe}.csv"'})
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        out.to_excel(xl, index=False, sheet_name=safe[:31])
    return Response(buf.getvalue(),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{safe}.xlsx"'})


def figure(fig, div_id: str | None = None, height: int | None = None) -> str:
    """A Plotly figure as a ``<div>`` plus its drawing script, without Plotly.js (the page loads the bundled
    plotly.min.js once, in ``base.html``); colours from :data:`PALETTE`."""
    fig.update_layout(colorway=PALETTE, font=dict(family="system-ui, sans-serif", size=13, color="#1a1a1a"),
                      paper_bgcolor="#ffffff", plot_bgcolor="#ffffff")
    if height:
        fig.update_layout(height=height)
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, config=PLOTLY_CONFIG,
                       div_id=div_id)


def sources_for(tables: Iterable[str | pd.DataFrame], cat: Catalog | None = None,
                ids: Iterable[str] = ()) -> list[dict]:
    """Source records (id, publisher, title, licence, url, years) behind the given dataset tables (names) or
    frames (their ``source`` column), plus any extra source ``ids``."""
    cat = cat or Catalog()
    found: set[str] = {str(i) for i in ids}
    for t in tables:
        frame = cat.table(t) if isinstance(t, str) else t
        if "source" in frame.columns:
            found.update(str(s) for s in frame["source"].dropna().unique())
    return [s for s in cat.sources(found) if s.get("id")]


def url_with(request: Request, **changes: Any) -> str:
    """The request's URL with query values replaced (``None`` drops one): shareable links and downloads."""
    params = dict(request.query_params.multi_items())
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = str(v)
    q = urlencode(params)
    return request.url.path + (f"?{q}" if q else "")


def render(request: Request, template: str, **ctx: Any) -> Response:
    """The page ``template`` (extending ``base.html``) with ``ctx``; ``sources`` (a list from
    :func:`sources_for`) fills the page's sources block."""
    from critmin.dashboard.views import NAV

    ctx.setdefault("sources", [])
    return templates.TemplateResponse(request, template, {"nav": NAV, "url_with": url_with,
                                                          "db": request.app.state.db, **ctx})


def fmt_num(value: Any) -> str:
    """A number for a table cell, as the brief writes it (:func:`critmin.report.export.human`)."""
    from critmin.report.export import human

    return human(value)


def pct(value: Any, digits: int = 0) -> str:
    """A share 0..1 as a percentage; ``–`` for a missing value."""
    try:
        if value is None or pd.isna(value):
            return "–"
        return f"{100 * float(value):.{digits}f} %"
    except (TypeError, ValueError):
        return str(value)


templates.env.filters["num"] = fmt_num
templates.env.filters["pct"] = pct
