"""Marketplace data model: participants, orders (lots), trades and support programmes.

Everything here is a frozen dataclass validated once, at construction (STYLE §6). Money and quantities are
:class:`decimal.Decimal`, never floats, so a settlement is exact to the cent and reproducible. Time is an integer
sequence number (``seq``) assigned by whoever feeds the book, never the wall clock, so the engine is deterministic.

Units
-----
- quantity: kilograms of the stated commodity/form (``kg``); use :func:`tonnes` to write metric tonnes.
- prices (``limit_price``, ``Trade.price``, ``floor``, ``cfd_strike``): US dollars per kilogram (``USD/kg``).
- cash (``budget``, payments): US dollars (``USD``).
- carbon intensity: kilograms of CO2-equivalent per kilogram of product (``kg CO2e/kg``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from critmin.errors import ConfigError, DataError
from critmin.market.money import MONEY
from critmin.reference.countries import is_valid_code

#: Kilograms in one metric tonne (quantities are carried in kg).
KG_PER_TONNE = Decimal(1000)


class Role(StrEnum):
    """What a participant may do; the service enforces permissions, the core only records the role."""

    SELLER = "seller"          # producer / processor
    BUYER = "buyer"            # manufacturer, stockpile agency
    PROGRAMME = "programme"    # government programme: funds floors / CfDs, sets policy
    REGULATOR = "regulator"    # regulator / auditor: read-only everything
    ADMIN = "admin"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


def tonnes(value: Decimal | int | str) -> Decimal:
    """Metric tonnes → kilograms (the unit of every quantity in the market core)."""
    return _dec(value, "quantity") * KG_PER_TONNE


def _dec(value: object, name: str) -> Decimal:
    """Coerce to Decimal, refusing floats (binary fractions would make money inexact)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise DataError(f"{name} must be a Decimal, int or decimal string, not {type(value).__name__}",
                        column=name)
    if isinstance(value, Decimal):
        out = value
    else:
        try:
            out = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise DataError(f"{name} is not a number: {value!r}", column=name) from None
    if not out.is_finite():
        raise DataError(f"{name} must be finite, got {value!r}", column=name)
    return out


def _iso3(code: object, name: str) -> str:
    if not isinstance(code, str) or not is_valid_code(code):
        raise DataError(f"{name}: unknown ISO 3166 alpha-3 country code {code!r}", column=name)
    return code


def _nonempty(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{name} must be a non-empty string, got {value!r}", column=name)
    return value


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses: normalised values are written once in __post_init__.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Participant:
    """A market participant.

    Parameters
    ----------
    id : str
        Unique participant id.
    role : Role
    country : str
        ISO 3166 alpha-3 code of the country the participant belongs to.
    """

    id: str
    role: Role
    country: str

    def __post_init__(self) -> None:
        _nonempty(self.id, "id")
        try:
            _set(self, "role", Role(self.role))
        except ValueError:
            raise DataError(f"role must be one of {[r.value for r in Role]}, got {self.role!r}",
                            column="role") from None
        _iso3(self.country, "country")


@dataclass(frozen=True)
class Attestations:
    """Chain-of-custody and responsible-sourcing attestations carried by a lot.

    Parameters
    ----------
    irma_level : int or None
        IRMA achievement level (0 = none … 100 = IRMA 100); ``None`` = not audited.
    oecd_ddg : bool
        The supplier follows the OECD Due Diligence Guidance track for minerals.
    carbon_kg_per_kg : Decimal or None
        Carbon intensity, kg CO2e per kg of product; ``None`` = not declared.
    chain_of_custody : str or None
        Chain-of-custody scheme or certificate id; ``None`` = none.
    """

    irma_level: int | None = None
    oecd_ddg: bool = False
    carbon_kg_per_kg: Decimal | None = None
    chain_of_custody: str | None = None

    def __post_init__(self) -> None:
        if self.irma_level is not None and (isinstance(self.irma_level, bool) or not isinstance(self.irma_level, int)
                                            or self.irma_level < 0):
            raise DataError(f"irma_level must be a non-negative int or None, got {self.irma_level!r}",
                            column="irma_level")
        if self.carbon_kg_per_kg is not None:
            c = _dec(self.carbon_kg_per_kg, "carbon_kg_per_kg")
            if c < 0:
                raise DataError("carbon_kg_per_kg must be ≥ 0", column="carbon_kg_per_kg")
            _set(self, "carbon_kg_per_kg", c)


@dataclass(frozen=True)
class Requirements:
    """What a buyer requires of the lots it will trade with (all conditions must hold).

    Parameters
    ----------
    allowed_origins : frozenset of str or None
        ISO3 origins accepted; ``None`` = any origin.
    allied_only : bool
        Accept only origins in the allied group (``msp`` by default, see :mod:`critmin.market.eligibility`).
    min_irma : int or None
        Minimum IRMA level; a lot with no IRMA audit fails when this is set.
    require_oecd : bool
        Require the OECD due-diligence track.
    max_carbon : Decimal or None
        Maximum carbon intensity, kg CO2e/kg; a lot with no declared intensity fails when this is set.
    exclude_nonmarket : bool
        Refuse lots whose origin carries the non-market flag.
    """

    allowed_origins: frozenset[str] | None = None
    allied_only: bool = False
    min_irma: int | None = None
    require_oecd: bool = False
    max_carbon: Decimal | None = None
    exclude_nonmarket: bool = False

    def __post_init__(self) -> None:
        if self.allowed_origins is not None:
            origins = frozenset(self.allowed_origins)
            for code in sorted(origins):
                _iso3(code, "allowed_origins")
            _set(self, "allowed_origins", origins)
        if self.min_irma is not None and (isinstance(self.min_irma, bool) or not isinstance(self.min_irma, int)
                                          or self.min_irma < 0):
            raise DataError(f"min_irma must be a non-negative int or None, got {self.min_irma!r}", column="min_irma")
        if self.max_carbon is not None:
            c = _dec(self.max_carbon, "max_carbon")
            if c < 0:
                raise DataError("max_carbon must be ≥ 0", column="max_carbon")
            _set(self, "max_carbon", c)


@dataclass(frozen=True)
class Order:
    """A limit order; a SELL order is a lot offered, a BUY order a requirement bid.

    Parameters
    ----------
    id : str
        Unique order id.
    seq : int
        Arrival sequence number (≥ 0); time priority is by lowest ``seq``. No wall clock anywhere.
    participant_id : str
    side : Side
    commodity, form, grade : str
        Lower-case commodity id (``cobalt``), form (``hydroxide``, ``oxide``) and grade/spec (``battery``).
        Free text (the market may list commodities critmin has no data for) but never empty.
    quantity : Decimal
        kg, > 0.
    limit_price : Decimal
        USD/kg, > 0: the most a buyer pays, the least a seller accepts.
    delivery_start, delivery_end : datetime.date
        Delivery window, inclusive; ``delivery_end >= delivery_start``.
    location : str
        Delivery location (port, warehouse), non-empty.
    origin : str or None
        ISO3 country of origin of the material; required for SELL, ``None`` allowed for BUY.
    attestations : Attestations
        Of the lot (SELL); ignored on BUY.
    nonmarket : bool
        The origin is subject to the non-market flag (SELL).
    requirements : Requirements
        Of the buyer (BUY); ignored on SELL.
    """

    id: str
    seq: int
    participant_id: str
    side: Side
    commodity: str
    form: str
    grade: str
    quantity: Decimal
    limit_price: Decimal
    delivery_start: dt.date
    delivery_end: dt.date
    location: str
    origin: str | None = None
    attestations: Attestations = field(default_factory=Attestations)
    nonmarket: bool = False
    requirements: Requirements = field(default_factory=Requirements)

    def __post_init__(self) -> None:
        _nonempty(self.id, "id")
        _nonempty(self.participant_id, "participant_id")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise DataError(f"seq must be a non-negative int, got {self.seq!r}", column="seq")
        try:
            _set(self, "side", Side(self.side))
        except ValueError:
            raise DataError(f"side must be 'buy' or 'sell', got {self.side!r}", column="side") from None
        for name in ("commodity", "form", "grade", "location"):
            _nonempty(getattr(self, name), name)
        qty = _dec(self.quantity, "quantity")
        if qty <= 0:
            raise DataError(f"quantity must be > 0 kg, got {qty}", column="quantity")
        price = _dec(self.limit_price, "limit_price")
        if price <= 0:
            raise DataError(f"limit_price must be > 0 USD/kg, got {price}", column="limit_price")
        _set(self, "quantity", qty)
        _set(self, "limit_price", price)
        for name in ("delivery_start", "delivery_end"):
            if not isinstance(getattr(self, name), dt.date):
                raise DataError(f"{name} must be a date", column=name)
        if self.delivery_end < self.delivery_start:
            raise DataError(f"delivery_end {self.delivery_end} is before delivery_start {self.delivery_start}",
                            column="delivery_end")
        if self.origin is None:
            if self.side is Side.SELL:
                raise DataError("origin is required on a sell order", column="origin")
        else:
            _iso3(self.origin, "origin")
        if not isinstance(self.attestations, Attestations):
            raise DataError("attestations must be an Attestations", column="attestations")
        if not isinstance(self.requirements, Requirements):
            raise DataError("requirements must be a Requirements", column="requirements")

    @property
    def book_key(self) -> tuple[str, str, str]:
        """(commodity, form, grade): the book this order belongs to."""
        return (self.commodity, self.form, self.grade)


@dataclass(frozen=True)
class Trade:
    """One fill between a buy and a sell order.

    Parameters
    ----------
    seq : int
        Trade sequence number within the book or auction (0, 1, 2 …), deterministic.
    buy_order_id, sell_order_id, buyer_id, seller_id : str
    commodity, form, grade : str
    quantity : Decimal
        kg.
    price : Decimal
        USD/kg (the resting order's price in continuous trading; the clearing price in a call auction).
    origin : str
        ISO3 origin of the material delivered.
    nonmarket : bool
        The origin carries the non-market flag.
    """

    seq: int
    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    form: str
    grade: str
    quantity: Decimal
    price: Decimal
    origin: str
    nonmarket: bool = False

    @property
    def value(self) -> Decimal:
        """Cash paid by the buyer, USD (price × quantity), exact (:data:`critmin.market.money.MONEY`)."""
        return MONEY.multiply(self.price, self.quantity)

    @property
    def asset(self) -> str:
        """Ledger asset name of the material, ``commodity/form``."""
        return f"{self.commodity}/{self.form}"


@dataclass(frozen=True)
class Programme:
    """A government support programme: a price floor or a two-sided contract for difference (CfD).

    Exactly one of ``floor`` and ``cfd_strike`` is set: a floor pays ``max(0, floor − reference)`` per kg, a CfD
    pays ``strike − reference`` per kg (negative = the seller pays back), where ``reference`` is a published
    reference price, never the trade's own price (:func:`critmin.market.pricing.settle_support`). Mixing the two on
    one programme would make the payment rule ambiguous, so it is refused. A programme supports only sellers who
    enrolled in it (the service keeps the enrolments).

    Parameters
    ----------
    id : str
    country : str
        ISO3 of the funding government.
    commodity, form : str
        The material supported.
    floor : Decimal or None
        USD/kg, > 0.
    cfd_strike : Decimal or None
        USD/kg, > 0.
    budget : Decimal
        USD > 0: the most the programme pays out, net of CfD paybacks.
    eligible_origins : frozenset of str or None
        ISO3 origins whose trades the programme supports; ``None`` = any (subject to ``allies_only``).
    allies_only : bool
        Support only origins in the allied group.
    exclude_nonmarket : bool
        Never support trades of material from a non-market-flagged origin (default True: public money should not
        subsidise the prices the programme exists to counter).
    max_support_per_seller : Decimal or None
        USD > 0: the most one seller receives from the programme, net of its paybacks (default None: no cap per
        seller, the budget alone limits what it receives).
    max_payback_per_seller : Decimal or None
        USD ≥ 0, CfD only (required there): the most one seller can be charged, net of what it received. A
        seller who enrols knows the worst case; a floor never charges anyone, so it has none.
    """

    id: str
    country: str
    commodity: str
    form: str
    floor: Decimal | None = None
    cfd_strike: Decimal | None = None
    budget: Decimal = Decimal(0)
    eligible_origins: frozenset[str] | None = None
    allies_only: bool = False
    exclude_nonmarket: bool = True
    max_support_per_seller: Decimal | None = None
    max_payback_per_seller: Decimal | None = None

    def __post_init__(self) -> None:
        _nonempty(self.id, "id")
        _iso3(self.country, "country")
        _nonempty(self.commodity, "commodity")
        _nonempty(self.form, "form")
        if (self.floor is None) == (self.cfd_strike is None):
            raise ConfigError(f"programme {self.id}: set exactly one of floor and cfd_strike")
        for name in ("floor", "cfd_strike"):
            v = getattr(self, name)
            if v is not None:
                d = _dec(v, name)
                if d <= 0:
                    raise ConfigError(f"programme {self.id}: {name} must be > 0 USD/kg, got {d}")
                _set(self, name, d)
        budget = _dec(self.budget, "budget")
        if budget <= 0:
            raise ConfigError(f"programme {self.id}: budget must be > 0 USD, got {budget}")
        _set(self, "budget", budget)
        if self.max_support_per_seller is not None:
            cap = _dec(self.max_support_per_seller, "max_support_per_seller")
            if cap <= 0:
                raise ConfigError(f"programme {self.id}: max_support_per_seller must be > 0 USD, got {cap}")
            _set(self, "max_support_per_seller", cap)
        if self.cfd_strike is not None:
            if self.max_payback_per_seller is None:
                raise ConfigError(f"programme {self.id}: a CfD needs max_payback_per_seller (USD ≥ 0), the most "
                                  "a seller can be charged")
            payback = _dec(self.max_payback_per_seller, "max_payback_per_seller")
            if payback < 0:
                raise ConfigError(f"programme {self.id}: max_payback_per_seller must be ≥ 0 USD, got {payback}")
            _set(self, "max_payback_per_seller", payback)
        elif self.max_payback_per_seller is not None:
            raise ConfigError(f"programme {self.id}: max_payback_per_seller is for CfDs; a floor charges nobody")
        if self.eligible_origins is not None:
            origins = frozenset(self.eligible_origins)
            for code in sorted(origins):
                _iso3(code, "eligible_origins")
            _set(self, "eligible_origins", origins)
