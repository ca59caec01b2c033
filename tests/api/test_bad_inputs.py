"""The bad-input catalogue: named bad requests across the API, each refused with its documented
4xx as problem+json that says what is wrong, and leaving the database exactly as it was.

For every case: the status; the `application/problem+json` type with a `urn:ipledger:problem:`
type and a detail; the offending field named in `errors[].field` (or, for errors that are not
about one field, a telling word in `detail`); and the same row count in every table of
`ledger.schema.metadata` and the same sha256 over every entry and posting, before and after.
(The ContractClient checks meanwhile that each status is documented for its operation.)

Adding a case: append a `Bad(...)` to CASES with a readable id; `make(world)` returns the
request (method, path, and `json=` or `data=`/`content_type=`), `who` names the key in `world`.
Field names are matched by inclusion (`"principal" in field`), not by exact path, so the error
path notation can change (`pledges.0.number` or `pledges[0].number`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import pytest
from sqlalchemy import func, select

from ledger import schema
from ledger.loans import record_repayment
from ledger.journal import SYSTEM
from ledger.terms import terms_to_dict
from tests import factories
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, credit_code,
                             loan_body, make_key, make_loan, program_parties, unique)

PROBLEM = "application/problem+json"
FAR = "9" * 14 + ".00"  # 10^14 yuan: beyond the 10^13 limit of API.md


# --- the world ---------------------------------------------------------------------------------

@dataclass
class World:
    keys: dict
    bank: object
    program: object
    borrower: str
    loan_id: int
    closed_loan_id: int
    other_loan_id: int
    other_account_id: int
    used_key: str
    used_body: dict
    away_program: str
    extra: dict = field(default_factory=dict)

    def loan(self, **over) -> dict:
        body = loan_body(self.borrower, self.program.code)
        body.update(over)
        return body

    def pledged(self, **pledge) -> dict:
        body = self.loan()
        body["pledges"] = [{**body["pledges"][0], **pledge}]
        return body


def _world(client) -> World:
    bank = InstitutionFactory(kind="bank", region="440100")
    other_bank = InstitutionFactory(kind="bank", region="440100")
    program = ProgramFactory(region="440100")
    away = ProgramFactory(region="510100")
    borrower = BorrowerFactory(bank_id=bank.id, region="440106").facts.credit_code
    BorrowerFactory(bank_id=other_bank.id, credit_code=borrower, region="440106")  # its own record of the code
    loan_id = make_loan(bank.id, borrower, program.code)
    closed = make_loan(bank.id, borrower, program.code, principal="100.00")
    factories.tx(lambda conn: record_repayment(conn, closed, bank.id, _date("2025-04-01"), 100_00, 0, SYSTEM))
    other_loan = make_loan(other_bank.id, borrower, program.code)
    pool = program.versions[0].terms.parties[1].institution
    keys = {"admin": make_key("admin"), "bank": make_key("bank", bank.code),
            "pool": make_key("pool", pool), "other_pool": make_key("pool", InstitutionFactory(kind="pool").code),
            "fiscal": make_key("fiscal", InstitutionFactory(kind="fiscal", region="440100").code),
            "away_fiscal": make_key("fiscal", InstitutionFactory(kind="fiscal", region="510000").code),
            "insurer": make_key("insurer", program.versions[0].terms.parties[0].institution)}
    headers = {"Authorization": f"Bearer {keys['bank']}"}
    used_key, used_body = unique("used"), loan_body(borrower, program.code)
    assert client.post("/v1/loans", json=used_body, headers={**headers, "Idempotency-Key": used_key}).status_code == 201
    other_account = client.get(f"/v1/loans/{other_loan}", headers={"Authorization": f"Bearer {keys['admin']}"}
                               ).get_json()["events"][0]["postings"][0]["account"]
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.post("/v1/reference-rates/LPR1Y", json={"month": "2099-01", "rate": "0.0300"},
                       headers=admin).status_code in (200, 201)
    return World(keys, bank, program, borrower, loan_id, closed, other_loan, other_account, used_key, used_body,
                 away.code, {"institution": bank.code})


def _date(text: str):
    from datetime import date
    return date.fromisoformat(text)


@pytest.fixture(scope="session")
def world(engine, app):
    previous = factories._engine
    factories.bind(engine)  # session fixtures run before the per-test binding in conftest
    try:
        with app.test_client() as client:
            return _world(client)
    finally:
        factories.bind(previous)


# --- the state of the books ----------------------------------------------------------------------

def snapshot(engine) -> dict:
    """Row counts of every table, and a sha256 over every entry and posting in id order."""
    with engine.connect() as conn:
        counts = {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                  for table in schema.metadata.sorted_tables}
        digest = hashlib.sha256()
        for table in (schema.entries, schema.postings):
            for row in conn.execute(select(table).order_by(table.c.id)):
                digest.update(repr(tuple(row)).encode())
    return {"counts": counts, "journal_sha256": digest.hexdigest()}


# --- the catalogue -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Bad:
    id: str
    status: int
    needle: str          # a field name in errors[].field, or a word of the detail
    make: Callable       # world -> dict(method=, path=, json= | data= + content_type=, headers=)
    who: str = "bank"


def post(path: str, body=None, **extra):
    return lambda w: {"method": "POST", "path": path.format(w=w), "json": body(w) if callable(body) else body,
                      **extra}


def get(path: str):
    return lambda w: {"method": "GET", "path": path.format(w=w)}


def raw(path: str, data, content_type="application/json"):
    return lambda w: {"method": "POST", "path": path.format(w=w), "data": data, "content_type": content_type}


def loan(**over):
    return post("/v1/loans", lambda w: w.loan(**over))


def pledge(**over):
    return post("/v1/loans", lambda w: w.pledged(**over))


def repay(principal="1.00", interest="0.00", paid_on="2025-06-01", loan_attr="loan_id"):
    return post("/v1/loans/{w." + loan_attr + "}/repayments",
                {"paid_on": paid_on, "principal": principal, "interest": interest})


def fee(kind="premium", amount="100.00", paid_on="2025-02-25", loan_attr="loan_id"):
    return post("/v1/loans/{w." + loan_attr + "}/fees", {"kind": kind, "amount": amount, "paid_on": paid_on})


def default_(loan_attr="loan_id", **over):
    body = {"classified_on": "2026-06-01", "overdue_days": 93, "overdue_interest": "0.00", **over}
    return post("/v1/loans/{w." + loan_attr + "}/default",
                {key: value for key, value in body.items() if value is not None})


def contribute(amount="100.00", on="2025-01-05", program="{w.program.code}"):
    return post(f"/v1/programs/{program}/fund-contributions", {"amount": amount, "on": on})


def borrower(**over):
    def body(w):
        made = {"credit_code": credit_code(), "name": "Bad Inputs Ltd", "region": "440106",
                "industry": "software_it", "employees": 50, "revenue": "8000000.00",
                "total_assets": "3000000.00", "private": True}
        made.update(over)
        return made
    return post("/v1/borrowers", body)


def institution(**over):
    return post("/v1/institutions", lambda w: {"code": unique("BAD"), "name": "Bad Bank", "kind": "bank",
                                               "region": "440106", **over})


def programme(change=None, **over):
    """A programme body with `over` fields, or with `change(world)`'s fields."""
    def body(w):
        made = {"code": unique("bad").lower(), "name": "Bad scheme", "region": "440100",
                "effective_from": "2023-01-01", "terms": api_terms(**program_parties())}
        made.update(change(w) if change else over)
        return made
    return post("/v1/programs", body)


def terms_with(change):
    def over(w):
        terms = api_terms(**program_parties())
        change(terms, w)
        return {"terms": terms}
    return over


def version(effective_from):
    return post("/v1/programs/{w.program.code}/versions",
                lambda w: {"effective_from": effective_from, "terms": terms_to_dict(w.program.versions[0].terms)})


def rate(month="2098-01", value="0.0300"):
    return post("/v1/reference-rates/LPR1Y", {"month": month, "rate": value})


def _bank_as_insurer(terms, w):
    terms["parties"][0]["institution"] = w.extra["institution"]


def _unknown_party(terms, w):
    terms["parties"][0]["institution"] = "NOBODY-HERE"


def _misspelt_cap(terms, w):
    terms["parties"][0]["caps"] = {"per_clam": "1.00"}


def _oversubscribed(terms, w):
    terms["parties"][0]["share"] = "0.70"


def _batch(size: int):
    return post("/v1/loans/batch", lambda w: {"loans": [w.loan() for _ in range(size)]})


def _batch_with_bad_item(w):
    return {"loans": [w.loan(), w.loan(), w.loan(maturity_date="2024-01-01")]}


def _duplicate_registration(w):
    body = w.loan()
    body["pledges"] = [body["pledges"][0], dict(body["pledges"][0])]
    return body


def _reused_key(w):
    return {"method": "POST", "path": "/v1/loans", "json": {**w.used_body, "principal": "1.00"},
            "headers": {"Idempotency-Key": w.used_key}}


def _existing_institution(w):
    return {"method": "POST", "path": "/v1/institutions",
            "json": {"code": w.extra["institution"], "name": "Again", "kind": "bank", "region": "440100"}}


def _existing_programme(w):
    return {"method": "POST", "path": "/v1/programs",
            "json": {"code": w.program.code, "name": "Again", "region": "440100", "effective_from": "2023-01-01",
                     "terms": api_terms(**program_parties())}}


def _same_contract(w):
    return {"method": "POST", "path": "/v1/loans", "json": {**w.loan(), "contract_no": w.used_body["contract_no"]}}


def _entries_of(w, attr: str) -> list:
    with factories.engine().connect() as conn:
        return conn.execute(select(schema.entries.c.id, schema.entries.c.kind).where(
            schema.entries.c.loan_id == getattr(w, attr)).order_by(schema.entries.c.id)).all()


def _disbursement(w) -> int:
    return _entries_of(w, "loan_id")[0].id


def _repayment_of(attr: str):
    def entry(w) -> int:
        loan_id = getattr(w, attr)
        with factories.engine().connect() as conn:
            bank_id = conn.execute(select(schema.loans.c.bank_id).where(schema.loans.c.id == loan_id)).scalar_one()
        return factories.tx(lambda conn: record_repayment(conn, loan_id, bank_id, _date("2025-06-01"),
                                                          1, 0, SYSTEM))["entry"]
    return entry


def _reversed_repayment(w) -> int:
    from ledger.corrections import reverse_posting
    entry = _repayment_of("loan_id")(w)
    factories.tx(lambda conn: reverse_posting(conn, w.loan_id, w.bank.id, entry, "posted twice", SYSTEM))
    return entry


def reversal(loan_attr="loan_id", **over):
    """A correction of the world's loan; `entry` a value or a function of the world (default: a
    fresh 0.01 repayment of that loan, so only the field under test is wrong)."""
    def make(w):
        body = {"entry": None, "reason": "posted twice", **over}
        if "entry" not in over:
            body["entry"] = _repayment_of("loan_id")(w) if loan_attr == "loan_id" else 1
        elif callable(body["entry"]):
            body["entry"] = body["entry"](w)
        body = {k: v for k, v in body.items() if v is not None}
        return post(f"/v1/loans/{getattr(w, loan_attr)}/reversals", body)(w)
    return make


_LINE = {"reference": "R-1", "claim": 1, "amount": "1.00", "paid_on": "2026-06-01"}


def statement(statement_date="2026-06-30", lines=None, **line):
    """A one-line statement with the line's fields overridden (None drops a field), or `lines`."""
    item = {k: v for k, v in {**_LINE, **line}.items() if v is not None}
    return post("/v1/reconciliations", {"statement_date": statement_date,
                                        "lines": [item] if lines is None else lines})


def _reversal_on_claimed_loan(w) -> dict:
    from datetime import date
    from ledger.claims import open_claim
    loan_id = make_loan(w.bank.id, w.borrower, w.program.code)
    entry = factories.tx(lambda conn: record_repayment(conn, loan_id, w.bank.id, date(2025, 6, 1), 1, 0, SYSTEM))["entry"]
    factories.tx(lambda conn: open_claim(conn, loan_id, w.bank.id, date(2026, 6, 1), SYSTEM, overdue_days=93))
    return post(f"/v1/loans/{loan_id}/reversals", {"entry": entry, "reason": "posted twice"})(w)


CASES = [
    # --- transport: JSON, content type, size, headers -----------------------------------------
    Bad("malformed-json-institution", 400, "JSON", raw("/v1/institutions", "{not json"), "admin"),
    Bad("malformed-json-borrower", 400, "JSON", raw("/v1/borrowers", '{"credit_code": ')),
    Bad("malformed-json-loan", 400, "JSON", raw("/v1/loans", "{")),
    Bad("json-array-for-an-object", 422, "body", raw("/v1/institutions", "[]"), "admin"),
    Bad("json-null-body", 422, "body", raw("/v1/reference-rates/LPR1Y", "null"), "admin"),
    Bad("text-plain-body", 415, "application/json", raw("/v1/institutions", "code=x", "text/plain"), "admin"),
    Bad("form-encoded-body", 415, "application/json",
        raw("/v1/loans/{w.loan_id}/repayments", "paid_on=2025-06-01", "application/x-www-form-urlencoded")),
    Bad("xml-body", 415, "application/json", raw("/v1/loans/batch", "<loans/>", "application/xml")),
    Bad("oversized-body", 413, "large", raw("/v1/loans/batch", "[" + " " * (16 * 1024 * 1024) + "]")),
    Bad("idempotency-key-too-long", 400, "Idempotency-Key",
        lambda w: {**loan()(w), "headers": {"Idempotency-Key": "k" * 256}}),
    Bad("idempotency-key-missing-on-loan", 400, "Idempotency-Key",
        lambda w: {**loan()(w), "headers": {"Idempotency-Key": None}}),
    Bad("idempotency-key-missing-on-repayment", 400, "Idempotency-Key",
        lambda w: {**repay()(w), "headers": {"Idempotency-Key": None}}),
    Bad("idempotency-key-reused-with-another-body", 422, "Idempotency-Key", _reused_key),
    Bad("nul-in-body-text", 422, "body", institution(name="bad\u0000name"), "admin"),
    Bad("nul-in-path", 400, "NUL", get("/v1/institutions/A%00B")),
    Bad("nul-in-query", 400, "NUL", get("/v1/loans?status=active%00")),
    # --- money ---------------------------------------------------------------------------------
    Bad("loan-principal-float", 422, "principal", loan(principal=1.5)),
    Bad("loan-principal-three-decimals", 422, "principal", loan(principal="10.001")),
    Bad("loan-principal-zero", 422, "principal", loan(principal="0")),
    Bad("loan-principal-negative", 422, "principal", loan(principal="-5.00")),
    Bad("loan-principal-huge", 422, "principal", loan(principal=FAR)),
    Bad("loan-principal-fullwidth-digits", 422, "principal", loan(principal="１００.00")),
    Bad("loan-principal-trailing-newline", 422, "principal", loan(principal="100.00\n")),
    Bad("loan-principal-boolean", 422, "principal", loan(principal=True)),
    Bad("loan-insured-amount-float", 422, "insured_amount", loan(insured_amount=2.5)),
    Bad("pledge-appraised-value-negative", 422, "appraised_value", pledge(appraised_value="-1.00")),
    Bad("repayment-principal-float", 422, "principal", repay(principal=0.1)),
    Bad("repayment-principal-negative", 422, "principal", repay(principal="-50.00")),
    Bad("repayment-principal-three-decimals", 422, "principal", repay(principal="1.005")),
    Bad("repayment-principal-huge", 422, "principal", repay(principal=FAR)),
    Bad("repayment-interest-negative", 422, "interest", repay(interest="-1.00")),
    Bad("repayment-nothing-paid", 422, "principal", repay(principal="0", interest="0")),
    Bad("repayment-beyond-outstanding", 422, "principal", repay(principal="5000000.01")),
    Bad("fee-amount-zero", 422, "amount", fee(amount="0")),
    Bad("fee-amount-negative", 422, "amount", fee(amount="-10.00")),
    Bad("fee-amount-huge", 422, "amount", fee(amount=FAR)),
    Bad("contribution-amount-zero", 422, "amount", contribute(amount="0"), "fiscal"),
    Bad("contribution-amount-float", 422, "amount", contribute(amount=12.5), "fiscal"),
    Bad("contribution-amount-huge", 422, "amount", contribute(amount=FAR), "fiscal"),
    Bad("borrower-revenue-float", 422, "revenue", borrower(revenue=1.5)),
    Bad("borrower-total-assets-negative", 422, "total_assets", borrower(total_assets="-1.00")),
    Bad("borrower-revenue-three-decimals", 422, "revenue", borrower(revenue="1.001")),
    # --- dates ---------------------------------------------------------------------------------
    Bad("loan-start-impossible-date", 422, "start_date", loan(start_date="2025-02-30")),
    Bad("loan-start-iso-week-date", 422, "start_date", loan(start_date="2025-W01-1")),
    Bad("loan-start-in-the-future", 422, "start_date", loan(start_date="2999-01-01", maturity_date="2999-12-31")),
    Bad("loan-maturity-before-start", 422, "maturity_date", loan(maturity_date="2025-02-01")),
    Bad("pledge-registered-on-not-a-date", 422, "registered_on", pledge(registered_on="last week")),
    Bad("repayment-month-13", 422, "paid_on", repay(paid_on="2025-13-01")),
    Bad("repayment-before-loan-start", 422, "paid_on", repay(paid_on="2025-02-28")),
    Bad("repayment-in-the-future", 422, "paid_on", repay(paid_on="2999-01-01")),
    Bad("fee-paid-on-a-word", 422, "paid_on", fee(paid_on="yesterday")),
    Bad("contribution-on-feb-29-of-a-common-year", 422, "on", contribute(on="2025-02-29"), "fiscal"),
    Bad("rate-month-13", 422, "month", rate(month="2025-13"), "admin"),
    Bad("rate-month-trailing-newline", 422, "month", rate(month="2025-06\n"), "admin"),
    Bad("programme-ends-before-it-starts", 422, "effective_to",
        programme(effective_from="2024-01-01", effective_to="2023-12-31"), "admin"),
    Bad("version-starts-before-the-latest", 422, "effective_from", version("2018-12-31"), "admin"),
    # --- identifiers and codes -----------------------------------------------------------------
    Bad("borrower-credit-code-bad-check-character", 422, "credit_code", borrower(credit_code="91350100M000100Y44")),
    Bad("borrower-credit-code-too-short", 422, "credit_code", borrower(credit_code="123")),
    Bad("borrower-credit-code-forbidden-letter", 422, "credit_code", borrower(credit_code="91350100M000100I43")),
    Bad("loan-borrower-bad-check-character", 422, "borrower", loan(borrower="91350100M000100Y44")),
    Bad("pledge-patent-bad-check-character", 422, "number", pledge(number="ZL201710601862.4")),
    Bad("pledge-patent-malformed", 422, "number", pledge(number="ZL2017")),
    Bad("pledge-trademark-nice-class-46", 422, "nice_class",
        pledge(kind="trademark", number="12345678", nice_class=46)),
    Bad("pledge-trademark-without-nice-class", 422, "nice_class", pledge(kind="trademark", number="12345678")),
    Bad("pledge-kind-unknown", 422, "kind", pledge(kind="design")),
    Bad("pledge-registered-twice-in-one-loan", 422, "pledges", post("/v1/loans", _duplicate_registration)),
    Bad("loan-without-pledges", 422, "pledges", loan(pledges=[])),
    Bad("loan-ip-share-above-one", 422, "ip_share", loan(ip_share="1.2")),
    Bad("loan-annual-rate-not-a-number", 422, "annual_rate", loan(annual_rate="abc")),
    Bad("loan-unknown-field", 422, "surprise", loan(surprise=1)),
    Bad("institution-region-five-digits", 422, "region", institution(region="44010"), "admin"),
    Bad("institution-code-with-a-space", 422, "code", institution(code="BAD CODE"), "admin"),
    Bad("institution-kind-unknown", 422, "kind", institution(kind="casino"), "admin"),
    Bad("institution-unknown-field", 422, "motto", institution(motto="trust us"), "admin"),
    Bad("borrower-industry-unknown", 422, "industry", borrower(industry="piracy")),
    Bad("borrower-employees-negative", 422, "employees", borrower(employees=-1)),
    Bad("borrower-employees-fraction", 422, "employees", borrower(employees=1.5)),
    Bad("programme-region-letters", 422, "region", programme(region="ABCDEF"), "admin"),
    Bad("programme-terms-misspelt-cap", 422, "per_clam", programme(terms_with(_misspelt_cap)), "admin"),
    Bad("programme-shares-above-one", 422, "parties", programme(terms_with(_oversubscribed)), "admin"),
    Bad("rate-above-fifty-percent", 422, "rate", rate(value="3.0"), "admin"),
    Bad("list-limit-zero", 422, "limit", get("/v1/loans?limit=0")),
    Bad("list-limit-over-1000", 422, "limit", get("/v1/journal?limit=1001")),
    Bad("list-cursor-forged", 422, "after", get("/v1/accounts?after=garbage")),
    Bad("list-status-unknown", 422, "status", get("/v1/loans?status=bogus")),
    Bad("list-region-two-digits", 422, "region", get("/v1/institutions?region=44")),
    Bad("balance-as-of-month-13", 422, "as_of", get("/v1/accounts/{w.other_account_id}/balance?as_of=2025-13-01"),
        "admin"),
    # --- targets (queries only: a GET changes nothing either way; the catalogue checks the 4xx) -----
    Bad("targets-without-region", 422, "region", get("/v1/targets?year=2025"), "fiscal"),
    Bad("targets-region-five-digits", 422, "region", get("/v1/targets?region=44010&year=2025"), "fiscal"),
    Bad("targets-year-not-a-number", 422, "year", get("/v1/targets?region=440100&year=twenty"), "fiscal"),
    Bad("targets-year-with-sign", 422, "year", get("/v1/targets?region=440100&year=%2B2025"), "fiscal"),
    Bad("targets-year-out-of-range", 422, "year", get("/v1/targets?region=440100&year=1066"), "fiscal"),
    Bad("targets-basis-unknown", 422, "basis", get("/v1/targets?region=440100&year=2025&basis=maturity"), "fiscal"),
    Bad("targets-target-set-unknown", 422, "target_set",
        get("/v1/targets?region=440100&year=2025&target_set=key-city-2099"), "fiscal"),
    Bad("targets-region-outside-jurisdiction", 404, "outside your jurisdiction",
        get("/v1/targets?region=510100&year=2025"), "fiscal"),
    Bad("targets-series-reversed", 422, "to", get("/v1/targets/series?region=440100&from=2025&to=2020"), "fiscal"),
    Bad("targets-series-over-fifty-years", 422, "to",
        get("/v1/targets/series?region=440100&from=1990&to=2060"), "fiscal"),
    Bad("targets-series-without-from", 422, "from", get("/v1/targets/series?region=440100&to=2025"), "fiscal"),
    Bad("targets-fresh-not-true-or-false", 422, "fresh", get("/v1/targets?region=440100&year=2025&fresh=1"), "fiscal"),
    Bad("targets-target-set-malformed", 422, "target_set",
        get("/v1/targets?region=440100&year=2025&target_set=%20bad%20"), "fiscal"),
    Bad("target-set-comparator-less-than", 422, "comparator", post("/v1/target-sets", {
        "code": "bad-set", "checks": [{"metric": "amount_growth", "comparator": "<", "threshold": "0.2"}]}), "admin"),
    Bad("target-set-metric-unknown", 422, "metric", post("/v1/target-sets", {
        "code": "bad-set", "checks": [{"metric": "happiness_growth", "comparator": ">", "threshold": "0.2"}]}), "admin"),
    Bad("target-set-threshold-a-float", 422, "threshold", post("/v1/target-sets", {
        "code": "bad-set", "checks": [{"metric": "amount_growth", "comparator": ">", "threshold": 0.2}]}), "admin"),
    Bad("target-set-threshold-five-places", 422, "threshold", post("/v1/target-sets", {
        "code": "bad-set", "checks": [{"metric": "amount_growth", "comparator": ">", "threshold": "0.20001"}]}), "admin"),
    Bad("target-set-without-checks", 422, "checks", post("/v1/target-sets", {"code": "bad-set", "checks": []}), "admin"),
    Bad("target-set-code-taken", 409, "never change", post("/v1/target-sets", {
        "code": "key-city-2018", "checks": [{"metric": "amount_growth", "comparator": ">", "threshold": "0.1"}]}),
        "admin"),
    # --- unknown references --------------------------------------------------------------------
    Bad("loan-programme-unknown", 422, "program", loan(program="no-such-programme")),
    Bad("loan-borrower-not-registered", 422, "borrower", lambda w: loan(borrower=credit_code())(w)),
    Bad("loan-programme-out-of-the-borrowers-region", 422, "program", lambda w: loan(program=w.away_program)(w)),
    Bad("programme-party-unknown", 422, "institution", programme(terms_with(_unknown_party)), "admin"),
    Bad("programme-party-of-the-wrong-kind", 422, "institution", programme(terms_with(_bank_as_insurer)), "admin"),
    Bad("repayment-unknown-loan", 404, "does not exist", post("/v1/loans/987654321/repayments", {
        "paid_on": "2025-06-01", "principal": "1.00", "interest": "0.00"})),
    Bad("fee-unknown-loan", 404, "does not exist", post("/v1/loans/987654321/fees",
                                                         {"kind": "premium", "amount": "1.00", "paid_on": "2025-02-25"})),
    Bad("contribution-unknown-programme", 404, "does not exist", contribute(program="no-such-programme"), "fiscal"),
    Bad("version-unknown-programme", 404, "does not exist",
        post("/v1/programs/no-such-programme/versions", lambda w: {
            "effective_from": "2030-01-01", "terms": terms_to_dict(w.program.versions[0].terms)}), "admin"),
    Bad("rate-unknown-name", 404, "SHIBOR", post("/v1/reference-rates/SHIBOR", {"month": "2025-06", "rate": "0.03"}),
        "admin"),
    # --- wrong states and uniqueness -----------------------------------------------------------
    Bad("institution-code-taken", 409, "already exists", _existing_institution, "admin"),
    Bad("programme-code-taken", 409, "already exists", _existing_programme, "admin"),
    Bad("loan-contract-number-taken", 409, "contract_no", _same_contract),
    Bad("repayment-on-a-closed-loan", 409, "closed", repay(loan_attr="closed_loan_id")),
    Bad("rate-already-recorded-otherwise", 409, "already recorded", rate(month="2099-01", value="0.0310"), "admin"),
    Bad("batch-empty", 422, "loans", post("/v1/loans/batch", {"loans": []})),
    Bad("batch-over-10000", 422, "loans", post("/v1/loans/batch", {"loans": [{}] * 10001})),
    Bad("batch-with-one-bad-item", 422, "maturity_date", post("/v1/loans/batch", _batch_with_bad_item)),
    Bad("batch-not-an-envelope", 422, "loans", post("/v1/loans/batch", lambda w: {"items": [w.loan()]})),
    # --- other institutions' ids and regions ---------------------------------------------------
    Bad("repayment-on-another-banks-loan", 404, "does not exist", repay(loan_attr="other_loan_id")),
    Bad("fee-on-another-banks-loan", 404, "does not exist", fee(loan_attr="other_loan_id")),
    Bad("balance-of-another-banks-account", 404, "does not exist",
        get("/v1/accounts/{w.other_account_id}/balance")),
    Bad("pool-contributes-to-a-programme-it-is-no-party-to", 403, "not a party", contribute(), "other_pool"),
    Bad("fiscal-versions-a-programme-of-another-province", 404, "does not exist", version("2030-01-01"),
        "away_fiscal"),
    Bad("fiscal-creates-a-programme-in-another-province", 403, "region", programme(region="440100"), "away_fiscal"),
    Bad("bank-creates-an-institution", 403, "admin", institution()),
    # --- defaults and claims (issue 8) ---------------------------------------------------------
    Bad("default-without-classified-on", 422, "classified_on", default_(classified_on=None)),
    Bad("default-overdue-days-as-float", 422, "overdue_days", default_(overdue_days=93.0)),
    Bad("default-overdue-days-negative", 422, "overdue_days", default_(overdue_days=-1)),
    Bad("default-interest-negative", 422, "overdue_interest", default_(overdue_interest="-1.00")),
    Bad("default-interest-three-decimals", 422, "overdue_interest", default_(overdue_interest="1.001")),
    Bad("default-in-the-future", 422, "classified_on", default_(classified_on="2999-01-01")),
    Bad("default-before-the-start", 422, "classified_on", default_(classified_on="2025-01-01")),
    Bad("default-unknown-field", 422, "reason", default_(reason="late")),
    Bad("default-below-the-trigger", 409, "trigger", default_(overdue_days=89)),
    Bad("default-of-a-closed-loan", 409, "closed", default_(loan_attr="closed_loan_id")),
    Bad("default-of-another-banks-loan", 404, "does not exist", default_(loan_attr="other_loan_id")),
    Bad("default-without-idempotency-key", 400, "Idempotency-Key",
        lambda w: {**default_()(w), "headers": {"Idempotency-Key": None}}),
    Bad("default-by-a-pool", 403, "bank", default_(), "pool"),
    Bad("claims-with-an-unknown-status", 422, "status", get("/v1/claims?status=lost")),
    Bad("claims-with-a-bad-party-code", 422, "party", get("/v1/claims?party=no%20such")),
    Bad("claim-that-does-not-exist", 404, "does not exist", get("/v1/claims/999999999")),
    Bad("withdrawal-without-a-date", 422, "withdrawn_on", post("/v1/claims/999999999/withdrawal", {})),
    Bad("withdrawal-of-an-unknown-claim", 404, "does not exist",
        post("/v1/claims/999999999/withdrawal", {"withdrawn_on": "2026-06-02"})),
    # --- corrections (issue 8 item 7) -----------------------------------------------------------
    Bad("reversal-without-entry", 422, "entry", reversal(entry=None)),
    Bad("reversal-entry-as-string", 422, "entry", reversal(entry="12")),
    Bad("reversal-without-reason", 422, "reason", reversal(reason=None)),
    Bad("reversal-reason-blank", 422, "reason", reversal(reason="   ")),
    Bad("reversal-reason-too-long", 422, "reason", reversal(reason="x" * 501)),
    Bad("reversal-unknown-field", 422, "effective_on", reversal(effective_on="2025-06-01")),
    Bad("reversal-of-the-disbursement", 422, "entry", reversal(entry=_disbursement)),
    Bad("reversal-of-an-unknown-entry", 422, "entry", reversal(entry=987654321)),
    Bad("reversal-of-another-loans-repayment", 422, "entry", reversal(entry=_repayment_of("other_loan_id"))),
    Bad("reversal-on-another-banks-loan", 404, "does not exist", reversal(loan_attr="other_loan_id")),
    Bad("reversal-of-a-repayment-already-reversed", 409, "already reversed", reversal(entry=_reversed_repayment)),
    Bad("reversal-once-a-claim-exists", 409, "claim", _reversal_on_claimed_loan),
    Bad("reversal-without-idempotency-key", 400, "Idempotency-Key",
        lambda w: {**reversal()(w), "headers": {"Idempotency-Key": None}}),
    Bad("reversal-by-an-admin", 403, "bank", reversal(), "admin"),
    # --- loss histories (issue 8 item 6) --------------------------------------------------------
    Bad("losses-with-a-foreign-cursor", 422, "after", get("/v1/audit/losses?after=aWQ6MTI")),
    Bad("losses-with-a-garbled-cursor", 422, "after", get("/v1/audit/losses?after=%%%")),
    Bad("losses-to-before-from", 422, "to", get("/v1/audit/losses?from=2026-02-01&to=2026-01-01")),
    Bad("losses-from-not-a-day", 422, "from", get("/v1/audit/losses?from=2026-02-30")),
    Bad("losses-region-short", 422, "region", get("/v1/audit/losses?region=4401")),
    Bad("losses-institution-bad-code", 422, "institution", get("/v1/audit/losses?institution=no%20such")),
    Bad("losses-limit-zero", 422, "limit", get("/v1/audit/losses?limit=0")),
    Bad("losses-limit-too-large", 422, "limit", get("/v1/audit/losses?limit=1001")),
    # --- reconciliation (issue 8 item 5) --------------------------------------------------------
    Bad("statement-without-date", 422, "statement_date", post("/v1/reconciliations", {"lines": []}), "pool"),
    Bad("statement-in-the-future", 422, "statement_date", statement(statement_date="2999-01-01"), "pool"),
    Bad("statement-lines-not-a-list", 422, "lines", statement(lines={"reference": "A"}), "pool"),
    Bad("statement-line-amount-three-decimals", 422, "amount", statement(amount="1.001"), "pool"),
    Bad("statement-line-amount-float", 422, "amount", statement(amount=1.5), "pool"),
    Bad("statement-line-amount-zero", 422, "amount", statement(amount="0"), "pool"),
    Bad("statement-line-claim-as-string", 422, "claim", statement(claim="12"), "pool"),
    Bad("statement-line-without-reference", 422, "reference", statement(reference=None), "pool"),
    Bad("statement-line-paid-after-the-statement", 422, "paid_on", statement(paid_on="2026-07-01"), "pool"),
    Bad("statement-line-unknown-field", 422, "currency", statement(currency="CNY"), "pool"),
    Bad("statement-too-many-lines", 422, "lines", statement(lines=[_LINE] * 10_001), "pool"),
    Bad("statement-csv-missing-column", 422, "body",
        raw("/v1/reconciliations?statement_date=2026-06-30", "reference,claim,amount\nA,1,1\n", "text/csv"), "pool"),
    Bad("statement-csv-bad-money", 422, "amount",
        raw("/v1/reconciliations?statement_date=2026-06-30", "reference,claim,amount,paid_on\nA,1,1.001,2026-06-01\n",
            "text/csv"), "pool"),
    Bad("statement-csv-short-line", 422, "lines[0]",
        raw("/v1/reconciliations?statement_date=2026-06-30", "reference,claim,amount,paid_on\nA,1\n", "text/csv"), "pool"),
    Bad("statement-csv-not-utf8", 422, "body",
        raw("/v1/reconciliations?statement_date=2026-06-30", "reference,claim,amount,paid_on\n\xff,1,1,2026-06-01\n".encode("latin-1"),
            "text/csv"), "pool"),
    Bad("statement-csv-without-date", 422, "statement_date",
        raw("/v1/reconciliations", "reference,claim,amount,paid_on\nA,1,1,2026-06-01\n", "text/csv"), "pool"),
    Bad("statement-as-plain-text", 415, "text/csv", raw("/v1/reconciliations", "A,1,1", "text/plain"), "pool"),
    Bad("statement-by-a-bank", 403, "insurer", statement()),
    Bad("reconciliation-that-does-not-exist", 404, "does not exist", get("/v1/reconciliations/987654321"), "pool"),
    Bad("reconciliations-bad-limit", 422, "limit", get("/v1/reconciliations?limit=0"), "pool"),
]


# --- subsidy batches (issue 9) -----------------------------------------------------------------

def _fiscal_batch(w, state="draft", with_key=True):
    """A batch of the world's programme drafted by the world's fiscal key (or, without the key,
    by its bureau's CLI), in `state`, on a fresh period."""
    from ledger import subsidy_batches as batches
    from tests.api.subsidy_world import fresh_period

    def make(conn):
        key = conn.execute(select(schema.api_keys).where(
            schema.api_keys.c.prefix == w.keys["fiscal"].split("_")[1])).first()
        maker = batches.Bureau(key.institution_id, "440100", key.id if with_key else None)
        made = batches.draft_batch(conn, w.program.code, fresh_period(w.program.code), maker)
        if state != "draft":
            batches.approve(conn, made["id"], batches.Bureau(key.institution_id, "440100", _other_key(conn, key)))
        return made
    return factories.tx(make)


def _other_key(conn, key) -> int:
    """Another fiscal key of the world's bureau: the approving officer."""
    from tests.api.subsidy_world import checker
    code = conn.execute(select(schema.institutions.c.code).where(schema.institutions.c.id == key.institution_id)).scalar_one()
    return checker(conn, code).key_id


def batch_action(action, state="draft", with_key=True, **extra):
    return lambda w: {"method": "POST", "path": f"/v1/subsidy-batches/{_fiscal_batch(w, state, with_key)['id']}/{action}",
                      **extra}


def _period_taken(w):
    made = _fiscal_batch(w)
    return {"method": "POST", "path": "/v1/subsidy-batches", "json": {"program": made["program"], "period": made["period"]}}


def _draft(period="2024", program="{w.program.code}", **more):
    return lambda w: post("/v1/subsidy-batches", {"program": program.format(w=w), "period": period, **more})(w)


SUBSIDY_CASES = [
    Bad("subsidy-batch-period-malformed", 422, "period", _draft(period="2025-Q5"), "fiscal"),
    Bad("subsidy-batch-period-a-month", 422, "period", _draft(period="2025-03"), "fiscal"),
    Bad("subsidy-batch-period-a-number", 422, "period", _draft(period=2025), "fiscal"),
    Bad("subsidy-batch-period-not-ended", 422, "period", _draft(period="2099"), "fiscal"),
    Bad("subsidy-batch-programme-missing", 422, "program", post("/v1/subsidy-batches", {"period": "2024"}), "fiscal"),
    Bad("subsidy-batch-unknown-field", 422, "total", _draft(total="1.00"), "fiscal"),
    Bad("subsidy-batch-unknown-programme", 404, "does not exist", _draft(program="no-such-programme"), "fiscal"),
    Bad("subsidy-batch-programme-of-another-province", 404, "does not exist", _draft(), "away_fiscal"),
    Bad("subsidy-batch-by-a-bank", 403, "fiscal", _draft()),
    Bad("subsidy-batch-period-taken", 409, "live", _period_taken, "fiscal"),
    Bad("subsidy-batch-approved-by-its-maker", 403, "maker", batch_action("approve"), "fiscal"),
    Bad("subsidy-batch-posted-before-approval", 409, "draft", batch_action("post", with_key=False), "fiscal"),
    Bad("subsidy-batch-reversed-before-posting", 409, "draft", batch_action("reverse", with_key=False), "fiscal"),
    Bad("subsidy-batch-approved-cancelled", 409, "approved", batch_action("cancel", "approved"), "fiscal"),
    Bad("subsidy-batch-approved-twice", 409, "approved", batch_action("approve", "approved"), "fiscal"),
    Bad("subsidy-batch-posted-without-idempotency-key", 400, "idempotency",
        batch_action("post", "approved", headers={"Idempotency-Key": None}), "fiscal"),
    Bad("subsidy-batch-approve-unknown", 404, "does not exist", post("/v1/subsidy-batches/987654321/approve"), "fiscal"),
    Bad("subsidy-batch-approve-of-another-bureau", 404, "does not exist", batch_action("approve", with_key=False),
        "away_fiscal"),
    Bad("subsidy-batches-bad-status", 422, "status", get("/v1/subsidy-batches?status=paid"), "fiscal"),
    Bad("subsidy-lines-bad-limit", 422, "limit", get("/v1/subsidy-batches/987654321/lines?limit=0"), "fiscal"),
]
CASES += SUBSIDY_CASES

JOB_RUN_CASES = [
    Bad("job-runs-bad-status", 422, "status", get("/v1/jobs/runs?status=crashed"), "fiscal"),
    Bad("job-runs-bad-job-name", 422, "job", get("/v1/jobs/runs?job=no%20such%20job"), "admin"),
    Bad("job-runs-bad-limit", 422, "limit", get("/v1/jobs/runs?limit=1001"), "fiscal"),
    Bad("job-runs-bad-cursor", 422, "after", get("/v1/jobs/runs?after=not-a-cursor"), "fiscal"),
    Bad("job-runs-by-a-bank", 403, "role", get("/v1/jobs/runs"), "bank"),
]
CASES += JOB_RUN_CASES


# --- claim payments and recoveries (issue 8) ---------------------------------------------------

def _claim(w, state="open"):
    """A claim of the world's bank on a loan of a borrower of its own (fresh coverage), cached
    per state: `open`, `withdrawn`, or `paid` (the insurer paid 1.00 with reference REF-USED)."""
    if state not in w.extra:
        from datetime import date

        from ledger.claim_payments import pay_claim
        from ledger.claims import open_claim, withdraw_claim
        from ledger import programs
        pool = w.program.versions[0].terms.parties[1].institution
        pool_id = factories.tx(lambda conn: conn.execute(select(schema.institutions.c.id).where(
            schema.institutions.c.code == pool)).scalar_one())
        # A fund behind the pool's share, so that the pool owes (and must wait for the insurer).
        factories.tx(lambda conn: programs.contribute(conn, w.program.code, pool_id, 100_00, date(2026, 5, 1), SYSTEM))
        borrower = BorrowerFactory(bank_id=w.bank.id, region="440106").facts.credit_code
        loan_id = make_loan(w.bank.id, borrower, w.program.code)
        claim = factories.tx(lambda conn: open_claim(conn, loan_id, w.bank.id, date(2026, 6, 1), SYSTEM,
                                                     overdue_days=93))
        if state == "withdrawn":
            factories.tx(lambda conn: withdraw_claim(conn, claim["id"], w.bank.id, date(2026, 6, 2), SYSTEM))
        if state == "paid":
            insurer = claim["shares"][0]["institution_id"]
            w.extra["used_reference"] = unique("REF-USED")
            factories.tx(lambda conn: pay_claim(conn, claim["id"], insurer, 100, date(2026, 6, 5),
                                                w.extra["used_reference"], SYSTEM))
        w.extra[state] = claim
    return w.extra[state]


def payment(state="open", **over):
    def make(w):
        body = {"amount": "1.00", "paid_on": "2026-06-10", "reference": unique("ref"), **over}
        if over.get("reference") == "USED":
            body["reference"] = (_claim(w, "paid"), w.extra["used_reference"])[1]
        body = {key: value for key, value in body.items() if value is not None}
        return {"method": "POST", "path": f"/v1/claims/{_claim(w, state)['id']}/payments", "json": body}
    return make


def recovery(state="open", loan=None, **over):
    def make(w):
        body = {"received_on": "2026-09-01", "gross": "100.00", "costs": "10.00", "source": "auction", **over}
        body = {key: value for key, value in body.items() if value is not None}
        loan_id = getattr(w, loan) if loan else _claim(w, state)["loan_id"]
        return {"method": "POST", "path": f"/v1/loans/{loan_id}/recoveries", "json": body}
    return make


PAYMENT_CASES = [
    Bad("payment-without-amount", 422, "amount", payment(amount=None), "insurer"),
    Bad("payment-amount-as-float", 422, "amount", payment(amount=1.5), "insurer"),
    Bad("payment-amount-zero", 422, "amount", payment(amount="0.00"), "insurer"),
    Bad("payment-amount-negative", 422, "amount", payment(amount="-1.00"), "insurer"),
    Bad("payment-amount-three-decimals", 422, "amount", payment(amount="1.001"), "insurer"),
    Bad("payment-more-than-outstanding", 422, "amount", payment(amount="1000000.01"), "insurer"),
    Bad("payment-without-reference", 422, "reference", payment(reference=None), "insurer"),
    Bad("payment-reference-too-long", 422, "reference", payment(reference="R" * 121), "insurer"),
    Bad("payment-date-malformed", 422, "paid_on", payment(paid_on="10/06/2026"), "insurer"),
    Bad("payment-before-the-claim", 422, "paid_on", payment(paid_on="2026-05-01"), "insurer"),
    Bad("payment-in-the-future", 422, "paid_on", payment(paid_on="2999-01-01"), "insurer"),
    Bad("payment-unknown-field", 422, "payer", payment(payer="me"), "insurer"),
    Bad("payment-before-the-pays-first-party", 409, "pays-first", payment(), "pool"),
    Bad("payment-reference-used", 409, "already used", payment(reference="USED"), "insurer"),
    Bad("payment-on-a-withdrawn-claim", 409, "withdrawn", payment("withdrawn"), "insurer"),
    Bad("payment-on-an-unknown-claim", 404, "does not exist",
        post("/v1/claims/987654321/payments", {"amount": "1.00", "paid_on": "2026-06-10", "reference": "R"}),
        "insurer"),
    Bad("payment-by-a-party-not-on-the-claim", 404, "does not exist", payment(), "other_pool"),
    Bad("payment-by-a-bank", 403, "insurer", payment()),
    Bad("payment-by-a-fiscal-bureau", 403, "insurer", payment(), "fiscal"),
    Bad("recovery-without-idempotency-key", 400, "Idempotency-Key",
        lambda w: {**recovery()(w), "headers": {"Idempotency-Key": None}}),
    Bad("recovery-costs-above-gross", 422, "costs", recovery(costs="100.01")),
    Bad("recovery-beyond-the-loss", 422, "gross", recovery(gross="99999999.00")),
    Bad("recovery-unknown-source", 422, "source", recovery(source="lottery")),
    Bad("recovery-without-source", 422, "source", recovery(source=None)),
    Bad("recovery-gross-negative", 422, "gross", recovery(gross="-1.00")),
    Bad("recovery-gross-as-float", 422, "gross", recovery(gross=100.5)),
    Bad("recovery-without-date", 422, "received_on", recovery(received_on=None)),
    Bad("recovery-in-the-future", 422, "received_on", recovery(received_on="2999-01-01")),
    Bad("recovery-before-the-claim", 422, "received_on", recovery(received_on="2026-05-01")),
    Bad("recovery-unknown-field", 422, "buyer", recovery(buyer="someone")),
    Bad("recovery-without-a-live-claim", 409, "no live claim", recovery("withdrawn")),
    Bad("recovery-on-a-loan-never-claimed", 409, "no live claim", recovery(loan="loan_id")),
    Bad("recovery-of-another-banks-loan", 404, "does not exist", recovery(loan="other_loan_id")),
    Bad("recovery-by-a-pool", 403, "bank", recovery(), "pool"),
]
CASES += PAYMENT_CASES
# --- stress tests (issue 12) -------------------------------------------------------------------

STRESS_BODY = {"years": 2, "scenarios": 10, "seed": 1, "default_probability": "0.03", "asset_correlation": "0.15"}


def _stress(program="{w.program.code}", drop=(), **over):
    body = {**{k: v for k, v in STRESS_BODY.items() if k not in drop}, **over}
    return post(f"/v1/programs/{program}/stress-tests", body)


STRESS_CASES = [
    Bad("stress-probability-above-one", 422, "default_probability", _stress(default_probability="1.5"), "fiscal"),
    Bad("stress-probability-a-float", 422, "default_probability", _stress(default_probability=0.03), "fiscal"),
    Bad("stress-probability-missing", 422, "default_probability", _stress(drop=("default_probability",)), "fiscal"),
    Bad("stress-correlation-missing", 422, "asset_correlation", _stress(drop=("asset_correlation",)), "fiscal"),
    Bad("stress-too-many-years", 422, "years", _stress(years=11), "fiscal"),
    Bad("stress-too-many-scenarios", 422, "scenarios", _stress(scenarios=20_001), "fiscal"),
    Bad("stress-no-scenarios", 422, "scenarios", _stress(scenarios=0), "fiscal"),
    Bad("stress-years-a-bool", 422, "years", _stress(years=True), "fiscal"),
    Bad("stress-negative-seed", 422, "seed", _stress(seed=-1), "fiscal"),
    Bad("stress-sme-probability-bad", 422, "sme", _stress(default_probability_by={"sme": "2"}), "fiscal"),
    Bad("stress-lending-after-the-horizon", 422, "year",
        _stress(new_lending=[{"year": 3, "amount": "1000000.00"}]), "fiscal"),
    Bad("stress-lending-negative", 422, "amount", _stress(new_lending=[{"year": 1, "amount": "-1.00"}]), "fiscal"),
    Bad("stress-lending-too-far", 422, "amount", _stress(new_lending=[{"year": 1, "amount": FAR}]), "fiscal"),
    Bad("stress-as-of-malformed", 422, "as_of", _stress(as_of="2026-13-01"), "fiscal"),
    Bad("stress-target-above-one", 422, "target_exhaustion_probability",
        _stress(target_exhaustion_probability="1.01"), "fiscal"),
    Bad("stress-unknown-field", 422, "pd", _stress(pd="0.03"), "fiscal"),
    Bad("stress-unknown-programme", 404, "does not exist", _stress(program="no-such-programme"), "fiscal"),
    Bad("stress-programme-of-another-province", 404, "does not exist", _stress(), "away_fiscal"),
    Bad("stress-programme-not-the-pools", 404, "does not exist", _stress(), "other_pool"),
    Bad("stress-by-a-bank", 403, "fiscal", _stress()),
    Bad("stress-run-unknown", 404, "does not exist", get("/v1/programs/{w.program.code}/stress-tests/987654321"),
        "fiscal"),
    Bad("stress-runs-bad-limit", 422, "limit", get("/v1/programs/{w.program.code}/stress-tests?limit=0"), "fiscal"),
]
CASES += STRESS_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_and_writes_nothing(client, engine, world, case):
    request = case.make(world)
    headers = {"Authorization": f"Bearer {world.keys[case.who]}"}
    if request["method"] == "POST":
        headers["Idempotency-Key"] = unique("bad")
    headers.update(request.pop("headers", {}))
    headers = {name: value for name, value in headers.items() if value is not None}
    before = snapshot(engine)
    response = client.open(request.pop("path"), headers=headers, **request)
    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM
    problem = json.loads(response.get_data(as_text=True))
    assert problem["type"].startswith("urn:ipledger:problem:") and problem["status"] == case.status
    assert problem["detail"] and "Traceback" not in problem["detail"]
    named = any(case.needle in error["field"] for error in problem.get("errors", []))
    if case.status == 422:  # validation: the offending field is named
        assert named, (case.needle, problem)
    else:
        assert named or case.needle.lower() in problem["detail"].lower(), (case.needle, problem)
    assert snapshot(engine) == before, "a refused request changed the database"


def test_the_catalogue_is_large_and_named_uniquely():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_snapshot_sees_a_new_row_and_a_new_journal_entry(engine):
    """The "unchanged" check of the catalogue can fail: any write shows in it."""
    before = snapshot(engine)
    bank = InstitutionFactory(kind="bank")
    with_institution = snapshot(engine)
    assert with_institution["counts"]["institutions"] == before["counts"]["institutions"] + 1
    assert with_institution["journal_sha256"] == before["journal_sha256"]
    make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code)
    assert snapshot(engine)["journal_sha256"] != with_institution["journal_sha256"]

