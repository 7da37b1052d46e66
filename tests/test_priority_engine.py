"""The priority engine: supplier shares per stage, import reliance from every traded form, export controls on a
date, the rule, the composite and the reasons — on small hand-computed fixtures, then on the bundled data.

Every number asserted on a fixture is worked out by hand in the comment beside it. Scaled WGI (0 best … 10 worst)
is given directly where a test calls :func:`stage_indicators`; where the engine computes it from governance rows it
is ``(2.5 - mean) * 2``, so a mean of -0.5 gives 6.0, 1.5 gives 2.0 and 2.0 gives 1.0.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import critmin
from critmin import workflows
from critmin.errors import DataError
from critmin.importers import parse_importers
from critmin.methods import controls, reliance, supply
from critmin.methods.priorities import combine, control_hits
from critmin.methods.registry import load_params
from critmin.reference.catalog import Catalog
from critmin.workflows.priorities import _t_factors

D = dt.date
ALLIES = {"USA", "JPN", "AUS", "KOR", "CAN"}                      # CHN, TUR, IDN, CHL are outside
WGI = pd.Series({"CHN": 6.0, "AUS": 1.0, "CHL": 2.0, "TUR": 5.0, "IDN": 5.0, "USA": 1.0, "JPN": 1.0})
METHODS_NONE = pd.DataFrame(columns=["importer", "commodity", "stage", "geopolrisk_score", "eu_sr", "usgs_sr"])
TRADE_COLS = ["commodity", "stage", "nomenclature", "hs6", "exporter", "importer", "quantity", "value_usd"]
#: content factors of the fixtures: lithium carbonate 2 x 6.94 / 73.89 = 0.1879; metals 1.0
FACTORS = pd.DataFrame([("HS92", "283691", 0.1879), ("HS17", "280519", 1.0), ("HS17", "750210", 1.0)],
                       columns=["nomenclature", "hs6", "factor"])
NO_GAPS = pd.DataFrame(columns=["commodity", "form"])
SHARE, CONTROL_SHARE, W = 0.5, 0.25, 0.5


# ------------------------------------------------------------------------------------------------ helpers

def _production(*rows, year: int = 2025, basis: str = "content") -> pd.DataFrame:
    """USGS-like production rows ``(commodity, stage, country, tonnes)``; ``ROW`` is the residual."""
    df = pd.DataFrame(list(rows), columns=["commodity", "stage", "country", "value"])
    df["row_type"] = np.where(df["country"] == "ROW", "residual", "country")
    df["year"], df["unit"], df["basis"], df["estimated"], df["series"], df["source"] = (
        year, "t", basis, False, "test series", "test")
    return df


def _trade(*rows, year: int = 2024) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=TRADE_COLS)
    df["year"], df["unit"], df["source"] = year, "t", "test"
    return df


def _primary(*rows, content: bool = True) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["commodity", "country", "value"]).assign(content=content)


def _reliance(trade, primary, importers: str, commodities, gaps=NO_GAPS, **kw) -> pd.DataFrame:
    out = reliance.reliance_table(trade, FACTORS, gaps, primary, parse_importers(importers), list(commodities), **kw)
    return out.set_index(["importer", "commodity"], drop=False)


def _stage_table(shares: pd.DataFrame, importers: dict[str, pd.DataFrame | None], allies=ALLIES) -> pd.DataFrame:
    """Per-importer stage indicators with ``country_shares``, as the engine builds them (t per importer)."""
    cs = shares.groupby(["commodity", "stage"]).apply(
        lambda g: dict(zip(g["country"], g["share"], strict=True)), include_groups=False).rename("country_shares")
    parts = [supply.stage_indicators(shares, WGI, t, allies).merge(cs.reset_index(), on=["commodity", "stage"])
             .assign(importer=label) for label, t in importers.items()]
    return pd.concat(parts, ignore_index=True)


def _universe(importers, commodities) -> pd.DataFrame:
    return pd.DataFrame([{"importer": i, "commodity": c, "usgs_critical_2025": False, "no_data_reason": ""}
                         for i in importers for c in commodities])


def _hand_reliance(importer: str, commodity: str, **values) -> dict:
    """One reliance row in :data:`reliance.COLUMNS` (defaults: unknown, no partner)."""
    row = {"importer": importer, "commodity": commodity, "reliance": np.nan, "reliance_low": np.nan,
           "reliance_high": np.nan, "reliance_code": "", "reliance_rule": "", "reliance_note": "unknown: test",
           "reliance_trade": np.nan, "domestic_production_t": np.nan, "import_value_usd": np.nan,
           "export_value_usd": 0.0, "top_import_partner": "", "top_import_share": np.nan, "import_basis": "",
           "trade_top_partner": "", "trade_top_share": np.nan, "import_gaps": ""}
    row.update(values)
    return row


def _combine(uni, ind, rel, hits=None, methods=METHODS_NONE, allies=ALLIES) -> pd.DataFrame:
    hits = hits if hits is not None else pd.DataFrame(columns=["importer", "commodity", "stage", "event_id", "measure",
                                                                "label", "issuer_share"])
    out = combine(uni, ind, rel, hits, methods, share_threshold=SHARE, impact_weight=W, allies=allies)
    return out.set_index(["importer", "commodity"], drop=False)


class TinyCatalog(Catalog):
    """Only the tables given; every other table is absent (as in a user dataset without it)."""

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        super().__init__()
        self.tiny = tables

    def table(self, name: str) -> pd.DataFrame:
        if name in self.tiny:
            return self.tiny[name]
        raise DataError(f"no table {name!r} in this test catalog")


def _governance(**means: float) -> pd.DataFrame:
    return pd.DataFrame([(c, 2024, i, v, "test") for c, v in means.items() for i in ("va", "pv", "ge", "rq", "rl", "cc")],
                        columns=["country", "year", "indicator", "value", "source"])


# ------------------------------------------------------------------------- 1. a refine-only commodity

def test_refine_only_commodity_enters_stage_and_priority_tables():
    # Gallium-like: USGS reports only refinery production, CHN 98 t and 2 t "Other countries".
    prod = _production(("gallium", "refine", "CHN", 98.0), ("gallium", "refine", "ROW", 2.0))
    shares = supply.stage_shares(prod, None, None, 2025)
    assert set(zip(shares["commodity"], shares["stage"], strict=True)) == {("gallium", "refine")}
    assert dict(zip(shares["country"], shares["share"], strict=True)) == pytest.approx({"CHN": 0.98, "ROW": 0.02})
    ind = _stage_table(shares, {"JPN": None})
    row = ind.iloc[0]
    # HHI over named suppliers only: 0.98^2 = 0.9604; HHI_WGI,t = 0.9604 x 6.0 x t 1 = 5.7624
    assert (row.stage, row.top_supplier, row.top_non_allied) == ("refine", "CHN", "CHN")
    assert row.top_share == pytest.approx(0.98) and row.top_non_allied_share == pytest.approx(0.98)
    assert row.allied_share == 0.0 and row.unallocated_share == pytest.approx(0.02)
    assert row.hhi == pytest.approx(0.9604) and row.hhi_wgi_t == pytest.approx(5.7624)

    rel = pd.DataFrame([_hand_reliance("JPN", "gallium", reliance=1.0, reliance_low=1.0, reliance_high=1.0,
                                       reliance_rule="no domestic production", reliance_note="none produced")])
    out = _combine(_universe(["JPN"], ["gallium"]), ind, rel).loc[("JPN", "gallium")]
    assert bool(out.rule_stage) and bool(out.priority) and not bool(out.net_exporter)
    assert (out.flag_stage, out.flag_supplier, out.risk_stage) == ("refine", "CHN", "refine")
    assert out.flag_share == pytest.approx(0.98)
    assert out.reason.startswith("refining: China 98% (2025, USGS MCS)")
    # An importer that counts CHN as allied: no stage flag (only the residual is outside), not a priority.
    ind2 = _stage_table(shares, {"JPN": None}, allies=ALLIES | {"CHN"})
    out2 = _combine(_universe(["JPN"], ["gallium"]), ind2, rel, allies=ALLIES | {"CHN"}).loc[("JPN", "gallium")]
    assert not bool(out2.rule_stage) and not bool(out2.priority)


def test_refine_only_commodity_through_the_engine():
    # The whole engine on a tiny catalog: production (refine only), one trade row, governance.
    prod = _production(("gallium", "refine", "CHN", 98.0), ("gallium", "refine", "ROW", 2.0), basis="Ga content")
    trade = _trade(("gallium", "metal", "HS17", "811299", "CHN", "JPN", 1.0, 1000.0))
    cat = TinyCatalog({"production": prod, "trade": trade, "governance": _governance(CHN=-0.5, JPN=1.5, USA=1.5)})
    assert "CHN" not in workflows.allied_members("msp")
    res = workflows.priority_engine("JPN", catalog=cat, as_of="2026-12-04")
    assert set(res.shares.loc[res.shares.commodity == "gallium", "stage"]) == {"refine"}
    st = res.stages[res.stages.commodity == "gallium"]
    assert list(st["stage"]) == ["refine"]
    assert st["hhi_wgi_t"].iloc[0] == pytest.approx(5.7624)     # 0.98^2 x (2.5 + 0.5) x 2
    row = res.table.set_index("commodity").loc["gallium"]
    assert bool(row.priority) and bool(row.rule_stage)
    assert row.flag_stage == "refine" and row.risk_stage == "refine"
    assert "refining" in row.reason and "China 98%" in row.reason
    assert row.supply_risk == pytest.approx(0.57624)


# ------------------------------------------------------------------------- 2. reliance from several forms

LITHIUM_PRIMARY = _primary(("lithium", "JPN", 10.0), ("lithium", "CHL", 50.0))
LITHIUM_TRADE = (("lithium", "refine", "HS92", "283691", "CHL", "JPN", 100.0, 1000.0),   # carbonate, 0.1879
                 ("lithium", "metal", "HS17", "280519", "AUS", "JPN", 50.0, 500.0),      # metal, 1.0
                 ("lithium", "metal", "HS17", "280519", "JPN", "KOR", 20.0, 200.0))      # metal exported


def test_reliance_from_several_forms_on_contained_content():
    rel = _reliance(_trade(*LITHIUM_TRADE), LITHIUM_PRIMARY, "JPN", ["lithium"]).loc[("JPN", "lithium")]
    # NI = 100 x 0.1879 + 50 x 1.0 - 20 x 1.0 = 18.79 + 50 - 20 = 48.79 t Li; D = 10 t
    # NIR = 48.79 / (10 + 48.79) = 48.79 / 58.79 = 0.829903...
    nir = 48.79 / 58.79
    assert rel.reliance_rule == "trade" and rel.reliance_code == ""
    assert rel.reliance == pytest.approx(nir) and rel.reliance_trade == pytest.approx(nir)
    assert rel.reliance_low == pytest.approx(nir) and rel.reliance_high == pytest.approx(nir)
    assert rel.domestic_production_t == 10.0
    # by value: imports 1000 + 500 = 1500 USD, exports 200 USD; top partner CHL 1000 / 1500
    assert rel.import_value_usd == 1500.0 and rel.export_value_usd == 200.0
    assert rel.top_import_partner == "CHL" and rel.top_import_share == pytest.approx(2 / 3)
    assert rel.import_basis == "imports of lithium compounds and metal (BACI 2024, by value)"


def test_form_without_factor_over_five_percent_makes_reliance_unknown():
    # + lithium chloride (no content factor) for 100 USD: factored 1500 / 1600 = 93.75 % < 95 % -> unknown
    chloride = ("lithium", "refine", "HS17", "282739", "ARG", "JPN", 30.0, 100.0)
    rel = _reliance(_trade(*LITHIUM_TRADE, chloride), LITHIUM_PRIMARY, "JPN", ["lithium"]).loc[("JPN", "lithium")]
    assert np.isnan(rel.reliance) and np.isnan(rel.reliance_low) and np.isnan(rel.reliance_high)
    assert rel.reliance_rule == "" and np.isnan(rel.reliance_trade)
    assert rel.reliance_note == "unknown: traded forms without a published content factor"
    assert rel.import_value_usd == 1600.0
    # ... but 50 USD of it is within the 5 %: 1500 / 1550 = 96.8 % -> the NIR of the factored forms stands
    small = (*chloride[:-1], 50.0)
    rel = _reliance(_trade(*LITHIUM_TRADE, small), LITHIUM_PRIMARY, "JPN", ["lithium"]).loc[("JPN", "lithium")]
    assert rel.reliance_rule == "trade" and rel.reliance == pytest.approx(48.79 / 58.79)


def test_commodity_listed_in_gaps_is_unknown():
    gaps = pd.DataFrame({"commodity": ["lithium"], "form": ["lithium brine concentrate"]})
    rel = _reliance(_trade(*LITHIUM_TRADE), LITHIUM_PRIMARY, "JPN", ["lithium"], gaps=gaps).loc[("JPN", "lithium")]
    assert np.isnan(rel.reliance) and np.isnan(rel.reliance_low) and rel.reliance_rule == ""
    assert rel.reliance_note == "unknown: forms not in the trade data: lithium brine concentrate"
    assert rel.import_gaps == "lithium brine concentrate"
    # the partners are still reported (by value, over the forms in the data)
    assert rel.top_import_partner == "CHL"


def test_production_not_in_content_is_unknown_and_says_so():
    # Same flows, but USGS gives lithium production in gross weight (not contained Li): no NIR on mixed bases.
    prim = LITHIUM_PRIMARY.assign(content=False)
    rel = _reliance(_trade(*LITHIUM_TRADE), prim, "JPN", ["lithium"]).loc[("JPN", "lithium")]
    assert np.isnan(rel.reliance) and np.isnan(rel.reliance_trade)
    assert rel.reliance_note == "unknown: USGS production is not on a contained-content basis"


# ------------------------------------------------------------------------- 3. net exporters

def _salient(*rows) -> pd.DataFrame:
    return pd.DataFrame([{"commodity": c, "year": y, "statistic": "net_import_reliance",
                          "detail": "Net import reliance as a percentage of apparent consumption", "value": v,
                          "value_low": np.nan, "value_high": np.nan, "code": code, "unit": "percent", "source": "test"}
                         for c, y, v, code in rows])


def test_published_net_exporter_is_never_a_priority():
    # USGS: boron E for 2025 (no number); a 2026 line is later than the year asked and is not used.
    sal = _salient(("boron", 2025, np.nan, "E"), ("boron", 2026, 30.0, ""))
    pub = reliance.published_reliance(sal, 2025).set_index("commodity")
    assert (pub.loc["boron", "value"], pub.loc["boron", "low"], pub.loc["boron", "high"]) == (0.0, 0.0, 0.0)
    assert pub.loc["boron", "code"] == "E" and pub.loc["boron", "year"] == 2025
    trade = _trade(("boron", "mine", "HS17", "252800", "TUR", "USA", 10.0, 100.0),
                   ("boron", "mine", "HS17", "252800", "USA", "JPN", 50.0, 500.0))
    prim = _primary(("boron", "USA", 40.0), ("boron", "TUR", 60.0), content=False)
    rel = _reliance(trade, prim, "USA", ["boron"], published=reliance.published_reliance(sal, 2025))
    r = rel.loc[("USA", "boron")]
    assert (r.reliance, r.reliance_low, r.reliance_high, r.reliance_code, r.reliance_rule) == (0.0, 0.0, 0.0, "E", "USGS")
    assert r.reliance_note.endswith("(E)")
    # TUR (non-allied) holds 60 % of mining: the stage rule fires, yet a net exporter is not a priority.
    shares = supply.stage_shares(_production(("boron", "mine", "TUR", 60.0), ("boron", "mine", "USA", 40.0)),
                                 None, None, 2025)
    out = _combine(_universe(["USA"], ["boron"]), _stage_table(shares, {"USA": None}), rel.reset_index(drop=True))
    o = out.loc[("USA", "boron")]
    assert bool(o.rule_stage) and o.flag_share == pytest.approx(0.6)
    assert bool(o.net_exporter) and not bool(o.priority)
    assert "import reliance 0%" in o.reason and o.reason.endswith("net exporter: not a priority")


def test_trade_computed_net_exporter():
    # AUS nickel: imports 10 t, exports 50 t (metal, factor 1): NI = 10 - 50 = -40 <= 0 -> 0, code E
    trade = _trade(("nickel", "metal", "HS17", "750210", "IDN", "AUS", 10.0, 100.0),
                   ("nickel", "metal", "HS17", "750210", "AUS", "JPN", 50.0, 500.0))
    prim = _primary(("nickel", "AUS", 100.0), ("nickel", "IDN", 300.0))
    rel = _reliance(trade, prim, "AUS", ["nickel"])
    r = rel.loc[("AUS", "nickel")]
    assert (r.reliance, r.reliance_low, r.reliance_high, r.reliance_code, r.reliance_rule) == (0.0, 0.0, 0.0, "E", "trade")
    assert r.reliance_trade == 0.0
    # IDN holds 300 / 400 = 75 % of mining: flagged by the stage rule, not a priority.
    shares = supply.stage_shares(_production(("nickel", "mine", "IDN", 300.0), ("nickel", "mine", "AUS", 100.0)),
                                 None, None, 2025)
    o = _combine(_universe(["AUS"], ["nickel"]), _stage_table(shares, {"AUS": None}),
                 rel.reset_index(drop=True)).loc[("AUS", "nickel")]
    assert bool(o.rule_stage) and bool(o.net_exporter) and not bool(o.priority)
    assert o.exposure == 0.0 and o.composite == 0.0


# ------------------------------------------------------------------------- 4. blocs: extra-bloc flows only

NICKEL_BLOC_TRADE = _trade(("nickel", "metal", "HS17", "750210", "CHN", "JPN", 100.0, 1000.0),
                           ("nickel", "metal", "HS17", "750210", "JPN", "KOR", 40.0, 400.0),   # intra-bloc
                           ("nickel", "metal", "HS17", "750210", "AUS", "KOR", 30.0, 300.0),
                           ("nickel", "metal", "HS17", "750210", "KOR", "USA", 10.0, 100.0))
NICKEL_BLOC_PRIMARY = _primary(("nickel", "JPN", 20.0), ("nickel", "KOR", 10.0), ("nickel", "AUS", 200.0))


def test_bloc_reliance_on_extra_bloc_flows():
    rel = _reliance(NICKEL_BLOC_TRADE, NICKEL_BLOC_PRIMARY, "JPN,KOR,JPN+KOR", ["nickel"])
    # JPN: NI = 100 - 40 = 60, D 20 -> 60 / 80 = 0.75;  KOR: NI = 40 + 30 - 10 = 60, D 10 -> 60 / 70
    assert rel.loc[("JPN", "nickel"), "reliance"] == pytest.approx(0.75)
    assert rel.loc[("KOR", "nickel"), "reliance"] == pytest.approx(60 / 70)
    assert rel.loc[("KOR", "nickel"), "top_import_partner"] == "JPN"        # 400 / 700 for KOR alone
    b = rel.loc[("JPN+KOR", "nickel")]
    # bloc, JPN -> KOR left out: imports CHN 100 + AUS 30 = 130 t (1300 USD), exports to USA 10 t (100 USD)
    # NI = 120, D = 20 + 10 = 30 -> 120 / 150 = 0.8
    assert b.reliance_rule == "trade" and b.reliance == pytest.approx(0.8)
    assert b.domestic_production_t == 30.0
    assert b.import_value_usd == 1300.0 and b.export_value_usd == 100.0        # 1700 / 500 with intra-bloc flows
    assert b.top_import_partner == "CHN" and b.top_import_share == pytest.approx(1000 / 1300)
    # only the importers asked for are returned (the members are computed but not shown)
    only_bloc = _reliance(NICKEL_BLOC_TRADE, NICKEL_BLOC_PRIMARY, "JPN+KOR", ["nickel"])
    assert list(only_bloc["importer"]) == ["JPN+KOR"]
    assert only_bloc["reliance"].iloc[0] == pytest.approx(0.8)


def test_bloc_without_domestic_production_is_fully_reliant():
    trade = _trade(("cobalt", "metal", "HS17", "810520", "COD", "JPN", 50.0, 500.0),
                   ("cobalt", "metal", "HS17", "810520", "JPN", "KOR", 30.0, 300.0),
                   ("cobalt", "metal", "HS17", "810520", "KOR", "USA", 5.0, 50.0))
    prim = _primary(("cobalt", "COD", 100.0), ("cobalt", "AUS", 10.0))
    b = _reliance(trade, prim, "JPN+KOR", ["cobalt"]).loc[("JPN+KOR", "cobalt")]
    # no member produces; extra-bloc imports 500 USD > exports 50 USD -> 100 %
    assert (b.reliance, b.reliance_low, b.reliance_high) == (1.0, 1.0, 1.0)
    assert b.reliance_rule == "no domestic production"
    assert b.reliance_note == "USGS lists no JPN+KOR production of cobalt; imports exceed exports by value"
    assert b.import_value_usd == 500.0 and b.export_value_usd == 50.0
    assert b.top_import_partner == "COD" and b.top_import_share == 1.0


# ------------------------------------------------------------------------- 5. blocs with unknown members

# IDN -> JPN nickel ore without a content factor (500 USD); AUS -> KOR refined nickel 60 t (600 USD)
ORE_AND_METAL = _trade(("nickel", "mine", "HS17", "260400", "IDN", "JPN", 1000.0, 500.0),
                       ("nickel", "metal", "HS17", "750210", "AUS", "KOR", 60.0, 600.0))


def test_bloc_with_an_unknown_member_is_unknown_and_names_it():
    # JPN produces (D 20) and imports only ore without a factor -> unknown. KOR: 60 / (40 + 60) = 0.6.
    prim = _primary(("nickel", "JPN", 20.0), ("nickel", "KOR", 40.0), ("nickel", "AUS", 100.0))
    rel = _reliance(ORE_AND_METAL, prim, "JPN,KOR,JPN+KOR", ["nickel"])
    assert np.isnan(rel.loc[("JPN", "nickel"), "reliance_low"])
    assert rel.loc[("KOR", "nickel"), "reliance"] == pytest.approx(0.6)
    b = rel.loc[("JPN+KOR", "nickel")]
    # bloc: factored 600 of 1100 USD (55 %) -> unknown, no bounds since JPN is unknown
    assert np.isnan(b.reliance) and np.isnan(b.reliance_low) and np.isnan(b.reliance_high)
    assert b.reliance_note == "unknown: traded forms without a published content factor; member unknown: JPN"


def test_bloc_with_known_members_not_computable_is_bounded():
    # JPN produces none and imports > exports -> 1.0 (no domestic production); KOR 0.6 (trade).
    prim = _primary(("nickel", "KOR", 40.0), ("nickel", "AUS", 100.0))
    rel = _reliance(ORE_AND_METAL, prim, "JPN,KOR,JPN+KOR", ["nickel"])
    assert rel.loc[("JPN", "nickel"), "reliance_rule"] == "no domestic production"
    assert rel.loc[("KOR", "nickel"), "reliance"] == pytest.approx(0.6)
    b = rel.loc[("JPN+KOR", "nickel")]
    # a bloc member produces, the summed flows are 55 % factored -> not computable; bounds [0.6, 1.0]
    assert np.isnan(b.reliance) and b.reliance_rule == "members"
    assert (b.reliance_low, b.reliance_high) == pytest.approx((0.6, 1.0))
    assert b.reliance_note.startswith("unknown, between 60% and 100% (members' values")
    # in the composite the exposure is the midpoint (0.6 + 1.0) / 2 = 0.8, not flagged as assumed
    shares = supply.stage_shares(_production(("nickel", "mine", "IDN", 100.0)), None, None, 2025)
    o = _combine(_universe(["JPN+KOR"], ["nickel"]), _stage_table(shares, {"JPN+KOR": None}),
                 rel.reset_index(drop=True)).loc[("JPN+KOR", "nickel")]
    assert o.exposure == pytest.approx(0.8) and not bool(o.exposure_assumed)
    assert "import reliance 60%–100%" in o.reason and "members" in o.reason


def test_shared_hs_code_gives_partners_not_tonnage():
    # HS 2017 811292 holds gallium with six other elements: partner shares for each, no content.
    trade = _trade(("gallium-germanium-group", "metal", "HS17", "811292", "CHN", "JPN", 1.0, 100.0),
                   ("gallium-germanium-group", "metal", "HS17", "811292", "DEU", "JPN", 1.0, 300.0))
    ex = reliance.expand_groups(trade)
    assert set(ex["commodity"]) == set(reliance.GROUP_COMMODITIES["gallium-germanium-group"]) and ex["group"].all()
    prim = _primary(("gallium", "CHN", 98.0), ("gallium", "JPN", 1.0))
    r = _reliance(trade, prim, "JPN", ["gallium"]).loc[("JPN", "gallium")]
    assert np.isnan(r.reliance) and np.isnan(r.import_value_usd)          # own-code import value: none
    assert r.top_import_partner == "DEU" and r.top_import_share == pytest.approx(0.75)   # 300 / 400
    assert "shared HS code" in r.import_basis


def test_element_inherits_its_group_reliance():
    rel = pd.DataFrame([_hand_reliance("JPN", "rare-earths", reliance=1.0, reliance_low=1.0, reliance_high=1.0,
                                       reliance_rule="no domestic production", reliance_note="none",
                                       top_import_partner="CHN", top_import_share=0.6, import_basis="b"),
                        _hand_reliance("JPN", "dysprosium")])
    parents = pd.DataFrame({"commodity": ["dysprosium"], "parent": ["rare-earths"], "note": ["x"]})
    out = reliance.inherit_parent(rel, parents).set_index("commodity")
    assert out.loc["dysprosium", "reliance"] == 1.0
    assert out.loc["dysprosium", "reliance_rule"] == "as rare-earths: no domestic production"
    assert out.loc["dysprosium", "top_import_partner"] == "CHN"
    assert out.loc["dysprosium", "import_basis"] == "as rare-earths: b"


# ------------------------------------------------------------------------- 6. export controls on a date

CTRL_COLS = ["event_id", "country", "commodity", "stage", "measure", "targets", "announced", "effective", "ended"]
# A CHN ban on processed gallium to the US (ends 2027-06-30), suspended 2025-11-09 .. 2026-11-27.
CTRL_EVENTS = pd.DataFrame([
    ("BAN", "CHN", "gallium", "processed", "ban", "USA", "2024-12-03", "2024-12-03", "2027-06-30"),
    ("SUSP", "CHN", "gallium", "processed", "suspension", "USA", "2025-11-09", "2025-11-09", "2026-11-27")],
    columns=CTRL_COLS)
CTRL_LINKS = pd.DataFrame({"event_id": ["SUSP"], "suspends": ["BAN"]})
TPARAMS = {"none": 1.0, "ban": 1.2, "suspension": 1.2, "licensing": 1.1}
# refine: CHN 40 %, AUS 35 %, residual 25 % (CHN below the 50 % stage rule, above the 25 % control share);
# mine: CHN 30 %, AUS 70 % (a stage the measure does not cover)
CTRL_PROD = _production(("gallium", "refine", "CHN", 40.0), ("gallium", "refine", "AUS", 35.0),
                        ("gallium", "refine", "ROW", 25.0), ("gallium", "mine", "CHN", 30.0),
                        ("gallium", "mine", "AUS", 70.0))


@pytest.mark.parametrize("day, status", [(D(2025, 6, 1), "in_force"), (D(2026, 6, 1), "suspended"),
                                         (D(2026, 12, 4), "in_force"), (D(2027, 7, 1), "ended")])
def test_controls_rule_and_t_only_when_in_force(day, status):
    m = controls.measures_as_of(CTRL_EVENTS, day, CTRL_LINKS)
    ban = m[m.event_id == "BAN"].iloc[0]
    assert ban.status == status and ban.stages == "refine;metal" and ban.target_iso3 == "USA"
    in_force = status == "in_force"

    # t: the ban's 1.2 for CHN at refine and metal, for the US only, and only while in force
    t_usa = _t_factors(None, m, TPARAMS, {"USA"})
    t_jpn = _t_factors(None, m, TPARAMS, {"JPN"})
    assert t_jpn.empty
    if in_force:
        got = sorted(zip(t_usa["stage"], t_usa["country"], t_usa["t"], strict=True))
        assert got == [("metal", "CHN", 1.2), ("refine", "CHN", 1.2)]
    else:
        assert t_usa.empty

    shares = supply.stage_shares(CTRL_PROD, None, None, 2025)
    ind = _stage_table(shares, {"USA": t_usa, "JPN": t_jpn})
    by = ind.set_index(["importer", "stage"])
    # refine HHI_WGI,t = 0.40^2 x 6.0 x t + 0.35^2 x 1.0 = 0.96 t + 0.1225 -> 1.2745 (t 1.2) or 1.0825 (t 1)
    assert by.loc[("USA", "refine"), "hhi_wgi_t"] == pytest.approx(1.2745 if in_force else 1.0825)
    assert by.loc[("JPN", "refine"), "hhi_wgi_t"] == pytest.approx(1.0825)
    # mine is not covered: 0.30^2 x 6 + 0.70^2 x 1 = 0.54 + 0.49 = 1.03 for both
    assert by.loc[("USA", "mine"), "hhi_wgi_t"] == pytest.approx(1.03)
    assert by.loc[("USA", "refine"), "top_non_allied_t"] == pytest.approx(1.2 if in_force else 1.0)

    hits = control_hits(ind, m, {"USA": {"USA"}, "JPN": {"JPN"}}, ALLIES, CONTROL_SHARE)
    if in_force:
        assert list(zip(hits["importer"], hits["stage"], hits["event_id"], strict=True)) == [("USA", "refine", "BAN")]
        assert hits["issuer_share"].iloc[0] == pytest.approx(0.40)
    else:
        assert hits.empty
    # reliance: all imports from AUS (allied), so neither the imports rule nor the stage rule (40 % < 50 %) fires
    rel = pd.DataFrame([_hand_reliance(i, "gallium", reliance=1.0, reliance_low=1.0, reliance_high=1.0,
                                       reliance_rule="no domestic production", top_import_partner="AUS",
                                       top_import_share=1.0, import_basis="imports") for i in ("USA", "JPN")])
    out = _combine(_universe(["USA", "JPN"], ["gallium"]), ind, rel, hits)
    usa, jpn = out.loc[("USA", "gallium")], out.loc[("JPN", "gallium")]
    assert not bool(usa.rule_stage) and not bool(usa.rule_imports)
    assert bool(usa.rule_controls) is in_force and bool(usa.priority) is in_force
    assert not bool(jpn.rule_controls) and not bool(jpn.priority)
    if in_force:
        assert usa.control_stage == "refine" and ban.label in usa.reason
        # supply_risk = refine HHI_WGI,t / 10 = 0.12745; exposure 1; single commodity -> impact NaN -> 0.5
        assert usa.composite == pytest.approx(0.12745 * 1.0 * (1 - W + W * 0.5))
    else:
        assert pd.isna(usa.controls_in_force) and "ban" not in usa.reason


def test_controls_through_the_engine():
    # The same measure under the register's ids (the packaged links mapping suspends CHN-2024-US-BAN by
    # CHN-2025-US-BAN-SUSP), in a tiny catalog: USA is hit only while the ban is in force; JPN never.
    ev = CTRL_EVENTS.replace({"event_id": {"BAN": "CHN-2024-US-BAN", "SUSP": "CHN-2025-US-BAN-SUSP"}})
    trade = _trade(("gallium", "metal", "HS17", "811299", "AUS", "USA", 1.0, 100.0),
                   ("gallium", "metal", "HS17", "811299", "AUS", "JPN", 1.0, 100.0))
    cat = TinyCatalog({"production": CTRL_PROD, "trade": trade, "export_controls": ev,
                       "governance": _governance(CHN=-0.5, AUS=2.0, USA=1.5, JPN=1.5)})
    got = {}
    for day in ("2025-06-01", "2026-06-01", "2026-12-04", "2027-07-01"):
        res = workflows.priority_engine("USA,JPN", catalog=cat, as_of=day)
        t = res.table.set_index("importer")
        got[day] = (bool(t.loc["USA", "rule_controls"]), bool(t.loc["USA", "priority"]),
                    bool(t.loc["JPN", "priority"]))
        st = res.stages.set_index(["importer", "stage"])
        # 0.96 x t + 0.1225 (AUS WGI mean 2.0 -> scaled 1.0): 1.2745 with the ban's t = 1.2, else 1.0825
        t_ban = float(load_params()["eu_sr"]["export_restriction_t"]["ban"])
        want = 0.96 * (t_ban if got[day][0] else 1.0) + 0.1225
        assert st.loc[("USA", "refine"), "hhi_wgi_t"] == pytest.approx(want)
        assert st.loc[("JPN", "refine"), "hhi_wgi_t"] == pytest.approx(1.0825)
        assert res.meta["as_of"] == day
    assert got == {"2025-06-01": (True, True, False), "2026-06-01": (False, False, False),
                   "2026-12-04": (True, True, False), "2027-07-01": (False, False, False)}


# ------------------------------------------------------------------------- 7. the composite without methods

def test_composite_by_hand_without_methods():
    prod = _production(("cobalt", "mine", "CHN", 60.0), ("cobalt", "mine", "AUS", 40.0),
                       ("nickel", "mine", "CHN", 100.0),
                       ("lithium", "mine", "AUS", 60.0), ("lithium", "mine", "CHL", 40.0))
    ind = _stage_table(supply.stage_shares(prod, None, None, 2025), {"JPN": None})
    rel = pd.DataFrame([
        _hand_reliance("JPN", "cobalt", reliance=0.5, reliance_low=0.5, reliance_high=0.5, reliance_rule="trade",
                       import_value_usd=100.0),
        _hand_reliance("JPN", "nickel", reliance_low=0.6, reliance_high=1.0, reliance_rule="members",
                       import_value_usd=300.0),
        _hand_reliance("JPN", "lithium")])                       # reliance and import value unknown
    out = _combine(_universe(["JPN"], ["cobalt", "lithium", "nickel"]), ind, rel)
    assert out[["geopolrisk_score", "eu_sr", "usgs_sr"]].isna().all().all()
    assert out["composite"].notna().all()
    co, ni, li = (out.loc[("JPN", c)] for c in ("cobalt", "nickel", "lithium"))
    # cobalt: HHI_WGI,t = 0.6^2 x 6 + 0.4^2 x 1 = 2.16 + 0.16 = 2.32 -> supply_risk 0.232; exposure 0.5;
    #         impact: percentile of 100 among {100, 300} = 0.5 -> 0.232 x 0.5 x (0.5 + 0.5 x 0.5) = 0.087
    assert (co.supply_risk, co.exposure, co.impact) == pytest.approx((0.232, 0.5, 0.5))
    assert co.composite == pytest.approx(0.087)
    # nickel: 1^2 x 6 = 6 -> 0.6; exposure midpoint (0.6 + 1.0) / 2 = 0.8; impact 1.0 -> 0.6 x 0.8 x 1.0 = 0.48
    assert (ni.supply_risk, ni.exposure, ni.impact) == pytest.approx((0.6, 0.8, 1.0))
    assert ni.composite == pytest.approx(0.48)
    # lithium: 0.6^2 x 1 + 0.4^2 x 2 = 0.36 + 0.32 = 0.68 -> 0.068; exposure unknown -> 1 (flagged);
    #          impact unknown -> 0.5: 0.068 x 1 x 0.75 = 0.051
    assert bool(li.exposure_assumed) and li.exposure == 1.0 and li.impact == 0.5
    assert li.supply_risk == pytest.approx(0.068) and li.composite == pytest.approx(0.051)
    for r in (co, ni, li):
        assert r.composite == pytest.approx(r.supply_risk * r.exposure * (1 - W + W * r.impact))
    # ranks: priorities first (cobalt CHN 60 %, nickel CHN 100 %), by composite; lithium (CHL 40 % < 50 %) last
    assert list(out.sort_values("rank")["commodity"]) == ["nickel", "cobalt", "lithium"]
    assert [bool(out.loc[("JPN", c), "priority"]) for c in ("nickel", "cobalt", "lithium")] == [True, True, False]
    # a methods frame without any column is just as empty
    out2 = _combine(_universe(["JPN"], ["cobalt", "lithium", "nickel"]), ind, rel, methods=pd.DataFrame())
    assert out2.loc[("JPN", "cobalt"), "composite"] == pytest.approx(0.087)


# ------------------------------------------------------------------------- 8. the bundled data

@pytest.fixture(scope="module")
def bundled():
    table, meta = workflows.priorities(importer="USA,JPN,USA+JPN", as_of="2026-12-04")
    return table.set_index(["importer", "commodity"], drop=False), meta


@pytest.mark.parametrize("commodity", ["gallium", "germanium"])
@pytest.mark.parametrize("importer", ["USA", "JPN", "USA+JPN"])
def test_bundled_gallium_germanium_are_priorities(bundled, importer, commodity):
    r = bundled[0].loc[(importer, commodity)]
    assert bool(r.priority)
    assert "refine" in {r.risk_stage, r.flag_stage}
    assert "China" in r.reason


def test_bundled_boron_usa_net_exporter(bundled):
    r = bundled[0].loc[("USA", "boron")]
    assert r.reliance == 0.0 and r.reliance_code == "E"
    assert bool(r.net_exporter) and not bool(r.priority)


def test_bundled_tungsten_and_antimony(bundled):
    t = bundled[0]
    usa = t.loc[("USA", "tungsten")]
    assert usa.reliance >= 0.5 and usa.reliance_low >= 0.5 and usa.reliance_code == ">50"
    sb = t.loc[("USA", "antimony")]
    assert sb.top_import_partner == "CHN" and "Total metal and oxide" in sb.import_basis
    # the bloc's tungsten reliance: a consumption-weighted mean of its members' values cannot lie below the
    # smaller member lower bound (nor above the larger upper bound)
    bloc, jpn = t.loc[("USA+JPN", "tungsten")], t.loc[("JPN", "tungsten")]
    lows, highs = [usa.reliance_low, jpn.reliance_low], [usa.reliance_high, jpn.reliance_high]
    assert pd.notna(bloc.reliance_low)
    assert bloc.reliance_low >= min(lows) - 1e-12 and bloc.reliance_high <= max(highs) + 1e-12


def test_bundled_universe_covers_the_usgs_list_and_every_row_has_a_reason(bundled):
    t, meta = bundled
    crit = critmin.load("critical_lists")
    ids = set(crit.loc[crit["list"] == "USGS 2025 critical minerals", "commodity"].astype(str))
    assert len(ids) >= 50
    for imp in ("USA", "JPN", "USA+JPN"):
        missing = ids - set(t.loc[t["importer"] == imp, "commodity"])
        assert not missing, (imp, sorted(missing))
    assert t.loc[t["commodity"].isin(ids), "usgs_critical_2025"].all()
    assert t["reason"].astype(str).str.strip().ne("").all()
    assert meta["as_of"] == "2026-12-04"
    assert not t.duplicated(["importer", "commodity"]).any()


def test_allied_share_is_a_range_where_much_is_unallocated():
    """A stage whose table lumps a large share into ROW cannot say the allied share is 0: it is a range."""
    import pandas as pd

    from critmin.methods.supply import stage_indicators

    shares = pd.DataFrame({"commodity": "x", "stage": "refine", "country": ["CHN", "ROW"], "share": [0.7, 0.3],
                           "year": 2024, "basis": "b", "origin": "o", "source": "s", "estimated": False,
                           "year_note": ""})
    row = stage_indicators(shares, pd.Series({"CHN": 6.0}), None, {"JPN"}).iloc[0]
    assert pd.isna(row.allied_share)
    assert row.allied_share_low == 0.0 and row.allied_share_high == pytest.approx(0.3)


def test_methods_use_the_engines_reliance():
    """The EU-style SR's IR and the USGS-style SR's TE at a stage are the engine's reliance from every traded
    form, not the stage's own ore codes (Japan imports antimony as metal; its ore trade alone gives 0)."""
    from critmin import workflows

    res = workflows.priority_engine("JPN", as_of="2026-12-04")
    rel = res.reliance.set_index(["importer", "commodity"]).loc[("JPN", "antimony"), "reliance"]
    assert rel == 1.0
    eu = res.runs["eu-sr/mine"]["import_reliance"].sel(commodity="antimony", importer="JPN")
    us = res.runs["usgs/mine"]["trade_exposure"].sel(commodity="antimony", importer="JPN")
    assert float(eu.squeeze()) == 1.0 and float(us.squeeze()) == 1.0
