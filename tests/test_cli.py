"""The `ipledger` command line, run as a user would (a real process, a real SQLite file)."""
import json
import os
import subprocess
import sys

import pytest


def ipledger(tmp_path, *args, check=True):
    env = {**os.environ, "IPLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    result = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_first_run_keys_and_verify(tmp_path):
    assert "head" in ipledger(tmp_path, "db", "upgrade").stdout
    admin_key = ipledger(tmp_path, "keys", "create", "--role", "admin").stdout.strip().splitlines()[-1]
    assert admin_key.startswith("ipl_")
    ipledger(tmp_path, "institutions", "create", "ICBC-GZ", "ICBC Guangzhou", "--kind", "bank",
             "--region", "440100")
    bank_key = ipledger(tmp_path, "keys", "create", "--institution", "ICBC-GZ", "--role", "bank"
                        ).stdout.strip().splitlines()[-1]
    assert bank_key.startswith("ipl_") and bank_key != admin_key
    listed = ipledger(tmp_path, "keys", "list").stdout
    assert "ICBC-GZ" in listed and bank_key not in listed  # secrets are never shown again
    ipledger(tmp_path, "keys", "revoke", bank_key.split("_")[1])
    assert "revoked" in ipledger(tmp_path, "keys", "list").stdout
    result = json.loads(ipledger(tmp_path, "verify").stdout)
    assert result["balanced"] and result["chain_intact"]


def test_verify_prints_the_head_and_proves_extension(tmp_path):
    from datetime import date
    from ledger.db import make_engine
    from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
    from tests import factories
    ipledger(tmp_path, "db", "upgrade")
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    factories.bind(engine)

    def post_one():
        bank = factories.InstitutionFactory()
        specs = [AccountSpec(factories.unique("k"), "k", kind, "test", institution_id=bank.id)
                 for kind in ("asset", "equity")]
        ids = list(factories.tx(lambda conn: ensure_accounts(conn, specs)).values())
        factories.tx(lambda conn: post_entry(conn, EntryDraft("test", date(2025, 1, 1),
                                                              (Line(ids[0], 5), Line(ids[1], -5)))))
    post_one()
    first = ipledger(tmp_path, "verify")
    head = json.loads(first.stdout)["head"]
    assert head["seq"] == 1 and f"head 1:{head['hash']}" in first.stderr
    post_one()
    extended = json.loads(ipledger(tmp_path, "verify", "--expect", f"1:{head['hash']}").stdout)
    assert extended["expect"]["extends"] and extended["head"]["seq"] == 2
    wrong = ipledger(tmp_path, "verify", "--expect", f"1:{'0' * 64}", check=False)
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["expect"]["extends"] is False
    assert "does not extend" in wrong.stderr
    malformed = ipledger(tmp_path, "verify", "--expect", "1:abc", check=False)
    assert malformed.returncode == 2 and "SEQ:HASH" in malformed.stderr
    engine.dispose()


def test_revoking_needs_the_whole_prefix_and_says_why(tmp_path):
    """Defect: `keys revoke 40` said 'no active key with prefix 40' though two keys start with 40."""
    from ledger.db import make_engine, run_in_transaction
    from ledger.keys import create_key
    ipledger(tmp_path, "db", "upgrade")
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    # 17 random prefixes: two of them share a first hex digit (pigeonhole).
    prefixes = run_in_transaction(engine, lambda conn: [create_key(conn, "admin")[0] for _ in range(17)])
    engine.dispose()
    shared = next(p[0] for p in prefixes if sum(q[0] == p[0] for q in prefixes) > 1)
    ambiguous = ipledger(tmp_path, "keys", "revoke", shared, check=False)
    assert ambiguous.returncode != 0 and "too short and ambiguous" in ambiguous.stderr
    assert all(p in ambiguous.stderr for p in prefixes if p.startswith(shared))
    one = prefixes[0][:6]
    if sum(p.startswith(one) for p in prefixes) == 1:
        short = ipledger(tmp_path, "keys", "revoke", one, check=False)
        assert short.returncode != 0 and f"too short: give the whole prefix ({prefixes[0]}" in short.stderr
    assert "revoked" in ipledger(tmp_path, "keys", "revoke", prefixes[0]).stdout
    assert "no active key" in ipledger(tmp_path, "keys", "revoke", prefixes[0], check=False).stderr


def test_lists_have_headers_and_institutions_can_be_listed(tmp_path):
    ipledger(tmp_path, "db", "upgrade")
    assert ipledger(tmp_path, "keys", "list").stdout.split() == ["PREFIX", "ROLE", "INSTITUTION", "STATE", "LABEL"]
    for code, kind, region in (("ICBC-GZ", "bank", "440100"), ("CD-FISCAL", "fiscal", "510100"),
                               ("GZ-POOL", "pool", "440106")):
        ipledger(tmp_path, "institutions", "create", code, f"The {code}", "--kind", kind, "--region", region)
    every = ipledger(tmp_path, "institutions", "list").stdout.splitlines()
    assert every[0].split() == ["ID", "CODE", "KIND", "REGION", "NAME"]
    assert [line.split()[1] for line in every[1:]] == ["ICBC-GZ", "CD-FISCAL", "GZ-POOL"]
    guangzhou = ipledger(tmp_path, "institutions", "list", "--region", "440100").stdout.splitlines()[1:]
    assert [line.split()[1] for line in guangzhou] == ["ICBC-GZ", "GZ-POOL"]
    banks = ipledger(tmp_path, "institutions", "list", "--kind", "bank").stdout.splitlines()[1:]
    assert [line.split()[1] for line in banks] == ["ICBC-GZ"]
    bad = ipledger(tmp_path, "institutions", "list", "--region", "44", check=False)
    assert bad.returncode != 0 and "region" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (("keys", "create", "--role", "bank"), "needs an institution"),
    (("keys", "create", "--role", "bank", "--institution", "NOPE"), "does not exist"),
    (("keys", "revoke", "deadbeef"), "no active key"),
])
def test_cli_errors_are_clear(tmp_path, args, message):
    ipledger(tmp_path, "db", "upgrade")
    result = ipledger(tmp_path, *args, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_rates_set_and_list(tmp_path):
    ipledger(tmp_path, "db", "upgrade")
    assert "LPR1Y 2025-06 = 0.0300" in ipledger(tmp_path, "rates", "set", "2025-06", "0.0300").stdout
    assert "already recorded" in ipledger(tmp_path, "rates", "set", "2025-06", "0.03").stdout
    assert ipledger(tmp_path, "rates", "set", "2025-06", "0.0310", check=False).returncode != 0
    listed = ipledger(tmp_path, "rates", "list").stdout.splitlines()
    assert listed[0] == "2019-08  0.0425" and listed[-1] == "2025-06  0.0300"


def test_import_loans_from_csv(tmp_path):
    from ledger.db import make_engine
    from tests import factories
    from tests.ledger.test_loan_import import to_csv
    ipledger(tmp_path, "db", "upgrade")
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    factories.bind(engine)
    bank = factories.InstitutionFactory(kind="bank")
    program = factories.ProgramFactory()
    loans = [factories.loan_body(factories.BorrowerFactory(bank_id=bank.id).facts.credit_code, program.code) for _ in range(4)]
    path = tmp_path / "loans.csv"
    path.write_text("".join(to_csv(loans)), encoding="utf-8")
    assert "imported 4 loans" in ipledger(tmp_path, "import", "loans", str(path), "--bank", bank.code).stdout
    again = ipledger(tmp_path, "import", "loans", str(path), "--bank", bank.code, check=False)
    assert again.returncode != 0 and "nothing imported" in again.stderr and "already booked" in again.stderr
    engine.dispose()


def test_targets_show_prints_figures_and_exact_checks(tmp_path):
    ipledger(tmp_path, "db", "upgrade")
    out = ipledger(tmp_path, "targets", "show", "--region", "440100", "--year", "2025").stdout
    assert "growth undefined" in out and "key-city-2018: amount_growth > 0.200000: undefined -> FAIL" in out
    bad = ipledger(tmp_path, "targets", "show", "--region", "4401", "--year", "2025", check=False)
    assert bad.returncode == 1 and "region" in bad.stderr
    assert "0 region-years" in ipledger(tmp_path, "targets", "compute").stdout
def _one_loan_in(tmp_path) -> str:
    """A migrated CLI database holding one loan (maturing 2026-02-28); returns its programme."""
    from ledger.db import make_engine
    from tests import factories
    ipledger(tmp_path, "db", "upgrade")
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    previous = factories._engine
    factories.bind(engine)
    try:
        bank, program = factories.InstitutionFactory(), factories.ProgramFactory()
        factories.make_loan(bank.id, factories.BorrowerFactory(bank_id=bank.id).facts.credit_code, program.code)
        return program.code
    finally:
        factories.bind(previous)
        engine.dispose()


def test_claims_scan_opens_claims_for_overdue_loans(tmp_path):
    _one_loan_in(tmp_path)
    assert ipledger(tmp_path, "claims", "scan", "--as-of", "2026-05-01").stdout.strip() == "opened 0 claims"
    assert ipledger(tmp_path, "claims", "scan", "--as-of", "2026-06-01").stdout.strip() == "opened 1 claims"
    assert ipledger(tmp_path, "claims", "scan", "--as-of", "2026-06-02").stdout.strip() == "opened 0 claims"
    assert ipledger(tmp_path, "claims", "scan", "--as-of", "June", check=False).returncode != 0


def test_audit_losses_streams_the_loss_history_as_csv(tmp_path):
    program = _one_loan_in(tmp_path)
    ipledger(tmp_path, "claims", "scan", "--as-of", "2026-06-01")
    lines = ipledger(tmp_path, "audit", "losses", "--program", program).stdout.splitlines()
    assert lines[0].startswith("on,event,institution,role,claim,loan,program,region,amount,loss,net_loss")
    assert [line.split(",")[1] for line in lines[1:]][-1] == "bank_retained"
    assert ipledger(tmp_path, "audit", "losses", "--from", "2026-06-02").stdout.splitlines()[1:] == []
    assert ipledger(tmp_path, "audit", "losses", "--region", "44", check=False).returncode != 0


def test_reconcile_reads_a_csv_statement_and_names_bad_lines(tmp_path):
    _one_loan_in(tmp_path)
    ipledger(tmp_path, "institutions", "create", "INS-CLI", "Insurer", "--kind", "insurer", "--region", "440100")
    good = tmp_path / "statement.csv"
    good.write_text("reference,claim,amount,paid_on\nINS-9,1,100.00,2026-06-10\n", encoding="utf-8")
    out = ipledger(tmp_path, "reconcile", str(good), "--institution", "INS-CLI", "--statement-date", "2026-06-30").stdout
    assert "1 unknown_to_ledger" in out and "unknown_to_ledger: line 1 INS-9 statement 100.00 ledger -" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("reference,claim,amount,paid_on\nINS-9,1,1.001,2026-06-10\n", encoding="utf-8")
    refused = ipledger(tmp_path, "reconcile", str(bad), "--institution", "INS-CLI", "--statement-date", "2026-06-30",
                       check=False)
    assert refused.returncode != 0 and "CSV line 2" in refused.stderr
