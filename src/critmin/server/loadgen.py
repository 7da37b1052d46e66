"""A load client for the marketplace service: concurrent participants placing crossing orders over HTTP/1.1.

Used by the crash test (``tests/test_server_reliability.py``) and the intake benchmark
(``benchmarks/market_intake.py``). It is written to cost the server's machine as little CPU as possible: raw
asyncio streams, one keep-alive connection per client, request bytes rendered before they are timed, and a
minimal response parser (status line, ``content-length``, the JSON body). No HTTP library sits on the hot path.

Each client is one participant with its own token (sellers and buyers alternate). A client keeps one request in
flight at a time (closed loop), every order with a fresh ``Idempotency-Key`` that is also its ``client_order_id``.
When the connection breaks (the server was killed) the client reconnects and sends *the same bytes again*, same
key, until a deadline: the idempotency guarantee says the order is then applied exactly once, and the answer is
the first answer. 503 (not committed) and 429 (rate limited) are retried the same way.

Every request leaves a :class:`Record`: key, final status, latency from the first attempt to the final answer,
attempts, and the order id and trade ids of a 2xx answer ("acknowledged").

The order mix is seeded and realistic enough to exercise matching: a few books, sellers mostly from allied
origins (some non-market), attestations that vary, buyers with and without requirements (allied only, minimum
IRMA level, no non-market origins), prices scattered around a per-book mid so that about half the orders cross.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orjson import loads as _loads  # the answers' order and trade ids, at ~2,000 answers/s

from critmin.server.children import freeze_gc, thaw_gc
from critmin.server.front import new_event_loop  # noqa: F401  (the benchmark's and the tests' loop)

#: Books: (commodity, form, grade, mid price USD/kg), with their weights in the mix.
BOOKS: tuple[tuple[str, str, str, int], ...] = (
    ("ndpr", "oxide", "std", 95),
    ("cobalt", "hydroxide", "battery", 30),
    ("lithium", "carbonate", "battery", 14),
    ("graphite", "spherical", "anode", 6),
)
BOOK_WEIGHTS = (4, 3, 2, 1)
ALLIED_ORIGINS = ("AUS", "USA", "CAN", "JPN", "FIN", "SWE", "DEU", "KOR")
OTHER_ORIGINS = ("CHN", "COD", "IDN", "BRA")
LOCATIONS = ("Long Beach", "Rotterdam", "Yokohama", "Houston", "Busan")


@dataclass(frozen=True)
class Client:
    """One participant of the load: its id, role (``seller``/``buyer``) and API token."""

    participant_id: str
    role: str
    token: str


@dataclass(slots=True)
class Record:
    """What happened to one request."""

    client: str                 # participant id
    key: str                    # Idempotency-Key (= client_order_id)
    side: str
    quantity: str
    sent_at: float              # perf_counter of the first attempt
    done_at: float = 0.0        # perf_counter of the final answer (or of giving up)
    status: int = 0             # final HTTP status; 0 = no answer before the deadline
    attempts: int = 0
    replayed: bool = False      # the answer carried Idempotency-Replayed: true
    order_id: str | None = None
    trade_ids: tuple[int, ...] = ()
    error: str = ""
    request: bytes = b""        # the request as sent (kept when run_load(keep_requests=True))

    @property
    def acked(self) -> bool:
        return 200 <= self.status < 300

    @property
    def latency(self) -> float:
        return self.done_at - self.sent_at


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    started: float = 0.0        # perf_counter
    finished: float = 0.0
    client_cpu: float = 0.0     # process CPU seconds spent during the run (this process: the client side)
    reconnects: int = 0

    def acked(self) -> list[Record]:
        return [r for r in self.records if r.acked]


# ---------------------------------------------------------------------- HTTP/1.1 on a raw stream
class HttpError(Exception):
    """A malformed response (never expected from the service)."""


class _Http(asyncio.Protocol):
    """The client end of one connection: cuts the byte stream into responses (status line, headers with
    ``content-length``, body) and hands each to the request waiting for it."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionResetError("the server closed the connection")
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end + 4])
        lower = head.lower()
        i = lower.find(b"\r\ncontent-length:")
        if i < 0:
            waiter.set_exception(HttpError("response without content-length"))
            return
        try:
            n = int(lower[i + 17:lower.index(b"\r\n", i + 17)])
            status = int(head[9:12])
        except ValueError:
            waiter.set_exception(HttpError(f"bad response head {head[:60]!r}"))
            return
        if len(self.buf) < end + 4 + n:
            return
        body = bytes(self.buf[end + 4:end + 4 + n])
        del self.buf[:end + 4 + n]
        waiter.set_result((status, lower, body))


class Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time (a protocol object, no stream layers: the load
    client is meant to cost the machine it shares with the server as little as possible)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.proto: _Http | None = None

    async def open(self) -> None:
        _, self.proto = await asyncio.get_running_loop().create_connection(_Http, self.host, self.port)

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            with contextlib.suppress(Exception):
                self.proto.transport.abort()
        self.proto = None

    async def exchange(self, request: bytes) -> tuple[int, bytes, bytes]:
        """Send pre-rendered request bytes, return (status, lower-cased header block, body)."""
        if self.proto is None:
            await self.open()
        proto = self.proto
        assert proto is not None
        if proto.transport is None:
            self.proto = None
            raise proto.lost or ConnectionResetError("the connection is closed")
        proto.waiter = fut = asyncio.get_running_loop().create_future()
        proto.transport.write(request)
        if proto.buf:  # bytes already here (never expected: one request at a time)
            proto.data_received(b"")
        try:
            status, lower, body = await fut
        finally:
            proto.waiter = None
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, lower, body


def render(method: str, path: str, host: str, token: str | None, body: bytes | None = None,
           key: str | None = None) -> bytes:
    """Request bytes (HTTP/1.1, keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if key:
        lines.append(f"Idempotency-Key: {key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


async def request_json(host: str, port: int, method: str, path: str, token: str | None = None,
                       body: Any = None, key: str | None = None, conn: Conn | None = None) -> tuple[int, Any]:
    """One request (setup and checks; not the hot path). Opens a connection unless given one."""
    own = conn is None
    c = conn or Conn(host, port)
    try:
        raw = None if body is None else json.dumps(body).encode()
        status, _, data = await c.exchange(render(method, path, f"{host}:{port}", token, raw, key))
        return status, (json.loads(data) if data else None)
    finally:
        if own:
            c.close()


async def wait_healthy(host: str, port: int, timeout: float = 60.0) -> float:
    """Poll GET /health until it answers 200; return the seconds waited. Raises TimeoutError."""
    t0 = time.perf_counter()
    while True:
        try:
            status, _ = await request_json(host, port, "GET", "/health")
            if status == 200:
                return time.perf_counter() - t0
        except (OSError, HttpError):
            pass
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the service on {host}:{port} did not become healthy in {timeout:g} s")
        await asyncio.sleep(0.02)


async def create_clients(host: str, port: int, admin_token: str, n: int, prefix: str = "load") -> list[Client]:
    """Create ``n`` participants (alternately seller, buyer) with one token each, through the admin API.

    Idempotent: the keys are derived from the participant ids, so a repeated call returns the same tokens only
    on the first run (a replayed token issue answers ``token: null``); use a fresh ``prefix`` per database."""
    conn = Conn(host, port)
    out: list[Client] = []
    try:
        for i in range(n):
            pid = f"{prefix}-{i:03d}"
            role = "seller" if i % 2 == 0 else "buyer"
            country = ALLIED_ORIGINS[i % len(ALLIED_ORIGINS)]
            status, body = await request_json(host, port, "POST", "/v1/participants", admin_token,
                                              {"id": pid, "name": pid, "role": role, "country": country},
                                              key=f"setup-p-{pid}", conn=conn)
            if status not in (200, 201):
                raise RuntimeError(f"cannot create participant {pid}: {status} {body}")
            status, body = await request_json(host, port, "POST", f"/v1/participants/{pid}/tokens", admin_token,
                                              {"label": "load"}, key=f"setup-t-{pid}", conn=conn)
            if status != 201 or not body.get("token"):
                raise RuntimeError(f"cannot issue a token to {pid}: {status} {body}")
            out.append(Client(pid, role, body["token"]))
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------------- the order mix
def order_body(role: str, rng: random.Random, client_order_id: str) -> dict[str, Any]:
    """One realistic order for a participant of ``role``."""
    commodity, form, grade, mid = rng.choices(BOOKS, BOOK_WEIGHTS)[0]
    # Prices on a 1 % grid around the mid: sells ask mid·[0.97, 1.03], buys bid mid·[0.97, 1.04].
    body: dict[str, Any] = {"commodity": commodity, "form": form, "grade": grade,
                            "quantity": str(rng.randrange(100, 2001, 50)),
                            "delivery_start": f"2027-{rng.randint(1, 3):02d}-01",
                            "delivery_end": f"2027-{rng.randint(4, 9):02d}-28",
                            "location": rng.choice(LOCATIONS), "client_order_id": client_order_id}
    if role == "seller":
        body["side"] = "sell"
        body["limit_price"] = f"{mid * rng.randint(97, 103) / 100:.2f}"
        allied = rng.random() < 0.85
        body["origin"] = rng.choice(ALLIED_ORIGINS if allied else OTHER_ORIGINS)
        if not allied and rng.random() < 0.5:
            body["nonmarket"] = True
        att: dict[str, Any] = {"oecd_ddg": rng.random() < 0.8}
        if rng.random() < 0.7:
            att["irma_level"] = rng.choice((50, 75, 100))
        if rng.random() < 0.5:
            att["carbon_kg_per_kg"] = str(rng.randint(5, 40))
        body["attestations"] = att
    else:
        body["side"] = "buy"
        body["limit_price"] = f"{mid * rng.randint(97, 104) / 100:.2f}"
        u = rng.random()
        if u < 0.25:
            body["requirements"] = {"allied_only": True}
        elif u < 0.40:
            body["requirements"] = {"allied_only": True, "min_irma": 50}
        elif u < 0.50:
            body["requirements"] = {"exclude_nonmarket": True, "require_oecd": True}
        elif u < 0.55:
            body["requirements"] = {"allowed_origins": ["AUS", "CAN", "USA"], "max_carbon": "30"}
    return body


# ---------------------------------------------------------------------- the load
class _Requests:
    """One client's requests, rendered ahead (the same seeded sequence however far ahead it is rendered)."""

    def __init__(self, c: Client, host: str, port: int, rng: random.Random, key_prefix: str, bulk: int,
                 chunk: int) -> None:
        self.c, self.hostport, self.rng, self.key_prefix, self.bulk = c, f"{host}:{port}", rng, key_prefix, bulk
        self.chunk, self.made = max(1, chunk), 0
        self.ahead: deque[tuple[str, list[dict[str, Any]], bytes]] = deque()
        self.refill()

    #: Requests rendered at a time once the prerendered ones are used up, inside the run. A whole chunk there held up
    #: the event loop, and every client runs out at about the same moment (measured: ~11 µs per request, 1,189 per
    #: client, 32 clients: every request in flight answered ~0.4 s late).
    REFILL = 8

    def refill(self, n: int | None = None) -> None:
        n = self.chunk if n is None else n
        self.ahead.extend(self._make(i) for i in range(self.made, self.made + n))
        self.made += n

    def next(self) -> tuple[str, list[dict[str, Any]], bytes]:
        if not self.ahead:  # inside the run: give a prerender large enough to avoid it
            self.refill(self.REFILL)
        return self.ahead.popleft()

    def _make(self, i: int) -> tuple[str, list[dict[str, Any]], bytes]:
        c, rng = self.c, self.rng
        key = f"{self.key_prefix}{c.participant_id}-{i}"
        if self.bulk == 1:
            body = order_body(c.role, rng, key)
            raw = json.dumps(body, separators=(",", ":")).encode()
            return key, [body], render("POST", "/v1/orders", self.hostport, c.token, raw, key)
        bodies = [order_body(c.role, rng, f"{key}#{j}") for j in range(self.bulk)]
        raw = json.dumps({"orders": bodies}, separators=(",", ":")).encode()
        return key, bodies, render("POST", "/v1/orders/batch", self.hostport, c.token, raw, key)


async def _client_loop(c: Client, host: str, port: int, requests: _Requests, stop_at: float, count: int | None,
                       deadline: float, out: list[Record], stats: dict[str, int], keep_requests: bool) -> None:
    conn = Conn(host, port)
    n = 0
    try:
        while (count is None or n < count) and time.perf_counter() < stop_at:
            key, bodies, req = requests.next()
            n += 1
            rec = Record(c.participant_id, key, bodies[0]["side"], bodies[0]["quantity"], time.perf_counter(),
                         request=req if keep_requests else b"")
            out.append(rec)
            backoff = 0.02
            while True:
                rec.attempts += 1
                try:
                    status, head, data = await conn.exchange(req)
                except (OSError, HttpError) as exc:
                    conn.close()
                    stats["reconnects"] += 1
                    rec.error = type(exc).__name__
                    if time.perf_counter() > deadline:
                        rec.done_at = time.perf_counter()
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 1.5, 0.25)
                    continue
                if status in (503, 429) and time.perf_counter() < deadline:
                    rec.error = f"http {status}"
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 1.5, 0.25)
                    continue
                rec.done_at = time.perf_counter()
                rec.status = status
                rec.replayed = b"\r\nidempotency-replayed: true" in head
                if 200 <= status < 300:
                    doc = _loads(data)
                    if requests.bulk == 1:
                        rec.order_id = doc["order"]["id"]
                        rec.trade_ids = tuple(t["id"] for t in doc["trades"])
                    else:  # one record per order of the batch, answered together
                        out.pop()
                        for j, (b, item) in enumerate(zip(bodies, doc["results"], strict=True)):
                            one = Record(c.participant_id, f"{key}#{j}", b["side"], b["quantity"], rec.sent_at,
                                         rec.done_at, item["status"], rec.attempts, rec.replayed)
                            if item["order"] is not None:
                                one.order_id = item["order"]["id"]
                                one.trade_ids = tuple(t["id"] for t in item["trades"])
                            out.append(one)
                    rec.error = ""
                else:
                    rec.error = data[:300].decode("utf-8", "replace")
                break
    finally:
        conn.close()


async def run_load(host: str, port: int, clients: Sequence[Client], *, seed: int = 0, key_prefix: str = "k",
                   duration: float | None = None, count: int | None = None, retry_deadline: float = 60.0,
                   prerender: int = 256, keep_requests: bool = False, bulk: int = 1) -> LoadResult:
    """Run every client concurrently (closed loop, one request in flight each) and return all records.

    Parameters
    ----------
    duration : float, optional
        Seconds during which clients start new requests; a request started before the end is still finished.
    count : int, optional
        Requests per client (with or without ``duration``; at least one of the two is needed).
    retry_deadline : float
        Seconds after the end of ``duration`` (or after the start, with ``count`` only) until which a request is
        retried on connection errors, 503 and 429; after it the request is recorded with status 0.
    key_prefix : str
        Idempotency keys are ``{key_prefix}{participant}-{n}``: use a fresh prefix per run on the same database.
    prerender : int
        Requests rendered per client before the clock starts (then in chunks of this size, inside the run).
    keep_requests : bool
        Keep each request's bytes in its record (to replay it later with :func:`replay`).
    bulk : int
        Orders per request: 1 = ``POST /v1/orders``; more = ``POST /v1/orders/batch`` (one record per order, all
        with the request's latency).
    """
    if duration is None and count is None:
        raise ValueError("give duration or count")
    # Rendered before the clock starts (refilled in chunks of the same size if a run needs more).
    requests = [_Requests(c, host, port, random.Random(f"{seed}/{c.participant_id}"), key_prefix, bulk,
                          min(prerender, count or prerender)) for c in clients]
    res = LoadResult()
    stats = {"reconnects": 0}
    # The client's own collector kept out of the measured latencies: the prerendered requests are frozen out of its
    # sight and young passes made rare (a full pass over them took ~60 ms and stalled every client at once).
    gc_before = freeze_gc()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    stop_at = t0 + duration if duration is not None else float("inf")
    deadline = (stop_at if duration is not None else t0) + retry_deadline
    outs: list[list[Record]] = [[] for _ in clients]
    tasks = [asyncio.create_task(_client_loop(c, host, port, requests[i], stop_at, count, deadline, outs[i], stats,
                                              keep_requests))
             for i, c in enumerate(clients)]
    res.started = t0
    try:
        await asyncio.gather(*tasks)
    finally:
        thaw_gc(gc_before)
    res.finished = time.perf_counter()
    res.client_cpu = time.process_time() - cpu0
    res.records = [r for out in outs for r in out]
    res.reconnects = stats["reconnects"]
    return res


async def replay(host: str, port: int, rec: Record, conn: Conn | None = None) -> Record:
    """Send a recorded request again (same bytes: same token, key and body) and return what came back."""
    own = conn is None
    c = conn or Conn(host, port)
    out = Record(rec.client, rec.key, rec.side, rec.quantity, time.perf_counter(), attempts=1)
    try:
        status, head, data = await c.exchange(rec.request)
    finally:
        if own:
            c.close()
    out.done_at, out.status = time.perf_counter(), status
    out.replayed = b"\r\nidempotency-replayed: true" in head
    if 200 <= status < 300:
        doc = json.loads(data)
        out.order_id = doc["order"]["id"]
        out.trade_ids = tuple(t["id"] for t in doc["trades"])
    else:
        out.error = data[:300].decode("utf-8", "replace")
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


#: A pause: no answer at all for longer than this (ms) while requests are in flight (see :func:`pauses`).
PAUSE_MS = 25.0


def pauses(done_at: Sequence[float], longer_than_ms: float = PAUSE_MS) -> tuple[int, float]:
    """(how many gaps between consecutive answers exceed ``longer_than_ms``, the longest gap in ms) for answer
    times in seconds. With every client waiting on one request, such a gap holds all of them at once: a p99 made
    of a few pauses (a slow disk sync, say) looks like this, a slow steady state does not."""
    s = sorted(done_at)
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(s)]
    return sum(g > longer_than_ms for g in gaps), max(gaps, default=0.0)


def summarize(res: LoadResult, t_from: float | None = None, t_to: float | None = None) -> dict[str, Any]:
    """Acknowledged orders/s and latency percentiles (ms) of the requests *answered* in [t_from, t_to]
    (default the whole run), and the pauses in the answers (:func:`pauses`)."""
    lo = res.started if t_from is None else t_from
    hi = res.finished if t_to is None else t_to
    window = [r for r in res.records if r.done_at and lo <= r.done_at <= hi]
    acked = [r for r in window if r.acked]
    lat = [r.latency * 1000 for r in acked]
    span = max(hi - lo, 1e-9)
    statuses: dict[int, int] = {}
    for r in window:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    n_pauses, longest = pauses([r.done_at for r in window])
    return {"acked": len(acked), "seconds": span, "rate": len(acked) / span,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan"), "statuses": statuses,
            "trades": sum(len(r.trade_ids) for r in acked), "pauses": n_pauses, "longest_pause_ms": longest}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (for a server the caller starts next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """Stop a server subprocess as Ctrl-C does (SIGINT), killing it after ``timeout`` s; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - it hung
            proc.kill()
            proc.wait()
    return proc.returncode
