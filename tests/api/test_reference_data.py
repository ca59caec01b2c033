"""Borrowers, reference rates and programmes through HTTP."""
import pytest

from tests.api.test_skeleton import assert_problem
from tests.factories import (InstitutionFactory, ProgramFactory, api_terms, auth,
                             credit_code, loan_body, program_parties, unique)


def borrower_body(**over):
    body = {"credit_code": credit_code(), "name": "Acme Tech", "region": "440106", "industry": "software_it",
            "employees": 50, "revenue": "8000000.00", "total_assets": "3000000", "private": True}
    body.update(over)
    return body


# --- borrowers ------------------------------------------------------------------------------

def test_borrower_is_classified_and_updated_without_touching_loans(client, engine):
    bank_code = InstitutionFactory(kind="bank").code
    bank = auth("bank", bank_code)
    body = borrower_body(as_of="2025-01-31")
    created = client.post("/v1/borrowers", json=body, headers=bank)
    assert created.status_code == 201
    assert created.get_json() | {"id": 0} == {**body, "id": 0, "bank": bank_code, "total_assets": "3000000.00",
                                              "size_class": "small", "sme": True, "size_standard": "MIIT-2011-300"}
    program = ProgramFactory()
    loan = client.post("/v1/loans", json=loan_body(body["credit_code"], program.code),
                       headers={**bank, "Idempotency-Key": unique("k")}).get_json()
    grown = client.post("/v1/borrowers", json={**body, "employees": 400, "revenue": "200000000.00",
                                               "private": False, "as_of": "2025-06-30"}, headers=bank)
    assert grown.status_code == 200 and grown.get_json()["size_class"] == "large"
    assert grown.get_json()["sme"] is False and grown.get_json()["as_of"] == "2025-06-30"
    frozen = client.get(f"/v1/loans/{loan['id']}", headers=bank).get_json()
    assert (frozen["borrower_size_class"], frozen["borrower_sme"], frozen["borrower_private"]) == ("small", True, True)
    assert frozen["borrower_facts_as_of"] == "2025-01-31"
    assert client.get(f"/v1/borrowers/{body['credit_code']}", headers=bank).get_json()["employees"] == 400


@pytest.mark.parametrize("override, field", [
    ({"credit_code": "91350100M000100Y44"}, "credit_code"), ({"credit_code": "123"}, "credit_code"),
    ({"industry": "piracy"}, "industry"), ({"employees": 1.5}, "employees"), ({"employees": -1}, "employees"),
    ({"revenue": 1.5}, "revenue"), ({"revenue": "-1.00"}, "revenue"), ({"region": "4401"}, "region"),
    ({"private": "yes"}, "private"), ({"name": ""}, "name"),
])
def test_borrower_validation(client, engine, override, field):
    problem = assert_problem(client.post("/v1/borrowers", json=borrower_body(**override), headers=auth("bank")), 422)
    assert field in [e["field"] for e in problem["errors"]]


def test_borrower_roles_and_missing(client, engine):
    assert_problem(client.post("/v1/borrowers", json=borrower_body(), headers=auth("insurer")), 403)
    assert_problem(client.get(f"/v1/borrowers/{credit_code()}", headers=auth("bank")), 404)


# --- reference rates ------------------------------------------------------------------------

# DOMAIN.md §5, typed in again (not imported from the migration): one-year LPR in percent by the
# month a value took effect.
DOMAIN_LPR_CHANGES = [("2019-08", "4.25"), ("2019-09", "4.20"), ("2019-11", "4.15"), ("2020-02", "4.05"),
                      ("2020-04", "3.85"), ("2021-12", "3.80"), ("2022-01", "3.70"), ("2022-08", "3.65"),
                      ("2023-06", "3.55"), ("2023-08", "3.45"), ("2024-07", "3.35"), ("2024-10", "3.10"),
                      ("2025-05", "3.00")]


def domain_lpr_months() -> dict[str, str]:
    """Every month 2019-08..2025-05 with its rate as a decimal string: a month without a change
    keeps the previous value."""
    from decimal import Decimal
    changes, months, percent = dict(DOMAIN_LPR_CHANGES), {}, None
    for year in range(2019, 2026):
        for month in range(1, 13):
            key = f"{year}-{month:02d}"
            if "2019-08" <= key <= "2025-05":
                percent = changes.get(key, percent)
                months[key] = str(Decimal(percent) / 100)
    return months


def test_the_whole_seeded_lpr_table_is_domain_md(client, engine):
    expected = domain_lpr_months()
    assert len(expected) == 70 and expected["2019-10"] == "0.042" and expected["2021-11"] == "0.0385"
    items = client.get("/v1/reference-rates/LPR1Y", headers=auth("fiscal")).get_json()["items"]
    from decimal import Decimal
    seeded = {i["month"]: Decimal(i["rate"]) for i in items if i["month"] <= "2025-05"}
    assert seeded == {month: Decimal(rate) for month, rate in expected.items()}
    for month, rate in expected.items():  # and one by one, as a subsidy run reads them
        shown = client.get(f"/v1/reference-rates/LPR1Y/{month}", headers=auth("bank")).get_json()["rate"]
        assert Decimal(shown) == Decimal(rate), month


def test_recording_later_months(client, fresh_engine):
    from api import create_app
    client = create_app(fresh_engine).test_client()
    fiscal = auth("fiscal")
    assert_problem(client.get("/v1/reference-rates/LPR1Y/2025-06", headers=fiscal), 404)
    made = client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-06", "rate": "0.0300"}, headers=fiscal)
    assert made.status_code == 201
    same = client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-06", "rate": "0.03"}, headers=fiscal)
    assert same.status_code == 200
    assert_problem(client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-06", "rate": "0.0290"}, headers=fiscal), 409)
    assert_problem(client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-13", "rate": "0.03"}, headers=fiscal), 422)
    assert_problem(client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-07", "rate": "3.0"}, headers=fiscal), 422)
    assert_problem(client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-07", "rate": "0.03"}, headers=auth("bank")), 403)
    assert_problem(client.get("/v1/reference-rates/SHIBOR/2025-06", headers=fiscal), 404)
    assert client.get("/v1/reference-rates/LPR1Y/2025-06", headers=fiscal).get_json()["rate"] == "0.0300"


# --- programmes -----------------------------------------------------------------------------

def program_body(region="440100", **over):
    body = {"code": unique("p").lower(), "name": "Scheme", "region": region, "effective_from": "2023-01-01",
            "effective_to": None, "terms": api_terms(**program_parties(region))}
    body.update(over)
    return body


def test_create_and_read_programme_with_typed_terms(client, engine):
    fiscal = auth("fiscal", InstitutionFactory(kind="fiscal", region="440100").code)
    body = program_body()
    made = client.post("/v1/programs", json=body, headers=fiscal)
    assert made.status_code == 201, made.get_json()
    shown = client.get(f"/v1/programs/{body['code']}", headers=auth("bank")).get_json()
    [version] = shown["versions"]
    assert version["version"] == 1 and version["effective_from"] == "2023-01-01"
    parties = version["terms"]["parties"]
    assert [p["share"] for p in parties] == ["0.30", "0.50"]
    assert parties[1]["share_tiers"] == [{"up_to": "5000000.00", "share": "0.50"}, {"up_to": None, "share": "0.40"}]
    assert version["terms"]["coverage"]["max_covered_principal"] == "10000000.00"
    assert_problem(client.post("/v1/programs", json=body, headers=fiscal), 409)


def test_programme_validation(client, engine):
    admin = auth("admin")
    terms = api_terms(**program_parties())
    cases = {
        "terms.parties[0].institution": {**terms, "parties": [{**terms["parties"][0], "institution": "NOBODY"}]},
        "terms.parties[0].share": {**terms, "parties": [{**terms["parties"][0], "share": "1.5"}]},
        "terms.parties": {**terms, "parties": [{**terms["parties"][0], "share": "0.60"}, terms["parties"][1]]},
        "terms.parties[1].share_tiers[1].up_to": {**terms, "parties": [terms["parties"][0], {
            **terms["parties"][1], "share_tiers": [{"up_to": "5000000.00", "share": "0.5"},
                                                   {"up_to": "1000000.00", "share": "0.4"},
                                                   {"up_to": None, "share": "0.3"}]}]},
    }
    for field, bad_terms in cases.items():
        problem = assert_problem(client.post("/v1/programs", json=program_body(terms=bad_terms), headers=admin), 422)
        assert field in [e["field"] for e in problem["errors"]], (field, problem)
    bank_code = InstitutionFactory(kind="bank").code
    wrong_kind = {**terms, "parties": [{**terms["parties"][0], "institution": bank_code}]}
    problem = assert_problem(client.post("/v1/programs", json=program_body(terms=wrong_kind), headers=admin), 422)
    assert "not an insurer" in problem["errors"][0]["message"]


def test_fiscal_bureau_manages_only_its_region(client, engine):
    fiscal_sc = auth("fiscal", InstitutionFactory(kind="fiscal", region="510000").code)
    assert_problem(client.post("/v1/programs", json=program_body(region="440100"), headers=fiscal_sc), 403)
    assert client.post("/v1/programs", json=program_body(region="510100"), headers=fiscal_sc).status_code == 201
    assert_problem(client.post("/v1/programs", json=program_body(), headers=auth("bank")), 403)


def test_versions_append_only(client, engine):
    program = ProgramFactory()
    admin = auth("admin")
    url = f"/v1/programs/{program.code}/versions"
    terms = program.versions[0].terms
    from ledger.terms import terms_to_dict
    assert_problem(client.post(url, json={"effective_from": "2018-12-31", "terms": terms_to_dict(terms)}, headers=admin), 422)
    made = client.post(url, json={"effective_from": "2024-01-01", "effective_to": "2026-12-31",
                                  "terms": terms_to_dict(terms)}, headers=admin).get_json()
    assert [(v["version"], v["effective_from"], v["effective_to"]) for v in made["versions"]] == [
        (1, "2019-01-01", "2023-12-31"), (2, "2024-01-01", "2026-12-31")]
    assert made["effective_to"] == "2026-12-31"


def test_fund_contributions_and_statement(client, engine):
    fiscal_inst = InstitutionFactory(kind="fiscal", region="440000")
    fiscal = auth("fiscal", fiscal_inst.code)
    program = ProgramFactory(region="440100")
    pool_code = program.versions[0].terms.parties[1].institution
    url = f"/v1/programs/{program.code}/fund-contributions"

    def key(headers):
        return {**headers, "Idempotency-Key": unique("c")}
    first = client.post(url, json={"amount": "30000000.00", "on": "2025-01-05"}, headers=key(fiscal))
    assert first.status_code == 201 and first.get_json()["balance"] == "30000000.00"
    second = client.post(url, json={"amount": "500", "on": "2025-07-01"}, headers=key(auth("pool", pool_code)))
    assert second.get_json()["balance"] == "30000500.00"
    assert_problem(client.post(url, json={"amount": "1", "on": "2025-07-01"}, headers=key(auth("pool"))), 403)
    assert_problem(client.post(url, json={"amount": "0", "on": "2025-07-01"}, headers=key(fiscal)), 422)
    fund = client.get(f"/v1/programs/{program.code}/fund", headers=fiscal).get_json()
    assert fund["balance"] == "30000500.00"
    assert [(m["amount"], m["balance"]) for m in fund["movements"]] == [("30000000.00", "30000000.00"),
                                                                        ("500.00", "30000500.00")]
    early = client.get(f"/v1/programs/{program.code}/fund?as_of=2025-06-30", headers=auth("auditor")).get_json()
    assert early["balance"] == "30000000.00"
    assert_problem(client.get(f"/v1/programs/{program.code}/fund", headers=auth("bank")), 403)


# --- inputs that only look right (issue 9: parsers fixed on main; pinned here at the API) -------

def test_a_month_with_a_newline_is_not_recorded_as_that_month(client, fresh_engine):
    """'2025-06\\n' was accepted (a 500 on PostgreSQL: it overflowed varchar(7)), after which
    '2025-06' at another rate was accepted too."""
    from api import create_app
    client = create_app(fresh_engine).test_client()
    fiscal = auth("fiscal")
    for month in ("2025-06\n", "２０２５-06", "2025-6", "2025-06-01"):
        problem = assert_problem(client.post("/v1/reference-rates/LPR1Y", json={"month": month, "rate": "0.0300"},
                                             headers=fiscal), 422)
        assert problem["errors"][0]["field"] == "month"
    assert client.post("/v1/reference-rates/LPR1Y", json={"month": "2025-06", "rate": "0.0290"},
                       headers=fiscal).status_code == 201
    assert_problem(client.get("/v1/reference-rates/LPR1Y/2025-06%0A", headers=fiscal), 422)


# --- fund contributions: money moves, so a key is required; the date is a day the fund existed --

def test_fund_contributions_need_an_idempotency_key(client, engine):
    program = ProgramFactory(region="440100")
    fiscal = auth("fiscal", InstitutionFactory(kind="fiscal", region="440000").code)
    url = f"/v1/programs/{program.code}/fund-contributions"
    assert_problem(client.post(url, json={"amount": "100.00", "on": "2025-01-05"}, headers=fiscal), 400)
    assert client.get(f"/v1/programs/{program.code}/fund", headers=fiscal).get_json()["movements"] == []
    headers = {**fiscal, "Idempotency-Key": unique("c")}
    first = client.post(url, json={"amount": "100.00", "on": "2025-01-05"}, headers=headers)
    again = client.post(url, json={"amount": "100.00", "on": "2025-01-05"}, headers=headers)
    assert first.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/v1/programs/{program.code}/fund", headers=fiscal).get_json()["balance"] == "100.00"


@pytest.mark.parametrize("on, message", [
    ("0011-07-11", "year"), ("9999-12-31", "year"), ("2999-12-31", "future"), ("tomorrow", "future"),
    ("2018-12-31", "before the programme exists"), ("2025-W01-1", "YYYY-MM-DD"), ("2025-01-05\n", "YYYY-MM-DD"),
])
def test_a_contribution_is_dated_a_day_the_fund_existed(client, engine, on, message):
    from datetime import timedelta

    from ledger.dates import today
    program = ProgramFactory(region="440100", effective_from=__import__("datetime").date(2019, 1, 1))
    fiscal = {**auth("fiscal", InstitutionFactory(kind="fiscal", region="440000").code), "Idempotency-Key": unique("c")}
    on = (today() + timedelta(days=1)).isoformat() if on == "tomorrow" else on
    problem = assert_problem(client.post(f"/v1/programs/{program.code}/fund-contributions",
                                         json={"amount": "100.00", "on": on}, headers=fiscal), 422)
    assert problem["errors"][0]["field"] == "on" and message in problem["errors"][0]["message"]


def test_every_money_moving_post_requires_an_idempotency_key_in_openapi(client, engine):
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/loans", "/v1/loans/batch", "/v1/loans/{loan_id}/repayments", "/v1/loans/{loan_id}/fees",
                 "/v1/programs/{code}/fund-contributions"):
        post = spec["paths"][path]["post"]
        [header] = [p for p in post["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["required"] is True and "400" in post["responses"], path
    [tag] = [t for t in spec["tags"] if t["name"] == "borrowers"]
    assert "reads and changes only the records its bank posted" in tag["description"]
    assert {"as_of", "bank"} <= set(spec["components"]["schemas"]["BorrowerIn"]["properties"])
    assert "borrower_facts_as_of" in spec["components"]["schemas"]["LoanDetailOut"]["properties"]
