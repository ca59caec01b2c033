"""`/v1/targets`, `/v1/targets/series` and `/v1/target-sets`: a region's yearly figures, growth
and target checks (ledger.targets), for fiscal and auditor keys within their region."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import actor, may_see_region, principal, require
from api.db import read, tx
from api.idempotency import write
from api.fields import Choice, Code, QueryInteger, Region, RequestSchema, UtcTimestamp
from api.openapi import Output
from ledger import targets
from ledger.errors import NotFound
from ledger.money import format_yuan

blp = Blueprint("targets", __name__, url_prefix="/v1",
                description="Targets: yearly pledge financing by region against policy targets")

FIRST_YEAR, LAST_YEAR = 1990, 2100
RATIO_DOC = {"description": "an exact ratio as a decimal string (6 places, half up); null when undefined"}


class TargetsQuery(RequestSchema):
    region = Region(required=True)
    year = QueryInteger(required=True, low=FIRST_YEAR, high=LAST_YEAR)
    basis = Choice(targets.BASES, load_default="registration",
                   metadata={"description": "the year of the loan's earliest pledge registration (default) "
                                            "or of its start date"})
    target_set = Code(load_default="key-city-2018", metadata={"description": "a code of GET /v1/target-sets"})
    fresh = Choice(("true", "false"), load_default="false", metadata={
        "description": "true: compute now from the books instead of the nightly snapshot"})


class SeriesQuery(RequestSchema):
    region = Region(required=True)
    to = QueryInteger(required=True, low=FIRST_YEAR, high=LAST_YEAR, data_key="to")
    from_ = QueryInteger(required=True, low=FIRST_YEAR, high=LAST_YEAR, data_key="from")
    basis = Choice(targets.BASES, load_default="registration")
    fresh = Choice(("true", "false"), load_default="false", metadata={
        "description": "true: compute now from the books instead of the nightly snapshot"})


class FiguresOut(Output):
    amount = fields.String(metadata={"description": "yuan"})
    count = fields.Integer()
    pledge_count = fields.Integer()
    insured_amount = fields.String(metadata={"description": "yuan"})
    enterprise_count = fields.Integer()
    sme_enterprise_count = fields.Integer()
    sme_count = fields.Integer()
    sme_share_count = fields.String(allow_none=True, metadata=RATIO_DOC)
    sme_share_amount = fields.String(allow_none=True, metadata=RATIO_DOC)
    inclusive_share_count = fields.String(allow_none=True, metadata=RATIO_DOC)


class GrowthOut(Output):
    amount = fields.String(allow_none=True, metadata=RATIO_DOC)
    count = fields.String(allow_none=True, metadata=RATIO_DOC)
    pledge_count = fields.String(allow_none=True, metadata=RATIO_DOC)
    insured_amount = fields.String(allow_none=True, metadata=RATIO_DOC)
    enterprise_count = fields.String(allow_none=True, metadata=RATIO_DOC)
    sme_enterprise_count = fields.String(allow_none=True, metadata=RATIO_DOC)


class CheckOut(Output):
    metric = fields.String()
    comparator = fields.String(metadata={"enum": list(targets.COMPARATORS)})
    threshold = fields.String(metadata=RATIO_DOC)
    value = fields.String(allow_none=True, metadata=RATIO_DOC)
    # `pass` is a Python keyword: the attribute is `passed`, the JSON field `pass`.
    passed = fields.Boolean(data_key="pass")


class TargetsOut(FiguresOut):
    region = fields.String()
    year = fields.Integer()
    basis = fields.String()
    target_set = fields.String()
    snapshot_taken_at = UtcTimestamp(allow_none=True, metadata={
        "description": "when the snapshot answered was taken; null when computed now (fresh=true, no "
                       "snapshot yet, or a region-year the snapshot does not hold)"})
    previous = fields.Nested(FiguresOut)
    growth = fields.Nested(GrowthOut)
    checks = fields.List(fields.Nested(CheckOut))


class SeriesRowOut(FiguresOut):
    year = fields.Integer()
    growth = fields.Nested(GrowthOut)


class SeriesOut(Output):
    region = fields.String()
    basis = fields.String()
    snapshot_taken_at = UtcTimestamp(allow_none=True, metadata={
        "description": "when the snapshot answered; null when computed now (`fresh=true`, or years it does not hold)"})
    items = fields.List(fields.Nested(SeriesRowOut))


class RuleOut(Output):
    metric = fields.String(metadata={"enum": list(targets.CHECK_METRICS)})
    comparator = fields.String(metadata={"enum": list(targets.COMPARATORS)})
    threshold = fields.String(metadata=RATIO_DOC)


class TargetSetOut(Output):
    code = fields.String()
    checks = fields.List(fields.Nested(RuleOut))


class TargetSetList(Output):
    items = fields.List(fields.Nested(TargetSetOut))
    next = fields.String(allow_none=True, metadata={"description": "always null: the list is short"})


def _figures(f: targets.YearFigures) -> dict:
    shares = {name: targets.ratio_text(value) for name, value in f.shares.items()}
    return {"amount": format_yuan(f.amount_fen), "count": f.count, "pledge_count": f.pledge_count,
            "insured_amount": format_yuan(f.insured_amount_fen), "enterprise_count": f.enterprise_count,
            "sme_enterprise_count": f.sme_enterprise_count, "sme_count": f.sme_count, **shares}


def _growth(f: targets.YearFigures, previous: targets.YearFigures) -> dict:
    return {name: targets.ratio_text(targets.growth(f.metric(name), previous.metric(name)))
            for name in targets.GROWTH_METRICS}


def _in_jurisdiction(region: str) -> None:
    if not may_see_region(principal(), region):
        raise NotFound(f"region {region} is outside your jurisdiction ({principal().region})")


@blp.route("/targets")
@blp.arguments(TargetsQuery, location="query")
@blp.response(200, TargetsOut)
@blp.alt_response(404, description="The region is outside the caller's jurisdiction")
@require("admin", "fiscal", "auditor")
def get_targets(args):
    """One region-year: figures (a province or city includes its districts), the previous year,
    growth (null where last year is zero) and the target set's checks, exactly as written. From
    the nightly snapshot (`snapshot_taken_at`), or computed now with `fresh=true`."""
    _in_jurisdiction(args["region"])
    with read() as conn:
        target_set = targets.target_set(conn, args["target_set"])
        figures, previous, taken_at = targets.answer(conn, args["region"], args["year"], args["basis"],
                                                     fresh=args["fresh"] == "true")
    checks = [{**c, "threshold": targets.ratio_text(c["threshold"]), "value": targets.ratio_text(c["value"]),
               "passed": c["pass"]} for c in targets.check_results(target_set, figures, previous)]
    return {"region": args["region"], "year": args["year"], "basis": args["basis"],
            "target_set": target_set.code, "snapshot_taken_at": taken_at, **_figures(figures), "previous": _figures(previous),
            "growth": _growth(figures, previous), "checks": checks}


@blp.route("/targets/series")
@blp.arguments(SeriesQuery, location="query")
@blp.response(200, SeriesOut)
@blp.alt_response(404, description="The region is outside the caller's jurisdiction")
@require("admin", "fiscal", "auditor")
def get_series(args):
    """One row per year from `from` to `to` (at most 50 years: `ledger.targets.MAX_SERIES_YEARS`), each with its
    growth. From the nightly snapshot (`snapshot_taken_at`) when it holds every year asked (and the
    one before), or computed now with `fresh=true`."""
    first, last = args["from_"], args["to"]
    targets.check_series_span(first, last)
    _in_jurisdiction(args["region"])
    with read() as conn:
        series, taken_at = targets.series_answer(conn, args["region"], first, last, args["basis"],
                                                 fresh=args["fresh"] == "true")
    items = [{"year": y, **_figures(series[y]), "growth": _growth(series[y], series[y - 1])}
             for y in range(first, last + 1)]
    return {"region": args["region"], "basis": args["basis"], "snapshot_taken_at": taken_at, "items": items}


def _target_set_out(t: targets.TargetSet) -> dict:
    return {"code": t.code, "checks": [{"metric": c.metric, "comparator": c.comparator,
                                        "threshold": targets.ratio_text(c.threshold)} for c in t.checks]}


@blp.route("/target-sets")
class TargetSets(MethodView):
    @blp.response(200, TargetSetList)
    @require("admin", "fiscal", "auditor")
    def get(self):
        """The target sets checks are made against (DOMAIN.md §6's three defaults, and any added)."""
        with read() as conn:
            items = [_target_set_out(t) for t in targets.target_sets_in(conn)]
        return {"items": items, "next": None}

    @require("admin")
    @write("optional")
    @blp.arguments(targets.TargetSetIn())
    @blp.response(201, TargetSetOut, description="Created")
    def post(self, data):
        """A new target set (a policy's checks); sets never change, a new policy takes a new code (409
        for a code in use)."""
        return _target_set_out(targets.create_target_set(tx(), data["code"], data["checks"], actor())), 201
