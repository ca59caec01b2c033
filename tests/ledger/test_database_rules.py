"""The database itself refuses what the journal must never contain: raw SQL, around the app."""
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
from tests.factories import InstitutionFactory, engine as bound_engine, tx, unique


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


@pytest.mark.parametrize("sql", [
    "UPDATE postings SET amount_fen = 1 WHERE entry_id = :entry",
    "DELETE FROM postings WHERE entry_id = :entry",
    "UPDATE entries SET kind = 'edited' WHERE id = :entry",
    "DELETE FROM entries WHERE id = :entry",
])
def test_posted_rows_cannot_be_updated_or_deleted(posted, sql):
    with pytest.raises(DBAPIError, match="immutable"):
        raw(sql, entry=posted[0])


@pytest.mark.parametrize("table", ["postings", "entries", "entry_seals"])
def test_truncate_is_refused_on_postgres(posted, backend, table):
    if backend != "postgres":
        pytest.skip("SQLite has no TRUNCATE; its DELETE triggers are tested above")
    with pytest.raises(DBAPIError, match="immutable"):
        raw(f"TRUNCATE {table} CASCADE")


def test_unbalanced_entry_is_refused_at_commit(posted, backend):
    _, a, b = posted
    insert_entry = ("INSERT INTO entries (kind, effective_on, recorded_at) "
                    "VALUES ('raw', '2025-01-01', CURRENT_TIMESTAMP)")
    with bound_engine().connect() as conn:
        if backend == "sqlite":
            pytest.skip("SQLite has no deferred triggers; ledger.journal checks balance before insert")
        entry_id = conn.execute(text(insert_entry + " RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO postings (entry_id, account_id, amount_fen, currency) "
                          "VALUES (:e, :a, 100, 'CNY'), (:e, :b, -99, 'CNY')"),
                     {"e": entry_id, "a": a, "b": b})
        with pytest.raises(DBAPIError, match="unbalanced"):
            conn.commit()


def test_entry_with_a_single_posting_is_refused_at_commit(posted, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has no deferred triggers; ledger.journal checks posting count")
    _, a, _ = posted
    with bound_engine().connect() as conn:
        entry_id = conn.execute(text("INSERT INTO entries (kind, effective_on, recorded_at) VALUES "
                                     "('raw', '2025-01-01', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO postings (entry_id, account_id, amount_fen, currency) "
                          "VALUES (:e, :a, 0 + 5, 'CNY')"), {"e": entry_id, "a": a})
        with pytest.raises(DBAPIError, match="at least two"):
            conn.commit()


def test_zero_posting_is_refused_by_check_constraint(posted):
    entry_id, a, _ = posted
    with pytest.raises(DBAPIError):
        raw("INSERT INTO postings (entry_id, account_id, amount_fen, currency) VALUES (:e, :a, 0, 'CNY')",
            e=entry_id, a=a)


def test_balanced_raw_entry_is_accepted(posted):
    _, a, b = posted
    with bound_engine().connect() as conn:
        entry_id = conn.execute(text("INSERT INTO entries (kind, effective_on, recorded_at) VALUES "
                                     "('raw', '2025-01-01', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO postings (entry_id, account_id, amount_fen, currency) "
                          "VALUES (:e, :a, 7, 'CNY'), (:e, :b, -7, 'CNY')"), {"e": entry_id, "a": a, "b": b})
        conn.commit()
