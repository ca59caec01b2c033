"""Claim payments in the database (SQLite and PostgreSQL): DOMAIN.md 3.5 as table tests (the
owing party only, pays first, no overpayment, settled when every share is paid), one balanced
`claim_paid` entry per payment, the pool paying from its fund which never goes negative (in the
domain, and on PostgreSQL by the database with real commits and two payments at once)."""
import threading
from datetime import date

import pytest
from sqlalchemy import select, text

from ledger import programs
from ledger.claim_payments import pay_claim
from ledger.claims import get_claim, withdraw_claim
from ledger.db import run_in_transaction
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import SYSTEM, balance_fen
from ledger.schema import accounts, claim_payments, entries
from tests.factories import InstitutionFactory, tx
from tests.ledger.test_claims_db import DEFAULTED_ON, _institution_id, default, entry_postings, loan_in, world

PAID_ON = date(2026, 6, 10)


def pay(w, claim, who, fen, reference=None, on=PAID_ON):
    payer = _institution_id(w[who]) if who in ("insurer", "pool") else who
    return tx(lambda conn: pay_claim(conn, claim["id"], payer, fen, on, reference or _ref(), SYSTEM))


_refs = iter(range(10**9))


def _ref():
    return f"REF-{next(_refs)}-{id(_refs)}"


def share(claim_id, code):
    claim = tx(lambda conn: get_claim(conn, claim_id))
    return next(s for s in claim["shares"] if s["institution"] == code), claim


def fund_fen(w):
    code = f"program:{w['program'].id}:fund"
    account = tx(lambda conn: conn.execute(select(accounts.c.id).where(accounts.c.code == code)).scalar())
    return 0 if account is None else tx(lambda conn: balance_fen(conn, account))


# The example terms: insurer 0.30 pays first, capped at 1,000,000.00 per claim; pool 0.50 within
# its fund (1,500,000.00 here). A 5,000,000.00 loan (IP share 0.8): insurer 1,000,000.00, pool
# 1,500,000.00, bank 2,500,000.00.

def test_the_pays_first_party_pays_before_anyone_else_then_the_claim_settles(engine):
    w = world()
    claim = default(w, loan_in(w))
    with pytest.raises(Conflict, match="pays-first"):
        pay(w, claim, "pool", 100)
    first = pay(w, claim, "insurer", 40_000_000)  # part of its share: still first
    assert (first["share_paid_fen"], first["claim_status"]) == (40_000_000, "open")
    with pytest.raises(Conflict, match="pays-first party has paid 400000.00 of 1000000.00"):
        pay(w, claim, "pool", 100)
    pay(w, claim, "insurer", 60_000_000)
    pay(w, claim, "pool", 100_000_000)
    assert fund_fen(w) == 50_000_000  # the pool pays from the fund: 1,500,000.00 - 1,000,000.00
    last = pay(w, claim, "pool", 50_000_000, on=date(2026, 6, 12))
    assert last["claim_status"] == "settled" and fund_fen(w) == 0
    settled = tx(lambda conn: get_claim(conn, claim["id"]))
    assert settled["settled_on"] == date(2026, 6, 12)
    assert [(s["paid_fen"], s["amount_fen"]) for s in settled["shares"]] == [(100_000_000,) * 2, (150_000_000,) * 2]


def test_each_payment_is_one_balanced_entry_discharging_the_payable_and_collecting_the_receivable(engine):
    w = world()
    loan_id = loan_in(w)
    claim = default(w, loan_id)
    insurer = pay(w, claim, "insurer", 100_000_000)
    lines = entry_postings(insurer["entry_id"])
    insurer_id, bank_id = _institution_id(w["insurer"]), w["bank"].id
    assert lines == {f"inst:{insurer_id}:claims_payable": 100_000_000, f"inst:{insurer_id}:settlement": -100_000_000,
                     f"inst:{bank_id}:settlement": 100_000_000, f"loan:{loan_id}:claim_receivable": -100_000_000}
    pool = pay(w, claim, "pool", 1_00)
    program_id = w["program"].id
    assert entry_postings(pool["entry_id"]) == {
        f"inst:{w['pool_id']}:claims_payable": 1_00, f"inst:{w['pool_id']}:claims_met_by_fund": -1_00,
        f"program:{program_id}:claims_paid": 1_00, f"program:{program_id}:fund": -1_00,
        f"inst:{bank_id}:settlement": 1_00, f"loan:{loan_id}:claim_receivable": -1_00}
    kinds = tx(lambda conn: conn.execute(select(entries.c.kind, entries.c.loan_id).where(
        entries.c.id.in_([insurer["entry_id"], pool["entry_id"]]))).all())
    assert set(kinds) == {("claim_paid", loan_id)}  # shown in the loan's events


@pytest.mark.parametrize("amount_fen, error, match", [
    (100_000_001, Invalid, "more than the 1000000.00 outstanding"),   # beyond the share
    (0, Invalid, "greater than zero"),
    (-5, Invalid, "negative"),
])
def test_payments_that_are_refused(engine, amount_fen, error, match):
    w = world()
    claim = default(w, loan_in(w))
    with pytest.raises(error, match=match):
        pay(w, claim, "insurer", amount_fen)


def test_only_a_party_named_on_the_claim_pays_and_a_share_capped_to_zero_owes_nothing(engine):
    w = world(fund_yuan=0)  # the pool's share is cut to 0 by its empty fund
    claim = default(w, loan_in(w))
    with pytest.raises(NotFound):
        pay(w, claim, InstitutionFactory(kind="insurer").id, 100)
    pay(w, claim, "insurer", 100_000_000)
    with pytest.raises(Invalid, match="more than the 0.00 outstanding"):
        pay(w, claim, "pool", 1)
    assert tx(lambda conn: get_claim(conn, claim["id"]))["status"] == "settled"  # every share paid


def test_a_reference_is_used_once_per_payer_and_dates_are_checked(engine):
    w = world()
    claim = default(w, loan_in(w))
    pay(w, claim, "insurer", 100, reference="PICC-2026-001")
    with pytest.raises(Conflict, match="already used"):
        pay(w, claim, "insurer", 100, reference="PICC-2026-001")
    with pytest.raises(Invalid, match="paid_on|before the claim"):
        pay(w, claim, "insurer", 100, on=date(2026, 5, 1))
    with pytest.raises(Invalid, match="future"):
        pay(w, claim, "insurer", 100, on=date(2999, 1, 1))
    assert tx(lambda conn: conn.execute(select(claim_payments.c.id).where(
        claim_payments.c.claim_id == claim["id"])).all()).__len__() == 1


def test_a_withdrawn_claim_takes_no_payment_and_a_paid_claim_is_not_withdrawn(engine):
    w = world()
    claim = default(w, loan_in(w))
    tx(lambda conn: withdraw_claim(conn, claim["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    with pytest.raises(Conflict, match="withdrawn"):
        pay(w, claim, "insurer", 100)
    paid = default(w, loan_in(w))
    pay(w, paid, "insurer", 100)
    with pytest.raises(Conflict, match="paid on it"):
        tx(lambda conn: withdraw_claim(conn, paid["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))


def test_a_later_claim_sees_the_fund_less_what_is_owed_and_unpaid_payments_counted(engine):
    w = world(fund_yuan=1_500_000)
    first = default(w, loan_in(w))
    pay(w, first, "insurer", 100_000_000)
    pay(w, first, "pool", 150_000_000)  # the fund is spent and nothing is owed on it
    tx(lambda conn: programs.contribute(conn, w["program"].code, w["pool_id"], 100_000_000, date(2026, 6, 11), SYSTEM))
    later = default(w, loan_in(w), on=date(2026, 6, 11))
    # balance 1,000,000.00 less owed-and-unpaid 0: the pool may promise 1,000,000.00 (not 0)
    assert share(later["id"], w["pool"])[0]["amount_fen"] == 100_000_000


def _no_fund_cap(terms):
    terms["parties"][1]["caps"]["fund_balance"] = False


def test_a_pool_pays_only_what_its_fund_holds(engine):
    w = world(fund_yuan=100, change=_no_fund_cap)  # the pool's share is not bounded by the fund
    claim = default(w, loan_in(w))
    pay(w, claim, "insurer", 100_000_000)
    with pytest.raises(Conflict, match="fund holds 100.00"):
        pay(w, claim, "pool", 100_01)
    pay(w, claim, "pool", 100_00)
    assert fund_fen(w) == 0


def test_the_database_refuses_a_fund_going_negative(engine, backend):
    if backend != "postgres":
        pytest.skip("a PostgreSQL rule (postings_fund_not_negative)")
    w = world(fund_yuan=100)
    fund = f"program:{w['program'].id}:fund"

    def spend(fen):
        def work(conn):
            ids = dict(conn.execute(select(accounts.c.code, accounts.c.id).where(
                accounts.c.code.in_([fund, f"program:{w['program'].id}:fund_capital"]))).all())
            entry = conn.execute(text("INSERT INTO entries (kind, effective_on, recorded_at) "
                                      "VALUES ('test', '2026-01-01', now()) RETURNING id")).scalar_one()
            conn.execute(text("INSERT INTO postings (entry_id, account_id, amount_fen, currency) VALUES "
                              "(:e, :fund, :out, 'CNY'), (:e, :capital, :back, 'CNY')"),
                         {"e": entry, "fund": ids[fund], "capital": ids[f"program:{w['program'].id}:fund_capital"],
                          "out": -fen, "back": fen})
        return tx(work)
    with pytest.raises(Exception, match="would go negative"):
        spend(100_01)
    spend(100_00)  # exactly the balance: allowed, and committed
    assert fund_fen(w) == 0
    with pytest.raises(Exception, match="would go negative"):
        spend(1)


def test_two_payments_from_a_fund_that_covers_one_at_the_same_moment_one_succeeds(engine, backend):
    if backend != "postgres":
        pytest.skip("concurrency with real commits: PostgreSQL")
    w = world(fund_yuan=1_000_000, change=_no_fund_cap)
    claims = [default(w, loan_in(w)) for _ in range(2)]
    for claim in claims:
        pay(w, claim, "insurer", 100_000_000)
    barrier, results, errors = threading.Barrier(2), [], []

    def payment(claim):
        def work(conn):
            barrier.wait(timeout=10)
            return pay_claim(conn, claim["id"], w["pool_id"], 100_000_000, PAID_ON, _ref(), SYSTEM)
        try:
            results.append(run_in_transaction(engine, work, retries=0))
        except Exception as exc:
            errors.append(exc)
    threads = [threading.Thread(target=payment, args=(claim,)) for claim in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 1 and len(errors) == 1, (results, errors)
    assert isinstance(errors[0], Conflict) and "fund holds 0.00" in errors[0].detail
    assert fund_fen(w) == 0
