"""The service's JSON encoders (orjson on the hot path) against the stdlib encoders they replace.

Byte identity is the contract: canonical text is hashed into the audit chain and ``critmin audit verify``
recomputes the hashes with the stdlib, so every output must equal the stdlib's, and every error must be of the
stdlib's type. The reference encoders are spelled out here, exactly as the engine had them before orjson.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critmin.market.model import Attestations, Order, Requirements, Side
from critmin.server import wire
from critmin.server.engine import order_body, order_row
from critmin.server.wire import _plain, canonical_text, dumps, render

stdlib_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                                    default=_plain).encode
stdlib_render = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str).encode


def stdlib_dumps(body):
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


PAIRS = [(canonical_text, stdlib_canonical), (render, stdlib_render), (dumps, stdlib_dumps)]


def outcome(fn, value):
    """("ok", text) or ("raise", exception type)."""
    try:
        return "ok", fn(value)
    except Exception as exc:
        return "raise", type(exc)


def assert_same(value):
    for new, old in PAIRS:
        assert outcome(new, value) == outcome(old, value), (new.__name__, value)


# --- odd values -------------------------------------------------------------------------------------------------

class StrSub(str):
    pass


class LtStr(str):
    """A key type whose order is not the code-point order."""

    def __lt__(self, other):
        return str.__gt__(self, other)


class IntSub(int):
    def __repr__(self):
        return "IntSub"


class DictSub(dict):
    pass


class ListSub(list):
    pass


class Colour(enum.Enum):
    RED = 1
    PRICE = Decimal("1.5")


class Level(enum.IntEnum):
    HIGH = 3


class Tag(enum.StrEnum):
    A = "a\u00e9"


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Box:
    label: str
    size: int


def deep(n):
    x = []
    for _ in range(n):
        x = [x]
    return x


def cyclic():
    x = []
    x.append(x)
    return {"a": x}


REGRESSIONS = [
    # floats: orjson formats exponents differently and writes NaN/inf as null
    1e16, 1e-7, 1.5e-5, 123456789012345680.0, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 1.0,
    math.nan, math.inf, -math.inf, {"a": 1e-7}, [math.nan], {"x": [1, {"y": 2.5}]},
    # ints: orjson stops at 64 bits (signed minimum, unsigned maximum)
    2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40, {"n": -(10**30)},
    # strings: lone surrogates (orjson refuses), control characters, DEL, line/paragraph separators, astral
    "\ud800", "a\udfffb", {"k": "\udc80"}, {"\ud800": 1},
    "".join(map(chr, range(0x20))) + "\x7f\x80\x9f\u2028\u2029\ufeff\ufffe\uffff\"\\/",
    "\U0001f600\U0010ffff", {"\x00": "\x1f", "\x7f": "\u2028"}, "\x7f", {"a\x7f": "b\x7fc"},
    # keys: non-str (the stdlib converts), str subclasses, sort order beyond ASCII (UTF-16 would differ)
    {1: "a"}, {True: 1, None: 2}, {1.5: 1}, {2**70: 1}, {"a": 1, 1: 2}, {StrSub("b"): 1, "a": 2},
    {LtStr("a"): 1, LtStr("b"): 2},
    {"b": 1, "a": 2, "\u00e9": 3, "z": 4, "\U0001f600": 5, "\uffff": 6, "\U00010000": 7, "\ue000": 8, "": 9, "A": 0},
    # subclasses, enums, tuples and the other types the default hooks meet
    StrSub("s"), {"v": StrSub("s")}, IntSub(5), {"v": IntSub(5)}, DictSub(b=1, a=2), ListSub([1, 2]), (1, (2, 3)),
    Point(1, 2), Colour.RED, Colour.PRICE, Level.HIGH, Tag.A, {"e": Colour.RED}, {"e": Level.HIGH}, {"e": Tag.A},
    uuid.UUID(int=7), {"u": uuid.UUID(int=7)}, orjson.Fragment(b"[1]"), {"f": orjson.Fragment(b"1")},
    Decimal("1.50"), Decimal("-0"), Decimal("1E+3"), Decimal("NaN"), {"d": Decimal("2.5E-7")},
    dt.date(2025, 1, 31), dt.datetime(2025, 1, 31, 12, 0, 0, 123), dt.datetime(2025, 1, 31, tzinfo=dt.UTC),
    dt.time(12, 30), {"d": dt.date(1, 1, 1)}, Box("x", 1), {"b": Box("x", 1)}, {1, 2}, frozenset({"a"}),
    object(), b"bytes", bytearray(b"x"), 1j, {"c": 1j},
    # nesting: orjson's depth limit, cycles
    deep(100), deep(253), deep(254), deep(300), cyclic(),
    # the plain values
    None, True, False, 0, -1, "", "plain", [], {}, (), {"a": None, "b": [True, False, 0, ""]},
]


@pytest.mark.parametrize("value", REGRESSIONS, ids=lambda v: repr(v)[:40])
def test_known_differences_fall_back(value):
    assert_same(value)


def test_known_outcomes():
    """Spot checks that the comparisons above compare something (the stdlib answers are the expected ones)."""
    assert canonical_text({"b": [1e-7], "a": "\ud800"}) == '{"a":"\ud800","b":[1e-07]}'
    assert canonical_text({2**64: 2**64}) == '{"18446744073709551616":18446744073709551616}'
    body = {"c": Colour.RED, "d": Decimal("1.0"), "t": dt.date(2025, 1, 2)}
    assert render(body) == '{"c":"Colour.RED","d":"1.0","t":"2025-01-02"}'
    assert canonical_text({"c": Colour.RED, "t": dt.date(2025, 1, 2)}) == '{"c":1,"t":"2025-01-02"}'
    assert dumps({"k": "\u00e9"}) == '{"k":"\\u00e9"}'
    assert dumps({"k": "\x7f"}) == '{"k":"\\u007f"}'  # ensure_ascii escapes DEL too
    assert canonical_text({"\uffff": 1, "\U00010000": 2}) == '{"\uffff":1,"\U00010000":2}'
    with pytest.raises(ValueError):
        canonical_text({"x": math.nan})
    with pytest.raises(ValueError):
        render({"x": [math.inf]})
    with pytest.raises(ValueError):
        canonical_text(cyclic())
    with pytest.raises(TypeError):
        render({(1, 2): 1})


# --- property tests ---------------------------------------------------------------------------------------------

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())  # surrogates included
odd_chars = st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\u2029", '"', "\\", "\ud800", "\udfff", "\ufeff",
                             "\U0001f600", "\u00e9", "\uffff", "\U00010000"])
texts = st.text() | st.text(any_char, max_size=8) | st.text(odd_chars | st.characters(max_codepoint=0x7F), max_size=8)
keys = texts | st.text(st.characters(max_codepoint=0x7F), max_size=3)
odd_keys = st.integers() | st.booleans() | st.none() | st.floats() | texts.map(StrSub)
ints = (st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]))
leaves = (st.none() | st.booleans() | ints | texts
          | st.floats() | st.sampled_from([1e16, 1e-7, -0.0, 1e22, 1e-5])
          | st.decimals() | st.dates() | st.datetimes(timezones=st.none() | st.just(dt.UTC)))
plain_leaves = st.none() | st.booleans() | ints | texts | st.decimals(allow_nan=False) | st.dates()
odd_leaves = (texts.map(StrSub) | st.integers().map(IntSub) | st.sampled_from([Colour.RED, Level.HIGH, Tag.A])
              | st.uuids() | st.just(orjson.Fragment(b"0")) | st.builds(Point, ints, texts))


def trees(leaf, key):
    def extend(children):
        return (st.lists(children, max_size=5) | st.lists(children, max_size=5).map(tuple)
                | st.dictionaries(key, children, max_size=6))
    return st.recursive(leaf, extend, max_leaves=30)


json_like = trees(leaves, keys)
plain_json = trees(plain_leaves, keys)
odd_json = trees(leaves | odd_leaves, keys | odd_keys)

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(json_like)
def test_json_like_values_encode_as_the_stdlib(value):
    assert_same(value)


@PROPERTY
@given(plain_json)
def test_plain_values_encode_as_the_stdlib(value):
    """No floats: most of these take the orjson path (the sort order, escapes and the default hooks matter)."""
    assert_same(value)


@PROPERTY
@given(odd_json)
def test_odd_values_encode_as_the_stdlib(value):
    assert_same(value)


@PROPERTY
@given(st.dictionaries(keys, plain_leaves, min_size=2, max_size=20))
def test_key_order_is_the_stdlib_order(value):
    assert canonical_text(value) == stdlib_canonical(value)
    assert dumps(value) == stdlib_dumps(value)


# --- the fast path is taken -------------------------------------------------------------------------------------

def typical_order() -> dict:
    order = Order("ord_000042", 42, "p_seller", Side.SELL, "lithium", "carbonate", "battery", Decimal("25000"),
                  Decimal("12.50"), dt.date(2025, 3, 1), dt.date(2025, 5, 31), "Rotterdam", "AUS",
                  Attestations(75, True, Decimal("5.2"), "IRMA-123"), False,
                  Requirements(frozenset({"AUS", "CAN"}), True, 50, True, Decimal("9.9"), True))
    return order_body(order_row(order, None, "client-7"))


def typical_trade() -> dict:
    return {"id": 7, "buy_order_id": "ord_000041", "sell_order_id": "ord_000042", "buyer_id": "p_buyer",
            "seller_id": "p_seller", "commodity": "lithium", "form": "carbonate", "grade": "battery",
            "quantity": "25000", "price": "12.50", "origin": "AUS", "nonmarket": False, "mechanism": "continuous",
            "programme_id": None, "support_due": "0", "support_paid": "0",
            "support_reason": "no programme covers the trade", "levy": "0.00", "posting_seq": 3,
            "reference_price": None, "fixing_id": None}


def test_typical_payloads_take_the_orjson_path(monkeypatch):
    """The speed-up must not silently disappear (say, an enum or a float creeping into the order body)."""
    order, trade = typical_order(), typical_trade()
    raw_row = order_row(typical_order_model(), None, None)  # dates unconverted: through the default hooks
    payloads = [order, trade, [trade, trade], {"order": order, "trades": [trade]}, raw_row, "p_seller", "order.place"]
    expected = [(stdlib_canonical(p), stdlib_render(p), stdlib_dumps(p)) for p in payloads]

    def refuse(*_a, **_k):
        raise AssertionError("stdlib fallback taken")

    for name in ("_std_canonical", "_std_render", "_std_dumps"):
        monkeypatch.setattr(wire, name, refuse)
    for p, (c, r, d) in zip(payloads, expected, strict=True):
        assert canonical_text(p) == c
        assert render(p) == r
        assert dumps(p) == d


def typical_order_model() -> Order:
    return Order("ord_000043", 43, "p_buyer", Side.BUY, "cobalt", "hydroxide", "battery", Decimal("1000"),
                 Decimal("30"), dt.date(2025, 1, 1), dt.date(2025, 2, 1), "Antwerp")


# ---------------------------------------------------------------------- the intake's parser (orjson.loads)
_ORDER = {"side": "sell", "commodity": "ndpr", "form": "oxide", "grade": "std", "quantity": "500",
          "limit_price": "95.00", "delivery_start": "2027-01-01", "delivery_end": "2027-06-30", "location": "Rotterdam",
          "origin": "AUS", "attestations": {"irma_level": 75, "oecd_ddg": True}}
_HEADERS = [(b"authorization", b"Bearer cm_x_y"), (b"idempotency-key", b"k-1"), (b"content-type", b"application/json")]


@pytest.mark.parametrize("body", [
    json.dumps(_ORDER).encode(),
    json.dumps({**_ORDER, "location": "Yokohama \u6a2a\u6d5c \U0001f6a2"}, ensure_ascii=False).encode(),
    json.dumps({**_ORDER, "location": "Yokohama \u6a2a\u6d5c"}).encode(),      # \u escapes
    json.dumps(_ORDER)[:-1].encode() + b', "quantity": "700"}',                # a duplicate key: the last one wins
    json.dumps({**_ORDER, "quantity": 500}).encode(),                            # a number where a string goes
    json.dumps({**_ORDER, "quantity": 1e400}).encode(),                          # infinity: orjson refuses
    json.dumps({**_ORDER, "quantity": 12345678901234567890123}).encode(),        # beyond 64 bits: orjson refuses
    json.dumps({**_ORDER, "location": "\ud800"}).encode(),                       # a lone surrogate: orjson refuses
    b'\xef\xbb\xbf' + json.dumps(_ORDER).encode(),                              # a byte-order mark
    json.dumps(_ORDER).encode("utf-16"),                                         # UTF-16 (the stdlib detects it)
    b"[1, 2]", b"null", b"{", b"",
])
def test_the_intake_parses_as_the_stdlib_or_leaves_the_request_to_the_route(body, monkeypatch):
    """prepare() parses with orjson: for every body it takes, the prepared order is the one the stdlib's parse
    gives; what orjson refuses is left to the route (None), which parses it with the stdlib and answers as always."""
    from critmin.server import intake

    adapter = intake.order_adapter()
    fast = intake.prepare(_HEADERS, body, adapter)
    monkeypatch.setattr(intake, "_loads", json.loads)
    reference = intake.prepare(_HEADERS, body, adapter)
    assert fast is None or fast == reference
    if body == json.dumps(_ORDER).encode():
        assert fast is not None  # the lane does take a plain order
