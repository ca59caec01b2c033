"""`/v1/jobs/runs`: what the scheduler did (admin, fiscal and auditor keys; every run, of every
region: a run names a job and its period, e.g. a programme code and year, nothing more). The
runs are `jobs.runs`; this module parses, authorises and renders.
"""
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import require
from api.db import read
from api.fields import Choice, Code, UtcTimestamp
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from jobs import runs
from ledger.schema import JOB_RUN_STATUSES

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs",
                description="Scheduled job runs: one per job and period (a day, or a programme and "
                            "year for subsidy drafts), with status, times and counts. A run "
                            "interrupted by a crash is `running` until the next scheduler start "
                            "reclaims and redoes it.")


class JobRunQuery(PageArgs):
    job = Code(60, metadata={"description": "e.g. draft_subsidy_batches"})
    status = Choice(JOB_RUN_STATUSES)


class JobRunOut(Output):
    id = fields.Integer()
    job = fields.String()
    period = fields.String(metadata={"description": "the run's natural key within its job: a day "
                                                    "(2026-01-05) or programme/year (gz-ip/2025)"})
    status = fields.String(metadata={"enum": list(JOB_RUN_STATUSES)})
    started_at = UtcTimestamp()
    finished_at = UtcTimestamp(allow_none=True)
    duration_seconds = fields.Float(allow_none=True, metadata={"description": "null while running"})
    owner = fields.String(allow_none=True, metadata={"description": "host:pid of the scheduler that ran it"})
    detail = fields.String(allow_none=True, metadata={"description": "what it did, or why it failed"})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "what it made, e.g. {batches, lines, excluded, total_fen}"})


@blp.route("/runs")
@blp.arguments(JobRunQuery(), location="query")
@blp.response(200, page_schema(JobRunOut, "JobRunPage"))
@require("admin", "fiscal", "auditor")
def list_runs(args):
    """Runs by id, oldest first; filter by job and status."""
    with read() as conn:
        rows = runs.list_runs(conn, job=args.get("job"), status=args.get("status"),
                              after_id=args["after"], limit=args["limit"] + 1)
    return page(rows, args["limit"])
