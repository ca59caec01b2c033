"""Run a job at most once per (job, period), even with two schedulers started by mistake.

The natural key `(job, period)` is unique in `job_runs`: claiming it is one INSERT that only one
scheduler can win. A failed run can be claimed again; a finished one never is.
"""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import Engine, insert, update
from sqlalchemy.exc import IntegrityError

from ledger.db import run_in_transaction, utcnow
from ledger.schema import job_runs

log = logging.getLogger("ipledger.jobs")


def claim(engine: Engine, job: str, period: str) -> bool:
    def insert_claim(conn):
        conn.execute(insert(job_runs).values(job=job, period=period, status="running",
                                             started_at=utcnow()))
    try:
        run_in_transaction(engine, insert_claim)
        return True
    except IntegrityError:
        def reclaim_failed(conn):
            return conn.execute(update(job_runs).where(
                job_runs.c.job == job, job_runs.c.period == period, job_runs.c.status == "failed")
                .values(status="running", started_at=utcnow(), detail=None)).rowcount
        return run_in_transaction(engine, reclaim_failed) == 1


def run_once(engine: Engine, job: str, period: str, work: Callable[[], str | None]) -> bool:
    """Run `work` if this (job, period) is not done or running elsewhere; True if it ran."""
    if not claim(engine, job, period):
        log.info("job %s for %s already done or running; skipped", job, period)
        return False
    status, detail = "done", None
    try:
        detail = work()
    except Exception as error:
        status, detail = "failed", f"{type(error).__name__}: {error}"
        raise
    finally:
        run_in_transaction(engine, lambda conn: conn.execute(
            update(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)
            .values(status=status, detail=detail, finished_at=utcnow())))
    return True
