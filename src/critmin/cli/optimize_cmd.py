"""``critmin stockpile plan|simulate`` and ``critmin invest select``: thin adapters over optimize.workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critmin.cli.common import ColumnsOpt, FormatOpt, OutOpt

Holders = Annotated[str, typer.Option("--holders", help="Stockholding consumers, comma list (USA, JPN)")]
Draws = Annotated[int, typer.Option("--draws", help="Monte Carlo draws (scenarios)", min=1)]
Months = Annotated[int, typer.Option("--months", help="Horizon, months", min=1, max=600)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed", min=0)]
Commodity = Annotated[str, typer.Option("--commodity", help="Commodities of the ensemble, comma list (default all)")]

#: Consumers of the supply-chain model that can hold stock.
HOLDERS = ("USA", "JPN")


def _commodities(text: str, option: str = "--commodity") -> list[str] | None:
    from critmin.cli.common import check_list, commodities_of_networks

    return check_list(text, commodities_of_networks(), option, "commodity")


def _holders(text: str) -> list[str]:
    from critmin.cli.common import check_list
    from critmin.errors import ConfigError

    found = check_list(text, HOLDERS, "--holders", "holder")
    if not found:
        raise ConfigError(f"--holders: give one or more of {', '.join(HOLDERS)}")
    return found


def _quantity(key: str, value) -> str:
    """A total with its unit, as people read it (``public_cost_usd`` 305199999.99 → ``USD 305.2 M``)."""
    from critmin.report.export import human

    if isinstance(value, dict):
        return ", ".join(f"{k}: {_quantity(key, v)}" for k, v in value.items())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("_usd"):
        a = abs(float(value))
        if a >= 1e9:
            return f"USD {value / 1e9:,.2f} bn"
        if a >= 1e6:
            return f"USD {value / 1e6:,.1f} M"
        return f"USD {human(float(value))}"
    if key.endswith("_per_musd"):
        return f"{human(float(value))} t per USD M"
    if key.endswith("_t"):
        return f"{human(float(value))} t"
    if "share" in key and isinstance(value, float) and abs(value) <= 1:
        return f"{100 * value:.2f} %"
    return human(value)


def _show(outcome, output, main: str) -> None:
    """Print or write a :class:`critmin.results.Result` of the optimisation: its main table, the others beside it,
    the totals the notes state and the notes."""
    from critmin.cli.common import err_console

    src = [{"id": "critmin-optimize", "title": "critmin optimisation"}]
    # the terminal shows the decisive columns of wide tables; files keep every column
    terminal = {"portfolio": ["rank", "project_id", "country", "commodity", "selected", "p_produces_within",
                              "median_months_to_production", "grant_usd_m", "loan_usd_m", "equity_usd_m",
                              "public_cost_usd", "marginal_shortfall_avoided_t", "marginal_cvar_95_avoided_t",
                              "shortfall_avoided_t_per_musd"],
                "ineligible": ["project_id", "name", "reason"]}
    if main in outcome.tables:   # checked first: an unknown --columns is said before anything is written
        output.select(outcome.tables[main])
    for name, frame in outcome.tables.items():
        if output.fmt == "table" and name in terminal and not (name == main and output.columns):
            frame = frame[[c for c in terminal[name] if c in frame.columns]]
        if name == main:
            output.write(frame, src, title=name)
        elif output.fmt == "table":
            output.write(frame, src, title=name, select=False)
        elif output.out is not None:  # the other tables beside the main file: plan.csv -> plan_frontier.csv
            output.beside(name).write(frame, src, title=name, select=False)
    totals = {k: v for k, v in outcome.meta.items() if k != "notes" and f"{k}: {v}" in outcome.notes}
    if totals and output.fmt == "table":
        import pandas as pd

        output.write(pd.DataFrame({"total": list(totals), "value": [_quantity(k, v) for k, v in totals.items()]}),
                     title="totals", select=False)
    for note in outcome.notes:
        if not any(note == f"{k}: {v}" for k, v in totals.items()):
            err_console.print(f"[dim]note: {note}[/]", highlight=False)


def _budget_list(text: str) -> list[float] | None:
    from critmin.errors import ConfigError

    if not text.strip():
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--frontier: expected comma-separated budgets in USD, got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Add the ``stockpile`` and ``invest`` command groups to ``app``."""
    from critmin.cli.common import handled

    stock_app = typer.Typer(help="Complementary stockpile: plan (two-stage LP) and drawdown simulation.",
                            no_args_is_help=True)
    invest_app = typer.Typer(help="Finance portfolio: projects × instruments (MILP).", no_args_is_help=True)
    app.add_typer(stock_app, name="stockpile")
    app.add_typer(invest_app, name="invest")

    @stock_app.command("plan")
    @handled
    def plan(holders: Holders = "USA,JPN", draws: Draws = 2000, months: Months = 12, seed: Seed = 1,
             budget: Annotated[float | None, typer.Option("--budget", help="Per-holder budget, USD", min=0)] = None,
             joint_budget: Annotated[float | None, typer.Option("--joint-budget", help="Joint budget, USD",
                                                                min=0)] = None,
             share: Annotated[float, typer.Option("--share", help="Share of remaining stock partners may draw (0-1)",
                                                  min=0, max=1)] = 1.0,
             cvar_alpha: Annotated[float, typer.Option("--cvar-alpha", help="CVaR level (0-1, e.g. 0.95)", min=0,
                                                       max=1)] = 0.95,
             cvar_weight: Annotated[float, typer.Option("--cvar-weight", help="Weight of the CVaR term in the "
                                                                              "objective (≥ 0)", min=0)] = 0.0,
             min_days: Annotated[float | None, typer.Option("--min-days", help="Minimum stock, days", min=0)] = None,
             high_risk: Annotated[str, typer.Option("--high-risk", help="Commodities for the 180-day rule")] = "",
             commodity: Commodity = "",
             frontier: Annotated[str, typer.Option("--frontier", help="Budgets (USD) for the efficient frontier, "
                                                                     "e.g. 0,1e7,5e7,1e8")] = "",
             fmt: FormatOpt = "table", out: OutOpt = None, columns: ColumnsOpt = None) -> None:
        """Optimal stock per commodity × holder; vs stockpiling alone and rules of thumb; efficient frontier."""
        from critmin import api
        from critmin.cli.common import Output
        from critmin.errors import ConfigError
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        if budget is not None and joint_budget is not None:
            raise ConfigError("give --budget (per holder) or --joint-budget, not both")
        hold = _holders(holders)
        comms = _commodities(commodity)
        risky = _commodities(high_risk, "--high-risk") or []
        budgets = _budget_list(frontier)
        res = api.stockpile(hold, draws=draws, months=months, seed=seed, budget=budget, joint_budget=joint_budget,
                            share=share, cvar_alpha=cvar_alpha, cvar_weight=cvar_weight, min_days=min_days,
                            high_risk=risky, commodity=comms, frontier=budgets, catalog=Catalog())
        _show(res, output, "plan")

    @stock_app.command("simulate")
    @handled
    def simulate(plan_csv: Annotated[Path, typer.Option("--plan", help="CSV: commodity, holder, stock_t (as "
                                                                       "written by stockpile plan --out plan.csv)")],
                 holders: Holders = "USA,JPN", draws: Draws = 2000, months: Months = 12, seed: Seed = 1,
                 share: Annotated[float, typer.Option("--share", help="Share of remaining stock partners may draw "
                                                                      "(0-1)", min=0, max=1)] = 1.0,
                 fmt: FormatOpt = "table", out: OutOpt = None, columns: ColumnsOpt = None) -> None:
        """Month-by-month drawdown of a plan against the ensemble."""
        from critmin import api
        from critmin.cli.common import Output, check_file
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        check_file(plan_csv, "--plan")
        res = api.stockpile_simulate(plan_csv, _holders(holders), draws=draws, months=months, seed=seed,
                                     share=share, catalog=Catalog())
        _show(res, output, "drawdown")

    @invest_app.command("select")
    @handled
    def select(budgets: Annotated[str, typer.Option("--budgets", help="USD m per instrument: grant=100,loan=500")],
               candidates: Annotated[Path | None, typer.Option("--candidates", help="Your projects CSV")] = None,
               instruments: Annotated[Path | None, typer.Option("--instruments", help="Instrument cost CSV")] = None,
               holders: Holders = "USA,JPN", draws: Draws = 2000, months: Months = 12, seed: Seed = 1,
               start_year: Annotated[int, typer.Option("--start-year", help="First year of the horizon",
                                                       min=2000, max=2100)] = 2026,
               max_country_share: Annotated[float, typer.Option("--max-country-share", help="Largest share of the "
                                                                "new capacity in one country (0-1)", min=0,
                                                                max=1)] = 1.0,
               certified_only: Annotated[bool, typer.Option("--certified-only", help="Only projects with a "
                                                            "responsible-sourcing certification")] = False,
               track: Annotated[str, typer.Option("--track", help="Permitting track: ordinary | fast41 (US "
                                                  "projects) | eu_crma (EU projects); ordinary elsewhere")] = "ordinary",
               commodity: Commodity = "", fmt: FormatOpt = "table", out: OutOpt = None,
               columns: ColumnsOpt = None) -> None:
        """Ranked portfolio of projects × instruments, evaluated by re-running the ensemble with the new capacity."""
        from critmin import api
        from critmin.cli.common import Output, check_choice, check_file
        from critmin.errors import ConfigError
        from critmin.optimize.workflow import parse_budgets
        from critmin.policy.permitting import TRACKS
        from critmin.reference.catalog import Catalog

        output = Output.check(fmt, out, columns)
        parsed = parse_budgets(budgets)
        check_file(candidates, "--candidates")
        check_file(instruments, "--instruments")
        if not parsed:
            raise ConfigError("--budgets: give instrument=USD_m pairs, e.g. grant=500,loan=3000")
        if instruments is None:   # your instrument CSV may name others
            from critmin.optimize.portfolio import INSTRUMENTS

            for name in parsed:
                check_choice(name, INSTRUMENTS.index, "--budgets", "instrument")
        negative = [f"{k}={v:g}" for k, v in parsed.items() if v < 0]
        if negative:
            raise ConfigError(f"--budgets: budgets are USD m ≥ 0 (got {', '.join(negative)})")
        track = check_choice(track, TRACKS, "--track", "track")
        hold = _holders(holders)
        comms = _commodities(commodity)
        res = api.invest(parsed, candidates=candidates, instruments=instruments, holders=hold, draws=draws,
                         months=months, seed=seed, start_year=start_year, max_country_share=max_country_share,
                         certified_only=certified_only, track=track, commodity=comms, catalog=Catalog())
        _show(res, output, "portfolio")
