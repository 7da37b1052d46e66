"""Shared fixtures: paths to the raw public data (when present) and small hand-checkable datasets."""

from __future__ import annotations

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
