"""The backup and restore drill of docs/OPERATING.md, as an operator runs it: back up a populated
book (`ipledger db backup`), restore it into a new database, and prove with `ipledger verify
--expect` and `ipledger db fingerprint --compare` that nothing was lost: the restored chain head
equals the original's, every table has its rows and every account its balance."""
import json
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger import chain
from ledger.db import normalize_url
from ledger.loans import record_repayment
from tests.factories import SYSTEM, BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan, tx


def ipledger(url: str, *args, check=True):
    env = {**os.environ, "IPLEDGER_DATABASE_URL": url}
    result = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True,
                            text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _populate() -> None:
    program = ProgramFactory()
    for n in range(3):
        bank = InstitutionFactory()
        borrower = BorrowerFactory(bank_id=bank.id).facts.credit_code
        loan_id = make_loan(bank.id, borrower, program.code, principal="1000.00",
                            start_date="2025-01-10", maturity_date="2026-01-10")
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2025, 3, 1) + timedelta(days=n),
                                         10_000 * (n + 1), 500, SYSTEM))
    tx(chain.seal_pending)


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def restored_url(fresh_engine, tmp_path):
    """Back up the fresh engine's book and restore it into a new database; yields its URL."""
    _populate()
    backup = tmp_path / "book.backup"
    assert "backup written" in ipledger(_url(fresh_engine), "db", "backup", str(backup)).stdout
    if fresh_engine.dialect.name == "sqlite":
        yield f"sqlite:///{backup}"  # a SQLite backup is itself the restored database
        return
    name = f"ipl_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(_url(fresh_engine)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = make_url(_url(fresh_engine)).set(drivername="postgresql", database=name)
    libpq = target.render_as_string(hide_password=False)
    subprocess.run(["pg_restore", "--exit-on-error", "--no-owner", "--dbname", libpq, str(backup)],
                   check=True, capture_output=True, text=True)
    yield libpq
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_restored_backup_reproduces_the_head_every_table_and_every_balance(fresh_engine, restored_url, tmp_path):
    original = ipledger(_url(fresh_engine), "db", "fingerprint").stdout
    saved = tmp_path / "original.json"
    saved.write_text(original)
    head = json.loads(original)["head"]
    assert head and json.loads(original)["tables"]["loans"] == 3

    proof = ipledger(restored_url, "verify", "--no-seal", "--expect", head)
    assert json.loads(proof.stdout)["expect"]["extends"] is True
    compared = ipledger(restored_url, "db", "fingerprint", "--compare", str(saved))
    assert "reproduced" in compared.stderr and json.loads(compared.stdout) == json.loads(original)


def test_the_comparison_names_what_a_restore_lost(fresh_engine, restored_url, tmp_path):
    """The drill can fail: the original moves on after the backup, and the stale copy is caught."""
    _populate()
    saved = tmp_path / "later.json"
    saved.write_text(ipledger(_url(fresh_engine), "db", "fingerprint").stdout)
    compared = ipledger(restored_url, "db", "fingerprint", "--compare", str(saved), check=False)
    assert compared.returncode == 1
    for figure in ("head:", "tables.loans: 6 expected, 3 found", "balances_sha256:"):
        assert figure in compared.stderr
