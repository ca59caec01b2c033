"""`/v1/targets`, `/v1/targets/series` and `/v1/target-sets` through HTTP, as a fiscal bureau reads them."""
import itertools

import pytest

from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, make_key, make_loan, patent_number, unique


_cities = itertools.count(1)


@pytest.fixture
def city_book(engine):
    """A city of province 72 (used by no other test): 2024 lends 100.00, 2025 lends 120.00 in two
    loans of which one is to a private SME (the other to a large firm), three pledges in 2025."""
    program = ProgramFactory(region="720000")
    bank = InstitutionFactory(kind="bank")
    city = f"72{next(_cities):02d}00"
    district = city[:4] + "01"

    def lend(principal, start, pledges=1, **facts):
        code = BorrowerFactory(bank_id=bank.id, region=district, **facts).facts.credit_code
        make_loan(bank.id, code, program.code, principal=principal, start_date=start,
                  maturity_date=f"{int(start[:4]) + 1}{start[4:]}", insured_amount="10.00",
                  pledges=[{"kind": "patent", "number": patent_number(), "registration_no": unique("Y"),
                            "registered_on": f"{start[:4]}-01-0{k + 1}"} for k in range(pledges)])
    lend("100.00", "2024-03-01")
    lend("20.00", "2025-03-01", pledges=2)
    lend("100.00", "2025-04-01", employees=2000, revenue_fen=500_000_000_00)
    fiscal = make_key("fiscal", InstitutionFactory(kind="fiscal", region=city).code)
    return city, {"Authorization": f"Bearer {fiscal}"}


def test_a_region_year_with_growth_shares_and_exact_checks(client, city_book):
    city, headers = city_book
    body = client.get(f"/v1/targets?region={city}&year=2025", headers=headers).get_json()
    assert (body["amount"], body["count"], body["pledge_count"], body["insured_amount"]) == ("120.00", 2, 3, "20.00")
    assert (body["enterprise_count"], body["sme_enterprise_count"], body["sme_count"]) == (2, 1, 1)
    assert (body["sme_share_count"], body["sme_share_amount"], body["inclusive_share_count"]) == (
        "0.500000", "0.166667", "1.000000")
    assert body["previous"]["amount"] == "100.00" and body["growth"]["amount"] == "0.200000"
    assert body["growth"]["count"] == "1.000000"
    checks = {c["metric"]: c for c in body["checks"]}
    # 20.00% growth does not exceed 20%; an SME share of exactly half does not exceed half.
    assert checks["amount_growth"] == {"metric": "amount_growth", "comparator": ">", "threshold": "0.200000",
                                       "value": "0.200000", "pass": False}
    assert checks["sme_share_count"]["pass"] is False


def test_growth_from_an_empty_year_is_null_and_the_series_runs_year_by_year(client, city_book):
    city, headers = city_book
    body = client.get(f"/v1/targets/series?region={city}&from=2023&to=2025", headers=headers).get_json()
    assert [(row["year"], row["amount"], row["growth"]["amount"]) for row in body["items"]] == [
        (2023, "0.00", None), (2024, "100.00", None), (2025, "120.00", "0.200000")]
    start = client.get(f"/v1/targets?region={city}&year=2024&basis=start&target_set=key-city-2019",
                       headers=headers).get_json()
    assert start["amount"] == "100.00" and [c["metric"] for c in start["checks"]] == [
        "amount_growth", "pledge_count_growth", "insured_amount_growth"]


def test_the_target_sets_are_listed_with_their_comparators(client, city_book):
    _, headers = city_book
    sets = client.get("/v1/target-sets", headers=headers).get_json()["items"]
    assert {s["code"]: [(c["metric"], c["comparator"], c["threshold"]) for c in s["checks"]] for s in sets}[
        "key-city-2018"] == [("amount_growth", ">", "0.200000"), ("sme_share_count", ">", "0.500000")]


def test_an_admin_adds_a_target_set_and_the_checks_follow_it(client, city_book):
    city, headers = city_book
    admin = {"Authorization": f"Bearer {make_key('admin')}"}
    code = unique("policy").lower()
    body = {"code": code, "checks": [{"metric": "count_growth", "comparator": ">=", "threshold": "1"},
                                     {"metric": "inclusive_share_count", "comparator": ">", "threshold": "0.9999"}]}
    created = client.post("/v1/target-sets", json=body, headers=admin)
    assert created.status_code == 201 and created.get_json()["checks"][0]["threshold"] == "1.000000"
    checks = client.get(f"/v1/targets?region={city}&year=2025&target_set={code}", headers=headers).get_json()["checks"]
    assert [(c["metric"], c["value"], c["pass"]) for c in checks] == [
        ("count_growth", "1.000000", True), ("inclusive_share_count", "1.000000", True)]
    again = client.post("/v1/target-sets", json={**body, "checks": body["checks"][:1]}, headers=admin)
    assert again.status_code == 409 and "never change" in again.get_json()["detail"]


def test_the_answer_comes_from_the_snapshot_and_fresh_sees_a_later_loan(client, city_book, engine):
    from jobs.tasks import snapshot_targets
    from ledger.targets import take_snapshot
    from tests.factories import tx
    city, headers = city_book
    tx(take_snapshot)
    held = client.get(f"/v1/targets?region={city}&year=2025", headers=headers).get_json()
    assert held["snapshot_taken_at"] and held["amount"] == "120.00" and held["growth"]["amount"] == "0.200000"
    bank = InstitutionFactory(kind="bank")
    code = BorrowerFactory(bank_id=bank.id, region=city[:4] + "01").facts.credit_code
    program = ProgramFactory(region="720000")
    make_loan(bank.id, code, program.code, principal="5.00", start_date="2025-05-01", maturity_date="2026-05-01",
              pledges=[{"kind": "patent", "number": patent_number(), "registration_no": unique("Y"),
                        "registered_on": "2025-04-01"}])
    assert client.get(f"/v1/targets?region={city}&year=2025", headers=headers).get_json()["amount"] == "120.00"
    fresh = client.get(f"/v1/targets?region={city}&year=2025&fresh=true", headers=headers).get_json()
    assert fresh["snapshot_taken_at"] is None and (fresh["amount"], fresh["count"]) == ("125.00", 3)
    # The series likewise: the snapshot's figures (every year it holds), or now with fresh=true.
    series = f"/v1/targets/series?region={city}&from=2024&to=2025"
    held_series = client.get(series, headers=headers).get_json()
    assert held_series["snapshot_taken_at"] == held["snapshot_taken_at"]
    assert [row["amount"] for row in held_series["items"]] == ["100.00", "120.00"]
    fresh_series = client.get(series + "&fresh=true", headers=headers).get_json()
    assert fresh_series["snapshot_taken_at"] is None
    assert [row["amount"] for row in fresh_series["items"]] == ["100.00", "125.00"]
    # The nightly job: once per day, whichever scheduler gets there first.
    day = __import__("datetime").date(2099, 1, 1)
    assert snapshot_targets(engine, today=day) is True and snapshot_targets(engine, today=day) is False
    assert client.get(f"/v1/targets?region={city}&year=2025", headers=headers).get_json()["amount"] == "125.00"
