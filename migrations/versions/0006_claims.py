"""claims, their shares and the cap usage later claims read (issue 8).

- `claims`: one per default, with the terms version and every figure it was computed from;
  one live (not withdrawn) claim per loan (`uq_claims_live_loan`, both databases).
- `claim_shares`: each party's ratio, computed share (before caps), owed amount and its cuts.
- `cap_usage`: per programme, party, cap scope and key, what live claims owe; a claim locks the
  rows it reads so two claims at once never use the same remaining allowance.
- PostgreSQL: `claims_split_sums` (deferred constraint trigger) refuses at COMMIT a claim whose
  shares plus the bank's retained loss differ from its loss base. Listed in docs/DATABASE_RULES.md.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SPLIT_SUMS = """
CREATE FUNCTION ipledger_check_claim_split() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE owed bigint;
BEGIN
  SELECT COALESCE(SUM(amount_fen), 0) INTO owed FROM claim_shares WHERE claim_id = NEW.id;
  IF owed + NEW.bank_retained_fen <> NEW.loss_base_fen THEN
    RAISE EXCEPTION 'ipledger: claim % does not split its loss base: shares % + bank retained % <> %',
      NEW.id, owed, NEW.bank_retained_fen, NEW.loss_base_fen USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER claims_split_sums AFTER INSERT ON claims
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ipledger_check_claim_split();
"""


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "claims", _id(),
        sa.Column("loan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("loans.id", name="fk_claims_loan_id_loans"), nullable=False),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id", name="fk_claims_program_id_programs"), nullable=False),
        sa.Column("program_version_id", sa.Integer(), sa.ForeignKey("program_versions.id", name="fk_claims_program_version_id_program_versions"), nullable=False),
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("institutions.id", name="fk_claims_bank_id_institutions"), nullable=False),
        sa.Column("borrower_id", sa.Integer(), sa.ForeignKey("borrowers.id", name="fk_claims_borrower_id_borrowers"), nullable=False),
        sa.Column("classified_on", sa.Date(), nullable=False),
        sa.Column("claim_year", sa.Integer(), nullable=False),
        sa.Column("overdue_days", sa.Integer(), nullable=False),
        sa.Column("outstanding_principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("overdue_interest_fen", sa.BigInteger(), nullable=False),
        sa.Column("loss_base_fen", sa.BigInteger(), nullable=False),
        sa.Column("covered_fen", sa.BigInteger(), nullable=False),
        sa.Column("covered_reason", sa.String(40), nullable=True),
        sa.Column("borrower_year_principal_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("bank_retained_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("entries.id", name="fk_claims_entry_id_entries"), nullable=False),
        sa.Column("withdrawal_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("entries.id", name="fk_claims_withdrawal_entry_id_entries"), nullable=True),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        sa.Column("created_by_key_id", sa.Integer(), sa.ForeignKey("api_keys.id", name="fk_claims_created_by_key_id_api_keys"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("overdue_days >= 0 AND overdue_interest_fen >= 0 "
                           "AND outstanding_principal_fen >= 0", name="ck_claims_facts_non_negative"),
        sa.CheckConstraint("covered_fen >= 0 AND covered_fen <= loss_base_fen", name="ck_claims_covered_within_base"),
        sa.CheckConstraint("bank_retained_fen >= 0 AND bank_retained_fen <= loss_base_fen",
                           name="ck_claims_retained_within_base"),
        sa.CheckConstraint("status IN ('open', 'settled', 'withdrawn')", name="ck_claims_status"),
        sa.CheckConstraint("(status = 'withdrawn') = (withdrawal_entry_id IS NOT NULL)",
                           name="ck_claims_withdrawn_has_reversal"),
        sa.UniqueConstraint("entry_id", name="uq_claims_entry_id"),
        sa.UniqueConstraint("withdrawal_entry_id", name="uq_claims_withdrawal_entry_id"),
    )
    for column in ("loan_id", "program_id", "program_version_id", "bank_id", "borrower_id",
                   "created_by_key_id"):
        op.create_index(f"ix_claims_{column}", "claims", [column])
    op.create_index("uq_claims_live_loan", "claims", ["loan_id"], unique=True,
                    postgresql_where=sa.text("status <> 'withdrawn'"),
                    sqlite_where=sa.text("status <> 'withdrawn'"))
    op.create_table(
        "claim_shares", _id(),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("claims.id", name="fk_claim_shares_claim_id_claims"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id", name="fk_claim_shares_institution_id_institutions"), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("ratio", sa.String(20), nullable=False),
        sa.Column("computed_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("pays_first", sa.Boolean(), nullable=False),
        sa.Column("cuts_json", sa.Text(), nullable=False),
        sa.UniqueConstraint("claim_id", "position", name="uq_claim_shares_claim_id_position"),
        sa.UniqueConstraint("claim_id", "institution_id", name="uq_claim_shares_claim_id_institution_id"),
        sa.CheckConstraint("amount_fen >= 0 AND amount_fen <= computed_fen",
                           name="ck_claim_shares_amount_within_computed"),
    )
    op.create_index("ix_claim_shares_claim_id", "claim_shares", ["claim_id"])
    op.create_index("ix_claim_shares_institution_id", "claim_shares", ["institution_id"])
    op.create_table(
        "cap_usage", _id(),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id", name="fk_cap_usage_program_id_programs"), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id", name="fk_cap_usage_institution_id_institutions"), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("scope_key", sa.String(60), nullable=False),
        sa.Column("used_fen", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("program_id", "institution_id", "scope", "scope_key",
                            name="uq_cap_usage_program_id_institution_id_scope_scope_key"),
        sa.CheckConstraint("used_fen >= 0", name="ck_cap_usage_used_non_negative"),
        sa.CheckConstraint("scope IN ('borrower_year', 'bank_year', 'program_year', 'all')",
                           name="ck_cap_usage_scope"),
    )
    op.create_index("ix_cap_usage_institution_id", "cap_usage", ["institution_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SPLIT_SUMS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS claims_split_sums ON claims")
        op.execute("DROP FUNCTION IF EXISTS ipledger_check_claim_split()")
    op.drop_table("cap_usage")
    op.drop_table("claim_shares")
    op.drop_table("claims")
