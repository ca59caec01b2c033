"""The scheduled jobs. Each is thin: take its lock or natural key, call the domain, log."""
from __future__ import annotations

import logging
import os
import sys
import time
from datetime import date

from sqlalchemy import Engine

from jobs.runs import Outcome, finished_periods, run_once, run_once_atomic
from ledger import chain, claims, idempotency, stress_runs, subsidy_batches, targets
from ledger.db import run_in_transaction
from ledger.dates import today as business_today

log = logging.getLogger("ipledger.jobs")


def seal_chain(engine: Engine, batch: int = 5000) -> int:
    """Chain every committed entry, batch by batch (the sealer holds an advisory lock)."""
    total = 0
    while True:
        sealed = run_in_transaction(engine, lambda conn: chain.seal_pending(conn, batch))
        total += sealed
        if sealed < batch:
            break
    if total:
        log.info("sealed %d entries", total)
    return total


def purge_idempotency_keys(engine: Engine, today: date | None = None) -> bool:
    """Daily: forget stored outcomes older than the retention period (kept >= 30 days)."""
    period = (today or business_today()).isoformat()

    def work():
        purged = run_in_transaction(engine, idempotency.purge_expired)
        return f"purged {purged} keys"
    return run_once(engine, "purge_idempotency_keys", period, work)


def snapshot_targets(engine: Engine, today: date | None = None) -> bool:
    """Nightly: store every region's target figures (the API answers from the latest)."""
    period = (today or business_today()).isoformat()

    def work():
        snapshot = run_in_transaction(engine, targets.take_snapshot)
        return f"snapshot {snapshot.run_id}: {snapshot.rows} region-years"
    return run_once(engine, "snapshot_targets", period, work)


def open_overdue_claims(engine: Engine, today: date | None = None) -> bool:
    """Daily: open the claims of loans overdue past their programme's trigger (DOMAIN.md 3)."""
    day = today or business_today()

    def work():
        return f"opened {claims.scan_overdue(engine, day)} claims"
    return run_once(engine, "open_overdue_claims", day.isoformat(), work)


def run_stress_tests(engine: Engine) -> int:
    """Every few seconds: run the queued pool stress tests, oldest first (each is claimed by one
    scheduler only; one orphaned by a dead scheduler is taken again)."""
    return stress_runs.run_queued(engine)
DRAFT_SUBSIDY_BATCHES = "draft_subsidy_batches"
# Test hook (tests/test_jobs_subsidies.py): seconds to sleep inside the draft's transaction, after
# its lines are written and before it commits, so a test can kill -9 the process mid-draft.
PAUSE_IN_DRAFT_ENV = "IPLEDGER_TEST_PAUSE_IN_DRAFT_SECONDS"


def draft_subsidy_batches(engine: Engine, today: date | None = None) -> int:
    """Daily: draft each programme's batch for every year that has ended and has none live,
    once per (programme, period); returns how many such runs it did (a year with nobody to pay
    and nobody excluded is a run without a batch). A period that fails (a month of
    LPR not recorded) is recorded as a failed run and retried the next day; the others go on."""
    day = today or business_today()
    done = finished_periods(engine, DRAFT_SUBSIDY_BATCHES)
    due = [d for d in run_in_transaction(engine, lambda conn: subsidy_batches.due_periods(conn, day))
           if f"{d.program_code}/{d.period}" not in done]
    drafted = 0
    for item in due:
        try:
            drafted += run_once_atomic(engine, DRAFT_SUBSIDY_BATCHES, f"{item.program_code}/{item.period}",
                                       lambda conn, item=item: _draft(conn, item, day))
        except Exception:  # recorded on the run; the other programmes still get their batches
            log.exception("drafting %s %s failed", item.program_code, item.period)
    return drafted


def _draft(conn, item: subsidy_batches.DuePeriod, day: date) -> Outcome:
    savepoint = conn.begin_nested()
    batch = subsidy_batches.draft_batch(conn, item.program_code, item.period, item.bureau, today=day)
    if batch["line_count"] == 0 and batch["excluded_count"] == 0:
        # Nobody to pay and nobody excluded: an empty batch would only ask an officer to approve
        # nothing. The run is done all the same (the year is closed).
        savepoint.rollback()
        return Outcome("nothing to pay", {"batches": 0, "lines": 0, "excluded": 0, "total_fen": 0})
    savepoint.commit()
    pause_seconds = float(os.environ.get(PAUSE_IN_DRAFT_ENV) or 0)
    if pause_seconds:
        print(f"paused in draft of batch {batch['id']}", file=sys.stderr, flush=True)
        time.sleep(pause_seconds)
    return Outcome(f"drafted batch {batch['id']}: {batch['line_count']} lines, "
                   f"{batch['excluded_count']} excluded",
                   {"batches": 1, "lines": batch["line_count"], "excluded": batch["excluded_count"],
                    "total_fen": batch["total_fen"]})
