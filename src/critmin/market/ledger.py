"""Double-entry ledger of cash (USD) and material (``commodity/form``, kg) per participant and programme.

Every posting is a list of signed entries: ``+amount`` increases the owner's holding of the asset, ``−amount``
decreases it. A posting must sum to zero per asset, so the whole ledger always sums to zero per asset (the trial
balance). Money and material entering from outside the market are booked against the :data:`EXTERNAL` account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from critmin.errors import DataError
from critmin.market.model import Programme, Trade, _dec
from critmin.market.money import money, total
from critmin.market.pricing import SupportPayment, settle_support

ZERO = Decimal(0)
USD = "USD"
#: Counter-account for deposits and withdrawals (the world outside the market).
EXTERNAL = "external"


@dataclass(frozen=True)
class Entry:
    """One leg of a posting.

    Parameters
    ----------
    owner : str
        Participant or programme id (or :data:`EXTERNAL`).
    asset : str
        ``"USD"`` (amount in USD) or ``"commodity/form"`` (amount in kg).
    amount : Decimal
        Signed change of the owner's holding.
    """

    owner: str
    asset: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not self.owner or not self.asset:
            raise DataError("entry needs an owner and an asset", column="owner")
        object.__setattr__(self, "amount", _dec(self.amount, "amount"))


@dataclass(frozen=True)
class Posting:
    """An applied, balanced posting with its sequence number in the journal."""

    seq: int
    memo: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Settlement:
    """Result of :meth:`Ledger.settle`: the posting and the programme payment (if any)."""

    posting: Posting
    support: SupportPayment | None


class Ledger:
    """Double-entry ledger.

    Parameters
    ----------
    strict : bool
        When True, a posting that would leave any account other than :data:`EXTERNAL` below zero is refused
        (no overdrafts, no short material). Off by default: credit policy belongs to the service.
    """

    def __init__(self, strict: bool = False, *, keep_journal: bool = True) -> None:
        self.strict = strict
        self.keep_journal = keep_journal
        self._balances: dict[tuple[str, str], Decimal] = {}
        self._journal: list[Posting] = []
        self._next_seq = 0
        self._spent: dict[str, Decimal] = {}  # programme id → net USD paid out
        self._seller_net: dict[tuple[str, str], Decimal] = {}  # (programme id, seller) → net USD paid to it

    def restore(self, balances: Mapping[tuple[str, str], Decimal], spent: Mapping[str, Decimal],
                next_seq: int, seller_net: Mapping[tuple[str, str], Decimal] | None = None) -> None:
        """Resume from stored state (balances, programme net payouts, next posting number, net payouts per
        programme and seller) instead of replaying the journal. Used by a service that persists the journal itself
        (``keep_journal=False``)."""
        self._balances = {k: _dec(v, "amount") for k, v in balances.items()}
        self._spent = {k: _dec(v, "spent") for k, v in spent.items()}
        self._seller_net = {k: _dec(v, "seller_net") for k, v in (seller_net or {}).items()}
        self._journal = []
        self._next_seq = int(next_seq)

    def post(self, entries: Iterable[Entry], memo: str = "") -> Posting:
        """Apply a posting atomically.

        Raises
        ------
        DataError
            If the entries do not sum to zero for every asset (or, when ``strict``, an account would go
            negative). Nothing is applied.
        """
        with money():
            return self._post(tuple(entries), memo)

    def _post(self, entries: tuple[Entry, ...], memo: str) -> Posting:
        if not entries:
            raise DataError("empty posting", column="entries")
        totals: dict[str, Decimal] = {}
        for e in entries:
            if not isinstance(e, Entry):
                raise DataError(f"posting entries must be Entry, got {type(e).__name__}", column="entries")
            totals[e.asset] = totals.get(e.asset, ZERO) + e.amount
        unbalanced = {a: t for a, t in sorted(totals.items()) if t != 0}
        if unbalanced:
            raise DataError(f"posting {memo!r} does not balance: {unbalanced}", column="amount")
        new: dict[tuple[str, str], Decimal] = {}
        for e in entries:
            key = (e.owner, e.asset)
            new[key] = new.get(key, self._balances.get(key, ZERO)) + e.amount
        if self.strict:
            short = {k: v for k, v in sorted(new.items()) if v < 0 and k[0] != EXTERNAL}
            if short:
                raise DataError(f"posting {memo!r} would overdraw {short}", column="amount")
        self._balances.update(new)
        posting = Posting(self._next_seq, memo, entries)
        self._next_seq += 1
        if self.keep_journal:
            self._journal.append(posting)
        return posting

    def deposit(self, owner: str, asset: str, amount: Decimal, memo: str = "deposit") -> Posting:
        """Bring cash or material into the market from outside (booked against :data:`EXTERNAL`)."""
        amount = _dec(amount, "amount")
        with money():
            return self._post((Entry(owner, asset, amount), Entry(EXTERNAL, asset, -amount)), memo)

    def settle(self, trade: Trade, programme: Programme | None = None,
               allies: Iterable[str] | None = None, levy: tuple[str, Decimal] | None = None,
               reference: Decimal | None = None) -> Settlement:
        """Settle one trade in a single atomic posting.

        Legs: buyer → seller cash ``price × quantity`` (USD); seller → buyer material ``quantity`` (kg of
        ``commodity/form``); and, if ``programme`` (the one the seller enrolled in) is given, programme → seller the
        floor/CfD payment from :func:`~critmin.market.pricing.settle_support` against ``reference`` (seller →
        programme when a CfD payment is negative), capped by the programme's remaining budget and the seller's caps
        as tracked by this ledger; and, if ``levy = (owner, amount)`` is given, seller → ``owner`` ``amount`` USD
        (the adjustment collected on a non-market origin).

        A payment to the seller is due only on material the seller held before the trade (its balance of
        ``commodity/form`` ≥ the quantity, booked in by a warehouse receipt): balances may go negative, so without
        this a seller could sell material it does not have, again and again, and draw support on each sale. A CfD
        payback is charged whatever the holding (else a seller could dodge it by selling short).
        """
        with money():
            value = trade.value
            entries = [Entry(trade.buyer_id, USD, -value), Entry(trade.seller_id, USD, value),
                       Entry(trade.seller_id, trade.asset, -trade.quantity),
                       Entry(trade.buyer_id, trade.asset, trade.quantity)]
            support = None
            if programme is not None:
                key = (programme.id, trade.seller_id)
                support = settle_support(trade, programme, reference, self._spent.get(programme.id, ZERO), allies,
                                         seller_net=self._seller_net.get(key, ZERO),
                                         material_covered=self.balance(trade.seller_id, trade.asset) >= trade.quantity)
                if support.paid != 0:
                    entries += [Entry(programme.id, USD, -support.paid), Entry(trade.seller_id, USD, support.paid)]
            if levy is not None and _dec(levy[1], "levy") != 0:
                entries += [Entry(trade.seller_id, USD, -levy[1]), Entry(levy[0], USD, levy[1])]
            posting = self._post(tuple(entries), memo=f"trade {trade.seq} {trade.buy_order_id}/{trade.sell_order_id}")
            if support is not None and support.paid != 0:
                # Only after the posting succeeded, so a refused posting leaves the budget untouched.
                self._spent[programme.id] = self._spent.get(programme.id, ZERO) + support.paid
                self._seller_net[key] = self._seller_net.get(key, ZERO) + support.paid
            return Settlement(posting, support)

    def spent(self, programme_id: str) -> Decimal:
        """Net USD paid out by a programme (payments minus paybacks)."""
        return self._spent.get(programme_id, ZERO)

    def seller_net(self, programme_id: str, seller_id: str) -> Decimal:
        """Net USD a programme has paid one seller (payments minus paybacks)."""
        return self._seller_net.get((programme_id, seller_id), ZERO)

    def balance(self, owner: str, asset: str) -> Decimal:
        return self._balances.get((owner, asset), ZERO)

    def balances(self) -> Mapping[tuple[str, str], Decimal]:
        """Copy of every account balance, keyed ``(owner, asset)``, sorted."""
        return dict(sorted(self._balances.items()))

    def trial_balance(self) -> Mapping[str, Decimal]:
        """Sum of all balances per asset; every value is zero in a consistent ledger."""
        by_asset: dict[str, list[Decimal]] = {}
        for (_, asset), v in sorted(self._balances.items()):
            by_asset.setdefault(asset, []).append(v)
        return {asset: total(vs) for asset, vs in by_asset.items()}

    def journal(self) -> tuple[Posting, ...]:
        """Every applied posting, in order (append-only)."""
        return tuple(self._journal)
