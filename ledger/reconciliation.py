"""Reconciliation (issue 8 item 5): a party's statement of its claim payments against the ledger.

A party (insurer, guarantor, pool) sends a statement dated `statement_date` listing the
payments it made: `reference` (its own payment reference, which the ledger keeps unique per
payer), `claim`, `amount`, `paid_on`. The statement is read by ONE schema (`StatementIn`),
whether it came as JSON or as CSV (`read_csv` turns the CSV into the same shape first, so an
error names `lines[3].amount` and the CSV line it came from).

Classification (`classify`, pure), against the party's own `claim_payments` paid on or before
the statement date, matched on the reference:
- `duplicate`: a line whose reference an earlier line of the statement already used;
- `unknown_to_ledger`: no payment of this party has the reference (up to the statement date);
- `amount_mismatch`: the payment exists but its amount or its claim differs;
- `matched`: amount and claim agree (a different `paid_on` is still matched, listed in
  `differences`: a booking date, not a figure);
- `missing_from_statement`: a ledger payment whose reference no line names (a payment recorded
  without a reference can never be matched, so it is always here).
Every line keeps the statement's figures beside the ledger's. The reconciliation and its lines
are stored as computed (check constraints keep each outcome consistent with its figures) and
never change; a new statement is a new reconciliation.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any, Sequence

from marshmallow import ValidationError, post_load, validates_schema
from sqlalchemy import Connection, func, select

from ledger.bulk import insert_many
from ledger.db import utcnow
from ledger.dates import today as business_today
from ledger.errors import FieldError, Invalid, NotFound, messages_at, path_parts, raise_if_any
from ledger.fields import Day, Integer, Money, Objects, RequestSchema, Text, load
from ledger.journal import Actor
from ledger.schema import (RECONCILIATION_CLASSES, claim_payments, institutions, reconciliation_lines,
                           reconciliations)

MAX_LINES = 10_000
CSV_COLUMNS = ("reference", "claim", "amount", "paid_on")
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class StatementLine:
    """One line of a party's statement: what it says it paid."""

    reference: str
    claim_id: int
    amount_fen: int
    paid_on: date


@dataclass(frozen=True)
class Statement:
    statement_date: date
    lines: tuple[StatementLine, ...]


@dataclass(frozen=True)
class Payment:
    """A ledger payment of the party (a `claim_payments` row)."""

    id: int
    claim_id: int
    amount_fen: int
    paid_on: date
    reference: str | None


@dataclass(frozen=True)
class Outcome:
    """One classified line: the statement's side (absent when missing from the statement) and the
    ledger's (absent when unknown to the ledger), and what differs."""

    outcome: str
    line_no: int | None
    line: StatementLine | None
    payment: Payment | None
    differences: tuple[str, ...] = ()


class StatementLineIn(RequestSchema):
    reference = Text(120, required=True, metadata={"description": "the party's own payment reference"})
    claim = Integer(required=True, low=1, high=MAX_ID, metadata={"description": "the claim id paid on"})
    amount = Money(required=True, allow_zero=False)
    paid_on = Day(required=True)

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> StatementLine:
        return StatementLine(values["reference"], values["claim"], values["amount"], values["paid_on"])


class StatementIn(RequestSchema):
    """`POST /v1/reconciliations`: the statement, from JSON or (through `read_csv`) from CSV."""

    statement_date = Day(required=True, metadata={"description": "payments paid up to this day are "
                                                                 "compared; not in the future"})
    lines = Objects(StatementLineIn, max_items=MAX_LINES, noun="lines", each=True, required=True,
                    metadata={"description": f"0 to {MAX_LINES:,} lines"})

    @validates_schema(skip_on_field_errors=False)
    def _dates(self, values: dict, **kwargs: Any) -> None:
        day = values.get("statement_date")
        if day is None:
            return
        problems = [(("statement_date",), "cannot be in the future")] if day > business_today() else []
        problems += [(("lines", index, "paid_on"), "is after statement_date")
                     for index, line in enumerate(values.get("lines") or [])
                     if isinstance(line, StatementLine) and line.paid_on > day]
        if problems:
            raise ValidationError(messages_at(problems))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Statement:
        return Statement(values["statement_date"], tuple(values["lines"]))


STATEMENT_IN = StatementIn()


def parse_statement(raw: object) -> Statement:
    return load(STATEMENT_IN, raw)


def read_csv(text: str, statement_date: object) -> Statement:
    """A CSV statement (header `reference,claim,amount,paid_on`, any order, extra columns
    refused) read by `StatementIn`; errors name the item and its CSV line (the header is line 1)."""
    if "\x00" in text:
        raise Invalid.field("body", "contains a NUL character")
    rows = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(rows, [])]
    missing = [name for name in CSV_COLUMNS if name not in header]
    extra = [name for name in header if name not in CSV_COLUMNS]
    if missing or extra or len(set(header)) != len(header):
        raise Invalid.field("body", "CSV line 1: the header must name the columns " + ",".join(CSV_COLUMNS)
                            + (f"; missing {','.join(missing)}" if missing else "")
                            + (f"; unknown {','.join(extra)}" if extra else ""))
    lines, errors = [], []
    for number, cells in enumerate(rows, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line (a trailing newline) is not a statement line
        if len(lines) == MAX_LINES:
            raise Invalid.field("lines", f"CSV line {number}: at most {MAX_LINES} lines")
        if len(cells) != len(header):
            errors.append(FieldError(f"lines[{len(lines)}]", f"CSV line {number}: {len(cells)} cells, "
                                                             f"the header has {len(header)}"))
        item = dict(zip(header, (cell.strip() for cell in cells)))
        claim = item.get("claim", "")
        item["claim"] = int(claim) if claim.isascii() and claim.isdigit() and len(claim) < 20 else claim
        lines.append((number, item))
    raise_if_any(errors)
    try:
        return parse_statement({"statement_date": statement_date, "lines": [item for _, item in lines]})
    except Invalid as error:
        raise_if_any(_with_csv_lines(error, [number for number, _ in lines]))
        raise


def _with_csv_lines(error: Invalid, numbers: Sequence[int]) -> list[FieldError]:
    """The same errors, each item's message prefixed with the CSV line it came from."""
    found = []
    for item in error.errors:
        parts = path_parts(item.field)
        if len(parts) > 1 and parts[0] == "lines" and isinstance(parts[1], int) and parts[1] < len(numbers):
            found.append(FieldError(item.field, f"CSV line {numbers[parts[1]]}: {item.message}"))
        else:
            found.append(item)
    return found


# --- classifying (pure) ------------------------------------------------------------------------

def classify(statement: Statement, payments: Sequence[Payment]) -> list[Outcome]:
    """Each statement line in order, then each payment the statement lacks, in payment order."""
    by_reference = {p.reference: p for p in payments if p.reference is not None}
    first_line: dict[str, int] = {}
    out: list[Outcome] = []
    for number, line in enumerate(statement.lines, start=1):
        payment = by_reference.get(line.reference)
        if line.reference in first_line:
            out.append(Outcome("duplicate", number, line, payment, _differences(line, payment)))
            continue
        first_line[line.reference] = number
        if payment is None:
            out.append(Outcome("unknown_to_ledger", number, line, None))
            continue
        differences = _differences(line, payment)
        figures_differ = "amount" in differences or "claim" in differences
        out.append(Outcome("amount_mismatch" if figures_differ else "matched", number, line, payment, differences))
    out += [Outcome("missing_from_statement", None, None, p) for p in payments
            if p.reference is None or p.reference not in first_line]
    assert sum(o.line is not None for o in out) == len(statement.lines), "every line is classified once"
    return out


def _differences(line: StatementLine, payment: Payment | None) -> tuple[str, ...]:
    if payment is None:
        return ()
    pairs = (("amount", line.amount_fen, payment.amount_fen), ("claim", line.claim_id, payment.claim_id),
             ("paid_on", line.paid_on, payment.paid_on))
    return tuple(name for name, stated, booked in pairs if stated != booked)


# --- storing and reading -----------------------------------------------------------------------

def reconcile(conn: Connection, institution_id: int, statement: Statement, actor: Actor) -> dict:
    """Classify the statement against the party's payments up to its date and store the result."""
    assert isinstance(statement, Statement)
    payments = [Payment(r.id, r.claim_id, r.amount_fen, r.paid_on, r.reference) for r in conn.execute(
        select(claim_payments).where(claim_payments.c.institution_id == institution_id,
                                     claim_payments.c.paid_on <= statement.statement_date)
        .order_by(claim_payments.c.id))]
    outcomes = classify(statement, payments)
    reconciliation_id = conn.execute(reconciliations.insert().values(
        institution_id=institution_id, statement_date=statement.statement_date,
        line_count=len(statement.lines), created_by_key_id=actor.key_id, created_at=utcnow())
        .returning(reconciliations.c.id)).scalar_one()
    insert_many(conn, reconciliation_lines, [_line_row(reconciliation_id, o) for o in outcomes])
    return get_reconciliation(conn, reconciliation_id)


def _line_row(reconciliation_id: int, o: Outcome) -> dict:
    line, payment = o.line, o.payment
    return {"reconciliation_id": reconciliation_id, "outcome": o.outcome, "line_no": o.line_no,
            "reference": line.reference if line else payment.reference,
            "statement_claim_id": line.claim_id if line else None,
            "statement_amount_fen": line.amount_fen if line else None,
            "statement_paid_on": line.paid_on if line else None,
            "payment_id": payment.id if payment else None,
            "ledger_claim_id": payment.claim_id if payment else None,
            "ledger_amount_fen": payment.amount_fen if payment else None,
            "ledger_paid_on": payment.paid_on if payment else None,
            "differences": ",".join(o.differences)}


def visible(institution_id: int | None = None, region_prefix: str | None = None):
    """Reconciliations a reader sees: its institution's, or those of institutions in a region,
    or all (neither given)."""
    if institution_id is not None:
        return reconciliations.c.institution_id == institution_id
    if region_prefix:
        return reconciliations.c.institution_id.in_(
            select(institutions.c.id).where(institutions.c.region.like(f"{region_prefix}%")))
    return None


def _heads(conn: Connection, condition, after_id: int = 0, limit: int | None = None, one: int | None = None):
    query = (select(reconciliations, institutions.c.code.label("institution"))
             .join(institutions, institutions.c.id == reconciliations.c.institution_id)
             .where(reconciliations.c.id > after_id).order_by(reconciliations.c.id))
    if one is not None:
        query = query.where(reconciliations.c.id == one)
    if condition is not None:
        query = query.where(condition)
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(row) for row in conn.execute(query).mappings()]
    counts: dict[int, dict[str, int]] = {row["id"]: dict.fromkeys(RECONCILIATION_CLASSES, 0) for row in rows}
    if rows:
        for rid, outcome, n in conn.execute(
                select(reconciliation_lines.c.reconciliation_id, reconciliation_lines.c.outcome, func.count())
                .where(reconciliation_lines.c.reconciliation_id.in_(list(counts)))
                .group_by(reconciliation_lines.c.reconciliation_id, reconciliation_lines.c.outcome)):
            counts[rid][outcome] = int(n)
    for row in rows:
        row["counts"] = counts[row["id"]]
    return rows


def get_reconciliation(conn: Connection, reconciliation_id: int, condition=None) -> dict:
    """One reconciliation with its lines by outcome (each in statement order, missing ones last)."""
    found = _heads(conn, condition, one=reconciliation_id)
    if not found:
        raise NotFound(f"reconciliation {reconciliation_id} does not exist")
    head = found[0]
    head["lines"] = {outcome: [] for outcome in RECONCILIATION_CLASSES}
    for line in conn.execute(select(reconciliation_lines)
                             .where(reconciliation_lines.c.reconciliation_id == reconciliation_id)
                             .order_by(reconciliation_lines.c.id)).mappings():
        line = dict(line)
        line["differences"] = [d for d in line["differences"].split(",") if d]
        head["lines"][line["outcome"]].append(line)
    return head


def list_reconciliations(conn: Connection, condition=None, *, after_id: int = 0, limit: int = 50) -> list[dict]:
    return _heads(conn, condition, after_id=after_id, limit=limit)
