"""Programme terms: the typed, immutable rules one programme version applies to its loans.

Owns the `terms` object of `POST /v1/programs` (API.md "Programmes"; meaning in DOMAIN.md
sections 3 and 5): who shares a loss and how much (parties, tiers by original principal, caps,
who pays first, where recoveries go), what is covered (loss base, IP share, coverage limits) and
which subsidies a fiscal bureau pays (method, percentage, caps, eligibility). The JSON shape is
fixed by API.md; banks and bureaus integrate against it.

Three entry points:
- `parse_terms(raw, institution_kinds)` turns the request JSON (or stored JSON) into `Terms`,
  or raises ONE `Invalid` listing EVERY field error found, each with a dotted path from the terms
  object (`terms.parties.1.share_tiers.0.up_to`), so an integrator fixes a request in one round
  trip. With `institution_kinds` (code -> institution kind) it also checks that every named
  institution exists and that each party's institution kind equals its role; with `None` (stored
  terms, validated when written) those look-ups are skipped.
- `terms_to_dict(terms)` gives the canonical API-shaped dict: every key present, money as
  two-decimal yuan strings, ratios as plain decimal strings, absent values as null. This is what
  is stored (`program_versions.terms_json`) and what GET shows.
- The value types below, which the claim and subsidy engines compute on.

Guarantees
- Round trip: `parse_terms(terms_to_dict(t), None) == t` for every `Terms` that `parse_terms`
  returns, and `terms_to_dict` is a fixed point after one pass.
- Money is integer fen, ratios are `Decimal`; no float is accepted or produced anywhere.
- A `Terms` value (however built) satisfies the structural rules, asserted at construction:
  share tiers end with an unbounded tier and have strictly increasing bounds; no institution is
  a party twice; at most one party pays first; for EVERY original principal the parties' ratios
  sum to at most 1 (the bank bears the rest). A broken one is a bug and fails loudly.
- Parsing is strict: an unknown key anywhere is an error (so a typo such as `per_clam` is not
  silently ignored), bools must be JSON bools, integers must not be bools.

Decisions where API.md / DOMAIN.md are silent (documented here so the API docs can repeat them)
- Optional keys and their defaults: `loss_base` "principal", `trigger_overdue_days` 90 (1..3650),
  `coverage` {whole_loan, false, null, null, null}, `subsidies` [], party `pays_first` false,
  `share_tiers` none, `recoveries_to` null, every cap null (no cap) and `fund_balance` false,
  subsidy `reference`/`reference_month` null, `min_with_contract_rate` false, eligibility
  {null, false, false, null}. `parties` is required (an empty list is allowed: the bank bears
  every loss). An object given as null (`"caps": null`) means "all defaults"; a bool, enum or
  integer given as null is an error (null is accepted only where the value itself may be null).
- `share_tiers`: 1..20 tiers when given; null means no tiers (that is how `terms_to_dict` writes a
  flat party); an empty list is refused. Each tier's `up_to` is required (null only on the last),
  an amount of yuan greater than zero, strictly increasing; the last MUST be null so every
  principal falls in a tier. A principal exactly equal to `up_to` belongs to that tier.
- With tiers, `share` may be omitted (it is then the first tier's share). If both are given the
  tiers win for every computation; `share` is kept as given, validated in [0, 1] and shown back,
  but is informational only.
- The sum check evaluates every party's `ratio_for` at principal 0, at each distinct `up_to` and
  one fen above it: ratios are constant between those points, so this covers every principal.
  The error is reported once, on `terms.parties`, naming the first principal that oversubscribes.
- `caps.fund_balance` true is allowed only for a party with role `pool` (only a pool has a fund).
- Subsidy `pct_of_reference_rate` is only for kind `interest`; it then requires `reference`
  ("LPR1Y", the only reference rate the ledger keeps) and `reference_month`. For `pct_of_paid`
  those must be absent or null and `min_with_contract_rate` absent or false. Several rules of one
  kind are allowed (API.md's example has two interest rules); the subsidy engine decides how they
  combine.
- Limits: at most 20 parties, 20 tiers per party, 20 subsidy rules; ratios at most 8 decimals;
  `max_rate_over_lpr` in (0, 100]; `caps.years` in 1..100; institution codes 1..40 characters.
- Money caps and thresholds may be zero (a zero cap is a legal if unusual choice); none may be
  negative. Ratios are `[0, 1]` except `max_rate_over_lpr`.
- A party's `institution` and `recoveries_to` kinds: the party's institution kind must equal its
  role (error on `...institution`: "X is a bank, not an insurer"); `recoveries_to` may be any
  existing institution (a treasury, typically).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.errors import FieldError, Invalid
from ledger.money import format_yuan, parse_ratio, parse_yuan

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
# Parsing

_TERMS_KEYS = ("loss_base", "trigger_overdue_days", "coverage", "parties", "subsidies")
_COVERAGE_KEYS = ("ip_share", "require_stated_ip_share", "min_ip_share", "max_covered_principal",
                  "max_covered_principal_per_borrower_year")
_PARTY_KEYS = ("institution", "role", "share", "share_tiers", "pays_first", "caps",
               "recoveries_to")
_TIER_KEYS = ("up_to", "share")
_PARTY_CAPS_KEYS = ("per_claim", "per_borrower_year", "per_bank_year", "per_program_year",
                    "portfolio_cap_rate", "fund_balance")
_SUBSIDY_KEYS = ("kind", "method", "pct", "reference", "reference_month",
                 "min_with_contract_rate", "caps", "eligibility")
_SUBSIDY_CAPS_KEYS = ("pct_of_principal", "per_loan", "per_borrower_year", "per_borrower_total",
                      "years")
_ELIGIBILITY_KEYS = ("max_rate_over_lpr", "sme_only", "private_only", "max_revenue")

_MISSING: Any = object()  # a key not present at all (as opposed to present and null)
_ONLY_FOR_REFERENCE = "only for method pct_of_reference_rate"


def parse_terms(raw: object, institution_kinds: Mapping[str, str] | None) -> Terms:
    """Validate the API `terms` object and build `Terms`; ONE `Invalid` lists every error.

    `institution_kinds` maps institution code -> kind. When given, each party's institution must
    exist with kind equal to its role, and `recoveries_to` must exist. Pass None only for terms
    that were validated when stored.
    """
    reader = _Reader()
    terms = _terms(reader, raw, "terms", institution_kinds)
    if reader.errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in reader.errors), reader.errors)
    assert terms is not None
    return terms


class _Reader:
    """Collects field errors across one parse.

    Each object parser notes `mark()` first and builds its value only if no error was recorded
    since (`_build`): leaf readers return None on error, so that None is never mistaken for a
    value.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark

    def object(self, raw: object, path: str, keys: tuple[str, ...], *,
               nullable: bool) -> Mapping[str, Any] | None:
        """A JSON object with only `keys`; null is {} (all defaults) when `nullable`."""
        if raw is None and nullable:
            return {}
        if not isinstance(raw, dict):
            self.error(path, "must be an object")
            return None
        for key in raw:
            if key not in keys:
                self.error(f"{path}.{key}", f"unknown field; expected one of: {', '.join(keys)}")
        return raw

    def array(self, raw: object, path: str, max_items: int, noun: str) -> Sequence[Any] | None:
        if not isinstance(raw, (list, tuple)):
            self.error(path, "must be a list")
            return None
        if len(raw) > max_items:
            self.error(path, f"at most {max_items} {noun}")
            return None
        return raw

    def choice(self, obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], *,
               default: str | None = _MISSING) -> str | None:
        """One of `choices`; `default` when absent (required if no default; never null)."""
        value = obj.get(key, default)
        if value is _MISSING:
            self.error(f"{path}.{key}", f"required; one of: {', '.join(choices)}")
            return None
        if not isinstance(value, str) or value not in choices:
            self.error(f"{path}.{key}", f"must be one of: {', '.join(choices)}")
            return None
        return value

    def optional_choice(self, obj: Mapping[str, Any], key: str, path: str,
                        choices: tuple[str, ...]) -> str | None:
        """One of `choices`, or None when absent or null."""
        if obj.get(key) is None:
            return None
        return self.choice(obj, key, path, choices)

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        """A JSON bool; false when absent."""
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.error(f"{path}.{key}", "must be true or false")
            return False
        return value

    def integer(self, obj: Mapping[str, Any], key: str, path: str, *, default: int | None,
                low: int, high: int) -> int | None:
        """A JSON integer (not a bool) in [low, high]; `default` when absent (None: stays None)."""
        value = obj.get(key, _MISSING)
        if value is _MISSING or (value is None and default is None):
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path}.{key}", "must be an integer")
            return None
        if not low <= value <= high:
            self.error(f"{path}.{key}", f"must be within [{low}, {high}]")
            return None
        return value

    def money(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False,
              allow_zero: bool = True) -> int | None:
        """Non-negative yuan -> fen; None when null (or absent, unless `required`)."""
        value = obj.get(key, _MISSING)
        if value is _MISSING and required:
            self.error(f"{path}.{key}", "required (an amount of yuan, or null)")
            return None
        if value is _MISSING or value is None:
            return None
        try:
            return parse_yuan(value, f"{path}.{key}", allow_zero=allow_zero)
        except Invalid as exc:
            self.errors.extend(exc.errors)
            return None

    def ratio(self, obj: Mapping[str, Any], key: str, path: str, *, nullable: bool,
              high: Decimal | None = ONE) -> Decimal | None:
        """A decimal string in [0, high]; None when null or absent if `nullable`, else required."""
        value = obj.get(key)
        if value is None:
            if not nullable:
                self.error(f"{path}.{key}", "required (a decimal string such as \"0.30\")")
            return None
        try:
            return parse_ratio(value, f"{path}.{key}", low=ZERO, high=high)
        except Invalid as exc:
            self.errors.extend(exc.errors)
            return None

    def code(self, obj: Mapping[str, Any], key: str, path: str, *,
             required: bool) -> str | None:
        """An institution code string; None when absent or null unless `required`."""
        value = obj.get(key)
        if value is None:
            if required:
                self.error(f"{path}.{key}", "required (an institution code)")
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_CODE_LENGTH:
            self.error(f"{path}.{key}", f"must be an institution code of 1-{MAX_CODE_LENGTH} "
                                        "characters")
            return None
        return value


def _terms(r: _Reader, raw: object, path: str,
           kinds: Mapping[str, str] | None) -> Terms | None:
    mark = r.mark()
    obj = r.object(raw, path, _TERMS_KEYS, nullable=False)
    if obj is None:
        return None
    loss_base = r.choice(obj, "loss_base", path, LOSS_BASES, default=DEFAULT_LOSS_BASE)
    trigger_overdue_days = r.integer(obj, "trigger_overdue_days", path,
                                     default=DEFAULT_TRIGGER_OVERDUE_DAYS, low=1,
                                     high=MAX_TRIGGER_OVERDUE_DAYS)
    coverage = _coverage(r, obj.get("coverage"), f"{path}.coverage")
    parties = _parties(r, obj.get("parties", _MISSING), f"{path}.parties", kinds)
    subsidies = _subsidies(r, obj.get("subsidies", []), f"{path}.subsidies")
    if not r.clean_since(mark):
        return None
    assert loss_base is not None and trigger_overdue_days is not None
    assert coverage is not None and parties is not None and subsidies is not None
    return Terms(loss_base, trigger_overdue_days, coverage, parties, subsidies)


def _build(r: _Reader, mark: int, cls: type, **values: Any) -> Any:
    """`cls(**values)` if no error was recorded since `mark` (values are then all valid)."""
    return cls(**values) if r.clean_since(mark) else None


def _coverage(r: _Reader, raw: object, path: str) -> Coverage | None:
    mark = r.mark()
    obj = r.object(raw, path, _COVERAGE_KEYS, nullable=True)
    if obj is None:
        return None
    return _build(
        r, mark, Coverage,
        ip_share=r.choice(obj, "ip_share", path, IP_SHARE_MODES, default="whole_loan"),
        require_stated_ip_share=r.boolean(obj, "require_stated_ip_share", path),
        min_ip_share=r.ratio(obj, "min_ip_share", path, nullable=True),
        max_covered_principal_fen=r.money(obj, "max_covered_principal", path),
        max_covered_principal_per_borrower_year_fen=r.money(
            obj, "max_covered_principal_per_borrower_year", path),
    )


def _parties(r: _Reader, raw: object, path: str,
             kinds: Mapping[str, str] | None) -> tuple[Party, ...] | None:
    if raw is _MISSING:
        r.error(path, "required (a list of parties; [] if the bank bears every loss)")
        return None
    items = r.array(raw, path, MAX_PARTIES, "parties")
    if items is None:
        return None
    parsed = [_party(r, item, f"{path}.{index}", kinds) for index, item in enumerate(items)]
    _check_parties_together(r, items, path)
    # Sum only the parties that parsed: adding the others could only raise the sum, so an
    # oversubscription found here is real, and the broken parties already have their errors.
    parties = tuple(party for party in parsed if party is not None)
    over = _first_oversubscribed(parties)
    if over is not None:
        principal_fen, total = over
        where = (f" for an original principal of {format_yuan(principal_fen)} yuan"
                 if any(party.share_tiers for party in parties) else "")
        r.error(path, f"the parties' shares sum to {total}{where}; they must sum to at most 1 "
                      "(the bank bears the rest)")
    return parties


def _check_parties_together(r: _Reader, items: Sequence[Any], path: str) -> None:
    """Rules across parties, read from the raw items so they are reported even when a party has
    other errors: an institution is a party once; at most one party pays first."""
    first_index: dict[str, int] = {}
    pays_first_index: int | None = None
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        code = item.get("institution")
        if isinstance(code, str):
            if code in first_index:
                r.error(f"{path}.{index}.institution",
                        f"{code} is already party {first_index[code]}; an institution may be "
                        "a party only once")
            else:
                first_index[code] = index
        if item.get("pays_first") is True:
            if pays_first_index is None:
                pays_first_index = index
            else:
                r.error(f"{path}.{index}.pays_first",
                        f"only one party may pay first; party {pays_first_index} already does")


def _party(r: _Reader, raw: object, path: str,
           kinds: Mapping[str, str] | None) -> Party | None:
    mark = r.mark()
    obj = r.object(raw, path, _PARTY_KEYS, nullable=False)
    if obj is None:
        return None
    institution = r.code(obj, "institution", path, required=True)
    role = r.choice(obj, "role", path, PARTY_ROLES)
    tiers: tuple[ShareTier, ...] | None = ()
    if obj.get("share_tiers") is not None:
        tiers = _share_tiers(r, obj["share_tiers"], f"{path}.share_tiers")
    if obj.get("share") is None and obj.get("share_tiers") is not None:
        share = tiers[0].share if tiers else None  # tier errors are already recorded
    else:
        share = r.ratio(obj, "share", path, nullable=False)
    caps = _party_caps(r, obj.get("caps"), f"{path}.caps")
    if caps is not None and caps.fund_balance and role not in (None, "pool"):
        r.error(f"{path}.caps.fund_balance", f"only a pool has a fund; this party is {_a(role)}")
    recoveries_to = r.code(obj, "recoveries_to", path, required=False)
    if kinds is not None:
        if institution is not None:
            kind = kinds.get(institution)
            if kind is None:
                r.error(f"{path}.institution", f"unknown institution {institution}")
            elif role is not None and kind != role:
                r.error(f"{path}.institution", f"{institution} is {_a(kind)}, not {_a(role)}")
        if recoveries_to is not None and recoveries_to not in kinds:
            r.error(f"{path}.recoveries_to", f"unknown institution {recoveries_to}")
    return _build(
        r, mark, Party,
        institution=institution,
        role=role,
        share=share,
        share_tiers=tiers,
        pays_first=r.boolean(obj, "pays_first", path),
        caps=caps,
        recoveries_to=recoveries_to,
    )


def _share_tiers(r: _Reader, raw: object, path: str) -> tuple[ShareTier, ...] | None:
    mark = r.mark()
    items = r.array(raw, path, MAX_SHARE_TIERS, "tiers")
    if items is None:
        return None
    if not items:
        r.error(path, "must not be empty; omit it (or use null) for a flat share")
        return None
    tiers = [_share_tier(r, item, f"{path}.{index}") for index, item in enumerate(items)]
    last = len(items) - 1
    previous_fen: int | None = None  # the last bounded up_to seen, for the ordering rule
    for index, tier in enumerate(tiers):
        if tier is None:
            continue
        up_to_path = f"{path}.{index}.up_to"
        if tier.up_to_fen is None:
            if index != last:
                r.error(up_to_path, "only the last tier may be unbounded (null)")
            continue
        if index == last:
            r.error(up_to_path, "the last tier must have up_to null, so that every principal "
                                "falls in a tier")
        if previous_fen is not None and tier.up_to_fen <= previous_fen:
            r.error(up_to_path, f"must be greater than the previous tier's up_to "
                                f"({format_yuan(previous_fen)})")
        previous_fen = tier.up_to_fen
    if not r.clean_since(mark):
        return None
    return tuple(tier for tier in tiers if tier is not None)


def _share_tier(r: _Reader, raw: object, path: str) -> ShareTier | None:
    mark = r.mark()
    obj = r.object(raw, path, _TIER_KEYS, nullable=False)
    if obj is None:
        return None
    return _build(
        r, mark, ShareTier,
        up_to_fen=r.money(obj, "up_to", path, required=True, allow_zero=False),
        share=r.ratio(obj, "share", path, nullable=False),
    )


def _party_caps(r: _Reader, raw: object, path: str) -> PartyCaps | None:
    mark = r.mark()
    obj = r.object(raw, path, _PARTY_CAPS_KEYS, nullable=True)
    if obj is None:
        return None
    return _build(
        r, mark, PartyCaps,
        per_claim_fen=r.money(obj, "per_claim", path),
        per_borrower_year_fen=r.money(obj, "per_borrower_year", path),
        per_bank_year_fen=r.money(obj, "per_bank_year", path),
        per_program_year_fen=r.money(obj, "per_program_year", path),
        portfolio_cap_rate=r.ratio(obj, "portfolio_cap_rate", path, nullable=True),
        fund_balance=r.boolean(obj, "fund_balance", path),
    )


def _subsidies(r: _Reader, raw: object, path: str) -> tuple[SubsidyRule, ...] | None:
    items = r.array(raw, path, MAX_SUBSIDY_RULES, "subsidy rules")
    if items is None:
        return None
    rules = [_subsidy(r, item, f"{path}.{index}") for index, item in enumerate(items)]
    return tuple(rule for rule in rules if rule is not None)


def _subsidy(r: _Reader, raw: object, path: str) -> SubsidyRule | None:
    mark = r.mark()
    obj = r.object(raw, path, _SUBSIDY_KEYS, nullable=False)
    if obj is None:
        return None
    kind = r.choice(obj, "kind", path, SUBSIDY_KINDS)
    method = r.choice(obj, "method", path, SUBSIDY_METHODS)
    pct = r.ratio(obj, "pct", path, nullable=False)
    if method == "pct_of_paid":
        # Reference fields mean nothing here; refuse them rather than silently ignore them.
        for key in ("reference", "reference_month"):
            if obj.get(key) is not None:
                r.error(f"{path}.{key}", f"{_ONLY_FOR_REFERENCE}; omit it or use null")
        reference = reference_month = None
        min_with_contract_rate = r.boolean(obj, "min_with_contract_rate", path)
        if min_with_contract_rate:
            r.error(f"{path}.min_with_contract_rate", f"{_ONLY_FOR_REFERENCE}; omit it or use "
                                                      "false")
    else:
        reference = r.optional_choice(obj, "reference", path, REFERENCE_RATES)
        reference_month = r.optional_choice(obj, "reference_month", path, REFERENCE_MONTHS)
        min_with_contract_rate = r.boolean(obj, "min_with_contract_rate", path)
        if method == "pct_of_reference_rate":
            if kind is not None and kind != "interest":
                r.error(f"{path}.method", "pct_of_reference_rate applies only to kind interest; "
                                          "use pct_of_paid")
            if obj.get("reference") is None:
                r.error(f"{path}.reference", "required when method is pct_of_reference_rate; "
                                             f"one of: {', '.join(REFERENCE_RATES)}")
            if obj.get("reference_month") is None:
                r.error(f"{path}.reference_month", "required when method is "
                        f"pct_of_reference_rate; one of: {', '.join(REFERENCE_MONTHS)}")
    return _build(
        r, mark, SubsidyRule,
        kind=kind,
        method=method,
        pct=pct,
        reference=reference,
        reference_month=reference_month,
        min_with_contract_rate=min_with_contract_rate,
        caps=_subsidy_caps(r, obj.get("caps"), f"{path}.caps"),
        eligibility=_eligibility(r, obj.get("eligibility"), f"{path}.eligibility"),
    )


def _subsidy_caps(r: _Reader, raw: object, path: str) -> SubsidyCaps | None:
    mark = r.mark()
    obj = r.object(raw, path, _SUBSIDY_CAPS_KEYS, nullable=True)
    if obj is None:
        return None
    return _build(
        r, mark, SubsidyCaps,
        pct_of_principal=r.ratio(obj, "pct_of_principal", path, nullable=True),
        per_loan_fen=r.money(obj, "per_loan", path),
        per_borrower_year_fen=r.money(obj, "per_borrower_year", path),
        per_borrower_total_fen=r.money(obj, "per_borrower_total", path),
        years=r.integer(obj, "years", path, default=None, low=1, high=MAX_SUBSIDY_YEARS),
    )


def _eligibility(r: _Reader, raw: object, path: str) -> Eligibility | None:
    mark = r.mark()
    obj = r.object(raw, path, _ELIGIBILITY_KEYS, nullable=True)
    if obj is None:
        return None
    max_rate_over_lpr = r.ratio(obj, "max_rate_over_lpr", path, nullable=True,
                                high=MAX_RATE_OVER_LPR)
    if max_rate_over_lpr is not None and max_rate_over_lpr == 0:
        r.error(f"{path}.max_rate_over_lpr", "must be greater than zero (a multiple of the LPR "
                                             "such as \"1.4\"), or null for no limit")
    return _build(
        r, mark, Eligibility,
        max_rate_over_lpr=max_rate_over_lpr,
        sme_only=r.boolean(obj, "sme_only", path),
        private_only=r.boolean(obj, "private_only", path),
        max_revenue_fen=r.money(obj, "max_revenue", path),
    )


def _a(noun: str) -> str:
    """"an insurer", "a bank": for messages such as "X is a bank, not an insurer"."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


# ---------------------------------------------------------------------------------------------
# Canonical form


def terms_to_dict(terms: Terms) -> dict[str, Any]:
    """The canonical API-shaped dict: every key present, money as "1234.50", ratios as plain
    decimal strings, absent values as None. `parse_terms(terms_to_dict(t), None) == t`."""
    coverage = terms.coverage
    return {
        "loss_base": terms.loss_base,
        "trigger_overdue_days": terms.trigger_overdue_days,
        "coverage": {
            "ip_share": coverage.ip_share,
            "require_stated_ip_share": coverage.require_stated_ip_share,
            "min_ip_share": _ratio_text(coverage.min_ip_share),
            "max_covered_principal": _yuan_text(coverage.max_covered_principal_fen),
            "max_covered_principal_per_borrower_year":
                _yuan_text(coverage.max_covered_principal_per_borrower_year_fen),
        },
        "parties": [_party_to_dict(party) for party in terms.parties],
        "subsidies": [_subsidy_to_dict(rule) for rule in terms.subsidies],
    }


def _party_to_dict(party: Party) -> dict[str, Any]:
    caps = party.caps
    return {
        "institution": party.institution,
        "role": party.role,
        "share": _ratio_text(party.share),
        # null, not []: an empty tier list is refused on input, null means "flat share".
        "share_tiers": [
            {"up_to": _yuan_text(tier.up_to_fen), "share": _ratio_text(tier.share)}
            for tier in party.share_tiers
        ] or None,
        "pays_first": party.pays_first,
        "caps": {
            "per_claim": _yuan_text(caps.per_claim_fen),
            "per_borrower_year": _yuan_text(caps.per_borrower_year_fen),
            "per_bank_year": _yuan_text(caps.per_bank_year_fen),
            "per_program_year": _yuan_text(caps.per_program_year_fen),
            "portfolio_cap_rate": _ratio_text(caps.portfolio_cap_rate),
            "fund_balance": caps.fund_balance,
        },
        "recoveries_to": party.recoveries_to,
    }


def _subsidy_to_dict(rule: SubsidyRule) -> dict[str, Any]:
    caps, eligibility = rule.caps, rule.eligibility
    return {
        "kind": rule.kind,
        "method": rule.method,
        "pct": _ratio_text(rule.pct),
        "reference": rule.reference,
        "reference_month": rule.reference_month,
        "min_with_contract_rate": rule.min_with_contract_rate,
        "caps": {
            "pct_of_principal": _ratio_text(caps.pct_of_principal),
            "per_loan": _yuan_text(caps.per_loan_fen),
            "per_borrower_year": _yuan_text(caps.per_borrower_year_fen),
            "per_borrower_total": _yuan_text(caps.per_borrower_total_fen),
            "years": caps.years,
        },
        "eligibility": {
            "max_rate_over_lpr": _ratio_text(eligibility.max_rate_over_lpr),
            "sme_only": eligibility.sme_only,
            "private_only": eligibility.private_only,
            "max_revenue": _yuan_text(eligibility.max_revenue_fen),
        },
    }


def _yuan_text(fen: int | None) -> str | None:
    return None if fen is None else format_yuan(fen)


def _ratio_text(ratio: Decimal | None) -> str | None:
    # format "f", not str(): str(Decimal("0.00000001")) is "1E-8", which parse_ratio refuses.
    return None if ratio is None else format(ratio, "f")
