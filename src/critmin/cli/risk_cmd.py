"""``critmin risk``: Monte Carlo supply risk (expected shortfall, VaR, CVaR) from the export-control catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``risk`` command to ``app``."""
    from critmin.cli.common import emit, err_console, handled, out_console

    @app.command("risk")
    @handled
    def risk_command(
        importer: Annotated[str, typer.Option("--importer", help="Countries and blocs (USA,JPN,USA+JPN); the rest "
                                                                 "of the world is always modelled as ROW")]
        = "USA,JPN,USA+JPN",
        commodity: Annotated[str | None, typer.Option("--commodity", help="Comma list of commodity ids (default: "
                                                                          "the 9 priority commodities)")] = None,
        draws: Annotated[int, typer.Option("--draws", help="Number of Monte Carlo draws")] = 100_000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed (recorded in every output)")] = 0,
        months: Annotated[int, typer.Option("--months", help="Horizon in months")] = 12,
        workers: Annotated[int | None, typer.Option("--workers", help="Run on a local Dask cluster of N processes")]
        = None,
        scheduler: Annotated[str | None, typer.Option("--scheduler", help="Address of a running Dask scheduler")]
        = None,
        hazards: Annotated[Path | None, typer.Option("--hazards", help="YAML or CSV overriding hazards, magnitudes, "
                                                                       "background rate")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table | csv | json | parquet | xlsx")] = "table",
        out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: standard output)")]
        = None,
    ) -> None:
        """Risk of unmet demand over the horizon per importer × commodity × stage, and who drives it."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from critmin.errors import ConfigError
        from critmin.reference.catalog import Catalog
        from critmin.report.export import FORMATS
        from critmin.supplychain.risk import assess_risk

        if fmt not in FORMATS:   # checked before the (long) run
            raise ConfigError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
        if fmt in ("parquet", "xlsx") and out is None:
            raise ConfigError(f"--format {fmt} needs --out FILE")
        cat = Catalog()
        comms = [c.strip() for c in commodity.split(",") if c.strip()] if commodity else None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=False) as bar:
            task = bar.add_task(f"risk · {draws:,} draws · seed {seed}", total=None)
            ds, frame, meta = assess_risk(importer, comms, draws=draws, seed=seed, months=months, workers=workers,
                                          scheduler=scheduler, hazards_file=hazards, catalog=cat,
                                          progress=lambda done, total: bar.update(task, completed=done, total=total))
        if fmt == "table":   # seed and draw count go in the footer, not in every row
            frame = frame.drop(columns=["seed", "n_draws"]).rename(columns={"consumer": "importer"})
        emit(frame, fmt, out, cat.sources(meta["sources"]),
             title=f"Unmet demand over {months} months · {draws:,} draws · seed {seed} · t of each stage's basis")
        if fmt == "table":
            out_console.print(f"[dim]seed {ds.attrs['seed']} · {ds.attrs['n_draws']:,} draws · chunk "
                              f"{ds.attrs['chunk']:,} · {ds.attrs['scheduler']}[/]")
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
