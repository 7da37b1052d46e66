"""Shared fixtures: paths to the raw public data (when present) and small hand-checkable datasets.

Tests that need the raw public data folder (``../shared/data``) skip without it, except when
``CRITMIN_REQUIRE_RAW=1`` (set by CI): then a missing folder stops the run before any test, so the dataset
rebuild and the source parsers can never pass by being skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "data"
REGRESSION = Path(__file__).resolve().parent / "regression"


def require_raw() -> bool:
    """True when the raw public data is required (``CRITMIN_REQUIRE_RAW=1``): missing data fails, never skips."""
    return os.environ.get("CRITMIN_REQUIRE_RAW") == "1"


def pytest_configure(config) -> None:
    # A session-wide check: some test modules skip on their own (module-level skipif), not via raw_dir.
    if require_raw() and not RAW.is_dir():
        raise pytest.UsageError("CRITMIN_REQUIRE_RAW=1 but the raw public data folder ../shared/data is not "
                                "beside the repository: the dataset-rebuild and source tests cannot run")


def need_raw(subfolder: str | None = None) -> Path:
    """The raw data folder (or one source's subfolder of it): skip when absent, fail when it is required."""
    path = RAW / subfolder if subfolder else RAW
    if not path.is_dir():
        what = f"the raw public data folder ../shared/data{'/' + subfolder if subfolder else ''}"
        if require_raw():
            pytest.fail(f"CRITMIN_REQUIRE_RAW=1 but {what} is missing")
        pytest.skip(f"{what} is not beside the repository")
    return path


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    return need_raw()


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


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (which downloads nothing); one per test module."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        br = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield br
        br.close()
