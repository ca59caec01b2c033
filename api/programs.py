"""`/v1/programs`: risk-sharing programmes, their versioned terms and their fund.

`terms` is read by `ledger.terms.TermsIn` in full (coverage, parties, share tiers, caps, subsidy
rules and their caps and eligibility), and shown back by the same schema in its canonical form,
so the OpenAPI document describes every field a client sends and receives.
"""
from flask import abort
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, actor, principal, require
from api.db import read, tx
from api.fields import Code, Day, Money, Object, Region, RequestSchema, Text
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import PARTY_ROLES
from ledger import programs
from ledger.errors import NotFound
from ledger.identifiers import region_covers
from ledger.programs import CODE_MAX
from ledger import terms
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


# The response side of `terms`: the request schemas' own fields, dumped the same way (the
# canonical form of `ledger.terms.terms_to_dict`), where every key is always present (`Output`).
# Nested parts are the ones the canonical form never leaves null (an absent `caps` is no caps).
class ShareTierOut(Output, terms.ShareTierIn):
    pass


class PartyCapsOut(Output, terms.PartyCapsIn):
    pass


class PartyOut(Output, terms.PartyIn):
    share_tiers = fields.List(fields.Nested(ShareTierOut), allow_none=True,
                              metadata={"description": "null: a flat `share`"})
    caps = fields.Nested(PartyCapsOut)


class CoverageOut(Output, terms.CoverageIn):
    pass


class SubsidyCapsOut(Output, terms.SubsidyCapsIn):
    pass


class EligibilityOut(Output, terms.EligibilityIn):
    pass


class SubsidyRuleOut(Output, terms.SubsidyRuleIn):
    caps = fields.Nested(SubsidyCapsOut)
    eligibility = fields.Nested(EligibilityOut)


class TermsOut(Output, TermsIn):
    coverage = fields.Nested(CoverageOut)
    parties = fields.List(fields.Nested(PartyOut))
    subsidies = fields.List(fields.Nested(SubsidyRuleOut))


class VersionOut(Output):
    version = fields.Integer()
    effective_from = fields.Date()
    effective_to = fields.Date(allow_none=True)
    terms = fields.Nested(TermsOut, metadata={"description": "canonical: every key present, "
                                                             "absent values null"})


class ProgramOut(Output):
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


class ContributionOut(Output):
    entry = fields.Integer()
    program = fields.String()
    amount = Money(attribute="amount_fen")
    on = fields.Date()
    balance = Money(attribute="balance_fen", metadata={"description": "the fund's balance after it"})


class MovementOut(Output):
    entry = fields.Integer()
    kind = fields.String()
    on = fields.Date()
    memo = fields.String(allow_none=True)
    amount = Money(attribute="amount_fen", allow_negative=True)
    balance = Money(attribute="balance_fen", allow_negative=True)


class FundOut(Output):
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


# Who sees and manages a programme (README: Keys and roles):
# - fiscal and auditor keys participate in the programmes whose region covers theirs or lies
#   within it (`Program.involves_region`): they list and read those, and their fund; the
#   others are a 404 to them. A fiscal bureau tops up the fund of a programme it participates
#   in, and creates or versions programmes only within its own region (403 otherwise);
# - every other key reads every programme (banks lend under them); insurer, guarantor and pool
#   keys read the fund only of programmes they are a party to (404 otherwise), and a pool tops
#   up only such a fund (403 otherwise);
# - admin keys read and manage everything.
PARTICIPANTS = ("fiscal", "auditor")


def _visible_program(conn, code: str, lock: bool = False) -> programs.Program:
    program = programs.get_program(conn, code, lock=lock)
    who = principal()
    if who.role in PARTICIPANTS and not program.involves_region(who.region):
        raise NotFound(f"programme {code} does not exist")
    return program


def _check_manages(region: str):
    who = principal()
    if who.role == "fiscal" and not region_covers(who.region, region):
        abort(403, description=f"a fiscal bureau of region {who.region} manages only programmes "
                               f"within it, not one of region {region}")


@blp.route("")
class Programs(MethodView):
    @blp.arguments(PageArgs(), location="query")
    @blp.response(200, page_schema(ProgramOut, "ProgramPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        """Programmes by id; fiscal and auditor keys see those that involve their region."""
        who = principal()
        involving = who.region if who.role in PARTICIPANTS else None
        with read() as conn:
            rows = programs.list_programs(conn, after_id=args["after"], limit=args["limit"] + 1,
                                          involving_region=involving)
        return page([render(p) for p in rows], args["limit"])

    @require("admin", "fiscal")
    @write("optional")
    @blp.arguments(ProgramIn())
    @blp.response(201, ProgramOut)
    def post(self, data):
        """Create a programme with its first terms version (a fiscal bureau: within its region)."""
        _check_manages(data["region"])
        made = programs.create_program(tx(), data["code"], data["name"], data["region"], data["effective_from"],
                                       data["effective_to"], data["terms"], actor())
        return render(made), 201, {"Location": f"/v1/programs/{made.code}"}


@blp.route("/<code>")
@blp.response(200, ProgramOut)
@require(*ANY_ROLE)
def get_program(code):
    """A programme with all its versions (fiscal and auditor keys: one that involves their region)."""
    with read() as conn:
        return render(_visible_program(conn, code))


@blp.route("/<code>/versions", methods=["POST"])
@require("admin", "fiscal")
@write("optional")
@blp.arguments(VersionIn())
@blp.response(201, ProgramOut)
def add_version(data, code):
    """Add a terms version (a fiscal bureau: of a programme within its region)."""
    _check_manages(_visible_program(tx(), code).region)
    updated = programs.add_version(tx(), code, data["effective_from"], data["effective_to"], data["terms"], actor())
    return render(updated), 201


@blp.route("/<code>/fund-contributions", methods=["POST"])
@require("fiscal", "pool")
@write("required")
@blp.arguments(ContributionIn())
@blp.response(201, ContributionOut)
def contribute(data, code):
    """Top up the fund: a fiscal bureau participating in the programme, or a pool among its parties."""
    program = _visible_program(tx(), code)
    who = principal()
    if not programs.may_contribute(program, who.role, who.institution_code, who.region):
        abort(403, description=f"{who.institution_code} is not a party to programme {code}")
    return programs.contribute(tx(), code, who.institution_id, data["amount"], data["on"], actor()), 201


@blp.route("/<code>/fund")
@blp.arguments(FundQuery(), location="query")
@blp.response(200, FundOut)
@require("fiscal", "auditor", "pool", "insurer", "guarantor", "admin")
def fund(args, code):
    """The fund's balance and movements: for admin, participating fiscal and auditor keys, and
    the programme's parties."""
    with read() as conn:
        program = _visible_program(conn, code)
        who = principal()
        if who.role in PARTY_ROLES and not program.has_party(who.institution_code):
            raise NotFound(f"programme {code}'s fund is shown only to its parties, the fiscal bureaus "
                           "and auditors of its region, and admins")
        return programs.fund_statement(conn, code, args.get("as_of"))
