"""``critmin policy floor|cfd|offtake|tariff|permitting``: pricing measures and permitting timelines.

Each command is a few lines calling :mod:`critmin.policy.workflow`; bad inputs raise ``CritminError`` and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
PathsOpt = Annotated[int, typer.Option("--paths", help="Monte Carlo paths")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded in the output)")]
CapexOpt = Annotated[float | None, typer.Option("--capex", help="Project capex, USD million (adds NPV/IRR)")]
UnitCostOpt = Annotated[float | None, typer.Option("--unit-cost", help="Project cash cost, in the price unit "
                                                                        "(e.g. USD/kg for ndpr)")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | csv | json | xlsx")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write to this file (default: standard output)")]


def register(app: typer.Typer) -> None:
    """Add the ``policy`` sub-app to ``app``."""
    from critmin.cli.common import handled
    from critmin.policy.defaults import DEFAULT_PATHS, DEFAULT_RATE, DEFAULT_SEED

    policy_app = typer.Typer(help="Pricing measures (floor, CfD, offtake, tariff) and permitting timelines.",
                             no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    def _measure(kind: str, fmt: str, out: Path | None, **kwargs) -> None:
        from critmin.cli.common import emit, err_console
        from critmin.policy.workflow import evaluate_measure
        from critmin.reference.catalog import Catalog

        cat = Catalog()
        frame, meta = evaluate_measure(kind, catalog=cat, **kwargs)
        emit(frame, fmt, out, cat.sources(meta["sources"]), title=meta["title"])
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
                                                                  "the floor paid to the government (0-1)")] = None,
              fmt: FormatOpt = "table", out: OutOpt = None) -> None:
        """Price floor: payout max(0, floor − benchmark) × volume; cost to government and project NPV/IRR."""
        _measure("floor", fmt, out, preset=preset, commodity=commodity, series=series, price=floor, volume_t=volume,
                 years=years, discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex, unit_cost=unit_cost,
                 upside_share=upside_share)

    @policy_app.command("cfd")
    @handled
    def cfd(commodity: CommodityOpt = None, series: SeriesOpt = None,
            strike: Annotated[float | None, typer.Option("--strike", help="Strike price, in the price unit")] = None,
            volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
            paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
            unit_cost: UnitCostOpt = None, preset: PresetOpt = None, fmt: FormatOpt = "table",
            out: OutOpt = None) -> None:
        """Two-sided contract for difference: (strike − price) × volume, positive = government pays."""
        _measure("cfd", fmt, out, preset=preset, commodity=commodity, series=series, price=strike, volume_t=volume,
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
                                                       "on resale (0-1)")] = 0.0,
                fmt: FormatOpt = "table", out: OutOpt = None) -> None:
        """Government offtake at a fixed price, resold at market: net cost and project NPV/IRR."""
        _measure("offtake", fmt, out, commodity=commodity, series=series, price=fixed_price, volume_t=volume,
                 years=years, discount_rate=rate, paths=paths, seed=seed, capex_usd_m=capex, unit_cost=unit_cost,
                 resale_haircut=haircut)

    @policy_app.command("tariff")
    @handled
    def tariff(commodity: CommodityOpt = None, series: SeriesOpt = None,
               reference: Annotated[float | None, typer.Option("--reference", help="Reference price for non-market "
                                                               "supply, in the price unit (variable duty)")] = None,
               tariff_rate: Annotated[float | None, typer.Option("--tariff-rate", help="Ad valorem duty, share "
                                                                 "(instead of --reference)")] = None,
               nonmarket_volume: Annotated[float | None, typer.Option("--nonmarket-volume", help="Non-market "
                                                                      "imports per year, t (duty base)")] = None,
               volume: VolumeOpt = None, years: YearsOpt = None, rate: RateOpt = DEFAULT_RATE,
               paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, capex: CapexOpt = None,
               unit_cost: UnitCostOpt = None, fmt: FormatOpt = "table", out: OutOpt = None) -> None:
        """Tariff or reference price on non-market supply: duty revenue and the project's NPV/IRR."""
        _measure("tariff", fmt, out, commodity=commodity, series=series, price=reference, rate=tariff_rate,
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
                                                                      "(from the supply-chain model)")] = None,
        params: Annotated[Path | None, typer.Option("--params", help="YAML replacing policy/permitting.yml")] = None,
        paths: PathsOpt = DEFAULT_PATHS, seed: SeedOpt = DEFAULT_SEED, fmt: FormatOpt = "table",
        out: OutOpt = None,
    ) -> None:
        """Time to first production of a project by permitting track; value of faster permitting."""
        from critmin.cli.common import emit, err_console
        from critmin.errors import ConfigError
        from critmin.policy.workflow import permitting as run
        from critmin.reference.catalog import Catalog

        try:
            saved = tuple(float(x) for x in months_saved.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--months-saved must be a comma list of numbers (got {months_saved!r})") from None
        cat = Catalog()
        frame, meta = run(project, track=track, horizon_months=horizon, months_saved=saved,
                          relief_t_per_month=relief, paths=paths, seed=seed, params=params, catalog=cat)
        emit(frame, fmt, out, cat.sources(meta["sources"]), title=meta["title"])
        for note in meta["notes"]:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
