"""`/v1/loans/{id}/recoveries`: the bank records what disposing of the pledged IP (or the
borrower) brought back after a claim; the net is returned to those who bore the loss."""
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import actor, principal, require
from api.db import tx
from api.fields import Choice, Day, Money, RequestSchema, Text, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from ledger import recoveries
from ledger.recoveries import MAX_REFERENCE
from ledger.schema import RECOVERY_SOURCES

blp = Blueprint("recoveries", __name__, url_prefix="/v1",
                description="Recoveries after a claim: net = gross - costs, returned to the parties "
                            "in proportion to what each bore (the bank's retained loss included), "
                            "largest remainder with the shares' tie-break, never more than a party "
                            "bore; several recoveries accumulate (the cumulative net is split and "
                            "earlier returns subtracted). A cumulative net beyond the loss base is "
                            "refused (422): a surplus over the loss is the borrower's, not a loss "
                            "recovery. A party's `recoveries_to` sends its part elsewhere.")


class RecoveryIn(RequestSchema):
    received_on = Day(required=True)
    gross = Money(required=True, metadata={"description": "proceeds received"})
    costs = Money(load_default=0, metadata={"description": "disposal costs, at most the gross"})
    source = Choice(RECOVERY_SOURCES, required=True)
    reference = Text(MAX_REFERENCE, load_default=None, metadata={"description": "the bank's reference"})


class PartOut(Output):
    institution = fields.String(metadata={"description": "the party that bore the loss"})
    role = fields.String(metadata={"description": "its role on the claim; `bank` for the bank"})
    borne = Money(metadata={"description": "what it bore on the claim"})
    amount = Money(metadata={"description": "its part of this recovery"})
    to = fields.String(metadata={"description": "who receives the part (differs under `recoveries_to`)"})


class RecoveryOut(Output):
    id = fields.Integer()
    loan = fields.Integer()
    claim = fields.Integer()
    received_on = fields.Date()
    gross = Money()
    costs = Money()
    net = Money()
    source = fields.String()
    reference = fields.String(allow_none=True)
    entry = fields.Integer(allow_none=True, metadata={"description": "the `recovery_distributed` "
                                                                     "entry; null for a zero net"})
    distribution = fields.List(fields.Nested(PartOut))
    created_at = UtcTimestamp()


def render(recovery: dict) -> dict:
    return {"id": recovery["id"], "loan": recovery["loan_id"], "claim": recovery["claim_id"],
            "received_on": recovery["received_on"], "gross": recovery["gross_fen"],
            "costs": recovery["costs_fen"], "net": recovery["net_fen"], "source": recovery["source"],
            "reference": recovery["reference"], "entry": recovery["entry_id"],
            "distribution": [{"institution": p["institution"], "role": p["role"], "borne": p["borne_fen"],
                              "amount": p["amount_fen"], "to": p["to"]} for p in recovery["distribution"]],
            "created_at": recovery["created_at"]}


@blp.route("/loans/<id:loan_id>/recoveries", methods=["POST"])
@require("bank")
@write("required")
@blp.arguments(RecoveryIn())
@blp.response(201, RecoveryOut)
@blp.alt_response(409, description="The loan has no live claim")
@blp.alt_response(422, description="Bad body; costs above the gross; a net beyond the loss not yet recovered")
def record(data, loan_id):
    recovery = recoveries.record_recovery(tx(), loan_id, principal().institution_id, data["received_on"],
                                          data["gross"], data["costs"], data["source"], data["reference"],
                                          actor())
    return render(recovery), 201
