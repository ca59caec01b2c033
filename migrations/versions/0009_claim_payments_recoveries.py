"""claim payments and recoveries (issue 8).

- `claim_shares.paid_fen`: what the party has paid on its share; never above what it owes
  (`ck_claim_shares_paid_within_amount`), so no overpayment survives a commit on either database.
  `claims.settled_on`: the day the last share was paid in full.
- `claim_payments`: one per payment, with the journal entry that moved the money; a payer's
  reference is unique to it (`uq_claim_payments_payer_reference`), which statements match on.
- `recoveries`: net recovery = gross - costs (`ck_recoveries_net`), with its journal entry.
- `recovery_shares`: the net recovery returned to each party that bore the loss (the bank
  included), and to whom it went (`to_institution_id`, the treasury under `recoveries_to`).
- PostgreSQL: `recoveries_split_sums` (deferred constraint trigger) refuses at COMMIT a recovery
  whose returned parts differ from its net; `postings_fund_not_negative` (statement trigger)
  refuses postings that take a programme fund's balance below zero, locking the fund account
  first so two payments at once cannot both spend its last yuan. Listed in docs/DATABASE_RULES.md.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SPLIT_SUMS = """
CREATE FUNCTION ipledger_check_recovery_split() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE returned bigint;
BEGIN
  SELECT COALESCE(SUM(amount_fen), 0) INTO returned FROM recovery_shares WHERE recovery_id = NEW.id;
  IF returned <> NEW.net_fen THEN
    RAISE EXCEPTION 'ipledger: recovery % does not return its net: parts % <> net %',
      NEW.id, returned, NEW.net_fen USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER recoveries_split_sums AFTER INSERT ON recoveries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ipledger_check_recovery_split();
"""

# The fund (accounts.purpose 'fund_balance') never goes negative. One check per INSERT or COPY
# statement, over its new credits to a fund only (a debit cannot lower it), so other postings
# pay one join on the transition table. The fund account row is locked (FOR UPDATE: no UPDATE
# happens, so the immutability trigger is not involved) before the balance is summed: under
# READ COMMITTED the SUM then sees every payment committed before ours, so of two concurrent
# payments the second sees the first (SERIALIZABLE transactions are kept apart by SSI).
FUND_NOT_NEGATIVE = """
CREATE FUNCTION ipledger_check_fund_not_negative() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE fund_id bigint; balance bigint;
BEGIN
  FOR fund_id IN
    SELECT DISTINCT a.id FROM new_postings n JOIN accounts a ON a.id = n.account_id
     WHERE n.amount_fen < 0 AND a.purpose = 'fund_balance' ORDER BY a.id
  LOOP
    PERFORM 1 FROM accounts WHERE id = fund_id FOR UPDATE;
    SELECT COALESCE(SUM(amount_fen), 0) INTO balance FROM postings WHERE account_id = fund_id;
    IF balance < 0 THEN
      RAISE EXCEPTION 'ipledger: the fund account % would go negative (balance % fen): a fund pays only what it holds',
        fund_id, balance USING ERRCODE = 'check_violation';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
CREATE TRIGGER postings_fund_not_negative AFTER INSERT ON postings
  REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT
  EXECUTE FUNCTION ipledger_check_fund_not_negative();
"""

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", BIG, primary_key=True)


def _fk(column: str, table: str, target: str, *, big: bool = True, nullable: bool = False) -> sa.Column:
    kind = BIG if big else sa.Integer()
    return sa.Column(column, kind, sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}"),
                     nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("claim_shares") as batch:
        batch.add_column(sa.Column("paid_fen", sa.BigInteger(), nullable=False, server_default="0"))
        batch.create_check_constraint("ck_claim_shares_paid_within_amount", "paid_fen >= 0 AND paid_fen <= amount_fen")
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("settled_on", sa.Date(), nullable=True))
    op.create_table(
        "claim_payments", _id(),
        _fk("claim_id", "claim_payments", "claims"),
        _fk("share_id", "claim_payments", "claim_shares"),
        _fk("institution_id", "claim_payments", "institutions", big=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(120), nullable=True),
        _fk("entry_id", "claim_payments", "entries"),
        _fk("created_by_key_id", "claim_payments", "api_keys", big=False, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name="ck_claim_payments_amount_positive"),
        sa.UniqueConstraint("entry_id", name="uq_claim_payments_entry_id"),
    )
    for column in ("claim_id", "share_id", "institution_id"):
        op.create_index(f"ix_claim_payments_{column}", "claim_payments", [column])
    op.create_index("uq_claim_payments_payer_reference", "claim_payments",
                    ["institution_id", "reference"], unique=True,
                    postgresql_where=sa.text("reference IS NOT NULL"),
                    sqlite_where=sa.text("reference IS NOT NULL"))
    op.create_table(
        "recoveries", _id(),
        _fk("loan_id", "recoveries", "loans"),
        _fk("claim_id", "recoveries", "claims"),
        _fk("bank_id", "recoveries", "institutions", big=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("gross_fen", sa.BigInteger(), nullable=False),
        sa.Column("costs_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(120), nullable=True),
        _fk("entry_id", "recoveries", "entries", nullable=True),  # none when the net is zero
        _fk("created_by_key_id", "recoveries", "api_keys", big=False, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("gross_fen >= 0 AND costs_fen >= 0 AND net_fen >= 0 "
                           "AND net_fen = gross_fen - costs_fen", name="ck_recoveries_net"),
        sa.CheckConstraint("source IN ('auction', 'transfer', 'license', 'fund_purchase', 'borrower')",
                           name="ck_recoveries_source"),
        sa.UniqueConstraint("entry_id", name="uq_recoveries_entry_id"),
    )
    for column in ("loan_id", "claim_id", "bank_id"):
        op.create_index(f"ix_recoveries_{column}", "recoveries", [column])
    op.create_table(
        "recovery_shares", _id(),
        _fk("recovery_id", "recovery_shares", "recoveries"),
        sa.Column("position", sa.Integer(), nullable=False),  # terms order, the bank last
        _fk("institution_id", "recovery_shares", "institutions", big=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("borne_fen", sa.BigInteger(), nullable=False),  # what the party bore, as split
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        _fk("to_institution_id", "recovery_shares", "institutions", big=False),
        sa.UniqueConstraint("recovery_id", "position", name="uq_recovery_shares_recovery_id_position"),
        sa.CheckConstraint("amount_fen >= 0 AND borne_fen >= 0", name="ck_recovery_shares_non_negative"),
    )
    op.create_index("ix_recovery_shares_recovery_id", "recovery_shares", ["recovery_id"])
    op.create_index("ix_recovery_shares_institution_id", "recovery_shares", ["institution_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SPLIT_SUMS)
        op.execute(FUND_NOT_NEGATIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS postings_fund_not_negative ON postings")
        op.execute("DROP FUNCTION IF EXISTS ipledger_check_fund_not_negative()")
        op.execute("DROP TRIGGER IF EXISTS recoveries_split_sums ON recoveries")
        op.execute("DROP FUNCTION IF EXISTS ipledger_check_recovery_split()")
    op.drop_table("recovery_shares")
    op.drop_table("recoveries")
    op.drop_table("claim_payments")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("settled_on")
    with op.batch_alter_table("claim_shares") as batch:
        batch.drop_constraint("ck_claim_shares_paid_within_amount", type_="check")
        batch.drop_column("paid_fen")
