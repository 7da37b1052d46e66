"""Reference prices from the costs of responsible production, non-market adjustment, floor and CfD payments.

All prices are USD/kg, quantities kg, payments USD, as :class:`decimal.Decimal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from critmin.errors import ConfigError
from critmin.market.model import Programme, Trade, _dec
from critmin.market.money import money

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
    with money():  # exact: the inputs' digits multiply, the default context would round
        k = 1 + c.margin_rate
        base = c.cash_cost + c.sustaining_capex
        responsible = sum(c.responsible_costs.values(), ZERO)
        terms: dict[str, Decimal] = {"cash_cost": c.cash_cost, "sustaining_capex": c.sustaining_capex}
        terms.update({f"responsible:{name}": v for name, v in c.responsible_costs.items()})
        terms["margin"] = (base + responsible) * c.margin_rate
        return ReferencePrice(c.commodity, c.form, base * k, responsible * k, (base + responsible) * k, terms,
                              c.sources)


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
    with money():
        return _adjust(price, nonmarket, tariff_rate, reference)


def _adjust(price: Decimal, nonmarket: bool, tariff_rate: Decimal | None, reference: Decimal | None) -> Decimal:
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
        Payment by the rules before any cap: > 0 programme → seller, < 0 seller → programme.
    paid : Decimal
        Payment after the caps (what settles).
    remaining_after : Decimal
        Budget left after this trade, USD.
    reason : str
        ``"floor"``, ``"cfd"``, ``"capped"`` (the budget cut the payment), ``"seller_capped"`` (the seller's
        support cap did), ``"payback_capped"`` (the seller's payback cap cut a payback) or why nothing is paid.
    reference : Decimal or None
        The reference price the payment was computed against, USD/kg.
    """

    due: Decimal
    paid: Decimal
    remaining_after: Decimal
    reason: str
    reference: Decimal | None = None


def programme_covers(trade: Trade, programme: Programme, allies: Iterable[str] | None = None) -> tuple[bool, str]:
    """Does ``programme`` support ``trade`` (commodity/form, origin, allied, non-market)? Enrolment — whether the
    seller chose the programme — is decided by the caller, which passes only the programme the seller enrolled in."""
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


def settle_support(trade: Trade, programme: Programme, reference: Decimal | None, spent: Decimal = ZERO,
                   allies: Iterable[str] | None = None, *, seller_net: Decimal = ZERO,
                   material_covered: bool = True) -> SupportPayment:
    """Floor or CfD payment on one trade, against a reference price, capped by the budget and the seller's caps.

    The payment never depends on the bilateral trade price: a buyer and a seller who agree on a silly price move
    cash between themselves, not out of the programme.

    Floor: ``max(0, floor − reference) × quantity``. CfD (two-sided): ``(strike − reference) × quantity``; negative
    means the seller pays the programme back.

    Caps: ``remaining = budget − spent`` where ``spent`` is the programme's net payout so far (payments minus
    paybacks); ``seller_net`` is this seller's net receipts from the programme so far. A payment is cut to
    ``remaining`` and to ``max_support_per_seller − seller_net`` (first come, first served in trade order — no
    pro-rating, which would need the future trades), and is due only when ``material_covered`` (the seller held
    the quantity sold: see :meth:`critmin.market.ledger.Ledger.settle`). A payback is cut to
    ``max_payback_per_seller + seller_net`` and raises ``remaining``.

    Parameters
    ----------
    trade : Trade
    programme : Programme
        The programme the seller enrolled in.
    reference : Decimal or None
        Reference price, USD/kg (the published fixing); None: nothing is paid (reason says so).
    spent : Decimal
        Net USD already paid out by the programme.
    allies : iterable of str, optional
        Allied group for ``programme.allies_only`` (default ``msp``).
    seller_net : Decimal
        Net USD the programme has paid this seller so far (negative: it has paid back more than received).
    material_covered : bool
        The seller's holding of the material covered the quantity before the trade.
    """
    with money():
        spent = _dec(spent, "spent")
        remaining = programme.budget - spent
        ok, why = programme_covers(trade, programme, allies)
        if not ok:
            return SupportPayment(ZERO, ZERO, remaining, why, reference)
        if reference is None:
            return SupportPayment(ZERO, ZERO, remaining,
                                  f"no reference price published for {trade.commodity}/{trade.form}")
        if programme.cfd_strike is not None:
            due, reason = (programme.cfd_strike - reference) * trade.quantity, "cfd"
        else:
            assert programme.floor is not None  # guaranteed by Programme validation
            due, reason = max(ZERO, programme.floor - reference) * trade.quantity, "floor"
        paid = due
        if due > 0:
            if not material_covered:
                return SupportPayment(due, ZERO, remaining, "the seller's holding does not cover the quantity sold",
                                      reference)
            cap = programme.max_support_per_seller
            seller_room = max(ZERO, cap - seller_net) if cap is not None else None
            if due > remaining and (seller_room is None or remaining <= seller_room):
                paid, reason = max(ZERO, remaining), "capped"
            elif seller_room is not None and due > seller_room:
                paid, reason = seller_room, "seller_capped"
        elif due < 0:
            room = max(ZERO, (programme.max_payback_per_seller or ZERO) + seller_net)
            if -due > room:
                paid, reason = -room, "payback_capped"
        return SupportPayment(due, paid, remaining - paid, reason, reference)
