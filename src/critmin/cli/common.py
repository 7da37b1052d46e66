"""What every ``critmin`` command shares: the consoles, the common options, error handling and table output.

The command modules (``main`` and each ``*_cmd``) import this one; it imports none of them.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from critmin.errors import CritminError

out_console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder with your own production.csv, trade.csv, "
                                                             "governance.csv, prices.csv (README: Bring your own data)")]
ImporterOpt = Annotated[str, typer.Option("--importer", help="USA, JPN, a bloc USA+JPN, a group (g7, quad, msp, "
                                                             "eu27, usa-jpn) or a comma list")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | csv | json | parquet | xlsx")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write to this file (default: standard output)")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Date YYYY-MM-DD on which export controls are judged "
                                                               "in force, suspended or ended (default: today)")]


def handled(fn):
    """Turn a CritminError into a clear message and exit code 2 (nothing written)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CritminError as exc:
            from rich.markup import escape

            # escape: a message may hold brackets ("critmin[server]") that rich would take for markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def emit(frame, fmt: str, out: Path | None, sources: list[dict], title: str = "") -> None:
    """Print ``frame`` as a terminal table or write it in ``fmt`` to ``out`` (standard output when None)."""
    from critmin.cli.tables import print_table
    from critmin.files import write_atomic
    from critmin.report.export import FORMATS, render_bytes

    if fmt not in FORMATS:
        raise CritminError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "table":
        if out is not None:
            data = frame.to_string(index=False).encode("utf-8") + b"\n"
            write_atomic(data, out)
        else:
            print_table(out_console, frame, title=title)
        return
    data = render_bytes(frame, fmt, sources)
    if out is None:
        if fmt in ("parquet", "xlsx"):
            raise CritminError(f"--format {fmt} needs --out FILE")
        sys.stdout.write(data.decode("utf-8"))
    else:
        write_atomic(data, out)
        err_console.print(f"wrote {out}")
