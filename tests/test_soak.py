"""The soak of bench/soak.py at CI size (issue 13 items 1 and 4), on PostgreSQL: clients posting
mixed postings through two gunicorn instances (2 workers each, on different ports) with two
scheduler processes running, every request retried at random with its Idempotency-Key (some
while the first is in flight, some on the other server); then no 5xx, exactly once, caps and
fund within limits, balances equal to a sequential replay into a fresh database, verify intact.
After it, two overdue scans at once (two schedulers' job) open each overdue loan's claim once.

`make soak` runs the issue's size (16 clients x 1,000 postings). SQLite: skipped (one writer).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from bench.soak import soak, verified
from ledger.schema import claims, job_runs, loans

CLIENTS = int(os.environ.get("IPLEDGER_SOAK_CLIENTS", "4"))
POSTINGS = int(os.environ.get("IPLEDGER_SOAK_POSTINGS", "40"))

SCAN = ("import sys; from datetime import date; from ledger.db import make_engine;"
        " from jobs.tasks import open_overdue_claims;"
        " print(open_overdue_claims(make_engine(sys.argv[1]), date(2026, 12, 1)))")


@pytest.fixture
def pg_engines(fresh_engine, databases):
    if fresh_engine.dialect.name != "postgresql":
        pytest.skip("the soak runs server processes against PostgreSQL (SQLite: one writer at a time)")
    replay = databases.create()
    yield fresh_engine, replay
    databases.drop(replay)


def test_two_servers_two_schedulers_retries_in_flight_still_exactly_once(pg_engines):
    book, replay_book = pg_engines
    figures = soak(book, replay_book, clients=CLIENTS, postings=POSTINGS, servers=2, schedulers=2, seed=13)
    print("\n".join(figures.lines()))
    assert figures.retries > 0 and figures.replayed > 0 and figures.in_flight_409 > 0
    assert figures.by_kind.keys() == {"loan", "repayment", "fee", "default", "payment", "recovery", "contribution"}
    assert figures.replays == figures.accepted
    assert figures.accepted_of("payment") > 0 and figures.accepted_of("recovery") > 0

    url = book.url.render_as_string(hide_password=False)
    scans = [subprocess.Popen([sys.executable, "-c", SCAN, url], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    ran = sorted(scan.communicate(timeout=120)[0].strip() for scan in scans)
    assert ran == ["False", "True"]  # one scheduler ran the day's scan, the other stood aside
    with book.connect() as conn:
        live = conn.execute(select(claims.c.loan_id, func.count()).where(claims.c.status != "withdrawn")
                            .group_by(claims.c.loan_id)).all()
        active = conn.execute(select(func.count()).select_from(loans).where(loans.c.status == "active")).scalar_one()
        runs = conn.execute(select(func.count()).select_from(job_runs)
                            .where(job_runs.c.job == "open_overdue_claims")).scalar_one()
    assert all(count == 1 for _, count in live) and runs == 1
    assert active == 0  # every loan matured in 2026-02 is past the 90-day trigger: all claimed
    result = verified(book)
    assert result.balanced and result.chain_intact
