"""The database itself refuses what the journal must never contain: raw SQL, around the app.

Each test commits for real (PostgreSQL's deferred triggers fire at COMMIT) and asserts the
message of the rule it names (docs/DATABASE_RULES.md), so that another rule firing first, or
none, fails it.
"""
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger import chain
from ledger.journal import (AccountSpec, EntryDraft, Line, ensure_accounts, post_entry,
                            reverse_entry)
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory,
                             engine as bound_engine, make_loan, tx, unique)

INSERT_ENTRY = ("INSERT INTO entries (kind, effective_on, recorded_at, reverses_id, loan_id) "
                "VALUES (:kind, :on, CURRENT_TIMESTAMP, :reverses, :loan) RETURNING id")
INSERT_POSTING = ("INSERT INTO postings (entry_id, account_id, amount_fen, currency) "
                  "VALUES (:e, :a, :fen, :cur)")


@pytest.fixture
def posted(engine):
    owner = InstitutionFactory()
    specs = [AccountSpec(unique("r"), "r", "asset", "test", institution_id=owner.id) for _ in range(2)]
    a, b = tx(lambda conn: ensure_accounts(conn, specs)).values()
    entry_id = tx(lambda conn: post_entry(conn, EntryDraft("test", date(2025, 1, 1),
                                                           (Line(a, 100), Line(b, -100)))))
    return entry_id, a, b


def raw(sql: str, **params) -> None:
    """One real transaction, committed (deferred triggers only fire at commit)."""
    with bound_engine().connect() as conn:
        conn.execute(text(sql), params)
        conn.commit()


def raw_entry(conn, lines, on="2025-01-01", reverses=None, loan=None, kind="raw") -> int:
    """A new entry and its postings, by raw SQL, in the caller's (uncommitted) transaction."""
    entry_id = conn.execute(text(INSERT_ENTRY), {"kind": kind, "on": on, "reverses": reverses,
                                                 "loan": loan}).scalar_one()
    add_postings(conn, entry_id, lines)
    return entry_id


def add_postings(conn, entry_id: int, lines) -> None:
    for line in lines:
        account_id, fen, currency = (*line, "CNY")[:3]
        conn.execute(text(INSERT_POSTING), {"e": entry_id, "a": account_id, "fen": fen, "cur": currency})


def count(sql: str, **params) -> int:
    with bound_engine().connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.mark.parametrize("sql", [
    "UPDATE postings SET amount_fen = 1 WHERE entry_id = :entry",
    "DELETE FROM postings WHERE entry_id = :entry",
    "UPDATE entries SET kind = 'edited' WHERE id = :entry",
    "DELETE FROM entries WHERE id = :entry",
])
def test_posted_rows_cannot_be_updated_or_deleted(posted, sql):
    with pytest.raises(DBAPIError, match="immutable"):
        raw(sql, entry=posted[0])


@pytest.mark.parametrize("table, message", [
    ("postings", "posted journal rows are immutable"), ("entries", "posted journal rows are immutable"),
    ("entry_seals", "posted journal rows are immutable"), ("accounts", "accounts are immutable"),
])
def test_truncate_is_refused_on_postgres(posted, backend, table, message):
    if backend != "postgres":
        pytest.skip("SQLite has no TRUNCATE; its DELETE triggers are tested above")
    with pytest.raises(DBAPIError, match=message):
        raw(f"TRUNCATE {table} CASCADE")


def test_unbalanced_entry_is_refused_at_commit(posted, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has no deferred triggers; ledger.journal checks balance before insert")
    _, a, b = posted
    with bound_engine().connect() as conn:
        raw_entry(conn, [(a, 100), (b, -99)])
        with pytest.raises(DBAPIError, match="unbalanced"):
            conn.commit()


def test_entries_balancing_each_other_but_not_themselves_are_refused_at_commit(posted, backend):
    """The check runs once per entry (migration 0005): postings of two entries of one transaction,
    written interleaved, that sum to zero together but not each, are refused."""
    if backend == "sqlite":
        pytest.skip("SQLite has no deferred triggers; ledger.journal checks balance before insert")
    _, a, b = posted
    with bound_engine().connect() as conn:
        first = raw_entry(conn, [(a, 100)])
        second = raw_entry(conn, [(b, -60), (a, 10)])
        add_postings(conn, first, [(b, -50)])
        assert first != second
        with pytest.raises(DBAPIError, match="unbalanced"):
            conn.commit()


def test_entry_with_a_single_posting_is_refused_at_commit(posted, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has no deferred triggers; ledger.journal checks posting count")
    _, a, _ = posted
    with bound_engine().connect() as conn:
        raw_entry(conn, [(a, 5)])
        with pytest.raises(DBAPIError, match="at least two"):
            conn.commit()


def test_zero_posting_is_refused_by_check_constraint(posted):
    _, a, b = posted
    with bound_engine().connect() as conn:
        with pytest.raises(DBAPIError, match="ck_postings_nonzero"):
            raw_entry(conn, [(a, 0), (b, 0)])


def test_balanced_raw_entry_is_accepted(posted):
    _, a, b = posted
    with bound_engine().connect() as conn:
        entry_id = raw_entry(conn, [(a, 7), (b, -7)])
        conn.commit()
    assert count("SELECT count(*) FROM postings WHERE entry_id = :e", e=entry_id) == 2
    assert count("SELECT sum(amount_fen) FROM postings WHERE account_id = :a", a=a) == 107


# --- an entry's postings are written with it, never later (issue 7, item 1) -----------------

def _disbursed_loan():
    """A loan (principal 100.00) and the accounts and entry of its disbursement."""
    from ledger.loans import outstanding_fen
    bank = InstitutionFactory()
    loan_id = make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code,
                        principal="100.00", insured_amount="100.00")
    with bound_engine().connect() as conn:
        entry_id = conn.execute(text("SELECT id FROM entries WHERE loan_id = :l AND kind = 'loan_disbursed'"),
                                {"l": loan_id}).scalar_one()
        ids = dict(conn.execute(text("SELECT code, id FROM accounts WHERE code IN (:r, :s)"),
                                {"r": f"loan:{loan_id}:receivable", "s": f"inst:{bank.id}:settlement"}).all())
    assert tx(lambda conn: outstanding_fen(conn, [loan_id]))[loan_id] == 100_00
    return loan_id, entry_id, ids[f"loan:{loan_id}:receivable"], ids[f"inst:{bank.id}:settlement"]


def _add_pair_later(entry_id: int, receivable: int, settlement: int) -> None:
    """The issue's reproduction: a balanced pair added to a posted entry, in a later transaction."""
    with bound_engine().connect() as conn:
        add_postings(conn, entry_id, [(receivable, 10_000_00), (settlement, -10_000_00)])
        conn.commit()


def test_postings_for_an_entry_posted_earlier_are_refused(engine):
    """Refused on both backends once the book has moved on (SQLite: a later entry has postings)."""
    from ledger.loans import outstanding_fen
    loan_id, entry_id, receivable, settlement = _disbursed_loan()
    _disbursed_loan()  # the book moves on
    with pytest.raises(DBAPIError, match="posted earlier"):
        _add_pair_later(entry_id, receivable, settlement)
    assert tx(lambda conn: outstanding_fen(conn, [loan_id]))[loan_id] == 100_00


def test_postings_for_the_newest_entry(fresh_engine, backend):
    """PostgreSQL refuses at once (transaction ids). SQLite has none: its documented limit is
    that the newest entry accepts postings until it is sealed (or another entry follows)."""
    _, entry_id, receivable, settlement = _disbursed_loan()
    if backend == "sqlite":
        _add_pair_later(entry_id, receivable, settlement)  # the limit
        tx(chain.seal_pending)
    with pytest.raises(DBAPIError, match="posted earlier"):
        _add_pair_later(entry_id, receivable, settlement)
    tx(chain.seal_pending)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact
    assert result.postings == {"postgres": 4, "sqlite": 6}[backend]


def test_postings_for_an_earlier_entry_are_refused_through_copy(posted, backend):
    """The bulk path (COPY, ledger/bulk.py) meets the same rule."""
    from ledger.bulk import COPY_THRESHOLD, insert_many
    from ledger.schema import postings
    if backend != "postgres":
        pytest.skip("COPY is the PostgreSQL bulk path")
    entry_id, a, b = posted
    rows = [{"entry_id": entry_id, "account_id": account, "amount_fen": fen, "currency": "CNY"}
            for _ in range(COPY_THRESHOLD // 2) for account, fen in ((a, 1), (b, -1))]
    with bound_engine().connect() as conn:
        with pytest.raises(DBAPIError, match="posted earlier"):
            insert_many(conn, postings, rows)


def test_postings_in_a_savepoint_of_the_entrys_transaction_are_accepted(posted, backend):
    """The rule compares top-level transactions: savepoints are part of the entry's own."""
    _, a, b = posted
    with bound_engine().connect() as conn:
        with conn.begin():
            with conn.begin_nested():
                entry_id = raw_entry(conn, [])
            with conn.begin_nested():
                add_postings(conn, entry_id, [(a, 3), (b, -3)])
    assert count("SELECT count(*) FROM postings WHERE entry_id = :e", e=entry_id) == 2


# --- accounts are immutable (item 2) -------------------------------------------------------

@pytest.mark.parametrize("assignment", [
    "loan_id = (SELECT max(id) FROM loans)", "code = code || 'x'", "kind = 'liability'",
    "purpose = 'other'", "currency = 'USD'", "institution_id = NULL", "borrower_id = NULL",
    "program_id = NULL", "name = 'renamed'",
])
def test_accounts_cannot_be_updated(engine, assignment):
    loan_id, _, receivable, _ = _disbursed_loan()
    with pytest.raises(DBAPIError, match="accounts are immutable"):
        raw(f"UPDATE accounts SET {assignment} WHERE id = :a", a=receivable)


def test_accounts_cannot_be_deleted(posted):
    with pytest.raises(DBAPIError, match="accounts are immutable"):
        raw("DELETE FROM accounts WHERE id = :a", a=posted[1])


# --- a posting is in its account's currency (item 3) ---------------------------------------

def test_a_posting_in_another_currency_than_its_account_is_refused(posted, backend):
    _, a, b = posted
    message = "fk_postings_account_id_accounts" if backend == "postgres" else "account's currency"
    with bound_engine().connect() as conn:
        with pytest.raises(DBAPIError, match=message):
            raw_entry(conn, [(a, 5, "USD"), (b, -5, "USD")])


# --- reversals mirror what they reverse (item 4) -------------------------------------------

@pytest.fixture
def reversed_pair(posted):
    entry_id, a, b = posted
    reversal_id = tx(lambda conn: reverse_entry(conn, entry_id, date(2025, 2, 1)))
    return entry_id, reversal_id, a, b


def test_a_reversal_of_a_reversal_is_refused(reversed_pair):
    _, reversal_id, a, b = reversed_pair
    with bound_engine().connect() as conn:
        with pytest.raises(DBAPIError, match="itself a reversal"):
            raw_entry(conn, [(a, 100), (b, -100)], on="2025-03-01", reverses=reversal_id)
            conn.commit()


def test_a_reversal_dated_before_its_entry_is_refused(posted):
    entry_id, a, b = posted
    with bound_engine().connect() as conn:
        with pytest.raises(DBAPIError, match="before the entry it reverses"):
            raw_entry(conn, [(a, -100), (b, 100)], on="2024-12-31", reverses=entry_id)
            conn.commit()


def test_a_reversal_for_another_loan_is_refused(engine):
    loan_id, entry_id, receivable, settlement = _disbursed_loan()
    other_loan = _disbursed_loan()[0]
    with bound_engine().connect() as conn:
        lines = conn.execute(text("SELECT account_id, -amount_fen FROM postings WHERE entry_id = :e"),
                             {"e": entry_id}).all()
        with pytest.raises(DBAPIError, match="the loan of the entry it reverses"):
            raw_entry(conn, lines, on="2025-06-01", reverses=entry_id, loan=other_loan)
            conn.commit()


@pytest.mark.parametrize("lines", [
    [(0, -60), (1, 60)],                          # other amounts
    [(0, 100), (1, -100)],                        # the same sign: a repeat, not a reversal
    [(0, -100), (1, 50), (1, 50)],                # another multiset of lines
])
def test_a_reversal_that_does_not_mirror_is_refused_at_commit_on_postgres(posted, backend, lines):
    if backend == "sqlite":
        pytest.skip("SQLite has no deferred triggers; ledger.journal checks the mirror")
    entry_id, a, b = posted
    accounts = (a, b)
    with bound_engine().connect() as conn:
        raw_entry(conn, [(accounts[i], fen) for i, fen in lines], on="2025-02-01", reverses=entry_id)
        with pytest.raises(DBAPIError, match="does not mirror"):
            conn.commit()


def test_a_mirroring_raw_reversal_is_accepted(posted):
    entry_id, a, b = posted
    with bound_engine().connect() as conn:
        reversal_id = raw_entry(conn, [(b, 100), (a, -100)], on="2025-02-01", reverses=entry_id)
        conn.commit()
    assert count("SELECT reverses_id FROM entries WHERE id = :e", e=reversal_id) == entry_id
