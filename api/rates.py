"""`/v1/reference-rates/{name}`: the one-year LPR by month."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, principal, require
from api.db import read, tx
from api.fields import Month, Ratio, RequestSchema
from api.idempotency import write
from api.openapi import Output
from ledger import rates

blp = Blueprint("reference-rates", __name__, url_prefix="/v1/reference-rates",
                description="Reference rates (one-year LPR, LPR1Y) by month")


class RateIn(RequestSchema):
    month = Month(required=True)
    rate = Ratio(required=True, max_places=rates.RATE_PLACES, high=rates.MAX_RATE,
                 metadata={"example": "0.0300", "description": "a decimal: 0.0300 is 3.00% a year"})


class RateOut(Output):
    name = fields.String()
    month = fields.String()
    rate = Ratio()


class RateList(Output):
    name = fields.String()
    items = fields.List(fields.Nested(RateOut))
    next = fields.String(allow_none=True, metadata={"description": "always null: the list is short"})


@blp.route("/<name>")
class Rates(MethodView):
    @blp.response(200, RateList)
    @require(*ANY_ROLE)
    def get(self, name):
        with read() as conn:
            items = [vars(rate) for rate in rates.list_rates(conn, name)]
        return {"name": name, "items": items, "next": None}

    @require("admin", "fiscal")
    @write("optional")
    @blp.arguments(RateIn())
    @blp.response(201, RateOut, description="Recorded")
    @blp.alt_response(200, schema=RateOut, description="Already recorded with this value")
    def post(self, data, name):
        rate, created = rates.record_rate(tx(), name, data["month"], data["rate"], principal().key_id)
        return vars(rate), 201 if created else 200


@blp.route("/<name>/<month>")
@blp.response(200, RateOut)
@blp.alt_response(422, description="The month is not written YYYY-MM")  # found by schemathesis
@require(*ANY_ROLE)
def get_rate(name, month):
    with read() as conn:
        return {"name": name, "month": month, "rate": rates.rate_for(conn, name, month)}
