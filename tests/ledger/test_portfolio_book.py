"""The portfolio cap's cached base (ledger/portfolio_book.py) equals the full recomputation
(`direct_weight`: every loan read again in the claim's own transaction) on random books, with
backdated loans, several coverage terms and ratios, loans added between claims, a database made
again under one engine, two databases, the claim's own uncommitted (then rolled back) loans and,
on PostgreSQL, loans committed by others while a claim's transaction is open."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import loans as loan_domain
from ledger import portfolio_book, sharing
from ledger.db import downgrade_to, upgrade_to_head
from ledger.journal import SYSTEM
from ledger.schema import programs
from ledger.terms import Coverage, Party, PartyCaps, ShareTier
from tests import factories
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, loan_body, tx

FIRST_DAY = date(2024, 11, 1)
DAYS = 120  # a year boundary inside: the borrower-year limit restarts
PARTY = Party("P", "appraiser", Decimal("0.1"), caps=PartyCaps(portfolio_cap_rate=Decimal("0.3")))
TIERED = Party("T", "pool", Decimal("0.4"), share_tiers=(ShareTier(3_000_000_00, Decimal("0.4")),
                                                         ShareTier(None, Decimal("0.25"))))
COVERAGES = (Coverage(),
             Coverage("ip_part_only", True, Decimal("0.5"), 4_000_000_00, 6_000_000_00),
             Coverage("whole_loan", False, None, None, 7_000_000_00))

loan_shapes = st.tuples(st.integers(0, 2),                                  # borrower
                        st.integers(0, DAYS - 1),                           # start day
                        st.sampled_from([1_000_000_00, 3_000_000_00, 3_000_000_01, 5_000_000_00]),
                        st.sampled_from([None, "0.4", "0.8", "1"]))         # IP share


class Book:
    """A programme, one bank and three borrowers; loans added in batches, one transaction each."""

    def __init__(self):
        self.program = ProgramFactory()
        self.bank = InstitutionFactory()
        self.borrowers = [BorrowerFactory(bank_id=self.bank.id).facts.credit_code for _ in range(3)]
        self.id = tx(lambda conn: conn.execute(programs.select().where(
            programs.c.code == self.program.code)).one().id)

    def add(self, shapes, conn=None) -> list[int]:
        drafts = loan_domain.parse_loans([self.body(*shape) for shape in shapes])
        work = lambda c: loan_domain.create_loans(c, self.bank.id, drafts, SYSTEM, prefix="")  # noqa: E731
        return work(conn) if conn is not None else tx(work)

    def body(self, borrower, day, principal_fen, ip_share):
        start = FIRST_DAY + timedelta(days=day)
        return loan_body(self.borrowers[borrower], self.program.code, principal=f"{principal_fen / 100:.2f}",
                         start_date=start.isoformat(), maturity_date="2027-12-31", ip_share=ip_share)


def day(n: int) -> date:
    return FIRST_DAY + timedelta(days=n)


def both(conn, book: Book, coverage: Coverage, party: Party, on: date) -> tuple[Fraction, Fraction]:
    """(the cached figure, the full recomputation) in one transaction."""
    return (portfolio_book.portfolio_weight(conn, book.id, coverage, party, on),
            portfolio_book.direct_weight(conn, book.id, coverage, party, on))


def agree(book: Book, coverage: Coverage, party: Party, on: date) -> Fraction:
    fast, slow = tx(lambda conn: both(conn, book, coverage, party, on))
    assert fast == slow
    return fast


@given(prefix=st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10**9), st.sampled_from([None, Decimal("0.6")]),
                                 st.integers(0, 10**9)), max_size=12),
       coverage=st.sampled_from(COVERAGES), party=st.sampled_from([PARTY, TIERED]))
def test_the_prefix_weights_are_the_weights_of_each_prefix(prefix, coverage, party):
    rows = [(principal + 1, ip, before) for _, principal, ip, before in prefix]
    assert sharing.portfolio_weight_prefix(coverage, party, rows) == [
        sharing.portfolio_weight(coverage, party, rows[:k]) for k in range(len(rows) + 1)]


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=st.lists(st.lists(loan_shapes, min_size=1, max_size=5), min_size=1, max_size=3),
       probes=st.lists(st.tuples(st.integers(0, DAYS + 5), st.sampled_from(COVERAGES),
                                 st.sampled_from([PARTY, TIERED])), min_size=1, max_size=4))
def test_the_cached_weight_equals_the_full_recomputation_as_loans_arrive_in_any_order(engine, batches, probes):
    # Batches come in any start order: a later batch's loans are often backdated, and change the
    # borrower-year limit left to loans already in the cache.
    book = Book()
    for batch in batches:
        book.add(batch)
        for n, coverage, party in probes:
            agree(book, coverage, party, day(n))


def test_a_backdated_loan_spends_the_borrower_year_limit_of_a_cached_later_loan(engine):
    coverage = Coverage(max_covered_principal_per_borrower_year_fen=6_000_000_00)
    book = Book()
    book.add([(0, 40, 5_000_000_00, "1")])
    assert agree(book, coverage, PARTY, day(60)) == Fraction(5_000_000_00) / 10
    book.add([(0, 10, 5_000_000_00, "1")])  # started earlier: the later loan keeps 1,000,000 of cover
    assert agree(book, coverage, PARTY, day(60)) == Fraction(6_000_000_00) / 10
    assert agree(book, coverage, PARTY, day(20)) == Fraction(5_000_000_00) / 10


def test_loans_started_after_the_claim_day_do_not_invalidate_it(engine, monkeypatch):
    book = Book()
    book.add([(0, 5, 1_000_000_00, "1")])
    agree(book, Coverage(), PARTY, day(10))
    book.add([(1, 50, 1_000_000_00, "1")])
    builds = []
    monkeypatch.setattr(portfolio_book, "_build", _counting(portfolio_book._build, builds))
    assert agree(book, Coverage(), PARTY, day(10)) == Fraction(1_000_000_00) / 10
    assert builds == []  # the cached book's count by day 10 is still right
    assert agree(book, Coverage(), PARTY, day(60)) == Fraction(2_000_000_00) / 10
    assert len(builds) == 1


def test_the_claims_own_uncommitted_loans_count_and_never_reach_the_cache(engine):
    book = Book()
    book.add([(0, 5, 1_000_000_00, "1")])
    agree(book, Coverage(), PARTY, day(10))

    def add_then_fail(conn):
        book.add([(1, 6, 2_000_000_00, "1")], conn)
        fast, slow = both(conn, book, Coverage(), PARTY, day(10))
        assert fast == slow == Fraction(3_000_000_00) / 10  # its own loan counts for its own claim
        raise RuntimeError("rolled back")
    with pytest.raises(RuntimeError):
        tx(add_then_fail)
    # A loan of another shape, same count (SQLite reuses the rolled-back id): not the lost one.
    book.add([(2, 7, 5_000_000_00, "1")])
    assert agree(book, Coverage(), PARTY, day(10)) == Fraction(6_000_000_00) / 10


def test_a_database_made_again_under_the_same_engine_is_not_mistaken_for_the_old(fresh_engine):
    figures = []
    for principal_fen in (1_000_000_00, 3_000_000_00):  # the same ids in both, other principals
        book = Book()
        book.add([(0, 5, principal_fen, "1")])
        figures.append(agree(book, Coverage(), PARTY, day(10)))
        downgrade_to(fresh_engine, "base")
        upgrade_to_head(fresh_engine)
    assert figures == [Fraction(1_000_000_00) / 10, Fraction(3_000_000_00) / 10]


def test_two_fresh_databases_with_the_same_ids_keep_their_own_books(fresh_engine, databases):
    other = databases.create()
    try:
        here = Book()
        here.add([(0, 5, 1_000_000_00, "1")])
        assert agree(here, Coverage(), PARTY, day(10)) == Fraction(1_000_000_00) / 10
        factories.bind(other)
        there = Book()  # the same programme and loan ids as `here`, another principal
        there.add([(0, 5, 5_000_000_00, "1")])
        assert there.id == here.id
        assert agree(there, Coverage(), PARTY, day(10)) == Fraction(5_000_000_00) / 10
        factories.bind(fresh_engine)
        assert agree(here, Coverage(), PARTY, day(10)) == Fraction(1_000_000_00) / 10
    finally:
        factories.bind(fresh_engine)
        databases.drop(other)


def test_loans_committed_by_others_during_a_claims_transaction_count_on_postgresql(engine, backend):
    if backend != "postgres":
        pytest.skip("concurrent commits: SQLite has one writer, and the claim holds it")
    book = Book()
    book.add([(0, 5, 1_000_000_00, "1")])
    agree(book, Coverage(), PARTY, day(10))

    def claim(conn):
        first = both(conn, book, Coverage(), PARTY, day(10))
        book.add([(1, 6, 2_000_000_00, "1")])  # another transaction, committed now
        # READ COMMITTED: the claim's next statement sees the new loan, and so must the figure.
        return first, both(conn, book, Coverage(), PARTY, day(10))
    first, then = tx(claim)
    assert first == (Fraction(1_000_000_00) / 10,) * 2
    assert then == (Fraction(3_000_000_00) / 10,) * 2


def test_a_loan_with_a_lower_id_committed_later_is_counted_on_postgresql(engine, backend):
    if backend != "postgres":
        pytest.skip("out-of-order commits: PostgreSQL")
    book = Book()
    book.add([(0, 5, 1_000_000_00, "1")])
    with engine.connect() as slow:
        with slow.begin():
            book.add([(1, 6, 2_000_000_00, "1")], slow)  # takes the lower id, commits last
            book.add([(2, 7, 4_000_000_00, "1")])
            assert agree(book, Coverage(), PARTY, day(10)) == Fraction(5_000_000_00) / 10
    assert agree(book, Coverage(), PARTY, day(10)) == Fraction(7_000_000_00) / 10


def test_without_the_cache_claims_are_the_same(engine, monkeypatch):
    """Open the same claims with the cache and without it (always `direct_weight`)."""
    from tests.ledger.test_claims_db import default, loan_in, world

    def run():
        w = world(fund_yuan=0, change=lambda t: t["parties"].append(
            {"institution": InstitutionFactory(kind="appraiser").code, "role": "appraiser", "share": "0.05",
             "caps": {"portfolio_cap_rate": "0.06"}}))
        ids = [loan_in(w, start_date=start) for start in ("2025-03-01", "2025-01-05", "2025-02-01")]
        made = [default(w, ids[0])]
        ids.append(loan_in(w, start_date="2024-12-01"))  # backdated, after a claim
        made += [default(w, loan_id) for loan_id in ids[1:]]
        return [[(s["computed_fen"], s["amount_fen"], s["cuts"]) for s in claim["shares"]] for claim in made]
    cached = run()
    monkeypatch.setattr(portfolio_book, "_cacheable", lambda conn: False)
    assert run() == cached
    assert any(cut["cap"] == "portfolio" for claim in cached for share in claim for cut in share[2])


def _counting(fn, calls: list):
    def counted(*args):
        calls.append(args)
        return fn(*args)
    return counted


def test_a_claim_with_no_loan_added_since_reads_no_loans(engine, monkeypatch):
    book = Book()
    book.add([(0, 5, 1_000_000_00, "1"), (1, 6, 2_000_000_00, "0.8")])
    reads = []
    monkeypatch.setattr(portfolio_book, "loans_started_by", _counting(portfolio_book.loans_started_by, reads))
    weigh = lambda: tx(lambda conn: portfolio_book.portfolio_weight(conn, book.id, Coverage(), PARTY, day(10)))  # noqa: E731
    assert weigh() == Fraction(3_000_000_00) / 10 and len(reads) == 1  # the book read once
    assert weigh() == Fraction(3_000_000_00) / 10 and len(reads) == 1  # then one count per claim
