"""Helpers for benchmarks that run this code and another checkout side by side (each in its own subprocess
with ``PYTHONPATH=<checkout>/src``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def src_of(checkout: Path) -> Path:
    """The ``src`` folder of a critmin checkout (or the folder itself if it is one)."""
    for src in (checkout / "src", checkout):
        if (src / "critmin" / "__init__.py").is_file():
            return src.resolve()
    raise SystemExit(f"{checkout} holds no critmin source tree (src/critmin/__init__.py)")


def commit_of(src: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return out + (" + uncommitted changes in src" if dirty else "")
