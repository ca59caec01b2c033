"""Stress tests through the API and the scheduler: POST queues (202), the scheduler's job runs
it (progress, results in yuan), GET reads JSON and CSV; same assumptions and seed, same results;
one run is taken by one scheduler; a run orphaned by a dead scheduler is taken again; the
database keeps the run's status, progress and results rules (raw SQL, real commits)."""
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from jobs import tasks
from ledger import programs, stress_runs
from ledger.db import run_in_transaction, utcnow
from ledger.journal import SYSTEM
from ledger.schema import stress_runs as runs_table
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, auth,
                             make_loan, program_parties, tx, unique)

BODY = {"as_of": "2026-01-01", "years": 3, "scenarios": 300, "seed": 42, "default_probability": "0.2",
        "asset_correlation": "0.3", "recovery_rate": "0.3", "recovery_rate_sd": "0.1",
        "annual_contribution": "500000.00", "target_exhaustion_probability": "0.10",
        "new_lending": [{"year": 2, "amount": "8000000.00"}]}


def _programme(fund_fen=2_000_000_00):
    parties = program_parties()
    program = ProgramFactory(terms=api_terms(**parties))
    bank = InstitutionFactory(kind="bank", region="440100")
    for _ in range(4):
        borrower = BorrowerFactory(bank_id=bank.id)
        make_loan(bank.id, borrower.facts.credit_code, program.code, maturity_date="2029-12-31")
    from tests.ledger.test_claims_db import _institution_id
    pool_id = _institution_id(parties["pool"])
    tx(lambda conn: programs.contribute(conn, program.code, pool_id, fund_fen, date(2025, 1, 2), SYSTEM))
    fiscal = InstitutionFactory(kind="fiscal", region="440100")
    return program, auth("fiscal", fiscal.code), parties


def _post(client, code, headers, body=BODY):
    return client.post(f"/v1/programs/{code}/stress-tests", json=body,
                       headers={**headers, "Idempotency-Key": unique("stress")})


def _run_by_scheduler(engine, run_id):
    claimed = stress_runs.claim_next(engine, only_id=run_id)
    assert claimed is not None
    return stress_runs.execute(engine, *claimed)


def test_a_fiscal_bureau_queues_a_run_the_scheduler_runs_it_and_the_results_read_in_yuan(client, engine):
    program, headers, parties = _programme()
    response = _post(client, program.code, headers)
    assert response.status_code == 202, response.get_json()
    run = response.get_json()
    assert (run["status"], run["progress"], run["results"]) == ("queued", 0, None)
    assert response.headers["Location"] == f"/v1/programs/{program.code}/stress-tests/{run['id']}"
    assert run["assumptions"]["seed"] == 42 and run["assumptions"]["as_of"] == "2026-01-01"
    assert _run_by_scheduler(engine, run["id"]) == "done"
    done = client.get(response.headers["Location"], headers=headers).get_json()
    assert (done["status"], done["progress"], done["attempts"]) == ("done", 100, 1)
    results = done["results"]
    assert results["loans"] > 4  # the book's four plus the new lending
    assert [y["year"] for y in results["exhaustion_probability_by_year"]] == [1, 2, 3]
    assert results["fund"] == {"balance": "2000000.00", "annual_contribution": "500000.00"}
    assert {p["institution"] for p in results["party_loss"]} == {parties["insurer"], parties["pool"]}
    assert results["contribution_for_target"]["annual_contribution"].endswith(".00")
    assert float(results["exhaustion_probability_by_year"][-1]["probability"]) > 0  # the fund does run dry
    listed = client.get(f"/v1/programs/{program.code}/stress-tests", headers=headers).get_json()
    assert [r["id"] for r in listed["items"]] == [run["id"]] and "results" not in listed["items"][0]
    csv = client.get(response.headers["Location"], headers={**headers, "Accept": "text/csv"})
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).splitlines()
    assert lines[0] == "section,key,value" and "exhaustion_probability_by_year,3," in "\n".join(lines)


def test_same_assumptions_and_seed_give_the_same_results(client, engine):
    program, headers, _ = _programme()
    first, second = (_post(client, program.code, headers).get_json()["id"] for _ in range(2))
    for run_id in (first, second):
        _run_by_scheduler(engine, run_id)
    read = [client.get(f"/v1/programs/{program.code}/stress-tests/{i}", headers=headers).get_json()
            for i in (first, second)]
    assert read[0]["results"] == read[1]["results"]
    other = _post(client, program.code, headers, {**BODY, "seed": 43}).get_json()["id"]
    _run_by_scheduler(engine, other)
    third = client.get(f"/v1/programs/{program.code}/stress-tests/{other}", headers=headers).get_json()
    assert third["results"] != read[0]["results"]


def test_a_run_omitting_the_seed_stores_the_seed_it_drew(client):
    program, headers, _ = _programme()
    body = {k: v for k, v in BODY.items() if k != "seed"}
    run = _post(client, program.code, headers, body).get_json()
    assert isinstance(run["assumptions"]["seed"], int)


def _queue(engine, program, scenarios=20):
    a = stress_runs.assumptions_from_dict({**BODY, "scenarios": scenarios, "target_exhaustion_probability": None})
    return run_in_transaction(engine, lambda conn: stress_runs.queue_run(
        conn, programs.get_program(conn, program.code), a, None))["id"]


def test_the_scheduler_job_runs_queued_runs_oldest_first_each_once(fresh_engine):
    program, _, _ = _programme()
    first, second = _queue(fresh_engine, program), _queue(fresh_engine, program)
    assert tasks.run_stress_tests(fresh_engine) == 2
    assert tasks.run_stress_tests(fresh_engine) == 0  # nothing left: a done run is never taken again
    with fresh_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, attempts FROM stress_runs ORDER BY started_at")).all()
    assert [(r.id, r.status, r.attempts) for r in rows] == [(first, "done", 1), (second, "done", 1)]


def test_a_run_left_running_by_a_dead_scheduler_is_taken_again_then_given_up(fresh_engine):
    program, _, _ = _programme()
    run_id = _queue(fresh_engine, program)
    dead = stress_runs.claim_next(fresh_engine)
    assert dead[0] == run_id
    assert stress_runs.claim_next(fresh_engine) is None  # running and fresh: nobody else takes it
    old = utcnow() - stress_runs.STALE_AFTER - timedelta(seconds=1)
    run_in_transaction(fresh_engine, lambda conn: conn.execute(
        update(runs_table).where(runs_table.c.id == run_id).values(heartbeat_at=old)))
    again = stress_runs.claim_next(fresh_engine)
    assert again[0] == run_id and again[1] != dead[1]
    stress_runs._finish(fresh_engine, run_id, dead[1], status="failed", error="late")  # the dead one's write
    assert stress_runs.execute(fresh_engine, *again) == "done"  # ...did nothing: it no longer holds the run
    for attempt in range(stress_runs.MAX_ATTEMPTS):  # a run that keeps dying is given up
        run_in_transaction(fresh_engine, lambda conn: conn.execute(
            update(runs_table).where(runs_table.c.id == run_id).values(status="running", heartbeat_at=old)))
        claimed = stress_runs.claim_next(fresh_engine)
    assert stress_runs.execute(fresh_engine, *claimed) == "failed"
    with fresh_engine.connect() as conn:
        error = conn.execute(text(f"SELECT error FROM stress_runs WHERE id = {run_id}")).scalar_one()
    assert "gave up" in error


def test_two_schedulers_at_once_never_take_the_same_run(fresh_engine, backend):
    program, _, _ = _programme()
    ids = {_queue(fresh_engine, program) for _ in range(6)}
    taken, barrier = [], threading.Barrier(2)

    def scheduler():
        barrier.wait()
        while (claimed := stress_runs.claim_next(fresh_engine)) is not None:
            taken.append(claimed[0])
    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)  # each run taken exactly once


@pytest.mark.parametrize("values", [
    "status = 'paused'", "progress_pct = 101", "progress_pct = -1", "status = 'done', results_json = NULL"])
def test_the_database_keeps_the_run_rules(fresh_engine, values):
    program, _, _ = _programme()
    run_id = _queue(fresh_engine, program)
    with pytest.raises(IntegrityError):
        with fresh_engine.begin() as conn:
            conn.execute(text(f"UPDATE stress_runs SET {values} WHERE id = {run_id}"))


def test_stress_summary_gives_the_dashboard_its_curve_and_histogram(client, engine):
    program, headers, _ = _programme()
    run_id = _post(client, program.code, headers).get_json()["id"]
    assert tx(lambda conn: stress_runs.stress_summary(conn, run_id)) is None  # not done yet
    _run_by_scheduler(engine, run_id)
    summary = tx(lambda conn: stress_runs.stress_summary(conn, run_id))
    assert len(summary["exhaustion_probability_by_year"]) == 3
    assert sum(b["count"] for b in summary["fund_payout_histogram"]) == 300
    assert summary["fund_balance_today_fen"] == summary["simulated_fund_balance_fen"] == 2_000_000_00
