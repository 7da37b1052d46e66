"""``critmin monitor --data DIR``: alerts from new trade, price and export-control data (wired by ``register``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MONITOR_FORMATS = ("table", "csv", "json")


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` command to ``app``."""
    from critmin.cli.common import handled

    @app.command("monitor")
    @handled
    def monitor(
        data: Annotated[Path, typer.Option("--data", help="Folder with any of us_trade.csv, prices.csv, "
                                                          "export_controls.csv (README: Monitoring)")],
        thresholds: Annotated[Path | None, typer.Option("--thresholds", help="YAML overriding "
                                                                              "monitor/thresholds.yml")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
        out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: standard output)")] = None,
    ) -> None:
        """Compare new data with the bundled baseline; alert on import-share jumps, price spikes, new controls."""
        from critmin.cli.common import emit, err_console, out_console
        from critmin.errors import ConfigError
        from critmin.monitor.workflow import run_monitor
        from critmin.reference.catalog import Catalog

        if fmt not in MONITOR_FORMATS:
            raise ConfigError(f"unknown --format {fmt!r}; expected one of {', '.join(MONITOR_FORMATS)}")
        cat = Catalog()
        alerts, meta = run_monitor(data, catalog=cat, thresholds=thresholds)
        title = (f"critmin monitor · {len(alerts)} alert(s) · new files: {', '.join(meta['files'])} · "
                 "baseline: bundled dataset")
        if fmt == "table" and out is None and alerts.empty:
            out_console.print(f"{title} · nothing crossed a threshold")
        else:
            view = alerts[["severity", "rule", "commodity", "partner_or_country", "period", "message"]] \
                if fmt == "table" else alerts
            emit(view, fmt, out, cat.sources(meta["sources"]), title=title)
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
