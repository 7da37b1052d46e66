"""``critmin`` command line. Each command is a few lines calling workflows; errors exit with code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import (
    AsOfOpt,
    ColumnsOpt,
    CritminGroup,
    DataOpt,
    FormatOpt,
    ImporterOpt,
    OutOpt,
    Output,
    check_choice,
    check_file,
    check_folder,
    check_importers,
    check_range,
    err_console,
    handled,
    out_console,
)
from critmin.errors import ConfigError

app = typer.Typer(cls=CritminGroup, help="critmin: allied critical-minerals supply security.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="The reference dataset: build, inspect, export.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ParamsOpt = Annotated[Path | None, typer.Option("--params", help="YAML overriding method parameters "
                                                                  "(methods/params.yml)")]
GroupsOpt = Annotated[Path | None, typer.Option("--groups", help="YAML with extra country groups (same format "
                                                                  "as groups.yml)")]
YearOpt = Annotated[int | None, typer.Option("--year", help="Data year (default: latest with production and trade)")]
AlliesOpt = Annotated[str, typer.Option("--allies", help="Group whose suppliers count as allied (msp, g7, quad, "
                                                          "eu27, usa-jpn or a bloc)")]


def _version(value: bool) -> None:
    if value:
        from critmin._version import __version__

        out_console.print(f"critmin {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit", is_eager=True,
                                                callback=_version)] = False) -> None:
    """critmin: allied critical-minerals supply security."""


def _check_inputs(*, data: Path | None = None, params: Path | None = None, groups: Path | None = None,
                  importer: str | None = None, allies: str | None = None, as_of: str | None = None,
                  year: int | None = None) -> None:
    """The options shared by assess, priorities and brief, checked before the work."""
    check_folder(data, "--data")
    check_file(params, "--params")
    check_file(groups, "--groups")
    if importer is not None:
        check_importers(importer, "--importer", groups)
    if allies is not None:
        check_importers(allies, "--allies", groups)
    if as_of is not None:
        from critmin.workflows import parse_as_of

        parse_as_of(as_of, year)


@app.command()
@handled
def assess(
    method: Annotated[str, typer.Option("--method", help="geopolrisk | eu-sr | usgs | hhi")] = "geopolrisk",
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: YearOpt = None,
    stage: Annotated[str, typer.Option("--stage", help="mine | refine | metal | component")] = "mine",
    data: DataOpt = None,
    params: ParamsOpt = None,
    groups: GroupsOpt = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    columns: ColumnsOpt = None,
) -> None:
    """Criticality of every commodity for the importers: GeoPolRisk, EU supply risk, USGS-style, HHI."""
    from critmin import api, workflows
    from critmin.reference.catalog import Catalog

    output = Output.check(fmt, out, columns)
    method = check_choice(method, workflows.METHODS, "--method", "method")   # --stage: checked first by assess
    _check_inputs(data=data, params=params, groups=groups, importer=importer)
    cat = Catalog(data)
    ds = api.assess(method, importer, year, stage, data, params, groups_file=groups, catalog=cat)
    frame = workflows.tidy(ds)
    if output.fmt == "table":
        from critmin.cli.tables import assessment_view

        frame = assessment_view(frame, method)
    output.write(frame, cat.sources(ds.attrs["sources"]),
                 title=" · ".join(x for x in (method, f"stage {stage}", f"year {int(ds['year'].values[0])}",
                                               ds.attrs.get("citation", "")) if x))
    for note in ds.attrs.get("notes", []):
        err_console.print(f"[dim]note: {note}[/]")


@app.command()
@handled
def priorities(
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: YearOpt = None,
    data: DataOpt = None,
    params: ParamsOpt = None,
    groups: GroupsOpt = None,
    allies: AlliesOpt = "msp",
    top: Annotated[int, typer.Option("--top", help="Rows per importer in the table view")] = 10,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    columns: ColumnsOpt = None,
) -> None:
    """Priority minerals per importer, with the thresholds used and the reason for each rank."""
    from critmin import api
    from critmin.reference.catalog import Catalog

    output = Output.check(fmt, out, columns)
    check_range(top, "--top", 1, what="rows per importer")
    _check_inputs(data=data, params=params, groups=groups, importer=importer, allies=allies, as_of=as_of, year=year)
    cat = Catalog(data)
    res = api.priorities(importer, year, data, params, groups, allies, as_of=as_of, catalog=cat)
    table, meta = res.tables["priorities"], res.meta
    if output.fmt == "table" and not output.columns:
        from critmin.cli.tables import print_priorities

        print_priorities(out_console, table, meta, top=top)
        return
    if output.fmt == "table":   # --columns: those columns of the first --top rows per importer
        table = table.groupby("importer", sort=False).head(top)
    output.write(table, cat.sources(meta["sources"]), title="Priority minerals")


@app.command()
@handled
def brief(
    importer: ImporterOpt = "USA,JPN,USA+JPN",
    year: YearOpt = None,
    data: DataOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (index.html, tables/, tables.xlsx)")] = Path("brief"),
    monitor: Annotated[Path | None, typer.Option("--monitor", help="Folder with new data to check for alerts "
                                                                    "(see critmin monitor)")] = None,
    params: ParamsOpt = None,
    groups: GroupsOpt = None,
    allies: AlliesOpt = "msp",
    as_of: AsOfOpt = None,
) -> None:
    """The Rapid Response brief: an offline HTML report and the tables behind every number."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from critmin import api
    from critmin.files import check_writable

    check_writable(out, option="--out", folder=True)
    check_folder(monitor, "--monitor")
    _check_inputs(data=data, params=params, groups=groups, importer=importer, allies=allies, as_of=as_of, year=year)
    from critmin.reference.catalog import Catalog
    from critmin.workflows import data_years

    data_years(Catalog(data), year)   # your files and --year, checked before the progress bar starts

    steps = ["priorities", "criticality matrix", "vulnerabilities by stage", "method geopolrisk", "method eu-sr",
             "method usgs", "monitoring", "scenarios", "Monte Carlo risk", "stockpile and finance", "resource map",
             "writing"]
    # the bar only on a terminal, and gone when done: a log or an error stays one clean line
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("brief", total=len(steps))

        def advance(msg: str) -> None:
            bar.update(task, description=msg, completed=steps.index(msg) if msg in steps else None)

        res = api.brief(importer, year, data, out, monitor, params, groups, allies, as_of=as_of, progress=advance)
        path = res.meta["written"]
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
    from critmin.files import check_writable
    from critmin.reference.build import build

    check_folder(raw, "--raw")
    if out is not None:
        check_writable(out, option="--out", folder=True)

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

    check_folder(raw, "--raw")

    diffs = verify(raw, console=err_console)
    if diffs:
        for d in diffs:
            err_console.print(f"[red]differs:[/] {d}")
        raise typer.Exit(1)
    out_console.print("the shipped dataset is identical to a rebuild from the raw files")


@data_app.command("info")
@handled
def data_info(data: DataOpt = None) -> None:
    """Every source with publisher, licence, years and rows; every table with its content hash (with --data, the
    tables your folder replaces are listed as yours)."""
    from critmin.cli.tables import print_sources
    from critmin.reference.catalog import Catalog

    check_folder(data, "--data")
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
    columns: ColumnsOpt = None,
) -> None:
    """Print or export rows of a table, filtered by column values."""
    from critmin.reference.catalog import ALL_TABLES, Catalog
    from critmin.reference.query import filter_rows

    output = Output.check(fmt, out, columns)
    check_range(limit, "--limit", 0, what="rows (0 = all)")
    check_folder(data, "--data")
    cat = Catalog(data)
    table = check_choice(table, dict.fromkeys([*ALL_TABLES, *cat.user]), "TABLE", "table")
    try:
        frame = filter_rows(cat.table(table), where or [])
    except ConfigError as exc:
        from critmin import suggest

        raise ConfigError("--where " + suggest.enrich(str(exc).replace("; columns:", "; known:"))) from None
    shown = frame.head(limit) if (output.fmt == "table" and limit) else frame
    ids = frame["source"].astype(str).unique().tolist() if "source" in frame else []
    output.write(shown, cat.sources(ids), title=f"{table}: {len(frame)} rows"
                 + (f" (first {len(shown)})" if len(shown) < len(frame) else ""))


def _register_extensions() -> None:
    from critmin.cli import (
        audit_cmd,
        dashboard_cmd,
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
    dashboard_cmd.register(app)


_register_extensions()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
