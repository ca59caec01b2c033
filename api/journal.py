"""`/v1/journal` (entries with postings, in order) and `/v1/audit/verify`."""
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import ANY_ROLE, require
from api.csv_export import csv_list, postings_rows
from api.db import read
from api.fields import Money, UtcTimestamp
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import chain, reads

blp = Blueprint("journal", __name__, url_prefix="/v1",
                description="The journal and its integrity proof")


class PostingOut(Output):
    id = fields.Integer()
    account = fields.Integer(attribute="account_id")
    account_code = fields.String()
    amount = Money(attribute="amount_fen", allow_negative=True,
                   metadata={"description": "debit positive, credit negative"})
    currency = fields.String()


class EntryOut(Output):
    id = fields.Integer()
    kind = fields.String()
    effective_on = fields.Date()
    recorded_at = UtcTimestamp()
    loan = fields.Integer(attribute="loan_id", allow_none=True)
    reverses = fields.Integer(attribute="reverses_id", allow_none=True)
    memo = fields.String(allow_none=True)
    postings = fields.List(fields.Nested(PostingOut))


class ChainBreakOut(Output):
    seq = fields.Integer()
    entry_id = fields.Integer()
    reason = fields.String()


class VerifyOut(Output):
    entries = fields.Integer()
    postings = fields.Integer()
    balanced = fields.Boolean()
    unbalanced_entry_ids = fields.List(fields.Integer())
    chain_intact = fields.Boolean()
    first_break = fields.Nested(ChainBreakOut, allow_none=True)
    sealed = fields.Integer()
    unsealed = fields.Integer(metadata={"description": "entries committed but not yet chained "
                                                       "(the sealer job chains them within seconds)"})


@blp.route("/journal")
@csv_list(postings_rows)
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(EntryOut, "JournalPage"))
@require(*ANY_ROLE)
def journal(args):
    with read() as conn:
        rows = reads.list_entries(conn, read_scope(), after_id=args["after"], limit=args["limit"] + 1)
    return page(rows, args["limit"])


@blp.route("/audit/verify")
@blp.response(200, VerifyOut)
@require("auditor", "admin")
def verify():
    with read() as conn:
        return chain.verify(conn).as_dict()
