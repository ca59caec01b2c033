"""schemathesis against the app in-process: every operation of /openapi.json, with a key of each role.

Each operation is fuzzed once per role (`test_...[POST /v1/loans][postgres-bank]`) with a valid
key of that role, positive and negative data, schemathesis's examples, coverage and fuzzing
phases, and these checks: not a server error, status code conformance, content type
conformance, response schema conformance, response headers conformance, negative data
rejection. A 4xx for a negative example is fine; a 5xx never is. The run has a database of its
own (fuzzed writes never meet other tests' data) with a small book in it, and half the cases
name its objects in their path (`before_call`), so that bodies are fuzzed past the 404.

Bounded for CI: `IPLEDGER_FUZZ_EXAMPLES` (default 10) examples per operation, role and phase
(about 30 s on SQLite and 55 s on PostgreSQL on 2 cores). `make fuzz` searches longer (200).
Each failure prints a curl line that reproduces it.
"""
from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests import factories

ROLES = ("admin", "bank", "insurer", "guarantor", "pool", "fiscal", "auditor")
EXAMPLES = int(os.environ.get("IPLEDGER_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection]

# Found by this run and owned by a change in flight elsewhere: the check named is skipped for
# the operation until that change lands (then delete the line).
KNOWN_ISSUES: dict = {}


def _schema():
    """The document of an app whose database is never opened: loading it needs no data."""
    from api import create_app
    from ledger.db import make_engine
    config = schemathesis.Config.from_dict({
        "seed": 20251122,
        # Keys are ours (one per role, below), not generated: a valid key reaches the views.
        # Query parameters the document does not list are ignored by design (the API's
        # description says so), so they are not sent as "negative" data.
        "generation": {"mode": "all", "max-examples": EXAMPLES, "with-security-parameters": False,
                       "allow-extra-parameters": False},
        "phases": {"stateful": {"enabled": False}},
    })
    return schemathesis.openapi.from_wsgi("/openapi.json", create_app(make_engine("sqlite://")), config=config)


schema = _schema()
# Path values of the fuzz world's objects, by operation path and parameter (set by role_keys).
WORLD_PATHS: dict[str, dict[str, object]] = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    """Aim half the cases (chosen by a checksum of the case, so a run is reproducible) at real
    objects: a random id is almost never a loan, so bodies of /v1/loans/{id}/... would never
    get past the 404. schemathesis re-validates the case after this hook, so a negative path
    value replaced by a valid one is no longer counted as negative."""
    values = WORLD_PATHS.get(case.operation.path)
    if values and zlib.crc32(repr((case.body, case.query, case.headers)).encode()) % 2 == 0:
        case.path_parameters.update({name: value for name, value in values.items() if name in case.path_parameters})


@pytest.fixture(scope="session")
def fuzz_app(databases):
    from api import create_app
    engine = databases.create()
    yield create_app(engine, {"TESTING": True})
    databases.drop(engine)


@pytest.fixture(scope="session")
def role_keys(fuzz_app):
    """A programme with its parties, a bank with a loan under it, and a key of each role."""
    engine, previous = fuzz_app.extensions["ipledger.engine"], factories._engine
    factories.bind(engine)
    try:
        program = factories.ProgramFactory(region="440100")
        bank = factories.InstitutionFactory(kind="bank", region="440100")
        borrower = factories.BorrowerFactory(bank_id=bank.id, region="440106").facts.credit_code
        loan_id = factories.make_loan(bank.id, borrower, program.code)
        parties = program.versions[0].terms.parties
        codes = {"bank": bank.code, "insurer": parties[0].institution, "pool": parties[1].institution}
        _aim(fuzz_app, program.code, bank.code, borrower, loan_id)
        _aim_claims(bank.id, borrower, program.code)
        for role in ("guarantor", "fiscal", "auditor"):
            codes[role] = factories.InstitutionFactory(kind=role, region="440000").code
        _aim_subsidy_batch(program, codes["fiscal"])
        _aim_reconciliation(codes["pool"])
        _aim_stress_run(program.code)
        _aim_job_runs(engine)
        return {role: factories.make_key(role, codes.get(role)) for role in ROLES}
    finally:
        factories.bind(previous)


def _aim(app, program: str, bank: str, borrower: str, loan_id: int) -> None:
    with app.test_client() as client:
        admin = {"Authorization": f"Bearer {factories.make_key('admin')}"}
        account = client.get(f"/v1/loans/{loan_id}", headers=admin).get_json()["events"][0]["postings"][0]["account"]
    for path in schema:
        if path.startswith("/v1/programs/{code}"):
            WORLD_PATHS[path] = {"code": program}
        elif path.startswith("/v1/loans/{loan_id}"):
            WORLD_PATHS[path] = {"loan_id": loan_id}
    WORLD_PATHS.update({"/v1/institutions/{code}": {"code": bank}, "/v1/borrowers/{credit_code}": {"credit_code": borrower},
                        "/v1/accounts/{account_id}/balance": {"account_id": account},
                        "/v1/reference-rates/{name}": {"name": "LPR1Y"},
                        "/v1/reference-rates/{name}/{month}": {"name": "LPR1Y", "month": "2025-05"}})


def _aim_claims(bank_id: int, borrower: str, program: str) -> None:
    """Claims (issue 8): defaults go to a loan of their own (a default that succeeds must not
    turn the shared loan's repayments into 409s), claim paths (payments included) to a real
    open claim, recoveries to that claim's loan."""
    from datetime import date

    from ledger.claims import open_claim
    from ledger.journal import SYSTEM
    to_default, claimed = (factories.make_loan(bank_id, borrower, program) for _ in range(2))
    claim = factories.tx(lambda conn: open_claim(conn, claimed, bank_id, date(2026, 6, 1), SYSTEM,
                                                 overdue_days=93))
    WORLD_PATHS["/v1/loans/{loan_id}/default"] = {"loan_id": to_default}
    # Corrections (/v1/loans/{loan_id}/reversals) are aimed at the shared loan by `_aim`: a
    # fuzzed entry id then meets the "not a repayment or fee of this loan" rule, not the 404.
    for path in ("/v1/claims/{claim_id}", "/v1/claims/{claim_id}/withdrawal", "/v1/claims/{claim_id}/payments"):
        WORLD_PATHS[path] = {"claim_id": claim["id"]}
    # Recoveries need the loan with the live claim (the shared loan has none: all 409s).
    WORLD_PATHS["/v1/loans/{loan_id}/recoveries"] = {"loan_id": claimed}


@schema.parametrize()
@pytest.mark.parametrize("role", ROLES)
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_survives_fuzzing(case, role, fuzz_app, role_keys):
    skipped, _why = KNOWN_ISSUES.get(case.operation.label, (None, None))
    checks = [check for check in CHECKS if check is not skipped]
    case.call_and_validate(app=fuzz_app, headers={"Authorization": f"Bearer {role_keys[role]}"}, checks=checks)


def _aim_subsidy_batch(program, fiscal: str) -> None:
    """A draft subsidy batch of the world's programme by the fiscal key's bureau (drafted by its
    CLI, so the fuzzed fiscal key may approve, post, cancel and reverse it)."""
    from tests.api.subsidy_world import batch_in
    batch_id = batch_in(program, fiscal, "draft")
    for path in schema:
        if path.startswith("/v1/subsidy-batches/{batch_id}"):
            WORLD_PATHS[path] = {"batch_id": batch_id}


def _aim_reconciliation(pool: str) -> None:
    """A reconciliation of the fuzzed pool key's institution, so reads get past the 404."""
    from datetime import date

    from ledger.institutions import get_institution
    from ledger.journal import SYSTEM
    from ledger.reconciliation import Statement, reconcile
    made = factories.tx(lambda conn: reconcile(conn, get_institution(conn, pool).id,
                                               Statement(date(2026, 6, 30), ()), SYSTEM))
    WORLD_PATHS["/v1/reconciliations/{reconciliation_id}"] = {"reconciliation_id": made["id"]}
def _aim_stress_run(program: str) -> None:
    """A queued stress test of the world's programme (no scheduler runs here: it stays queued)."""
    from ledger import stress_runs
    from ledger.programs import get_program

    def queue(conn):
        a = stress_runs.assumptions_from_dict({"default_probability": "0.03", "asset_correlation": "0.15",
                                               "scenarios": 10, "years": 1, "seed": 1})
        return stress_runs.queue_run(conn, get_program(conn, program), a, None)["id"]
    WORLD_PATHS["/v1/programs/{code}/stress-tests/{run_id}"] = {"code": program, "run_id": factories.tx(queue)}
def _aim_job_runs(engine) -> None:
    """Job runs to list (issue 9): one done with counts, one failed (no counts, a detail)."""
    from jobs import runs
    runs.run_once(engine, "fuzz_world_job", "2026-01-05", lambda: runs.Outcome("made 1 thing", {"things": 1}))
    with pytest.raises(RuntimeError):
        runs.run_once(engine, "fuzz_world_job", "2026-01-06", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
