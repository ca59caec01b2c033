"""Reading requests through HTTP: the OpenAPI document is the parser (the same schemas), no
lenient reading of booleans, integers or dates on any endpoint, error paths in the one form
(`terms.parties[1].caps.per_claim`, `loans[17].pledges[0].number`), every error at once."""
from __future__ import annotations

import copy
import itertools

import pytest

from tests.api.test_skeleton import assert_problem
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, auth,
                             credit_code, loan_body, program_parties, unique)


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/openapi.json").get_json()


def resolve(spec: dict, node: dict) -> dict:
    """Follow $ref, and the allOf/anyOf wrappers apispec puts around nested schemas."""
    while True:
        if "$ref" in node:
            node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in node:
            node = node["allOf"][0]
        elif "anyOf" in node:
            node = next(option for option in node["anyOf"] if "$ref" in option)
        else:
            return node


def at(spec: dict, node: dict, dotted: str) -> dict:
    """The property at `dotted` (`terms.parties.items.caps.per_claim`) under `node`."""
    for part in dotted.split("."):
        node = resolve(spec, node)
        node = node["items"] if part == "items" else node["properties"][part]
    return resolve(spec, node)


def request_schema(spec: dict, path: str) -> dict:
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def leaves(spec: dict, node: dict, prefix: tuple = ()):
    """(path parts with 0 for list items, property) of every leaf property under `node`."""
    node = resolve(spec, node)
    if node.get("type") == "array" and "items" in node:
        yield from leaves(spec, node["items"], (*prefix, 0))
    elif "properties" in node:
        for name, child in node["properties"].items():
            yield from leaves(spec, child, (*prefix, name))
    else:
        yield prefix, node


# --- the document shows, and is, the parser -------------------------------------------------

def json_type(node: dict) -> str:
    """The JSON type a leaf documents: request money is "money", a yuan string or a JSON
    integer (`oneOf`, with a null branch when nullable); response money is a "string"."""
    if "oneOf" in node:
        assert [b["type"] for b in node["oneOf"] if not b.get("nullable")] == ["string", "integer"], node
        return "money"
    return node["type"]


def money_branches(node: dict) -> tuple[dict, dict, dict | None]:
    """A request money field's string, integer and (when nullable) null branches."""
    branches = {("null" if b.get("nullable") else b["type"]): b for b in node["oneOf"]}
    return branches["string"], branches["integer"], branches.get("null")


TERMS_FIELDS = {  # dotted path under the programme body -> the OpenAPI type it must have
    "terms.loss_base": "string", "terms.trigger_overdue_days": "integer",
    "terms.coverage.ip_share": "string", "terms.coverage.require_stated_ip_share": "boolean",
    "terms.coverage.min_ip_share": "string", "terms.coverage.max_covered_principal": "money",
    "terms.coverage.max_covered_principal_per_borrower_year": "money",
    "terms.parties.items.institution": "string", "terms.parties.items.role": "string",
    "terms.parties.items.share": "string", "terms.parties.items.pays_first": "boolean",
    "terms.parties.items.share_tiers.items.up_to": "money",
    "terms.parties.items.share_tiers.items.share": "string",
    "terms.parties.items.caps.per_claim": "money",
    "terms.parties.items.caps.per_borrower_year": "money",
    "terms.parties.items.caps.per_bank_year": "money",
    "terms.parties.items.caps.per_program_year": "money",
    "terms.parties.items.caps.portfolio_cap_rate": "string",
    "terms.parties.items.caps.fund_balance": "boolean",
    "terms.parties.items.recoveries_to": "string",
    "terms.subsidies.items.kind": "string", "terms.subsidies.items.method": "string",
    "terms.subsidies.items.pct": "string", "terms.subsidies.items.reference": "string",
    "terms.subsidies.items.reference_month": "string",
    "terms.subsidies.items.min_with_contract_rate": "boolean",
    "terms.subsidies.items.caps.pct_of_principal": "string",
    "terms.subsidies.items.caps.per_loan": "money",
    "terms.subsidies.items.caps.per_borrower_year": "money",
    "terms.subsidies.items.caps.per_borrower_total": "money",
    "terms.subsidies.items.caps.years": "integer",
    "terms.subsidies.items.eligibility.max_rate_over_lpr": "string",
    "terms.subsidies.items.eligibility.sme_only": "boolean",
    "terms.subsidies.items.eligibility.private_only": "boolean",
    "terms.subsidies.items.eligibility.max_revenue": "money",
}


@pytest.mark.parametrize("path", ["/v1/programs", "/v1/programs/{code}/versions"])
def test_programme_request_body_shows_every_terms_field_with_its_type(spec, path):
    body = request_schema(spec, path)
    for dotted, expected in TERMS_FIELDS.items():
        assert json_type(at(spec, body, dotted)) == expected, dotted
    per_claim = at(spec, body, "terms.parties.items.caps.per_claim")
    text, integer, null = money_branches(per_claim)
    assert text["pattern"] and integer["maximum"] == 10**13 and per_claim["example"]
    assert null == {"type": "string", "nullable": True, "enum": [None]}
    assert at(spec, body, "terms.parties.items.role")["enum"] == [
        "insurer", "guarantor", "pool", "appraiser"]
    years = at(spec, body, "terms.subsidies.items.caps.years")
    assert (years["minimum"], years["maximum"]) == (1, 100)
    parties = at(spec, body, "terms.parties")
    assert parties["maxItems"] == 20 and resolve(spec, at(spec, body, "terms"))["required"] == [
        "parties"]
    assert resolve(spec, at(spec, body, "terms"))["additionalProperties"] is False


def test_programme_response_shows_the_same_terms_schema(spec):
    shown = spec["paths"]["/v1/programs/{code}"]["get"]["responses"]["200"]["content"]
    program = shown["application/json"]["schema"]
    for dotted, expected in TERMS_FIELDS.items():
        shown_type = json_type(at(spec, program, f"versions.items.{dotted}"))
        assert shown_type == ("string" if expected == "money" else expected), dotted


def test_every_documented_terms_field_is_read_at_its_documented_path(client, engine, spec):
    """Send a value of the wrong JSON type to each leaf the document shows: the server refuses
    it at exactly that path (document and parser name and nest every field alike)."""
    admin = auth("admin")
    body = request_schema(spec, "/v1/programs")
    wrong = {"string": 12.5, "money": 12.5, "integer": "7", "boolean": 1}
    documented = [(parts, node) for parts, node in leaves(spec, body)
                  if parts[0] == "terms"]
    assert len(documented) == len(TERMS_FIELDS)
    for parts, node in documented:
        raw = _programme_body(api_terms(**program_parties()))
        target = raw
        for part in parts[:-1]:
            if isinstance(target, dict) and part not in target:
                target[part] = [{}] if part in ("share_tiers",) else {}
            target = target[part]
        target[parts[-1]] = wrong[json_type(node)]
        problem = assert_problem(client.post("/v1/programs", json=raw, headers=admin), 422)
        expected = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)[1:]
        assert expected in [e["field"] for e in problem["errors"]], (expected, problem["errors"])


def test_loan_request_bodies_are_the_ledger_schemas(spec):
    single = request_schema(spec, "/v1/loans")
    batch = request_schema(spec, "/v1/loans/batch")
    assert single["$ref"].endswith("/LoanIn") and batch["$ref"].endswith("/LoanBatchIn")
    assert at(spec, batch, "loans.items.pledges.items.number")["type"] == "string"
    assert at(spec, batch, "loans.items.pledges.items.nice_class")["type"] == "integer"
    assert at(spec, batch, "loans")["maxItems"] == 10_000
    assert at(spec, single, "start_date")["format"] == "date"
    assert money_branches(at(spec, single, "principal"))[0]["pattern"]


def test_the_views_parse_with_the_documented_schema_objects(app):
    from api import loans as loan_views, programs as program_views
    from ledger.loans import LOAN_BATCH_IN, LOAN_IN, LoanBatchIn, LoanIn
    from ledger.terms import TermsIn
    arguments = {name: view._apidoc["arguments"]["parameters"][0]["schema"]
                 for name, view in (("single", loan_views.Loans.post),
                                    ("batch", loan_views.post_batch),
                                    ("program", program_views.Programs.post))}
    assert arguments["single"] is LOAN_IN and isinstance(LOAN_IN, LoanIn)
    assert arguments["batch"] is LOAN_BATCH_IN and isinstance(LOAN_BATCH_IN, LoanBatchIn)
    assert isinstance(arguments["program"].fields["terms"].schema, TermsIn)


# --- strict values on every endpoint that has them ------------------------------------------

BAD_BOOLEANS = [1, 0, 1.0, 0.0, "true"]
BAD_INTEGERS = [True, 9.0, "9"]
BAD_DAYS = ["２０２５-03-01", "2025-03-01\n", "20250301", 20250301]


class World:
    """A bank with a key, a programme and a borrower; one loan of it; a fiscal bureau key."""

    def __init__(self, client):
        self.bank = InstitutionFactory(kind="bank", region="440100")
        self.bank_headers = auth("bank", self.bank.code)
        self.program = ProgramFactory(region="440100")
        self.borrower = BorrowerFactory(region="440106", bank_id=self.bank.id)
        self.fiscal = auth("fiscal", InstitutionFactory(kind="fiscal", region="440000").code)
        self.admin = auth("admin")
        made = client.post("/v1/loans", json=self.loan(),
                           headers=self.bank_key())
        assert made.status_code == 201, made.get_json()
        self.loan_id = made.get_json()["id"]

    def loan(self, **over):
        return {**loan_body(self.borrower.facts.credit_code, self.program.code), **over}

    def bank_key(self):
        return {**self.bank_headers, "Idempotency-Key": unique("k")}


@pytest.fixture
def world(client, engine):
    return World(client)


def _programme_body(terms, **over):
    return {"code": unique("p").lower(), "name": "Scheme", "region": "440100",
            "effective_from": "2023-01-01", "terms": terms, **over}


def _borrower_body(**over):
    return {"credit_code": credit_code(), "name": "Acme", "region": "440106",
            "industry": "software_it", "employees": 50, "revenue": "8000000.00",
            "total_assets": "3000000.00", "private": True, **over}


def _set(body: dict, parts: tuple, value) -> dict:
    body = copy.deepcopy(body)
    target = body
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return body


def json_cases(world):
    """(url, headers, body maker, path of the strict field, bad values) for every JSON field of
    type boolean, integer or date; each maker gives a fresh valid body (new codes, numbers)."""
    terms = api_terms(**program_parties())
    years = itertools.count(2030)

    def programme():
        return _programme_body(copy.deepcopy(terms))

    def with_years():
        return _set(programme(), ("terms", "subsidies", 0, "caps", "years"), 3)

    def version():
        return {"effective_from": f"{next(years)}-01-01", "terms": copy.deepcopy(terms)}

    def batch():
        return {"loans": [world.loan(), world.loan()]}

    def repay():
        return {"paid_on": "2025-06-01", "principal": "1.00", "interest": "0"}

    def fee():
        return {"kind": "premium", "amount": "1.00", "paid_on": "2025-02-25"}

    def contribution():
        return {"amount": "1.00", "on": "2025-01-05"}

    loan_url = f"/v1/loans/{world.loan_id}"
    program_url = f"/v1/programs/{world.program.code}"
    bank, admin = world.bank_key, (lambda: world.admin)
    fiscal = lambda: {**world.fiscal, "Idempotency-Key": unique("k")}  # noqa: E731
    return [
        ("/v1/borrowers", bank, _borrower_body, ("private",), BAD_BOOLEANS),
        ("/v1/borrowers", bank, _borrower_body, ("employees",), BAD_INTEGERS),
        ("/v1/programs", admin, programme, ("effective_from",), BAD_DAYS),
        ("/v1/programs", admin, programme, ("effective_to",), BAD_DAYS),
        ("/v1/programs", admin, programme, ("terms", "trigger_overdue_days"), BAD_INTEGERS),
        ("/v1/programs", admin, programme, ("terms", "coverage", "require_stated_ip_share"),
         BAD_BOOLEANS),
        ("/v1/programs", admin, programme, ("terms", "parties", 0, "pays_first"), BAD_BOOLEANS),
        ("/v1/programs", admin, programme, ("terms", "parties", 1, "caps", "fund_balance"),
         BAD_BOOLEANS),
        ("/v1/programs", admin, programme, ("terms", "subsidies", 1, "min_with_contract_rate"),
         BAD_BOOLEANS),
        ("/v1/programs", admin, programme, ("terms", "subsidies", 0, "eligibility", "sme_only"),
         BAD_BOOLEANS),
        ("/v1/programs", admin, programme,
         ("terms", "subsidies", 0, "eligibility", "private_only"), BAD_BOOLEANS),
        ("/v1/programs", admin, with_years, ("terms", "subsidies", 0, "caps", "years"),
         BAD_INTEGERS),
        (f"{program_url}/versions", admin, version, ("effective_from",), BAD_DAYS),
        (f"{program_url}/versions", admin, version, ("terms", "parties", 0, "pays_first"),
         BAD_BOOLEANS),
        (f"{program_url}/fund-contributions", fiscal, contribution, ("on",), BAD_DAYS),
        ("/v1/loans", bank, world.loan, ("start_date",), BAD_DAYS),
        ("/v1/loans", bank, world.loan, ("maturity_date",), BAD_DAYS),
        ("/v1/loans", bank, world.loan, ("pledges", 0, "registered_on"), BAD_DAYS),
        ("/v1/loans", bank, world.loan, ("pledges", 1, "nice_class"), BAD_INTEGERS),
        ("/v1/loans/batch", bank, batch, ("loans", 1, "start_date"), BAD_DAYS),
        ("/v1/loans/batch", bank, batch, ("loans", 1, "pledges", 1, "nice_class"), BAD_INTEGERS),
        (f"{loan_url}/repayments", bank, repay, ("paid_on",), BAD_DAYS),
        (f"{loan_url}/fees", bank, fee, ("paid_on",), BAD_DAYS),
    ]


def test_loose_booleans_integers_and_days_are_refused_on_every_json_endpoint(client, world):
    for url, headers, body, parts, bad_values in json_cases(world):
        expected = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)[1:]
        good = client.post(url, json=body(), headers=headers())
        assert good.status_code in (200, 201), (url, good.get_json())
        for value in bad_values:
            response = client.post(url, json=_set(body(), parts, value), headers=headers())
            problem = assert_problem(response, 422)
            assert [e["field"] for e in problem["errors"]] == [expected], (url, value, problem)


@pytest.mark.parametrize("query", ["limit=%D9%A5%D9%A0", "limit=+50", "limit=5.0", "limit=0",
                                   "limit=true", "limit=1001"])
@pytest.mark.parametrize("path", ["/v1/journal", "/v1/accounts", "/v1/loans", "/v1/institutions",
                                  "/v1/programs"])
def test_loose_query_integers_are_refused_with_a_query_path(client, engine, path, query):
    problem = assert_problem(client.get(f"{path}?{query}", headers=auth("admin")), 422)
    assert [e["field"] for e in problem["errors"]] == ["query.limit"]


@pytest.mark.parametrize("value", ["2025-03-01%0A", "%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%95-03-01",
                                   "20250301"])
def test_loose_query_days_are_refused(client, world, value):
    account = client.get("/v1/accounts?limit=1", headers=world.admin).get_json()["items"][0]["id"]
    for url in (f"/v1/accounts/{account}/balance", f"/v1/programs/{world.program.code}/fund"):
        problem = assert_problem(client.get(f"{url}?as_of={value}", headers=world.admin), 422)
        assert [e["field"] for e in problem["errors"]] == ["query.as_of"]


@pytest.mark.parametrize("month", ["2025-6", "2025-06\n", "２０２５-06", "2025-13", 202506])
def test_loose_months_are_refused(client, engine, month):
    response = client.post("/v1/reference-rates/LPR1Y", json={"month": month, "rate": "0.03"},
                           headers=auth("fiscal"))
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == ["month"]


def test_private_zero_and_one_are_not_booleans(client, engine):
    """The defect of issue 6: `private: 0`, `1`, `0.0`, `1.0` were read as false and true."""
    bank = auth("bank")
    for value in (0, 1, 0.0, 1.0):
        problem = assert_problem(client.post("/v1/borrowers", json=_borrower_body(private=value),
                                             headers=bank), 422)
        assert problem["errors"] == [{"field": "private", "message": "must be true or false"}]


# --- paths in the one form, every error at once ---------------------------------------------

def test_nested_terms_errors_all_in_one_response(client, engine):
    terms = api_terms(**program_parties())
    terms["parties"][1]["caps"]["per_claim"] = 1.5
    terms["parties"][1]["share_tiers"][0]["up_to"] = "0"
    terms["subsidies"][2]["caps"]["years"] = 0
    terms["subsidies"][1]["reference_month"] = None
    terms["coverage"]["per_clam"] = "1"
    body = _programme_body(terms, code="-bad", effective_from="2023-02-30")
    problem = assert_problem(client.post("/v1/programs", json=body, headers=auth("admin")), 422)
    assert [e["field"] for e in problem["errors"]] == [
        "code", "effective_from", "terms.coverage.per_clam",
        "terms.parties[1].share_tiers[0].up_to", "terms.parties[1].caps.per_claim",
        "terms.subsidies[1].reference_month", "terms.subsidies[2].caps.years"]


def test_batch_item_errors_all_in_one_response(client, world):
    loans = [world.loan() for _ in range(5)]
    loans[0]["principal"] = 1.5
    loans[2]["pledges"][1]["number"] = "0123"
    loans[2]["pledges"][0]["registered_on"] = "2025-02-30"
    loans[3]["maturity_date"] = "2024-01-01"
    loans[4]["surprise"] = True
    response = client.post("/v1/loans/batch", json={"loans": loans}, headers=world.bank_key())
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [
        "loans[0].principal", "loans[2].pledges[0].registered_on", "loans[2].pledges[1].number",
        "loans[3].maturity_date", "loans[4].surprise"]
    assert "loans[0].principal" in problem["detail"]


def test_a_single_loan_names_its_fields_without_a_prefix(client, world):
    body = world.loan()
    good = body["pledges"][0]["number"]
    body["pledges"][0]["number"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    problem = assert_problem(client.post("/v1/loans", json=body, headers=world.bank_key()), 422)
    assert [e["field"] for e in problem["errors"]] == ["pledges[0].number"]


def test_reference_errors_of_a_batch_use_the_same_form(client, world):
    loans = [world.loan(), world.loan(program="no-such-programme")]
    response = client.post("/v1/loans/batch", json={"loans": loans}, headers=world.bank_key())
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == ["loans[1].program"]


def test_an_oversized_batch_is_one_error_read_before_its_items(client, world):
    response = client.post("/v1/loans/batch", json={"loans": [{}] * 10_001},
                           headers=world.bank_key())
    problem = assert_problem(response, 422)
    assert problem["errors"] == [{"field": "loans", "message": "must list 1 to 10000 loans"}]


@pytest.mark.parametrize("body, field", [([], "body"), ({"loans": {}}, "loans"),
                                         ({"loans": [[]]}, "loans[0]"), ({}, "loans"),
                                         ({"loans": [], "more": 1}, "more")])
def test_batch_shapes(client, world, body, field):
    response = client.post("/v1/loans/batch", json=body, headers=world.bank_key())
    assert field in [e["field"] for e in assert_problem(response, 422)["errors"]]


def test_a_refused_request_writes_nothing(client, world):
    good, bad = world.loan(), world.loan(principal="-1")
    assert_problem(client.post("/v1/loans/batch", json={"loans": [good, bad]},
                               headers=world.bank_key()), 422)
    listed = client.get("/v1/loans?limit=1000", headers=world.bank_headers).get_json()["items"]
    assert good["contract_no"] not in [loan["contract_no"] for loan in listed]
