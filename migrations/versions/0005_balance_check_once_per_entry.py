"""The balance check runs once per entry, not once per entry and once per posting.

Migration 0001 made `ipledger_check_entry_balanced()` a deferred constraint trigger on both
`entries` and `postings`: at COMMIT an entry of three postings was checked four times (the
issue-11 profile put the per-row balance trigger at 41% of a loan's PostgreSQL CPU). Since
migration 0003 the database refuses postings for an entry created by another transaction
(`postings_same_transaction`), so every posting belongs to an entry inserted in its own
transaction, and that entry's own deferred check at COMMIT sees all of its postings. The
`postings_balanced` trigger therefore adds no protection: an unbalanced entry written by raw
SQL is still refused at COMMIT (tests/ledger/test_database_rules.py), and postings smuggled into
an older entry are still refused at once. PostgreSQL only; SQLite never had the deferred check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS postings_balanced ON postings")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                   "EXECUTE FUNCTION ipledger_check_entry_balanced()")
