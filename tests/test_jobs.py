"""Jobs: each does its work once per natural key, and the sealer chains everything."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from jobs import runs, scheduler, tasks
from ledger import chain
from ledger.db import utcnow
from ledger.idempotency import StoredOutcome, find, store
from ledger.schema import idempotency_keys, job_runs
from tests.factories import tx, unique
from tests.ledger.test_chain import _post_some


def test_run_once_per_period_and_retry_after_failure(engine):
    job, period = unique("job"), "2025-11-22"
    calls = []
    assert runs.run_once(engine, job, period, lambda: calls.append(1) or "ok")
    assert not runs.run_once(engine, job, period, lambda: calls.append(2))
    assert calls == [1]
    failing = unique("job")
    with pytest.raises(RuntimeError):
        runs.run_once(engine, failing, period, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    status = tx(lambda conn: conn.execute(select(job_runs.c.status).where(job_runs.c.job == failing)).scalar_one())
    assert status == "failed"
    assert runs.run_once(engine, failing, period, lambda: "second try")


def test_seal_chain_job_seals_everything(fresh_engine):
    _post_some(7)
    assert tasks.seal_chain(fresh_engine, batch=3) == 7
    result = tx(chain.verify)
    assert result.unsealed == 0 and result.chain_intact


def test_purge_keeps_keys_for_30_days(fresh_engine):
    old, recent = unique("old"), unique("new")
    outcome = StoredOutcome("f" * 64, "POST", "/v1/x", 201, "{}", None)
    tx(lambda conn: store(conn, "platform", old, outcome))
    tx(lambda conn: store(conn, "platform", recent, outcome))
    tx(lambda conn: conn.execute(idempotency_keys.update().where(idempotency_keys.c.key == old)
                                 .values(created_at=utcnow() - timedelta(days=31))))
    assert tasks.purge_idempotency_keys(fresh_engine, date(2025, 11, 22))
    assert not tasks.purge_idempotency_keys(fresh_engine, date(2025, 11, 22))  # once a day
    assert tx(lambda conn: find(conn, "platform", old)) is None
    assert tx(lambda conn: find(conn, "platform", recent)) is not None


def test_scheduler_has_its_jobs(engine):
    built = scheduler.build(engine, background=True)
    assert {job.id for job in built.get_jobs()} == {"seal_chain", "purge_idempotency_keys", "open_overdue_claims",
                                                    "run_stress_tests", "snapshot_targets", "draft_subsidy_batches"}


def test_the_overdue_scan_opens_claims_once_a_day(fresh_engine):
    from ledger.schema import claims, loans
    from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan
    bank, program = InstitutionFactory(), ProgramFactory()
    credit_code = BorrowerFactory(bank_id=bank.id).facts.credit_code
    overdue = make_loan(bank.id, credit_code, program.code)  # matures 2026-02-28; trigger 90 days
    not_yet = make_loan(bank.id, credit_code, program.code, maturity_date="2026-05-31")
    assert tasks.open_overdue_claims(fresh_engine, date(2026, 6, 1))
    assert not tasks.open_overdue_claims(fresh_engine, date(2026, 6, 1))  # once a day
    opened = tx(lambda conn: conn.execute(select(claims.c.loan_id, claims.c.classified_on,
                                                 claims.c.overdue_days)).all())
    assert [tuple(row) for row in opened] == [(overdue, date(2026, 5, 29), 90)]
    status = tx(lambda conn: conn.execute(select(loans.c.status).where(loans.c.id == not_yet)).scalar_one())
    assert status == "active"
