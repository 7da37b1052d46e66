"""Marketplace (``/market``): the marketplace service inside the dashboard, when it was started with ``--db``.

The service app (:func:`critmin.server.app.create_app`) is mounted at ``/market/api``, so its whole HTTP API
(``/market/api/v1/...``) answers beside the dashboard, with its own authentication and authorisation: the page's
script sends the participant's service token as ``Authorization: Bearer`` on every call. The token is typed in
once and kept in the tab's ``sessionStorage`` — never in a URL, a cookie or the dashboard's server. What a
participant sees (books, its own orders and trades, its accounts, the audit log for regulators and the admin) is
exactly what the service answers that token: one participant never sees another's orders.

Starlette runs only the outer application's lifespan, so the service's own (database, sequencer, storage
writer) is run by :func:`lifespan`, the lifespan of this module's router, which FastAPI merges into the
dashboard's when the router is included. Without ``--db`` the page says how to
start the dashboard with a database.

On an empty database the service creates the ``admin`` participant and writes its first token to
:func:`admin_token_file` (beside a SQLite database file, else ``critmin-data/admin.token``), as ``critmin serve``
does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from critmin.dashboard import common

#: Where the service is mounted inside the dashboard.
API_PREFIX = "/market/api"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def admin_token_file(db_url: str) -> Path:
    """Where the first admin token of an empty database is written: beside a SQLite file, else in
    ``$CRITMIN_DATA_DIR`` or ``./critmin-data`` (as ``critmin serve``)."""
    m = re.match(r"^sqlite(?:\+\w+)?:///(.+)$", db_url)
    if m and not m.group(1).startswith(":memory:"):
        return Path(m.group(1)).resolve().parent / "admin.token"
    return Path(os.environ.get("CRITMIN_DATA_DIR") or "critmin-data") / "admin.token"


def redact(url: str) -> str:
    """The database URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the marketplace service's lifespan and mount it at :data:`API_PREFIX` while the dashboard runs (nothing
    when the dashboard has no ``--db``). When the service cannot start on the database (another critmin server
    holds it, the file is not a database, the server cannot be reached), the dashboard runs without it: the reason
    is printed in one line and the marketplace page shows it."""
    url = getattr(app.state, "db", None)
    if not url:
        yield
        return
    import sqlalchemy as sa

    from critmin.errors import CritminError
    from critmin.server.app import create_app

    token_file = admin_token_file(url)
    service = create_app(url, admin_token_file=token_file)
    app.state.market_token_file = token_file
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(service.router.lifespan_context(service))
        except (CritminError, sa.exc.SQLAlchemyError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            app.state.market_error = f"the marketplace service cannot start on {redact(url)}: {reason}"
            print(f"critmin dashboard: {app.state.market_error}; the marketplace view is off", file=sys.stderr)
            yield
            return
        app.mount(API_PREFIX, service, name="market-api")
        app.state.market_ready = True
        try:
            yield
        finally:
            app.state.market_ready = False
            app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != API_PREFIX]


# Starlette does not run a mounted app's lifespan: this router's lifespan runs it, and FastAPI merges an included
# router's lifespan into the application's (``app.include_router(router)`` in create_dashboard).
router = APIRouter(lifespan=lifespan)


def _slug(request: Request, name: str, default: str) -> str:
    value = request.query_params.get(name) or default
    if not _SLUG.match(value):
        raise common.BadInput(name, f"{value!r}: lower-case letters, digits, '-' and '_' (e.g. {default})")
    return value


@router.get("/market", response_class=HTMLResponse)
def market_page(request: Request, format: str | None = None) -> Response:
    if format:
        raise common.BadInput("format", "the marketplace tables are the signed-in participant's: download them with "
                                        "the CSV buttons of the page (the token never goes into a link)")
    db = getattr(request.app.state, "db", None)
    book = {"commodity": _slug(request, "commodity", "ndpr"), "form": _slug(request, "form", "oxide"),
            "grade": _slug(request, "grade", "std")}
    token_file = getattr(request.app.state, "market_token_file", None)
    today = dt.date.today()
    delivery = ((today + dt.timedelta(days=30)).isoformat(), (today + dt.timedelta(days=120)).isoformat())
    return common.render(request, "market.html", book=book, api=API_PREFIX,
                         delivery=delivery, error=getattr(request.app.state, "market_error", None),
                         ready=bool(getattr(request.app.state, "market_ready", False)),
                         db_shown=redact(db) if db else None, token_file=str(token_file) if token_file else None,
                         sources=[])
