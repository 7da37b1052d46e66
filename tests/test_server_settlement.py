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
@given(st.lists(st.tuples(st.one_of(tonnes_9, api_decimal), st.one_of(price_9, api_decimal)), min_size=1,
                max_size=12))
def test_property_money_is_exact_over_the_api_range(lots):
    """Every trade value is exactly price × quantity (no rounding), every balance the exact sum of its postings, and
    the trial balance exactly zero, for any sequence of trades over the API's full range."""
    e, admin, seller, buyer = _engine_with_traders()
    _finest_ticks(e, admin)
    expected: dict[tuple[str, str], Fraction] = {}
    for qty, price in lots:
        for actor, side in ((seller, "sell"), (buyer, "buy")):
            batch = Batch()
            res = e.apply(Command("place_order", actor, _order(side, qty, price)), batch)
            assert res.status == 201, res.body
        (trade,) = res.body["trades"]
        assert (D(trade["quantity"]), D(trade["price"])) == (qty, price)
        entries = batch.inserts["ledger_entries"]
        value = Fraction(price) * Fraction(qty)
        assert [Fraction(D(x["amount"])) for x in entries if x["asset"] == "USD"] == [-value, value]
        for key, amount in ((("b", "USD"), -value), (("s", "USD"), value), (("s", "ga/metal"), -Fraction(qty)),
                            (("b", "ga/metal"), Fraction(qty))):
            expected[key] = expected.get(key, Fraction(0)) + amount
    assert {k: Fraction(v) for k, v in e.ledger.balances().items()} == expected
    assert all(v == 0 for v in e.ledger.trial_balance().values())
