"""CRITMIN_REQUIRE_RAW=1 turns a missing raw data folder into a failure: the suite's own conftest, run on a
copy of the tests folder with no ``shared/data`` beside it, in a child pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

NEEDS_RAW = '''
import pytest

from conftest import need_raw


def test_uses_fixture(raw_dir):
    assert raw_dir.is_dir()


@pytest.mark.skipif(True, reason="a module that skips on its own, without the raw_dir fixture")
def test_skips_on_its_own():
    pass


def test_uses_subfolder():
    need_raw("usgs-mcs-2026")
'''


def _run(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    repo = tmp_path / "repo"  # the conftest looks for repo/../shared/data, absent unless a test makes it
    (repo / "tests").mkdir(parents=True)
    shutil.copy(TESTS / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "test_needs_raw.py").write_text(NEEDS_RAW, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CRITMIN_REQUIRE_RAW"}
    if require is not None:
        env["CRITMIN_REQUIRE_RAW"] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_missing_raw_skips_by_default(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 skipped" in proc.stdout, proc.stdout


@pytest.mark.parametrize("value", ["0", ""])
def test_only_1_requires(tmp_path, value):
    assert _run(tmp_path, value).returncode == 0


def test_missing_raw_fails_when_required(tmp_path):
    proc = _run(tmp_path, "1")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "CRITMIN_REQUIRE_RAW=1" in proc.stderr and "shared/data" in proc.stderr, proc.stderr
    assert "passed" not in proc.stdout and "skipped" not in proc.stdout


def test_missing_source_subfolder_fails_when_required(tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)  # the folder is there, the USGS files are not
    proc = _run(tmp_path, "1")
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout + proc.stderr
    assert "1 failed, 1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "CRITMIN_REQUIRE_RAW=1 but the raw public data folder ../shared/data/usgs-mcs-2026 is missing" in proc.stdout
