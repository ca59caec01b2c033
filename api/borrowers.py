"""`/v1/borrowers`: enterprises, their facts and their SME class."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import ANY_ROLE, principal, require
from api.db import read, tx
from api.fields import Money, Region
from api.idempotency import write
from api.openapi import Output
from ledger import parties
from ledger.sme import INDUSTRIES

blp = Blueprint("borrowers", __name__, url_prefix="/v1/borrowers",
                description="Borrowers (enterprises) and their SME classification")


class BorrowerIn(Schema):
    credit_code = fields.String(required=True, metadata={"example": "91350100M000100Y43",
                                                         "description": "unified social credit code (GB 32100-2015)"})
    name = fields.String(required=True, validate=validate.Length(1, 200))
    region = Region(required=True)
    industry = fields.String(required=True, validate=validate.OneOf(INDUSTRIES))
    employees = fields.Integer(required=True, strict=True, validate=validate.Range(0, 10_000_000))
    revenue = Money(required=True, metadata={"description": "operating revenue, yuan"})
    total_assets = Money(required=True, metadata={"description": "total assets, yuan"})
    private = fields.Boolean(required=True, truthy={True}, falsy={False},
                             metadata={"description": "not state-controlled"})


class BorrowerOut(Output):
    id = fields.Integer()
    credit_code = fields.String()
    name = fields.String()
    region = fields.String()
    industry = fields.String()
    employees = fields.Integer()
    revenue = Money(attribute="revenue_fen")
    total_assets = Money(attribute="total_assets_fen")
    private = fields.Boolean()
    size_class = fields.String(metadata={"description": "micro, small, medium or large"})
    sme = fields.Boolean()
    size_standard = fields.String(metadata={"example": "MIIT-2011-300"})


def render(borrower: parties.Borrower) -> dict:
    return {"id": borrower.id, **vars(borrower.facts), "size_class": borrower.size_class,
            "sme": borrower.sme, "size_standard": borrower.size_standard}


@blp.route("")
class Borrowers(MethodView):
    @require("bank", "admin")
    @write("optional")
    @blp.arguments(BorrowerIn)
    @blp.response(201, BorrowerOut, description="Created")
    @blp.alt_response(200, schema=BorrowerOut, description="An existing borrower's facts updated")
    def post(self, data):
        facts = parties.BorrowerFacts(data["credit_code"], data["name"], data["region"], data["industry"],
                                      data["employees"], data["revenue"], data["total_assets"], data["private"])
        borrower, created = parties.upsert_borrower(tx(), facts, principal().key_id)
        return render(borrower), 201 if created else 200, {"Location": f"/v1/borrowers/{borrower.facts.credit_code}"}


@blp.route("/<credit_code>")
@blp.response(200, BorrowerOut)
@require(*ANY_ROLE)
def get_borrower(credit_code):
    with read() as conn:
        return render(parties.get_borrower(conn, credit_code))
