"""``critmin serve``: the marketplace service; ``critmin market …``: its offline tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    from critmin.cli.common import handled

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
    ) -> None:
        """Run the marketplace API (OpenAPI at /openapi.json).

        On an empty database it creates the admin participant and writes its token to DATA_DIR/admin.token
        (mode 0600). Needs the server extra: pip install "critmin[server]".
        """
        from critmin.errors import ConfigError

        if not 0 < port < 65536:
            raise ConfigError(f"--port must be 1..65535, got {port}")
        if rate < 0:
            raise ConfigError(f"--rate-limit must be ≥ 0, got {rate}")
        import importlib.util

        from critmin.server.children import Children  # the standard library only

        # Checked before any process starts (a child missing a module would print its own traceback).
        missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"the marketplace service needs its extra: pip install 'critmin[server]' (missing: "
                              f"{', '.join(missing)})")
        # The front and the storage writer first: they import their modules while this process imports its own.
        with Children(host, port, writer=True) as children:
            try:
                from critmin.server.app import create_app
                from critmin.server.db import default_url
                from critmin.server.run import serve as run_service
            except ImportError as exc:
                raise ConfigError(f"the marketplace service needs its extra: pip install 'critmin[server]' "
                                  f"({exc})") from None
            url = db or default_url(data_dir)
            _check_free(url)
            app_ = create_app(url, rate=rate, burst=2 * rate, admin_token_file=data_dir / "admin.token",
                              admin_country=admin_country, children=children)
            typer.echo(f"critmin marketplace on http://{host}:{port} (OpenAPI /openapi.json); database "
                       f"{_redact(url)}; first admin token (empty database only): {data_dir / 'admin.token'}", err=True)
            code = run_service(app_, host, port, children=children)
        if code:
            raise typer.Exit(code)


#: Modules of the ``server`` extra that the service's three processes import.
_SERVER_MODULES = ("fastapi", "uvicorn", "httptools", "h11", "sqlalchemy", "alembic", "orjson", "pydantic")


def _check_free(url: str) -> None:
    """Refuse at once, exit code 2, when another server holds the database (the service itself re-checks when it
    starts: this only turns uvicorn's start-up traceback into one line)."""
    from critmin.errors import ConfigError
    from critmin.server.db import ServerLock, make_engine

    engine = make_engine(url)
    lock = ServerLock(engine)
    try:
        lock.acquire()
        lock.release()
        with engine.connect():  # a file that is no database, a server refusing us: said here, in one line
            pass
    except ConfigError:
        raise
    except Exception as exc:  # unreachable database, bad URL: say which, without the password
        raise ConfigError(f"cannot open the database {_redact(url)}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        engine.dispose()


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    import re

    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
