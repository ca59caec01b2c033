"""`/v1/reconciliations`: a party (insurer, guarantor, pool) sends its statement of claim
payments, as JSON or as CSV, and gets each line classified against the ledger
(ledger.reconciliation); the party reads its own reconciliations, auditors those of the
institutions in their region, admin all. One is also served as CSV (a row per line)."""
from flask import request
from flask_smorest import Blueprint
from marshmallow import fields

from api.auth import actor, principal, require
from api.csv_export import CSV, csv_list, render as render_csv, wants_csv
from api.db import read, tx
from api.fields import Day, Money, RequestSchema, UtcTimestamp
from api.idempotency import write
from api.openapi import Output
from api.pagination import PageArgs, page, page_schema
from api.scope import PARTY_ROLES
from ledger import reconciliation
from ledger.errors import Invalid
from ledger.identifiers import region_prefix
from ledger.schema import RECONCILIATION_CLASSES

blp = Blueprint("reconciliations", __name__, url_prefix="/v1/reconciliations",
                description="Reconciliation: a party's statement of its claim payments against the "
                            "ledger's, line by line, with both figures")
READERS = ("admin", "auditor") + PARTY_ROLES
LISTS = {"matched": "matched", "amount_mismatch": "amount_mismatch",
         "missing_from_statement": "missing_from_statement", "unknown_to_ledger": "unknown_to_ledger",
         "duplicate": "duplicates"}  # outcome -> the list API.md names


class LineOut(Output):
    outcome = fields.String(metadata={"description": " | ".join(RECONCILIATION_CLASSES)})
    line = fields.Integer(allow_none=True, metadata={"description": "the statement's line (1 = first "
                                                                   "line; the CSV header is not counted); "
                                                                   "null when missing from the statement"})
    reference = fields.String(allow_none=True)
    statement_claim = fields.Integer(allow_none=True)
    statement_amount = Money(allow_none=True)
    statement_paid_on = fields.Date(allow_none=True)
    ledger_payment = fields.Integer(allow_none=True)
    ledger_claim = fields.Integer(allow_none=True)
    ledger_amount = Money(allow_none=True)
    ledger_paid_on = fields.Date(allow_none=True)
    differences = fields.List(fields.String(), metadata={"description": "amount, claim, paid_on: what "
                                                                        "the two sides disagree on"})


class CountsOut(Output):
    matched = fields.Integer()
    amount_mismatch = fields.Integer()
    missing_from_statement = fields.Integer()
    unknown_to_ledger = fields.Integer()
    duplicate = fields.Integer()


class SummaryOut(Output):
    id = fields.Integer()
    institution = fields.String()
    statement_date = fields.Date()
    line_count = fields.Integer(metadata={"description": "lines the statement had"})
    counts = fields.Nested(CountsOut)
    created_at = UtcTimestamp()


class ReconciliationOut(SummaryOut):
    matched = fields.List(fields.Nested(LineOut))
    amount_mismatch = fields.List(fields.Nested(LineOut))
    missing_from_statement = fields.List(fields.Nested(LineOut))
    unknown_to_ledger = fields.List(fields.Nested(LineOut))
    duplicates = fields.List(fields.Nested(LineOut))


class CsvStatementQuery(RequestSchema):
    statement_date = Day(metadata={"description": "CSV bodies only (a JSON body carries its own): "
                                                  "the statement's date"})


BODY_DOC = {"required": True, "content": {
    "application/json": {"schema": reconciliation.StatementIn},
    CSV: {"schema": {"type": "string", "description": "a header `reference,claim,amount,paid_on` (any "
                                                       "order), then one payment per line; the date "
                                                       "comes as `?statement_date=`"}}}}
ONE_CSV = {"description": "With `Accept: text/csv`: one row per line, its outcome first",
           "content": {CSV: {"schema": {"type": "string"}}}}


def _condition():
    who = principal()
    if who.role == "auditor":
        return reconciliation.visible(region_prefix=region_prefix(who.region))
    return reconciliation.visible(institution_id=who.institution_id) if who.role != "admin" else None


def _line(row: dict) -> dict:
    return {"outcome": row["outcome"], "line": row["line_no"], "reference": row["reference"],
            "statement_claim": row["statement_claim_id"], "statement_amount": row["statement_amount_fen"],
            "statement_paid_on": row["statement_paid_on"], "ledger_payment": row["payment_id"],
            "ledger_claim": row["ledger_claim_id"], "ledger_amount": row["ledger_amount_fen"],
            "ledger_paid_on": row["ledger_paid_on"], "differences": row["differences"]}


def _summary(row: dict) -> dict:
    return {"id": row["id"], "institution": row["institution"], "statement_date": row["statement_date"],
            "line_count": row["line_count"], "counts": row["counts"], "created_at": row["created_at"]}


def _render(row: dict) -> dict:
    return {**_summary(row), **{LISTS[o]: [_line(line) for line in row["lines"][o]] for o in LISTS}}


def _statement():
    """The body as a Statement, from JSON or CSV, through the one schema."""
    if request.mimetype == CSV:
        try:
            text = request.get_data(as_text=False).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid.field("body", "the CSV is not UTF-8 text") from None
        return reconciliation.read_csv(text, request.args.get("statement_date"))
    # Malformed JSON is Flask's 400; an empty body is read as nothing (422: what is missing).
    return reconciliation.parse_statement(request.get_json(force=True) if request.get_data() else None)


def _summary_rows(item: dict) -> list[dict]:
    counts = item.get("counts", {})
    return [{**{k: v for k, v in item.items() if k != "counts"}, **counts}]


@blp.route("", methods=["POST"])
@require("insurer", "guarantor", "pool")
@write("optional")
@blp.arguments(CsvStatementQuery(), location="query")
@blp.response(201, ReconciliationOut)
@blp.doc(requestBody=BODY_DOC, description="Classify a statement against the caller's payments paid "
                                           "up to its date; stored. Errors of a CSV body name the "
                                           "CSV line.")
def post(_args):
    made = reconciliation.reconcile(tx(), principal().institution_id, _statement(), actor())
    return _render(made), 201, {"Location": f"/v1/reconciliations/{made['id']}"}


post._ipledger_extra_types = (CSV,)  # api._check_content_type: a CSV body is read here


@blp.route("", methods=["GET"])
@csv_list(_summary_rows)
@blp.arguments(PageArgs(), location="query")
@blp.response(200, page_schema(SummaryOut, "ReconciliationPage"))
@require(*READERS)
def list_all(args):
    with read() as conn:
        rows = reconciliation.list_reconciliations(conn, _condition(), after_id=args["after"],
                                                   limit=args["limit"] + 1)
    return page([_summary(row) for row in rows], args["limit"])


@blp.route("/<id:reconciliation_id>")
@blp.response(200, ReconciliationOut)
@blp.doc(responses={"200": ONE_CSV})
@require(*READERS)
def get_one(reconciliation_id):
    with read() as conn:
        made = reconciliation.get_reconciliation(conn, reconciliation_id, _condition())
    if wants_csv():
        lines = [_line(line) for outcome in RECONCILIATION_CLASSES for line in made["lines"][outcome]]
        return render_csv(lines, lambda line: [line], None)
    return _render(made)
