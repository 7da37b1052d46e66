"""``critmin policy floor|cfd|offtake|tariff|permitting``: pricing measures and permitting timelines.

Each command is a few lines calling :mod:`critmin.policy.workflow`; bad inputs raise ``CritminError`` and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import ColumnsOpt, DataOpt, FormatOpt, OutOpt

PresetOpt = Annotated[str | None, typer.Option("--preset", help="Bundled preset (dod_mp_ndpr_floor) or a .yml path")]
CommodityOpt = Annotated[str | None, typer.Option("--commodity", help="Price model: ndpr, copper, nickel, aluminum, "
                                                                       "zinc, … (a commodity of the prices table)")]
SeriesOpt = Annotated[str | None, typer.Option("--series", help="Price series of the commodity (default: monthly "
                                                                 "if any, else the longest annual)")]
VolumeOpt = Annotated[float | None, typer.Option("--volume", help="Volume covered per year, t")]
YearsOpt = Annotated[int | None, typer.Option("--years", help="Duration of the measure and of the cash flows, "
                                                               "years (default: preset, else 10)")]
RateOpt = Annotated[float, typer.Option("--rate", help="Discount rate per year, nominal (default 0.05: a round "
                                                        "input, not a cited rate)")]
PathsOpt = Annotated[int, typer.Option("--paths", help="Monte Carlo paths (100 to 1,000,000)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded in the output)", min=0)]
CapexOpt = Annotated[float | None, typer.Option("--capex", help="Project capex, USD million (adds NPV/IRR)", min=0)]
UnitCostOpt = Annotated[float | None, typer.Option("--unit-cost", help="Project cash cost, in the price unit "
                                                                        "(e.g. USD/kg for ndpr)", min=0)]


def register(app: typer.Typer) -> None:
    """Add the ``policy`` sub-app to ``app``."""
    from critmin.cli.common import handled
    from critmin.policy.defaults import DEFAULT_PATHS, DEFAULT_RATE, DEFAULT_SEED

    policy_app = typer.Typer(help="Pricing measures (floor, CfD, offtake, tariff) and permitting timelines.",
                             no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    def _measure(kind: str, fmt: str, out: Path | None, columns: str | None, data: Path | None, **kwargs) -> None:
        from critmin import api
        from critmin.cli.common import Output, check_choice, check_folder, err_console
        from critmin.errors import ConfigError
        from critmin.policy.workflow import preset_names
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        check_folder(data, "--data")
        preset = kwargs.get("preset")
        if preset is not None and not (Path(preset).suffix in (".yml", ".yaml") and Path(preset).is_file()):
            check_choice(preset, preset_names(), "--preset", "preset")
        cat = Catalog(data)
        if kwargs.get("commodity") is not None:   # a commodity of the prices table, or a price model's alias
            from critmin.policy.prices import price_models

            known = set(cat.table("prices")["commodity"].astype(str)) | set(price_models()["aliases"])
            check_choice(kwargs["commodity"], sorted(known), "--commodity", "commodity")
        try:
            res = api.policy_measure(kind, catalog=cat, **kwargs)
            frame, meta = res.tables[kind], res.meta
        except ConfigError as exc:
            if str(exc).startswith("no price series '"):   # the series named by --series
                raise ConfigError(f"--series: {exc}") from None
            raise
        output.write(frame, cat.sources(meta["sources"]), title=meta["title"])
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)

    @policy_app.command("floor")
    @handled
    def floor(preset: PresetOpt = None, commodity: CommodityOpt = None, series: SeriesOpt = None,
              floor: Annotated[float | None, typer.Option("--floor", help="Floor price, in the price unit")] = None,
              volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
              paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
              unit_cost: UnitCostOpt = None,
              upside_share: Annotated[float | None, typer.Option("--upside-share", help="Share of the upside above "
                                                                  "the floor paid to the government (0-1)", min=0,
                                                                  max=1)] = None,
              data: DataOpt = None, fmt: FormatOpt = "table", out: OutOpt = None, columns: ColumnsOpt = None) -> None:
        """Price floor: payout max(0, floor − benchmark) × volume; cost to government and project NPV/IRR."""
        _measure("floor", fmt, out, columns, data, preset=preset, commodity=commodity, series=series, price=floor,
                 volume_t=volume, years=years, discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex,
                 unit_cost=unit_cost, upside_share=upside_share)

    @policy_app.command("cfd")
    @handled
    def cfd(commodity: CommodityOpt = None, series: SeriesOpt = None,
            strike: Annotated[float | None, typer.Option("--strike", help="Strike price, in the price unit")] = None,
            volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
            paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
            unit_cost: UnitCostOpt = None, preset: PresetOpt = None, data: DataOpt = None, fmt: FormatOpt = "table",
            out: OutOpt = None, columns: ColumnsOpt = None) -> None:
        """Two-sided contract for difference: (strike − price) × volume, positive = government pays."""
        _measure("cfd", fmt, out, columns, data, preset=preset, commodity=commodity, series=series, price=strike, volume_t=volume,
                 years=years, discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex, unit_cost=unit_cost)

    @policy_app.command("offtake")
    @handled
    def offtake(commodity: CommodityOpt = None, series: SeriesOpt = None,
                fixed_price: Annotated[float | None, typer.Option("--fixed-price", help="Purchase price, in the "
                                                                  "price unit")] = None,
                volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
                paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
                unit_cost: UnitCostOpt = None,
                haircut: Annotated[float, typer.Option("--resale-haircut", help="Share of the market price lost "
                                                       "on resale (0-1)", min=0, max=1)] = 0.0,
                data: DataOpt = None, fmt: FormatOpt = "table", out: OutOpt = None,
                columns: ColumnsOpt = None) -> None:
        """Government offtake at a fixed price, resold at market: net cost and project NPV/IRR."""
        _measure("offtake", fmt, out, columns, data, commodity=commodity, series=series, price=fixed_price, volume_t=volume,
                 years=years, discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex, unit_cost=unit_cost,
                 resale_haircut=haircut)

    @policy_app.command("tariff")
    @handled
    def tariff(commodity: CommodityOpt = None, series: SeriesOpt = None,
               reference: Annotated[float | None, typer.Option("--reference", help="Reference price for non-market "
                                                               "supply, in the price unit (variable duty)")] = None,
               tariff_rate: Annotated[float | None, typer.Option("--tariff-rate", help="Ad valorem duty, share "
                                                                 "(instead of --reference)", min=0)] = None,
               nonmarket_volume: Annotated[float | None, typer.Option("--nonmarket-volume", help="Non-market "
                                                                      "imports per year, t (duty base)", min=0)] = None,
               volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
               paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
               unit_cost: UnitCostOpt = None, data: DataOpt = None, fmt: FormatOpt = "table", out: OutOpt = None,
               columns: ColumnsOpt = None) -> None:
        """Tariff or reference price on non-market supply: duty revenue and the project's NPV/IRR."""
        from critmin.errors import ConfigError

        if reference is not None and tariff_rate is not None:
            raise ConfigError("give --reference (a reference price) or --tariff-rate (a duty), not both")
        _measure("tariff", fmt, out, columns, data, commodity=commodity, series=series, price=reference, rate=tariff_rate,
                 volume_t=volume if volume is not None else 0.0, nonmarket_volume_t=nonmarket_volume, years=years,
                 discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex, unit_cost=unit_cost)

    @policy_app.command("permitting")
    @handled
    def permitting(
        project: Annotated[str, typer.Option("--project", help="project_id of the projects table "
                                                               "(critmin data show projects)")],
        track: Annotated[str, typer.Option("--track", help="ordinary | fast41 (US) | eu_crma (EU)")] = "ordinary",
        horizon: Annotated[float, typer.Option("--horizon", help="Months from now within which production "
                                                                 "relieves the shortfall")] = 120.0,
        months_saved: Annotated[str, typer.Option("--months-saved", help="Months of faster permitting, comma "
                                                                         "list")] = "1,3,6,12",
        relief: Annotated[float | None, typer.Option("--relief", help="Shortfall relieved per producing month, t "
                                                                      "(from the supply-chain model)", min=0)] = None,
        params: Annotated[Path | None, typer.Option("--params", help="YAML replacing policy/permitting.yml")] = None,
        paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, fmt: FormatOpt = "table",
        out: OutOpt = None, columns: ColumnsOpt = None,
    ) -> None:
        """Time to first production of a project by permitting track; value of faster permitting."""
        from critmin import api
        from critmin.cli.common import Output, check_choice, check_file, check_range, err_console
        from critmin.errors import ConfigError
        from critmin.policy.permitting import TRACKS
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        track = check_choice(track, TRACKS, "--track", "track")
        check_range(horizon, "--horizon", 0.001, what="months")
        check_file(params, "--params")
        try:
            saved = tuple(float(x) for x in months_saved.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--months-saved must be a comma list of numbers (got {months_saved!r})") from None
        if not saved or min(saved) < 0:
            raise ConfigError(f"--months-saved must be a comma list of months ≥ 0 (got {months_saved!r})")
        cat = Catalog()
        check_choice(project, cat.table("projects")["project_id"].astype(str).tolist(), "--project", "project")
        res = api.permitting(project, track=track, horizon=horizon, months_saved=saved, relief=relief,
                             params=params, paths=paths, seed=seed, catalog=cat)
        frame, meta = res.tables["permitting"], res.meta
        output.write(frame, cat.sources(meta["sources"]), title=meta["title"])
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
