"""Request and response bodies of the marketplace API (they define the OpenAPI schema).

Money, prices and quantities travel as decimal *strings* (``"12.5"``), never JSON numbers, so no client or server
rounds them through binary floating point. Units: quantities kg, prices USD/kg, cash USD, carbon kg CO2e/kg.
Unknown fields are refused (``extra="forbid"``), so a misspelt field is an error, not silently ignored.

Input is strict: dates only as ISO ``YYYY-MM-DD`` strings (a JSON number is not a date), booleans only JSON
``true``/``false`` (never ``"yes"`` or ``1``), integers only JSON integers (never ``"50"``), decimals only as the
strings :data:`Dec` describes. Every string field is at most as long as the column that stores it (checked by
``tests/test_server_input.py``), so a value the API accepts is always one the database can hold.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

Dec = Annotated[str, StringConstraints(max_length=25, pattern=r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,9})?$"),
                Field(description="Non-negative decimal number as a string, e.g. \"12.5\": at most 15 digits before "
                                  "the point and 9 after", examples=["12.5"])]
Slug = Annotated[str, StringConstraints(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
                 Field(description="Lower-case identifier: letters, digits, '-' and '_'")]
ISO3 = Annotated[str, StringConstraints(max_length=3, pattern=r"^[A-Z]{3}$"),
                 Field(description="ISO 3166 alpha-3 country code")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
#: The client's own order reference: the ``orders.client_order_id`` column holds 64 characters.
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


def _iso_date_text(value: Any) -> Any:
    """Only an ISO ``YYYY-MM-DD`` string is a date on the wire (pydantic's lax mode also takes a number of seconds
    since 1970 and a datetime string with a zero time; strict mode, in the Python-object validation FastAPI runs,
    takes no string at all)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO date string YYYY-MM-DD, got {_JSON_KIND.get(type(value), 'a value')}")
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(f"must be an ISO date string YYYY-MM-DD, got {value[:40]!r}")
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON_KIND = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object",
              type(None): "null"}
Date = Annotated[dt.date, BeforeValidator(_iso_date_text), Field(description="ISO date, YYYY-MM-DD")]
Scope = Literal["read", "trade", "programme", "audit", "admin"]
RoleName = Literal["seller", "buyer", "programme", "regulator", "admin"]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable reason")
    message: str = Field(description="What is wrong, in words")
    field: str | None = Field(description="The request field at fault (body.x, query.y, header name), if any")


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---------------------------------------------------------------------- participants and tokens
class ParticipantIn(In):
    id: Slug
    name: Text
    role: RoleName
    country: ISO3


class ParticipantOut(BaseModel):
    id: str
    name: str
    role: RoleName
    country: str
    version: int


class MeOut(ParticipantOut):
    token_id: str
    scopes: list[Scope]


class TokenIn(In):
    scopes: list[Scope] | None = Field(None, max_length=5, description="Default: every scope of the role")
    label: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f]*$")] = ""


class TokenOut(BaseModel):
    id: str
    participant_id: str
    scopes: list[Scope]
    label: str
    revoked: bool
    version: int
    token: str | None = Field(None, description="The secret, shown once at issue (null on replays and listings)")


# ---------------------------------------------------------------------- orders and trades
class AttestationsIn(In):
    irma_level: StrictInt | None = Field(None, ge=0, le=100, description="IRMA achievement level (e.g. 50, 75, 100)")
    oecd_ddg: StrictBool = Field(False, description="Follows the OECD due-diligence guidance track")
    carbon_kg_per_kg: Dec | None = Field(None, description="kg CO2e per kg of product")
    chain_of_custody: Text | None = None


class RequirementsIn(In):
    allowed_origins: list[ISO3] | None = Field(None, max_length=250)
    allied_only: StrictBool = Field(False, description="Only origins in the allied group (Minerals Security Partnership)")
    min_irma: StrictInt | None = Field(None, ge=0, le=100)
    require_oecd: StrictBool = False
    max_carbon: Dec | None = None
    exclude_nonmarket: StrictBool = False


class OrderIn(In):
    side: Literal["buy", "sell"]
    commodity: Slug
    form: Slug
    grade: Slug
    quantity: Dec = Field(description="kg, > 0")
    limit_price: Dec = Field(description="USD/kg, > 0")
    delivery_start: Date
    delivery_end: Date
    location: Text
    origin: ISO3 | None = Field(None, description="Origin of the material; required on sell orders")
    nonmarket: StrictBool = Field(False, description="Seller declares the origin subject to non-market policies; origins "
                                               "listed in the commodity's policy are flagged regardless")
    attestations: AttestationsIn = AttestationsIn()
    requirements: RequirementsIn = RequirementsIn()
    client_order_id: ClientId | None = None


class AttestationsOut(BaseModel):
    irma_level: int | None
    oecd_ddg: bool
    carbon_kg_per_kg: str | None
    chain_of_custody: str | None


class RequirementsOut(BaseModel):
    allowed_origins: list[str] | None
    allied_only: bool
    min_irma: int | None
    require_oecd: bool
    max_carbon: str | None
    exclude_nonmarket: bool


class OrderOut(BaseModel):
    id: str
    seq: int
    participant_id: str
    client_order_id: str | None
    side: Literal["buy", "sell"]
    commodity: str
    form: str
    grade: str
    quantity: str
    limit_price: str = Field(description="As submitted, USD/kg")
    book_price: str = Field(description="Price in the book after the non-market adjustment, USD/kg")
    delivery_start: dt.date
    delivery_end: dt.date
    location: str
    origin: str | None
    nonmarket: bool
    attestations: AttestationsOut
    requirements: RequirementsOut
    remaining: str
    status: Literal["open", "filled", "cancelled"]
    version: int


class TradeOut(BaseModel):
    id: int
    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    form: str
    grade: str
    quantity: str = Field(description="kg")
    price: str = Field(description="USD/kg paid by the buyer")
    origin: str
    nonmarket: bool
    mechanism: Literal["continuous", "call"]
    programme_id: str | None
    support_due: str = Field(description="USD due from the programme by its rule (negative: CfD payback)")
    support_paid: str = Field(description="USD actually paid after the budget cap")
    support_reason: str
    levy: str = Field(description="USD of non-market tariff collected from the seller")
    posting_seq: int
    reference_price: str | None = Field(description="USD/kg: the published fixing the support was computed against "
                                                    "(null when no programme settles the trade)")
    fixing_id: int | None = Field(description="The fixing of reference_price")


class PlaceOrderOut(BaseModel):
    order: OrderOut
    trades: list[TradeOut]


class OrderBatchIn(In):
    orders: list[OrderIn] = Field(min_length=1, max_length=100, description="1 to 100 orders, placed in this order")


class OrderBatchItem(BaseModel):
    status: int = Field(description="What POST /v1/orders would have answered for this order (201, 403, 422 …)")
    order: OrderOut | None = None
    trades: list[TradeOut] | None = None
    error: ErrorDetail | None = None


class OrderBatchOut(BaseModel):
    results: list[OrderBatchItem] = Field(description="One per order, in the order given")


class CancelOut(BaseModel):
    order_id: str
    status: Literal["cancelled"]
    remaining: str
    version: int


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at the end")


class TradePage(BaseModel):
    items: list[TradeOut]
    next_after: int | None


class ParticipantPage(BaseModel):
    items: list[ParticipantOut]
    next_after: str | None


# ---------------------------------------------------------------------- books
class Level(BaseModel):
    price: str
    quantity: str
    orders: int


class BookOut(BaseModel):
    commodity: str
    form: str
    grade: str
    mode: Literal["continuous", "call"]
    version: int
    price_tick: str = Field(description="USD/kg: limit prices must be multiples of it")
    quantity_tick: str = Field(description="kg: quantities must be multiples of it")
    bids: list[Level]
    asks: list[Level]


class BookModeIn(In):
    mode: Literal["continuous", "call"] | None = Field(None, description="Absent: unchanged")
    price_tick: Dec | None = Field(None, description="USD/kg, > 0; absent: unchanged (default 0.01)")
    quantity_tick: Dec | None = Field(None, description="kg, > 0; absent: unchanged (default 1)")


class BookModeOut(BaseModel):
    commodity: str
    form: str
    grade: str
    mode: Literal["continuous", "call"]
    version: int
    price_tick: str
    quantity_tick: str
    trades: list[TradeOut]


class AuctionOut(BaseModel):
    commodity: str
    form: str
    grade: str
    clearing_price: str | None
    trades: list[TradeOut]


# ---------------------------------------------------------------------- programmes and policy
class ProgrammeIn(In):
    id: Slug
    commodity: Slug
    form: Slug
    floor: Dec | None = Field(None, description="Price floor, USD/kg (set exactly one of floor and cfd_strike)")
    cfd_strike: Dec | None = Field(None, description="Two-sided CfD strike, USD/kg")
    budget: Dec = Field(description="Most the programme pays out, USD")
    eligible_origins: list[ISO3] | None = Field(None, max_length=250)
    allies_only: StrictBool = False
    exclude_nonmarket: StrictBool = True
    max_support_per_seller: Dec | None = Field(None, description="Most one seller receives, net, USD (default: no "
                                                                 "cap per seller)")
    max_payback_per_seller: Dec | None = Field(None, description="CfD only, required there: most one seller can be "
                                                                 "charged back, net, USD")


class ProgrammePatch(In):
    budget: Dec | None = None
    active: StrictBool | None = None


class ProgrammeOut(BaseModel):
    id: str
    participant_id: str
    country: str
    commodity: str
    form: str
    floor: str | None
    cfd_strike: str | None
    budget: str
    eligible_origins: list[str] | None
    allies_only: bool
    exclude_nonmarket: bool
    active: bool
    version: int
    max_support_per_seller: str | None
    max_payback_per_seller: str | None
    spent: str
    remaining_budget: str


class EnrolmentIn(In):
    """Enrolment takes no parameters: the seller accepts the programme's published terms, which cannot change."""


class EnrolmentOut(BaseModel):
    programme_id: str
    seller_id: str
    commodity: str
    form: str
    active: bool
    version: int
    floor: str | None
    cfd_strike: str | None
    max_support_per_seller: str | None
    max_payback_per_seller: str | None
    net_received: str = Field(description="USD the programme has paid this seller, net of paybacks")


class FixingIn(In):
    method: Literal["index", "benchmark"] = Field(
        description="index: computed from the trades since the previous fixing; benchmark: the price given")
    price: Dec | None = Field(None, description="USD/kg, benchmark only")
    source: Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")] | None = Field(
        None, description="Benchmark only: the publication the price is from")


class FixingOut(BaseModel):
    id: int
    commodity: str
    form: str
    method: Literal["index", "benchmark"]
    price: str = Field(description="USD/kg")
    source: str | None
    first_trade_id: int | None = Field(description="First trade of the window (index)")
    last_trade_id: int | None = Field(description="Last trade of the market when published; the next window "
                                                  "starts after it")
    trades: int
    sellers: int
    buyers: int
    volume: str = Field(description="kg traded in the window")
    published_by: str
    created_seq: int


class CostIn(In):
    cash_cost: Dec = Field(description="Operating cash cost, USD/kg")
    sustaining_capex: Dec = Field(description="USD/kg")
    responsible_costs: dict[Slug, Dec] = Field(default_factory=dict, max_length=20,
                                               description="Responsible-sourcing cost components, USD/kg each")
    margin_rate: Dec = Field(description="Return on cost, fraction (0.1 = 10 %)")
    sources: list[Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")]] = Field(
        min_length=1, max_length=20, description="Where each input comes from")


class PolicyIn(In):
    cost_inputs: CostIn | None = None
    nonmarket_tariff_rate: Dec | None = Field(None, description="Ad-valorem adjustment on non-market lots (0.25)")
    nonmarket_use_reference: StrictBool = Field(False, description="Count non-market lots at least at the reference price")
    nonmarket_origins: list[ISO3] = Field(default_factory=list, max_length=250)


class ReferencePriceOut(BaseModel):
    conventional: str
    premium: str = Field(description="Responsible-sourcing premium, USD/kg")
    price: str
    terms: dict[str, str]
    sources: list[str]


class PolicyOut(BaseModel):
    commodity: str
    form: str
    version: int
    set_by: str
    nonmarket_tariff_rate: str | None
    nonmarket_use_reference: bool
    nonmarket_origins: list[str]
    cost_inputs: dict[str, Any] | None
    reference_price: ReferencePriceOut | None


# ---------------------------------------------------------------------- ledger and audit
class DepositIn(In):
    owner: Slug
    asset: Annotated[str, StringConstraints(max_length=129, pattern=r"^(USD|[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63})$")]
    amount: Dec


class DepositOut(BaseModel):
    posting: int
    owner: str
    asset: str
    amount: str
    balance: str


class Balance(BaseModel):
    asset: str
    amount: str


class AccountOut(BaseModel):
    owner: str
    balances: list[Balance]


class TrialBalanceOut(BaseModel):
    balanced: bool = Field(description="Every asset's ledger entries sum to zero")
    accounts_agree: bool = Field(description="Every stored account balance equals the sum of its ledger entries")
    totals: list[Balance]
    postings: int


class AuditRecord(BaseModel):
    seq: int
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_after: int | None


class AuditHead(BaseModel):
    count: int
    head: str
    valid: bool | None = Field(None, description="Chain verified from the start (only with ?verify=true)")
    first_bad: int | None = None
    reason: str | None = None


class AuditFinding(BaseModel):
    table: str = Field(description="Table of the row (audit_log: a record the check could not apply)")
    key: str = Field(description="The row's key (parts joined by '/')")
    column: str | None = Field(description="The column that disagrees; null: the whole row (missing, or no record "
                                           "behind it)")
    stored: Any = Field(description="The value in the table")
    implied: Any = Field(description="The value the audit log implies")
    record: int | None = Field(description="The audit record that implies the value")
    message: str


class AuditVerifyOut(BaseModel):
    ok: bool = Field(description="The chain is intact and every row agrees with the log")
    records: int
    head: str
    chain_ok: bool
    chain_error: str | None = Field(description="Where and why the chain is broken (rows are then not checked)")
    disagreements: int = Field(description="Rows or columns that disagree, in all")
    rows_checked: dict[str, int] = Field(description="Rows compared, per table")
    findings: list[AuditFinding] = Field(description="The disagreements (the first 10,000)")


class Health(BaseModel):
    status: Literal["ok"]
    backend: str
