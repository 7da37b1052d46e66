"""The Rapid Response brief on the bundled data: sections, tables, traceable numbers, offline HTML."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from critmin.cli.main import app
from critmin.report.brief import PENDING, build_brief, write_brief

SECTIONS = ["summary", "criticality", "stages", "scenarios", "stockpile", "finance", "delivery", "map",
            "monitoring", "sources"]


@pytest.fixture(scope="module")
def brief_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("brief") / "brief"
    res = CliRunner().invoke(app, ["brief", "--importer", "USA,JPN,USA+JPN", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_brief_writes_html_and_tables(brief_dir):
    html = (brief_dir / "index.html").read_text("utf-8")
    for s in SECTIONS:
        assert f'id="{s}"' in html
    for name in ("priorities", "criticality_matrix", "stage_vulnerabilities", "assess_geopolrisk",
                 "scenario_results", "risk"):
        assert (brief_dir / "tables" / f"{name}.csv").is_file()
    xl = pd.read_excel(brief_dir / "tables.xlsx", sheet_name=None)
    assert {"priorities", "Sources", "Assumptions"} <= set(xl)


def test_brief_is_self_contained(brief_dir):
    html = (brief_dir / "index.html").read_text("utf-8")
    # no external script, stylesheet, font or image references: every resource is inline
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    assert "@import" not in html and "fonts.googleapis" not in html
    assert '"topojsonURL": ""' in html or "topojsonURL" in html


def test_every_section_has_content_not_placeholders(brief_dir):
    html = (brief_dir / "index.html").read_text("utf-8")
    assert PENDING == {}
    assert 'class="pending"' not in html.split("<main>")[1].split('id="monitoring"')[0]  # all analyses present
    for name in ("stockpile_plan", "stockpile_comparison", "finance_ineligible", "pricing_floor",
                 "delivery_timeline"):
        assert (brief_dir / "tables" / f"{name}.csv").is_file(), name
    floor = pd.read_csv(brief_dir / "tables" / "pricing_floor.csv")
    assert (floor["quantity"] == "government cost, present value").any()


def test_risk_section_records_seed_and_draws(brief_dir):
    risk = pd.read_csv(brief_dir / "tables" / "risk.csv")
    assert set(risk["seed"]) == {20251030} and set(risk["n_draws"]) == {200_000}
    known = risk["var_99_t"].notna()   # a bloc with a member of unknown demand is unknown (NaN)
    assert (risk.loc[known, "cvar_99_t"] >= risk.loc[known, "var_99_t"] - 1e-9).all()
    assert risk["cvar_99_t"].notna().equals(known)
    html = (brief_dir / "index.html").read_text("utf-8")
    assert "seed 20251030" in html


def test_summary_numbers_trace_to_tables():
    b = build_brief("USA,JPN,USA+JPN", risk_draws=2000)
    stages = b.tables["stage_vulnerabilities"]
    prio = b.tables["priorities"]
    assert b.summary["urgent"], "expected at least one urgent vulnerability on the bundled data"
    for u in b.summary["urgent"]:
        row = stages[(stages.commodity == u["commodity"]) & (stages.stage == u["stage"])].iloc[0]
        assert f"{100 * row.top_share:.0f}%" in u["text"]
        assert f"{100 * row.allied_share_low:.0f}%" in u["text"]
        if pd.isna(row.allied_share):  # a large unallocated rest: the allied share is a range, said as one
            assert f"{100 * row.allied_share_high:.0f}%" in u["text"] and "not allocated" in u["text"]
        assert str(row.year) in u["text"]
    from critmin.report.brief import _parents

    parents = _parents()
    assert parents["dysprosium"] == "rare-earths"
    for imp, items in b.summary["priorities"].items():
        ranked = prio[(prio.importer == imp) & prio.priority].sort_values("rank")["commodity"].tolist()
        heads = [i.split(" (+ ")[0] for i in items]
        # every chip is a priority, in rank order of the group's best-ranked member, and a folded element
        # (e.g. dysprosium) is named inside its group's chip, never on its own
        assert set(heads) <= set(ranked)
        assert not set(heads) & {c for c, p in parents.items() if p in ranked}
        first = [parents.get(c, c) if parents.get(c, c) in ranked else c for c in ranked]
        assert heads == list(dict.fromkeys(first))[:len(heads)]


def test_brief_bad_data_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "trade.csv").write_text("commodity,exporter,importer,year,quantity,unit,value_usd\n"
                                        "nickel,CAN,USA,2022,5,t,-1\n")
    out = tmp_path / "brief"
    res = CliRunner().invoke(app, ["brief", "--data", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 2
    assert "trade.csv" in res.output and "line 2" in res.output and "value_usd" in res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".brief")]


def test_write_brief_replaces_existing_folder(tmp_path):
    b = build_brief("USA", risk_draws=2000)
    out = tmp_path / "b"
    write_brief(b, out)
    (out / "stale.txt").write_text("old")
    write_brief(b, out)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()


def test_groups_and_unmodelled_importers_are_named_not_dropped():
    """A group (usa-jpn) is shown by the supply-chain sections through its members; an importer the model
    has no consumer for (KOR) is named in a note instead of failing or vanishing."""
    from critmin.importers import parse_importers
    from critmin.report.brief import modelled_importers

    specs, note = modelled_importers(parse_importers("usa-jpn,KOR,USA"))
    assert specs == ["USA+JPN", "USA"]
    assert "KOR not shown there" in note
    specs, note = modelled_importers(parse_importers("g7"))
    assert specs == ["USA", "JPN", "USA+JPN"] and "G7" in note and "instead" in note
