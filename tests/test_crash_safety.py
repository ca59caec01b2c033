"""Crash safety (issue 13 item 2), on PostgreSQL through real processes: kill -9 of gunicorn (the
master and its workers) in the middle of a loan batch, then a restart and the retried request;
kill -9 of the process running the scheduler's overdue-scan job (jobs/tasks.py, under its
job_runs lease) mid-scan, then the next run of the job, which takes the interrupted run over.
The scheduler killed mid subsidy draft is tests/test_jobs_subsidies.py
(`test_a_run_killed_mid_draft_is_redone_cleanly_by_the_next_start`, SQLite and PostgreSQL).

Nothing is half-written because the whole batch is one transaction whose COMMIT a dead worker
never sends; the retry completes exactly once because its Idempotency-Key was never stored (it
is stored in that same transaction). SQLite: skipped (one writer at a time; no server processes).
Each drill prints its figures (`make crash` shows them: pytest -s).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import pytest
from sqlalchemy import func, select, text

from bench.common import bank_headers, make_case, setup_world
from bench.drills import Gunicorn, post, wait_for_backends_to_end
from bench.soak import verified
from jobs import runs
from jobs.tasks import open_overdue_claims
from ledger.schema import claims, entries, idempotency_keys, job_runs, loans, pledges

BATCH_LOANS = int(os.environ.get("IPLEDGER_CRASH_BATCH_LOANS", "2000"))  # 10,000 in `make crash`


@pytest.fixture
def pg_engine(fresh_engine):
    if fresh_engine.dialect.name != "postgresql":
        pytest.skip("crash drills run server processes against PostgreSQL (SQLite: one writer)")
    return fresh_engine


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _writing(engine, table: str) -> bool:
    """Another session holds a write lock on `table`: a transaction is inserting into it."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = :table AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid())"),
            {"table": table}).scalar_one()


def _wait_until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.002)


def _retry_until_not_in_flight(port: int, batch: dict, headers: dict) -> tuple:
    """The killed worker's database session may outlive it a while (PostgreSQL notices the
    dead client when it next reads from it); until then it holds the key: 409, still in flight.
    Returns the answer and how many sends it took."""
    deadline = time.monotonic() + 120
    sends = 0
    while True:
        reply = post(port, "/v1/loans/batch", batch, headers)
        sends += 1
        if reply.status != 409 or time.monotonic() > deadline:
            return reply, sends
        assert "in-flight" in reply.body["type"], reply.body
        time.sleep(0.2)


def _counts(engine, bank_id: int, key: str) -> dict[str, int]:
    with engine.connect() as conn:
        def count(table, *where):
            return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        return {"loans": count(loans, loans.c.bank_id == bank_id),
                "pledges": count(pledges, pledges.c.loan_id.in_(select(loans.c.id).where(loans.c.bank_id == bank_id))),
                "entries": count(entries, entries.c.idempotency_key == key),
                "stored_keys": count(idempotency_keys, idempotency_keys.c.key == key)}


def test_kill_9_of_gunicorn_mid_batch_writes_nothing_and_the_retry_lands_once(pg_engine):
    world = setup_world(pg_engine)
    batch = {"loans": [make_case(i, world).payload for i in range(BATCH_LOANS)]}
    key = "crash-batch-1"
    headers = bank_headers(world, key)

    server = Gunicorn(_url(pg_engine)).start()
    try:
        replies = []
        sender = threading.Thread(target=lambda: replies.append(post(server.port, "/v1/loans/batch", batch, headers)))
        sender.start()
        started = time.monotonic()
        _wait_until(lambda: _writing(pg_engine, "postings"))  # rows are being written, not committed
        killed_after_s = time.monotonic() - started
        killed = server.kill_hard()
        sender.join()
    finally:
        server.stop()
    assert killed == 3  # the master and both workers
    assert replies[0].status is None, "the batch finished before the kill: nothing was tested"
    assert _counts(pg_engine, world.bank_id, key) == {"loans": 0, "pledges": 0, "entries": 0, "stored_keys": 0}

    restarted = Gunicorn(_url(pg_engine)).start()
    try:
        started = time.monotonic()
        first, sends = _retry_until_not_in_flight(restarted.port, batch, headers)
        retried_s = time.monotonic() - started
        again = post(restarted.port, "/v1/loans/batch", batch, headers)
    finally:
        restarted.stop()
    assert (first.status, first.body["count"], first.replayed) == (201, BATCH_LOANS, False)
    assert (again.status, again.replayed, again.body) == (201, True, first.body)
    wait_for_backends_to_end(pg_engine)
    assert _counts(pg_engine, world.bank_id, key) == {
        "loans": BATCH_LOANS, "pledges": 2 * BATCH_LOANS, "entries": BATCH_LOANS, "stored_keys": 1}
    proof = verified(pg_engine)
    assert proof.balanced and proof.chain_intact and proof.unsealed == 0
    print(f"\ncrash drill: {BATCH_LOANS:,}-loan batch, kill -9 of {killed} processes {killed_after_s:.2f} s into"
          f" the request (rows being written); after it 0 loans, 0 entries, key not stored; the retry on a"
          f" restarted gunicorn: {sends} sends ({sends - 1} answered 409 in flight), 201 after {retried_s:.1f} s"
          f" ({first.seconds:.1f} s for the batch); a second retry replayed; {BATCH_LOANS:,} loans and"
          f" entries once; verify intact ({proof.entries:,} entries)")


SCAN_DAY = date(2026, 12, 1)
# The scheduler's daily job itself (jobs/tasks.py), in a process of its own: the run is claimed in
# job_runs under its advisory-lock lease, then the scan opens claims, each in its own transaction.
SCAN = ("import sys; from datetime import date; from ledger.db import make_engine;"
        " from jobs.tasks import open_overdue_claims;"
        f" open_overdue_claims(make_engine(sys.argv[1]), date.fromisoformat({SCAN_DAY.isoformat()!r}))")
OVERDUE_LOANS = 60


def _claims_by_loan(engine, bank_id: int) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(claims.c.loan_id, func.count()).where(claims.c.bank_id == bank_id)
                                 .group_by(claims.c.loan_id)).all())


def _scan_runs(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(job_runs.c.period, job_runs.c.status, job_runs.c.owner, job_runs.c.detail)
            .where(job_runs.c.job == "open_overdue_claims")).all()]


def _rerun_when_the_lease_is_free(engine, timeout_s: float = 60) -> None:
    """The next scheduler's run of the day's scan: skipped while the dead process's session still
    holds the run's lease (PostgreSQL ends it when it notices the client is gone), then it runs."""
    deadline = time.monotonic() + timeout_s
    while not open_overdue_claims(engine, SCAN_DAY):
        assert time.monotonic() < deadline, f"the interrupted run was never taken over: {_scan_runs(engine)}"
        time.sleep(0.2)


def test_kill_9_in_the_overdue_scan_job_and_the_next_run_redoes_it_claiming_each_loan_once(pg_engine, caplog):
    """kill -9 of the process running the scheduler's overdue-scan job mid-scan: its run stays
    `running`, owned by the dead process; each claim was its own transaction, so whole claims
    remain. The next run of the job takes the run over (its lease is free), scans again, skips the
    loans already defaulted and claims the rest: each loan claimed once, the run done, once."""
    from api import create_app
    world = setup_world(pg_engine, borrower_count=10)
    batch = {"loans": [make_case(i, world).payload for i in range(OVERDUE_LOANS)]}
    created = create_app(pg_engine).test_client().post("/v1/loans/batch", json=batch,
                                                        headers=bank_headers(world, "overdue"))
    assert created.status_code == 201  # all mature 2026-02-28: past the 90-day trigger by December
    scan = subprocess.Popen([sys.executable, "-c", SCAN, _url(pg_engine)])
    try:
        _wait_until(lambda: len(_claims_by_loan(pg_engine, world.bank_id)) >= 3)
    finally:
        os.kill(scan.pid, signal.SIGKILL)
        scan.wait()
    interrupted = _claims_by_loan(pg_engine, world.bank_id)
    assert 3 <= len(interrupted) < OVERDUE_LOANS, "the scan was not interrupted mid-way"
    (killed_run,) = _scan_runs(pg_engine)
    assert killed_run[:2] == (SCAN_DAY.isoformat(), "running") and killed_run[2].endswith(f":{scan.pid}")

    with caplog.at_level(logging.WARNING, logger="ipledger.jobs"):
        _rerun_when_the_lease_is_free(pg_engine)
    assert f"reclaiming the run of {killed_run[2]}, interrupted" in caplog.text
    after = _claims_by_loan(pg_engine, world.bank_id)
    assert len(after) == OVERDUE_LOANS and set(after.values()) == {1}
    ((period, status, owner, detail),) = _scan_runs(pg_engine)
    assert (period, status, owner) == (SCAN_DAY.isoformat(), "done", runs.owner())
    opened = int(detail.split()[1])  # "opened N claims"
    assert opened + len(interrupted) in (OVERDUE_LOANS, OVERDUE_LOANS + 1)  # +1: one committed as it died
    assert open_overdue_claims(pg_engine, SCAN_DAY) is False  # the day's run is done: not again
    with pg_engine.connect() as conn:
        claimed_entries = conn.execute(select(func.count()).select_from(entries).where(
            entries.c.kind == "claim_opened")).scalar_one()  # this test's own database
    assert claimed_entries == OVERDUE_LOANS
    proof = verified(pg_engine)
    assert proof.balanced and proof.chain_intact
    print(f"\noverdue drill: kill -9 of the scan job after {len(interrupted)} of {OVERDUE_LOANS} claims; the"
          f" next run took the run over and opened {opened}; each loan claimed once; run done once;"
          " verify intact")
