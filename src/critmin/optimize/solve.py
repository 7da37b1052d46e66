"""Shared by the stockpile LP and the portfolio MILP: solving with HiGHS through linopy, diagnosing
infeasibility (the smallest constraint relaxation), and the weighted CVaR."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

import numpy as np
import xarray as xr

from critmin.constants import SCENARIO
from critmin.errors import CritminError

#: Constraint groups that cannot make the problem infeasible on their own (Unmet absorbs any shortfall);
#: the elastic diagnosis leaves them hard to keep the re-solve small.
#: Constraint groups that cannot make the problem infeasible on their own (Unmet absorbs any shortfall);
#: the elastic diagnosis leaves them hard to keep the re-solve small.
_ALWAYS_FEASIBLE = ("Release-limit", "Sharing-rule", "Demand-balance", "CVaR-excess")
_UNITS = {"Budget": "USD", "Budget-joint": "USD", "Storage-limit": "t", "Minimum-stock": "t", "Fixed-stock": "t"}
_DATA = {"Budget": "budget", "Budget-joint": "joint_budget", "Storage-limit": "storage_max",
         "Minimum-stock": "min_days × demand_annual / 365", "Fixed-stock": "the plan's stock"}


class InfeasibleError(CritminError):
    """The optimisation has no feasible solution; the message names the constraint group and data."""


def _solve(model, options: dict) -> tuple[str, str]:
    """HiGHS through linopy's direct API; linopy's own "potentially failed" log is silenced because the
    caller turns a non-optimal condition into a diagnosis."""
    import logging

    opts = {"output_flag": False, **options}
    log = logging.getLogger("linopy")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with _stdout_to_stderr():
            return model.solve(solver_name="highs", io_api="direct", progress=False, **opts)
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Silence file descriptor 1 for the block: HiGHS prints its banner from C++ before ``output_flag`` is
    read, which would corrupt ``--format csv|json`` written to standard output and clutter the terminal.
    Solver status and conditions are read from the model, so nothing the user needs is lost."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:          # no real stdout (embedded interpreter): nothing to protect
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _label(con_name: str, coords: dict) -> str:
    inside = ", ".join(f"{k}={v}" for k, v in coords.items())
    return f"{con_name}[{inside}]" if inside else con_name


def diagnose_infeasibility(build: Callable, options: dict, what: str) -> str:
    """Explain an infeasible model by an elastic re-solve.

    Every constraint group that can bind on its own (all but the always-feasible second-stage groups) gets
    a non-negative slack, weighted by 1 / max(|rhs|, 1) so a relaxation is measured relative to its limit;
    minimising the weighted slack names the smallest relative change that restores feasibility. Groups
    with a non-zero dual in that elastic optimum are the other side of the conflict.

    Returns
    -------
    str
        A message naming the constraint(s), labels, limits and the data field behind each.
    """
    m = build()
    slacks = {}
    obj = 0
    for name in list(m.constraints):
        if name in _ALWAYS_FEASIBLE:
            continue
        con = m.constraints[name]
        signs = set(np.unique(con.sign.values).tolist())
        lhs, rhs = con.lhs, con.rhs
        mask = con.mask if getattr(con, "mask", None) is not None else None
        coords = [rhs.indexes[dd] for dd in rhs.dims] or None
        scale = 1.0 / np.maximum(np.abs(rhs), 1.0)
        m.remove_constraints(name)
        sp = m.add_variables(lower=0, coords=coords, name=f"Elastic+{name}")
        sm = m.add_variables(lower=0, coords=coords, name=f"Elastic-{name}")
        if signs <= {"<="}:
            m.add_constraints(lhs - sm <= rhs, name=name, mask=mask)
        elif signs <= {">="}:
            m.add_constraints(lhs + sp >= rhs, name=name, mask=mask)
        else:
            m.add_constraints(lhs + sp - sm == rhs, name=name, mask=mask)
        slacks[name] = (sp, sm, rhs)
        obj = obj + (sp * scale).sum() + (sm * scale).sum()
    if not slacks:
        return f"{what} problem infeasible, and no constraint group can be relaxed to explain it"
    m.add_objective(obj, overwrite=True)
    _, cond = _solve(m, options)
    if cond != "optimal":
        return f"{what} problem infeasible (the elastic re-solve also failed: {cond})"
    relax, binding = [], []
    for name, (sp, sm, rhs) in slacks.items():
        val = (sp.solution.fillna(0) + sm.solution.fillna(0))
        unit = _UNITS.get(name, "")
        big = val.where(val > 1e-6 * np.maximum(np.abs(rhs), 1.0))
        for idx in np.argwhere(np.asarray(big.notnull()).reshape(big.shape) if big.ndim else
                               np.array([[bool(big.notnull())]]))[:3]:
            sel = {dd: big[dd].values[i] for dd, i in zip(big.dims, idx, strict=False)}
            amount = float(val.sel(sel)) if sel else float(val)
            limit = float(rhs.sel(sel)) if sel else float(rhs)
            relax.append(f"{_label(name, sel)} by {amount:,.6g} {unit} (limit {limit:,.6g} {unit}; data: "
                         f"{_DATA.get(name, 'user constraint')})")
        dual = m.constraints[name].dual if name in m.constraints else None
        if dual is not None and bool((np.abs(dual.fillna(0)) > 1e-9).any()) and big.count() == 0:
            nz = np.argwhere(np.abs(np.asarray(dual.fillna(0)).reshape(dual.shape or (1,))) > 1e-9)[:3]
            for idx in nz:
                sel = {dd: dual[dd].values[i] for dd, i in zip(dual.dims, idx, strict=False)}
                limit = float(rhs.sel(sel)) if sel else float(rhs)
                binding.append(f"{_label(name, sel)} ({limit:,.6g} {unit}; data: {_DATA.get(name, 'user constraint')})")
    msg = f"{what} problem infeasible: the smallest fix is to relax " + "; ".join(relax or ["(nothing found)"])
    if binding:
        msg += ". It conflicts with " + "; ".join(binding)
    return msg


# ---------------------------------------------------------------------- results
def weighted_cvar(loss: xr.DataArray, weight: xr.DataArray, alpha: float, dim: str = SCENARIO) -> xr.DataArray:
    """Conditional value-at-risk of ``loss`` along ``dim`` with probabilities ``weight``.

    The mean of the worst (1 − α) probability mass of losses (the discrete Rockafellar–Uryasev value,
    splitting the scenario at the α-quantile). Same unit as ``loss``.
    """

    def _one(vals: np.ndarray, w: np.ndarray) -> float:
        order = np.argsort(-vals, kind="stable")
        lv, lw = vals[order], w[order]
        tail = 1.0 - alpha
        cum = np.cumsum(lw)
        take = np.clip(tail - (cum - lw), 0.0, lw)
        return float((lv * take).sum() / tail)

    return xr.apply_ufunc(_one, loss, weight.broadcast_like(loss), input_core_dims=[[dim], [dim]],
                          vectorize=True)


