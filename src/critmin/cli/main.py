"""``critmin`` command line. Each command is a few lines calling workflows; errors exit with code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import (
    AsOfOpt,
    DataOpt,
    FormatOpt,
    ImporterOpt,
    OutOpt,
    emit,
    err_console,
    handled,
    out_console,
)

app = typer.Typer(help="critmin: allied critical-minerals supply security.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="The reference dataset: build, inspect, export.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.command()
@handled
def assess(
    method: Annotated[str, typer.Option("--method", help="geopolrisk | eu-sr | usgs | hhi")] = "geopolrisk",
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: Annotated[int | None, typer.Option("--year", help="Data year (default: latest with production and trade)")] = None,
    stage: Annotated[str, typer.Option("--stage", help="mine | refine | metal | component")] = "mine",
    data: DataOpt = None,
    params: Annotated[Path | None, typer.Option("--params", help="YAML overriding method parameters")] = None,
    groups: Annotated[Path | None, typer.Option("--groups", help="YAML with extra country groups")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Criticality of every commodity for the importers: GeoPolRisk, EU supply risk, USGS-style, HHI."""
    from critmin import workflows
    from critmin.reference.catalog import Catalog

    cat = Catalog(data)
    ds = workflows.assess(method, importer, year, stage, data, params, groups, catalog=cat)
    frame = workflows.tidy(ds)
    if fmt == "table":
        from critmin.cli.tables import assessment_view

        frame = assessment_view(frame, method)
    emit(frame, fmt, out, cat.sources(ds.attrs["sources"]),
         title=f"{method} · stage {stage} · year {int(ds['year'].values[0])} · {ds.attrs.get('citation', '')}")
    for note in ds.attrs.get("notes", []):
        err_console.print(f"[dim]note: {note}[/]")


@app.command()
@handled
def priorities(
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: Annotated[int | None, typer.Option("--year")] = None,
    data: DataOpt = None,
    params: Annotated[Path | None, typer.Option("--params")] = None,
    groups: Annotated[Path | None, typer.Option("--groups")] = None,
    allies: Annotated[str, typer.Option("--allies", help="Group whose suppliers count as allied")] = "msp",
    top: Annotated[int, typer.Option("--top", help="Rows per importer in the table view")] = 10,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Priority minerals per importer, with the thresholds used and the reason for each rank."""
    from critmin import workflows
    from critmin.reference.catalog import Catalog

    cat = Catalog(data)
    table, meta = workflows.priorities(importer, year, data, params, groups, allies, catalog=cat, as_of=as_of)
    if fmt == "table":
        from critmin.cli.tables import print_priorities

        print_priorities(out_console, table, meta, top=top)
        if out is None:
            return
    emit(table, "csv" if fmt == "table" else fmt, out, cat.sources(meta["sources"]))


@app.command()
@handled
def brief(
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: Annotated[int | None, typer.Option("--year")] = None,
    data: DataOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (index.html, tables/, tables.xlsx)")] = Path("brief"),
    monitor: Annotated[Path | None, typer.Option("--monitor", help="Folder with new data to check for alerts "
                                                                    "(see critmin monitor)")] = None,
    params: Annotated[Path | None, typer.Option("--params")] = None,
    groups: Annotated[Path | None, typer.Option("--groups")] = None,
    allies: Annotated[str, typer.Option("--allies")] = "msp",
    as_of: AsOfOpt = None,
) -> None:
    """The Rapid Response brief: an offline HTML report and the tables behind every number."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from critmin.report.brief import build_brief, write_brief

    steps = ["priorities", "criticality matrix", "vulnerabilities by stage", "method geopolrisk", "method eu-sr",
             "method usgs", "monitoring", "scenarios", "Monte Carlo risk", "stockpile and finance", "resource map",
             "writing"]
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), console=err_console,
                  transient=False) as bar:
        task = bar.add_task("brief", total=len(steps))

        def advance(msg: str) -> None:
            bar.update(task, description=msg, completed=steps.index(msg) if msg in steps else None)

        b = build_brief(importer, year, data, params, groups, allies, monitor, progress=advance, as_of=as_of)
        advance("writing")
        path = write_brief(b, out)
        bar.update(task, completed=len(steps), description="done")
    out_console.print(f"brief written to {path}/index.html (tables in {path}/tables/, {path}/tables.xlsx)")


@data_app.command("build")
@handled
def data_build(
    raw: Annotated[Path, typer.Option("--raw", help="Folder of the raw public files (each source in its own "
                                                    "subfolder with a SOURCE.md)")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: the package's bundled dataset)")] = None,
) -> None:
    """Build the bundled dataset from the raw public files (deterministic)."""
    from critmin.reference.build import build

    result = build(raw, out, console=err_console)
    out_console.print(f"built {len(result['tables'])} tables into {result['out']}")


@data_app.command("verify")
@handled
def data_verify(
    raw: Annotated[Path, typer.Option("--raw", help="Folder of the raw public files (each source in its own "
                                                    "subfolder with a SOURCE.md)")],
) -> None:
    """Rebuild from the raw files into a temporary folder and compare with the shipped dataset."""
    from critmin.reference.build import verify

    diffs = verify(raw, console=err_console)
    if diffs:
        for d in diffs:
            err_console.print(f"[red]differs:[/] {d}")
        raise typer.Exit(1)
    out_console.print("the shipped dataset is identical to a rebuild from the raw files")


@data_app.command("info")
@handled
def data_info(data: DataOpt = None) -> None:
    """Every source with publisher, licence, years and rows."""
    from critmin.cli.tables import print_sources
    from critmin.reference.catalog import Catalog

    print_sources(out_console, Catalog(data))


@data_app.command("show")
@handled
def data_show(
    table: Annotated[str, typer.Argument(help="production, reserves, trade, us_salient, import_sources, governance, "
                                               "prices, deposits, processing_shares, export_controls, projects, "
                                               "stockpile_programs, demand_parameters, cross_checks")],
    where: Annotated[list[str] | None, typer.Option("--where", "-w", help="Filter COLUMN=VALUE (repeatable; "
                                                                          "VALUE may be a,b,c)")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Max rows in the table view (0 = all)")] = 50,
    data: DataOpt = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Print or export rows of a table, filtered by column values."""
    from critmin.reference.catalog import Catalog
    from critmin.reference.query import filter_rows

    cat = Catalog(data)
    frame = filter_rows(cat.table(table), where or [])
    shown = frame.head(limit) if (fmt == "table" and limit and out is None) else frame
    ids = frame["source"].astype(str).unique().tolist() if "source" in frame else []
    emit(shown, fmt, out, cat.sources(ids), title=f"{table}: {len(frame)} rows"
         + (f" (first {len(shown)})" if len(shown) < len(frame) else ""))


def _register_extensions() -> None:
    from critmin.cli import (
        audit_cmd,
        map_cmd,
        monitor_cmd,
        optimize_cmd,
        policy_cmd,
        risk_cmd,
        scenario_cmd,
        serve_cmd,
    )

    map_cmd.register(app)
    monitor_cmd.register(app)
    policy_cmd.register(app)
    scenario_cmd.register(app)
    risk_cmd.register(app)
    optimize_cmd.register(app)
    audit_cmd.register(app)
    serve_cmd.register(app)


_register_extensions()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
