"""The scheduler process (`ipledger scheduler`): the only place jobs run, never web workers.

Jobs: chain sealing and queued stress tests every few seconds; target snapshots (01:00), the overdue scan (02:00), the
idempotency-key purge (03:00) and subsidy drafts (04:00, each ended year of each programme with
subsidy rules) daily. Each job guards itself (advisory lock or
natural key), so a second scheduler started by mistake does no work twice.
"""
from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine

from jobs import tasks

SEAL_EVERY_SECONDS = 5
STRESS_POLL_SECONDS = 5


def build(engine: Engine, *, background: bool = False):
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
    scheduler.add_job(tasks.seal_chain, "interval", seconds=SEAL_EVERY_SECONDS, args=[engine],
                      id="seal_chain", **common)
    scheduler.add_job(tasks.purge_idempotency_keys, "cron", hour=3, args=[engine],
                      id="purge_idempotency_keys", **common)
    scheduler.add_job(tasks.snapshot_targets, "cron", hour=1, args=[engine],
                      id="snapshot_targets", **common)
    scheduler.add_job(tasks.open_overdue_claims, "cron", hour=2, args=[engine],
                      id="open_overdue_claims", **common)
    scheduler.add_job(tasks.run_stress_tests, "interval", seconds=STRESS_POLL_SECONDS, args=[engine],
                      id="run_stress_tests", **common)
    scheduler.add_job(tasks.draft_subsidy_batches, "cron", hour=4, args=[engine],
                      id="draft_subsidy_batches", **common)
    return scheduler
