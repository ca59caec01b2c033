"""`/v1/loans`: banks post loans (one or a batch), repayments and fees; readers see loans.

Loan bodies are parsed by `ledger.loans` itself (one parser shared with the CSV import), so
the schemas below document the contract in the OpenAPI document without parsing twice.
"""
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.auth import ANY_ROLE, actor, principal, require
from api.csv_export import csv_list, loan_rows
from api.db import read, tx
from api.fields import Money, Ratio, Region, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import loans
from ledger.errors import Invalid
from ledger.identifiers import region_prefix
from ledger.schema import LOAN_STATUSES

blp = Blueprint("loans", __name__, url_prefix="/v1/loans",
                description="IP pledge loans, repayments and fees (banks post; others read)")




def json_body():
    body = request.get_json(silent=True)
    if body is None:
        raise Invalid.field("body", "send a JSON object (Content-Type: application/json)")
    return body


class PledgeIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("patent", "trademark")))
    number = fields.String(required=True, metadata={"example": "ZL201710601862.3"})
    nice_class = fields.Integer(metadata={"description": "trademarks only: Nice class 1-45"})
    registration_no = fields.String(required=True, metadata={"example": "Y2025440000123"})
    registered_on = fields.Date(required=True)
    appraised_value = Money()


class LoanIn(Schema):
    contract_no = fields.String(required=True, metadata={"example": "ICBC-GZ-2025-0042"})
    borrower = fields.String(required=True, metadata={"description": "credit code", "example": "91440300708461136T"})
    program = fields.String(required=True, metadata={"example": "gz-ip-2023"})
    principal = Money(required=True)
    annual_rate = Ratio(required=True, metadata={"example": "0.0345"})
    start_date = fields.Date(required=True)
    maturity_date = fields.Date(required=True)
    ip_share = Ratio(metadata={"example": "0.8"})
    insured_amount = Money()
    pledges = fields.List(fields.Nested(PledgeIn), required=True)


class LoanBatchIn(Schema):
    loans = fields.List(fields.Nested(LoanIn), required=True,
                        metadata={"description": f"1 to {loans.MAX_BATCH} loans, all or nothing"})


class PledgeOut(Output):
    kind = fields.String()
    number = fields.String()
    nice_class = fields.Integer(allow_none=True)
    registration_no = fields.String()
    registered_on = fields.Date()
    appraised_value = Money(attribute="appraised_value_fen", allow_none=True)


class EventPostingOut(Output):
    account = fields.Integer()
    account_code = fields.String()
    amount = Money(attribute="amount_fen", allow_negative=True)


class EventOut(Output):
    entry = fields.Integer()
    kind = fields.String()
    effective_on = fields.Date()
    recorded_at = UtcTimestamp()
    memo = fields.String(allow_none=True)
    reverses = fields.Integer(allow_none=True)
    postings = fields.List(fields.Nested(EventPostingOut))


class LoanOut(Output):
    id = fields.Integer()
    contract_no = fields.String()
    bank = fields.String()
    borrower = fields.String()
    program = fields.String()
    program_version = fields.Integer()
    principal = Money(attribute="principal_fen")
    annual_rate = fields.String()
    start_date = fields.Date()
    maturity_date = fields.Date()
    ip_share = fields.String(allow_none=True)
    insured_amount = Money(attribute="insured_amount_fen", allow_none=True)
    pledge_type = fields.String()
    pledges = fields.List(fields.Nested(PledgeOut))
    borrower_size_class = fields.String()
    borrower_sme = fields.Boolean()
    borrower_private = fields.Boolean()
    borrower_region = fields.String()
    outstanding_principal = Money(attribute="outstanding_principal_fen")
    status = fields.String()
    closed_on = fields.Date(allow_none=True)
    created_at = UtcTimestamp()


class LoanDetailOut(LoanOut):
    events = fields.List(fields.Nested(EventOut))


class BatchItemOut(Output):
    id = fields.Integer()
    contract_no = fields.String()


class BatchOut(Output):
    count = fields.Integer()
    loans = fields.List(fields.Nested(BatchItemOut))


class LoanQuery(PageArgs):
    status = fields.String(validate=validate.OneOf(LOAN_STATUSES))
    program = fields.String()
    region = Region()


class RepaymentIn(Schema):
    paid_on = fields.Date(required=True)
    principal = Money(required=True)
    interest = Money(required=True)


class RepaymentOut(Output):
    entry = fields.Integer()
    loan = fields.Integer()
    paid_on = fields.Date()
    principal = Money(attribute="principal_fen")
    interest = Money(attribute="interest_fen")
    outstanding_principal = Money(attribute="outstanding_principal_fen")
    status = fields.String()


class FeeIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("premium", "guarantee_fee", "appraisal_fee")))
    amount = Money(required=True, allow_zero=False)
    paid_on = fields.Date(required=True)


class FeeOut(Output):
    entry = fields.Integer()
    loan = fields.Integer()
    kind = fields.String()
    amount = Money(attribute="amount_fen")
    paid_on = fields.Date()


def _condition():
    return read_scope().loan_condition()


@blp.route("")
class Loans(MethodView):
    @csv_list(loan_rows)
    @blp.arguments(LoanQuery, location="query")
    @blp.response(200, page_schema(LoanOut, "LoanPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        with read() as conn:
            rows = loans.list_loans(conn, _condition(), status=args.get("status"), program=args.get("program"),
                                    region_prefix=region_prefix(args["region"]) if args.get("region") else "",
                                    after_id=args["after"], limit=args["limit"] + 1)
        return page(rows, args["limit"])

    @require("bank")
    @write("required")
    @blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": LoanIn}}})
    @blp.response(201, LoanDetailOut)
    def post(self):
        [loan_id] = loans.create_loans(tx(), principal().institution_id, [json_body()], actor(), prefix="")
        created = loans.get_loan(tx(), loan_id, _condition())
        return created, 201, {"Location": f"/v1/loans/{loan_id}"}


@blp.route("/batch", methods=["POST"])
@require("bank")
@write("optional")
@blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": LoanBatchIn}}})
@blp.response(201, BatchOut)
def post_batch():
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"loans"}:
        raise Invalid.field("loans", "send {\"loans\": [...]}")
    ids = loans.create_loans(tx(), principal().institution_id, body["loans"], actor())
    items = [{"id": loan_id, "contract_no": raw["contract_no"]} for loan_id, raw in zip(ids, body["loans"])]
    return {"count": len(ids), "loans": items}, 201


@blp.route("/<id:loan_id>")
@blp.response(200, LoanDetailOut)
@require(*ANY_ROLE)
def get_loan(loan_id):
    with read() as conn:
        return loans.get_loan(conn, loan_id, _condition())


@blp.route("/<id:loan_id>/repayments", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(RepaymentIn)
@blp.response(201, RepaymentOut)
def repay(data, loan_id):
    return loans.record_repayment(tx(), loan_id, principal().institution_id, data["paid_on"],
                                  data["principal"], data["interest"], actor()), 201


@blp.route("/<id:loan_id>/fees", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(FeeIn)
@blp.response(201, FeeOut)
def pay_fee(data, loan_id):
    return loans.record_fee(tx(), loan_id, principal().institution_id, data["kind"], data["amount"],
                            data["paid_on"], actor()), 201
