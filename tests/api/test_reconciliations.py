"""Reconciliation (issue 8 item 5): a party posts its statement of claim payments, as JSON or as
CSV, and each line is classified against its own `claim_payments` paid up to the statement date,
stored, and read back (JSON and CSV) by the party, the region's auditors and admin only.

The book: the example claim (insurer owes 1,000,000.00). The insurer's ledger payments:
INS-1 300,000.00 and INS-2 300,000.00 in June, 100,000.00 with no reference, INS-3 100,000.00
on 2026-07-15 (after the statement date 2026-06-30), recorded by `ledger.claim_payments`.
"""
import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from ledger.journal import SYSTEM
from ledger.schema import reconciliation_lines, reconciliations
from ledger.claim_payments import pay_claim
from tests.api.claim_world import example_claim_book
from tests.factories import InstitutionFactory, auth, tx, unique
from tests.ledger.test_claims_db import _institution_id


@pytest.fixture(scope="module")
def book(engine):
    from tests import factories
    factories.bind(engine)
    world = example_claim_book()
    claim, insurer = world.claim["id"], world.ids["insurer"]
    refs = {ref: unique(ref) for ref in ("INS-1", "INS-2", "INS-3", "INS-9")}

    def pay(fen, on, reference):
        return tx(lambda conn: pay_claim(conn, claim, insurer, fen, on, reference, SYSTEM))["id"]
    paid = {"INS-1": pay(30_000_000, date(2026, 6, 10), refs["INS-1"]),
            "INS-2": pay(30_000_000, date(2026, 6, 20), refs["INS-2"]),
            "none": pay(10_000_000, date(2026, 6, 25), None),
            "INS-3": pay(10_000_000, date(2026, 7, 15), refs["INS-3"])}
    return {"claim": claim, "refs": refs, "paid": paid, "insurer": world.codes["insurer"],
            "headers": auth("insurer", world.codes["insurer"])}


def statement(book):
    claim, refs = book["claim"], book["refs"]
    return {"statement_date": "2026-06-30", "lines": [
        {"reference": refs["INS-1"], "claim": claim, "amount": "300000.00", "paid_on": "2026-06-09"},
        {"reference": refs["INS-2"], "claim": claim, "amount": "299999.99", "paid_on": "2026-06-20"},
        {"reference": refs["INS-9"], "claim": claim, "amount": "50000", "paid_on": "2026-06-21"},
        {"reference": refs["INS-1"], "claim": claim, "amount": "300000.00", "paid_on": "2026-06-11"},
        {"reference": refs["INS-3"], "claim": claim, "amount": "100000.00", "paid_on": "2026-06-29"}]}


def as_csv(body) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["paid_on", "reference", "claim", "amount"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(body["lines"])
    return out.getvalue()


def post_json(client, book, body, headers=None, key=None):
    return client.post("/v1/reconciliations", json=body,
                       headers={**(headers or book["headers"]), "Idempotency-Key": key or unique("rec")})


def post_csv(client, book, text_body, day="2026-06-30"):
    return client.post(f"/v1/reconciliations?statement_date={day}", data=text_body.encode(),
                       content_type="text/csv", headers={**book["headers"], "Idempotency-Key": unique("rec")})


def outcomes(body) -> dict:
    return {name: [(line["line"], line["statement_amount"], line["ledger_amount"], line["differences"])
                   for line in body[name]]
            for name in ("matched", "amount_mismatch", "missing_from_statement", "unknown_to_ledger", "duplicates")}


EXPECTED = {
    "matched": [(1, "300000.00", "300000.00", ["paid_on"])],  # a booking date apart: still matched
    "amount_mismatch": [(2, "299999.99", "300000.00", ["amount"])],
    "missing_from_statement": [(None, None, "100000.00", [])],  # the payment booked without a reference
    "unknown_to_ledger": [(3, "50000.00", None, []),
                          (5, "100000.00", None, [])],  # INS-3 is booked after the statement date
    "duplicates": [(4, "300000.00", "300000.00", ["paid_on"])],
}


def test_a_json_statement_is_classified_with_both_figures_and_stored(client, book):
    response = post_json(client, book, statement(book))
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert outcomes(made) == EXPECTED
    assert made["counts"] == {"matched": 1, "amount_mismatch": 1, "missing_from_statement": 1,
                              "unknown_to_ledger": 2, "duplicate": 1}
    assert (made["line_count"], made["institution"], made["statement_date"]) == (5, book["insurer"], "2026-06-30")
    mismatch = made["amount_mismatch"][0]
    assert (mismatch["reference"], mismatch["ledger_payment"], mismatch["statement_claim"], mismatch["ledger_claim"]) == (
        book["refs"]["INS-2"], book["paid"]["INS-2"], book["claim"], book["claim"])
    assert response.headers["Location"] == f"/v1/reconciliations/{made['id']}"
    assert client.get(f"/v1/reconciliations/{made['id']}", headers=book["headers"]).get_json() == made


def test_a_csv_statement_reads_the_same(client, book):
    response = post_csv(client, book, as_csv(statement(book)))
    assert response.status_code == 201, response.get_json()
    assert outcomes(response.get_json()) == EXPECTED


def test_csv_errors_name_the_csv_line_and_write_nothing(client, book, engine):
    def count():
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(reconciliations)).scalar_one()
    before = count()
    lines = as_csv(statement(book)).splitlines()
    bad_money = "\n".join(lines[:3] + [lines[3].replace("50000", "5.001")]) + "\n"
    response = post_csv(client, book, bad_money)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "lines[2].amount", "message":
                                              "CSV line 4: '5.001' is not an amount of yuan with at most two decimals"}]
    missing = post_csv(client, book, "reference,claim,amount\nA,1,1\n")
    assert missing.status_code == 422 and "missing paid_on" in missing.get_json()["errors"][0]["message"]
    too_many = "reference,claim,amount,paid_on\n" + "".join(f"R{n},1,1,2026-06-01\n" for n in range(10_001))
    refused = post_csv(client, book, too_many)
    assert refused.status_code == 422 and "CSV line 10002" in refused.get_json()["errors"][0]["message"]
    for day in ("", "2026-6-30"):  # a bad query value
        no_date = post_csv(client, book, as_csv(statement(book)), day=day)
        assert no_date.status_code == 422 and no_date.get_json()["errors"][0]["field"] == "query.statement_date"
    no_date = client.post("/v1/reconciliations", data=as_csv(statement(book)).encode(), content_type="text/csv",
                          headers=book["headers"])
    assert no_date.status_code == 422 and no_date.get_json()["errors"][0]["field"] == "statement_date"
    late = post_csv(client, book, as_csv(statement(book)), day="2026-06-15")
    assert late.status_code == 422 and "CSV line 3" in late.get_json()["errors"][0]["message"]
    assert count() == before


def test_who_reads_a_reconciliation(client, book):
    made = post_json(client, book, statement(book)).get_json()
    path = f"/v1/reconciliations/{made['id']}"
    readers = {"insurer": book["headers"], "admin": auth("admin"),
               "city auditor": auth("auditor", InstitutionFactory(kind="auditor", region="440100").code)}
    for who, headers in readers.items():
        assert client.get(path, headers=headers).status_code == 200, who
        listed = client.get("/v1/reconciliations?limit=1000", headers=headers).get_json()["items"]
        assert made["id"] in [item["id"] for item in listed], who
    hidden = {"another insurer": auth("insurer"),
              "an auditor elsewhere": auth("auditor", InstitutionFactory(kind="auditor", region="510100").code)}
    for who, headers in hidden.items():
        assert client.get(path, headers=headers).status_code == 404, who
        listed = client.get("/v1/reconciliations?limit=1000", headers=headers).get_json()["items"]
        assert made["id"] not in [item["id"] for item in listed], who
    for role in ("bank", "fiscal"):
        assert client.get(path, headers=auth(role)).status_code == 403, role
    table = client.get(path, headers={**book["headers"], "Accept": "text/csv"})
    assert table.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(table.get_data(as_text=True))))
    assert [(r["outcome"], r["line"]) for r in rows] == [
        ("matched", "1"), ("amount_mismatch", "2"), ("missing_from_statement", ""),
        ("unknown_to_ledger", "3"), ("unknown_to_ledger", "5"), ("duplicate", "4")]


def test_an_empty_statement_lists_every_payment_as_missing(client, book):
    made = post_json(client, book, {"statement_date": "2026-07-31", "lines": []}).get_json()
    assert [line["ledger_payment"] for line in made["missing_from_statement"]] == [
        book["paid"][name] for name in ("INS-1", "INS-2", "none", "INS-3")]


def test_the_same_key_replays(client, book):
    first = post_json(client, book, statement(book), key="rec-once")
    again = post_json(client, book, statement(book), key="rec-once")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()


def test_the_database_keeps_each_outcome_consistent_with_its_figures(engine, book):
    """Raw SQL, real commits, both databases: the check constraints of migration 0010. The
    valid line goes in first, so each refusal below is the broken figure's."""
    from ledger.reconciliation import Statement, reconcile
    insurer = _institution_id(book["insurer"])
    rid = tx(lambda conn: reconcile(conn, insurer, Statement(date(2026, 6, 30), ()), SYSTEM))["id"]
    numbers = iter(range(1000, 2000))

    def one(**over):
        row = {"reconciliation_id": rid, "outcome": "matched", "line_no": next(numbers), "reference": "X",
               "statement_claim_id": book["claim"], "statement_amount_fen": 1, "statement_paid_on": date(2026, 6, 1),
               "payment_id": book["paid"]["INS-1"], "ledger_claim_id": book["claim"], "ledger_amount_fen": 1,
               "ledger_paid_on": date(2026, 6, 1), "differences": "", **over}
        return tx(lambda conn: conn.execute(insert(reconciliation_lines).values(**row)))
    one()
    for broken in ({"statement_amount_fen": 2},                       # matched, amounts differ
                   {"outcome": "unknown_to_ledger"},                  # unknown, with a payment
                   {"outcome": "amount_mismatch"},                    # a mismatch that agrees
                   {"line_no": None},                                 # a statement line without its number
                   {"ledger_amount_fen": None},                       # a payment without its figure
                   {"outcome": "lost"}):
        with pytest.raises(IntegrityError):
            one(**broken)
