"""End to end in headless Chromium (Debian's, driven by Playwright): the scenario lab, risk, stockpile and
marketplace views of a real dashboard server (uvicorn on 127.0.0.1, with a SQLite marketplace database).

A scenario run updates its chart; two scenarios compare; the Monte Carlo shows its progress and its figures; a
stockpile plan is computed; a buyer and a seller trade through the marketplace page and the ledger shows it; one
participant cannot see another's orders. No console error, no request leaving 127.0.0.1; screenshots go to
``test-artifacts/``. Skipped where Chromium or Playwright is absent, unless ``CRITMIN_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from conftest import need_browser
from dashkit import served

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard on 127.0.0.1 with its marketplace service on a fresh SQLite database, and the admin token."""
    need_browser()
    from critmin.dashboard.app import create_dashboard

    folder = tmp_path_factory.mktemp("market")
    app = create_dashboard(db=f"sqlite:///{folder / 'market.sqlite3'}", warm=False)
    with served(app, "/market/api/health", "the dashboard with its marketplace service") as base:
        ARTIFACTS.mkdir(exist_ok=True)
        yield base, (folder / "admin.token").read_text().strip()


class Opened:
    """A page in its own browser context (its own sessionStorage) that refuses and records every request to a
    host other than 127.0.0.1, and records console errors and page errors."""

    def __init__(self, browser, base: str, width: int = 1280):
        self.context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.base = base
        self.external: list[str] = []
        self.errors: list[str] = []

        def on_request(route):
            u = route.request.url
            if u.startswith(("data:", "blob:", "about:")) or urlparse(u).hostname == "127.0.0.1":
                return route.continue_()
            self.external.append(u)
            return route.abort()

        self.page.route("**/*", on_request)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

    def goto(self, path: str):
        self.page.goto(self.base + path, wait_until="load")
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.external == [], f"requests left the machine: {self.external[:5]}"
        assert self.errors == [], self.errors[:5]


#: axe-core rule sets checked (WCAG 2.0 and 2.1, levels A and AA) and the impacts that fail the test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _accessible(page) -> None:
    """axe-core (bundled with axe-playwright-python) finds no serious or critical violation in the page as it is
    now (results, charts and tables drawn, not only the empty form)."""
    from axe_playwright_python.sync_playwright import Axe

    res = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]})
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in res.response["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], bad


def _fits_a_phone(browser, base: str, path: str, ready: str) -> None:
    o = Opened(browser, base, width=390)
    page = o.goto(path)
    page.wait_for_selector(ready, timeout=180_000)
    over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert over <= 1, f"{path} is {over}px wider than a 390px phone"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-lab-phone{path.split('?')[0].replace('/', '-')}.png"))
    o.close()


def _traces(page, sel: str) -> list[str]:
    return page.evaluate(f"() => (document.querySelector('{sel}').data || []).map(t => t.name)")


def test_scenario_run_updates_its_chart_and_two_scenarios_compare(server, browser):
    base, _ = server
    o = Opened(browser, base)
    page = o.goto("/scenarios")
    page.wait_for_selector("#fig-scenario-shortfall .main-svg", timeout=60_000)
    assert any("rare-earths" in n for n in _traces(page, "#fig-scenario-shortfall"))
    page.select_option("#sc-preset", "china-graphite-2023")
    page.click("#sc-run")
    page.wait_for_function("() => (document.querySelector('#fig-scenario-shortfall') || {}).data && "
                           "document.querySelector('#fig-scenario-shortfall').data.some(t => t.name.includes('graphite'))",
                           timeout=60_000)
    assert "preset=china-graphite-2023" in page.url
    page.wait_for_selector("#fig-scenario-shortfall .main-svg")
    page.screenshot(path=str(ARTIFACTS / "dashboard-lab-scenario.png"), full_page=True)

    # a stockpile response: the days of cover of its holder rise above 0
    assert page.evaluate("() => document.querySelector('#fig-scenario-days-of-cover')._fullData.every("
                         "t => Math.max(...Array.from(t.y)) === 0)")
    page.fill("#sc-stock-usa", "5000")
    page.fill("#sc-consumer", "USA")
    page.click("#sc-run")
    page.wait_for_function("() => document.querySelector('#fig-scenario-days-of-cover')._fullData.some("
                           "t => Math.max(...Array.from(t.y)) > 0)", timeout=60_000)
    assert "stock_USA=5000" in page.url and "consumer=USA&" in page.url + "&"
    page.fill("#sc-stock-usa", "")
    page.fill("#sc-consumer", "USA+JPN")

    # an edited event with a bad cut is refused with the field named, and the chart stays away
    page.check("#sc-edit")
    page.fill("input[aria-label='event 1 cut (share withheld)']", "1.7")
    page.click("#sc-run")
    page.wait_for_selector("#scenario-results .error[data-field='cut[1]']", timeout=30_000)
    refused = "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert refused in o.errors   # Chromium logs the refused fragment's HTTP 400; nothing else may be there
    o.errors = [e for e in o.errors if e != refused]

    page.check("input[name='compare-pick'][value='china-ree-2010-quota']")
    page.check("input[name='compare-pick'][value='drc-cobalt-2025']")
    page.click("#sc-compare")
    page.wait_for_selector("#scenario-summary", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#fig-scenario-shortfall').data.some("
                           "t => t.name.startsWith('drc-cobalt-2025'))", timeout=60_000)
    names = _traces(page, "#fig-scenario-shortfall")
    assert any(n.startswith("china-ree-2010-quota") for n in names) and any(n.startswith("drc-cobalt-2025")
                                                                             for n in names)
    assert "compare=china-ree-2010-quota%2Cdrc-cobalt-2025" in page.url
    cells = page.eval_on_selector_all("#scenario-summary tbody tr td:first-child", "c => c.map(x => x.textContent)")
    assert {"china-ree-2010-quota", "drc-cobalt-2025"} <= set(cells)
    page.screenshot(path=str(ARTIFACTS / "dashboard-lab-compare.png"), full_page=True)
    _accessible(page)
    # the shared URL reproduces the comparison
    shared = page.url
    o2 = Opened(browser, base)
    p2 = o2.goto(shared.removeprefix(base))
    p2.wait_for_selector("#fig-scenario-shortfall .main-svg", timeout=60_000)
    assert any(n.startswith("drc-cobalt-2025") for n in _traces(p2, "#fig-scenario-shortfall"))
    o2.close()
    o.close()


def test_risk_shows_progress_then_figures(server, browser):
    base, _ = server
    o = Opened(browser, base)
    page = o.goto("/risk?draws=60000&seed=5")
    page.wait_for_selector("#risk-job[data-state='done']", timeout=120_000)
    page.wait_for_selector("#fig-risk .main-svg", timeout=60_000)
    assert page.inner_text("#rk-set-draws") == "60,000"
    assert page.eval_on_selector("#rk-progress", "p => p.value === p.max && p.max === 3")
    assert page.locator("#risk-table tbody tr").count() > 3
    page.screenshot(path=str(ARTIFACTS / "dashboard-lab-risk.png"), full_page=True)
    _accessible(page)
    # a long run is cancelled from the page
    page.fill("#rk-draws", "1000000")
    page.click("#rk-run")
    page.wait_for_selector("#rk-cancel:not([disabled])", timeout=30_000)
    page.click("#rk-cancel")
    page.wait_for_selector("#risk-job[data-state='cancelled']", timeout=60_000)
    assert "cancelled" in page.inner_text("#rk-message")
    assert "draws=1000000" in page.url
    o.close()


def test_stockpile_plan_is_computed(server, browser):
    base, _ = server
    o = Opened(browser, base)
    page = o.goto("/stockpile?commodity=gallium&draws=300&frontier=1,5&budgets=grant=50&invest_months=36"
                  "&projects=US-TALON-TAMARACK,US-ALB-KINGSMTN&paths=500")
    page.wait_for_selector("#plan-table tbody tr", timeout=120_000)
    holders = page.eval_on_selector_all("#plan-table tbody tr td:nth-child(2)", "c => c.map(x => x.textContent)")
    assert set(holders) == {"USA", "JPN"}
    assert page.locator("#comparison-table tbody tr").count() >= 2
    page.wait_for_selector("#fig-frontier .main-svg", timeout=30_000)
    page.wait_for_selector("#fig-gantt .main-svg", timeout=60_000)
    page.wait_for_selector("#floor-table tbody tr", timeout=60_000)
    page.wait_for_selector("#section-invest .section-body[aria-busy='false']", timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-lab-stockpile.png"), full_page=True)
    _accessible(page)
    o.close()


@pytest.mark.parametrize(("path", "ready"), [
    ("/scenarios", "#fig-scenario-shortfall .main-svg"), ("/risk?draws=5000", "#fig-risk .main-svg"),
    ("/stockpile?commodity=gallium&draws=300&frontier=1,5&budgets=grant=50&projects=US-TALON-TAMARACK&paths=500",
     "#fig-gantt .main-svg"), ("/market", "#mk-login")])
def test_lab_views_fit_a_phone(server, browser, path, ready):
    _fits_a_phone(browser, server[0], path, ready)


def _admin(base: str, token: str, path: str, body: dict, key: str) -> dict:
    r = httpx.post(f"{base}/market/api{path}", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return r.json()


def _sign_in(o: Opened, token: str, who: str):
    page = o.goto("/market")
    page.fill("#mk-token", token)
    page.click("#mk-signin")
    page.wait_for_selector(f"#market-app[data-participant='{who}'][data-loaded]", timeout=30_000)
    return page


def _place(page, side: str, qty: str, price: str, origin: str = "", irma: str = "") -> None:
    before = page.get_attribute("#market-app", "data-loaded")
    page.select_option("#mk-side", side)
    page.fill("#mk-qty", qty)
    page.fill("#mk-price", price)
    page.fill("#mk-origin", origin)
    page.fill("#mk-irma", irma)
    page.click("#mk-submit")
    page.wait_for_function(f"() => document.querySelector('#market-app').getAttribute('data-loaded') !== '{before}'",
                           timeout=30_000)


def test_buyer_and_seller_trade_through_the_ui(server, browser):
    base, admin = server
    tokens = {}
    for pid, role, country in (("lynas", "seller", "AUS"), ("toyota", "buyer", "JPN"), ("dla", "buyer", "USA"),
                               ("dod", "programme", "USA"), ("gao", "regulator", "USA")):
        _admin(base, admin, "/v1/participants", {"id": pid, "name": pid.upper(), "role": role, "country": country},
               f"ui-p-{pid}")
        tokens[pid] = _admin(base, admin, f"/v1/participants/{pid}/tokens", {}, f"ui-t-{pid}")["token"]
    # a price floor of 110 USD/kg on NdPr oxide (as in the README's session): the programme pays the difference
    _admin(base, tokens["dod"], "/v1/programmes", {"id": "ndpr-floor", "commodity": "ndpr", "form": "oxide",
                                                   "floor": "110", "budget": "1000000", "allies_only": True}, "ui-floor")
    # under the settlement rules the seller enrols, holds the material (a warehouse receipt) and the operator
    # publishes the reference price the floor settles against
    _admin(base, tokens["lynas"], "/v1/programmes/ndpr-floor/enrolments", {}, "ui-enrol")
    _admin(base, admin, "/v1/deposits", {"owner": "lynas", "asset": "ndpr/oxide", "amount": "1000"}, "ui-receipt")
    _admin(base, admin, "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": "95",
                                                   "source": "reference price of the README's session"}, "ui-fix")

    seller = Opened(browser, base)
    sp = _sign_in(seller, tokens["lynas"], "lynas")
    _place(sp, "sell", "1000", "95", origin="AUS", irma="75")
    assert "placed (open)" in sp.inner_text("#mk-placed")
    assert sp.eval_on_selector_all("#mk-asks tbody tr td:first-child", "c => c.map(x => x.textContent)") == ["95"]
    assert "token" not in sp.url and tokens["lynas"] not in sp.url

    buyer = Opened(browser, base)
    bp = _sign_in(buyer, tokens["toyota"], "toyota")
    _place(bp, "buy", "400", "100")
    assert "1 trade at 400 kg × 95" in bp.inner_text("#mk-placed")
    trades = bp.eval_on_selector_all("#mk-trades tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert len(trades) == 1 and trades[0][1:3] == ["toyota", "lynas"] and trades[0][4:6] == ["400", "95"]
    assert trades[0][7:9] == ["ndpr-floor", "6000"]
    ledger = dict(bp.eval_on_selector_all("#mk-account tbody tr",
                                          "rs => rs.map(r => [r.cells[1].textContent, r.cells[2].textContent])"))
    assert ledger == {"USD": "-38000", "ndpr/oxide": "400"}
    bp.screenshot(path=str(ARTIFACTS / "dashboard-lab-market-buyer.png"), full_page=True)

    sp.click("#mk-refresh")
    # the seller received 400 × 95 from the buyer and 400 × (110 − 95) from the floor programme
    sp.wait_for_function("() => [...document.querySelectorAll('#mk-account tbody tr')].some("
                         "r => r.cells[1] && r.cells[1].textContent === 'USD' && r.cells[2].textContent === '44000')",
                         timeout=30_000)
    seller_orders = sp.eval_on_selector_all("#mk-orders tbody tr td:nth-child(2)", "c => c.map(x => x.textContent)")
    assert seller_orders == ["lynas"]
    # the token survives a reload of the tab (session storage); the seller cancels the 600 kg left
    sp.reload(wait_until="load")
    sp.wait_for_selector("#market-app[data-participant='lynas'][data-loaded]", timeout=30_000)
    before = sp.get_attribute("#market-app", "data-loaded")
    sp.click("#mk-orders button:has-text('Cancel')")
    try:
        sp.wait_for_function(f"() => document.querySelector('#market-app').getAttribute('data-loaded') !== '{before}'",
                             timeout=30_000)
    except Exception:
        raise AssertionError(sp.inner_text("#mk-error")) from None
    status = sp.eval_on_selector_all("#mk-orders tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert status[0][5:8] == ["600", "95", "cancelled"], status
    assert sp.eval_on_selector_all("#mk-asks tbody tr td", "c => c.map(x => x.textContent)") == ["none"]

    # a third participant sees neither order nor trade, and its own account is empty
    other = Opened(browser, base)
    op = _sign_in(other, tokens["dla"], "dla")
    for table in ("#mk-orders", "#mk-trades"):
        assert op.eval_on_selector_all(f"{table} tbody tr td", "c => c.map(x => x.textContent)") == ["none"]
    op.screenshot(path=str(ARTIFACTS / "dashboard-lab-market-other.png"), full_page=True)

    # the programme sees its programme's account: it paid the floor
    prog = Opened(browser, base)
    pp = _sign_in(prog, tokens["dod"], "dod")
    rows = pp.eval_on_selector_all("#mk-account tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert ["ndpr-floor", "USD", "-6000"] in rows, rows
    prog.close()

    # a regulator reads everything (both orders) and gets the audit view; it cannot place orders
    reg = Opened(browser, base)
    rp = _sign_in(reg, tokens["gao"], "gao")
    owners = rp.eval_on_selector_all("#mk-orders tbody tr td:nth-child(2)", "c => c.map(x => x.textContent)")
    assert sorted(owners) == ["lynas", "toyota"]
    rp.wait_for_selector("#mk-audit-section:not([hidden])")
    assert "chain intact" in rp.inner_text("#mk-audit-head")
    reg.close()

    # the audit view needs the audit scope; the admin sees the chain and the trial balance
    adm = Opened(browser, base)
    ap = _sign_in(adm, admin, "admin")
    ap.wait_for_selector("#mk-audit-section:not([hidden])")
    head = ap.inner_text("#mk-audit-head")
    assert "chain intact" in head and "trial balance balanced" in head and "accounts agree" in head
    assert ap.locator("#mk-audit tbody tr").count() >= 5
    ap.screenshot(path=str(ARTIFACTS / "dashboard-lab-market-audit.png"), full_page=True)
    _accessible(ap)
    for o in (seller, buyer, other, adm):
        o.close()
