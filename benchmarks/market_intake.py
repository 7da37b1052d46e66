"""Benchmark: sustained order intake of ``critmin serve`` (one process: uvicorn serving the FastAPI app).

32 concurrent clients (one participant and token each, one keep-alive connection each, one request in flight per
client; crossing buy/sell orders over four books, mostly allied origins, some buyers with requirements; see
intake_load.py) place orders for --warmup + --seconds against the service on loopback, with matching on and a
durable commit before every answer:

  SQLite      WAL, synchronous=FULL (the service's default: a commit survives power loss)
  PostgreSQL  the server's own settings, printed (fsync and synchronous_commit should be on)

Servers (each `create_app(url, rate=0)` served by `critmin.cli.serve_cmd.serve_app`, exactly what `critmin serve`
runs, in a subprocess started from the launcher below; rate limiting off):

  shipped               h11, the POST /v1/orders fast lane (plain ASGI middleware), group commit (max_batch 512)
  plain route           the same without the fast lane: every order through FastAPI's route and dependencies
  httptools             the same as shipped on uvicorn's httptools parser instead of h11
  one commit per order  max_batch 1: one transaction and one commit per order (the naive baseline)

Load drivers: aiohttp (default; intake_load.py, a minimal closed loop in this process) or locust (FastHttpUser,
headless, in a process of its own: intake_locust.py). Both share the machine's cores with the server: the CPU
each used is printed. Reported for the measuring window (answers after the warm-up): acknowledged orders/s,
latency p50/p95/p99 from the first byte sent to the answer, trades/s, the server's CPU (cores, over the whole
run) and the driver's, the load average (`uptime`) just before each run and a CPU probe (ms for a fixed Python
loop: the machine's speed at that moment). Target: >= 1,000 acknowledged orders/s with p99 <= 50 ms at 32
clients on SQLite. Printed, never asserted.

Reads (--reads): the same clients in a closed loop on GET /v1/orders?limit=20 (each participant's own orders,
read from the database), to show what one process serves.

PostgreSQL: --pg-url, else $CRITMIN_BENCH_PG_URL, else $CRITMIN_TEST_PG_URL, else the local server CI sets up
(postgresql://critmin:critmin@127.0.0.1:5432/critmin_test), else a throwaway server from the local PostgreSQL
binaries (tests/pgserver.py); a fresh database per run, dropped afterwards; without any the PostgreSQL rows are
skipped.

    python benchmarks/market_intake.py                              # shipped, both backends, 3 rounds
    python benchmarks/market_intake.py --servers all --rounds 1     # every server variant, one round
    python benchmarks/market_intake.py --driver locust --backend sqlite
    python benchmarks/market_intake.py --reads --backend postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import intake_load as L

HOST = "127.0.0.1"
DEFAULT_PG = "postgresql+psycopg://critmin:critmin@127.0.0.1:5432/critmin_test"

LAUNCHER = r'''
import functools, sys
from pathlib import Path
import critmin.server.app as service
from critmin.server import intake
from critmin.server.sequencer import Sequencer
from critmin.cli.serve_cmd import serve_app
url, port, data_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
max_batch, http, lane = int(sys.argv[4]), sys.argv[5], sys.argv[6]
service.Sequencer = functools.partial(Sequencer, max_batch=max_batch)   # what the service builds
if lane == "off":
    async def passthrough(self, scope, receive, send):
        await self.app(scope, receive, send)
    intake.OrderIntake.__call__ = passthrough
app = service.create_app(url, rate=0, burst=0, admin_token_file=data_dir / "admin.token")
sys.exit(serve_app(app, "127.0.0.1", port, max_connections=1024, http=http))
'''

#: server label -> (max_batch, uvicorn http, fast lane)
SERVERS = {"shipped": (512, "h11", "on"), "plain route": (512, "h11", "off"), "httptools": (512, "httptools", "on"),
           "one commit per order": (1, "h11", "on")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _pg_server_url(arg: str | None) -> str | None:
    for url in (arg, os.environ.get("CRITMIN_BENCH_PG_URL"), os.environ.get("CRITMIN_TEST_PG_URL"), DEFAULT_PG):
        if url:
            try:
                with _pg_connect(url, None):
                    return url
            except Exception as exc:  # unreachable: try the next one
                if url is arg:
                    print(f"  cannot reach {arg}: {exc}")
    # A throwaway server from the local PostgreSQL binaries, as the tests start one (stopped at exit), but with
    # PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes on).
    os.environ["CRITMIN_TEST_PG_DURABLE"] = "1"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        import pgserver
    except ImportError:
        return None
    return pgserver.postgres_url()


def _pg_connect(url: str, database: str | None):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    info = {"host": u.host, "port": u.port, "user": u.username, "password": u.password,
            "dbname": database or u.database}
    return psycopg.connect(**{k: v for k, v in info.items() if v is not None}, autocommit=True, connect_timeout=5)


def _pg_database(server_url: str) -> tuple[str, str]:
    """A fresh database on the server: (its URL, its name)."""
    from sqlalchemy.engine import make_url

    name = f"critmin_bench_{secrets.token_hex(4)}"
    with _pg_connect(server_url, None) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False), name


def _pg_drop(server_url: str, name: str) -> None:
    """Drop a benchmark database; retried for a few seconds while the stopped server's last connections close."""
    for attempt in range(20):
        try:
            with _pg_connect(server_url, None) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except Exception as exc:  # pragma: no cover - best effort
            if attempt == 19:
                print(f"  (could not drop {name}: {exc})")
            time.sleep(0.25)


def _pg_settings(server_url: str) -> str:
    with _pg_connect(server_url, None) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        got = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in ("fsync", "synchronous_commit")}
    return f"PostgreSQL {version}, fsync={got['fsync']}, synchronous_commit={got['synchronous_commit']}"



def _create_clients(base: str, admin: str, n: int) -> list[tuple[str, str, str]]:
    out = []
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {admin}"}) as c:
        for i in range(n):
            pid, role = f"bench-{i:03d}", ("seller" if i % 2 == 0 else "buyer")
            r = c.post("/v1/participants", headers={"Idempotency-Key": f"p-{pid}"},
                       json={"id": pid, "name": pid, "role": role, "country": L.ALLIED_ORIGINS[i % 8]})
            assert r.status_code == 201, r.text
            r = c.post(f"/v1/participants/{pid}/tokens", headers={"Idempotency-Key": f"t-{pid}"}, json={"label": "b"})
            assert r.status_code == 201, r.text
            out.append((pid, role, r.json()["token"]))
    return out


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server ended with exit code {proc.returncode}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the server did not become healthy")


def measure(url: str, data_dir: Path, server: str, clients: int, warmup: float, seconds: float, driver: str,
            reads: bool = False) -> dict:
    max_batch, http, lane = SERVERS[server]
    port = free_port()
    base = f"http://{HOST}:{port}"
    with open(data_dir / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, url, str(port), str(data_dir), str(max_batch), http,
                                 lane], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(base, proc)
        cast = _create_clients(base, (data_dir / "admin.token").read_text().strip(), clients)
        if reads:  # something to read: each participant's own orders
            asyncio.run(L.run_aiohttp(base, cast, 1.0))
        load = os.getloadavg()[0]
        probe = cpu_probe()
        srv = psutil.Process(proc.pid)
        cpu0 = sum(srv.cpu_times()[:2])
        t_wall = time.perf_counter()
        if driver == "locust":
            cfg = data_dir / "locust.json"
            cfg.write_text(json.dumps({"base": base, "clients": cast, "duration": warmup + seconds}))
            child = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "intake_locust.py"),
                                      str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = child.communicate(timeout=warmup + seconds + 300)
            got = json.loads(out)
            records, t0 = got["records"], got["t0"]
            driver_cpu = _child_cpu()
        else:
            self0 = time.process_time()
            path = "/v1/orders?limit=20" if reads else "/v1/orders"
            records, t0 = asyncio.run(L.run_aiohttp(base, cast, warmup + seconds, path=path, read=reads))
            driver_cpu = time.process_time() - self0
        wall = time.perf_counter() - t_wall
        out = L.summarize(records, t0 + warmup, t0 + warmup + seconds)
        out["server_cpu"] = (sum(srv.cpu_times()[:2]) - cpu0) / wall
        out["driver_cpu"] = driver_cpu / wall
        # The server's CPU per answer: on a machine shared with other work the rate says how much CPU the server
        # was given, this says what each answer cost it (the whole run's CPU over the whole run's answers).
        out["cpu_ms"] = 1000 * (sum(srv.cpu_times()[:2]) - cpu0) / max(1, sum(1 for r in records if 200 <= r[2] < 300))
        out["load"], out["probe_ms"] = load, probe
        out["errors"] = {k: v for k, v in out["statuses"].items() if not 200 <= k < 300}
        return out
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_child_cpu_seen = 0.0


def _child_cpu() -> float:
    """CPU seconds of the waited-for child processes since the last call (the locust driver's)."""
    global _child_cpu_seen
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    used, _child_cpu_seen = total - _child_cpu_seen, total
    return used


def cpu_probe() -> float:
    """Milliseconds for a fixed pure-Python loop, on one core: the machine's speed right now. On a shared virtual
    machine it moves a lot (a loop like it took 2.3x longer from one minute to the next on the development
    machine), and the intake figures move with it; printed beside each measurement so that runs can be compared."""
    t0 = time.perf_counter()
    s = 0
    for i in range(2_000_000):
        s += i * i
    return (time.perf_counter() - t0) * 1000


def _row(backend: str, server: str, driver: str, r: dict) -> str:
    return (f"  {backend:11} {server:21} {driver:8} {r['rate']:9,.0f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
            f"{r['p99_ms']:7.1f} {r['trades_per_s']:9,.0f} {r['server_cpu']:6.2f} {r['cpu_ms']:6.2f} "
            f"{r['driver_cpu']:6.2f} {r['load']:5.2f}" + (f"  errors {r['errors']}" if r["errors"] else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--servers", default="shipped", help="comma-separated of: " + ", ".join(SERVERS) + "; or all")
    ap.add_argument("--driver", default="aiohttp", help="aiohttp, locust, or both")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per server")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3, help="runs of every server, alternated (medians reported)")
    ap.add_argument("--reads", action="store_true", help="GET /v1/orders?limit=20 instead of placing orders")
    ap.add_argument("--pg-url", help="a PostgreSQL server (a database is created on it and dropped)")
    args = ap.parse_args()
    servers = list(SERVERS) if args.servers == "all" else [s.strip() for s in args.servers.split(",")]
    drivers = ["aiohttp", "locust"] if args.driver == "both" else [args.driver]
    for s in servers:
        if s not in SERVERS:
            ap.error(f"--servers: unknown {s!r}")
    print(f"market intake: {args.clients} clients, {args.rounds} round(s) of {args.warmup:g} s warm-up + "
          f"{args.seconds:g} s measured; {os.cpu_count()} CPUs; Python {platform.python_version()}, SQLite "
          f"{sqlite3.sqlite_version}; {'reads' if args.reads else 'orders'}")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    pg_server = _pg_server_url(args.pg_url) if "postgresql" in backends else None
    if "postgresql" in backends:
        print(f"  {_pg_settings(pg_server)}" if pg_server else "  PostgreSQL: no reachable server, skipped")
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for rnd in range(1, args.rounds + 1):
        for backend in backends:
            if backend == "postgresql" and pg_server is None:
                continue
            for server in servers:
                for driver in drivers:
                    with tempfile.TemporaryDirectory(prefix="critmin-bench-") as tmp:
                        data_dir = Path(tmp)
                        if backend == "sqlite":
                            url, name = f"sqlite:///{data_dir / 'market.sqlite3'}", None
                        else:
                            url, name = _pg_database(pg_server)
                        try:
                            r = measure(url, data_dir, server, args.clients, args.warmup, args.seconds, driver,
                                        args.reads)
                        finally:
                            if name:
                                _pg_drop(pg_server, name)
                    runs.setdefault((backend, server, driver), []).append(r)
                    print(f"  round {rnd}, {backend}, {server}, {driver}: {r['rate']:,.0f}/s, p99 {r['p99_ms']:.1f} ms, "
                          f"{r['pauses']} pause(s) > {L.PAUSE_MS:g} ms (longest {r['longest_pause_ms']:.0f} ms); "
                          f"server {r['server_cpu']:.2f} cores ({r['cpu_ms']:.2f} ms/answer), driver {r['driver_cpu']:.2f}; "
                          f"load average "
                          f"{r['load']:.2f}, CPU probe {r['probe_ms']:.0f} ms", flush=True)
    print()
    what = "reads/s" if args.reads else "orders/s"
    print(f"  {'backend':11} {'server':21} {'driver':8} {what:>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'trades/s':>9} {'srv CPU':>6} {'ms/ans':>6} {'drv CPU':>6} {'load':>5}")
    for (backend, server, driver), rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("rate", "p50_ms", "p95_ms", "p99_ms", "trades_per_s", "server_cpu", "cpu_ms", "driver_cpu", "load")}
        med["errors"] = {k: sum(r["errors"].get(k, 0) for r in rs) for r in rs for k in r["errors"]}
        print(_row(backend, server, driver, med))
        if backend == "sqlite" and not args.reads:
            met = sum(r["rate"] >= 1000 and r["p99_ms"] <= 50 for r in rs)
            print(f"  {'':11} target >= 1,000 orders/s and p99 <= 50 ms: {med['rate'] / 1000:.2f}x the rate, "
                  f"{50 / med['p99_ms']:.2f}x the latency budget; both met in {met} of {len(rs)} round(s)")
    print(f"  (medians of {args.rounds} round(s); CPU in cores over the run; ms/ans: the server's CPU ms per "
          "acknowledged answer; load: the 1-minute load average just before each run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
