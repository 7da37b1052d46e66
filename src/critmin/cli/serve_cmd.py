"""``critmin serve``: the marketplace service; ``critmin market …``: its offline tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    from critmin.cli.common import check_listen, handled, require_extra

    @app.command("serve")
    @handled
    def serve(
        db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL: sqlite:///path or "
                                                           "postgresql://user:pw@host/db (default: SQLite in "
                                                           "--data-dir)")] = None,
        host: Annotated[str, typer.Option("--host", help="Interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder of the SQLite database and the first "
                                                                  "admin token")] = Path("critmin-data"),
        admin_country: Annotated[str, typer.Option("--admin-country", help="ISO3 country of the first admin")] = "USA",
        rate: Annotated[float, typer.Option("--rate-limit", help="Requests/s per token (0 = off); bursts of "
                                                                 "twice this")] = 500.0,
        max_connections: Annotated[int, typer.Option("--max-connections", help="Connections (and requests in "
                                                                               "progress) at once; beyond, 503")] = 256,
        keep_alive: Annotated[float, typer.Option("--keep-alive", help="Seconds an idle connection is kept "
                                                                       "open")] = 15.0,
    ) -> None:
        """Run the marketplace API (OpenAPI at /openapi.json) in one process: uvicorn serving the FastAPI app.

        On an empty database it writes the admin participant's token to DATA_DIR/admin.token (mode 0600), then
        commits the admin. Needs the server extra: pip install "critmin[server]".
        """
        from critmin.errors import ConfigError

        check_listen(host, port)
        if rate < 0:
            raise ConfigError(f"--rate-limit must be ≥ 0, got {rate}")
        if max_connections < 1:
            raise ConfigError(f"--max-connections must be ≥ 1, got {max_connections}")
        if not 0 < keep_alive <= 3600:
            raise ConfigError(f"--keep-alive must be in (0, 3600] seconds, got {keep_alive:g}")
        _check_data_dir(data_dir)
        import pycountry

        if pycountry.countries.get(alpha_3=admin_country.strip().upper()) is None:
            from critmin import suggest

            hint = suggest.did_you_mean(admin_country, [c.alpha_3 for c in pycountry.countries])
            raise ConfigError(f"--admin-country {admin_country!r}: not an ISO 3166 alpha-3 country code"
                              + (f"; {hint}" if hint else ""))
        require_extra("server", _SERVER_MODULES, "the marketplace service")
        if db is not None:
            _check_url(db)
        from critmin.server.app import create_app
        from critmin.server.db import default_url

        _make_data_dir(data_dir)

        url = db or default_url(data_dir)
        app_ = create_app(url, rate=rate, burst=2 * rate, admin_token_file=data_dir / "admin.token",
                          admin_country=admin_country)
        banner = (f"critmin marketplace on http://{host}:{port} (OpenAPI /openapi.json); database {_redact(url)}; "
                  f"first admin token (empty database only): {data_dir / 'admin.token'}")
        code = serve_app(app_, host, port, max_connections=max_connections, keep_alive=keep_alive, banner=banner)
        if code:
            raise typer.Exit(code)


def serve_app(app_, host: str, port: int, *, max_connections: int = 256, keep_alive: float = 15.0,
              http: str | None = None, banner: str | None = None) -> int:
    """What ``critmin serve`` runs, for an app from :func:`critmin.server.app.create_app`: bind ``host:port``, open
    the service (lease, migrations, engine, bootstrap), then serve with uvicorn until SIGINT/SIGTERM. Returns the
    exit code; start-up errors raise ConfigError (one line). ``http``: uvicorn's HTTP implementation
    (default :data:`HTTP_IMPL`)."""
    from critmin.cli.common import bind

    sock = bind(host, port)  # the port first: taken, it is said before the database is touched
    try:
        _open(app_.state.service, str(app_.state.service.url))
        return _run(app_, sock, max_connections, keep_alive, http or HTTP_IMPL, banner)
    finally:
        sock.close()


def _check_data_dir(data_dir: Path) -> None:
    """--data-dir must be a folder, or a path whose first existing part is one (created later): one line naming it
    otherwise. Nothing is created here."""
    from critmin.errors import ConfigError

    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {str(data_dir)!r} is a file; give a folder")
    for parent in data_dir.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--data-dir {str(data_dir)!r}: {str(parent)!r} is a file, not a folder")
            break


def _make_data_dir(data_dir: Path) -> None:
    from critmin.errors import ConfigError

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file on the way (NotADirectoryError), no permission, a read-only file system
        raise ConfigError(f"--data-dir {str(data_dir)!r}: cannot create the folder ({exc.strerror or exc})") from None


def _open(service, url: str) -> None:
    """Open the service (lease, migrations, engine, bootstrap) before serving: any failure is one line."""
    from critmin.errors import ConfigError, CritminError

    try:
        service.open()
    except CritminError:
        raise
    except Exception as exc:  # an unreachable database, a file that is no database, an unwritable folder...
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"cannot open the database {_redact(url)}: {type(exc).__name__}: {first}") from None


def _run(app_, sock, max_connections: int, keep_alive: float, http: str, banner: str | None) -> int:
    """Serve ``app_`` (its service open) on ``sock`` with uvicorn until SIGINT/SIGTERM; returns the exit code."""
    import uvicorn

    _Server = _server_class()
    config = uvicorn.Config(app_, lifespan="on", log_level="warning", access_log=False, server_header=False,
                            limit_concurrency=max_connections, timeout_keep_alive=keep_alive,
                            h11_max_incomplete_event_size=MAX_HEAD_BYTES, http=http,
                            timeout_graceful_shutdown=30)
    server = _Server(config)
    lost: list[BaseException] = []

    def lease_lost(exc: BaseException) -> None:
        lost.append(exc)
        server.should_exit = True

    app_.state.service.on_lease_lost = lease_lost
    if banner:
        typer.echo(banner, err=True)
    try:
        server.run(sockets=[sock])
    finally:
        app_.state.service.close()  # if uvicorn stopped before its lifespan ran
    if lost:
        typer.echo(f"critmin serve: stopped: {lost[0]}", err=True)
        return 2
    return 0 if server.started else 2


def _server_class():
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, stopping on SIGINT/SIGTERM as usual (every request in progress answered, the lifespan
        closed) but without raising the signal again afterwards: a stop that was asked for ends with exit code 0."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    getattr(self, "_captured_signals", []).clear()

    return Server


#: Largest request line and header block (bytes), beyond which the request is refused (h11's limit).
MAX_HEAD_BYTES = 64 * 1024

#: uvicorn's HTTP/1.1 implementation: h11, which bounds a request's head (:data:`MAX_HEAD_BYTES`).
HTTP_IMPL = "h11"


#: Modules of the ``server`` extra that the service imports.
_SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "orjson", "pydantic")


def _check_url(url: str) -> None:
    """A database URL that SQLAlchemy can parse and has a driver for: one line naming --db otherwise."""
    from critmin.errors import ConfigError

    try:
        import sqlalchemy as sa

        parsed = sa.engine.make_url(url)
        parsed.get_dialect()
    except Exception as exc:  # any parse or driver error is in the URL given
        raise ConfigError(f"--db {_redact(url)!r}: not a database URL this service can use (sqlite:///path or "
                          f"postgresql://user:pw@host/db): {type(exc).__name__}") from None


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    import re

    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
