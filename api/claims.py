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
from api.fields import Choice, Code, Day, Integer, Money, RequestSchema, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import claims
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
    paid = Money()
    outstanding = Money()


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
    status = fields.String()
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


class ClaimQuery(PageArgs):
    status = Choice(CLAIM_STATUSES)
    party = Code(40, metadata={"description": "institution code of a party named on the claim"})


def render(claim: dict) -> dict:
    shares = [{"institution": s["institution"], "role": s["role"], "ratio": s["ratio"],
               "computed": s["computed_fen"], "amount": s["amount_fen"],
               "capped_by": [CAP_NAMES.get(cap, cap) for cap in s["capped_by"]],
               "cuts": [{"cap": CAP_NAMES.get(c["cap"], c["cap"]), "amount": c["fen"]} for c in s["cuts"]],
               "pays_first": s["pays_first"], "paid": 0, "outstanding": s["amount_fen"]}
              for s in claim["shares"]]  # payments are not recorded yet: nothing paid
    return {"id": claim["id"], "loan": claim["loan_id"], "program": claim["program"],
            "program_version": claim["program_version"], "bank": claim["bank"],
            "classified_on": claim["classified_on"], "overdue_days": claim["overdue_days"],
            "outstanding_principal": claim["outstanding_principal_fen"],
            "overdue_interest": claim["overdue_interest_fen"], "loss_base": claim["loss_base_fen"],
            "covered": claim["covered_fen"], "covered_reason": claim["covered_reason"],
            "fund_balance": claim["fund_balance_fen"], "shares": shares,
            "bank_retained": claim["bank_retained_fen"], "status": claim["status"],
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
