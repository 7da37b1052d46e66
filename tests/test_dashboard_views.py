"""The dashboard's overview, mineral and data views through FastAPI's TestClient: pages, downloads, bad input,
the shared URL state and the command line's checks. The numbers shown are compared with the API's own."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from critmin import api
from critmin.dashboard import create_dashboard

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_dashboard(warm=False))


@pytest.fixture(scope="module")
def prio():
    return api.priorities("USA,JPN,USA+JPN")


def test_frame_serves_plotly_from_the_package_and_its_assets(client):
    from importlib import resources

    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200   # the installed package's own bundle, byte for byte
    assert r.content == resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    assert client.get("/static/dashboard.css").status_code == 200
    assert client.get("/geo/countries-110m.geojson").json()["type"] == "FeatureCollection"


def test_every_page_has_navigation_skip_link_and_main(client):
    page = client.get("/data").text
    assert '<a class="skip" href="#main">' in page and '<main id="main"' in page
    for path in ("/", "/mineral/gallium", "/scenarios", "/risk", "/stockpile", "/market", "/data"):
        assert f'href="{path}"' in page
    assert 'aria-current="page"' in page
    assert "cdn" not in page.lower() and "https://" not in re.sub(r'<span class="note">https://[^<]*</span>', "", page)


def test_overview_shows_each_importers_priorities(client, prio):
    r = client.get("/?importer=USA,JPN,USA%2BJPN&top=5")
    assert r.status_code == 200
    page = r.text
    table = prio.to_frame()
    for imp in ("USA", "JPN", "USA+JPN"):
        n = int(table.loc[table["importer"] == imp, "priority"].astype(bool).sum())
        assert f"{imp}: {n} priority minerals of" in page
        first = table[table["importer"] == imp].sort_values("rank").iloc[0]
        assert f'href="/mineral/{first.commodity}?importer=' in page
    assert "Export-control measures in force on" in page
    assert "Alerts" in page


def test_overview_any_importer_and_as_of_change_what_is_shown(client):
    page = client.get("/?importer=DEU&as_of=2026-06-01").text
    assert "DEU:" in page and "USA:" not in page
    assert 'value="2026-06-01"' in page
    # a suspension that runs to 2026-11-10 is live on 2026-06-01 and listed with its deadline
    csv = pd.read_csv(io.StringIO(client.get("/?importer=DEU&as_of=2026-06-01&table=measures&format=csv").text))
    live = csv[csv["until"] == "2026-11-10"]
    assert len(live) and "suspended" in set(live["status"])
    assert (live["days_left"] == (pd.Timestamp("2026-11-10") - pd.Timestamp("2026-06-01")).days).all()
    later = pd.read_csv(io.StringIO(client.get("/?importer=DEU&as_of=2027-01-15&table=measures&format=csv").text))
    assert "2026-11-10" not in set(later["until"].dropna())


def test_overview_downloads_parse_and_match_the_api(client, prio):
    r = client.get("/?table=priorities&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    got = pd.read_csv(io.StringIO(r.text))
    want = prio.to_frame()
    assert len(got) == len(want)
    merged = got.merge(want[["importer", "commodity", "composite"]], on=["importer", "commodity"])
    assert (merged["composite_x"] - merged["composite_y"]).abs().max() < 1e-9
    x = client.get("/?table=alerts&format=xlsx")
    assert x.status_code == 200
    frame = pd.read_excel(io.BytesIO(x.content))
    assert list(frame.columns)[:3] == ["kind", "date", "days_left"]


@pytest.mark.parametrize(("url", "status", "field"), [
    ("/?importer=XYZ", 400, "importer"),
    ("/?as_of=2026-13-45", 400, "as_of"),
    ("/?top=0", 400, "top"),
    ("/?top=many", 422, "top"),
    ("/?format=pdf", 400, "format"),
    ("/?format=csv&table=nothing", 400, "table"),
    ("/mineral/unobtainium", 404, "commodity"),
    ("/mineral/gallium?importer=USA,JPN", 400, "importer"),
    ("/mineral/gallium?stage=mine", 400, "stage"),
    ("/mineral/gallium?year=1900", 400, "year"),
    ("/mineral/gallium?format=csv&table=x", 400, "table"),
    ("/data?table=nothing", 400, "table"),
    ("/data?table=deposits&year=2020", 400, "year"),
])
def test_bad_input_is_a_4xx_naming_the_field(client, url, status, field):
    r = client.get(url)
    assert r.status_code == status
    assert r.json()["field"] == field
    page = client.get(url, headers=HTML)
    assert page.status_code == status and f"<strong>{field}</strong>" in page.text


def test_gallium_page_shows_chinas_refining_share(client, prio):
    shares = prio.to_frame("shares")
    want = float(shares.query("commodity == 'gallium' and stage == 'refine' and country == 'CHN'")["share"].iloc[0])
    assert want > 0.95
    page = client.get("/mineral/gallium").text
    row = re.search(r"<tr><td>refining</td><td>(\d{4})e?</td>\s*<td>China</td><td class=\"n\">(\d+) %</td>", page)
    assert row, "the stage table has no refining row with China as the largest supplier"
    assert int(row.group(2)) == round(100 * want)
    for fig in ("fig-stages", "fig-map", "fig-prices", "fig-partners"):
        assert f'id="{fig}"' in page
    assert "gallium-germanium-group" in page   # partners under the shared HS code, said so
    assert "USGS import sources of the United States" in page
    assert "China export licensing" in page   # export-control events of gallium
    assert "EU 2023 published SR" in page      # the official methods' comparison


def test_mineral_downloads_and_map_state(client):
    csv = pd.read_csv(io.StringIO(client.get("/mineral/gallium?table=shares&format=csv").text))
    assert set(csv["stage"]) == {"refine"} and abs(csv["share"].sum() - 1) < 0.02
    part = pd.read_csv(io.StringIO(client.get("/mineral/lithium?importer=JPN&table=partners&format=csv").text))
    assert len(part) and set(part["importer"]) == {"JPN"} and "JPN" not in set(part["partner"])
    for stage, g in part.groupby("stage"):
        assert abs(g["share"].sum() - 1) < 1e-9, stage
    prod = pd.read_excel(io.BytesIO(client.get("/mineral/rare-earths?table=production&format=xlsx").content))
    years = sorted(prod.loc[prod["stage"] == "mine", "year"].unique())
    page = client.get(f"/mineral/rare-earths?stage=mine&year={years[0]}").text
    assert f'value="{years[0]}"' in page and f'min="{years[0]}"' in page
    assert f"t ({years[0]})" in page   # the map's colour bar names the year drawn


def test_shared_url_reproduces_the_view(client):
    url = "/mineral/cobalt?importer=USA%2BJPN&stage=mine&year=2023&as_of=2026-03-01"
    a, b = client.get(url).text, TestClient(create_dashboard(warm=False)).get(url).text
    assert a == b
    assert 'value="USA+JPN"' in a and 'value="2026-03-01"' in a and 'value="2023"' in a
    # the page's link to itself is the URL that reproduces it
    assert "Link to this view: <a href=\"/mineral/cobalt?importer=USA%2BJPN&amp;stage=mine&amp;year=2023" in a
    r = client.get("/mineral?commodity=cobalt&importer=JPN", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/mineral/cobalt?importer=JPN"


def test_data_page_lists_every_source_with_licence_and_years(client):
    from critmin.reference.catalog import Catalog

    page = client.get("/data").text
    for s in Catalog().manifest["sources"]:
        assert f'id="src-{s["id"]}"' in page
        assert s["licence"].split("(")[0].strip() in page
    src = pd.read_csv(io.StringIO(client.get("/data?table=sources&format=csv").text))
    assert {"id", "publisher", "licence", "years"} <= set(src.columns)
    rows = client.get("/data?table=export_controls&commodity=gallium").text
    assert "CHN-2023-GA-GE" in rows or "CHN-2025-US-BAN-SUSP" in rows


def test_view_sources_link_to_the_data_page(client):
    page = client.get("/mineral/gallium").text
    block = page[page.index('id="sources-h"'):]
    assert 'href="/data#src-usgs-mcs-2026"' in block
    # an export-control event links to its cited rows
    link = re.search(r'href="(/data\?table=export_controls&amp;commodity=gallium#rows-h)"', page)
    assert link
    rows = client.get(link.group(1).replace("&amp;", "&").split("#")[0]).text
    assert "<th scope=\"col\">citation</th>" in rows and "gallium" in rows


def test_user_data_folder_is_used_and_listed(tmp_path):
    (tmp_path / "prices.csv").write_text("commodity,period,value,unit,series\ngallium,2024,999,USD/kg,my series\n")
    c = TestClient(create_dashboard(tmp_path, warm=False))
    page = c.get("/data").text
    assert 'id="src-user:prices"' in page
    prices = pd.read_csv(io.StringIO(c.get("/mineral/gallium?table=prices&format=csv").text))
    assert list(prices["value"]) == [999]


def test_cli_checks_its_options_in_one_line(tmp_path):
    from critmin.cli.main import app

    runner = CliRunner()
    for args, word in ((["--port", "0"], "--port"), (["--port", "70000"], "--port"),
                       (["--data", str(tmp_path / "none")], "--data"), (["--host", "bad host!"], "--host"),
                       (["--db", "nosuch://x"], "--db")):
        r = runner.invoke(app, ["dashboard", *args])
        assert r.exit_code == 2, args
        out = (r.stderr if hasattr(r, "stderr") else r.output).strip()
        assert word in out and "Traceback" not in out and len(out.splitlines()) == 1, out


def test_monitor_folder_alerts_show_on_the_overview(tmp_path):
    (tmp_path / "export_controls.csv").write_text(
        "event_id,country_iso3,commodities,stage,measure,targets,announced,effective,ended,scope_note,source,"
        "source_url\nTEST-2026-GRAPHITE,CHN,graphite,processed,ban,USA,2026-05-20,2026-06-01,,test fixture,"
        "test,https://example.org\n", encoding="utf-8")
    want = api.monitor(tmp_path).to_frame()
    assert len(want)
    c = TestClient(create_dashboard(monitor=tmp_path, warm=False))
    alerts = pd.read_csv(io.StringIO(c.get("/?table=alerts&format=csv").text))
    mon = alerts[alerts["kind"].str.startswith("monitor: ")]
    assert list(mon["message"]) == list(want["message"])
    import html

    page = c.get("/").text
    assert all(html.escape(m) in page for m in want["message"])


def test_cache_computes_once_per_key_and_keeps_no_error():
    import threading

    from critmin.dashboard.common import cached

    calls = []

    def slow():
        calls.append(1)
        threading.Event().wait(0.2)
        return len(calls)

    key = ("test-cache", object())
    out = []
    threads = [threading.Thread(target=lambda: out.append(cached(key, slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [1, 1, 1, 1] and len(calls) == 1

    def fails():
        raise ValueError("boom")

    bad = ("test-cache-error", object())
    with pytest.raises(ValueError):
        cached(bad, fails)
    assert cached(bad, lambda: "second try") == "second try"


def test_cli_port_in_use_and_missing_extra_are_one_line(monkeypatch):
    import importlib.util
    import socket

    from critmin.cli.main import app

    runner = CliRunner()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = runner.invoke(app, ["dashboard", "--port", str(port)])
    assert r.exit_code == 2
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in r.output

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    r = runner.invoke(app, ["dashboard"])
    assert r.exit_code == 2
    assert "pip install 'critmin[dashboard]' (missing: uvicorn)" in r.output


def test_cli_serves_on_the_loopback_and_stops_on_ctrl_c(tmp_path):
    """``critmin dashboard`` as a user starts it: a process listening on 127.0.0.1 that Ctrl+C (SIGINT) stops."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "critmin.cli.main", "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end, status = time.monotonic() + 60, None
        while time.monotonic() < end and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/data", timeout=5).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200
        assert httpx.get(f"http://127.0.0.1:{port}/static/plotly.min.js", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"critmin dashboard on http://127.0.0.1:{port}/" in err and "Traceback" not in err


def test_every_commodity_page_renders(client):
    """Each commodity of the dataset has a page (stages, map, partners or prices: whatever its data hold)."""
    from critmin.dashboard.views.mineral import known_commodities

    names = known_commodities(type("R", (), {"app": client.app})())
    assert {"gallium", "germanium", "rare-earths", "lithium", "cobalt", "graphite"} <= set(names)
    failed = {n: r.status_code for n in names if (r := client.get(f"/mineral/{n}")).status_code != 200}
    assert failed == {}
