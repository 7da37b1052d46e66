"""File contracts (pydantic models of the YAML files): a bad file gets one line naming the file, the line and the key."""

from __future__ import annotations

import copy
from importlib import resources

import pytest
import yaml

from critmin.contracts import parse_yaml, validate
from critmin.errors import ConfigError, DataError
from critmin.importers import groups, parse_importer
from critmin.methods import registry
from critmin.monitor.workflow import _RULE_KEYS, load_thresholds
from critmin.policy import permitting
from critmin.policy.prices import PriceModels, price_models
from critmin.reference.sources import usgs_mcs
from critmin.supplychain import overrides


def _error(exc_type, fn, tmp_path, text, name="user.yml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    with pytest.raises(exc_type) as info:
        fn(p)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert name in msg, msg
    return msg


# --------------------------------------------------------------------------- groups (--groups FILE)


@pytest.mark.parametrize(("text", "words"), [
    ("allies:\n  members: [USA, XXX]\n", ["line 2", "'allies.members[1]'", "unknown country code 'XXX'"]),
    ("allies:\n  name: Allies\n", ["line 1", "'allies'", "'members' list"]),
    ("allies:\n  members: USA\n", ["line 1", "'allies'", "'members' list"]),
    ("allies: 3\n", ["line 1", "'allies'", "'members' list"]),
    ("- USA\n- JPN\n", ["expected a mapping of group name"]),
    ("allies: {members: [USA\n", ["line 2", "not valid YAML"]),
])
def test_groups_file_errors(tmp_path, text, words):
    msg = _error(ConfigError, groups, tmp_path, text)
    assert msg.startswith("groups file user.yml")
    for w in words:
        assert w in msg, msg


def test_groups_file_accepts_extra_keys_and_empty_file(tmp_path):
    p = tmp_path / "g.yml"
    p.write_text("Allies:\n  members: [USA, AUS]\n  name: Allies\n  note: any other key is kept\n")
    assert parse_importer("allies", p).members == ("AUS", "USA")
    assert groups(p)["allies"]["note"] == "any other key is kept"
    p.write_text("")
    assert groups(p) == groups()


# --------------------------------------------------------------------------- methods/params.yml (--params FILE)


@pytest.mark.parametrize(("text", "words"), [
    ("eu_sr:\n  eol_rr: 0.2\n", ["line 2", "unknown key 'eu_sr.eol_rr'", "known: eol_rir, substitution_index"]),
    ("colour: red\n", ["line 1", "unknown key 'colour'", "known: eu_sr, usgs, priorities"]),
    ("eu_sr:\n  eol_rir: 0.2\n", ["line 2", "expected a mapping at eu_sr.eol_rir"]),
    ("usgs:\n", ["line 1", "expected a mapping at usgs"]),
    ("[1, 2]\n", ["expected a mapping at top level"]),
])
def test_params_file_errors(tmp_path, text, words):
    msg = _error(ConfigError, registry.load_params, tmp_path, text)
    assert msg.startswith("params file user.yml")
    for w in words:
        assert w in msg, msg


def test_params_file_overrides_leaves_whatever_their_type(tmp_path):
    p = tmp_path / "p.yml"
    p.write_text("eu_sr:\n  eol_rir:\n    per_commodity: {nickel: 0.3}\npriorities:\n  eu_sr_threshold: 2\n")
    prm = registry.load_params(p)
    assert prm["eu_sr"]["eol_rir"]["per_commodity"] == {"nickel": 0.3}
    assert prm["eu_sr"]["eol_rir"]["default"] == 0.0        # merged key by key
    assert prm["priorities"]["eu_sr_threshold"] == 2


def _key_tree(tp):
    """Nested key sets of a TypedDict contract (mappings that are merged key by key)."""
    from typing import get_type_hints

    from typing_extensions import is_typeddict

    return {k: _key_tree(v) if is_typeddict(v) else None for k, v in get_type_hints(tp).items()}


def _data_tree(d):
    return {k: _data_tree(v) if isinstance(v, dict) and k != "per_commodity" else None for k, v in d.items()}


def test_params_contract_is_exactly_the_shipped_file():
    # An override may name exactly the keys params.yml has: the contract and the file must not drift apart.
    assert _key_tree(registry.ParamsFile) == _data_tree(registry.load_params())


# --------------------------------------------------------------------------- monitor thresholds (--thresholds FILE)


@pytest.mark.parametrize(("text", "words"), [
    ("price_spike:\n  k_sigmaa: 4\n", ["line 2", "unknown threshold 'price_spike.k_sigmaa'", "known: k_sigma"]),
    ("spikes:\n  k_sigma: 4\n", ["line 1", "unknown rule 'spikes'", "known: import_share_jump, price_spike"]),
    ("price_spike:\n  k_sigma: {reason: mine}\n", ["line 2", "'price_spike.k_sigma'", "has no value"]),
    ("price_spike:\n  k_sigma:\n", ["line 2", "'price_spike.k_sigma'", "has no value"]),
    ("price_spike: 4\n", ["line 1", "expected a mapping at price_spike"]),
    ("- 4\n", ["expected a mapping at top level"]),
])
def test_thresholds_file_errors(tmp_path, text, words):
    msg = _error(ConfigError, load_thresholds, tmp_path, text)
    assert msg.startswith("--thresholds file user.yml")
    for w in words:
        assert w in msg, msg


def test_thresholds_dict_override_and_shipped_keys():
    with pytest.raises(ConfigError, match=r"^thresholds: unknown rule 'x'"):
        load_thresholds({"x": {}})
    spec = load_thresholds({"price_spike": {"k_sigma": 4}})
    assert spec["price_spike"]["k_sigma"] == {"value": 4, "reason": "set by the user's --thresholds file"}
    shipped = load_thresholds()
    assert {rule: tuple(entries) for rule, entries in shipped.items()} == _RULE_KEYS


# --------------------------------------------------------------------------- permitting parameters


def test_permitting_params_errors(tmp_path):
    text = yaml.safe_dump({k: v for k, v in permitting.load_params().items() if k != "tracks"})
    msg = _error(ConfigError, permitting.load_params, tmp_path, text)
    assert "missing key 'tracks'" in msg and "see policy/permitting.yml" in msg
    msg = _error(ConfigError, permitting.load_params, tmp_path, "- stages\n")
    assert "expected a mapping at top level" in msg
    msg = _error(ConfigError, permitting.load_params, tmp_path, "stages: [a\n")
    assert "line 2" in msg and "not valid YAML" in msg


def test_permitting_params_keep_other_keys(tmp_path):
    p = tmp_path / "perm.yml"
    p.write_text(yaml.safe_dump({**permitting.load_params(), "my_note": "kept"}))
    assert permitting.load_params(p)["my_note"] == "kept"


# --------------------------------------------------------------------------- shipped files: price models, corrections


def test_price_models_contract():
    assert "ndpr" in price_models()["aliases"]
    bad = copy.deepcopy(price_models())
    bad["aliases"]["ndpr"]["dynamics_from"] = "1990"       # a year, not text
    with pytest.raises(ConfigError, match=r"price_models.yml: key 'aliases.ndpr.dynamics_from': input should be"):
        validate(PriceModels, bad, where="price_models.yml", error=ConfigError)
    del bad["aliases"]["ndpr"]["dynamics_series"]
    with pytest.raises(ConfigError, match=r"missing key 'aliases\.ndpr\.dynamics_series'"):
        validate(PriceModels, bad, where="price_models.yml", error=ConfigError)


_RECORD = """\
# header
- table: reserves
  source: usgs-mcs-2026
  commodity: rare-earths
  country: BRA
  year: 2025
  action: override
  value: "11,000,000"
  expect_source_value: "21,000,000"
  reason: why
  reported_by: who
"""


@pytest.mark.parametrize(("change", "line", "column", "words"), [
    (("year: 2025", "year: '2025'"), 2, None, "needs an integer year"),
    (("action: override", "action: replace"), 7, "action", "input should be 'override', 'drop' or 'fix_shift'"),
    (("  value: \"11,000,000\"\n", ""), 2, None, "a reserves record needs value"),
    (("  reason: why\n", "  reason: why\n  reviewed: yes\n"), 11, "reviewed", "unknown key '[0].reviewed'"),
    (("  reason: why\n", ""), 2, "reason", "missing key '[0].reason'"),
    (("table: reserves", "table: reserve"), 2, None, "unknown table 'reserve'"),
])
def test_corrections_contract(monkeypatch, change, line, column, words):
    text = _RECORD.replace(*change)
    monkeypatch.setattr(usgs_mcs, "_read_text", lambda name: text)
    with pytest.raises(DataError) as info:
        usgs_mcs.load_corrections()
    e = info.value
    assert (e.file, e.row, e.column) == ("corrections/usgs_mcs.yml", line, column), str(e)
    assert words in str(e) and "\n" not in str(e)


def test_shipped_corrections_and_yaml_as_safe_load():
    text = resources.files("critmin.reference").joinpath("corrections/usgs_mcs.yml").read_text("utf-8")
    assert usgs_mcs.load_corrections() == yaml.safe_load(text)
    assert parse_yaml(text, where="x", error=DataError).data == yaml.safe_load(text)


# --------------------------------------------------------------------------- hazards overrides (risk --hazards FILE)


@pytest.mark.parametrize(("text", "line", "column", "words"), [
    ("background_rate: high\n", 1, "background_rate", "must be a number ≥ 0 (events per year), got 'high'"),
    ("background_rate:\n", 1, "background_rate", "must be a number ≥ 0"),           # given, so not null
    ("magnitudes: [0.1, 0.4]\n", 1, "magnitudes", "expected a mapping at magnitudes"),
    ("hazards: {country: CHN}\n", 1, "hazards", "expected a list of hazard rows"),
    ("hazards: !!set {}\n", 1, "hazards", "expected a list of hazard rows"),          # a YAML list only
    ("hazards:\n  - CHN\n", 2, "hazards", "expected a mapping at hazards[0]"),
    ("background_rate: 0.1\ncolour: red\n", 2, "colour", "unknown key 'colour'; known: background_rate"),
    ("hazards:\n  - country: CHN\n    colour: red\n", 3, "colour", "unknown key 'hazards[0].colour'; known: country"),
    ("magnitudes:\n  licensing: [0.1, 0.4]\n  embargo: [0.1, 0.4]\n", 3, "embargo", "unknown measure; expected one of"),
    ("magnitudes:\n  ban: [0.5, 0.2]\n", 2, "ban", "expected [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got [0.5, 0.2]"),
    ("magnitudes:\n  ban: [0.1, 1.5]\n", 2, "ban", "got [0.1, 1.5]"),
    ("magnitudes:\n  ban: [0.1]\n", 2, "ban", "got [0.1]"),
    ("hazards:\n  - {country: AUS}\n  - {country: CHN, p_annual: 1.5}\n", 3, "p_annual", "1.5 outside [0.0, 0.99"),
    ("hazards: [{country: CHN\n", 2, None, "not valid YAML"),
])
def test_hazards_file_errors(tmp_path, text, line, column, words):
    msg = _error(DataError, overrides.load_overrides, tmp_path, text, name="hazards.yml")
    assert msg.startswith(f"file hazards.yml, line {line}")
    if column is not None:
        assert f"column '{column}'" in msg, msg
    assert words in msg, msg


_HAZARDS = ("background_rate: 0\nmagnitudes: {ban: [0, 1], licensing: [0.25, 0.25]}\n"
            "hazards:\n  - {country: CHN, stage: refine, p_annual: 0.1, measure: ban, reason: ~}\n")


def test_hazards_file_values(tmp_path):
    p = tmp_path / "h.yml"
    p.write_text(_HAZARDS)
    got = overrides.load_overrides(p)
    assert got == {"_file": "h.yml", "background_rate": 0.0,
                   "magnitudes": {"ban": (0.0, 1.0), "licensing": (0.25, 0.25)},
                   "hazards": [{"_line": 4, "country": "CHN", "stage": "refine", "p_annual": 0.1, "measure": "ban"}]}
    assert isinstance(got["background_rate"], float)
    for text in ("", "# nothing\n", "~\n"):
        p.write_text(text)
        assert overrides.load_overrides(p) == {"_file": "h.yml"}
    p.write_text("hazards: []\nmagnitudes: {}\n")
    assert overrides.load_overrides(p) == {"_file": "h.yml", "hazards": [], "magnitudes": {}}


def test_hazards_row_contract_is_the_csv_columns():
    assert set(overrides.HazardRow.model_fields) == overrides._OVERRIDE_COLUMNS
