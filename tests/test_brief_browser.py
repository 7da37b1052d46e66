"""End to end: open the brief in headless Chromium (Debian's chromium, driven by Playwright).

Checks the sections, that charts and the map render, and that no request leaves the machine; screenshots
are saved to ``test-artifacts/``. Skipped where Chromium or Playwright is absent, unless
``CRITMIN_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

from pathlib import Path

from conftest import CHROMIUM, CHROMIUM_ARGS, need_browser
from typer.testing import CliRunner

from critmin.cli.main import app

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_brief_renders_offline_in_chromium(tmp_path):
    need_browser()
    from playwright.sync_api import sync_playwright

    out = tmp_path / "brief"
    res = CliRunner().invoke(app, ["brief", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ARTIFACTS.mkdir(exist_ok=True)
    external = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        page_url = (out / "index.html").as_uri()

        def on_request(route):
            url = route.request.url
            # only the brief itself may be loaded; any other file (e.g. a topojson) or host is a failure
            if url == page_url or url.startswith(("data:", "blob:", "about:")):
                return route.continue_()
            external.append(url)
            return route.abort()

        page.route("**/*", on_request)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri(), wait_until="load")
        page.wait_for_selector("#fig-matrix .main-svg", timeout=30_000)
        page.wait_for_selector("#fig-stages .main-svg", timeout=30_000)
        page.wait_for_selector("#fig-scenarios .main-svg", timeout=30_000)
        page.wait_for_selector("#fig-risk .main-svg", timeout=30_000)
        for sid in ("summary", "criticality", "stages", "scenarios", "stockpile", "finance", "delivery", "map",
                    "monitoring", "sources"):
            assert page.locator(f"section#{sid}").count() == 1
        # markers drawn in the matrix and bars in the stage chart
        assert page.locator("#fig-matrix .scatterlayer .point").count() > 5
        assert page.locator("#fig-stages .barlayer .point").count() > 5
        assert page.locator("#fig-scenarios .scatterlayer .trace").count() >= 1
        assert page.locator("#fig-risk .barlayer .point").count() > 5
        page.wait_for_selector("#fig-stockpile .main-svg", timeout=30_000)
        page.wait_for_selector("#fig-delivery .main-svg", timeout=30_000)
        if page.locator("#fig-map").count():
            page.wait_for_selector("#fig-map .main-svg", timeout=30_000)
            assert page.locator("#fig-map .geo").count() >= 1
            page.locator("#map").screenshot(path=str(ARTIFACTS / "brief-map.png"))
        page.screenshot(path=str(ARTIFACTS / "brief-top.png"))
        page.add_style_tag(content="nav { position: static !important; }")  # keep the sticky bar out of shots
        page.locator("#stages").screenshot(path=str(ARTIFACTS / "brief-stages.png"))
        page.locator("#scenarios").screenshot(path=str(ARTIFACTS / "brief-scenarios.png"))
        page.screenshot(path=str(ARTIFACTS / "brief-full.png"), full_page=True)
        browser.close()
    assert external == [], f"requests left the machine: {external[:5]}"
    assert errors == []
