"""``critmin scenario list | show | run``: supply-disruption scenarios on the multi-stage network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import ColumnsOpt, FormatOpt, OutOpt


def check_scenario(name: str) -> str:
    """A preset name or a scenario file, checked before the work: a typo gets the closest preset and the list."""
    from critmin.errors import ConfigError
    from critmin.supplychain.presets import list_presets

    presets = list_presets()
    if name in presets:
        return name
    path = Path(name)
    if path.is_file():
        return name
    if path.is_dir():
        raise ConfigError(f"NAME {name!r} is a folder; give a preset name or a scenario YAML file")
    from critmin import suggest

    looks_like_file = path.suffix.lower() in (".yml", ".yaml") or "/" in name or "\\" in name
    hint = suggest.did_you_mean(name, presets)
    if looks_like_file and not hint:
        raise ConfigError(f"NAME {name!r}: no such scenario file (presets: {', '.join(presets)})")
    raise ConfigError(f"NAME {name!r}: no preset or scenario file of that name; {hint + ' ' if hint else ''}"
                      f"presets: {', '.join(presets)} (critmin scenario list)")


def register(app: typer.Typer) -> None:
    """Add the ``scenario`` sub-app (list, show, run) to ``app``."""
    from critmin.cli.common import Output, check_importers, emit, err_console, handled, out_console

    sub = typer.Typer(help="Supply-disruption scenarios: presets from the export-controls catalogue or your YAML.",
                      no_args_is_help=True)
    app.add_typer(sub, name="scenario")

    @sub.command("list")
    @handled
    def list_command() -> None:
        """The shipped presets with their first sentence."""
        import pandas as pd

        from critmin.supplychain.presets import list_presets, load_preset

        rows = []
        for name in list_presets():
            sc = load_preset(name)
            rows.append({"preset": name, "commodities": ", ".join(sc.commodities),
                         "what": sc.description.split(". ")[0][:110]})
        emit(pd.DataFrame(rows), "table", None, [], title="Scenario presets (critmin scenario show NAME)")

    @sub.command("show")
    @handled
    def show_command(name: Annotated[str, typer.Argument(help="Preset name or YAML file")]) -> None:
        """Print a preset's YAML, or validate a scenario file and print what it holds."""
        from critmin.supplychain.presets import list_presets, preset_text
        from critmin.supplychain.scenario import load_scenario

        check_scenario(name)
        if name in list_presets():
            out_console.print(preset_text(name), markup=False, highlight=False)
            return
        sc = load_scenario(Path(name))
        out_console.print(f"{sc.name}: {len(sc.events)} event(s) on {', '.join(sc.commodities)}, "
                          f"{sc.horizon_months} months — valid", highlight=False)

    @sub.command("run")
    @handled
    def run_command(
        name: Annotated[str, typer.Argument(help="Preset name or YAML file")],
        importer: Annotated[str, typer.Option("--importer", help="USA, JPN, ROW and blocs of them (USA+JPN)")]
        = "USA,JPN,USA+JPN",
        fmt: FormatOpt = "table",
        out: OutOpt = None,
        columns: ColumnsOpt = None,
    ) -> None:
        """Run a scenario: shortfall, price, unmet demand per importer × commodity × stage."""
        from critmin import api
        from critmin.reference.catalog import Catalog
        from critmin.supplychain.run import resolve

        output = Output.check(fmt, out, columns)
        check_scenario(name)
        check_importers(importer)
        cat = Catalog()
        scenario = resolve(name)
        res = api.scenario(scenario, importer, catalog=cat)
        ds, summary = res.data, res.tables["summary"]
        sources = cat.sources(ds.attrs.get("source_ids", []))
        frame = summary
        if output.fmt == "table":
            # presentation only: fewer, rounded columns for the terminal; csv/json/parquet/xlsx/md keep all
            frame = summary.assign(unmet_value_musd=summary.unmet_value_usd / 1e6).rename(columns={
                "demand_t_per_month": "demand t/mo", "peak_shortfall_t": "peak short t/mo",
                "peak_shortfall_pct": "peak %", "cumulative_unmet_t": "unmet t",
                "unmet_value_musd": "unmet USD M", "peak_price_multiple": "price ×",
                "months_with_shortfall": "months short", "recovery_month": "recovered (month)",
                "days_of_cover_end": "cover d (end)"})
            frame = frame[["consumer", "commodity", "stage", "demand t/mo", "peak short t/mo", "peak %", "unmet t",
                           "unmet USD M", "price ×", "months short", "recovered (month)", "cover d (end)"]].round(1)
        frame = output.select(frame)   # an unknown --columns is said before anything is printed
        if output.fmt == "table":
            err_console.print(f"[bold]{scenario.name}[/] · data year {ds.attrs['data_year']} · "
                              f"{scenario.description}", highlight=False, soft_wrap=True)
        output.write(frame, sources, title=f"Scenario {scenario.name}", select=False)
        shown = set(summary["consumer"].astype(str)) if "consumer" in summary else set()
        for label in [str(c) for c in ds["consumer"].values if str(c) not in shown]:
            err_console.print(f"note: no rows for {label}: its demand is unknown for every commodity and stage "
                              "of this scenario (a bloc is unknown where a member is; see the assumptions)",
                              highlight=False, soft_wrap=True)
        if output.fmt == "table":
            notes = [a for a in ds.attrs.get("assumptions", [])
                     if any(a.startswith(c) for c in scenario.commodities)]
            for note in notes:
                err_console.print(f"[dim]assumption: {note}[/]", highlight=False, soft_wrap=True)
