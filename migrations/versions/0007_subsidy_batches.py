"""subsidy batches: drafts, approval by a second key, posting, cancellation, reversal.

- `subsidy_batches`: one per programme, period and attempt; status draft → approved → posted
  (→ reversed) or draft → cancelled. `uq_subsidy_batches_live` (partial unique index, both
  databases): one live batch (draft, approved, posted) per programme and period.
  `ck_subsidy_batches_checker_not_maker`: the approving key is never the drafting key.
  `ck_subsidy_batches_approved_before_posting`: no batch past draft without an approval time.
- `subsidy_lines` (bulk-written: COPY on PostgreSQL), `subsidy_excluded`: what a draft computed;
  `ck_subsidy_lines_amount_within_formula`: 0 ≤ amount ≤ computed.
- `subsidy_batch_entries`: the journal entries a batch posted (and their reversals), per line.
See docs/DATABASE_RULES.md.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = "status IN ('draft', 'approved', 'posted')"
STATUSES = "status IN ('draft', 'approved', 'posted', 'cancelled', 'reversed')"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(column: str, target: str, nullable: bool = False, type_=sa.Integer()) -> sa.Column:
    return sa.Column(column, type_, sa.ForeignKey(f"{target}.id"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subsidy_batches",
        sa.Column("id", BIG_ID, primary_key=True),
        _fk("program_id", "programs"), _fk("program_version_id", "program_versions"),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        _fk("institution_id", "institutions"),
        _fk("created_by_key_id", "api_keys", True), _fk("approved_by_key_id", "api_keys", True),
        _fk("posted_by_key_id", "api_keys", True), _fk("closed_by_key_id", "api_keys", True),
        _ts("created_at"), _ts("approved_at", True), _ts("posted_at", True), _ts("closed_at", True),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("excluded_count", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(STATUSES, name=op.f("ck_subsidy_batches_status")),
        sa.CheckConstraint("total_fen >= 0", name=op.f("ck_subsidy_batches_total_not_negative")),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_subsidy_batches_period_window")),
        sa.CheckConstraint("approved_by_key_id IS NULL OR created_by_key_id IS NULL "
                           "OR approved_by_key_id <> created_by_key_id",
                           name=op.f("ck_subsidy_batches_checker_not_maker")),
        sa.CheckConstraint("status IN ('draft', 'cancelled') OR approved_at IS NOT NULL",
                           name=op.f("ck_subsidy_batches_approved_before_posting")),
    )
    for column in ("program_id", "program_version_id", "institution_id", "created_by_key_id",
                   "approved_by_key_id", "posted_by_key_id", "closed_by_key_id"):
        op.create_index(op.f(f"ix_subsidy_batches_{column}"), "subsidy_batches", [column])
    op.create_index("uq_subsidy_batches_live", "subsidy_batches", ["program_id", "period"], unique=True,
                    postgresql_where=sa.text(LIVE), sqlite_where=sa.text(LIVE))

    op.create_table(
        "subsidy_lines",
        sa.Column("id", BIG_ID, primary_key=True),
        _fk("batch_id", "subsidy_batches", type_=BIG_ID), _fk("loan_id", "loans", type_=BIG_ID),
        _fk("borrower_id", "borrowers"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("method", sa.String(30), nullable=False),
        sa.Column("basis_fen", sa.BigInteger(), nullable=False),
        sa.Column("computed_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("capped_by", sa.String(120), nullable=False),
        sa.CheckConstraint("amount_fen >= 0 AND amount_fen <= computed_fen",
                           name=op.f("ck_subsidy_lines_amount_within_formula")),
    )
    for column in ("batch_id", "loan_id", "borrower_id"):
        op.create_index(op.f(f"ix_subsidy_lines_{column}"), "subsidy_lines", [column])

    op.create_table(
        "subsidy_excluded",
        sa.Column("id", BIG_ID, primary_key=True),
        _fk("batch_id", "subsidy_batches", type_=BIG_ID), _fk("loan_id", "loans", type_=BIG_ID),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
    )
    for column in ("batch_id", "loan_id"):
        op.create_index(op.f(f"ix_subsidy_excluded_{column}"), "subsidy_excluded", [column])

    op.create_table(
        "subsidy_batch_entries",
        sa.Column("entry_id", BIG_ID, sa.ForeignKey("entries.id"), primary_key=True),
        _fk("batch_id", "subsidy_batches", type_=BIG_ID), _fk("line_id", "subsidy_lines", type_=BIG_ID),
        sa.Column("reversal", sa.Boolean(), nullable=False),
    )
    for column in ("batch_id", "line_id"):
        op.create_index(op.f(f"ix_subsidy_batch_entries_{column}"), "subsidy_batch_entries", [column])


def downgrade() -> None:
    op.drop_table("subsidy_batch_entries")
    op.drop_table("subsidy_excluded")
    op.drop_table("subsidy_lines")
    op.drop_table("subsidy_batches")
