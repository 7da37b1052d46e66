"""The dashboard's scenario lab, risk, stockpile and marketplace views through FastAPI's TestClient.

Each view answers; the numbers on screen and in the downloads are the public API's (``critmin.scenario``,
``critmin.risk``, ``critmin.stockpile``); an edited event with a bad value is refused naming the event and the
field; the Monte Carlo runs in the background with progress, can be cancelled and is served from the cache the
second time; the marketplace service answers inside the dashboard when it has a database, with the service's own
authorisation.
"""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import critmin
from critmin.dashboard.app import create_dashboard

HTML = {"accept": "text/html"}
EDIT = ("/scenarios/run?preset=china-ree-2010-quota&edit=1&type=export_restriction&country=CHN"
        "&commodities=rare-earths&stage=refine,metal&start=2010-07&duration=54&cut=")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_dashboard(warm=False)) as c:
        yield c


def _csv(response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    return pd.read_csv(io.StringIO(response.text))


def _same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], cols: list[str]) -> None:
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    assert list(a[keys].astype(str).itertuples(index=False)) == list(b[keys].astype(str).itertuples(index=False))
    for c in cols:
        pd.testing.assert_series_equal(a[c].astype(float), b[c].astype(float), check_names=False, rtol=1e-9)


@pytest.mark.parametrize("path", ["/scenarios", "/risk", "/stockpile", "/market"])
def test_each_view_answers(client, path):
    r = client.get(path, headers=HTML)
    assert r.status_code == 200, r.text[:500]
    assert "<h1>" in r.text and "/static/lab.js" in r.text
    assert 'id="sources-h"' in r.text


def test_scenario_run_returns_chart_and_the_api_numbers(client):
    r = client.get("/scenarios/run?preset=china-graphite-2023&importer=USA,JPN,USA%2BJPN", headers=HTML)
    assert r.status_code == 200, r.text[:500]
    for var in ("shortfall", "price", "days-of-cover"):
        assert f'id="fig-scenario-{var}"' in r.text
    assert "Plotly.newPlot" in r.text and "graphite refine" in r.text
    shown = _csv(client.get("/scenarios?preset=china-graphite-2023&format=csv"))
    api = critmin.scenario("china-graphite-2023").to_frame()
    _same(shown, api, ["consumer", "commodity", "stage"], ["peak_shortfall_t", "cumulative_unmet_t",
                                                           "days_of_cover_end"])
    page = client.get("/scenarios?preset=china-graphite-2023", headers=HTML)
    assert page.status_code == 200 and 'value="china-graphite-2023" selected' in page.text


def test_compare_two_presets(client):
    r = client.get("/scenarios/run?compare=china-ree-2010-quota,drc-cobalt-2025", headers=HTML)
    assert r.status_code == 200, r.text[:500]
    assert "china-ree-2010-quota · rare-earths" in r.text and "drc-cobalt-2025 · cobalt" in r.text
    shown = _csv(client.get("/scenarios?compare=china-ree-2010-quota,drc-cobalt-2025&format=csv"))
    assert set(shown["scenario"]) == {"china-ree-2010-quota", "drc-cobalt-2025"}
    plain = client.get("/scenarios?compare-pick=china-ree-2010-quota&compare-pick=drc-cobalt-2025", headers=HTML)
    assert plain.status_code == 200 and "drc-cobalt-2025 · cobalt" in plain.text   # the form without scripts
    bad = client.get("/scenarios/run?compare=china-ree-2010-quota", headers=HTML)
    assert bad.status_code == 400 and "compare" in bad.text


def test_edited_event_changes_the_result_and_bad_values_name_the_field(client):
    def peak(cut: str) -> float:
        r = client.get(EDIT.replace("/scenarios/run?", "/scenarios?") + cut + "&format=csv")
        f = _csv(r)
        return float(f[(f.consumer == "USA+JPN") & (f.stage == "refine")]["peak_shortfall_t"].iloc[0])

    assert peak("0.8") > peak("0.4") > 0
    # the edited 0.4 is the preset itself: the same numbers as the preset
    preset = critmin.scenario("china-ree-2010-quota").to_frame()
    ref = float(preset[(preset.consumer == "USA+JPN") & (preset.stage == "refine")]["peak_shortfall_t"].iloc[0])
    assert peak("0.4") == pytest.approx(ref, rel=1e-12)
    r = client.get(EDIT + "1.5", headers=HTML)
    assert r.status_code == 400
    assert 'data-field="cut[1]"' in r.text and "must be ≤ 1" in r.text
    r = client.get(EDIT.replace("country=CHN", "country=XXQ") + "0.5", headers=HTML)
    assert r.status_code == 400 and 'data-field="country[1]"' in r.text
    r = client.get(EDIT.replace("start=2010-07", "start=2010-13") + "0.5", headers=HTML)
    assert r.status_code == 400 and 'data-field="start[1]"' in r.text
    r = client.get(EDIT.replace("&duration=54", "") + "0.5", headers=HTML)  # one list shorter than the others
    assert r.status_code == 400 and "duration" in r.text


def _wait(client, job_id: str, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = client.get(f"/risk/status/{job_id}").json()
        if st["state"] not in ("queued", "running"):
            return st
        time.sleep(0.05)
    raise AssertionError(f"risk run {job_id} did not finish: {st}")


def test_risk_run_status_result_and_cache(client):
    form = {"importer": "USA,JPN,USA+JPN", "draws": "3000", "seed": "7", "months": "12"}
    r = client.post("/risk/run", data=form)
    assert r.status_code == 202, r.text
    st = _wait(client, r.json()["id"])
    assert st["state"] == "done" and st["done"] == st["total"] == 1 and not st["cached"]
    page = client.get("/risk/result?draws=3000&seed=7", headers=HTML)
    assert page.status_code == 200 and 'id="fig-risk"' in page.text and 'id="rk-set-draws">3,000' in page.text
    assert 'id="fig-risk-contrib"' in page.text and 'id="fig-risk-p"' in page.text
    # the second identical request is served from the cache, at once
    again = client.post("/risk/run", data=form)
    assert again.status_code == 200 and again.json()["cached"] and again.json()["state"] == "done"
    full = client.get("/risk?draws=3000&seed=7", headers=HTML)
    assert 'data-autostart="no"' in full.text and 'id="risk-table"' in full.text
    # the sources of the run are listed, before a run too
    for page in (full, client.get("/risk?draws=3001&seed=7", headers=HTML)):
        assert "/data#src-curated-export_controls" in page.text and "/data#src-baci-hs17-2024" in page.text
    # the figures are critmin.risk's for the same draws and seed (and so critmin risk's)
    shown = _csv(client.get("/risk?draws=3000&seed=7&format=csv"))
    api = critmin.risk(draws=3000, seed=7).to_frame()
    _same(shown, api, ["consumer", "commodity", "stage"], ["expected_shortfall_t", "var_95_t", "cvar_99_t",
                                                           "p_shortfall"])


def test_risk_run_can_be_cancelled(client):
    r = client.post("/risk/run", data={"draws": "400000", "seed": "11"})   # 16 chunks of 25,000 draws
    job = r.json()["id"]
    c = client.post(f"/risk/cancel/{job}")
    assert c.status_code == 200
    st = _wait(client, job)
    assert st["state"] == "cancelled", st
    assert st["done"] < 16
    # nothing was cached for those inputs
    assert client.get("/risk/result?draws=400000&seed=11", headers=HTML).status_code == 404
    assert client.get("/risk/status/nope").status_code == 404


def test_risk_bad_input_names_the_field(client):
    r = client.post("/risk/run", data={"draws": "0"})
    assert r.status_code == 400 and r.json()["field"] == "draws"
    r = client.get("/risk?commodity=unobtainium", headers=HTML)
    assert r.status_code == 400 and "commodity" in r.text


def test_stockpile_plan_is_computed(client):
    q = "commodity=gallium&draws=200&seed=3&frontier=1,5"
    r = client.get(f"/stockpile/section/plan?{q}", headers=HTML)
    assert r.status_code == 200, r.text[:500]
    assert 'id="plan-table"' in r.text and 'id="fig-frontier"' in r.text and 'id="comparison-table"' in r.text
    shown = _csv(client.get(f"/stockpile?{q}&format=csv&table=plan"))
    api = critmin.stockpile("USA,JPN", draws=200, seed=3, commodity=["gallium"], frontier=[1e6, 5e6])
    _same(shown, api.to_frame(), ["commodity", "holder"], ["stock_t", "expected_unmet_t"])
    frontier = _csv(client.get(f"/stockpile?{q}&format=csv&table=frontier"))
    assert list(frontier["budget_usd"]) == [1e6, 5e6]
    comparison = _csv(client.get(f"/stockpile?{q}&format=csv&table=comparison"))
    assert {"optimal", "each holder alone (share 0)"} <= set(comparison["plan"])


def test_stockpile_measures_and_permitting_sections(client):
    r = client.get("/stockpile/section/measures?paths=500", headers=HTML)
    assert r.status_code == 200 and 'id="floor-table"' in r.text and 'id="cfd-table"' in r.text
    floor = _csv(client.get("/stockpile?paths=500&format=csv&table=floor"))
    api = critmin.policy_measure("floor", preset="dod_mp_ndpr_floor", price=110.0, volume_t=1294.0, years=10,
                                 paths=500).to_frame()
    assert floor["mean"].iloc[0] == pytest.approx(api["mean"].iloc[0], rel=1e-12)
    r = client.get("/stockpile/section/permitting?projects=US-TALON-TAMARACK,AU-ARAFURA-NOLANS&paths=500",
                   headers=HTML)
    assert r.status_code == 200 and 'id="fig-gantt"' in r.text
    assert "fast41" in r.text and "does not apply" in r.text   # the Australian project: ordinary track only
    bad = client.get("/stockpile/section/permitting?projects=NOPE", headers=HTML)
    assert bad.status_code == 404 and "NOPE" in bad.text
    assert client.get("/stockpile?format=csv&table=nope").status_code == 400
    for q, field in (("holders=DEU,JPN", "holders"), ("commodity=unobtainium", "commodity"), ("draws=5", "draws")):
        r = client.get(f"/stockpile/section/plan?{q}", headers=HTML)
        assert r.status_code == 400 and f'data-field="{field}"' in r.text, r.text
    r = client.get("/stockpile/section/invest?budgets=cheese=5&draws=50", headers=HTML)
    assert r.status_code == 400 and 'data-field="budgets"' in r.text and "cheese" in r.text


def test_market_without_db_says_how_to_start(client):
    r = client.get("/market", headers=HTML)
    assert r.status_code == 200 and "critmin dashboard --db" in r.text and 'id="market-app"' not in r.text
    assert client.get("/market/api/health").status_code == 404


def test_market_with_sqlite_mounts_the_service(tmp_path):
    db = tmp_path / "market.sqlite3"
    with TestClient(create_dashboard(db=f"sqlite:///{db}", warm=False)) as c:
        assert c.get("/market/api/health").json()["status"] == "ok"
        page = c.get("/market", headers=HTML)
        assert 'id="market-app"' in page.text and 'data-api="/market/api"' in page.text
        admin = (tmp_path / "admin.token").read_text().strip()

        def h(token: str, key: str | None = None) -> dict:
            out = {"Authorization": f"Bearer {token}"}
            if key:
                out["Idempotency-Key"] = key
            return out

        tokens = {}
        for pid, role in (("seller1", "seller"), ("buyer1", "buyer"), ("buyer2", "buyer")):
            r = c.post("/market/api/v1/participants", headers=h(admin, f"p-{pid}"),
                       json={"id": pid, "name": pid, "role": role, "country": "AUS" if role == "seller" else "JPN"})
            assert r.status_code == 201, r.text
            r = c.post(f"/market/api/v1/participants/{pid}/tokens", headers=h(admin, f"t-{pid}"), json={})
            tokens[pid] = r.json()["token"]
        order = {"side": "buy", "commodity": "ndpr", "form": "oxide", "grade": "std", "quantity": "10",
                 "limit_price": "90", "delivery_start": "2027-01-01", "delivery_end": "2027-02-01",
                 "location": "Long Beach"}
        r = c.post("/market/api/v1/orders", headers=h(tokens["buyer1"], "o-1"), json=order)
        assert r.status_code == 201, r.text
        oid = r.json()["order"]["id"]
        mine = c.get("/market/api/v1/orders", headers=h(tokens["buyer1"])).json()["items"]
        assert [o["id"] for o in mine] == [oid]
        # another participant sees none of them, and the order itself answers 404 like a missing one
        assert c.get("/market/api/v1/orders", headers=h(tokens["buyer2"])).json()["items"] == []
        assert c.get(f"/market/api/v1/orders/{oid}", headers=h(tokens["buyer2"])).status_code == 404
        assert c.get("/market/api/v1/orders").status_code == 401


def test_scenario_stockpile_response_and_kept_event_keys(client):
    """A stockpile typed in the lab is the scenario file's ``responses: stockpile``: released holdings lower the
    cumulative unmet demand by what they hold (the whole holding is used here); editing a preset's event keeps
    the keys the form does not show (``targets``, ``ramp_months``)."""
    from critmin.dashboard.views.scenarios import build_scenario, preset_events

    def unmet(q: str) -> pd.Series:
        f = _csv(client.get(f"/scenarios?preset=china-ree-2010-quota{q}&format=csv"))
        return f[f.stage == "refine"].set_index("consumer")["cumulative_unmet_t"]

    base, held = unmet(""), unmet("&stock_USA=500&stock_JPN=200&stock_stage=refine&stock_release=50")
    assert base["USA"] - held["USA"] == pytest.approx(500, rel=1e-9)
    assert base["JPN"] - held["JPN"] == pytest.approx(200, rel=1e-9)
    r = client.get("/scenarios/run?preset=china-ree-2010-quota&stock_USA=5&stock_stage=core", headers=HTML)
    assert r.status_code == 400 and 'data-field="stock_stage"' in r.text
    r = client.get("/scenarios/run?preset=china-ree-2010-quota&stock_JPN=lots", headers=HTML)
    assert r.status_code == 400 and 'data-field="stock_JPN"' in r.text
    ban = build_scenario("china-us-ban-2024", preset_events("china-us-ban-2024")).events[0]
    assert ban.targets == ["USA"] and ban.fraction == 1.0
    ramped = build_scenario("china-ree-2025-04", preset_events("china-ree-2025-04")).events[0]
    assert ramped.ramp_months == 2


def test_market_database_held_by_another_server(tmp_path, capsys):
    """A database another server holds: the dashboard starts without the marketplace, says why in one line and
    on the page, and the other views work."""
    url = f"sqlite:///{tmp_path / 'market.sqlite3'}"
    with TestClient(create_dashboard(db=url, warm=False)) as first:
        assert first.get("/market/api/health").status_code == 200
        with TestClient(create_dashboard(db=url, warm=False)) as second:
            page = second.get("/market", headers=HTML)
            assert page.status_code == 200 and 'id="market-error"' in page.text
            assert "another critmin server is running" in page.text and 'id="market-app"' not in page.text
            assert second.get("/market/api/health").status_code == 404
            assert second.get("/scenarios/events?preset=china-ree-2010-quota").status_code == 200
    err = capsys.readouterr().err
    assert "the marketplace view is off" in err and "Traceback" not in err
