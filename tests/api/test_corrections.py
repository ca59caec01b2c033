"""Corrections (issue 8 item 7) through the API: a bank reverses a mistaken repayment or fee of
its own loan (`POST /v1/loans/{id}/reversals`); the loan's outstanding principal and status
follow; refused for an entry that is not a repayment or fee of this loan (422), for an entry
already reversed and once a live claim exists (409); another bank's loan is 404."""
import threading
from datetime import date

import pytest
from sqlalchemy import select

from ledger.claims import open_claim, withdraw_claim
from ledger.corrections import reverse_posting
from ledger.db import run_in_transaction
from ledger.errors import Conflict
from ledger.journal import SYSTEM, balance_fen
from ledger.loans import outstanding_fen, record_repayment
from ledger.schema import entries, pledges
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, auth, make_loan, tx, unique


def _book(**loan):
    bank = InstitutionFactory(kind="bank", region="440100")
    borrower = BorrowerFactory(bank_id=bank.id)
    program = ProgramFactory()
    loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code, **loan)
    return {"bank": bank, "loan": loan_id, "headers": auth("bank", bank.code), "program": program,
            "borrower": borrower}


def _post(client, path, body, headers, key=None):
    return client.post(path, json=body, headers={**headers, "Idempotency-Key": key or unique("fix")})


def _repay(client, book, principal, paid_on="2025-06-01", interest="0.00"):
    response = _post(client, f"/v1/loans/{book['loan']}/repayments",
                     {"paid_on": paid_on, "principal": principal, "interest": interest}, book["headers"])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _reverse(client, book, entry, reason="posted twice", headers=None, key=None):
    return _post(client, f"/v1/loans/{book['loan']}/reversals", {"entry": entry, "reason": reason},
                 headers or book["headers"], key)


def _loan(client, book):
    return client.get(f"/v1/loans/{book['loan']}", headers=book["headers"]).get_json()


def test_reversing_the_closing_repayment_reopens_the_loan(client):
    book = _book(principal="1000.00")
    _repay(client, book, "400.00")
    closing = _repay(client, book, "600.00", paid_on="2025-07-01", interest="12.34")
    assert closing["status"] == "closed"
    response = _reverse(client, book, closing["entry"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["reverses"], body["kind"], body["outstanding_principal"], body["status"], body["closed_on"]) == (
        closing["entry"], "repayment", "600.00", "active", None)
    assert body["effective_on"] == "2025-07-01" and body["reason"] == "posted twice"
    loan = _loan(client, book)
    assert (loan["status"], loan["outstanding_principal"], loan["closed_on"]) == ("active", "600.00", None)
    last = loan["events"][-1]
    assert (last["kind"], last["reverses"], last["entry"]) == ("reversal", closing["entry"], body["entry"])
    assert "posted twice" in last["memo"]
    # The mirror image: every posting of the repayment negated, interest included.
    original = next(e for e in loan["events"] if e["entry"] == closing["entry"])
    assert sorted((p["account"], p["amount"]) for p in last["postings"]) == sorted(
        (p["account"], _negated(p["amount"])) for p in original["postings"])
    # Effective on the repayment's own date: as of that day the loan owes 600.00 again.
    assert tx(lambda conn: outstanding_fen(conn, [book["loan"]], as_of=date(2025, 7, 1)))[book["loan"]] == 600_00
    # The pledges are live again: the released_on of a closed loan is cleared.
    released = tx(lambda conn: conn.execute(select(pledges.c.released_on).where(
        pledges.c.loan_id == book["loan"])).scalars().all())
    assert released and all(day is None for day in released)
    # And the bank may repay again.
    assert _repay(client, book, "600.00", paid_on="2025-07-02")["status"] == "closed"


def _negated(amount: str) -> str:
    return amount[1:] if amount.startswith("-") else f"-{amount}"


def test_a_fee_is_reversed_and_the_loan_is_unchanged(client):
    book = _book()
    fee = _post(client, f"/v1/loans/{book['loan']}/fees",
                {"kind": "premium", "amount": "500.00", "paid_on": "2025-02-25"}, book["headers"]).get_json()
    body = _reverse(client, book, fee["entry"], reason="premium belonged to another contract").get_json()
    assert (body["kind"], body["status"], body["outstanding_principal"]) == ("premium_paid", "active", "5000000.00")
    paid = next(e for e in _loan(client, book)["events"] if e["kind"] == "premium_paid")
    fees_account = next(p["account"] for p in paid["postings"] if p["amount"] == "500.00")
    assert tx(lambda conn: balance_fen(conn, fees_account)) == 0


def test_refusals(client):
    book = _book()
    repaid = _repay(client, book, "100.00")
    disbursement = _loan(client, book)["events"][0]["entry"]
    other = _book()
    other_repaid = _repay(client, other, "1.00")
    # Not a repayment or fee of this loan (the disbursement, another loan's entry, no entry): 422.
    for entry in (disbursement, other_repaid["entry"], 2**62):
        response = _reverse(client, book, entry)
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "entry", entry
    assert _reverse(client, book, repaid["entry"], reason=" ").status_code == 422
    # Another bank's loan: 404, and without an Idempotency-Key: 400.
    assert _reverse(client, book, repaid["entry"], headers=auth("bank")).status_code == 404
    no_key = client.post(f"/v1/loans/{book['loan']}/reversals", json={"entry": repaid["entry"], "reason": "x"},
                         headers=book["headers"])
    assert no_key.status_code == 400
    first = _reverse(client, book, repaid["entry"], key="fix-1")
    assert first.status_code == 201
    replay = _reverse(client, book, repaid["entry"], key="fix-1")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    again = _reverse(client, book, repaid["entry"])
    assert again.status_code == 409 and "already reversed" in again.get_json()["detail"]
    # The reversal itself is not a repayment: reversing it is a 422, not a second mirror.
    assert _reverse(client, book, first.get_json()["entry"]).status_code == 422


def test_refused_once_a_claim_exists_and_allowed_again_after_its_withdrawal(client, engine):
    book = _book()
    repaid = _repay(client, book, "100.00")
    claim = tx(lambda conn: open_claim(conn, book["loan"], book["bank"].id, date(2026, 6, 1), SYSTEM,
                                       overdue_days=93))
    refused = _reverse(client, book, repaid["entry"])
    assert refused.status_code == 409 and f"claim {claim['id']}" in refused.get_json()["detail"]
    tx(lambda conn: withdraw_claim(conn, claim["id"], book["bank"].id, date(2026, 6, 2), SYSTEM))
    assert _reverse(client, book, repaid["entry"]).status_code == 201


def test_the_database_keeps_one_reversal_per_entry_under_concurrency(engine, backend):
    if backend != "postgres":
        pytest.skip("concurrency with real commits: PostgreSQL")
    book = _book()
    repaid = tx(lambda conn: record_repayment(conn, book["loan"], book["bank"].id, date(2025, 6, 1),
                                              100_00, 0, SYSTEM))
    barrier, outcomes = threading.Barrier(2), []

    def correct():
        def work(conn):
            barrier.wait(timeout=10)
            return reverse_posting(conn, book["loan"], book["bank"].id, repaid["entry"], "twice", SYSTEM)
        try:
            outcomes.append(run_in_transaction(engine, work, retries=0)["entry"])
        except Conflict as exc:
            outcomes.append(exc)
    threads = [threading.Thread(target=correct) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "int"]
    reversals = tx(lambda conn: conn.execute(select(entries.c.id).where(
        entries.c.reverses_id == repaid["entry"])).scalars().all())
    assert len(reversals) == 1
    assert tx(lambda conn: outstanding_fen(conn, [book["loan"]]))[book["loan"]] == 5_000_000_00
