"""job runs: who runs them, what they did, and only known statuses.

- `job_runs.owner` (`host:pid` of the scheduler process running it): on SQLite a `running` row
  whose owner process is gone is reclaimed; on PostgreSQL the owner holds a session advisory lock
  for the run, and a `running` row whose lock is free is reclaimed (`jobs/runs.py`).
- `job_runs.counts_json`: what a run made (batches drafted, lines, ...), a JSON object of ints.
- `ck_job_runs_status`: status is running, done or failed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("counts_json", sa.Text(), nullable=True))
        batch_op.create_check_constraint(op.f("ck_job_runs_status"),
                                         "status IN ('running', 'done', 'failed')")


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch_op:
        batch_op.drop_constraint(op.f("ck_job_runs_status"), type_="check")
        batch_op.drop_column("counts_json")
        batch_op.drop_column("owner")
