"""Borrowers are each bank's own customer file (API.md), facts are dated, and a loan freezes the
lending bank's facts in force on its start date."""
from datetime import timedelta

import pytest

from ledger.dates import today as business_today
from tests.api.test_skeleton import assert_problem
from tests.factories import InstitutionFactory, ProgramFactory, auth, credit_code, loan_body, unique


def facts(code, **over):
    body = {"credit_code": code, "name": "Minjiang Optics", "region": "440106", "industry": "industry",
            "employees": 33, "revenue": "9000000.00", "total_assets": "6000000.00", "private": True,
            "as_of": "2024-12-31"}
    body.update(over)
    return body


class Bank:
    def __init__(self, region="440100"):
        self.code = InstitutionFactory(kind="bank", region=region).code
        self.headers = auth("bank", self.code)

    def post(self, client, body):
        return client.post("/v1/borrowers", json=body, headers=self.headers)

    def get(self, client, code):
        return client.get(f"/v1/borrowers/{code}", headers=self.headers)

    def lend(self, client, code, program, **over):
        return client.post("/v1/loans", json=loan_body(code, program, **over),
                           headers={**self.headers, "Idempotency-Key": unique("k")})


@pytest.fixture
def two_banks(engine):
    return Bank(), Bank()


def test_another_bank_cannot_read_or_overwrite_a_borrower(client, two_banks):
    """The reported attack: bank A posting a code only bank B lends to changed B's borrower."""
    a, b = two_banks
    code = credit_code()
    program = ProgramFactory()
    assert b.post(client, facts(code)).status_code == 201
    assert_problem(a.get(client, code), 404)
    hostile = a.post(client, facts(code, name="Renamed", employees=5000, revenue="900000000.00"))
    assert hostile.status_code == 201 and hostile.get_json()["bank"] == a.code  # A's own record
    mine = b.get(client, code).get_json()
    assert (mine["bank"], mine["name"], mine["employees"], mine["sme"]) == (b.code, "Minjiang Optics", 33, True)
    # each bank's loans freeze its own record's facts
    b_loan = b.lend(client, code, program.code).get_json()
    a_loan = a.lend(client, code, program.code).get_json()
    assert (b_loan["borrower_size_class"], b_loan["borrower_sme"]) == ("small", True)
    assert (a_loan["borrower_size_class"], a_loan["borrower_sme"]) == ("large", False)
    assert a_loan["borrower"] == b_loan["borrower"] == code  # one enterprise, one credit code


def test_a_bank_lends_only_to_borrowers_in_its_own_file(client, two_banks):
    a, b = two_banks
    code = credit_code()
    b.post(client, facts(code))
    problem = assert_problem(a.lend(client, code, ProgramFactory().code), 422)
    assert problem["errors"][0]["field"] == "borrower" and "not registered" in problem["errors"][0]["message"]


def test_regional_readers_see_every_banks_record_and_choose_one(client, two_banks):
    a, b = two_banks
    code = credit_code()
    a.post(client, facts(code, employees=40))
    b.post(client, facts(code, employees=60))
    fiscal = auth("fiscal", InstitutionFactory(kind="fiscal", region="440100").code)
    several = assert_problem(client.get(f"/v1/borrowers/{code}", headers=fiscal), 422)
    assert several["errors"][0]["field"] == "bank" and a.code in several["detail"] and b.code in several["detail"]
    for bank, employees in ((a, 40), (b, 60)):
        shown = client.get(f"/v1/borrowers/{code}?bank={bank.code}", headers=fiscal).get_json()
        assert (shown["bank"], shown["employees"]) == (bank.code, employees)
    national = client.get(f"/v1/borrowers/{code}?bank={a.code}", headers=auth("auditor")).get_json()
    assert national["employees"] == 40
    assert client.get(f"/v1/borrowers/{code}?bank={b.code}", headers=auth("admin")).get_json()["employees"] == 60
    elsewhere = auth("auditor", InstitutionFactory(kind="auditor", region="510100").code)
    assert_problem(client.get(f"/v1/borrowers/{code}?bank={a.code}", headers=elsewhere), 404)
    # a bank's ?bank= never reaches past its own file
    assert_problem(client.get(f"/v1/borrowers/{code}?bank={b.code}", headers=a.headers), 404)
    assert client.get(f"/v1/borrowers/{code}?bank={a.code}", headers=a.headers).get_json()["employees"] == 40


def test_programme_parties_read_the_borrowers_of_their_programmes_loans(client, two_banks):
    a, _ = two_banks
    code, other = credit_code(), credit_code()
    program = ProgramFactory()
    a.post(client, facts(code))
    a.post(client, facts(other))
    assert a.lend(client, code, program.code).status_code == 201
    insurer = auth("insurer", program.versions[0].terms.parties[0].institution)
    assert client.get(f"/v1/borrowers/{code}", headers=insurer).get_json()["bank"] == a.code
    assert_problem(client.get(f"/v1/borrowers/{other}", headers=insurer), 404)  # no loan of its programmes
    assert_problem(client.get(f"/v1/borrowers/{code}", headers=auth("insurer")), 404)  # not a party


def test_admin_names_the_bank_and_banks_may_not(client, two_banks):
    a, _ = two_banks
    admin = auth("admin")
    code = credit_code()
    problem = assert_problem(client.post("/v1/borrowers", json=facts(code), headers=admin), 422)
    assert problem["errors"][0]["field"] == "bank"
    insurer = InstitutionFactory(kind="insurer").code
    problem = assert_problem(client.post("/v1/borrowers", json=facts(code, bank=insurer), headers=admin), 422)
    assert "not a bank" in problem["errors"][0]["message"]
    assert_problem(client.post("/v1/borrowers", json=facts(code, bank="NO-SUCH-BANK"), headers=admin), 422)
    made = client.post("/v1/borrowers", json=facts(code, bank=a.code), headers=admin)
    assert made.status_code == 201 and made.get_json()["bank"] == a.code
    assert a.get(client, code).get_json()["id"] == made.get_json()["id"]
    problem = assert_problem(a.post(client, facts(credit_code(), bank=a.code)), 422)
    assert problem["errors"][0]["field"] == "bank"


@pytest.mark.parametrize("as_of, message", [
    ("tomorrow", "future"), ("2011-06-17", "no SME size standard"), ("2025-W01-1", "YYYY-MM-DD"),
    ("2025-01-01\n", "YYYY-MM-DD"), ("20250101", "YYYY-MM-DD"),
])
def test_as_of_is_a_real_day_that_has_been(client, two_banks, as_of, message):
    a, _ = two_banks
    if as_of == "tomorrow":
        as_of = (business_today() + timedelta(days=1)).isoformat()
    problem = assert_problem(a.post(client, facts(credit_code(), as_of=as_of)), 422)
    assert problem["errors"][0]["field"] == "as_of" and message in problem["errors"][0]["message"]


def test_as_of_defaults_to_today(client, two_banks):
    a, _ = two_banks
    body = facts(credit_code())
    del body["as_of"]
    assert a.post(client, body).get_json()["as_of"] == business_today().isoformat()


def test_a_loan_freezes_the_facts_in_force_on_its_start_date(client, two_banks):
    """Backdated and imported loans freeze the facts of their own date, not today's."""
    a, _ = two_banks
    code = credit_code()
    program = ProgramFactory(region="440100")
    a.post(client, facts(code, as_of="2024-01-31"))  # small, private, Tianhe
    grown = facts(code, as_of="2025-06-30", employees=1500, revenue="500000000.00", private=False)
    assert a.post(client, grown).get_json()["size_class"] == "large"
    # an older statement arrives late: kept in the history, the current facts stay the newest
    late = a.post(client, facts(code, as_of="2024-09-30", employees=320, revenue="25000000.00"))
    assert late.status_code == 200 and (late.get_json()["as_of"], late.get_json()["employees"]) == ("2025-06-30", 1500)

    def loan(start):
        made = a.lend(client, code, program.code, start_date=start, maturity_date="2026-12-31")
        assert made.status_code == 201, made.get_json()
        body = made.get_json()
        return body["borrower_facts_as_of"], body["borrower_size_class"], body["borrower_private"]
    assert loan("2024-06-01") == ("2024-01-31", "small", True)
    assert loan("2024-12-01") == ("2024-09-30", "medium", True)   # the late statement, in force then
    assert loan("2025-06-30") == ("2025-06-30", "large", False)   # in force from its own day
    assert loan("2023-03-01") == ("2024-01-31", "small", True)    # before any facts: the first ones


def test_the_frozen_region_decides_coverage(client, two_banks):
    a, _ = two_banks
    code = credit_code(region="440106")
    program = ProgramFactory(region="440100")
    a.post(client, facts(code, as_of="2024-01-31"))
    a.post(client, facts(code, as_of="2025-04-30", region="510104"))  # moved to Chengdu
    assert a.lend(client, code, program.code, start_date="2025-03-01").status_code == 201
    problem = assert_problem(a.lend(client, code, program.code, start_date="2025-05-02",
                                    maturity_date="2026-05-01"), 422)
    assert "does not cover the borrower's region 510104" in problem["errors"][0]["message"]


@pytest.mark.parametrize("field, value", [("revenue", "100.00\n"), ("revenue", "１００.00"),
                                          ("total_assets", "٣٠٠"), ("employees", True)])
def test_facts_refuse_what_only_looks_like_a_number(client, two_banks, field, value):
    a, _ = two_banks
    problem = assert_problem(a.post(client, facts(credit_code(), **{field: value})), 422)
    assert problem["errors"][0]["field"] == field
