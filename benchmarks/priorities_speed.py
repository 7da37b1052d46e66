"""``critmin priorities`` on the default importers: this code against another checkout, side by side.

The priority engine was rewritten after the release at a26fef0; the issue asks that ``critmin priorities``
stays within 2x of that release's time on the same machine. Each run is a fresh subprocess of this interpreter
with ``PYTHONPATH=<checkout>/src``, so each side imports its own code and its own bundled dataset (both share
the installed dependencies), running

    critmin priorities --importer USA,JPN,USA+JPN --format csv --out TMP

(as ``python -c "from critmin.cli.main import main; main()" ...``: the package has no ``__main__``). A second
subprocess per side imports ``critmin.workflows`` and times the ``workflows.priorities(...)`` call alone with
``time.perf_counter`` (import time excluded, the catalog's tables still read inside the call). After one
warm-up of each, the sides alternate for ``--rounds`` rounds, the first side of each round swapped every round.
The table gives per side the median and min wall time and the ratio this code / baseline, and the rows and
commodities each side produced: the new engine covers more commodities, so the work per call differs.
Timing is reported, never judged.

    git worktree add /tmp/critmin-base a26fef0                          # the previous release
    python benchmarks/priorities_speed.py --baseline /tmp/critmin-base  # 5 rounds, alternately
    python benchmarks/priorities_speed.py --rounds 9                    # this code only
    git worktree remove /tmp/critmin-base
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _sides import commit_of, src_of

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
IMPORTERS = "USA,JPN,USA+JPN"

CLI = "from critmin.cli.main import main; main()"
CALL = f"""
import json, time
import critmin
from critmin import workflows
from critmin.reference.catalog import Catalog
cat = Catalog(None)
t0 = time.perf_counter()
table, meta = workflows.priorities({IMPORTERS!r}, None, None, None, None, "msp", catalog=cat)
t = time.perf_counter() - t0
print(json.dumps({{"seconds": t, "rows": len(table), "commodities": int(table["commodity"].nunique()),
                  "file": critmin.__file__}}))
"""


def python(src: Path, args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of ``python <args>`` importing critmin from ``src``, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} ({src}) exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def run_cli(src: Path, out: Path, cwd: Path) -> float:
    out.unlink(missing_ok=True)
    wall, _ = python(src, ["-c", CLI, "priorities", "--importer", IMPORTERS, "--format", "csv", "--out", str(out)], cwd)
    if not out.is_file():
        raise SystemExit(f"critmin priorities ({src}) wrote no {out.name}")
    return wall


def run_call(src: Path, cwd: Path) -> dict:
    _, stdout = python(src, ["-c", CALL], cwd)
    res = json.loads(stdout.strip().splitlines()[-1])
    if not Path(res["file"]).resolve().is_relative_to(src):
        raise SystemExit(f"the subprocess imported critmin from {res['file']}, not from {src}")
    return res


def count_csv(path: Path) -> tuple[int, int, int, int]:
    """Rows, distinct commodities, distinct importers and columns of a ``--format csv`` table."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cols = len(rows[0]) if rows else 0
    return len(rows), len({r["commodity"] for r in rows}), len({r["importer"] for r in rows}), cols


def line(name: str, ts: list[float]) -> str:
    return (f"    {name:10s} median {statistics.median(ts):6.2f}  min {min(ts):6.2f}  max {max(ts):6.2f}   "
            + " ".join(f"{t:.2f}" for t in ts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed runs of each code, after one warm-up (default 5)")
    ap.add_argument("--baseline", type=Path, help="another critmin checkout (or its src folder), run alternately")
    args = ap.parse_args()
    sides = [("this code", SRC.resolve())] + ([("baseline", src_of(args.baseline))] if args.baseline else [])
    wall: dict[str, list[float]] = {name: [] for name, _ in sides}
    call: dict[str, list[float]] = {name: [] for name, _ in sides}
    produced: dict[str, tuple[int, int, int, int]] = {}
    commits = {name: commit_of(src) for name, src in sides}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="critmin-priorities-") as tmp:
        cwd = Path(tmp)
        for name, src in sides:  # warm-up: not timed; checks that each side runs its own code
            run_call(src, cwd)
            out = cwd / f"{name.replace(' ', '-')}.csv"
            run_cli(src, out, cwd)
            produced[name] = count_csv(out)
        for i in range(args.rounds):
            for name, src in (sides if i % 2 == 0 else sides[::-1]):
                wall[name].append(run_cli(src, cwd / "out.csv", cwd))
            for name, src in (sides if i % 2 == 0 else sides[::-1]):
                res = run_call(src, cwd)
                call[name].append(res["seconds"])
                if (res["rows"], res["commodities"]) != produced[name][:2]:
                    raise SystemExit(f"{name}: the call gave {res['rows']} rows, the command {produced[name][0]}")

    print(f"critmin priorities --importer {IMPORTERS} --format csv, {args.rounds} runs each after one warm-up"
          f"{', alternately' if args.baseline else ''}; {os.cpu_count()} CPUs, load average {load0:.2f} at start,"
          f" {os.getloadavg()[0]:.2f} at the end")
    for name, _ in sides:
        print(f"  {name:10s} {commits[name]}")
    print("  whole process, launch to exit (seconds):")
    for name in wall:
        print(line(name, wall[name]))
    if args.baseline:
        print(f"    this code / baseline: {statistics.median(wall['this code']) / statistics.median(wall['baseline']):.2f}x"
              f" (medians), {min(wall['this code']) / min(wall['baseline']):.2f}x (mins)")
    print("  workflows.priorities(...) call alone, imports excluded (seconds):")
    for name in call:
        print(line(name, call[name]))
    if args.baseline:
        print(f"    this code / baseline: {statistics.median(call['this code']) / statistics.median(call['baseline']):.2f}x"
              f" (medians), {min(call['this code']) / min(call['baseline']):.2f}x (mins)")
    print("  output (the work per call differs):")
    for name, (rows, commodities, importers, cols) in produced.items():
        print(f"    {name:10s} {rows} rows: {commodities} commodities, {importers} importers; {cols} columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
