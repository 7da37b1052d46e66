"""A load client for the marketplace service tests (httpx): concurrent participants placing crossing orders.

Used by the crash test (``tests/test_server_reliability.py``). Each client is one participant with its own token
(sellers and buyers alternate) and its own keep-alive connection, one request in flight at a time (closed loop),
every order with a fresh ``Idempotency-Key`` that is also its ``client_order_id``. When the connection breaks (the
server was killed) the client sends *the same request again*, same key, until a deadline: the idempotency
guarantee says the order is then applied exactly once, and the answer is the first answer. 503 (not committed)
and 429 (rate limited) are retried the same way. Every request leaves a :class:`Record`.

The order mix is seeded: a few books, sellers mostly from allied origins (some non-market), attestations that
vary, buyers with and without requirements, prices scattered around a per-book mid so that about half cross.
(The benchmark's load generator is ``benchmarks/intake_load.py``.)
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

BOOKS = (("ndpr", "oxide", "std", 95), ("cobalt", "hydroxide", "battery", 30), ("lithium", "carbonate", "battery", 14))
ALLIED_ORIGINS = ("AUS", "USA", "CAN", "JPN", "FIN", "SWE", "DEU", "KOR")
OTHER_ORIGINS = ("CHN", "COD", "IDN", "BRA")


@dataclass(frozen=True)
class Client:
    participant_id: str
    role: str
    token: str


@dataclass
class Record:
    """What happened to one request."""

    client: str
    key: str
    side: str
    quantity: str
    sent_at: float
    done_at: float = 0.0
    status: int = 0             # final HTTP status; 0 = no answer before the deadline
    attempts: int = 0
    replayed: bool = False
    order_id: str | None = None
    trade_ids: tuple[int, ...] = ()
    error: str = ""
    request: tuple[str, dict[str, str], bytes] | None = None  # (path, headers, body) as sent

    @property
    def acked(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


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


def base(host: str, port: int) -> str:
    return f"http://{host}:{port}"


async def request_json(host: str, port: int, method: str, path: str, token: str | None = None, body: Any = None,
                       key: str | None = None, client: httpx.AsyncClient | None = None) -> tuple[int, Any]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    own = client is None
    c = client or httpx.AsyncClient(base_url=base(host, port), timeout=60)
    try:
        r = await c.request(method, path, headers=headers, json=body)
        return r.status_code, (r.json() if r.content else None)
    finally:
        if own:
            await c.aclose()


async def wait_healthy(host: str, port: int, timeout: float = 60.0) -> float:
    """Poll GET /health until it answers 200; return the seconds waited. Raises TimeoutError."""
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base(host, port), timeout=2) as c:
        while True:
            try:
                if (await c.get("/health")).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"the service on {host}:{port} did not become healthy in {timeout:g} s")
            await asyncio.sleep(0.02)


async def create_clients(host: str, port: int, admin_token: str, n: int, prefix: str = "load") -> list[Client]:
    """Create ``n`` participants (alternately seller, buyer) with one token each, through the admin API."""
    out = []
    async with httpx.AsyncClient(base_url=base(host, port), timeout=60) as c:
        for i in range(n):
            pid = f"{prefix}-{i:03d}"
            role = "seller" if i % 2 == 0 else "buyer"
            status, body = await request_json(host, port, "POST", "/v1/participants", admin_token,
                                              {"id": pid, "name": pid, "role": role,
                                               "country": ALLIED_ORIGINS[i % len(ALLIED_ORIGINS)]},
                                              key=f"setup-p-{pid}", client=c)
            assert status in (200, 201), (status, body)
            status, body = await request_json(host, port, "POST", f"/v1/participants/{pid}/tokens", admin_token,
                                              {"label": "load"}, key=f"setup-t-{pid}", client=c)
            assert status == 201 and body.get("token"), (status, body)
            out.append(Client(pid, role, body["token"]))
    return out


def order_body(role: str, rng: random.Random, client_order_id: str) -> dict[str, Any]:
    commodity, form, grade, mid = rng.choice(BOOKS)
    body: dict[str, Any] = {"commodity": commodity, "form": form, "grade": grade,
                            "quantity": str(rng.randrange(100, 2001, 50)), "delivery_start": "2027-01-01",
                            "delivery_end": "2027-06-30", "location": "Rotterdam", "client_order_id": client_order_id}
    if role == "seller":
        body["side"] = "sell"
        body["limit_price"] = f"{mid * rng.randint(97, 103) / 100:.2f}"
        allied = rng.random() < 0.85
        body["origin"] = rng.choice(ALLIED_ORIGINS if allied else OTHER_ORIGINS)
        if not allied and rng.random() < 0.5:
            body["nonmarket"] = True
        body["attestations"] = {"oecd_ddg": rng.random() < 0.8, **({"irma_level": 75} if rng.random() < 0.7 else {})}
    else:
        body["side"] = "buy"
        body["limit_price"] = f"{mid * rng.randint(97, 104) / 100:.2f}"
        if rng.random() < 0.3:
            body["requirements"] = {"allied_only": True}
    return body


async def _send(c: httpx.AsyncClient, rec: Record) -> None:
    path, headers, raw = rec.request
    r = await c.post(path, content=raw, headers=headers)
    rec.done_at, rec.status = time.perf_counter(), r.status_code
    rec.replayed = r.headers.get("idempotency-replayed") == "true"
    if r.is_success:
        doc = r.json()
        rec.order_id = doc["order"]["id"]
        rec.trade_ids = tuple(t["id"] for t in doc["trades"])
        rec.error = ""
    else:
        rec.error = r.text[:300]


async def _client_loop(cl: Client, host: str, port: int, rng: random.Random, key_prefix: str, stop_at: float,
                       deadline: float, out: list[Record]) -> None:
    n = 0
    async with httpx.AsyncClient(base_url=base(host, port), timeout=30,
                                 limits=httpx.Limits(max_connections=1)) as c:
        while time.perf_counter() < stop_at:
            key = f"{key_prefix}{cl.participant_id}-{n}"
            n += 1
            body = order_body(cl.role, rng, key)
            headers = {"Authorization": f"Bearer {cl.token}", "Idempotency-Key": key,
                       "Content-Type": "application/json"}
            rec = Record(cl.participant_id, key, body["side"], body["quantity"], time.perf_counter(),
                         request=("/v1/orders", headers, json.dumps(body).encode()))
            out.append(rec)
            backoff = 0.02
            while True:
                rec.attempts += 1
                try:
                    await _send(c, rec)
                except httpx.TransportError as exc:
                    rec.error = type(exc).__name__
                    rec.status = 0
                else:
                    if rec.status not in (503, 429):
                        break
                if time.perf_counter() > deadline:
                    rec.done_at = time.perf_counter()
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 1.5, 0.25)


async def run_load(host: str, port: int, clients: Sequence[Client], *, seed: int = 0, key_prefix: str = "k",
                   duration: float, retry_deadline: float = 60.0) -> LoadResult:
    """Run every client concurrently for ``duration`` s (a request started before the end is finished, retried on
    connection errors, 503 and 429 until ``retry_deadline`` s after the end) and return all records."""
    res = LoadResult(started=time.perf_counter())
    stop_at = res.started + duration
    outs: list[list[Record]] = [[] for _ in clients]
    await asyncio.gather(*(_client_loop(c, host, port, random.Random(f"{seed}/{c.participant_id}"), key_prefix,
                                        stop_at, stop_at + retry_deadline, outs[i]) for i, c in enumerate(clients)))
    res.finished = time.perf_counter()
    res.records = [r for out in outs for r in out]
    return res


async def replay(host: str, port: int, rec: Record, client: httpx.AsyncClient) -> Record:
    """Send a recorded request again (same token, key and body) and return what came back."""
    again = Record(rec.client, rec.key, rec.side, rec.quantity, time.perf_counter(), attempts=1, request=rec.request)
    await _send(client, again)
    return again
