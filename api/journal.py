"""`/v1/journal` (entries with postings, in order), `/v1/audit/verify` and `/v1/audit/head`."""
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields

from api.auth import ANY_ROLE, principal, require
from api.csv_export import csv_list, postings_rows
from api.db import read
from api.fields import Money, RequestSchema, UtcTimestamp
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import read_scope
from ledger import chain, reads
from ledger.errors import Invalid

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


class HeadOut(Output):
    """The chain's last seal; every field is null while nothing is sealed."""

    seq = fields.Integer(allow_none=True, metadata={"description": "the seal's position in the chain"})
    hash = fields.String(allow_none=True, metadata={"description": "its hash: 64 hexadecimal digits"})
    entry_id = fields.Integer(allow_none=True, metadata={"description": "the entry it seals"})
    sealed_at = UtcTimestamp(allow_none=True)
    anchor = fields.String(allow_none=True, metadata={
        "description": "`SEQ:HASH`, to write down and later pass to `GET /v1/audit/verify?expect=`",
        "example": "1234:" + "0" * 64})


class ChainHead(fields.String):
    """`SEQ:HASH` as `GET /v1/audit/head` gives it -> (seq, hash)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return chain.parse_head(super()._deserialize(value, attr, data, **kwargs))
        except Invalid as error:
            raise ValidationError(error.errors[0].message) from None


class VerifyQuery(RequestSchema):
    expect = ChainHead(metadata={
        "description": "a head written down earlier (`SEQ:HASH`, the `anchor` of "
                       "`GET /v1/audit/head`): the answer's `expect` says whether the book "
                       "still extends it", "example": "1234:" + "0" * 64})


class ExpectationOut(Output):
    seq = fields.Integer()
    hash = fields.String()
    extends = fields.Boolean(metadata={
        "description": "the seal at `seq` still has `hash` and the whole chain is intact: the book "
                       "up to that seal is the one the head was written from, and it goes on"})
    reason = fields.String(allow_none=True, metadata={"description": "why not, when it does not"})


class ScopeOut(Output):
    region = fields.String(metadata={"description": "the caller's region (000000: the country)"})
    entries = fields.Integer(metadata={"description": "entries the caller's /v1/journal holds"})
    postings = fields.Integer(metadata={"description": "their postings"})


class ClaimBreakOut(Output):
    figure = fields.String(metadata={"description": "share_paid_vs_payments, party_paid, party_owed, "
                                                    "bank_claim_receivable, fund_balance or bank_net_loss"})
    share = fields.Integer(metadata={"description": "the claim share, for share_paid_vs_payments"})
    institution = fields.Integer(metadata={"description": "the institution id, for party and bank figures"})
    program = fields.Integer(metadata={"description": "the programme id, for fund_balance"})
    records = Money(attribute="records_fen", metadata={"description": "the figure from the claim records"})
    journal = Money(attribute="journal_fen", metadata={"description": "the figure from the journal"})


class VerifyOut(Output):
    """The proof of the whole book: a hash chain can only be proven whole, so `entries`,
    `postings`, `balanced`, the chain and its head are the whole book's for every caller;
    `scope` counts what the caller's own region holds."""

    entries = fields.Integer(metadata={"description": "every entry in the book"})
    postings = fields.Integer(metadata={"description": "every posting in the book"})
    balanced = fields.Boolean()
    unbalanced_entry_ids = fields.List(fields.Integer())
    chain_intact = fields.Boolean()
    first_break = fields.Nested(ChainBreakOut, allow_none=True)
    sealed = fields.Integer()
    unsealed = fields.Integer(metadata={"description": "entries committed but not yet chained "
                                                       "(the sealer job chains them within seconds)"})
    head = fields.Nested(HeadOut, allow_none=True, metadata={"description": "null while nothing is sealed"})
    expect = fields.Nested(ExpectationOut, allow_none=True,
                           metadata={"description": "the answer to `?expect=`; null without it"})
    scope = fields.Nested(ScopeOut, metadata={"description": "the part of the book the caller reads"})
    claims_agree = fields.Boolean(metadata={
        "description": "the journal equals the claim records: shares paid, what parties and banks "
                       "are owed, fund balances and banks' net losses after recoveries"})
    claim_breaks = fields.List(fields.Nested(ClaimBreakOut), metadata={
        "description": "the first differences (up to 20); empty when claims_agree"})


@blp.route("/journal")
@csv_list(postings_rows)
@blp.arguments(PageArgs(), location="query")
@blp.response(200, page_schema(EntryOut, "JournalPage"))
@require(*ANY_ROLE)
def journal(args):
    with read() as conn:
        rows = reads.list_entries(conn, read_scope(), after_id=args["after"], limit=args["limit"] + 1)
    return page(rows, args["limit"])


@blp.route("/audit/verify")
@blp.arguments(VerifyQuery, location="query")
@blp.response(200, VerifyOut)
@require("auditor", "admin")
def verify(args):
    """Recompute every balance and the whole hash chain; with `expect`, prove the book still
    extends a head written down earlier."""
    with read() as conn:
        result = reads.verify_for(conn, read_scope(), args.get("expect"))
    result["scope"]["region"] = principal().region
    return result


@blp.route("/audit/head")
@blp.response(200, HeadOut)
@require("auditor", "admin")
def head():
    """The chain's last seal. Write its `anchor` down: `GET /v1/audit/verify?expect=` later
    proves the book still extends it, even against someone able to recompute every seal."""
    with read() as conn:
        last = chain.head(conn)
    return last.as_dict() if last else dict.fromkeys(HeadOut().fields)
