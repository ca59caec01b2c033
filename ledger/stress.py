"""The pool stress test: how likely is a programme's compensation fund to run dry, and who loses what.

Monte Carlo over scenarios x loans x years (docs/STRESS.md). Defaults come from a one-factor
Gaussian copula (Vasicek): loan i defaults in year k of scenario s when
sqrt(rho) Z[s,k] + sqrt(1 - rho) e[s,k,i] < inverse-normal(pd_i), among loans still alive and
not yet matured. Each default is a claim split by **the claims engine's own rule functions**
(`ledger.sharing`: `covered_amount` and `rounded_shares` per loan, then `cap_rooms` and
`cuts_in_order` applied to int64 arrays, one element per scenario), in claim order, with the
shared caps' usage carried from claim to claim exactly as `ledger.claims.open_claim` carries it
in `cap_usage`. Recoveries are returned pro rata by largest remainder (`ledger.money.allocate`,
vectorised as `allocate_rows`).

Guarantees
- Money is int64 fen throughout; floats are only probabilities, correlations and the drawn
  recovery rate (converted to whole basis points before it touches an amount).
- Same assumptions and seed give the same results, whatever the chunk size: scenarios are drawn
  in fixed blocks of BLOCK_SCENARIOS, each with its own child of the seed.
- Memory is bounded: scenarios are processed in chunks sized to MEMORY_BUDGET_BYTES.
- On every simulated claim, parties' shares plus the bank's retained loss equal the loss base.

Model decisions (where API.md is silent; docs/STRESS.md repeats them)
- Simulated year k is the k-th twelve months after `as_of`; it is one cap year (the per-year
  caps start again each simulated year). Within a year, claims are taken in loan order (id), new
  lending after the book.
- The loss base is the outstanding principal on `as_of` (no amortisation, no overdue interest).
- A loan is at risk in year k while its maturity is after the start of that year.
- The fund starts at its balance on `as_of`; each simulated year begins with one annual
  contribution (default: what the fund received in the twelve months before `as_of`). What
  earlier open claims owe counts against it, as in the claims engine (nothing is paid yet).
- A recovery arrives `recovery_delay_years` after its claim; counted only within the horizon. A
  fund party's part, unless its terms send recoveries elsewhere, refills the fund the year after.
- "Exhausted in year k": the fund-balance cap cut a share in that year. "Uncovered claim": one
  whose pool share the fund could not pay in full.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np
from sqlalchemy import Connection, and_, func, select

from ledger import accounts as chart
from ledger import sharing
from ledger.errors import NotFound
from ledger.money import allocate, round_fraction
from ledger.portfolio_book import loans_started_by
from ledger.programs import load_programs
from ledger.schema import accounts, claim_shares, claims, entries, institutions, loans, postings
from ledger.terms import Terms

NO_LIMIT = 2**62
"""Stands for "no such cap" in an int64 array: no share comes near it, so it never cuts."""
BLOCK_SCENARIOS = 250
"""Scenarios drawn from one child seed; results do not depend on how blocks group into chunks."""
MEMORY_BUDGET_BYTES = 256 * 2**20
MAX_PROBES = 24
BASIS_POINTS = 10_000
NEW_LOAN_DEFAULT_FEN = 1_000_000_00  # size of hypothetical loans when the book is empty
PROBABILITY_PLACES = Decimal("0.000001")


# --- assumptions and the book -------------------------------------------------------------

@dataclass(frozen=True)
class Assumptions:
    as_of: date
    years: int
    scenarios: int
    seed: int
    default_probability: Decimal
    asset_correlation: Decimal
    default_probability_sme: Decimal | None = None
    default_probability_non_sme: Decimal | None = None
    recovery_rate: Decimal = Decimal(0)
    recovery_rate_sd: Decimal = Decimal(0)
    recovery_delay_years: int = 1
    new_lending: tuple[tuple[int, int], ...] = ()
    """(simulated year, amount in fen) of hypothetical new loans."""
    annual_contribution_fen: int | None = None
    """None = what the fund received in the twelve months before `as_of`."""
    target_exhaustion_probability: Decimal | None = None

    def pd_for(self, sme: bool) -> Decimal:
        chosen = self.default_probability_sme if sme else self.default_probability_non_sme
        return self.default_probability if chosen is None else chosen


@dataclass
class Book:
    """The programme's live loans on `as_of` (plus hypothetical new lending) as arrays."""

    loan_id: np.ndarray            # int64; new lending has negative ids
    outstanding_fen: np.ndarray    # int64: the loss base should it default
    original_fen: np.ndarray       # int64: decides tiers
    ip_share: list                 # Decimal | None per loan
    before_fen: list               # the borrower's earlier principal in the loan's start year
    first_year: np.ndarray         # first simulated year at risk
    last_year: np.ndarray          # last simulated year at risk
    borrower: np.ndarray           # index (one per credit code)
    bank: np.ndarray               # index
    sme: np.ndarray                # bool
    version: np.ndarray            # index into `versions`
    versions: list[Terms]
    portfolio_loans: list[tuple[int, int, Decimal | None, int]]
    """(first simulated year it counts in, principal, IP share, earlier principal) of every loan
    of the programme started by `as_of` (year 1) and of new lending: the portfolio caps' base."""
    fund_balance_fen: int = 0
    owed_before_fen: dict[str, int] = field(default_factory=dict)
    """Each party's shares on the programme's open claims classified by `as_of`."""
    contributions_last_year_fen: int = 0
    program: str = ""

    @property
    def size(self) -> int:
        return len(self.loan_id)


def load_book(conn: Connection, code: str, as_of: date) -> Book:
    """The programme's book on `as_of`, read in a few bulk queries: the loans started by then,
    neither closed nor claimed by then, with principal outstanding on that day."""
    found = load_programs(conn, [code])
    if code not in found:
        raise NotFound(f"programme {code} does not exist")
    program = found[code]
    version_index = {v.id: i for i, v in enumerate(program.versions)}
    rows, before = loans_started_by(conn, program.id, as_of, loans.c.bank_id, loans.c.maturity_date,
                                    loans.c.status, loans.c.closed_on, loans.c.borrower_sme,
                                    loans.c.program_version_id)
    claimed = _claimed_by(conn, program.id, as_of)
    outstanding = _outstanding_on(conn, program.id, as_of)
    portfolio = [(1, r.principal_fen, _ip(r.ip_share), spent) for r, spent in zip(rows, before)]
    live = sorted(((r, spent) for r, spent in zip(rows, before)
                   if _live_on(r, as_of, claimed) and outstanding.get(r.id, 0) > 0), key=lambda item: item[0].id)
    borrower_index: dict[str, int] = {}
    bank_index: dict[int, int] = {}
    for r, _ in live:
        borrower_index.setdefault(r.credit_code, len(borrower_index))
        bank_index.setdefault(r.bank_id, len(bank_index))
    book = Book(
        loan_id=np.array([r.id for r, _ in live], dtype=np.int64),
        outstanding_fen=np.array([outstanding[r.id] for r, _ in live], dtype=np.int64),
        original_fen=np.array([r.principal_fen for r, _ in live], dtype=np.int64),
        ip_share=[_ip(r.ip_share) for r, _ in live], before_fen=[spent for _, spent in live],
        first_year=np.ones(len(live), dtype=np.int64),
        last_year=np.array([_years_to(as_of, r.maturity_date) for r, _ in live], dtype=np.int64),
        borrower=np.array([borrower_index[r.credit_code] for r, _ in live], dtype=np.int64),
        bank=np.array([bank_index[r.bank_id] for r, _ in live], dtype=np.int64),
        sme=np.array([bool(r.borrower_sme) for r, _ in live], dtype=bool),
        version=np.array([version_index[r.program_version_id] for r, _ in live], dtype=np.int64),
        versions=[v.terms for v in program.versions], portfolio_loans=portfolio, program=code)
    book.fund_balance_fen, book.contributions_last_year_fen = _fund_on(conn, program.id, as_of)
    book.owed_before_fen = _owed_before(conn, program.id, as_of)
    return book


def _claimed_by(conn: Connection, program_id: int, as_of: date) -> set[int]:
    """Loans with an open claim classified by `as_of` (a withdrawn claim left the loan active)."""
    return set(conn.execute(select(claims.c.loan_id).where(
        claims.c.program_id == program_id, claims.c.status == "open", claims.c.classified_on <= as_of)).scalars())


def _live_on(row, as_of: date, claimed: set[int]) -> bool:
    """Live on `as_of`: not closed by then and not in a claim by then (today's status says only
    how the loan stands now; an earlier `as_of` sees loans since repaid or defaulted)."""
    if row.id in claimed:
        return False
    return row.status != "closed" or (row.closed_on is not None and row.closed_on > as_of)


def _ip(value: str | None) -> Decimal | None:
    return Decimal(value) if value else None


def _years_to(as_of: date, maturity: date) -> int:
    """Simulated years in which the loan is at risk: its maturity is after the year's start.
    A loan already past maturity but active is at risk in year 1 (it is overdue)."""
    days = (maturity - as_of).days
    return max(1, math.ceil(days / 365))


def _outstanding_on(conn: Connection, program_id: int, as_of: date) -> dict[int, int]:
    query = (select(accounts.c.loan_id, func.sum(postings.c.amount_fen))
             .select_from(postings).join(entries, entries.c.id == postings.c.entry_id)
             .join(accounts, accounts.c.id == postings.c.account_id)
             .join(loans, loans.c.id == accounts.c.loan_id)
             .where(loans.c.program_id == program_id, accounts.c.purpose == "loans_receivable",
                    entries.c.effective_on <= as_of)
             .group_by(accounts.c.loan_id))
    return {loan_id: int(fen) for loan_id, fen in conn.execute(query)}


def _fund_on(conn: Connection, program_id: int, as_of: date) -> tuple[int, int]:
    """The fund's balance on `as_of` and what flowed in over the twelve months before it."""
    code = chart.program_fund(program_id).code
    year_ago = as_of - timedelta(days=365)
    inflow = func.sum(postings.c.amount_fen).filter(and_(postings.c.amount_fen > 0,
                                                         entries.c.effective_on > year_ago))
    row = conn.execute(
        select(func.coalesce(func.sum(postings.c.amount_fen), 0), func.coalesce(inflow, 0))
        .select_from(postings).join(entries, entries.c.id == postings.c.entry_id)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(accounts.c.code == code, entries.c.effective_on <= as_of)).one()
    return int(row[0]), int(row[1])


def _owed_before(conn: Connection, program_id: int, as_of: date) -> dict[str, int]:
    rows = conn.execute(
        select(institutions.c.code, func.sum(claim_shares.c.amount_fen))
        .select_from(claim_shares).join(claims, claims.c.id == claim_shares.c.claim_id)
        .join(institutions, institutions.c.id == claim_shares.c.institution_id)
        .where(claims.c.program_id == program_id, claims.c.status == "open",
               claims.c.classified_on <= as_of)
        .group_by(institutions.c.code))
    return {code_: int(fen) for code_, fen in rows}


def with_new_lending(book: Book, lending: Sequence[tuple[int, int]], years: int) -> Book:
    """The book plus hypothetical loans: each year's amount split (largest remainder) into
    loans of the book's mean size, with its median term and IP share, the latest terms, new
    borrowers, the banks in turn. They are at risk from the year they start."""
    lending = [(year, amount) for year, amount in lending if amount > 0 and year <= years]
    if not lending:
        return book
    n = book.size
    size = int(book.original_fen.mean()) if n else NEW_LOAN_DEFAULT_FEN
    term = int(np.median(book.last_year)) if n else 1
    shares = sorted(s for s in book.ip_share if s is not None)
    ip = shares[len(shares) // 2] if shares else Decimal(1)
    banks = max(1, int(book.bank.max()) + 1 if n else 1)
    new: list[tuple[int, int]] = []
    for year, amount in lending:
        count = max(1, -(-amount // size))  # rounded up: no hypothetical loan above the mean size
        new += [(year, part) for part in allocate(amount, [1] * count)]
    m = len(new)
    first = np.array([year for year, _ in new], dtype=np.int64)
    principal = np.array([fen for _, fen in new], dtype=np.int64)
    next_borrower = int(book.borrower.max()) + 1 if n else 0
    return replace(
        book,
        loan_id=np.concatenate([book.loan_id, -np.arange(1, m + 1, dtype=np.int64)]),
        outstanding_fen=np.concatenate([book.outstanding_fen, principal]),
        original_fen=np.concatenate([book.original_fen, principal]),
        ip_share=book.ip_share + [ip] * m, before_fen=book.before_fen + [0] * m,
        first_year=np.concatenate([book.first_year, first]),
        last_year=np.concatenate([book.last_year, first + term - 1]),
        borrower=np.concatenate([book.borrower, next_borrower + np.arange(m, dtype=np.int64)]),
        bank=np.concatenate([book.bank, np.arange(m, dtype=np.int64) % banks]),
        sme=np.concatenate([book.sme, np.ones(m, dtype=bool)]),
        version=np.concatenate([book.version, np.full(m, len(book.versions) - 1, dtype=np.int64)]),
        portfolio_loans=book.portfolio_loans + [(year, fen, ip, 0) for year, fen in new])


# --- the static part of every claim (same per scenario) -----------------------------------

@dataclass
class PartyArrays:
    """One institution's rule inputs per loan (zero share where its loan's terms omit it)."""

    institution: str
    role: str
    rounded_fen: np.ndarray
    per_claim: np.ndarray
    per_borrower_year: np.ndarray | None
    per_bank_year: np.ndarray | None
    per_program_year: np.ndarray | None
    portfolio_cap: np.ndarray | None    # (years, versions)
    fund: np.ndarray | None             # bool per loan: its terms cap this party by the fund
    refills_fund: np.ndarray            # bool per loan: its recoveries go back to the fund
    redirected: np.ndarray              # bool per loan: its terms send this party's recoveries elsewhere


@dataclass
class Plan:
    book: Book
    loss_fen: np.ndarray
    parties: list[PartyArrays]
    threshold: np.ndarray               # inverse-normal(pd) per loan


def prepare(book: Book, a: Assumptions) -> Plan:
    """Per loan, what `ledger.sharing` computes before any cap that depends on other claims."""
    n, years = book.size, a.years
    names: dict[str, str] = {}
    for terms in book.versions:
        for party in terms.parties:
            names.setdefault(party.institution, party.role)
    index = {name: i for i, name in enumerate(names)}
    rounded = np.zeros((len(names), n), dtype=np.int64)
    for i in range(n):
        terms = book.versions[book.version[i]]
        loan = sharing.LoanFacts(int(book.original_fen[i]), int(book.outstanding_fen[i]),
                                 book.ip_share[i], book.before_fen[i])
        covered, _ = sharing.covered_amount(terms.coverage, loan)
        ratios = [party.ratio_for(loan.original_principal_fen) for party in terms.parties]
        shares, _bank = sharing.rounded_shares(loan.loss_base_fen, covered, ratios)
        for party, fen in zip(terms.parties, shares):
            rounded[index[party.institution], i] = fen
    parties = [_party_arrays(book, name, role, rounded[index[name]], years) for name, role in names.items()]
    pd_by_class = {sme: float(a.pd_for(sme)) for sme in (True, False)}
    threshold = np.array([_threshold(pd_by_class[bool(s)]) for s in book.sme], dtype=np.float64)
    return Plan(book, book.outstanding_fen.copy(), parties, threshold)


def _threshold(pd: float) -> float:
    if pd <= 0:
        return -np.inf
    if pd >= 1:
        return np.inf
    return NormalDist().inv_cdf(pd)


def _party_arrays(book: Book, name: str, role: str, rounded: np.ndarray, years: int) -> PartyArrays:
    by_version = [terms.party(name) for terms in book.versions]

    def per_loan(pick) -> np.ndarray | None:
        values = [None if p is None else pick(p) for p in by_version]
        if all(v is None for v in values):
            return None
        table = np.array([NO_LIMIT if v is None else v for v in values], dtype=np.int64)
        return table[book.version]

    portfolio = None
    if any(p is not None and p.caps.portfolio_cap_rate is not None for p in by_version):
        portfolio = np.full((years, len(by_version)), NO_LIMIT, dtype=np.int64)
        for v, party in enumerate(by_version):
            if party is None or party.caps.portfolio_cap_rate is None:
                continue
            rate = Fraction(party.caps.portfolio_cap_rate)
            coverage = book.versions[v].coverage
            for year in range(1, years + 1):
                base = sharing.portfolio_weight(coverage, party, [
                    (fen, ip, spent) for first, fen, ip, spent in book.portfolio_loans if first <= year])
                portfolio[year - 1, v] = sharing.portfolio_cap_fen(rate.numerator, rate.denominator,
                                                                   base.numerator, base.denominator)
    fund = None
    if any(p is not None and p.caps.fund_balance for p in by_version):
        fund = np.array([p is not None and p.caps.fund_balance for p in by_version])[book.version]
    refills = np.array([p is not None and p.caps.fund_balance and p.recoveries_to is None
                        for p in by_version])[book.version]
    redirected = np.array([p is not None and p.recoveries_to is not None for p in by_version])[book.version]
    return PartyArrays(
        name, role, rounded,
        per_claim=_or_no_limit(per_loan(lambda p: p.caps.per_claim_fen), book.size),
        per_borrower_year=per_loan(lambda p: p.caps.per_borrower_year_fen),
        per_bank_year=per_loan(lambda p: p.caps.per_bank_year_fen),
        per_program_year=per_loan(lambda p: p.caps.per_program_year_fen),
        portfolio_cap=portfolio, fund=fund, refills_fund=refills, redirected=redirected)


def _or_no_limit(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, NO_LIMIT, dtype=np.int64) if values is None else values


# --- largest remainder on rows (ledger.money.allocate, vectorised) ---------------------------

def allocate_rows(totals_fen: np.ndarray, weights_fen: np.ndarray) -> np.ndarray:
    """Row by row what `allocate(total, weights)` gives, for non-negative int64 weights with a
    positive sum per row: floor(total x w / sum), then the fen left to the largest remainders,
    ties to the earlier column. Products that could pass int64 are done in Python ints."""
    sums = weights_fen.sum(axis=1)
    assert (sums > 0).all() and (weights_fen >= 0).all() and (totals_fen >= 0).all()
    big = int(totals_fen.max(initial=0)) * int(weights_fen.max(initial=0)) >= 2**62
    t = totals_fen.astype(object) if big else totals_fen
    w = weights_fen.astype(object) if big else weights_fen
    products = t[:, None] * w
    parts = (products // sums[:, None]).astype(np.int64)
    remainders = (products % sums[:, None]).astype(np.int64)  # < the row's sum: fits int64
    left = totals_fen - parts.sum(axis=1)
    columns = np.broadcast_to(np.arange(weights_fen.shape[1]), weights_fen.shape)
    order = np.lexsort((columns, -remainders), axis=-1)
    extra = (columns < left[:, None]).astype(np.int64)  # the first `left` in remainder order
    np.put_along_axis(parts, order, extra + np.take_along_axis(parts, order, axis=-1), axis=-1)
    return parts


# --- the simulation ----------------------------------------------------------------------

@dataclass
class Outcome:
    """Per-scenario figures of one run (arrays of length `scenarios`)."""

    owed_fen: dict[str, np.ndarray]
    recovered_fen: dict[str, np.ndarray]
    bank_retained_fen: np.ndarray
    bank_recovered_fen: np.ndarray
    cuts_fen: dict[str, np.ndarray]          # by cap, all parties
    fund_payout_fen: np.ndarray
    exhausted_in_year: np.ndarray            # (scenarios, years) bool
    uncovered_claims: np.ndarray
    claims: np.ndarray
    events: list | None = None


def simulate(plan: Plan, a: Assumptions, contribution_fen: int,
             progress: Callable[[float], None] | None = None, keep_events: bool = False) -> Outcome:
    blocks = np.random.SeedSequence(a.seed).spawn(-(-a.scenarios // BLOCK_SCENARIOS))
    sizes = [min(BLOCK_SCENARIOS, a.scenarios - i * BLOCK_SCENARIOS) for i in range(len(blocks))]
    per_chunk = max(1, _chunk_scenarios(plan) // BLOCK_SCENARIOS)
    parts: list[Outcome] = []
    for start in range(0, len(blocks), per_chunk):
        chunk = list(zip(blocks[start:start + per_chunk], sizes[start:start + per_chunk]))
        parts.append(_simulate_chunk(plan, a, chunk, contribution_fen, keep_events))
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(blocks)))
    return _concatenate(parts)


def _chunk_scenarios(plan: Plan) -> int:
    n = max(1, plan.book.size)
    borrowers = int(plan.book.borrower.max()) + 1 if plan.book.size else 1
    per_scenario = n * 48 + 8 * borrowers * len(plan.parties) * 2
    return max(BLOCK_SCENARIOS, MEMORY_BUDGET_BYTES // per_scenario)


class _State:
    """What the chunk's claims so far used of every shared cap (the `cap_usage` rows)."""

    def __init__(self, plan: Plan, s: int, years: int):
        book = plan.book
        self.borrowers = int(book.borrower.max()) + 1 if book.size else 1
        self.banks = int(book.bank.max()) + 1 if book.size else 1
        self.all_owed = {p.institution: np.full(s, plan.book.owed_before_fen.get(p.institution, 0),
                                                dtype=np.int64) for p in plan.parties}
        self.refill = np.zeros((s, years + 2), dtype=np.int64)
        self.s = s

    def new_year(self, plan: Plan) -> None:
        s = self.s
        self.by_used = {p.institution: np.zeros((s, self.borrowers), dtype=np.int64)
                        for p in plan.parties if p.per_borrower_year is not None}
        self.bank_used = {p.institution: np.zeros((s, self.banks), dtype=np.int64)
                          for p in plan.parties if p.per_bank_year is not None}
        self.year_used = {p.institution: np.zeros(s, dtype=np.int64) for p in plan.parties}


def _simulate_chunk(plan: Plan, a: Assumptions, chunk, contribution_fen: int, keep_events: bool) -> Outcome:
    book, years = plan.book, a.years
    s, n = sum(size for _, size in chunk), book.size
    rngs = [np.random.default_rng(seed) for seed, _ in chunk]
    rho = float(a.asset_correlation)
    state = _State(plan, s, years)
    names = [p.institution for p in plan.parties]
    out = Outcome(owed_fen={p: np.zeros(s, dtype=np.int64) for p in names},
                  recovered_fen={p: np.zeros(s, dtype=np.int64) for p in names},
                  bank_retained_fen=np.zeros(s, dtype=np.int64), bank_recovered_fen=np.zeros(s, dtype=np.int64),
                  cuts_fen={cap: np.zeros(s, dtype=np.int64) for cap in sharing.CAP_ORDER},
                  fund_payout_fen=np.zeros(s, dtype=np.int64),
                  exhausted_in_year=np.zeros((s, years), dtype=bool),
                  uncovered_claims=np.zeros(s, dtype=np.int64), claims=np.zeros(s, dtype=np.int64),
                  events=[[] for _ in range(s)] if keep_events else None)
    alive = np.ones((s, n), dtype=bool)
    for year in range(1, years + 1):
        # Draws: a fixed sequence per block, so chunking never changes a scenario.
        z = np.concatenate([rng.standard_normal(size) for rng, (_, size) in zip(rngs, chunk)])
        e = np.concatenate([rng.standard_normal((size, n)) for rng, (_, size) in zip(rngs, chunk)])
        r = np.concatenate([rng.standard_normal((size, n)) for rng, (_, size) in zip(rngs, chunk)])
        at_risk = alive & ((book.first_year <= year) & (book.last_year >= year))[None, :]
        latent = math.sqrt(rho) * z[:, None] + math.sqrt(1 - rho) * e
        defaults = at_risk & (latent < plan.threshold[None, :])
        alive &= ~defaults
        rows, cols = np.nonzero(defaults)  # row-major: each scenario's claims in loan order
        fund_fen = book.fund_balance_fen + contribution_fen * year + state.refill[:, :year + 1].sum(axis=1)
        owed = _split_year(plan, state, year, rows, cols, fund_fen, out)
        _recover(plan, a, state, year, rows, cols, owed, r[rows, cols], out)
        if keep_events:
            for i in range(len(rows)):
                out.events[rows[i]].append((year, int(book.loan_id[cols[i]]),
                                            {p: int(owed[p][i]) for p in names}))
    return out


def _split_year(plan: Plan, state: _State, year: int, rows: np.ndarray, cols: np.ndarray,
                fund_fen: np.ndarray, out: Outcome) -> dict[str, np.ndarray]:
    """Split one year's claims: the m-th claim of every scenario at once, m = 0, 1, ..."""
    book = plan.book
    state.new_year(plan)
    counts = np.bincount(rows, minlength=state.s)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    order = np.argsort(rank, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rank))]) if len(rows) else [0]
    owed = {p.institution: np.zeros(len(rows), dtype=np.int64) for p in plan.parties}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        at = order[lo:hi]
        r, n = rows[at], cols[at]  # one claim per scenario r: each row appears once here
        fund_cut = np.zeros(len(r), dtype=np.int64)
        for p in plan.parties:
            paid, cuts = _split_party(p, state, year, r, n, book, fund_fen)
            owed[p.institution][at] = paid
            for cap, cut in cuts:
                out.cuts_fen[cap][r] += cut
                if cap == "fund_balance":
                    fund_cut += cut
        out.exhausted_in_year[r, year - 1] |= fund_cut > 0
        out.uncovered_claims[r] += fund_cut > 0
    np.add.at(out.claims, rows, 1)
    return owed


def _split_party(p: PartyArrays, state: _State, year: int, r: np.ndarray, n: np.ndarray, book: Book,
                 fund_fen: np.ndarray):
    name = p.institution
    all_owed = state.all_owed[name]
    borrower, bank = book.borrower[n], book.bank[n]
    rooms = sharing.cap_rooms(
        p.per_claim[n],
        _pair(p.per_borrower_year, n, lambda: state.by_used[name][r, borrower]),
        _pair(p.per_bank_year, n, lambda: state.bank_used[name][r, bank]),
        _pair(p.per_program_year, n, lambda: state.year_used[name][r]),
        (None, 0) if p.portfolio_cap is None else (p.portfolio_cap[year - 1, book.version[n]], all_owed[r]),
        (None, 0) if p.fund is None else (np.where(p.fund[n], fund_fen[r], NO_LIMIT), all_owed[r]))
    paid, cuts = sharing.cuts_in_order(p.rounded_fen[n], rooms)
    if p.per_borrower_year is not None:
        state.by_used[name][r, borrower] += paid
    if p.per_bank_year is not None:
        state.bank_used[name][r, bank] += paid
    state.year_used[name][r] += paid
    all_owed[r] += paid
    return paid, cuts


def _pair(limits: np.ndarray | None, n: np.ndarray, used):
    return (None, 0) if limits is None else (limits[n], used())


def _recover(plan: Plan, a: Assumptions, state: _State, year: int, rows: np.ndarray, cols: np.ndarray,
             owed: dict[str, np.ndarray], draws: np.ndarray, out: Outcome) -> None:
    """Book this year's claims' totals and their recoveries (arriving `delay` years later)."""
    loss = plan.loss_fen[cols]
    paid = sum((owed[p.institution] for p in plan.parties), np.zeros(len(rows), dtype=np.int64))
    retained = loss - paid
    assert (retained >= 0).all(), "shares never exceed the loss base"
    for p in plan.parties:
        np.add.at(out.owed_fen[p.institution], rows, owed[p.institution])
        if p.fund is not None:
            np.add.at(out.fund_payout_fen, rows, np.where(p.fund[cols], owed[p.institution], 0))
    np.add.at(out.bank_retained_fen, rows, retained)
    arrives = year + a.recovery_delay_years
    if arrives > a.years or not len(rows) or a.recovery_rate <= 0:
        return
    # The drawn rate is a probability-like figure: clipped to [0, 1], then whole basis points,
    # and the recovered amount rounded down (no fen counted that was not received).
    rate = float(a.recovery_rate) + float(a.recovery_rate_sd) * draws
    bp = np.rint(np.clip(rate, 0.0, 1.0) * BASIS_POINTS).astype(np.int64)
    recovered = loss * bp // BASIS_POINTS
    weights = np.stack([owed[p.institution] for p in plan.parties] + [retained], axis=1)
    back = allocate_rows(recovered, weights)
    for i, p in enumerate(plan.parties):
        # A part the terms send elsewhere (a pool's, to the treasury) does not lower its loss.
        np.add.at(out.recovered_fen[p.institution], rows, np.where(p.redirected[cols], 0, back[:, i]))
        np.add.at(state.refill[:, arrives + 1], rows, np.where(p.refills_fund[cols], back[:, i], 0))
    np.add.at(out.bank_recovered_fen, rows, back[:, -1])


def _concatenate(parts: list[Outcome]) -> Outcome:
    def cat(pick):
        return np.concatenate([pick(o) for o in parts])
    first = parts[0]
    return Outcome(
        owed_fen={p: cat(lambda o: o.owed_fen[p]) for p in first.owed_fen},
        recovered_fen={p: cat(lambda o: o.recovered_fen[p]) for p in first.recovered_fen},
        bank_retained_fen=cat(lambda o: o.bank_retained_fen), bank_recovered_fen=cat(lambda o: o.bank_recovered_fen),
        cuts_fen={c: cat(lambda o: o.cuts_fen[c]) for c in first.cuts_fen},
        fund_payout_fen=cat(lambda o: o.fund_payout_fen),
        exhausted_in_year=np.concatenate([o.exhausted_in_year for o in parts]),
        uncovered_claims=cat(lambda o: o.uncovered_claims), claims=cat(lambda o: o.claims),
        events=None if first.events is None else [e for o in parts for e in o.events])


# --- results -----------------------------------------------------------------------------

def run(book: Book, a: Assumptions, progress: Callable[[float], None] | None = None) -> dict:
    """Simulate, summarise, and (with a target) find the contribution that meets it."""
    book = with_new_lending(book, a.new_lending, a.years)
    plan = prepare(book, a)
    contribution = (book.contributions_last_year_fen if a.annual_contribution_fen is None
                    else a.annual_contribution_fen)
    share = 1.0 if a.target_exhaustion_probability is None else 0.25
    outcome = simulate(plan, a, contribution, _scaled(progress, 0.0, share))
    results = summarise(plan, a, outcome, contribution)
    if a.target_exhaustion_probability is not None:
        results["contribution_for_target"] = contribution_for_target(
            plan, a, a.target_exhaustion_probability, _scaled(progress, share, 1.0))
    else:
        results["contribution_for_target"] = None
    if progress:
        progress(1.0)
    return results


def _scaled(progress, low: float, high: float):
    if progress is None:
        return None
    return lambda done: progress(low + (high - low) * done)


def exhaustion_probability(outcome: Outcome) -> Fraction:
    """Share of scenarios in which the fund ran dry at some point within the horizon."""
    return Fraction(int(outcome.exhausted_in_year.any(axis=1).sum()), len(outcome.claims))


def contribution_for_target(plan: Plan, a: Assumptions, target: Decimal,
                            progress: Callable[[float], None] | None = None) -> dict:
    """The smallest annual contribution (whole yuan) keeping exhaustion at or below `target`,
    by bisection; every probe uses the same seed, so probes differ only in the contribution."""
    def meets(contribution_fen: int) -> bool:
        return exhaustion_probability(simulate(plan, a, contribution_fen)) <= Fraction(target)

    # Enough to pay every fund share of every loan in year 1: the fund can never run dry then.
    most = sum(int(p.rounded_fen[p.fund].sum()) for p in plan.parties if p.fund is not None)
    most += sum(plan.book.owed_before_fen.values())
    low, high, probes = 0, _whole_yuan_up(max(most, 100)), 0
    if meets(low):
        high = low
    while high - low > max(100, high // 1000) and probes < MAX_PROBES:  # to 0.1% or one yuan
        middle = _whole_yuan_up((low + high) // 2)
        if middle >= high:
            break
        probes += 1
        if meets(middle):
            high = middle
        else:
            low = middle
        if progress:
            progress(probes / MAX_PROBES)
    return {"target": target, "annual_contribution_fen": high, "probes": probes}


def _whole_yuan_up(fen: int) -> int:
    return -(-fen // 100) * 100  # a contribution in whole yuan, rounded up to meet the target


def summarise(plan: Plan, a: Assumptions, o: Outcome, contribution_fen: int) -> dict:
    s = len(o.claims)
    exhausted_by = np.cumsum(o.exhausted_in_year, axis=1) > 0
    extra = sum(o.cuts_fen.values(), np.zeros(s, dtype=np.int64))
    return {
        "scenarios": s, "years": a.years, "loans": int(plan.book.size),
        "fund": {"balance_fen": plan.book.fund_balance_fen, "annual_contribution_fen": contribution_fen},
        "claims_mean": _mean_count(o.claims),
        "exhaustion_probability_by_year": [
            {"year": k + 1, "probability": _probability(int(exhausted_by[:, k].sum()), s)}
            for k in range(a.years)],
        "fund_payout": _distribution(o.fund_payout_fen),
        "fund_payout_histogram": histogram(o.fund_payout_fen),
        "party_loss": [{"institution": p.institution, "role": p.role,
                        **_expected_p99(o.owed_fen[p.institution] - o.recovered_fen[p.institution])}
                       for p in plan.parties],
        "bank_loss": _expected_p99(o.bank_retained_fen - o.bank_recovered_fen),
        "bank_extra_loss": _expected_p99(extra),
        "bank_extra_loss_by_cap": {cap: _mean_fen(o.cuts_fen[cap]) for cap in sharing.CAP_ORDER},
        "uncovered_claims_mean": _mean_count(o.uncovered_claims),
    }


def _mean_fen(values: np.ndarray) -> int:
    # The mean of whole fen, rounded half-even to a fen (the exact sum over the count).
    return round_fraction(Fraction(int(values.sum()), max(1, len(values))), ROUND_HALF_EVEN)


def _percentile_fen(sorted_values: np.ndarray, q: Fraction) -> int:
    """Nearest rank: the smallest simulated value with at least q of the scenarios at or below
    it (an amount that occurred, no interpolation between fen)."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return int(sorted_values[rank - 1])


def _distribution(values: np.ndarray) -> dict:
    ordered = np.sort(values)
    return {"mean": _mean_fen(values), "p50": _percentile_fen(ordered, Fraction(1, 2)),
            "p95": _percentile_fen(ordered, Fraction(95, 100)),
            "p99": _percentile_fen(ordered, Fraction(99, 100)), "max": int(ordered[-1])}


def _expected_p99(values: np.ndarray) -> dict:
    return {"expected": _mean_fen(values), "p99": _percentile_fen(np.sort(values), Fraction(99, 100))}


def _probability(count: int, total: int) -> Decimal:
    # Probabilities are not money: six places, half-even.
    return (Decimal(count) / Decimal(total)).quantize(PROBABILITY_PLACES, rounding=ROUND_HALF_EVEN)


def _mean_count(values: np.ndarray) -> Decimal:
    return _probability(int(values.sum()), max(1, len(values)))


HISTOGRAM_BINS = 20


def histogram(values: np.ndarray) -> list[dict]:
    """Fund payouts in HISTOGRAM_BINS equal whole-fen bins [from, to) from 0 to above the max."""
    top = int(values.max(initial=0))
    width = max(1, top // HISTOGRAM_BINS + 1)
    counts = np.bincount(values // width, minlength=HISTOGRAM_BINS)
    return [{"from": i * width, "to": (i + 1) * width, "count": int(c)} for i, c in enumerate(counts)]
