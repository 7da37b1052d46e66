"""``critmin stockpile plan|simulate`` and ``critmin invest select``: thin adapters over optimize.workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Holders = Annotated[str, typer.Option("--holders", help="Stockholding consumers, comma list")]
Draws = Annotated[int, typer.Option("--draws", help="Monte Carlo draws (scenarios)")]
Months = Annotated[int, typer.Option("--months", help="Horizon, months")]
Seed = Annotated[int, typer.Option("--seed")]
Fmt = Annotated[str, typer.Option("--format", help="table | csv | json | parquet | xlsx")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the main table to this file")]
Commodity = Annotated[str, typer.Option("--commodity", help="Commodities of the ensemble, comma list (default all)")]


def _commodities(text: str) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] or None


def _show(outcome, fmt: str, out: Path | None, main: str) -> None:
    from critmin.cli.common import emit, err_console

    src = [{"id": "critmin-optimize", "title": "critmin optimisation"}]
    # the terminal shows the decisive columns of wide tables; files keep every column
    terminal = {"portfolio": ["rank", "project_id", "country", "commodity", "selected", "p_produces_within",
                              "median_months_to_production", "grant_usd_m", "loan_usd_m", "equity_usd_m",
                              "public_cost_usd", "marginal_shortfall_avoided_t", "marginal_cvar_95_avoided_t",
                              "shortfall_avoided_t_per_musd"],
                "ineligible": ["project_id", "name", "reason"]}
    for name, frame in outcome.tables.items():
        if fmt == "table" and name in terminal:
            frame = frame[[c for c in terminal[name] if c in frame.columns]]
        if name == main:
            emit(frame, fmt, out, src, title=name)
        elif fmt == "table":
            emit(frame, "table", None, [], title=name)
        elif out is not None:  # the other tables beside the main file: plan.csv -> plan_frontier.csv
            emit(frame, fmt, out.with_name(f"{out.stem}_{name}{out.suffix}"), src, title=name)
    for note in outcome.notes:
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
             budget: Annotated[float | None, typer.Option("--budget", help="Per-holder budget, USD")] = None,
             joint_budget: Annotated[float | None, typer.Option("--joint-budget", help="Joint budget, USD")] = None,
             share: Annotated[float, typer.Option("--share", help="Share of remaining stock partners may draw")] = 1.0,
             cvar_alpha: Annotated[float, typer.Option("--cvar-alpha")] = 0.95,
             cvar_weight: Annotated[float, typer.Option("--cvar-weight")] = 0.0,
             min_days: Annotated[float | None, typer.Option("--min-days", help="Minimum stock, days")] = None,
             high_risk: Annotated[str, typer.Option("--high-risk", help="Commodities for the 180-day rule")] = "",
             commodity: Commodity = "",
             frontier: Annotated[str, typer.Option("--frontier", help="Budgets (USD) for the efficient frontier, "
                                                                     "e.g. 0,1e7,5e7,1e8")] = "",
             fmt: Fmt = "table", out: Out = None) -> None:
        """Optimal stock per commodity × holder; vs stockpiling alone and rules of thumb; efficient frontier."""
        from critmin.optimize.workflow import stockpile_plan
        from critmin.reference.catalog import Catalog

        res = stockpile_plan(Catalog(), holders=holders.split(","), draws=draws, months=months, seed=seed,
                             budget=budget, joint_budget=joint_budget, share=share, cvar_alpha=cvar_alpha,
                             cvar_weight=cvar_weight, min_days=min_days,
                             high_risk=[c for c in high_risk.split(",") if c], commodities=_commodities(commodity),
                             frontier=_budget_list(frontier))
        _show(res, fmt, out, "plan")

    @stock_app.command("simulate")
    @handled
    def simulate(plan_csv: Annotated[Path, typer.Option("--plan", help="CSV: commodity, holder, stock_t")],
                 holders: Holders = "USA,JPN", draws: Draws = 2000, months: Months = 12, seed: Seed = 1,
                 share: Annotated[float, typer.Option("--share")] = 1.0, fmt: Fmt = "table", out: Out = None) -> None:
        """Month-by-month drawdown of a plan against the ensemble."""
        from critmin.optimize.workflow import stockpile_simulate
        from critmin.reference.catalog import Catalog

        res = stockpile_simulate(Catalog(), plan_csv=plan_csv, holders=holders.split(","), draws=draws,
                                 months=months, seed=seed, share=share)
        _show(res, fmt, out, "drawdown")

    @invest_app.command("select")
    @handled
    def select(budgets: Annotated[str, typer.Option("--budgets", help="USD m per instrument: grant=100,loan=500")],
               candidates: Annotated[Path | None, typer.Option("--candidates", help="Your projects CSV")] = None,
               instruments: Annotated[Path | None, typer.Option("--instruments", help="Instrument cost CSV")] = None,
               holders: Holders = "USA,JPN", draws: Draws = 2000, months: Months = 12, seed: Seed = 1,
               start_year: Annotated[int, typer.Option("--start-year")] = 2026,
               max_country_share: Annotated[float, typer.Option("--max-country-share")] = 1.0,
               certified_only: Annotated[bool, typer.Option("--certified-only")] = False,
               track: Annotated[str, typer.Option("--track", help="Permitting track: ordinary | fast41 (US "
                                                  "projects) | eu_crma (EU projects); ordinary elsewhere")] = "ordinary",
               commodity: Commodity = "", fmt: Fmt = "table", out: Out = None) -> None:
        """Ranked portfolio of projects × instruments, evaluated by re-running the ensemble with the new capacity."""
        from critmin.optimize.workflow import invest_select, parse_budgets
        from critmin.reference.catalog import Catalog

        res = invest_select(Catalog(), candidates=candidates, budgets=parse_budgets(budgets), draws=draws,
                            months=months, seed=seed, holders=holders.split(","), start_year=start_year,
                            max_country_share=max_country_share, instruments=instruments,
                            certified_only=certified_only, track=track, commodities=_commodities(commodity))
        _show(res, fmt, out, "portfolio")
