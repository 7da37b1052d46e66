"""Pricing measures (price floors, CfDs, offtake, tariffs) and permitting timelines.

Modules
-------
prices
    Mean-reverting (log Ornstein–Uhlenbeck) price model with jumps: calibration and simulation.
measures
    Payment kernels of each measure, NPV and IRR, project cash flows.
permitting
    Permit-stage timeline model by country and track; time to first production.
workflow
    What the ``critmin policy`` commands call.
"""
