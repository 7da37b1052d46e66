"""Writing files so that nothing is ever left half-written, with the permissions any new file would get.

A neutral module: the layers that write outputs (report, geo, the command line) all use it, and it imports
nothing of critmin but the errors.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from critmin.errors import ConfigError

__all__ = ["check_writable", "new_file_mode", "write_atomic"]


def _umask() -> int:
    """The process umask, read without changing it where the system tells it (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Mode of a file created now by ``open(path, "w")``: ``0o666`` less the umask (usually ``0o644``)."""
    return 0o666 & ~_umask()


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def check_writable(out: str | Path, *, option: str = "--out", folder: bool = False) -> Path:
    """Check, before any work, that ``out`` can be written: one clear :class:`ConfigError` otherwise.

    ``out`` is a file to create or replace (``folder=False``) or a folder to create or replace (the brief's
    output). The check creates and removes a temporary file beside it, so a read-only place, a missing
    folder or a folder where a file should go is reported at once, naming ``option``.
    """
    path = Path(out)
    if str(path) in ("", "."):
        raise ConfigError(f"{option}: give a file name, not {str(out)!r}")
    if folder:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {str(path)!r} is a file, not a folder")
    elif path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder; give a file name (e.g. {str(path / 'out.csv')!r})")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ConfigError(f"{option} {str(path)!r}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"{option} {str(path)!r}: {str(parent)!r} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{option} {str(path)!r}: cannot write in folder {str(parent)!r} ({_reason(exc)})") from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)
    if path.is_file() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {str(path)!r}: the file exists and is read-only")
    return path


def write_atomic(data: bytes, out: str | Path) -> Path:
    """Write ``data`` to ``out`` via a temporary file in the same folder, then rename.

    The file gets the mode a new file would get (the umask's), or keeps the mode of the file it replaces.
    Any failure is one :class:`ConfigError` naming the file; nothing is left behind.
    """
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ConfigError(f"output folder {str(parent)!r} does not exist")
    if path.is_dir():
        raise ConfigError(f"cannot write {str(path)!r}: it is a folder")
    try:
        mode = path.stat().st_mode & 0o7777 if path.is_file() else new_file_mode()
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r} ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r} ({_reason(exc)})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
