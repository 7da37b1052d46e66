"""``critmin audit verify FILE | --db URL``: check the hash chain of a marketplace audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    from critmin.cli.common import handled, out_console

    audit_app = typer.Typer(help="The marketplace audit log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    @handled
    def verify_command(
        file: Annotated[Path | None, typer.Argument(help="JSON-lines file of audit records (GET /v1/audit/export)")] = None,
        db: Annotated[str | None, typer.Option("--db", help="Read the log from the marketplace database instead "
                                                           "(sqlite:///path or postgresql://…)")] = None,
        head: Annotated[str | None, typer.Option("--head", help="Expected hash of the last record (detects "
                                                                "truncation)")] = None,
    ) -> None:
        """Exit 0 when the chain is intact, 1 with the first bad record and why, 2 on unreadable input."""
        import re

        from critmin.errors import ConfigError, DataError
        from critmin.market.audit import loads, verify

        if (file is None) == (db is None):
            raise ConfigError("give either an audit log FILE or --db URL")
        if head is not None and not re.fullmatch(r"[0-9a-f]{64}", head.strip().lower()):
            raise ConfigError(f"--head {head!r}: expected the 64 hexadecimal digits of a SHA-256 hash "
                              "(GET /v1/audit/head)")
        if file is not None and file.is_dir():
            raise ConfigError(f"FILE {str(file)!r} is a folder; give the audit log file (JSON lines)")
        if file is not None:
            try:
                text = file.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"cannot read audit log: {exc}", file=str(file)) from None
            records, where = loads(text, source=str(file)), str(file)
        else:
            records, where = _from_db(db), "database audit_log"
        ok, index, reason = verify(records, expected_head=head)
        if not ok:
            out_console.print(f"audit log {where}: INVALID at record {index}: {reason}", highlight=False)
            raise typer.Exit(1)
        out_console.print(f"audit log {where}: {len(records)} records, chain intact", highlight=False)


def _from_db(url: str) -> list[dict]:
    from critmin.errors import ConfigError, DataError

    try:
        import sqlalchemy as sa

        from critmin.server import db
    except ImportError as exc:
        raise ConfigError(f"--db needs the server extra: pip install 'critmin[server]' ({exc})") from None
    try:
        engine = db.make_engine(url)
        with engine.connect() as conn:
            return list(db.audit_records(conn))
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise DataError(f"--db: cannot read the audit log from {url.split('@')[-1]}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]}") from None
