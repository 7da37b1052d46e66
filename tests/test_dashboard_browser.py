"""End to end in headless Chromium (Debian's, driven by Playwright): every dashboard view of a real server
(uvicorn on 127.0.0.1, with a SQLite marketplace database).

Every view loads with no console error and no request leaving 127.0.0.1; the gallium page shows China's refining
share with its charts and map drawn; the map's year slider and the overview's form put their state in the URL, and
that URL opened in a fresh browser shows the same view; the skip link works from the keyboard; a phone-width
window needs no sideways scrolling; axe-core (bundled with axe-playwright-python) finds no serious or critical
violation of WCAG 2.1 A/AA. Screenshots go to ``test-artifacts/``. Skipped where Chromium or Playwright is absent,
unless ``CRITMIN_REQUIRE_BROWSER=1`` makes that a failure.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import need_browser
from dashkit import served

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

#: Every view (the scenario lab, risk, stockpile and marketplace views included) with a state worth seeing.
VIEWS = {
    "overview": "/",
    "overview-deu": "/?importer=DEU,g7&as_of=2026-06-01",
    "mineral-gallium": "/mineral/gallium",
    "mineral-rare-earths": "/mineral/rare-earths?importer=USA%2BJPN&stage=mine&year=2022",
    "data": "/data",
    "data-rows": "/data?table=export_controls&commodity=gallium",
    "scenarios": "/scenarios",
    "risk": "/risk",
    "stockpile": "/stockpile",
    "market": "/market",
}
#: axe-core rule sets checked (WCAG 2.0 and 2.1, levels A and AA) and the impacts that fail the test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = {"serious", "critical"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard on 127.0.0.1 (its default results computed at start-up), with a marketplace database."""
    need_browser()
    from critmin.dashboard.app import create_dashboard

    folder = tmp_path_factory.mktemp("dash")
    app = create_dashboard(db=f"sqlite:///{folder / 'market.sqlite3'}")
    with served(app, "/static/dashboard.css") as base:
        ARTIFACTS.mkdir(exist_ok=True)
        yield base


class Opened:
    """A page in its own browser context that refuses and records every request to a host other than 127.0.0.1,
    and records console errors and page errors."""

    def __init__(self, browser, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.external: list[str] = []
        self.errors: list[str] = []

        def on_request(route):
            u = route.request.url
            host = urlparse(u).hostname
            if u.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
                return route.continue_()
            self.external.append(u)
            return route.abort()

        self.page.route("**/*", on_request)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

    def goto(self, url: str):
        self.page.goto(url, wait_until="load", timeout=120_000)
        self.settle()
        return self.page

    def settle(self) -> None:
        """Wait until every Plotly figure on the page has drawn."""
        self.page.wait_for_load_state("load")
        n = self.page.locator(".js-plotly-plot").count()
        for i in range(n):
            self.page.locator(".js-plotly-plot").nth(i).locator(".main-svg").first.wait_for(timeout=60_000)
        self.page.wait_for_timeout(300)

    def close(self) -> None:
        self.context.close()
        assert self.external == [], f"requests left the machine: {self.external[:5]}"
        assert self.errors == [], self.errors[:5]


@pytest.mark.parametrize("name", list(VIEWS))
def test_view_loads_offline_without_console_error(server, browser, name):
    o = Opened(browser)
    page = o.goto(server + VIEWS[name])
    assert page.locator("main h1").count() == 1
    assert page.locator("nav a[aria-current=page]").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-top.png"))   # what the window shows first
    o.close()


def test_gallium_page_shows_chinas_refining_share(server, browser):
    o = Opened(browser)
    page = o.goto(server + "/mineral/gallium")
    row = page.locator("#stage-table tbody tr", has_text="refining")
    cells = row.locator("td").all_inner_texts()
    assert cells[2] == "China"
    assert int(re.match(r"(\d+) %", cells[3]).group(1)) >= 95   # USGS MCS 2026: ~99 % (2025e)
    assert page.locator("#fig-stages .barlayer .point").count() >= 1
    assert page.locator("#fig-map .geo").count() >= 1
    assert page.locator("#fig-map .choroplethlocation").count() > 100   # the outlines, loaded from this server
    assert page.locator("#fig-prices .scatterlayer .trace").count() >= 1
    page.set_viewport_size({"width": 1280, "height": 1750})   # the stage chart and the map (docs/dashboard.png)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "dashboard-gallium-top.png"))
    o.close()


def test_year_slider_moves_the_map_and_the_url_reproduces_it(server, browser):
    o = Opened(browser)
    page = o.goto(server + "/mineral/rare-earths?stage=mine")
    slider = page.locator("#year")
    last = int(slider.get_attribute("value"))
    assert last == int(slider.get_attribute("max"))
    slider.focus()
    with page.expect_navigation():
        page.keyboard.press("ArrowLeft")   # the keyboard moves the slider; the change submits the form
    o.settle()
    q = parse_qs(urlparse(page.url).query)
    assert q["year"] == [str(last - 1)] and q["stage"] == ["mine"]
    shown = page.locator("#fig-map").inner_text()
    assert f"({last - 1})" in shown   # the colour bar names the year drawn
    shared = page.url
    o.close()
    again = Opened(browser)
    page2 = again.goto(shared)
    assert page2.locator("#year").get_attribute("value") == str(last - 1)
    assert page2.locator("#fig-map").inner_text() == shown
    again.close()


def test_overview_form_state_is_a_shareable_url(server, browser):
    o = Opened(browser)
    page = o.goto(server + "/")
    page.fill("#importer", "DEU, KOR")
    page.fill("#as_of", "2026-06-01")
    page.fill("#top", "3")
    with page.expect_navigation():
        page.click("form.controls button[type=submit]")
    o.settle()
    q = parse_qs(urlparse(page.url).query)
    assert q["importer"] == ["DEU, KOR"] and q["as_of"] == ["2026-06-01"] and q["top"] == ["3"]
    first = page.locator("main").inner_text()
    assert "DEU:" in first and "KOR:" in first and "USA:" not in first
    shared = page.url
    o.close()
    fresh = Opened(browser)
    assert fresh.goto(shared).locator("main").inner_text() == first
    fresh.close()


def test_skip_link_and_keyboard_focus(server, browser):
    o = Opened(browser)
    page = o.goto(server + "/data")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"   # a visible focus ring
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main" or page.url.endswith("#main")
    o.close()


@pytest.mark.parametrize("name", ["overview", "mineral-gallium", "data"])
def test_phone_width_needs_no_sideways_scrolling(server, browser, name):
    o = Opened(browser, width=390, height=844)
    page = o.goto(server + VIEWS[name])
    over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert over <= 1, f"{name} is {over}px wider than a 390px phone"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-phone-{name}.png"))
    o.close()


@pytest.mark.parametrize("name", list(VIEWS))
def test_axe_finds_no_serious_violation(server, browser, name):
    from axe_playwright_python.sync_playwright import Axe

    o = Opened(browser)
    page = o.goto(server + VIEWS[name])
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS},
                                       "resultTypes": ["violations"]})
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in FAILING_IMPACTS]
    assert bad == [], bad
    o.close()
