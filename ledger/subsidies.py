"""Subsidies (DOMAIN.md §5): every loan's subsidy lines for a programme and period, vectorised.

Guarantees:
- Exact integer arithmetic over numpy arrays: money in int64 fen, ratios as integers scaled by
  10^8 (`RATIO_SCALE`, the most places a ratio may have); a product that could overflow int64 is
  computed on Python ints (numpy object arrays), never on floats.
- Each formula amount is rounded half up to the fen once, after the formula, before the caps.
- The amount is the minimum of the formula and every cap that applies; `capped_by` names each cap
  whose limit is the amount paid and below the formula. Borrower caps are consumed in loan start
  date, then loan id order, after what earlier posted batches already paid (`Prior`).
- A loan failing a rule's eligibility gets no line for it, and one `excluded` row naming the rule.
- A month without a recorded LPR raises NotFound naming the month (`ledger.rates.rate_for`).
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Callable, Mapping

import numpy as np
from sqlalchemy import Connection, and_, func, select

from ledger.db import is_postgres
from ledger.errors import Invalid
from ledger.rates import rate_for
from ledger.schema import accounts, borrower_facts, entries, loans, postings
from ledger.terms import SubsidyRule

RATIO_SCALE = 10 ** 8
DAYS_PER_YEAR = 360  # DOMAIN.md §5: interest subsidies on a reference rate accrue per day / 360
_INT64_SAFE = 2 ** 62
_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4]))?$")


# --- periods and scaled ratios -------------------------------------------------------------------

def parse_period(text: object) -> tuple[date, date]:
    """`2025` or `2025-Q4` → (first day, day after the last): a half-open window."""
    match = _PERIOD.match(text) if isinstance(text, str) else None
    if match is None:
        raise Invalid.field("period", "must be a year (2025) or a quarter (2025-Q4)")
    year, quarter = int(match.group(1)), match.group(2)
    if quarter is None:
        return date(year, 1, 1), date(year + 1, 1, 1)
    first_month = 3 * (int(quarter) - 1) + 1
    end = date(year + 1, 1, 1) if first_month == 10 else date(year, first_month + 3, 1)
    return date(year, first_month, 1), end


def scaled(ratio: Decimal) -> int:
    """`ratio` × 10^8 as an exact int (ratios carry at most 8 places)."""
    value = Decimal(ratio) * RATIO_SCALE
    assert value == value.to_integral_value(), f"ratio {ratio} has more than 8 places"
    return int(value)


def _month_before(day: date) -> str:
    return (day.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def _anniversary(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February: the anniversary is 1 March
        return date(start.year + years, 3, 1)


def half_up_quotient(factors: list[np.ndarray], denominator: int) -> np.ndarray:
    """Π factors / denominator rounded half up, per element, exactly (factors non-negative)."""
    factors = [f.astype(np.int64) for f in factors]
    for i, f in enumerate(factors):  # cancel common factors first: most products then fit int64
        g = math.gcd(int(np.gcd.reduce(f)) if len(f) else 1, denominator)
        if g > 1:
            factors[i], denominator = f // g, denominator // g
    bound = denominator * 2
    for f in factors:
        bound *= int(f.max(initial=0)) + 1
    exact_in_int64 = bound < _INT64_SAFE
    dtype = np.int64 if exact_in_int64 else object
    product = np.ones(len(factors[0]), dtype=dtype)
    for f in factors:
        product = product * f.astype(dtype)
    quotient = (2 * product + denominator) // (2 * denominator)
    return quotient.astype(np.int64)


# --- the book: what the computation reads ------------------------------------------------------

@dataclass
class Book:
    """A programme's loans as parallel arrays (sorted by start date, then id) and their movements."""

    loan_id: np.ndarray
    borrower_id: np.ndarray
    start_ord: np.ndarray          # date.toordinal() of the start date
    principal_fen: np.ndarray
    rate_scaled: np.ndarray        # contract annual rate × 10^8
    sme: np.ndarray                # bool, frozen on the loan
    private: np.ndarray            # bool, frozen on the loan
    revenue_fen: np.ndarray        # frozen on the loan (the facts version in force at start)
    # Principal movements: loan index, day ordinal, delta (disbursement +, repayment −).
    move_loan: np.ndarray
    move_ord: np.ndarray
    move_fen: np.ndarray
    # Amounts paid by kind ("interest", fee kinds): loan index, day ordinal, amount.
    paid: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.loan_id)

    def start_dates(self) -> list[date]:
        return [date.fromordinal(o) for o in self.start_ord.tolist()]


@dataclass(frozen=True)
class Prior:
    """What earlier posted batches of this programme already paid, per subsidy kind."""

    per_loan_fen: Mapping[tuple[str, int], int] = field(default_factory=dict)            # (kind, loan)
    per_borrower_year_fen: Mapping[tuple[str, int, int], int] = field(default_factory=dict)  # (kind, borrower, year)
    per_borrower_total_fen: Mapping[tuple[str, int], int] = field(default_factory=dict)  # (kind, borrower)


@dataclass(frozen=True)
class Line:
    loan_id: int
    borrower_id: int
    kind: str
    method: str
    basis_fen: int          # interest or fee paid, or principal-days (reference method)
    computed_fen: int       # the formula, rounded half up once
    amount_fen: int         # after the caps
    capped_by: tuple[str, ...]


@dataclass(frozen=True)
class Excluded:
    loan_id: int
    kind: str
    reason: str


@dataclass(frozen=True)
class RuleLines:
    """One rule's lines as columns (the computation never builds a Python object per line)."""

    kind: str
    method: str
    loan_id: np.ndarray
    borrower_id: np.ndarray
    basis_fen: np.ndarray
    computed_fen: np.ndarray
    amount_fen: np.ndarray
    bound: dict[str, np.ndarray]  # cap name → which lines it bound

    def rows(self) -> list[Line]:
        masks = [(name, mask.tolist()) for name, mask in self.bound.items()]
        capped = [tuple(name for name, mask in masks if mask[j]) for j in range(len(self.loan_id))]
        columns = (self.loan_id.tolist(), self.borrower_id.tolist(), self.basis_fen.tolist(),
                   self.computed_fen.tolist(), self.amount_fen.tolist(), capped)
        return [Line(l, b, self.kind, self.method, basis, c, a, by) for l, b, basis, c, a, by in zip(*columns)]


@dataclass(frozen=True)
class Result:
    by_rule: list[RuleLines]
    excluded: list[Excluded]

    @property
    def lines(self) -> list[Line]:
        return [line for chunk in self.by_rule for line in chunk.rows()]

    @property
    def line_count(self) -> int:
        return sum(len(chunk.loan_id) for chunk in self.by_rule)

    @property
    def total_fen(self) -> int:
        return sum(int(chunk.amount_fen.sum()) for chunk in self.by_rule)


# --- the computation -----------------------------------------------------------------------------

LprFor = Callable[[str], Decimal]


def compute(book: Book, rules: tuple[SubsidyRule, ...], period: str, lpr_for: LprFor,
            prior: Prior = Prior()) -> Result:
    """Every loan's lines for `rules` over `period` (pure; `lpr_for(month)` raises on a gap)."""
    window = tuple(d.toordinal() for d in parse_period(period))
    lines: list[RuleLines] = []
    excluded: list[Excluded] = []
    for rule in rules:
        eligible, reasons = _eligibility(book, rule, lpr_for)
        excluded += [Excluded(int(book.loan_id[i]), rule.kind, reasons[i]) for i in np.flatnonzero(~eligible)]
        lines.append(_rule_lines(book, rule, window, lpr_for, prior, eligible))
    return Result(lines, excluded)


def _eligibility(book: Book, rule: SubsidyRule, lpr_for: LprFor) -> tuple[np.ndarray, list[str]]:
    """Which loans qualify, and for each that does not, the first rule it failed."""
    e = rule.eligibility
    checks: list[tuple[str, np.ndarray]] = []
    if e.sme_only:
        checks.append(("sme_only", book.sme.astype(bool)))
    if e.private_only:
        checks.append(("private_only", book.private.astype(bool)))
    if e.max_revenue_fen is not None:
        checks.append(("max_revenue", book.revenue_fen <= e.max_revenue_fen))
    if e.max_rate_over_lpr is not None:
        lpr = _lpr_by_month(book, lpr_for, lambda d: d.strftime("%Y-%m"))
        # rate ≤ k × LPR, both sides scaled by 10^16: exact in int64 (rates < 1, k ≤ 10).
        checks.append(("max_rate_over_lpr", book.rate_scaled * RATIO_SCALE <= scaled(e.max_rate_over_lpr) * lpr))
    eligible = np.ones(book.size, dtype=bool)
    reasons = [""] * book.size
    for name, ok in checks:
        for i in np.flatnonzero(eligible & ~ok):
            reasons[i] = name
        eligible &= ok
    return eligible, reasons


def _lpr_by_month(book: Book, lpr_for: LprFor, month_of: Callable[[date], str]) -> np.ndarray:
    """The scaled LPR for each loan, of the month `month_of(start date)`; one read per month."""
    months = [month_of(d) for d in book.start_dates()]
    by_month = {m: scaled(lpr_for(m)) for m in sorted(set(months))}
    return np.array([by_month[m] for m in months], dtype=np.int64)


def _rule_lines(book: Book, rule: SubsidyRule, window: tuple[int, int], lpr_for: LprFor,
                prior: Prior, eligible: np.ndarray) -> RuleLines:
    start, end = window
    live = eligible & (book.start_ord < end)
    years_end = None
    if rule.caps.years is not None:
        years_end = np.array([_anniversary(d, rule.caps.years).toordinal() for d in book.start_dates()],
                             dtype=np.int64)
    basis, computed = _formula(book, rule, start, np.full(book.size, end, dtype=np.int64), lpr_for)
    limits: dict[str, np.ndarray] = {}
    if years_end is not None:
        limits["years"] = _formula(book, rule, start, np.minimum(years_end, end), lpr_for)[1]
    caps = rule.caps
    loan_prior = _prior_of(book.loan_id, lambda l: prior.per_loan_fen.get((rule.kind, l), 0), bool(prior.per_loan_fen))
    if caps.pct_of_principal is not None:
        whole = half_up_quotient([book.principal_fen, np.full(book.size, scaled(caps.pct_of_principal))], RATIO_SCALE)
        limits["pct_of_principal"] = np.maximum(whole - loan_prior, 0)
    if caps.per_loan_fen is not None:
        limits["per_loan"] = np.maximum(caps.per_loan_fen - loan_prior, 0)
    want = computed.copy()
    for limit in limits.values():
        want = np.minimum(want, limit)
    want = np.where(live, want, 0)
    year = date.fromordinal(start).year
    limits |= _borrower_limits(book, rule, prior, year, want)
    amount = want
    for name in ("per_borrower_year", "per_borrower_total"):
        if name in limits:
            amount = np.minimum(amount, limits[name])
    return _lines(book, rule, live & (computed > 0), basis, computed, amount, limits)


def _borrower_limits(book: Book, rule: SubsidyRule, prior: Prior, year: int,
                     want: np.ndarray) -> dict[str, np.ndarray]:
    """Each borrower cap's limit per line: what remains of it after earlier batches and the
    borrower's earlier loans (book order). Greedy consumption of a cap R by wants w gives
    cumulative paid min(R, Σw), so one loan's remaining is R − min(R, Σ earlier amounts)."""
    caps = rule.caps
    named = []
    if caps.per_borrower_year_fen is not None:
        named.append(("per_borrower_year", caps.per_borrower_year_fen,
                      lambda b: prior.per_borrower_year_fen.get((rule.kind, b, year), 0)))
    if caps.per_borrower_total_fen is not None:
        named.append(("per_borrower_total", caps.per_borrower_total_fen,
                      lambda b: prior.per_borrower_total_fen.get((rule.kind, b), 0)))
    if not named:
        return {}
    any_prior = bool(prior.per_borrower_year_fen or prior.per_borrower_total_fen)
    remaining = {name: np.maximum(cap - _prior_of(book.borrower_id, used, any_prior), 0)
                 for name, cap, used in named}
    # Both caps count the same amounts paid, so they are consumed as one cap: their minimum.
    joint = np.minimum.reduce(list(remaining.values()))
    earlier = _earlier_in_group(book.borrower_id, want)
    consumed_before = np.minimum(joint, earlier)
    return {name: rem - consumed_before for name, rem in remaining.items()}


def _prior_of(keys: np.ndarray, used: Callable[[int], int], any_prior: bool) -> np.ndarray:
    """What earlier batches paid, per element of `keys` (zeros without a lookup when none did)."""
    if not any_prior:
        return np.zeros(len(keys), dtype=np.int64)
    return np.array([used(k) for k in keys.tolist()], dtype=np.int64)


def _earlier_in_group(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each position, the sum of `values` at earlier positions of the same group (stable)."""
    order = np.argsort(group, kind="stable")
    sorted_values = values[order]
    running = np.cumsum(sorted_values) - sorted_values
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    before = running - running[group_start]
    out = np.empty_like(before)
    out[order] = before
    return out


def _formula(book: Book, rule: SubsidyRule, start: int, ends: np.ndarray,
             lpr_for: LprFor) -> tuple[np.ndarray, np.ndarray]:
    """(basis, amount rounded half up) per loan over [start, ends[i])."""
    pct = np.full(book.size, scaled(rule.pct), dtype=np.int64)
    if rule.method == "pct_of_paid":
        basis = _paid_in(book, rule.kind, start, ends)
        return basis, half_up_quotient([np.maximum(basis, 0), pct], RATIO_SCALE)
    basis = _principal_days(book, start, ends)
    rate = _reference_rate(book, rule, start, lpr_for)
    return basis, half_up_quotient([np.maximum(basis, 0), pct, rate], RATIO_SCALE * RATIO_SCALE * DAYS_PER_YEAR)


def _reference_rate(book: Book, rule: SubsidyRule, start: int, lpr_for: LprFor) -> np.ndarray:
    if rule.reference_month == "december_of_year":
        rate = np.full(book.size, scaled(lpr_for(f"{date.fromordinal(start).year}-12")), dtype=np.int64)
    else:
        rate = _lpr_by_month(book, lpr_for, _month_before)
    return np.minimum(rate, book.rate_scaled) if rule.min_with_contract_rate else rate


def _paid_in(book: Book, kind: str, start: int, ends: np.ndarray) -> np.ndarray:
    """Σ of `kind` paid per loan on days in [start, ends[loan])."""
    loan, day, fen = book.paid.get(kind, (np.zeros(0, np.int64),) * 3)
    inside = (day >= start) & (day < ends[loan])
    total = np.zeros(book.size, dtype=np.int64)
    np.add.at(total, loan[inside], fen[inside])
    return total


def _principal_days(book: Book, start: int, ends: np.ndarray) -> np.ndarray:
    """Σ over the days d in [start, ends[loan]) of the principal outstanding at the end of d.
    A movement δ on day t adds δ to every day from t on: δ × (days of the window from t)."""
    loan, day, fen = book.move_loan, book.move_ord, book.move_fen
    days = np.maximum(ends[loan] - np.maximum(day, start), 0)
    total = np.zeros(book.size, dtype=np.int64)
    np.add.at(total, loan, fen * days)
    return total


def _lines(book: Book, rule: SubsidyRule, keep: np.ndarray, basis: np.ndarray, computed: np.ndarray,
           amount: np.ndarray, limits: dict[str, np.ndarray]) -> "RuleLines":
    rows = np.flatnonzero(keep)
    # A cap bound the line when its limit is the amount paid and below the formula.
    bound = {name: ((limit == amount) & (limit < computed))[rows] for name, limit in limits.items()}
    return RuleLines(rule.kind, rule.method, book.loan_id[rows], book.borrower_id[rows], basis[rows],
                     computed[rows], amount[rows], bound)


# --- bulk reads ---------------------------------------------------------------------------------

_PURPOSE_OF_KIND = {"interest": "interest_expense", "premium": "fees_premium",
                    "guarantee_fee": "fees_guarantee_fee", "appraisal_fee": "fees_appraisal_fee"}


def read_book(conn: Connection, program_id: int, period_end: date) -> Book:
    """The programme's loans started before `period_end`, their principal movements and the
    amounts paid by kind, in two set-based queries (the loans; one pass over their postings for
    every purpose), no per-loan round trips. On PostgreSQL each is one binary COPY read straight
    into numpy (`_read_book_postgres`)."""
    if is_postgres(conn):
        return _read_book_postgres(conn, program_id, period_end)
    rows = conn.execute(
        select(loans.c.id, loans.c.borrower_id, loans.c.start_date, loans.c.principal_fen,
               loans.c.annual_rate, loans.c.borrower_sme, loans.c.borrower_private,
               borrower_facts.c.revenue_fen)
        .join(borrower_facts, borrower_facts.c.id == loans.c.borrower_facts_id)
        .where(loans.c.program_id == program_id, loans.c.start_date < period_end)
        .order_by(loans.c.start_date, loans.c.id)).all()
    ids = np.array([r.id for r in rows], dtype=np.int64)
    index = {int(loan_id): i for i, loan_id in enumerate(ids)}
    book = Book(
        loan_id=ids, borrower_id=np.array([r.borrower_id for r in rows], dtype=np.int64),
        start_ord=np.array([r.start_date.toordinal() for r in rows], dtype=np.int64),
        principal_fen=np.array([r.principal_fen for r in rows], dtype=np.int64),
        rate_scaled=np.array([scaled(Decimal(r.annual_rate)) for r in rows], dtype=np.int64),
        sme=np.array([bool(r.borrower_sme) for r in rows], dtype=bool),
        private=np.array([bool(r.borrower_private) for r in rows], dtype=bool),
        revenue_fen=np.array([r.revenue_fen for r in rows], dtype=np.int64),
        move_loan=np.zeros(0, np.int64), move_ord=np.zeros(0, np.int64), move_fen=np.zeros(0, np.int64))
    sums = _sums_by_purpose(conn, program_id, period_end, ["loans_receivable", *_PURPOSE_OF_KIND.values()])
    book.move_loan, book.move_ord, book.move_fen = _as_arrays(sums.get("loans_receivable", []), index)
    book.paid = {kind: _as_arrays(sums.get(purpose, []), index) for kind, purpose in _PURPOSE_OF_KIND.items()}
    return book


def _sums_by_purpose(conn: Connection, program_id: int, before: date, purposes: list[str]) -> dict:
    rows = conn.execute(
        select(accounts.c.purpose, entries.c.loan_id, entries.c.effective_on, func.sum(postings.c.amount_fen))
        .select_from(postings).join(entries, entries.c.id == postings.c.entry_id)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .join(loans, loans.c.id == entries.c.loan_id)
        .where(and_(loans.c.program_id == program_id, accounts.c.purpose.in_(purposes),
                    entries.c.effective_on < before))
        .group_by(accounts.c.purpose, entries.c.loan_id, entries.c.effective_on))
    out: dict[str, list] = {}
    for purpose, loan_id, day, fen in rows:
        out.setdefault(purpose, []).append((loan_id, day, int(fen)))
    return out


def _as_arrays(rows: list, index: dict[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [r for r in rows if r[0] in index]
    return (np.array([index[r[0]] for r in rows], dtype=np.int64),
            np.array([r[1].toordinal() for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64))


# PostgreSQL: every value an int8, so a binary COPY row is fixed-size and numpy reads it as is.
_ORDINAL = "(({day}) - DATE '0001-01-01' + 1)::int8"  # = date.toordinal()
# In no particular order: numpy sorts the book (`_read_book_postgres`), cheaper than a sort here.
_LOANS_SQL = f"""
SELECT l.id::int8, l.borrower_id::int8, {_ORDINAL.format(day="l.start_date")}, l.principal_fen::int8,
       -- the contract rate x 10^8, exact; -1 if it had more places (asserted below)
       CASE WHEN l.annual_rate::numeric * 100000000 = trunc(l.annual_rate::numeric * 100000000)
            THEN (l.annual_rate::numeric * 100000000)::int8 ELSE -1 END,
       l.borrower_sme::int::int8, l.borrower_private::int::int8, f.revenue_fen::int8
FROM loans l JOIN borrower_facts f ON f.id = l.borrower_facts_id
WHERE l.program_id = %(program)s AND l.start_date < %(end)s"""
# Every posting that moves a loan's principal or pays its interest or a fee, one row each: the
# computation only ever sums them (per loan, within a window), so grouping here would be a
# hash aggregate of millions of groups for nothing. One pass over postings for every purpose.
_MOVES_SQL = f"""
SELECT array_position(%(purposes)s::text[], a.purpose::text)::int8, e.loan_id::int8,
       {_ORDINAL.format(day="e.effective_on")}, p.amount_fen::int8
FROM postings p
JOIN accounts a ON a.id = p.account_id AND a.purpose = ANY(%(purposes)s::text[])
JOIN entries e ON e.id = p.entry_id AND e.effective_on < %(end)s
JOIN loans l ON l.id = e.loan_id AND l.program_id = %(program)s"""
# For the bulk read only: hash joins over millions of rows in memory (at the default 4MB they
# spill in batches, and the planner picks millions of index lookups into accounts instead), and
# no JIT compilation (its fixed cost buys nothing on plain scans and joins).
_READ_SETTINGS = {"work_mem": "256MB", "jit": "off"}


@contextmanager
def _settings(conn: Connection, settings: dict[str, str]):
    """Set PostgreSQL settings for the statements inside, then restore the previous values."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        before = {name: cursor.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in settings}
        for name, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
        yield
        for name, value in before.items():
            cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
    finally:
        cursor.close()


def _copy_int8_rows(conn: Connection, sql: str, params: dict, width: int) -> np.ndarray:
    """An all-int8 query's rows as an (n, width) int64 array, through one binary COPY."""
    row = np.dtype([("fields", ">i2")] + [(f"{k}{i}", t) for i in range(width) for k, t in (("len", ">i4"), ("v", ">i8"))])
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)", params) as copy:
            data = b"".join(copy)
    finally:
        cursor.close()
    header = 19  # signature (11 bytes), flags (4), header extension length (4, always 0 here)
    body = data[header:-2]  # less the trailer (int16 -1)
    rows = np.frombuffer(body, dtype=row)
    assert (rows["fields"] == width).all() and all((rows[f"len{i}"] == 8).all() for i in range(width)), \
        "every value of a bulk read is a non-null int8"
    return np.stack([rows[f"v{i}"].astype(np.int64) for i in range(width)], axis=1) if len(rows) \
        else np.zeros((0, width), np.int64)


def _read_book_postgres(conn: Connection, program_id: int, period_end: date) -> Book:
    params = {"program": program_id, "end": period_end}
    purposes = ["loans_receivable", *_PURPOSE_OF_KIND.values()]
    with _settings(conn, _READ_SETTINGS):
        cols = _copy_int8_rows(conn, _LOANS_SQL, params, 8)
        moves = _copy_int8_rows(conn, _MOVES_SQL, {**params, "purposes": purposes}, 4)
    cols = cols[np.lexsort((cols[:, 0], cols[:, 2]))]  # by start date, then loan id
    assert (cols[:, 4] >= 0).all(), "a contract rate has more than 8 decimal places"
    book = Book(loan_id=cols[:, 0].copy(), borrower_id=cols[:, 1].copy(), start_ord=cols[:, 2].copy(),
                principal_fen=cols[:, 3].copy(), rate_scaled=cols[:, 4].copy(), sme=cols[:, 5].astype(bool),
                private=cols[:, 6].astype(bool), revenue_fen=cols[:, 7].copy(),
                move_loan=np.zeros(0, np.int64), move_ord=np.zeros(0, np.int64), move_fen=np.zeros(0, np.int64))
    # Loan ids to book positions, vectorised: the book is in start-date order, not id order.
    by_id = np.argsort(book.loan_id, kind="stable")
    at = np.searchsorted(book.loan_id, moves[:, 1], sorter=by_id).clip(0, max(book.size - 1, 0))
    known = book.size > 0
    index = by_id[at] if known else at
    inside = (book.loan_id[index] == moves[:, 1]) if known else np.zeros(len(moves), bool)

    def of(purpose: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pick = inside & (moves[:, 0] == purposes.index(purpose) + 1)  # array_position counts from 1
        return index[pick], moves[pick, 2].copy(), moves[pick, 3].copy()
    book.move_loan, book.move_ord, book.move_fen = of("loans_receivable")
    book.paid = {kind: of(purpose) for kind, purpose in _PURPOSE_OF_KIND.items()}
    return book


def lpr_reader(conn: Connection) -> LprFor:
    """`lpr_for(month)` from the recorded LPR1Y; a missing month is NotFound naming it."""
    return lambda month: rate_for(conn, "LPR1Y", month)


def draft_lines(conn: Connection, program_id: int, rules: tuple[SubsidyRule, ...], period: str,
                prior: Prior = Prior()) -> Result:
    """Read the programme's book in bulk and compute its lines for `period`."""
    _, end = parse_period(period)
    return compute(read_book(conn, program_id, end), rules, period, lpr_reader(conn), prior)
