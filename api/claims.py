"""`/v1/loans/{id}/default` and `/v1/claims`: a bank defaults its loan and the claim is opened
(split by the programme's terms, posted as one entry); the bank of the loan, the parties named on
the claim and the region's fiscal bureaus and auditors read claims; the bank withdraws a claim
nothing was paid on."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields
from sqlalchemy import select

from api.auth import ANY_ROLE, actor, principal, require
from api.db import read, tx
from api.fields import Choice, Code, Day, Integer, Money, RequestSchema, Text, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import claim_payments, claims
from ledger.claim_payments import MAX_REFERENCE
from ledger.claims import MAX_OVERDUE_DAYS
from ledger.schema import CLAIM_STATUSES, institutions

blp = Blueprint("claims", __name__, url_prefix="/v1",
                description="Claims: opened when a bank classifies its loan as defaulted (at or "
                            "beyond the programme's trigger), split by the bound terms version in "
                            "claim order (each claim sees what earlier ones used of every cap), "
                            "posted as one journal entry. Withdrawal posts its reversal and frees "
                            "the caps it used.")

CAP_NAMES = {"portfolio": "portfolio_cap"}  # API.md's name for the portfolio cap


class CutOut(Output):
    cap = fields.String()
    amount = Money()


class ShareOut(Output):
    institution = fields.String()
    role = fields.String()
    ratio = fields.String()
    computed = Money(metadata={"description": "the share before caps, rounded to the fen"})
    amount = Money(metadata={"description": "what the party owes after its caps"})
    capped_by = fields.List(fields.String())
    cuts = fields.List(fields.Nested(CutOut))
    pays_first = fields.Boolean()
    paid = Money(metadata={"description": "what the party has paid on its share"})
    outstanding = Money(metadata={"description": "amount less paid"})
    recovered = Money(metadata={"description": "net recovery returned to the party so far "
                                               "(to it, or where its terms redirect it)"})


class ClaimOut(Output):
    id = fields.Integer()
    loan = fields.Integer()
    program = fields.String()
    program_version = fields.Integer()
    bank = fields.String()
    classified_on = fields.Date()
    overdue_days = fields.Integer()
    outstanding_principal = Money()
    overdue_interest = Money()
    loss_base = Money()
    covered = Money()
    covered_reason = fields.String(allow_none=True)
    fund_balance = Money(metadata={"description": "the programme fund's balance the claim saw"})
    shares = fields.List(fields.Nested(ShareOut))
    bank_retained = Money()
    bank_recovered = Money(metadata={"description": "net recovery returned to the bank so far"})
    recovered = Money(metadata={"description": "net recovery returned to all bearers so far"})
    status = fields.String()
    settled_on = fields.Date(allow_none=True, metadata={"description": "the day the last share "
                                                                       "was paid in full"})
    entry = fields.Integer()
    withdrawal_entry = fields.Integer(allow_none=True)
    withdrawn_on = fields.Date(allow_none=True)
    created_at = UtcTimestamp()


class DefaultIn(RequestSchema):
    classified_on = Day(required=True)
    overdue_days = Integer(required=True, low=0, high=MAX_OVERDUE_DAYS)
    overdue_interest = Money(load_default=0)


class WithdrawalIn(RequestSchema):
    withdrawn_on = Day(required=True)


class PaymentIn(RequestSchema):
    amount = Money(required=True, metadata={"description": "more than 0, at most what the share "
                                                           "still owes"})
    paid_on = Day(required=True)
    reference = Text(MAX_REFERENCE, required=True, metadata={
        "description": "the payer's own reference (its statement's); used once per payer"})


class PaymentOut(Output):
    id = fields.Integer()
    claim = fields.Integer()
    institution = fields.String()
    role = fields.String()
    amount = Money()
    paid_on = fields.Date()
    reference = fields.String(allow_none=True)
    entry = fields.Integer(metadata={"description": "the `claim_paid` journal entry"})
    paid = Money(metadata={"description": "the party's share paid so far, this payment included"})
    outstanding = Money(metadata={"description": "what the share still owes"})
    claim_status = fields.String(metadata={"description": "`settled` once every share is paid"})
    created_at = UtcTimestamp()


class ClaimQuery(PageArgs):
    status = Choice(CLAIM_STATUSES)
    party = Code(40, metadata={"description": "institution code of a party named on the claim"})


def render(claim: dict) -> dict:
    shares = [{"institution": s["institution"], "role": s["role"], "ratio": s["ratio"],
               "computed": s["computed_fen"], "amount": s["amount_fen"],
               "capped_by": [CAP_NAMES.get(cap, cap) for cap in s["capped_by"]],
               "cuts": [{"cap": CAP_NAMES.get(c["cap"], c["cap"]), "amount": c["fen"]} for c in s["cuts"]],
               "pays_first": s["pays_first"], "paid": s["paid_fen"],
               "outstanding": s["amount_fen"] - s["paid_fen"], "recovered": s["recovered_fen"]}
              for s in claim["shares"]]
    return {"id": claim["id"], "loan": claim["loan_id"], "program": claim["program"],
            "program_version": claim["program_version"], "bank": claim["bank"],
            "classified_on": claim["classified_on"], "overdue_days": claim["overdue_days"],
            "outstanding_principal": claim["outstanding_principal_fen"],
            "overdue_interest": claim["overdue_interest_fen"], "loss_base": claim["loss_base_fen"],
            "covered": claim["covered_fen"], "covered_reason": claim["covered_reason"],
            "fund_balance": claim["fund_balance_fen"], "shares": shares,
            "bank_retained": claim["bank_retained_fen"], "bank_recovered": claim["bank_recovered_fen"],
            "recovered": claim["recovered_fen"], "status": claim["status"], "settled_on": claim["settled_on"],
            "entry": claim["entry_id"], "withdrawal_entry": claim["withdrawal_entry_id"],
            "withdrawn_on": claim["withdrawn_on"], "created_at": claim["created_at"]}


def _condition():
    return claims.claim_condition(read_scope())


@blp.route("/loans/<id:loan_id>/default", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(DefaultIn())
@blp.response(201, ClaimOut)
def default(data, loan_id):
    claim = claims.open_claim(tx(), loan_id, principal().institution_id, data["classified_on"], actor(),
                              overdue_days=data["overdue_days"], overdue_interest_fen=data["overdue_interest"])
    return render(claim), 201, {"Location": f"/v1/claims/{claim['id']}"}


@blp.route("/claims")
class Claims(MethodView):
    @blp.arguments(ClaimQuery(), location="query")
    @blp.response(200, page_schema(ClaimOut, "ClaimPage"))
    @require(*ANY_ROLE)
    def get(self, args):
        with read() as conn:
            party_id = None
            if args.get("party"):
                party_id = conn.execute(select(institutions.c.id).where(
                    institutions.c.code == args["party"])).scalar() or -1
            rows = claims.list_claims(conn, _condition(), status=args.get("status"), party_id=party_id,
                                      after_id=args["after"], limit=args["limit"] + 1)
        return page([render(row) for row in rows], args["limit"])


@blp.route("/claims/<id:claim_id>")
@blp.response(200, ClaimOut)
@require(*ANY_ROLE)
def get_claim(claim_id):
    with read() as conn:
        return render(claims.get_claim(conn, claim_id, _condition()))


@blp.route("/claims/<id:claim_id>/withdrawal", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(WithdrawalIn())
@blp.response(201, ClaimOut)
def withdraw(data, claim_id):
    return render(claims.withdraw_claim(tx(), claim_id, principal().institution_id,
                                        data["withdrawn_on"], actor())), 201


@blp.route("/claims/<id:claim_id>/payments", methods=["POST"])
@require("insurer", "guarantor", "pool")
@write("optional")
@blp.arguments(PaymentIn())
@blp.response(201, PaymentOut)
@blp.alt_response(404, description="No such claim, or one the caller's institution has no share in")
@blp.alt_response(409, description="The claim is withdrawn; the pays-first party has not paid in full; "
                                   "the reference is used; a pool's fund holds less than the amount")
@blp.alt_response(422, description="Bad body, or more than the share still owes")
def pay(data, claim_id):
    """The owing party pays (part of) its share; a pool pays from its programme's fund."""
    payment = claim_payments.pay_claim(tx(), claim_id, principal().institution_id, data["amount"],
                                       data["paid_on"], data["reference"], actor())
    return render_payment(payment), 201


def render_payment(payment: dict) -> dict:
    return {"id": payment["id"], "claim": payment["claim_id"], "institution": payment["institution"],
            "role": payment["role"], "amount": payment["amount_fen"], "paid_on": payment["paid_on"],
            "reference": payment["reference"], "entry": payment["entry_id"],
            "paid": payment["share_paid_fen"], "outstanding": payment["share_fen"] - payment["share_paid_fen"],
            "claim_status": payment["claim_status"], "created_at": payment["created_at"]}
