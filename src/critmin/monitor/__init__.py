"""Monitoring and alerts: compare NEW data with the baseline (bundled dataset) and explain what moved.

* :mod:`critmin.monitor.rules` — the alert rules, pure functions over DataFrames;
* :mod:`critmin.monitor.validate` — reading and validating the new files (DataError with file/line/column);
* :mod:`critmin.monitor.workflow` — :func:`~critmin.monitor.workflow.run_monitor`;
* ``thresholds.yml`` — every threshold with its reason (critmin defaults, not published figures).
"""

import sys
import types


class _CallableModule(types.ModuleType):
    """``critmin.monitor`` is both this package and the API function :func:`critmin.api.monitor`: once the
    package is imported it shadows the lazy attribute of ``critmin``, so the package itself is callable."""

    def __call__(self, *args, **kwargs):
        from critmin.monitor.workflow import monitor_result

        return monitor_result(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
