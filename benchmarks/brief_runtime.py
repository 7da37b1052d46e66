#!/usr/bin/env python
"""Default brief on the bundled data: wall time and peak memory, this code against another checkout.

    python benchmarks/brief_runtime.py [--rounds 3]                         # this code only
    git worktree add /tmp/critmin-base c11bd62                              # e.g. the previous release
    python benchmarks/brief_runtime.py --baseline /tmp/critmin-base         # alternately, side by side

Each run is a fresh subprocess of this interpreter with ``PYTHONPATH=<checkout>/src`` running
``critmin brief --out TMP`` (as ``python -c "from critmin.cli.main import main; main()" brief ...``), so each
side imports its own code and its own bundled dataset. Peak memory is that child's maximum resident set size
(``os.wait4``; Linux reports kilobytes). After one warm-up of each side, the sides alternate for ``--rounds``
rounds, the first side swapped every round. Beside them: the issue's targets (60 s, 2 GB) and a bare
``critmin --help`` start-up as the floor. Printed, never asserted.
"""

from __future__ import annotations

import argparse
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
CLI = "from critmin.cli.main import main; main()"
TARGET_S, TARGET_MB = 60.0, 2048.0


def run(src: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``critmin <args>`` importing critmin from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"critmin {' '.join(args[:1])} ({src}) exited with {proc.returncode}:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0


def brief(src: Path, cwd: Path) -> tuple[float, float]:
    out = cwd / "brief"
    wall, peak = run(src, ["brief", "--out", str(out)], cwd)
    if not (out / "index.html").is_file():
        raise SystemExit(f"critmin brief ({src}) wrote no index.html")
    return wall, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each side after one warm-up (default 3)")
    ap.add_argument("--baseline", type=Path, help="another critmin checkout (or its src folder), run alternately")
    args = ap.parse_args()
    sides = [("this code", SRC.resolve())] + ([("baseline", src_of(args.baseline))] if args.baseline else [])
    walls: dict[str, list[float]] = {name: [] for name, _ in sides}
    peaks: dict[str, list[float]] = {name: [] for name, _ in sides}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="critmin-brief-") as tmp:
        cwd = Path(tmp)
        startup = [run(SRC.resolve(), ["--help"], cwd)[0] for _ in range(3)]
        for _name, src in sides:    # warm-up (file caches), not timed
            brief(src, cwd)
        for i in range(args.rounds):
            for name, src in (sides if i % 2 == 0 else sides[::-1]):
                w, p = brief(src, cwd)
                walls[name].append(w)
                peaks[name].append(p)
    print(f"critmin brief on the bundled data, {args.rounds} runs per side after one warm-up"
          f"{', alternately' if args.baseline else ''}; {os.cpu_count()} CPUs, load average {load0:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    for name, src in sides:
        print(f"  {name:10s} {commit_of(src)}: wall median {statistics.median(walls[name]):6.2f} s "
              f"(min {min(walls[name]):.2f}, max {max(walls[name]):.2f}); peak memory {max(peaks[name]):,.0f} MB")
    w, p = statistics.median(walls["this code"]), max(peaks["this code"])
    if args.baseline:
        b = statistics.median(walls["baseline"])
        print(f"  this code / baseline: {w / b:.2f}x wall (medians), {min(walls['this code']) / min(walls['baseline']):.2f}x"
              f" (mins), {p / max(peaks['baseline']):.2f}x peak memory")
    s = statistics.median(startup)
    print(f"  targets: {TARGET_S / w:.1f}x under {TARGET_S:.0f} s, {TARGET_MB / p:.1f}x under {TARGET_MB:.0f} MB; "
          f"brief / bare `critmin --help` ({s:.2f} s): {w / s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
