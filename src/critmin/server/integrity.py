"""The marketplace database checked against its audit log: every mutable row recomputed from the records.

The audit log is the authority: hash-chained, append-only (triggers), and each record carries the full image of
the rows its change wrote (a participant, a token, an order and the trades it made, a programme, a policy, a book,
a deposit). :func:`verify_database` checks the chain, then *replays* the log into the rows it implies and compares
them with the stored tables, column by column:

- ``participants``, ``tokens`` (participant, scopes, label, revoked, version and the SHA-256 of the token, recorded
  in ``token.issue`` since this check exists: a forged or swapped token row is caught), ``programmes`` (terms,
  budget, active, version), ``policies``, ``books``: their latest row image in the log;
- ``orders``: the image at placement, then each fill (remaining, status, version) by the trades of the
  ``order.place``, ``book.mode`` and ``auction.run`` records, and each ``order.cancel``;
- ``trades``: the image in the record that made it (price, quantity, parties, programme, support due and paid,
  levy, posting);
- ``postings``, ``ledger_entries`` and ``account_balances``: the legs each deposit and each trade implies
  (:func:`trade_legs`), summed per account;
- ``idempotency``: the participant exists, and an order's stored answer agrees with the order and trades in the
  log (the other answers are not in the log; they are not checked).

Every row that disagrees is reported with its table, key, column, the stored value and the value the log
implies; a row the log does not imply is reported as having no record behind it; a row the log implies but the
table lacks, as missing. Decimal columns are compared as numbers (``"50"`` equals ``"50.0"``).

Adding an audit record kind is one entry in :data:`KINDS`: a function ``(state, record) -> None`` that applies the
record's payload to the :class:`Implied` state (``state.put(table, key, row, seq)`` for a full row image,
``state.update(...)`` for a change of some columns); a new table is one entry in :data:`TABLES` (its key and
decimal columns) or, if the log does not imply its rows, in :data:`NOT_IMPLIED`. A record of a kind without an
entry is itself reported (the rows it implies cannot be vouched for); the tests check that every kind the engine
writes and every table of the schema has its entry. A change to how a trade is booked is a change to
:func:`trade_legs`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from critmin.market.audit import ChainCheck
from critmin.market.ledger import EXTERNAL, USD
from critmin.market.model import Trade
from critmin.server import db

#: How many disagreements are kept in full (the count is always exact).
MAX_FINDINGS = 10_000
#: Significant digits of the replay's arithmetic (values, fills, balances): far beyond any sum of the API's largest
#: price × quantity (15 + 9 digits each), so the values the log implies are exact, and a stored amount that was
#: rounded disagrees with them.
EXACT_DIGITS = 120


@dataclass(frozen=True)
class Finding:
    """One disagreement. ``column`` None: the whole row (missing, or without a record behind it)."""

    table: str
    key: str
    column: str | None
    stored: Any
    implied: Any
    record: int | None = None  # the audit record that implies the value, when there is one
    note: str = ""

    def text(self) -> str:
        at = f" (audit record {self.record})" if self.record is not None else ""
        if self.note:
            return f"{self.table} {self.key}: {self.note}{at}"
        return (f"{self.table} {self.key} {self.column}: stored {_show(self.stored)}, the audit log implies "
                f"{_show(self.implied)}{at}")

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "column": self.column, "stored": _plain(self.stored),
                "implied": _plain(self.implied), "record": self.record, "message": self.text()}


@dataclass
class Report:
    """The outcome of :func:`verify_database`."""

    records: int = 0
    head: str = "0" * 64
    chain_ok: bool = True
    chain_error: str | None = None     # why the chain is broken, with the record's index
    findings: list[Finding] = field(default_factory=list)
    count: int = 0                     # findings in all (the list keeps the first MAX_FINDINGS)
    rows: dict[str, int] = field(default_factory=dict)  # rows compared per table

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.count == 0

    def add(self, finding: Finding) -> None:
        self.count += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "head": self.head, "chain_ok": self.chain_ok,
                "chain_error": self.chain_error, "disagreements": self.count, "rows_checked": dict(self.rows),
                "findings": [f.as_dict() for f in self.findings]}


# ---------------------------------------------------------------------- the state the log implies
@dataclass
class Implied:
    """Rows the audit log implies, per table and key, and the record that last set each."""

    rows: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    source: dict[str, dict[Any, int]] = field(default_factory=dict)
    problems: list[Finding] = field(default_factory=list)

    def put(self, table: str, key: Any, row: dict[str, Any], seq: int) -> None:
        self.rows.setdefault(table, {})[key] = dict(row)
        self.source.setdefault(table, {})[key] = seq

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        return self.rows.get(table, {}).get(key)

    def update(self, table: str, key: Any, values: dict[str, Any], seq: int) -> None:
        row = self.get(table, key)
        if row is None:
            self.problems.append(Finding("audit_log", str(seq), None, None, None, seq,
                                         f"changes {table} {_key_text(key)}, which no earlier record created"))
            return
        row.update(values)
        self.source[table][key] = seq


def _trade_from_row(t: dict[str, Any]) -> Trade:
    """The trade as the engine settled it (the same constructor, so its value is computed the same way)."""
    return Trade(t["id"], t["buy_order_id"], t["sell_order_id"], t["buyer_id"], t["seller_id"], t["commodity"],
                 t["form"], t["grade"], Decimal(t["quantity"]), Decimal(t["price"]), t["origin"], t["nonmarket"])


def trade_legs(t: dict[str, Any], levy_owner: str | None) -> list[tuple[str, str, Decimal]]:
    """The ledger legs (owner, asset, amount) of a trade's posting, in order, as
    :meth:`critmin.market.ledger.Ledger.settle` books them from the trade's row image: buyer → seller cash,
    seller → buyer material, programme → seller support paid (seller → programme when negative), seller → the
    policy's owner the levy."""
    trade = _trade_from_row(t)
    value = trade.value
    legs = [(trade.buyer_id, USD, -value), (trade.seller_id, USD, value),
            (trade.seller_id, trade.asset, -trade.quantity), (trade.buyer_id, trade.asset, trade.quantity)]
    paid = Decimal(t["support_paid"])
    if t["programme_id"] is not None and paid != 0:
        legs += [(t["programme_id"], USD, -paid), (trade.seller_id, USD, paid)]
    levy = Decimal(t["levy"])
    if levy != 0:
        legs += [(trade.seller_id, USD, -levy), (levy_owner or "(no policy)", USD, levy)]
    return legs


def _post(state: Implied, seq: int, posting: int, memo: str, legs: list[tuple[str, str, Decimal]]) -> None:
    state.put("postings", posting, {"seq": posting, "memo": memo[:200]}, seq)
    for leg, (owner, asset, amount) in enumerate(legs):
        state.put("ledger_entries", (posting, leg), {"posting_seq": posting, "leg": leg, "owner": owner,
                                                      "asset": asset, "amount": amount}, seq)
        bal = state.get("account_balances", (owner, asset))
        total = amount + (Decimal(bal["amount"]) if bal is not None else Decimal(0))
        state.put("account_balances", (owner, asset), {"owner": owner, "asset": asset, "amount": total,
                                                        "posting_seq": posting}, seq)


def _fill(state: Implied, order_id: str, qty: Decimal, seq: int) -> None:
    row = state.get("orders", order_id)
    if row is None:
        state.problems.append(Finding("audit_log", str(seq), None, None, None, seq,
                                      f"a trade fills order {order_id!r}, which no earlier record placed"))
        return
    remaining = Decimal(row["remaining"]) - qty
    state.update("orders", order_id, {"remaining": remaining, "status": "open" if remaining > 0 else "filled",
                                      "version": row["version"] + 1}, seq)


def _trades(state: Implied, rec: dict[str, Any], trades: list[dict[str, Any]]) -> None:
    seq = rec["seq"]
    for t in trades:
        state.put("trades", t["id"], t, seq)
        qty = Decimal(t["quantity"])
        _fill(state, t["buy_order_id"], qty, seq)
        _fill(state, t["sell_order_id"], qty, seq)
        policy = state.get("policies", (t["commodity"], t["form"]))
        _post(state, seq, t["posting_seq"], f"trade {t['id']} {t['buy_order_id']}/{t['sell_order_id']}",
              trade_legs(t, policy["set_by"] if policy is not None else None))


# ---------------------------------------------------------------------- one function per record kind
def _participant_create(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]["participant"]
    state.put("participants", p["id"], p, rec["seq"])


def _token_issue(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]
    row = {"id": p["token_id"], "participant_id": p["participant_id"], "scopes": " ".join(sorted(p["scopes"])),
           "created_seq": rec["seq"], "revoked": False, "version": 1}
    for name in ("token_hash", "label"):  # recorded since the log is checked against the tables
        if name in p:
            row[name] = p[name]
    state.put("tokens", p["token_id"], row, rec["seq"])


def _token_revoke(state: Implied, rec: dict[str, Any]) -> None:
    tid = rec["payload"]["token_id"]
    row = state.get("tokens", tid)
    state.update("tokens", tid, {"revoked": True, "version": (row["version"] if row else 0) + 1}, rec["seq"])


def _policy_set(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]["policy"]
    state.put("policies", (p["commodity"], p["form"]), p, rec["seq"])


def _programme(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]["programme"]
    state.put("programmes", p["id"], p, rec["seq"])


def _enrolment(state: Implied, rec: dict[str, Any]) -> None:
    e = rec["payload"]["enrolment"]
    state.put("enrolments", (e["programme_id"], e["seller_id"]), e, rec["seq"])


def _fixing(state: Implied, rec: dict[str, Any]) -> None:
    f = rec["payload"]["fixing"]
    state.put("fixings", f["id"], f, rec["seq"])


def _deposit(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]
    amount = Decimal(p["amount"])
    _post(state, rec["seq"], p["posting"], f"deposit {p['owner']} {p['asset']}",
          [(p["owner"], p["asset"], amount), (EXTERNAL, p["asset"], -amount)])


def _order_place(state: Implied, rec: dict[str, Any]) -> None:
    o = rec["payload"]["order"]
    state.put("orders", o["id"], o, rec["seq"])
    _trades(state, rec, rec["payload"]["trades"])


def _order_cancel(state: Implied, rec: dict[str, Any]) -> None:
    p = rec["payload"]
    row = state.get("orders", p["order_id"])
    state.update("orders", p["order_id"], {"remaining": p["remaining"], "status": "cancelled",
                                           "version": (row["version"] if row else 0) + 1}, rec["seq"])


def _book_mode(state: Implied, rec: dict[str, Any]) -> None:
    _trades(state, rec, rec["payload"]["trades"])  # the auction that uncrossed the book came first
    b = rec["payload"]["book"]
    state.put("books", (b["commodity"], b["form"], b["grade"]), b, rec["seq"])


def _auction_run(state: Implied, rec: dict[str, Any]) -> None:
    _trades(state, rec, rec["payload"]["trades"])


#: Audit record kind → how it changes the implied rows. One entry per kind the engine writes.
KINDS: dict[str, Callable[[Implied, dict[str, Any]], None]] = {
    "participant.create": _participant_create,
    "token.issue": _token_issue,
    "token.revoke": _token_revoke,
    "policy.set": _policy_set,
    "programme.create": _programme,
    "programme.update": _programme,
    "enrolment.create": _enrolment,
    "enrolment.withdraw": _enrolment,
    "fixing.publish": _fixing,
    "ledger.deposit": _deposit,
    "order.place": _order_place,
    "order.cancel": _order_cancel,
    "book.mode": _book_mode,
    "auction.run": _auction_run,
}


@dataclass(frozen=True)
class TableSpec:
    """How a table's rows are keyed and compared: ``decimals`` are compared as numbers, dates as ISO text, the
    other columns as they are (JSON columns as the values they hold)."""

    table: sa.Table
    key: tuple[str, ...]
    decimals: frozenset[str] = frozenset()


#: The tables the log implies, in the order they are reported.
TABLES: tuple[TableSpec, ...] = (
    TableSpec(db.participants, ("id",)),
    TableSpec(db.tokens, ("id",)),
    TableSpec(db.programmes, ("id",), frozenset({"floor", "cfd_strike", "budget", "max_support_per_seller",
                                                "max_payback_per_seller"})),
    TableSpec(db.enrolments, ("programme_id", "seller_id")),
    TableSpec(db.fixings, ("id",), frozenset({"price", "volume"})),
    TableSpec(db.policies, ("commodity", "form"), frozenset({"nonmarket_tariff_rate"})),
    TableSpec(db.books, ("commodity", "form", "grade"), frozenset({"price_tick", "quantity_tick"})),
    TableSpec(db.orders, ("id",), frozenset({"quantity", "limit_price", "book_price", "remaining"})),
    TableSpec(db.trades, ("id",), frozenset({"quantity", "price", "support_due", "support_paid", "levy",
                                             "reference_price"})),
    TableSpec(db.postings, ("seq",)),
    TableSpec(db.ledger_entries, ("posting_seq", "leg"), frozenset({"amount"})),
    TableSpec(db.account_balances, ("owner", "asset"), frozenset({"amount"})),
)
#: The tables the log does not imply row by row: the log itself, and the stored answers (checked where the log
#: says what they must hold, see :func:`_check_idempotency`). Every other table must be in :data:`TABLES`.
NOT_IMPLIED = frozenset({"audit_log", "idempotency", "server_lease"})  # the lease: which process runs, not market state


# ---------------------------------------------------------------------- comparing
def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _show(v: Any) -> str:
    return json.dumps(_plain(v), ensure_ascii=False, sort_keys=True, default=str)


def _key_text(key: Any) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _dec(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _same(spec: TableSpec, column: str, stored: Any, implied: Any) -> bool:
    if column in spec.decimals and stored is not None and implied is not None:
        a, b = _dec(stored), _dec(implied)
        return a is not None and b is not None and a == b
    if isinstance(stored, dt.date):
        stored = stored.isoformat()
    if isinstance(stored, bool) or isinstance(implied, bool):
        return type(stored) is type(implied) and stored == implied
    return stored == implied


def compare_rows(spec: TableSpec, key: Any, stored: dict[str, Any], implied: dict[str, Any],
                 record: int | None) -> Iterator[Finding]:
    """The columns of one row that disagree with the row the log implies (columns the log does not carry are not
    compared)."""
    for column, want in implied.items():
        if column not in stored:
            continue
        if not _same(spec, column, stored[column], want):
            yield Finding(spec.table.name, _key_text(key), column, stored[column], want, record)


def replay(records: Iterable[dict[str, Any]], report: Report, expected_head: str | None = None) -> Implied | None:
    """Check the chain of ``records`` and build the rows they imply; None (and ``report`` says why) when the chain
    is broken: rows implied by a log that is not intact vouch for nothing."""
    with decimal.localcontext() as ctx:
        ctx.prec = EXACT_DIGITS
        return _replay(records, report, expected_head)


def _replay(records: Iterable[dict[str, Any]], report: Report, expected_head: str | None) -> Implied | None:
    check = ChainCheck()
    state = Implied()
    for rec in records:
        reason = check.step(rec)
        if reason is not None:
            report.chain_ok, report.chain_error = False, f"record {check.count}: {reason}"
            report.records = check.count
            return None
        apply = KINDS.get(rec["kind"])
        if apply is None:
            state.problems.append(Finding("audit_log", str(rec["seq"]), None, None, None, rec["seq"],
                                          f"record kind {rec['kind']!r} is not known to the verifier: the rows it "
                                          "implies are not checked"))
        else:
            try:
                apply(state, rec)
            except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
                state.problems.append(Finding("audit_log", str(rec["seq"]), None, None, None, rec["seq"],
                                              f"{rec['kind']} payload does not have the expected form "
                                              f"({type(exc).__name__}: {exc})"))
    report.records, report.head = check.count, check.prev
    reason = check.finish(expected_head)
    if reason is not None:
        report.chain_ok, report.chain_error = False, f"after record {check.count - 1}: {reason}"
        return None
    return state


def _stored_rows(conn: sa.Connection, spec: TableSpec) -> Iterator[tuple[Any, dict[str, Any]]]:
    cols = spec.table.c
    q = sa.select(spec.table).order_by(*(cols[k] for k in spec.key))
    for r in conn.execute(q).mappings():
        key = tuple(r[k] for k in spec.key)
        yield (key[0] if len(key) == 1 else key), dict(r)


def compare_tables(conn: sa.Connection, state: Implied, report: Report,
                   specs: Iterable[TableSpec] = TABLES, answers: bool = True) -> None:
    """Compare the stored rows of ``specs``' tables (and, with ``answers``, the stored answers) with ``state``."""
    for spec in specs:
        name = spec.table.name
        implied = state.rows.get(name, {})
        sources = state.source.get(name, {})
        seen = set()
        n = 0
        for key, row in _stored_rows(conn, spec):
            n += 1
            seen.add(key)
            want = implied.get(key)
            if want is None:
                report.add(Finding(name, _key_text(key), None, None, None, None,
                                   "no audit record behind this row"))
                continue
            for f in compare_rows(spec, key, row, want, sources.get(key)):
                report.add(f)
        report.rows[name] = n
        for key in sorted(implied.keys() - seen, key=str):
            report.add(Finding(name, _key_text(key), None, None, None, sources.get(key),
                               "row missing: the audit log implies it"))
    if answers:
        _check_idempotency(conn, state, report)


#: Order columns fixed at placement (a stored answer shows the order as it was then; remaining, status and version
#: move on).
_PLACED = ("id", "seq", "participant_id", "client_order_id", "side", "commodity", "form", "grade", "quantity",
           "limit_price", "book_price", "delivery_start", "delivery_end", "location", "origin", "nonmarket",
           "attestations", "requirements")


def _check_idempotency(conn: sa.Connection, state: Implied, report: Report) -> None:
    """Stored answers: the participant exists; an order's answer agrees with the order and trades in the log."""
    participants = state.rows.get("participants", {})
    orders = state.rows.get("orders", {})
    trades = state.rows.get("trades", {})
    order_spec = next(s for s in TABLES if s.table is db.orders)
    trade_spec = next(s for s in TABLES if s.table is db.trades)
    i = db.idempotency
    n = 0
    for r in conn.execute(sa.select(i.c.participant_id, i.c.key, i.c.status, i.c.body)).mappings():
        n += 1
        key = f"{r['participant_id']}/{r['key']}"
        if r["participant_id"] not in participants:
            report.add(Finding("idempotency", key, None, None, None, None,
                               f"participant {r['participant_id']!r} has no audit record"))
            continue
        if not 200 <= r["status"] < 300:
            continue  # a refusal changed nothing: the log has no record of it
        try:
            body = json.loads(r["body"])
        except json.JSONDecodeError:
            report.add(Finding("idempotency", key, "body", r["body"][:80], None, None, "stored answer is not JSON"))
            continue
        if not isinstance(body, dict):
            continue
        order = body.get("order")
        if isinstance(order, dict) and "id" in order:
            want = orders.get(order["id"])
            if want is None or want["participant_id"] != r["participant_id"]:
                report.add(Finding("idempotency", key, "body.order.id", order["id"], None, None,
                                   f"answer names order {order['id']!r}, which the log does not show this "
                                   "participant placing"))
                continue
            for column in _PLACED:
                if column in order and not _same(order_spec, column, order[column], want[column]):
                    report.add(Finding("idempotency", key, f"body.order.{column}", order[column], want[column],
                                       state.source["orders"].get(order["id"])))
        for t in body.get("trades") or ():
            if not isinstance(t, dict) or "id" not in t:
                continue
            want = trades.get(t["id"])
            if want is None:
                report.add(Finding("idempotency", key, "body.trades.id", t["id"], None, None,
                                   f"answer names trade {t['id']!r}, which the log does not have"))
                continue
            for column, value in t.items():
                if column in want and not _same(trade_spec, column, value, want[column]):
                    report.add(Finding("idempotency", key, f"body.trades[{t['id']}].{column}", value, want[column],
                                       state.source["trades"].get(t["id"])))
    report.rows["idempotency"] = n


def verify_database(conn: sa.Connection, expected_head: str | None = None) -> Report:
    """Check the chain of the audit log in ``conn``'s database and every row against it (read ``conn`` in one
    snapshot: :func:`critmin.server.db.read_snapshot`)."""
    report = Report()
    state = replay(db.audit_records(conn), report, expected_head)
    if state is None:
        return report
    for f in state.problems:
        report.add(f)
    compare_tables(conn, state, report)
    return report


# ---------------------------------------------------------------------- at start-up
#: The records a starting server replays: who may act (participants, tokens) and what programmes may pay.
STARTUP_KINDS = ("participant.create", "token.issue", "token.revoke", "programme.create", "programme.update",
                 "enrolment.create", "enrolment.withdraw", "fixing.publish")
_STARTUP_TABLES = tuple(s for s in TABLES if s.table.name in ("participants", "tokens", "programmes", "enrolments",
                                                               "fixings"))


def programme_spending(conn: sa.Connection, programme_ids: Iterable[str]) -> dict[str, Decimal]:
    """Net USD each programme paid out, from the append-only journal alone: minus the sum of its USD legs in postings
    that are not deposits (a deposit is the only posting with a leg of the external account)."""
    ids = list(programme_ids)
    if not ids:
        return {}
    e = db.ledger_entries
    x = e.alias("x")
    deposits = sa.select(x.c.posting_seq).where(x.c.owner == EXTERNAL)
    out: dict[str, Decimal] = {}
    q = sa.select(e.c.owner, e.c.amount).where(e.c.asset == USD, e.c.owner.in_(ids),
                                               e.c.posting_seq.not_in(deposits))
    with decimal.localcontext() as ctx:
        ctx.prec = EXACT_DIGITS  # exact sums
        for owner, amount in conn.execute(q):
            out[owner] = out.get(owner, Decimal(0)) - Decimal(amount)
    return out


def startup_check(conn: sa.Connection, spent: dict[str, Decimal]) -> list[str]:
    """What a starting server refuses to run with: a participant, token or programme row that differs from what its
    audit records imply (a forged or widened token, a swapped token hash, a raised budget), and trades whose
    support paid does not add up to what the journal shows each programme paid (``spent``, from
    :func:`programme_spending`). Cheap: the records of those few kinds (their chain is checked by
    ``critmin audit verify``, not here) and one sum per programme."""
    with decimal.localcontext() as ctx:
        ctx.prec = EXACT_DIGITS
        return _startup_check(conn, spent)


def _startup_check(conn: sa.Connection, spent: dict[str, Decimal]) -> list[str]:
    a = db.audit_log
    state = Implied()
    report = Report()
    for seq, kind, payload in conn.execute(sa.select(a.c.seq, a.c.kind, a.c.payload)
                                           .where(a.c.kind.in_(STARTUP_KINDS)).order_by(a.c.seq)):
        try:
            KINDS[kind](state, {"seq": seq, "kind": kind, "payload": json.loads(payload)})
        except (ValueError, KeyError, TypeError, AttributeError):
            return [f"audit record {seq}: a {kind} record without the row it should carry"]
    for f in state.problems:
        report.add(f)
    compare_tables(conn, state, report, _STARTUP_TABLES, answers=False)
    out = [f.text() for f in report.findings]
    t = db.trades
    paid: dict[str, Decimal] = {}
    for pid, amount in conn.execute(sa.select(t.c.programme_id, t.c.support_paid)
                                    .where(t.c.programme_id.is_not(None))):
        value = _dec(amount)
        if value is None or not value.is_finite():
            out.append(f"trades of programme {pid}: support_paid {amount!r} is not a number")
            continue
        paid[pid] = paid.get(pid, Decimal(0)) + value
    for pid in sorted(paid.keys() | spent.keys()):
        a_, b_ = paid.get(pid, Decimal(0)), spent.get(pid, Decimal(0))
        if a_ != b_:
            out.append(f"programme {pid}: its trades' support_paid sums to {_plain(a_)} USD, the ledger shows "
                       f"{_plain(b_)} USD paid")
    return out
