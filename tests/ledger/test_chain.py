from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from ledger import chain
from ledger.errors import Invalid
from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan, tx,
                             unique)


def _post_some(n: int) -> list[int]:
    owner = InstitutionFactory()
    specs = [AccountSpec(unique("c"), "c", "asset", "test", institution_id=owner.id) for _ in range(2)]
    ids = list(tx(lambda conn: ensure_accounts(conn, specs)).values())
    return [tx(lambda conn: post_entry(conn, EntryDraft("test", date(2025, 1, 1),
                                                        (Line(ids[0], i + 1), Line(ids[1], -(i + 1))),
                                                        memo=f"entry {i}")))
            for i in range(n)]


def _tamper(conn, table: str, sql: str) -> None:
    """Go around the application AND the database's own rules, as a malicious superuser would."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET session_replication_role = replica"))  # triggers off
        conn.execute(text(sql))
        conn.execute(text("SET session_replication_role = origin"))
    else:
        for action in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
        conn.execute(text(sql))


def test_fresh_books_verify_clean(fresh_engine):
    result = tx(chain.verify)
    assert (result.entries, result.postings, result.balanced, result.chain_intact) == (0, 0, True, True)
    assert result.head is None and result.expect is None


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


@pytest.mark.parametrize("assignment", [
    "effective_on = '2024-01-01'", "memo = 'nothing to see'", "memo = NULL", "kind = 'other'",
    "recorded_at = '2020-01-01 00:00:00+00:00'", "idempotency_key = 'K-1'",
    "institution_id = (SELECT max(id) FROM institutions)",
])
def test_a_changed_entry_field_breaks_the_chain(fresh_engine, assignment):
    ids = _post_some(2)
    tx(chain.seal_pending)
    tx(lambda conn: _tamper(conn, "entries", f"UPDATE entries SET {assignment} WHERE id = {ids[1]}"))
    result = tx(chain.verify)
    assert result.balanced and not result.chain_intact
    assert (result.first_break.entry_id, result.first_break.seq) == (ids[1], 2)


def _two_loans():
    bank = InstitutionFactory()
    program = ProgramFactory().code
    return [make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, program) for _ in range(2)]


@pytest.mark.parametrize("assignment", [
    "loan_id = {other}", "code = 'loan:{other}:receivable2'", "purpose = 'cash'", "kind = 'expense'",
    "institution_id = NULL, borrower_id = (SELECT max(id) FROM borrowers)", "currency = 'USD'",
])
def test_moving_an_account_breaks_the_chain_at_the_first_entry_that_used_it(fresh_engine, assignment):
    """The issue's `UPDATE accounts SET loan_id = ...` (and any other change of an account's
    identity), with the database's triggers off: verify names the first entry posted to it."""
    first, second = _two_loans()
    _post_some(1)
    tx(chain.seal_pending)
    with fresh_engine.connect() as conn:
        disbursed, seq = conn.execute(text("SELECT e.id, s.seq FROM entries e JOIN entry_seals s "
                                           "ON s.entry_id = e.id WHERE e.loan_id = :l"), {"l": first}).one()
    sql = (f"UPDATE accounts SET {assignment.format(other=second)} "
           f"WHERE code = 'loan:{first}:receivable'")
    tx(lambda conn: _tamper(conn, "accounts", sql))
    result = tx(chain.verify)
    assert result.balanced and not result.chain_intact
    assert (result.first_break.entry_id, result.first_break.seq) == (disbursed, seq)
    assert "account" in result.first_break.reason


def test_an_unchanged_book_of_loans_verifies_with_digest_v2(fresh_engine):
    _two_loans()
    tx(chain.seal_pending)
    with fresh_engine.connect() as conn:
        versions = conn.execute(text("SELECT DISTINCT digest_version FROM entry_seals")).scalars().all()
    assert versions == [chain.DIGEST_VERSION] == [2]
    assert tx(chain.verify).chain_intact


def test_a_seal_relabelled_with_the_old_digest_breaks_the_chain(fresh_engine):
    """Digest v1 (before migration 0003) did not cover accounts: a seal cannot be downgraded."""
    ids = _post_some(2)
    tx(chain.seal_pending)
    tx(lambda conn: _tamper(conn, "entry_seals", "UPDATE entry_seals SET digest_version = 1"))
    result = tx(chain.verify)
    assert not result.chain_intact and result.first_break.entry_id == ids[0]


def test_the_v1_digest_is_the_one_sealed_before_0003():
    """Golden values from the digest that sealed books before migration 0003: seals written
    then must keep verifying."""
    entry = {"id": 7, "kind": "loan_disbursed", "effective_on": date(2025, 3, 1),
             "recorded_at": datetime(2025, 3, 1, 2, 3, 4, 567, tzinfo=timezone.utc),
             "actor_key_id": 3, "institution_id": 2, "idempotency_key": "K-1", "reverses_id": None,
             "memo": "contract C-1", "loan_id": 5}
    lines = [{"id": 12, "account_id": 4, "amount_fen": -500, "currency": "CNY"},
             {"id": 11, "account_id": 3, "amount_fen": 500, "currency": "CNY"}]
    digest = chain.entry_digest(entry, lines, version=1)
    assert digest == "6112dbe8b2527d8ee20170c573b836ad9d60e085fca752563458e51d6d42b934"
    assert chain.chain_hash(chain.GENESIS_HASH, digest) == (
        "fc53497f6b88030196d70a7a3c1f70c8b719134c7c7659ee1176f906f8530f4c")


# --- the head, and proving the book still extends it (item 5) ------------------------------

def test_the_head_is_the_last_seal(fresh_engine):
    assert tx(chain.head) is None
    ids = _post_some(3)
    assert tx(chain.head) is None  # nothing sealed yet
    tx(chain.seal_pending)
    head = tx(chain.head)
    with fresh_engine.connect() as conn:
        last = conn.execute(text("SELECT seq, hash, entry_id FROM entry_seals ORDER BY seq DESC LIMIT 1")).one()
    assert (head.seq, head.hash, head.entry_id) == (3, last.hash, ids[-1]) == tuple(last)
    assert head.anchor == f"3:{last.hash}" and head.sealed_at is not None


def test_verify_proves_the_book_extends_an_earlier_head(fresh_engine):
    _post_some(2)
    tx(chain.seal_pending)
    written_down = tx(chain.head)
    _post_some(2)
    tx(chain.seal_pending)
    result = tx(lambda conn: chain.verify(conn, expect=(written_down.seq, written_down.hash)))
    assert result.chain_intact and result.head.seq == 4
    assert result.expect.extends is True and result.expect.reason is None
    assert (result.expect.seq, result.expect.hash) == (2, written_down.hash)


@pytest.mark.parametrize("seq, hash_, reason", [
    (2, "0" * 64, "the seal at 2 has another hash"),
    (9, None, "no seal 9"),
])
def test_verify_reports_a_head_the_book_does_not_extend(fresh_engine, seq, hash_, reason):
    _post_some(3)
    tx(chain.seal_pending)
    real = tx(chain.head)
    result = tx(lambda conn: chain.verify(conn, expect=(seq, hash_ or real.hash)))
    assert result.chain_intact and result.expect.extends is False
    assert reason in result.expect.reason


def test_a_rewritten_history_no_longer_extends_the_head_written_down(fresh_engine):
    """Someone able to switch triggers off changes a posted entry and recomputes every seal:
    the chain is intact again, but it no longer extends the head an auditor wrote down."""
    ids = _post_some(3)
    tx(chain.seal_pending)
    written_down = tx(chain.head)

    def rewrite(conn):
        _tamper(conn, "postings", f"UPDATE postings SET amount_fen = amount_fen * 2 WHERE entry_id = {ids[0]}")
        _tamper(conn, "entry_seals", "DELETE FROM entry_seals")
        chain.seal_pending(conn)
    tx(rewrite)
    result = tx(lambda conn: chain.verify(conn, expect=(written_down.seq, written_down.hash)))
    assert result.balanced and result.chain_intact
    assert result.expect.extends is False and "another hash" in result.expect.reason


def test_a_broken_chain_extends_nothing(fresh_engine):
    ids = _post_some(3)
    tx(chain.seal_pending)
    head = tx(chain.head)
    tx(lambda conn: _tamper(conn, "entries", f"UPDATE entries SET memo = 'x' WHERE id = {ids[2]}"))
    result = tx(lambda conn: chain.verify(conn, expect=(head.seq, head.hash)))
    assert not result.chain_intact and result.expect.extends is False
    assert "chain is broken" in result.expect.reason


@pytest.mark.parametrize("written, parsed", [
    ("12:" + "ab" * 32, (12, "ab" * 32)),
    ("12:" + "AB" * 32, (12, "ab" * 32)),
    (" 3:" + "0" * 64 + "\n", (3, "0" * 64)),
])
def test_parse_head(written, parsed):
    assert chain.parse_head(written) == parsed


@pytest.mark.parametrize("written", [
    "", "12", "12:", ":" + "a" * 64, "0:" + "a" * 64, "-1:" + "a" * 64, "12:" + "a" * 63,
    "12:" + "g" * 64, "١٢:" + "a" * 64, "99999999999999999999:" + "a" * 64, "12:" + "a" * 64 + ":x",
])
def test_parse_head_refuses_anything_else(written):
    with pytest.raises(Invalid, match="SEQ:HASH"):
        chain.parse_head(written)


def test_verify_reads_one_snapshot_while_others_post_and_seal(fresh_engine, monkeypatch):
    """Counts, breaks and head come from one moment: an entry posted and sealed by another
    transaction half-way through a verify is in none of its figures."""
    if fresh_engine.dialect.name == "sqlite":
        pytest.skip("SQLite: a read transaction is one snapshot by construction (writers wait for it)")
    _post_some(2)
    tx(chain.seal_pending)
    real_find_first_break = chain.find_first_break

    def meanwhile(conn):
        _post_some(1)
        tx(chain.seal_pending)
        return real_find_first_break(conn)

    monkeypatch.setattr(chain, "find_first_break", meanwhile)
    with fresh_engine.connect().execution_options(ipledger_readonly=True) as conn:
        result = chain.verify(conn)
    assert (result.entries, result.sealed, result.unsealed, result.head.seq) == (2, 2, 0, 2)
    assert tx(chain.verify).entries == 3
