from datetime import date

from sqlalchemy import text

from ledger import chain
from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
from tests.factories import InstitutionFactory, tx, unique


def _post_some(n: int) -> list[int]:
    owner = InstitutionFactory()
    specs = [AccountSpec(unique("c"), "c", "asset", "test", institution_id=owner.id) for _ in range(2)]
    ids = list(tx(lambda conn: ensure_accounts(conn, specs)).values())
    return [tx(lambda conn: post_entry(conn, EntryDraft("test", date(2025, 1, 1),
                                                        (Line(ids[0], i + 1), Line(ids[1], -(i + 1))))))
            for i in range(n)]


def _tamper(conn, table: str, sql: str) -> None:
    """Go around the application AND the database's own rules, as a malicious superuser would."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET session_replication_role = replica"))  # triggers off
        conn.execute(text(sql))
        conn.execute(text("SET session_replication_role = origin"))
    else:
        conn.execute(text(f"DROP TRIGGER {table}_no_update"))
        conn.execute(text(sql))


def test_fresh_books_verify_clean(fresh_engine):
    result = tx(chain.verify)
    assert (result.entries, result.postings, result.balanced, result.chain_intact) == (0, 0, True, True)


def test_sealing_reports_the_unsealed_tail_then_chains_it(fresh_engine):
    _post_some(3)
    assert tx(chain.verify).unsealed == 3
    assert tx(chain.seal_pending) == 3
    _post_some(2)
    result = tx(chain.verify)
    assert (result.sealed, result.unsealed, result.chain_intact) == (3, 2, True)
    assert tx(chain.seal_pending) == 2
    assert tx(chain.seal_pending) == 0
    assert tx(chain.verify).entries == 5


def test_a_changed_posting_breaks_the_chain_at_its_entry(fresh_engine):
    ids = _post_some(4)
    tx(chain.seal_pending)
    tx(lambda conn: _tamper(conn, "postings", f"UPDATE postings SET amount_fen = amount_fen + 1 "
                                  f"WHERE entry_id = {ids[2]}"))
    result = tx(chain.verify)
    assert not result.chain_intact and not result.balanced
    assert result.first_break.entry_id == ids[2]
    assert result.first_break.seq == 3
    assert result.unbalanced_entry_ids == [ids[2]]


def test_a_changed_entry_field_breaks_the_chain(fresh_engine):
    ids = _post_some(2)
    tx(chain.seal_pending)
    tx(lambda conn: _tamper(conn, "entries",
                            f"UPDATE entries SET effective_on = '2024-01-01' WHERE id = {ids[0]}"))
    result = tx(chain.verify)
    assert result.balanced and not result.chain_intact
    assert result.first_break.entry_id == ids[0]
