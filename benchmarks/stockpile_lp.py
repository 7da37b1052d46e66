"""Benchmark: the stockpile LP (5,000 scenarios × 30 commodities × 2 holders), linopy vs Pyomo, HiGHS for both.

Inputs are SYNTHETIC (seeded; no real data is implied): shortfalls are zero with probability 0.7 and
gamma-distributed otherwise; demand, prices are uniform draws. Both models are the same LP
(critmin.optimize.stockpile formulation, joint budget, CVaR term): variables Stockpile-level, Release-own,
Release-to-partner, Unmet, CVaR; constraints Budget-joint, Release-limit, Sharing-rule, Demand-balance,
CVaR-excess.

Phases timed, each in wall-clock seconds:
  linopy: build (critmin's StockpileProblem.build) | export (to_highspy: matrices into HiGHS) | HiGHS run
  Pyomo : build (ConcreteModel)                    | export (appsi translation into HiGHS)      | HiGHS run
The target ratio is (build + export) / HiGHS run ≤ 25 %.

Pyomo lives ONLY in a separate environment, never a critmin dependency:

    python3 -m venv benchmarks/.pyomo-venv && benchmarks/.pyomo-venv/bin/pip install pyomo highspy numpy

Run with critmin's interpreter:  python benchmarks/stockpile_lp.py [--scenarios N] [--commodities C] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOLDERS = ["USA", "JPN"]

PYOMO_SCRIPT = r'''
import json, sys, time
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib import appsi

d = np.load(sys.argv[1]); S, C, H = d["short"].shape
short, price, v, w, hold = d["short"], d["price"], d["value"], d["weight"], d["hold"]
B, alpha, lam, share = float(d["budget"]), float(d["alpha"]), float(d["lam"]), float(d["share"])
t0 = time.perf_counter()
m = pyo.ConcreteModel()
m.C, m.H, m.S = pyo.RangeSet(0, C - 1), pyo.RangeSet(0, H - 1), pyo.RangeSet(0, S - 1)
m.x = pyo.Var(m.C, m.H, domain=pyo.NonNegativeReals)
m.r = pyo.Var(m.C, m.H, m.S, domain=pyo.NonNegativeReals, bounds=lambda m, c, h, s: (0, short[s, c, h]))
m.q = pyo.Var(m.C, m.H, m.S, domain=pyo.NonNegativeReals)   # two holders: to the other one
m.u = pyo.Var(m.C, m.H, m.S, domain=pyo.NonNegativeReals)
m.zeta = pyo.Var()
m.eta = pyo.Var(m.S, domain=pyo.NonNegativeReals)
m.budget = pyo.Constraint(expr=sum(price[c] * m.x[c, h] for c in m.C for h in m.H) <= B)
m.rel = pyo.Constraint(m.C, m.H, m.S, rule=lambda m, c, h, s: m.r[c, h, s] + m.q[c, h, s] <= m.x[c, h])
m.shr = pyo.Constraint(m.C, m.H, m.S, rule=lambda m, c, h, s: m.q[c, h, s] + share * m.r[c, h, s] - share * m.x[c, h] <= 0)
m.bal = pyo.Constraint(m.C, m.H, m.S, rule=lambda m, c, h, s: m.r[c, h, s] + m.q[c, 1 - h, s] + m.u[c, h, s] == short[s, c, h])
m.cv = pyo.Constraint(m.S, rule=lambda m, s: m.eta[s] - sum(v[c, h] * m.u[c, h, s] for c in m.C for h in m.H) + m.zeta >= 0)
m.obj = pyo.Objective(expr=sum((price[c] + hold[c, h]) * m.x[c, h] for c in m.C for h in m.H)
    + sum(w[s] * v[c, h] * m.u[c, h, s] for c in m.C for h in m.H for s in m.S)
    + sum(w[s] * 1e-4 * price[c] * m.q[c, h, s] for c in m.C for h in m.H for s in m.S)
    + lam * (m.zeta + sum(w[s] / (1 - alpha) * m.eta[s] for s in m.S)))
t1 = time.perf_counter()
opt = appsi.solvers.Highs()
opt.config.stream_solver = False
opt.config.load_solution = False
res = opt.solve(m)
t2 = time.perf_counter()
run = float(opt._solver_model.getRunTime())
print(json.dumps({"build": t1 - t0, "export": (t2 - t1) - run, "run": run, "objective": res.best_feasible_objective}))
'''


def synthetic(n_s: int, n_c: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    short = rng.gamma(0.6, 40.0, size=(n_s, n_c, 2)) * (rng.random((n_s, n_c, 2)) < 0.3)
    price = rng.uniform(1e3, 5e4, n_c)
    demand = rng.uniform(500, 5000, (n_c, 2))
    return {"short": short, "price": price, "value": 10 * price[:, None] * np.ones((1, 2)),
            "weight": np.full(n_s, 1.0 / n_s), "hold": 0.05 * price[:, None] * np.ones((1, 2)),
            "demand": demand, "budget": 0.25 * float((short.mean(0).sum(1) * price).sum()) * 3,
            "alpha": 0.95, "lam": 0.1, "share": 1.0}


def run_linopy(data: dict) -> dict:
    import linopy  # noqa: F401  (imported before timing: import cost is not model build)
    import xarray as xr

    from critmin.optimize.inputs import StockpileInputs
    from critmin.optimize.stockpile import StockpileProblem

    n_s, n_c, _ = data["short"].shape
    cs = [f"c{i:02d}" for i in range(n_c)]
    inp = StockpileInputs(
        shortfall=xr.DataArray(data["short"], dims=["scenario", "commodity", "holder"],
                               coords={"scenario": np.arange(n_s), "commodity": cs, "holder": HOLDERS}),
        demand_annual=xr.DataArray(data["demand"], dims=["commodity", "holder"], coords={"commodity": cs, "holder": HOLDERS}),
        price=xr.DataArray(data["price"], dims=["commodity"], coords={"commodity": cs}),
        unmet_value=xr.DataArray(data["value"], dims=["commodity", "holder"], coords={"commodity": cs, "holder": HOLDERS}),
        holding_cost=xr.DataArray(data["hold"], dims=["commodity", "holder"], coords={"commodity": cs, "holder": HOLDERS}))
    prob = StockpileProblem(inp, joint_budget=data["budget"], cvar_alpha=data["alpha"], cvar_weight=data["lam"],
                            share=data["share"])
    t0 = time.perf_counter()
    m = prob.build()
    t1 = time.perf_counter()
    h = m.to_highspy()
    h.setOptionValue("output_flag", False)
    t2 = time.perf_counter()
    h.run()
    t3 = time.perf_counter()
    return {"build": t1 - t0, "export": t2 - t1, "run": t3 - t2, "objective": h.getInfo().objective_function_value,
            "rows": int(m.ncons), "cols": int(m.nvars)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=5000)
    ap.add_argument("--commodities", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20251028)
    ap.add_argument("--quick", action="store_true", help="smoke mode: 200 scenarios × 5 commodities")
    args = ap.parse_args()
    if args.quick:
        args.scenarios, args.commodities = 200, 5
    data = synthetic(args.scenarios, args.commodities, args.seed)
    print(f"stockpile LP: {args.scenarios} scenarios × {args.commodities} commodities × 2 holders "
          f"(synthetic, seed {args.seed})")
    lin = run_linopy(data)
    print(f"  size: {lin['rows']:,} rows × {lin['cols']:,} columns")
    rows = [("linopy", lin)]
    py = Path(os.environ.get("CRITMIN_PYOMO_PYTHON", Path(__file__).parent / ".pyomo-venv" / "bin" / "python"))
    if py.exists():
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "data.npz"
            np.savez(npz, **data)
            script = Path(tmp) / "pyomo_lp.py"
            script.write_text(PYOMO_SCRIPT)
            proc = subprocess.run([str(py), str(script), str(npz)], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            rows.append(("pyomo", json.loads(proc.stdout.strip().splitlines()[-1])))
        else:
            print(f"  pyomo run failed:\n{proc.stderr[-2000:]}")
    else:
        print(f"  Pyomo skipped: no {py}. Create it with\n"
              "    python3 -m venv benchmarks/.pyomo-venv && benchmarks/.pyomo-venv/bin/pip install pyomo highspy numpy")
    print(f"  {'tool':8} {'build s':>9} {'export s':>9} {'HiGHS s':>9} {'(build+export)/HiGHS':>21} {'objective USD':>16}")
    for name, r in rows:
        ratio = (r["build"] + r["export"]) / r["run"]
        print(f"  {name:8} {r['build']:9.2f} {r['export']:9.2f} {r['run']:9.2f} {ratio:20.1%} {r['objective']:16,.0f}")
    if len(rows) == 2:
        rel = abs(rows[0][1]["objective"] - rows[1][1]["objective"]) / max(1.0, abs(rows[0][1]["objective"]))
        print(f"  same optimum: relative difference {rel:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
