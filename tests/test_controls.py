"""Status of export-control measures on a date (critmin.methods.controls), the links mapping and the addenda."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from critmin.errors import DataError, MappingError
from critmin.methods import controls
from critmin.methods.controls import measures_as_of, parse_date, parse_targets

D = dt.date
COLS = ["event_id", "country", "commodity", "stage", "measure", "targets", "announced", "effective", "ended"]
NO_LINKS = pd.DataFrame({"event_id": [], "suspends": []})


def _events(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLS)


def _links(**links: str) -> pd.DataFrame:
    return pd.DataFrame({"event_id": list(links), "suspends": list(links.values())})


def _one(frame: pd.DataFrame, event_id: str, commodity: str | None = None) -> pd.Series:
    sel = frame[frame["event_id"] == event_id]
    if commodity is not None:
        sel = sel[sel["commodity"] == commodity]
    assert len(sel) == 1, sel
    return sel.iloc[0]


LICENCE = ("LIC", "CHN", "dysprosium", "processed;product", "licensing", "all", "2025-04-04", "2025-04-04", "")
BAN_US = ("BAN", "CHN", "gallium;germanium", "processed;product", "ban", "USA", "2024-12-03", "2024-12-03", "")
BAN_SUSP = ("SUSP", "CHN", "gallium;germanium", "processed;product", "suspension", "USA", "2025-11-09", "2025-11-09",
            "2026-11-27")


# ------------------------------------------------------------------------------------------------ status

def test_in_force():
    out = measures_as_of(_events(LICENCE), D(2025, 6, 1), NO_LINKS)
    row = _one(out, "LIC")
    assert (row.status, row.since, row.until, row.restricts) == ("in_force", D(2025, 4, 4), None, True)
    assert row.label == "China export licensing since 2025-04-04"
    assert row.stages == "refine;metal;component" and pd.isna(row.other_scope)
    assert row.target_iso3 == "all" and row.country == "CHN"


def test_announced_effective_later_and_not_yet_public():
    gab = ("GAB", "GAB", "manganese", "ore", "ban", "all", "2025-05-30", "2029-01-01", "")
    row = _one(measures_as_of(_events(gab), D(2026, 12, 4), NO_LINKS), "GAB")
    assert (row.status, row.since, row.until) == ("announced", D(2025, 5, 30), D(2028, 12, 31))
    assert row.stages == "mine"
    assert row.label == "Gabon export ban announced 2025-05-30, in force from 2029-01-01"
    # Before its announcement the measure is not public: no row at all.
    assert measures_as_of(_events(gab), D(2025, 5, 29), NO_LINKS).empty


def test_ended_and_end_date_inclusive():
    quota = ("Q", "CHN", "rare-earths", "ore;processed", "quota", "all", "2010-07", "2010", "2014-12-31")
    assert _one(measures_as_of(_events(quota), D(2014, 12, 31), NO_LINKS), "Q").status == "in_force"
    row = _one(measures_as_of(_events(quota), D(2015, 1, 1), NO_LINKS), "Q")
    assert (row.status, row.since, row.until) == ("ended", D(2014, 12, 31), None)
    assert row.label == "China export quota ended 2014-12-31"


def test_suspended_inside_the_window():
    out = measures_as_of(_events(BAN_US, BAN_SUSP), D(2026, 6, 1), _links(SUSP="BAN"))
    assert set(out["commodity"]) == {"gallium", "germanium"} and len(out) == 4
    ban = _one(out, "BAN", "gallium")
    assert (ban.status, ban.since, ban.until, ban.restricts) == ("suspended", D(2025, 11, 9), D(2026, 11, 27), True)
    assert ban.label == "China ban on exports to the US suspended until 2026-11-27"
    assert ban.target_iso3 == "USA"
    susp = _one(out, "SUSP", "gallium")
    assert (susp.status, susp.measure, susp.restricts) == ("in_force", "suspension", False)
    assert susp.until == D(2026, 11, 27)
    # The last day of the window is still suspended.
    assert _one(measures_as_of(_events(BAN_US, BAN_SUSP), D(2026, 11, 27), _links(SUSP="BAN")), "BAN",
                "gallium").status == "suspended"


def test_suspension_expired_measure_in_force_again():
    out = measures_as_of(_events(BAN_US, BAN_SUSP), D(2026, 12, 4), _links(SUSP="BAN"))
    ban = _one(out, "BAN", "germanium")
    assert (ban.status, ban.since, ban.until, ban.restricts) == ("in_force", D(2024, 12, 3), None, True)
    assert ban.label == "China ban on exports to the US in force since 2024-12-03 (suspension ended 2026-11-27)"
    susp = _one(out, "SUSP", "germanium")
    assert (susp.status, susp.restricts, susp.since) == ("ended", False, D(2026, 11, 27))


def test_suspended_before_it_took_effect_and_chained_extension():
    oct57 = ("O57", "CHN", "holmium", "processed;product", "licensing", "all", "2025-10-09", "2025-11-08", "")
    no70 = ("N70", "CHN", "rare-earths", "processed;product", "suspension", "all", "2025-11-07", "2025-11-07",
            "2026-11-10")
    links = _links(N70="O57")
    row = _one(measures_as_of(_events(oct57, no70), D(2025, 11, 7), links), "O57")
    assert (row.status, row.since, row.until) == ("suspended", D(2025, 11, 7), D(2026, 11, 10))
    # Announced but not yet suspended: the day before No. 70.
    assert _one(measures_as_of(_events(oct57, no70), D(2025, 11, 6), links), "O57").status == "announced"
    again = _one(measures_as_of(_events(oct57, no70), D(2026, 11, 11), links), "O57")
    assert again.status == "in_force" and again.since == D(2025, 11, 8)
    # An extension that starts the day the first window ends is chained into one suspension.
    ext = ("EXT", "CHN", "rare-earths", "processed", "suspension", "all", "2026-11-05", "2026-11-10", "2027-11-10")
    links2 = pd.concat([links, _links(EXT="O57")], ignore_index=True)
    row = _one(measures_as_of(_events(oct57, no70, ext), D(2026, 6, 1), links2), "O57")
    assert (row.status, row.until) == ("suspended", D(2027, 11, 10))
    assert _one(measures_as_of(_events(oct57, no70, ext), D(2026, 12, 4), links2), "O57").status == "suspended"


def test_unlinked_suspension_is_a_restriction():
    drc = ("COD", "COD", "cobalt", "ore;processed", "suspension", "all", "2025-02-22", "2025-02-22", "2025-10-15")
    row = _one(measures_as_of(_events(drc), D(2025, 6, 1), NO_LINKS), "COD")
    assert (row.status, row.restricts, row.until) == ("in_force", True, D(2025, 10, 15))
    assert row.label == "DR Congo export suspension since 2025-02-22 (until 2025-10-15)"
    # A blank 'suspends' (the shipped mapping's way of recording that decision) is no link either.
    row = _one(measures_as_of(_events(drc), D(2025, 6, 1), _links(COD="")), "COD")
    assert row.restricts


def test_partial_dates():
    assert parse_date("2010") == D(2010, 1, 1) and parse_date("2010", end=True) == D(2010, 12, 31)
    assert parse_date("2010-07") == D(2010, 7, 1) and parse_date("2010-07", end=True) == D(2010, 7, 31)
    assert parse_date("2024-02", end=True) == D(2024, 2, 29) and parse_date("2024-12-03") == D(2024, 12, 3)
    assert parse_date("") is None and parse_date(None) is None and parse_date(pd.NA) is None
    ore = ("IDN", "IDN", "nickel;bauxite", "ore", "ban", "all", "2014-01", "2014", "2017")
    assert _one(measures_as_of(_events(ore), D(2017, 12, 31), NO_LINKS), "IDN", "nickel").status == "in_force"
    row = _one(measures_as_of(_events(ore), D(2018, 1, 1), NO_LINKS), "IDN", "bauxite")
    assert (row.status, row.since) == ("ended", D(2017, 12, 31)) and row.label == "Indonesia export ban ended 2017"
    # Effective missing: the announcement starts the measure.
    nam = ("NAM", "NAM", "lithium", "ore", "ban", "all", "2023-06-08", "", "")
    row = _one(measures_as_of(_events(nam), D(2024, 1, 1), NO_LINKS), "NAM")
    assert (row.status, row.since) == ("in_force", D(2023, 6, 8))
    month = ("M", "MMR", "rare-earths", "ore", "disruption", "CHN", "2024-10", "2024-10", "")
    row = _one(measures_as_of(_events(month), D(2024, 10, 1), NO_LINKS), "M")
    assert row.status == "in_force" and row.label == "Myanmar supply disruption (exports to China) since 2024-10"


@pytest.mark.parametrize("column, value", [("effective", "2025-13-01"), ("announced", "June 2025"),
                                           ("ended", "2026-02-30")])
def test_bad_date_names_event_and_column(column, value):
    row = dict(zip(COLS, LICENCE, strict=True))
    row[column] = value
    with pytest.raises(DataError, match="'LIC'") as err:
        measures_as_of(pd.DataFrame([row]), D(2026, 1, 1), NO_LINKS)
    assert err.value.column == column and value in str(err.value)


def test_no_start_date_and_bad_stage():
    row = dict(zip(COLS, LICENCE, strict=True), announced="", effective="")
    with pytest.raises(DataError, match=r"'LIC'.*both blank"):
        measures_as_of(pd.DataFrame([row]), D(2026, 1, 1), NO_LINKS)
    row = dict(zip(COLS, LICENCE, strict=True), stage="smelting")
    with pytest.raises(DataError, match="smelting") as err:
        measures_as_of(pd.DataFrame([row]), D(2026, 1, 1), NO_LINKS)
    assert err.value.column == "stage"


def test_targets():
    assert parse_targets("JPN (military end users/uses)") == "JPN"
    assert parse_targets("all (extraterritorial)") == "all" and parse_targets("all") == "all"
    assert parse_targets("USA;JPN") == "USA;JPN" and parse_targets("EUU") == "EUU"
    assert parse_targets("") is None
    with pytest.raises(DataError, match="military") as err:
        parse_targets("military users", event_id="X")
    assert err.value.column == "targets"
    jpn = ("JPN", "CHN", "all dual-use items (incl. listed rare earths)", "processed;product", "ban",
           "JPN (military end users/uses)", "2026-01-06", "2026-01-06", "")
    row = _one(measures_as_of(_events(jpn), D(2026, 12, 4), NO_LINKS), "JPN")
    assert row.target_iso3 == "JPN" and row.targets == "JPN (military end users/uses)"
    assert row.commodity == "all dual-use items (incl. listed rare earths)"     # a label kept as it is
    assert row.label == "China ban on exports to Japan (military end users/uses) since 2026-01-06"


def test_commodities_exploded_and_other_scope():
    tech = ("TECH", "CHN", "rare-earths", "technology", "ban", "all", "2023-12-21", "2023-12-21", "")
    scrap = ("SCRAP", "EUU", "rare-earths;aluminum", "scrap", "licensing", "all", "2025-12-03", "2026", "")
    out = measures_as_of(_events(tech, scrap), D(2026, 12, 4), NO_LINKS)
    assert list(out.columns) == list(controls.COLUMNS)
    assert list(out["event_id"]) == ["SCRAP", "SCRAP", "TECH"]
    assert list(out.loc[out.event_id == "SCRAP", "commodity"]) == ["rare-earths", "aluminum"]
    row = _one(out, "TECH")
    assert pd.isna(row.stages) and row.other_scope == "technology"
    row = _one(out, "SCRAP", "aluminum")
    assert row.other_scope == "scrap" and row.since == D(2026, 1, 1) and row.label == "EU export licensing since 2026"


# ------------------------------------------------------------------------------------------------ links

def test_shipped_links_mapping():
    links = controls.load_links()
    assert list(links.columns) == ["event_id", "suspends", "note"]
    by_id = dict(zip(links["event_id"], links["suspends"], strict=True))
    assert by_id["CHN-2025-US-BAN-SUSP"] == "CHN-2024-US-BAN"
    assert set(by_id["CHN-2025-NOV-70-SUSP"].split(";")) == {f"CHN-2025-OCT-{n}" for n in (55, 56, 57, 58, 61, 62)}
    assert pd.isna(by_id["COD-2025-CO-SUSP"])             # decided: DR Congo's suspension is a restriction
    assert links["note"].notna().all()


def test_validate_links_names_the_unknown_id():
    events = _events(BAN_US, BAN_SUSP, LICENCE)
    controls.validate_links(_links(SUSP="BAN"), events)
    with pytest.raises(MappingError, match="NOPE"):
        controls.validate_links(_links(SUSP="BAN;NOPE"), events)
    with pytest.raises(MappingError, match="GHOST"):
        controls.validate_links(_links(GHOST="BAN"), events)
    with pytest.raises(MappingError, match=r"LIC.*licensing"):
        controls.validate_links(_links(LIC="BAN"), events)
    # measures_as_of ignores links to events outside the frame it is given (a filtered table).
    out = measures_as_of(_events(BAN_US), D(2026, 6, 1), _links(SUSP="BAN"))
    assert _one(out, "BAN", "gallium").status == "in_force"


# ------------------------------------------------------------------------------------------ real tables

def test_bundled_register_with_shipped_links():
    import critmin

    events = critmin.load("export_controls")
    june = measures_as_of(events, D(2026, 6, 1))
    ban = _one(june, "CHN-2024-US-BAN", "gallium")
    assert (ban.status, ban.until) == ("suspended", D(2026, 11, 27))
    assert not _one(june, "CHN-2025-US-BAN-SUSP", "gallium").restricts
    # No stored source reports an extension of the 9 Nov 2025 suspension: after 27 Nov 2026 the ban binds again.
    dec = measures_as_of(events, D(2026, 12, 4))
    ban = _one(dec, "CHN-2024-US-BAN", "gallium")
    assert ban.status == "in_force" and ban.since == D(2024, 12, 3)
    assert "suspension ended 2026-11-27" in ban.label
    assert _one(dec, "CHN-2025-5METALS", "tungsten").status == "in_force"
    assert _one(dec, "GAB-2029-MN-BAN", "manganese").status == "announced"
    assert _one(dec, "COD-2025-CO-SUSP", "cobalt").restricts
    assert not _one(dec, "CHN-2025-NOV-70-SUSP", "rare-earths").restricts


def test_build_adds_addenda_and_checks_links(raw_dir, tmp_path):
    from critmin.reference.sources import curated

    table = curated.parse(raw_dir)["export_controls"]
    register = pd.read_csv(raw_dir / "curated" / "export_controls.csv", dtype=str, keep_default_na=False)
    addenda = table[table["source"] == curated.ADDENDA_SOURCE]
    assert len(table) == len(register) + len(addenda)
    assert set(table["event_id"]) >= set(register["event_id"])
    assert table["event_id"].is_unique
    assert addenda["source_url"].notna().all() and addenda["scope_note"].str.startswith('quote: "').all()
    assert curated.ADDENDA_SOURCE in {s["id"] for s in curated.SOURCES}
    controls.validate_links(controls.load_links(), table)
    # An addenda id that repeats a register id is an error naming both.
    if len(addenda):
        (tmp_path / "curated").mkdir()
        dup = addenda["event_id"].iloc[0]
        shutil.copy(raw_dir / "curated" / "export_controls.csv", tmp_path / "curated" / "export_controls.csv")
        with (tmp_path / "curated" / "export_controls.csv").open("a", encoding="utf-8") as fh:
            fh.write(f"{dup},CHN,graphite,processed,licensing,all,2025,2025,,note,src,http://example.org,yes\n")
        reg = curated._table(tmp_path, "export_controls")
        with pytest.raises(DataError, match=f"addenda event_id '{dup}' duplicates the register's event_id '{dup}'"):
            curated._with_addenda(tmp_path, reg)


def test_register_corrections_are_declared_and_checked():
    """The undated 2010 embargo on Japan ends on its cited date; a correction whose expected value no longer
    matches the register (the source was fixed) stops the build instead of overwriting silently."""
    import critmin
    from critmin.reference.sources.curated import _corrected

    row = critmin.load("export_controls").set_index("event_id").loc["CHN-2010-JPN-EMBARGO"]
    assert row["ended"] == "2010-11-19"
    register = pd.DataFrame({"event_id": ["CHN-2010-JPN-EMBARGO"], "ended": ["2010-12-01"]})
    with pytest.raises(DataError, match="expected ''"):
        _corrected(register)
    fixed = _corrected(pd.DataFrame({"event_id": ["CHN-2010-JPN-EMBARGO"], "ended": [pd.NA]}))
    assert fixed.loc[0, "ended"] == "2010-11-19"
