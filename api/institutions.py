"""`/v1/institutions`: the parties that lend, insure, guarantee, pool, subsidise and audit."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, require
from api.csv_export import csv_list
from api.db import read, tx
from api.fields import Choice, Code, Region, RequestSchema, Text
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from ledger import institutions as domain
from ledger.identifiers import region_prefix
from ledger.schema import INSTITUTION_KINDS

blp = Blueprint("institutions", __name__, url_prefix="/v1/institutions",
                description="Banks, insurers, guarantee firms, pools, fiscal bureaus, auditors")


class InstitutionIn(RequestSchema):
    code = Code(40, required=True, metadata={"example": "ICBC-GZ"})
    name = Text(200, required=True)
    kind = Choice(INSTITUTION_KINDS, required=True)
    region = Region(required=True)


class InstitutionOut(Output):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    region = fields.String()


class InstitutionQuery(PageArgs):
    kind = Choice(INSTITUTION_KINDS)
    region = Region(metadata={"description": "a province or city includes what is under it"})


@blp.route("")
class Institutions(MethodView):
    @csv_list()
    @blp.arguments(InstitutionQuery(), location="query")
    @blp.response(200, page_schema(InstitutionOut, "InstitutionPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        with read() as conn:
            rows = domain.list_institutions(
                conn, after_id=args["after"], limit=args["limit"] + 1, kind=args.get("kind"),
                region_prefix=region_prefix(args["region"]) if args.get("region") else "")
        return page([vars(row) for row in rows], args["limit"])

    @require("admin")
    @write("optional")
    @blp.arguments(InstitutionIn())
    @blp.response(201, InstitutionOut)
    def post(self, data):
        created = domain.create_institution(tx(), **data)
        return vars(created), 201, {"Location": f"/v1/institutions/{created.code}"}


@blp.route("/<code>")
@blp.response(200, InstitutionOut)
@require(*ANY_ROLE)
def get_institution(code):
    with read() as conn:
        return vars(domain.get_institution(conn, code))
