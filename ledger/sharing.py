"""The risk-sharing engine: who bears how much of one claim's loss, and of one recovery.

Pure: no database, no Flask. The claim code gathers what earlier claims used (per borrower-year,
bank-year, programme-year, portfolio, fund) and passes it in; this module only computes.
Meaning in DOMAIN.md sections 3 (claims) and 4 (recoveries).

Each rule is a small named function on integers (`cap_cut_fen`, `allowance_fen`,
`ip_part_fen`, `portfolio_limit_fen`, `fund_available_fen`) so that a stress simulation can
apply the same rule to numpy int64 arrays (ints in, ints out; arrays go through numpy's
`minimum`, `maximum` and `//`); the claim engine composes them in the order DOMAIN.md
3.3 gives.

Guarantees
- Parties' shares plus the bank's retained loss equal the loss base exactly, always.
- No share is negative, none exceeds the party's uncapped share; every fen a cap takes from a
  party is recorded with that cap's name and is borne by the bank.
- A recovery's parts sum to what is returned, and no party ever gets back more than it bore.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Sequence

from ledger.money import allocate
from ledger.terms import Coverage, Party, Terms

BANK = "bank"
"""The name the bank's retained loss goes under; the bank counts as listed last (DOMAIN.md 3.4)."""

CAP_ORDER = ("per_claim", "per_borrower_year", "per_bank_year", "per_program_year",
             "portfolio", "fund_balance")
"""The caps on a party's share, in the order they apply (DOMAIN.md 3.3)."""

NOT_COVERED_NO_IP_SHARE = "ip_share_not_stated"
NOT_COVERED_LOW_IP_SHARE = "ip_share_below_minimum"


# Rules on integers (numpy-friendly: each is arithmetic on whole fen, no branching on values).


def cap_cut_fen(share_fen: Any, limit_fen: Any) -> Any:
    """What a cap of `limit_fen` cuts off `share_fen` (0 when the share fits)."""
    return share_fen - _minimum(share_fen, limit_fen)


def allowance_fen(limit_fen: Any, used_fen: Any) -> Any:
    """What a shared limit still allows after `used_fen` of it went to earlier items; never < 0."""
    return _maximum(limit_fen - used_fen, 0)


def ip_part_fen(loss_base_fen: Any, ip_share_num: Any, ip_share_den: Any) -> Any:
    """Loss base x IP share (num/den), rounded down: the programme never covers a fen not pledged."""
    return loss_base_fen * ip_share_num // ip_share_den


def portfolio_limit_fen(rate_num: int, rate_den: int, weighted_principal_num: Any,
                        weighted_principal_den: Any, owed_earlier_fen: Any) -> Any:
    """EIF capped guarantee: floor(rate x sum of covered principal x ratio) less earlier shares.

    The sum is passed as an exact rational (numerator, denominator) so no fen is rounded twice.
    Rounded down: a cap allows whole fen only, and never one more than the rate gives.
    """
    limit = portfolio_cap_fen(rate_num, rate_den, weighted_principal_num, weighted_principal_den)
    return allowance_fen(limit, owed_earlier_fen)


def portfolio_cap_fen(rate_num: int, rate_den: int, weighted_principal_num: int,
                      weighted_principal_den: int) -> int:
    """floor(rate x weighted principal): the whole portfolio cap before earlier shares use it.

    Python ints (the rational sum's terms outgrow int64); a simulation computes it once per
    programme version, party and year and applies `allowance_fen` to arrays of what is owed."""
    return (rate_num * weighted_principal_num) // (rate_den * weighted_principal_den)


def fund_available_fen(balance_fen: Any, owed_unpaid_fen: Any) -> Any:
    """A pool's fund can promise only its balance less what it already owes and has not paid."""
    return allowance_fen(balance_fen, owed_unpaid_fen)


def _minimum(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    import numpy  # only a simulation passes arrays
    return numpy.minimum(a, b)


def _maximum(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    import numpy
    return numpy.maximum(a, b)


# Values


@dataclass(frozen=True)
class LoanFacts:
    """What a claim needs to know about the loan and its borrower's earlier loans."""

    original_principal_fen: int
    """Decides tiered ratios."""
    loss_base_fen: int
    """Outstanding principal (plus overdue interest where the terms say so), fen."""
    ip_share: Decimal | None
    """The loan's stated IP share of its collateral; None = not stated."""
    borrower_year_principal_before_fen: int = 0
    """Principal of this borrower's loans starting earlier in the same calendar year."""

    def __post_init__(self) -> None:
        for name in ("original_principal_fen", "loss_base_fen",
                     "borrower_year_principal_before_fen"):
            value = getattr(self, name)
            assert type(value) is int and value >= 0, f"{name} must be whole non-negative fen"


@dataclass(frozen=True)
class CapsUsed:
    """What one party already owes under each shared cap, from earlier claims (claim order)."""

    borrower_year_fen: int = 0
    bank_year_fen: int = 0
    program_year_fen: int = 0
    portfolio_owed_fen: int = 0
    """This party's shares on earlier claims of the programme."""
    portfolio_weighted_principal: Fraction = Fraction(0)
    """Sum over the programme's loans started up to the claim date of covered principal x ratio."""
    fund_balance_fen: int = 0
    fund_owed_unpaid_fen: int = 0


@dataclass(frozen=True)
class Cut:
    """Fen a cap took from a party's share (borne by the bank instead)."""

    party: str
    cap: str
    """One of CAP_ORDER."""
    fen: int


@dataclass(frozen=True)
class Share:
    """One party's part of a claim: before caps (rounded) and owed after them."""

    party: str
    ratio: Decimal
    rounded_fen: int
    owed_fen: int
    pays_first: bool


@dataclass(frozen=True)
class ClaimSplit:
    """The whole computation for one claim; `shares` in terms order, then the bank's retained."""

    loss_base_fen: int
    covered_fen: int
    not_covered_reason: str | None
    shares: tuple[Share, ...]
    cuts: tuple[Cut, ...]
    bank_retained_fen: int

    def __post_init__(self) -> None:
        owed = sum(share.owed_fen for share in self.shares)
        assert owed + self.bank_retained_fen == self.loss_base_fen, "split must sum to loss base"


@dataclass(frozen=True)
class RecoveryPart:
    """One bearer's part of a recovery and who receives it (the treasury, say, not the pool)."""

    party: str
    recipient: str
    fen: int


# The claim engine


def covered_amount(coverage: Coverage, loan: LoanFacts) -> tuple[int, str | None]:
    """DOMAIN.md 3.2: the covered amount and, when it is 0 by ineligibility, the reason."""
    if loan.ip_share is None and coverage.require_stated_ip_share:
        return 0, NOT_COVERED_NO_IP_SHARE
    if coverage.min_ip_share is not None and (loan.ip_share is None
                                              or loan.ip_share < coverage.min_ip_share):
        return 0, NOT_COVERED_LOW_IP_SHARE
    covered = loan.loss_base_fen
    if coverage.ip_share == "ip_part_only" and loan.ip_share is not None:
        share = Fraction(loan.ip_share)
        covered = ip_part_fen(covered, share.numerator, share.denominator)
    if coverage.max_covered_principal_fen is not None:
        covered -= cap_cut_fen(covered, coverage.max_covered_principal_fen)
    if coverage.max_covered_principal_per_borrower_year_fen is not None:
        allowance = allowance_fen(coverage.max_covered_principal_per_borrower_year_fen,
                                  loan.borrower_year_principal_before_fen)
        covered -= cap_cut_fen(covered, allowance)
    return covered, None


def rounded_shares(loss_base_fen: int, covered_fen: int,
                   ratios: Sequence[Decimal]) -> tuple[list[int], int]:
    """DOMAIN.md 3.4: parties' shares and the bank's, by largest remainder of the loss base.

    The bank is the last weight, so on a tie any party listed in the terms wins the fen.
    """
    weights = [Fraction(covered_fen) * Fraction(ratio) for ratio in ratios]
    bank_weight = Fraction(loss_base_fen) - sum(weights, Fraction(0))
    assert bank_weight >= 0, "parties' ratios sum to at most 1"
    if loss_base_fen == 0:
        return [0] * len(ratios), 0
    parts = allocate(loss_base_fen, [*weights, bank_weight])
    return parts[:-1], parts[-1]


def party_limits(party: Party, used: CapsUsed) -> list[tuple[str, int | None]]:
    """Each cap's room for this party on this claim, in CAP_ORDER; None = the party has no such cap."""
    caps = party.caps
    portfolio = None
    if caps.portfolio_cap_rate is not None:
        rate = Fraction(caps.portfolio_cap_rate)
        base = used.portfolio_weighted_principal
        portfolio = portfolio_cap_fen(rate.numerator, rate.denominator, base.numerator,
                                      base.denominator)
    return cap_rooms(caps.per_claim_fen,
                     (caps.per_borrower_year_fen, used.borrower_year_fen),
                     (caps.per_bank_year_fen, used.bank_year_fen),
                     (caps.per_program_year_fen, used.program_year_fen),
                     (portfolio, used.portfolio_owed_fen),
                     (used.fund_balance_fen if caps.fund_balance else None, used.fund_owed_unpaid_fen))


def cap_rooms(per_claim: Any, borrower_year: tuple[Any, Any], bank_year: tuple[Any, Any],
              program_year: tuple[Any, Any], portfolio: tuple[Any, Any],
              fund: tuple[Any, Any]) -> list[tuple[str, Any]]:
    """The room each cap leaves, in CAP_ORDER, from (limit, used so far) pairs; a limit of None
    means no such cap. Ints or int64 arrays (a simulation passes one element per scenario)."""
    def room(pair: tuple[Any, Any]) -> Any:
        limit, used = pair
        return None if limit is None else allowance_fen(limit, used)

    fund_limit, fund_owed = fund
    return [("per_claim", per_claim), ("per_borrower_year", room(borrower_year)),
            ("per_bank_year", room(bank_year)), ("per_program_year", room(program_year)),
            ("portfolio", room(portfolio)),
            ("fund_balance", None if fund_limit is None else fund_available_fen(fund_limit, fund_owed))]


def cuts_in_order(share_fen: Any, limits: Sequence[tuple[str, Any]]) -> tuple[Any, list[tuple[str, Any]]]:
    """Apply each cap in order: what is owed after them and each cap's cut (ints or arrays)."""
    cuts: list[tuple[str, Any]] = []
    for cap, limit in limits:
        if limit is None:
            continue
        cut = cap_cut_fen(share_fen, limit)
        cuts.append((cap, cut))
        share_fen = share_fen - cut
    return share_fen, cuts


def apply_caps(party: str, share_fen: int,
               limits: Sequence[tuple[str, int | None]]) -> tuple[int, list[Cut]]:
    """Apply each cap in order; returns what the party owes and the cuts made (name, fen)."""
    owed, cuts = cuts_in_order(share_fen, limits)
    return owed, [Cut(party, cap, cut) for cap, cut in cuts if cut]


def split_claim(terms: Terms, loan: LoanFacts,
                used: Sequence[CapsUsed] | None = None) -> ClaimSplit:
    """DOMAIN.md 3.2-3.4 for one claim; `used[i]` is what party i already used (claim order)."""
    used = list(used) if used is not None else [CapsUsed()] * len(terms.parties)
    assert len(used) == len(terms.parties), "one CapsUsed per party"
    covered, reason = covered_amount(terms.coverage, loan)
    ratios = [party.ratio_for(loan.original_principal_fen) for party in terms.parties]
    rounded, _bank = rounded_shares(loan.loss_base_fen, covered, ratios)
    shares: list[Share] = []
    cuts: list[Cut] = []
    for party, ratio, share_fen, party_used in zip(terms.parties, ratios, rounded, used):
        owed, party_cuts = apply_caps(party.institution, share_fen,
                                      party_limits(party, party_used))
        shares.append(Share(party.institution, ratio, share_fen, owed, party.pays_first))
        cuts.extend(party_cuts)
    retained = loan.loss_base_fen - sum(share.owed_fen for share in shares)
    return ClaimSplit(loan.loss_base_fen, covered, reason, tuple(shares), tuple(cuts), retained)


# Recoveries (DOMAIN.md 4)


def split_recovery(net_recovery_fen: int, borne: Sequence[tuple[str, int]],
                   returned_before: Sequence[int] | None = None,
                   redirects: dict[str, str] | None = None) -> tuple[list[RecoveryPart], int]:
    """Return a net recovery to those who bore the loss, in proportion to what each bore.

    `borne` lists (party, fen borne) in terms order with the bank's retained loss last;
    `returned_before` what earlier recoveries of the claim gave each. The cumulative net (this
    one plus the earlier ones) is split by largest remainder on what each bore (ties to the
    party listed first, the bank last, as for shares) and this recovery's part is that target
    less what the party already got back: so rounding never drifts over several recoveries and
    no party ever gets back more than it bore. Returns the parts and the surplus beyond the
    whole loss (not a loss recovery: the caller refuses it or hands it to the borrower).
    """
    assert net_recovery_fen >= 0
    before = list(returned_before) if returned_before is not None else [0] * len(borne)
    assert all(0 <= back <= fen for (_, fen), back in zip(borne, before)), \
        "a party got back more than it bore"
    total_fen = sum(fen for _, fen in borne)
    cumulative_fen = min(sum(before) + net_recovery_fen, total_fen)
    target = allocate(cumulative_fen, [fen for _, fen in borne]) if cumulative_fen else [0] * len(borne)
    parts = _without_clawback([want - back for want, back in zip(target, before)])
    redirects = redirects or {}
    result = [RecoveryPart(party, redirects.get(party, party), fen)
              for (party, _), fen in zip(borne, parts)]
    returned_fen = sum(parts)
    assert returned_fen == cumulative_fen - sum(before)
    assert all(back + fen <= borne_fen for (_, borne_fen), back, fen in zip(borne, before, parts))
    return result, net_recovery_fen - returned_fen


def _without_clawback(parts: list[int]) -> list[int]:
    """Largest remainder is not monotone in the total (the Alabama paradox): a party that won a
    rounding fen on an earlier, smaller cumulative total can be a fen above its new target. A
    recovery never takes money back, so such a part is 0 and the fen it is short come off the
    largest other parts (a tie: the party listed last gives first, the bank before any party)."""
    short_fen = -sum(fen for fen in parts if fen < 0)
    parts = [max(fen, 0) for fen in parts]
    while short_fen:
        giver = max(range(len(parts)), key=lambda i: (parts[i], i))
        assert parts[giver] > 0, "the other parts cover what the clamped ones are short"
        parts[giver] -= 1
        short_fen -= 1
    return parts


def recovery_redirects(terms: Terms) -> dict[str, str]:
    """Parties whose returned part goes elsewhere (DOMAIN.md 4: a pool's part to the treasury)."""
    return {party.institution: party.recoveries_to for party in terms.parties
            if party.recoveries_to is not None}


# Claims in claim order (DOMAIN.md 3.3: earlier claims use shared caps first)


@dataclass(frozen=True)
class ClaimInput:
    """One claim as the claim order sees it: the loan, and the keys its shared caps go by."""

    loan: LoanFacts
    borrower: str
    bank: str
    year: int
    """Calendar year the claim is classified in."""
    portfolio_loans: tuple[tuple[int, int], ...] = ()
    """(original principal, covered principal at start) of the programme's loans started up to
    the claim date; the portfolio cap is a rate of their sum weighted by each party's ratio."""


def borrower_year_principal_before(loans: Sequence[tuple[str, int, Any, int]]) -> list[int]:
    """For (borrower, start year, loan id, principal) rows: principal of the borrower's earlier
    loans that year, earlier meaning start-date order then loan id (the caller sorts by date;
    rows of one borrower-year must come in that order)."""
    used: dict[tuple[str, int], int] = {}
    before: list[int] = []
    for borrower, year, _loan_id, principal_fen in loans:
        key = (borrower, year)
        before.append(used.get(key, 0))
        used[key] = used.get(key, 0) + principal_fen
    return before


def portfolio_weight(coverage: Coverage, party: Party,
                     loans: Sequence[tuple[int, Decimal | None, int]]) -> Fraction:
    """Sum of covered principal at start x the party's ratio over (principal, IP share, the
    borrower's earlier principal that year) rows: the base of the party's portfolio cap."""
    weight = Fraction(0)
    for principal_fen, ip_share, before_fen in loans:
        weight += _start_weight(coverage, party, principal_fen, ip_share, before_fen)
    return weight


def portfolio_weight_prefix(coverage: Coverage, party: Party,
                            loans: Sequence[tuple[int, Decimal | None, int]]) -> list[Fraction]:
    """`portfolio_weight` of every prefix of `loans` (the empty one first): entry k is the
    weight of the first k rows, so a sorted book answers any claim date by one lookup."""
    prefix = [Fraction(0)]
    for principal_fen, ip_share, before_fen in loans:
        prefix.append(prefix[-1] + _start_weight(coverage, party, principal_fen, ip_share, before_fen))
    return prefix


def _start_weight(coverage: Coverage, party: Party, principal_fen: int, ip_share: Decimal | None,
                  before_fen: int) -> Fraction:
    covered, _ = covered_amount(coverage, LoanFacts(principal_fen, principal_fen, ip_share, before_fen))
    return Fraction(covered) * Fraction(party.ratio_for(principal_fen))


def split_claims_in_order(terms: Terms, claims: Sequence[ClaimInput],
                          fund_balances_fen: dict[str, int] | None = None) -> list[ClaimSplit]:
    """Split claims one after another, each seeing what earlier ones used of every shared cap.

    `fund_balances_fen` gives each fund-capped pool's balance; shares owed here count as owed and
    unpaid against it (payments are the caller's business).
    """
    fund_balances_fen = fund_balances_fen or {}
    owed: dict[tuple[str, str, Any], int] = {}
    splits: list[ClaimSplit] = []
    for claim in claims:
        used = [_caps_used(party, claim, owed, fund_balances_fen) for party in terms.parties]
        split = split_claim(terms, claim.loan, used)
        for share in split.shares:
            for key in _owed_keys(share.party, claim):
                owed[key] = owed.get(key, 0) + share.owed_fen
        splits.append(split)
    return splits


def _owed_keys(party: str, claim: ClaimInput) -> list[tuple[str, str, Any]]:
    return [(party, "borrower_year", (claim.borrower, claim.year)),
            (party, "bank_year", (claim.bank, claim.year)),
            (party, "program_year", claim.year),
            (party, "all", None)]


def _caps_used(party: Party, claim: ClaimInput, owed: dict[tuple[str, str, Any], int],
               fund_balances_fen: dict[str, int]) -> CapsUsed:
    def so_far(kind: str, key: Any) -> int:
        return owed.get((party.institution, kind, key), 0)

    weighted = sum((Fraction(covered) * Fraction(party.ratio_for(original))
                    for original, covered in claim.portfolio_loans), Fraction(0))
    return CapsUsed(
        borrower_year_fen=so_far("borrower_year", (claim.borrower, claim.year)),
        bank_year_fen=so_far("bank_year", (claim.bank, claim.year)),
        program_year_fen=so_far("program_year", claim.year),
        portfolio_owed_fen=so_far("all", None),
        portfolio_weighted_principal=weighted,
        fund_balance_fen=fund_balances_fen.get(party.institution, 0),
        fund_owed_unpaid_fen=so_far("all", None))


# Loss base and payments (DOMAIN.md 3.1 and 3.5)


def loss_base_fen(terms: Terms, outstanding_principal_fen: int, overdue_interest_fen: int) -> int:
    """Outstanding principal, plus overdue interest only where the terms say so."""
    assert outstanding_principal_fen >= 0 and overdue_interest_fen >= 0
    if terms.loss_base == "principal_and_interest":
        return outstanding_principal_fen + overdue_interest_fen
    return outstanding_principal_fen


PAYMENT_NOT_A_PARTY = "not_a_party"
PAYMENT_PAYS_FIRST_UNPAID = "pays_first_unpaid"
PAYMENT_OVERPAY = "overpay"


def payment_refusal(shares: Sequence[Share], paid_fen: dict[str, int], party: str,
                    amount_fen: int) -> str | None:
    """Why a payment of `amount_fen` by `party` on a claim is refused, or None if it is accepted.

    Only a party that owes on the claim pays; while a pays-first party has not paid in full no
    one else's payment is accepted; no party pays more than it still owes.
    """
    assert amount_fen > 0
    owing = {share.party: share for share in shares}
    share = owing.get(party)
    if share is None or share.owed_fen == 0:
        return PAYMENT_NOT_A_PARTY
    first = next((s for s in shares if s.pays_first), None)
    if first is not None and first.party != party and paid_fen.get(first.party, 0) < first.owed_fen:
        return PAYMENT_PAYS_FIRST_UNPAID
    if paid_fen.get(party, 0) + amount_fen > share.owed_fen:
        return PAYMENT_OVERPAY
    return None
