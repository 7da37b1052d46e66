"""The one output writer and the clear-mistake rules, on the cases that were broken.

- the format follows ``--format`` or the ``--out`` extension (``priorities --out p.xlsx`` is a workbook; a plan
  written with ``--out plan.csv`` is what ``stockpile simulate --plan`` reads);
- an ``--out`` that cannot be written is one line, exit 2, before the work; files get the umask's mode;
- ``--workers`` without the scale extra is one line; "did you mean …?" for names; numbers without float noise;
  wide tables keep whole headers; unselected projects have no rank; ``data info --data`` and ``policy … --data``.
"""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from conftest import REGRESSION
from typer.testing import CliRunner

from critmin.cli.main import app

R = str(REGRESSION / "geopolrisk_usa_2022")


def run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def one_error_line(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


# --- format from --format or the extension --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".xlsx", ".json", ".parquet", ".md", ".csv"])
def test_the_out_extension_decides_the_format(tmp_path, suffix):
    out = tmp_path / f"p{suffix}"
    res = run("priorities", "--importer", "USA", "--data", R, "--out", out)
    assert res.exit_code == 0, res.output
    if suffix == ".xlsx":
        book = pd.read_excel(out, sheet_name=None)
        assert set(book) == {"data", "Sources"} and "commodity" in book["data"].columns
    elif suffix == ".json":
        doc = json.loads(out.read_text("utf-8"))
        assert doc["rows"] and doc["sources"]
    elif suffix == ".parquet":
        assert "commodity" in pd.read_parquet(out).columns
    elif suffix == ".md":
        first = out.read_text("utf-8").splitlines()[0]
        assert first.startswith("| ") and "commodity" in first
    else:
        assert "commodity" in pd.read_csv(out).columns


def test_a_format_contradicting_the_extension_is_one_line(tmp_path):
    line = one_error_line(run("data", "show", "production", "--format", "csv", "--out", tmp_path / "p.xlsx"))
    assert "--format csv" in line and "p.xlsx" in line
    line = one_error_line(run("data", "show", "production", "--out", tmp_path / "p.docx"))
    assert "--out" in line and ".csv" in line
    assert list(tmp_path.iterdir()) == []


def test_markdown_and_columns_to_standard_output():
    res = run("data", "show", "production", "-w", "commodity=gallium", "--columns", "country,year,value",
              "--format", "md")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "| country | year | value |" and lines[1] == "|---|---:|---:|"


def test_stockpile_plan_csv_is_what_simulate_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("stockpile", "plan", "--commodity", "gallium", "--draws", "20", "--out", "plan.csv")
    assert res.exit_code == 0, res.output
    assert {"commodity", "holder", "stock_t"} <= set(pd.read_csv("plan.csv").columns)
    res = run("stockpile", "simulate", "--plan", "plan.csv", "--draws", "20", "--format", "csv")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("commodity,holder,month")


# --- --out checked before the work; file modes ----------------------------------------------------------------------

def _read_only_folder(tmp_path):
    if os.geteuid() == 0:   # root writes anywhere a mode allows: a kernel folder refuses it
        if not os.path.isdir("/sys"):
            pytest.skip("no read-only folder for root")
        return "/sys"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


@pytest.mark.parametrize("where", ["folder", "read-only", "missing"])
def test_an_unwritable_out_stops_before_the_work(tmp_path, monkeypatch, where):
    import critmin.report.brief
    import critmin.workflows

    def no_work(*a, **k):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(critmin.workflows, "priorities", no_work)
    monkeypatch.setattr(critmin.report.brief, "build_brief", no_work)
    (tmp_path / "a-folder").mkdir()
    target = {"folder": tmp_path / "a-folder", "read-only": _read_only_folder(tmp_path),
              "missing": tmp_path / "no-such-folder"}[where]
    file_out = target if where == "folder" else f"{target}/p.csv"
    line = one_error_line(run("priorities", "--out", file_out))
    assert "--out" in line
    brief_out = tmp_path / "a-file" if where == "folder" else f"{target}/brief"
    if where == "folder":
        (tmp_path / "a-file").write_text("x")
    line = one_error_line(run("brief", "--out", brief_out))
    assert "--out" in line


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_mode_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "t.csv"
        assert run("data", "show", "governance", "--limit", "3", "--out", out).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
        out.chmod(0o640)   # a file replaced keeps its mode
        assert run("data", "show", "governance", "--out", out).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_workers_without_the_scale_extra_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("distributed", "dask") else real(name, *a))
    line = one_error_line(run("risk", "--workers", "2", "--draws", "20"))
    assert "--workers" in line and "pip install 'critmin[scale]'" in line


# --- did you mean ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (["risk", "--commodity", "lithum"], "did you mean 'lithium'?"),
    (["stockpile", "plan", "--commodity", "coballt"], "did you mean 'cobalt'?"),
    (["assess", "--importer", "USX"], "did you mean 'USA'"),
    (["assess", "--importer", "USA+JPX"], "'JPN'"),
    (["assess", "--importer", "qaud"], "did you mean 'quad'?"),
    (["priorities", "--allies", "g8"], "did you mean 'g7'?"),
    (["scenario", "run", "china-ga-ge-202"], "did you mean 'china-ga-ge-2023'?"),
    (["scenario", "show", "drc-cobalt"], "did you mean 'drc-cobalt-2025'?"),
    (["map", "--stage", "refinin"], "did you mean 'refine'?"),
    (["assess", "--stage", "refinin"], "did you mean 'refine'?"),
    (["policy", "floor", "--preset", "dod_mp_floor"], "did you mean 'dod_mp_ndpr_floor'?"),
    (["policy", "permitting", "--project", "US-TALON-TAMARAK"], "did you mean 'US-TALON-TAMARACK'?"),
    (["data", "show", "productoin"], "did you mean 'production'?"),
    (["data", "show", "production", "--columns", "contry"], "did you mean 'country'?"),
    (["data", "show", "production", "-w", "contry=CHN"], "did you mean 'country'?"),
    (["asses"], "Did you mean 'assess'?"),
    (["risk", "--draws", "10", "--importre", "USA"], "--importer"),
])
def test_did_you_mean(args, expected):
    line = one_error_line(run(*args))
    assert expected in line


def test_did_you_mean_a_group_of_your_own(tmp_path):
    g = tmp_path / "g.yml"
    g.write_text("pacific:\n  members: [USA, JPN, AUS]\n", "utf-8")
    line = one_error_line(run("assess", "--groups", g, "--importer", "pacifc"))
    assert "did you mean 'pacific'?" in line


def test_a_scenario_name_typo_lists_the_presets():
    from critmin.supplychain.presets import list_presets

    line = one_error_line(run("scenario", "run", "china-ree-2025"))
    assert "No such file" not in line and all(p in line for p in list_presets())


# --- tables: numbers and headers ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    (305199999.9999999, "305,200,000"), (0.1 + 0.2, "0.3"), (2024, "2024"), (123456, "123,456"),
    (float("nan"), "–"), (14.32, "14.32"), (0.0156789, "0.01568"), (-2500.4, "-2,500"), (True, "True"),
])
def test_numbers_as_people_read_them(value, text):
    from critmin.report.export import human

    assert human(value) == text


def test_totals_carry_units():
    from critmin.cli.optimize_cmd import _quantity

    assert _quantity("public_cost_usd", 305200000.00000006) == "USD 305.2 M"
    assert _quantity("objective_usd", 2556190027.454307) == "USD 2.56 bn"
    assert _quantity("expected_shortfall_t", 5202.527322644195) == "5,203 t"
    assert _quantity("shortfall_avoided_t_per_musd", 17.046288737366297) == "17.05 t per USD M"


def test_wide_tables_keep_every_header_whole():
    res = run("assess", "--method", "hhi", "--importer", "USA")
    assert res.exit_code == 0, res.output
    headers = " ".join(ln for ln in res.stdout.splitlines() if ln.startswith("┃"))
    for name in ("allied_share_g7", "allied_share_msp", "allied_share_quad", "allied_share_usa+jpn", "hhi",
                 "top3_share", "top_supplier_share", "own_share"):
        assert f" {name} " in headers, name
    assert "…" not in headers


def test_unselected_projects_have_no_rank():
    res = run("invest", "select", "--budgets", "grant=500,loan=3000", "--commodity", "rare-earths", "--months",
              "60", "--draws", "20", "--format", "csv")
    assert res.exit_code == 0, res.output
    import io

    p = pd.read_csv(io.StringIO(res.stdout))
    assert p.loc[~p["selected"], "rank"].isna().all()
    assert (p.loc[p["selected"], "rank"] >= 1).all()


# --- --data where it was ignored or missing -------------------------------------------------------------------------

def test_data_info_lists_your_tables():
    res = run("data", "info", "--data", R)
    assert res.exit_code == 0, res.output
    assert "user:production.csv" in res.output and "your production.csv" in res.output


def test_policy_measures_read_your_prices(tmp_path):
    import critmin

    p = critmin.load("prices")
    p = p[(p["commodity"] == "copper") & (p["series"] == "COPPER")].tail(120)
    p[["commodity", "series", "period", "frequency", "value", "unit"]].to_csv(tmp_path / "prices.csv", index=False)
    res = run("policy", "floor", "--commodity", "copper", "--floor", "9000", "--volume", "1000", "--paths", "100",
              "--data", tmp_path, "--format", "json")
    assert res.exit_code == 0, res.output
    assert "user:prices.csv" in {s["id"] for s in json.loads(res.stdout)["sources"]}
