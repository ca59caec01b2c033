"""Regressions for the defects found when the API was fuzzed and probed (contract issue):
each test names the defect it keeps fixed. Document-level defects (invalid 200 of the CSV
lists, `after` defaulting to "0", no `required` fields) are in tests/api/test_openapi.py.
"""
import csv
import io
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.test_skeleton import assert_problem
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, auth,
                             make_loan, unique)

CSV_LISTS = ["/v1/journal", "/v1/loans", "/v1/accounts", "/v1/institutions"]


@pytest.fixture
def two_of_everything(engine):
    """At least two rows in each CSV list, so that `limit=1` has a next page."""
    bank = InstitutionFactory(kind="bank")
    program = ProgramFactory()
    for _ in range(2):
        make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, program.code)
    return bank


# --- CSV: the Link header ------------------------------------------------------------------------

@pytest.mark.parametrize("path", CSV_LISTS)
def test_a_line_break_in_a_query_value_is_not_a_500(client, two_of_everything, path):
    """Defect: ?limit=1&x=%0d%0aX:1 with Accept: text/csv raised 'Header values must not contain
    newline characters'."""
    response = client.get(f"{path}?limit=1&x=%0d%0aX:1", headers={**auth("admin"), "Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "\r" not in response.headers["Link"] and "\n" not in response.headers["Link"]


@pytest.mark.parametrize("path", CSV_LISTS)
def test_the_link_carries_only_known_parameters_encoded(client, two_of_everything, path):
    """Defect: x=a%26admin%3D1%20%3E was copied as `&x=a&admin=1 >` into the Link header."""
    response = client.get(f"{path}?limit=1&x=a%26admin%3D1%20%3E", headers={**auth("admin"), "Accept": "text/csv"})
    link = response.headers["Link"]
    target = link[link.index("<") + 1:link.index(">")]
    assert link == f'<{target}>; rel="next"' and " " not in target
    query = parse_qs(urlsplit(target).query)
    assert query == {"limit": ["1"], "after": [response.headers["X-Next-Cursor"]]}


def test_known_parameters_keep_their_values_encoded_in_the_link(client, engine):
    region = "65" + unique("")[-4:].translate(str.maketrans("ABCDEF", "123456"))[:4]
    for _ in range(2):
        InstitutionFactory(region=region, kind="bank")
    response = client.get(f"/v1/institutions?limit=1&kind=bank&region={region}&x=1",
                          headers={**auth("auditor"), "Accept": "text/csv"})
    target = response.headers["Link"].split(">")[0][1:]
    assert parse_qs(urlsplit(target).query) == {"limit": ["1"], "kind": ["bank"], "region": [region],
                                                "after": [response.headers["X-Next-Cursor"]]}
    following = client.get(target, headers={**auth("auditor"), "Accept": "text/csv"})
    assert following.status_code == 200 and len(list(csv.DictReader(io.StringIO(following.get_data(as_text=True))))) == 1


def test_csv_booleans_are_written_as_in_json(client, engine):
    """Defect: CSV booleans were True/False while JSON says true/false."""
    bank = InstitutionFactory(kind="bank")
    make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code)
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/v1/loans", headers={**auth("bank", bank.code), "Accept": "text/csv"}).get_data(as_text=True))))
    assert rows and {row["borrower_sme"] for row in rows} <= {"true", "false"}
    assert {row["borrower_private"] for row in rows} == {"true"}


# --- programmes: who reads a fund ----------------------------------------------------------------

def test_a_pool_reads_only_the_fund_of_its_own_programmes(client, engine):
    """Defect (leak): a pool key read any programme's fund statement (200 with balance and
    movements) of a programme it is no party to."""
    mine, theirs = ProgramFactory(), ProgramFactory()
    pool = auth("pool", mine.versions[0].terms.parties[1].institution)
    assert client.get(f"/v1/programs/{mine.code}/fund", headers=pool).status_code == 200
    problem = assert_problem(client.get(f"/v1/programs/{theirs.code}/fund", headers=pool), 404)
    assert "balance" not in problem
    insurer = auth("insurer", mine.versions[0].terms.parties[0].institution)
    assert client.get(f"/v1/programs/{mine.code}/fund", headers=insurer).status_code == 200
    assert_problem(client.get(f"/v1/programs/{theirs.code}/fund", headers=insurer), 404)


def test_a_city_bureau_participates_in_its_provinces_programme_consistently(client, engine):
    """Defect: a city bureau read GET /v1/programs/gd-ip-pledge (200) but its /fund was a 404
    saying the programme 'does not exist', though the demo books that bureau as the fund's
    contributor. Rule: a fiscal or auditor key participates in a programme whose region covers
    its own or lies within it, in every programme endpoint."""
    province = ProgramFactory(region="440000")
    city, district = ProgramFactory(region="440100"), ProgramFactory(region="440106")
    elsewhere = ProgramFactory(region="510100")
    city_bureau = auth("fiscal", InstitutionFactory(kind="fiscal", region="440100").code)
    listed = {p["code"] for p in client.get("/v1/programs?limit=1000", headers=city_bureau).get_json()["items"]}
    assert {province.code, city.code, district.code} <= listed and elsewhere.code not in listed
    for program in (province, city, district):
        assert client.get(f"/v1/programs/{program.code}", headers=city_bureau).status_code == 200
        assert client.get(f"/v1/programs/{program.code}/fund", headers=city_bureau).status_code == 200
        contributed = client.post(f"/v1/programs/{program.code}/fund-contributions",
                                  json={"amount": "1000.00", "on": "2025-01-05"},
                                  headers={**city_bureau, "Idempotency-Key": unique("c")})
        assert contributed.status_code == 201
    for path in ("", "/fund"):
        assert_problem(client.get(f"/v1/programs/{elsewhere.code}{path}", headers=city_bureau), 404)
    assert_problem(client.post(f"/v1/programs/{elsewhere.code}/fund-contributions",
                               json={"amount": "1.00", "on": "2025-01-05"},
                               headers={**city_bureau, "Idempotency-Key": unique("c")}), 404)
    # It versions only programmes within its own region.
    terms = api_terms(**_parties_of(city))
    assert_problem(client.post(f"/v1/programs/{province.code}/versions",
                               json={"effective_from": "2030-01-01", "terms": terms}, headers=city_bureau), 403)
    assert client.post(f"/v1/programs/{district.code}/versions", json={"effective_from": "2030-01-01", "terms": terms},
                       headers=city_bureau).status_code == 201


def test_a_regional_auditor_sees_the_programmes_of_its_region(client, engine):
    near, far = ProgramFactory(region="440100"), ProgramFactory(region="510100")
    auditor = auth("auditor", InstitutionFactory(kind="auditor", region="440106").code)
    assert client.get(f"/v1/programs/{near.code}/fund", headers=auditor).status_code == 200
    assert_problem(client.get(f"/v1/programs/{far.code}", headers=auditor), 404)
    national = auth("auditor", InstitutionFactory(kind="auditor", region="000000").code)
    assert client.get(f"/v1/programs/{far.code}/fund", headers=national).status_code == 200


def _parties_of(program) -> dict:
    parties = program.versions[0].terms.parties
    return {"insurer": parties[0].institution, "pool": parties[1].institution,
            "treasury": parties[1].recoveries_to}


# --- problems: one type scheme, plain grammar ----------------------------------------------------

@pytest.mark.parametrize("method, path, body, status, kind", [
    ("get", "/v1/nothing-here", None, 404, "not-found"),
    ("get", "/no-such-page", None, 404, "not-found"),
    ("delete", "/v1/institutions", None, 405, "method-not-allowed"),
    ("post", "/v1/institutions", "x" * (16 * 1024 * 1024 + 1), 413, "request-too-large"),
    ("post", "/v1/institutions", "code=x", 415, "unsupported-media-type"),
])
def test_every_error_has_a_urn_problem_type(client, engine, method, path, body, status, kind):
    """Defect: `type` was about:blank on some 403/404/405 (abort() in api/programs.py, unknown
    routes) and urn:ipledger:problem:* elsewhere."""
    content_type = "text/plain" if status == 415 else "application/json"
    response = client.open(path, method=method.upper(), data=body, content_type=content_type, headers=auth("admin"))
    assert assert_problem(response, status)["type"] == f"urn:ipledger:problem:{kind}"


def test_an_abort_in_a_view_is_a_urn_problem(client, engine):
    bureau = auth("fiscal", InstitutionFactory(kind="fiscal", region="510000").code)
    body = {"code": unique("p").lower(), "name": "x", "region": "440100", "effective_from": "2023-01-01",
            "terms": api_terms(**_parties_of(ProgramFactory()))}
    problem = assert_problem(client.post("/v1/programs", json=body, headers=bureau), 403)
    assert problem["type"] == "urn:ipledger:problem:forbidden"


@pytest.mark.parametrize("role, article", [("auditor", "An auditor"), ("admin", "An admin"), ("bank", "A bank")])
def test_forbidden_says_a_or_an(client, engine, role, article):
    """Defect: 'A auditor key', 'A admin key'."""
    path, body = ("/v1/loans/batch", {"loans": []}) if role == "admin" else ("/v1/institutions", {})
    problem = assert_problem(client.post(path, json=body, headers=auth(role)), 403)
    assert problem["detail"].startswith(f"{article} key may not do this")


def test_a_key_for_an_institution_of_another_kind_says_an(engine):
    """Defect: 'is a auditor'."""
    from ledger.errors import Invalid
    from ledger.keys import create_key
    from tests.factories import tx
    auditor = InstitutionFactory(kind="auditor").code
    with pytest.raises(Invalid) as refused:
        tx(lambda conn: create_key(conn, "bank", auditor))
    assert f"{auditor} is an auditor" in refused.value.errors[0].message
