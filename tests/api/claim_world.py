"""The example claim as the claim readers' tests start from it (loss histories, reconciliation):
the example terms (docs/examples/programme.json) with fresh parties, a fund of 1,500,000.00, a
bank and a borrower in Tianhe, and a 5,000,000.00 loan (IP share 0.8) defaulted in full on
2026-06-01: insurer 1,000,000.00, pool 1,500,000.00, the bank retains 2,500,000.00."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger import programs
from ledger.claims import open_claim
from ledger.journal import SYSTEM
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, make_loan,
                             program_parties, tx)
from tests.ledger.test_claims_db import _institution_id

DEFAULTED_ON = date(2026, 6, 1)


@dataclass
class ClaimBook:
    codes: dict      # role -> institution code (insurer, pool, treasury, bank)
    ids: dict        # role -> institution id
    program: str
    borrower: str
    loan_id: int
    claim: dict

    def another_loan(self) -> int:
        return make_loan(self.ids["bank"], self.borrower, self.program)


def example_claim_book() -> ClaimBook:
    codes = program_parties()
    program = ProgramFactory(terms=api_terms(**codes)).code
    bank = InstitutionFactory(kind="bank", region="440100")
    borrower = BorrowerFactory(bank_id=bank.id, region="440106").facts.credit_code
    ids = {role: _institution_id(code) for role, code in codes.items()}
    codes["bank"], ids["bank"] = bank.code, bank.id
    tx(lambda conn: programs.contribute(conn, program, ids["pool"], 150_000_000, date(2025, 1, 2), SYSTEM))
    loan_id = make_loan(bank.id, borrower, program)
    claim = tx(lambda conn: open_claim(conn, loan_id, bank.id, DEFAULTED_ON, SYSTEM, overdue_days=93))
    return ClaimBook(codes, ids, program, borrower, loan_id, claim)
