"""Eligibility of a (sell, buy) pair: same product, overlapping delivery, origin and attestations as required.

The allied group defaults to the Minerals Security Partnership (``msp`` in ``critmin/groups.yml``); pass your own
``allies`` set to use another group. Only the buyer's requirements are checked: a lot carries attestations, a bid
carries requirements.
"""

from __future__ import annotations

from collections.abc import Iterable

from critmin.errors import ConfigError
from critmin.market.model import Order, Side

#: Default allied group (a critmin judgement, documented with its source in groups.yml).
DEFAULT_ALLY_GROUP = "msp"


def allied_group(name: str = DEFAULT_ALLY_GROUP) -> frozenset[str]:
    """ISO3 members of a named group from ``critmin/groups.yml``.

    Raises
    ------
    ConfigError
        If the group is unknown.
    """
    from critmin.importers import groups  # read lazily: no work at import time

    named = groups()
    if name.lower() not in named:
        raise ConfigError(f"unknown allied group {name!r}; expected one of {', '.join(sorted(named))}")
    return frozenset(named[name.lower()]["members"])


def eligible(sell: Order, buy: Order, allies: Iterable[str] | None = None) -> tuple[bool, str]:
    """Can ``sell`` be delivered against ``buy``?

    Parameters
    ----------
    sell, buy : Order
        A SELL and a BUY order.
    allies : iterable of str, optional
        ISO3 codes counted as allied for ``allied_only``; default the ``msp`` group.

    Returns
    -------
    (bool, str)
        ``(True, "ok")`` or ``(False, reason)``; the reason names the first failed condition, checked in a fixed
        order (product, window, origin, allied, non-market, IRMA, OECD, carbon) so it is deterministic.
    """
    if sell.side is not Side.SELL or buy.side is not Side.BUY:
        return False, "needs one sell and one buy order"
    for name in ("commodity", "form", "grade"):
        if getattr(sell, name) != getattr(buy, name):
            return False, f"{name} differs: {getattr(sell, name)!r} vs {getattr(buy, name)!r}"
    if sell.delivery_end < buy.delivery_start or buy.delivery_end < sell.delivery_start:
        return False, (f"delivery windows do not overlap: {sell.delivery_start}..{sell.delivery_end} vs "
                       f"{buy.delivery_start}..{buy.delivery_end}")
    req = buy.requirements
    if req.allowed_origins is not None and sell.origin not in req.allowed_origins:
        return False, f"origin {sell.origin} not in the buyer's allowed origins"
    if req.allied_only:
        ally_set = allied_group() if allies is None else frozenset(allies)
        if sell.origin not in ally_set:
            return False, f"origin {sell.origin} is not allied"
    if req.exclude_nonmarket and sell.nonmarket:
        return False, f"origin {sell.origin} carries the non-market flag"
    att = sell.attestations
    if req.min_irma is not None and (att.irma_level is None or att.irma_level < req.min_irma):
        return False, f"IRMA level {att.irma_level} below required {req.min_irma}"
    if req.require_oecd and not att.oecd_ddg:
        return False, "no OECD due-diligence attestation"
    if req.max_carbon is not None and (att.carbon_kg_per_kg is None or att.carbon_kg_per_kg > req.max_carbon):
        return False, f"carbon intensity {att.carbon_kg_per_kg} kg CO2e/kg above maximum {req.max_carbon}"
    return True, "ok"
