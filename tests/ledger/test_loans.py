"""Loan invariants as properties: whatever sequence of repayments a bank posts (accepted or
refused), outstanding principal equals principal minus accepted principal repaid, the loan
closes exactly at zero, and the books stay balanced with an intact chain."""
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from ledger import chain
from ledger.errors import DomainError
from ledger.journal import SYSTEM
from ledger.loans import outstanding_fen, record_repayment
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan, tx

START = date(2024, 1, 10)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(principal_fen=st.integers(1, 10**9),
       payments=st.lists(st.tuples(st.integers(0, 4 * 10**8), st.integers(0, 10**6), st.integers(-3, 400)),
                         max_size=6))
def test_outstanding_is_principal_minus_repaid(engine, principal_fen, payments):
    bank = InstitutionFactory()
    loan_id = make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code,
                        principal=str(principal_fen // 100) + f".{principal_fen % 100:02d}",
                        start_date=START.isoformat(), maturity_date="2026-01-10")
    repaid, closed = 0, False
    for principal, interest, days in payments:
        try:
            tx(lambda conn: record_repayment(conn, loan_id, bank.id, START + timedelta(days=days),
                                             principal, interest, SYSTEM))
        except DomainError:
            continue  # refused: over the outstanding, before the start, empty, or closed
        assert not closed, "a closed loan accepted a repayment"
        repaid += principal
        closed = repaid == principal_fen
    assert tx(lambda conn: outstanding_fen(conn, [loan_id]))[loan_id] == principal_fen - repaid
    tx(chain.seal_pending)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact
