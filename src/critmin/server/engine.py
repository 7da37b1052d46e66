"""The marketplace engine: in-memory state rebuilt from storage, and the commands that change it.

Every state change is a :class:`Command` applied by exactly one thread (the sequencer's writer) in arrival order,
so matching is deterministic and the audit chain is a total order. Applying a command validates everything first,
then mutates the in-memory state and appends the rows to write to a :class:`Batch`; the sequencer commits a batch
in one transaction and only then answers the clients (acknowledged ⇒ committed). If a commit fails, the engine is
rebuilt from the database, so memory never runs ahead of what is stored.

Roles and scopes
----------------
A token carries scopes, a subset of its participant's role scopes (:data:`ROLE_SCOPES`). An endpoint needs a scope
and a role; objects of other participants are reported as absent (404), never as forbidden, so their existence
does not leak. Regulators and admins see everything; only admins administer. Tokens are managed by an admin token
with the ``admin`` scope (anyone's), or by a participant's *full* token (one holding every scope of its role: the
participant's own); a narrowed token may only revoke itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from critmin.errors import CritminError, DataError
from critmin.market.audit import GENESIS
from critmin.market.eligibility import allied_group
from critmin.market.ledger import EXTERNAL, Ledger
from critmin.market.matching import OrderBook, call_auction
from critmin.market.model import (
    Attestations,
    Order,
    Participant,
    Programme,
    Requirements,
    Role,
    Side,
    Trade,
    _iso3,
)
from critmin.market.money import MONEY, money, on_tick, quantize_div
from critmin.market.pricing import CostInputs, nonmarket_adjustment, programme_covers, reference_price
from critmin.server import db
from critmin.server.wire import ApiError, Command, Result, canonical_text, hash_token

ZERO = Decimal(0)
CENT = Decimal("0.01")

#: Default price tick, USD/kg: one cent per kg. The market's commodities (rare-earth oxides, cobalt, lithium
#: chemicals, gallium, germanium …) trade at roughly USD 5–5,000/kg, so a cent is at most 0.2 % of a price, while a
#: sub-cent tick would only let an order step ahead of another by a meaningless amount. A book of a cheaper material
#: (ores at cents per kg) sets a finer tick (``PUT /v1/books/…`` ``price_tick``).
DEFAULT_PRICE_TICK = Decimal("0.01")
#: Default quantity tick, kg: one kilogram, the ledger's unit of material and the smallest lot a warehouse receipt
#: for these materials records; fractions of a kilogram would only let dust orders fill the book and the log.
DEFAULT_QUANTITY_TICK = Decimal(1)
#: An index fixing needs trades by at least this many distinct sellers and distinct buyers since the previous
#: fixing: it is the median of the sellers' volume-weighted prices, so moving it takes a majority of them (two
#: colluding of three), and a single buyer–seller pair cannot make a fixing on its own.
INDEX_MIN_SELLERS = 3
INDEX_MIN_BUYERS = 3

#: Scopes each role may hold; a token's scopes are a subset.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.SELLER: frozenset({"read", "trade"}),
    Role.BUYER: frozenset({"read", "trade"}),
    Role.PROGRAMME: frozenset({"read", "programme"}),
    Role.REGULATOR: frozenset({"read", "audit"}),
    Role.ADMIN: frozenset({"read", "admin", "audit"}),
}
#: Roles that may read every participant's objects.
SEES_ALL = frozenset({Role.REGULATOR, Role.ADMIN})


def _administers(actor: Actor) -> bool:
    """Admin powers need the admin role *and* a token with the ``admin`` scope (a narrowed admin token has none)."""
    return actor.role is Role.ADMIN and "admin" in actor.scopes


def _full_token(actor: Actor) -> bool:
    """The token holds every scope of its participant's role: only such a token manages the participant's tokens
    (a narrowed token, e.g. read-only or scopeless, can neither mint tokens nor revoke its siblings)."""
    return ROLE_SCOPES[actor.role] <= actor.scopes


_NARROWED = ("only a token holding every scope of its role (or an admin token with the 'admin' scope) may issue or "
             "revoke this participant's tokens; a token may always revoke itself")


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident!r} not found")


def fmt(d: Decimal | None) -> str | None:
    """Decimal → plain decimal text (never exponent notation)."""
    if d is None:
        return None
    s = str(d)  # the same text as format(d, "f") whenever it has no exponent, and 3× faster
    return format(d, "f") if "E" in s else s


def new_token() -> tuple[str, str]:
    """(token id, secret). The secret embeds the id so a log line can name the token without revealing it."""
    tid = "tok_" + secrets.token_hex(8)
    return tid, f"cm_{tid[4:]}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Actor:
    """The authenticated caller."""

    participant_id: str
    role: Role
    country: str
    token_id: str
    scopes: frozenset[str]

    @property
    def sees_all(self) -> bool:
        return self.role in SEES_ALL


@dataclass
class TokenInfo:
    id: str
    participant_id: str
    scopes: frozenset[str]
    label: str
    revoked: bool
    version: int


@dataclass
class OpenOrder:
    order: Order           # as submitted (quantity = original), limit_price = the book price
    remaining: Decimal
    version: int


@dataclass
class ProgrammeState:
    programme: Programme
    owner: str
    active: bool
    created_seq: int
    version: int


@dataclass
class EnrolmentState:
    """A seller's enrolment in a programme (a row of ``enrolments``)."""

    programme_id: str
    seller_id: str
    commodity: str
    form: str
    active: bool
    created_seq: int
    version: int


@dataclass
class IndexWindow:
    """What an index fixing needs of the trades since the previous fixing of a commodity/form, kept as running
    sums (memory grows with the sellers and buyers, not with the trades)."""

    first_trade_id: int | None = None
    trades: int = 0
    value: dict[str, Decimal] = field(default_factory=dict)     # seller → Σ price × quantity, USD
    quantity: dict[str, Decimal] = field(default_factory=dict)  # seller → Σ quantity, kg
    buyers: set[str] = field(default_factory=set)

    def add(self, trade_id: int, seller: str, buyer: str, price: Decimal, quantity: Decimal) -> None:
        if self.first_trade_id is None:
            self.first_trade_id = trade_id
        self.trades += 1
        self.value[seller] = MONEY.add(self.value.get(seller, ZERO), MONEY.multiply(price, quantity))
        self.quantity[seller] = MONEY.add(self.quantity.get(seller, ZERO), quantity)
        self.buyers.add(buyer)

    def index(self, tick: Decimal) -> Decimal:
        """Each seller's volume-weighted price, rounded half-even to ``tick``, then the median over the sellers
        (the mean of the middle two, to ``tick``, when their number is even). One vote per seller: a seller and its
        buyer trading any volume at any price move only that seller's vote, and the median ignores a minority of
        outliers."""
        votes = sorted(quantize_div(self.value[s], self.quantity[s], tick) for s in self.value)
        n = len(votes)
        if n % 2:
            return votes[n // 2]
        return quantize_div(MONEY.add(votes[n // 2 - 1], votes[n // 2]), Decimal(2), tick)


@dataclass(frozen=True)
class Fixing:
    """A published reference price (a row of ``fixings``)."""

    id: int
    commodity: str
    form: str
    method: str
    price: Decimal
    row: dict[str, Any]


@dataclass
class Policy:
    commodity: str
    form: str
    cost_inputs: dict[str, Any] | None
    tariff_rate: Decimal | None
    use_reference: bool
    nonmarket_origins: frozenset[str]
    set_by: str
    version: int

    @functools.cached_property
    def reference(self):
        """:class:`~critmin.market.pricing.ReferencePrice` or None (built once: a policy is replaced, never edited)."""
        if self.cost_inputs is None:
            return None
        ci = self.cost_inputs
        return reference_price(CostInputs(self.commodity, self.form, Decimal(ci["cash_cost"]),
                                          Decimal(ci["sustaining_capex"]),
                                          {k: Decimal(v) for k, v in ci["responsible_costs"].items()},
                                          Decimal(ci["margin_rate"]), tuple(ci["sources"])))


@dataclass
class Batch:
    """Rows a batch of commands writes, in one transaction."""

    inserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    order_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    statements: list[sa.Executable] = field(default_factory=list)
    #: (owner, asset) → (balance text, posting seq) after the batch: upserted into ``account_balances``.
    balances: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def add(self, table: sa.Table, row: dict[str, Any]) -> None:
        self.inserts.setdefault(table.name, []).append(row)

    def __len__(self) -> int:
        return (sum(map(len, self.inserts.values())) + len(self.order_updates) + len(self.statements)
                + len(self.balances))


#: Insert order (foreign keys first).
_TABLE_ORDER = (db.participants, db.tokens, db.programmes, db.enrolments, db.fixings, db.policies, db.books,
                db.orders, db.postings, db.ledger_entries, db.trades, db.audit_log, db.idempotency)
_ORDER_UPDATE = db.orders.update().where(db.orders.c.id == sa.bindparam("_id")).values(
    remaining=sa.bindparam("remaining"), status=sa.bindparam("status"), version=sa.bindparam("version"))


#: Most bound values per SQLite statement: the lowest SQLITE_MAX_VARIABLE_NUMBER of any build (3.32+ allow 32766).
_SQLITE_MAX_VARIABLES = 999


class _DriverStatement:
    """A statement compiled once for a dialect, run through the DBAPI driver (see :data:`Step`).

    SQLAlchemy's ``conn.execute(insert, rows)`` spends ~10 µs per row building parameters; here a row costs a
    tuple (or dict) and the column types' own bind processors (JSON, dates, booleans: exactly the conversions
    SQLAlchemy applies), so the rows and their stored form are the same as through Core."""

    def __init__(self, stmt: sa.Executable, names: list[str], types: dict[str, Any], dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=names)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        order = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        procs = {k: p for k in order if (t := types.get(k)) is not None
                 and (p := t._cached_bind_processor(dialect)) is not None}
        # One generated function per statement turns a row into its parameters: a tuple (or dict) of the
        # columns in statement order, each through its type's processor; ~3x cheaper than a loop over columns.
        env: dict[str, Any] = {f"p{i}": procs[k] for i, k in enumerate(order) if k in procs}
        cells = [f"p{i}(r[{k!r}])" if k in procs else f"r[{k!r}]" for i, k in enumerate(order)]
        body = ("(" + ", ".join(cells) + ",)" if self.positional
                else "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(order, cells, strict=True)) + "}")
        exec(f"def convert(rows):\n    return [{body} for r in rows]\n", env)  # the names come from our own schema
        self.params: Any = env["convert"]
        # SQLite: many rows in one statement (head + row × n + tail) instead of executemany's one step per row:
        # fewer statements per batch, and each statement gives up and re-takes the GIL once, not once per row.
        self.multi: tuple[str, str, str] | None = None
        self.rows_per_statement = max(1, _SQLITE_MAX_VARIABLES // max(1, len(order)))
        if dialect.name == "sqlite" and self.positional:
            if isinstance(stmt, sa.Insert):  # ... VALUES (?, ?, ...)[ ON CONFLICT ...]: the row repeated
                head, _, rest = self.sql.rpartition(" VALUES ")
                row, paren, tail = rest.partition(")")
                self.multi = (head + " VALUES ", row + paren, tail)
            elif stmt is _ORDER_UPDATE and sqlite3.sqlite_version_info >= (3, 33):  # UPDATE … FROM
                col = {k: f"v.column{i + 1}" for i, k in enumerate(order)}
                self.multi = (f"UPDATE orders SET remaining = {col['remaining']}, status = {col['status']}, "
                              f"version = {col['version']} FROM (VALUES ", "(" + ", ".join("?" * len(order)) + ")",
                              f") AS v WHERE orders.id = {col['_id']}")

    def steps(self, rows: list[dict[str, Any]]) -> list[Step]:
        """The steps that write ``rows`` (non-empty)."""
        params = self.params(rows)
        if self.multi is None or len(params) == 1:
            return [(self.sql, True, params)]
        head, row, tail = self.multi
        k = self.rows_per_statement
        return [(head + ", ".join([row] * len(chunk)) + tail, False, [x for p in chunk for x in p])
                for i in range(0, len(params), k) if (chunk := params[i:i + k])]


#: One write, as the DBAPI driver runs it: (SQL, many, parameters) = ``cursor.executemany(SQL, parameters)`` when
#: ``many``, else ``cursor.execute(SQL, parameters)``. Parameters are plain data (str, int, float, bytes, None;
#: tuples/lists/dicts of them), already through the column types' bind processors.
Step = tuple[str, bool, Any]


def _driver_statement(dialect: sa.Dialect, name: str, keys: tuple[str, ...] | None = None) -> _DriverStatement:
    cache = dialect.__dict__.setdefault("_critmin_statements", {})
    st = cache.get((name, keys))
    if st is None:
        if name == "orders.update":
            o = db.orders
            st = _DriverStatement(_ORDER_UPDATE, ["_id", "remaining", "status", "version"],
                                  {"_id": o.c.id.type, "remaining": o.c.remaining.type, "status": o.c.status.type,
                                   "version": o.c.version.type}, dialect)
        elif name == "account_balances.upsert":
            b = db.account_balances
            st = _DriverStatement(_balance_upsert(dialect), [c.key for c in b.columns],
                                  {c.key: c.type for c in b.columns}, dialect)
        else:
            table = db.metadata.tables[name]
            names = [c.key for c in table.columns] if keys is None else list(keys)
            st = _DriverStatement(table.insert(), names, {c.key: c.type for c in table.columns}, dialect)
        cache[(name, keys)] = st
    return st


def _balance_upsert(dialect: sa.Dialect) -> sa.Insert:
    """INSERT of an account's balance that replaces the one stored (``ON CONFLICT ... DO UPDATE``, SQLite 3.24+ and
    PostgreSQL). A batch holds at most one row per account, so no statement touches a row twice."""
    from sqlalchemy.dialects import postgresql, sqlite

    b = db.account_balances
    stmt = (postgresql.insert(b) if dialect.name == "postgresql" else sqlite.insert(b))
    return stmt.on_conflict_do_update(index_elements=[b.c.owner, b.c.asset],
                                      set_={"amount": stmt.excluded.amount, "posting_seq": stmt.excluded.posting_seq})


def _statement_step(dialect: sa.Dialect, stmt: sa.Executable) -> Step:
    """A Core statement (an UPDATE of one object) as a step: its SQL and processed parameters."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    procs = compiled._bind_processors
    if compiled.positional:
        params: Any = tuple(procs[k](values[k]) if k in procs else values[k] for k in compiled.positiontup or ())
    else:
        params = {k: procs[k](v) if k in procs else v for k, v in values.items()}
    return str(compiled), False, params


def batch_steps(dialect: sa.Dialect, batch: Batch) -> list[Step]:
    """The writes of a batch, in order (foreign keys first), for ``dialect``'s driver."""
    new_orders = {r["id"]: r for r in batch.inserts.get("orders", [])}
    updates = []
    for oid, values in batch.order_updates.items():
        if oid in new_orders:
            new_orders[oid].update(values)
        else:
            updates.append({"_id": oid, **values})
    out: list[Step] = []
    for table in _TABLE_ORDER:
        rows = batch.inserts.get(table.name)
        if not rows:
            continue
        n = len(table.columns)
        if all(len(r) == n for r in rows):  # every column given (hot rows always are)
            out += _driver_statement(dialect, table.name).steps(rows)
            continue
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:  # rows that leave columns to their defaults, by the columns they give
            by_keys.setdefault(tuple(r), []).append(r)
        for keys, group in by_keys.items():
            out += _driver_statement(dialect, table.name, keys).steps(group)
    if updates:
        out += _driver_statement(dialect, "orders.update").steps(updates)
    if batch.balances:
        out += _driver_statement(dialect, "account_balances.upsert").steps(
            [{"owner": o, "asset": a, "amount": amount, "posting_seq": seq}
             for (o, a), (amount, seq) in batch.balances.items()])
    out += [_statement_step(dialect, stmt) for stmt in batch.statements]
    return out


def run_steps(dbapi_conn: Any, dialect_name: str, steps: list[Step]) -> None:
    """Run steps on a DBAPI connection (in its open transaction; the caller commits). With psycopg, all in one
    pipeline: one round trip to the server instead of one per statement."""
    pipeline = getattr(dbapi_conn, "pipeline", None) if dialect_name == "postgresql" else None
    with pipeline() if pipeline is not None else contextlib.nullcontext():
        cur = dbapi_conn.cursor()
        try:
            for sql, many, params in steps:
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
        finally:
            cur.close()


def write_batch(conn: sa.Connection, batch: Batch) -> None:
    """Write a batch on an open transaction of ``conn``."""
    run_steps(conn.connection.dbapi_connection, conn.dialect.name, batch_steps(conn.dialect, batch))


class Engine:
    """In-memory market state. Not thread-safe: only the sequencer's applier thread calls :meth:`apply`."""

    def __init__(self, allies: Iterable[str] | None = None) -> None:
        self.allies = frozenset(allies) if allies is not None else allied_group()
        self.participants: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, TokenInfo] = {}        # id → info
        self.token_hashes: dict[str, str] = {}        # hash → id
        self.programmes: dict[str, ProgrammeState] = {}
        self.enrolments: dict[tuple[str, str], EnrolmentState] = {}  # (programme, seller) → enrolment
        self.enrolled: dict[tuple[str, str, str], str] = {}  # (seller, commodity, form) → programme (active only)
        self.fixings: dict[tuple[str, str], Fixing] = {}  # (commodity, form) → the latest fixing
        self.next_fixing_id = 0
        #: (commodity, form) → the trades since its latest fixing that an index fixing counts.
        self.index_window: dict[tuple[str, str], IndexWindow] = {}
        self.book_ticks: dict[tuple[str, str, str], tuple[Decimal | None, Decimal | None]] = {}
        self.policies: dict[tuple[str, str], Policy] = {}
        self.books: dict[tuple[str, str, str], OrderBook] = {}
        self.book_modes: dict[tuple[str, str, str], tuple[str, int]] = {}
        self.open_orders: dict[str, OpenOrder] = {}
        self.ledger = Ledger(keep_journal=False)
        self.next_order_seq = 0
        self.next_trade_id = 0
        self.next_posting = 0
        self.audit_seq = 0
        self.audit_head = GENESIS

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, conn: sa.Connection, allies: Iterable[str] | None = None, *, check: bool = False) -> Engine:
        """Rebuild the state from storage (start-up, and after a failed commit).

        Programmes' spending comes from the append-only journal, never from the trades table (resetting a trade's
        ``support_paid`` does not give a budget back). ``check`` (start-up): refuse, with :class:`DataError`, a
        database whose participant, token or programme rows differ from their audit records or whose trades'
        support disagrees with the journal (see :func:`critmin.server.integrity.startup_check`; the full check is
        ``critmin audit verify --db``)."""
        with money():
            return cls._load(conn, allies, check)

    @classmethod
    def _load(cls, conn: sa.Connection, allies: Iterable[str] | None, check: bool) -> Engine:
        from critmin.server import integrity

        e = cls(allies)
        for r in conn.execute(sa.select(db.participants)).mappings():
            e.participants[r["id"]] = {"id": r["id"], "name": r["name"], "role": Role(r["role"]),
                                       "country": r["country"], "version": r["version"]}
        for r in conn.execute(sa.select(db.tokens)).mappings():
            e.tokens[r["id"]] = TokenInfo(r["id"], r["participant_id"], frozenset(r["scopes"].split()), r["label"],
                                          r["revoked"], r["version"])
            e.token_hashes[r["token_hash"]] = r["id"]
        for r in conn.execute(sa.select(db.programmes).order_by(db.programmes.c.created_seq)).mappings():
            e.programmes[r["id"]] = ProgrammeState(_programme_from_row(r), r["participant_id"], r["active"],
                                                   r["created_seq"], r["version"])
        for r in conn.execute(sa.select(db.policies)).mappings():
            e.policies[(r["commodity"], r["form"])] = Policy(
                r["commodity"], r["form"], r["cost_inputs"], _opt_dec(r["nonmarket_tariff_rate"]),
                r["nonmarket_reference"], frozenset(r["nonmarket_origins"]), r["set_by"], r["version"])
        for r in conn.execute(sa.select(db.books)).mappings():
            e.book_modes[(r["commodity"], r["form"], r["grade"])] = (r["mode"], r["version"])
            if r["price_tick"] is not None or r["quantity_tick"] is not None:
                e.book_ticks[(r["commodity"], r["form"], r["grade"])] = (_opt_dec(r["price_tick"]),
                                                                         _opt_dec(r["quantity_tick"]))
        en = db.enrolments
        for r in conn.execute(sa.select(en).order_by(en.c.created_seq)).mappings():
            st = EnrolmentState(r["programme_id"], r["seller_id"], r["commodity"], r["form"], r["active"],
                                r["created_seq"], r["version"])
            e.enrolments[(st.programme_id, st.seller_id)] = st
            if st.active:
                e.enrolled[(st.seller_id, st.commodity, st.form)] = st.programme_id
        f = db.fixings
        for r in conn.execute(sa.select(f).order_by(f.c.id)).mappings():
            e.fixings[(r["commodity"], r["form"])] = Fixing(r["id"], r["commodity"], r["form"], r["method"],
                                                            Decimal(r["price"]), fixing_row(dict(r)))
            e.next_fixing_id = r["id"] + 1
        t = db.trades
        last = (sa.select(f.c.commodity, f.c.form, sa.func.max(f.c.last_trade_id).label("last_id"))
                .group_by(f.c.commodity, f.c.form).subquery())
        window = (sa.select(t.c.id, t.c.commodity, t.c.form, t.c.seller_id, t.c.buyer_id, t.c.price, t.c.quantity)
                  .select_from(t.outerjoin(last, sa.and_(last.c.commodity == t.c.commodity, last.c.form == t.c.form)))
                  .where(t.c.nonmarket.is_(False), sa.or_(last.c.last_id.is_(None), t.c.id > last.c.last_id))
                  .order_by(t.c.id))
        for tid, c, fm, seller, buyer, price, qty in conn.execute(window):
            e.index_window.setdefault((c, fm), IndexWindow()).add(tid, seller, buyer, Decimal(price), Decimal(qty))
        o = db.orders
        for r in conn.execute(sa.select(o).where(o.c.status == "open").order_by(o.c.seq)).mappings():
            order = order_from_row(r)
            remaining = Decimal(r["remaining"])
            e._book(order.book_key).restore(dataclasses.replace(order, quantity=remaining))
            e.open_orders[order.id] = OpenOrder(order, remaining, r["version"])
        e.next_order_seq = _next(conn, o.c.seq)
        e.next_trade_id = _next(conn, db.trades.c.id)
        e.next_posting = _next(conn, db.postings.c.seq)
        balances = db.entry_sums(conn)  # from the append-only journal, not the account table it keeps
        spent = integrity.programme_spending(conn, e.programmes)  # the journal too, not the trades table
        if check:
            wrong = integrity.startup_check(conn, spent)
            if wrong:
                more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
                raise DataError(f"the database disagrees with its audit log: {wrong[0]}{more}; it was changed "
                                "outside the service: run critmin audit verify --db for every disagreement")
        # per seller (the per-seller caps): from the trades, whose sum per programme the check above holds to the
        # journal's
        seller_net: dict[tuple[str, str], Decimal] = {}
        for pid, seller, paid in conn.execute(sa.select(t.c.programme_id, t.c.seller_id, t.c.support_paid)
                                              .where(t.c.programme_id.is_not(None))):
            seller_net[(pid, seller)] = seller_net.get((pid, seller), ZERO) + Decimal(paid)
        e.ledger.restore(balances, spent, e.next_posting, seller_net)
        last = conn.execute(sa.select(db.audit_log.c.seq, db.audit_log.c.hash)
                            .order_by(db.audit_log.c.seq.desc()).limit(1)).first()
        if last is not None:
            e.audit_seq, e.audit_head = last[0] + 1, last[1]
        return e

    # ------------------------------------------------------------------ helpers
    def _book(self, key: tuple[str, str, str]) -> OrderBook:
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = OrderBook(*key, allies=self.allies)
        return book

    def actor_for(self, token_hash: str) -> Actor | None:
        """The caller behind a token hash, or None when unknown or revoked. Safe to call from any thread."""
        tid = self.token_hashes.get(token_hash)
        info = self.tokens.get(tid) if tid is not None else None
        if info is None or info.revoked:
            return None
        p = self.participants[info.participant_id]
        return Actor(p["id"], p["role"], p["country"], info.id, info.scopes)

    def _audit(self, batch: Batch, kind: str, actor: Actor, payload: dict[str, Any]) -> None:
        self._append_audit(batch, kind, canonical_text({"actor": actor.participant_id, "token": actor.token_id,
                                                         **payload}))

    def _append_audit(self, batch: Batch, kind: str, text: str) -> None:
        """Append a record whose payload is ``text`` = canonical(payload). The hash input is that text spliced into
        the canonical record (keys sorted: kind, payload, prev_hash, seq), byte for byte what record_hash() hashes."""
        head = self.audit_head  # hex digits: its JSON string needs no escapes
        record = f'{{"kind":{canonical_text(kind)},"payload":{text},"prev_hash":"{head}","seq":{int(self.audit_seq)}}}'
        h = hashlib.sha256(record.encode("utf-8")).hexdigest()
        batch.add(db.audit_log, {"seq": self.audit_seq, "kind": kind, "payload": text, "prev_hash": self.audit_head,
                                 "hash": h})
        self.audit_seq += 1
        self.audit_head = h

    def _check_version(self, cmd: Command, current: int, what: str) -> None:
        if cmd.if_match is None:
            raise ApiError(428, "precondition_required", f"If-Match header with the {what}'s current version is "
                                                         "required", "If-Match")
        if cmd.if_match != current:
            raise ApiError(412, "version_mismatch", f"{what} is at version {current}, If-Match gave {cmd.if_match}",
                           "If-Match")

    # ------------------------------------------------------------------ dispatch
    def apply(self, cmd: Command, batch: Batch) -> Result:
        """Apply one command; on refusal nothing in memory or in ``batch`` has changed."""
        handler: Callable[[Command, Batch], Result] = getattr(self, f"_cmd_{cmd.kind}")
        try:
            with money():  # every amount exact: the one money context, never the thread's default
                return handler(cmd, batch)
        except ApiError as exc:
            return Result(exc.status, exc.body())
        except DataError as exc:
            return Result(422, ApiError(422, "invalid", exc.reason, exc.column).body())
        except CritminError as exc:
            return Result(422, ApiError(422, "invalid", str(exc)).body())

    # ------------------------------------------------------------------ participants and tokens
    def _cmd_create_participant(self, cmd: Command, batch: Batch) -> Result:
        d = cmd.data
        if d["id"] in self.participants or d["id"] == EXTERNAL or d["id"] in self.programmes:
            raise ApiError(409, "exists", f"participant {d['id']!r} already exists", "id")
        role = Role(d["role"])
        Participant(d["id"], role, d["country"])  # validates the country code
        row = {"id": d["id"], "name": d["name"], "role": role.value, "country": d["country"],
               "created_seq": self.audit_seq, "version": 1}
        batch.add(db.participants, row)
        self.participants[d["id"]] = {"id": d["id"], "name": d["name"], "role": role, "country": d["country"],
                                      "version": 1}
        self._audit(batch, "participant.create", cmd.actor, {"participant": row})
        return Result(201, participant_body(self.participants[d["id"]]))

    def _cmd_issue_token(self, cmd: Command, batch: Batch) -> Result:
        pid = cmd.data["participant_id"]
        actor = cmd.actor
        if pid not in self.participants or (pid != actor.participant_id and actor.role is not Role.ADMIN):
            raise not_found("participant", pid)
        administers = _administers(actor)
        if pid != actor.participant_id and not administers:
            raise ApiError(403, "forbidden", "token lacks the 'admin' scope")
        if not administers and not _full_token(actor):
            raise ApiError(403, "forbidden", _NARROWED)
        role = self.participants[pid]["role"]
        asked = cmd.data.get("scopes")
        scopes = frozenset(ROLE_SCOPES[role] if asked is None else asked)  # [] means no scope, not every scope
        beyond_role = scopes - ROLE_SCOPES[role]
        if beyond_role:
            raise ApiError(422, "invalid_scope", f"role {role.value} cannot hold scopes {sorted(beyond_role)}; "
                                                 f"allowed: {sorted(ROLE_SCOPES[role])}", "scopes")
        if not administers and not scopes <= actor.scopes:
            raise ApiError(403, "forbidden", f"a token cannot grant scopes it does not hold: "
                                             f"{sorted(scopes - actor.scopes)}", "scopes")
        tid, secret = new_token()
        th = hash_token(secret)
        label = cmd.data.get("label") or ""
        batch.add(db.tokens, {"id": tid, "participant_id": pid, "token_hash": th, "scopes": " ".join(sorted(scopes)),
                              "label": label, "created_seq": self.audit_seq, "revoked": False, "version": 1})
        info = TokenInfo(tid, pid, scopes, label, False, 1)
        self.tokens[tid] = info
        self.token_hashes[th] = tid
        # The token's SHA-256 (never the token) and label: the tokens row can be checked against the log.
        self._audit(batch, "token.issue", actor, {"token_id": tid, "participant_id": pid, "scopes": sorted(scopes),
                                                   "label": label, "token_hash": th})
        # The secret is returned once and stored nowhere: the idempotency record keeps the body without it
        # (see Sequencer), so a replay answers with "token": null.
        return Result(201, {**token_body(info), "token": secret})

    def _cmd_revoke_token(self, cmd: Command, batch: Batch) -> Result:
        tid = cmd.data["token_id"]
        info = self.tokens.get(tid)
        actor = cmd.actor
        if info is None or (info.participant_id != actor.participant_id and actor.role is not Role.ADMIN):
            raise not_found("token", tid)
        administers = _administers(actor)
        if info.participant_id != actor.participant_id and not administers:
            raise ApiError(403, "forbidden", "token lacks the 'admin' scope")
        if tid != actor.token_id and not administers and not _full_token(actor):
            raise ApiError(403, "forbidden", _NARROWED)  # revoking the calling token itself is always allowed
        if not info.revoked:
            info.revoked = True
            info.version += 1
            t = db.tokens
            batch.statements.append(t.update().where(t.c.id == tid).values(revoked=True, version=info.version))
            self._audit(batch, "token.revoke", actor, {"token_id": tid})
        return Result(200, token_body(info))

    # ------------------------------------------------------------------ policy and programmes
    def _cmd_set_policy(self, cmd: Command, batch: Batch) -> Result:
        d, actor = cmd.data, cmd.actor
        key = (d["commodity"], d["form"])
        old = self.policies.get(key)
        if old is not None:
            if old.set_by != actor.participant_id and actor.role is not Role.ADMIN:
                # Policies are public, so saying who owns this one leaks nothing.
                raise ApiError(403, "forbidden", f"the policy for {key[0]}/{key[1]} is set by {old.set_by!r}; only "
                                                 "it or an admin may change it")
            self._check_version(cmd, old.version, "policy")
        elif cmd.if_match not in (None, 0):
            raise ApiError(412, "version_mismatch", f"no policy for {key[0]}/{key[1]} yet; If-Match must be 0 or "
                                                    "absent", "If-Match")
        tariff = _opt_dec(d.get("nonmarket_tariff_rate"))
        if tariff is not None and d.get("nonmarket_use_reference"):
            raise ApiError(422, "invalid", "give either nonmarket_tariff_rate or nonmarket_use_reference, not both",
                           "nonmarket_tariff_rate")
        cost = d.get("cost_inputs")
        if d.get("nonmarket_use_reference") and cost is None:
            raise ApiError(422, "invalid", "nonmarket_use_reference needs cost_inputs (the reference price)",
                           "cost_inputs")
        origins = frozenset(d.get("nonmarket_origins") or ())
        for code in sorted(origins):
            _iso3(code, "nonmarket_origins")
        version = (old.version if old else 0) + 1
        policy = Policy(key[0], key[1], cost, tariff, bool(d.get("nonmarket_use_reference")), origins,
                        actor.participant_id, version)
        ref = policy.reference  # validates the cost inputs
        row = {"commodity": key[0], "form": key[1], "cost_inputs": cost, "nonmarket_tariff_rate": fmt(tariff),
               "nonmarket_reference": policy.use_reference, "nonmarket_origins": sorted(origins),
               "set_by": actor.participant_id, "version": version}
        if old is None:
            batch.add(db.policies, row)
        else:
            p = db.policies
            batch.statements.append(p.update().where(p.c.commodity == key[0], p.c.form == key[1]).values(**row))
        self.policies[key] = policy
        self._audit(batch, "policy.set", actor, {"policy": row, "reference_price": fmt(ref.price) if ref else None})
        return Result(200, policy_body(policy))

    def _price_tick(self, commodity: str, form: str) -> Decimal:
        """The finest price tick of a commodity/form's books (the default when none sets one)."""
        ticks = [pt for (c, f, _), (pt, _) in self.book_ticks.items() if (c, f) == (commodity, form) and pt is not None]
        return min(ticks, default=DEFAULT_PRICE_TICK)

    def _ticks(self, key3: tuple[str, str, str]) -> tuple[Decimal, Decimal]:
        pt, qt = self.book_ticks.get(key3, (None, None))
        return (DEFAULT_PRICE_TICK if pt is None else pt), (DEFAULT_QUANTITY_TICK if qt is None else qt)

    def _cmd_create_programme(self, cmd: Command, batch: Batch) -> Result:
        d, actor = cmd.data, cmd.actor
        pid = d["id"]
        if pid in self.programmes or pid in self.participants or pid == EXTERNAL:
            raise ApiError(409, "exists", f"programme id {pid!r} is taken", "id")
        if (d.get("floor") is None) == (d.get("cfd_strike") is None):
            raise ApiError(422, "invalid", "set exactly one of floor and cfd_strike", "floor")
        tick = self._price_tick(d["commodity"], d["form"])
        for name in ("floor", "cfd_strike"):
            v = _opt_dec(d.get(name))
            if v is not None and v < tick:
                raise ApiError(422, "invalid", f"{name} must be at least the price tick, {tick} USD/kg; got {v}", name)
        if Decimal(d["budget"]) <= 0:
            raise ApiError(422, "invalid", "budget must be > 0 USD", "budget")
        cap = _opt_dec(d.get("max_support_per_seller"))
        if cap is not None and cap <= 0:
            raise ApiError(422, "invalid", "max_support_per_seller must be > 0 USD (omit it for the budget)",
                           "max_support_per_seller")
        if d.get("cfd_strike") is not None and d.get("max_payback_per_seller") is None:
            raise ApiError(422, "invalid", "a CfD needs max_payback_per_seller: the most one seller can be charged "
                                           "back (USD), which the seller accepts when it enrols",
                           "max_payback_per_seller")
        if d.get("floor") is not None and d.get("max_payback_per_seller") is not None:
            raise ApiError(422, "invalid", "max_payback_per_seller is for CfDs: a floor charges nobody",
                           "max_payback_per_seller")
        prog = Programme(pid, actor.country, d["commodity"], d["form"], _opt_dec(d.get("floor")),
                         _opt_dec(d.get("cfd_strike")), Decimal(d["budget"]),
                         frozenset(d["eligible_origins"]) if d.get("eligible_origins") is not None else None,
                         bool(d.get("allies_only", False)), bool(d.get("exclude_nonmarket", True)),
                         cap, _opt_dec(d.get("max_payback_per_seller")))
        state = ProgrammeState(prog, actor.participant_id, True, self.audit_seq, 1)
        row = programme_row(state)
        batch.add(db.programmes, row)
        self.programmes[pid] = state
        self._audit(batch, "programme.create", actor, {"programme": row})
        return Result(201, programme_body(state, self.ledger.spent(pid)))

    def _cmd_update_programme(self, cmd: Command, batch: Batch) -> Result:
        d, actor = cmd.data, cmd.actor
        state = self.programmes.get(d["programme_id"])
        if state is None:
            raise not_found("programme", d["programme_id"])
        if state.owner != actor.participant_id and actor.role is not Role.ADMIN:
            raise not_found("programme", d["programme_id"])  # another participant's: absent, as everywhere
        self._check_version(cmd, state.version, "programme")
        prog = state.programme
        if d.get("budget") is not None:
            if Decimal(d["budget"]) <= 0:
                raise ApiError(422, "invalid", "budget must be > 0 USD (set active to false to stop a programme)",
                               "budget")
            prog = dataclasses.replace(prog, budget=Decimal(d["budget"]))
        active = state.active if d.get("active") is None else bool(d["active"])
        state.programme, state.active, state.version = prog, active, state.version + 1
        row = programme_row(state)
        p = db.programmes
        batch.statements.append(p.update().where(p.c.id == prog.id).values(
            budget=row["budget"], active=active, version=state.version))
        self._audit(batch, "programme.update", actor, {"programme": row})
        return Result(200, programme_body(state, self.ledger.spent(prog.id)))

    # ------------------------------------------------------------------ enrolments
    def _cmd_enrol(self, cmd: Command, batch: Batch) -> Result:
        """A seller enrols in a programme: from now on the programme settles the seller's trades of its
        commodity/form (and only it: one active enrolment per seller and commodity/form)."""
        actor, pid = cmd.actor, cmd.data["programme_id"]
        state = self.programmes.get(pid)
        if state is None:
            raise not_found("programme", pid)
        if not state.active:
            raise ApiError(409, "not_active", f"programme {pid!r} is not active")
        prog = state.programme
        current = self.enrolled.get((actor.participant_id, prog.commodity, prog.form))
        if current is not None:
            what = "this programme" if current == pid else f"programme {current!r}"
            raise ApiError(409, "enrolled", f"already enrolled in {what} for {prog.commodity}/{prog.form}; one "
                                            "programme per commodity/form settles a seller's trades")
        old = self.enrolments.get((pid, actor.participant_id))
        st = EnrolmentState(pid, actor.participant_id, prog.commodity, prog.form, True,
                            old.created_seq if old else self.audit_seq, old.version + 1 if old else 1)
        row = enrolment_row(st)
        if old is None:
            batch.add(db.enrolments, row)
        else:  # enrolling again after a withdrawal
            en = db.enrolments
            batch.statements.append(en.update().where(en.c.programme_id == pid,
                                                      en.c.seller_id == actor.participant_id)
                                    .values(active=True, version=st.version))
        self.enrolments[(pid, actor.participant_id)] = st
        self.enrolled[(actor.participant_id, prog.commodity, prog.form)] = pid
        self._audit(batch, "enrolment.create", actor, {"enrolment": row})
        return Result(201, enrolment_body(st, state, self.ledger))

    def _cmd_withdraw_enrolment(self, cmd: Command, batch: Batch) -> Result:
        """A seller leaves a floor programme. A CfD binds both ways, so its seller cannot walk away when the
        market is above the strike (its payback cap bounds what it owes), until the programme's owner ends the
        programme (``active = false``): then the seller may leave and enrol elsewhere."""
        actor, pid, seller = cmd.actor, cmd.data["programme_id"], cmd.data["seller_id"]
        st = self.enrolments.get((pid, seller))
        if st is None or seller != actor.participant_id:
            raise not_found("enrolment", f"{pid}/{seller}")
        self._check_version(cmd, st.version, "enrolment")
        if not st.active:
            raise ApiError(409, "not_active", f"the enrolment in {pid!r} was already withdrawn")
        state = self.programmes[pid]
        if state.programme.cfd_strike is not None and state.active:
            raise ApiError(409, "binding", f"{pid!r} is a two-sided CfD: its enrolment binds until the programme "
                                           "ends (its payback cap bounds what the seller can owe)")
        st.active, st.version = False, st.version + 1
        del self.enrolled[(seller, st.commodity, st.form)]
        en = db.enrolments
        batch.statements.append(en.update().where(en.c.programme_id == pid, en.c.seller_id == seller)
                                .values(active=False, version=st.version))
        row = enrolment_row(st)
        self._audit(batch, "enrolment.withdraw", actor, {"enrolment": row})
        return Result(200, enrolment_body(st, state, self.ledger))

    # ------------------------------------------------------------------ reference prices
    def _cmd_publish_fixing(self, cmd: Command, batch: Batch) -> Result:
        """Publish a reference price for a commodity/form: the market's index (``method = index``: the median of the
        sellers' volume-weighted prices over the trades since the previous fixing) or a benchmark the operator
        enters from a named source (``method = benchmark``). Floors and CfDs settle against the latest one."""
        d, actor = cmd.data, cmd.actor
        key = (d["commodity"], d["form"])
        window = self.index_window.get(key) or IndexWindow()
        tick = self._price_tick(*key)
        sellers, buyers = window.quantity, window.buyers
        volume = sum(window.quantity.values(), ZERO)
        if d["method"] == "benchmark":
            if d.get("price") is None:
                raise ApiError(422, "invalid", "a benchmark fixing needs its price (USD/kg)", "price")
            if not d.get("source"):
                raise ApiError(422, "invalid", "a benchmark fixing needs its source (the publication it is from)",
                               "source")
            price = Decimal(d["price"])
            if price <= 0:
                raise ApiError(422, "invalid", "price must be > 0 USD/kg", "price")
        else:
            if d.get("price") is not None:
                raise ApiError(422, "invalid", "an index fixing is computed from the trades; give no price", "price")
            if len(sellers) < INDEX_MIN_SELLERS or len(buyers) < INDEX_MIN_BUYERS:
                raise ApiError(409, "thin_market", f"an index fixing needs trades by at least {INDEX_MIN_SELLERS} "
                                                   f"sellers and {INDEX_MIN_BUYERS} buyers since the previous "
                                                   f"fixing of {key[0]}/{key[1]}; there are {len(sellers)} and "
                                                   f"{len(buyers)}")
            price = window.index(tick)
        row = {"id": self.next_fixing_id, "commodity": key[0], "form": key[1], "method": d["method"],
               "price": fmt(price), "source": d.get("source"),
               "first_trade_id": window.first_trade_id,
               "last_trade_id": self.next_trade_id - 1 if self.next_trade_id else None,
               "trades": window.trades, "sellers": len(sellers), "buyers": len(buyers), "volume": fmt(volume),
               "published_by": actor.participant_id, "created_seq": self.audit_seq}
        batch.add(db.fixings, row)
        self.next_fixing_id += 1
        self.fixings[key] = Fixing(row["id"], key[0], key[1], d["method"], price, fixing_row(row))
        self.index_window[key] = IndexWindow()
        self._audit(batch, "fixing.publish", actor, {"fixing": row})
        return Result(201, fixing_row(row))

    # ------------------------------------------------------------------ money in and out
    def _cmd_deposit(self, cmd: Command, batch: Batch) -> Result:
        d = cmd.data
        owner = d["owner"]
        if owner not in self.participants and owner not in self.programmes:
            raise ApiError(422, "invalid", f"unknown account owner {owner!r}", "owner")
        amount = Decimal(d["amount"])
        posting = self.ledger.deposit(owner, d["asset"], amount, memo=f"deposit {owner} {d['asset']}")
        self._write_posting(batch, posting)
        self._audit(batch, "ledger.deposit", cmd.actor, {"owner": owner, "asset": d["asset"], "amount": amount,
                                                          "posting": posting.seq})
        return Result(201, {"posting": posting.seq, "owner": owner, "asset": d["asset"], "amount": fmt(amount),
                            "balance": fmt(self.ledger.balance(owner, d["asset"]))})

    def _write_posting(self, batch: Batch, posting) -> None:
        seq, balance, balances = posting.seq, self.ledger.balance, batch.balances
        batch.add(db.postings, {"seq": seq, "memo": posting.memo[:200]})
        for leg, e in enumerate(posting.entries):
            batch.add(db.ledger_entries, {"posting_seq": seq, "leg": leg, "owner": e.owner,
                                          "asset": e.asset, "amount": fmt(e.amount)})
            balances[(e.owner, e.asset)] = (fmt(balance(e.owner, e.asset)), seq)

    # ------------------------------------------------------------------ orders
    def _cmd_place_order(self, cmd: Command, batch: Batch) -> Result:
        d, actor = cmd.data, cmd.actor
        side = Side(d["side"])
        if (side is Side.SELL) != (actor.role is Role.SELLER) or actor.role not in (Role.SELLER, Role.BUYER):
            raise ApiError(403, "forbidden", f"a {actor.role.value} cannot place {side.value} orders", "side")
        seq = self.next_order_seq
        oid = f"ord_{seq}"
        key3 = (d["commodity"], d["form"], d["grade"])
        policy = self.policies.get(key3[:2])
        att, req = d.get("attestations") or {}, d.get("requirements") or {}
        origin = d.get("origin")
        nonmarket = bool(d.get("nonmarket", False)) or (side is Side.SELL and policy is not None
                                                         and origin in policy.nonmarket_origins)
        limit = Decimal(d["limit_price"])
        order = Order(oid, seq, actor.participant_id, side, *key3, Decimal(d["quantity"]), limit,
                      _date(d["delivery_start"], "delivery_start"), _date(d["delivery_end"], "delivery_end"),
                      d["location"], origin,
                      Attestations(att.get("irma_level"), bool(att.get("oecd_ddg", False)),
                                   _opt_dec(att.get("carbon_kg_per_kg")), att.get("chain_of_custody")),
                      nonmarket,
                      Requirements(frozenset(req["allowed_origins"]) if req.get("allowed_origins") is not None
                                   else None, bool(req.get("allied_only", False)), req.get("min_irma"),
                                   bool(req.get("require_oecd", False)), _opt_dec(req.get("max_carbon")),
                                   bool(req.get("exclude_nonmarket", False))))
        price_tick, qty_tick = self._ticks(key3)
        if not on_tick(order.quantity, qty_tick):
            raise ApiError(422, "off_tick", f"quantity {fmt(order.quantity)} kg is not a multiple of the book's "
                                            f"quantity tick, {fmt(qty_tick)} kg", "quantity")
        if not on_tick(limit, price_tick):
            raise ApiError(422, "off_tick", f"limit_price {fmt(limit)} USD/kg is not a multiple of the book's price "
                                            f"tick, {fmt(price_tick)} USD/kg", "limit_price")
        book_price = self._book_price(order, policy)
        if book_price != limit:
            order = dataclasses.replace(order, limit_price=book_price)
        # Validation done: from here on the command cannot be refused.
        self.next_order_seq += 1
        row = order_row(order, limit, d.get("client_order_id"))
        batch.add(db.orders, row)
        mode = self.book_modes.get(key3, ("continuous", 0))[0]
        book = self._book(key3)
        self.open_orders[oid] = OpenOrder(order, order.quantity, 1)
        if mode == "continuous":
            trades = book.submit(order)
        else:
            book.restore(order)
            trades = []
        settled = [self._settle(t, batch) for t in trades]
        # The audit payload {actor, order, token, trades} and the answer {order, trades} are encoded from shared
        # pieces, keys sorted (canonical), each piece once: this is the hottest path of the service.
        placed = order_body(row)
        order_text = canonical_text(placed)
        trades_text = canonical_text(settled)
        self._append_audit(batch, "order.place", f'{{"actor":{canonical_text(actor.participant_id)},"order":{order_text},'
                                                 f'"token":{canonical_text(actor.token_id)},"trades":{trades_text}}}')
        st = self.open_orders.get(oid)
        remaining, status, version = ((st.remaining, "open", st.version) if st is not None
                                      else (ZERO, "filled", 1 + len(trades)))
        now = {**placed, "remaining": fmt(remaining), "status": status, "version": version}
        now_text = order_text if now == placed else canonical_text(now)
        return Result(201, {"order": now, "trades": settled},
                      raw=f'{{"order":{now_text},"trades":{trades_text}}}'.encode())

    def _book_price(self, order: Order, policy: Policy | None) -> Decimal:
        """Price at which a lot enters the book: a non-market origin's price after the policy's adjustment."""
        if order.side is not Side.SELL or not order.nonmarket or policy is None:
            return order.limit_price
        if policy.tariff_rate is not None:
            return nonmarket_adjustment(order.limit_price, True, tariff_rate=policy.tariff_rate)
        if policy.use_reference and policy.reference is not None:
            return nonmarket_adjustment(order.limit_price, True, reference=policy.reference.price)
        return order.limit_price

    def _fill(self, oid: str, qty: Decimal, batch: Batch) -> None:
        st = self.open_orders[oid]
        st.remaining -= qty
        st.version += 1
        status = "open" if st.remaining > 0 else "filled"
        batch.order_updates[oid] = {"remaining": fmt(st.remaining), "status": status, "version": st.version}
        if status == "filled":
            del self.open_orders[oid]

    def _programme_for(self, trade: Trade) -> ProgrammeState | None:
        """The programme that settles a trade: the one its seller enrolled in for the commodity/form, when active
        and its rules (origin, allies, non-market) cover the trade. A seller has at most one active enrolment per
        commodity/form, so at most one programme settles a trade, and the seller chose it."""
        pid = self.enrolled.get((trade.seller_id, trade.commodity, trade.form))
        state = self.programmes.get(pid) if pid is not None else None
        if state is not None and state.active and programme_covers(trade, state.programme, self.allies)[0]:
            return state
        return None

    def _settle(self, trade: Trade, batch: Batch) -> dict[str, Any]:
        tid = self.next_trade_id
        self.next_trade_id += 1
        trade = Trade(tid, trade.buy_order_id, trade.sell_order_id, trade.buyer_id, trade.seller_id, trade.commodity,
                      trade.form, trade.grade, trade.quantity, trade.price, trade.origin, trade.nonmarket)
        self._fill(trade.buy_order_id, trade.quantity, batch)
        self._fill(trade.sell_order_id, trade.quantity, batch)
        policy = self.policies.get((trade.commodity, trade.form))
        levy = None
        if trade.nonmarket and policy is not None and policy.tariff_rate is not None:
            # The buyer pays the book price, tariff included; the tariff part goes to the policy's owner, rounded
            # half-even to the cent (the one rounding of a settlement).
            amount = quantize_div(trade.value * policy.tariff_rate, 1 + policy.tariff_rate, CENT)
            levy = (policy.set_by, amount)
        prog = self._programme_for(trade)
        fixing = self.fixings.get((trade.commodity, trade.form)) if prog is not None else None
        s = self.ledger.settle(trade, prog.programme if prog else None, self.allies, levy,
                               reference=fixing.price if fixing is not None else None)
        self._write_posting(batch, s.posting)
        if not trade.nonmarket:  # non-market prices are what programmes counter: never in the index
            self.index_window.setdefault((trade.commodity, trade.form), IndexWindow()).add(
                tid, trade.seller_id, trade.buyer_id, trade.price, trade.quantity)
        sup = s.support
        row = {"id": tid, "buy_order_id": trade.buy_order_id, "sell_order_id": trade.sell_order_id,
               "buyer_id": trade.buyer_id, "seller_id": trade.seller_id, "commodity": trade.commodity,
               "form": trade.form, "grade": trade.grade, "quantity": fmt(trade.quantity), "price": fmt(trade.price),
               "origin": trade.origin, "nonmarket": trade.nonmarket,
               "mechanism": self.book_modes.get((trade.commodity, trade.form, trade.grade), ("continuous", 0))[0],
               "programme_id": prog.programme.id if prog else None,
               "support_due": fmt(sup.due if sup else ZERO), "support_paid": fmt(sup.paid if sup else ZERO),
               "support_reason": sup.reason if sup else "no programme covers the trade",
               "levy": fmt(levy[1] if levy else ZERO), "posting_seq": s.posting.seq,
               "reference_price": fmt(fixing.price) if fixing is not None else None,
               "fixing_id": fixing.id if fixing is not None else None}
        batch.add(db.trades, row)
        return dict(row)

    def _cmd_cancel_order(self, cmd: Command, batch: Batch) -> Result:
        oid, actor = cmd.data["order_id"], cmd.actor
        st = self.open_orders.get(oid)
        if st is None:
            raise ApiError(409, "not_open", f"order {oid!r} is not open (filled or cancelled)")  # existence checked
        if st.order.participant_id != actor.participant_id:
            raise not_found("order", oid)
        self._check_version(cmd, st.version, "order")
        self.books[st.order.book_key].cancel(oid)
        del self.open_orders[oid]
        version = st.version + 1
        batch.order_updates[oid] = {"remaining": fmt(st.remaining), "status": "cancelled", "version": version}
        self._audit(batch, "order.cancel", actor, {"order_id": oid, "remaining": st.remaining})
        return Result(200, {"order_id": oid, "status": "cancelled", "remaining": fmt(st.remaining), "version": version})

    # ------------------------------------------------------------------ books and auctions
    def _cmd_set_book_mode(self, cmd: Command, batch: Batch) -> Result:
        """Set a book's mode and/or its ticks (absent: unchanged). New ticks apply to orders placed from now on."""
        d = cmd.data
        key3 = (d["commodity"], d["form"], d["grade"])
        mode, version = self.book_modes.get(key3, ("continuous", 0))
        if cmd.if_match is not None and cmd.if_match != version:
            raise ApiError(412, "version_mismatch", f"book is at version {version}, If-Match gave {cmd.if_match}",
                           "If-Match")
        ticks = list(self.book_ticks.get(key3, (None, None)))
        for i, name in enumerate(("price_tick", "quantity_tick")):
            v = _opt_dec(d.get(name))
            if v is not None:
                if v <= 0:
                    raise ApiError(422, "invalid", f"{name} must be > 0", name)
                ticks[i] = v
        new_mode = d.get("mode") or mode
        settled: list[dict[str, Any]] = []
        if mode == "call" and new_mode == "continuous":
            settled = self._auction(key3, batch)  # uncross before continuous trading resumes
        new = (new_mode, version + 1)
        row = {"commodity": key3[0], "form": key3[1], "grade": key3[2], "mode": new_mode, "version": new[1],
               "price_tick": fmt(ticks[0]), "quantity_tick": fmt(ticks[1])}
        if version == 0:
            batch.add(db.books, row)
        else:
            b = db.books
            batch.statements.append(b.update().where(b.c.commodity == key3[0], b.c.form == key3[1],
                                                     b.c.grade == key3[2]).values(
                mode=new_mode, version=new[1], price_tick=row["price_tick"], quantity_tick=row["quantity_tick"]))
        self.book_modes[key3] = new
        if ticks != [None, None]:
            self.book_ticks[key3] = (ticks[0], ticks[1])
        self._audit(batch, "book.mode", cmd.actor, {"book": row, "trades": settled})
        pt, qt = self._ticks(key3)
        return Result(200, {"commodity": key3[0], "form": key3[1], "grade": key3[2], "mode": new_mode,
                            "version": new[1], "price_tick": fmt(pt), "quantity_tick": fmt(qt), "trades": settled})

    def _cmd_run_auction(self, cmd: Command, batch: Batch) -> Result:
        d = cmd.data
        key3 = (d["commodity"], d["form"], d["grade"])
        price_before = self._reference_for(key3)
        settled = self._auction(key3, batch)
        price = settled[0]["price"] if settled else None
        self._audit(batch, "auction.run", cmd.actor, {"book": list(key3), "clearing_price": price,
                                                       "reference_price": fmt(price_before), "trades": settled})
        return Result(200, {"commodity": key3[0], "form": key3[1], "grade": key3[2], "clearing_price": price,
                            "trades": settled})

    def _reference_for(self, key3: tuple[str, str, str]) -> Decimal | None:
        policy = self.policies.get(key3[:2])
        ref = policy.reference if policy is not None else None
        return ref.price if ref is not None else None

    def _auction(self, key3: tuple[str, str, str], batch: Batch) -> list[dict[str, Any]]:
        book = self._book(key3)
        resting = book.bids() + book.asks()
        _, trades = call_auction(resting, reference_price=self._reference_for(key3), allies=self.allies)
        settled = [self._settle(t, batch) for t in trades]
        # Rebuild the book from what is left, in arrival order.
        fresh = self.books[key3] = OrderBook(*key3, allies=self.allies)
        for o in sorted(resting, key=lambda o: o.seq):
            st = self.open_orders.get(o.id)
            if st is not None:
                fresh.restore(dataclasses.replace(o, quantity=st.remaining))
        return settled


# ---------------------------------------------------------------------- rows and bodies
def _next(conn: sa.Connection, column: sa.Column) -> int:
    """1 + the largest value of an integer column, 0 for an empty table (``max = 0`` is a value, not "none")."""
    top = conn.execute(sa.select(sa.func.max(column))).scalar()
    return 0 if top is None else top + 1


def _opt_dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _date(v: Any, name: str) -> dt.date:
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise DataError(f"{name} is not an ISO date (YYYY-MM-DD): {v!r}", column=name) from None


def _programme_from_row(r) -> Programme:
    return Programme(r["id"], r["country"], r["commodity"], r["form"], _opt_dec(r["floor"]), _opt_dec(r["cfd_strike"]),
                     Decimal(r["budget"]), frozenset(r["eligible_origins"]) if r["eligible_origins"] is not None
                     else None, r["allies_only"], r["exclude_nonmarket"], _opt_dec(r["max_support_per_seller"]),
                     _opt_dec(r["max_payback_per_seller"]))


def programme_row(state: ProgrammeState) -> dict[str, Any]:
    p = state.programme
    return {"id": p.id, "participant_id": state.owner, "country": p.country, "commodity": p.commodity,
            "form": p.form, "floor": fmt(p.floor), "cfd_strike": fmt(p.cfd_strike), "budget": fmt(p.budget),
            "eligible_origins": sorted(p.eligible_origins) if p.eligible_origins is not None else None,
            "allies_only": p.allies_only, "exclude_nonmarket": p.exclude_nonmarket, "active": state.active,
            "created_seq": state.created_seq, "version": state.version,
            "max_support_per_seller": fmt(p.max_support_per_seller),
            "max_payback_per_seller": fmt(p.max_payback_per_seller)}


def programme_body(state: ProgrammeState, spent: Decimal) -> dict[str, Any]:
    row = programme_row(state)
    row.pop("created_seq")
    row["spent"] = fmt(spent)
    row["remaining_budget"] = fmt(MONEY.subtract(state.programme.budget, spent))
    return row


def enrolment_row(st: EnrolmentState) -> dict[str, Any]:
    return {"programme_id": st.programme_id, "seller_id": st.seller_id, "commodity": st.commodity, "form": st.form,
            "active": st.active, "created_seq": st.created_seq, "version": st.version}


def enrolment_body(st: EnrolmentState, prog: ProgrammeState, ledger: Ledger) -> dict[str, Any]:
    """An enrolment with the terms the seller accepted and what the programme has paid it (net) so far."""
    p = prog.programme
    out = enrolment_row(st)
    out.pop("created_seq")
    out.update(floor=fmt(p.floor), cfd_strike=fmt(p.cfd_strike),
               max_support_per_seller=fmt(p.max_support_per_seller),
               max_payback_per_seller=fmt(p.max_payback_per_seller),
               net_received=fmt(ledger.seller_net(p.id, st.seller_id)))
    return out


def fixing_row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "commodity", "form", "method", "price", "source", "first_trade_id",
                              "last_trade_id", "trades", "sellers", "buyers", "volume", "published_by",
                              "created_seq")}



def order_row(order: Order, submitted_limit: Decimal | None, client_order_id: str | None) -> dict[str, Any]:
    a, r = order.attestations, order.requirements
    return {"id": order.id, "seq": order.seq, "participant_id": order.participant_id,
            "client_order_id": client_order_id, "side": order.side.value, "commodity": order.commodity,
            "form": order.form, "grade": order.grade, "quantity": fmt(order.quantity),
            "limit_price": fmt(submitted_limit if submitted_limit is not None else order.limit_price),
            "book_price": fmt(order.limit_price), "delivery_start": order.delivery_start,
            "delivery_end": order.delivery_end, "location": order.location, "origin": order.origin,
            "nonmarket": order.nonmarket,
            "attestations": {"irma_level": a.irma_level, "oecd_ddg": a.oecd_ddg,
                             "carbon_kg_per_kg": fmt(a.carbon_kg_per_kg), "chain_of_custody": a.chain_of_custody},
            "requirements": {"allowed_origins": sorted(r.allowed_origins) if r.allowed_origins is not None else None,
                             "allied_only": r.allied_only, "min_irma": r.min_irma, "require_oecd": r.require_oecd,
                             "max_carbon": fmt(r.max_carbon), "exclude_nonmarket": r.exclude_nonmarket},
            "remaining": fmt(order.quantity), "status": "open", "version": 1}


def order_from_row(r) -> Order:
    a, q = r["attestations"], r["requirements"]
    return Order(r["id"], r["seq"], r["participant_id"], Side(r["side"]), r["commodity"], r["form"], r["grade"],
                 Decimal(r["quantity"]), Decimal(r["book_price"]), r["delivery_start"], r["delivery_end"],
                 r["location"], r["origin"],
                 Attestations(a["irma_level"], a["oecd_ddg"], _opt_dec(a["carbon_kg_per_kg"]), a["chain_of_custody"]),
                 r["nonmarket"],
                 Requirements(frozenset(q["allowed_origins"]) if q["allowed_origins"] is not None else None,
                              q["allied_only"], q["min_irma"], q["require_oecd"], _opt_dec(q["max_carbon"]),
                              q["exclude_nonmarket"]))


def order_body(row) -> dict[str, Any]:
    out = dict(row)
    for k in ("delivery_start", "delivery_end"):
        out[k] = out[k].isoformat() if isinstance(out[k], dt.date) else out[k]
    return out



def participant_body(p: dict[str, Any]) -> dict[str, Any]:
    role = p["role"]
    return {"id": p["id"], "name": p["name"], "role": role.value if isinstance(role, Role) else role,
            "country": p["country"], "version": p["version"]}


def token_body(info: TokenInfo) -> dict[str, Any]:
    return {"id": info.id, "participant_id": info.participant_id, "scopes": sorted(info.scopes),
            "label": info.label, "revoked": info.revoked, "version": info.version}


def policy_body(p: Policy) -> dict[str, Any]:
    ref = p.reference
    return {"commodity": p.commodity, "form": p.form, "version": p.version, "set_by": p.set_by,
            "nonmarket_tariff_rate": fmt(p.tariff_rate), "nonmarket_use_reference": p.use_reference,
            "nonmarket_origins": sorted(p.nonmarket_origins), "cost_inputs": p.cost_inputs,
            "reference_price": None if ref is None else {
                "conventional": fmt(ref.conventional), "premium": fmt(ref.premium), "price": fmt(ref.price),
                "terms": {k: fmt(v) for k, v in ref.terms.items()}, "sources": list(ref.sources)}}
