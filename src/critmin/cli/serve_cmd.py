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
        if not _valid_host(host):
            raise ConfigError(f"--host {host!r}: expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name")
        if data_dir.exists() and not data_dir.is_dir():
            raise ConfigError(f"--data-dir {str(data_dir)!r} is a file; give a folder")
        import pycountry

        if pycountry.countries.get(alpha_3=admin_country.strip().upper()) is None:
            from critmin import suggest

            hint = suggest.did_you_mean(admin_country, [c.alpha_3 for c in pycountry.countries])
            raise ConfigError(f"--admin-country {admin_country!r}: not an ISO 3166 alpha-3 country code"
                              + (f"; {hint}" if hint else ""))
        import importlib.util

        from critmin.server.children import Children  # the standard library only

        # Checked before any process starts (a child missing a module would print its own traceback).
        missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"the marketplace service needs its extra: pip install 'critmin[server]' (missing: "
                              f"{', '.join(missing)})")
        if db is not None:
            _check_url(db)
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


def _valid_host(host: str) -> bool:
    """An IP address or a host name (RFC 1123 labels); nothing is resolved here."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return bool(host) and len(host) <= 253 and all(
        re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels)


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


def _check_free(url: str) -> None:
    """Refuse at once, exit code 2, when another server holds the database (the service itself re-checks when it
    starts: this only turns uvicorn's start-up traceback into one line)."""
    from critmin.errors import ConfigError
    from critmin.server.db import ServerLock, make_engine

    try:
        engine = make_engine(url)
    except Exception as exc:  # a URL the engine refuses: said in one line, without the password
        raise ConfigError(f"cannot open the database {_redact(url)}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
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
