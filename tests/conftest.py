"""Shared fixtures: paths to the raw public data (when present) and small hand-checkable datasets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "data"
REGRESSION = Path(__file__).resolve().parent / "regression"


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    if not RAW.is_dir():
        pytest.skip("the raw public data folder ../shared/data is not beside the repository")
    return RAW


@pytest.fixture()
def write_csv(tmp_path):
    """Write a CSV text into tmp_path/<name> and return the folder."""

    def _write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
        return tmp_path

    return _write


#: Debian's Chromium, driven by Playwright (which downloads no browser of its own).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a closed network: without the background-networking ones Chromium keeps trying Google hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def need_browser() -> None:
    """Skip when Chromium or Playwright is absent, or fail when CI requires the browser tests."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian chromium (/usr/bin/chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright")
    if missing:
        if os.environ.get("CRITMIN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but missing: {', '.join(missing)}")
        pytest.skip(f"missing {', '.join(missing)}")
