"""subsidy lines: only the index the queries use, so a draft's COPY of a million lines
maintains one secondary index instead of three.

- `ix_subsidy_lines_loan_id`, `ix_subsidy_lines_borrower_id` dropped: nothing reads lines by
  loan or borrower alone (every query starts from a batch: its lines page by page, the lines it
  posts, and `posted_prior`, which joins the programme's posted batches first). Loans and
  borrowers are never deleted (the journal's entries and the loans refer to them), so no delete
  needs them to find referring lines. The foreign keys stay: every line names a real loan,
  borrower and batch.
- `ix_subsidy_lines_batch_id` becomes `ix_subsidy_lines_batch_id_id` (batch_id, id): the lines
  of a batch in id order, which is how they are paged (`/lines`, the CSV) and posted; a draft's
  rows append at its right-hand edge.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subsidy_lines_loan_id", table_name="subsidy_lines")
    op.drop_index("ix_subsidy_lines_borrower_id", table_name="subsidy_lines")
    op.create_index("ix_subsidy_lines_batch_id_id", "subsidy_lines", ["batch_id", "id"])
    op.drop_index("ix_subsidy_lines_batch_id", table_name="subsidy_lines")


def downgrade() -> None:
    op.create_index("ix_subsidy_lines_batch_id", "subsidy_lines", ["batch_id"])
    op.drop_index("ix_subsidy_lines_batch_id_id", table_name="subsidy_lines")
    op.create_index("ix_subsidy_lines_borrower_id", "subsidy_lines", ["borrower_id"])
    op.create_index("ix_subsidy_lines_loan_id", "subsidy_lines", ["loan_id"])
