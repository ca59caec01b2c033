"""Pool stress-test runs (issue 12): queued by the API, run by the scheduler process.

- `stress_runs`: the programme, its assumptions (canonical JSON), status queued | running |
  done | failed, progress 0-100, results (JSON, present once done), the error of a failed run,
  attempts, the runner (the scheduler holding it) and its heartbeat (a run whose heartbeat
  stops is retried by another scheduler), who asked and when.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stress_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("assumptions_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("progress_pct", sa.Integer(), nullable=False),
        sa.Column("results_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(length=40), nullable=True),
        sa.Column("created_by_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status <> 'done' OR results_json IS NOT NULL",
                           name=op.f("ck_stress_runs_done_has_results")),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_stress_runs_status")),
        sa.CheckConstraint("progress_pct BETWEEN 0 AND 100", name=op.f("ck_stress_runs_progress_pct")),
        sa.ForeignKeyConstraint(["created_by_key_id"], ["api_keys.id"],
                                name=op.f("fk_stress_runs_created_by_key_id_api_keys")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_stress_runs_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stress_runs")))
    op.create_index(op.f("ix_stress_runs_created_by_key_id"), "stress_runs", ["created_by_key_id"], unique=False)
    op.create_index(op.f("ix_stress_runs_program_id"), "stress_runs", ["program_id"], unique=False)
    op.create_index(op.f("ix_stress_runs_status_id"), "stress_runs", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("stress_runs")
