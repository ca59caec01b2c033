"""the journal's guarantees in the database: postings only with their entry, immutable accounts
in the posting's currency, reversals that mirror, seals that cover accounts.

Each rule is documented in docs/DATABASE_RULES.md (what it refuses, why, how to see it fire):
- `entries.created_xact` (PostgreSQL: the creating top-level transaction, by column default)
  and the statement trigger `postings_same_transaction`: postings are refused for an entry
  another transaction created. SQLite has no transaction ids: `postings_entry_posted_earlier`
  refuses postings for a sealed entry, or for one older than the newest entry with postings
  (SQLite has one writer at a time, so a transaction's postings always follow every earlier
  transaction's).
- accounts are immutable (row and TRUNCATE triggers): every column, so a column added later
  (a claim's sub-ledger `claim_id`) is covered without touching these triggers.
- postings' key to accounts is (account_id, currency) -> accounts (id, currency) on PostgreSQL,
  at the cost of the key it replaces; SQLite keeps its key on account_id and a trigger checks
  the currency (rebuilding postings would drop its immutability triggers: see 0002).
- reversals: PostgreSQL checks at commit that a reversal mirrors its entry (the same accounts
  and currencies, negated amounts, as a multiset), concerns the same loan, is not dated before
  it, and does not reverse a reversal; SQLite checks at insert all but the mirror.
- `entry_seals.digest_version`: seals written before this revision are version 1 (entry and
  postings); the sealer now writes version 2 (also each posting's account), so a book sealed
  before the upgrade still verifies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TOP_LEVEL_XACT = "pg_current_xact_id()::text::bigint"
ACCOUNTS_IMMUTABLE = ("accounts are immutable: an account's owner, kind, purpose, currency and "
                      "loan are what its postings mean; open a new account instead")
POSTED_EARLIER = ("it was posted earlier, and an entry's postings are written in the "
                  "transaction that creates it")


def _quoted(message: str) -> str:
    """A message as the inside of an SQL string literal."""
    return message.replace("'", "''")


def upgrade() -> None:
    op.add_column("entries", sa.Column("created_xact", sa.BigInteger(), nullable=True))
    # Constant default: no table rewrite on PostgreSQL, and every existing seal reads as 1.
    op.add_column("entry_seals", sa.Column("digest_version", sa.SmallInteger(), nullable=False,
                                           server_default="1"))
    op.create_index("uq_accounts_id_currency", "accounts", ["id", "currency"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        create_postgres_rules()
    else:
        create_sqlite_rules()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        drop_postgres_rules()
    else:
        drop_sqlite_rules()
    op.drop_index("uq_accounts_id_currency", table_name="accounts")
    # Plain ALTER TABLE DROP COLUMN on both (SQLite >= 3.35): the journal tables are not rebuilt.
    op.execute("ALTER TABLE entry_seals DROP COLUMN digest_version")
    op.execute("ALTER TABLE entries DROP COLUMN created_xact")


# --- PostgreSQL ---------------------------------------------------------------------------

PG_REFUSE_ACCOUNT_CHANGE = f"""
CREATE FUNCTION ipledger_refuse_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ipledger: % on table accounts is refused: {_quoted(ACCOUNTS_IMMUTABLE)}',
        TG_OP USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""

# One query per INSERT or COPY statement over its new rows (a transition table), riding on the
# entries primary key: cheaper than a lookup per posting.
PG_CHECK_SAME_TRANSACTION = f"""
CREATE FUNCTION ipledger_check_postings_same_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    late_entry_id bigint;
BEGIN
    SELECT e.id INTO late_entry_id
    FROM (SELECT DISTINCT entry_id FROM new_postings) AS p JOIN entries e ON e.id = p.entry_id
    WHERE e.created_xact IS DISTINCT FROM {TOP_LEVEL_XACT}
    LIMIT 1;
    IF late_entry_id IS NOT NULL THEN
        RAISE EXCEPTION 'ipledger: postings for entry % are refused: {_quoted(POSTED_EARLIER)}',
            late_entry_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
"""

# Deferred to commit: a reversal's postings arrive after its entry row.
PG_CHECK_REVERSAL = """
CREATE FUNCTION ipledger_check_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original record;
BEGIN
    SELECT id, reverses_id, effective_on, loan_id INTO original FROM entries WHERE id = NEW.reverses_id;
    IF original.reverses_id IS NOT NULL THEN
        RAISE EXCEPTION 'ipledger: entry % reverses entry %, itself a reversal; post the event again instead',
            NEW.id, original.id USING ERRCODE = 'check_violation';
    END IF;
    IF original.effective_on > NEW.effective_on THEN
        RAISE EXCEPTION 'ipledger: reversal % takes effect before the entry it reverses (entry %)',
            NEW.id, original.id USING ERRCODE = 'check_violation';
    END IF;
    IF original.loan_id IS DISTINCT FROM NEW.loan_id THEN
        RAISE EXCEPTION 'ipledger: reversal % must concern the loan of the entry it reverses (entry %)',
            NEW.id, original.id USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS ((SELECT account_id, currency, -amount_fen FROM postings WHERE entry_id = original.id
                EXCEPT ALL
                SELECT account_id, currency, amount_fen FROM postings WHERE entry_id = NEW.id)
               UNION ALL
               (SELECT account_id, currency, amount_fen FROM postings WHERE entry_id = NEW.id
                EXCEPT ALL
                SELECT account_id, currency, -amount_fen FROM postings WHERE entry_id = original.id)) THEN
        RAISE EXCEPTION 'ipledger: reversal % does not mirror entry %: its postings must be the entry''s, negated',
            NEW.id, original.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""


def create_postgres_rules() -> None:
    # Existing entries keep NULL (no rewrite): no transaction can add postings to them.
    op.execute(f"ALTER TABLE entries ALTER COLUMN created_xact SET DEFAULT ({TOP_LEVEL_XACT})")
    # Every seal from now on states its version (existing rows keep reading 1).
    op.execute("ALTER TABLE entry_seals ALTER COLUMN digest_version DROP DEFAULT")
    op.drop_constraint("fk_postings_account_id_accounts", "postings", type_="foreignkey")
    op.create_foreign_key("fk_postings_account_id_accounts", "postings", "accounts",
                          ["account_id", "currency"], ["id", "currency"])
    op.execute(PG_REFUSE_ACCOUNT_CHANGE)
    op.execute(PG_CHECK_SAME_TRANSACTION)
    op.execute(PG_CHECK_REVERSAL)
    op.execute("CREATE TRIGGER accounts_immutable_rows BEFORE UPDATE OR DELETE ON accounts "
               "FOR EACH ROW EXECUTE FUNCTION ipledger_refuse_account_change()")
    op.execute("CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts "
               "FOR EACH STATEMENT EXECUTE FUNCTION ipledger_refuse_account_change()")
    op.execute("CREATE TRIGGER postings_same_transaction AFTER INSERT ON postings "
               "REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT "
               "EXECUTE FUNCTION ipledger_check_postings_same_transaction()")
    op.execute("CREATE CONSTRAINT TRIGGER entries_reversal_mirrors AFTER INSERT ON entries "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.reverses_id IS NOT NULL) "
               "EXECUTE FUNCTION ipledger_check_reversal()")


def drop_postgres_rules() -> None:
    op.execute("DROP TRIGGER IF EXISTS entries_reversal_mirrors ON entries")
    op.execute("DROP TRIGGER IF EXISTS postings_same_transaction ON postings")
    op.execute("DROP TRIGGER IF EXISTS accounts_no_truncate ON accounts")
    op.execute("DROP TRIGGER IF EXISTS accounts_immutable_rows ON accounts")
    op.execute("DROP FUNCTION IF EXISTS ipledger_check_reversal()")
    op.execute("DROP FUNCTION IF EXISTS ipledger_check_postings_same_transaction()")
    op.execute("DROP FUNCTION IF EXISTS ipledger_refuse_account_change()")
    op.drop_constraint("fk_postings_account_id_accounts", "postings", type_="foreignkey")
    op.create_foreign_key("fk_postings_account_id_accounts", "postings", "accounts",
                          ["account_id"], ["id"])


# --- SQLite -------------------------------------------------------------------------------

SQLITE_TRIGGERS = {
    "accounts_no_update": "BEFORE UPDATE ON accounts BEGIN "
                          f"SELECT RAISE(ABORT, 'ipledger: UPDATE of accounts is refused: {_quoted(ACCOUNTS_IMMUTABLE)}'); END",
    "accounts_no_delete": "BEFORE DELETE ON accounts BEGIN "
                          f"SELECT RAISE(ABORT, 'ipledger: DELETE of accounts is refused: {_quoted(ACCOUNTS_IMMUTABLE)}'); END",
    # One writer at a time: a posting for an entry older than the newest entry with postings,
    # or for a sealed one, can only be an addition to an entry posted earlier. Both lookups
    # ride on indexes (max over ix_postings_entry_id, the seals' primary key).
    "postings_entry_posted_earlier":
        "BEFORE INSERT ON postings WHEN NEW.entry_id < (SELECT max(entry_id) FROM postings) "
        "OR EXISTS (SELECT 1 FROM entry_seals WHERE entry_id = NEW.entry_id) BEGIN "
        f"SELECT RAISE(ABORT, 'ipledger: postings for this entry are refused: {_quoted(POSTED_EARLIER)}'); END",
    "postings_account_currency":
        "BEFORE INSERT ON postings WHEN EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id "
        "AND currency IS NOT NEW.currency) BEGIN "
        "SELECT RAISE(ABORT, 'ipledger: a posting must be in its account''s currency'); END",
    "entries_reversal_target":
        "BEFORE INSERT ON entries WHEN NEW.reverses_id IS NOT NULL BEGIN "
        "SELECT RAISE(ABORT, 'ipledger: this entry reverses an entry that is itself a reversal; "
        "post the event again instead') "
        "WHERE EXISTS (SELECT 1 FROM entries WHERE id = NEW.reverses_id AND reverses_id IS NOT NULL); "
        "SELECT RAISE(ABORT, 'ipledger: a reversal cannot take effect before the entry it reverses') "
        "WHERE EXISTS (SELECT 1 FROM entries WHERE id = NEW.reverses_id AND effective_on > NEW.effective_on); "
        "SELECT RAISE(ABORT, 'ipledger: a reversal must concern the loan of the entry it reverses') "
        "WHERE EXISTS (SELECT 1 FROM entries WHERE id = NEW.reverses_id AND loan_id IS NOT NEW.loan_id); "
        "END",
}


def create_sqlite_rules() -> None:
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def drop_sqlite_rules() -> None:
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
