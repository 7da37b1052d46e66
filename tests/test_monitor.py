"""critmin monitor: alert rules on hand-made frames, validation of the new files, end-to-end runs.

Every number here is a TEST FIXTURE (synthetic, chosen so the expected alerts are obvious), not
data that critmin ships or a claim about real trade or prices.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from critmin.errors import DataError
from critmin.monitor import rules
from critmin.monitor.workflow import load_thresholds, run_monitor
from critmin.reference.catalog import Catalog, bundled_dir

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data"
runner = CliRunner()


# --------------------------------------------------------------------------- fixtures
def _trade(rows: list[tuple], flow: str = "import") -> pd.DataFrame:
    """(commodity, stage, hts4, partner, period, value in USD million) → us_trade rows."""
    out = []
    for commodity, stage, hts4, partner, period, musd in rows:
        _year, months = rules.trade_period(period)
        out.append({"flow": flow, "hts4": hts4, "commodity": commodity, "stage": stage, "partner": partner,
                    "period": period, "months": months, "value_usd": musd * 1e6, "quantity": np.nan,
                    "quantity_unit": "t", "source": "test"})
    return pd.DataFrame(out)


def _ree(period: str, shares: dict[str, float], total: float = 100.0) -> list[tuple]:
    return [("rare-earths", "refine", "2846", p, period, total * s / 100) for p, s in shares.items()]


BASE_SHARES = {"CHN": 70, "JPN": 20, "FRA": 5, "DEU": 5}
# The full year differs from Jan-Apr on purpose: a YTD period must be compared with the same months.
BASELINE_TRADE = _trade(_ree("2025-YTD04", BASE_SHARES) + _ree("2025", {"CHN": 50, "JPN": 30, "FRA": 10, "DEU": 10})
                        + _ree("2024", BASE_SHARES))


def _monthly_prices(n: int = 73, step: float = 0.01) -> pd.DataFrame:
    """A monthly series whose log-changes alternate +step/-step (mean 0, σ ≈ step)."""
    periods = pd.period_range("2019-12", periods=n, freq="M").strftime("%Y-%m")
    logs = np.cumsum([0.0] + [step if i % 2 == 0 else -step for i in range(n - 1)])
    return pd.DataFrame({"commodity": "copper", "series": "COPPER", "period": periods, "frequency": "monthly",
                         "value": 9000 * np.exp(logs), "unit": "USD/t", "source": "test"})


# --------------------------------------------------------------------------- rule 1
def test_share_jump_of_15pp_fires_and_5pp_does_not():
    new = _trade(_ree("2026-YTD04", {"CHN": 85, "JPN": 15}, total=120))
    alerts = rules.share_jumps(BASELINE_TRADE, new, share_jump_pp=10)
    assert list(alerts.columns) == rules.ALERT_COLUMNS
    assert alerts["partner_or_country"].tolist() == ["CHN"]       # JPN, FRA, DEU moved 5 pp only
    a = alerts.iloc[0]
    assert a["baseline"] == pytest.approx(70) and a["new"] == pytest.approx(85)
    assert a["severity"] == "medium" and a["threshold"] == 10
    assert "2025-YTD04" in a["message"] and "70.0%" in a["message"] and "85.0%" in a["message"]
    assert "+15.0 pp" in a["message"] and "USD 102.0 M of USD 120.0 M" in a["message"]


def test_share_jump_full_year_and_fallback():
    # A full year is compared with the previous full year: CHN 50 % -> 75 % = +25 pp (high).
    annual = rules.share_jumps(BASELINE_TRADE, _trade(_ree("2026", {"CHN": 75, "JPN": 25})))
    chn = annual.set_index("partner_or_country").loc["CHN"]
    assert chn["severity"] == "high" and chn["baseline"] == pytest.approx(50)
    # Jan-May has no Jan-May baseline: compared with full year 2025, and the message says so.
    notes: list[str] = []
    may = rules.share_jumps(BASELINE_TRADE, _trade(_ree("2026-YTD05", {"CHN": 62, "JPN": 38})), notes=notes)
    assert "vs 2025)" in may["metric"].iloc[0] and "compared with the full year" in may["message"].iloc[0]


def test_share_jump_ignores_tiny_flows_and_unknown_partners():
    notes: list[str] = []
    tiny = _trade(_ree("2026-YTD04", {"CHN": 100}, total=0.5))
    assert rules.share_jumps(BASELINE_TRADE, tiny, notes=notes).empty
    assert "below the minimum" in notes[0]
    # A partner outside the baseline's partner set does not dilute the shares.
    same = _trade([*_ree("2026-YTD04", BASE_SHARES), ("rare-earths", "refine", "2846", "ARG", "2026-YTD04", 400.0)])
    assert rules.share_jumps(BASELINE_TRADE, same).empty


def test_comparable_period():
    periods = ["2024", "2025", "2024-YTD04", "2025-YTD04", "2026-YTD04"]
    assert rules.comparable_period("2026-YTD04", periods) == ("2025-YTD04", True)
    assert rules.comparable_period("2026", periods) == ("2025", True)
    assert rules.comparable_period("2026-YTD07", periods) == ("2025", False)
    assert rules.comparable_period("2024", periods) == (None, False)


# --------------------------------------------------------------------------- rule 2
def test_price_spike_4_sigma_fires_1_sigma_does_not():
    base = _monthly_prices()
    last = float(base["value"].iloc[-1])
    new = pd.DataFrame({"commodity": ["copper", "copper"], "series": ["COPPER", "COPPER"],
                        "period": ["2026-01", "2026-02"], "frequency": "monthly",
                        "value": [last * math.exp(0.04), last * math.exp(0.02)], "unit": "USD/t"})
    # 2026-01 is one step after the last baseline month (2025-12): z = 0.04 / σ ≈ +4.0 -> fires.
    # 2026-02 is two steps after: z = 0.02 / (σ·√2) ≈ +1.4 -> no alert.
    alerts = rules.price_spikes(base, new, k_sigma=3)
    assert alerts["period"].tolist() == ["2026-01"]
    a = alerts.iloc[0]
    assert a["baseline"] == pytest.approx(last) and a["new"] == pytest.approx(last * math.exp(0.04))
    assert a["severity"] == "medium" and "z = +4.0 σ" in a["metric"]
    assert "last 60 monthly log-changes to 2025-12" in a["message"]
    one_sigma = new.iloc[[0]].assign(value=last * math.exp(0.01))
    assert rules.price_spikes(base, one_sigma, k_sigma=3).empty


def test_price_spike_never_mixes_units_and_falls_are_low():
    base = _monthly_prices()
    last = float(base["value"].iloc[-1])
    notes: list[str] = []
    kg = pd.DataFrame({"commodity": ["copper"], "series": ["COPPER"], "period": ["2026-01"],
                       "frequency": ["monthly"], "value": [last / 1000 * 2], "unit": ["USD/kg"]})
    assert rules.price_spikes(base, kg, notes=notes).empty
    assert "units are never mixed" in notes[0]
    # Series not given ("user"): the one baseline series of that commodity/frequency/unit is used.
    fall = kg.assign(unit="USD/t", series="user", value=last * math.exp(-0.06))
    alerts = rules.price_spikes(base, fall)
    assert alerts["severity"].tolist() == ["low"]


def test_price_spike_annual_uses_every_year():
    years = [str(y) for y in range(2000, 2025)]
    logs = np.cumsum([0.0] + [0.1 if i % 2 == 0 else -0.1 for i in range(len(years) - 1)])
    base = pd.DataFrame({"commodity": "lithium", "series": "mcs", "period": years, "frequency": "annual",
                         "value": 10 * np.exp(logs), "unit": "USD/kg"})
    new = pd.DataFrame({"commodity": ["lithium"], "series": ["mcs"], "period": ["2025"], "frequency": ["annual"],
                        "value": [float(base["value"].iloc[-1]) * math.exp(0.6)], "unit": ["USD/kg"]})
    a = rules.price_spikes(base, new).iloc[0]
    assert a["severity"] == "high" and "24 annual log-changes" in a["message"]


# --------------------------------------------------------------------------- rule 3
def _events(rows: list[dict]) -> pd.DataFrame:
    cols = ["event_id", "country_iso3", "commodity", "measure", "targets", "announced", "effective", "stage"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


def test_new_control_on_priority_fires_non_priority_and_known_do_not():
    baseline = _events([{"event_id": "CHN-OLD", "country_iso3": "CHN", "commodity": "graphite", "measure": "ban"}])
    new = _events([
        {"event_id": "CHN-OLD", "country_iso3": "CHN", "commodity": "graphite", "measure": "ban"},
        {"event_id": "CHN-T1", "country_iso3": "CHN", "commodity": "graphite", "measure": "ban", "targets": "all",
         "announced": "2026-05-20", "effective": "2026-06-01", "stage": "processed"},
        {"event_id": "CHN-T2", "country_iso3": "CHN", "commodity": "gallium", "measure": "ban",
         "effective": "2026-06-01"},
        {"event_id": "CHN-T3", "country_iso3": "CHN", "commodity": "dysprosium;terbium", "measure": "licensing",
         "targets": "all", "effective": "2026-07-01"},
        {"event_id": "IDN-T4", "country_iso3": "IDN", "commodity": "critical minerals", "measure": "quota",
         "effective": "2026"},
    ])
    notes: list[str] = []
    alerts = rules.new_controls(baseline, new, {"graphite", "rare-earths"}, parents={"dysprosium": "rare-earths",
                                                                                    "terbium": "rare-earths"},
                                notes=notes)
    by = alerts.set_index("message", drop=False)
    got = {m.split(" ")[3]: r for m, r in by.iterrows()}
    assert set(got) == {"CHN-T1", "CHN-T3", "IDN-T4"}          # gallium not priority; CHN-OLD known
    assert got["CHN-T1"]["severity"] == "high" and got["CHN-T1"]["period"] == "2026-06-01"
    assert "China (CHN) ban on graphite (stage processed), targets all, effective 2026-06-01 (announced 2026-05-20)" \
        in got["CHN-T1"]["message"]
    assert got["CHN-T3"]["commodity"] == "rare-earths" and got["CHN-T3"]["severity"] == "medium"
    assert got["IDN-T4"]["severity"] == "low" and "aggregate" in got["IDN-T4"]["message"]
    assert any("CHN-T2" in n for n in notes)


def test_targets_usa_or_jpn_make_it_high():
    new = _events([{"event_id": "X", "country_iso3": "CHN", "commodity": "graphite", "measure": "licensing",
                    "targets": "USA", "effective": "2026-06"}])
    alerts = rules.new_controls(_events([]), new, {"graphite"})
    assert alerts["severity"].tolist() == ["high"]


# --------------------------------------------------------------------------- validation
GOOD_TRADE = "flow,hts4,partner,period,value_usd\nimport,2846,CHN,2026-YTD05,85000000\nimport,2846,JPN,2026-YTD05,15000000\n"
GOOD_PRICES = "commodity,series,period,frequency,value,unit\ncopper,COPPER,2026-01,monthly,12000,USD/t\n"
GOOD_CONTROLS = ("event_id,country_iso3,commodities,stage,measure,targets,announced,effective,ended,scope_note,source,"
                 "source_url\nTEST-2026-GRAPHITE,CHN,graphite,processed,ban,USA,2026-05-20,2026-06-01,,test fixture,"
                 "test,https://example.org\n")


@pytest.mark.parametrize(
    ("name", "text", "line", "column", "words"),
    [
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimports,2846,CHN,2026,1\n", 2, "flow", "unknown flow"),
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimport,2846,CHN,2026,1\nimport,2846,XXX,2026,1\n", 3,
         "partner", "unknown country"),
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimport,2846,CHN,2026-05,1\n", 2, "period",
         "YYYY-YTDmm"),
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimport,9999,CHN,2026,1\n", 2, "hts4", "hts4.csv"),
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimport,2846,CHN,2026,-1\n", 2, "value_usd",
         "negative"),
        ("us_trade.csv", "flow,partner,period,value_usd\nimport,CHN,2026,1\n", 1, "hts4", "'hts4' or a 'commodity'"),
        ("us_trade.csv", "flow,commodity,partner,period,value_usd\nimport,unobtainium,CHN,2026,1\n", 2, "commodity",
         "unknown commodity"),
        ("us_trade.csv", "flow,hts4,partner,period,value_usd\nimport,2846,CHN,2026,1\nimport,2846,CHN,2026,2\n", 3,
         None, "duplicate row"),
        ("prices.csv", "commodity,series,period,frequency,value,unit\ncopper,COPPER,2026-01,weekly,1,USD/t\n", 2,
         "frequency", "monthly or annual"),
        ("prices.csv", "commodity,series,period,frequency,value,unit\ncopper,COPPER,2026,monthly,1,USD/t\n", 2,
         "period", "YYYY-MM"),
        ("prices.csv", "commodity,series,period,frequency,value,unit\ncopper,COPPER,2026-01,monthly,abc,USD/t\n", 2,
         "value", "not a number"),
        ("export_controls.csv", GOOD_CONTROLS.replace(",ban,", ",embargo,"), 2, "measure", "unknown measure"),
        ("export_controls.csv", GOOD_CONTROLS.replace(",CHN,", ",XXX,"), 2, "country_iso3", "unmapped country"),
        ("export_controls.csv", GOOD_CONTROLS.replace(",graphite,", ",kryptonite,"), 2, "commodities", "unmapped"),
        ("export_controls.csv", GOOD_CONTROLS.replace("2026-06-01", "June 2026"), 2, "effective", "not a date"),
        ("export_controls.csv", GOOD_CONTROLS + GOOD_CONTROLS.split("\n", 1)[1], 3, "event_id", "repeats line 2"),
    ],
)
def test_bad_files_name_file_line_column(tmp_path, name, text, line, column, words):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as exc:
        run_monitor(tmp_path, catalog=Catalog(bundled=tmp_path), priority_commodities=set())
    err = exc.value
    assert (err.file, err.row, err.column) == (name, line, column), str(err)
    assert words in str(err)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="holds none of"):
        run_monitor(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        run_monitor(tmp_path / "nope")


def test_thresholds_have_reasons_and_can_be_overridden(tmp_path):
    spec = load_thresholds()
    for rule, entries in spec.items():
        for name, entry in entries.items():
            assert entry["reason"] and len(entry["reason"]) > 30, f"{rule}.{name}"
    assert spec["import_share_jump"]["share_jump_pp"]["value"] == 10
    assert spec["price_spike"]["k_sigma"]["value"] == 3
    f = tmp_path / "t.yml"
    f.write_text("import_share_jump:\n  share_jump_pp: {value: 20, reason: stricter}\n")
    assert load_thresholds(f)["import_share_jump"]["share_jump_pp"] == {"value": 20, "reason": "stricter"}
    f.write_text("import_share_jump:\n  share_jump: 20\n")
    from critmin.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown threshold"):
        load_thresholds(f)


# --------------------------------------------------------------------------- end to end
@pytest.fixture()
def small_bundle(tmp_path) -> Path:
    """A tiny baseline dataset (us_trade, prices, export_controls) as Parquet: a test fixture."""
    d = tmp_path / "bundle"
    d.mkdir()
    BASELINE_TRADE.to_parquet(d / "us_trade.parquet")
    _monthly_prices().to_parquet(d / "prices.parquet")
    pd.DataFrame({"event_id": ["CHN-OLD"], "country_iso3": ["CHN"], "commodity": ["graphite"]}).to_parquet(
        d / "export_controls.parquet")
    return d


@pytest.fixture()
def new_dir(tmp_path) -> Path:
    """New data: SYNTHETIC test fixture (not real trade, prices or controls)."""
    d = tmp_path / "new"
    d.mkdir()
    # Jan-Apr 2026: China's share of 2846 imports 85 % vs 70 % in Jan-Apr 2025 (+15 pp);
    # 8112 (skipped heading) and an ARG row outside the baseline partners are ignored.
    (d / "us_trade.csv").write_text(
        "flow,hts4,partner,period,value_usd,quantity,quantity_unit\n"
        "import,2846,CHN,2026-YTD04,102000000,2000000,kilograms\n"
        "import,2846,JPN,2026-YTD04,18000000,150000,kilograms\n"
        "import,2846,ARG,2026-YTD04,5000000,,\n"
        "import,8112,CHN,2026-YTD04,9000000,,\n", encoding="utf-8")
    (d / "prices.csv").write_text(GOOD_PRICES, encoding="utf-8")
    (d / "export_controls.csv").write_text(GOOD_CONTROLS, encoding="utf-8")
    return d


def test_run_monitor_end_to_end(small_bundle, new_dir):
    alerts, meta = run_monitor(new_dir, catalog=Catalog(bundled=small_bundle),
                               priority_commodities={"graphite", "rare-earths"})
    assert list(alerts.columns) == rules.ALERT_COLUMNS
    assert alerts["severity"].iloc[0] == "high"                       # sorted high first
    assert set(alerts["rule"]) == {"import_share_jump", "price_spike", "new_export_control"}
    share = alerts[alerts.rule == "import_share_jump"].iloc[0]
    assert share["partner_or_country"] == "CHN" and share["new"] == pytest.approx(85)
    price = alerts[alerts.rule == "price_spike"].iloc[0]
    assert price["severity"] == "high" and price["period"] == "2026-01"   # 9000 -> 12000 USD/t is ≫ 5 σ
    ctl = alerts[alerts.rule == "new_export_control"].iloc[0]
    assert ctl["partner_or_country"] == "CHN" and ctl["severity"] == "high"
    assert meta["counts"] == {"import_share_jump": 1, "new_export_control": 1, "price_spike": 1}
    assert any("8112" in n for n in meta["notes"]) and any("ARG" in n for n in meta["notes"])
    assert meta["thresholds"]["price_spike"]["k_sigma"]["reason"]


def _cli() -> typer.Typer:
    from critmin.cli.monitor_cmd import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep "monitor" as a sub-command name even with one command
        """Test app."""

    return app


def test_cli_json_and_csv(small_bundle, new_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("critmin.reference.catalog.bundled_dir", lambda: small_bundle)
    monkeypatch.setattr("critmin.monitor.workflow.priority_set", lambda cat, importers: {"graphite"})
    app = _cli()
    res = runner.invoke(app, ["monitor", "--data", str(new_dir), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["rows"]) == 3 and {r["rule"] for r in doc["rows"]} == {"import_share_jump", "price_spike",
                                                                         "new_export_control"}
    out = tmp_path / "alerts.csv"
    res = runner.invoke(app, ["monitor", "--data", str(new_dir), "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0 and pd.read_csv(out).shape == (3, len(rules.ALERT_COLUMNS))
    res = runner.invoke(app, ["monitor", "--data", str(new_dir)])
    assert res.exit_code == 0 and "import_share_jump" in res.stdout


def test_cli_bad_file_exit_2_nothing_written(small_bundle, new_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("critmin.reference.catalog.bundled_dir", lambda: small_bundle)
    (new_dir / "prices.csv").write_text(GOOD_PRICES.replace("12000", "lots"), encoding="utf-8")
    out = tmp_path / "alerts.csv"
    res = runner.invoke(_cli(), ["monitor", "--data", str(new_dir), "--format", "csv", "--out", str(out)])
    assert res.exit_code == 2
    assert "file prices.csv, line 2, column 'value'" in res.output.replace("\n", "")
    assert not out.exists()
    res = runner.invoke(_cli(), ["monitor", "--data", str(new_dir), "--format", "xlsx"])
    assert res.exit_code == 2


@pytest.mark.skipif(not RAW.is_dir(), reason=f"raw public data folder {RAW} not available")
def test_realistic_run_on_the_bundled_dataset(tmp_path):
    """The bundled dataset (+ us_trade parsed from the raw USITC files) as baseline, with a SYNTHETIC
    Jan-May 2026 file for HTS 2846 (a test fixture: China's share falls to 50 %)."""
    from critmin.reference.sources import usitc

    bundle = tmp_path / "bundle"
    shutil.copytree(bundled_dir(), bundle)
    base = usitc.parse(RAW)["us_trade"]
    base.to_parquet(bundle / "us_trade.parquet")
    new = tmp_path / "new"
    new.mkdir()
    (new / "us_trade.csv").write_text(
        "flow,hts4,partner,period,value_usd\n"
        "import,2846,China,2026-YTD05,30000000\n"          # a DataWeb country name is accepted
        "import,2846,JPN,2026-YTD05,18000000\n"
        "import,2846,FRA,2026-YTD05,6000000\n"
        "import,2846,ZAF,2026-YTD05,6000000\n", encoding="utf-8")
    (new / "export_controls.csv").write_text(GOOD_CONTROLS, encoding="utf-8")   # graphite ban aimed at USA
    # Priorities computed from the bundled dataset (critmin.workflows.priorities), not passed in.
    alerts, meta = run_monitor(new, catalog=Catalog(bundled=bundle))
    assert "graphite" in meta["priority_commodities"] and "rare-earths" in meta["priority_commodities"]
    ctl = alerts[alerts.rule == "new_export_control"]
    assert ctl["commodity"].tolist() == ["graphite"] and ctl["severity"].tolist() == ["high"]
    alerts = alerts[alerts.rule == "import_share_jump"]
    chn = alerts.set_index("partner_or_country").loc["CHN"]
    y25 = base[(base.flow == "import") & (base.hts4 == "2846") & (base.period == "2025")]
    expected = 100 * y25.loc[y25.partner == "CHN", "value_usd"].sum() / y25["value_usd"].sum()
    assert chn["baseline"] == pytest.approx(expected) and chn["new"] == pytest.approx(50)
    assert "compared with the full year" in chn["message"]
