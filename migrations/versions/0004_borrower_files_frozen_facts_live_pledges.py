"""borrower records per bank, dated facts frozen by loans, live patent pledges, version lookups.

- `borrowers` become banks' customer files: `bank_id` (NOT NULL) and `as_of`, unique
  (bank_id, credit_code) instead of unique credit_code (indexed, not unique: the code still
  names one enterprise across banks).
  Existing records (one per credit code) become the record of the bank that first lent to the
  borrower (lowest loan id); a borrower nobody lent to, of the bank whose key posted its first
  facts; otherwise of the first bank registered. Their loans, accounts and history keep pointing
  at the same row, so nothing in the journal moves. Another bank lending to such a borrower
  registers its own record (POST /v1/borrowers) before its next loan; its existing loans stay
  bound to the facts they froze.
- `borrower_facts.as_of`: the day a version of facts is stated for. Existing versions get the
  UTC date they were recorded (what the old code took them to mean: the facts of that day).
- `loans.borrower_facts_id`: the version a loan froze. Existing loans froze the version that
  was current when they were created: the latest recorded up to the loan's creation (else the
  borrower's first).
- `pledges.released_on`: the day a pledge ended (its loan's closed_on; NULL while the loan is
  active or defaulted), and a unique index on patent numbers of pledges not released: the
  database refuses a second live pledge of one patent (DOMAIN.md §1). A book that already holds
  such double pledges cannot be upgraded silently: the upgrade stops and names them.
- `ix_loans_program_id_start_date`: the latest start date bound to a programme, read when a new
  version is added.
On SQLite the borrowers, borrower_facts and loans tables are rebuilt (batch mode; foreign keys
are off during migrations and checked before commit); the journal tables are not touched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = "0003"
branch_labels = None
depends_on = None

LIVE_PATENT = "kind = 'patent' AND released_on IS NULL"
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _refuse_existing_double_pledges()
    with op.batch_alter_table("borrower_facts") as batch_op:
        batch_op.add_column(sa.Column("as_of", sa.Date(), nullable=True))
    op.execute(f"UPDATE borrower_facts SET as_of = {_utc_date('recorded_at')}")
    with op.batch_alter_table("borrower_facts") as batch_op:
        batch_op.alter_column("as_of", existing_type=sa.Date(), nullable=False)

    with op.batch_alter_table("borrowers") as batch_op:
        batch_op.add_column(sa.Column("bank_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("as_of", sa.Date(), nullable=True))
    _assign_existing_borrowers()
    with op.batch_alter_table("borrowers") as batch_op:
        batch_op.alter_column("bank_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("as_of", existing_type=sa.Date(), nullable=False)
        batch_op.create_foreign_key(op.f("fk_borrowers_bank_id_institutions"), "institutions",
                                    ["bank_id"], ["id"])
        batch_op.drop_constraint("uq_borrowers_credit_code", type_="unique")
        batch_op.create_unique_constraint(op.f("uq_borrowers_bank_id_credit_code"), ["bank_id", "credit_code"])
        batch_op.create_index(op.f("ix_borrowers_credit_code"), ["credit_code"], unique=False)

    with op.batch_alter_table("loans") as batch_op:
        batch_op.add_column(sa.Column("borrower_facts_id", BIG_ID, nullable=True))
    op.execute("""
        UPDATE loans SET borrower_facts_id = COALESCE(
            (SELECT MAX(f.id) FROM borrower_facts f
             WHERE f.borrower_id = loans.borrower_id AND f.recorded_at <= loans.created_at),
            (SELECT MIN(f.id) FROM borrower_facts f WHERE f.borrower_id = loans.borrower_id))""")
    with op.batch_alter_table("loans") as batch_op:
        batch_op.alter_column("borrower_facts_id", existing_type=BIG_ID, nullable=False)
        batch_op.create_foreign_key(op.f("fk_loans_borrower_facts_id_borrower_facts"), "borrower_facts",
                                    ["borrower_facts_id"], ["id"])
        batch_op.create_index(op.f("ix_loans_borrower_facts_id"), ["borrower_facts_id"], unique=False)
        batch_op.create_index(op.f("ix_loans_program_id_start_date"), ["program_id", "start_date"], unique=False)

    with op.batch_alter_table("pledges") as batch_op:
        batch_op.add_column(sa.Column("released_on", sa.Date(), nullable=True))
    op.execute("UPDATE pledges SET released_on = (SELECT loans.closed_on FROM loans WHERE "
               "loans.id = pledges.loan_id AND loans.status = 'closed')")
    op.create_index(op.f("ix_pledges_number"), "pledges", ["number"], unique=False)
    op.create_index("uq_pledges_live_patent", "pledges", ["number"], unique=True,
                    postgresql_where=sa.text(LIVE_PATENT), sqlite_where=sa.text(LIVE_PATENT))


def downgrade() -> None:
    _refuse_shared_credit_codes()
    op.drop_index("uq_pledges_live_patent", table_name="pledges")
    op.drop_index(op.f("ix_pledges_number"), table_name="pledges")
    with op.batch_alter_table("pledges") as batch_op:
        batch_op.drop_column("released_on")

    with op.batch_alter_table("loans") as batch_op:
        batch_op.drop_index(op.f("ix_loans_program_id_start_date"))
        batch_op.drop_index(op.f("ix_loans_borrower_facts_id"))
        batch_op.drop_constraint(op.f("fk_loans_borrower_facts_id_borrower_facts"), type_="foreignkey")
        batch_op.drop_column("borrower_facts_id")

    with op.batch_alter_table("borrowers") as batch_op:
        batch_op.drop_index(op.f("ix_borrowers_credit_code"))
        batch_op.drop_constraint(op.f("uq_borrowers_bank_id_credit_code"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_borrowers_credit_code"), ["credit_code"])
        batch_op.drop_constraint(op.f("fk_borrowers_bank_id_institutions"), type_="foreignkey")
        batch_op.drop_column("as_of")
        batch_op.drop_column("bank_id")

    with op.batch_alter_table("borrower_facts") as batch_op:
        batch_op.drop_column("as_of")


def _utc_date(column: str) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"date({column})"  # stored as UTC text 'YYYY-MM-DD HH:MM:SS...'
    return f"CAST({column} AT TIME ZONE 'UTC' AS DATE)"


def _assign_existing_borrowers() -> None:
    """Each existing record goes to its first lender, else to the bank whose key posted its
    first facts, else to the first bank; its current facts' date is its latest version's."""
    op.execute("""
        UPDATE borrowers SET
          bank_id = COALESCE(
            (SELECT l.bank_id FROM loans l WHERE l.borrower_id = borrowers.id ORDER BY l.id LIMIT 1),
            (SELECT k.institution_id FROM borrower_facts f
               JOIN api_keys k ON k.id = f.recorded_by_key_id
               JOIN institutions i ON i.id = k.institution_id
             WHERE f.borrower_id = borrowers.id AND i.kind = 'bank' ORDER BY f.id LIMIT 1),
            (SELECT MIN(i.id) FROM institutions i WHERE i.kind = 'bank')),
          as_of = (SELECT MAX(f.as_of) FROM borrower_facts f WHERE f.borrower_id = borrowers.id)""")
    orphans = op.get_bind().execute(sa.text(
        "SELECT credit_code FROM borrowers WHERE bank_id IS NULL OR as_of IS NULL LIMIT 5")).scalars().all()
    if orphans:
        raise RuntimeError(f"borrowers {orphans} have no bank to belong to (no bank is registered) or "
                           "no recorded facts; register a bank (ipledger institutions create ... --kind "
                           "bank) and upgrade again")


def _refuse_existing_double_pledges() -> None:
    rows = op.get_bind().execute(sa.text("""
        SELECT p.number, MIN(p.loan_id), MAX(p.loan_id) FROM pledges p JOIN loans l ON l.id = p.loan_id
        WHERE p.kind = 'patent' AND l.status <> 'closed'
        GROUP BY p.number HAVING COUNT(*) > 1 ORDER BY p.number LIMIT 10""")).all()
    if rows:
        listed = "; ".join(f"{number} (loans {first} and {last})" for number, first, last in rows)
        raise RuntimeError(f"patents pledged by two live loans: {listed}. The patent office registers "
                           "one pledge at a time: correct these loans, then upgrade again")


def _refuse_shared_credit_codes() -> None:
    shared = op.get_bind().execute(sa.text(
        "SELECT credit_code FROM borrowers GROUP BY credit_code HAVING COUNT(*) > 1 LIMIT 5")).scalars().all()
    if shared:
        raise RuntimeError(f"credit codes {shared} have records at several banks; revision 0002 holds "
                           "one record per code, so this book cannot be downgraded without merging them")
