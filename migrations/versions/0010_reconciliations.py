"""reconciliations of party statements against claim payments (issue 8 item 5).

- `reconciliations`: one per statement a party (insurer, guarantor, pool) sends: its
  institution, statement date, how many lines it had.
- `reconciliation_lines`: each statement line and each ledger payment the statement lacks, with
  its class (matched, amount_mismatch, missing_from_statement, unknown_to_ledger, duplicate) and
  both figures side by side. Check constraints keep a class consistent with its figures on both
  databases (a matched line agrees on amount and claim, an unknown line has no payment, a missing
  line no statement line); listed in docs/DATABASE_RULES.md.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CLASSES = ("matched", "amount_mismatch", "missing_from_statement", "unknown_to_ledger", "duplicate")


def _fk(column: str, table: str, target: str, *, big: bool = True, nullable: bool = False) -> sa.Column:
    kind = BIG if big else sa.Integer()
    return sa.Column(column, kind, sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}"),
                     nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", BIG, primary_key=True),
        _fk("institution_id", "reconciliations", "institutions", big=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        _fk("created_by_key_id", "reconciliations", "api_keys", big=False, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("line_count >= 0", name="ck_reconciliations_line_count_non_negative"),
    )
    for column in ("institution_id", "created_by_key_id"):
        op.create_index(f"ix_reconciliations_{column}", "reconciliations", [column])
    classes = ", ".join(f"'{name}'" for name in CLASSES)
    op.create_table(
        "reconciliation_lines",
        sa.Column("id", BIG, primary_key=True),
        _fk("reconciliation_id", "reconciliation_lines", "reconciliations"),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(120), nullable=True),
        sa.Column("statement_claim_id", sa.BigInteger(), nullable=True),
        sa.Column("statement_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("statement_paid_on", sa.Date(), nullable=True),
        _fk("payment_id", "reconciliation_lines", "claim_payments", nullable=True),
        _fk("ledger_claim_id", "reconciliation_lines", "claims", nullable=True),
        sa.Column("ledger_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("ledger_paid_on", sa.Date(), nullable=True),
        sa.Column("differences", sa.String(40), nullable=False),
        sa.UniqueConstraint("reconciliation_id", "line_no", name="uq_reconciliation_lines_reconciliation_id_line_no"),
        sa.CheckConstraint(f"outcome IN ({classes})", name="ck_reconciliation_lines_outcome"),
        sa.CheckConstraint("(outcome = 'missing_from_statement') = (line_no IS NULL)",
                           name="ck_reconciliation_lines_line_no_unless_missing"),
        sa.CheckConstraint("line_no IS NULL OR (statement_amount_fen IS NOT NULL AND statement_paid_on IS NOT NULL "
                           "AND statement_claim_id IS NOT NULL)", name="ck_reconciliation_lines_statement_figures"),
        sa.CheckConstraint("(payment_id IS NULL) = (ledger_amount_fen IS NULL) AND "
                           "(payment_id IS NULL) = (ledger_paid_on IS NULL) AND "
                           "(payment_id IS NULL) = (ledger_claim_id IS NULL)",
                           name="ck_reconciliation_lines_ledger_figures"),
        sa.CheckConstraint("outcome NOT IN ('matched', 'amount_mismatch', 'missing_from_statement') "
                           "OR payment_id IS NOT NULL", name="ck_reconciliation_lines_ledger_side_present"),
        sa.CheckConstraint("outcome <> 'unknown_to_ledger' OR payment_id IS NULL",
                           name="ck_reconciliation_lines_unknown_has_no_payment"),
        sa.CheckConstraint("outcome <> 'matched' OR (statement_amount_fen = ledger_amount_fen "
                           "AND statement_claim_id = ledger_claim_id)", name="ck_reconciliation_lines_matched_agrees"),
        sa.CheckConstraint("outcome <> 'amount_mismatch' OR statement_amount_fen <> ledger_amount_fen "
                           "OR statement_claim_id <> ledger_claim_id", name="ck_reconciliation_lines_mismatch_differs"),
    )
    for column in ("reconciliation_id", "payment_id", "ledger_claim_id"):
        op.create_index(f"ix_reconciliation_lines_{column}", "reconciliation_lines", [column])


def downgrade() -> None:
    op.drop_table("reconciliation_lines")
    op.drop_table("reconciliations")
