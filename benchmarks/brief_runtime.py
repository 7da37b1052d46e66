#!/usr/bin/env python
"""Default brief on the bundled data: wall time and peak memory of the whole process, side by side with
the issue's targets (60 s, 2 GB) and with a cold `critmin --help` start-up as the floor.

    python benchmarks/brief_runtime.py [--repeat 3]

Each run is a fresh subprocess (``critmin brief --out TMP``); peak memory is the child's maximum resident
set size (``resource.getrusage(RUSAGE_CHILDREN)``, which on Linux reports kilobytes). Printed, not asserted.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S, TARGET_MB = 60.0, 2048.0


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: run the heavy command last or alone.
    return wall, max(peak, before) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exe = shutil.which("critmin") or str(Path(sys.executable).with_name("critmin"))
    startup = [run([exe, "--help"])[0] for _ in range(args.repeat)]
    walls, peaks = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            w, p = run([exe, "brief", "--out", str(Path(d) / "brief")])
            walls.append(w)
            peaks.append(p)
    w = statistics.median(walls)
    p = max(peaks)
    s = statistics.median(startup)
    print(f"{'measure':<34}{'critmin':>12}{'reference':>14}{'ratio':>10}")
    print(f"{'brief wall time (median, s)':<34}{w:>12.2f}{TARGET_S:>14.1f}{TARGET_S / w:>9.1f}x  (target / measured)")
    print(f"{'brief peak memory (MB)':<34}{p:>12.0f}{TARGET_MB:>14.0f}{TARGET_MB / p:>9.1f}x  (target / measured)")
    print(f"{'brief vs bare start-up (s)':<34}{w:>12.2f}{s:>14.2f}{w / s:>9.1f}x  (brief / `critmin --help`)")


if __name__ == "__main__":
    main()
