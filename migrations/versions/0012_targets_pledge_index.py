"""Targets: the index the per-loan pledge figures are read from.

`ledger.targets` reads, per loan, its earliest pledge registration and its pledge count
(`min(registered_on)`, `count(*)` grouped by `loan_id`). An index on (loan_id, registered_on)
answers that from the index alone (an index-only scan in loan order, no heap reads, no hash of
every loan), which `bench/targets.py` measured on 10,000,000 loans; it replaces the index on
`loan_id` alone, whose lookups (a loan's pledges, the foreign key) it serves as well.

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-03
"""
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pledges_loan_id_registered_on", "pledges", ["loan_id", "registered_on"])
    op.drop_index("ix_pledges_loan_id", table_name="pledges")


def downgrade() -> None:
    op.create_index("ix_pledges_loan_id", "pledges", ["loan_id"])
    op.drop_index("ix_pledges_loan_id_registered_on", table_name="pledges")
