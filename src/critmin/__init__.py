"""critmin: allied critical-minerals supply security.

The public Python API mirrors the command line, one function per command, each returning the
stage's result (:class:`critmin.results.Result`: ``.to_frame()``, ``.to_xarray()``, ``.meta``)::

    import critmin
    prio = critmin.priorities(importer="USA,JPN,USA+JPN", as_of="2026-12-04")
    prio.to_frame().query("priority")                      # ranked priority minerals with reasons
    ds = critmin.assess("geopolrisk", importer="USA", year=2022)   # xarray.Dataset
    paths = critmin.scenario("china-ga-ge-2023").to_xarray()       # month-by-month paths
    mc = critmin.risk(draws=20_000, seed=1)                        # Monte Carlo risk
    plan = critmin.stockpile(holders="USA,JPN")                    # joint stockpile LP
    folio = critmin.invest("grant=500,loan=3000")                  # finance portfolio MILP
    floor = critmin.policy_measure("floor", preset="dod_mp_ndpr_floor")
    critmin.brief(out="brief")                                     # the Rapid Response brief

Functions
---------
load, assess, priorities, scenario, risk, stockpile, stockpile_simulate, invest, policy_measure,
permitting, monitor, map, brief — see :mod:`critmin.api` for the command each one mirrors.
"""

from __future__ import annotations

__all__ = ["assess", "brief", "invest", "load", "map", "monitor", "permitting", "policy_measure", "priorities",
           "risk", "scenario", "stockpile", "stockpile_simulate"]
from critmin._version import __version__ as __version__


def __getattr__(name: str):  # lazy: importing critmin does no work
    if name in __all__:
        from critmin import api

        return getattr(api, name)
    raise AttributeError(f"module 'critmin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__", "api", "results"])
