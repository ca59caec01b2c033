"""`ipledger stress` as an operator runs it (a real process, a real SQLite file): a short text
report, the same figures for the same seed, JSON on request, bad assumptions refused."""
import json
from datetime import date

from ledger.db import make_engine
from ledger.journal import SYSTEM
from ledger import programs
from tests import factories
from tests.test_cli import ipledger


def test_stress_from_the_command_line(tmp_path):
    ipledger(tmp_path, "db", "upgrade")
    factories.bind(make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}"))
    parties = factories.program_parties()
    program = factories.ProgramFactory(terms=factories.api_terms(**parties))
    bank = factories.InstitutionFactory()
    for _ in range(3):
        borrower = factories.BorrowerFactory(bank_id=bank.id)
        factories.make_loan(bank.id, borrower.facts.credit_code, program.code, maturity_date="2029-12-31")
    from ledger.institutions import get_institution
    pool_id = factories.tx(lambda conn: get_institution(conn, parties["pool"]).id)
    factories.tx(lambda conn: programs.contribute(conn, program.code, pool_id, 1_000_000_00, date(2025, 1, 2), SYSTEM))
    args = ("stress", "--program", program.code, "--years", "3", "--scenarios", "500", "--pd", "0.2",
            "--rho", "0.3", "--as-of", "2026-01-01", "--contribution", "0", "--seed", "9")
    report = ipledger(tmp_path, *args).stdout
    assert "fund 1000000.00 yuan" in report and "fund exhausted by year: 1: " in report
    assert parties["pool"] in report and "banks: expected" in report
    full = json.loads(ipledger(tmp_path, *args, "--json").stdout)
    assert full == json.loads(ipledger(tmp_path, *args, "--json").stdout)  # same seed, same figures
    assert full["fund"]["balance"] == "1000000.00" and len(full["exhaustion_probability_by_year"]) == 3
    saved = ipledger(tmp_path, *args, "--json", "--save")  # stored, as the scheduler stores a POSTed run
    assert json.loads(saved.stdout) == full and "stored as stress test " in saved.stderr
    from ledger import stress_runs
    run_id = int(saved.stderr.split("stored as stress test ")[1].split(":")[0])
    run = factories.tx(lambda conn: stress_runs.get_run(conn, program.code, run_id))
    assert run["status"] == "done" and run["assumptions"]["seed"] == 9
    refused = ipledger(tmp_path, "stress", "--program", program.code, "--pd", "1.5", "--rho", "0.1", check=False)
    assert refused.returncode != 0 and "default_probability" in refused.stderr
    unknown = ipledger(tmp_path, "stress", "--program", "nope", "--pd", "0.1", "--rho", "0.1", check=False)
    assert unknown.returncode != 0 and "does not exist" in unknown.stderr
