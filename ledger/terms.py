"""Programme terms: the typed, immutable rules one programme version applies to its loans.

Owns the `terms` object of `POST /v1/programs` (API.md "Programmes"; meaning in DOMAIN.md
sections 3 and 5): who shares a loss and how much (parties, tiers by original principal, caps,
who pays first, where recoveries go), what is covered (loss base, IP share, coverage limits) and
which subsidies a fiscal bureau pays (method, percentage, caps, eligibility). The JSON shape is
fixed by API.md; banks and bureaus integrate against it.

This module holds, in this order:
- the value types the claim and subsidy engines compute on (`Terms` and its parts);
- the rules across fields (`party_problems`, `parties_problems`, `subsidy_rule_problems`,
  `share_tier_problems`, `reference_errors`), plain functions over typed values;
- the request schema `TermsIn` (with `CoverageIn`, `PartyIn`, `ShareTierIn`, `PartyCapsIn`,
  `SubsidyRuleIn`, `SubsidyCapsIn`, `EligibilityIn`): marshmallow schemas built from the edge
  fields of ledger.fields. They read a request (the HTTP API reads `terms` with them through
  flask-smorest, which also documents them in /openapi.json), call the rules above, and build
  the values; they also write the canonical form back;
- `parse_terms(raw, institution_kinds)` and `terms_to_dict(terms)`, thin wrappers for callers
  that hold JSON rather than a request.

Guarantees
- Every field error is reported at once, each with its path from the terms object
  (`terms.parties[1].caps.per_claim`), so an integrator fixes a request in one round trip: the
  schemas collect every field's error, and the rules across fields add theirs in the same pass
  (each rule runs on the fields it reads that did load). References to institutions (they exist;
  a party's kind equals its role) need the database: they are checked on the typed `Terms`
  once its form is right (`reference_errors`), as a loan's borrower and programme are.
- Round trip: `parse_terms(terms_to_dict(t), None) == t` for every `Terms` that `parse_terms`
  returns, and `terms_to_dict` is a fixed point after one pass. `terms_to_dict` is `TermsIn`
  dumping, so what is stored, what GET shows and what the OpenAPI document describes are one
  schema: every key present, money as two-decimal yuan strings, ratios as plain decimal
  strings, absent values as null.
- Money is integer fen, ratios are `Decimal`; no float is accepted or produced anywhere.
- A `Terms` value (however built) satisfies the structural rules, asserted at construction:
  share tiers end with an unbounded tier and have strictly increasing bounds; no institution is
  a party twice; at most one party pays first; for EVERY original principal the parties' ratios
  sum to at most 1 (the bank bears the rest). A broken one is a bug and fails loudly.
- Reading is strict: an unknown key anywhere is an error (so a typo such as `per_clam` is not
  silently ignored), bools must be JSON bools, integers must not be bools or floats.

Decisions where API.md / DOMAIN.md are silent (documented here so the API docs can repeat them)
- Optional keys and their defaults: `loss_base` "principal", `trigger_overdue_days` 90 (1..3650),
  `coverage` {whole_loan, false, null, null, null}, `subsidies` [], party `pays_first` false,
  `share_tiers` none, `recoveries_to` null, every cap null (no cap) and `fund_balance` false,
  subsidy `reference`/`reference_month` null, `min_with_contract_rate` false, eligibility
  {null, false, false, null}. `parties` is required (an empty list is allowed: the bank bears
  every loss). An object given as null (`"caps": null`) means "all defaults"; a bool, enum,
  integer or list given as null is an error (null is accepted only where the value itself may
  be null).
- `share_tiers`: 1..20 tiers when given; null means no tiers (that is how `terms_to_dict` writes a
  flat party); an empty list is refused. Each tier's `up_to` is required (null only on the last),
  an amount of yuan greater than zero, strictly increasing; the last MUST be null so every
  principal falls in a tier. A principal exactly equal to `up_to` belongs to that tier.
- With tiers, `share` may be omitted (it is then the first tier's share). If both are given the
  tiers win for every computation; `share` is kept as given, validated in [0, 1] and shown back,
  but is informational only.
- The sum check evaluates every party's `ratio_for` at principal 0, at each distinct `up_to` and
  one fen above it: ratios are constant between those points, so this covers every principal.
  The error is reported once, on `terms.parties`, naming the first principal that oversubscribes;
  it sums the parties that loaded (adding a broken one could only raise the sum, so an
  oversubscription found is real).
- `caps.fund_balance` true is allowed only for a party with role `pool` (only a pool has a fund).
- Subsidy `pct_of_reference_rate` is only for kind `interest`; it then requires `reference`
  ("LPR1Y", the only reference rate the ledger keeps) and `reference_month`. For `pct_of_paid`
  those must be absent or null and `min_with_contract_rate` absent or false. Several rules of one
  kind are allowed (API.md's example has two interest rules); the subsidy engine decides how they
  combine.
- Limits: at most 20 parties, 20 tiers per party, 20 subsidy rules; ratios at most 8 decimals;
  `max_rate_over_lpr` in (0, 100]; `caps.years` in 1..100; institution codes 1..40 letters,
  digits, '.', '_' or '-' (as `ledger.institutions.CODE_RE`).
- Money caps and thresholds may be zero (a zero cap is a legal if unusual choice); none may be
  negative. Ratios are `[0, 1]` except `max_rate_over_lpr`.
- A party's `institution` and `recoveries_to` kinds: the party's institution kind must equal its
  role (error on `...institution`: "X is a bank, not an insurer"); `recoveries_to` may be any
  existing institution (a treasury, typically). An institution named twice, or two parties
  paying first, are reported on the later party (naming the earlier one).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, post_dump, post_load, validates_schema

from ledger.errors import FieldError, Path, messages_at, path_text, raise_if_any
from ledger.fields import (Boolean, Choice, Code, Integer, Money, Object, Objects, Ratio,
                           RequestSchema, load)
from ledger.money import format_yuan

LOSS_BASES = ("principal", "principal_and_interest")
IP_SHARE_MODES = ("ip_part_only", "whole_loan")
PARTY_ROLES = ("insurer", "guarantor", "pool", "appraiser")
SUBSIDY_KINDS = ("interest", "premium", "guarantee_fee", "appraisal_fee")
SUBSIDY_METHODS = ("pct_of_paid", "pct_of_reference_rate")
REFERENCE_RATES = ("LPR1Y",)
REFERENCE_MONTHS = ("december_of_year", "month_before_start")

DEFAULT_LOSS_BASE = "principal"
DEFAULT_TRIGGER_OVERDUE_DAYS = 90
MAX_TRIGGER_OVERDUE_DAYS = 3650  # ten years; a longer trigger is a typo, not a policy
MAX_PARTIES = 20
MAX_SHARE_TIERS = 20
MAX_SUBSIDY_RULES = 20
MAX_SUBSIDY_YEARS = 100
MAX_RATE_OVER_LPR = Decimal(100)
MAX_CODE_LENGTH = 40  # as ledger.institutions.CODE_RE

ONE = Decimal(1)
ZERO = Decimal(0)


def _assert_fen(value: int | None, name: str) -> None:
    assert value is None or (type(value) is int and value >= 0), f"{name} must be int fen >= 0"


def _assert_ratio(value: Decimal | None, name: str, high: Decimal | None = ONE) -> None:
    assert value is None or (
        isinstance(value, Decimal) and value >= 0 and (high is None or value <= high)
    ), f"{name} must be a Decimal in [0, {high}]"


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ShareTier:
    """One band of a tiered share: loans with original principal up to `up_to_fen` get `share`."""

    up_to_fen: int | None
    """Inclusive upper bound on the loan's original principal, fen; None = no upper bound."""
    share: Decimal
    """The party's ratio of the covered amount for loans in this band, in [0, 1]."""

    def __post_init__(self) -> None:
        _assert_fen(self.up_to_fen, "up_to_fen")
        _assert_ratio(self.share, "share")


@dataclass(frozen=True)
class PartyCaps:
    """Limits on one party's share, applied in this field order (DOMAIN.md 3.3); None = no cap."""

    per_claim_fen: int | None = None
    """Most this party owes on one claim."""
    per_borrower_year_fen: int | None = None
    """Most across claims on one borrower classified in one calendar year."""
    per_bank_year_fen: int | None = None
    """Most across claims of one lending bank in one calendar year."""
    per_program_year_fen: int | None = None
    """Most across all claims of the programme in one calendar year."""
    portfolio_cap_rate: Decimal | None = None
    """EIF-style capped guarantee: rate x sum of covered principal x ratio, less earlier shares."""
    fund_balance: bool = False
    """A pool pays only out of its fund's available balance (pools only)."""

    def __post_init__(self) -> None:
        for name in ("per_claim_fen", "per_borrower_year_fen", "per_bank_year_fen",
                     "per_program_year_fen"):
            _assert_fen(getattr(self, name), name)
        _assert_ratio(self.portfolio_cap_rate, "portfolio_cap_rate")
        assert type(self.fund_balance) is bool


@dataclass(frozen=True)
class Party:
    """An institution that bears a ratio of each covered loss; the bank bears what none bears.

    `share_tiers`, when present, decide the ratio by original principal and `share` is then only
    informational (see `ratio_for`).
    """

    institution: str
    """Institution code."""
    role: str
    """One of `PARTY_ROLES`; equals the institution's kind."""
    share: Decimal
    """Ratio of the covered amount, in [0, 1]; with tiers, the first tier's unless given."""
    share_tiers: tuple[ShareTier, ...] = ()
    """Bands by original principal, bounds strictly increasing, the last unbounded; () = flat."""
    pays_first: bool = False
    """No other party's payment is accepted on a claim until this party has paid in full."""
    caps: PartyCaps = PartyCaps()
    """Limits on this party's share."""
    recoveries_to: str | None = None
    """Institution code that receives this party's part of recoveries; None = the party itself."""

    def __post_init__(self) -> None:
        assert self.role in PARTY_ROLES, f"unknown role {self.role!r}"
        _assert_ratio(self.share, "share")
        assert isinstance(self.share_tiers, tuple)
        assert type(self.pays_first) is bool
        if self.share_tiers:
            assert len(self.share_tiers) <= MAX_SHARE_TIERS
            assert self.share_tiers[-1].up_to_fen is None, "the last tier must be unbounded"
            bounds = [tier.up_to_fen for tier in self.share_tiers[:-1]]
            assert all(bound is not None for bound in bounds), "only the last tier is unbounded"
            assert all(a < b for a, b in zip(bounds, bounds[1:])), "tier bounds must increase"

    def ratio_for(self, original_principal_fen: int) -> Decimal:
        """This party's ratio for a loan of `original_principal_fen`.

        With tiers: the first tier whose `up_to_fen` is >= the principal (None is unbounded), so
        a principal exactly at a bound takes that tier and one fen above takes the next.
        Without tiers: `share`.
        """
        assert type(original_principal_fen) is int and original_principal_fen >= 0
        for tier in self.share_tiers:
            if tier.up_to_fen is None or original_principal_fen <= tier.up_to_fen:
                return tier.share
        assert not self.share_tiers, "tiers end with an unbounded tier"
        return self.share


@dataclass(frozen=True)
class Coverage:
    """Which part of a loss the programme covers, before parties' ratios apply."""

    ip_share: str = "whole_loan"
    """`ip_part_only`: loss base x the loan's IP share; `whole_loan`: the whole loss base."""
    require_stated_ip_share: bool = False
    """A loan without a stated IP share is not covered (covered amount 0)."""
    min_ip_share: Decimal | None = None
    """A loan whose IP share is below this is not covered; None = no minimum."""
    max_covered_principal_fen: int | None = None
    """Covered amount per loan is capped at this; None = no cap."""
    max_covered_principal_per_borrower_year_fen: int | None = None
    """One limit shared by a borrower's loans starting in one calendar year; None = no limit."""

    def __post_init__(self) -> None:
        assert self.ip_share in IP_SHARE_MODES
        assert type(self.require_stated_ip_share) is bool
        _assert_ratio(self.min_ip_share, "min_ip_share")
        _assert_fen(self.max_covered_principal_fen, "max_covered_principal_fen")
        _assert_fen(self.max_covered_principal_per_borrower_year_fen,
                    "max_covered_principal_per_borrower_year_fen")


@dataclass(frozen=True)
class SubsidyCaps:
    """Limits on a subsidy; the amount paid is the minimum of the formula and each; None = none."""

    pct_of_principal: Decimal | None = None
    """At most this ratio of the loan's principal."""
    per_loan_fen: int | None = None
    """At most this over the loan's life."""
    per_borrower_year_fen: int | None = None
    """At most this per borrower per calendar year (consumed in loan-date order, then id)."""
    per_borrower_total_fen: int | None = None
    """At most this per borrower in total."""
    years: int | None = None
    """Paid only for this many years counted from the loan's start."""

    def __post_init__(self) -> None:
        _assert_ratio(self.pct_of_principal, "pct_of_principal")
        for name in ("per_loan_fen", "per_borrower_year_fen", "per_borrower_total_fen"):
            _assert_fen(getattr(self, name), name)
        assert self.years is None or (type(self.years) is int and self.years >= 1)


@dataclass(frozen=True)
class Eligibility:
    """Which loans a subsidy rule applies to (on the borrower's facts frozen on the loan)."""

    max_rate_over_lpr: Decimal | None = None
    """Contract rate must be at most this multiple of the LPR of the start month; None = any."""
    sme_only: bool = False
    """Only borrowers classified micro, small or medium."""
    private_only: bool = False
    """Only privately owned borrowers."""
    max_revenue_fen: int | None = None
    """Only borrowers with revenue at most this; None = any."""

    def __post_init__(self) -> None:
        _assert_ratio(self.max_rate_over_lpr, "max_rate_over_lpr", high=MAX_RATE_OVER_LPR)
        assert self.max_rate_over_lpr is None or self.max_rate_over_lpr > 0
        assert type(self.sme_only) is bool and type(self.private_only) is bool
        _assert_fen(self.max_revenue_fen, "max_revenue_fen")


@dataclass(frozen=True)
class SubsidyRule:
    """One subsidy a fiscal bureau pays per period, per loan and borrower (DOMAIN.md 5)."""

    kind: str
    """One of `SUBSIDY_KINDS`: what is subsidised."""
    method: str
    """`pct_of_paid` (of interest or fee paid) or `pct_of_reference_rate` (interest only)."""
    pct: Decimal
    """The percentage, in [0, 1]: of the amount paid, or of the reference rate."""
    reference: str | None = None
    """Reference rate for `pct_of_reference_rate` (`LPR1Y`); None otherwise."""
    reference_month: str | None = None
    """Which month's reference rate: `december_of_year` or `month_before_start`; None otherwise."""
    min_with_contract_rate: bool = False
    """Use the lower of the reference rate and the contract rate (reference method only)."""
    caps: SubsidyCaps = SubsidyCaps()
    """Limits on the amount."""
    eligibility: Eligibility = Eligibility()
    """Which loans qualify."""

    def __post_init__(self) -> None:
        assert self.kind in SUBSIDY_KINDS and self.method in SUBSIDY_METHODS
        _assert_ratio(self.pct, "pct")
        assert type(self.min_with_contract_rate) is bool
        if self.method == "pct_of_reference_rate":
            assert self.kind == "interest"
            assert self.reference in REFERENCE_RATES and self.reference_month in REFERENCE_MONTHS
        else:
            assert self.reference is None and self.reference_month is None
            assert not self.min_with_contract_rate


@dataclass(frozen=True)
class Terms:
    """The rules of one programme version. Loans bind to the version in force on their start."""

    loss_base: str = DEFAULT_LOSS_BASE
    """`principal` or `principal_and_interest` (outstanding principal plus overdue interest)."""
    trigger_overdue_days: int = DEFAULT_TRIGGER_OVERDUE_DAYS
    """A loan this many days overdue is non-performing and a claim opens."""
    coverage: Coverage = Coverage()
    """What part of a loss is covered."""
    parties: tuple[Party, ...] = ()
    """Sharing parties in listed order (the order breaks rounding ties; the bank counts last)."""
    subsidies: tuple[SubsidyRule, ...] = ()
    """Subsidy rules in listed order."""

    def __post_init__(self) -> None:
        assert self.loss_base in LOSS_BASES
        assert type(self.trigger_overdue_days) is int
        assert 1 <= self.trigger_overdue_days <= MAX_TRIGGER_OVERDUE_DAYS
        assert isinstance(self.parties, tuple) and isinstance(self.subsidies, tuple)
        assert len(self.parties) <= MAX_PARTIES and len(self.subsidies) <= MAX_SUBSIDY_RULES
        codes = [party.institution for party in self.parties]
        assert len(set(codes)) == len(codes), "an institution is a party at most once"
        assert sum(party.pays_first for party in self.parties) <= 1, "one party pays first"
        assert _first_oversubscribed(self.parties) is None, "shares must sum to at most 1"

    def party(self, institution: str) -> Party | None:
        """The party with this institution code, or None if it is not a party."""
        for party in self.parties:
            if party.institution == institution:
                return party
        return None

    @property
    def pays_first_party(self) -> Party | None:
        """The party that must pay in full before any other, or None."""
        for party in self.parties:
            if party.pays_first:
                return party
        return None

    def subsidy_rules(self, kind: str) -> tuple[SubsidyRule, ...]:
        """The subsidy rules of one kind, in listed order (possibly empty)."""
        assert kind in SUBSIDY_KINDS, f"unknown subsidy kind {kind!r}"
        return tuple(rule for rule in self.subsidies if rule.kind == kind)


def _share_checkpoints(parties: Sequence[Party]) -> list[int]:
    """Principals at which every party's ratio function takes each of its values.

    Each `ratio_for` is constant on [0, b1], (b1, b2], ..., so evaluating at 0, at each bound b
    and at b + 1 fen sees every combination of bands.
    """
    points = {0}
    for party in parties:
        for tier in party.share_tiers:
            if tier.up_to_fen is not None:
                points.update((tier.up_to_fen, tier.up_to_fen + 1))
    return sorted(points)


def _first_oversubscribed(parties: Sequence[Party]) -> tuple[int, Decimal] | None:
    """(principal_fen, total ratio) at the smallest principal where ratios sum above 1, or None."""
    for principal_fen in _share_checkpoints(parties):
        total = sum((party.ratio_for(principal_fen) for party in parties), ZERO)
        if total > ONE:
            return principal_fen, total
    return None


# ---------------------------------------------------------------------------------------------
# Rules across fields, over typed values
#
# Each `*_problems` function takes the fields of one object that loaded (a mapping of API name
# -> typed value; a field that failed to load is absent, a nested object or list item that
# failed is the mapping of its own loaded fields) and returns (path, message) pairs, the path
# relative to that object. The schemas below call them; a rule whose fields did not load waits
# for the next round trip rather than guess.

Problem = tuple[Path, str]
_ONLY_FOR_REFERENCE = "only for method pct_of_reference_rate"


def share_tier_problems(tiers: Sequence[ShareTier | None]) -> list[Problem]:
    """Bounds strictly increasing, only the last tier unbounded, and it must be (None: a tier
    that did not load, skipped but keeping its position)."""
    problems: list[Problem] = []
    last = len(tiers) - 1
    previous_fen: int | None = None  # the last bounded up_to seen, for the ordering rule
    for index, tier in enumerate(tiers):
        if tier is None:
            continue
        path = ("share_tiers", index, "up_to")
        if tier.up_to_fen is None:
            if index != last:
                problems.append((path, "only the last tier may be unbounded (null)"))
            continue
        if index == last:
            problems.append((path, "the last tier must have up_to null, so that every "
                                   "principal falls in a tier"))
        if previous_fen is not None and tier.up_to_fen <= previous_fen:
            problems.append((path, f"must be greater than the previous tier's up_to "
                                   f"({format_yuan(previous_fen)})"))
        previous_fen = tier.up_to_fen
    return problems


def party_problems(party: Mapping[str, Any]) -> list[Problem]:
    """One party: a share unless tiers give it, tiers in order, a fund only for a pool."""
    problems: list[Problem] = []
    tiers = party.get("share_tiers")
    if "share" in party and party["share"] is None and "share_tiers" in party and not tiers:
        problems.append((("share",), "required (a decimal string such as \"0.30\") unless "
                                     "share_tiers are given"))
    if tiers:
        problems += share_tier_problems([t if isinstance(t, ShareTier) else None for t in tiers])
    caps, role = party.get("caps"), party.get("role")
    if isinstance(caps, PartyCaps) and caps.fund_balance and role not in (None, "pool"):
        problems.append((("caps", "fund_balance"), f"only a pool has a fund; this party is "
                                                   f"{_a(role)}"))
    return problems


def parties_problems(parties: Sequence[Party | Mapping[str, Any]]) -> list[Problem]:
    """Across parties: an institution is a party once; at most one party pays first (both read
    from every party, loaded or not); the shares sum to at most 1 at every principal (over
    the parties that loaded)."""
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    pays_first_index: int | None = None
    for index, party in enumerate(parties):
        code = _loaded(party, "institution")
        if isinstance(code, str):
            if code in first_index:
                problems.append((("parties", index, "institution"),
                                 f"{code} is already party {first_index[code]}; an institution "
                                 "may be a party only once"))
            else:
                first_index[code] = index
        if _loaded(party, "pays_first") is True:
            if pays_first_index is None:
                pays_first_index = index
            else:
                problems.append((("parties", index, "pays_first"), "only one party may pay "
                                 f"first; party {pays_first_index} already does"))
    loaded = [party for party in parties if isinstance(party, Party)]
    over = _first_oversubscribed(loaded)
    if over is not None:
        principal_fen, total = over
        where = (f" for an original principal of {format_yuan(principal_fen)} yuan"
                 if any(party.share_tiers for party in loaded) else "")
        problems.append((("parties",), f"the parties' shares sum to {total}{where}; they must "
                                       "sum to at most 1 (the bank bears the rest)"))
    return problems


def subsidy_rule_problems(rule: Mapping[str, Any]) -> list[Problem]:
    """The fields each method takes: reference rate fields only for pct_of_reference_rate
    (and then required, and only for interest)."""
    problems: list[Problem] = []
    method = rule.get("method")
    if method == "pct_of_paid":
        # Reference fields mean nothing here; refuse them rather than silently ignore them.
        for key in ("reference", "reference_month"):
            if rule.get(key) is not None:
                problems.append(((key,), f"{_ONLY_FOR_REFERENCE}; omit it or use null"))
        if rule.get("min_with_contract_rate") is True:
            problems.append((("min_with_contract_rate",), f"{_ONLY_FOR_REFERENCE}; omit it or "
                                                          "use false"))
    elif method == "pct_of_reference_rate":
        if rule.get("kind", "interest") != "interest":
            problems.append((("method",), "pct_of_reference_rate applies only to kind interest; "
                                          "use pct_of_paid"))
        for key, choices in (("reference", REFERENCE_RATES),
                             ("reference_month", REFERENCE_MONTHS)):
            if key in rule and rule[key] is None:
                problems.append(((key,), "required when method is pct_of_reference_rate; "
                                         f"one of: {', '.join(choices)}"))
    return problems


def reference_errors(terms: Terms, institution_kinds: Mapping[str, str],
                     prefix: Path = ("terms",)) -> list[FieldError]:
    """Every named institution exists; each party's institution kind equals its role."""
    errors: list[FieldError] = []
    for index, party in enumerate(terms.parties):
        where = (*prefix, "parties", index)
        kind = institution_kinds.get(party.institution)
        if kind is None:
            errors.append(FieldError(path_text((*where, "institution")),
                                     f"unknown institution {party.institution}"))
        elif kind != party.role:
            errors.append(FieldError(path_text((*where, "institution")),
                                     f"{party.institution} is {_a(kind)}, not {_a(party.role)}"))
        if party.recoveries_to is not None and party.recoveries_to not in institution_kinds:
            errors.append(FieldError(path_text((*where, "recoveries_to")),
                                     f"unknown institution {party.recoveries_to}"))
    return errors


def _loaded(item: object, name: str) -> Any:
    """A field of a value that loaded, or of the mapping of loaded fields of one that did not."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _a(noun: str) -> str:
    """"an insurer", "a bank": for messages such as "X is a bank, not an insurer"."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise ValidationError(messages_at(problems))


# ---------------------------------------------------------------------------------------------
# The request schema (and the canonical form: the same schemas dump the values back)
#
# Money fields load into `*_fen` attributes, so each schema's loaded fields are its value's
# constructor arguments and a value dumps through the same fields.


def _yuan(**kwargs: Any) -> Money:
    """An optional amount of yuan: null (or absent) is no cap / no limit."""
    return Money(allow_none=True, load_default=None, **kwargs)


def _ratio(**kwargs: Any) -> Ratio:
    """A ratio in [0, 1]."""
    kwargs["metadata"] = {"example": "0.30", **kwargs.get("metadata", {})}
    return Ratio(high=ONE, **kwargs)


class ShareTierIn(RequestSchema):
    """One band of a tiered share: loans with original principal up to `up_to` get `share`."""

    up_to = Money(attribute="up_to_fen", required=True, allow_none=True, allow_zero=False,
                  error_messages={"required": "required (an amount of yuan, or null on the "
                                              "last tier)"},
                  metadata={"description": "inclusive upper bound on the original principal, "
                                           "yuan; null on the last tier (no upper bound)"})
    share = _ratio(required=True)

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> ShareTier:
        return ShareTier(**values)


class PartyCapsIn(RequestSchema):
    """Limits on one party's share, applied in this field order; null or absent: no cap."""

    per_claim = _yuan(attribute="per_claim_fen")
    per_borrower_year = _yuan(attribute="per_borrower_year_fen")
    per_bank_year = _yuan(attribute="per_bank_year_fen")
    per_program_year = _yuan(attribute="per_program_year_fen")
    portfolio_cap_rate = _ratio(allow_none=True, load_default=None)
    fund_balance = Boolean(load_default=False,
                           metadata={"description": "a pool pays only out of its fund's balance "
                                                    "(pools only)"})

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> PartyCaps:
        return PartyCaps(**values)


class PartyIn(RequestSchema):
    """An institution that bears a ratio of each covered loss; the bank bears what none bears."""

    institution = Code(MAX_CODE_LENGTH, required=True,
                       metadata={"description": "institution code; its kind must equal `role`"})
    role = Choice(PARTY_ROLES, required=True)
    share = _ratio(allow_none=True, load_default=None,
                   metadata={"description": "required unless share_tiers are given (then the "
                                            "first tier's share; informational only)"})
    share_tiers = Objects(ShareTierIn, min_items=1, max_items=MAX_SHARE_TIERS, noun="tiers",
                          each=True, allow_none=True, load_default=None,
                          error_messages={"too_few": "must not be empty; omit it (or use null) "
                                                     "for a flat share"})
    pays_first = Boolean(load_default=False)
    caps = Object(PartyCapsIn, allow_none=True, load_default=None)
    recoveries_to = Code(MAX_CODE_LENGTH, allow_none=True, load_default=None,
                         metadata={"description": "institution receiving this party's part of "
                                                  "recoveries; null: the party itself"})

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, values: dict, **kwargs: Any) -> None:
        _raise_problems(party_problems(values))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Party:
        tiers = tuple(values["share_tiers"] or ())
        share = values["share"] if values["share"] is not None else tiers[0].share
        return Party(values["institution"], values["role"], share, tiers, values["pays_first"],
                     values["caps"] or PartyCaps(), values["recoveries_to"])

    @post_dump
    def _flat_share_is_null(self, data: dict, **kwargs: Any) -> dict:
        # null, not []: an empty tier list is refused on input, null means "flat share".
        data["share_tiers"] = data["share_tiers"] or None
        return data


class CoverageIn(RequestSchema):
    """Which part of a loss the programme covers, before parties' ratios apply."""

    ip_share = Choice(IP_SHARE_MODES, load_default="whole_loan")
    require_stated_ip_share = Boolean(load_default=False)
    min_ip_share = _ratio(allow_none=True, load_default=None)
    max_covered_principal = _yuan(attribute="max_covered_principal_fen")
    max_covered_principal_per_borrower_year = _yuan(
        attribute="max_covered_principal_per_borrower_year_fen")

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Coverage:
        return Coverage(**values)


class SubsidyCapsIn(RequestSchema):
    """Limits on a subsidy; the amount paid is the minimum of the formula and each."""

    pct_of_principal = _ratio(allow_none=True, load_default=None)
    per_loan = _yuan(attribute="per_loan_fen")
    per_borrower_year = _yuan(attribute="per_borrower_year_fen")
    per_borrower_total = _yuan(attribute="per_borrower_total_fen")
    years = Integer(low=1, high=MAX_SUBSIDY_YEARS, allow_none=True, load_default=None)

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> SubsidyCaps:
        return SubsidyCaps(**values)


class EligibilityIn(RequestSchema):
    """Which loans a subsidy rule applies to (on the borrower's facts frozen on the loan)."""

    max_rate_over_lpr = Ratio(high=MAX_RATE_OVER_LPR, allow_zero=False, allow_none=True,
                              load_default=None, metadata={"example": "1.4"},
                              error_messages={"zero": "must be greater than zero (a multiple of "
                                                      "the LPR such as \"1.4\"), or null for no "
                                                      "limit"})
    sme_only = Boolean(load_default=False)
    private_only = Boolean(load_default=False)
    max_revenue = _yuan(attribute="max_revenue_fen")

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Eligibility:
        return Eligibility(**values)


class SubsidyRuleIn(RequestSchema):
    """One subsidy a fiscal bureau pays per period, per loan and borrower."""

    kind = Choice(SUBSIDY_KINDS, required=True)
    method = Choice(SUBSIDY_METHODS, required=True)
    pct = _ratio(required=True)
    reference = Choice(REFERENCE_RATES, allow_none=True, load_default=None)
    reference_month = Choice(REFERENCE_MONTHS, allow_none=True, load_default=None)
    min_with_contract_rate = Boolean(load_default=False)
    caps = Object(SubsidyCapsIn, allow_none=True, load_default=None)
    eligibility = Object(EligibilityIn, allow_none=True, load_default=None)

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, values: dict, **kwargs: Any) -> None:
        _raise_problems(subsidy_rule_problems(values))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> SubsidyRule:
        return SubsidyRule(**{**values, "caps": values["caps"] or SubsidyCaps(),
                              "eligibility": values["eligibility"] or Eligibility()})


class TermsIn(RequestSchema):
    """The terms of one programme version (API.md "Programmes"); see ledger.terms for every
    default and limit."""

    loss_base = Choice(LOSS_BASES, load_default=DEFAULT_LOSS_BASE)
    trigger_overdue_days = Integer(low=1, high=MAX_TRIGGER_OVERDUE_DAYS,
                                   load_default=DEFAULT_TRIGGER_OVERDUE_DAYS)
    coverage = Object(CoverageIn, allow_none=True, load_default=None)
    parties = Objects(PartyIn, max_items=MAX_PARTIES, noun="parties", each=True, required=True,
                      error_messages={"required": "required (a list of parties; [] if the bank "
                                                  "bears every loss)"})
    subsidies = Objects(SubsidyRuleIn, max_items=MAX_SUBSIDY_RULES, noun="subsidy rules",
                        each=True, load_default=list)

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, values: dict, **kwargs: Any) -> None:
        if isinstance(values.get("parties"), list):
            _raise_problems(parties_problems(values["parties"]))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Terms:
        return Terms(values["loss_base"], values["trigger_overdue_days"],
                     values["coverage"] or Coverage(), tuple(values["parties"]),
                     tuple(values["subsidies"]))


TERMS = TermsIn()


# ---------------------------------------------------------------------------------------------
# For callers holding JSON: stored terms, the command line, tests


def parse_terms(raw: object, institution_kinds: Mapping[str, str] | None) -> Terms:
    """Read the API `terms` object (or stored terms) into `Terms`; ONE `Invalid` lists every
    error, each with its path from `terms`.

    `institution_kinds` maps institution code -> kind. When given, each party's institution must
    exist with kind equal to its role, and `recoveries_to` must exist (checked once the form is
    right). Pass None only for terms that were validated when stored.
    """
    terms = load(TERMS, raw, ("terms",))
    if institution_kinds is not None:
        raise_if_any(reference_errors(terms, institution_kinds))
    return terms


def terms_to_dict(terms: Terms) -> dict[str, Any]:
    """The canonical API-shaped dict: every key present, money as "1234.50", ratios as plain
    decimal strings, absent values as None. `parse_terms(terms_to_dict(t), None) == t`."""
    return TERMS.dump(terms)
