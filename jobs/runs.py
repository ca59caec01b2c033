"""Run a job at most once per (job, period), even with two schedulers started by mistake, and
finish cleanly a run that a crash (kill -9) interrupted.

Guarantees
- The natural key `(job, period)` is unique in `job_runs`: claiming it is one INSERT that only
  one scheduler can win. A `done` run is never claimed again; a `failed` one is, by the next run.
- PostgreSQL: the claimer first takes a session advisory lock on (job, period) on a connection it
  holds for the whole run. The lock is the run's lease: another scheduler finding it taken skips
  the run; finding it free while the row says `running`, it knows the owner's session is gone
  (PostgreSQL drops a dead client's locks) and reclaims the row. No clock, no heartbeat.
- SQLite (one machine, one scheduler): a `running` row is reclaimed when its owner process
  (`owner` = host:pid) no longer exists on this host, or when it has run past `MAX_RUN_SECONDS`.
- `run_once_atomic` does the work and marks the run `done` in ONE transaction: a crash anywhere
  leaves either the work and its `done` row, or neither (a `running` row the next start redoes).
"""
from __future__ import annotations

import json
import logging
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Iterator

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ledger.db import as_utc, is_postgres, run_in_transaction, utcnow
from ledger.schema import job_runs

log = logging.getLogger("ipledger.jobs")

# STYLE: a limit on job run time. Only SQLite uses it (a live PostgreSQL owner holds its lock).
MAX_RUN_SECONDS = 6 * 3600
LOCK_NAMESPACE = 7_301  # the advisory lock's first key: job runs (the sealer uses its own key)


@dataclass(frozen=True)
class Outcome:
    """What a run did: a line for people and counts for the runs list."""

    detail: str
    counts: dict[str, int] = field(default_factory=dict)


def owner() -> str:
    """This process, as recorded on the rows it runs (computed per call: forks get their own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- claiming ----------------------------------------------------------------------------------

@contextmanager
def _lease(engine: Engine, job: str, period: str) -> Iterator[bool]:
    """PostgreSQL: hold a session advisory lock on (job, period) for the block; yields whether it
    was free. SQLite: nothing to hold (yields True; `_claim` decides from the row)."""
    if not is_postgres(engine):
        yield True
        return
    conn = engine.connect()
    key = {"ns": LOCK_NAMESPACE, "name": f"{job}/{period}"}
    try:
        held = conn.execute(text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"), key).scalar_one()
        conn.commit()  # the lock is the session's: it outlives this transaction, not the connection
        try:
            yield bool(held)
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), key)
                conn.commit()
    finally:
        conn.close()


def _owner_gone(row) -> bool:
    """SQLite: is the process that claimed this running row gone (or past its time limit)?"""
    if as_utc(row.started_at) < utcnow() - timedelta(seconds=MAX_RUN_SECONDS):
        return True
    host, _, pid = (row.owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: we cannot tell, so we wait for the time limit
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(engine: Engine, job: str, period: str, leased: bool) -> bool:
    """Make this process the owner of the (job, period) run; False if done or running elsewhere."""
    me, now = owner(), utcnow()

    def claim(conn: Connection) -> bool:
        row = conn.execute(select(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)
                           .with_for_update()).first()
        if row is None:
            try:
                with conn.begin_nested():  # a racing claimer's INSERT wins: we lose cleanly
                    conn.execute(insert(job_runs).values(job=job, period=period, status="running",
                                                         started_at=now, owner=me))
                return True
            except IntegrityError:
                return False
        if row.status == "done":
            return False
        if row.status == "running":
            # PostgreSQL: we hold the run's lock, so its owner's session is gone.
            if not (leased if is_postgres(conn) else _owner_gone(row)):
                return False
            log.warning("job %s for %s: reclaiming the run of %s, interrupted", job, period, row.owner)
        detail = f"retry of a run interrupted at {row.owner}" if row.status == "running" else None
        # Conditional on what we read: two reclaimers of the same row cannot both win.
        return conn.execute(update(job_runs).where(
            job_runs.c.id == row.id, job_runs.c.status == row.status,
            job_runs.c.owner.is_not_distinct_from(row.owner))
            .values(status="running", started_at=now, finished_at=None, owner=me, detail=detail,
                    counts_json=None)).rowcount == 1
    return run_in_transaction(engine, claim)


def _finish(conn: Connection, job: str, period: str, status: str, outcome: Outcome) -> None:
    done = conn.execute(update(job_runs).where(job_runs.c.job == job, job_runs.c.period == period,
                                               job_runs.c.owner == owner())
                        .values(status=status, detail=outcome.detail, finished_at=utcnow(),
                                counts_json=json.dumps(outcome.counts, sort_keys=True))).rowcount
    assert done == 1, f"job {job} for {period}: the run was taken over while it ran"


def _failed(engine: Engine, job: str, period: str, error: Exception) -> None:
    outcome = Outcome(f"{type(error).__name__}: {error}")
    run_in_transaction(engine, lambda conn: _finish(conn, job, period, "failed", outcome))


def finished_periods(engine: Engine, job: str) -> set[str]:
    """The periods of `job` already done (a scheduler skips them without taking any lock)."""
    return set(run_in_transaction(engine, lambda conn: conn.execute(
        select(job_runs.c.period).where(job_runs.c.job == job, job_runs.c.status == "done")).scalars().all()))


# --- running -----------------------------------------------------------------------------------

def run_once(engine: Engine, job: str, period: str, work: Callable[[], str | Outcome | None]) -> bool:
    """Run `work` if this (job, period) is not done or running elsewhere; True if it ran. The
    work commits its own transactions; the run is marked done after it."""
    with _lease(engine, job, period) as leased:
        if not leased or not _claim(engine, job, period, leased):
            log.info("job %s for %s already done or running; skipped", job, period)
            return False
        try:
            result = work()
        except Exception as error:
            _failed(engine, job, period, error)
            raise
        outcome = result if isinstance(result, Outcome) else Outcome(result or "")
        run_in_transaction(engine, lambda conn: _finish(conn, job, period, "done", outcome))
    return True


def run_once_atomic(engine: Engine, job: str, period: str, work: Callable[[Connection], Outcome]) -> bool:
    """As `run_once`, but `work(conn)` runs in the transaction that marks the run done: nothing
    of an interrupted run is left behind, and the next start redoes it from scratch."""
    with _lease(engine, job, period) as leased:
        if not leased or not _claim(engine, job, period, leased):
            log.info("job %s for %s already done or running; skipped", job, period)
            return False

        def work_and_finish(conn: Connection) -> None:
            _finish(conn, job, period, "done", work(conn))
        try:
            run_in_transaction(engine, work_and_finish)
        except Exception as error:
            _failed(engine, job, period, error)
            raise
    return True


# --- reading -----------------------------------------------------------------------------------

def list_runs(conn: Connection, *, job: str | None = None, status: str | None = None,
              after_id: int = 0, limit: int = 50) -> list[dict]:
    """Runs by id (oldest first), optionally of one job and in one status."""
    query = _filtered(select(job_runs).where(job_runs.c.id > after_id), job, status)
    return [_render(row) for row in conn.execute(query.order_by(job_runs.c.id).limit(limit))]


def _filtered(query, job: str | None, status: str | None):
    if job:
        query = query.where(job_runs.c.job == job)
    if status:
        query = query.where(job_runs.c.status == status)
    return query


def _render(row) -> dict:
    started = as_utc(row.started_at)
    finished = as_utc(row.finished_at) if row.finished_at else None
    # Milliseconds are enough for a job; a running job has no duration yet.
    duration = round((finished - started).total_seconds(), 3) if finished else None
    return {"id": row.id, "job": row.job, "period": row.period, "status": row.status,
            "started_at": started, "finished_at": finished, "duration_seconds": duration,
            "owner": row.owner, "detail": row.detail, "counts": json.loads(row.counts_json or "{}")}


def recent_first_id(conn: Connection, job: str | None, status: str | None, count: int) -> int:
    """The `after_id` from which `list_runs` returns the latest `count` runs."""
    query = _filtered(select(job_runs.c.id), job, status)
    ids = conn.execute(query.order_by(job_runs.c.id.desc()).limit(count)).scalars().all()
    return min(ids) - 1 if ids else 0
