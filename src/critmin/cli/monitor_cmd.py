"""``critmin monitor --data DIR``: alerts from new trade, price and export-control data (wired by ``register``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import ColumnsOpt, FormatOpt, OutOpt


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
        fmt: FormatOpt = "table",
        out: OutOpt = None,
        columns: ColumnsOpt = None,
    ) -> None:
        """Compare new data with the bundled baseline; alert on import-share jumps, price spikes, new controls."""
        from critmin import api
        from critmin.cli.common import Output, check_file, check_folder, err_console, out_console
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        check_folder(data, "--data")
        check_file(thresholds, "--thresholds")
        cat = Catalog()
        res = api.monitor(data, catalog=cat, thresholds=thresholds)
        alerts, meta = res.tables["alerts"], res.meta
        title = (f"critmin monitor · {len(alerts)} alert(s) · new files: {', '.join(meta['files'])} · "
                 "baseline: bundled dataset")
        if output.fmt == "table" and alerts.empty:
            out_console.print(f"{title} · nothing crossed a threshold")
        else:
            view = alerts[["severity", "rule", "commodity", "partner_or_country", "period", "message"]] \
                if output.fmt == "table" and not output.columns else alerts
            output.write(view, cat.sources(meta["sources"]), title=title)
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
