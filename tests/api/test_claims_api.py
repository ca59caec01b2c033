"""Defaults and claims through the API: the bank defaults its loan (201 with the claim, as
API.md shapes it), the claim is read by the bank, the parties named on it and the region's
readers (others 404), withdrawn by the bank, and refused where the rules say."""
from datetime import date

from ledger import programs
from ledger.journal import SYSTEM
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, auth,
                             make_loan, program_parties, tx, unique)

DEFAULT = {"classified_on": "2026-06-01", "overdue_days": 93, "overdue_interest": "0"}


def _book(fund_fen=150_000_000):
    parties = program_parties()
    program = ProgramFactory(terms=api_terms(**parties))
    bank = InstitutionFactory(kind="bank", region="440100")
    borrower = BorrowerFactory(bank_id=bank.id)
    if fund_fen:
        from tests.ledger.test_claims_db import _institution_id
        pool_id = _institution_id(parties["pool"])
        tx(lambda conn: programs.contribute(conn, program.code, pool_id, fund_fen, date(2025, 1, 2), SYSTEM))
    loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code)
    return {"bank": bank, "loan": loan_id, "parties": parties, "headers": auth("bank", bank.code)}


def post(client, path, body, headers, key=None):
    return client.post(path, json=body, headers={**headers, "Idempotency-Key": key or unique("claim")})


def test_a_bank_defaults_its_loan_and_gets_the_claim(client):
    book = _book()
    response = post(client, f"/v1/loans/{book['loan']}/default", DEFAULT, book["headers"])
    assert response.status_code == 201, response.get_json()
    claim = response.get_json()
    assert response.headers["Location"] == f"/v1/claims/{claim['id']}"
    assert (claim["loss_base"], claim["covered"], claim["bank_retained"], claim["status"]) == (
        "5000000.00", "4000000.00", "2500000.00", "open")
    insurer, pool = claim["shares"]
    assert (insurer["institution"], insurer["role"], insurer["ratio"]) == (book["parties"]["insurer"], "insurer", "0.30")
    assert (insurer["computed"], insurer["amount"], insurer["capped_by"]) == ("1200000.00", "1000000.00", ["per_claim"])
    assert insurer["cuts"] == [{"cap": "per_claim", "amount": "200000.00"}]
    assert (pool["amount"], pool["capped_by"], pool["paid"], pool["outstanding"]) == (
        "1500000.00", ["fund_balance"], "0.00", "1500000.00")
    loan = client.get(f"/v1/loans/{book['loan']}", headers=book["headers"]).get_json()
    assert loan["status"] == "defaulted" and loan["events"][-1]["kind"] == "claim_opened"


def test_the_same_key_replays_and_a_second_default_is_409(client):
    book = _book()
    path = f"/v1/loans/{book['loan']}/default"
    first = post(client, path, DEFAULT, book["headers"], key="k1")
    again = post(client, path, DEFAULT, book["headers"], key="k1")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert post(client, path, DEFAULT, book["headers"]).status_code == 409


def test_below_the_trigger_is_409_and_another_banks_loan_404(client):
    book = _book()
    path = f"/v1/loans/{book['loan']}/default"
    assert post(client, path, {**DEFAULT, "overdue_days": 30}, book["headers"]).status_code == 409
    assert post(client, path, DEFAULT, auth("bank")).status_code == 404
    assert post(client, path, DEFAULT, {}).status_code == 401


def test_who_sees_a_claim(client):
    book = _book()
    claim = post(client, f"/v1/loans/{book['loan']}/default", DEFAULT, book["headers"]).get_json()
    path = f"/v1/claims/{claim['id']}"
    sees = {"bank": book["headers"], "insurer": auth("insurer", book["parties"]["insurer"]),
            "pool": auth("pool", book["parties"]["pool"]),
            "fiscal": auth("fiscal", InstitutionFactory(kind="fiscal", region="440100").code),
            "auditor": auth("auditor", InstitutionFactory(kind="auditor", region="440106").code),
            "admin": auth("admin")}
    for role, headers in sees.items():
        response = client.get(path, headers=headers)
        assert response.status_code == 200, role
        assert response.get_json() == claim, role
        assert claim["id"] in [c["id"] for c in client.get("/v1/claims", headers=headers).get_json()["items"]], role
    hidden = {"another bank": auth("bank"), "another insurer": auth("insurer"),
              "a fiscal bureau elsewhere": auth("fiscal", InstitutionFactory(kind="fiscal", region="510100").code)}
    for who, headers in hidden.items():
        assert client.get(path, headers=headers).status_code == 404, who
        assert claim["id"] not in [c["id"] for c in client.get("/v1/claims", headers=headers).get_json()["items"]], who
    pool_code = book["parties"]["pool"]
    mine = client.get(f"/v1/claims?party={pool_code}&status=open", headers=book["headers"]).get_json()["items"]
    assert [c["id"] for c in mine] == [claim["id"]]
    assert client.get("/v1/claims?status=withdrawn", headers=book["headers"]).get_json()["items"] == []


def test_the_bank_withdraws_a_claim_and_the_loan_may_default_again(client):
    book = _book()
    claim = post(client, f"/v1/loans/{book['loan']}/default", DEFAULT, book["headers"]).get_json()
    path = f"/v1/claims/{claim['id']}/withdrawal"
    assert post(client, path, {"withdrawn_on": "2026-06-02"}, auth("bank")).status_code == 404
    withdrawn = post(client, path, {"withdrawn_on": "2026-06-02"}, book["headers"])
    assert withdrawn.status_code == 201
    assert withdrawn.get_json()["status"] == "withdrawn" and withdrawn.get_json()["withdrawn_on"] == "2026-06-02"
    assert post(client, path, {"withdrawn_on": "2026-06-02"}, book["headers"]).status_code == 409
    loan = client.get(f"/v1/loans/{book['loan']}", headers=book["headers"]).get_json()
    assert loan["status"] == "active" and loan["events"][-1]["kind"] == "reversal"
    again = post(client, f"/v1/loans/{book['loan']}/default", DEFAULT, book["headers"])
    assert again.status_code == 201 and again.get_json()["shares"][1]["amount"] == "1500000.00"
