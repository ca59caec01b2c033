"""Import a bank's loans from CSV through the same path as `POST /v1/loans/batch`.

Format (docs/loans-csv.md): UTF-8, a header row, ONE ROW PER PLEDGE; the loan columns repeat
on each row of the same loan, and rows of one loan share its `contract_no` (they may be
anywhere in the file; the first row of a loan fixes its loan columns, and later rows must
agree). Empty cells are absent values.

Guarantees: the rows become API-shaped loan dicts that are read by the batch endpoint's own
schema (`ledger.loans.LoanIn`), so a value means the same in a file and in a request; the whole
file is imported or nothing is (one transaction); every error names its line and column (the
schema's every error in the file at once, then the references); each chunk of loans is one
`create_loans` batch (bulk inserts).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable, Iterable

from sqlalchemy import Engine

from ledger.db import run_in_transaction
from ledger.errors import DomainError, FieldError, Invalid, path_parts, with_article
from ledger.institutions import get_institution
from ledger.journal import SYSTEM, Actor
from ledger.loans import MAX_BATCH, create_loans, parse_loans

LOAN_COLUMNS = ("contract_no", "borrower", "program", "principal", "annual_rate", "start_date",
                "maturity_date", "ip_share", "insured_amount")
PLEDGE_COLUMNS = {"pledge_kind": "kind", "pledge_number": "number", "nice_class": "nice_class",
                  "registration_no": "registration_no", "registered_on": "registered_on",
                  "appraised_value": "appraised_value"}
COLUMNS = LOAN_COLUMNS + tuple(PLEDGE_COLUMNS)
CHUNK = 2_000
ANALYZE_AFTER = 5_000
MAX_ROWS = 1_000_000


@dataclass
class CsvLoan:
    raw: dict
    lines: list[int]  # the file line of the loan's first row, then of each pledge row


def read_loans(text: Iterable[str]) -> list[CsvLoan]:
    """CSV text -> API-shaped loan dicts (grouped by contract_no) with their line numbers."""
    reader = csv.DictReader(text)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    unknown = [c for c in (reader.fieldnames or []) if c not in COLUMNS]
    if missing or unknown:
        raise Invalid.field("header", f"missing columns: {missing or 'none'}; unknown columns: {unknown or 'none'}")
    loans: dict[str, CsvLoan] = {}
    errors: list[FieldError] = []
    for row in reader:
        line = reader.line_num
        if line > MAX_ROWS:
            raise Invalid.field("file", f"more than {MAX_ROWS} rows")
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        bad = [k for k, v in values.items() if isinstance(v, str) and "\x00" in v]
        if bad:  # PostgreSQL text cannot hold NUL; refuse it on every database alike
            errors.append(FieldError(f"line {line}: {bad[0]}", "contains a NUL character"))
            continue
        loan_part = {c: values[c] for c in LOAN_COLUMNS if values.get(c)}
        pledge = _pledge(values, line, errors)
        existing = loans.get(loan_part.get("contract_no", f"<line {line}>"))
        if existing is None:
            loans[loan_part.get("contract_no", f"<line {line}>")] = CsvLoan({**loan_part, "pledges": [pledge]}, [line, line])
            continue
        loan_fields = {k: v for k, v in existing.raw.items() if k != "pledges"}
        if loan_fields != loan_part:
            differing = sorted(k for k in set(loan_fields) | set(loan_part) if loan_fields.get(k) != loan_part.get(k))
            errors.append(FieldError(f"line {line}", f"loan columns differ from line {existing.lines[0]} "
                                                     f"for the same contract_no: {', '.join(differing)}"))
        existing.raw["pledges"].append(pledge)
        existing.lines.append(line)
    if errors:
        raise Invalid(errors[0].message, errors)
    return list(loans.values())


def _pledge(values: dict, line: int, errors: list[FieldError]) -> dict:
    pledge = {api: values[column] for column, api in PLEDGE_COLUMNS.items() if values.get(column)}
    if "nice_class" in pledge:
        # A cell is text; the schema reads JSON, where a class is an integer. Only ASCII digits
        # become one (int() would also take " 9", "+9" and "٩").
        if pledge["nice_class"].isascii() and pledge["nice_class"].isdigit():
            pledge["nice_class"] = int(pledge["nice_class"])
        else:
            errors.append(FieldError(f"line {line}: nice_class", "must be a whole number 1-45"))
    return pledge


COLUMN_OF_PLEDGE_FIELD = {api: column for column, api in PLEDGE_COLUMNS.items()}


def locate(error: FieldError, loans: list[CsvLoan]) -> FieldError:
    """`loans[3].pledges[1].number` -> `line 57: pledge_number` (the file's own words)."""
    parts = path_parts(error.field)
    if len(parts) < 3 or parts[0] != "loans" or not isinstance(parts[1], int):
        return error
    if not 0 <= parts[1] < len(loans):
        return error
    loan = loans[parts[1]]
    if parts[2] == "pledges" and len(parts) >= 4 and isinstance(parts[3], int):
        line = loan.lines[1 + parts[3]] if 1 + parts[3] < len(loan.lines) else loan.lines[0]
        column = COLUMN_OF_PLEDGE_FIELD.get(parts[4] if len(parts) > 4 else "", "pledges")
        return FieldError(f"line {line}: {column}", error.message)
    return FieldError(f"line {loan.lines[0]}: {parts[2]}", error.message)


def _located(error: DomainError, loans: list[CsvLoan]) -> DomainError:
    error.errors = [locate(e, loans) for e in error.errors]
    if error.errors:
        error.detail = "; ".join(f"{e.field}: {e.message}" for e in error.errors[:3])
    return error


def import_loans(engine: Engine, bank_code: str, text: Iterable[str], actor: Actor = SYSTEM,
                 progress: Callable[[int], None] | None = None) -> int:
    """Import every loan of the file for `bank_code`, all or nothing; returns how many."""
    csv_loans = read_loans(text)
    if not csv_loans:
        raise Invalid.field("file", "has no loan rows")
    try:
        drafts = parse_loans([loan.raw for loan in csv_loans])
    except Invalid as error:
        raise _located(error, csv_loans) from None

    def work(conn):
        bank = get_institution(conn, bank_code)
        if bank.kind != "bank":
            raise Invalid.field("bank", f"{bank_code} is {with_article(bank.kind)}, not a bank")
        for start in range(0, len(drafts), CHUNK):
            chunk = drafts[start:start + CHUNK]
            try:
                create_loans(conn, bank.id, chunk, actor)
            except DomainError as error:  # paths within the chunk: locate in the chunk's rows
                raise _located(error, csv_loans[start:start + CHUNK]) from None
            if progress:
                progress(len(chunk))
        return len(drafts)
    assert CHUNK <= MAX_BATCH
    count = run_in_transaction(engine, work)
    if count >= ANALYZE_AFTER and engine.dialect.name == "postgresql":
        refresh_statistics(engine)
    return count


def refresh_statistics(engine: Engine) -> None:
    """After a large load the planner's statistics are stale until autovacuum catches up; a
    loan's events were read by a full scan of postings in bench/loans.py until ANALYZE ran."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE loans, pledges, accounts, entries, postings")


def read_file(path: str) -> io.TextIOBase:
    return open(path, newline="", encoding="utf-8-sig")
