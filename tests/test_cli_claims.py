"""`ipledger claims show` and `ipledger verify` as an operator runs them (a real process, a real
SQLite file): a claim with a payment and a recovery, shown share by share; verify says the claim
records equal the journal, and exits 1 once a paid figure is tampered with."""
import json
from datetime import date

from sqlalchemy import text

from ledger import programs
from ledger.claim_payments import pay_claim
from ledger.claims import open_claim
from ledger.db import make_engine
from ledger.journal import SYSTEM
from ledger.recoveries import record_recovery
from tests import factories
from tests.ledger.test_claims_db import _institution_id
from tests.test_cli import ipledger


def test_show_a_claim_and_verify_its_books(tmp_path):
    ipledger(tmp_path, "db", "upgrade")
    factories.bind(make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}"))
    parties = factories.program_parties()
    program = factories.ProgramFactory(terms=factories.api_terms(**parties))
    bank = factories.InstitutionFactory()
    borrower = factories.BorrowerFactory(bank_id=bank.id)
    pool, insurer = _institution_id(parties["pool"]), _institution_id(parties["insurer"])
    factories.tx(lambda conn: programs.contribute(conn, program.code, pool, 150_000_000, date(2025, 1, 2), SYSTEM))
    loan_id = factories.make_loan(bank.id, borrower.facts.credit_code, program.code)
    claim = factories.tx(lambda conn: open_claim(conn, loan_id, bank.id, date(2026, 6, 1), SYSTEM, overdue_days=93))
    factories.tx(lambda conn: pay_claim(conn, claim["id"], insurer, 100_000_000, date(2026, 6, 10), "PICC-1", SYSTEM))
    factories.tx(lambda conn: record_recovery(conn, loan_id, bank.id, date(2026, 9, 1), 100_000_000, 0,
                                              "auction", "LOT-1", SYSTEM))

    shown = ipledger(tmp_path, "claims", "show", str(claim["id"])).stdout
    assert f"claim {claim['id']} on loan {loan_id}" in shown and ": open" in shown
    assert "paid 2026-06-10" in shown and "1000000.00 ref PICC-1" in shown
    assert f"{parties['pool']} 300000.00 -> {parties['treasury']}" in shown  # the redirect
    assert ipledger(tmp_path, "claims", "show", "999", check=False).returncode != 0

    proof = json.loads(ipledger(tmp_path, "verify").stdout)
    assert proof["claims_agree"] is True and proof["claim_breaks"] == []
    factories.tx(lambda conn: conn.execute(text("UPDATE claim_shares SET paid_fen = 0")))
    tampered = ipledger(tmp_path, "verify", check=False)
    assert tampered.returncode == 1 and "differ from the journal" in tampered.stderr
    assert json.loads(tampered.stdout)["claims_agree"] is False
