"""``critmin audit verify FILE | --db URL``: check the hash chain of a marketplace audit log, and with ``--db`` every
row of the database against it (:mod:`critmin.server.integrity`)."""

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
        db: Annotated[str | None, typer.Option("--db", help="Check the marketplace database itself "
                                                           "(sqlite:///path or postgresql://…): the chain, then every "
                                                           "row against the log")] = None,
        head: Annotated[str | None, typer.Option("--head", help="Expected hash of the last record (detects "
                                                                "truncation)")] = None,
    ) -> None:
        """Exit 0 when everything agrees, 1 with each disagreement (the first bad record of the chain; with --db,
        each row that disagrees with the log: table, key, column, stored value, value the log implies), 2 on
        unreadable input."""
        import re

        from critmin.errors import ConfigError, DataError
        from critmin.market.audit import loads, verify

        if (file is None) == (db is None):
            raise ConfigError("give either an audit log FILE or --db URL")
        if head is not None and not re.fullmatch(r"[0-9a-f]{64}", head.strip().lower()):
            raise ConfigError(f"--head {head!r}: expected the 64 hexadecimal digits of a SHA-256 hash "
                              "(GET /v1/audit/head)")
        head = head.strip().lower() if head is not None else None
        if db is not None:
            report = _verify_db(db, head)
            for line in report_lines(report):
                typer.echo(line)  # one finding per line, never wrapped
            if not report.ok:
                raise typer.Exit(1)
            return
        if file.is_dir():
            raise ConfigError(f"FILE {str(file)!r} is a folder; give the audit log file (JSON lines)")
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read audit log: {exc}", file=str(file)) from None
        records, where = loads(text, source=str(file)), str(file)
        ok, index, reason = verify(records, expected_head=head)
        if not ok:
            out_console.print(f"audit log {where}: INVALID at record {index}: {reason}", highlight=False)
            raise typer.Exit(1)
        out_console.print(f"audit log {where}: {len(records)} records, chain intact", highlight=False)


def report_lines(report) -> list[str]:
    """What ``critmin audit verify --db`` prints for a :class:`critmin.server.integrity.Report`."""
    from critmin.server.integrity import MAX_FINDINGS

    if not report.chain_ok:
        return [f"database audit_log: INVALID at {report.chain_error}; rows not checked against a broken log"]
    lines = [f.text() for f in report.findings]
    if report.count > len(report.findings):
        lines.append(f"... and {report.count - MAX_FINDINGS} more")
    rows = sum(report.rows.values())
    if report.ok:
        lines.append(f"database: {report.records} audit records, chain intact; {rows} rows in "
                     f"{len(report.rows)} tables agree with the log")
    else:
        lines.append(f"database: {report.records} audit records, chain intact; {report.count} disagreement"
                     f"{'s' if report.count != 1 else ''} with the log in {rows} rows")
    return lines


def _verify_db(url: str, head: str | None):
    from critmin.errors import ConfigError, DataError

    try:
        import sqlalchemy as sa

        from critmin.server import db, integrity
    except ImportError as exc:
        raise ConfigError(f"--db needs the server extra: pip install 'critmin[server]' ({exc})") from None
    where = url.split("@")[-1]
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1] if ":///" in url else ""
        if path and path != ":memory:" and not Path(path).is_file():
            raise DataError(f"--db: no database file at {path}")
    try:
        engine = db.make_engine(url)
    except (sa.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        raise ConfigError(f"--db {where!r}: not a database URL ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]})") from None
    try:
        with db.read_snapshot(engine) as conn:
            return integrity.verify_database(conn, head)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise DataError(f"--db: cannot read the marketplace database {where}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
