"""Banks posting loans, repayments and fees through HTTP: every rule of API.md, on both databases."""
from ledger.dates import today as business_today
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger import chain
from ledger.loans import outstanding_fen
from tests.api.test_skeleton import assert_problem
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, auth, loan_body,
                             patent_number, tx, unique)


class Book:
    """A bank with a key, a programme covering 440100 and a borrower in 440106."""

    def __init__(self):
        self.bank = InstitutionFactory(kind="bank", region="440100")
        self.headers = auth("bank", self.bank.code)
        self.program = ProgramFactory(region="440100")
        self.borrower = BorrowerFactory(region="440106", bank_id=self.bank.id)

    def body(self, **over):
        body = loan_body(self.borrower.facts.credit_code, self.program.code)
        body.update(over)
        return body

    def post(self, client, body=None, key=None, **over):
        headers = {**self.headers, "Idempotency-Key": key or unique("k")}
        return client.post("/v1/loans", json=body or self.body(**over), headers=headers)

    def loan(self, client, **over) -> dict:
        response = self.post(client, **over)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def batch(self, client, items, key=None):
        return client.post("/v1/loans/batch", json={"loans": items},
                           headers={**self.headers, "Idempotency-Key": key or unique("b")})

    def repay(self, client, loan_id, principal, interest="0", paid_on="2025-06-01", key=None):
        return client.post(f"/v1/loans/{loan_id}/repayments",
                           json={"paid_on": paid_on, "principal": principal, "interest": interest},
                           headers={**self.headers, "Idempotency-Key": key or unique("r")})


@pytest.fixture
def book(engine):
    return Book()


def test_post_loan_returns_the_full_loan(client, book):
    response = book.post(client)
    assert response.status_code == 201
    loan = response.get_json()
    assert response.headers["Location"] == f"/v1/loans/{loan['id']}"
    assert loan["bank"] == book.bank.code and loan["borrower"] == book.borrower.facts.credit_code
    assert loan["pledge_type"] == "mixed" and loan["program_version"] == 1
    assert (loan["borrower_size_class"], loan["borrower_sme"], loan["borrower_private"]) == ("small", True, True)
    assert loan["outstanding_principal"] == "5000000.00" and loan["status"] == "active"
    [event] = loan["events"]
    assert event["kind"] == "loan_disbursed" and event["effective_on"] == "2025-03-01"
    assert sorted(p["amount"] for p in event["postings"]) == ["-5000000.00", "-5000000.00", "5000000.00", "5000000.00"]
    assert client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json() == loan


@pytest.mark.parametrize("kinds, expected", [(["patent"], "patent"), (["trademark"], "trademark"),
                                             (["patent", "trademark"], "mixed")])
def test_pledge_type_is_derived(client, book, kinds, expected):
    body = book.body()
    body["pledges"] = [p for p in body["pledges"] if p["kind"] in kinds]
    assert book.loan(client, body=body)["pledge_type"] == expected


@pytest.mark.parametrize("change, field", [
    ({"borrower": "91350100M000100Y44"}, "borrower"),                       # bad check character
    ({"principal": "0"}, "principal"), ({"principal": 1.5}, "principal"),
    ({"principal": "10.001"}, "principal"), ({"annual_rate": "abc"}, "annual_rate"),
    ({"maturity_date": "2025-02-01"}, "maturity_date"),                     # maturity before start
    ({"start_date": "2025-02-30"}, "start_date"), ({"ip_share": "1.2"}, "ip_share"),
    ({"pledges": []}, "pledges"), ({"surprise": 1}, "surprise"), ({"contract_no": ""}, "contract_no"),
])
def test_loan_validation_names_the_field(client, book, change, field):
    body = assert_problem(book.post(client, **change), 422)
    assert field in [error["field"] for error in body["errors"]], body


def test_bad_patent_check_character_is_422(client, book):
    body = book.body()
    good = body["pledges"][0]["number"]
    body["pledges"][0]["number"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    problem = assert_problem(book.post(client, body=body), 422)
    assert problem["errors"][0]["field"] == "pledges[0].number"
    assert "check character" in problem["errors"][0]["message"]


@pytest.mark.parametrize("pledge, field", [
    ({"kind": "trademark", "number": "123", "registration_no": "T", "registered_on": "2025-01-01"}, "pledges[0].nice_class"),
    ({"kind": "trademark", "number": "123", "nice_class": 46, "registration_no": "T", "registered_on": "2025-01-01"}, "pledges[0].nice_class"),
    ({"kind": "design", "number": "1", "registration_no": "T", "registered_on": "2025-01-01"}, "pledges[0].kind"),
    ({"kind": "patent", "number": "ZL201710601862.3", "registration_no": "T"}, "pledges[0].registered_on"),
    ({"kind": "patent", "number": "ZL201710601862.3", "nice_class": 9, "registration_no": "T",
      "registered_on": "2025-01-01"}, "pledges[0].nice_class"),
])
def test_pledge_rules(client, book, pledge, field):
    problem = assert_problem(book.post(client, pledges=[pledge]), 422)
    assert field in [e["field"] for e in problem["errors"]]


def test_a_trademark_without_a_class_says_it_is_required(client, book):
    pledge = {"kind": "trademark", "number": "123", "registration_no": "T", "registered_on": "2025-01-01"}
    problem = assert_problem(book.post(client, pledges=[pledge]), 422)
    assert problem["errors"] == [{"field": "pledges[0].nice_class",
                                  "message": "is required for a trademark: must be an integer Nice class 1 to 45"}]


def test_same_registration_twice_is_422(client, book):
    body = book.body()
    body["pledges"] = [body["pledges"][0], dict(body["pledges"][0])]
    assert_problem(book.post(client, body=body), 422)


def test_unknown_borrower_and_programme(client, book):
    from tests.factories import credit_code
    problem = assert_problem(book.post(client, borrower=credit_code()), 422)
    assert "not registered" in problem["errors"][0]["message"]
    problem = assert_problem(book.post(client, program="no-such-programme"), 422)
    assert problem["errors"][0]["field"] == "program" and "does not exist" in problem["errors"][0]["message"]


def test_programme_not_in_force_on_the_start_date(client, book, engine):
    late = ProgramFactory(region="440100", effective_from=__import__("datetime").date(2025, 6, 1))
    problem = assert_problem(book.post(client, program=late.code), 422)
    assert "not in force on 2025-03-01" in problem["errors"][0]["message"]


def test_programme_must_cover_the_borrower_region(client, book):
    elsewhere = BorrowerFactory(region="510104", bank_id=book.bank.id)
    problem = assert_problem(book.post(client, borrower=elsewhere.facts.credit_code), 422)
    assert "does not cover" in problem["errors"][0]["message"]


def test_loans_bind_to_the_version_in_force_on_their_start(client, book):
    from tests.factories import api_terms, program_parties
    admin = auth("admin")
    terms = api_terms(**program_parties())
    response = client.post(f"/v1/programs/{book.program.code}/versions",
                           json={"effective_from": "2025-01-01", "terms": terms}, headers=admin)
    assert response.status_code == 201, response.get_json()
    assert book.loan(client, start_date="2024-12-31", maturity_date="2025-12-31")["program_version"] == 1
    assert book.loan(client, start_date="2025-01-01", maturity_date="2025-12-31")["program_version"] == 2


def test_missing_idempotency_key_is_400_and_writes_nothing(client, book):
    body = book.body()
    response = client.post("/v1/loans", json=body, headers=book.headers)
    assert_problem(response, 400)
    listed = client.get("/v1/loans?limit=1000", headers=book.headers).get_json()["items"]
    assert body["contract_no"] not in [loan["contract_no"] for loan in listed]


def test_replay_and_reused_key(client, book):
    body, key = book.body(), unique("k")
    first = book.post(client, body=body, key=key)
    again = book.post(client, body=body, key=key)
    assert again.status_code == 201 and again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = dict(body, principal="1.00")
    assert_problem(book.post(client, body=other, key=key), 422)
    assert len([l for l in client.get("/v1/loans?limit=1000", headers=book.headers).get_json()["items"]
                if l["contract_no"] == body["contract_no"]]) == 1


def test_second_loan_with_the_same_contract_number_is_409(client, book):
    body = book.body()
    book.loan(client, body=body)
    again = dict(body, pledges=[dict(body["pledges"][0], number=patent_number())])
    problem = assert_problem(book.post(client, body=again), 409)
    assert problem["errors"][0]["field"] == "contract_no"


def test_another_bank_cannot_see_or_touch_a_loan(client, book):
    loan = book.loan(client)
    other = auth("bank")
    assert_problem(client.get(f"/v1/loans/{loan['id']}", headers=other), 404)
    response = client.post(f"/v1/loans/{loan['id']}/repayments", json={"paid_on": "2025-06-01", "principal": "1", "interest": "0"},
                           headers={**other, "Idempotency-Key": unique("r")})
    assert_problem(response, 404)
    assert loan["id"] not in [l["id"] for l in client.get("/v1/loans?limit=1000", headers=other).get_json()["items"]]


def test_readers_by_role(client, book):
    loan = book.loan(client)
    auditor_gz = auth("auditor", InstitutionFactory(kind="auditor", region="440100").code)
    auditor_cd = auth("auditor", InstitutionFactory(kind="auditor", region="510100").code)
    insurer = book.program.versions[0].terms.parties[0].institution
    assert client.get(f"/v1/loans/{loan['id']}", headers=auditor_gz).status_code == 200
    assert client.get(f"/v1/loans/{loan['id']}", headers=auditor_cd).status_code == 404
    assert client.get(f"/v1/loans/{loan['id']}", headers=auth("insurer", insurer)).status_code == 200
    assert client.get(f"/v1/loans/{loan['id']}", headers=auth("insurer")).status_code == 404
    found = client.get(f"/v1/loans?program={book.program.code}&region=440100&status=active", headers=auditor_gz).get_json()
    assert [l["id"] for l in found["items"]] == [loan["id"]]
    assert_problem(client.post("/v1/loans", json=book.body(), headers={**auditor_gz, "Idempotency-Key": "x"}), 403)


def test_repayments_reduce_outstanding_and_close_the_loan(client, book):
    loan = book.loan(client, principal="1000.00")
    first = book.repay(client, loan["id"], "400.00", "12.50", "2025-04-01")
    assert first.status_code == 201 and first.get_json()["outstanding_principal"] == "600.00"
    last = book.repay(client, loan["id"], "600.00", "3.10", "2025-05-01").get_json()
    assert (last["outstanding_principal"], last["status"]) == ("0.00", "closed")
    shown = client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json()
    assert shown["status"] == "closed" and shown["closed_on"] == "2025-05-01"
    assert [e["kind"] for e in shown["events"]] == ["loan_disbursed", "repayment", "repayment"]
    assert_problem(book.repay(client, loan["id"], "1.00"), 409)


@pytest.mark.parametrize("principal, interest, paid_on, field", [
    ("5000000.01", "0", "2025-06-01", "principal"),    # beyond outstanding (5000000.00)
    ("1.00", "0", "2025-02-28", "paid_on"),            # before the start date
    ("0", "0", "2025-06-01", "principal"),
    ("-1.00", "0", "2025-06-01", "principal"),
    ("1.00", "0", "2099-01-01", "paid_on"),
])
def test_bad_repayments_are_422_and_change_nothing(client, book, principal, interest, paid_on, field):
    loan = book.loan(client)
    problem = assert_problem(book.repay(client, loan["id"], principal, interest, paid_on), 422)
    assert problem["errors"][0]["field"] == field
    assert tx(lambda conn: outstanding_fen(conn, [loan["id"]]))[loan["id"]] == 500000000


def test_repayment_needs_an_idempotency_key_and_replays(client, book):
    loan = book.loan(client)
    url = f"/v1/loans/{loan['id']}/repayments"
    body = {"paid_on": "2025-06-01", "principal": "100.00", "interest": "1.00"}
    assert_problem(client.post(url, json=body, headers=book.headers), 400)
    first = book.repay(client, loan["id"], "100.00", "1.00", key="same")
    again = book.repay(client, loan["id"], "100.00", "1.00", key="same")
    assert again.get_data() == first.get_data() and again.headers["Idempotent-Replayed"] == "true"
    assert tx(lambda conn: outstanding_fen(conn, [loan["id"]]))[loan["id"]] == 500000000 - 10000


def test_fees(client, book):
    loan = book.loan(client)
    url = f"/v1/loans/{loan['id']}/fees"
    response = client.post(url, json={"kind": "premium", "amount": "25000.00", "paid_on": "2025-02-25"},
                           headers={**book.headers, "Idempotency-Key": unique("f")})
    assert response.status_code == 201 and response.get_json()["amount"] == "25000.00"
    for bad in ({"kind": "bribe", "amount": "1", "paid_on": "2025-02-25"},
                {"kind": "premium", "amount": "0", "paid_on": "2025-02-25"}):
        assert_problem(client.post(url, json=bad, headers={**book.headers, "Idempotency-Key": unique("f")}), 422)
    events = client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json()["events"]
    # events in business-date order: the premium was paid before the disbursement
    assert [(e["kind"], e["effective_on"]) for e in events] == [("premium_paid", "2025-02-25"),
                                                                ("loan_disbursed", "2025-03-01")]


def test_batch_is_all_or_nothing_with_per_item_errors(client, book):
    good = [book.body() for _ in range(3)]
    bad = book.body(maturity_date="2024-01-01")
    response = book.batch(client, good + [bad])
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["loans[3].maturity_date"]
    mine = {l["contract_no"] for l in client.get("/v1/loans?limit=1000", headers=book.headers).get_json()["items"]}
    assert not mine & {b["contract_no"] for b in good}
    created = book.batch(client, good)
    assert created.status_code == 201
    assert [i["contract_no"] for i in created.get_json()["loans"]] == [b["contract_no"] for b in good]
    duplicate = book.batch(client, [good[0], book.body()])
    assert assert_problem(duplicate, 409)["errors"][0]["field"] == "loans[0].contract_no"
    twice = book.batch(client, [bad | {"maturity_date": "2026-01-01"}] * 2)
    assert assert_problem(twice, 422)["errors"][0]["field"] == "loans[1].contract_no"


def test_batch_size_limit(client, book):
    assert_problem(book.batch(client, []), 422)
    assert_problem(book.batch(client, [{}] * 10001), 422)


def test_concurrent_retries_of_one_key_create_one_loan(app, book, backend):
    """A bank's client retrying in parallel: one loan, every answer a 201 or a 409 in flight."""
    body, key = book.body(), unique("k")

    def attempt(_):
        with app.test_client() as c:
            response = c.post("/v1/loans", json=body, headers={**book.headers, "Idempotency-Key": key})
            return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, range(12)))
    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409} and 201 in statuses
    ids = {payload["id"] for status, payload in results if status == 201}
    assert len(ids) == 1
    with app.test_client() as c:
        listed = c.get("/v1/loans?limit=1000", headers=book.headers).get_json()["items"]
    assert [l["contract_no"] for l in listed].count(body["contract_no"]) == 1


def test_books_verify_after_loan_activity(client, book):
    loan = book.loan(client)
    book.repay(client, loan["id"], "1000.00", "10.00")
    tx(chain.seal_pending)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact


def test_large_batch_takes_the_bulk_path_and_stays_exact(client, book):
    """Past ledger.bulk.COPY_THRESHOLD rows PostgreSQL writes with COPY: same rows, same rules."""
    from ledger.bulk import COPY_THRESHOLD
    bodies = [book.body(principal=f"{1000 + i}.{i % 100:02d}") for i in range(COPY_THRESHOLD + 6)]
    created = book.batch(client, bodies)
    assert created.status_code == 201, created.get_json()
    ids = [item["id"] for item in created.get_json()["loans"]]
    assert ids == sorted(ids)
    balances = tx(lambda conn: outstanding_fen(conn, ids))
    assert [balances[i] for i in ids] == [(1000 + i) * 100 + i % 100 for i in range(len(bodies))]
    shown = client.get(f"/v1/loans/{ids[-1]}", headers=book.headers).get_json()
    assert shown["contract_no"] == bodies[-1]["contract_no"] and len(shown["pledges"]) == 2
    assert shown["events"][0]["kind"] == "loan_disbursed"
    tx(chain.seal_pending)
    assert tx(chain.verify).balanced


def test_a_loan_cannot_start_in_the_future(client, book):
    from datetime import timedelta
    tomorrow = business_today() + timedelta(days=1)
    problem = assert_problem(book.post(client, start_date=tomorrow.isoformat(),
                                       maturity_date=(tomorrow + timedelta(days=365)).isoformat()), 422)
    assert problem["errors"][0]["field"] == "start_date"


def test_overpayment_message_states_the_outstanding_in_yuan(client, book):
    loan = book.loan(client, principal="1234.56")
    problem = assert_problem(book.repay(client, loan["id"], "1234.57"), 422)
    assert problem["errors"][0]["message"] == "exceeds the outstanding principal 1234.56"


# --- repayments out of date order: outstanding, status and closed_on agree ----------------------

def test_the_issue_example_repayments_out_of_date_order(client, book):
    """Repay 50 on 06-01, then 50 on 03-01: the loan closes on 06-01, and as of 04-01 50 is
    still outstanding (it closed on 03-01 before, with 50.00 outstanding after that day)."""
    loan = book.loan(client, principal="100.00", start_date="2025-02-01", maturity_date="2026-01-31")
    assert book.repay(client, loan["id"], "50.00", paid_on="2025-06-01").status_code == 201
    last = book.repay(client, loan["id"], "50.00", paid_on="2025-03-01").get_json()
    assert (last["status"], last["outstanding_principal"]) == ("closed", "0.00")
    shown = client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json()
    assert (shown["status"], shown["closed_on"]) == ("closed", "2025-06-01")
    from datetime import date
    balances = {day: tx(lambda conn: outstanding_fen(conn, [loan["id"]], as_of=date.fromisoformat(day)))[loan["id"]]
                for day in ("2025-02-28", "2025-03-01", "2025-04-01", "2025-05-31", "2025-06-01")}
    assert balances == {"2025-02-28": 10000, "2025-03-01": 5000, "2025-04-01": 5000, "2025-05-31": 5000,
                        "2025-06-01": 0}
    # events in business-date order, not recording order
    assert [(e["kind"], e["effective_on"]) for e in shown["events"]] == [
        ("loan_disbursed", "2025-02-01"), ("repayment", "2025-03-01"), ("repayment", "2025-06-01")]


def test_a_backdated_repayment_may_not_take_a_later_day_below_zero(client, book):
    loan = book.loan(client, principal="100.00", start_date="2025-02-01", maturity_date="2026-01-31")
    book.repay(client, loan["id"], "70.00", paid_on="2025-06-01")
    problem = assert_problem(book.repay(client, loan["id"], "40.00", paid_on="2025-03-01"), 422)
    assert problem["errors"][0]["message"].startswith("exceeds the outstanding principal 30.00 of 2025-06-01")
    assert book.repay(client, loan["id"], "30.00", paid_on="2025-03-01").get_json()["status"] == "closed"
    assert client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json()["closed_on"] == "2025-06-01"


# --- a patent under a live pledge ------------------------------------------------------------------

def test_a_patent_under_a_live_pledge_is_not_pledged_again(client, book):
    first = book.loan(client)
    patent = first["pledges"][0]["number"]
    again = book.body(pledges=[dict(book.body()["pledges"][0], number=patent[2:])])  # the same patent, no "ZL"
    problem = assert_problem(book.post(client, body=again), 409)
    assert problem["errors"][0]["field"] == "pledges[0].number"
    assert f"loan {first['id']} (contract {first['contract_no']})" in problem["errors"][0]["message"]
    # the same borrower re-pledging it in a second live loan: refused all the same (it was
    # this borrower's loan above); another borrower of another bank: refused without naming the loan
    other = Book()
    elsewhere = other.body(pledges=[dict(other.body()["pledges"][0], number=patent)])
    problem = assert_problem(other.post(client, body=elsewhere), 409)
    message = problem["errors"][0]["message"]
    assert "another bank's loan" in message and f"loan {first['id']}" not in message
    assert first["contract_no"] not in message
    # trademarks are not checked (DOMAIN.md states the rule for patents)
    trademark = first["pledges"][1]
    reused = book.body(pledges=[{k: trademark[k] for k in ("kind", "number", "nice_class", "registration_no")}
                                | {"registered_on": "2025-02-21"}])
    assert book.post(client, body=reused).status_code == 201
    # once the loan is closed, its pledge is released and the patent may be pledged again
    book.repay(client, first["id"], "5000000.00")
    assert book.post(client, body=again).status_code == 201


def test_a_patent_twice_in_one_batch_is_422(client, book):
    one, two = book.body(), book.body()
    two["pledges"][0]["number"] = one["pledges"][0]["number"]
    problem = assert_problem(book.batch(client, [one, two]), 422)
    assert [e["field"] for e in problem["errors"]] == ["loans[1].pledges[0].number"]
    assert "item 0 of this batch" in problem["errors"][0]["message"]


def test_repeats_within_a_batch_are_all_reported_before_the_books_are_read(client, book):
    """A repeated contract and a repeated patent: both 422s at once, even with a contract the
    bank has already booked in the batch (the books' conflicts, 409, come after its own)."""
    booked = book.body()
    assert book.post(client, body=booked).status_code == 201
    one, two = book.body(), book.body()
    two["pledges"][0]["number"] = one["pledges"][0]["number"]
    again = dict(book.body(), contract_no=one["contract_no"])
    problem = assert_problem(book.batch(client, [one, two, again, dict(book.body(), contract_no=booked["contract_no"])]), 422)
    assert [e["field"] for e in problem["errors"]] == ["loans[2].contract_no", "loans[1].pledges[0].number"]


def test_concurrent_loans_pledging_one_patent_one_wins(app, book, backend):
    """Two banks' loans posted at the same time: the unique index on live patent pledges decides."""
    patent = patent_number()
    other = Book()
    bodies = [(b, b.body(pledges=[dict(b.body()["pledges"][0], number=patent)])) for b in (book, other) * 3]

    def attempt(item):
        who, body = item
        with app.test_client() as c:
            return who.post(c, body=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(attempt, bodies))
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409], statuses


# --- money-moving POSTs need an Idempotency-Key ---------------------------------------------------

def test_a_batch_without_an_idempotency_key_is_400_and_writes_nothing(client, book):
    body = book.body()
    assert_problem(client.post("/v1/loans/batch", json={"loans": [body]}, headers=book.headers), 400)
    listed = client.get("/v1/loans?limit=1000", headers=book.headers).get_json()["items"]
    assert body["contract_no"] not in [loan["contract_no"] for loan in listed]
    first = book.batch(client, [body], key="monthly-load")
    again = book.batch(client, [body], key="monthly-load")
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_fees_need_an_idempotency_key(client, book):
    loan = book.loan(client)
    assert_problem(client.post(f"/v1/loans/{loan['id']}/fees", json={"kind": "premium", "amount": "1",
                                                                     "paid_on": "2025-02-25"},
                               headers=book.headers), 400)


# --- inputs that only look right (issue 9: the parsers are fixed; these pin it at the API) -------

@pytest.mark.parametrize("change, field", [
    ({"principal": "100.00\n"}, "principal"), ({"principal": "１００.00"}, "principal"),
    ({"start_date": "2025-W09-6"}, "start_date"), ({"maturity_date": "2026-02-28\n"}, "maturity_date"),
    ({"insured_amount": "５000000.00"}, "insured_amount"),
])
def test_loans_refuse_lookalike_money_and_dates(client, book, change, field):
    problem = assert_problem(book.post(client, **change), 422)
    assert field in [e["field"] for e in problem["errors"]]


def test_pledges_refuse_iso_week_dates(client, book):
    body = book.body()
    body["pledges"][0]["registered_on"] = "2025-W08-4"
    assert assert_problem(book.post(client, body=body), 422)["errors"][0]["field"] == "pledges[0].registered_on"


@pytest.mark.parametrize("principal, interest, paid_on, field", [
    ("100.00\n", "0", "2025-06-01", "principal"), ("１００.00", "0", "2025-06-01", "principal"),
    ("1.00", "1.00\n", "2025-06-01", "interest"), ("1.00", "0", "2025-W23-1", "paid_on"),
    ("1.00", "0", "20250601", "paid_on"),
])
def test_repayments_refuse_lookalike_money_and_dates(client, book, principal, interest, paid_on, field):
    loan = book.loan(client)
    problem = assert_problem(book.repay(client, loan["id"], principal, interest, paid_on), 422)
    assert problem["errors"][0]["field"] == field
    assert tx(lambda conn: outstanding_fen(conn, [loan["id"]]))[loan["id"]] == 500000000


# --- programme versions never change a bound loan's version --------------------------------------

def test_a_version_may_not_start_on_or_before_a_bound_loan(client, book):
    from tests.factories import api_terms, program_parties
    admin = auth("admin")
    terms = api_terms(**program_parties())
    loan = book.loan(client, start_date="2025-03-01")
    url = f"/v1/programs/{book.program.code}/versions"
    for day in ("2025-01-01", "2025-03-01"):
        problem = assert_problem(client.post(url, json={"effective_from": day, "terms": terms}, headers=admin), 422)
        assert problem["errors"][0]["field"] == "effective_from"
        assert f"loan {loan['id']} started then" in problem["errors"][0]["message"] and "2025-03-01" in problem["detail"]
    assert client.post(url, json={"effective_from": "2025-03-02", "terms": terms}, headers=admin).status_code == 201
    assert client.get(f"/v1/loans/{loan['id']}", headers=book.headers).get_json()["program_version"] == 1
    assert book.loan(client, start_date="2025-03-02", maturity_date="2026-03-01")["program_version"] == 2
