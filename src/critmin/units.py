"""Unit handling at the boundary (pint). Kernels never branch on unit strings.

This is critmin's one unit table: conversion factors come from this registry, not from literals in the
code that uses them. A source parser maps its own unit labels to registry unit names
(e.g. MCS "thousand metric tons" → ``kilotonne``) and asks :func:`mass_factor` for the factor; it never
writes a factor of its own. Should a source ever need a factor that differs from pint's definition (a
historical literal kept so the built dataset stays byte-identical), it is defined here as a named unit
with its reason, not in the parser.
"""

from __future__ import annotations

from functools import cache

import pint

from critmin.errors import UnitError


@cache
def registry() -> pint.UnitRegistry:
    return pint.UnitRegistry()


_SPELLINGS = {
    "t": "tonne", "tonne": "tonne", "tonnes": "tonne", "metric ton": "tonne", "metric tons": "tonne",
    "kt": "kilotonne", "thousand metric tons": "kilotonne", "mt": "megatonne", "Mt": "megatonne",
    "kg": "kilogram", "kilograms": "kilogram", "g": "gram", "lb": "pound", "lbs": "pound",
}


@cache
def mass_factor(unit: str, to: str = "tonne") -> float:
    """Multiplier that converts a mass quantity in ``unit`` to ``to`` (default metric tonnes).

    Raises
    ------
    UnitError
        If ``unit`` is not a mass unit.
    """
    if unit.strip().lower() in ("ton", "tons"):   # short ton in the US, long ton in the UK, often meant as tonne
        raise UnitError(f"unit {unit!r} is ambiguous: write t for metric tonnes, or short_ton / long_ton")
    name = _SPELLINGS.get(unit.strip(), _SPELLINGS.get(unit.strip().lower(), unit.strip()))
    ureg = registry()
    try:
        q = ureg.Quantity(1.0, name)
        return float(q.to(to).magnitude)
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError, AttributeError,
            ValueError, TypeError) as exc:
        raise UnitError(f"unit {unit!r} is not a mass unit (expected t, kg, kt, lb, ...)") from exc
