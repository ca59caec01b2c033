from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ledger import chain
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import (AccountSpec, EntryDraft, Line, balance_fen, balances_fen,
                            ensure_accounts, post_entries, post_entry, reverse_entry)
from tests.factories import InstitutionFactory, tx, unique

D1, D2, D3 = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


@pytest.fixture
def three_accounts(engine):
    bank = InstitutionFactory()
    specs = [AccountSpec(unique(f"t:{i}"), f"test {i}", kind, "test", institution_id=bank.id)
             for i, kind in enumerate(("asset", "liability", "income"))]
    ids = tx(lambda conn: ensure_accounts(conn, specs))
    return [ids[spec.code] for spec in specs]


def draft(accounts, amounts, on=D1, kind="test"):
    return EntryDraft(kind, on, tuple(Line(a, fen) for a, fen in zip(accounts, amounts)))


def test_post_and_balance_as_of(three_accounts):
    a, b, c = three_accounts
    tx(lambda conn: post_entry(conn, draft([a, b, c], [300, -100, -200], D1)))
    tx(lambda conn: post_entry(conn, draft([a, b], [50, -50], D3)))
    assert tx(lambda conn: balance_fen(conn, a)) == 350
    assert tx(lambda conn: balance_fen(conn, a, as_of=D2)) == 300
    assert tx(lambda conn: balance_fen(conn, a, as_of=date(2024, 12, 31))) == 0
    assert tx(lambda conn: balances_fen(conn, [b, c])) == {b: -150, c: -200}


@pytest.mark.parametrize("amounts, message", [
    ([100, -99], "do not sum to zero"),
    ([100], "2 to"),
    ([100, 0, -100], "may not be zero"),
])
def test_unbalanced_or_malformed_entries_are_refused(three_accounts, amounts, message):
    with pytest.raises(Invalid, match=message):
        tx(lambda conn: post_entry(conn, draft(three_accounts, amounts)))


def test_unknown_account_and_wrong_currency_are_refused(three_accounts):
    a = three_accounts[0]
    with pytest.raises(Invalid, match="does not exist"):
        tx(lambda conn: post_entry(conn, draft([a, 10**9], [1, -1])))
    bad = EntryDraft("test", D1, (Line(a, 5, "USD"), Line(three_accounts[1], -5, "USD")))
    with pytest.raises(Invalid, match="holds CNY"):
        tx(lambda conn: post_entry(conn, bad))


def test_effective_date_is_required(three_accounts):
    with pytest.raises(Invalid, match="effective date"):
        tx(lambda conn: post_entry(conn, EntryDraft("test", None, (Line(three_accounts[0], 1),
                                                                    Line(three_accounts[1], -1)))))


def test_a_bad_entry_in_a_batch_writes_nothing(three_accounts):
    a, b, _ = three_accounts
    before = tx(lambda conn: balance_fen(conn, a))
    with pytest.raises(Invalid):
        tx(lambda conn: post_entries(conn, [draft([a, b], [7, -7]), draft([a, b], [7, -6])]))
    assert tx(lambda conn: balance_fen(conn, a)) == before


def test_reversal_once_only(three_accounts):
    a, b, c = three_accounts
    entry_id = tx(lambda conn: post_entry(conn, draft([a, b, c], [10, -4, -6], D1)))
    reversal_id = tx(lambda conn: reverse_entry(conn, entry_id, D2))
    assert tx(lambda conn: balances_fen(conn, [a, b, c])) == {a: 0, b: 0, c: 0}
    assert tx(lambda conn: balance_fen(conn, a, as_of=D1)) == 10
    with pytest.raises(Conflict, match="already reversed"):
        tx(lambda conn: reverse_entry(conn, entry_id, D2))
    with pytest.raises(Conflict, match="itself a reversal"):
        tx(lambda conn: reverse_entry(conn, reversal_id, D2))
    with pytest.raises(Invalid, match="before the entry it reverses"):
        other = tx(lambda conn: post_entry(conn, draft([a, b], [1, -1], D3)))
        tx(lambda conn: reverse_entry(conn, other, D1))
    with pytest.raises(NotFound):
        tx(lambda conn: reverse_entry(conn, 10**12, D2))


def reversal(original_id, lines, on=D2, loan_id=None):
    return EntryDraft("reversal", on, tuple(Line(a, fen) for a, fen in lines),
                      reverses_id=original_id, loan_id=loan_id)


def test_post_entries_accepts_a_mirror_in_any_order(three_accounts):
    a, b, c = three_accounts
    entry_id = tx(lambda conn: post_entry(conn, draft([a, b, c], [10, -4, -6], D1)))
    mirror = reversal(entry_id, [(c, 6), (a, -10), (b, 4)])
    reversal_id = tx(lambda conn: post_entry(conn, mirror))
    assert tx(lambda conn: balances_fen(conn, [a, b, c])) == {a: 0, b: 0, c: 0}
    assert reversal_id > entry_id


@pytest.mark.parametrize("lines, message", [
    ([(0, -9), (1, 9)], "mirror"),                          # other amounts
    ([(0, 10), (1, -10)], "mirror"),                        # the same sign: a repeat
    ([(0, -5), (0, -5), (1, 10)], "mirror"),                # the same sums, other lines
    ([(0, -10), (2, 10)], "mirror"),                        # another account
])
def test_post_entries_refuses_a_reversal_that_does_not_mirror(three_accounts, lines, message):
    accounts = three_accounts
    entry_id = tx(lambda conn: post_entry(conn, draft(accounts[:2], [10, -10])))
    bad = reversal(entry_id, [(accounts[i], fen) for i, fen in lines])
    with pytest.raises(Invalid, match=message):
        tx(lambda conn: post_entry(conn, bad))


def test_post_entries_checks_every_reversal_rule(three_accounts):
    a, b, _ = three_accounts
    first = tx(lambda conn: post_entry(conn, draft([a, b], [10, -10], D1)))
    second = tx(lambda conn: post_entry(conn, draft([a, b], [3, -3], D2)))
    undo_first = reversal(first, [(a, -10), (b, 10)])
    with pytest.raises(Conflict, match="reversed twice in this batch"):
        tx(lambda conn: post_entries(conn, [undo_first, undo_first]))
    with pytest.raises(Invalid, match="before the entry it reverses"):
        tx(lambda conn: post_entry(conn, reversal(second, [(a, -3), (b, 3)], on=D1)))
    with pytest.raises(Invalid, match="the loan of the entry it reverses"):
        tx(lambda conn: post_entry(conn, reversal(first, [(a, -10), (b, 10)], loan_id=10**9)))
    with pytest.raises(NotFound, match="does not exist"):
        tx(lambda conn: post_entry(conn, reversal(10**12, [(a, -10), (b, 10)])))
    reversal_id = tx(lambda conn: post_entry(conn, undo_first))
    with pytest.raises(Conflict, match=f"already reversed by entry {reversal_id}"):
        tx(lambda conn: post_entry(conn, undo_first))
    with pytest.raises(Conflict, match="itself a reversal"):
        tx(lambda conn: post_entry(conn, reversal(reversal_id, [(a, 10), (b, -10)], on=D3)))
    assert tx(lambda conn: balances_fen(conn, [a, b])) == {a: 3, b: -3}


def test_ensure_accounts_is_idempotent(engine):
    owner = InstitutionFactory()
    spec = AccountSpec(unique("t:x"), "x", "asset", "test", institution_id=owner.id)
    first = tx(lambda conn: ensure_accounts(conn, [spec]))
    assert tx(lambda conn: ensure_accounts(conn, [spec])) == first


amount = st.integers(min_value=1, max_value=10**12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(amount, amount, st.integers(0, 2)), min_size=1, max_size=8))
def test_any_sequence_of_postings_stays_balanced_and_verifies(three_accounts, events):
    """Property: whatever balanced entries are posted, every balance equals the sum of what
    was posted to it, the books verify balanced, and sealing keeps the chain intact."""
    a, b, c = three_accounts
    expected = balances = tx(lambda conn: balances_fen(conn, [a, b, c]))
    expected = dict(balances)
    drafts = []
    for debit, split, reverse_flag in events:
        credit_b = -min(split, debit)
        credit_c = -(debit + credit_b)
        lines = [(a, debit), (b, credit_b)] + ([(c, credit_c)] if credit_c else [])
        drafts.append(EntryDraft("test", D1, tuple(Line(acc, fen) for acc, fen in lines)))
        for acc, fen in lines:
            expected[acc] += fen
    tx(lambda conn: post_entries(conn, drafts))
    assert tx(lambda conn: balances_fen(conn, [a, b, c])) == expected
    tx(lambda conn: chain.seal_pending(conn))
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact and result.unsealed == 0


def test_bulk_batch_refuses_an_unbalanced_entry_at_commit_on_postgres(three_accounts, backend):
    """The COPY path goes through the same deferred balance trigger as INSERT."""
    from sqlalchemy import text
    from ledger.bulk import COPY_THRESHOLD, insert_many
    from ledger.schema import entries as entries_table, postings as postings_table
    if backend != "postgres":
        pytest.skip("COPY is the PostgreSQL bulk path")
    from sqlalchemy.exc import DBAPIError
    from ledger.db import utcnow
    from tests.factories import engine as bound
    a, b, _ = three_accounts
    with bound().connect() as conn:
        rows = [{"kind": "raw", "effective_on": D1, "recorded_at": utcnow(),
                 "actor_key_id": None, "institution_id": None, "idempotency_key": None,
                 "reverses_id": None, "memo": None, "loan_id": None} for _ in range(COPY_THRESHOLD)]
        ids = insert_many(conn, entries_table, rows, return_ids=True)
        lines = [{"entry_id": i, "account_id": acc, "amount_fen": fen, "currency": "CNY"}
                 for i in ids for acc, fen in ((a, 5), (b, -5))]
        lines[-1]["amount_fen"] = -4
        insert_many(conn, postings_table, lines)
        with pytest.raises(DBAPIError, match="unbalanced"):
            conn.commit()
        conn.rollback()
        assert conn.execute(text("SELECT count(*) FROM entries WHERE id = ANY(:ids)"), {"ids": ids}).scalar_one() == 0


def test_ensure_accounts_refuses_a_code_held_in_another_currency(engine):
    """ensure_accounts promises each returned account holds its spec's currency (post_entries
    then trusts those currencies without a second look-up: ledger.loans._disburse)."""
    bank = InstitutionFactory()
    dollars = AccountSpec(unique("t:usd"), "dollars", "asset", "test", institution_id=bank.id, currency="USD")
    tx(lambda conn: ensure_accounts(conn, [dollars]))
    yuan = AccountSpec(dollars.code, "yuan", "asset", "test", institution_id=bank.id)
    with pytest.raises(Conflict, match="holds USD, not CNY"):
        tx(lambda conn: ensure_accounts(conn, [yuan]))


def test_known_currencies_skip_only_the_look_up_not_the_rule(three_accounts):
    """A caller's known currencies replace the SELECT; a posting in another currency is still
    refused by the same check."""
    a, b, _ = three_accounts
    bad = EntryDraft("test", D1, (Line(a, 5, "USD"), Line(b, -5, "USD")))
    with pytest.raises(Invalid, match="holds CNY"):
        tx(lambda conn: post_entries(conn, [bad], known_currencies={a: "CNY", b: "CNY"}))
