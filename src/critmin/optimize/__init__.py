"""Optimisation: the complementary stockpile LP and the finance-portfolio MILP (linopy + HiGHS).

Submodules are imported on use (no work at import time): :mod:`critmin.optimize.stockpile`,
:mod:`critmin.optimize.portfolio`, :mod:`critmin.optimize.inputs`, :mod:`critmin.optimize.workflow`.
"""
