"""Crash safety (issue 13 item 2), on PostgreSQL through real processes: kill -9 of gunicorn (the
master and its workers) in the middle of a loan batch, then a restart and the retried request;
kill -9 of a process in the middle of the overdue scan, then the next scan.

Nothing is half-written because the whole batch is one transaction whose COMMIT a dead worker
never sends; the retry completes exactly once because its Idempotency-Key was never stored (it
is stored in that same transaction). SQLite: skipped (one writer at a time; no server processes).
"""
from __future__ import annotations

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
from ledger import claims as claims_module
from ledger.schema import claims, entries, idempotency_keys, loans, pledges

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


def _retry_until_not_in_flight(port: int, batch: dict, headers: dict):
    """The killed worker's database session may outlive it a while (PostgreSQL notices the
    dead client when it next reads from it); until then it holds the key: 409, still in flight."""
    deadline = time.monotonic() + 120
    while True:
        reply = post(port, "/v1/loans/batch", batch, headers)
        if reply.status != 409 or time.monotonic() > deadline:
            return reply
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
        _wait_until(lambda: _writing(pg_engine, "postings"))  # rows are being written, not committed
        killed = server.kill_hard()
        sender.join()
    finally:
        server.stop()
    assert killed == 3  # the master and both workers
    assert replies[0].status is None, "the batch finished before the kill: nothing was tested"
    assert _counts(pg_engine, world.bank_id, key) == {"loans": 0, "pledges": 0, "entries": 0, "stored_keys": 0}

    restarted = Gunicorn(_url(pg_engine)).start()
    try:
        first = _retry_until_not_in_flight(restarted.port, batch, headers)
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


SCAN = ("import sys; from datetime import date; from ledger.db import make_engine;"
        " from ledger.claims import scan_overdue;"
        " scan_overdue(make_engine(sys.argv[1]), date(2026, 12, 1))")
OVERDUE_LOANS = 60


def _claims_by_loan(engine, bank_id: int) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(claims.c.loan_id, func.count()).where(claims.c.bank_id == bank_id)
                                 .group_by(claims.c.loan_id)).all())


def test_kill_9_in_the_overdue_scan_and_the_next_scan_claims_the_rest_once(pg_engine):
    """Each claim of the scan is its own transaction: a kill leaves whole claims behind, and
    the next scan skips the loans already defaulted and claims the rest, each exactly once."""
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

    opened = claims_module.scan_overdue(pg_engine, date(2026, 12, 1))
    after = _claims_by_loan(pg_engine, world.bank_id)
    assert len(after) == OVERDUE_LOANS and set(after.values()) == {1}
    assert opened + len(interrupted) in (OVERDUE_LOANS, OVERDUE_LOANS + 1)  # +1: one claim committed as it died
    with pg_engine.connect() as conn:
        claimed_entries = conn.execute(select(func.count()).select_from(entries).where(
            entries.c.kind == "claim_opened")).scalar_one()  # this test's own database
    assert claimed_entries == OVERDUE_LOANS
    proof = verified(pg_engine)
    assert proof.balanced and proof.chain_intact
