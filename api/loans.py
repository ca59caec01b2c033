"""`/v1/loans`: banks post loans (one or a batch), repayments and fees; readers see loans.

Loan bodies are read by the schemas of `ledger.loans` (`LoanIn`, `LoanBatchIn`), the same ones
the CSV import reads with: flask-smorest parses each request with them and generates the
OpenAPI request body from them, so the document is the parser.
"""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, actor, principal, require
from api.csv_export import csv_list, loan_rows
from api.db import read, tx
from api.fields import Choice, Day, Integer, Money, Region, RequestSchema, Text, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import corrections, loans
from ledger.accounts import FEE_KINDS
from ledger.identifiers import region_prefix
from ledger.schema import LOAN_STATUSES

blp = Blueprint("loans", __name__, url_prefix="/v1/loans",
                description="IP pledge loans, repayments and fees (banks post; others read). A loan "
                            "lends to the lending bank's own record of the borrower and freezes the "
                            "facts of that record in force on its start date (borrower_facts_as_of "
                            "says which). A patent under the live pledge of a loan that is not "
                            "closed cannot be pledged to another loan (409). Repayments may be "
                            "posted in any order of their dates: one is refused (422) if it would "
                            "take the outstanding principal of any day below zero; status is "
                            "closed exactly when the outstanding principal is zero, and closed_on "
                            "is the day from which it stays zero.")


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
    borrower_facts_as_of = fields.Date(metadata={
        "description": "the as_of of the lending bank's borrower facts this loan froze: the latest on "
                       "or before start_date, or the record's first facts if all are later"})
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
    status = Choice(LOAN_STATUSES)
    program = Text(60, metadata={"description": "programme code"})
    region = Region(metadata={"description": "the borrower's region; a province or city "
                                             "includes what is under it"})


class RepaymentIn(RequestSchema):
    paid_on = Day(required=True)
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


class FeeIn(RequestSchema):
    kind = Choice(FEE_KINDS, required=True)
    amount = Money(required=True, allow_zero=False)
    paid_on = Day(required=True)


class FeeOut(Output):
    entry = fields.Integer()
    loan = fields.Integer()
    kind = fields.String()
    amount = Money(attribute="amount_fen")
    paid_on = fields.Date()


class ReversalIn(RequestSchema):
    entry = Integer(required=True, low=1, high=2**63 - 1, metadata={
        "description": "id of the loan's repayment or fee entry to reverse (its `events[].entry`)"})
    reason = Text(corrections.MAX_REASON_LENGTH, required=True, metadata={
        "example": "repayment posted twice by the core banking batch",
        "description": "why: kept in the reversal entry's memo"})


class ReversalOut(Output):
    entry = fields.Integer(metadata={"description": "the reversal entry"})
    reverses = fields.Integer()
    kind = fields.String(metadata={"description": "the kind of the entry reversed"})
    loan = fields.Integer()
    effective_on = fields.Date(metadata={"description": "the reversed entry's own date"})
    reason = fields.String()
    outstanding_principal = Money(attribute="outstanding_principal_fen")
    status = fields.String()
    closed_on = fields.Date(allow_none=True)


def _condition():
    return read_scope().loan_condition()


@blp.route("")
class Loans(MethodView):
    @csv_list(loan_rows)
    @blp.arguments(LoanQuery(), location="query")
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
    @blp.arguments(loans.LOAN_IN)
    @blp.response(201, LoanDetailOut)
    def post(self, draft):
        # Rendered from what was written: no read-back (issue 11).
        created = loans.create_loan(tx(), principal().institution_id, draft, actor())
        return created, 201, {"Location": f"/v1/loans/{created['id']}"}


@blp.route("/batch", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(loans.LOAN_BATCH_IN)
@blp.response(201, BatchOut)
def post_batch(batch):
    drafts = batch["loans"]
    ids = loans.create_loans(tx(), principal().institution_id, drafts, actor())
    items = [{"id": loan_id, "contract_no": draft.contract_no} for loan_id, draft in zip(ids, drafts)]
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
@blp.arguments(RepaymentIn())
@blp.response(201, RepaymentOut)
def repay(data, loan_id):
    return loans.record_repayment(tx(), loan_id, principal().institution_id, data["paid_on"],
                                  data["principal"], data["interest"], actor()), 201


@blp.route("/<id:loan_id>/fees", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(FeeIn())
@blp.response(201, FeeOut)
def pay_fee(data, loan_id):
    return loans.record_fee(tx(), loan_id, principal().institution_id, data["kind"], data["amount"],
                            data["paid_on"], actor()), 201


@blp.route("/<id:loan_id>/reversals", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(ReversalIn())
@blp.response(201, ReversalOut)
@blp.doc(description="A correction: the reversal of a mistaken repayment or fee of the bank's own "
                     "loan, effective on that entry's date; the loan's outstanding principal and "
                     "status follow (a loan closed by the repayment is active again). 422 when "
                     "`entry` is not a repayment or fee of this loan; 409 once a live claim exists "
                     "on the loan or for an entry already reversed.")
def reverse(data, loan_id):
    return corrections.reverse_posting(tx(), loan_id, principal().institution_id, data["entry"],
                                       data["reason"], actor()), 201
