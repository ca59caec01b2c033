"""The authorisation matrix: every operation of /openapi.json x every kind of caller x whose
object it names, with the status each must get.

Callers: no key, a revoked key, and a key of each role (admin, bank, insurer, guarantor, pool,
fiscal, auditor). Relations: `own` (the caller's institution's object, or one in its region),
`other` (another institution's object in the same region), `out` (an object out of the caller's
region). The world (`World`) has two regions, Guangzhou (440100, the callers' home) and Chengdu
(510100): three banks with a loan each (own, another Guangzhou bank's, a Chengdu bank's), three
programmes (the callers' home one, where the insurer, guarantor and pool keys are parties;
another Guangzhou one with other parties; a Chengdu one), a fiscal key of Guangzhou and an
auditor key of its Tianhe district (440106).

`MATRIX` maps (method, path template) to a `Row`: how to build the request for a caller and
relation, and the statuses. A row states defaults and overrides compactly:
`Row(build, bank=(201, 404, 404), regional=200)` — a status is one number (every relation) or
an (own, other, out) triple; `everyone` sets all seven roles, `parties` insurer/guarantor/pool,
`regional` fiscal/auditor; roles not given get `default` (403); no key and a revoked key get 401
on /v1 paths. Every POST carries a fresh Idempotency-Key.

Adding an endpoint: `test_every_operation_has_a_row` fails until MATRIX has a row for it (and
fails for a row whose operation no longer exists). Write a builder that returns the request for
(world, caller, relation) — creating what it needs in the world — and state the statuses.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from ledger import accounts as chart
from ledger.journal import ensure_accounts
from ledger.keys import revoke_key
from ledger.terms import terms_to_dict
from tests import factories
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms,
                             credit_code, loan_body, make_key, make_loan, unique)

ROLES = ("admin", "bank", "insurer", "guarantor", "pool", "fiscal", "auditor")
CALLERS = ("none", "revoked") + ROLES
RELATIONS = ("own", "other", "out")
GROUPS = {"everyone": ROLES, "parties": ("insurer", "guarantor", "pool"), "regional": ("fiscal", "auditor")}
HOME, HOME_DISTRICT, AWAY, AWAY_DISTRICT = "440100", "440106", "510100", "510104"


# --- the world ---------------------------------------------------------------------------------

@dataclass
class Book:
    """One bank lending one borrower under one programme (with its own parties)."""

    bank: object
    borrower: object
    program: object
    loan_id: int
    parties: dict


@dataclass
class World:
    books: dict                        # relation -> Book
    institutions: dict                 # caller role -> its institution code (admin: the home bank's)
    keys: dict                         # caller -> headers
    accounts: dict = field(default_factory=dict)  # (caller, relation) -> account id
    _days: itertools.count = field(default_factory=itertools.count)
    _months: itertools.count = field(default_factory=itertools.count)

    def next_day(self, start=date(2025, 4, 1)) -> str:
        """Dates that only move forward (programme versions must start after the latest one)."""
        return (start + timedelta(days=next(self._days))).isoformat()


def _book(region: str, district: str, with_guarantor: bool = True) -> Book:
    parties = {kind: InstitutionFactory(kind=kind, region=region).code
               for kind in ("insurer", "guarantor", "pool", "treasury")}
    terms = api_terms(parties["insurer"], parties["pool"], parties["treasury"])
    if with_guarantor:
        terms["parties"].append({"institution": parties["guarantor"], "role": "guarantor", "share": "0.10"})
    program = ProgramFactory(region=region, terms=terms)
    bank = InstitutionFactory(kind="bank", region=region)
    borrower = BorrowerFactory(bank_id=bank.id, region=district)
    loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code)
    return Book(bank, borrower, program, loan_id, parties)


def _world() -> World:
    books = {"own": _book(HOME, HOME_DISTRICT), "other": _book(HOME, HOME_DISTRICT),
             "out": _book(AWAY, AWAY_DISTRICT)}
    home = books["own"]
    institutions = {"admin": home.bank.code, "bank": home.bank.code, **{
        kind: home.parties[kind] for kind in GROUPS["parties"]}}
    # The fiscal bureau is the city's and the auditor a district's: the home programmes lie
    # within the first's region and cover the second's (both ways of participating).
    for kind, region in (("fiscal", HOME), ("auditor", HOME_DISTRICT)):
        institutions[kind] = InstitutionFactory(kind=kind, region=region).code
    keys = {"none": {}}
    for role in ROLES:
        keys[role] = _bearer(make_key(role, None if role == "admin" else institutions[role]))
    revoked = make_key("bank", home.bank.code)
    factories.tx(lambda conn: revoke_key(conn, revoked.split("_")[1]))
    keys["revoked"] = _bearer(revoked)
    world = World(books, institutions, keys)
    for caller in ROLES:
        owner = factories.tx(lambda conn: _institution_id(conn, institutions[caller]))
        for relation, institution_id in (("own", owner), ("other", books["other"].bank.id),
                                         ("out", books["out"].bank.id)):
            spec = chart.settlement(institution_id)
            world.accounts[caller, relation] = factories.tx(lambda conn: ensure_accounts(conn, [spec]))[spec.code]
    return world


def _institution_id(conn, code: str) -> int:
    from ledger.institutions import get_institution
    return get_institution(conn, code).id


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="session")
def world(engine):
    previous = factories._engine
    factories.bind(engine)  # session fixtures run before the per-test binding in conftest
    try:
        return _world()
    finally:
        factories.bind(previous)


# --- requests ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    path: str
    json: dict | None = None


def fixed(path: str, json: dict | None = None):
    return lambda world, caller, relation: Request(path, json)


def loan_path(suffix: str = "", json=None):
    return lambda w, caller, relation: Request(f"/v1/loans/{w.books[relation].loan_id}{suffix}",
                                               json(w, relation) if json else None)


def program_path(suffix: str = "", json=None):
    return lambda w, caller, relation: Request(f"/v1/programs/{w.books[relation].program.code}{suffix}",
                                               json(w, relation) if json else None)


def institution_body(w, caller, relation):
    region = {"own": HOME, "other": HOME_DISTRICT, "out": AWAY}[relation]
    return Request("/v1/institutions", {"code": unique("M"), "name": "Matrix Bank", "kind": "bank",
                                        "region": region})


def borrower_body(w, caller, relation):
    if relation == "other":  # a fresh customer of another bank: posting its code files the caller's own record
        facts = vars(BorrowerFactory(bank_id=w.books["other"].bank.id, region=HOME_DISTRICT).facts)
        body = {**{k: v for k, v in facts.items() if not k.endswith("_fen")},
                "revenue": _yuan(facts["revenue_fen"]), "total_assets": _yuan(facts["total_assets_fen"])}
    else:
        district = HOME_DISTRICT if relation == "own" else AWAY_DISTRICT
        body = {"credit_code": credit_code(district), "name": "Matrix Firm", "region": district,
                "industry": "software_it", "employees": 50, "revenue": "8000000.00",
                "total_assets": "3000000.00", "private": True}
    if caller == "admin":  # an admin names the bank whose file it posts to (a bank key must not)
        body["bank"] = w.institutions["admin"]
    return Request("/v1/borrowers", body)


def _role(caller: str) -> str:
    """Whose objects `own` names for a caller without a (valid) key: the home bank's."""
    return "bank" if caller in ("none", "revoked") else caller


def _yuan(fen: int) -> str:
    return factories.format_fen(fen)


def program_body(w, caller, relation):
    region = {"own": HOME, "other": HOME_DISTRICT, "out": AWAY}[relation]
    parties = w.books["own"].parties
    return Request("/v1/programs", {"code": unique("m").lower(), "name": "Matrix scheme", "region": region,
                                    "effective_from": "2023-01-01",
                                    "terms": api_terms(parties["insurer"], parties["pool"], parties["treasury"])})


def version_body(w, relation):
    return {"effective_from": w.next_day(), "terms": terms_to_dict(w.books[relation].program.versions[0].terms)}


def loan_post(batch: bool):
    def build(w, caller, relation):
        book = w.books[relation]
        body = loan_body(book.borrower.facts.credit_code, book.program.code)
        return Request("/v1/loans/batch", {"loans": [body]}) if batch else Request("/v1/loans", body)
    return build


def rate_body(w, caller, relation):
    n = next(w._months)  # a month never recorded before: far in the future
    return Request("/v1/reference-rates/LPR1Y", {"month": f"{2100 + n // 12}-{n % 12 + 1:02d}", "rate": "0.0300"})


def account_path(w, caller, relation):
    return Request(f"/v1/accounts/{w.accounts[_role(caller), relation]}/balance")


def institution_path(w, caller, relation):
    code = w.institutions[_role(caller)] if relation == "own" else w.books[relation].bank.code
    return Request(f"/v1/institutions/{code}")


def borrower_path(w, caller, relation):
    return Request(f"/v1/borrowers/{w.books[relation].borrower.facts.credit_code}")


REPAYMENT = lambda w, relation: {"paid_on": "2025-06-01", "principal": "1.00", "interest": "0.10"}  # noqa: E731
FEE = lambda w, relation: {"kind": "appraisal_fee", "amount": "10.00", "paid_on": "2025-02-25"}  # noqa: E731
CONTRIBUTION = lambda w, relation: {"amount": "100.00", "on": "2025-01-05"}  # noqa: E731


# Targets name a region, not an object: `own` a district inside every regional key's region
# (Tianhe), `other` another Guangzhou district (inside the city bureau's, outside the Tianhe
# auditor's), `out` Chengdu.
TARGET_REGIONS = {"own": HOME_DISTRICT, "other": "440103", "out": AWAY}


def target_set_body(w, caller, relation):
    return Request("/v1/target-sets", {"code": unique("matrix").lower(),
                                       "checks": [{"metric": "amount_growth", "comparator": ">", "threshold": "0.25"}]})


def targets_query(path: str, query: str):
    return lambda w, caller, relation: Request(f"{path}?region={TARGET_REGIONS[relation]}&{query}")
# --- claims (issue 8): each default needs a loan of its own, each withdrawal a claim of its own ---

DEFAULT = {"classified_on": "2026-06-01", "overdue_days": 93, "overdue_interest": "0.00"}
WITHDRAWAL = lambda w, relation: {"withdrawn_on": "2026-06-02"}  # noqa: E731
_CLAIMS: dict = {}


def _fresh_loan(book) -> int:
    return make_loan(book.bank.id, book.borrower.facts.credit_code, book.program.code)


def _open_claim(book) -> int:
    from ledger.claims import open_claim
    from ledger.journal import SYSTEM
    loan_id = _fresh_loan(book)
    return factories.tx(lambda conn: open_claim(conn, loan_id, book.bank.id, date(2026, 6, 1), SYSTEM,
                                                overdue_days=93))["id"]


def _claim_of(w, relation) -> int:
    """One claim per book for the reads (the world is per database, hence its id in the key)."""
    key = (id(w), relation)
    if key not in _CLAIMS:
        _CLAIMS[key] = _open_claim(w.books[relation])
    return _CLAIMS[key]


def default_request(w, caller, relation):
    return Request(f"/v1/loans/{_fresh_loan(w.books[relation])}/default", DEFAULT)


def claim_path(suffix: str = "", json=None, fresh: bool = False):
    def build(w, caller, relation):
        claim_id = _open_claim(w.books[relation]) if fresh else _claim_of(w, relation)
        return Request(f"/v1/claims/{claim_id}{suffix}", json(w, relation) if json else None)
    return build


def reversal_request(w, caller, relation):
    """A correction of a fresh 1.00 repayment on the book's loan (one per request: an entry is
    reversed once)."""
    from ledger.loans import record_repayment
    from ledger.journal import SYSTEM
    book = w.books[relation]
    repaid = factories.tx(lambda conn: record_repayment(conn, book.loan_id, book.bank.id, date(2025, 6, 1),
                                                        100, 0, SYSTEM))
    return Request(f"/v1/loans/{book.loan_id}/reversals", {"entry": repaid["entry"], "reason": "posted twice"})


_RECONCILIATIONS: dict = {}
EMPTY_STATEMENT = {"statement_date": "2026-06-30", "lines": []}


def reconciliation_path(w, caller, relation):
    """`own`: a reconciliation of the caller's institution (a party) or of the home insurer;
    `other`/`out`: one of the other Guangzhou / the Chengdu programme's insurer."""
    from ledger.institutions import get_institution
    from ledger.journal import SYSTEM
    from ledger.reconciliation import Statement, reconcile
    role = _role(caller)
    code = (w.institutions[role] if role in GROUPS["parties"] else w.books["own"].parties["insurer"]) \
        if relation == "own" else w.books[relation].parties["insurer"]
    key = (id(w), code)
    if key not in _RECONCILIATIONS:
        _RECONCILIATIONS[key] = factories.tx(lambda conn: reconcile(
            conn, get_institution(conn, code).id, Statement(date(2026, 6, 30), ()), SYSTEM))["id"]
    return Request(f"/v1/reconciliations/{_RECONCILIATIONS[key]}")


PAYMENT = {"amount": "1.00", "paid_on": "2026-06-10"}
RECOVERY = {"received_on": "2026-09-01", "gross": "1.00", "costs": "0.00", "source": "borrower"}


def _payable_claim(book, caller: str) -> int:
    """A fresh claim the calling party can pay 1.00 on: the pays-first insurer has paid in full
    (unless it is the caller), and a pool's fund-capped share has a fund behind it."""
    from ledger import programs
    from ledger.claim_payments import pay_claim
    from ledger.claims import get_claim
    from ledger.journal import SYSTEM
    if caller == "pool":
        pool_id = factories.tx(lambda conn: _institution_id(conn, book.parties["pool"]))
        factories.tx(lambda conn: programs.contribute(conn, book.program.code, pool_id, 10_00,
                                                      date(2026, 5, 1), SYSTEM))
    from ledger.claims import open_claim
    # A borrower of its own: the home borrower's many loans used up its coverage for the year.
    borrower = BorrowerFactory(bank_id=book.bank.id, region=HOME_DISTRICT).facts.credit_code
    loan_id = make_loan(book.bank.id, borrower, book.program.code)
    claim = factories.tx(lambda conn: open_claim(conn, loan_id, book.bank.id, date(2026, 6, 1), SYSTEM,
                                                 overdue_days=93))
    first = next(s for s in claim["shares"] if s["pays_first"])
    if caller != "insurer":
        factories.tx(lambda conn: pay_claim(conn, claim["id"], first["institution_id"], first["amount_fen"],
                                            date(2026, 6, 5), unique("first"), SYSTEM))
    return claim["id"]


def payment_request(w, caller, relation):
    if relation == "own" and caller in GROUPS["parties"]:
        claim_id = _payable_claim(w.books["own"], caller)
    else:
        claim_id = _claim_of(w, relation)
    return Request(f"/v1/claims/{claim_id}/payments", {**PAYMENT, "reference": unique("matrix")})


def recovery_request(w, caller, relation):
    from ledger.claims import get_claim
    claim_id = _claim_of(w, relation)
    loan_id = factories.tx(lambda conn: get_claim(conn, claim_id))["loan_id"]
    return Request(f"/v1/loans/{loan_id}/recoveries", RECOVERY)
# --- stress tests (issue 12): queued only (no scheduler runs in these tests) ---------------------

STRESS = lambda w, relation: {"years": 2, "scenarios": 10, "seed": 1, "default_probability": "0.03",  # noqa: E731
                              "asset_correlation": "0.15"}
_STRESS_RUNS: dict = {}


def stress_run_path(w, caller, relation):
    from ledger import stress_runs
    from ledger.programs import get_program
    key = (id(w), relation)
    code = w.books[relation].program.code
    if key not in _STRESS_RUNS:
        def queue(conn):
            a = stress_runs.assumptions_from_dict(STRESS(w, relation))
            return stress_runs.queue_run(conn, get_program(conn, code), a, None)["id"]
        _STRESS_RUNS[key] = factories.tx(queue)
    return Request(f"/v1/programs/{code}/stress-tests/{_STRESS_RUNS[key]}")


# --- the matrix --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    build: object
    default: int = 403
    unauthenticated: int = 401
    statuses: dict = field(default_factory=dict)

    def __init__(self, build, *, default=403, unauthenticated=401, **statuses):
        object.__setattr__(self, "build", build)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "unauthenticated", unauthenticated)
        object.__setattr__(self, "statuses", statuses)

    def expected(self, caller: str, relation: str) -> int:
        if caller in ("none", "revoked"):
            return self.unauthenticated
        status = self.default
        for name in ("everyone", *(g for g, members in GROUPS.items() if caller in members and g != "everyone"), caller):
            status = self.statuses.get(name, status)
        return status[RELATIONS.index(relation)] if isinstance(status, tuple) else status


OPEN = {"unauthenticated": 200, "everyone": 200}  # no key needed
OWN_ONLY = (200, 404, 404)
OWN_ONLY_201 = (201, 404, 404)
IN_REGION = (200, 200, 404)

MATRIX = {
    ("GET", "/healthz"): Row(fixed("/healthz"), **OPEN),
    ("GET", "/readyz"): Row(fixed("/readyz"), **OPEN),
    ("GET", "/v1/institutions"): Row(fixed("/v1/institutions"), everyone=200),
    ("POST", "/v1/institutions"): Row(institution_body, admin=201),
    ("GET", "/v1/institutions/{code}"): Row(institution_path, everyone=200),
    # A bank's borrower records are its own file: posting another bank's customer files its own record.
    ("POST", "/v1/borrowers"): Row(borrower_body, admin=201, bank=201),
    ("GET", "/v1/borrowers/{credit_code}"): Row(borrower_path, admin=200, bank=OWN_ONLY, parties=OWN_ONLY,
                                                regional=IN_REGION),
    ("GET", "/v1/reference-rates/{name}"): Row(fixed("/v1/reference-rates/LPR1Y"), everyone=200),
    ("POST", "/v1/reference-rates/{name}"): Row(rate_body, admin=201, fiscal=201),
    ("GET", "/v1/reference-rates/{name}/{month}"): Row(fixed("/v1/reference-rates/LPR1Y/2025-05"), everyone=200),
    ("GET", "/v1/programs"): Row(fixed("/v1/programs"), everyone=200),
    ("POST", "/v1/programs"): Row(program_body, admin=201, fiscal=(201, 201, 403)),
    ("GET", "/v1/programs/{code}"): Row(program_path(), everyone=200, regional=IN_REGION),
    ("POST", "/v1/programs/{code}/versions"): Row(program_path("/versions", version_body), admin=201,
                                                  fiscal=(201, 201, 404)),
    ("POST", "/v1/programs/{code}/fund-contributions"): Row(program_path("/fund-contributions", CONTRIBUTION),
                                                            fiscal=(201, 201, 404), pool=(201, 403, 403)),
    # Fiscal bureaus participating in the programme, its pools, admins; 404 out of scope.
    ("POST", "/v1/programs/{code}/stress-tests"): Row(program_path("/stress-tests", STRESS), admin=202,
                                                      fiscal=(202, 202, 404), pool=(202, 404, 404)),
    ("GET", "/v1/programs/{code}/stress-tests"): Row(program_path("/stress-tests"), admin=200,
                                                     fiscal=IN_REGION, pool=OWN_ONLY),
    ("GET", "/v1/programs/{code}/stress-tests/{run_id}"): Row(stress_run_path, admin=200, fiscal=IN_REGION,
                                                              pool=OWN_ONLY),
    ("GET", "/v1/programs/{code}/fund"): Row(program_path("/fund"), admin=200, parties=OWN_ONLY,
                                             regional=IN_REGION),
    ("GET", "/v1/loans"): Row(fixed("/v1/loans"), everyone=200),
    # A loan for a borrower another bank registered is a 422 (not registered by this bank).
    ("POST", "/v1/loans"): Row(loan_post(batch=False), bank=(201, 422, 422)),
    ("POST", "/v1/loans/batch"): Row(loan_post(batch=True), bank=(201, 422, 422)),
    ("GET", "/v1/loans/{loan_id}"): Row(loan_path(), admin=200, bank=OWN_ONLY, parties=OWN_ONLY, regional=IN_REGION),
    ("POST", "/v1/loans/{loan_id}/repayments"): Row(loan_path("/repayments", REPAYMENT), bank=(201, 404, 404)),
    ("POST", "/v1/loans/{loan_id}/fees"): Row(loan_path("/fees", FEE), bank=(201, 404, 404)),
    ("POST", "/v1/loans/{loan_id}/reversals"): Row(reversal_request, bank=(201, 404, 404)),
    ("GET", "/v1/accounts"): Row(fixed("/v1/accounts"), everyone=200),
    # `other` is a Guangzhou bank's account: outside the district auditor's region.
    ("GET", "/v1/accounts/{account_id}/balance"): Row(account_path, admin=200, bank=OWN_ONLY, parties=OWN_ONLY,
                                                      fiscal=IN_REGION, auditor=OWN_ONLY),
    ("GET", "/v1/journal"): Row(fixed("/v1/journal"), everyone=200),
    ("GET", "/v1/audit/verify"): Row(fixed("/v1/audit/verify"), admin=200, auditor=200),
    ("GET", "/v1/audit/head"): Row(fixed("/v1/audit/head"), admin=200, auditor=200),
    ("GET", "/v1/targets"): Row(targets_query("/v1/targets", "year=2025"), admin=200, fiscal=IN_REGION,
                                auditor=OWN_ONLY),
    ("GET", "/v1/targets/series"): Row(targets_query("/v1/targets/series", "from=2023&to=2025"), admin=200,
                                       fiscal=IN_REGION, auditor=OWN_ONLY),
    ("GET", "/v1/target-sets"): Row(fixed("/v1/target-sets"), admin=200, regional=200),
    ("POST", "/v1/target-sets"): Row(target_set_body, admin=201),
    # --- claims (issue 8) ---
    ("POST", "/v1/loans/{loan_id}/default"): Row(default_request, bank=(201, 404, 404)),
    ("GET", "/v1/claims"): Row(fixed("/v1/claims"), everyone=200),
    ("GET", "/v1/claims/{claim_id}"): Row(claim_path(), admin=200, bank=OWN_ONLY, parties=OWN_ONLY,
                                          regional=IN_REGION),
    ("POST", "/v1/claims/{claim_id}/withdrawal"): Row(claim_path("/withdrawal", WITHDRAWAL, fresh=True),
                                                      bank=(201, 404, 404)),
    # Loss histories: every role reads, scoped to its own rows or region (tests/api/test_losses.py).
    ("GET", "/v1/audit/losses"): Row(fixed("/v1/audit/losses"), everyone=200),
    # Reconciliation: parties post their statements and read their own; auditors read those of
    # institutions in their region (the programmes' parties are Guangzhou's, outside the district
    # auditor's Tianhe), admin all.
    ("POST", "/v1/reconciliations"): Row(fixed("/v1/reconciliations", EMPTY_STATEMENT), parties=201),
    ("GET", "/v1/reconciliations"): Row(fixed("/v1/reconciliations"), admin=200, auditor=200, parties=200),
    ("GET", "/v1/reconciliations/{reconciliation_id}"): Row(reconciliation_path, admin=200, auditor=404,
                                                            parties=OWN_ONLY),
    # Banks, bureaus, auditors and admins never pay (403); a party pays on its own claims only.
    ("POST", "/v1/claims/{claim_id}/payments"): Row(payment_request, parties=OWN_ONLY_201),
    ("POST", "/v1/loans/{loan_id}/recoveries"): Row(recovery_request, bank=(201, 404, 404)),
    # --- job runs (issue 9): operational, not regional: admins, fiscal bureaus and auditors
    ("GET", "/v1/jobs/runs"): Row(fixed("/v1/jobs/runs?job=draft_subsidy_batches"), admin=200, regional=200),
}


# --- subsidy batches (issue 9): the home fiscal bureau drafts and acts on its own batches; `other`
# is another Guangzhou bureau's batch of the other home programme (the district auditor reads it);
# `out` a Chengdu bureau's. A batch that must change state is made fresh for the caller who may
# change it, and shared by the callers refused.

def _bureau_of(w, relation):
    if relation == "own":
        return w.institutions["fiscal"]
    key = f"bureau:{relation}"
    if key not in w.institutions:
        w.institutions[key] = InstitutionFactory(kind="fiscal", region=HOME if relation == "other" else AWAY).code
    return w.institutions[key]


def subsidy_batch(state: str, suffix: str = ""):
    def build(w, caller, relation):
        from tests.api.subsidy_world import batch_in
        program = w.books[relation].program
        if caller == "fiscal" and relation == "own" and suffix:
            return Request(f"/v1/subsidy-batches/{batch_in(program, _bureau_of(w, relation), state)}{suffix}")
        cache = w.accounts.setdefault("subsidy_batches", {})
        if (state, relation) not in cache:
            cache[state, relation] = batch_in(program, _bureau_of(w, relation), state)
        return Request(f"/v1/subsidy-batches/{cache[state, relation]}{suffix}")
    return build


def subsidy_draft(w, caller, relation):
    from tests.api.subsidy_world import fresh_period
    program = w.books[relation].program.code
    return Request("/v1/subsidy-batches", {"program": program, "period": fresh_period(program)})


FISCAL_OWN = (200, 404, 404)
MATRIX.update({
    ("GET", "/v1/subsidy-batches"): Row(fixed("/v1/subsidy-batches"), admin=200, regional=200),
    ("POST", "/v1/subsidy-batches"): Row(subsidy_draft, fiscal=(201, 201, 404)),
    ("GET", "/v1/subsidy-batches/{batch_id}"): Row(subsidy_batch("draft"), admin=200, regional=IN_REGION),
    ("GET", "/v1/subsidy-batches/{batch_id}/lines"): Row(subsidy_batch("draft", "/lines"), admin=200,
                                                         regional=IN_REGION),
    ("POST", "/v1/subsidy-batches/{batch_id}/approve"): Row(subsidy_batch("draft", "/approve"), fiscal=FISCAL_OWN),
    ("POST", "/v1/subsidy-batches/{batch_id}/cancel"): Row(subsidy_batch("draft", "/cancel"), fiscal=FISCAL_OWN),
    ("POST", "/v1/subsidy-batches/{batch_id}/post"): Row(subsidy_batch("approved", "/post"), fiscal=FISCAL_OWN),
    ("POST", "/v1/subsidy-batches/{batch_id}/reverse"): Row(subsidy_batch("posted", "/reverse"), fiscal=FISCAL_OWN),
})


def test_every_operation_has_a_row(client):
    spec = client.get("/openapi.json").get_json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    assert not documented - set(MATRIX), f"operations without an authorisation row: {sorted(documented - set(MATRIX))}"
    assert not set(MATRIX) - documented, f"rows for operations that do not exist: {sorted(set(MATRIX) - documented)}"


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", list(MATRIX), ids=" ".join)
def test_authorisation(client, world, operation, caller, relation):
    method, _template = operation
    row = MATRIX[operation]
    request = row.build(world, caller, relation)
    headers = dict(world.keys[caller])
    if method == "POST":
        headers["Idempotency-Key"] = unique("authz")
    response = client.open(request.path, method=method, json=request.json, headers=headers)
    expected = row.expected(caller, relation)
    assert response.status_code == expected, (f"{method} {request.path} as {caller} ({relation}): "
                                              f"{response.status_code}, expected {expected}: "
                                              f"{response.get_data(as_text=True)[:300]}")
