"""``critmin audit verify FILE``: check the hash chain of a marketplace audit log (JSON lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    # Imported here, not at module level: critmin.cli.main imports this module to register it.
    from critmin.cli.main import handled, out_console

    audit_app = typer.Typer(help="The marketplace audit log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    @handled
    def verify_command(
        file: Annotated[Path, typer.Argument(help="JSON-lines file of audit records")],
        head: Annotated[str | None, typer.Option("--head", help="Expected hash of the last record (detects "
                                                                "truncation)")] = None,
    ) -> None:
        """Exit 0 when the chain is intact, 1 with the first bad record and why, 2 on unreadable input."""
        from critmin.errors import DataError
        from critmin.market.audit import loads, verify

        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read audit log: {exc}", file=str(file)) from None
        records = loads(text, source=str(file))
        ok, index, reason = verify(records, expected_head=head)
        if not ok:
            out_console.print(f"audit log {file}: INVALID at record {index}: {reason}", highlight=False)
            raise typer.Exit(1)
        out_console.print(f"audit log {file}: {len(records)} records, chain intact", highlight=False)
