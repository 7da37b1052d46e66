"""Request fields against the columns that store them: a value the API accepts is always one the database holds.

Every string field of every request model (and the header and path parameters that are stored) is mapped to its
column in :data:`STORED`; the test walks the models' JSON schemas, so a new string field without an entry, or one
whose ``maxLength`` exceeds its column's length, fails here instead of failing a commit on PostgreSQL (where a
``VARCHAR(n)`` refuses a longer value, and the group commit retried the batch for ever).
"""

from __future__ import annotations

import typing

import pytest
from serverkit import BACKENDS, SELL, database_url, open_market

from critmin.server import db
from critmin.server import schemas as S

JSON = "json"  #: stored inside a JSON column (no length limit)
DATE = "date"  #: stored in a DATE column

o, p, t, pol, le = db.orders.c, db.programmes.c, db.tokens.c, db.policies.c, db.ledger_entries.c
#: (model, field path) → the column(s) it is stored in. ``x[]`` is an item of a list, ``x{}`` a key of a mapping
#: and ``x{}=`` its value.
STORED: dict[tuple[str, str], tuple] = {
    ("ParticipantIn", "id"): (db.participants.c.id, le.owner, db.account_balances.c.owner),
    ("ParticipantIn", "name"): (db.participants.c.name,),
    ("ParticipantIn", "role"): (db.participants.c.role,),
    ("ParticipantIn", "country"): (db.participants.c.country,),
    ("TokenIn", "scopes[]"): (t.scopes,),  # joined by spaces: checked on its own below
    ("TokenIn", "label"): (t.label,),
    ("OrderIn", "side"): (o.side,),
    ("OrderIn", "commodity"): (o.commodity, db.trades.c.commodity),
    ("OrderIn", "form"): (o.form, db.trades.c.form),
    ("OrderIn", "grade"): (o.grade, db.trades.c.grade),
    ("OrderIn", "quantity"): (o.quantity, o.remaining, db.trades.c.quantity),
    ("OrderIn", "limit_price"): (o.limit_price, o.book_price, db.trades.c.price),
    ("OrderIn", "delivery_start"): (DATE,),
    ("OrderIn", "delivery_end"): (DATE,),
    ("OrderIn", "location"): (o.location,),
    ("OrderIn", "origin"): (o.origin, db.trades.c.origin),
    ("OrderIn", "client_order_id"): (o.client_order_id,),
    ("AttestationsIn", "carbon_kg_per_kg"): (JSON,),
    ("AttestationsIn", "chain_of_custody"): (JSON,),
    ("RequirementsIn", "allowed_origins[]"): (JSON,),
    ("RequirementsIn", "max_carbon"): (JSON,),
    ("BookModeIn", "mode"): (db.books.c.mode,),
    ("ProgrammeIn", "id"): (p.id, db.trades.c.programme_id, le.owner, db.account_balances.c.owner),
    ("ProgrammeIn", "commodity"): (p.commodity,),
    ("ProgrammeIn", "form"): (p.form,),
    ("ProgrammeIn", "floor"): (p.floor,),
    ("ProgrammeIn", "cfd_strike"): (p.cfd_strike,),
    ("ProgrammeIn", "budget"): (p.budget,),
    ("ProgrammeIn", "eligible_origins[]"): (JSON,),
    ("ProgrammePatch", "budget"): (p.budget,),
    ("CostIn", "cash_cost"): (JSON,),
    ("CostIn", "sustaining_capex"): (JSON,),
    ("CostIn", "responsible_costs{}"): (JSON,),
    ("CostIn", "responsible_costs{}="): (JSON,),
    ("CostIn", "margin_rate"): (JSON,),
    ("CostIn", "sources[]"): (JSON,),
    ("PolicyIn", "nonmarket_tariff_rate"): (pol.nonmarket_tariff_rate,),
    ("PolicyIn", "nonmarket_origins[]"): (JSON,),
    ("DepositIn", "owner"): (le.owner, db.account_balances.c.owner),
    ("DepositIn", "asset"): (le.asset, db.account_balances.c.asset),
    ("DepositIn", "amount"): (le.amount,),
    ("BookModeIn", "price_tick"): (db.books.c.price_tick,),
    ("BookModeIn", "quantity_tick"): (db.books.c.quantity_tick,),
    ("ProgrammeIn", "max_support_per_seller"): (p.max_support_per_seller,),
    ("ProgrammeIn", "max_payback_per_seller"): (p.max_payback_per_seller,),
    ("FixingIn", "method"): (db.fixings.c.method,),
    ("FixingIn", "price"): (db.fixings.c.price, db.trades.c.reference_price),
    ("FixingIn", "source"): (db.fixings.c.source,),
}


def request_models() -> list[type]:
    return [m for m in vars(S).values() if isinstance(m, type) and issubclass(m, S.In) and m is not S.In]


def string_leaves(model: type) -> list[tuple[str, str, dict]]:
    """(model name, field path, schema) of every string-valued leaf of ``model``'s own fields (nested models are
    walked as models of their own)."""
    out: list[tuple[str, str, dict]] = []

    def walk(path: str, sch: dict) -> None:
        if "anyOf" in sch:
            for alt in sch["anyOf"]:
                walk(path, alt)
        elif "$ref" in sch or sch.get("type") == "null":
            return
        elif sch.get("type") == "array":
            walk(path + "[]", sch.get("items", {}))
        elif sch.get("type") == "object":
            walk(path + "{}", {"type": "string", **sch.get("propertyNames", {})})
            for value in [sch.get("additionalProperties", {}), *sch.get("patternProperties", {}).values()]:
                walk(path + "{}=", value if isinstance(value, dict) else {})
        elif sch.get("type") == "string" or "enum" in sch:
            out.append((model.__name__, path, sch))

    for name, sch in model.model_json_schema(ref_template="{model}")["properties"].items():
        walk(name, sch)
    return out


def max_length(sch: dict) -> int | None:
    if "enum" in sch:
        return max(len(str(v)) for v in sch["enum"])
    if sch.get("format") == "date":
        return 10
    return sch.get("maxLength")


def test_every_request_string_fits_its_column():
    seen = set()
    problems = []
    for model in request_models():
        for name, path, sch in string_leaves(model):
            seen.add((name, path))
            if (name, path) not in STORED:
                problems.append(f"{name}.{path}: no column mapped in STORED (where is it stored?)")
                continue
            n = max_length(sch)
            if n is None:
                problems.append(f"{name}.{path}: no maxLength")
                continue
            for col in STORED[name, path]:
                if isinstance(col, str):  # JSON or DATE
                    continue
                if n > col.type.length:
                    problems.append(f"{name}.{path}: accepts {n} characters, column {col.table.name}.{col.name} "
                                    f"holds {col.type.length}")
    assert not problems, "\n".join(problems)
    assert set(STORED) - seen == set(), "STORED lists fields no request model has"
    # the scopes column holds every scope at once, joined by spaces
    assert len(" ".join(typing.get_args(S.Scope))) <= t.scopes.type.length


def test_stored_headers_and_path_parameters_fit_their_columns():
    from critmin.server.app import create_app

    spec = create_app("sqlite://").openapi()
    key_len = db.idempotency.c.key.type.length
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for prm in op.get("parameters", []):
                sch = prm.get("schema", {})
                if prm["in"] == "header" and prm["name"] == "Idempotency-Key":
                    # a batch stores '<key>#i' per order, i < 100
                    extra = 3 if path == "/v1/orders/batch" else 0
                    assert sch["maxLength"] + extra <= key_len, (method, path)
                elif prm["in"] == "path" and sch.get("type") == "string":
                    assert sch.get("maxLength", 10**6) <= 64, (method, path, prm["name"])  # ids and slugs: 64


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_order_id_at_its_column_length(backend, tmp_path):
    """64 characters (the column's length) round-trip on both backends; 65 are refused with 422 naming the field,
    before anything reaches the database."""
    with open_market(database_url(backend, tmp_path), tmp_path, durable=False) as m:
        cid = "c" * 63 + "é"
        placed = m.order("lynas", SELL, client_order_id=cid)["order"]
        assert placed["client_order_id"] == cid
        got = m.get("lynas", f"/v1/orders/{placed['id']}")
        assert got.status_code == 200 and got.json()["client_order_id"] == cid
        r = m.post("lynas", "/v1/orders", {**SELL, "client_order_id": cid + "x"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "body.client_order_id", r.text
        r = m.post("lynas", "/v1/orders/batch", {"orders": [{**SELL, "client_order_id": "b" * 65}]})
        assert r.status_code == 422, r.text
        # and the service keeps committing afterwards
        m.order("lynas", SELL, client_order_id="after")
