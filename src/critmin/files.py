"""Writing files so that nothing is ever left half-written.

A neutral module: the layers that write outputs (report, geo, the command line) all use it, and it imports
nothing of critmin but the errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from critmin.errors import ConfigError


def write_atomic(data: bytes, out: str | Path) -> Path:
    """Write ``data`` to ``out`` via a temporary file in the same folder, then rename."""
    path = Path(out)
    if path.parent and not path.parent.exists():
        raise ConfigError(f"output folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
