"""The scheduled jobs. Each is thin: take its lock or natural key, call the domain, log."""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import Engine

from jobs.runs import run_once
from ledger import chain, claims, idempotency, stress_runs, targets
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
