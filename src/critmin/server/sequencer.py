"""The sequencer: commands are applied in arrival order by one thread and committed in batches behind it.

Clients' requests wait on a future; the applier drains everything queued (up to ``max_batch``) and applies each
command to the engine in memory; the rows of what it applied are written in one transaction with everything else
waiting to be written since the last commit (one fsync on SQLite, one pipelined round trip on PostgreSQL), and
only then are the futures resolved. This *group commit* is what lets a durable store acknowledge many orders per
second: the cost of a commit is shared by every order in it, and the next commands are matched (applier thread)
while the previous ones are being written and synced (writer thread; the database driver releases the GIL while
it waits for the disk or the server).

Idempotency: a state-changing request carries an ``Idempotency-Key``. Its (participant, key) with a hash of the
request and the response is written in the same transaction as the change, so a retry after a crash or a lost
response gets the original answer (flagged ``replayed``) and never applies twice; the same key with a different
request is refused (409).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from critmin.server import db
from critmin.server.engine import Batch, Command, Engine, Result, write_batch
from critmin.server.wire import ApiError, dumps, render

_STOP = object()
log = logging.getLogger(__name__)
_Key = tuple[str, str]  # (participant, Idempotency-Key)


class KeyFilter:
    """The idempotency keys that may be stored: a set of 64-bit hashes of (participant, key), each in it before
    its key can be written. "No" is certain and spares the applier a database look-up (the common case: a new
    key); "maybe" (a key seen before, or a rare hash collision) is settled by the look-up, as before.

    Loaded from the idempotency table at start: a sorted array, 8 bytes per stored key (measured: 1.8 s per
    million keys, where loading the engine already reads ~5 ledger entries per trade). Keys recorded since then
    go to a set, merged into the array every :attr:`MERGE_AT` keys in one linear pass (measured: 24 ms at
    1 million stored keys, 53 ms at 10 million: the applier's pause once every 65,536 orders). Hashes are
    Python's ``hash``, fixed for the life of the process, which is the life of the filter."""

    MERGE_AT = 65536

    def __init__(self, keys: Iterable[_Key] = ()) -> None:
        self._sorted = np.unique(np.fromiter((hash((p, k)) for p, k in keys), dtype=np.int64))
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, key: _Key) -> None:
        self._recent.add(hash(key))
        if len(self._recent) >= self.MERGE_AT:
            # Into the sorted array in one linear pass (np.insert), never a sort of the whole.
            new = np.sort(np.fromiter(self._recent, dtype=np.int64, count=len(self._recent)))
            at = self._sorted.searchsorted(new)
            if len(self._sorted):
                fresh = self._sorted[np.minimum(at, len(self._sorted) - 1)] != new
                at, new = at[fresh], new[fresh]
            self._sorted = np.insert(self._sorted, at, new)
            self._recent.clear()

    def may_hold(self, keys: list[_Key]) -> list[bool]:
        """For each key: False when it was never added (certain), True when it may have been."""
        if not keys:
            return []
        hashes = [hash(k) for k in keys]
        found = [h in self._recent for h in hashes]
        arr = self._sorted
        if len(arr):
            h = np.array(hashes, dtype=np.int64)
            at = np.minimum(arr.searchsorted(h), len(arr) - 1)
            found = [a or b for a, b in zip(found, (arr[at] == h).tolist(), strict=True)]
        return found


@dataclass(eq=False)
class _Applied:
    """Commands applied to the engine (in memory), on their way to the writer."""

    gen: int                                # engine generation they were applied on (see Sequencer._recover)
    items: list[tuple[Command, Any, Any]]   # (command, event loop or None, future)
    results: list[Result]
    batch: Batch
    keys: list[_Key]                        # idempotency keys first recorded here
    final: bool = False                     # results stand even if the batch is refused


class Sequencer:
    """Single writer with group commit, as a two-stage pipeline of two threads.

    The *applier* thread takes queued commands in arrival order (up to ``max_batch`` at a time), applies them to
    the in-memory engine and hands the rows over; the *writer* thread commits everything it has been handed since
    its last commit in one transaction (at most ``max_batch`` commands) on a connection of its own, then answers
    the clients. So the next commands are matched while the previous ones are being written and synced (SQLite's
    fsync and PostgreSQL's round trips release the GIL), and an answer always follows its commit.

    Idempotency keys applied but not yet committed are kept in memory (``_pending``) until their batch is reported
    done, so a retry that arrives meanwhile is answered from there (after the first one's commit, since commits
    are in order), never applied twice.

    If a commit fails, its commands and every later one already applied (they built on the failed state) are
    refused with 503, and the applier rebuilds the engine from the database before applying anything else, on a
    new *generation* (the writer refuses, unrun, every batch of a generation older than the rebuild).

    Parameters
    ----------
    sa_engine : sqlalchemy.Engine
    allies : iterable of str, optional
        Allied group for eligibility (default ``msp``).
    max_batch : int
        Most commands per transaction (1 = one transaction and commit per command, no group commit).
    fence : callable, optional
        Called with the writer's connection at the start of every transaction, before anything is written; raising
        refuses the batch (the server's lease check, :meth:`critmin.server.db.ServerLock.renew`).
    handoff : int
        When the writer is idle, the applier hands over what it has applied as soon as that is at least this many
        commands, instead of finishing the commands it took first (0: always whole): an idle writer is lost
        capacity. Answers still follow their commit, and commits stay in arrival order.
    """

    def __init__(self, sa_engine: sa.Engine, allies: Iterable[str] | None = None, max_batch: int = 512,
                 handoff: int = 4, fence: Callable[[sa.Connection], None] | None = None) -> None:
        self.sa_engine = sa_engine
        self.fence = fence
        self.allies = None if allies is None else frozenset(allies)
        self.max_batch = max(1, int(max_batch))
        self._key_col = sa_engine.dialect.identifier_preparer.quote("key")  # idempotency.key, quoted for raw SQL
        with sa_engine.connect() as conn:
            self.engine = Engine.load(conn, self.allies, check=True)  # refuses a database changed behind its back
            cur = conn.connection.dbapi_connection.cursor()  # driver rows: a third faster than SQLAlchemy's
            try:
                cur.execute(f"SELECT participant_id, {self._key_col} FROM idempotency")
                self._keys = KeyFilter(cur)  # the applier's only
            finally:
                cur.close()
        dbapi = getattr(sa_engine.dialect, "loaded_dbapi", None)
        # The hot paths use DBAPI cursors directly: their errors are the driver's, not SQLAlchemy's.
        self._db_errors: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError,) + (
            (dbapi.Error,) if dbapi is not None else ())
        self._queue: queue.SimpleQueue = queue.SimpleQueue()      # clients → applier
        self._applied: queue.SimpleQueue = queue.SimpleQueue()    # applier → writer
        self._done: queue.SimpleQueue = queue.SimpleQueue()       # writer thread → applier: batches answered
        self._pending: dict[_Key, tuple[_Applied, str, Result]] = {}  # applier's only
        self._gen = 0           # applier: bumped by each rebuild of the engine
        self._failed_gen = -1   # writer: batches of this generation or older are refused
        self._applier: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        # One connection each, kept across batches (a checkout costs a ping round trip on PostgreSQL).
        self._read_conn: sa.Connection | None = None    # applier: idempotency look-ups, autocommit
        self._write_conn: sa.Connection | None = None   # writer: one transaction per group
        self._writer_idle = False  # the writer thread waits for applied commands (set by it, cleared by both)
        self.handoff = max(0, int(handoff))
        self.batches = 0   # transactions committed
        self.commands = 0  # commands answered

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="critmin-writer", daemon=True)
        self._writer.start()
        self._applier = threading.Thread(target=self._apply_loop, name="critmin-sequencer", daemon=True)
        self._applier.start()

    def stop(self) -> None:
        """Answer everything queued, then stop the threads."""
        if self._applier is not None:
            self._queue.put(_STOP)  # the applier passes it on after its last batch
            self._applier.join(timeout=30)
            self._applier = None
        if self._writer is not None:
            self._writer.join(timeout=30)
            self._writer = None
        self._drop("_read_conn", invalidate=False)
        self._drop("_write_conn", invalidate=False)

    def _conn(self, attr: str) -> sa.Connection:
        conn = getattr(self, attr)
        if conn is None:
            conn = self.sa_engine.connect()
            if attr == "_read_conn":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            setattr(self, attr, conn)
        return conn

    def _drop(self, attr: str, invalidate: bool = True) -> None:
        """Close a kept connection; after an error, discard its DBAPI connection rather than pool it."""
        conn = getattr(self, attr)
        setattr(self, attr, None)
        if conn is not None:
            try:
                if invalidate:
                    conn.invalidate()
                conn.close()
            except Exception:  # pragma: no cover - it is broken anyway
                log.debug("closing a broken connection failed", exc_info=True)

    # ------------------------------------------------------------------ submission
    async def submit(self, cmd: Command) -> Result:
        """Queue a command and wait until it is committed (or refused)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((cmd, loop, fut))
        return await fut

    async def submit_many(self, cmds: list[Command]) -> list[Result]:
        """Queue several commands back to back, in order, and wait until all are committed (or refused)."""
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in cmds]
        self.enqueue([(cmd, loop, fut) for cmd, fut in zip(cmds, futs, strict=True)])
        return list(await asyncio.gather(*futs))

    def enqueue(self, items: list[tuple[Command, asyncio.AbstractEventLoop, Any]]) -> None:
        """Queue (command, loop, reply) items without waiting, in order and as one hand-over (one wake-up of the
        applier for all). After each commit, ``reply.set_result(result)`` is called on ``loop`` (``reply`` needs
        ``done()`` and ``set_result()``, like a future)."""
        if items:
            self._queue.put(items)

    def submit_sync(self, cmd: Command) -> Result:
        """Apply and commit one command from a thread without an event loop (bootstrap, tests)."""
        if self._applier is None:
            return self._process([(cmd, None, None)])[0]
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((cmd, None, fut))
        return fut.result()

    def apply_then_commit(self, cmds: list[Command], before_commit: Callable[[list[Result]], None]) -> list[Result]:
        """Before the pipeline runs: apply ``cmds`` in memory, call ``before_commit(results)``, then commit them in
        one transaction and return the results (503 each if the commit failed). If ``before_commit`` raises,
        nothing is committed, memory is rebuilt from the database, and the error propagates (bootstrap: the admin
        token's file is written before the admin is committed)."""
        assert self._applier is None, "only before start()"
        applied = self._apply([(c, None, None) for c in cmds])
        try:
            before_commit(applied.results)
        except BaseException:
            self._pending.clear()
            self._reload()
            raise
        self._commit([applied])
        self._settle_done()
        if self._failed_gen >= self._gen:
            self._recover()
        return applied.results

    def _process(self, items: list[tuple[Command, Any, Any]]) -> list[Result]:
        """Apply and commit in the calling thread (only while the pipeline is not running)."""
        applied = self._apply(items)
        self._commit([applied])
        self._settle_done()
        if self._failed_gen >= self._gen:
            self._recover()
        return applied.results

    # ------------------------------------------------------------------ applier
    def _apply_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._applied.put(_STOP)
                return
            items = list(item) if type(item) is list else [item]  # a list: several queued at once (enqueue)
            stop = False
            while len(items) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                if type(nxt) is list:
                    items.extend(nxt)
                else:
                    items.append(nxt)
            self._settle_done()
            if self._failed_gen >= self._gen:
                self._recover()
            rest = items
            while rest:
                try:
                    applied = self._apply(rest, self.handoff)
                except Exception as exc:  # a bug in a command: memory may be half-changed, so rebuild it
                    log.exception("command failed; rebuilding the engine from the database")
                    self._failed_gen = self._gen
                    err = ApiError(500, "internal_error", f"the command failed ({type(exc).__name__}); nothing was "
                                                          "committed")
                    applied = _Applied(self._gen, rest, [Result(500, err.body())] * len(rest), Batch(), [], final=True)
                self._hand_over(applied)
                rest = rest[len(applied.items):]
            if stop:
                self._applied.put(_STOP)
                return

    def _idle(self) -> bool:
        """The writer thread waits for applied commands."""
        return self._writer_idle

    def _hand_over(self, applied: _Applied) -> None:
        """Pass an applied batch on to the writer thread, to be committed."""
        self._writer_idle = False
        self._applied.put(applied)

    def _apply(self, items: list[tuple[Command, Any, Any]], handoff: int = 0) -> _Applied:
        """Apply ``items`` in order. With ``handoff``, stops after that many or more once the writer is idle, so
        that it does not wait for the rest (``applied.items`` are then the first ones, those applied)."""
        applied = _Applied(self._gen, items, [], Batch(), [])
        pending = self._pending
        keyed = [(c, k) for c, _, _ in items if c.idempotency_key
                 and (k := (c.actor.participant_id, c.idempotency_key)) not in pending]
        try:  # only keys that may be stored are looked up (a new key, the common case, never is)
            stored = self._stored_keys([c for (c, _), maybe in zip(keyed, self._keys.may_hold([k for _, k in keyed]),
                                                                   strict=True) if maybe])
        except self._db_errors as exc:
            applied.results = [_unavailable(exc)] * len(items)  # nothing applied; the writer just answers
            return applied
        batch, results = applied.batch, applied.results
        for i, (cmd, _, _) in enumerate(items):
            if handoff and i >= handoff and self._idle():
                applied.items = items[:i]
                break
            key = (cmd.actor.participant_id, cmd.idempotency_key) if cmd.idempotency_key else None
            if key is not None:
                prior = pending.get(key)
                if prior is not None:
                    # Answered after the first one's commit (this batch commits after it, or is refused with it).
                    results.append(_replay(cmd, prior[1], prior[2]))
                    continue
                stored_prior = stored.get(key)
                if stored_prior is not None:
                    results.append(_replay(cmd, *stored_prior))
                    continue
            res = self.engine.apply(cmd, batch)
            results.append(res)
            if key is not None:
                if cmd.kind == "issue_token":
                    body = {**res.body, "token": None}  # the secret is shown once: a replay answers "token": null
                    text = dumps(body)
                elif res.raw is not None:  # rendered by the engine
                    body, text = res.body, res.raw.decode("utf-8")
                else:
                    # Rendered once: the idempotency record keeps the very text the client is sent.
                    body, text = res.body, render(res.body)
                    res.raw = text.encode("utf-8")
                pending[key] = (applied, cmd.request_hash, Result(res.status, body, raw=res.raw))
                self._keys.add(key)
                applied.keys.append(key)
                batch.add(db.idempotency, {"participant_id": key[0], "key": key[1], "request_hash": cmd.request_hash,
                                           "status": res.status, "body": text})
        return applied

    def _settle_done(self) -> None:
        """Forget pending keys whose batch the writer thread has committed or refused (see _forget)."""
        while True:
            try:
                applied = self._done.get_nowait()
            except queue.Empty:
                return
            self._forget(applied)

    def _forget(self, applied: _Applied) -> None:
        """Forget the pending keys of a batch that is answered: committed (they are in the database now) or
        refused. The applier's only (``_pending`` is)."""
        for key in applied.keys:
            entry = self._pending.get(key)
            if entry is not None and entry[0] is applied:
                del self._pending[key]

    def _recover(self) -> None:
        """After a failed commit: the writer refuses every batch of the failed generation, and has written
        nothing of it since the failure, so the database holds exactly what was acknowledged; rebuild from it."""
        self._reload()
        self._pending.clear()  # their batches are refused; the keys are free again
        self._gen = self._failed_gen + 1

    # ------------------------------------------------------------------ writer
    def _write_loop(self) -> None:
        held: _Applied | None = None
        while True:
            if held is None:
                self._writer_idle = True
                first = self._applied.get()
                self._writer_idle = False
            else:
                first, held = held, None
            if first is _STOP:
                return
            group = [first]
            n = len(first.items)
            stop = False
            while n < self.max_batch:
                try:
                    nxt = self._applied.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                if nxt.gen != first.gen or n + len(nxt.items) > self.max_batch:
                    held = nxt
                    break
                group.append(nxt)
                n += len(nxt.items)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Applied]) -> None:
        """Write and commit ``group`` in one transaction on this process's connection, then answer its clients (503
        for all if it fails)."""
        if group[0].gen <= self._failed_gen:
            self._answer(group, RuntimeError("an earlier commit failed"))
            return
        if any(len(a.batch) for a in group):
            try:
                merged = group[0].batch if len(group) == 1 else _merge([a.batch for a in group])
                conn = self._conn("_write_conn")
                with conn.begin():
                    if self.fence is not None:
                        self.fence(conn)
                    write_batch(conn, merged)
            except Exception as exc:  # storage errors, and any other: the writer must go on answering
                self._drop("_write_conn")
                self._refuse(group, exc)
                return
            self.batches += 1
        self._answer(group, None)

    def _refuse(self, group: list[_Applied], exc: BaseException) -> None:
        """A commit failed: memory ran ahead of storage, so ``group`` is answered 503 and every later batch of its
        generation is refused until the applier rebuilds the engine from the database."""
        n = sum(len(a.items) for a in group)
        log.log(logging.WARNING if isinstance(exc, self._db_errors) else logging.ERROR,
                "commit failed, refusing %d command(s) and rebuilding: %s", n, exc,
                exc_info=not isinstance(exc, self._db_errors))
        self._failed_gen = max(self._failed_gen, max(a.gen for a in group))
        self._answer(group, exc)

    def _answer(self, group: list[_Applied], failure: BaseException | None) -> None:
        """Answer the commands of ``group``: their results, or 503 when ``failure`` (except a batch whose results
        stand, ``final``)."""
        by_loop: dict[Any, list[tuple[Any, Result]]] = {}
        for applied in group:
            results = applied.results if failure is None or applied.final else [_unavailable(failure)] * len(
                applied.items)
            if failure is not None:
                applied.results = results
            for (_, loop, fut), res in zip(applied.items, results, strict=True):
                if fut is None:
                    continue
                if loop is None:  # submit_sync from another thread
                    fut.set_result(res)
                else:
                    by_loop.setdefault(loop, []).append((fut, res))
            self.commands += len(applied.items)
            self._done.put(applied)  # the applier forgets their pending keys (_settle_done)
        # One wake-up of each event loop per transaction, not one per command.
        for loop, done in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, done)
            except RuntimeError:  # pragma: no cover - that loop is closed (client gone at shutdown)
                pass

    def _stored_keys(self, cmds: list[Command]) -> dict[tuple[str, str], tuple[str, Result]]:
        by_participant: dict[str, set[str]] = {}
        for c in cmds:
            if c.idempotency_key:
                by_participant.setdefault(c.actor.participant_id, set()).add(c.idempotency_key)
        if not by_participant:
            return {}
        # One index search per key. A row-value "(participant, key) IN (VALUES ...)" makes SQLite scan the whole
        # table (batch after batch), and even "participant = ? AND key IN (...) OR ..." costs ~25 µs a key there;
        # plain driver SQL, because building these as SQLAlchemy expressions costs more than the query.
        dialect = self.sa_engine.dialect
        pairs = [(pid, key) for pid, keys in sorted(by_participant.items()) for key in sorted(keys)]
        key_col = self._key_col
        cols = f"participant_id, {key_col}, request_hash, status, body"
        queries: list[tuple[str, list]] = []
        if dialect.name == "postgresql":
            queries.append((f"SELECT {cols} FROM idempotency JOIN unnest(%s::text[], %s::text[]) AS wanted(p, k) "
                            f"ON participant_id = wanted.p AND {key_col} = wanted.k",
                            [[p for p, _ in pairs], [k for _, k in pairs]]))
        else:
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            one = f"SELECT {cols} FROM idempotency WHERE participant_id = {mark} AND {key_col} = {mark}"
            for i in range(0, len(pairs), 200):  # SQLite allows 500 terms in a compound SELECT
                chunk = pairs[i:i + 200]
                queries.append((" UNION ALL ".join([one] * len(chunk)), [x for pair in chunk for x in pair]))
        rows: list = []
        try:
            cur = self._conn("_read_conn").connection.dbapi_connection.cursor()
            try:
                for sql, params in queries:
                    cur.execute(sql, params)
                    rows.extend(cur.fetchall())
            finally:
                cur.close()
        except self._db_errors:
            self._drop("_read_conn")
            raise
        out: dict[tuple[str, str], tuple[str, Result]] = {}
        for pid, key, rhash, status, body in rows:
            out[(pid, key)] = (rhash, Result(status, json.loads(body), raw=body.encode("utf-8")))
        return out

    def _reload(self) -> None:
        while True:
            try:
                with self.sa_engine.connect() as conn:
                    self.engine = Engine.load(conn, self.allies)
                return
            except self._db_errors:  # pragma: no cover - storage down: keep trying, refuse meanwhile
                time.sleep(0.5)


def _merge(batches: list[Batch]) -> Batch:
    """Rows of consecutive batches as one: inserts in order, the last update of each order and the last balance of
    each account, statements in order."""
    out = Batch()
    for b in batches:
        for name, rows in b.inserts.items():
            out.inserts.setdefault(name, []).extend(rows)
        out.order_updates.update(b.order_updates)
        out.statements.extend(b.statements)
        out.balances.update(b.balances)
    return out


def _resolve_all(done: list[tuple[asyncio.Future, Result]]) -> None:
    for fut, res in done:
        if not fut.done():
            fut.set_result(res)


def _replay(cmd: Command, request_hash: str, res: Result) -> Result:
    if request_hash != cmd.request_hash:
        err = ApiError(409, "idempotency_key_reused", f"Idempotency-Key {cmd.idempotency_key!r} was used for a "
                                                       "different request", "Idempotency-Key")
        return Result(409, err.body())
    return Result(res.status, res.body, replayed=True, raw=res.raw)


def _unavailable(exc: Exception) -> Result:
    err = ApiError(503, "storage_unavailable", f"the change was not committed, retry with the same Idempotency-Key "
                                               f"({type(exc).__name__})")
    return Result(503, err.body())
