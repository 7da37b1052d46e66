"""Schemathesis fuzz of the marketplace API against its own OpenAPI document: no 5xx, no schema violations.

The app runs in-process (Schemathesis' ASGI transport: no sockets, one event loop thread). The cast of
``serverkit`` is created first, with a few books, programmes, policies and resting orders, so that generated
requests reach the market rules and not only the authorisation checks. Then, per caller (admin, sellers, buyers, a
programme, a regulator; real bearer tokens), the operations the caller may use (the admin: all) get

* Schemathesis' coverage cases (deterministic boundary values, missing and malformed parameters and bodies, wrong
  content types, unexpected methods), and
* Hypothesis cases, positive (valid by the schema) and negative (invalid by the schema).

Positive cases are nudged towards live objects with some probability: path ids are swapped for ids that exist (the
orders and trades the run itself made), order bodies get a side the caller may trade, one of the test books and
sane prices and dates, ``If-Match`` a small version. Generated ``Idempotency-Key`` values get a unique suffix most of
the time (the rest collide on purpose: replays and key reuse). Every response goes through the five checks in
``CHECKS``; failures are collected (no shrinking) and reported together with a curl line to replay them.

Deterministic: Hypothesis runs derandomized (the same cases every run) without its example database; the coverage
cases are fixed. The SQLite test runs 10,639 cases in about 2½ minutes on 2 (busy) cores, the PostgreSQL one 1,776
in about 20 s. Malformed requests written by hand (invalid JSON, wrong content type, an array for an object, huge
numbers, unicode and NUL in ids) are checked at the end for a 4xx with a precise message.
"""

from __future__ import annotations

import collections
import itertools
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from serverkit import BUY, CAST, SELL, database_url, open_market

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

#: Books the nudged orders go to (the first two get a policy or a programme in the set-up).
BOOKS = [("ndpr", "oxide", "std"), ("cobalt", "hydroxide", "battery"), ("lithium", "carbonate", "battery")]
ORIGINS = ["AUS", "USA", "CAN", "JPN", "CHN", "COD", "IDN", "BRA"]
VALID_KEY = re.compile(r"^[\x21-\x7e]{1,180}$")

#: Positive bodies nudged towards live objects.
NUDGED_BODIES = ("POST /v1/orders", "POST /v1/deposits")
#: Operations whose cost grows with the whole database (the audit chain): a few cases per run.
CAPS = {"GET /v1/audit/export": 3, "GET /v1/audit/head": 10, "GET /v1/ledger/trial-balance": 3}

ORDER_OPS = ("POST /v1/orders", "GET /v1/orders", "GET /v1/orders/{order_id}", "DELETE /v1/orders/{order_id}")
TRADER_OPS = (*ORDER_OPS, "GET /v1/me", "GET /v1/trades", "GET /v1/trades/{trade_id}",
              "GET /v1/books/{commodity}/{form}/{grade}", "GET /v1/accounts/{owner}",
              "POST /v1/participants/{participant_id}/tokens", "GET /v1/participants/{participant_id}/tokens",
              "GET /v1/participants/{participant_id}", "PUT /v1/books/{commodity}/{form}/{grade}",
              "POST /v1/programmes/{programme_id}/enrolments", "GET /v1/programmes/{programme_id}/enrolments",
              "DELETE /v1/programmes/{programme_id}/enrolments/{seller_id}", "GET /v1/fixings/{commodity}/{form}")
PROGRAMME_OPS = ("POST /v1/programmes", "GET /v1/programmes", "GET /v1/programmes/{programme_id}",
                 "PATCH /v1/programmes/{programme_id}", "GET /v1/policies", "GET /v1/policies/{commodity}/{form}",
                 "PUT /v1/policies/{commodity}/{form}", "GET /v1/accounts/{owner}",
                 "GET /v1/programmes/{programme_id}/enrolments", "GET /v1/fixings/{commodity}/{form}")
REGULATOR_OPS = ("GET /v1/participants", "GET /v1/orders", "GET /v1/trades", "GET /v1/audit", "GET /v1/audit/head",
                 "GET /v1/audit/export", "GET /v1/ledger/trial-balance", "GET /v1/accounts/{owner}")

#: A plan step: (caller, COVERAGE or a Hypothesis generation mode, operations (None: all), examples per operation).
COVERAGE = "coverage"
#: The SQLite run.
PLAN_SQLITE = [
    ("admin", COVERAGE, None, 0),
    *((trader, COVERAGE, TRADER_OPS, 0) for trader in ("lynas", "toyota", "shenghe", "mp", "dla")),
    ("dod", COVERAGE, PROGRAMME_OPS, 0),
    ("meti", COVERAGE, PROGRAMME_OPS, 0),
    ("gao", COVERAGE, REGULATOR_OPS, 0),
    ("lynas", POSITIVE, ORDER_OPS, 250),
    ("toyota", POSITIVE, ORDER_OPS, 250),
    ("shenghe", POSITIVE, ("POST /v1/orders",), 100),
    ("mp", POSITIVE, ("POST /v1/orders",), 100),
    ("dla", POSITIVE, ("POST /v1/orders",), 100),
    ("admin", POSITIVE, None, 50),
    ("admin", NEGATIVE, None, 25),
    ("lynas", POSITIVE, TRADER_OPS, 25),
    ("toyota", NEGATIVE, TRADER_OPS, 15),
    ("dod", POSITIVE, PROGRAMME_OPS, 50),
    ("dod", NEGATIVE, PROGRAMME_OPS, 20),
    ("gao", POSITIVE, REGULATOR_OPS, 25),
    ("lynas", POSITIVE, ("DELETE /v1/orders/{order_id}", "GET /v1/orders/{order_id}"), 80),
    ("mp", POSITIVE, ("POST /v1/programmes/{programme_id}/enrolments",
                      "DELETE /v1/programmes/{programme_id}/enrolments/{seller_id}"), 40),
]
#: The PostgreSQL run: the same kinds of cases, fewer of them.
PLAN_POSTGRESQL = [
    ("admin", COVERAGE, None, 0),
    ("lynas", POSITIVE, ORDER_OPS, 30),
    ("toyota", POSITIVE, ORDER_OPS, 30),
    ("admin", POSITIVE, None, 5),
    ("admin", NEGATIVE, None, 3),
    ("dod", POSITIVE, PROGRAMME_OPS, 5),
]


@dataclass
class Fuzz:
    """A running app, its schema, the callers' tokens, the live ids, and what the run saw."""

    schema: Any
    client: Any
    tokens: dict[str, str]
    ids: dict[str, list[Any]]
    cases: collections.Counter = field(default_factory=collections.Counter)        # operation → cases
    statuses: collections.Counter = field(default_factory=collections.Counter)     # status → cases
    failures: dict[tuple, str] = field(default_factory=dict)                       # (op, kind, status) → report
    keys: itertools.count = field(default_factory=itertools.count)

    # ------------------------------------------------------------------ one request
    def send(self, case: Any, who: str) -> None:
        label = case.operation.label
        key = case.headers.get("Idempotency-Key") if case.headers else None
        if isinstance(key, str) and VALID_KEY.match(key) and next(self.keys) % 10:
            case.headers["Idempotency-Key"] = f"{key}~{next(self.keys)}"   # 9 in 10 unique, the rest collide
        auth = {"Authorization": f"Bearer {self.tokens[who]}"}
        self.cases[label] += 1
        try:
            response = case.call(session=self.client, headers=auth)
        except Exception as exc:  # an exception that escaped the app: a 500 for a real client
            self._fail(label, f"exception {type(exc).__name__}", 0, f"{who}: {exc!r}\n{case.as_curl_command()}")
            return
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except FailureGroup as group:
            for f in group.exceptions:
                self._fail(label, f.title, response.status_code,
                           f"{who}: {f.title}: {f.message}\n  -> {response.status_code} {response.text[:500]}\n"
                           f"  {case.as_curl_command()[:2000]}")
        if response.status_code == 201 and label == "POST /v1/orders":
            body = response.json()
            self.ids["order_id"].append(body["order"]["id"])
            self.ids["trade_id"].extend(t["id"] for t in body["trades"])

    def _fail(self, label: str, kind: str, status: int, report: str) -> None:
        self.failures.setdefault((label, kind, status), report)

    # ------------------------------------------------------------------ nudges towards live objects
    def nudge(self, case: Any, who: str, rnd: random.Random) -> None:
        """Point a positive case at live objects (ids that exist, a book with orders, a current version).

        ``rnd`` is seeded by Hypothesis (one draw per case): the choices depend on the live ids, and Hypothesis
        insists that its own draws do not depend on anything outside the case.
        """
        if rnd.random() < 0.2:
            return
        for name in list(case.path_parameters or {}):
            known = self.ids.get(name)
            if known:  # half the time one of the newest (open orders, recent trades)
                case.path_parameters[name] = rnd.choice(known[-20:] if rnd.random() < 0.5 else known)
        if {"commodity", "form", "grade"} <= set(case.path_parameters or {}):
            case.path_parameters.update(zip(("commodity", "form", "grade"), rnd.choice(BOOKS), strict=True))
        if case.operation.get_parameter("If-Match", "header") is not None and rnd.random() < 0.6:
            case.headers = case.headers or {}
            case.headers["If-Match"] = rnd.choice(["1", "2", '"1"', 'W/"2"', "3", "0"])
        if case.operation.label == "POST /v1/orders" and isinstance(case.body, dict):
            case.body = {**case.body, **order_fields(CAST.get(who, ("admin",))[0], rnd)}
        if case.operation.label == "POST /v1/deposits" and isinstance(case.body, dict):
            case.body = {**case.body, "owner": rnd.choice(self.ids["owner"]),
                         "amount": rnd.choice(["1", "100.5", "1000000"])}

    # ------------------------------------------------------------------ runs
    def operations(self, wanted: tuple[str, ...] | None) -> list[Any]:
        ops = [r.ok() for r in self.schema.get_all_operations()]
        return [op for op in ops if wanted is None or op.label in wanted]

    def hypothesis(self, who: str, mode: GenerationMode, wanted: tuple[str, ...] | None, n: int) -> None:
        for op in self.operations(wanted):
            nudged = mode is POSITIVE and (op.path_parameters or op.label in NUDGED_BODIES
                                           or op.get_parameter("If-Match", "header") is not None)
            # Without nudges, a parameterless operation has one case: Hypothesis stops when it has seen them all.
            rnd = st.randoms(use_true_random=True) if nudged else st.none()

            @given(case=op.as_strategy(generation_mode=mode), rnd=rnd)
            @settings(max_examples=min(n, CAPS.get(op.label, n)), derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case: Any, rnd: random.Random | None) -> None:
                if rnd is not None:
                    self.nudge(case, who, rnd)
                self.send(case, who)

            try:
                run()
            except Unsatisfiable:  # nothing negative to generate (an operation without parameters)
                pass

    def coverage(self, who: str, wanted: tuple[str, ...] | None = None) -> None:
        for op in self.operations(wanted):
            config = self.schema.config.generation_for(operation=op)
            for case in self.schema.iter_coverage_cases(op, generation_modes=[POSITIVE, NEGATIVE],
                                                        generation_config=config):
                self.send(case, who)

    def summary(self, seconds: float) -> str:
        total = sum(self.cases.values())
        per_op = ", ".join(f"{op} {n}" for op, n in sorted(self.cases.items(), key=lambda kv: kv[0].split(" ")[1]))
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))
        return (f"fuzz: {total} cases in {seconds:.0f} s ({total / seconds:.0f}/s); {len(self.failures)} failures; "
                f"{len(self.ids['order_id'])} orders placed, {len(self.ids['trade_id'])} trades; statuses {statuses}; "
                f"per operation: {per_op}")

    def report(self) -> str:
        return "\n\n".join(f"[{op} | {kind} | {status}]\n{text}" for (op, kind, status), text in self.failures.items())


def order_fields(role: str, rnd: random.Random) -> dict[str, Any]:
    """Order fields a market would see: the caller's side, a test book, sane quantities, prices and dates."""
    side = "sell" if role == "seller" else "buy"
    commodity, form, grade = rnd.choice(BOOKS)
    return {"side": side, "commodity": commodity, "form": form, "grade": grade,
            "quantity": rnd.choice(["1", "10", "250", "400", "1000", "0.5"]),
            "limit_price": rnd.choice(["80", "90", "95", "100", "105", "120.25"]),
            "delivery_start": "2026-12-01", "delivery_end": rnd.choice(["2027-01-31", "2026-12-01"]),
            "origin": rnd.choice(ORIGINS) if side == "sell" else None}


def _setup(client: Any, tokens: dict[str, str]) -> dict[str, list[Any]]:
    """The cast, spare tokens to revoke, a programme, a policy, some money and a few resting orders."""
    keys = itertools.count()

    def call(method: str, path: str, who: str, body: Any = None, **headers: str) -> dict:
        h = {"Authorization": f"Bearer {tokens[who]}", "Idempotency-Key": f"setup-{next(keys)}", **headers}
        r = client.request(method, path, json=body, headers=h)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()

    spare = []
    for pid, (role, country) in CAST.items():
        call("POST", "/v1/participants", "admin", {"id": pid, "name": pid.upper(), "role": role, "country": country})
        tokens[pid] = call("POST", f"/v1/participants/{pid}/tokens", "admin", {"label": "fuzz"})["token"]
        spare.append(call("POST", f"/v1/participants/{pid}/tokens", "admin", {"label": "spare"})["id"])
    call("POST", "/v1/programmes", "dod", {"id": "dod-floor", "commodity": "ndpr", "form": "oxide", "floor": "110",
                                           "budget": "100000"})
    call("POST", "/v1/programmes", "meti", {"id": "meti-cfd", "commodity": "cobalt", "form": "hydroxide",
                                            "cfd_strike": "98", "budget": "5000", "max_payback_per_seller": "2000"})
    for seller, pid, asset in (("lynas", "dod-floor", "ndpr/oxide"), ("mp", "meti-cfd", "cobalt/hydroxide")):
        call("POST", "/v1/deposits", "admin", {"owner": seller, "asset": asset, "amount": "5000"})
        call("POST", f"/v1/programmes/{pid}/enrolments", seller, {})
    call("POST", "/v1/fixings/ndpr/oxide", "admin", {"method": "benchmark", "price": "95", "source": "fuzz"})
    call("POST", "/v1/fixings/cobalt/hydroxide", "admin", {"method": "benchmark", "price": "97", "source": "fuzz"})
    call("PUT", "/v1/policies/ndpr/oxide", "dod", {"nonmarket_tariff_rate": "0.25", "nonmarket_origins": ["CHN"]})
    call("PUT", "/v1/policies/cobalt/hydroxide", "meti", {
        "cost_inputs": {"cash_cost": "20", "sustaining_capex": "4", "responsible_costs": {"audit": "1.5"},
                        "margin_rate": "0.1", "sources": ["fuzz"]}, "nonmarket_use_reference": True,
        "nonmarket_origins": ["COD"]})
    call("POST", "/v1/deposits", "admin", {"owner": "dod-floor", "asset": "USD", "amount": "100000"})
    call("PUT", "/v1/books/lithium/carbonate/battery", "admin", {"mode": "call"})
    orders = [call("POST", "/v1/orders", "lynas", SELL)["order"]["id"],
              call("POST", "/v1/orders", "toyota", BUY)["order"]["id"]]
    participants = ["admin", *CAST]
    return {"participant_id": participants, "owner": [*participants, "dod-floor", "meti-cfd"],
            "programme_id": ["dod-floor", "meti-cfd"], "token_id": spare, "order_id": orders, "trade_id": [0],
            "seller_id": ["lynas", "mp"]}


def fuzz(url: str, tmp_path: Any, plan: list) -> Fuzz:
    from critmin.server.app import create_app

    token_file = tmp_path / "admin.token"
    # No rate limit (every case reaches the route); SQLite without fsync per commit (NORMAL: still atomic).
    app = create_app(url, admin_token_file=token_file, rate=0, durable=False)
    # Starts the app (its lifespan) in-process; an explicit default config: no schemathesis.toml changes the run.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config())
    started = time.monotonic()
    try:
        with asgi.get_client(app) as client:
            tokens = {"admin": token_file.read_text().strip()}
            f = Fuzz(schema, client, tokens, _setup(client, tokens))
            for who, mode, wanted, n in plan:
                if mode == COVERAGE:
                    f.coverage(who, wanted)
                else:
                    f.hypothesis(who, mode, wanted, n)
            r = client.get("/v1/ledger/trial-balance", headers={"Authorization": f"Bearer {tokens['gao']}"})
            assert r.status_code == 200 and r.json()["balanced"] and r.json()["accounts_agree"], r.text
    finally:
        asgi.shutdown_lifespans()  # stops the sequencer and closes the database before tmp_path goes
    print("\n" + f.summary(time.monotonic() - started))
    return f


def test_fuzz_sqlite(tmp_path):
    f = fuzz(database_url("sqlite", tmp_path), tmp_path, PLAN_SQLITE)
    assert not f.failures, f"{len(f.failures)} distinct failures:\n\n{f.report()}"
    assert sum(f.cases.values()) >= 10_000, f.cases
    assert len(f.cases) == len(f.operations(None)), "every operation was fuzzed"
    assert len(f.ids["order_id"]) > 200 and len(f.ids["trade_id"]) > 50, "the order paths were exercised, not just refused"


def test_fuzz_postgresql(tmp_path):
    f = fuzz(database_url("postgresql", tmp_path), tmp_path, PLAN_POSTGRESQL)
    assert not f.failures, f"{len(f.failures)} distinct failures:\n\n{f.report()}"
    assert sum(f.cases.values()) >= 1_000, f.cases


# ---------------------------------------------------------------------- malformed requests, by hand
ORDER = b'{"side":"sell","commodity":"ndpr","form":"oxide","grade":"std","quantity":"1","limit_price":"95",' \
        b'"delivery_start":"2026-12-01","delivery_end":"2027-01-31","location":"Long Beach","origin":"AUS"'
JSON = "application/json"
MALFORMED = [
    # (what, method, path, body, content type, status, error.field, words in the message)
    ("invalid JSON", "POST", "/v1/orders", b'{"side": "sell",', JSON, 422, "body", ["invalid JSON", "character 16"]),
    ("not UTF-8", "POST", "/v1/orders", b'{"side": "\xff"}', JSON, 422, "body", ["UTF-8", "0xff"]),
    ("text/plain", "POST", "/v1/orders", ORDER + b"}", "text/plain", 422, "body",
     ["Content-Type: application/json", "'text/plain'"]),
    ("no content type", "POST", "/v1/orders", ORDER + b"}", None, 422, "body", ["no Content-Type"]),
    ("form body", "POST", "/v1/orders", b"side=sell", "application/x-www-form-urlencoded", 422, "body",
     ["application/x-www-form-urlencoded"]),
    ("array body", "POST", "/v1/orders", b"[" + ORDER + b"}]", JSON, 422, "body", ["JSON object", "an array"]),
    ("string body", "POST", "/v1/orders", b'"sell"', JSON, 422, "body", ["JSON object", "a string"]),
    ("null body", "POST", "/v1/orders", b"null", JSON, 422, "body", ["JSON object", "null"]),
    ("empty body", "POST", "/v1/orders", b"", JSON, 422, "body", ["required"]),
    ("nested array", "POST", "/v1/orders", ORDER + b',"attestations":[]}', JSON, 422, "body.attestations",
     ["body.attestations", "an array"]),
    ("5000-digit number", "POST", "/v1/orders", b'{"quantity": ' + b"9" * 5000 + b"}", JSON, 422, "body", ["digits"]),
    ("deep nesting", "POST", "/v1/orders", b"[" * 100_000 + b"]" * 100_000, JSON, 422, "body", ["nested too deeply"]),
    ("1e400", "POST", "/v1/orders", ORDER + b',"attestations":{"irma_level":1e400}}', JSON, 422,
     "body.attestations.irma_level", ["integer"]),  # a JSON integer only: 1e400 is a (non-finite) float
    ("10**30", "POST", "/v1/orders", ORDER + b',"attestations":{"irma_level":' + b"1" + b"0" * 30 + b"}}", JSON, 422,
     "body.attestations.irma_level", ["less than or equal to 100"]),
    ("number for a decimal", "POST", "/v1/orders", ORDER.replace(b'"quantity":"1"', b'"quantity":1e300') + b"}",
     JSON, 422, "body.quantity", ["string"]),
    ("40-digit decimal", "POST", "/v1/orders", ORDER.replace(b'"quantity":"1"', b'"quantity":"' + b"1" * 40 + b'"')
     + b"}", JSON, 422, "body.quantity", ["at most 25 characters"]),
    ("unicode id in the path", "GET", "/v1/orders/ørd_1", None, None, 422, "path.order_id", ["pattern"]),
    ("unicode id in the body", "POST", "/v1/participants", '{"id": "ñu", "name": "x", "role": "buyer", '
     '"country": "USA"}'.encode(), JSON, 422, "body.id", ["pattern"]),
    ("lone surrogate", "POST", "/v1/orders", ORDER.replace(b'"Long Beach"', b'"\\ud800"') + b"}", JSON, 422,
     "body.location", ["unicode"]),
    ("NUL in a query", "GET", "/v1/orders?commodity=%00", None, None, 422, "query.commodity", ["pattern"]),
    ("NUL in a cursor", "GET", "/v1/participants?after=a%00", None, None, 422, "query.after", ["pattern"]),
]


@pytest.mark.parametrize(("what", "method", "path", "body", "ctype", "status", "field", "words"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_a_precise_4xx(market, what, method, path, body, ctype, status, field, words):
    who = "admin" if path.startswith("/v1/participants") else "lynas"
    headers = market.headers(who) | ({"Content-Type": ctype} if ctype else {})
    r = market.client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field, err
    for w in words:
        assert w in err["message"], err


def test_authorization_that_is_not_bearer(market):
    r = market.client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and "Bearer <token>" in r.json()["error"]["message"]
    assert market.client.get("/v1/me").json()["error"]["message"] == "missing bearer token"


def test_optional_parameters_are_not_nullable_in_the_schema(market):
    """``If-Match``, ``after``, ``status``: absent or a value; ``null`` in the document made clients send "null"."""
    doc = market.client.get("/openapi.json").json()
    params = [p for item in doc["paths"].values() for op in item.values() for p in op.get("parameters", [])]
    assert params and not [p["name"] for p in params if "anyOf" in p["schema"] or p["schema"].get("type") == "null"]


@pytest.mark.parametrize(("method", "path", "name", "takes"), [
    ("GET", "/v1/orders?limt=5", "limt", "after, commodity, limit, status"),     # a misspelt page size
    ("GET", "/v1/trades?limit=5&sort=price", "sort", "after, limit"),
    ("GET", "/v1/me?verbose=1", "verbose", "no query parameters"),
    ("POST", "/v1/orders?dry_run=true", "dry_run", "no query parameters"),        # not the order fast lane
])
def test_unknown_query_parameters_are_refused_by_name(market, method, path, name, takes):
    """A query parameter the operation does not declare is a 422 naming it, not silently ignored (``limt=5`` would
    have returned the default page of 100); nothing is changed."""
    before = market.get("lynas", "/v1/orders").json()["items"]
    r = market.client.request(method, path, json=SELL if method == "POST" else None, headers=market.headers("lynas"))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == f"query.{name}" and "unknown query parameter" in err["message"], err
    assert err["message"].endswith(f"takes {takes}"), err
    assert market.get("lynas", "/v1/orders").json()["items"] == before
    assert market.get("lynas", "/v1/orders?limit=1&status=open").status_code == 200   # declared ones still work


def test_response_headers_are_declared(market):
    """The document declares the headers the service sends (ETag, Idempotency-Replayed, Retry-After,
    WWW-Authenticate), on the operations and statuses that send them; checked on real answers."""
    doc = market.client.get("/openapi.json").json()

    def declared(method: str, template: str, status: int) -> set[str]:
        return set(doc["paths"][template][method.lower()]["responses"][str(status)].get("headers", {}))

    ops = [(m, t, op) for t, item in doc["paths"].items() for m, op in item.items()]
    assert all("Retry-After" in op["responses"][status]["headers"] for _, _, op in ops for status in ("429", "503"))
    # The answers any request can get (a body over the limit, too many connections) are documented on every one.
    assert all({"400", "413", "503"} <= set(op["responses"]) for _, _, op in ops)
    keyed = [op for _, _, op in ops if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))]
    assert len(keyed) >= 10
    assert all("Idempotency-Replayed" in r.get("headers", {}) for op in keyed for r in op["responses"].values())
    # Every header of the list is optional: sent only in the cases its description gives.
    assert not [h for _, _, op in ops for r in op["responses"].values() for h in r.get("headers", {}).values()
                if h.get("required")]

    sent = market.order("lynas", SELL, quantity="7")["order"]
    seen = []
    cases = [
        ("GET", f"/v1/orders/{sent['id']}", "/v1/orders/{order_id}", "lynas", None),
        ("GET", "/v1/me", "/v1/me", "lynas", None),
        ("GET", "/v1/participants/lynas", "/v1/participants/{participant_id}", "lynas", None),
        ("GET", "/v1/books/ndpr/oxide/std", "/v1/books/{commodity}/{form}/{grade}", "lynas", None),
        ("DELETE", f"/v1/orders/{sent['id']}", "/v1/orders/{order_id}", "lynas", "hdr-cancel"),
        ("DELETE", f"/v1/orders/{sent['id']}", "/v1/orders/{order_id}", "lynas", "hdr-cancel"),   # the replay
        ("GET", "/v1/me", "/v1/me", None, None),                                                    # no token: 401
    ]
    for method, path, template, who, key in cases:
        headers = market.headers(who, key) if who else {}
        if method == "DELETE":
            headers["If-Match"] = '"1"'
        r = market.client.request(method, path, headers=headers)
        got = {h for h in ("ETag", "Idempotency-Replayed", "Retry-After", "WWW-Authenticate") if h in r.headers}
        assert got <= declared(method, template, r.status_code), (method, path, r.status_code, got)
        seen.append((r.status_code, got))
    assert seen[:4] == [(200, {"ETag"})] * 4
    assert seen[4:] == [(200, {"ETag"}), (200, {"ETag", "Idempotency-Replayed"}), (401, {"WWW-Authenticate"})]
    assert market.get("lynas", "/v1/me").headers["ETag"] == f'"{market.get("lynas", "/v1/me").json()["version"]}"'


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("malformed")
    with open_market(database_url("sqlite", tmp), tmp) as m:
        yield m
