"""Exact money: one decimal context for every amount the market computes, and the few places that round on purpose.

Prices (USD/kg), quantities (kg) and cash (USD) are :class:`decimal.Decimal`. Python's default context keeps 28
significant digits and rounds silently beyond them; the API accepts up to 15 integer and 9 decimal digits for a
price and for a quantity, so one trade value ``price × quantity`` needs up to 30 + 18 = 48 digits, and a balance,
a sum of such values, a few more. :data:`MONEY` keeps :data:`PRECISION` = 100 significant digits (room for the
sum of 10^50 maximal trade values) and *traps* ``Inexact`` and ``Rounded``: a sum, difference or product that would
need rounding raises :class:`decimal.Inexact` instead of being rounded, so an amount is either exact or refused,
never quietly wrong. Division is the one operation that rounds by nature; it is done only through
:func:`quantize_div`, which rounds to a stated quantum (a cent, a price tick) with ROUND_HALF_EVEN, at the places
the rules say so (the tariff levy, the index fixing).

Every computation on money in :mod:`critmin.market` and :mod:`critmin.server` runs under :data:`MONEY` (``with
localcontext(MONEY)`` around a command, a settlement, a sum), never under the thread's default context.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)

#: Significant digits of :data:`MONEY`: a maximal trade value needs 48 (see the module docstring).
PRECISION = 100
#: The API's largest price or quantity has 15 integer and 9 decimal digits.
API_INTEGER_DIGITS, API_DECIMALS = 15, 9

#: The context of every money computation: exact or an exception (Inexact/Rounded trapped).
MONEY = Context(prec=PRECISION, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999,
                traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded])
#: The same precision without the rounding traps: only for the deliberate roundings of :func:`quantize_div`.
_ROUNDING = Context(prec=PRECISION, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999,
                    traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)


def money():
    """``with money():`` — run the block under :data:`MONEY`."""
    return localcontext(MONEY)


def total(values: Iterable[Decimal]) -> Decimal:
    """Exact sum (under :data:`MONEY`, whatever the caller's context)."""
    out = ZERO
    add = MONEY.add
    for v in values:
        out = add(out, v)
    return out


def quantize_div(numerator: Decimal, denominator: Decimal, quantum: Decimal) -> Decimal:
    """``numerator / denominator`` rounded half-even to a multiple of ``quantum`` (e.g. ``Decimal("0.01")``).

    The quotient is taken to 100 significant digits, then rounded once to the quantum, so the result is the
    correctly rounded quotient whenever it has fewer than 100 digits before the quantum (always, in the API's
    range)."""
    q = _ROUNDING.divide(numerator, denominator)
    return _ROUNDING.quantize(q, quantum)


def on_tick(value: Decimal, tick: Decimal) -> bool:
    """Is ``value`` a whole multiple of ``tick`` (> 0)?"""
    return _ROUNDING.remainder(value, tick) == 0
