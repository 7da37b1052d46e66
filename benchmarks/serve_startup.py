"""Start-up of the marketplace service: from launching ``critmin serve`` to its first healthy answer.

Start-up is the time a restarted service (after a crash, a deploy) is not answering. Each run launches
``python -m critmin.cli.main serve`` on a database that exists already (the common restart: its schema at head),
polls ``GET /health`` every 20 ms and stops the service once it answers 200. With ``--baseline DIR`` (the ``src``
folder of another critmin checkout, e.g. an earlier release from ``git archive``), runs of that code alternate
with this one's, each on a database of its own, and the table gives both medians side by side with their ratio.
Timing is reported, never judged.

    python benchmarks/serve_startup.py                          # 9 starts of this code
    python benchmarks/serve_startup.py --baseline ../old/src    # 9 of each, alternately
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
SRC = HERE.parent / "src"


def start_once(src: Path, data_dir: Path, port: int, timeout: float = 60.0) -> float:
    """Seconds from launching ``critmin serve`` (code in ``src``) to a 200 from ``/health``; then stops it."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    log = data_dir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "critmin.cli.main", "serve", "--data-dir", str(data_dir),
                                 "--port", str(port), "--rate-limit", "0"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"critmin serve ({src}) exited with {proc.returncode} before it was healthy:\n"
                                 + log.read_text(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"critmin serve ({src}) was not healthy after {timeout:g} s")
            time.sleep(0.02)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="starts of each code (default 9)")
    ap.add_argument("--baseline", type=Path, help="the src folder of another critmin checkout, run alternately")
    args = ap.parse_args()
    codes = [("this code", SRC)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    for _, src in codes:
        if not (src / "critmin" / "server" / "app.py").is_file():
            raise SystemExit(f"{src} is not a critmin src folder with the marketplace service")
    times: dict[str, list[float]] = {name: [] for name, _ in codes}
    with tempfile.TemporaryDirectory(prefix="critmin-startup-") as tmp:
        # One database per code (each at its own schema head: an older release refuses a newer revision), each
        # created by a first start that is not timed.
        dirs = {name: Path(tmp) / str(i) for i, (name, _) in enumerate(codes)}
        port = free_port()
        for name, src in codes:
            dirs[name].mkdir()
            start_once(src, dirs[name], port)
        for i in range(args.runs):
            for name, src in (codes if i % 2 == 0 else codes[::-1]):
                times[name].append(start_once(src, dirs[name], port))
    print(f"critmin serve, launch to first healthy answer, {args.runs} starts each (seconds):")
    for name, ts in times.items():
        print(f"  {name:10s} median {statistics.median(ts):.2f}  min {min(ts):.2f}  max {max(ts):.2f}   "
              + " ".join(f"{t:.2f}" for t in ts))
    if args.baseline:
        ratio = statistics.median(times["baseline"]) / statistics.median(times["this code"])
        print(f"  baseline / this code: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
