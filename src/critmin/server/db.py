"""Marketplace storage: one SQLAlchemy 2 schema for SQLite (embedded default) and PostgreSQL (production).

Money, prices and quantities are stored as decimal *text* (exact on both backends; SQLite has no exact numeric
type). Every table is written only by the sequencer (:mod:`critmin.server.sequencer`), in one transaction per batch,
so what a client was told is committed is exactly what is on disk.

The audit log, the ledger and the price fixings are append-only: triggers refuse UPDATE and DELETE on
``audit_log``, ``ledger_entries``, ``postings`` and ``fixings`` (installed by the migrations), so tampering needs
deliberate DDL, and
:func:`critmin.market.audit.verify` still catches it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from critmin.market.money import total

#: Width of every decimal column (money and quantities, stored as exact decimal text): a trade value at the API's
#: limits (15 + 9 digits times 15 + 9 digits) has 48 digits, a sum of them more; 80 characters hold any amount
#: below 10^60 USD with 18 decimals. PostgreSQL enforces it (a longer value would fail the group commit).
DECIMAL_CHARS = 80

metadata = sa.MetaData()

participants = sa.Table(
    "participants", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("country", sa.String(3), nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("participant_id", sa.String(64), sa.ForeignKey("participants.id"), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(400), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

programmes = sa.Table(
    "programmes", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("participant_id", sa.String(64), sa.ForeignKey("participants.id"), nullable=False, index=True),
    sa.Column("country", sa.String(3), nullable=False),
    sa.Column("commodity", sa.String(64), nullable=False),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("floor", sa.String(DECIMAL_CHARS)),
    sa.Column("cfd_strike", sa.String(DECIMAL_CHARS)),
    sa.Column("budget", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("eligible_origins", sa.JSON),
    sa.Column("allies_only", sa.Boolean, nullable=False),
    sa.Column("exclude_nonmarket", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # Migration 0003: the caps a seller accepts when it enrols (USD; the payback cap only on a CfD).
    sa.Column("max_support_per_seller", sa.String(DECIMAL_CHARS)),
    sa.Column("max_payback_per_seller", sa.String(DECIMAL_CHARS)),
)

# A seller's enrolment in a programme (migration 0003): a programme supports only the trades of sellers enrolled in
# it, and a seller has at most one active enrolment per commodity/form (so at most one programme settles a trade).
enrolments = sa.Table(
    "enrolments", metadata,
    sa.Column("programme_id", sa.String(64), sa.ForeignKey("programmes.id"), primary_key=True),
    sa.Column("seller_id", sa.String(64), sa.ForeignKey("participants.id"), primary_key=True),
    sa.Column("commodity", sa.String(64), nullable=False),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

# Reference price fixings per commodity/form (migration 0003), append-only: the market's index (computed from the
# trades since the previous fixing) or a benchmark the operator enters with its source. Floors and CfDs settle
# against the latest fixing published before the trade.
fixings = sa.Table(
    "fixings", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("commodity", sa.String(64), nullable=False),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("price", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("source", sa.String(300)),
    sa.Column("first_trade_id", sa.BigInteger),
    sa.Column("last_trade_id", sa.BigInteger),
    sa.Column("trades", sa.Integer, nullable=False),
    sa.Column("sellers", sa.Integer, nullable=False),
    sa.Column("buyers", sa.Integer, nullable=False),
    sa.Column("volume", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
)

# Market policy per commodity/form: the reference price (cost build-up) and the non-market adjustment.
policies = sa.Table(
    "policies", metadata,
    sa.Column("commodity", sa.String(64), primary_key=True),
    sa.Column("form", sa.String(64), primary_key=True),
    sa.Column("cost_inputs", sa.JSON),
    sa.Column("nonmarket_tariff_rate", sa.String(DECIMAL_CHARS)),
    sa.Column("nonmarket_reference", sa.Boolean, nullable=False),
    sa.Column("nonmarket_origins", sa.JSON, nullable=False),
    sa.Column("set_by", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

books = sa.Table(
    "books", metadata,
    sa.Column("commodity", sa.String(64), primary_key=True),
    sa.Column("form", sa.String(64), primary_key=True),
    sa.Column("grade", sa.String(64), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # Migration 0003: the book's ticks (USD/kg, kg); NULL = the market's defaults.
    sa.Column("price_tick", sa.String(DECIMAL_CHARS)),
    sa.Column("quantity_tick", sa.String(DECIMAL_CHARS)),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
    sa.Column("participant_id", sa.String(64), sa.ForeignKey("participants.id"), nullable=False, index=True),
    sa.Column("client_order_id", sa.String(64)),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("commodity", sa.String(64), nullable=False),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("grade", sa.String(64), nullable=False),
    sa.Column("quantity", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("limit_price", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("book_price", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("delivery_start", sa.Date, nullable=False),
    sa.Column("delivery_end", sa.Date, nullable=False),
    sa.Column("location", sa.String(200), nullable=False),
    sa.Column("origin", sa.String(3)),
    sa.Column("nonmarket", sa.Boolean, nullable=False),
    sa.Column("attestations", sa.JSON, nullable=False),
    sa.Column("requirements", sa.JSON, nullable=False),
    sa.Column("remaining", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

trades = sa.Table(
    "trades", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("buy_order_id", sa.String(32), nullable=False),
    sa.Column("sell_order_id", sa.String(32), nullable=False),
    sa.Column("buyer_id", sa.String(64), nullable=False, index=True),
    sa.Column("seller_id", sa.String(64), nullable=False, index=True),
    sa.Column("commodity", sa.String(64), nullable=False),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("grade", sa.String(64), nullable=False),
    sa.Column("quantity", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("price", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("origin", sa.String(3), nullable=False),
    sa.Column("nonmarket", sa.Boolean, nullable=False),
    sa.Column("mechanism", sa.String(16), nullable=False),
    sa.Column("programme_id", sa.String(64), index=True),
    sa.Column("support_due", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("support_paid", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("support_reason", sa.String(200), nullable=False),
    sa.Column("levy", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("posting_seq", sa.BigInteger, nullable=False),
    # Migration 0003: the reference price (and its fixing) the support was computed against.
    sa.Column("reference_price", sa.String(DECIMAL_CHARS)),
    sa.Column("fixing_id", sa.BigInteger),
)

postings = sa.Table(
    "postings", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("memo", sa.String(200), nullable=False),
)

ledger_entries = sa.Table(
    "ledger_entries", metadata,
    sa.Column("posting_seq", sa.BigInteger, sa.ForeignKey("postings.seq"), primary_key=True, autoincrement=False),
    sa.Column("leg", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("asset", sa.String(130), nullable=False),
    sa.Column("amount", sa.String(DECIMAL_CHARS), nullable=False),
)

# The balance of every account, kept by the same transaction that appends its ledger entries (migration 0002):
# an account is read in one look-up instead of a sum over its whole history, and the entries need no index by
# owner (an index that, with the participants spread over it, made every batch rewrite ~20 of its pages).
account_balances = sa.Table(
    "account_balances", metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("asset", sa.String(130), primary_key=True),
    sa.Column("amount", sa.String(DECIMAL_CHARS), nullable=False),
    sa.Column("posting_seq", sa.BigInteger, nullable=False),  # the last posting that moved it
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency = sa.Table(
    "idempotency", metadata,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

#: Tables that may only grow (checked by triggers and by the tests).
APPEND_ONLY = ("audit_log", "postings", "ledger_entries", "fixings")


def balances(conn: sa.Connection, owner: str | None = None) -> dict[tuple[str, str], Decimal]:
    """Balance per (owner, asset) as kept in ``account_balances``, exact (decimal text); one owner's, or everyone's."""
    b = account_balances
    q = sa.select(b.c.owner, b.c.asset, b.c.amount)
    if owner is not None:
        q = q.where(b.c.owner == owner)
    return {(who, asset): Decimal(amount) for who, asset, amount in conn.execute(q)}


def entry_sums(conn: sa.Connection) -> dict[tuple[str, str], Decimal]:
    """Sum of all ledger entries per (owner, asset), exact: the balances recomputed from the journal itself (what
    the trial balance and :func:`balances` are checked against). Reads every entry."""
    # The driver's rows, fetched in chunks: SQLAlchemy's result rows cost more than the sum itself here (measured:
    # 0.49 s against 0.2 s for 92,000 entries), and every start of the service reads the whole journal.
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute("SELECT owner, asset, amount FROM ledger_entries")
        texts: dict[tuple[str, str], list[str]] = {}
        while rows := cur.fetchmany(10_000):
            for who, asset, amount in rows:
                (texts.get((who, asset)) or texts.setdefault((who, asset), [])).append(amount)
    finally:
        cur.close()
    return {key: total(map(Decimal, amounts)) for key, amounts in texts.items()}


def audit_records(conn: sa.Connection, after: int | None = None, limit: int | None = None):
    """Audit records in log order as :func:`critmin.market.audit.verify` reads them (payload parsed). A payload
    that is not JSON any more (tampered) is kept as its text, so verification reports the record, never crashes."""
    a = audit_log
    q = sa.select(a).order_by(a.c.seq)
    if after is not None:
        q = q.where(a.c.seq > after)
    if limit is not None:
        q = q.limit(limit)
    for r in conn.execute(q).mappings():
        try:
            payload = json.loads(r["payload"])
        except json.JSONDecodeError:
            payload = r["payload"]
        yield {"seq": r["seq"], "kind": r["kind"], "payload": payload, "prev_hash": r["prev_hash"], "hash": r["hash"]}


def default_url(data_dir: Path | None = None) -> str:
    """SQLite database in ``data_dir`` (default ``$CRITMIN_DATA_DIR`` or ``./critmin-data``)."""
    base = Path(data_dir or os.environ.get("CRITMIN_DATA_DIR") or "critmin-data")
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(base / 'market.sqlite3').resolve()}"


def _json_text(value: Any) -> str:
    """Text of a JSON column (the order's attestations and requirements): orjson's, compact, when it can encode the
    value (it is ~10x faster than the stdlib's, on the hottest write path), else the stdlib's. Both are JSON of the
    same value, and the column is only ever read back as JSON."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # a type it does not encode
        return json.dumps(value)


def make_engine(url: str, *, durable: bool = True) -> sa.Engine:
    """SQLAlchemy engine; SQLite gets WAL mode, ``synchronous=FULL`` (a commit survives power loss) and a busy
    timeout; ``durable=False`` (``synchronous=NORMAL``) survives a process kill but not power loss."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        # cached_statements: the storage writer's multi-row INSERTs have one SQL text per table and row count (see
        # engine._DriverStatement), a few hundred in all; with the driver's default cache of 128 they were parsed
        # again and again (measured under load: the writer's CPU per order ~11 % lower with 1,024).
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30,
                                                     "cached_statements": 1024},
                                  json_serializer=_json_text)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Statement journals (a multi-row INSERT or UPDATE keeps one, to undo just that statement) in memory,
            # not in temporary files: the writer wrote and deleted one per statement, a third of its system calls.
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, json_serializer=_json_text)


@contextlib.contextmanager
def read_snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose reads all see one committed state of the database (several SELECTs that must agree
    while the sequencer goes on committing). SQLite: an explicit read transaction (the driver opens none for
    SELECTs); PostgreSQL: REPEATABLE READ. Nothing is written; it ends with a rollback."""
    with engine.connect() as c:
        if is_sqlite(engine):
            c.exec_driver_sql("BEGIN")
        else:
            c = c.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield c
        finally:
            c.rollback()


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


class ServerLock:
    """One marketplace server per database: the sequencer keeps the books in memory, so a second server writing the
    same database would match against a stale book. SQLite: an exclusive ``flock`` on ``<database>.lock``;
    PostgreSQL: a session advisory lock on a connection held open. Both vanish with the process, ``kill -9``
    included, so a restart after a crash is never locked out.
    """

    _PG_KEY = 0x63726D6E  # "crmn"

    def __init__(self, engine: sa.Engine, writer: bool = False) -> None:
        self.engine = engine
        self.writer = writer  # the storage writer's lock (see wait_free) instead of the server's
        self._fd: int | None = None
        self._conn: sa.Connection | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock; when another process holds it, retry for ``wait`` seconds, then raise ConfigError."""
        import time

        from critmin.errors import ConfigError

        deadline = time.monotonic() + wait
        while not self._try():
            if time.monotonic() >= deadline:
                what = "storage writer of another critmin server" if self.writer else "another critmin server"
                where = (f"{self.engine.url.database} (lock {self._path()})" if is_sqlite(self.engine)
                         else f"the database {self.engine.url.database!r}")
                raise ConfigError(f"{what} is running on {where}")
            time.sleep(0.02)

    def wait_free(self, timeout: float = 30.0) -> None:
        """Return once nobody holds the lock. The server calls it on the storage writer's lock before it loads the
        database: a writer left by a server killed a moment ago (it dies with it) has then finished or abandoned
        its last commit, so nothing lands in the database after the load."""
        self.acquire(wait=timeout)
        self.release()

    def _path(self) -> str:
        return f"{self.engine.url.database}.{'writer.' if self.writer else ''}lock"

    def _try(self) -> bool:
        if is_sqlite(self.engine):
            import fcntl

            database = self.engine.url.database
            if not database or database == ":memory:":
                return True
            fd = os.open(self._path(), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        conn = self.engine.connect()
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key()}).scalar()
        conn.commit()
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _key(self) -> int:
        return self._PG_KEY + (1 if self.writer else 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key()})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
