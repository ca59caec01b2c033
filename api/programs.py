"""`/v1/programs`: risk-sharing programmes, their versioned terms and their fund.

`terms` is read by `ledger.terms.TermsIn` in full (coverage, parties, share tiers, caps, subsidy
rules and their caps and eligibility), and shown back by the same schema in its canonical form,
so the OpenAPI document describes every field a client sends and receives.
"""
from flask import abort
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.auth import ANY_ROLE, actor, may_see_region, principal, require
from api.db import read, tx
from api.fields import Code, Day, Money, Object, Region, RequestSchema, Text
from api.idempotency import write
from api.pagination import PageArgs, page, page_schema
from ledger import programs
from ledger.programs import CODE_MAX
from ledger.terms import TermsIn

blp = Blueprint("programs", __name__, url_prefix="/v1/programs",
                description="Risk-sharing programmes, their versioned terms, and the compensation fund")


def _effective_to() -> Day:
    return Day(allow_none=True, load_default=None,
               metadata={"description": "inclusive; null: until a later version starts"})


class ProgramIn(RequestSchema):
    code = Code(CODE_MAX, required=True, metadata={"example": "gz-ip-2023"})
    name = Text(200, required=True)
    region = Region(required=True)
    effective_from = Day(required=True)
    effective_to = _effective_to()
    terms = Object(TermsIn, required=True)


class VersionIn(RequestSchema):
    effective_from = Day(required=True)
    effective_to = _effective_to()
    terms = Object(TermsIn, required=True)


class VersionOut(Schema):
    version = fields.Integer()
    effective_from = fields.Date()
    effective_to = fields.Date(allow_none=True)
    terms = fields.Nested(TermsIn, metadata={"description": "canonical: every key present, "
                                                            "absent values null"})


class ProgramOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    region = fields.String()
    effective_from = fields.Date()
    effective_to = fields.Date(allow_none=True)
    versions = fields.List(fields.Nested(VersionOut))


class ContributionIn(RequestSchema):
    amount = Money(required=True, allow_zero=False)
    on = Day(required=True, metadata={"description": "not in the future, nor before the programme's "
                                                     "first version starts"})


class ContributionOut(Schema):
    entry = fields.Integer()
    program = fields.String()
    amount = Money(attribute="amount_fen")
    on = fields.Date()
    balance = Money(attribute="balance_fen", metadata={"description": "the fund's balance after it"})


class MovementOut(Schema):
    entry = fields.Integer()
    kind = fields.String()
    on = fields.Date()
    memo = fields.String(allow_none=True)
    amount = Money(attribute="amount_fen", allow_negative=True)
    balance = Money(attribute="balance_fen", allow_negative=True)


class FundOut(Schema):
    program = fields.String()
    account = fields.Integer()
    as_of = fields.Date(allow_none=True)
    balance = Money(attribute="balance_fen", allow_negative=True)
    movements = fields.List(fields.Nested(MovementOut))


class FundQuery(RequestSchema):
    as_of = Day(metadata={"description": "effective date (inclusive); default: all"})


def render(program: programs.Program) -> dict:
    versions = [{"version": v.version, "effective_from": v.effective_from, "effective_to": v.effective_to,
                 "terms": v.terms} for v in program.versions]
    return {"id": program.id, "code": program.code, "name": program.name, "region": program.region,
            "effective_from": program.versions[0].effective_from,
            "effective_to": program.versions[-1].effective_to, "versions": versions}


def _check_fiscal_region(region: str):
    who = principal()
    if who.role == "fiscal" and not may_see_region(who, region):
        abort(403, description=f"a fiscal bureau of region {who.region} cannot manage a programme of {region}")


@blp.route("")
class Programs(MethodView):
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_schema(ProgramOut, "ProgramPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        with read() as conn:
            rows = programs.list_programs(conn, after_id=args["after"], limit=args["limit"] + 1)
        return page([render(p) for p in rows], args["limit"])

    @require("admin", "fiscal")
    @write("optional")
    @blp.arguments(ProgramIn())
    @blp.response(201, ProgramOut)
    def post(self, data):
        _check_fiscal_region(data["region"])
        made = programs.create_program(tx(), data["code"], data["name"], data["region"], data["effective_from"],
                                       data["effective_to"], data["terms"], actor())
        return render(made), 201, {"Location": f"/v1/programs/{made.code}"}




@blp.route("/<code>")
@blp.response(200, ProgramOut)
@require(*ANY_ROLE)
def get_program(code):
    with read() as conn:
        return render(programs.get_program(conn, code))


@blp.route("/<code>/versions", methods=["POST"])
@require("admin", "fiscal")
@write("optional")
@blp.arguments(VersionIn())
@blp.response(201, ProgramOut)
def add_version(data, code):
    _check_fiscal_region(programs.get_program(tx(), code).region)
    updated = programs.add_version(tx(), code, data["effective_from"], data["effective_to"], data["terms"], actor())
    return render(updated), 201


@blp.route("/<code>/fund-contributions", methods=["POST"])
@require("fiscal", "pool")
@write("required")
@blp.arguments(ContributionIn())
@blp.response(201, ContributionOut)
def contribute(data, code):
    program = programs.get_program(tx(), code)
    who = principal()
    if who.role == "fiscal":
        _check_fiscal_region(program.region)
    elif not any(p.institution == who.institution_code for v in program.versions for p in v.terms.parties):
        abort(403, description=f"{who.institution_code} is not a party to programme {code}")
    return programs.contribute(tx(), code, who.institution_id, data["amount"], data["on"], actor()), 201


@blp.route("/<code>/fund")
@blp.arguments(FundQuery(), location="query")
@blp.response(200, FundOut)
@require("fiscal", "pool", "auditor", "admin")
def fund(args, code):
    with read() as conn:
        program = programs.get_program(conn, code)
        who = principal()
        if who.role in ("fiscal", "auditor") and not may_see_region(who, program.region):
            abort(404, description=f"programme {code} does not exist")
        return programs.fund_statement(conn, code, args.get("as_of"))
