"""The sequencer: one writer thread applies commands in arrival order and commits them in batches.

Clients' requests wait on a future; the writer drains everything queued (up to ``max_batch``), applies each command
to the engine, writes all rows of the batch in one transaction (one fsync on SQLite, one round trip pipeline on
PostgreSQL) and only then resolves the futures. This *group commit* is what lets a durable store acknowledge
thousands of orders per second: the cost of a commit is shared by every order in the batch.

Idempotency: a state-changing request carries an ``Idempotency-Key``. Its (participant, key) with a hash of the
request and the response is written in the same transaction as the change, so a retry after a crash or a lost
response gets the original answer (flagged ``replayed``) and never applies twice; the same key with a different
request is refused (409).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from critmin.server import db
from critmin.server.engine import ApiError, Batch, Command, Engine, Result, dumps, write_batch

_STOP = object()


class Sequencer:
    """Single writer with group commit.

    Parameters
    ----------
    sa_engine : sqlalchemy.Engine
    allies : iterable of str, optional
        Allied group for eligibility (default ``msp``).
    max_batch : int
        Most commands per transaction.
    """

    def __init__(self, sa_engine: sa.Engine, allies: Iterable[str] | None = None, max_batch: int = 512) -> None:
        self.sa_engine = sa_engine
        self.allies = None if allies is None else frozenset(allies)
        self.max_batch = max_batch
        with sa_engine.connect() as conn:
            self.engine = Engine.load(conn, self.allies)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.commands = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="critmin-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    # ------------------------------------------------------------------ submission
    async def submit(self, cmd: Command) -> Result:
        """Queue a command and wait until it is committed (or refused)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((cmd, loop, fut))
        return await fut

    def submit_sync(self, cmd: Command) -> Result:
        """Apply and commit one command from a thread without an event loop (bootstrap, tests)."""
        return self._process([(cmd, None, None)])[0]

    # ------------------------------------------------------------------ writer
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            items = [item]
            stop = False
            while len(items) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                items.append(nxt)
            results = self._process(items)
            for (_, loop, fut), res in zip(items, results, strict=True):
                loop.call_soon_threadsafe(_resolve, fut, res)
            if stop:
                return

    def _process(self, items: list[tuple[Command, Any, Any]]) -> list[Result]:
        try:
            stored = self._stored_keys([c for c, _, _ in items])
        except sa.exc.SQLAlchemyError as exc:
            return [_unavailable(exc)] * len(items)
        batch = Batch()
        results: list[Result] = []
        seen: dict[tuple[str, str], tuple[str, Result]] = {}
        for cmd, _, _ in items:
            key = (cmd.actor.participant_id, cmd.idempotency_key) if cmd.idempotency_key else None
            prior = seen.get(key) if key else None
            if key and prior is None and key in stored:
                prior = stored[key]
            if prior is not None:
                results.append(_replay(cmd, *prior))
                continue
            res = self.engine.apply(cmd, batch)
            results.append(res)
            if key:
                body = {k: v for k, v in res.body.items() if k != "token"} if cmd.kind == "issue_token" else res.body
                seen[key] = (cmd.request_hash, Result(res.status, body))
                batch.add(db.idempotency, {"participant_id": key[0], "key": key[1], "request_hash": cmd.request_hash,
                                           "status": res.status, "body": dumps(body)})
        if len(batch):
            try:
                with self.sa_engine.begin() as conn:
                    write_batch(conn, batch)
            except sa.exc.SQLAlchemyError as exc:
                # Memory ran ahead of storage: rebuild it from what is committed and refuse the whole batch.
                self._reload()
                return [_unavailable(exc)] * len(items)
        self.batches += 1
        self.commands += len(items)
        return results

    def _stored_keys(self, cmds: list[Command]) -> dict[tuple[str, str], tuple[str, Result]]:
        keys = {(c.actor.participant_id, c.idempotency_key) for c in cmds if c.idempotency_key}
        if not keys:
            return {}
        t = db.idempotency
        out: dict[tuple[str, str], tuple[str, Result]] = {}
        with self.sa_engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(sa.tuple_(t.c.participant_id, t.c.key).in_(sorted(keys))))
            for r in rows.mappings():
                out[(r["participant_id"], r["key"])] = (r["request_hash"], Result(r["status"], json.loads(r["body"])))
        return out

    def _reload(self) -> None:
        while True:
            try:
                with self.sa_engine.connect() as conn:
                    self.engine = Engine.load(conn, self.allies)
                return
            except sa.exc.SQLAlchemyError:  # pragma: no cover - storage down: keep trying, refuse meanwhile
                import time

                time.sleep(0.5)


def _resolve(fut: asyncio.Future, res: Result) -> None:
    if not fut.done():
        fut.set_result(res)


def _replay(cmd: Command, request_hash: str, res: Result) -> Result:
    if request_hash != cmd.request_hash:
        err = ApiError(409, "idempotency_key_reused", f"Idempotency-Key {cmd.idempotency_key!r} was used for a "
                                                       "different request", "Idempotency-Key")
        return Result(409, err.body())
    return Result(res.status, res.body, replayed=True)


def _unavailable(exc: Exception) -> Result:
    err = ApiError(503, "storage_unavailable", f"the change was not committed, retry with the same Idempotency-Key "
                                               f"({type(exc).__name__})")
    return Result(503, err.body())
