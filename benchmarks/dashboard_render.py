"""``critmin dashboard``: each view's first render and cached render, side by side with the API calls behind it.

Each measurement runs in a fresh subprocess of this interpreter (``PYTHONPATH=<repo>/src``), so nothing is cached
from an earlier one; imports and building the app are done before the clock starts (their time is reported
apart). Per view:

* **first render**: the app is built with ``warm=False`` (no start-up computation), the view's URL is requested
  once through FastAPI's ``TestClient`` (the ASGI app in-process: routing, the API calls, the figures, the
  template; no socket) and timed with ``time.perf_counter``;
* **cached render**: the same URL requested again, ``--repeat`` times; the median;
* **API direct**: in another fresh subprocess, the public API calls that produce the view's numbers (and reads of
  the dataset tables it shows), timed the same way; ``ratio`` = first render / API direct;
* **first render after start-up** (the views of :data:`WARMED`): the app computes its default results at
  start-up (``warm=True``); the view is timed once that is done, as a user opening the dashboard after it started
  sees it. Other inputs (another importer) are not precomputed: their first render is the cold one.

The median over ``--rounds`` fresh processes is reported. Targets from the issue: first render ≤ 2 s, cached ≤
200 ms on the bundled data; the script reports, it does not judge.

    python benchmarks/dashboard_render.py                 # every view, 3 rounds
    python benchmarks/dashboard_render.py --rounds 1 --views overview,mineral-gallium
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

#: The map layers of ``critmin map`` (``critmin.api.map`` without its figure), as the mineral page reads them.
LAYERS = ("from critmin.geo.layers import deposit_layer, facility_layer; "
          "deposit_layer(cat.table('deposits'), ['{c}']); facility_layer(cat.table('projects'), ['{c}'])")

#: name → (URL, API code run for the "API direct" column, or None where the view's own module owns it)
VIEWS: dict[str, tuple[str, str | None]] = {
    "overview": ("/", "api.priorities('USA,JPN,USA+JPN', as_of=TODAY, catalog=cat)"),
    "overview-deu": ("/?importer=DEU", "api.priorities('DEU', as_of=TODAY, catalog=cat)"),
    "mineral-gallium": ("/mineral/gallium",
                        "api.priorities('USA,JPN,USA+JPN', as_of=TODAY, catalog=cat); " + LAYERS.format(c="gallium")
                        + "; [cat.table(t) for t in ('trade', 'production', 'prices', 'import_sources')]"),
    "mineral-lithium-bloc": ("/mineral/lithium?importer=USA%2BJPN",
                             "api.priorities('USA,JPN,USA+JPN', as_of=TODAY, catalog=cat); " + LAYERS.format(c="lithium")
                             + "; [cat.table(t) for t in ('trade', 'production', 'prices')]"),
    "data": ("/data", "cat.manifest"),
    "scenarios": ("/scenarios", None),
    "risk": ("/risk", None),
    "stockpile": ("/stockpile", None),
    "market": ("/market", None),
}

#: Views whose results the start-up computation covers (the default importers), timed after it too.
WARMED = ("overview", "mineral-gallium", "mineral-lithium-bloc")

RENDER = """
import json, statistics, sys, time
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from critmin.dashboard.app import create_dashboard
app = create_dashboard(warm={warm})
client = TestClient(app)
setup = time.perf_counter() - t0
if {warm}:
    from critmin.dashboard.views import overview
    overview.warm(app)   # what the app's start-up thread computes first
t0 = time.perf_counter()
r = client.get({url!r})
first = time.perf_counter() - t0
assert r.status_code == 200, (r.status_code, r.text[:300])
times = []
for _ in range({repeat}):
    t0 = time.perf_counter()
    r2 = client.get({url!r})
    times.append(time.perf_counter() - t0)
assert r2.text == r.text or {url!r} in ("/risk", "/market")
print(json.dumps({{"setup": setup, "first": first, "cached": statistics.median(times), "bytes": len(r.content)}}))
"""

API = """
import json, time, datetime as dt
t0 = time.perf_counter()
from critmin import api
from critmin.reference.catalog import Catalog
setup = time.perf_counter() - t0
TODAY = dt.date.today()
t0 = time.perf_counter()
cat = Catalog()
{code}
print(json.dumps({{"setup": setup, "api": time.perf_counter() - t0}}))
"""


def run(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"benchmark subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per measurement (median reported)")
    ap.add_argument("--repeat", type=int, default=5, help="cached requests per process (median)")
    ap.add_argument("--views", default=",".join(VIEWS), help="comma list of: " + ", ".join(VIEWS))
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    names = [v.strip() for v in a.views.split(",") if v.strip()]
    unknown = [v for v in names if v not in VIEWS]
    if unknown or a.rounds < 1 or a.repeat < 1:
        raise SystemExit(f"unknown views {unknown}; known: {', '.join(VIEWS)}" if unknown
                         else "--rounds and --repeat must be ≥ 1")
    rows = []
    print(f"{'view':<22}{'URL':<38}{'first s':>9}{'cached ms':>11}{'API s':>8}{'ratio':>7}{'warm first s':>14}"
          f"{'setup s':>9}")
    for name in names:
        url, code = VIEWS[name]
        cold = [run(RENDER.format(warm=False, url=url, repeat=a.repeat)) for _ in range(a.rounds)]
        apis = [run(API.format(code=code)) for _ in range(a.rounds)] if code else []
        warm = ([run(RENDER.format(warm=True, url=url, repeat=1)) for _ in range(a.rounds)]
                if name in WARMED else [])
        row = {"view": name, "url": url, "first_s": statistics.median(r["first"] for r in cold),
               "cached_ms": 1000 * statistics.median(r["cached"] for r in cold),
               "setup_s": statistics.median(r["setup"] for r in cold),
               "bytes": cold[0]["bytes"],
               "api_s": statistics.median(r["api"] for r in apis) if apis else None,
               "warm_first_s": statistics.median(r["first"] for r in warm) if warm else None}
        row["ratio"] = row["first_s"] / row["api_s"] if row["api_s"] else None
        rows.append(row)

        def f(v, fmt):
            return format(v, fmt) if v is not None else "–"

        print(f"{name:<22}{url[:37]:<38}{row['first_s']:>9.2f}{row['cached_ms']:>11.1f}{f(row['api_s'], '.2f'):>8}"
              f"{f(row['ratio'], '.2f'):>7}{f(row['warm_first_s'], '.2f'):>14}{row['setup_s']:>9.2f}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
