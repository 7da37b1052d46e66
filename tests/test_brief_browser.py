"""End to end: open the brief in headless Chromium (Debian's chromium, driven by Playwright).

Checks the sections, that charts and the map render, that no request leaves the machine, that no page is wider
than the window at 1,400 and 420 px, that printing (Chromium's print-to-PDF, A4 and Letter) cuts no table and
splits no chart, that the matrix labels do not overlap, that the map's title and legend are inside the figure,
and that the Sources table names every source of the tables the brief reads. Screenshots are saved to
``test-artifacts/``. Skipped where Chromium or Playwright is absent, unless ``CRITMIN_REQUIRE_BROWSER=1`` (set by
CI) makes that a failure. The brief is built once per module, with a small Monte Carlo ensemble.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import need_browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SECTIONS = ("summary", "criticality", "stages", "scenarios", "stockpile", "finance", "delivery", "map",
            "monitoring", "sources")
CHARTS = ("#fig-matrix", "#fig-stages", "#fig-scenarios", "#fig-risk", "#fig-stockpile", "#fig-delivery")
#: Printable width in CSS px (96 per inch) of each paper size with the stylesheet's 12 mm margins, and the PDF
#: MediaBox (points) Chromium writes for it.
MM = 96 / 25.4
PAPER = {"A4": ((210 - 24) * MM, (595.92, 842.88)), "Letter": ((215.9 - 24) * MM, (612.0, 792.0))}


@pytest.fixture(scope="module")
def brief(tmp_path_factory):
    need_browser()
    from critmin.report.brief import build_brief, write_brief

    b = build_brief("USA,JPN,USA+JPN", risk_draws=20_000)
    out = write_brief(b, tmp_path_factory.mktemp("brief") / "brief")
    ARTIFACTS.mkdir(exist_ok=True)
    return b, out


class Opened:
    """A page of the brief with every request other than the brief itself refused and recorded."""

    def __init__(self, browser, out: Path, width: int):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.external: list[str] = []
        self.errors: list[str] = []
        url = (out / "index.html").as_uri()

        def on_request(route):
            u = route.request.url
            # only the brief itself may be loaded; any other file (e.g. a topojson) or host is a failure
            if u == url or u.startswith(("data:", "blob:", "about:")):
                return route.continue_()
            self.external.append(u)
            return route.abort()

        self.page.route("**/*", on_request)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, wait_until="load")
        for sel in (*CHARTS, "#fig-map"):
            if self.page.locator(sel).count():
                self.page.wait_for_selector(f"{sel} .main-svg", timeout=30_000)
        self.page.wait_for_timeout(800)  # the page script's after-draw fixes (legend height, labels)

    def close(self) -> None:
        self.page.close()
        assert self.external == [], f"requests left the machine: {self.external[:5]}"
        assert self.errors == []


def test_brief_renders_offline_in_chromium(brief, browser):
    _, out = brief
    o = Opened(browser, out, 1280)
    page = o.page
    for sid in SECTIONS:
        assert page.locator(f"section#{sid}").count() == 1
    # markers drawn in the matrix and bars in the stage chart
    assert page.locator("#fig-matrix .scatterlayer .point").count() > 5
    assert page.locator("#fig-stages .barlayer .point").count() > 5
    assert page.locator("#fig-scenarios .scatterlayer .trace").count() >= 1
    assert page.locator("#fig-risk .barlayer .point").count() > 5
    if page.locator("#fig-map").count():
        assert page.locator("#fig-map .geo").count() >= 1
        page.locator("#map").screenshot(path=str(ARTIFACTS / "brief-map.png"))
    page.screenshot(path=str(ARTIFACTS / "brief-top.png"))
    page.add_style_tag(content="nav { position: static !important; }")  # keep the sticky bar out of shots
    page.locator("#stages").screenshot(path=str(ARTIFACTS / "brief-stages.png"))
    page.locator("#scenarios").screenshot(path=str(ARTIFACTS / "brief-scenarios.png"))
    page.screenshot(path=str(ARTIFACTS / "brief-full.png"), full_page=True)
    o.close()


#: Overlapping boxes (1 px of slack) among the matrix labels that are shown.
LABEL_OVERLAPS = """() => {
  const r = [...document.querySelectorAll('#fig-matrix .textpoint text')]
    .filter(t => getComputedStyle(t).display !== 'none' && t.textContent.trim())
    .map(t => [t.textContent, t.getBoundingClientRect()]);
  const out = [];
  for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) {
    const a = r[i][1], b = r[j][1];
    if (a.left + 1 < b.right && b.left + 1 < a.right && a.top + 1 < b.bottom && b.top + 1 < a.bottom)
      out.push(r[i][0] + '/' + r[j][0]);
  }
  return {shown: r.length, overlaps: out};
}"""

#: Where the map's title and legend are against its figure, and whether Plotly had to make the legend scroll.
MAP_BOXES = """() => {
  const gd = document.querySelector('#fig-map');
  const fig = gd.querySelector('.main-svg').getBoundingClientRect();
  const box = el => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const leg = gd._fullLayout.legend;
  return {fig: [fig.left, fig.top, fig.right, fig.bottom], title: box(gd.querySelector('.gtitle')),
          legend: box(gd.querySelector('.legend rect.bg')), scrolls: leg._height > leg._effHeight + 1};
}"""


def _inside(inner, outer, slack=1.0) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack and inner[2] <= outer[2] + slack
            and inner[3] <= outer[3] + slack)


@pytest.mark.parametrize("width", [1400, 420])
def test_no_horizontal_scroll_and_readable_figures(brief, browser, width):
    """No page wider than the window (every table in its own scroll box, nothing hidden by overflow rules); the
    matrix labels shown do not overlap; the map's title and whole legend are inside the figure."""
    _, out = brief
    o = Opened(browser, out, width)
    page = o.page
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    page.wait_for_timeout(300)
    m = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        body: document.body.scrollWidth, hidden: [getComputedStyle(document.documentElement).overflowX,
                                                  getComputedStyle(document.body).overflowX]})""")
    assert m["hidden"] == ["visible", "visible"], "overflow must not be hidden to pass this check"
    assert m["scroll"] <= m["inner"] and m["body"] <= m["inner"], m
    labels = page.evaluate(LABEL_OVERLAPS)
    assert labels["overlaps"] == [], labels
    assert labels["shown"] >= (10 if width >= 1000 else 3), labels
    if page.locator("#fig-map").count():
        boxes = page.evaluate(MAP_BOXES)
        assert _inside(boxes["title"], boxes["fig"]), boxes
        assert _inside(boxes["legend"], boxes["fig"]) and not boxes["scrolls"], boxes
    page.add_style_tag(content="nav { position: static !important; }")
    page.screenshot(path=str(ARTIFACTS / f"brief-{width}.png"))
    page.locator("#criticality").screenshot(path=str(ARTIFACTS / f"brief-matrix-{width}.png"))
    o.close()


#: Tables wider than their box, boxes past the page, charts not scaled or past the page, charts allowed to split.
PRINT_CHECK = """() => {
  const W = window.innerWidth, bad = [];
  for (const t of document.querySelectorAll('table.data')) {
    const box = t.parentElement, id = (t.closest('section') || {}).id;
    if (t.scrollWidth > box.clientWidth + 1 || t.getBoundingClientRect().right > W + 1)
      bad.push('table in ' + id + ': ' + t.scrollWidth + ' px in ' + box.clientWidth);
  }
  for (const s of document.querySelectorAll('.js-plotly-plot .main-svg')) {
    const r = s.getBoundingClientRect(), id = s.closest('.js-plotly-plot').id;
    if (!s.getAttribute('viewBox') || r.right > W + 1) bad.push('chart ' + id + ' right ' + r.right);
  }
  for (const c of document.querySelectorAll('.chart')) {
    if (getComputedStyle(c).breakInside !== 'avoid') bad.push('chart may split: ' + c.firstElementChild.id);
  }
  return {scroll: document.documentElement.scrollWidth, inner: W, bad: bad};
}"""


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_print_cuts_no_table_and_splits_no_chart(brief, browser, paper, tmp_path):
    """Print emulation at the paper's printable width (after drawing at 1,400 px, as a desk user would print):
    every table (all details opened) fits its box and the page; charts scale to the page and do not split.
    Chromium's print-to-PDF of the brief has pages of the paper's size."""
    _, out = brief
    width, (pw, ph) = PAPER[paper]
    o = Opened(browser, out, 1400)
    page = o.page
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    page.emulate_media(media="print")
    page.set_viewport_size({"width": int(width), "height": 1000})
    res = page.evaluate(PRINT_CHECK)
    assert res["bad"] == [], res["bad"][:10]
    assert res["scroll"] <= res["inner"], res
    o.close()

    o = Opened(browser, out, 1400)
    pdf = tmp_path / f"brief-{paper}.pdf"
    o.page.pdf(path=str(pdf), format=paper)
    o.close()
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 50_000
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert len(boxes) >= 3, "expected several pages"
    assert all(abs(float(w) - pw) < 1 and abs(float(h) - ph) < 1 for w, h in boxes), set(boxes)
    if paper == "A4":
        (ARTIFACTS / "brief-A4.pdf").write_bytes(data)


def test_sources_table_lists_every_source(brief, browser):
    """The Sources table names every source id in the MANIFEST entries of the dataset tables the brief reads and
    every known id in the ``source`` columns of its own tables (tables/*.csv)."""
    from critmin.reference.catalog import Catalog
    from critmin.report.brief import BRIEF_TABLES

    b, out = brief
    cat = Catalog()
    manifest = cat.manifest
    expected = set()
    for name in BRIEF_TABLES:
        expected |= set(manifest["tables"].get(name, {}).get("sources", []))
    known = {s["id"] for s in manifest["sources"]}
    for csv in (out / "tables").glob("*.csv"):
        frame = pd.read_csv(csv, low_memory=False)
        if "source" in frame:
            for cell in frame["source"].dropna().astype(str):
                expected |= {p.strip() for p in cell.split(";")} & known
    assert expected, "the brief's tables name no source"
    o = Opened(browser, out, 1280)
    listed = set(o.page.eval_on_selector_all("#sources-table tbody tr td:first-child",
                                             "cells => cells.map(c => c.textContent.trim())"))
    o.close()
    assert expected <= listed, f"missing from the Sources table: {sorted(expected - listed)}"
    assert listed == {s["id"] for s in b.sources}
