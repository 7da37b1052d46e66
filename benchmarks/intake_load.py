"""Load for the intake benchmark (``market_intake.py``): the order mix, and a minimal closed-loop HTTP driver on
aiohttp (a maintained asyncio HTTP client).

Each client is one participant with its own token and one keep-alive connection, one request in flight at a time
(closed loop), every order with a fresh ``Idempotency-Key`` (= ``client_order_id``). Requests are rendered before
the clock starts. 503 and 429 are sent again, same key, until answered otherwise; every answer is recorded as
(time answered, latency from the first send, status, trades in it).

The mix: four books, sellers mostly from allied origins (some non-market), attestations that vary, buyers with
and without requirements (allied only, minimum IRMA level, no non-market origins), prices on a 1 % grid around a
per-book mid so that about half the orders cross.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from typing import Any

BOOKS = (("ndpr", "oxide", "std", 95), ("cobalt", "hydroxide", "battery", 30),
         ("lithium", "carbonate", "battery", 14), ("graphite", "spherical", "anode", 6))
BOOK_WEIGHTS = (4, 3, 2, 1)
ALLIED_ORIGINS = ("AUS", "USA", "CAN", "JPN", "FIN", "SWE", "DEU", "KOR")
OTHER_ORIGINS = ("CHN", "COD", "IDN", "BRA")
LOCATIONS = ("Long Beach", "Rotterdam", "Yokohama", "Houston", "Busan")

#: A pause: no answer at all for longer than this (ms) while requests are in flight.
PAUSE_MS = 25.0


def order_body(role: str, rng: random.Random, client_order_id: str) -> dict[str, Any]:
    """One realistic order for a participant of ``role``."""
    commodity, form, grade, mid = rng.choices(BOOKS, BOOK_WEIGHTS)[0]
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


def requests_for(participant: str, role: str, token: str, n: int, seed: int = 1,
                 key_prefix: str = "b-") -> list[tuple[dict[str, str], bytes]]:
    """``n`` rendered order requests (headers, body bytes) of one client, the same for the same seed."""
    rng = random.Random(f"{seed}/{participant}")
    out = []
    for i in range(n):
        key = f"{key_prefix}{participant}-{i}"
        raw = json.dumps(order_body(role, rng, key), separators=(",", ":")).encode()
        out.append(({"Authorization": f"Bearer {token}", "Idempotency-Key": key,
                     "Content-Type": "application/json"}, raw))
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


def summarize(records: list[tuple[float, float, int, int]], t_from: float, t_to: float) -> dict[str, Any]:
    """Acknowledged requests/s, latency percentiles (ms), trades/s and pauses of the answers in [t_from, t_to];
    ``records`` are (answered at, latency s, status, trades)."""
    window = [r for r in records if t_from <= r[0] <= t_to]
    acked = [r for r in window if 200 <= r[2] < 300]
    lat = [r[1] * 1000 for r in acked]
    span = max(t_to - t_from, 1e-9)
    statuses: dict[int, int] = {}
    for r in window:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(sorted(r[0] for r in window))]
    return {"acked": len(acked), "seconds": span, "rate": len(acked) / span, "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99), "statuses": statuses,
            "trades_per_s": sum(r[3] for r in acked) / span, "pauses": sum(g > PAUSE_MS for g in gaps),
            "longest_pause_ms": max(gaps, default=0.0)}


async def run_aiohttp(base: str, clients: list[tuple[str, str, str]], duration: float, path: str = "/v1/orders",
                      read: bool = False) -> tuple[list[tuple[float, float, int, int]], float]:
    """Every client (participant, role, token) in a closed loop for ``duration`` s: orders (POST ``path``), or with
    ``read`` the GET ``path`` with the client's token. Returns the records and the start time (perf_counter)."""
    import aiohttp

    per_client = int(5000 * duration / max(1, len(clients))) + 64  # up to 5,000 requests/s in all
    rendered = [None if read else requests_for(p, role, tok, per_client) for p, role, tok in clients]
    records: list[tuple[float, float, int, int]] = []
    t0 = time.perf_counter()
    stop_at = t0 + duration

    async def client(i: int) -> None:
        _, _, token = clients[i]
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(base, connector=connector) as session:
            n = 0
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                while True:
                    if read:
                        req = session.get(path, headers={"Authorization": f"Bearer {token}"})
                    else:
                        headers, raw = rendered[i][n]
                        req = session.post(path, data=raw, headers=headers)
                    async with req as r:
                        data = await r.read()
                        status = r.status
                    if status not in (503, 429):
                        break
                    await asyncio.sleep(0.02)
                n += 1
                records.append((time.perf_counter(), time.perf_counter() - sent, status,
                                data.count(b'"buy_order_id"') if not read else 0))

    await asyncio.gather(*(client(i) for i in range(len(clients))))
    return records, t0
