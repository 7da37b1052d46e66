"""``critmin dashboard``: the analyst dashboard, a local web app on the bundled data."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import DataOpt, handled

#: Modules the dashboard imports (the ``dashboard`` extra); checked before anything starts.
DASHBOARD_MODULES = ("fastapi", "uvicorn", "jinja2", "plotly")


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to ``app``."""
    @app.command("dashboard")
    @handled
    def dashboard(
        data: DataOpt = None,
        port: Annotated[int, typer.Option("--port", help="TCP port")] = 8050,
        host: Annotated[str, typer.Option("--host", help="Interface to listen on (default: this machine only)")]
        = "127.0.0.1",
        db: Annotated[str | None, typer.Option("--db", help="Marketplace database URL (sqlite:///path or "
                                                           "postgresql://…) for the marketplace view")] = None,
        monitor: Annotated[Path | None, typer.Option("--monitor", help="Folder with new data whose alerts the "
                                                                       "overview lists (see critmin monitor)")] = None,
    ) -> None:
        """Start the analyst dashboard on http://HOST:PORT (overview, mineral pages, scenario lab, risk,
        stockpile and finance, marketplace, data). Needs the dashboard extra: pip install "critmin[dashboard]"."""
        from critmin.cli.common import bind, check_folder, check_listen, require_extra
        from critmin.cli.serve_cmd import _check_url, _server_class

        check_listen(host, port)
        check_folder(data, "--data")
        check_folder(monitor, "--monitor")
        require_extra("dashboard", DASHBOARD_MODULES, "the dashboard")
        if db is not None:
            _check_url(db)
        sock = bind(host, port)   # taken: one line naming --port, before anything is computed
        import uvicorn

        from critmin.dashboard.app import create_dashboard

        app_ = create_dashboard(data, db, monitor=monitor)
        _ = app_.state.catalog.manifest   # a missing or broken bundled dataset fails here, in one line
        typer.echo(f"critmin dashboard on http://{host}:{port}/ (Ctrl+C stops it)", err=True)
        with sock:
            # the service's Server class: Ctrl+C stops it as asked (exit 0), not by raising SIGINT again
            _server_class()(uvicorn.Config(app_, log_level="warning", access_log=False)).run(sockets=[sock])
        # The server and its lifespan (the marketplace service, when --db is given) have shut down. What may still
        # run is background work whose only output is the in-memory cache (the start-up computation, a Monte Carlo
        # run a page started): the interpreter would wait for it at exit, so Ctrl+C ends the process here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
