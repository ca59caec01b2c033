"""`/v1/subsidy-batches`: fiscal bureaus draft, approve (another key), post, cancel and reverse
subsidy batches (API.md Subsidies); fiscal and auditor keys read those of programmes involving
their region, admins all. The rules are `ledger.subsidy_batches`; this module parses, authorises
and renders.
"""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.auth import principal, require
from api.csv_export import csv_list
from api.db import read, tx
from api.fields import Choice, Code, Money, RequestSchema, Text, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from ledger import subsidy_batches as batches
from ledger.schema import SUBSIDY_BATCH_STATUSES

blp = Blueprint("subsidy_batches", __name__, url_prefix="/v1/subsidy-batches",
                description="Subsidy batches (DOMAIN.md §5): a fiscal bureau drafts a programme's "
                            "batch for a period that has ended (`2025` or `2025-Q4`); another key "
                            "of the same bureau approves it (the drafting key: 403); posting pays "
                            "each line from the bureau's subsidy budget to the borrower in one "
                            "balanced journal entry. One live batch (draft, approved, posted) per "
                            "programme and period, and none overlapping it (409). Caps are "
                            "consumed after what posted batches already paid. A posted batch is "
                            "never recomputed: reverse it and draft again. Only drafts cancel.")

PERIOD_RULE, _PERIOD = batches.PERIOD_RULE, batches.PERIOD_PATTERN
READERS = ("fiscal", "auditor", "admin")


class SubsidyBatchIn(RequestSchema):
    program = Code(60, required=True, metadata={"description": "programme code"})
    period = Text(7, required=True, validate=validate.Regexp(_PERIOD, error=f"must be {PERIOD_RULE}"),
                  metadata={"description": PERIOD_RULE, "pattern": _PERIOD.pattern})


class SubsidyBatchQuery(PageArgs):
    program = Code(60, metadata={"description": "programme code"})
    period = Text(7, validate=validate.Regexp(_PERIOD, error=f"must be {PERIOD_RULE}"),
                  metadata={"pattern": _PERIOD.pattern})
    status = Choice(SUBSIDY_BATCH_STATUSES)


class SubsidyLineOut(Output):
    id = fields.Integer(metadata={"description": "the line's id (the order of `/lines`)"})
    loan = fields.Integer()
    borrower = fields.String(metadata={"description": "the borrower's credit code"})
    kind = fields.String()
    method = fields.String()
    basis = Money(attribute="basis_fen", metadata={
        "description": "pct_of_paid: the interest or fee paid in the period; pct_of_reference_rate: "
                       "principal-days (Σ outstanding principal over the live days, in yuan-days)"})
    computed = Money(attribute="computed_fen", metadata={"description": "the formula, rounded half up once"})
    amount = Money(attribute="amount_fen", metadata={"description": "paid: the minimum of the formula and every cap"})
    capped_by = fields.List(fields.String(), metadata={
        "description": "the caps that bound the amount: pct_of_principal, per_loan, "
                       "per_borrower_year, per_borrower_total, years"})


class SubsidyExcludedOut(Output):
    loan = fields.Integer()
    kind = fields.String()
    reason = fields.String(metadata={"description": "the eligibility rule failed: max_rate_over_lpr, "
                                                    "sme_only, private_only, max_revenue"})


class SubsidyBatchSummaryOut(Output):
    id = fields.Integer()
    program = fields.String()
    period = fields.String()
    status = fields.String(metadata={"enum": list(SUBSIDY_BATCH_STATUSES)})
    total = Money(attribute="total_fen")
    line_count = fields.Integer()
    excluded_count = fields.Integer()
    created_by = fields.String(allow_none=True, metadata={"description": "the drafting key's prefix "
                                                                         "(null: the CLI or the scheduler)"})
    created_at = UtcTimestamp()
    approved_by = fields.String(allow_none=True)
    approved_at = UtcTimestamp(allow_none=True)
    posted_at = UtcTimestamp(allow_none=True)
    closed_at = UtcTimestamp(allow_none=True, metadata={"description": "when cancelled or reversed"})


class SubsidyBatchOut(SubsidyBatchSummaryOut):
    lines = fields.List(fields.Nested(SubsidyLineOut), metadata={
        "description": "the first 1,000 lines; all of them at /lines"})
    excluded = fields.List(fields.Nested(SubsidyExcludedOut), metadata={"description": "the first 1,000"})
    lines_complete = fields.Boolean(metadata={"description": "false when lines or excluded were cut "
                                                             "at 1,000: page /lines"})


def _region():
    who = principal()
    return None if who.role == "admin" else who.region


def _bureau() -> batches.Bureau:
    who = principal()
    return batches.Bureau(who.institution_id, who.region, who.key_id)


@blp.route("")
class Batches(MethodView):
    @csv_list()
    @blp.arguments(SubsidyBatchQuery(), location="query")
    @blp.response(200, page_schema(SubsidyBatchSummaryOut, "SubsidyBatchPage"))
    @require(*READERS)
    def get(self, args):
        """Batches by id: fiscal and auditor keys see those of programmes involving their region."""
        with read() as conn:
            rows = batches.list_batches(conn, _region(), program=args.get("program"), period=args.get("period"),
                                        status=args.get("status"), after_id=args["after"], limit=args["limit"] + 1)
        return page(rows, args["limit"])

    @require("fiscal")
    @write("optional")
    @blp.arguments(SubsidyBatchIn())
    @blp.response(201, SubsidyBatchOut)
    @blp.alt_response(404, description="No such programme, or one not involving the bureau's region "
                                       "(or a month of LPR it needs is not recorded)")
    @blp.alt_response(409, description="A live batch of this programme holds the period or one "
                                       "overlapping it")
    def post(self, data):
        """Draft the programme's batch for a period that has ended."""
        made = batches.draft_batch(tx(), data["program"], data["period"], _bureau())
        return made, 201, {"Location": f"/v1/subsidy-batches/{made['id']}"}


@blp.route("/<id:batch_id>")
@blp.response(200, SubsidyBatchOut)
@require(*READERS)
def get_batch(batch_id):
    with read() as conn:
        return batches.get_batch(conn, batch_id, _region())


@blp.route("/<id:batch_id>/lines")
@csv_list()
@blp.arguments(PageArgs(), location="query")
@blp.response(200, page_schema(SubsidyLineOut, "SubsidyLinePage"))
@require(*READERS)
def lines(args, batch_id):
    """The batch's lines by id (also as CSV)."""
    with read() as conn:
        rows = batches.list_lines(conn, batch_id, _region(), after_id=args["after"], limit=args["limit"] + 1)
    return page(rows, args["limit"])


def _action(name: str, idempotency: str, summary: str):
    @require("fiscal")
    @write(idempotency)
    @blp.response(200, SubsidyBatchOut)
    @blp.alt_response(403, description="The drafting key may not approve its batch (maker-checker)")
    @blp.alt_response(409, description="The batch is not in the state this action needs")
    def view(batch_id):
        return getattr(batches, name)(tx(), batch_id, _bureau())
    view.__name__ = name
    view.__doc__ = summary
    return blp.route(f"/<id:batch_id>/{name}", methods=["POST"])(view)


approve = _action("approve", "optional", "Approve a draft: another key of the drafting bureau (the "
                                         "drafting key: 403).")
post = _action("post", "required", "Pay an approved batch: one balanced journal entry per line with "
                                   "an amount, dated today.")
cancel = _action("cancel", "optional", "Cancel a draft: its period is free for a new draft.")
reverse = _action("reverse", "required", "Reverse a posted batch (every entry mirrored, dated today): "
                                         "its period is free for a corrected batch.")
