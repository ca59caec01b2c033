"""The dashboard end to end in headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by selenium): the real app served over HTTP on a free port, a province seeded with two
years of loans and a claim (tests/dashboard_world.py), on each database backend.

A fiscal key signs in through the form, chooses region and year, and the charts' data
(`Chart.getChart(canvas).data`) and the tables beside them are compared with `GET /v1/targets`
and `/v1/targets/series` asked over HTTP with the same key, and the pool stress test's charts with
`GET /v1/programs/{code}/stress-tests/{id}` (a run made synchronously, `done_stress_run`); the
browser's console must be free
of errors (a Content-Security-Policy violation or a script error is one). A screenshot goes to
`test-output/dashboard.png` (`dashboard-postgres.png` for the PostgreSQL run). Sign-out shows the
sign-in form again.

Skipped when chromium or chromedriver is absent, unless IPLEDGER_REQUIRE_BROWSER=1 (CI, .ci/run),
where their absence fails the test. Bounded: page loads and waits time out at 20 s, and the whole
test must finish in 60 s.
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from ledger import programs, targets
from ledger.journal import SYSTEM
from tests.dashboard_world import build, done_stress_run, institution_id
from tests.factories import tx

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REQUIRED = os.environ.get("IPLEDGER_REQUIRE_BROWSER") == "1"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
WAIT_S, TEST_BUDGET_S = 20, 60


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"
        if REQUIRED:
            pytest.fail(message + "; IPLEDGER_REQUIRE_BROWSER=1 makes their absence a failure")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,3600", "--hide-scrollbars", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture
def served(fresh_engine):
    """The app on a free port of 127.0.0.1, served by werkzeug in a thread, over a database of its own."""
    from api import create_app
    world = build("440000")
    tx(lambda conn: targets.create_target_set(conn, "count-57", [
        {"metric": "count_growth", "comparator": ">=", "threshold": Decimal("0.57")}], SYSTEM))
    pool_id = institution_id(world.parties["pool"])  # a fund that pays some scenarios' claims in full
    tx(lambda conn: programs.contribute(conn, world.program, pool_id, 1_200_000_00, date(2026, 1, 5), SYSTEM))
    world.stress_run = done_stress_run(fresh_engine, world.program, scenarios=400, annual_contribution="300000.00",
                                       new_lending=[{"year": 2, "amount": "8000000.00"}])
    server = make_server("127.0.0.1", 0, create_app(fresh_engine), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", world
    server.shutdown()
    thread.join(WAIT_S)


def _api(base: str, secret: str, path: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        return json.load(response)


def _wait_for(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.wait import WebDriverWait
    return WebDriverWait(driver, WAIT_S).until(shown.presence_of_element_located((By.CSS_SELECTOR, css)))


def _show(driver) -> None:
    """Submit the choice and wait for the new page's charts (the old page's body was ready too)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.wait import WebDriverWait
    old_body = driver.find_element(By.TAG_NAME, "body")
    driver.find_element(By.ID, "show").click()
    WebDriverWait(driver, WAIT_S).until(shown.staleness_of(old_body))
    _wait_for(driver, "body[data-charts-ready='true']")


def _chart(driver, canvas_id: str) -> dict:
    return driver.execute_script(
        "const c = Chart.getChart(document.getElementById(arguments[0]));"
        "return {labels: c.data.labels, datasets: c.data.datasets.map(d => ({label: d.label, data: d.data}))};",
        canvas_id)


def _texts(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, css)]


def _growth_close(shown: float | None, ratio: str | None) -> bool:
    if shown is None or ratio is None:
        return shown is None and ratio is None
    return abs(Decimal(str(shown)) - Decimal(ratio) * 100) < Decimal("1e-9")  # a plotted position


def test_a_fiscal_bureau_signs_in_reads_the_charts_and_signs_out(browser, served, backend):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    started = time.monotonic()
    base, world = served
    fiscal = world.keys["fiscal"]

    browser.get(base + "/dashboard")
    _wait_for(browser, "#sign-in-form")
    browser.find_element(By.ID, "api_key").send_keys(fiscal)
    browser.find_element(By.ID, "sign-in").click()
    _wait_for(browser, "body[data-charts-ready='true']")
    Select(browser.find_element(By.ID, "region")).select_by_value(world.city)
    Select(browser.find_element(By.ID, "year")).select_by_value("2025")
    _show(browser)
    assert f"region={world.city}" in browser.current_url and "year=2025" in browser.current_url

    series = _api(base, fiscal, f"/v1/targets/series?region={world.city}&from=2024&to=2025")["items"]
    answer = _api(base, fiscal, f"/v1/targets?region={world.city}&year=2025&fresh=true")
    amount, count, sme = (_chart(browser, name) for name in ("chart-amount", "chart-count", "chart-sme"))
    assert amount["labels"] == count["labels"] == [row["year"] for row in series] == [2024, 2025]
    bars, growth, threshold = amount["datasets"]
    assert [Decimal(str(v)) for v in bars["data"]] == [Decimal(row["amount"]) for row in series]
    assert all(_growth_close(v, row["growth"]["amount"]) for v, row in zip(growth["data"], series))
    assert threshold["label"] == "threshold > 20%" and threshold["data"] == [20, 20]  # key-city-2018
    assert count["datasets"][0]["data"] == [row["count"] for row in series]
    assert all(_growth_close(v, row["sme_share_count"]) for v, row in zip(sme["datasets"][0]["data"], series))
    assert sme["datasets"][1]["data"] == [50, 50]

    assert _texts(browser, "#table-years td[data-field=amount]") == [row["amount"] for row in series]
    assert _texts(browser, "#table-years td[data-field=count]") == [str(row["count"]) for row in series]
    shown_checks = _texts(browser, "#checks td[data-field=pass]")
    assert shown_checks == [("✓ pass" if c["pass"] else "✗ fail") for c in answer["checks"]]
    assert _texts(browser, "#table-losses td[data-field=amount]")  # the claim's parties, in text too
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    Select(browser.find_element(By.ID, "target_set")).select_by_value("count-57")
    _show(browser)
    counted = _chart(browser, "chart-count")["datasets"][2]  # 0.57 * 100 is not 57 in floating point
    assert (counted["label"], counted["data"]) == ("threshold >= 57%", [57, 57])
    Select(browser.find_element(By.ID, "target_set")).select_by_value("key-city-2018")
    _show(browser)

    _check_stress_charts(browser, base, world)

    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / ("dashboard.png" if backend == "sqlite" else f"dashboard-{backend}.png")
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")

    browser.find_element(By.ID, "sign-out").click()
    _wait_for(browser, "#sign-in-form")
    browser.get(base + "/dashboard")
    _wait_for(browser, "#sign-in-form")
    assert time.monotonic() - started < TEST_BUDGET_S


def _check_stress_charts(browser, base: str, world) -> None:
    """The stress test's curve (in %) and histogram as drawn, against the API's results."""
    code = world.program
    run = _api(base, world.keys["fiscal"], f"/v1/programs/{code}/stress-tests/{world.stress_run}")
    curve, bins = run["results"]["exhaustion_probability_by_year"], run["results"]["fund_payout_histogram"]
    drawn = _chart(browser, f"chart-stress-exhaustion-{code}")
    assert drawn["labels"] == [point["year"] for point in curve]
    assert all(_growth_close(v, point["probability"]) for v, point in zip(drawn["datasets"][0]["data"], curve))
    payout = _chart(browser, f"chart-stress-payout-{code}")
    assert payout["datasets"][0]["data"] == [b["count"] for b in bins] and len(payout["labels"]) == len(bins)
    section = f"section.stress[data-program='{code}']"
    assert _texts(browser, f"{section} td[data-field=probability]") == [p["probability"] for p in curve]
    assert _texts(browser, f"{section} td[data-field=from]") == [b["from"] for b in bins]
