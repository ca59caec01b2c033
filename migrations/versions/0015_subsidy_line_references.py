"""subsidy lines on PostgreSQL: their references checked once per statement, not once per row.

A draft COPYs up to millions of lines. Each foreign key checked every row with a lookup and a
row lock (FOR KEY SHARE) of its loan, borrower and batch: at 1,000,000 loans three quarters of
the store's time. The same guarantees, set-based (SQLite keeps its foreign keys):
- `subsidy_lines_refer_insert` / `_update` (AFTER INSERT / UPDATE, per statement, on the new
  rows): every line's batch exists (and is locked FOR KEY SHARE, as the key did), and its loan
  exists with the line's borrower as its borrower (stronger than the two keys were: the line's
  borrower is its loan's). Refused with SQLSTATE 23503, as a key would be.
- `subsidy_lines_referred_*` (AFTER DELETE / UPDATE, per statement, on subsidy_batches, loans
  and borrowers): a batch, loan or borrower some line refers to cannot be deleted or renumbered.
  A delete racing an uncommitted draft is still refused by the keys loans and borrowers already
  have (entries name the loan; loans name the borrower) - and the draft's batch is its own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

KEYS = (("fk_subsidy_lines_batch_id_subsidy_batches", "batch_id", "subsidy_batches"),
        ("fk_subsidy_lines_loan_id_loans", "loan_id", "loans"),
        ("fk_subsidy_lines_borrower_id_borrowers", "borrower_id", "borrowers"))

REFER = """
CREATE FUNCTION subsidy_lines_refer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM subsidy_batches WHERE id IN (SELECT DISTINCT batch_id FROM new_lines) FOR KEY SHARE;
    SELECT n.batch_id INTO bad FROM (SELECT DISTINCT batch_id FROM new_lines) n
    WHERE NOT EXISTS (SELECT 1 FROM subsidy_batches b WHERE b.id = n.batch_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ipledger: subsidy lines for batch % are refused: no such batch', bad.batch_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.loan_id, n.borrower_id INTO bad FROM new_lines n
    WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = n.loan_id AND l.borrower_id = n.borrower_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ipledger: a subsidy line for loan % and borrower % is refused: no such loan of that borrower',
            bad.loan_id, bad.borrower_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
"""
# TG_ARGV[0]: the column of subsidy_lines naming the table the trigger is on.
REFERRED = """
CREATE FUNCTION subsidy_lines_referred() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone bigint;
BEGIN
    EXECUTE format('SELECT o.id FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM %I t WHERE t.id = o.id) '
                   'AND EXISTS (SELECT 1 FROM subsidy_lines s WHERE s.%I = o.id) LIMIT 1',
                   TG_TABLE_NAME, TG_ARGV[0]) INTO gone;
    IF gone IS NOT NULL THEN
        RAISE EXCEPTION 'ipledger: % of % row % is refused: subsidy lines refer to it', TG_OP, TG_TABLE_NAME, gone
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(REFER)
    op.execute(REFERRED)
    for event in ("INSERT", "UPDATE"):
        op.execute(f"CREATE TRIGGER subsidy_lines_refer_{event.lower()} AFTER {event} ON subsidy_lines "
                   "REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION subsidy_lines_refer()")
    for name, column, table in KEYS:
        op.drop_constraint(name, "subsidy_lines", type_="foreignkey")
        for event in ("DELETE", "UPDATE"):
            op.execute(f"CREATE TRIGGER subsidy_lines_referred_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION subsidy_lines_referred('{column}')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column, table in KEYS:
        for event in ("delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subsidy_lines_referred_{event} ON {table}")
        op.create_foreign_key(name, "subsidy_lines", table, [column], ["id"])
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS subsidy_lines_refer_{event} ON subsidy_lines")
    op.execute("DROP FUNCTION IF EXISTS subsidy_lines_referred()")
    op.execute("DROP FUNCTION IF EXISTS subsidy_lines_refer()")
