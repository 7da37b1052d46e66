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
        import importlib.util

        from critmin.cli.common import check_folder
        from critmin.cli.serve_cmd import _check_url, _valid_host
        from critmin.errors import ConfigError

        if not 0 < port < 65536:
            raise ConfigError(f"--port must be 1..65535, got {port}")
        if not _valid_host(host):
            raise ConfigError(f"--host {host!r}: expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name")
        check_folder(data, "--data")
        check_folder(monitor, "--monitor")
        missing = [m for m in DASHBOARD_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"the dashboard needs its extra: pip install 'critmin[dashboard]' (missing: "
                              f"{', '.join(missing)})")
        if db is not None:
            _check_url(db)
        _check_port(host, port)
        import uvicorn

        from critmin.dashboard.app import create_dashboard

        app_ = create_dashboard(data, db, monitor=monitor)
        _ = app_.state.catalog.manifest   # a missing or broken bundled dataset fails here, in one line
        typer.echo(f"critmin dashboard on http://{host}:{port}/ (Ctrl+C stops it)", err=True)
        uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)
        # The server and its lifespan (the marketplace service, when --db is given) have shut down. What may still
        # run is background work whose only output is the in-memory cache (the start-up computation, a Monte Carlo
        # run a page started): the interpreter would wait for it at exit, so Ctrl+C ends the process here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _check_port(host: str, port: int) -> None:
    """The port is free on ``host`` (one line naming --port otherwise, instead of uvicorn's log and exit 1)."""
    import socket

    from critmin.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve ({exc.strerror or exc})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None

