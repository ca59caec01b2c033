"""`/v1/programs/{code}/stress-tests`: queue a pool stress test and read its results (API.md
Stress tests). Fiscal bureaus participating in the programme, its pools and admins; others get
404 for a programme out of their scope. The simulation is `ledger.stress`, run by the scheduler
process (`ledger.stress_runs`), never by a web worker: POST answers 202 at once.
"""
from flask import make_response
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.utils import deepupdate
from marshmallow import fields

from api.auth import principal, require
from api.csv_export import CSV, render as render_csv, wants_csv
from api.db import read, tx
from api.fields import Money, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from ledger import stress_runs
from ledger.errors import NotFound
from ledger.programs import get_program
from ledger.schema import STRESS_RUN_STATUSES
from ledger.sharing import CAP_ORDER

blp = Blueprint("stress_tests", __name__, url_prefix="/v1/programs",
                description="Pool stress tests (docs/STRESS.md): Monte Carlo of the programme's live "
                            "loans defaulting (one-factor Gaussian copula), each claim split by the "
                            "claims engine's own rules, to see how likely the fund is to run dry and "
                            "who loses what. Queued with 202; the scheduler process runs it, "
                            "updating `progress`. Same assumptions and seed, same results.")

ROLES = ("fiscal", "pool", "admin")


class ProbabilityByYearOut(Output):
    year = fields.Integer(metadata={"description": "simulated year (1 = the twelve months after as_of)"})
    probability = fields.String(metadata={"description": "share of scenarios with the fund exhausted "
                                                         "by the end of that year (decimal string)"})


class DistributionOut(Output):
    mean = Money()
    p50 = Money()
    p95 = Money()
    p99 = Money()
    max = Money()


class ExpectedP99Out(Output):
    expected = Money(metadata={"description": "mean over scenarios"})
    p99 = Money(metadata={"description": "99th percentile (nearest rank)"})


class PartyLossOut(ExpectedP99Out):
    institution = fields.String()
    role = fields.String()


class HistogramBinOut(Output):
    from_ = Money(data_key="from", attribute="from", metadata={"description": "inclusive"})
    to = Money(metadata={"description": "exclusive"})
    count = fields.Integer()


class StressFundOut(Output):
    balance = Money(attribute="balance_fen", metadata={"description": "the fund's balance on as_of"})
    annual_contribution = Money(attribute="annual_contribution_fen",
                                metadata={"description": "paid in at the start of each simulated year"})


class TargetOut(Output):
    target = fields.String(metadata={"description": "the exhaustion probability aimed at"})
    annual_contribution = Money(attribute="annual_contribution_fen", metadata={
        "description": "the smallest annual contribution (whole yuan, to 0.1%) found by bisection "
                       "keeping exhaustion within the horizon at or below the target"})
    probes = fields.Integer()


CutsOut = Output.from_dict({cap: Money() for cap in CAP_ORDER}, name="StressCutsOut")


class ResultsOut(Output):
    scenarios = fields.Integer()
    years = fields.Integer()
    loans = fields.Integer(metadata={"description": "live loans simulated (with new lending)"})
    fund = fields.Nested(StressFundOut)
    claims_mean = fields.String(metadata={"description": "claims per scenario, mean"})
    exhaustion_probability_by_year = fields.List(fields.Nested(ProbabilityByYearOut))
    fund_payout = fields.Nested(DistributionOut, metadata={"description": "what the fund pays over the horizon"})
    fund_payout_histogram = fields.List(fields.Nested(HistogramBinOut))
    party_loss = fields.List(fields.Nested(PartyLossOut), metadata={
        "description": "each party's shares less the recoveries returned to it"})
    bank_loss = fields.Nested(ExpectedP99Out, metadata={"description": "the banks' retained loss less recoveries"})
    bank_extra_loss = fields.Nested(ExpectedP99Out, metadata={
        "description": "what caps and the fund's exhaustion cut off the parties' shares (borne by banks)"})
    bank_extra_loss_by_cap = fields.Nested(CutsOut, metadata={"description": "expected, by cap"})
    uncovered_claims_mean = fields.String(metadata={
        "description": "claims per scenario whose pool share the fund could not pay in full, mean"})
    contribution_for_target = fields.Nested(TargetOut, allow_none=True, metadata={
        "description": "null unless target_exhaustion_probability was given"})


class RunSummaryOut(Output):
    id = fields.Integer()
    program = fields.String()
    assumptions = fields.Dict(metadata={"description": "as given, with the seed and as_of filled in"})
    status = fields.String(metadata={"enum": list(STRESS_RUN_STATUSES)})
    progress = fields.Integer(metadata={"description": "percent done, 0-100"})
    error = fields.String(allow_none=True, metadata={"description": "why a failed run failed"})
    attempts = fields.Integer()
    created_by = fields.String(allow_none=True)
    created_at = UtcTimestamp()
    started_at = UtcTimestamp(allow_none=True)
    finished_at = UtcTimestamp(allow_none=True)


class RunOut(RunSummaryOut):
    results = fields.Nested(ResultsOut, allow_none=True, metadata={"description": "null until done"})


def _in_scope(conn, code: str):
    program = get_program(conn, code)
    who = principal()
    if not stress_runs.may_stress(program, who.role, who.institution_code, who.region):
        raise NotFound(f"programme {code} does not exist")
    return program


@blp.route("/<code>/stress-tests")
class StressTests(MethodView):
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_schema(RunSummaryOut, "StressRunPage"))
    @require(*ROLES)
    def get(self, args, code):
        """The programme's stress tests by id (without their results)."""
        with read() as conn:
            _in_scope(conn, code)
            rows = stress_runs.list_runs(conn, code, after_id=args["after"], limit=args["limit"] + 1)
        return page(rows, args["limit"])

    @require(*ROLES)
    @write("optional")
    @blp.arguments(stress_runs.AssumptionsIn())
    @blp.response(202, RunOut)
    def post(self, assumptions, code):
        """Queue a stress test of the programme's pool; the scheduler runs it (poll the Location)."""
        program = _in_scope(tx(), code)
        run = stress_runs.queue_run(tx(), program, assumptions, principal().key_id)
        return run, 202, {"Location": f"/v1/programs/{code}/stress-tests/{run['id']}"}


CSV_ONE_DOC = {"description": "The run: JSON; with `Accept: text/csv`, its results as "
                              "`section,key,value` rows (a header row first; none until done)",
               "content": {CSV: {"schema": {"type": "string"}}}}


def _csv_one(view):
    def wrapper(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        if response.status_code != 200 or not wants_csv():
            return response
        return render_csv(result_rows(response.get_json()["results"]), lambda row: [row], None)
    wrapper.__name__, wrapper.__doc__ = view.__name__, view.__doc__
    wrapper._apidoc = deepupdate(dict(getattr(view, "_apidoc", {})),
                                 {"manual_doc": {"responses": {"200": CSV_ONE_DOC}}})
    return wrapper


@blp.route("/<code>/stress-tests/<id:run_id>")
@_csv_one
@blp.response(200, RunOut)
@require(*ROLES)
def get_stress_test(code, run_id):
    """One stress test: status, progress and, once done, its results (also as CSV)."""
    with read() as conn:
        _in_scope(conn, code)
        return stress_runs.get_run(conn, code, run_id)


def result_rows(results: dict | None) -> list[dict]:
    """Rendered results as (section, key, value) rows: the CSV of one run."""
    if results is None:
        return []
    rows = [{"section": "exhaustion_probability_by_year", "key": str(y["year"]), "value": y["probability"]}
            for y in results["exhaustion_probability_by_year"]]
    for section in ("fund", "fund_payout", "bank_loss", "bank_extra_loss", "bank_extra_loss_by_cap"):
        rows += [{"section": section, "key": k, "value": v} for k, v in results[section].items()]
    rows += [{"section": "party_loss", "key": f"{p['institution']}:{k}", "value": p[k]}
             for p in results["party_loss"] for k in ("expected", "p99")]
    rows += [{"section": "fund_payout_histogram", "key": f"{b['from']}-{b['to']}", "value": b["count"]}
             for b in results["fund_payout_histogram"]]
    rows += [{"section": "summary", "key": k, "value": results[k]}
             for k in ("scenarios", "years", "loans", "claims_mean", "uncovered_claims_mean")]
    target = results["contribution_for_target"]
    if target:
        rows.append({"section": "contribution_for_target", "key": target["target"],
                     "value": target["annual_contribution"]})
    return rows
