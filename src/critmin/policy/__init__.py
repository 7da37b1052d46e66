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

_MEASURES = ("floor", "cfd", "offtake", "tariff")


def __getattr__(name: str):
    """``critmin.policy.floor|cfd|offtake|tariff(**options)`` and ``critmin.policy.permitting(project, …)``:
    the API of the ``critmin policy`` commands (:func:`critmin.api.policy_measure`, :func:`critmin.api.permitting`).
    The submodule ``critmin.policy.permitting`` wins once imported; call ``critmin.permitting`` then."""
    if name in _MEASURES:
        from critmin.policy.workflow import measure_result

        def measure(**options):
            return measure_result(name, **options)

        measure.__name__ = measure.__qualname__ = name
        measure.__doc__ = f"``critmin policy {name}``: see :func:`critmin.api.policy_measure`."
        return measure
    raise AttributeError(f"module 'critmin.policy' has no attribute {name!r}")
