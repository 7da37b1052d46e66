"""Authorisation matrix of the marketplace API: every caller × every endpoint × ownership case → expected status.

The expectations are a declarative table (:data:`MATRIX`) written from the rules, not from the code:

- missing, unknown or revoked token → 401 (everything but ``/health``);
- a role (or a token whose scopes were narrowed) that can never do an action → 403;
- an object of another participant → 404, exactly as for an id that does not exist (existence never leaks);
- regulators and admins read everything; regulators never change the market; only admins administer.

Callers (the columns): ``seller`` (lynas), ``seller_ro`` (a lynas token narrowed to ``read``), ``buyer`` (toyota),
``programme`` (dod), ``regulator`` (gao), ``admin``, ``admin_ro`` (an admin token narrowed to ``read``), ``none``
(no Authorization header), ``unknown`` (a well-formed token the server never issued), ``revoked`` (a revoked toyota
token). Cases (the rows of one endpoint): ``-`` no object involved, ``own`` the caller's object, ``peer`` an object
of another participant (of the same role where there is one), ``foreign`` an object of a participant of another
role, ``missing`` an id that does not exist, plus a few endpoint-specific ones. ``NA`` marks a case that cannot
exist for that caller (a programme has no orders of its own).

Interpretations recorded here (the rules leave them open):

- token self-service: every participant, the regulator included, may issue and revoke *its own* tokens with a
  full token (one holding every scope of its role; never granting more scopes than it holds); a narrowed token
  (read-only, scopeless) can neither issue tokens nor revoke its participant's other tokens (403), only revoke
  itself; only an admin token with the ``admin`` scope acts on the tokens of others. The regulator's "read-only"
  is about the market, not its own credentials;
- a regulator does not see the token lists of others (token administration is not market data): 404;
- programmes and policies are public market rules: every reader sees them (GET 200);
- a policy (per commodity/form) is changed only by the programme that set it, or an admin (with If-Match);
  another programme gets 403 (policies are public, so this leaks nothing).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from serverkit import BUY, SELL, database_url, open_market

COLS = ("seller", "seller_ro", "buyer", "programme", "regulator", "admin", "admin_ro", "none", "unknown", "revoked")
NA = None  # the case does not exist for this caller

# Each tuple follows COLS:
#   seller seller_ro buyer programme regulator admin admin_ro | none unknown revoked
MATRIX: dict[tuple[str, str], dict[str, tuple[int | None, ...]]] = {
    ("GET", "/health"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 200, 200, 200)},
    ("GET", "/v1/me"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("POST", "/v1/participants"): {
        "-":       (403, 403, 403, 403, 403, 201, 403, 401, 401, 401)},
    ("GET", "/v1/participants"): {
        "-":       (403, 403, 403, 403, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/participants/{participant_id}"): {
        "own":     (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "peer":    (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("POST", "/v1/participants/{participant_id}/tokens"): {
        # seller_ro/admin_ro are narrowed tokens: they manage no tokens (not even with scopes they hold).
        "own":     (201, 403, 201, 201, 201, 201, 403, 401, 401, 401),
        "peer":    (404, 404, 404, 404, 404, 201, 403, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 404, 201, 403, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("GET", "/v1/participants/{participant_id}/tokens"): {
        "own":     (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "peer":    (404, 404, 404, 404, 404, 200, 200, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 404, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("DELETE", "/v1/tokens/{token_id}"): {
        # own: another token of the caller's participant; a narrowed token may revoke only itself.
        "own":     (200, 403, 200, 200, 200, 200, 403, 401, 401, 401),
        "peer":    (404, 404, 404, 404, 404, 200, 403, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 404, 200, 403, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("POST", "/v1/orders"): {
        "-":       (201, 403, 201, 403, 403, 403, 403, 401, 401, 401),
        "wrong_side": (403, 403, 403, 403, 403, 403, 403, 401, 401, 401)},
    ("POST", "/v1/orders/batch"): {                                      # per-order statuses inside the 200
        "-":       (200, 403, 200, 403, 403, 403, 403, 401, 401, 401)},
    ("GET", "/v1/orders"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/orders/{order_id}"): {
        "own":     (200, 200, 200, NA,  NA,  NA,  NA,  401, 401, 401),
        "peer":    (404, 404, 404, NA,  200, 200, 200, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("DELETE", "/v1/orders/{order_id}"): {
        "own":     (200, 403, 200, NA,  NA,  NA,  NA,  401, 401, 401),
        "peer":    (404, 403, 404, NA,  403, 403, 403, 401, 401, 401),
        "foreign": (404, 403, 404, 403, 403, 403, 403, 401, 401, 401),
        "missing": (404, 403, 404, 403, 403, 403, 403, 401, 401, 401)},
    ("GET", "/v1/trades"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/trades/{trade_id}"): {
        # own: the caller is the buyer or the seller, or (programme) its programme paid the support
        "own":     (200, 200, 200, 200, NA,  NA,  NA,  401, 401, 401),
        "peer":    (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("GET", "/v1/books/{commodity}/{form}/{grade}"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("PUT", "/v1/books/{commodity}/{form}/{grade}"): {
        "-":       (403, 403, 403, 403, 403, 200, 403, 401, 401, 401)},
    ("POST", "/v1/books/{commodity}/{form}/{grade}/auction"): {
        "-":       (403, 403, 403, 403, 403, 200, 403, 401, 401, 401)},
    ("POST", "/v1/programmes"): {
        "-":       (403, 403, 403, 201, 403, 403, 403, 401, 401, 401)},
    ("GET", "/v1/programmes"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/programmes/{programme_id}"): {
        "own":     (NA,  NA,  NA,  200, NA,  NA,  NA,  401, 401, 401),
        "peer":    (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("PATCH", "/v1/programmes/{programme_id}"): {
        "own":     (NA,  NA,  NA,  200, NA,  NA,  NA,  401, 401, 401),
        "peer":    (403, 403, 403, 404, 403, 200, 403, 401, 401, 401),
        "missing": (403, 403, 403, 404, 403, 404, 403, 401, 401, 401)},
    ("POST", "/v1/programmes/{programme_id}/enrolments"): {                # only a seller enrols, itself
        "-":       (201, 403, 403, 403, 403, 403, 403, 401, 401, 401),
        "missing": (404, 403, 403, 403, 403, 403, 403, 401, 401, 401)},
    ("GET", "/v1/programmes/{programme_id}/enrolments"): {                 # filtered: own, or all for the owner
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("DELETE", "/v1/programmes/{programme_id}/enrolments/{seller_id}"): {  # only the seller withdraws
        "own":     (200, 403, NA,  NA,  NA,  NA,  NA,  401, 401, 401),
        "peer":    (404, 403, 403, 403, 403, 403, 403, 401, 401, 401),
        "missing": (404, 403, 403, 403, 403, 403, 403, 401, 401, 401)},
    ("POST", "/v1/fixings/{commodity}/{form}"): {                           # the operator publishes
        "-":       (403, 403, 403, 403, 403, 201, 403, 401, 401, 401)},
    ("GET", "/v1/fixings/{commodity}/{form}"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/policies"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401)},
    ("GET", "/v1/policies/{commodity}/{form}"): {
        "-":       (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("PUT", "/v1/policies/{commodity}/{form}"): {
        "-":       (403, 403, 403, 200, 403, 200, 403, 401, 401, 401),   # a new policy
        "peer":    (403, 403, 403, 403, 403, 200, 403, 401, 401, 401)},  # one set by another programme
    ("POST", "/v1/deposits"): {
        "-":       (403, 403, 403, 403, 403, 201, 403, 401, 401, 401)},
    ("GET", "/v1/accounts/{owner}"): {
        "own":     (200, 200, 200, 200, 200, 200, 200, 401, 401, 401),
        "peer":    (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "foreign": (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "own_programme": (NA, NA, NA, 200, NA, NA, NA, 401, 401, 401),
        "peer_programme": (404, 404, 404, 404, 200, 200, 200, 401, 401, 401),
        "missing": (404, 404, 404, 404, 404, 404, 404, 401, 401, 401)},
    ("GET", "/v1/ledger/trial-balance"): {
        "-":       (403, 403, 403, 403, 200, 200, 403, 401, 401, 401)},
    ("GET", "/v1/audit"): {
        "-":       (403, 403, 403, 403, 200, 200, 403, 401, 401, 401)},
    ("GET", "/v1/audit/head"): {
        "-":       (403, 403, 403, 403, 200, 200, 403, 401, 401, 401)},
    ("GET", "/v1/audit/export"): {
        "-":       (403, 403, 403, 403, 200, 200, 403, 401, 401, 401)},
    ("GET", "/v1/audit/verify"): {
        "-":       (403, 403, 403, 403, 200, 200, 403, 401, 401, 401)},
}

#: The participant behind each caller; the token-less callers borrow lynas's objects (they never get that far).
ACTOR_PID = {"seller": "lynas", "seller_ro": "lynas", "buyer": "toyota", "programme": "dod", "regulator": "gao",
             "admin": "admin", "admin_ro": "admin", "none": "lynas", "unknown": "lynas", "revoked": "toyota"}
#: Another participant of the same role (or anyone else for the roles that have no peer).
PEER = {"lynas": "mp", "toyota": "dla", "dod": "meti", "gao": "mp", "admin": "mp"}
#: A participant of another role.
FOREIGN = {"lynas": "toyota", "toyota": "lynas", "dod": "toyota", "gao": "toyota", "admin": "toyota"}
#: Ids that exist nowhere.
MISSING = {"participant": "ghost", "order": "ord_999999", "trade": 999999, "token": "tok_00000000deadbeef",
           "programme": "ghost-prog", "policy": ("ghost", "oxide")}

UNKNOWN_TOKEN = "cm_00000000deadbeef_" + "A" * 43
#: (commodity, form, grade) of the books the matrix writes to, away from the setup trades.
PLACE_BOOK = ("matrix", "place", "std")
CANCEL_BOOK = ("matrix", "cancel", "std")
REST_BOOK = ("matrix", "rest", "std")


def _order(who_role: str, book: tuple[str, str, str], side: str | None = None) -> dict:
    """A non-crossing order (sells at 500, buys at 1) in ``book``."""
    side = side or ("sell" if who_role == "seller" else "buy")
    c, f, g = book
    base = SELL if side == "sell" else BUY
    return {**base, "commodity": c, "form": f, "grade": g, "quantity": "10",
            "limit_price": "500" if side == "sell" else "1"}


@dataclass
class World:
    """A populated market and the objects the matrix refers to."""

    m: Any
    tokens: dict[str, str | None] = field(default_factory=dict)  # caller → bearer secret (None: no header)
    orders: dict[str, str] = field(default_factory=dict)         # participant → a resting order id
    trades: dict[str, int] = field(default_factory=dict)         # participant → a trade it may see
    programmes: dict[str, str] = field(default_factory=dict)     # programme participant → its programme id
    policy: tuple[str, str] = ("ndpr", "oxide")
    n: itertools.count = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.n)}"

    def ok(self, r, status: int = 200) -> dict:
        assert r.status_code == status, r.text
        return r.json()

    def send(self, actor: str, method: str, path: str, body: Any = None, **headers: str):
        h = {"Idempotency-Key": self.fresh("mx-"), **headers}
        if self.tokens[actor] is not None:
            h["Authorization"] = f"Bearer {self.tokens[actor]}"
        return self.m.client.request(method, path, json=body, headers=h)


def build_world(m) -> World:
    w = World(m)
    w.tokens.update({k: m.tokens[v] for k, v in ACTOR_PID.items() if k not in ("seller_ro", "admin_ro", "none",
                                                                               "unknown", "revoked")})
    w.tokens["seller_ro"] = w.ok(m.post("admin", "/v1/participants/lynas/tokens", {"scopes": ["read"]}), 201)["token"]
    w.tokens["admin_ro"] = w.ok(m.post("admin", "/v1/participants/admin/tokens", {"scopes": ["read"]}), 201)["token"]
    w.tokens["none"] = None
    w.tokens["unknown"] = UNKNOWN_TOKEN
    gone = w.ok(m.post("admin", "/v1/participants/toyota/tokens", {"label": "to revoke"}), 201)
    w.ok(m.delete("admin", f"/v1/tokens/{gone['id']}"))
    w.tokens["revoked"] = gone["token"]
    # Programmes: dod supports ndpr/oxide, meti cobalt/hydroxide; one supported trade each.
    w.ok(m.post("dod", "/v1/programmes", {"id": "dod-ndpr", "commodity": "ndpr", "form": "oxide", "floor": "110",
                                          "budget": "1000000"}), 201)
    w.ok(m.post("meti", "/v1/programmes", {"id": "meti-co", "commodity": "cobalt", "form": "hydroxide",
                                           "floor": "40", "budget": "1000000"}), 201)
    w.programmes = {"dod": "dod-ndpr", "meti": "meti-co"}
    for seller, pid, (c, f), price in (("lynas", "dod-ndpr", ("ndpr", "oxide"), "95"),
                                       ("mp", "meti-co", ("cobalt", "hydroxide"), "30")):
        w.ok(m.post("admin", "/v1/deposits", {"owner": seller, "asset": f"{c}/{f}", "amount": "1000"}), 201)
        w.ok(m.post(seller, f"/v1/programmes/{pid}/enrolments", {}), 201)
        w.ok(m.post("admin", f"/v1/fixings/{c}/{f}", {"method": "benchmark", "price": price, "source": "matrix"}),
             201)
    m.order("lynas", SELL)
    t0 = m.order("toyota", BUY)["trades"][0]
    co = {"commodity": "cobalt", "form": "hydroxide"}
    m.order("mp", SELL, **co, origin="USA", limit_price="30", quantity="500")
    t1 = m.order("dla", BUY, **co, limit_price="35", quantity="500")["trades"][0]
    assert (t0["programme_id"], t1["programme_id"]) == ("dod-ndpr", "meti-co")
    w.trades = dict.fromkeys(("lynas", "toyota", "dod"), t0["id"]) | dict.fromkeys(("mp", "dla", "meti"), t1["id"])
    for pid, role in (("lynas", "seller"), ("mp", "seller"), ("toyota", "buyer"), ("dla", "buyer")):
        w.orders[pid] = m.order(pid, _order(role, REST_BOOK))["order"]["id"]
    w.ok(m.put("dod", "/v1/policies/ndpr/oxide", {"nonmarket_tariff_rate": "0.25"}))
    return w


# ---------------------------------------------------------------------- request builders
# A builder gets (world, caller, case) and returns (path, body, extra headers), or None when the case does not
# exist for the caller (the table must then say NA, or 401 for the token-less callers).
Req = tuple[str, Any, dict[str, str]] | None


def owner(actor: str, case: str) -> str:
    pid = ACTOR_PID[actor]
    return {"own": pid, "peer": PEER.get(pid), "foreign": FOREIGN.get(pid)}[case]


def b_plain(path: str) -> Callable[[World, str, str], Req]:
    return lambda w, a, c: (path, None, {})


def b_participant(suffix: str = "", body: Any = None):
    def build(w: World, a: str, c: str) -> Req:
        pid = MISSING["participant"] if c == "missing" else owner(a, c)
        return f"/v1/participants/{pid}{suffix}", body, {}
    return build


def b_new_participant(w: World, a: str, c: str) -> Req:
    return "/v1/participants", {"id": w.fresh("new-"), "name": "New", "role": "buyer", "country": "DEU"}, {}


def b_revoke(w: World, a: str, c: str) -> Req:
    if c == "missing":
        return f"/v1/tokens/{MISSING['token']}", None, {}
    tok = w.ok(w.m.post("admin", f"/v1/participants/{owner(a, c)}/tokens", {"label": "spare"}), 201)
    return f"/v1/tokens/{tok['id']}", None, {}


def b_place(w: World, a: str, c: str) -> Req:
    natural = "sell" if a in ("seller", "seller_ro") else "buy"
    side = natural if c == "-" else {"sell": "buy", "buy": "sell"}[natural]
    return "/v1/orders", _order("", PLACE_BOOK, side), {}


def b_place_batch(w: World, a: str, c: str) -> Req:
    _, body, headers = b_place(w, a, c)
    return "/v1/orders/batch", {"orders": [body]}, headers


def b_get_order(w: World, a: str, c: str) -> Req:
    oid = MISSING["order"] if c == "missing" else w.orders.get(owner(a, c))
    return None if oid is None else (f"/v1/orders/{oid}", None, {})


def b_cancel(w: World, a: str, c: str) -> Req:
    if c == "missing":
        return f"/v1/orders/{MISSING['order']}", None, {"If-Match": '"1"'}
    pid = owner(a, c)
    role = {"lynas": "seller", "mp": "seller", "toyota": "buyer", "dla": "buyer"}.get(pid)
    if role is None:
        return None
    oid = w.m.order(pid, _order(role, CANCEL_BOOK))["order"]["id"]
    return f"/v1/orders/{oid}", None, {"If-Match": '"1"'}


def b_trade(w: World, a: str, c: str) -> Req:
    if c == "missing":
        return f"/v1/trades/{MISSING['trade']}", None, {}
    tid = w.trades.get(ACTOR_PID[a]) if c == "own" else w.trades["meti"]  # peer: mp/dla/meti's trade
    return None if tid is None else (f"/v1/trades/{tid}", None, {})


def b_book(suffix: str = "", body: Any = None, fresh: bool = False):
    def build(w: World, a: str, c: str) -> Req:
        grade = w.fresh("g") if fresh else "std"
        return f"/v1/books/matrix/book/{grade}{suffix}", body, {}
    return build


def b_new_programme(w: World, a: str, c: str) -> Req:
    return "/v1/programmes", {"id": w.fresh("prog-"), "commodity": "matrix", "form": "prog", "floor": "1",
                              "budget": "1"}, {}


def _programme_id(a: str, c: str, w: World) -> str | None:
    if c == "missing":
        return MISSING["programme"]
    return w.programmes.get(ACTOR_PID[a]) if c == "own" else "meti-co"


def b_get_programme(w: World, a: str, c: str) -> Req:
    pid = _programme_id(a, c, w)
    return None if pid is None else (f"/v1/programmes/{pid}", None, {})


def b_patch_programme(w: World, a: str, c: str) -> Req:
    pid = _programme_id(a, c, w)
    if pid is None:
        return None
    version = 1 if c == "missing" else w.ok(w.m.get("admin", f"/v1/programmes/{pid}"))["version"]
    return f"/v1/programmes/{pid}", {"active": True}, {"If-Match": f'"{version}"'}


def _fresh_programme(w: World) -> str:
    pid = w.fresh("enr-")
    w.ok(w.m.post("dod", "/v1/programmes", {"id": pid, "commodity": pid, "form": "oxide", "floor": "1",
                                            "budget": "1"}), 201)
    return pid


def b_enrol(w: World, a: str, c: str) -> Req:
    pid = MISSING["programme"] if c == "missing" else _fresh_programme(w)
    return f"/v1/programmes/{pid}/enrolments", {}, {}


def b_list_enrolments(w: World, a: str, c: str) -> Req:
    return f"/v1/programmes/{MISSING['programme'] if c == 'missing' else 'dod-ndpr'}/enrolments", None, {}


def b_withdraw(w: World, a: str, c: str) -> Req:
    if c == "missing":
        return f"/v1/programmes/{MISSING['programme']}/enrolments/lynas", None, {"If-Match": '"1"'}
    seller = ACTOR_PID[a] if c == "own" else "mp"
    if seller not in ("lynas", "mp"):
        return None
    pid = _fresh_programme(w)
    w.ok(w.m.post(seller, f"/v1/programmes/{pid}/enrolments", {}), 201)
    return f"/v1/programmes/{pid}/enrolments/{seller}", None, {"If-Match": '"1"'}


def b_fixing(w: World, a: str, c: str) -> Req:
    return f"/v1/fixings/{w.fresh('fix')}/oxide", {"method": "benchmark", "price": "10", "source": "matrix"}, {}


def b_get_policy(w: World, a: str, c: str) -> Req:
    cf = MISSING["policy"] if c == "missing" else w.policy
    return f"/v1/policies/{cf[0]}/{cf[1]}", None, {}


def b_put_policy(w: World, a: str, c: str) -> Req:
    commodity = w.fresh("pol")
    headers = {}
    if c == "peer":
        w.ok(w.m.put("meti", f"/v1/policies/{commodity}/oxide", {"nonmarket_tariff_rate": "0.5"}))
        headers = {"If-Match": '"1"'}
    return f"/v1/policies/{commodity}/oxide", {"nonmarket_tariff_rate": "0.1"}, headers


def b_deposit(w: World, a: str, c: str) -> Req:
    return "/v1/deposits", {"owner": "lynas", "asset": "USD", "amount": "1"}, {}


def b_account(w: World, a: str, c: str) -> Req:
    if c == "missing":
        acct = MISSING["participant"]
    elif c == "own_programme":
        acct = w.programmes.get(ACTOR_PID[a])
    elif c == "peer_programme":
        acct = "meti-co"
    else:
        acct = owner(a, c)
    return None if acct is None else (f"/v1/accounts/{acct}", None, {})


BUILDERS: dict[tuple[str, str], Callable[[World, str, str], Req]] = {
    ("GET", "/health"): b_plain("/health"),
    ("GET", "/v1/me"): b_plain("/v1/me"),
    ("POST", "/v1/participants"): b_new_participant,
    ("GET", "/v1/participants"): b_plain("/v1/participants"),
    ("GET", "/v1/participants/{participant_id}"): b_participant(),
    ("POST", "/v1/participants/{participant_id}/tokens"): b_participant("/tokens", {"label": "matrix"}),
    ("GET", "/v1/participants/{participant_id}/tokens"): b_participant("/tokens"),
    ("DELETE", "/v1/tokens/{token_id}"): b_revoke,
    ("POST", "/v1/orders"): b_place,
    ("POST", "/v1/orders/batch"): b_place_batch,
    ("GET", "/v1/orders"): b_plain("/v1/orders"),
    ("GET", "/v1/orders/{order_id}"): b_get_order,
    ("DELETE", "/v1/orders/{order_id}"): b_cancel,
    ("GET", "/v1/trades"): b_plain("/v1/trades"),
    ("GET", "/v1/trades/{trade_id}"): b_trade,
    ("GET", "/v1/books/{commodity}/{form}/{grade}"): b_book(),
    ("PUT", "/v1/books/{commodity}/{form}/{grade}"): b_book("", {"mode": "call"}, fresh=True),
    ("POST", "/v1/books/{commodity}/{form}/{grade}/auction"): b_book("/auction"),
    ("POST", "/v1/programmes"): b_new_programme,
    ("GET", "/v1/programmes"): b_plain("/v1/programmes"),
    ("GET", "/v1/programmes/{programme_id}"): b_get_programme,
    ("PATCH", "/v1/programmes/{programme_id}"): b_patch_programme,
    ("POST", "/v1/programmes/{programme_id}/enrolments"): b_enrol,
    ("GET", "/v1/programmes/{programme_id}/enrolments"): b_list_enrolments,
    ("DELETE", "/v1/programmes/{programme_id}/enrolments/{seller_id}"): b_withdraw,
    ("POST", "/v1/fixings/{commodity}/{form}"): b_fixing,
    ("GET", "/v1/fixings/{commodity}/{form}"): b_plain("/v1/fixings/ndpr/oxide"),
    ("GET", "/v1/policies"): b_plain("/v1/policies"),
    ("GET", "/v1/policies/{commodity}/{form}"): b_get_policy,
    ("PUT", "/v1/policies/{commodity}/{form}"): b_put_policy,
    ("POST", "/v1/deposits"): b_deposit,
    ("GET", "/v1/accounts/{owner}"): b_account,
    ("GET", "/v1/ledger/trial-balance"): b_plain("/v1/ledger/trial-balance"),
    ("GET", "/v1/audit"): b_plain("/v1/audit"),
    ("GET", "/v1/audit/head"): b_plain("/v1/audit/head"),
    ("GET", "/v1/audit/export"): b_plain("/v1/audit/export"),
    ("GET", "/v1/audit/verify"): b_plain("/v1/audit/verify"),
}

CASES = [(op, case) for op, cases in MATRIX.items() for case in cases]
#: The PostgreSQL smoke: one case of each kind of check (public read, ownership read and write, role-only writes).
PG_SMOKE = [(("GET", "/v1/me"), "-"), (("POST", "/v1/participants"), "-"), (("POST", "/v1/orders"), "-"),
            (("GET", "/v1/orders/{order_id}"), "foreign"), (("DELETE", "/v1/orders/{order_id}"), "peer"),
            (("GET", "/v1/trades/{trade_id}"), "peer"), (("GET", "/v1/accounts/{owner}"), "peer_programme"),
            (("PATCH", "/v1/programmes/{programme_id}"), "peer"), (("GET", "/v1/audit"), "-"),
            (("DELETE", "/v1/tokens/{token_id}"), "own"), (("GET", "/v1/audit/verify"), "-")]


def _run_row(w: World, op: tuple[str, str], case: str) -> None:
    method, _ = op
    failures = []
    for actor, expected in zip(COLS, MATRIX[op][case], strict=True):
        if expected is None:
            continue
        req = BUILDERS[op](w, actor, case)
        assert req is not None or expected == 401, f"{op} {case}: no object for {actor} but the table expects {expected}"
        if req is None:  # a token-less caller without such an object: any id will do, authentication fails first
            req = BUILDERS[op](w, actor, "missing")
        path, body, headers = req
        r = w.send(actor, method, path, body, **headers)
        if r.status_code != expected:
            failures.append(f"{actor}: {method} {path} → {r.status_code} (expected {expected}) {r.text[:200]}")
        elif r.status_code >= 400:
            err = r.json()["error"]
            assert err["code"] and err["message"], r.text
            if expected == 401:
                assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("authz")
    with open_market(database_url("sqlite", tmp), tmp, rate=0, durable=False) as m:
        yield build_world(m)


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("authz-pg")
    with open_market(database_url("postgresql", tmp), tmp, rate=0) as m:
        yield build_world(m)


# ---------------------------------------------------------------------- the matrix
def test_matrix_covers_every_openapi_operation():
    from critmin.server.app import create_app

    spec = create_app("sqlite://").openapi()
    ops = {(method.upper(), path) for path, item in spec["paths"].items() for method in item
           if method in ("get", "post", "put", "patch", "delete")}
    assert ops - MATRIX.keys() == set(), "endpoints missing from the authorisation matrix"
    assert MATRIX.keys() - ops == set(), "matrix rows for endpoints that no longer exist"
    assert BUILDERS.keys() == MATRIX.keys()
    for op, cases in MATRIX.items():
        for case, row in cases.items():
            assert len(row) == len(COLS), (op, case)
            # every endpoint but /health authenticates, and no token-less caller ever gets further
            assert row[-3:] == ((200, 200, 200) if op == ("GET", "/health") else (401, 401, 401)), (op, case)


@pytest.mark.parametrize(("op", "case"), CASES, ids=[f"{m} {p} [{c}]" for (m, p), c in CASES])
def test_matrix(world, op, case):
    _run_row(world, op, case)


@pytest.mark.parametrize(("op", "case"), PG_SMOKE, ids=[f"{m} {p} [{c}]" for (m, p), c in PG_SMOKE])
def test_matrix_postgresql_smoke(pg_world, op, case):
    _run_row(pg_world, op, case)


# ---------------------------------------------------------------------- existence never leaks
#: (caller, method, path template, the other participant's id, a missing id): the 404 for someone else's object
#: must be the 404 for an object that does not exist, up to the id in the message.
def _leak_cases(w: World) -> list[tuple[str, str, str, str, str, dict]]:
    im = {"If-Match": '"1"'}
    theirs = w.m.order("dla", _order("buyer", CANCEL_BOOK))["order"]["id"]
    spare = w.ok(w.m.post("admin", "/v1/participants/dla/tokens", {"label": "spare"}), 201)["id"]
    return [
        ("buyer", "GET", "/v1/participants/{}", "dla", "ghost", {}),
        ("buyer", "GET", "/v1/participants/{}/tokens", "dla", "ghost", {}),
        ("buyer", "POST", "/v1/participants/{}/tokens", "dla", "ghost", {}),
        ("buyer", "DELETE", "/v1/tokens/{}", spare, MISSING["token"], {}),
        ("buyer", "GET", "/v1/orders/{}", w.orders["dla"], MISSING["order"], {}),
        ("seller", "GET", "/v1/orders/{}", w.orders["dla"], MISSING["order"], {}),
        ("buyer", "DELETE", "/v1/orders/{}", theirs, MISSING["order"], im),
        ("buyer", "GET", "/v1/trades/{}", str(w.trades["dla"]), str(MISSING["trade"]), {}),
        ("programme", "GET", "/v1/trades/{}", str(w.trades["meti"]), str(MISSING["trade"]), {}),
        ("buyer", "GET", "/v1/accounts/{}", "dla", "ghost", {}),
        ("programme", "GET", "/v1/accounts/{}", "lynas", "ghost", {}),
        ("programme", "GET", "/v1/accounts/{}", "meti-co", "ghost", {}),
        ("programme", "PATCH", "/v1/programmes/{}", "meti-co", "ghost-prog", im),
    ]


def test_foreign_404_is_indistinguishable_from_missing(world):
    for actor, method, tpl, theirs, missing, headers in _leak_cases(world):
        body = {"active": True} if method == "PATCH" else ({"label": "x"} if method == "POST" else None)
        a = world.send(actor, method, tpl.format(theirs), body, **headers)
        b = world.send(actor, method, tpl.format(missing), body, **headers)
        what = f"{actor} {method} {tpl}"
        assert a.status_code == b.status_code == 404, (what, a.text, b.text)
        ea, eb = a.json()["error"], b.json()["error"]
        assert ea["code"] == eb["code"] == "not_found", what
        assert ea["field"] == eb["field"], what
        assert ea["message"].replace(theirs, "<id>") == eb["message"].replace(missing, "<id>"), (what, ea, eb)
        assert theirs in ea["message"] and missing in eb["message"]
        assert sorted(set(a.headers) - {"content-length"}) == sorted(set(b.headers) - {"content-length"}), what


# ---------------------------------------------------------------------- lists show only what the caller may see
def _all(w: World, actor: str, path: str) -> list[dict]:
    r = w.send(actor, "GET", path + ("&" if "?" in path else "?") + "limit=500")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_lists_are_filtered_by_ownership(world):
    w = world
    for actor in ("seller", "seller_ro", "buyer"):
        pid = ACTOR_PID[actor]
        orders = _all(w, actor, "/v1/orders")
        assert orders and {o["participant_id"] for o in orders} == {pid}, actor
        trades = _all(w, actor, "/v1/trades")
        assert trades and all(pid in (t["buyer_id"], t["seller_id"]) for t in trades), actor
    assert _all(w, "programme", "/v1/orders") == []
    prog_trades = _all(w, "programme", "/v1/trades")
    assert [t["id"] for t in prog_trades] == [w.trades["dod"]]
    assert {t["programme_id"] for t in prog_trades} == {"dod-ndpr"}
    for actor in ("regulator", "admin", "admin_ro"):
        assert {o["participant_id"] for o in _all(w, actor, "/v1/orders")} >= {"lynas", "mp", "toyota", "dla"}
        assert {t["id"] for t in _all(w, actor, "/v1/trades")} >= {w.trades["dod"], w.trades["meti"]}
    # the book shows anonymous depth only
    book = w.ok(w.send("buyer", "GET", "/v1/books/{}/{}/{}".format(*REST_BOOK)))
    assert book["asks"] and "participant_id" not in str(book)


def test_narrowed_tokens_carry_their_scopes(world):
    me = world.ok(world.send("seller_ro", "GET", "/v1/me"))
    assert (me["id"], me["role"], me["scopes"]) == ("lynas", "seller", ["read"])
    me = world.ok(world.send("admin_ro", "GET", "/v1/me"))
    assert (me["id"], me["role"], me["scopes"]) == ("admin", "admin", ["read"])
    # a narrowed token mints no tokens for its participant, not even within its own scopes
    r = world.send("seller_ro", "POST", "/v1/participants/lynas/tokens", {"scopes": ["read"], "label": "ro2"})
    assert r.status_code == 403, r.text
    r = world.send("seller_ro", "POST", "/v1/participants/lynas/tokens", {"scopes": ["read", "trade"]})
    assert r.status_code == 403
    r = world.send("admin_ro", "POST", "/v1/participants/admin/tokens", {"scopes": ["admin"]})
    assert r.status_code == 403
    # a full token still cannot grant beyond its role
    r = world.send("seller", "POST", "/v1/participants/lynas/tokens", {"scopes": ["read", "audit"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "scopes"
    # an empty scope list means no scope, not every scope
    r = world.send("seller", "POST", "/v1/participants/lynas/tokens", {"scopes": [], "label": "none"})
    assert r.status_code == 201 and r.json()["scopes"] == [], r.text
    h = {"Authorization": f"Bearer {r.json()['token']}"}
    assert world.m.client.get("/v1/orders", headers=h).status_code == 403


def test_scopeless_token_manages_no_tokens(world):
    """A token without scopes cannot revoke its participant's trading token nor issue new ones (403); it may revoke
    itself. The same holds for a token narrowed to 'read'."""
    w = world
    trading = w.ok(w.m.post("admin", "/v1/participants/dla/tokens", {"label": "trading"}), 201)
    for scopes in ([], ["read"]):
        narrow = w.ok(w.m.post("admin", "/v1/participants/dla/tokens", {"scopes": scopes, "label": "narrow"}), 201)
        h = {"Authorization": f"Bearer {narrow['token']}"}
        r = w.m.client.delete(f"/v1/tokens/{trading['id']}", headers={**h, "Idempotency-Key": w.fresh("k-")})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (scopes, r.text)
        for body in ({}, {"scopes": []}, {"scopes": scopes}):
            r = w.m.client.post("/v1/participants/dla/tokens", json=body,
                                headers={**h, "Idempotency-Key": w.fresh("k-")})
            assert r.status_code == 403, (scopes, body, r.text)
        # the trading token still works, and the narrowed token may revoke itself
        assert w.m.client.get("/v1/me", headers={"Authorization": f"Bearer {trading['token']}"}).status_code == 200
        r = w.m.client.delete(f"/v1/tokens/{narrow['id']}", headers={**h, "Idempotency-Key": w.fresh("k-")})
        assert r.status_code == 200 and r.json()["revoked"] is True, r.text
        assert w.m.client.get("/v1/me", headers=h).status_code == 401


def test_regulator_never_changes_the_market():
    """The table itself: every state-changing endpoint except token self-service answers a regulator 403."""
    writes = [op for op in MATRIX if op[0] != "GET" and op[1] not in ("/v1/participants/{participant_id}/tokens",
                                                                        "/v1/tokens/{token_id}")]
    reg = COLS.index("regulator")
    for op in writes:
        for case, row in MATRIX[op].items():
            assert row[reg] in (403, None), (op, case)
    assert len(writes) == 13
