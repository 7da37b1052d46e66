"""What every ``critmin`` command shares: the consoles, the common options, error handling and the one output writer.

The command modules (``main`` and each ``*_cmd``) import this one; it imports none of them.

Every mistake ends in one line on standard error and exit code 2: a bad option value or a missing option
(:class:`CritminGroup`), a ``CritminError`` raised by the work (:func:`handled`, which adds "did you mean …?"
where a name is close to a known one), and a file that cannot be written (checked before the work by
:class:`Output`).
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from critmin.errors import ConfigError, CritminError

out_console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder with your own production.csv, trade.csv, "
                                                             "governance.csv, prices.csv (README: Bring your own data)")]
ImporterOpt = Annotated[str, typer.Option("--importer", help="USA, JPN, a bloc USA+JPN, a group (g7, quad, msp, "
                                                             "eu27, usa-jpn) or a comma list")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | csv | json | parquet | xlsx | md (default: the "
                                                         "--out file's extension, else table)")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write to this file; the format follows --format or the "
                                                           "extension (.csv .json .parquet .xlsx .md)")]
ColumnsOpt = Annotated[str | None, typer.Option("--columns", help="Only these columns, comma list (see the header "
                                                                  "of the full output)")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Date YYYY-MM-DD on which export controls are judged "
                                                               "in force, suspended or ended (default: today)")]


# --- one line per mistake -------------------------------------------------------------------------------------------

def error_line(message: str) -> None:
    """Print ``error: message`` on one line of standard error (no wrapping, no markup)."""
    text = " ".join(str(message).split())
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


class CritminGroup(TyperGroup):
    """The root command group: a bad option, value or command is one line on standard error, exit code 2.

    (Click's own layout is a usage block, a hint and a framed message: several lines for one mistake.)
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from typer import exceptions as tx
        from typer._click import exceptions as cx

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except cx.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":   # the help was printed: a group needs a command
                sys.exit(exc.exit_code)
            error_line(_usage_message(exc))
            sys.exit(exc.exit_code)
        except tx.Abort:
            error_line("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _usage_message(exc) -> str:
    msg = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and type(exc).__name__ != "FileError":
        msg = f"{msg} (see {ctx.command_path} --help)"
    return msg


def handled(fn):
    """Turn a CritminError into one clear line and exit code 2 (nothing written), with "did you mean …?" where a
    name is close to a known one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CritminError as exc:
            error_line(_suggest(str(exc), kwargs))
            raise typer.Exit(2) from None

    return wrapper


_UNKNOWN_IMPORTER = re.compile(r"unknown importer '(?P<word>[^']+)'")


def _suggest(message: str, kwargs: dict) -> str:
    """Add 'did you mean …?' to a message about an unknown name (importers: ISO3 codes and groups)."""
    from critmin import suggest

    m = _UNKNOWN_IMPORTER.search(message)
    if m:
        from critmin.importers import groups
        from critmin.reference.countries import valid_codes

        try:
            names = list(groups(kwargs.get("groups")))
        except CritminError:
            names = list(groups())
        return suggest.enrich(message, candidates=[*names, *sorted(valid_codes())], word=m.group("word"))
    return suggest.enrich(message)


# --- checks of option values, before the work ----------------------------------------------------------------------

def check_choice(value: str, choices, option: str, kind: str | None = None) -> str:
    """``value`` if it is one of ``choices`` (case-insensitive), else a ConfigError with 'did you mean …?'."""
    from critmin import suggest

    names = [str(c) for c in choices]
    for c in names:
        if str(value).strip().lower() == c.lower():
            return c
    raise ConfigError(suggest.unknown(kind or option.lstrip("-"), str(value), names, option))


def check_list(text: str | None, choices, option: str, kind: str | None = None) -> list[str] | None:
    """A comma list whose every item is one of ``choices`` (None when empty)."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    return [check_choice(t, choices, option, kind) for t in items] or None


def check_importers(spec: str, option: str = "--importer", groups: Path | None = None) -> str:
    """Parse ``spec`` now (one line naming ``option`` and the closest importer if it is wrong)."""
    from critmin.importers import parse_importers

    try:
        parse_importers(spec, groups)
    except CritminError as exc:
        msg = str(exc)
        if "groups file" in msg:
            raise
        raise ConfigError(_suggest(f"{option} {spec!r}: {msg}", {"groups": groups})) from None
    return spec


def check_range(value, option: str, lo=None, hi=None, *, what: str = "") -> None:
    """``lo ≤ value ≤ hi`` (either bound optional), else one line naming ``option``."""
    if value is None:
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = (f"in {lo}..{hi}" if lo is not None and hi is not None else
                  f"≥ {lo}" if lo is not None else f"≤ {hi}")
        raise ConfigError(f"{option} must be {bounds}{' ' + what if what else ''} (got {value})")


def check_file(path: Path | None, option: str) -> Path | None:
    """An input file that exists and is a file (one line naming ``option`` otherwise)."""
    if path is None:
        return None
    if not path.exists():
        raise ConfigError(f"{option} {str(path)!r}: no such file")
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder; give a file")
    return path


def check_folder(path: Path | None, option: str) -> Path | None:
    """An input folder that exists (one line naming ``option`` otherwise)."""
    if path is None:
        return None
    if not path.exists():
        raise ConfigError(f"{option} {str(path)!r}: no such folder")
    if not path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a file; give a folder")
    return path


def check_listen(host: str, port: int) -> None:
    """``--host`` and ``--port`` of a command that serves: a port in 1..65535 and an IP address or a host name
    (RFC 1123 labels; nothing is resolved here)."""
    import ipaddress

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {port}")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not (host and len(host) <= 253 and all(
            re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels)):
        raise ConfigError(f"--host {host!r}: expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name")


def require_extra(extra: str, modules, what: str) -> None:
    """The modules of an optional extra are installed: one line saying how to get them otherwise (checked before
    anything starts, so a missing module is never a traceback half-way)."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{what} needs the {extra} extra: pip install 'critmin[{extra}]' (missing: "
                          f"{', '.join(missing)})")


def bind(host: str, port: int):
    """The listening socket of a command that serves (a port in use is one line naming --port, exit code 2,
    before anything else starts); hand it to uvicorn with ``Server.run(sockets=[sock])``."""
    import os
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve it ({exc.strerror or exc})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # Windows' SO_REUSEADDR would let a second server take the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def commodities_of_networks() -> list[str]:
    """Commodities the supply-chain network models (risk, stockpile, invest)."""
    from critmin.supplychain.network import CHAINS

    return list(CHAINS)


# --- the one output writer ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Output:
    """Where and how a command writes its table: checked before the work, used by every command.

    ``fmt`` is resolved (``--format``, else the ``--out`` extension, else ``table``); ``out`` is checked to be
    writable; ``columns`` is the ``--columns`` selection.
    """

    fmt: str
    out: Path | None = None
    columns: tuple[str, ...] | None = None

    @classmethod
    def check(cls, fmt: str | None, out: Path | None, columns: str | None = None) -> Output:
        from critmin.files import check_writable
        from critmin.report.export import output_format

        if out is not None:
            check_writable(out, option="--out")
        resolved = output_format(fmt, out)
        cols = tuple(c.strip() for c in columns.split(",") if c.strip()) if columns else None
        if columns is not None and not cols:
            raise ConfigError("--columns: give column names, comma-separated")
        return cls(resolved, out, cols)

    def beside(self, name: str) -> Output:
        """The output of a further table beside the main file: ``plan.csv`` → ``plan_frontier.csv``."""
        if self.out is None:
            return Output(self.fmt)
        return Output(self.fmt, self.out.with_name(f"{self.out.stem}_{name}{self.out.suffix}"))

    def select(self, frame):
        """``frame`` with only the ``--columns`` (in that order); an unknown column is one line."""
        if not self.columns:
            return frame
        from critmin import suggest

        known = [str(c) for c in frame.columns]
        for c in self.columns:
            if c not in known:
                raise ConfigError(suggest.unknown("column", c, known, "--columns"))
        return frame[list(self.columns)]

    def write(self, frame, sources: list[dict] | None = None, title: str = "", *, select: bool = True) -> None:
        """Print ``frame`` as a terminal table, or write it to ``out`` (standard output for text formats)."""
        from critmin.cli.tables import print_table
        from critmin.files import write_atomic
        from critmin.report.export import render_bytes

        if select:
            frame = self.select(frame)
        if self.fmt == "table":
            print_table(out_console, frame, title=title)
            return
        data = render_bytes(frame, self.fmt, sources or [])
        if self.out is None:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        else:
            write_atomic(data, self.out)
            err_console.print(f"wrote {escape(str(self.out))}", highlight=False)


def emit(frame, fmt: str, out: Path | None, sources: list[dict], title: str = "", columns: str | None = None) -> None:
    """Print ``frame`` as a terminal table or write it in ``fmt`` to ``out`` (see :class:`Output`)."""
    Output.check(fmt, out, columns).write(frame, sources, title)
