"""Stress-test runs: the assumptions a caller gives, the queue the scheduler works, the results.

`POST /v1/programs/{code}/stress-tests` queues a run (`queue_run`); the scheduler process
(`jobs.tasks.run_stress_tests`) takes the oldest queued one (`claim_next`), simulates it
(`ledger.stress`) updating its progress, and stores the results. Reads: `get_run`, `list_runs`,
`stress_summary`, `programs_to_show` and `latest_done_runs` (for the dashboard).

Guarantees
- One schema (`AssumptionsIn`) reads the assumptions for the API (which documents it) and the
  CLI; what is stored is its canonical dump, with the seed and `as_of` filled in, so a stored
  run says exactly what to run again to get the same results.
- Bounds keep one request from taking the machine: years <= MAX_YEARS, scenarios <=
  MAX_SCENARIOS, new lending <= MAX_YEARS entries.
- A run is taken by one scheduler: the claim is a conditional UPDATE (status still queued, or
  running with a heartbeat older than STALE_AFTER) that only one scheduler can win; on
  PostgreSQL the candidate is read FOR UPDATE SKIP LOCKED so two schedulers pick different
  runs. A run left running by a dead scheduler is taken again, at most MAX_ATTEMPTS times.
  Only the runner that holds a run (its `runner` token) writes its progress and results.
- The database keeps status in the four values, progress in 0..100, and a done run has results.
"""
from __future__ import annotations

import json
import logging
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema
from sqlalchemy import Connection, Engine, func, or_, select, update

from ledger import stress
from ledger.dates import today as business_today
from ledger.db import is_postgres, run_in_transaction, utcnow
from ledger.errors import NotFound
from ledger.fields import Day, Integer, Money, Object, Objects, Ratio, RequestSchema
from ledger.money import format_yuan
from ledger.programs import Program, get_program, list_programs
from ledger.schema import api_keys, programs, stress_runs

log = logging.getLogger("ipledger.stress")

MAX_YEARS = 10
MAX_SCENARIOS = 20_000
MAX_SEED = 2**31 - 1
MAX_ATTEMPTS = 3
STALE_AFTER = timedelta(minutes=5)
"""A running run whose heartbeat is older than this is taken to be orphaned by a dead scheduler."""
HEARTBEAT_EVERY_SECONDS = 1.0
DEFAULTS = {"years": 5, "scenarios": 10_000, "recovery_rate": Decimal(0), "recovery_rate_sd": Decimal(0),
            "recovery_delay_years": 1}


# --- the assumptions ---------------------------------------------------------------------

def _probability(description: str, **kwargs) -> Ratio:
    return Ratio(high=Decimal(1), metadata={"description": description}, **kwargs)


class DefaultProbabilityByIn(RequestSchema):
    sme = _probability("yearly default probability of loans to SMEs (overrides the single figure)",
                       load_default=None, allow_none=True)
    non_sme = _probability("yearly default probability of loans to other enterprises",
                           load_default=None, allow_none=True)


class NewLendingIn(RequestSchema):
    year = Integer(low=1, high=MAX_YEARS, required=True,
                   metadata={"description": "simulated year (1 = the twelve months after as_of)"})
    amount = Money(required=True, attribute="amount_fen",
                   metadata={"description": "hypothetical new lending that year"})


class AssumptionsIn(RequestSchema):
    """API.md Stress tests: what to simulate. Probabilities and rates are decimal strings."""

    as_of = Day(load_default=None, allow_none=True,
                metadata={"description": "the book's date (live loans, fund balance); default today"})
    years = Integer(low=1, high=MAX_YEARS, load_default=DEFAULTS["years"])
    scenarios = Integer(low=1, high=MAX_SCENARIOS, load_default=DEFAULTS["scenarios"])
    seed = Integer(low=0, high=MAX_SEED, load_default=None, allow_none=True,
                   metadata={"description": "random seed; omitted: one is drawn and stored with the run"})
    default_probability = _probability("yearly default probability of a loan", required=True)
    default_probability_by = Object(DefaultProbabilityByIn, load_default=None, allow_none=True)
    asset_correlation = _probability("asset correlation rho of the one-factor Gaussian copula", required=True)
    recovery_rate = _probability("mean share of a claim's loss base recovered",
                                 load_default=DEFAULTS["recovery_rate"])
    recovery_rate_sd = _probability("standard deviation of the recovery rate (drawn, clipped to [0, 1])",
                                    load_default=DEFAULTS["recovery_rate_sd"])
    recovery_delay_years = Integer(low=0, high=MAX_YEARS, load_default=DEFAULTS["recovery_delay_years"])
    new_lending = Objects(NewLendingIn, max_items=MAX_YEARS, load_default=list, noun="years")
    annual_contribution = Money(load_default=None, allow_none=True, attribute="annual_contribution_fen",
                                metadata={"description": "paid into the fund at the start of each "
                                                         "simulated year; default: what it received "
                                                         "in the twelve months before as_of"})
    target_exhaustion_probability = _probability(
        "find (by bisection) the annual contribution keeping exhaustion at or below this",
        load_default=None, allow_none=True)

    @validates_schema
    def _lending_within_years(self, values: dict, **kwargs: Any) -> None:
        years = values.get("years")
        late = {i: {"year": [f"must be within the {years} simulated years"]}
                for i, item in enumerate(values.get("new_lending") or [])
                if isinstance(item, dict) and isinstance(years, int) and item.get("year", 0) > years}
        if late:
            raise ValidationError({"new_lending": late})

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> stress.Assumptions:
        by = values["default_probability_by"] or {}
        return stress.Assumptions(
            as_of=values["as_of"] or business_today(), years=values["years"], scenarios=values["scenarios"],
            seed=values["seed"] if values["seed"] is not None else secrets.randbelow(MAX_SEED + 1),
            default_probability=values["default_probability"], asset_correlation=values["asset_correlation"],
            default_probability_sme=by.get("sme"), default_probability_non_sme=by.get("non_sme"),
            recovery_rate=values["recovery_rate"], recovery_rate_sd=values["recovery_rate_sd"],
            recovery_delay_years=values["recovery_delay_years"],
            new_lending=tuple((item["year"], item["amount_fen"]) for item in values["new_lending"]),
            annual_contribution_fen=values["annual_contribution_fen"],
            target_exhaustion_probability=values["target_exhaustion_probability"])


def assumptions_to_dict(a: stress.Assumptions) -> dict:
    """The canonical JSON form (what AssumptionsIn reads back to the same value)."""
    def text(value):
        return None if value is None else str(value)
    by = None
    if a.default_probability_sme is not None or a.default_probability_non_sme is not None:
        by = {"sme": text(a.default_probability_sme), "non_sme": text(a.default_probability_non_sme)}
    return {"as_of": a.as_of.isoformat(), "years": a.years, "scenarios": a.scenarios, "seed": a.seed,
            "default_probability": str(a.default_probability), "default_probability_by": by,
            "asset_correlation": str(a.asset_correlation), "recovery_rate": str(a.recovery_rate),
            "recovery_rate_sd": str(a.recovery_rate_sd), "recovery_delay_years": a.recovery_delay_years,
            "new_lending": [{"year": year, "amount": format_yuan(fen)} for year, fen in a.new_lending],
            "annual_contribution": None if a.annual_contribution_fen is None else format_yuan(a.annual_contribution_fen),
            "target_exhaustion_probability": text(a.target_exhaustion_probability)}


def assumptions_from_dict(raw: dict) -> stress.Assumptions:
    return AssumptionsIn().load(raw)


# --- who may run and read a programme's stress tests --------------------------------------

def may_stress(program: Program, role: str, institution_code: str | None, region: str | None) -> bool:
    """Fiscal bureaus participating in the programme, its pools, admins (API.md Stress tests)."""
    if role == "admin":
        return True
    if role == "fiscal":
        return region is not None and program.involves_region(region)
    return role == "pool" and institution_code is not None and program.has_party(institution_code)


# --- queue and runs ----------------------------------------------------------------------

def queue_run(conn: Connection, program: Program, a: stress.Assumptions, key_id: int | None) -> dict:
    run_id = conn.execute(stress_runs.insert().values(
        program_id=program.id, assumptions_json=json.dumps(assumptions_to_dict(a), sort_keys=True),
        status="queued", progress_pct=0, attempts=0, created_by_key_id=key_id, created_at=utcnow())
        .returning(stress_runs.c.id)).scalar_one()
    return get_run(conn, program.code, run_id)


def _query():
    return (select(stress_runs, programs.c.code.label("program"), api_keys.c.prefix.label("created_by"))
            .join(programs, programs.c.id == stress_runs.c.program_id)
            .outerjoin(api_keys, api_keys.c.id == stress_runs.c.created_by_key_id))


def get_run(conn: Connection, code: str, run_id: int) -> dict:
    row = conn.execute(_query().where(stress_runs.c.id == run_id, programs.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"stress test {run_id} of programme {code} does not exist")
    return _run_dict(row, with_results=True)


def list_runs(conn: Connection, code: str, after_id: int = 0, limit: int = 50) -> list[dict]:
    get_program(conn, code)  # 404 for an unknown programme
    rows = conn.execute(_query().where(programs.c.code == code, stress_runs.c.id > after_id)
                        .order_by(stress_runs.c.id).limit(limit)).mappings()
    return [_run_dict(row, with_results=False) for row in rows]


def _run_dict(row, with_results: bool) -> dict:
    run = {"id": row["id"], "program": row["program"], "assumptions": json.loads(row["assumptions_json"]),
           "status": row["status"], "progress": row["progress_pct"], "error": row["error"],
           "attempts": row["attempts"], "created_by": row["created_by"], "created_at": row["created_at"],
           "started_at": row["started_at"], "finished_at": row["finished_at"]}
    if with_results:
        run["results"] = json.loads(row["results_json"]) if row["results_json"] else None
    return run


def claim_next(engine: Engine, only_id: int | None = None) -> tuple[int, str] | None:
    """Take the oldest queued run (or one orphaned by a dead scheduler): (run id, runner token).
    `only_id` restricts the choice to one run (tests, and an operator running one by hand)."""
    token = uuid.uuid4().hex

    def take(conn: Connection):
        stale = utcnow() - STALE_AFTER
        takeable = or_(stress_runs.c.status == "queued",
                       (stress_runs.c.status == "running") & (stress_runs.c.heartbeat_at < stale))
        query = select(stress_runs.c.id).where(takeable).order_by(stress_runs.c.id).limit(1)
        if only_id is not None:
            query = query.where(stress_runs.c.id == only_id)
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        run_id = conn.execute(query).scalar()
        if run_id is None:
            return None
        now = utcnow()
        won = conn.execute(update(stress_runs).where(stress_runs.c.id == run_id, takeable).values(
            status="running", runner=token, attempts=stress_runs.c.attempts + 1, started_at=now,
            heartbeat_at=now, progress_pct=0)).rowcount
        return run_id if won == 1 else None
    run_id = run_in_transaction(engine, take)
    return None if run_id is None else (run_id, token)


def _held(run_id: int, token: str):
    return (stress_runs.c.id == run_id) & (stress_runs.c.runner == token) & (stress_runs.c.status == "running")


def execute(engine: Engine, run_id: int, token: str) -> str:
    """Simulate a claimed run and store its results (or why it failed); returns its status."""
    row = run_in_transaction(engine, lambda conn: conn.execute(
        select(stress_runs.c.attempts, stress_runs.c.assumptions_json, programs.c.code)
        .join(programs, programs.c.id == stress_runs.c.program_id).where(stress_runs.c.id == run_id)).one())
    if row.attempts > MAX_ATTEMPTS:
        _finish(engine, run_id, token, status="failed", error=f"gave up after {MAX_ATTEMPTS} attempts")
        return "failed"
    try:
        a = assumptions_from_dict(json.loads(row.assumptions_json))
        book = run_in_transaction(engine, lambda conn: stress.load_book(conn, row.code, a.as_of))
        results = stress.run(book, a, _progress_writer(engine, run_id, token))
    except Exception as error:  # a run that fails says why; the scheduler goes on
        log.exception("stress test %s failed", run_id)
        _finish(engine, run_id, token, status="failed", error=f"{type(error).__name__}: {error}")
        return "failed"
    _finish(engine, run_id, token, status="done", results=results)
    return "done"


def _progress_writer(engine: Engine, run_id: int, token: str):
    import time
    last = [0.0]

    def write(done: float) -> None:
        now = time.monotonic()
        if now - last[0] < HEARTBEAT_EVERY_SECONDS and done < 1.0:
            return
        last[0] = now
        pct = max(0, min(100, int(done * 100)))  # rounded down: 100 only when it is finished
        run_in_transaction(engine, lambda conn: conn.execute(update(stress_runs).where(_held(run_id, token))
                                                             .values(progress_pct=pct, heartbeat_at=utcnow())))
    return write


def _finish(engine: Engine, run_id: int, token: str, *, status: str, results: dict | None = None,
            error: str | None = None) -> None:
    values = {"status": status, "finished_at": utcnow(), "heartbeat_at": utcnow(), "error": error}
    if results is not None:
        values.update(results_json=json.dumps(results, default=str, sort_keys=True), progress_pct=100)
    run_in_transaction(engine, lambda conn: conn.execute(
        update(stress_runs).where(_held(run_id, token)).values(**values)))


def run_now(engine: Engine, code: str, a: stress.Assumptions, key_id: int | None = None) -> tuple[int, str]:
    """Queue a run and run it at once, here, as the scheduler would (the demo, `ipledger stress
    --save`): (run id, status: done, failed, or queued if a scheduler took it first)."""
    run_id = run_in_transaction(engine, lambda conn: queue_run(conn, get_program(conn, code), a, key_id))["id"]
    claimed = claim_next(engine, only_id=run_id)
    return run_id, "queued" if claimed is None else execute(engine, *claimed)


def run_queued(engine: Engine, limit: int = 10) -> int:
    """The scheduler's job: run queued stress tests one after another; returns how many ran."""
    ran = 0
    while ran < limit:
        claimed = claim_next(engine)
        if claimed is None:
            break
        status = execute(engine, *claimed)
        log.info("stress test %s %s", claimed[0], status)
        ran += 1
    return ran


# --- reads for people --------------------------------------------------------------------

def stress_summary(conn: Connection, run_id: int) -> dict | None:
    """For the dashboard: a finished run's exhaustion curve by year and fund payout histogram,
    beside the programme's actual fund today (fen). None while the run is not done."""
    row = conn.execute(select(stress_runs.c.status, stress_runs.c.results_json, stress_runs.c.program_id,
                              stress_runs.c.assumptions_json, stress_runs.c.finished_at, programs.c.code)
                       .join(programs, programs.c.id == stress_runs.c.program_id)
                       .where(stress_runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"stress test {run_id} does not exist")
    if row.status != "done":
        return None
    results = json.loads(row.results_json)
    balance, _ = stress._fund_on(conn, row.program_id, business_today())
    return {"run": run_id, "program": row.code, "assumptions": json.loads(row.assumptions_json),
            "finished_at": row.finished_at,
            "exhaustion_probability_by_year": results["exhaustion_probability_by_year"],
            "fund_payout_histogram": results["fund_payout_histogram"],
            "fund_payout": results["fund_payout"], "fund_balance_today_fen": balance,
            "simulated_fund_balance_fen": results["fund"]["balance_fen"]}


PROGRAMS_PAGE = 200


def programs_to_show(conn: Connection, role: str, institution_code: str | None, key_region: str | None,
                     region: str | None) -> list[Program]:
    """The programmes whose stress tests the key may read (`may_stress`), among those involving
    `region` (every programme when None: a pool's, which has no region to choose), by id."""
    shown, after_id = [], 0
    while True:
        page = list_programs(conn, after_id=after_id, limit=PROGRAMS_PAGE, involving_region=region)
        shown += [p for p in page if may_stress(p, role, institution_code, key_region)]
        if len(page) < PROGRAMS_PAGE:
            return shown
        after_id = page[-1].id


def latest_done_runs(conn: Connection, program_ids: list[int]) -> dict[int, int]:
    """Each programme's latest finished run (program id -> run id); programmes with none are absent."""
    if not program_ids:
        return {}
    rows = conn.execute(select(stress_runs.c.program_id, func.max(stress_runs.c.id))
                        .where(stress_runs.c.program_id.in_(program_ids), stress_runs.c.status == "done")
                        .group_by(stress_runs.c.program_id))
    return {program_id: run_id for program_id, run_id in rows}
