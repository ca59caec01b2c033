"""`ipledger subsidies` as an operator runs it (a real process, a real SQLite file): draft with a
progress bar, approval refused for the drafting officer and given by another, post, list."""
from datetime import date

from ledger.db import make_engine
from ledger.journal import SYSTEM
from ledger.loans import record_repayment
from tests import factories
from tests.test_cli import ipledger


def _book_with_interest_paid(tmp_path):
    """A migrated SQLite file with one loan under a 40% interest subsidy, 100.00 interest paid in 2024."""
    ipledger(tmp_path, "db", "upgrade")
    factories.bind(make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}"))
    terms = factories.api_terms(**factories.program_parties())
    terms["subsidies"] = [{"kind": "interest", "method": "pct_of_paid", "pct": "0.40"}]
    program = factories.ProgramFactory(terms=terms)
    bank = factories.InstitutionFactory()
    borrower = factories.BorrowerFactory(bank_id=bank.id)
    loan_id = factories.make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
                                  start_date="2024-01-10", maturity_date="2026-01-10")
    factories.tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 2, 1), 0, 100_00, SYSTEM))
    return program


def test_run_approve_post_from_the_command_line(tmp_path):
    program = _book_with_interest_paid(tmp_path)
    bureau = factories.InstitutionFactory(kind="fiscal", region="440100")
    maker, checker = (factories.make_key("fiscal", bureau.code).split("_")[1] for _ in range(2))

    drafted = ipledger(tmp_path, "subsidies", "run", "--program", program.code, "--period", "2024", "--key", maker)
    assert "batch 1" in drafted.stdout and "draft, 1 lines" in drafted.stdout and "total 40.00" in drafted.stdout
    refused = ipledger(tmp_path, "subsidies", "approve", "1", "--key", maker, check=False)
    assert refused.returncode != 0 and "maker-checker" in refused.stderr
    assert "approved" in ipledger(tmp_path, "subsidies", "approve", "1", "--key", checker).stdout
    assert "posted" in ipledger(tmp_path, "subsidies", "post", "1", "--key", checker).stdout
    assert "batch 1" in ipledger(tmp_path, "subsidies", "list").stdout
    again = ipledger(tmp_path, "subsidies", "run", "--program", program.code, "--period", "2024",
                     "--bureau", bureau.code, check=False)
    assert again.returncode != 0 and "live" in again.stderr


def test_the_scheduler_job_and_its_runs_from_the_command_line(tmp_path):
    program = _book_with_interest_paid(tmp_path)
    factories.InstitutionFactory(kind="fiscal", region="440100")

    # Today is past 2025: 2024 and 2025 have ended; nothing was paid in 2025, so no batch for it.
    assert ipledger(tmp_path, "jobs", "run", "draft_subsidy_batches").stdout.strip() == "draft_subsidy_batches: 2"
    assert "batch 1 " in ipledger(tmp_path, "subsidies", "list").stdout
    assert "batch 2" not in ipledger(tmp_path, "subsidies", "list").stdout
    table = ipledger(tmp_path, "jobs", "runs", "--job", "draft_subsidy_batches").stdout.splitlines()
    assert table[0].split() == ["job", "period", "status", "started", "seconds", "counts", "detail"]
    first = table[1]
    assert f"{program.code}/2024" in first and "done" in first and "lines=1" in first and "total_fen=4000" in first
    assert len(table) == 3 and "nothing to pay" in table[2] and "batches=0" in table[2]
    assert ipledger(tmp_path, "jobs", "runs", "--status", "failed").stdout.splitlines()[1:] == []
