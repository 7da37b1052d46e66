"""The marketplace service end to end, through its HTTP API, on SQLite and PostgreSQL.

Expected numbers are worked out by hand from the market rules (floor: max(0, floor − price) × qty; CfD:
(strike − price) × qty; tariff: book price = limit × (1 + rate), levy = value × rate / (1 + rate); reference:
book price = max(limit, reference); reference = (cash + capex + Σ responsible) × (1 + margin)).
Authorisation is covered by test_server_authz.py.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from decimal import Decimal

import pytest
import sqlalchemy as sa
from serverkit import BACKENDS, BUY, SELL, Market, database_url
from serverkit import open_market as _open_market

D = Decimal


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    return database_url(request.param, tmp_path)


@pytest.fixture()
def sqlite_url(tmp_path):
    return database_url("sqlite", tmp_path)


def open_market(url, tmp_path, **kw):
    """serverkit's market; SQLite without the per-commit fsync (durability across power loss is not tested here)."""
    return _open_market(url, tmp_path, **{"durable": False, **kw})


def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def balances(m: Market, who: str, owner: str) -> dict[str, Decimal]:
    return {b["asset"]: D(b["amount"]) for b in ok(m.get(who, f"/v1/accounts/{owner}"))["balances"]}


def assert_trial_balance_zero(m: Market) -> None:
    tb = ok(m.get("gao", "/v1/ledger/trial-balance"))
    assert tb["balanced"] is True and tb["accounts_agree"] is True
    assert all(D(t["amount"]) == 0 for t in tb["totals"]), tb


def programme(m: Market, who: str, pid: str, **terms) -> dict:
    body = {"id": pid, "commodity": "ndpr", "form": "oxide", **terms}
    return ok(m.post(who, "/v1/programmes", body), 201)


def deposit(m: Market, owner: str, amount: str, asset: str = "USD") -> None:
    ok(m.post("admin", "/v1/deposits", {"owner": owner, "asset": asset, "amount": amount}), 201)


def enrol(m: Market, seller: str, pid: str, material: str | None = "1000") -> dict:
    """The seller enrols in the programme, with ``material`` kg of NdPr oxide booked into its account first (the
    support is paid only on material the seller holds)."""
    if material is not None:
        deposit(m, seller, material, "ndpr/oxide")
    return ok(m.post(seller, f"/v1/programmes/{pid}/enrolments", {}), 201)


def fixing(m: Market, price: str) -> dict:
    """The operator publishes the NdPr oxide reference price (a benchmark) that support is computed against."""
    return ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": price,
                                                         "source": "hand example"}), 201)


def sa_engine(url: str) -> sa.Engine:
    from critmin.server.db import make_engine

    return make_engine(url)


@contextmanager
def reopened(url: str, tokens: dict[str, str], **app_kw):
    """The service restarted on an existing database, with the tokens issued before."""
    from fastapi.testclient import TestClient

    from critmin.server.app import create_app

    with TestClient(create_app(url, **app_kw)) as client:
        yield Market(client, dict(tokens))


# ---------------------------------------------------------------------- settlement with programmes
def test_floor_settles_support_per_trade(url, tmp_path):
    with open_market(url, tmp_path) as m:
        programme(m, "dod", "dod-floor", floor="110", budget="100000")
        deposit(m, "dod-floor", "100000")
        enrol(m, "lynas", "dod-floor")
        fixing(m, "95")
        sell = m.order("lynas", SELL)["order"]                     # 1000 kg at 95
        placed = m.order("toyota", BUY)                            # 400 kg, up to 100
        (t,) = placed["trades"]
        assert (D(t["price"]), D(t["quantity"])) == (95, 400)      # the resting order's price
        assert (t["buyer_id"], t["seller_id"], t["programme_id"]) == ("toyota", "lynas", "dod-floor")
        assert (D(t["reference_price"]), t["fixing_id"]) == (95, 0)
        assert D(t["support_due"]) == D(t["support_paid"]) == (110 - 95) * 400 == 6000
        assert t["support_reason"] == "floor" and t["mechanism"] == "continuous" and D(t["levy"]) == 0
        assert placed["order"]["status"] == "filled" and D(placed["order"]["remaining"]) == 0
        s = ok(m.get("lynas", f"/v1/orders/{sell['id']}"))
        assert (s["status"], D(s["remaining"]), s["version"]) == ("open", 600, 2)
        assert balances(m, "lynas", "lynas") == {"USD": 95 * 400 + 6000, "ndpr/oxide": 1000 - 400}
        assert balances(m, "toyota", "toyota") == {"USD": -95 * 400, "ndpr/oxide": 400}
        assert balances(m, "dod", "dod-floor") == {"USD": 100000 - 6000}
        p = ok(m.get("toyota", "/v1/programmes/dod-floor"))
        assert (D(p["spent"]), D(p["remaining_budget"])) == (6000, 94000)
        assert ok(m.get("gao", f"/v1/trades/{t['id']}")) == t
        assert_trial_balance_zero(m)


def test_account_balances_are_checked_against_the_ledger(url, tmp_path):
    """Accounts are read from the balances the ledger's own transactions keep; the trial balance recomputes them from
    the entries and reports a stored balance that disagrees, and a restart rebuilds from the entries."""
    with open_market(url, tmp_path) as m:
        deposit(m, "toyota", "50000")
        m.order("lynas", SELL)
        m.order("toyota", BUY)
        assert balances(m, "toyota", "toyota") == {"USD": 50000 - 95 * 400, "ndpr/oxide": 400}
        assert_trial_balance_zero(m)
        engine = sa_engine(url)
        try:
            with engine.begin() as c:
                c.execute(sa.text("UPDATE account_balances SET amount = '1' WHERE owner = 'toyota' AND asset = 'USD'"))
        finally:
            engine.dispose()
        assert balances(m, "toyota", "toyota")["USD"] == 1
        tb = ok(m.get("gao", "/v1/ledger/trial-balance"))
        assert (tb["balanced"], tb["accounts_agree"]) == (True, False)
        tokens = m.tokens
    with reopened(url, tokens) as again:
        deposit(again, "toyota", "1")  # the account moves again: its balance is rewritten from the journal's sum
        assert balances(again, "toyota", "toyota") == {"USD": 50000 - 95 * 400 + 1, "ndpr/oxide": 400}
        assert_trial_balance_zero(again)


def test_cfd_is_two_sided(url, tmp_path):
    with open_market(url, tmp_path) as m:
        programme(m, "meti", "meti-cfd", cfd_strike="100", budget="10000", max_payback_per_seller="10000")
        deposit(m, "meti-cfd", "10000")
        enrol(m, "lynas", "meti-cfd")
        enrol(m, "mp", "meti-cfd")
        fixing(m, "90")
        m.order("lynas", SELL, quantity="200", limit_price="90")
        (below,) = m.order("toyota", BUY, quantity="200")["trades"]
        assert D(below["price"]) == 90 and D(below["support_paid"]) == (100 - 90) * 200 == 2000
        assert below["support_reason"] == "cfd"
        fixing(m, "105")
        m.order("mp", SELL, origin="USA", quantity="300", limit_price="105")
        (above,) = m.order("dla", BUY, quantity="300", limit_price="110")["trades"]
        assert D(above["price"]) == 105
        assert D(above["support_due"]) == D(above["support_paid"]) == (100 - 105) * 300 == -1500  # payback
        assert above["support_reason"] == "cfd"
        assert balances(m, "mp", "mp")["USD"] == 105 * 300 - 1500
        assert balances(m, "lynas", "lynas")["USD"] == 90 * 200 + 2000
        assert balances(m, "meti", "meti-cfd") == {"USD": 10000 - 2000 + 1500}
        p = ok(m.get("meti", "/v1/programmes/meti-cfd"))
        assert (D(p["spent"]), D(p["remaining_budget"])) == (500, 9500)
        assert_trial_balance_zero(m)


def test_floor_budget_cap(url, tmp_path):
    with open_market(url, tmp_path) as m:
        programme(m, "dod", "dod-floor", floor="110", budget="5000")
        enrol(m, "lynas", "dod-floor")
        fixing(m, "95")
        m.order("lynas", SELL)
        (t1,) = m.order("toyota", BUY)["trades"]
        assert (D(t1["support_due"]), D(t1["support_paid"]), t1["support_reason"]) == (6000, 5000, "capped")
        p = ok(m.get("dod", "/v1/programmes/dod-floor"))
        assert (D(p["spent"]), D(p["remaining_budget"])) == (5000, 0)
        (t2,) = m.order("dla", BUY, quantity="100")["trades"]
        assert (D(t2["support_due"]), D(t2["support_paid"]), t2["support_reason"]) == ((110 - 95) * 100, 0, "capped")
        assert balances(m, "lynas", "lynas")["USD"] == 95 * 500 + 5000
        assert balances(m, "dod", "dod-floor") == {"USD": -5000}   # unfunded: the ledger books what is owed
        # a budget raise (PATCH) lets the programme pay again
        ok(m.patch("dod", "/v1/programmes/dod-floor", {"budget": "6000"}, **{"If-Match": '"1"'}))
        (t3,) = m.order("dla", BUY, quantity="100")["trades"]
        assert (D(t3["support_paid"]), t3["support_reason"]) == (1000, "capped")
        assert D(ok(m.get("dod", "/v1/programmes/dod-floor"))["remaining_budget"]) == 0
        assert_trial_balance_zero(m)


# ---------------------------------------------------------------------- non-market adjustment
def test_tariff_policy(url, tmp_path):
    with open_market(url, tmp_path) as m:
        programme(m, "meti", "meti-floor", floor="120", budget="100000")  # excludes non-market origins
        pol = ok(m.put("dod", "/v1/policies/ndpr/oxide", {"nonmarket_tariff_rate": "0.25",
                                                          "nonmarket_origins": ["CHN"]}))
        assert (pol["set_by"], D(pol["nonmarket_tariff_rate"]), pol["version"]) == ("dod", D("0.25"), 1)
        lot = m.order("shenghe", SELL, origin="CHN", limit_price="80", attestations={})["order"]
        assert lot["nonmarket"] is True                              # flagged by the policy's origin list
        assert (D(lot["limit_price"]), D(lot["book_price"])) == (80, 80 * D("1.25"))
        (t,) = m.order("toyota", BUY, limit_price="105", requirements={})["trades"]
        value = 100 * 400
        assert (D(t["price"]), t["nonmarket"]) == (100, True)
        assert D(t["levy"]) == value * D("0.25") / D("1.25") == 8000
        assert t["programme_id"] is None and D(t["support_paid"]) == 0
        assert balances(m, "toyota", "toyota")["USD"] == -value     # the buyer pays the book price
        assert balances(m, "shenghe", "shenghe")["USD"] == value - 8000
        assert balances(m, "dod", "dod") == {"USD": 8000}            # the levy goes to the policy setter
        # a seller may declare a non-market origin itself
        lot2 = m.order("mp", SELL, origin="USA", nonmarket=True, limit_price="90")["order"]
        assert lot2["nonmarket"] is True and D(lot2["book_price"]) == D("112.5")
        # a market origin is never adjusted
        assert D(m.order("lynas", SELL, limit_price="90")["order"]["book_price"]) == 90
        # changing a policy needs its version
        assert m.put("dod", "/v1/policies/ndpr/oxide", {"nonmarket_tariff_rate": "0.3"}).status_code == 428
        assert_trial_balance_zero(m)


def test_reference_price_policy(url, tmp_path):
    cost = {"cash_cost": "60", "sustaining_capex": "10", "responsible_costs": {"irma_audit": "5", "tailings": "5"},
            "margin_rate": "0.1", "sources": ["hand example"]}
    with open_market(url, tmp_path) as m:
        ok(m.put("dod", "/v1/policies/ndpr/oxide", {"cost_inputs": cost, "nonmarket_use_reference": True,
                                                    "nonmarket_origins": ["CHN"]}))
        ref = ok(m.get("toyota", "/v1/policies/ndpr/oxide"))["reference_price"]   # visible to every reader
        assert D(ref["conventional"]) == (60 + 10) * D("1.1") == 77
        assert D(ref["premium"]) == (5 + 5) * D("1.1") == 11               # the responsible premium, shown apart
        assert D(ref["price"]) == 88 and ref["sources"] == ["hand example"]
        assert D(ref["terms"]["responsible:tailings"]) == 5 and D(ref["terms"]["margin"]) == 8
        low = m.order("shenghe", SELL, origin="CHN", limit_price="70", quantity="100")["order"]
        high = m.order("shenghe", SELL, origin="CHN", limit_price="95", quantity="100")["order"]
        market = m.order("lynas", SELL, limit_price="80", quantity="100")["order"]
        assert [D(o["book_price"]) for o in (low, high, market)] == [88, 95, 80]    # max(limit, 88) for CHN only
        trades = m.order("toyota", BUY, quantity="300", requirements={})["trades"]
        assert [(t["sell_order_id"], D(t["price"]), D(t["levy"])) for t in trades] == [
            (market["id"], 80, 0), (low["id"], 88, 0), (high["id"], 95, 0)]
        assert balances(m, "toyota", "toyota")["USD"] == -(80 + 88 + 95) * 100
        assert balances(m, "shenghe", "shenghe")["USD"] == (88 + 95) * 100
        assert_trial_balance_zero(m)


# ---------------------------------------------------------------------- matching
def test_eligibility_allied_only_and_min_irma(url, tmp_path):
    with open_market(url, tmp_path) as m:
        chn = m.order("shenghe", SELL, origin="CHN", limit_price="90", quantity="500")["order"]
        aus = m.order("lynas", SELL, limit_price="95", quantity="500")["order"]
        (t,) = m.order("toyota", BUY)["trades"]                     # allied_only: skips the cheaper CHN lot
        assert (t["sell_order_id"], D(t["price"]), t["origin"]) == (aus["id"], 95, "AUS")
        assert D(ok(m.get("shenghe", f"/v1/orders/{chn['id']}"))["remaining"]) == 500   # skipped, still open
        (t,) = m.order("dla", BUY, quantity="100", requirements={})["trades"]          # anyone takes it
        assert (t["sell_order_id"], D(t["price"])) == (chn["id"], 90)
        # min_irma: the IRMA-50 lot is skipped for the IRMA-100 one
        irma = {"grade": "irma"}
        low = m.order("mp", SELL, **irma, origin="USA", limit_price="90", attestations={"irma_level": 50})["order"]
        high = m.order("lynas", SELL, **irma, limit_price="95", attestations={"irma_level": 100})["order"]
        (t,) = m.order("toyota", BUY, **irma, requirements={"min_irma": 75})["trades"]
        assert t["sell_order_id"] == high["id"]
        assert ok(m.get("mp", f"/v1/orders/{low['id']}"))["status"] == "open"
        # no match at all: the bid rests
        rest = m.order("toyota", BUY, **irma, quantity="50", requirements={"min_irma": 100, "allied_only": True,
                                                                           "allowed_origins": ["CAN"]})
        assert rest["trades"] == [] and rest["order"]["status"] == "open"


def test_self_trade_is_impossible(sqlite_url, tmp_path):
    """A participant holds one role, so it can never sit on both sides of the book."""
    with open_market(sqlite_url, tmp_path) as m:
        m.order("lynas", SELL)
        r = m.post("lynas", "/v1/orders", BUY)
        assert r.status_code == 403 and r.json()["error"]["field"] == "side"
        r = m.post("toyota", "/v1/orders", SELL)
        assert r.status_code == 403 and r.json()["error"]["field"] == "side"
        assert [o["side"] for o in ok(m.get("lynas", "/v1/orders"))["items"]] == ["sell"]
        assert ok(m.get("gao", "/v1/trades"))["items"] == []


def test_partial_fills(url, tmp_path):
    with open_market(url, tmp_path) as m:
        sell = m.order("lynas", SELL)["order"]                                    # 1000
        m.order("toyota", BUY)                                                    # takes 400
        placed = m.order("dla", BUY, quantity="700")                              # takes the other 600
        assert [D(t["quantity"]) for t in placed["trades"]] == [600]
        assert (placed["order"]["status"], D(placed["order"]["remaining"])) == ("open", 100)
        s = ok(m.get("lynas", f"/v1/orders/{sell['id']}"))
        assert (s["status"], D(s["remaining"]), s["version"]) == ("filled", 0, 3)
        book = ok(m.get("toyota", "/v1/books/ndpr/oxide/std"))
        assert book["asks"] == [] and book["bids"] == [{"price": "100", "quantity": "100", "orders": 1}]
        assert balances(m, "lynas", "lynas")["ndpr/oxide"] == -1000
        assert_trial_balance_zero(m)


def test_call_auction_mode(url, tmp_path):
    with open_market(url, tmp_path) as m:
        mode = ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"mode": "call"}))
        assert (mode["mode"], mode["version"], mode["trades"]) == ("call", 1, [])
        lynas = m.order("lynas", SELL)["order"]                                   # 1000 @ 95
        m.order("mp", SELL, origin="USA", quantity="500", limit_price="90")
        for who, qty, px in (("toyota", "400", "100"), ("dla", "800", "97")):
            assert m.order(who, BUY, quantity=qty, limit_price=px)["trades"] == []   # crossing, but resting
        book = ok(m.get("gao", "/v1/books/ndpr/oxide/std"))
        assert (book["mode"], len(book["bids"]), len(book["asks"])) == ("call", 2, 2)
        # p=90: 500 traded; p=95 and p=97: 1200 traded, imbalance 300 each → the lower, 95; p=100: 400
        auction = ok(m.post("admin", "/v1/books/ndpr/oxide/std/auction"))
        assert D(auction["clearing_price"]) == 95
        assert [(t["buyer_id"], t["seller_id"], D(t["quantity"])) for t in auction["trades"]] == [
            ("toyota", "mp", 400), ("dla", "mp", 100), ("dla", "lynas", 700)]
        assert {(D(t["price"]), t["mechanism"]) for t in auction["trades"]} == {(95, "call")}
        assert D(ok(m.get("lynas", f"/v1/orders/{lynas['id']}"))["remaining"]) == 300
        assert m.order("toyota", BUY, quantity="200", limit_price="96")["trades"] == []
        # back to continuous: the book is uncrossed first (one auction: 200 at 95), then trades continuously
        back = ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"mode": "continuous"}, **{"If-Match": '"1"'}))
        assert (back["mode"], back["version"]) == ("continuous", 2)
        assert [(D(t["quantity"]), D(t["price"]), t["mechanism"]) for t in back["trades"]] == [(200, 95, "call")]
        (t,) = m.order("dla", BUY, quantity="50")["trades"]
        assert (D(t["price"]), t["mechanism"]) == (95, "continuous")
        assert m.put("admin", "/v1/books/ndpr/oxide/std", {"mode": "call"}, **{"If-Match": '"1"'}).status_code == 412
        assert_trial_balance_zero(m)


# ---------------------------------------------------------------------- idempotency and concurrency
def test_idempotency(url, tmp_path):
    with open_market(url, tmp_path) as m:
        first = m.post("toyota", "/v1/orders", BUY, key="order-1")
        assert first.status_code == 201 and "Idempotency-Replayed" not in first.headers
        again = m.post("toyota", "/v1/orders", BUY, key="order-1")
        assert again.status_code == 201 and again.headers["Idempotency-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(ok(m.get("toyota", "/v1/orders"))["items"]) == 1
        audit_count = ok(m.get("gao", "/v1/audit/head"))["count"]
        other = m.post("toyota", "/v1/orders", {**BUY, "quantity": "5"}, key="order-1")
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        assert other.json()["error"]["field"] == "Idempotency-Key"
        # keys belong to a participant: dla may use the same one
        theirs = m.post("dla", "/v1/orders", BUY, key="order-1")
        assert theirs.status_code == 201 and "Idempotency-Replayed" not in theirs.headers
        assert theirs.json()["order"]["id"] != first.json()["order"]["id"]
        assert ok(m.get("gao", "/v1/audit/head"))["count"] == audit_count + 1
        # a refusal is remembered too, and a token secret is shown once only
        tok = m.post("dla", "/v1/participants/dla/tokens", {"label": "ci"}, key="tok-1")
        replay = m.post("dla", "/v1/participants/dla/tokens", {"label": "ci"}, key="tok-1")
        assert tok.status_code == replay.status_code == 201 and tok.json()["token"]
        assert replay.json()["token"] is None and replay.json()["id"] == tok.json()["id"]
        assert len(ok(m.get("dla", "/v1/participants/dla/tokens"))) == 2


def test_optimistic_concurrency(url, tmp_path):
    with open_market(url, tmp_path) as m:
        oid = m.order("lynas", SELL)["order"]["id"]
        got = m.get("lynas", f"/v1/orders/{oid}")
        assert got.headers["ETag"] == '"1"'
        r = m.delete("lynas", f"/v1/orders/{oid}")
        assert r.status_code == 428 and r.json()["error"] == {
            "code": "precondition_required", "field": "If-Match",
            "message": "If-Match header with the order's current version is required"}
        m.order("toyota", BUY, quantity="100")                              # a fill moves the order to version 2
        r = m.delete("lynas", f"/v1/orders/{oid}", **{"If-Match": '"1"'})
        assert r.status_code == 412 and r.json()["error"]["code"] == "version_mismatch"
        r = m.delete("lynas", f"/v1/orders/{oid}", **{"If-Match": 'W/"2"'})
        assert r.status_code == 200 and r.json() == {"order_id": oid, "status": "cancelled", "remaining": "900",
                                                     "version": 3}
        assert r.headers["ETag"] == '"3"'
        assert m.delete("lynas", f"/v1/orders/{oid}", **{"If-Match": '"3"'}).status_code == 409   # not open
        assert ok(m.get("gao", "/v1/books/ndpr/oxide/std"))["asks"] == []
        # programme PATCH
        programme(m, "dod", "dod-floor", floor="110", budget="1000")
        enrol(m, "mp", "dod-floor")
        fixing(m, "95")
        r = m.patch("dod", "/v1/programmes/dod-floor", {"budget": "2000"})
        assert r.status_code == 428
        r = m.patch("dod", "/v1/programmes/dod-floor", {"budget": "2000"}, **{"If-Match": '"7"'})
        assert r.status_code == 412 and "version 1" in r.json()["error"]["message"]
        r = m.patch("dod", "/v1/programmes/dod-floor", {"budget": "2000", "active": False}, **{"If-Match": '"1"'})
        assert r.status_code == 200 and r.headers["ETag"] == '"2"'
        assert (r.json()["budget"], r.json()["active"], r.json()["version"]) == ("2000", False, 2)
        assert m.patch("dod", "/v1/programmes/dod-floor", {"active": True}, **{"If-Match": '"1"'}).status_code == 412
        # an inactive programme pays nothing
        m.order("mp", SELL, origin="USA", quantity="10")
        (t,) = m.order("dla", BUY, quantity="10")["trades"]
        assert t["programme_id"] is None and D(t["support_paid"]) == 0


def test_retry_with_a_different_if_match_is_not_a_replay(url, tmp_path):
    """Same Idempotency-Key, different If-Match: a different request, refused (409), never answered with the stale
    first answer."""
    with open_market(url, tmp_path) as m:
        oid = m.order("lynas", SELL)["order"]["id"]
        assert m.delete("lynas", f"/v1/orders/{oid}", key="cancel-1").status_code == 428
        r = m.delete("lynas", f"/v1/orders/{oid}", key="cancel-1", **{"If-Match": '"1"'})
        assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused", r.text
        ok(m.delete("lynas", f"/v1/orders/{oid}", key="cancel-2", **{"If-Match": '"1"'}))
        r = m.delete("lynas", f"/v1/orders/{oid}", key="cancel-2", **{"If-Match": '"1"'})
        assert r.status_code == 200 and r.headers["Idempotency-Replayed"] == "true"


def test_pagination(url, tmp_path):
    with open_market(url, tmp_path) as m:
        m.order("lynas", SELL)
        for _ in range(7):
            m.order("toyota", BUY, quantity="10")                           # 7 trades
        for _ in range(3):
            m.order("toyota", BUY, quantity="10", limit_price="1")          # resting

        def walk(who: str, path: str, key: str, limit: int) -> list:
            seen, after, pages = [], None, 0
            while True:
                q = f"{path}?limit={limit}" + (f"&after={after}" if after is not None else "")
                page = ok(m.get(who, q))
                assert len(page["items"]) <= limit
                seen += [item[key] for item in page["items"]]
                pages += 1
                after = page["next_after"]
                if after is None:
                    return seen
                assert after == page["items"][-1][key]
                assert pages < 50

        every = [o["seq"] for o in ok(m.get("toyota", "/v1/orders?limit=500"))["items"]]
        assert len(every) == 10                                             # toyota's own 10, not lynas's
        for limit in (1, 3, 4, 10):
            assert walk("toyota", "/v1/orders", "seq", limit) == every      # each once, in order
        assert len(walk("toyota", "/v1/trades", "id", 3)) == 7
        assert walk("admin", "/v1/participants", "id", 3) == sorted(["admin", "lynas", "mp", "shenghe", "toyota",
                                                                     "dla", "dod", "meti", "gao"])
        audit = walk("gao", "/v1/audit", "seq", 4)
        assert audit == list(range(ok(m.get("gao", "/v1/audit/head"))["count"]))
        open_ = ok(m.get("toyota", "/v1/orders?status=open&limit=500"))["items"]
        assert [D(o["limit_price"]) for o in open_] == [1, 1, 1]
        assert ok(m.get("toyota", "/v1/orders?after=999999"))["items"] == []


def test_rate_limit(sqlite_url, tmp_path):
    with open_market(sqlite_url, tmp_path, cast={"toyota": ("buyer", "JPN")}, rate=0.01, burst=5) as m:
        codes = [m.get("toyota", "/v1/me").status_code for _ in range(5)]
        assert codes == [200] * 5
        r = m.get("toyota", "/v1/me")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        assert m.get("admin", "/v1/me").status_code == 200                 # per token


# ---------------------------------------------------------------------- malformed requests
BAD_BODIES = [
    # (what, body change, expected error.field, words in the message)
    ("bad decimal", {"quantity": "12,5"}, "body.quantity", ["body.quantity", "pattern"]),
    ("negative decimal", {"limit_price": "-3"}, "body.limit_price", ["body.limit_price"]),
    ("unknown field", {"colour": "red"}, "body.colour", ["body.colour", "Extra inputs are not permitted"]),
    ("missing field", {"location": None}, "body.location", ["body.location", "Field required"]),
    ("wrong type", {"quantity": 12.5}, "body.quantity", ["body.quantity", "string"]),
    ("wrong nested type", {"attestations": {"irma_level": "high"}}, "body.attestations.irma_level",
     ["body.attestations.irma_level", "integer"]),
    ("bad side", {"side": "short"}, "body.side", ["body.side", "'buy' or 'sell'"]),
    ("bad date", {"delivery_start": "2026-13-01"}, "body.delivery_start", ["body.delivery_start"]),
    ("lower-case country", {"origin": "aus"}, "body.origin", ["body.origin"]),
    # strict input: a date is an ISO string, a boolean is true/false, an integer is a JSON integer
    ("date as a number", {"delivery_start": 0}, "body.delivery_start",
     ["body.delivery_start", "ISO date string YYYY-MM-DD", "number"]),
    ("date with a time", {"delivery_end": "2027-01-31T00:00:00"}, "body.delivery_end",
     ["body.delivery_end", "YYYY-MM-DD"]),
    ("date as an array", {"delivery_end": [2027, 1, 31]}, "body.delivery_end", ["body.delivery_end", "an array"]),
    ("boolean as a string", {"nonmarket": "yes"}, "body.nonmarket", ["body.nonmarket", "boolean"]),
    ("boolean as a number", {"attestations": {"oecd_ddg": 1}}, "body.attestations.oecd_ddg",
     ["body.attestations.oecd_ddg", "boolean"]),
    ("boolean as text true", {"requirements": {"allied_only": "true"}}, "body.requirements.allied_only",
     ["body.requirements.allied_only", "boolean"]),
    ("integer as a string", {"attestations": {"irma_level": "50"}}, "body.attestations.irma_level",
     ["body.attestations.irma_level", "integer"]),
    ("client_order_id longer than its column", {"client_order_id": "x" * 65}, "body.client_order_id",
     ["body.client_order_id", "64"]),
]


@pytest.mark.parametrize(("what", "change", "field", "words"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_bodies(market_sqlite, what, change, field, words):
    m = market_sqlite
    body = {k: v for k, v in {**SELL, **change}.items() if v is not None}
    r = m.post("lynas", "/v1/orders", body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["code"], err["field"]) == ("invalid_request", field)
    for w in words:
        assert w in err["message"], err


def test_malformed_requests_outside_the_schema(market_sqlite):
    m = market_sqlite
    before = len(ok(m.get("gao", "/v1/orders?limit=500"))["items"])
    r = m.client.post("/v1/orders", content=b'{"side": "sell", "quantity": ',
                      headers={**m.headers("lynas"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert "JSON" in r.json()["error"]["message"]
    # values that pass the schema but not the market rules; the message names the field
    for change, name in (({"origin": "XXX"}, "origin"), ({"quantity": "0"}, "quantity"),
                         ({"delivery_end": "2026-01-01"}, "delivery_end")):
        r = m.post("lynas", "/v1/orders", {**SELL, **change})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert name in err["message"] and (err["field"] or "").split(".")[-1] == name, err
    r = m.post("admin", "/v1/participants", {"id": "x", "name": "X", "role": "buyer", "country": "XXX"})
    assert r.status_code == 422 and "country" in r.json()["error"]["message"]
    # query, path and header parameters
    r = m.get("toyota", "/v1/orders?limit=0")
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.limit"
    r = m.get("toyota", "/v1/orders?status=pending")
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.status"
    r = m.client.post("/v1/orders", json=SELL, headers={"Authorization": m.headers("lynas")["Authorization"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "header.Idempotency-Key"
    oid = m.order("lynas", SELL)["order"]["id"]
    r = m.delete("lynas", f"/v1/orders/{oid}", **{"If-Match": "latest"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "header.If-Match"
    r = m.post("admin", "/v1/deposits", {"owner": "lynas", "asset": "USD", "amount": "0"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.amount"
    r = m.post("admin", "/v1/participants/lynas/tokens", {"scopes": ["admin"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_scope"
    r = m.post("dod", "/v1/programmes", {"id": "both", "commodity": "ndpr", "form": "oxide", "floor": "1",
                                         "cfd_strike": "2", "budget": "1"})
    assert r.status_code == 422 and "floor" in r.json()["error"]["message"]
    for body, field in (({"id": "strict", "commodity": "ndpr", "form": "oxide", "floor": "1", "budget": "1",
                          "allies_only": "yes"}, "body.allies_only"),
                        ({"id": "strict", "commodity": "ndpr", "form": "oxide", "floor": "1", "budget": 1},
                         "body.budget")):
        r = m.post("dod", "/v1/programmes", body)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    r = m.put("dod", "/v1/policies/ndpr/oxide", {"nonmarket_use_reference": "no"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.nonmarket_use_reference", r.text
    assert len(ok(m.get("gao", "/v1/orders?limit=500"))["items"]) == before + 1


@pytest.fixture(scope="module")
def market_sqlite(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("malformed")
    with open_market(database_url("sqlite", tmp), tmp, durable=False) as m:
        yield m


# ---------------------------------------------------------------------- durability
def test_restart_recovery(url, tmp_path):
    with open_market(url, tmp_path) as m:
        tokens = dict(m.tokens)
        programme(m, "dod", "dod-floor", floor="110", budget="100000")
        deposit(m, "dod-floor", "100000")
        enrol(m, "lynas", "dod-floor")
        fixing(m, "95")
        sell = m.order("lynas", SELL)["order"]
        first = m.post("toyota", "/v1/orders", BUY, key="before-restart")
        assert first.status_code == 201
        spare = ok(m.post("dla", "/v1/participants/dla/tokens", {"label": "spare"}), 201)
        ok(m.delete("dla", f"/v1/tokens/{spare['id']}"))
        head = ok(m.get("gao", "/v1/audit/head"))
        before = {who: balances(m, "gao", who) for who in ("lynas", "toyota", "dod-floor")}
    with reopened(url, tokens) as m:
        assert ok(m.get("gao", "/v1/audit/head?verify=true")) == {**head, "valid": True, "first_bad": None,
                                                                   "reason": "ok"}
        assert {who: balances(m, "gao", who) for who in before} == before
        assert m.client.get("/v1/me", headers={"Authorization": f"Bearer {spare['token']}"}).status_code == 401
        replay = m.post("toyota", "/v1/orders", BUY, key="before-restart")
        assert replay.headers["Idempotency-Replayed"] == "true" and replay.json() == first.json()
        assert D(ok(m.get("lynas", f"/v1/orders/{sell['id']}"))["remaining"]) == 600
        placed = m.order("dla", BUY, quantity="500")                        # the resting order still matches
        (t,) = placed["trades"]
        assert (t["sell_order_id"], D(t["price"]), D(t["quantity"]), D(t["support_paid"])) == (
            sell["id"], 95, 500, 15 * 500)
        assert t["id"] == first.json()["trades"][0]["id"] + 1                 # numbering resumes
        assert placed["order"]["id"] == "ord_2"
        assert balances(m, "lynas", "lynas")["USD"] == before["lynas"]["USD"] + 95 * 500 + 15 * 500
        assert D(ok(m.get("dod", "/v1/programmes/dod-floor"))["spent"]) == 15 * 900
        after = ok(m.get("gao", "/v1/audit/head?verify=true"))
        assert after["valid"] is True and after["count"] == head["count"] + 1
        assert_trial_balance_zero(m)


def test_tokens_are_stored_hashed(url, tmp_path):
    with open_market(url, tmp_path) as m:
        extra = ok(m.post("toyota", "/v1/participants/toyota/tokens", {"label": "extra"}, key="t"), 201)
        m.post("toyota", "/v1/participants/toyota/tokens", {"label": "extra"}, key="t")        # replay
        secrets_ = {**m.tokens, "extra": extra["token"]}
        engine = sa_engine(url)
        try:
            meta = sa.MetaData()
            meta.reflect(engine)
            with engine.connect() as c:
                text = "\n".join(repr(tuple(row)) for t in meta.sorted_tables for row in c.execute(sa.select(t)))
                hashes = dict(c.execute(sa.select(sa.column("id"), sa.column("token_hash"))
                                        .select_from(sa.table("tokens"))).all())
        finally:
            engine.dispose()
        assert {"tokens", "audit_log", "idempotency"} <= set(meta.tables)
        for who, secret in secrets_.items():
            assert secret not in text and secret[20:] not in text, who            # neither it nor its random part
            tid = "tok_" + secret.split("_")[1]
            assert hashes[tid] == hashlib.sha256(secret.encode()).hexdigest(), who
        assert len(hashes) == len(secrets_)
        if url.startswith("sqlite"):
            raw = b"".join(p.read_bytes() for p in tmp_path.glob("market.sqlite3*"))
            assert not any(s.encode() in raw for s in secrets_.values())


def test_token_revocation_is_immediate(url, tmp_path):
    with open_market(url, tmp_path) as m:
        assert m.get("toyota", "/v1/me").status_code == 200
        (tok,) = ok(m.get("toyota", "/v1/participants/toyota/tokens"))
        r = ok(m.delete("admin", f"/v1/tokens/{tok['id']}"))
        assert (r["revoked"], r["version"]) == (True, 2)
        for path in ("/v1/me", "/v1/orders"):
            r = m.get("toyota", path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert m.post("toyota", "/v1/orders", BUY).status_code == 401
        # self-revocation
        ok(m.delete("dla", f"/v1/tokens/{ok(m.get('dla', '/v1/me'))['token_id']}"))
        assert m.get("dla", "/v1/me").status_code == 401
        listed = ok(m.get("admin", "/v1/participants/toyota/tokens"))
        assert [(t["id"], t["revoked"]) for t in listed] == [(tok["id"], True)]


# ---------------------------------------------------------------------- audit log
def test_audit_tampering_is_detected(url, tmp_path):
    from typer.testing import CliRunner

    from critmin.cli.main import app as cli

    def verify_file(m: Market, name: str):
        r = m.get("gao", "/v1/audit/export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        path = tmp_path / name
        path.write_bytes(r.content)
        return CliRunner().invoke(cli, ["audit", "verify", str(path)])

    with open_market(url, tmp_path) as m:
        programme(m, "dod", "dod-floor", floor="110", budget="1000")
        deposit(m, "dod-floor", "1000")
        m.order("lynas", SELL)
        m.order("toyota", BUY)
        head = ok(m.get("gao", "/v1/audit/head?verify=true"))
        assert head["valid"] is True
        res = verify_file(m, "clean.jsonl")
        assert res.exit_code == 0, res.output
        assert f"{head['count']} records, chain intact" in res.output
        engine = sa_engine(url)
        a = sa.table("audit_log", sa.column("seq"), sa.column("kind"), sa.column("payload"))
        try:
            with engine.connect() as c:
                seq, payload = c.execute(sa.select(a.c.seq, a.c.payload).where(a.c.kind == "ledger.deposit")).one()
            assert '"amount":"1000"' in payload
            # the database itself refuses to change or remove audit records and ledger rows
            for stmt in (a.update().where(a.c.seq == seq).values(payload=payload.replace("1000", "9000")),
                         a.delete().where(a.c.seq == seq),
                         sa.text("UPDATE ledger_entries SET amount = '0'"), sa.text("DELETE FROM postings")):
                with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as c:
                    c.execute(stmt)
            with engine.begin() as c:
                if engine.dialect.name == "sqlite":
                    c.execute(sa.text("DROP TRIGGER audit_log_no_update"))
                else:
                    c.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
                c.execute(a.update().where(a.c.seq == seq).values(payload=payload.replace('"amount":"1000"',
                                                                                          '"amount":"9000"')))
        finally:
            engine.dispose()
        bad = ok(m.get("gao", "/v1/audit/head?verify=true"))
        assert (bad["valid"], bad["first_bad"], bad["count"]) == (False, seq, head["count"])
        assert "modified" in bad["reason"]
        res = verify_file(m, "tampered.jsonl")
        assert res.exit_code == 1, res.output
        assert f"INVALID at record {seq}" in res.output
        records = [json.loads(line) for line in (tmp_path / "tampered.jsonl").read_text().splitlines()]
        assert records[seq]["payload"]["amount"] == "9000"


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_order_entry(backend, tmp_path):
    """POST /v1/orders/batch places each order as POST /v1/orders would, in order, each answered on its own; order i
    has the idempotency key '<key>#i', so a retried batch replays every order and creates nothing."""
    with open_market(database_url(backend, tmp_path), tmp_path) as m:
        m.order("lynas", SELL)                                                   # 1,000 kg at 95
        bids = [BUY, {**BUY, "quantity": "700"}, {**BUY, "side": "sell", "origin": "AUS"},  # third: wrong side
                {**BUY, "requirements": {"allowed_origins": ["XXX"]}}]             # fourth: unknown country
        r = m.post("toyota", "/v1/orders/batch", {"orders": bids}, key="bulk-1")
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["status"] for x in res] == [201, 201, 403, 422]
        assert res[0]["trades"][0]["quantity"] == "400" and res[1]["trades"][0]["quantity"] == "600"
        assert res[1]["order"]["remaining"] == "100" and res[1]["order"]["status"] == "open"
        assert res[2]["error"]["field"] == "side" and res[2]["order"] is None
        assert "XXX" in res[3]["error"]["message"]
        again = m.post("toyota", "/v1/orders/batch", {"orders": bids}, key="bulk-1")
        assert again.json() == r.json()
        one = m.post("toyota", "/v1/orders", BUY, key="bulk-1#0")        # the same order alone: a replay
        assert one.status_code == 201 and one.headers.get("Idempotency-Replayed") == "true"
        assert one.json()["order"]["id"] == res[0]["order"]["id"]
        orders = m.get("admin", "/v1/orders").json()["items"]
        assert len(orders) == 3
        bad = m.post("toyota", "/v1/orders/batch", {"orders": []})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "body.orders"
