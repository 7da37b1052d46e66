"""Settlement rules that cannot be abused, and exact money.

- Support only for sellers who enrolled: a programme cannot impose a floor or a CfD on anyone; per-programme and
  per-seller caps; programme parameters validated against the price tick.
- Floors and CfDs settle against the published reference price (the market's index fixing or an operator's
  benchmark), never the bilateral trade price: a colluding buyer and seller gain nothing by trading at a silly price.
- Exact money: every trade value and balance over the API's whole range (15 integer, 9 decimal digits) is exact,
  and the trial balance is exactly zero after any sequence (Hypothesis, at the engine, no HTTP).

Expected numbers are worked by hand from the rules: floor: q × max(0, floor − reference); CfD: q × (strike −
reference), a payment cut to the budget and to the seller's cap, a payback to the seller's payback cap.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverkit import BACKENDS, BUY, SELL, database_url
from serverkit import open_market as _open_market

from critmin.market.model import Role
from critmin.market.money import MONEY
from critmin.server.engine import Actor, Batch, Engine
from critmin.server.wire import Command

D = Decimal


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    return database_url(request.param, tmp_path)


def open_market(url, tmp_path, **kw):
    return _open_market(url, tmp_path, **{"durable": False, **kw})


def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def usd(m, who: str, owner: str) -> Decimal:
    got = {b["asset"]: D(b["amount"]) for b in ok(m.get(who, f"/v1/accounts/{owner}"))["balances"]}
    return got.get("USD", D(0))


def deposit(m, owner: str, amount: str, asset: str = "USD") -> None:
    ok(m.post("admin", "/v1/deposits", {"owner": owner, "asset": asset, "amount": amount}), 201)


def assert_trial_balance_zero(m) -> None:
    tb = ok(m.get("gao", "/v1/ledger/trial-balance"))
    assert tb["balanced"] is True and tb["accounts_agree"] is True
    assert all(D(t["amount"]) == 0 for t in tb["totals"]), tb


# ---------------------------------------------------------------------- finding: programmes imposed on sellers
def test_a_programme_cannot_impose_a_cfd_on_a_seller(url, tmp_path):
    """A CfD at a 1e-9 strike with no budget is refused; a valid CfD the seller never enrolled in takes nothing
    from the seller: 1,000 kg at 300 USD/kg leaves the seller USD 300,000."""
    with open_market(url, tmp_path) as m:
        r = m.post("dod", "/v1/programmes", {"id": "grab", "commodity": "ndpr", "form": "oxide",
                                             "cfd_strike": "0.000000001", "budget": "0"})
        assert r.status_code == 422, r.text
        ok(m.post("dod", "/v1/programmes", {"id": "cfd", "commodity": "ndpr", "form": "oxide", "cfd_strike": "1",
                                            "budget": "1", "max_payback_per_seller": "1000"}), 201)
        m.order("lynas", SELL, quantity="1000", limit_price="300")
        (t,) = m.order("toyota", BUY, quantity="1000", limit_price="300")["trades"]
        assert t["programme_id"] is None and D(t["support_paid"]) == 0
        assert usd(m, "lynas", "lynas") == 300 * 1000
        assert_trial_balance_zero(m)


# ---------------------------------------------------------------------- finding: floors against the trade price
def test_colluding_pair_cannot_extract_a_floor(url, tmp_path):
    """A buyer and a seller trade 1,000 kg at 1e-9 USD/kg under a 110 floor: the programme pays against the
    published reference (95), 1,000 × (110 − 95) = 15,000, never ~110,000."""
    with open_market(url, tmp_path) as m:
        ok(m.post("dod", "/v1/programmes", {"id": "floor", "commodity": "ndpr", "form": "oxide", "floor": "110",
                                            "budget": "1000000"}), 201)
        deposit(m, "floor", "1000000")
        deposit(m, "lynas", "1000", "ndpr/oxide")
        ok(m.post("lynas", "/v1/programmes/floor/enrolments", {}), 201)
        ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": "95",
                                                      "source": "hand example"}), 201)
        ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"mode": "continuous", "price_tick": "0.000000001"},
                 **{"If-Match": '"0"'}))
        m.order("lynas", SELL, quantity="1000", limit_price="0.000000001")
        (t,) = m.order("toyota", BUY, quantity="1000", limit_price="0.000000001")["trades"]
        assert D(t["price"]) == D("0.000000001")
        assert D(t["reference_price"]) == 95 and D(t["support_paid"]) == (110 - 95) * 1000 == 15000
        assert usd(m, "dod", "floor") == 1000000 - 15000
        assert_trial_balance_zero(m)


# ---------------------------------------------------------------------- finding: money rounded in 28 digits
def _engine_with_traders() -> tuple[Engine, Actor, Actor, Actor]:
    e = Engine(allies=("AUS", "USA", "JPN"))
    admin = Actor("admin", Role.ADMIN, "USA", "t-admin", frozenset({"admin", "read", "audit"}))
    for pid, role, country in (("s", "seller", "AUS"), ("b", "buyer", "JPN")):
        res = e.apply(Command("create_participant", admin, {"id": pid, "name": pid, "role": role,
                                                            "country": country}), Batch())
        assert res.status == 201, res.body
    seller = Actor("s", Role.SELLER, "AUS", "t-s", frozenset({"read", "trade"}))
    buyer = Actor("b", Role.BUYER, "JPN", "t-b", frozenset({"read", "trade"}))
    return e, admin, seller, buyer


def _finest_ticks(e: Engine, admin: Actor) -> None:
    res = e.apply(Command("set_book_mode", admin, {"commodity": "ga", "form": "metal", "grade": "std",
                                                   "mode": "continuous", "price_tick": "0.000000001",
                                                   "quantity_tick": "0.000000001"}), Batch())
    assert res.status == 200, res.body


def _order(side: str, qty: Decimal, price: Decimal) -> dict:
    return {"side": side, "commodity": "ga", "form": "metal", "grade": "std", "quantity": format(qty, "f"),
            "limit_price": format(price, "f"), "delivery_start": "2026-01-01", "delivery_end": "2026-12-31",
            "location": "x", "origin": "AUS" if side == "sell" else None, "nonmarket": False,
            "attestations": {}, "requirements": {}}


#: Any API decimal: 0–15 integer digits, 0–9 decimals, > 0.
api_decimal = st.builds(lambda i, f: D(i) + D(f) / D(10**9),
                        st.integers(0, 10**15 - 1), st.integers(0, 10**9 - 1)).filter(lambda d: d > 0)
#: The range that failed before: 1–1,000 t at 10–100,000 USD/kg, 9 decimals.
tonnes_9 = st.builds(lambda n: D(n) / D(10**9), st.integers(10**12, 10**15))
price_9 = st.builds(lambda n: D(n) / D(10**9), st.integers(10 * 10**9, 100_000 * 10**9))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(tonnes_9, api_decimal), st.one_of(price_9, api_decimal),
                          st.one_of(st.none(), api_decimal)), min_size=1, max_size=12),
       st.one_of(st.none(), api_decimal), api_decimal)
def test_property_money_is_exact_over_the_api_range(lots, floor, budget):
    """Every trade value is exactly price × quantity (no rounding), every support payment exactly
    min(quantity × max(0, floor − reference), budget left), every balance the exact sum of its postings, and the
    trial balance exactly zero, for any sequence of trades and settlements over the API's full range (a lot may be
    preceded by a new reference fixing; the seller may be enrolled in a floor)."""
    e, admin, seller, buyer = _engine_with_traders()
    _finest_ticks(e, admin)
    expected: dict[tuple[str, str], Fraction] = {}

    def book(owner: str, asset: str, amount: Fraction) -> None:
        expected[(owner, asset)] = expected.get((owner, asset), Fraction(0)) + amount

    left = Fraction(budget)
    if floor is not None:
        gov = Actor("gov", Role.PROGRAMME, "USA", "t-g", frozenset({"read", "programme"}))
        assert e.apply(Command("create_participant", admin, {"id": "gov", "name": "gov", "role": "programme",
                                                             "country": "USA"}), Batch()).status == 201
        res = e.apply(Command("create_programme", gov, {"id": "fl", "commodity": "ga", "form": "metal",
                                                        "floor": format(floor, "f"), "budget": format(budget, "f")}),
                      Batch())
        assert res.status == 201, res.body
        assert e.apply(Command("enrol", seller, {"programme_id": "fl"}), Batch()).status == 201
    reference = None
    for qty, price, fixing in lots:
        if fixing is not None:
            res = e.apply(Command("publish_fixing", admin, {"commodity": "ga", "form": "metal", "method": "benchmark",
                                                            "price": format(fixing, "f"), "source": "test"}), Batch())
            assert res.status == 201, res.body
            reference = Fraction(fixing)
        # the seller's holding covers the lot (the support is paid on held material only)
        assert e.apply(Command("deposit", admin, {"owner": "s", "asset": "ga/metal", "amount": format(qty, "f")}),
                       Batch()).status == 201
        for actor, side in ((seller, "sell"), (buyer, "buy")):
            batch = Batch()
            res = e.apply(Command("place_order", actor, _order(side, qty, price)), batch)
            assert res.status == 201, res.body
        (trade,) = res.body["trades"]
        assert (D(trade["quantity"]), D(trade["price"])) == (qty, price)
        value = Fraction(price) * Fraction(qty)
        paid = Fraction(0)
        if floor is not None and reference is not None:
            paid = min(Fraction(qty) * max(Fraction(0), Fraction(floor) - reference), max(left, Fraction(0)))
            left -= paid
        assert Fraction(D(trade["support_paid"])) == paid
        usd = [Fraction(D(x["amount"])) for x in batch.inserts["ledger_entries"] if x["asset"] == "USD"]
        assert usd == [-value, value] + ([-paid, paid] if paid else [])
        book("b", "USD", -value)
        book("s", "USD", value + paid)
        book("fl", "USD", -paid)
        book("b", "ga/metal", Fraction(qty))
    book("s", "ga/metal", Fraction(0))  # deposited, then sold: nothing left
    assert {k: Fraction(e.ledger.balance(*k)) for k in expected} == expected
    assert all(v == 0 for v in e.ledger.trial_balance().values())


# ---------------------------------------------------------------------- enrolment and precedence
def programme(m, who: str, pid: str, **terms) -> dict:
    return ok(m.post(who, "/v1/programmes", {"id": pid, "commodity": "ndpr", "form": "oxide", **terms}), 201)


def benchmark(m, price: str) -> dict:
    return ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": price,
                                                         "source": "hand example"}), 201)


def test_the_seller_chooses_its_one_programme(url, tmp_path):
    """An older CfD does not pre-empt a later floor: the programme the seller enrolled in settles its trades, one
    per commodity/form; a floor enrolment can be withdrawn (If-Match), a CfD's binds; caps are per seller."""
    with open_market(url, tmp_path) as m:
        programme(m, "meti", "old-cfd", cfd_strike="100", budget="100000", max_payback_per_seller="1000")
        programme(m, "dod", "new-floor", floor="110", budget="100000", max_support_per_seller="2000")
        deposit(m, "new-floor", "100000")
        deposit(m, "lynas", "1000", "ndpr/oxide")
        benchmark(m, "95")
        e = ok(m.post("lynas", "/v1/programmes/new-floor/enrolments", {}), 201)
        assert (e["programme_id"], e["seller_id"], e["active"], e["version"], e["floor"]) == (
            "new-floor", "lynas", True, 1, "110")
        r = m.post("lynas", "/v1/programmes/old-cfd/enrolments", {})
        assert r.status_code == 409 and "new-floor" in r.json()["error"]["message"]
        m.order("lynas", SELL, quantity="100")
        (t,) = m.order("toyota", BUY, quantity="100")["trades"]
        assert (t["programme_id"], D(t["support_paid"]), t["support_reason"]) == ("new-floor", 1500, "floor")
        m.order("lynas", SELL, quantity="100")
        (t,) = m.order("toyota", BUY, quantity="100")["trades"]
        assert (D(t["support_due"]), D(t["support_paid"]), t["support_reason"]) == (1500, 500, "seller_capped")
        listed = ok(m.get("dod", "/v1/programmes/new-floor/enrolments"))
        assert [(x["seller_id"], D(x["net_received"])) for x in listed] == [("lynas", 2000)]
        assert ok(m.get("mp", "/v1/programmes/new-floor/enrolments")) == []          # not its enrolment
        # withdraw from the floor (If-Match), then the CfD binds
        path = "/v1/programmes/new-floor/enrolments/lynas"
        assert m.delete("lynas", path).status_code == 428
        gone = ok(m.delete("lynas", path, **{"If-Match": '"1"'}))
        assert (gone["active"], gone["version"]) == (False, 2)
        m.order("lynas", SELL, quantity="100")
        (t,) = m.order("toyota", BUY, quantity="100")["trades"]
        assert t["programme_id"] is None and D(t["support_paid"]) == 0
        ok(m.post("lynas", "/v1/programmes/old-cfd/enrolments", {}), 201)
        r = m.delete("lynas", "/v1/programmes/old-cfd/enrolments/lynas", **{"If-Match": '"1"'})
        assert r.status_code == 409 and r.json()["error"]["code"] == "binding"
        # a seller of 1,000 kg at 300 under a strike of 100 pays back at most its cap (1,000), not 200,000
        benchmark(m, "300")
        m.order("lynas", SELL, quantity="1000", limit_price="300")
        (t,) = m.order("toyota", BUY, quantity="1000", limit_price="300")["trades"]
        assert (D(t["support_due"]), D(t["support_paid"]), t["support_reason"]) == (-200000, -1000, "payback_capped")
        # an inactive programme takes no enrolment; a CfD ended by its owner releases its sellers
        ok(m.patch("dod", "/v1/programmes/new-floor", {"active": False}, **{"If-Match": '"1"'}))
        r = m.post("mp", "/v1/programmes/new-floor/enrolments", {})
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_active"
        ok(m.patch("meti", "/v1/programmes/old-cfd", {"active": False}, **{"If-Match": '"1"'}))
        assert not ok(m.delete("lynas", "/v1/programmes/old-cfd/enrolments/lynas", **{"If-Match": '"1"'}))["active"]
        assert_trial_balance_zero(m)


def test_programme_parameters_are_validated(url, tmp_path):
    with open_market(url, tmp_path) as m:
        for terms, fld in (({"floor": "0.001", "budget": "1"}, "floor"),        # below the price tick
                           ({"floor": "110", "budget": "0"}, "budget"),
                           ({"cfd_strike": "100", "budget": "1"}, "max_payback_per_seller"),
                           ({"floor": "110", "budget": "1", "max_payback_per_seller": "1"}, "max_payback_per_seller"),
                           ({"floor": "110", "budget": "1", "max_support_per_seller": "0"}, "max_support_per_seller")):
            r = m.post("dod", "/v1/programmes", {"id": "p", "commodity": "ndpr", "form": "oxide", **terms})
            assert (r.status_code, r.json()["error"]["field"]) == (422, fld), r.text
        programme(m, "dod", "p", floor="110", budget="1")
        r = m.patch("dod", "/v1/programmes/p", {"budget": "0"}, **{"If-Match": '"1"'})
        assert (r.status_code, r.json()["error"]["field"]) == (422, "budget")


# ---------------------------------------------------------------------- the index
def test_index_fixing_resists_a_wash_trade(url, tmp_path):
    """The index is the median of the sellers' volume-weighted prices since the previous fixing, from at least 3
    sellers and 3 buyers: a colluding pair's 1,000 t at 0.01 moves only its own seller's vote."""
    from serverkit import CAST

    with open_market(url, tmp_path, cast={**CAST, "bmw": ("buyer", "DEU")}) as m:
        anyone = {"requirements": {}}
        for seller, buyer, price in (("lynas", "toyota", "95"), ("mp", "dla", "97")):
            m.order(seller, SELL, quantity="100", limit_price=price)
            m.order(buyer, BUY, quantity="100", limit_price=price, **anyone)
        r = m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "index"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "thin_market"     # 2 sellers, 2 buyers
        m.order("shenghe", SELL, origin="CAN", quantity="100", limit_price="99")
        m.order("bmw", BUY, quantity="100", limit_price="99", **anyone)
        # the wash trade: lynas sells toyota 1,000 t at 0.01
        m.order("lynas", SELL, quantity="1000000", limit_price="0.01")
        m.order("toyota", BUY, quantity="1000000", limit_price="0.01", **anyone)
        fx = ok(m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "index"}), 201)
        # lynas: (95 × 100 + 0.01 × 1,000,000) / 1,000,100 = 0.0194… → 0.02; votes 0.02, 97, 99 → 97
        assert (D(fx["price"]), fx["method"], fx["trades"], fx["sellers"], fx["buyers"]) == (97, "index", 4, 3, 3)
        assert (fx["first_trade_id"], fx["last_trade_id"], D(fx["volume"])) == (0, 3, 1000300)
        r = m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "index"})
        assert r.status_code == 409                                                     # a new window: empty
        r = m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "index", "price": "1"})
        assert (r.status_code, r.json()["error"]["field"]) == (422, "price")
        r = m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "benchmark", "price": "1"})
        assert (r.status_code, r.json()["error"]["field"]) == (422, "source")
        assert [f["id"] for f in ok(m.get("lynas", "/v1/fixings/ndpr/oxide"))] == [fx["id"]]


# ---------------------------------------------------------------------- ticks
def test_orders_off_the_tick_are_refused(url, tmp_path):
    with open_market(url, tmp_path) as m:
        book = ok(m.get("lynas", "/v1/books/ndpr/oxide/std"))
        assert (book["price_tick"], book["quantity_tick"]) == ("0.01", "1")
        for over, fld in (({"limit_price": "95.001"}, "limit_price"), ({"quantity": "0.5"}, "quantity")):
            r = m.post("lynas", "/v1/orders", {**SELL, **over})
            assert (r.status_code, r.json()["error"]["field"], r.json()["error"]["code"]) == (422, fld, "off_tick")
        r = m.put("admin", "/v1/books/ndpr/oxide/std", {"price_tick": "0"}, **{"If-Match": '"0"'})
        assert (r.status_code, r.json()["error"]["field"]) == (422, "price_tick")
        b = ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"price_tick": "0.001", "quantity_tick": "0.5"},
                     **{"If-Match": '"0"'}))
        assert (b["mode"], b["price_tick"], b["quantity_tick"], b["version"]) == ("continuous", "0.001", "0.5", 1)
        m.order("lynas", SELL, limit_price="95.001", quantity="0.5")
        tokens = m.tokens
    with reopened(url, tokens) as again:                                               # ticks survive a restart
        assert ok(again.get("lynas", "/v1/books/ndpr/oxide/std"))["price_tick"] == "0.001"
        r = again.post("lynas", "/v1/orders", {**SELL, "limit_price": "95.0001"})
        assert r.status_code == 422


# ---------------------------------------------------------------------- restart
def reopened(url, tokens):
    from contextlib import contextmanager

    from fastapi.testclient import TestClient
    from serverkit import Market

    from critmin.server.app import create_app

    @contextmanager
    def cm():
        with TestClient(create_app(url, durable=False)) as client:
            yield Market(client, dict(tokens))
    return cm()


def test_enrolments_caps_and_the_index_window_survive_a_restart(url, tmp_path):
    with open_market(url, tmp_path) as m:
        programme(m, "dod", "floor", floor="110", budget="100000", max_support_per_seller="2000")
        deposit(m, "lynas", "1000", "ndpr/oxide")
        ok(m.post("lynas", "/v1/programmes/floor/enrolments", {}), 201)
        benchmark(m, "95")
        m.order("lynas", SELL, quantity="100")
        (t,) = m.order("toyota", BUY, quantity="100")["trades"]
        assert D(t["support_paid"]) == 1500
        tokens = m.tokens
    with reopened(url, tokens) as m:
        m.order("lynas", SELL, quantity="100")
        (t,) = m.order("toyota", BUY, quantity="100")["trades"]
        assert (D(t["support_paid"]), t["support_reason"], t["fixing_id"]) == (500, "seller_capped", 0)
        r = m.post("lynas", "/v1/programmes/floor/enrolments", {})
        assert r.status_code == 409                                               # still enrolled
        r = m.post("admin", "/v1/fixings/ndpr/oxide", {"method": "index"})
        assert r.status_code == 409 and "there are 1 and 1" in r.json()["error"]["message"]  # the window: trade 1
        assert_trial_balance_zero(m)


def test_migration_0003_leaves_old_cfds_charging_nobody(tmp_path):
    import sqlalchemy as sa

    from critmin.server import db, migrate

    engine = db.make_engine(database_url("sqlite", tmp_path))
    migrate.upgrade(engine, "0002")
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO participants VALUES ('meti', 'METI', 'programme', 'JPN', 0, 1)"))
        c.execute(sa.text("INSERT INTO programmes (id, participant_id, country, commodity, form, cfd_strike, budget, "
                          "allies_only, exclude_nonmarket, active, created_seq, version) VALUES "
                          "('c', 'meti', 'JPN', 'ndpr', 'oxide', '100', '5', 0, 1, 1, 1, 1)"))
    migrate.upgrade(engine)
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT max_support_per_seller, max_payback_per_seller FROM programmes")).one()
    assert tuple(row) == (None, "0")
    engine.dispose()


def test_even_number_of_sellers_takes_the_mean_of_the_middle_two():
    from critmin.server.engine import IndexWindow

    w = IndexWindow()
    for i, (seller, price, qty) in enumerate((("a", "10", "1"), ("b", "20", "3"), ("b", "24", "1"), ("c", "30", "1"),
                                              ("d", "1000", "5"))):
        w.add(i, seller, f"buyer{i}", D(price), D(qty))
    # a 10, b (60 + 24) / 4 = 21, c 30, d 1000 → (21 + 30) / 2 = 25.5
    assert (w.index(D("0.01")), w.trades, w.first_trade_id) == (D("25.50"), 5, 0)
    assert w.index(D(1)) == 26                      # 25.5 to the tick of 1: half-even → 26
    w2 = IndexWindow()
    w2.add(0, "a", "x", D(1), D(3))
    w2.add(1, "a", "x", D(2), D(3))
    assert w2.index(D("0.01")) == D("1.50")


def test_every_new_change_is_in_the_audit_log_with_its_row(url, tmp_path):
    """Enrolments, fixings, book ticks, programme caps and each trade's reference: the audit record of the last
    change of each row carries the row exactly as stored."""
    import json

    import sqlalchemy as sa

    from critmin.server.db import make_engine

    with open_market(url, tmp_path) as m:
        programme(m, "meti", "cfd", cfd_strike="100", budget="1000", max_support_per_seller="5",
                  max_payback_per_seller="5")
        deposit(m, "lynas", "10", "ndpr/oxide")
        ok(m.post("lynas", "/v1/programmes/cfd/enrolments", {}), 201)
        benchmark(m, "99")
        ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"price_tick": "0.5"}, **{"If-Match": '"0"'}))
        m.order("lynas", SELL, quantity="10", limit_price="99.5")
        (t,) = m.order("toyota", BUY, quantity="10", limit_price="99.5")["trades"]
        assert (D(t["support_paid"]), t["support_reason"], D(t["reference_price"])) == (5, "seller_capped", 99)
        records = [json.loads(x) for x in m.get("gao", "/v1/audit/export").text.splitlines()]
    last: dict[tuple, dict] = {}
    for r in records:
        p = r["payload"]
        if r["kind"].startswith("enrolment."):
            last[("enrolments", p["enrolment"]["programme_id"], p["enrolment"]["seller_id"])] = p["enrolment"]
        elif r["kind"] == "fixing.publish":
            last[("fixings", p["fixing"]["id"])] = p["fixing"]
        elif r["kind"] == "book.mode":
            last[("books", p["book"]["commodity"], p["book"]["form"], p["book"]["grade"])] = p["book"]
        elif r["kind"].startswith("programme."):
            last[("programmes", p["programme"]["id"])] = p["programme"]
        for trade in p.get("trades", []) if isinstance(p, dict) else []:
            last[("trades", trade["id"])] = trade
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            stored = {}
            for table, keys in (("enrolments", ("programme_id", "seller_id")), ("fixings", ("id",)),
                                ("books", ("commodity", "form", "grade")), ("programmes", ("id",)),
                                ("trades", ("id",))):
                for row in c.execute(sa.text(f"SELECT * FROM {table}")).mappings():
                    row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                    if table == "programmes" and isinstance(row["eligible_origins"], str):
                        row["eligible_origins"] = json.loads(row["eligible_origins"])
                    stored[(table, *(row[k] for k in keys))] = {k: (bool(v) if k in ("active", "nonmarket",
                                                                                      "allies_only",
                                                                                      "exclude_nonmarket") else v)
                                                                 for k, v in row.items()}
    finally:
        engine.dispose()
    assert set(stored) == set(last)
    for key, row in stored.items():
        assert last[key] == row, key


# ---------------------------------------------------------------------- column widths
def test_the_widest_trade_the_api_allows_is_stored(url, tmp_path):
    """A trade at the API's largest price and quantity on a book with the finest ticks: its value (48 digits) and
    the balances it makes are stored exactly. With 40-character columns PostgreSQL refused the commit."""
    big = "999999999999999.999999999"
    with open_market(url, tmp_path) as m:
        ok(m.put("admin", "/v1/books/ndpr/oxide/std", {"price_tick": "0.000000001", "quantity_tick": "0.000000001"},
                 **{"If-Match": '"0"'}))
        m.order("lynas", SELL, limit_price=big, quantity=big)
        (t,) = m.order("toyota", BUY, limit_price=big, quantity=big, requirements={})["trades"]
        value = MONEY.multiply(D(big), D(big))
        assert len(str(value)) == 49
        assert usd(m, "lynas", "lynas") == value and usd(m, "toyota", "toyota") == MONEY.minus(value)
        assert (D(t["price"]), D(t["quantity"])) == (D(big), D(big))
        assert_trial_balance_zero(m)
