"""Bad --data input: a clear error naming file, line and column; exit code 2; nothing written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from critmin.cli.main import app
from critmin.errors import DataError
from critmin.reference.userdata import read_table

GOOD_PROD = "commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,17500,t\nnickel,mine,IDN,2022,1.6,Mt\n"
runner = CliRunner()


def _err(tmp_path, name, text, table):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(DataError) as exc:
        read_table(p, table)
    return exc.value


def test_good_table_converts_units(tmp_path):
    p = tmp_path / "production.csv"
    p.write_text(GOOD_PROD)
    f = read_table(p, "production")
    assert f.loc[f.country == "IDN", "value"].item() == pytest.approx(1.6e6)
    assert set(f.unit) == {"t"}
    assert set(f.row_type) == {"country"}


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("commodity,stage,country,year,unit\nnickel,mine,USA,2022,t\n", 1, "value", "missing required column"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,XYZ,2022,1,t\n", 2, "country", "unknown country code"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,1,t\nnickel,mine,CHN,2022,-5,t\n", 3,
         "value", "negative"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,lots,t\n", 2, "value", "not a number"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,20x2,1,t\n", 2, "year", "not a year"),
        ("commodity,stage,country,year,value,unit\nnickel,smelt,USA,2022,1,t\n", 2, "stage", "unknown stage"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,1,USD\n", 2, "unit", "not a mass unit"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,1,t,extra\n", 2, None, "expected 6 fields"),
        ("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,1,t\nnickel,mine,USA,2022,2,t\n", 3, None,
         "duplicate row"),
    ],
)
def test_bad_production_rows(tmp_path, text, line, column, words):
    e = _err(tmp_path, "production.csv", text, "production")
    assert e.file == "production.csv"
    assert e.row == line
    assert e.column == column
    assert words in str(e)


def test_wrong_encoding_names_line(tmp_path):
    text = "commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,1,t\nn\xefckel,mine,CHN,2022,1,t\n"
    e = _err(tmp_path, "production.csv", text.encode("latin-1"), "production")
    assert e.row == 3 and "UTF-8" in str(e)


def test_trade_negative_quantity_and_unknown_indicator(tmp_path):
    e = _err(tmp_path, "trade.csv", "commodity,exporter,importer,year,quantity,unit,value_usd\n"
             "nickel,CAN,USA,2022,-1,t,5\n", "trade")
    assert (e.row, e.column) == (2, "quantity")
    e = _err(tmp_path, "governance.csv", "country,year,indicator,value\nCHN,2022,xx,0.1\n", "governance")
    assert (e.row, e.column) == (2, "indicator")


def test_cli_bad_data_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "production.csv").write_text("commodity,stage,country,year,value,unit\nnickel,mine,USA,2022,abc,t\n")
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["assess", "--data", str(tmp_path), "--importer", "USA", "--year", "2022",
                              "--format", "csv", "--out", str(out)])
    assert res.exit_code == 2
    assert "production.csv" in res.output and "line 2" in res.output and "'value'" in res.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.csv*"))


def test_cli_unknown_importer_exit_2():
    res = runner.invoke(app, ["assess", "--importer", "USA+ZZZ"])
    assert res.exit_code == 2
    assert "unknown importer" in res.output


def test_formats_are_row_models_with_optional_columns(tmp_path):
    from critmin.reference.userdata import FORMATS, column_kind

    fields = FORMATS["trade"].model_fields
    assert [n for n, f in fields.items() if f.is_required()] == ["commodity", "exporter", "importer", "year",
                                                                  "quantity", "unit", "value_usd"]
    assert column_kind(FORMATS["trade"], "unit") == "mass_unit"
    assert column_kind(FORMATS["prices"], "unit") == "text"
    p = tmp_path / "trade.csv"
    p.write_text("commodity,exporter,importer,year,quantity,unit,value_usd,source\nnickel,CAN,USA,2022,,kg,5,mine\n")
    f = read_table(p, "trade")
    assert f.loc[0, "stage"] == "mine" and f.loc[0, "hs6"] == "" and f.loc[0, "source"] == "user:trade.csv"
    assert f["quantity"].isna().all() and f.loc[0, "unit"] == "t"


@pytest.mark.parametrize(
    ("table", "text", "column", "words"),
    [
        ("trade", "commodity,exporter,importer,year,quantity,unit,value_usd,stage\nni,CAN,USA,2022,1,t,5,smelt\n",
         "stage", "unknown stage 'smelt'"),
        ("prices", "commodity,period,value,unit\nni,,1,USD/t\n", "period",
         "empty value (the column 'period' is required)"),
        ("governance", "country,year,indicator,value\nCHN,1700,pv,0.1\n", "year", "'1700' is not a year"),
        ("production", "commodity,stage,country,year,value,unit,colour\nni,mine,USA,2022,1,t,red\n", "colour",
         "unknown column(s) ['colour']"),
    ],
)
def test_bad_cells_name_file_line_column(tmp_path, table, text, column, words):
    e = _err(tmp_path, f"{table}.csv", text, table)
    assert (e.file, e.column) == (f"{table}.csv", column)
    assert e.row == (1 if "unknown column" in words else 2)
    assert words in str(e) and "\n" not in str(e)


def test_semicolons_tons_and_duplicates_say_what_is_wrong(tmp_path):
    """A semicolon CSV is named as such; 'tons' is refused as ambiguous; a duplicate row prints plain values."""
    import pytest

    from critmin.errors import DataError
    from critmin.reference.catalog import Catalog

    def load(text):
        d = tmp_path / f"d{abs(hash(text))}"
        d.mkdir()
        (d / "production.csv").write_text(text, "utf-8")
        return Catalog(d).table("production")

    with pytest.raises(DataError, match="separated by semicolons"):
        load("commodity;stage;country;year;value;unit\nx;mine;CHN;2022;1;t\n")
    with pytest.raises(DataError, match="ambiguous"):
        load("commodity,stage,country,year,value,unit\nx,mine,CHN,2022,1,tons\n")
    with pytest.raises(DataError) as err:
        load("commodity,stage,country,year,value,unit\nx,mine,CHN,2022,1,t\nx,mine,CHN,2022,2,t\n")
    assert "np.int64" not in str(err.value) and "year=2022" in str(err.value)
