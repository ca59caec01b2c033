"""Payments and recoveries through the API (real HTTP through the test client): the owing party
pays (pays first, no overpayment, one reference each), the claim shows paid and outstanding and
settles; the bank records a recovery (Idempotency-Key required) and its distribution shows who
got what and where it went; the claim and the loan's events show them; verify says the claim
records equal the journal."""
from tests.api.test_claims_api import DEFAULT, _book, post
from tests.factories import auth, unique


def _claim(client, book) -> dict:
    response = post(client, f"/v1/loans/{book['loan']}/default", DEFAULT, book["headers"])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def pay(client, claim, headers, amount, reference=None, key=None):
    body = {"amount": amount, "paid_on": "2026-06-10", "reference": reference or unique("ref")}
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/v1/claims/{claim['id']}/payments", json=body, headers={**headers, **extra})


def test_parties_pay_in_order_and_the_claim_settles(client):
    book = _book()
    claim = _claim(client, book)
    insurer, pool = (auth(role, book["parties"][role]) for role in ("insurer", "pool"))
    assert pay(client, claim, pool, "1.00").status_code == 409  # the insurer pays first
    first = pay(client, claim, insurer, "400000.00", key="pay-1")
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["amount"], body["paid"], body["outstanding"], body["claim_status"]) == (
        "400000.00", "400000.00", "600000.00", "open")
    again = pay(client, claim, insurer, "400000.00", reference=None, key="pay-1")
    assert again.status_code == 422  # the same key with another body (a fresh reference)
    assert pay(client, claim, insurer, "600000.01").status_code == 422  # more than outstanding
    assert pay(client, claim, insurer, "600000.00", reference=body["reference"]).status_code == 409  # reference used
    assert pay(client, claim, insurer, "600000.00").status_code == 201
    assert pay(client, claim, pool, "1500000.00").status_code == 201
    read = client.get(f"/v1/claims/{claim['id']}", headers=book["headers"]).get_json()
    assert read["status"] == "settled" and read["settled_on"] == "2026-06-10"
    assert [(s["paid"], s["outstanding"]) for s in read["shares"]] == [("1000000.00", "0.00"), ("1500000.00", "0.00")]
    events = client.get(f"/v1/loans/{book['loan']}", headers=book["headers"]).get_json()["events"]
    assert [e["kind"] for e in events].count("claim_paid") == 3


def test_who_may_pay(client):
    book = _book()
    claim = _claim(client, book)
    assert pay(client, claim, book["headers"], "1.00").status_code == 403  # a bank never pays
    assert pay(client, claim, auth("fiscal"), "1.00").status_code == 403
    assert pay(client, claim, auth("insurer"), "1.00").status_code == 404  # not named on the claim


def test_a_recovery_is_returned_pro_rata_with_the_pool_part_to_the_treasury(client):
    book = _book()
    claim = _claim(client, book)
    path = f"/v1/loans/{book['loan']}/recoveries"
    body = {"received_on": "2026-09-01", "gross": "1000000.05", "costs": "0.05", "source": "auction",
            "reference": "LOT-7"}
    assert client.post(path, json=body, headers=book["headers"]).status_code == 400  # no Idempotency-Key
    response = post(client, path, body, book["headers"], key="rec-1")
    assert response.status_code == 201, response.get_json()
    recovery = response.get_json()
    assert (recovery["gross"], recovery["costs"], recovery["net"], recovery["claim"]) == (
        "1000000.05", "0.05", "1000000.00", claim["id"])
    assert [(p["role"], p["amount"], p["to"]) for p in recovery["distribution"]] == [
        ("insurer", "200000.00", book["parties"]["insurer"]), ("pool", "300000.00", book["parties"]["treasury"]),
        ("bank", "500000.00", book["bank"].code)]
    replay = post(client, path, body, book["headers"], key="rec-1")
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_json() == recovery
    read = client.get(f"/v1/claims/{claim['id']}", headers=book["headers"]).get_json()
    assert [s["recovered"] for s in read["shares"]] == ["200000.00", "300000.00"]
    assert (read["bank_recovered"], read["recovered"]) == ("500000.00", "1000000.00")
    events = client.get(f"/v1/loans/{book['loan']}", headers=book["headers"]).get_json()["events"]
    assert events[-1]["kind"] == "recovery_distributed"
    too_much = {**body, "gross": "4000000.01", "costs": "0.00"}
    refused = post(client, path, too_much, book["headers"])
    assert refused.status_code == 422 and "borrower's" in refused.get_json()["detail"]
    costly = post(client, path, {**body, "costs": "1000000.06"}, book["headers"])
    assert costly.status_code == 422 and costly.get_json()["errors"][0]["field"] == "costs"


def test_verify_says_the_claim_records_equal_the_journal(client):
    book = _book()
    claim = _claim(client, book)
    assert pay(client, claim, auth("insurer", book["parties"]["insurer"]), "1.00").status_code == 201
    proof = client.get("/v1/audit/verify", headers=auth("auditor")).get_json()
    assert "claims_agree" in proof and isinstance(proof["claim_breaks"], list)
    mine = [b for b in proof["claim_breaks"] if b.get("institution") == book["bank"].id]
    assert mine == []
