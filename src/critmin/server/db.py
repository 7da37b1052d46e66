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

# Who runs the service on this database (one row, ``name = 'server'``): see :class:`ServerLock` (migration 0003).
server_lease = sa.Table(
    "server_lease", metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),     # random id of the server process holding it
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.BigInteger, nullable=False),
    sa.Column("acquired_ms", sa.BigInteger, nullable=False),   # Unix time, milliseconds
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
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
        # cached_statements: the writer's multi-row INSERTs have one SQL text per table and row count (see
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
            # The database file is read with read(), never memory-mapped (whatever the SQLite build's default): a
            # file changed or cut short under the server is then an I/O error, not a SIGBUS that kills the process.
            # (The WAL index, <database>-shm, is always mapped: see check_sqlite_file.)
            cur.execute("PRAGMA mmap_size=0")
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


class LeaseLost(Exception):
    """This server's lease on the database is gone (another server took it over after it expired)."""


#: Seconds a lease lasts without being renewed (see :class:`ServerLock`).
LEASE_SECONDS = 15.0


class ServerLock:
    """One marketplace server per database: the sequencer keeps the books in memory, so a second server writing the
    same database would match against a stale book and number its orders from a stale counter.

    The lock is inside the database, so every way of reaching it (another path, a symbolic link, another host on
    shared storage) meets the same lock:

    - a **lease row** (table ``server_lease``: owner id, host, pid, heartbeat and expiry), taken in a write
      transaction and renewed by every commit of the sequencer and by a heartbeat while idle. Another server is
      refused while the lease is live: its owner's process still runs (same host), or its expiry is ahead (another
      host). A server killed with ``kill -9`` leaves its row behind: a restart on the same host sees that the
      owner's process is gone and takes the lease at once; from another host, once it has expired
      (:data:`LEASE_SECONDS`). Every commit checks, in its own transaction, that the lease is still this server's
      (:meth:`renew`), so a server whose lease was taken over can commit nothing more.
    - PostgreSQL also: a session **advisory lock** held on a connection of its own for the server's life (it goes
      with the session, ``kill -9`` included, so the lease row is then taken over at once).
    - SQLite also: a database file with more than one **hard link** is refused. SQLite keeps its write-ahead log and
      its shared-memory index beside the *name* a database was opened by, so two names of one file are two logs
      and two lock tables that know nothing of each other (SQLite's documentation calls this corruption); a
      symbolic link is resolved to its target, so it meets the same log and the same lease.
    """

    _PG_KEY = 0x63726D6E  # "crmn"

    def __init__(self, engine: sa.Engine, ttl: float = LEASE_SECONDS) -> None:
        import secrets
        import socket

        self.engine = engine
        self.ttl = ttl
        self.owner = secrets.token_hex(16)
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self._conn: sa.Connection | None = None  # PostgreSQL: the advisory lock's session
        self._held = False
        self._stop: Any = None

    # ------------------------------------------------------------------ taking and leaving
    def acquire(self) -> None:
        """Take the lock, or raise ConfigError naming the server that holds it."""
        from critmin.errors import ConfigError

        if is_sqlite(self.engine):
            check_sqlite_file(self.engine)
        else:
            conn = self.engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._PG_KEY}).scalar()
            conn.commit()
            if not got:
                conn.close()
                holder = self.holder()
                raise ConfigError(f"another critmin server is running on the database {self.engine.url.database!r}"
                                  + (f" ({_describe(holder)})" if holder else ""))
            self._conn = conn
        try:
            with self.engine.begin() as conn:
                if is_sqlite(self.engine):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, before the lease is read
                server_lease.create(conn, checkfirst=True)  # before the first migration has run
                row = conn.execute(sa.select(server_lease).where(server_lease.c.name == "server")).mappings().first()
                now = _now_ms()
                if row is not None and is_sqlite(self.engine) and self._live(row, now):
                    raise ConfigError(f"another critmin server is running on {self._where()} ({_describe(row)})")
                values = {"owner": self.owner, "host": self.host, "pid": self.pid, "acquired_ms": now,
                          "heartbeat_ms": now, "expires_ms": now + int(self.ttl * 1000)}
                if row is None:
                    conn.execute(server_lease.insert().values(name="server", **values))
                else:
                    conn.execute(server_lease.update().where(server_lease.c.name == "server").values(**values))
        except BaseException:
            self._release_pg()
            raise
        self._held = True

    def _live(self, row: Any, now: int) -> bool:
        """Whether the lease in ``row`` still holds (on SQLite; PostgreSQL's advisory lock has decided already)."""
        if row["host"] == self.host:
            return _process_alive(int(row["pid"])) and row["expires_ms"] > now - int(self.ttl * 1000)
        return row["expires_ms"] > now

    def renew(self, conn: sa.Connection) -> None:
        """In an open write transaction of ``conn``: extend the lease, or raise :class:`LeaseLost` when it is no
        longer this server's (the transaction then rolls back: nothing more is committed)."""
        now = _now_ms()
        n = conn.execute(server_lease.update().where(server_lease.c.name == "server",
                                                     server_lease.c.owner == self.owner)
                         .values(heartbeat_ms=now, expires_ms=now + int(self.ttl * 1000))).rowcount
        if n != 1:
            raise LeaseLost(f"this server's lease on {self._where()} was taken over")

    def start_heartbeat(self, on_lost: Any = None) -> None:
        """Renew the lease every third of its life from a thread (commits renew it too); ``on_lost(exc)`` is called
        once if it is lost."""
        import threading

        stop = self._stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    with self.engine.begin() as conn:
                        self.renew(conn)
                except LeaseLost as exc:
                    if on_lost is not None:
                        on_lost(exc)
                    return
                except Exception:  # the database is unreachable for now: the next beat tries again
                    continue

        threading.Thread(target=beat, name="critmin-lease", daemon=True).start()

    def release(self) -> None:
        """Give the lease up (the row is left with an expiry in the past) and the advisory lock."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._held:
            self._held = False
            try:
                with self.engine.begin() as conn:
                    conn.execute(server_lease.update().where(server_lease.c.name == "server",
                                                             server_lease.c.owner == self.owner)
                                 .values(expires_ms=0))
            except Exception:  # the database is gone: the lease expires by itself
                pass
        self._release_pg()

    def _release_pg(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._PG_KEY})
                self._conn.commit()
            except Exception:  # the session is gone, and the lock with it
                pass
            finally:
                self._conn.close()
                self._conn = None

    def holder(self) -> dict | None:
        """The lease row as stored (who holds or last held the database), or None."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(server_lease).where(server_lease.c.name == "server")).mappings().first()
        except Exception:
            return None
        return dict(row) if row is not None else None

    def _where(self) -> str:
        return (f"the database {self.engine.url.database}" if is_sqlite(self.engine)
                else f"the database {self.engine.url.database!r}")


def _describe(row: Any) -> str:
    return f"pid {row['pid']} on host {row['host']!r}"


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host. Where that cannot be asked (Windows), True: the lease then
    waits for its expiry."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def check_sqlite_file(engine: sa.Engine) -> None:
    """Refuse, with ConfigError, a SQLite database file that has more than one hard link (see :class:`ServerLock`)."""
    from critmin.errors import ConfigError

    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # SQLite memory-maps the WAL index (<database>-shm) in every process that opens the database: a -shm it cannot
    # write is an error on the first write (or, cut short under a mapping, a SIGBUS); said here, naming the file.
    # While the server runs it keeps the -shm open (one mapping shared by all its connections), so a later change
    # of its permissions does not reach it.
    for suffix in ("", "-wal", "-shm"):
        path = database + suffix
        if os.path.lexists(path) and (not os.path.isfile(path) or not os.access(path, os.R_OK | os.W_OK)):
            what = "is not a regular file" if not os.path.isfile(path) else "is not readable and writable by this user"
            raise ConfigError(f"{path} {what}; SQLite needs to write it (fix its type or permissions, or stop the "
                              f"program that holds it)")
    try:
        st = os.stat(database)
    except FileNotFoundError:
        return
    if st.st_nlink > 1:
        raise ConfigError(f"the database file {database} has {st.st_nlink} hard links: SQLite keeps its write-ahead "
                          f"log beside the name a database is opened by, so two names of one file would be two logs; "
                          f"remove the other links (a symbolic link is fine)")
