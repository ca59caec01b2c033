"""The subsidy computation over a real book (SQLite and PostgreSQL): the bulk reads see the
disbursement, repayments (full repayment ends the live days), interest and fees paid, and the
frozen facts; the result equals the per-loan reference over the same loans."""
from datetime import date

import pytest
from sqlalchemy import select

from ledger.errors import NotFound
from ledger.journal import SYSTEM
from ledger.loans import record_fee, record_repayment
from ledger.schema import programs
from ledger.subsidies import draft_lines, read_book
from ledger.terms import SubsidyRule
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan, tx
from tests.ledger.test_subsidies import PAID, as_tuples, check_same, loan, reference

START = date(2024, 1, 10)


def program_id(code):
    return tx(lambda conn: conn.execute(select(programs.c.id).where(programs.c.code == code)).scalar_one())


def test_draft_reads_the_book_in_bulk_and_agrees_with_the_reference(engine):
    bank, program = InstitutionFactory(), ProgramFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    first = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
                      start_date=START.isoformat(), maturity_date="2026-01-10")
    second = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="500.00",
                       start_date="2024-06-01", maturity_date="2026-06-01")
    tx(lambda conn: record_repayment(conn, first, bank.id, date(2024, 3, 1), 40_000, 1_234, SYSTEM))
    tx(lambda conn: record_repayment(conn, first, bank.id, date(2024, 7, 1), 60_000, 999, SYSTEM))
    tx(lambda conn: record_fee(conn, second, bank.id, "guarantee_fee", 777, date(2024, 5, 20), SYSTEM))
    pid = program_id(program.code)
    book = tx(lambda conn: read_book(conn, pid, date(2025, 1, 1)))
    assert list(book.loan_id) == [first, second]
    plain = [loan(first, borrower.id, START, 100_000, rate="0.0345", repayments=[
                 (date(2024, 3, 1), 40_000), (date(2024, 7, 1), 60_000)],
                  paid=[("interest", date(2024, 3, 1), 1_234), ("interest", date(2024, 7, 1), 999)]),
             loan(second, borrower.id, date(2024, 6, 1), 50_000, rate="0.0345",
                  paid=[("guarantee_fee", date(2024, 5, 20), 777)])]
    for p, (sme, private, revenue) in zip(plain, zip(book.sme, book.private, book.revenue_fen)):
        p.update(sme=bool(sme), private=bool(private), revenue=int(revenue))
    fee = SubsidyRule("guarantee_fee", "pct_of_paid", PAID.pct)
    rules = (PAID, fee, SubsidyRule("interest", "pct_of_reference_rate", PAID.pct, "LPR1Y", "month_before_start"))
    result = tx(lambda conn: draft_lines(conn, pid, rules, "2024"))
    # The reference uses its own LPR table: compare the LPR-free rules, and the live days.
    assert [t for t, x in zip(as_tuples(result), result.lines) if x.method == "pct_of_paid"] == reference(plain, list(rules[:2]), "2024")[0]
    ref_line = [x for x in result.lines if x.method == "pct_of_reference_rate" and x.loan_id == first][0]
    days_at_full = (date(2024, 3, 1) - START).days
    assert ref_line.basis_fen == 100_000 * days_at_full + 60_000 * (date(2024, 7, 1) - date(2024, 3, 1)).days
    check_same(plain, [PAID, fee], "2024")


def test_a_missing_lpr_month_is_an_error_naming_it(engine):
    bank, program = InstitutionFactory(), ProgramFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
              start_date=START.isoformat(), maturity_date="2026-01-10")
    december = SubsidyRule("interest", "pct_of_reference_rate", PAID.pct, "LPR1Y", "december_of_year")
    pid = program_id(program.code)
    with pytest.raises(NotFound, match="2025-12"):
        tx(lambda conn: draft_lines(conn, pid, (december,), "2025"))
