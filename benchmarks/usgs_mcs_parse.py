#!/usr/bin/env python
"""USGS Mineral Commodity Summaries parser: wall time of ``usgs_mcs.parse`` on the raw files, beside the 10 s
budget the parser was written to (once a pass/fail assertion in the test suite, now measured here).

    python benchmarks/usgs_mcs_parse.py [--raw ../shared/data] [--repeat 3]

The first run is cold (mapping tables and CSV files read for the first time in the process); the median of the
following runs is the warm figure. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from critmin.reference.sources import usgs_mcs

BUDGET_S = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                    help="Folder of the raw public files (default: the 'shared/data' folder beside the repository)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times = []
    for _ in range(1 + args.repeat):
        t0 = time.perf_counter()
        tables = usgs_mcs.parse(args.raw)
        times.append(time.perf_counter() - t0)
    rows = sum(len(t) for t in tables.values())
    cold, warm = times[0], statistics.median(times[1:]) if args.repeat else times[0]
    print(f"{'measure':<34}{'critmin':>12}{'budget':>10}{'ratio':>10}   ({rows} rows in {len(tables)} tables)")
    print(f"{'parse, cold (s)':<34}{cold:>12.2f}{BUDGET_S:>10.1f}{BUDGET_S / cold:>9.1f}x  (budget / measured)")
    print(f"{'parse, warm median (s)':<34}{warm:>12.2f}{BUDGET_S:>10.1f}{BUDGET_S / warm:>9.1f}x  (budget / measured)")


if __name__ == "__main__":
    main()
