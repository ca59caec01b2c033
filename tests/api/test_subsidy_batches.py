"""/v1/subsidy-batches over HTTP: a fiscal bureau drafts, another of its keys approves (the maker
gets 403), posts (Idempotency-Key required) and reverses; lines paged and as CSV; verify holds."""
from datetime import date

from ledger.journal import SYSTEM
from ledger.loans import record_fee, record_repayment
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, auth,
                             make_key, make_loan, program_parties, unique)


def _book(loans=3):
    terms = api_terms(**program_parties())
    terms["subsidies"] = [{"kind": "interest", "method": "pct_of_paid", "pct": "0.40"},
                          {"kind": "premium", "method": "pct_of_paid", "pct": "0.50",
                           "eligibility": {"sme_only": False, "private_only": True}}]
    program = ProgramFactory(terms=terms)
    bank = InstitutionFactory()
    ids = []
    for n in range(loans):
        borrower = BorrowerFactory(bank_id=bank.id, private=n != 0)
        loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
                            start_date="2024-01-10", maturity_date="2026-01-10")
        from tests.factories import tx
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 2, 1), 0, 100_00, SYSTEM))
        tx(lambda conn: record_fee(conn, loan_id, bank.id, "premium", 10_00, date(2024, 2, 1), SYSTEM))
        ids.append(loan_id)
    bureau = InstitutionFactory(kind="fiscal", region="440100")
    maker = {"Authorization": f"Bearer {make_key('fiscal', bureau.code)}"}
    checker = {"Authorization": f"Bearer {make_key('fiscal', bureau.code)}"}
    return program, ids, maker, checker


def _post(client, path, headers, json=None):
    return client.post(path, json=json, headers={**headers, "Idempotency-Key": unique("sb")})


def test_draft_approve_post_and_reverse_over_http(client):
    program, loans, maker, checker = _book()
    made = _post(client, "/v1/subsidy-batches", maker, {"program": program.code, "period": "2024"})
    assert made.status_code == 201, made.get_json()
    batch = made.get_json()
    assert made.headers["Location"] == f"/v1/subsidy-batches/{batch['id']}"
    assert batch["status"] == "draft" and batch["total"] == "130.00"  # 3 × 40.00 + 2 × 5.00 (one not private)
    assert batch["excluded"] == [{"loan": loans[0], "kind": "premium", "reason": "private_only"}]
    assert {(line["kind"], line["amount"]) for line in batch["lines"]} == {("interest", "40.00"), ("premium", "5.00")}
    assert batch["created_by"] and batch["lines_complete"] is True
    second = _post(client, "/v1/subsidy-batches", checker, {"program": program.code, "period": "2024"})
    assert second.status_code == 409
    assert _post(client, f"/v1/subsidy-batches/{batch['id']}/approve", maker).status_code == 403
    approved = _post(client, f"/v1/subsidy-batches/{batch['id']}/approve", checker)
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert approved.get_json()["approved_by"] != batch["created_by"]
    no_key = client.post(f"/v1/subsidy-batches/{batch['id']}/post", headers=checker)
    assert no_key.status_code == 400
    posted = _post(client, f"/v1/subsidy-batches/{batch['id']}/post", checker)
    assert posted.status_code == 200 and posted.get_json()["status"] == "posted"
    auditor = auth("auditor")
    verify = client.get("/v1/audit/verify", headers=auditor).get_json()
    assert verify["balanced"] is True
    reversed_ = _post(client, f"/v1/subsidy-batches/{batch['id']}/reverse", maker)
    assert reversed_.status_code == 200 and reversed_.get_json()["status"] == "reversed"
    again = _post(client, "/v1/subsidy-batches", maker, {"program": program.code, "period": "2024"})
    assert again.status_code == 201 and again.get_json()["total"] == "130.00"


def test_lines_are_paged_and_exported_as_csv(client):
    program, loans, maker, _ = _book()
    batch = _post(client, "/v1/subsidy-batches", maker, {"program": program.code, "period": "2024"}).get_json()
    first = client.get(f"/v1/subsidy-batches/{batch['id']}/lines?limit=2", headers=maker).get_json()
    assert len(first["items"]) == 2 and first["next"]
    rest = client.get(f"/v1/subsidy-batches/{batch['id']}/lines?limit=2&after={first['next']}", headers=maker).get_json()
    assert len(rest["items"]) == 2 and rest["next"]
    csv = client.get(f"/v1/subsidy-batches/{batch['id']}/lines?limit=1000",
                     headers={**maker, "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    rows = csv.get_data(as_text=True).strip().splitlines()
    assert rows[0].startswith("id,loan,borrower,kind,method,basis,computed,amount,capped_by") and len(rows) == 6
    listed = client.get(f"/v1/subsidy-batches?program={program.code}", headers=auth("auditor", InstitutionFactory(
        kind="auditor", region="440106").code)).get_json()
    assert [b["id"] for b in listed["items"]] == [batch["id"]]
    away = auth("fiscal", InstitutionFactory(kind="fiscal", region="510100").code)
    assert client.get(f"/v1/subsidy-batches/{batch['id']}", headers=away).status_code == 404
    assert client.get(f"/v1/subsidy-batches?program={program.code}", headers=away).get_json()["items"] == []
