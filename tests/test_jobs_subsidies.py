"""The scheduler's subsidy drafts: each ended year of each programme with subsidy rules, once;
a run killed with -9 mid-draft leaves nothing and is redone by the next start; two schedulers
racing draft one batch per programme and period. Each test has a database of its own (the job
drafts every programme it finds)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jobs import runs, tasks
from ledger import chain
from ledger import subsidy_batches as batches
from ledger.journal import SYSTEM
from ledger.loans import record_repayment
from ledger.schema import job_runs, subsidy_batches, subsidy_lines
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, make_loan,
                             program_parties, tx)

ROOT = Path(__file__).resolve().parent.parent
JOB = tasks.DRAFT_SUBSIDY_BATCHES
JANUARY_2026 = date(2026, 1, 5)
INTEREST_ONLY = [{"kind": "interest", "method": "pct_of_paid", "pct": "0.40"}]


def _book(subsidies=INTEREST_ONLY, loans: int = 2, start: str = "2024-01-10", bureau: bool = True):
    """A programme lending from 2024 with interest paid in 2024 and 2025, and its city's bureau."""
    terms = api_terms(**program_parties())
    terms["subsidies"] = subsidies
    program = ProgramFactory(terms=terms)
    bank = InstitutionFactory()
    for _ in range(loans):
        borrower = BorrowerFactory(bank_id=bank.id)
        loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
                            start_date=start, maturity_date="2027-01-10")
        for paid_on in (date(2024, 6, 1), date(2025, 6, 1)):
            if paid_on.isoformat() > start:
                tx(lambda conn, on=paid_on: record_repayment(conn, loan_id, bank.id, on, 0, 100_00, SYSTEM))
    if bureau:
        InstitutionFactory(kind="fiscal", region="440100")
    return program


def _batches(program_code: str, with_id: bool = False) -> list[tuple]:
    columns = [subsidy_batches.c.id] if with_id else []
    return [tuple(row) for row in tx(lambda conn: conn.execute(
        select(*columns, subsidy_batches.c.period, subsidy_batches.c.status, subsidy_batches.c.line_count,
               subsidy_batches.c.total_fen)
        .where(subsidy_batches.c.program_id == batches.get_program(conn, program_code).id)
        .order_by(subsidy_batches.c.id)).all())]


def _runs() -> dict[str, tuple]:
    rows = tx(lambda conn: conn.execute(select(job_runs).where(job_runs.c.job == JOB)).all())
    return {row.period: (row.status, json.loads(row.counts_json or "{}"), row.detail) for row in rows}


def test_drafts_each_ended_year_once_with_counts(fresh_engine):
    program = _book()
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 2
    assert _batches(program.code) == [("2024", "draft", 2, 80_00), ("2025", "draft", 2, 80_00)]
    assert _runs()[f"{program.code}/2025"][:2] == (
        "done", {"batches": 1, "lines": 2, "excluded": 0, "total_fen": 80_00})
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 0  # once per period
    # A cancelled draft stays cancelled: the run for its period is done (an officer redrafts).
    first = tx(lambda conn: conn.execute(select(func.min(subsidy_batches.c.id))).scalar_one())
    bureau = tx(lambda conn: batches.bureau_of(conn, institution_code=_bureau_code(conn, first)))
    tx(lambda conn: batches.cancel(conn, first, bureau))
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 0
    assert tasks.draft_subsidy_batches(fresh_engine, date(2025, 12, 31)) == 0  # 2025 not ended then


def _bureau_code(conn, batch_id: int) -> str:
    from ledger.schema import institutions
    return conn.execute(select(institutions.c.code).join(subsidy_batches, subsidy_batches.c.institution_id
                                                         == institutions.c.id)
                        .where(subsidy_batches.c.id == batch_id)).scalar_one()


def test_a_quarter_drafted_by_hand_holds_its_year_and_no_bureau_means_no_draft(fresh_engine):
    program = _book()
    unpaid = _book(bureau=False, start="2025-02-01")  # the same city: its bureau is the first's
    held = tx(lambda conn: batches.bureau_of(conn, institution_code=_fiscal_code(conn)))
    tx(lambda conn: batches.draft_batch(conn, program.code, "2025-Q2", held, today=JANUARY_2026))
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 2  # program 2024, unpaid 2025
    assert [p for p, *_ in _batches(program.code)] == ["2025-Q2", "2024"]
    assert [p for p, *_ in _batches(unpaid.code)] == ["2025"]  # from the year of its first loan
    assert set(_runs()) == {f"{program.code}/2024", f"{unpaid.code}/2025"}


def _fiscal_code(conn) -> str:
    from ledger.schema import institutions
    return conn.execute(select(institutions.c.code).where(institutions.c.kind == "fiscal")).scalar_one()


def test_a_failing_period_is_a_failed_run_retried_later_and_the_others_go_on(fresh_engine):
    # The example terms pay on December's LPR: 2025-12 is not recorded, 2024-12 is.
    program = _book(subsidies=api_terms("x", "y", "z")["subsidies"])
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 1
    status, _, detail = _runs()[f"{program.code}/2025"]
    assert status == "failed" and "2025-12" in detail
    assert [p for p, *_ in _batches(program.code)] == ["2024"]
    from ledger.rates import record_rate
    from decimal import Decimal
    tx(lambda conn: record_rate(conn, "LPR1Y", "2025-12", Decimal("0.0300")))
    assert tasks.draft_subsidy_batches(fresh_engine, JANUARY_2026) == 1
    assert _runs()[f"{program.code}/2025"][0] == "done"


# --- processes: kill -9 and two schedulers -------------------------------------------------------

def _job_process(engine, pause_seconds: float = 0) -> subprocess.Popen:
    """`ipledger jobs run draft_subsidy_batches` in a process of its own against `engine`'s db."""
    env = {**os.environ, "IPLEDGER_DATABASE_URL": engine.url.render_as_string(hide_password=False),
           tasks.PAUSE_IN_DRAFT_ENV: str(pause_seconds)}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "jobs", "run", JOB], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_pause(process: subprocess.Popen, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    for line in process.stderr:
        if line.startswith("paused in draft"):
            return line
        assert time.monotonic() < deadline, "the job never reached its draft"
    raise AssertionError(f"the job ended before its draft: {process.wait()}")


def _assert_intact(program_code: str) -> None:
    """One live batch per year, each holding exactly the lines its total says, the book verifying."""
    made = _batches(program_code, with_id=True)
    assert sorted(p for _, p, status, *_ in made if status != "cancelled") == ["2024", "2025"]
    for batch_id, _, _, line_count, total_fen in made:
        stored = tx(lambda conn, batch_id=batch_id: conn.execute(
            select(func.count(), func.coalesce(func.sum(subsidy_lines.c.amount_fen), 0))
            .where(subsidy_lines.c.batch_id == batch_id)).one())
        assert tuple(stored) == (line_count, total_fen)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact


def test_a_run_killed_mid_draft_is_redone_cleanly_by_the_next_start(fresh_engine):
    program = _book()
    victim = _job_process(fresh_engine, pause_seconds=120)
    paused = _wait_for_pause(victim)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    # Its lines were written but never committed: nothing of the draft is there; the run says
    # `running`, owned by a process that is gone.
    assert _batches(program.code) == [] and tx(lambda conn: conn.execute(
        select(func.count()).select_from(subsidy_lines)).scalar_one()) == 0
    killed = _runs()
    assert [status for status, *_ in killed.values()] == ["running"], (paused, killed)
    survivor = _job_process(fresh_engine)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    assert out.strip() == f"{JOB}: 2"
    _assert_intact(program.code)
    after = _runs()
    assert {status for status, *_ in after.values()} == {"done"}
    (period,) = killed
    assert after[period][1]["batches"] == 1


def test_two_schedulers_racing_draft_one_batch_per_programme_and_period(fresh_engine):
    program, other = _book(), _book(subsidies=INTEREST_ONLY + [
        {"kind": "premium", "method": "pct_of_paid", "pct": "0.50"}])
    # Each draft pauses 2 s inside its transaction: the two processes overlap on every period.
    racers = [_job_process(fresh_engine, pause_seconds=2) for _ in range(2)]
    results = [racer.communicate(timeout=180) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], results
    # Neither worked on a period the other held (a taken-over run fails loudly, and is logged).
    assert not any("failed" in err or "Traceback" in err for _, err in results), results
    drafted = sorted(int(out.strip().rsplit(" ", 1)[1]) for out, _ in results)
    assert sum(drafted) == 4, results  # two programmes x two years, between them
    for code in (program.code, other.code):
        _assert_intact(code)
    assert {status for status, *_ in _runs().values()} == {"done"}  # no loser failed on a 409


def test_runs_read_back_with_duration_and_counts(fresh_engine):
    assert runs.run_once(fresh_engine, "test_job", "2026-01-05", lambda: runs.Outcome("did", {"things": 3}))
    (row,) = tx(lambda conn: runs.list_runs(conn, job="test_job"))
    assert row["status"] == "done" and row["counts"] == {"things": 3} and row["duration_seconds"] >= 0
    assert row["owner"] == runs.owner()
    assert tx(lambda conn: runs.list_runs(conn, job="test_job", status="failed")) == []
