"""The dashboard application: every view's router, the static assets and the error pages."""

from __future__ import annotations

import contextlib
import html
import importlib
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from critmin.dashboard.common import STATIC_DIR, BadInput, templates
from critmin.dashboard.views import NAV, VIEWS
from critmin.errors import ConfigError, DataError
from critmin.reference.catalog import Catalog


def plotly_js() -> Path:
    """The plotly.min.js shipped inside the installed ``plotly`` package (served as ``/static/plotly.min.js``)."""
    from importlib import resources

    path = Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))
    if not path.is_file():
        raise DataError("the installed plotly package has no package_data/plotly.min.js", file=str(path))
    return path


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error(request: Request, status: int, field: str | None, message: str) -> Response:
    """An error as a page (browsers) or JSON ``{"field", "error"}`` (anything else), with ``status``."""
    if _wants_html(request):
        return templates.TemplateResponse(request, "error.html",
                                          {"nav": NAV, "status": status, "field": field, "message": message,
                                           "sources": [], "db": getattr(request.app.state, "db", None),
                                           "url_with": lambda *a, **k: request.url.path},
                                          status_code=status)
    return JSONResponse({"field": field, "error": message}, status_code=status)


def _warm(app: FastAPI, modules: list) -> None:
    """Each view's ``warm(app)`` (its default computation) in turn, in a background thread; a failure here is
    left to the page that needs the result, which reports it."""
    for module in modules:
        try:
            module.warm(app)
        except Exception:  # the page that computes it again shows the error to the user
            pass


def create_dashboard(data: str | Path | None = None, db: str | None = None, *, monitor: str | Path | None = None,
                     warm: bool = True) -> FastAPI:
    """The dashboard as an ASGI app.

    Parameters
    ----------
    data : folder of the user's own tables (as ``--data`` of every command), or ``None`` for the bundled dataset
    db : SQLAlchemy URL of the marketplace database, for the marketplace view (``None``: the view says how to
        start it with one)
    monitor : folder of new data (as ``critmin monitor --data``) whose alerts the overview lists
    warm : compute each view's default results in a background thread at start-up, so the first page a user
        opens is served from the cache
    """
    modules = [importlib.import_module(f"critmin.dashboard.views.{name}") for name in VIEWS]

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI):
        if warm:
            threading.Thread(target=_warm, args=(app_, [m for m in modules if hasattr(m, "warm")]),
                             name="dashboard-warm", daemon=True).start()
        yield

    app = FastAPI(title="critmin dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.data = str(data) if data else None
    app.state.db = db
    app.state.monitor = str(monitor) if monitor else None
    app.state.catalog = Catalog(data)
    app.add_middleware(GZipMiddleware, minimum_size=2048)

    js = plotly_js()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def _plotly() -> FileResponse:
        return FileResponse(js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def _favicon() -> Response:
        return Response(status_code=204)

    for module in modules:
        app.include_router(module.router)

    @app.get("/geo/countries-110m.geojson", include_in_schema=False)
    def _outlines() -> FileResponse:
        from importlib import resources

        from critmin.geo.outlines import OUTLINES_FILE

        path = Path(str(resources.files("critmin.geo").joinpath("data", OUTLINES_FILE)))
        return FileResponse(path, media_type="application/geo+json",
                            headers={"Cache-Control": "public, max-age=86400"})


    @app.exception_handler(BadInput)
    async def _bad_input(request: Request, exc: BadInput) -> Response:
        return _error(request, exc.status, exc.field, exc.message)

    @app.exception_handler(ConfigError)
    async def _config_error(request: Request, exc: ConfigError) -> Response:
        return _error(request, 400, getattr(exc, "field", None), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {}
        field = str(first.get("loc", ["", "?"])[-1])
        value = first.get("input")
        msg = f"{first.get('msg', 'invalid value')}" + (f" (got {value!r})" if value is not None else "")
        return _error(request, 422, field, msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _wants_html(request):
            return _error(request, 404, None, f"no page at {html.escape(request.url.path)}")
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    return app
