"""Every computing command is a thin adapter over the public API: it checks its options, calls the
``critmin.<function>`` of the same name once (with the options it was given) and shows what comes back.

Each case wraps the API function with a spy that records the call and runs the real function, so the command's
output is checked to come from that call (the rows it shows are the Result's rows) and no second computation
hides behind it.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from typer.testing import CliRunner

import critmin.workflows
from critmin import api
from critmin.cli.main import app

runner = CliRunner()

CASES = [
    ("assess", ["assess", "--method", "hhi", "--importer", "JPN", "--format", "csv"],
     lambda a, k: a[0] == "hhi" and a[1] == "JPN"),
    ("priorities", ["priorities", "--importer", "USA", "--format", "csv"], lambda a, k: a[0] == "USA"),
    ("scenario", ["scenario", "run", "china-ga-ge-2023", "--importer", "USA", "--format", "csv"],
     lambda a, k: a[1] == "USA"),
    ("risk", ["risk", "--importer", "USA", "--commodity", "gallium", "--draws", "200", "--seed", "3", "--format",
              "csv"], lambda a, k: a == ("USA", ["gallium"]) and k["draws"] == 200 and k["seed"] == 3),
    ("stockpile", ["stockpile", "plan", "--draws", "40", "--seed", "2", "--format", "csv"],
     lambda a, k: k["draws"] == 40 and k["seed"] == 2),
    ("policy_measure", ["policy", "floor", "--preset", "dod_mp_ndpr_floor", "--paths", "200", "--format", "csv"],
     lambda a, k: a == ("floor",) and k["paths"] == 200),
    ("permitting", ["policy", "permitting", "--project", "US-TALON-TAMARACK", "--track", "fast41", "--paths", "200",
                    "--format", "csv"], lambda a, k: a == ("US-TALON-TAMARACK",) and k["track"] == "fast41"),
]


@pytest.mark.parametrize(("name", "argv", "check"), CASES, ids=[c[0] for c in CASES])
def test_command_calls_the_api_once(monkeypatch, name, argv, check):
    real = getattr(api, name)
    calls = []

    def spy(*args, **kwargs):
        res = real(*args, **kwargs)
        calls.append((args, kwargs, res))
        return res

    monkeypatch.setattr(api, name, spy)
    out = runner.invoke(app, argv)
    assert out.exit_code == 0, out.output
    assert len(calls) == 1, f"critmin {' '.join(argv[:2])} called critmin.{name} {len(calls)} times"
    args, kwargs, res = calls[0]
    assert check(args, kwargs), (args, kwargs)
    shown = pd.read_csv(io.StringIO(out.stdout))
    main = critmin.workflows.tidy(res) if name == "assess" else res.to_frame()
    assert len(shown) == len(main) > 0, (len(shown), len(main))   # the CSV printed is the Result's main table
