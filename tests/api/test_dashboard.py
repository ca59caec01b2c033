"""`/dashboard` through the Flask test client on both databases: sign-in with a key into a signed
session cookie, CSRF on its forms, sign-out, a revoked or tampered session signed out, and what
each role sees (tests/dashboard_world.py: a province of its own)."""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from api.settings import session_config
from ledger.keys import revoke_key
from tests.dashboard_world import build, done_stress_run, queue_stress_run
from tests.factories import make_key, tx

COOKIE = "ipledger_session"


@pytest.fixture(scope="module")
def world(engine):
    from tests import factories
    factories.bind(engine)
    return build()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, secret: str):
    form = client.get("/dashboard/sign-in", follow_redirects=True)  # signed in already: the page's token
    return client.post("/dashboard/sign-in", data={"csrf_token": _csrf(form.get_data(as_text=True)),
                                                   "api_key": secret})


def page(client, query: str = "") -> tuple[int, str]:
    response = client.get(f"/dashboard{query}")
    return response.status_code, response.get_data(as_text=True)


def _cells(html: str, field: str) -> list[str]:
    return re.findall(rf'data-field="{field}"[^>]*>([^<]*)<', html)


def test_without_a_session_the_dashboard_sends_you_to_sign_in(client):
    response = client.get("/dashboard")
    assert response.status_code == 303 and response.headers["Location"].endswith("/dashboard/sign-in")
    form = client.get("/dashboard/sign-in")
    assert form.status_code == 200 and 'name="api_key"' in form.get_data(as_text=True)
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]
    assert form.headers["Cache-Control"] == "no-store"


def test_a_fiscal_key_signs_in_sees_its_city_and_signs_out(client, world):
    response = sign_in(client, world.keys["fiscal"])
    assert response.status_code == 303 and response.headers["Location"].endswith("/dashboard")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/dashboard" in cookie
    assert world.keys["fiscal"] not in cookie  # the cookie names the key; it never holds its secret
    status, html = page(client, f"?region={world.city}&year=2025")
    assert status == 200 and 'id="chart-amount"' in html
    assert re.findall(r'<tr data-year="(\d+)"', html) == ["2024", "2025"]
    assert _cells(html, "amount") == ["5000000.00", "6000000.00", "2500000.00", "1500000.00", "1000000.00"]  # years, losses
    assert _cells(html, "count") == ["2", "3"]
    assert re.findall(r'<option value="(\d{6})"', html)[:1] == [world.city]  # its own region first
    assert world.province not in re.findall(r'<option value="(\d{6})"', html)  # not the province above it
    signed_out = client.post("/dashboard/sign-out", data={"csrf_token": _csrf(html)})
    assert signed_out.status_code == 303 and signed_out.headers["Location"].endswith("/dashboard/sign-in")
    assert client.get("/dashboard").status_code == 303


def test_the_page_agrees_with_the_api_for_the_same_key(client, world):
    sign_in(client, world.keys["fiscal"])
    _, html = page(client, f"?region={world.city}&year=2025&target_set=key-city-2018")
    api = client.get(f"/v1/targets?region={world.city}&year=2025&fresh=true",
                     headers={"Authorization": f"Bearer {world.keys['fiscal']}"}).get_json()
    checks = dict(re.findall(r'<tr data-metric="(\w+)">.*?data-field="pass" class="(pass|fail)"', html, re.S))
    assert checks == {c["metric"]: "pass" if c["pass"] else "fail" for c in api["checks"]}
    # 20.00% growth does not exceed 20%: shown as a fail, as the API says; two SMEs in three pass.
    assert checks == {"amount_growth": "fail", "sme_share_count": "pass"} and "&gt; 20.00%" in html
    assert _cells(html, "amount")[1] == api["amount"]


def test_a_bad_key_is_refused_and_a_revoked_key_is_signed_out_on_its_next_request(client, world):
    refused = sign_in(client, "ipl_00000000_not-a-key")
    assert refused.status_code == 401 and "unknown or revoked" in refused.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 303
    from tests.factories import make_key, InstitutionFactory
    secret = make_key("fiscal", InstitutionFactory(kind="fiscal", region=world.city).code)
    assert sign_in(client, secret).status_code == 303 and page(client)[0] == 200
    tx(lambda conn: revoke_key(conn, secret.split("_")[1]))
    status, html = page(client)
    assert status == 401 and "revoked" in html and 'name="api_key"' in html
    assert client.get("/dashboard").status_code == 303  # the session is gone, not just refused once
    assert sign_in(client, secret).status_code == 401


def test_forms_without_the_session_csrf_token_change_nothing(client, world):
    form = client.get("/dashboard/sign-in")
    no_token = client.post("/dashboard/sign-in", data={"api_key": world.keys["fiscal"]})
    assert no_token.status_code == 400 and client.get("/dashboard").status_code == 303
    wrong = client.post("/dashboard/sign-in", data={"api_key": world.keys["fiscal"], "csrf_token": "x" * 43})
    assert wrong.status_code == 400 and client.get("/dashboard").status_code == 303
    assert sign_in(client, world.keys["fiscal"]).status_code == 303
    assert _csrf(form.get_data(as_text=True)) != _csrf(page(client)[1])  # renewed at sign-in
    assert client.post("/dashboard/sign-out", data={}).status_code == 400
    assert page(client)[0] == 200  # still signed in


def test_a_tampered_cookie_is_no_session(client, world):
    sign_in(client, world.keys["fiscal"])
    value = client.get_cookie(COOKIE, path="/dashboard").value
    payload, _, signature = value.partition(".")
    client.set_cookie(COOKIE, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature,
                      path="/dashboard")
    assert client.get("/dashboard").status_code == 303
    client.set_cookie(COOKIE, value, path="/dashboard")
    assert page(client)[0] == 200


def test_a_bank_sees_its_claims_and_no_targets(client, world):
    sign_in(client, world.keys["bank"])
    status, html = page(client, f"?region={world.other_city}&year=2025")
    assert status == 200 and 'id="targets-note"' in html and 'id="chart-amount"' not in html
    assert "data-year" not in html and world.other_city not in html  # no region figures at all
    assert _cells(html, "amount") and 'id="batches-note"' in html
    sign_in(client, world.keys["other_bank"])
    _, html = page(client)
    assert 'id="losses-empty"' in html  # its own loans have no claims


def test_an_insurer_sees_the_claims_it_is_named_on(client, world):
    sign_in(client, world.keys["insurer"])
    _, html = page(client)
    assert world.parties["insurer"] in _cells(html, "institution") and "data-year" not in html


def test_an_auditor_sees_its_district_and_not_another_region(client, world):
    sign_in(client, world.keys["auditor"])
    status, html = page(client, "?year=2025")
    assert status == 200 and re.findall(r'<tr data-year="(\d+)"', html) == ["2024", "2025"]
    for outside in (world.city, world.other_city, world.province):
        status, html = page(client, f"?region={outside}&year=2025")
        assert status == 404 and "outside your jurisdiction" in html
    sign_in(client, world.keys["other_auditor"])
    status, html = page(client, f"?region={world.district}")
    assert status == 404
    _, html = page(client, "?year=2025")
    assert _cells(html, "amount")[-1] == "700000.00" and 'id="losses-empty"' in html


def test_an_admin_chooses_any_region_and_empty_regions_say_so(client, world):
    sign_in(client, world.keys["admin"])
    status, html = page(client, f"?region={world.province}&year=2025")
    assert status == 200 and _cells(html, "amount")[:2] == ["5000000.00", "6700000.00"]
    empty = world.province[:2] + "0900"
    status, html = page(client, f"?region={empty}&year=2025")
    assert status == 200 and 'id="targets-empty"' in html and 'id="losses-empty"' in html


@pytest.mark.parametrize("query, status, says", [
    ("?year=abc", 400, "year"), ("?year=1800", 400, "year"), ("?region=12", 400, "region"),
    ("?basis=sideways", 400, "basis"), ("?target_set=no-such-set", 422, "unknown target set"),
])
def test_bad_choices_are_a_4xx_page_never_a_500(client, world, query, status, says):
    sign_in(client, world.keys["fiscal"])
    response = client.get(f"/dashboard{query}")
    assert response.status_code == status and says in response.get_data(as_text=True)


def test_the_cookie_is_secure_when_configured_and_a_short_secret_is_refused():
    assert session_config({"IPLEDGER_SECRET_KEY": "k" * 32, "IPLEDGER_COOKIE_SECURE": "1"})["SESSION_COOKIE_SECURE"]
    assert not session_config({"IPLEDGER_SECRET_KEY": "k" * 32})["SESSION_COOKIE_SECURE"]
    with pytest.raises(RuntimeError):
        session_config({"IPLEDGER_SECRET_KEY": "short"})


def test_the_pages_stay_out_of_the_openapi_document_and_the_chart_library_is_served(client):
    assert not [path for path in client.get("/openapi.json").get_json()["paths"] if "dashboard" in path]
    script = client.get("/static/vendor/chart.umd.min.js")
    assert script.status_code == 200 and b"Chart.js v4" in script.data[:200]


def test_every_template_and_static_file_is_package_data():
    """A fresh `pip install .` or wheel carries the pages (setup.cfg [options.package_data])."""
    import configparser
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    package = root / "api"
    globs = [g.strip() for g in config["options.package_data"]["api"].split(",")]
    packaged = {p for g in globs for p in package.glob(g)}  # setuptools' glob: `*` stays in its folder
    files = {p for folder in ("templates", "static") for p in (package / folder).rglob("*") if p.is_file()}
    assert package / "static/vendor/chart.umd.min.js" in files
    assert sorted(p.relative_to(package).as_posix() for p in files - packaged) == []


def test_the_demo_book_fills_the_dashboard(fresh_engine):
    """README "Dashboard": after `ipledger demo` (here a small one), a GZ-FISCAL key sees years of bars."""
    from datetime import date
    from api import create_app
    from ledger import demo
    from tests.factories import make_key
    demo.run(fresh_engine, seed=7, as_of=date(2025, 12, 31), borrowers=60, loans=120)
    client = create_app(fresh_engine, {"TESTING": True}).test_client()
    assert sign_in(client, make_key("fiscal", "GZ-FISCAL")).status_code == 303
    status, html = page(client, "?region=440100&year=2025")
    assert status == 200 and 'id="chart-amount"' in html  # (claims: the full-size demo has some)
    assert len(re.findall(r'<tr data-year="(\d+)"', html)) >= 6  # 2019 (or 2018: early registrations) to 2025
    section = stress_section(html, "gd-ip-pledge")  # the demo's stress test, for the pool section
    assert len(_cells(section, "probability")) == 5 and _cells(section, "scenarios")[0] == "10000"


# --- the pool stress test section --------------------------------------------------------------

def stress_section(html: str, code: str) -> str:
    found = re.search(rf'<section class="stress" data-program="{re.escape(code)}">(.*?)</section>', html, re.S)
    assert found, f"no stress section for {code}"
    return found.group(1)


def stress_chart_data(html: str) -> list[dict]:
    return json.loads(re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>',
                                html, re.S).group(1))["stress"]


def test_a_fiscal_bureau_sees_its_programmes_latest_stress_test_as_the_api_gives_it(client, world, engine):
    code = world.program
    done_stress_run(engine, code, seed=1)
    run_id = done_stress_run(engine, code, as_of="2025-01-01")  # the latest finished run is shown...
    queue_stress_run(code)  # ...not a later one still queued
    sign_in(client, world.keys["fiscal"])
    status, html = page(client, f"?region={world.city}&year=2025")
    assert status == 200 and 'id="stress"' in html
    section = stress_section(html, code)
    headers = {"Authorization": f"Bearer {world.keys['fiscal']}"}
    api = client.get(f"/v1/programs/{code}/stress-tests/{run_id}", headers=headers).get_json()
    results, a = api["results"], api["assumptions"]
    assert f"Stress test {run_id} " in section
    curve, histogram = results["exhaustion_probability_by_year"], results["fund_payout_histogram"]
    assert _cells(section, "probability") == [p["probability"] for p in curve]
    assert _cells(section, "percent") == [f"{Decimal(p['probability']) * 100:.2f}%" for p in curve]
    assert _cells(section, "from") == [b["from"] for b in histogram]
    assert _cells(section, "to") == [b["to"] for b in histogram]
    assert _cells(section, "scenarios") == [str(a["scenarios"])] + [str(b["count"]) for b in histogram]
    assert [_cells(section, f)[0] for f in ("years", "pd", "rho", "seed")] == [
        str(a["years"]), a["default_probability"], a["asset_correlation"], str(a["seed"])]
    fund = client.get(f"/v1/programs/{code}/fund", headers=headers).get_json()
    assert _cells(section, "fund_balance") == [fund["balance"]]
    assert _cells(section, "simulated_fund_balance") == [results["fund"]["balance"]] == ["0.00"]  # before the
    assert fund["balance"] != "0.00"  # pool's contribution of 2025-01-02; today's fund is the journal's
    chart = next(c for c in stress_chart_data(html) if c["program"] == code)
    assert chart["exhaustion_probability"] == [p["probability"] for p in curve]
    assert (chart["payout_from"], chart["payout_count"]) == ([b["from"] for b in histogram],
                                                             [b["count"] for b in histogram])
    assert f'id="chart-stress-exhaustion-{code}"' in section and f'id="chart-stress-payout-{code}"' in section
    assert "<script>" not in html  # the data is a JSON block: the CSP allows no inline script


def test_a_pool_sees_the_programmes_it_is_party_to_and_others_see_no_stress_test(client, world, engine):
    code = world.program
    done_stress_run(engine, code)
    sign_in(client, make_key("pool", world.parties["pool"]))
    _, html = page(client)
    assert 'data-field="probability"' in stress_section(html, code)
    assert world.other_program not in html  # a programme it is not a party to
    for reader in ("bank", "auditor", "insurer"):
        sign_in(client, world.keys[reader])
        status, html = page(client, "?year=2025")
        assert status == 200 and 'id="stress"' not in html and stress_chart_data(html) == []


def test_a_programme_without_a_finished_run_says_how_to_make_one(client, world):
    code = world.other_program  # never stress-tested
    queue_stress_run(code)  # queued is not finished
    sign_in(client, world.keys["admin"])
    status, html = page(client, f"?region={world.other_city}&year=2025")
    section = stress_section(html, code)
    assert status == 200 and "No stress test run yet: " in section
    assert (f"<code>POST /v1/programs/{code}/stress-tests</code> or "
            f"<code>ipledger stress --program {code} --save ...</code>") in section
    assert "canvas" not in section and code not in [c["program"] for c in stress_chart_data(html)]
