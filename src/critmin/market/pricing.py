"""Reference prices from the costs of responsible production, non-market adjustment, floor and CfD payments.

All prices are USD/kg, quantities kg, payments USD, as :class:`decimal.Decimal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from critmin.errors import ConfigError
from critmin.market.model import Programme, Trade, _dec

ZERO = Decimal(0)


@dataclass(frozen=True)
class CostInputs:
    """Documented cost build-up of responsible production for one commodity/form.

    Parameters
    ----------
    commodity, form : str
    cash_cost : Decimal
        Operating cash cost, USD/kg, ≥ 0.
    sustaining_capex : Decimal
        Sustaining capital expenditure, USD/kg, ≥ 0.
    responsible_costs : mapping of str to Decimal
        Responsible-sourcing components, USD/kg each, ≥ 0 (e.g. ``irma_audit``, ``tailings``,
        ``community_benefit``, ``decarbonisation``). Their sum, with margin, is the responsible-sourcing premium.
    margin_rate : Decimal
        Return on cost, fraction (0.10 = 10 %), ≥ 0, applied to every cost term.
    sources : tuple of str
        Where each input comes from (citation or document id); at least one, so the price is traceable.
    """

    commodity: str
    form: str
    cash_cost: Decimal
    sustaining_capex: Decimal
    responsible_costs: Mapping[str, Decimal] = field(default_factory=dict)
    margin_rate: Decimal = ZERO
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cash_cost", "sustaining_capex", "margin_rate"):
            v = _dec(getattr(self, name), name)
            if v < 0:
                raise ConfigError(f"{self.commodity}/{self.form}: {name} must be ≥ 0, got {v}")
            object.__setattr__(self, name, v)
        comps = {}
        for k, v in sorted(dict(self.responsible_costs).items()):
            d = _dec(v, f"responsible_costs[{k}]")
            if d < 0:
                raise ConfigError(f"{self.commodity}/{self.form}: responsible_costs[{k}] must be ≥ 0, got {d}")
            comps[str(k)] = d
        object.__setattr__(self, "responsible_costs", comps)
        if not self.sources:
            raise ConfigError(f"{self.commodity}/{self.form}: cost inputs need at least one documented source")


@dataclass(frozen=True)
class ReferencePrice:
    """A reference price with its terms visible; ``conventional + premium == price``.

    Attributes
    ----------
    conventional : Decimal
        (cash cost + sustaining capex) × (1 + margin), USD/kg.
    premium : Decimal
        Responsible-sourcing premium: Σ responsible components × (1 + margin), USD/kg.
    price : Decimal
        Reference price, USD/kg.
    terms : dict
        Every named term, USD/kg, margin shown separately.
    sources : tuple of str
    """

    commodity: str
    form: str
    conventional: Decimal
    premium: Decimal
    price: Decimal
    terms: Mapping[str, Decimal]
    sources: tuple[str, ...]


def reference_price(cost_inputs: CostInputs) -> ReferencePrice:
    """Reference price built up from the costs of responsible production.

    ``price = (cash_cost + sustaining_capex + Σ responsible_costs) × (1 + margin_rate)``, reported as the
    conventional part and the responsible-sourcing premium so the premium stays visible.

    Examples
    --------
    >>> from decimal import Decimal as D
    >>> r = reference_price(CostInputs("cobalt", "hydroxide", D(20), D(5), {"irma_audit": D(1), "tailings": D(4)},
    ...                                D("0.1"), ("example",)))
    >>> r.conventional, r.premium, r.price
    (Decimal('27.5'), Decimal('5.5'), Decimal('33.0'))
    """
    c = cost_inputs
    k = 1 + c.margin_rate
    base = c.cash_cost + c.sustaining_capex
    responsible = sum(c.responsible_costs.values(), ZERO)
    terms: dict[str, Decimal] = {"cash_cost": c.cash_cost, "sustaining_capex": c.sustaining_capex}
    terms.update({f"responsible:{name}": v for name, v in c.responsible_costs.items()})
    terms["margin"] = (base + responsible) * c.margin_rate
    return ReferencePrice(c.commodity, c.form, base * k, responsible * k, (base + responsible) * k, terms, c.sources)


def nonmarket_adjustment(price: Decimal, nonmarket: bool, *, tariff_rate: Decimal | None = None,
                         reference: Decimal | None = None) -> Decimal:
    """Price of a lot after the adjustment on non-market origins, USD/kg.

    Exactly one mechanism is given: ``tariff_rate`` (fraction, ad valorem: ``price × (1 + rate)``) or
    ``reference`` (a reference price, USD/kg: the lot is counted at ``max(price, reference)``, so a price below the
    cost of responsible production gains nothing). Market origins are returned unchanged.

    Raises
    ------
    ConfigError
        If neither or both mechanisms are given, or a rate/reference is negative.
    """
    price = _dec(price, "price")
    if (tariff_rate is None) == (reference is None):
        raise ConfigError("nonmarket_adjustment: give exactly one of tariff_rate and reference")
    if tariff_rate is not None:
        rate = _dec(tariff_rate, "tariff_rate")
        if rate < 0:
            raise ConfigError(f"tariff_rate must be ≥ 0, got {rate}")
        return price * (1 + rate) if nonmarket else price
    ref = _dec(reference, "reference")
    if ref <= 0:
        raise ConfigError(f"reference price must be > 0 USD/kg, got {ref}")
    return max(price, ref) if nonmarket else price


@dataclass(frozen=True)
class SupportPayment:
    """Programme payment on one trade, USD.

    Attributes
    ----------
    due : Decimal
        Payment by the rules before the budget cap: > 0 programme → seller, < 0 seller → programme.
    paid : Decimal
        Payment after the cap (what settles).
    remaining_after : Decimal
        Budget left after this trade, USD.
    reason : str
        ``"floor"``, ``"cfd"``, ``"capped"`` or why the trade is not supported.
    """

    due: Decimal
    paid: Decimal
    remaining_after: Decimal
    reason: str


def programme_covers(trade: Trade, programme: Programme, allies: Iterable[str] | None = None) -> tuple[bool, str]:
    """Does ``programme`` support ``trade`` (commodity/form, origin, allied, non-market)?"""
    if (trade.commodity, trade.form) != (programme.commodity, programme.form):
        return False, "programme covers another commodity/form"
    if programme.eligible_origins is not None and trade.origin not in programme.eligible_origins:
        return False, f"origin {trade.origin} not eligible for the programme"
    if programme.allies_only:
        from critmin.market.eligibility import allied_group

        ally_set = allied_group() if allies is None else frozenset(allies)
        if trade.origin not in ally_set:
            return False, f"origin {trade.origin} not allied"
    if programme.exclude_nonmarket and trade.nonmarket:
        return False, "non-market origin"
    return True, "ok"


def settle_support(trade: Trade, programme: Programme, spent: Decimal = ZERO,
                   allies: Iterable[str] | None = None) -> SupportPayment:
    """Floor or CfD payment on one trade, capped by the programme's remaining budget.

    Floor: ``max(0, floor − price) × quantity``. CfD (two-sided): ``(strike − price) × quantity``; negative means
    the seller pays the programme back.

    Budget cap: ``remaining = budget − spent`` where ``spent`` is the programme's net payout so far (payments minus
    paybacks). A positive payment is cut to ``remaining`` (first come, first served in trade order — no pro-rating,
    which would need the future trades); a payback is never capped and raises ``remaining``.

    Parameters
    ----------
    trade : Trade
    programme : Programme
    spent : Decimal
        Net USD already paid out by the programme.
    allies : iterable of str, optional
        Allied group for ``programme.allies_only`` (default ``msp``).
    """
    spent = _dec(spent, "spent")
    remaining = programme.budget - spent
    ok, why = programme_covers(trade, programme, allies)
    if not ok:
        return SupportPayment(ZERO, ZERO, remaining, why)
    if programme.cfd_strike is not None:
        due, reason = (programme.cfd_strike - trade.price) * trade.quantity, "cfd"
    else:
        assert programme.floor is not None  # guaranteed by Programme validation
        due, reason = max(ZERO, programme.floor - trade.price) * trade.quantity, "floor"
    paid = due
    if due > 0 and due > remaining:
        paid, reason = max(ZERO, remaining), "capped"
    return SupportPayment(due, paid, remaining - paid, reason)
