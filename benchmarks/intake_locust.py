"""The intake benchmark's load driven by locust (``FastHttpUser``, headless, from Python) instead of aiohttp.

Run by ``market_intake.py --driver locust`` in a process of its own (locust runs on gevent, which patches the
standard library at import). Reads a JSON file: {"base", "clients": [[participant, role, token], ...],
"duration"}; writes the records ([answered at, latency s, status, trades], perf_counter times of this process)
and the start time as JSON to stdout.
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from locust import FastHttpUser, constant, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_load import requests_for  # noqa: E402


def main() -> int:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    clients, duration = cfg["clients"], cfg["duration"]
    per_client = int(5000 * duration / len(clients)) + 64
    queue = itertools.count()
    rendered = [requests_for(p, role, tok, per_client) for p, role, tok in clients]
    records: list[list] = []

    class Trader(FastHttpUser):
        host = cfg["base"]
        wait_time = constant(0)  # closed loop: the next order as soon as the answer is in

        def on_start(self) -> None:
            self.mine = rendered[next(queue) % len(rendered)]
            self.n = 0

        @task
        def place(self) -> None:
            headers, raw = self.mine[self.n]
            self.n += 1
            sent = time.perf_counter()
            while True:
                with self.client.post("/v1/orders", data=raw, headers=headers, catch_response=True) as r:
                    status = r.status_code
                    text = r.content or b""
                    r.success()
                if status not in (503, 429):
                    break
                time.sleep(0.02)
            records.append([time.perf_counter(), time.perf_counter() - sent, status, text.count(b'"buy_order_id"')])

    env = Environment(user_classes=[Trader], events=events)
    runner = env.create_local_runner()
    t0 = time.perf_counter()
    runner.start(len(clients), spawn_rate=10_000)
    gevent.sleep(duration)
    runner.quit()
    json.dump({"t0": t0, "records": records}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
