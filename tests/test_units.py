"""One unit registry: source parsers take their factors from critmin.units."""

from __future__ import annotations

import pytest

from critmin.errors import UnitError
from critmin.reference.sources import usgs_mcs
from critmin.units import mass_factor


def test_usgs_mcs_factors_come_from_the_registry():
    factors = usgs_mcs._to_tonnes()
    assert factors == {label: mass_factor(unit) for label, unit in usgs_mcs._MASS_UNITS.items()}
    # The literals the parser used before it asked the registry: equal to the last bit, so the built
    # dataset is byte-identical (critmin data verify).
    historical = {"t": 1.0, "metric tons": 1.0, "tons": 1.0, "kt": 1e3, "thousand metric tons": 1e3,
                  "thousand metric dry tons": 1e3, "Mt": 1e6, "mt": 1e6, "mmt": 1e6, "million metric tons": 1e6,
                  "kg": 1e-3, "kilograms": 1e-3}
    assert factors == historical
    assert all(factors[k].hex() == v.hex() for k, v in historical.items())


def test_mcs_tons_are_metric_not_the_registry_ton():
    # "tons" in MCS means metric tons; a bare "ton(s)" is ambiguous (short ton to the registry), so the MCS label is
    # mapped by name and a user's "tons" is refused; short_ton is explicit.
    assert usgs_mcs._MASS_UNITS["tons"] == "tonne"
    with pytest.raises(UnitError, match="ambiguous"):
        mass_factor("tons")
    assert mass_factor("short_ton") == pytest.approx(0.90718474)
    assert usgs_mcs._to_tonnes()["tons"] == 1.0


def test_mass_factor_rejects_non_mass_units():
    with pytest.raises(UnitError, match="not a mass unit"):
        mass_factor("USD")
