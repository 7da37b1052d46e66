"""Crash test of the marketplace service: ``kill -9`` under load, restart, and check that nothing was lost or doubled.

One ``critmin serve`` subprocess per backend (SQLite with ``synchronous=FULL``, PostgreSQL) serves every trial. A
trial runs ~12 concurrent clients (``tests/loadkit.py``: one participant and token each, crossing orders
over several books, each order with a fresh ``Idempotency-Key`` = ``client_order_id``) for a short burst, sends
SIGKILL to the server at a random moment of it (seeded), restarts the server on the same database and lets the
clients retry whatever was in flight, with the same key, until answered. Every fifth trial kills the server a
second time while those retries are being answered. Then it checks, against the API and the database:

- every request was acknowledged in the end, and the orders of the load participants in the database are exactly
  the acknowledged ones: one order per (participant, key), with the acknowledged id, side and quantity;
- every acknowledged trade is there once, between the orders it named;
- replaying acknowledged requests (all that were retried, and a sample) answers ``Idempotency-Replayed`` with the
  same order and trades;
- for every order, the fills of its trades sum to quantity − remaining (never more than the quantity), and the
  status agrees; order seqs, trade ids and postings are gap-free;
- one idempotency record per order, one ``order.place`` audit record per order;
- the trial balance is zero and the audit chain verifies (``GET /v1/audit/head?verify=true``).

At the end the whole order and trade lists are read through ``GET /v1/orders`` and ``GET /v1/trades`` and checked
once more. ``CRITMIN_CRASH_TRIALS`` sets the number of trials per backend (default 20).

The other tests are quick and in-process: the ``POST /v1/orders`` fast lane
(:class:`critmin.server.intake.OrderIntake`) answers exactly as the FastAPI route does, for valid requests and
each kind of refusal, and applies the rate limit; a failed commit in the sequencer's pipeline refuses what was
applied on top of it, rebuilds the engine, and retries then succeed once each; the engine's spliced audit encoding
is exactly the canonical record hash.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import loadkit as L
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from serverkit import BACKENDS, BUY, SELL, database_url, open_market

TRIALS = int(os.environ.get("CRITMIN_CRASH_TRIALS", "20"))
CLIENTS = 12
HOST = "127.0.0.1"
SEED = 20260415


class Server:
    """``critmin serve`` in a subprocess (``python -m critmin.cli.main``), killed with SIGKILL and restarted."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url, self.data_dir, self.port = url, data_dir, L.free_port(HOST)
        self.proc: subprocess.Popen | None = None
        self.log = open(data_dir / "serve.log", "ab")  # closed in close()
        self.startups: list[float] = []
        self.kills = 0

    async def start(self) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "critmin.cli.main", "serve", "--db", self.url, "--host", HOST, "--port",
             str(self.port), "--data-dir", str(self.data_dir), "--rate-limit", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            await L.wait_healthy(HOST, self.port, timeout=60)
        except TimeoutError:
            raise AssertionError(f"the server did not start: {self.tail()}") from None
        self.startups.append(time.perf_counter() - t0)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"the server died on its own: {self.tail()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def close(self) -> None:
        if self.proc is not None:
            L.stop_server(self.proc, timeout=15)
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        return (self.data_dir / "serve.log").read_bytes()[-2000:].decode("utf-8", "replace")


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    return database_url(request.param, tmp_path)


def _engine(url: str) -> sa.Engine:
    from critmin.server.db import make_engine

    return make_engine(url)


async def _pages(server: Server, token: str, path: str, key: str, after: int | None = None) -> list[dict]:
    """Every item of a paged listing (``after`` cursor, pages of 500)."""
    items: list[dict] = []
    async with httpx.AsyncClient(base_url=L.base(HOST, server.port), timeout=60) as conn:
        while True:
            q = f"{path}?limit=500" + (f"&after={after}" if after is not None else "")
            status, page = await L.request_json(HOST, server.port, "GET", q, token, client=conn)
            assert status == 200, page
            items += page["items"]
            if page["next_after"] is None:
                return items
            after = page["next_after"]


def _check_database(engine: sa.Engine, acked: dict[tuple[str, str], L.Record], load_ids: set[str]) -> int:
    """Exactly-once and consistency checks straight on the tables; returns the number of orders."""
    with engine.connect() as c:
        orders = c.execute(sa.text("SELECT id, seq, participant_id, client_order_id, side, quantity, remaining, "
                                   "status FROM orders")).all()
        trades = c.execute(sa.text("SELECT id, buy_order_id, sell_order_id, quantity, posting_seq FROM trades")).all()
        idem = c.execute(sa.text("SELECT participant_id, status FROM idempotency")).all()
        places = c.execute(sa.text("SELECT count(*) FROM audit_log WHERE kind = 'order.place'")).scalar_one()
        postings = [r[0] for r in c.execute(sa.text("SELECT seq FROM postings ORDER BY seq"))]
    # gap-free numbering: a lost commit that was acknowledged, or a doubled one, would show here
    assert sorted(o.seq for o in orders) == list(range(len(orders)))
    assert sorted(t.id for t in trades) == list(range(len(trades)))
    assert postings == list(range(len(postings)))
    # one order per (participant, key), and exactly the acknowledged ones
    mine = [o for o in orders if o.participant_id in load_ids]
    per_key = Counter((o.participant_id, o.client_order_id) for o in mine)
    doubled = [k for k, n in per_key.items() if n > 1]
    assert not doubled, f"orders placed twice: {doubled[:5]}"
    assert set(per_key) == set(acked), (f"in the database, not acknowledged: {sorted(set(per_key) - set(acked))[:5]}; "
                                        f"acknowledged, not in the database: {sorted(set(acked) - set(per_key))[:5]}")
    for o in mine:
        rec = acked[(o.participant_id, o.client_order_id)]
        assert (o.id, o.side, Decimal(o.quantity)) == (rec.order_id, rec.side, Decimal(rec.quantity)), (o, rec)
    # fills: per order, the trades sum to quantity - remaining (no duplicate fill), never beyond the quantity
    filled: Counter = Counter()
    ids = {o.id for o in orders}
    for t in trades:
        assert t.buy_order_id in ids and t.sell_order_id in ids, t
        filled[t.buy_order_id] += Decimal(t.quantity)
        filled[t.sell_order_id] += Decimal(t.quantity)
    for o in orders:
        qty, rem = Decimal(o.quantity), Decimal(o.remaining)
        assert filled[o.id] == qty - rem and 0 <= rem <= qty, (o, filled[o.id])
        assert o.status == ("filled" if rem == 0 else "open"), o
    # acknowledged trades are there, between the orders the answer named
    by_id = {t.id: t for t in trades}
    for rec in acked.values():
        for tid in rec.trade_ids:
            t = by_id.get(tid)
            assert t is not None and rec.order_id in (t.buy_order_id, t.sell_order_id), (rec, t)
    # one idempotency record and one audit record per order (the load has no refusals)
    assert sum(1 for p, _ in idem if p in load_ids) == len(mine)
    assert all(status == 201 for p, status in idem if p in load_ids)
    assert places == len(orders)
    # and every row agrees with what the audit log implies (critmin audit verify --db)
    from critmin.server.db import read_snapshot
    from critmin.server.integrity import verify_database

    with read_snapshot(engine) as c:
        report = verify_database(c)
    assert report.ok, [report.chain_error] + [f.text() for f in report.findings[:10]]
    return len(orders)


async def _replays(server: Server, records: list[L.Record], rng: random.Random) -> int:
    sample = [r for r in records if r.attempts > 1]
    sample += rng.sample(records, min(20, len(records)))
    async with httpx.AsyncClient(base_url=L.base(HOST, server.port), timeout=60) as conn:
        for rec in sample:
            again = await L.replay(HOST, server.port, rec, conn)
            assert again.status == 201 and again.replayed, (rec, again)
            assert (again.order_id, again.trade_ids) == (rec.order_id, rec.trade_ids), (rec, again)
    return len(sample)


async def _crash_trials(url: str, data_dir: Path) -> dict:
    rng = random.Random(SEED)
    server = Server(url, data_dir)
    engine = _engine(url)
    stats = Counter()
    try:
        await server.start()
        admin = (data_dir / "admin.token").read_text().strip()
        clients = await L.create_clients(HOST, server.port, admin, CLIENTS, prefix="crash")
        load_ids = {c.participant_id for c in clients}
        acked: dict[tuple[str, str], L.Record] = {}
        last_seq, last_trade = None, None
        for trial in range(TRIALS):
            burst = rng.uniform(0.4, 1.0)
            kill_at = rng.uniform(0.05, burst)
            again = trial % 5 == 4  # kill once more while the retries are being answered
            load = asyncio.create_task(L.run_load(HOST, server.port, clients, seed=trial, key_prefix=f"t{trial}-",
                                                  duration=burst, retry_deadline=90))
            await asyncio.sleep(kill_at)
            server.kill()
            await server.start()
            if again:
                await asyncio.sleep(rng.uniform(0.01, 0.3))
                server.kill()
                await server.start()
            res = await load
            records = res.records
            stats["requests"] += len(records)
            stats["retried"] += sum(1 for r in records if r.attempts > 1)
            stats["replayed"] += sum(1 for r in records if r.replayed)
            lost = [r for r in records if not r.acked]
            assert not lost, f"trial {trial}: {len(lost)} request(s) never acknowledged, e.g. {lost[0]}"
            for r in records:
                assert (r.client, r.key) not in acked
                acked[(r.client, r.key)] = r
            # the database: exactly once, fills, numbering, idempotency and audit records
            stats["orders"] = _check_database(engine, acked, load_ids)
            # the API: new orders and trades, replays, trial balance, audit chain
            new_orders = await _pages(server, admin, "/v1/orders", "seq", last_seq)
            new_trades = await _pages(server, admin, "/v1/trades", "id", last_trade)
            ids = Counter(o["id"] for o in new_orders)
            assert all(n == 1 for n in ids.values())
            assert {r.order_id for r in records} <= set(ids), f"trial {trial}: acknowledged orders missing"
            assert {t for r in records for t in r.trade_ids} <= {t["id"] for t in new_trades} | (
                set(range(last_trade + 1)) if last_trade is not None else set())
            if new_orders:
                last_seq = new_orders[-1]["seq"]
            if new_trades:
                last_trade = new_trades[-1]["id"]
            stats["replay_checks"] += await _replays(server, records, rng)
            status, tb = await L.request_json(HOST, server.port, "GET", "/v1/ledger/trial-balance", admin)
            assert status == 200 and tb["balanced"] and tb["accounts_agree"], tb
            status, head = await L.request_json(HOST, server.port, "GET", "/v1/audit/head?verify=true", admin)
            assert status == 200 and head["valid"], head
            stats["trials"] += 1
        # finally the whole lists, through the API
        every = await _pages(server, admin, "/v1/orders", "seq")
        assert len(every) == len({o["id"] for o in every}) == stats["orders"]
        mine = Counter((o["participant_id"], o["client_order_id"]) for o in every if o["participant_id"] in load_ids)
        assert set(mine) == set(acked) and set(mine.values()) == {1}
        by_id = {o["id"]: o for o in every}
        assert all(by_id[r.order_id]["client_order_id"] == r.key for r in acked.values())
        trades = await _pages(server, admin, "/v1/trades", "id")
        assert [t["id"] for t in trades] == list(range(len(trades)))
        fills: Counter = Counter()
        for t in trades:
            fills[t["buy_order_id"]] += Decimal(t["quantity"])
            fills[t["sell_order_id"]] += Decimal(t["quantity"])
        for o in every:
            assert fills[o["id"]] == Decimal(o["quantity"]) - Decimal(o["remaining"]) <= Decimal(o["quantity"])
        stats["trades"] = len(trades)
    finally:
        server.close()
        engine.dispose()
    stats["kills"] = server.kills
    stats["startup_median_s"] = sorted(server.startups)[len(server.startups) // 2]
    stats["startup_max_s"] = max(server.startups)
    return dict(stats)


def test_kill9_under_load_loses_and_doubles_nothing(url, tmp_path):
    t0 = time.perf_counter()
    stats = asyncio.run(_crash_trials(url, tmp_path))
    assert stats["trials"] == TRIALS and stats["kills"] >= TRIALS
    assert stats["retried"] > 0  # the kills did hit requests in flight
    print(f"\n{url.split(':')[0]}: {stats} in {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------------- the fast lane answers as the route does
def _exchange(m, who: str | None, body, key: str | None, **headers) -> tuple[int, dict, dict]:
    h = {"Content-Type": "application/json"}
    if who is not None:
        h["Authorization"] = f"Bearer {m.tokens[who]}"
    if key is not None:
        h["Idempotency-Key"] = key
    h.update(headers)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = m.client.post("/v1/orders", content=raw, headers=h)
    keep = {k: v for k, v in r.headers.items() if k in ("idempotency-replayed", "etag", "retry-after",
                                                          "www-authenticate", "content-type")}
    return r.status_code, r.json(), keep


def _scenario(m) -> list:
    calls = [
        ("lynas", SELL, "s1", {}), ("toyota", BUY, "b1", {}), ("toyota", BUY, "b1", {}),    # placed, crossed, replay
        ("toyota", {**BUY, "quantity": "7"}, "b1", {}),                                      # key reused: 409
        ("toyota", {**BUY, "quantity": "-1"}, "b2", {}),                                     # invalid: 422
        ("toyota", {**BUY, "colour": "red"}, "b3", {}),                                      # unknown field: 422
        ("toyota", b"{not json", "b4", {}),                                                  # bad JSON: 422
        ("toyota", BUY, None, {}),                                                           # no key: 422
        ("toyota", BUY, "bad key with spaces", {}),                                          # bad key: 422
        (None, BUY, "b5", {}),                                                               # no token: 401
        ("toyota", BUY, "b6", {"Authorization": "Bearer nope"}),                             # unknown token: 401
        ("gao", BUY, "b7", {}),                                                              # regulator: 403
        ("toyota", SELL, "b8", {}),                                                          # buyer selling: 403
        ("toyota", BUY, "b9", {"Content-Type": "text/plain"}),                               # not JSON: 422
        ("mp", {**SELL, "origin": "CHN", "nonmarket": True}, "s2", {}),
        ("dla", {**BUY, "requirements": {"allied_only": True}}, "b10", {}),
    ]
    return [_exchange(m, who, body, key, **extra) for who, body, key, extra in calls]


def test_order_fast_lane_answers_as_the_route_does(tmp_path, monkeypatch):
    from critmin.server import intake

    fast = tmp_path / "fast"
    fast.mkdir()
    with open_market(database_url("sqlite", fast), fast) as m:
        with_lane = _scenario(m)
        statuses = [s for s, _, _ in with_lane]
        assert statuses[:4] == [201, 201, 201, 409] and with_lane[2][2].get("idempotency-replayed") == "true"

    async def passthrough(self, scope, receive, send):
        await self.app(scope, receive, send)

    monkeypatch.setattr(intake.OrderIntake, "__call__", passthrough)
    slow = tmp_path / "slow"
    slow.mkdir()
    with open_market(database_url("sqlite", slow), slow) as m:
        without = _scenario(m)
    assert with_lane == without


def test_rate_limited_orders_get_429_through_the_fast_lane(tmp_path):
    cast = {"lynas": ("seller", "AUS")}  # the admin's two set-up requests fit its burst
    with open_market(database_url("sqlite", tmp_path), tmp_path, cast, rate=1, burst=2) as m:
        got = [m.post("lynas", "/v1/orders", SELL).status_code for _ in range(4)]
    assert got[:2] == [201, 201] and 429 in got[2:]


# ---------------------------------------------------------------------- the WAL stays checkpointed
def test_the_sqlite_wal_stays_checkpointed(tmp_path):
    """SQLite checkpoints the WAL into the database file every ~1,000 pages (its automatic checkpoint, run by the
    writer's commits), so the WAL is reused from its start and does not grow with the orders."""
    wal = tmp_path / "market.sqlite3-wal"
    sizes = []
    with open_market(database_url("sqlite", tmp_path), tmp_path, {"lynas": ("seller", "AUS")}, rate=0) as m:
        for i in range(40):
            asks = [{**SELL, "limit_price": str(95 + j % 7), "quantity": str(100 + i)} for j in range(100)]
            r = m.post("lynas", "/v1/orders/batch", {"orders": asks})
            assert r.status_code == 200 and all(x["status"] == 201 for x in r.json()["results"]), r.text[:300]
            sizes.append(wal.stat().st_size)
        assert len(m.get("lynas", "/v1/orders?limit=500").json()["items"]) == 500
    # ~12 MB went through the WAL (4,000 orders); the file holds one checkpoint interval (1,000 pages) and a
    # transaction at most, because it is reused from its start after each checkpoint
    assert max(sizes) < 6 * 1024 * 1024, sizes
    assert sizes[-1] == max(sizes[20:]) == max(sizes), sizes  # reached its size early, then stopped growing


# ---------------------------------------------------------------------- a failed commit, in the pipeline
def test_a_failed_commit_refuses_what_was_built_on_it_then_recovers(tmp_path, monkeypatch):
    """The writer fails one commit while the applier has already applied later commands on top of it: those are
    refused too (503), the engine is rebuilt from the database, and retries with the same keys then succeed,
    each order once."""
    from critmin.market.audit import verify
    from critmin.market.model import Role
    from critmin.server import sequencer
    from critmin.server.db import audit_records, make_engine
    from critmin.server.engine import Actor, Command, Engine
    from critmin.server.migrate import upgrade
    from critmin.server.wire import request_hash

    engine = make_engine(f"sqlite:///{tmp_path / 'market.sqlite3'}")
    upgrade(engine)
    seq = sequencer.Sequencer(engine)
    system = Actor("system", Role.ADMIN, "USA", "bootstrap", frozenset({"admin", "read", "audit"}))
    for pid, role in (("s", "seller"), ("b", "buyer")):
        assert seq.submit_sync(Command("create_participant", system, {"id": pid, "name": pid, "role": role,
                                                                      "country": "AUS"})).status == 201
    seller = Actor("s", Role.SELLER, "AUS", "ts", frozenset({"read", "trade"}))
    buyer = Actor("b", Role.BUYER, "AUS", "tb", frozenset({"read", "trade"}))

    def order(who: Actor, key: str, body: dict) -> Command:
        data = {**body, "client_order_id": key, "nonmarket": False, "attestations": body.get("attestations") or {},
                "requirements": body.get("requirements") or {}}
        return Command("place_order", who, data, key, request_hash("POST", "/v1/orders", json.dumps(data).encode()))

    cmds = [order(seller, "s1", SELL)] + [order(buyer, f"b{i}", {**BUY, "quantity": "100"}) for i in range(6)]
    cmds.append(cmds[2])  # the same request twice in flight: answered once, the same way
    real = sequencer.write_batch
    calls = {"n": 0}

    def flaky(conn, batch):
        calls["n"] += 1
        time.sleep(0.05)  # the applier runs ahead meanwhile
        if calls["n"] == 1:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        real(conn, batch)

    monkeypatch.setattr(sequencer, "write_batch", flaky)
    seq.start()

    async def burst():
        first = asyncio.ensure_future(seq.submit(cmds[0]))
        await asyncio.sleep(0.01)  # the writer is in the failing commit
        rest = [asyncio.ensure_future(seq.submit(c)) for c in cmds[1:]]
        return [await first] + [await r for r in rest]

    try:
        got = asyncio.run(burst())
        assert got[0].status == 503 and got[0].body["error"]["code"] == "storage_unavailable"
        assert {r.status for r in got} <= {201, 503} and 503 in {r.status for r in got[1:]}
        assert got[-1].status == got[2].status
        again = asyncio.run(_submit_all(seq, cmds))
        assert all(r.status == 201 for r in again)
        assert again[-1].replayed and again[-1].body == again[2].body
        for first_try, retry in zip(got, again, strict=True):
            if first_try.status == 201:  # acknowledged the first time: the retry replays it
                assert retry.replayed and retry.body == first_try.body
    finally:
        seq.stop()
    with engine.connect() as c:
        seqs = [r[0] for r in c.execute(sa.text("SELECT seq FROM orders ORDER BY seq"))]
        keys = [r[0] for r in c.execute(sa.text("SELECT client_order_id FROM orders"))]
        audit = list(audit_records(c))
        fresh = Engine.load(c)
    assert seqs == list(range(7)) and sorted(keys) == sorted({c.idempotency_key for c in cmds})
    assert verify(audit) == (True, None, "ok")
    # memory was rebuilt: it matches what is stored
    assert (fresh.next_order_seq, fresh.next_trade_id, fresh.audit_seq, fresh.audit_head) == (
        seq.engine.next_order_seq, seq.engine.next_trade_id, seq.engine.audit_seq, seq.engine.audit_head)
    assert {k: (v.remaining, v.version) for k, v in fresh.open_orders.items()} == {
        k: (v.remaining, v.version) for k, v in seq.engine.open_orders.items()}
    engine.dispose()


def test_a_commit_the_database_refuses_refuses_what_was_built_on_it(tmp_path):
    """Through the writer thread: a batch the database refuses (a trigger here) is rolled back, it and every
    batch of its generation handed over after it are refused (503) unrun, the engine is rebuilt from the database,
    and the same commands sent again are then committed, each once."""
    import concurrent.futures

    from critmin.market.audit import verify
    from critmin.market.model import Role
    from critmin.server.db import audit_records, make_engine
    from critmin.server.engine import Actor, Command, Engine
    from critmin.server.migrate import upgrade
    from critmin.server.sequencer import Sequencer

    url = f"sqlite:///{tmp_path / 'market.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TRIGGER refuse_boom BEFORE INSERT ON participants WHEN NEW.id = 'boom' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    system = Actor("system", Role.ADMIN, "USA", "bootstrap", frozenset({"admin", "read", "audit"}))

    def create(pid: str) -> Command:
        return Command("create_participant", system, {"id": pid, "name": pid, "role": "buyer", "country": "JPN"},
                       f"key-{pid}", f"hash-{pid}")

    def run(seq: Sequencer, pids: list[str]) -> list[tuple[int, bool]]:
        futs = [concurrent.futures.Future() for _ in pids]
        seq._queue.put([(create(pid), None, fut) for pid, fut in zip(pids, futs, strict=True)])  # one hand-over
        return [(r.status, r.replayed) for r in (f.result(timeout=60) for f in futs)]

    # handoff=2: the 13 commands are applied together but sent in several batches, the first two alone
    seq = Sequencer(engine, handoff=2)
    seq.start()
    try:
        first = run(seq, ["a0", "boom"] + [f"a{i}" for i in range(1, 12)])
        assert first == [(503, False)] * 13, first
        second = run(seq, [f"a{i}" for i in range(12)])
        assert second == [(201, False)] * 12, second  # applied now, not replays of anything stored before
        assert seq._gen == 1  # one rebuild
    finally:
        seq.stop()
    with engine.connect() as c:
        ids = sorted(r[0] for r in c.execute(sa.text("SELECT id FROM participants")))
        audit = list(audit_records(c))
        fresh = Engine.load(c)
    assert ids == sorted(f"a{i}" for i in range(12)), ids
    assert verify(audit) == (True, None, "ok") and len(audit) == 12
    assert (fresh.audit_seq, fresh.audit_head) == (seq.engine.audit_seq, seq.engine.audit_head)
    engine.dispose()


async def _submit_all(seq, cmds):
    return [await seq.submit(c) for c in cmds]


def test_fast_audit_encoding_is_the_canonical_record_hash():
    """The engine splices canonical JSON pieces instead of calling record_hash(); the chain must be the same."""
    from critmin.market.audit import canonical, record_hash, verify
    from critmin.market.model import Role
    from critmin.server.engine import Actor, Batch, Command, Engine

    eng = Engine(["AUS", "USA"])
    batch = Batch()
    system = Actor("system", Role.ADMIN, "USA", "bootstrap", frozenset({"admin"}))
    for pid, name in (("sg", 'Société "Générale" \\ 株式会社'), ("s", "S")):
        assert eng.apply(Command("create_participant", system, {"id": pid, "name": name, "role": "seller",
                                                                "country": "AUS"}), batch).status == 201
    seller = Actor("s", Role.SELLER, "AUS", "t", frozenset({"trade"}))
    res = eng.apply(Command("place_order", seller, {**SELL, "location": "Kōbe ✓", "client_order_id": "é",
                                                    "requirements": {}}), batch)
    assert res.status == 201 and json.loads(res.raw) == res.body
    rows = [{**r, "payload": json.loads(r["payload"])} for r in batch.inserts["audit_log"]]
    assert verify(rows) == (True, None, "ok")
    for r in rows:
        assert canonical(r["payload"]).decode() == next(x["payload"] for x in batch.inserts["audit_log"]
                                                         if x["seq"] == r["seq"])
        assert r["hash"] == record_hash(r["seq"], r["kind"], r["payload"], r["prev_hash"])


def test_only_keys_that_may_be_stored_are_looked_up(tmp_path, monkeypatch):
    """The applier asks the database only about idempotency keys its key filter may hold: a new key is never looked
    up; a key stored before a restart is (the filter is loaded from the database), and is replayed."""
    from critmin.market.model import Role
    from critmin.server import sequencer
    from critmin.server.db import make_engine
    from critmin.server.engine import Actor, Command
    from critmin.server.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'market.sqlite3'}")
    upgrade(engine)
    looked_up: list[list[str]] = []
    real = sequencer.Sequencer._stored_keys

    def spy(self, cmds):
        looked_up.append([c.idempotency_key for c in cmds])
        return real(self, cmds)

    monkeypatch.setattr(sequencer.Sequencer, "_stored_keys", spy)
    system = Actor("system", Role.ADMIN, "USA", "bootstrap", frozenset({"admin", "read", "audit"}))

    def create(pid: str, key: str) -> Command:
        return Command("create_participant", system, {"id": pid, "name": pid, "role": "buyer", "country": "JPN"},
                       key, f"hash-{pid}")

    seq = sequencer.Sequencer(engine)
    first = [seq.submit_sync(create(f"p{i}", f"k{i}")) for i in range(3)]
    assert [r.status for r in first] == [201] * 3
    assert looked_up == [[], [], []]
    assert seq.submit_sync(create("p0", "k0")).replayed  # recorded since start: known without the database
    assert looked_up[-1] == ["k0"]
    seq.stop()
    looked_up.clear()
    again = sequencer.Sequencer(engine)  # a restart: the filter comes from the stored keys
    assert len(again._keys) == 3
    replay = again.submit_sync(create("p1", "k1"))
    assert replay.replayed and replay.body == first[1].body
    assert again.submit_sync(create("p9", "k9")).status == 201
    assert looked_up == [["k1"], []]
    again.stop()
    engine.dispose()


@settings(max_examples=60, deadline=None)
@given(loaded=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=40),
       added=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=40))
def test_the_key_filter_never_forgets_a_key(loaded, added):
    """Every key loaded or added (through merges of the recent set into the sorted array, forced here every 4 keys)
    may be held; a key never seen is not (with 64-bit hashes a collision is not expected in these few)."""
    from critmin.server.sequencer import KeyFilter

    f = KeyFilter(loaded)
    f.MERGE_AT = 4
    for i, k in enumerate(added):
        f.add(k)
        assert all(f.may_hold(loaded + added[:i + 1]))
    unseen = [k for k in {("\x00unseen", str(i)) for i in range(20)} if k not in set(loaded) | set(added)]
    assert f.may_hold(unseen) == [False] * len(unseen)
    assert len(f) >= len(set(loaded) | set(added))


def test_an_idle_writer_is_handed_what_is_applied_so_far(tmp_path):
    """With ``handoff`` n, the applier stops after n commands (or more) once the writer waits for work and hands those
    over; the rest follow in later hand-overs, in order. Driven here step by step, then through the threads."""
    import concurrent.futures

    from critmin.market.model import Role
    from critmin.server.db import make_engine
    from critmin.server.engine import Actor, Command
    from critmin.server.migrate import upgrade
    from critmin.server.sequencer import Sequencer

    engine = make_engine(f"sqlite:///{tmp_path / 'market.sqlite3'}")
    upgrade(engine)
    system = Actor("system", Role.ADMIN, "USA", "bootstrap", frozenset({"admin", "read", "audit"}))

    def items(prefix: str, n: int) -> list:
        return [(Command("create_participant", system, {"id": f"{prefix}{i}", "name": f"{prefix}{i}", "role": "buyer",
                                                        "country": "JPN"}, f"key-{prefix}{i}", f"hash-{prefix}{i}"),
                 None, None) for i in range(n)]

    seq = Sequencer(engine, handoff=3)
    todo = items("a", 8)
    seq._writer_idle = False  # a busy writer: everything is applied in one go
    assert [len(seq._apply(todo[:4], seq.handoff).items)] == [4]
    seq._writer_idle = True
    sizes, rest = [], todo[4:] + items("b", 5)
    while rest:
        applied = seq._apply(rest, seq.handoff)
        assert len(applied.results) == len(applied.items) == len(applied.keys) == len(applied.batch.inserts["participants"])
        assert [r.status for r in applied.results] == [201] * len(applied.items)
        sizes.append(len(applied.items))
        rest = rest[len(applied.items):]
    assert sizes == [3, 3, 3]
    assert seq.engine.participants.keys() >= {f"a{i}" for i in range(8)} | {f"b{i}" for i in range(5)}

    # Through the running pipeline: every command answered, committed once, in order.
    seq = Sequencer(engine, handoff=1)
    seq.start()
    futs = [concurrent.futures.Future() for _ in range(60)]
    seq._queue.put([(cmd, None, fut) for (cmd, _, _), fut in zip(items("c", 60), futs, strict=True)])
    assert [f.result(timeout=30).status for f in futs] == [201] * 60
    seq.stop()
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM participants WHERE id LIKE 'c%' ORDER BY created_seq"))]
    assert ids == [f"c{i}" for i in range(60)]
    engine.dispose()
