"""Monitoring and alerts: compare NEW data with the baseline (bundled dataset) and explain what moved.

* :mod:`critmin.monitor.rules` — the alert rules, pure functions over DataFrames;
* :mod:`critmin.monitor.validate` — reading and validating the new files (DataError with file/line/column);
* :mod:`critmin.monitor.workflow` — :func:`~critmin.monitor.workflow.run_monitor`;
* ``thresholds.yml`` — every threshold with its reason (critmin defaults, not published figures).
"""
