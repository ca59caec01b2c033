"""The journal equals the claim records (`ledger.claim_books`, in `ipledger verify` and
`GET /v1/audit/verify`): over random sequences of payments and recoveries the journal stays
balanced, the fund never negative, recoveries within what was borne, and every figure of the
claim records equals the journal's; tampering with the records is seen.

The session database is shared: each test looks at the breaks of its own world only."""
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from ledger.chain import unbalanced_entry_ids
from ledger.claim_books import check_claim_books
from ledger.claim_payments import pay_claim
from ledger.claims import get_claim
from ledger.errors import DomainError
from ledger.journal import SYSTEM
from ledger.recoveries import record_recovery
from tests.factories import tx
from tests.ledger.test_claim_payments import _no_fund_cap, _ref, fund_fen
from tests.ledger.test_claims_db import _institution_id, default, loan_in, world


def breaks_of(w, claim) -> list[dict]:
    """The breaks naming this world's programme, bank, parties or the claim's shares."""
    mine = {("program", w["program"].id), ("institution", w["bank"].id), ("institution", w["pool_id"]),
            ("institution", _institution_id(w["insurer"]))}
    mine |= {("share", s["id"]) for s in claim["shares"]}
    found = tx(lambda conn: check_claim_books(conn).claim_breaks)
    return [b for b in found if any((key, b.get(key)) in mine for key in ("program", "institution", "share"))]


def test_tampering_with_a_paid_share_is_seen_and_named(engine):
    w = world()
    claim = default(w, loan_in(w))
    insurer = _institution_id(w["insurer"])
    tx(lambda conn: pay_claim(conn, claim["id"], insurer, 40_000_000, date(2026, 6, 10), _ref(), SYSTEM))
    assert breaks_of(w, claim) == []
    share_id = claim["shares"][0]["id"]
    tamper = "UPDATE claim_shares SET paid_fen = paid_fen + :fen WHERE id = :id"
    tx(lambda conn: conn.execute(text(tamper), {"fen": 1, "id": share_id}))
    try:
        found = breaks_of(w, claim)
        assert {"figure": "share_paid_vs_payments", "share": share_id, "records_fen": 40_000_001,
                "journal_fen": 40_000_000} in found
        assert any(b["figure"] == "party_paid" and b["records_fen"] - b["journal_fen"] == 1 for b in found)
        assert tx(lambda conn: check_claim_books(conn).claims_agree) is False
    finally:  # the session database is shared: put the record back
        tx(lambda conn: conn.execute(text(tamper), {"fen": -1, "id": share_id}))
    assert breaks_of(w, claim) == []


def test_a_fund_paid_usage_row_that_differs_from_the_pools_payments_is_seen(engine):
    w = world()
    claim = default(w, loan_in(w))
    for who, fen in (("insurer", 100_000_000), ("pool", 40_000_000)):
        payer = _institution_id(w[who])
        tx(lambda conn: pay_claim(conn, claim["id"], payer, fen, date(2026, 6, 10), _ref(), SYSTEM))
    assert breaks_of(w, claim) == []
    tamper = ("UPDATE cap_usage SET used_fen = used_fen + :fen WHERE program_id = :program "
              "AND scope = 'fund_paid'")
    tx(lambda conn: conn.execute(text(tamper), {"fen": 1, "program": w["program"].id}))
    try:
        assert {"figure": "fund_paid_usage", "program": w["program"].id, "records_fen": 40_000_001,
                "journal_fen": 40_000_000} in breaks_of(w, claim)
    finally:
        tx(lambda conn: conn.execute(text(tamper), {"fen": -1, "program": w["program"].id}))
    assert breaks_of(w, claim) == []


_step = st.one_of(
    st.tuples(st.just("pay"), st.sampled_from(["insurer", "pool"]), st.integers(1, 120_000_000)),
    st.tuples(st.just("recover"), st.integers(0, 300_000_000), st.integers(0, 10_000_000)))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_step, min_size=1, max_size=8), st.integers(0, 2_000_000))
def test_random_payments_and_recoveries_keep_the_books_equal_to_the_records(engine, steps, fund_yuan):
    w = world(fund_yuan=fund_yuan, change=_no_fund_cap)  # the pool may owe more than its fund
    claim = default(w, loan_in(w))
    payers = {"insurer": _institution_id(w["insurer"]), "pool": w["pool_id"]}
    for step in steps:
        try:
            if step[0] == "pay":
                tx(lambda conn: pay_claim(conn, claim["id"], payers[step[1]], step[2], date(2026, 6, 10),
                                          _ref(), SYSTEM))
            else:
                tx(lambda conn: record_recovery(conn, claim["loan_id"], w["bank"].id, date(2026, 9, 1),
                                                step[1], min(step[2], step[1]), "auction", None, SYSTEM))
        except DomainError:
            pass  # refused (pays first, over the share, the fund short, beyond the loss): nothing written
        assert fund_fen(w) >= 0
    now = tx(lambda conn: get_claim(conn, claim["id"]))
    for share in now["shares"]:
        assert 0 <= share["paid_fen"] <= share["amount_fen"]
        assert share["recovered_fen"] <= share["amount_fen"]
    assert now["bank_recovered_fen"] <= now["bank_retained_fen"]
    assert now["recovered_fen"] <= now["loss_base_fen"]
    assert (now["status"] == "settled") == all(s["paid_fen"] == s["amount_fen"] for s in now["shares"])
    assert tx(lambda conn: unbalanced_entry_ids(conn)) == []
    assert breaks_of(w, now) == []
