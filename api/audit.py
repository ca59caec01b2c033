"""`GET /v1/audit/losses`: loss histories (ledger.audit), paged as JSON or streamed as CSV.

Who sees what: admin everything; fiscal and auditor keys the rows of their region's borrowers'
loans; a bank or a party (insurer, guarantor, pool) only its own rows. The query narrows that
scope, never widens it.
"""
from __future__ import annotations

import base64
from datetime import date

from flask import Response, stream_with_context
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validates_schema

from api.auth import ANY_ROLE, principal, require
from api.csv_export import CSV, wants_csv
from api.db import engine, read
from api.fields import Code, Day, Money, QueryInteger, Region, RequestSchema, Text
from api.openapi import Output
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, page_schema
from api.scope import PARTY_ROLES
from ledger import audit
from ledger.identifiers import region_prefix

blp = Blueprint("audit", __name__, url_prefix="/v1/audit",
                description="Loss histories: who took on, paid and got back which loss")

class LossCursor(Text):
    """The `next` of a page of losses: the last row's (date, event rank, row id), opaque."""

    def __init__(self, **kwargs):
        super().__init__(100, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            kind, day, rank, source_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().split(":")
            key = (date.fromisoformat(day), int(rank), int(source_id))
            assert kind == "loss" and 0 <= key[1] < len(audit.EVENT_OF_RANK) and 0 < key[2] < 2**63
            return key
        except Exception:
            raise ValidationError("not a cursor returned by this API") from None


def encode_key(key: audit.Key) -> str:
    day, rank, source_id = key
    return base64.urlsafe_b64encode(f"loss:{day.isoformat()}:{rank}:{source_id}".encode()).decode().rstrip("=")


class LossQuery(RequestSchema):
    institution = Code(40, metadata={"description": "only this institution's rows (its code)"})
    region = Region(metadata={"description": "the borrower's region; a province or city includes "
                                             "what is under it"})
    program = Text(60, metadata={"description": "programme code"})
    from_ = Day(data_key="from", metadata={"description": "first day shown (running figures still "
                                                         "count the party's earlier events)"})
    to = Day(metadata={"description": "last day shown"})
    limit = QueryInteger(low=1, high=MAX_LIMIT, load_default=DEFAULT_LIMIT,
                         metadata={"description": "JSON page size; the CSV streams every row"})
    after = LossCursor(metadata={"description": "the `next` cursor of the previous page"})

    @validates_schema
    def _span(self, values, **kwargs):
        if values.get("from_") and values.get("to") and values["to"] < values["from_"]:
            raise ValidationError("must not be before from", "to")


class LossOut(Output):
    on = fields.Date(metadata={"description": "the event's business date"})
    event = fields.String(metadata={"description": " | ".join(audit.EVENTS)})
    institution = fields.String(metadata={"description": "the party (or bank) whose loss it is"})
    role = fields.String()
    claim = fields.Integer()
    loan = fields.Integer()
    program = fields.String()
    region = fields.String(metadata={"description": "the borrower's region (frozen on the loan)"})
    amount = Money(metadata={"description": "the event's own figure: share, retained part, payment, "
                                            "returned part or amount given back"})
    loss = Money(allow_negative=True, metadata={"description": "what the event changes in the net loss"})
    net_loss = Money(allow_negative=True, metadata={
        "description": "the party's running net loss over all its rows matching the filters"})
    to = fields.String(allow_none=True, metadata={"description": "recovery: who received the part"})
    reference = fields.String(allow_none=True)


CSV_DOC = {"description": "A page `{items, next}`; with `Accept: text/csv`, EVERY row from the "
                          "cursor on (no limit), streamed, with a header row",
           "content": {CSV: {"schema": {"type": "string"}}}}


def _scope() -> audit.LossScope:
    who = principal()
    if who.role == "admin":
        return audit.LossScope()
    if who.role in ("fiscal", "auditor"):
        return audit.LossScope(region_prefix=region_prefix(who.region))
    assert who.role == "bank" or who.role in PARTY_ROLES
    return audit.LossScope(institution_id=who.institution_id)


def _render(row: dict) -> dict:
    return {"on": row["on"], "event": row["event"], "institution": row["institution"], "role": row["role"],
            "claim": row["claim"], "loan": row["loan"], "program": row["program"], "region": row["region"],
            "amount": row["amount_fen"], "loss": row["loss_fen"], "net_loss": row["net_loss_fen"],
            "to": row["to"], "reference": row["reference"]}


@blp.route("/losses")
@blp.arguments(LossQuery(), location="query")
@blp.response(200, page_schema(LossOut, "LossPage"))
@blp.doc(responses={"200": CSV_DOC})
@require(*ANY_ROLE)
def losses(args):
    wanted = audit.LossFilter(args.get("institution"), args.get("program"),
                              region_prefix(args["region"]) if args.get("region") else None,
                              args.get("from_"), args.get("to"))
    scope, after = _scope(), args.get("after")
    if wants_csv():
        return Response(stream_with_context(_csv(scope, wanted, after)), mimetype=CSV)
    with read() as conn:
        rows = audit.list_losses(conn, scope, wanted, after=after, limit=args["limit"] + 1)
    more = len(rows) > args["limit"]
    rows = rows[:args["limit"]]
    return {"items": [_render(row) for row in rows],
            "next": encode_key(rows[-1]["key"]) if more and rows else None}


def _csv(scope, wanted, after):
    """The CSV, a line at a time: one database cursor, one row in hand."""
    with engine().connect() as conn:
        yield from audit.csv_lines(audit.stream_losses(conn, scope, wanted, after=after))
        conn.commit()
