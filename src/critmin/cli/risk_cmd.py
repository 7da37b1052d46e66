"""``critmin risk``: Monte Carlo supply risk (expected shortfall, VaR, CVaR) from the export-control catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import ColumnsOpt, FormatOpt, OutOpt

#: A Dask scheduler address: [protocol://]host:port (IPv6 hosts in brackets).
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):\d{1,5}$")


def check_scale_extra(option: str) -> None:
    """``--workers`` / ``--scheduler`` need Dask's distributed scheduler: one line saying how to get it."""
    from critmin.cli.common import require_extra

    require_extra("scale", ("dask", "distributed"), option)


def register(app: typer.Typer) -> None:
    """Add the ``risk`` command to ``app``."""
    from critmin.cli.common import handled

    @app.command("risk")
    @handled
    def risk_command(
        importer: Annotated[str, typer.Option("--importer", help="Countries and blocs (USA,JPN,USA+JPN); the rest "
                                                                 "of the world is always modelled as ROW")]
        = "USA,JPN,USA+JPN",
        commodity: Annotated[str | None, typer.Option("--commodity", help="Comma list of commodity ids (default: "
                                                                          "the 9 priority commodities)")] = None,
        draws: Annotated[int, typer.Option("--draws", help="Number of Monte Carlo draws", min=1)] = 100_000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed (recorded in every output)", min=0)] = 0,
        months: Annotated[int, typer.Option("--months", help="Horizon in months (1 to 600)")] = 12,
        workers: Annotated[int | None, typer.Option("--workers", help="Run on a local Dask cluster of N processes "
                                                                      "(needs the scale extra)", min=1)] = None,
        scheduler: Annotated[str | None, typer.Option("--scheduler", help="Address host:port of a running Dask "
                                                                          "scheduler (needs the scale extra)")] = None,
        hazards: Annotated[Path | None, typer.Option("--hazards", help="YAML or CSV overriding hazards, magnitudes, "
                                                                       "background rate")] = None,
        fmt: FormatOpt = "table",
        out: OutOpt = None,
        columns: ColumnsOpt = None,
    ) -> None:
        """Risk of unmet demand over the horizon per importer × commodity × stage, and who drives it."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from critmin import api
        from critmin.cli.common import (
            Output,
            check_file,
            check_importers,
            check_list,
            check_range,
            commodities_of_networks,
            err_console,
            out_console,
        )
        from critmin.errors import ConfigError
        from critmin.reference.catalog import Catalog

        # everything checked before the (long) run
        output = Output.check(fmt, out, columns)
        check_importers(importer)
        comms = check_list(commodity, commodities_of_networks(), "--commodity", "commodity")
        check_range(months, "--months", 1, 600)
        check_file(hazards, "--hazards")
        if workers is not None and scheduler is not None:
            raise ConfigError("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
        if scheduler is not None:
            if not _ADDRESS.match(scheduler.strip()):
                raise ConfigError(f"--scheduler {scheduler!r}: expected an address host:port (e.g. "
                                  "tcp://10.0.0.5:8786)")
            check_scale_extra("--scheduler")
        if workers is not None:
            check_scale_extra("--workers")
        cat = Catalog()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
            task = bar.add_task(f"risk · {draws:,} draws · seed {seed}", total=None)
            try:
                res = api.risk(importer, comms, draws=draws, seed=seed, months=months, workers=workers,
                               scheduler=scheduler, hazards=hazards, catalog=cat,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
                ds, frame, meta = res.data, res.tables["risk"], res.meta
            except ModuleNotFoundError as exc:   # a Dask module missing after all
                raise ConfigError(f"--workers/--scheduler need the scale extra: pip install 'critmin[scale]' "
                                  f"(missing: {exc.name})") from None
            except (OSError, TimeoutError) as exc:
                if scheduler is None:
                    raise
                raise ConfigError(f"--scheduler {scheduler!r}: cannot reach the scheduler ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else 'no answer'})") from None
        if output.fmt == "table":   # seed and draw count go in the footer, not in every row
            frame = frame.drop(columns=["seed", "n_draws"]).rename(columns={"consumer": "importer"})
        output.write(frame, cat.sources(meta["sources"]),
                     title=f"Unmet demand over {months} months · {draws:,} draws · seed {seed} · t of each stage's basis")
        if output.fmt == "table":
            out_console.print(f"[dim]seed {ds.attrs['seed']} · {ds.attrs['n_draws']:,} draws · chunk "
                              f"{ds.attrs['chunk']:,} · {ds.attrs['scheduler']}[/]")
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
