"""Loans: IP pledge loans, their repayments and fees, each money event one journal entry.

Guarantees
- One path reads loans: the request schema `LoanIn` (with `ledger.pledges.PledgeIn`) reads a loan
  of `POST /v1/loans`, each item of `POST /v1/loans/batch` (`LoanBatchIn`) and each loan of a CSV
  file (`parse_loans`) into a `LoanDraft`; the HTTP API parses and documents with the same
  schema objects. Every error of every item is reported at once, with its path
  (`loans[17].pledges[0].number`; `pledges[0].number` for a single loan).
- One path creates loans: `create_loans` takes a batch (a single post is a batch of one, the CSV
  import and the batch API are batches of up to 10,000) and is all-or-nothing: every item is
  validated, every error is reported with its field path, and nothing is written if any fails.
- A loan lends to the lending bank's own record of the borrower (ledger.parties) and freezes
  the version of that record's facts in force on its start date (`borrower_facts_id`): its
  private flag, region and industry, and the size class those facts have under the SME standard
  in force on the start date. Later postings of facts do not change them.
- A loan binds to its programme's version in force on its start date. Loan creation locks its
  programmes' rows FOR KEY SHARE before reading their versions (PostgreSQL; SQLite serialises
  writers), `ledger.programs.add_version` locks the row FOR UPDATE and refuses a version starting
  on or before a bound loan's start, so a loan's version is always `version_on(start_date)`.
- A patent (canonical number) is pledged to at most one loan that is not closed (DOMAIN.md §1):
  a second live pledge is refused (409 naming the holding loan if it is the bank's own, "another
  bank's loan" otherwise; 422 within one batch), and the database's unique index on live patent
  pledges refuses it under concurrency too. A pledge is released on its loan's `closed_on`.
  Trademarks are not checked: DOMAIN.md states the rule for the patent office's register only.
- Disbursement, repayment and fee entries balance within each owner's books (see ledger.accounts).
- Outstanding principal is the balance of the loan's receivable account, never a stored number.
  Repayments may be posted in any order of their dates (banks post late corrections): one is
  accepted when the outstanding principal, replayed in effective-date order, stays >= 0 on every
  day. `status` is `closed` exactly when the outstanding principal is zero, and `closed_on` is
  the day from which it stays zero in date order; both are recomputed from the journal under
  the loan's row lock after each repayment, so `outstanding_fen(as_of=d)` is zero exactly from
  `closed_on` on (unless a later reversal reopens the loan).
- The domain functions check the amounts and dates they are given (types, signs, ranges), not
  only the API's fields.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema
from sqlalchemy import Connection, bindparam, func, literal_column, select, union_all, update
from sqlalchemy.exc import IntegrityError

from ledger import accounts as chart
from ledger.bulk import insert_many
from ledger.db import utcnow
from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.errors import (Conflict, FieldError, Invalid, NotFound, Path, messages_at, path_text,
                           raise_if_any)
from ledger.fields import CreditCode, Day, Money, Objects, Ratio, RequestSchema, Text, load
from ledger.journal import (Actor, EntryDraft, Line, create_accounts,
                            ensure_accounts, post_entries, post_entry)
from ledger.money import check_fen, format_yuan
from ledger.parties import Borrower, FactsVersion, borrowers_with_facts, facts_in_force
from ledger.pledges import MAX_PLEDGES_PER_LOAN, Pledge, PledgeIn, duplicate_problems, pledge_type
from ledger.programs import load_programs, program_errors_for_loan
from ledger.schema import (accounts, borrower_facts, borrowers, entries, institutions, loans, pledges,
                           postings, program_versions, programs)
from ledger.sme import classify

MAX_BATCH = 10_000
MAX_ANNUAL_RATE = Decimal("1")
BATCH_COUNT_MESSAGE = f"must list 1 to {MAX_BATCH} loans"
PLEDGE_COUNT_MESSAGE = f"must list 1 to {MAX_PLEDGES_PER_LOAN} pledged registrations"


@dataclass(frozen=True)
class LoanDraft:
    """A loan as posted, parsed and checked for form (not yet for references)."""

    contract_no: str
    borrower_code: str
    program_code: str
    principal_fen: int
    annual_rate: Decimal
    start_date: date
    maturity_date: date
    ip_share: Decimal | None
    insured_amount_fen: int | None
    pledges: tuple[Pledge, ...]


# --- reading a request ------------------------------------------------------------------------
# LoanIn reads one loan (POST /v1/loans, each item of the batch, each loan of a CSV file);
# LoanBatchIn reads the batch body. The HTTP API parses and documents with these schemas.

def loan_problems(loan: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """Rules across a loan's fields that loaded: maturity after start; each registration
    pledged once (once every pledge loaded)."""
    problems: list[tuple[Path, str]] = []
    start, maturity = loan.get("start_date"), loan.get("maturity_date")
    if start is not None and maturity is not None and maturity <= start:
        problems.append((("maturity_date",), "must be after start_date"))
    items = loan.get("pledges")
    if items and all(isinstance(item, Pledge) for item in items):
        problems += duplicate_problems(items)
    return problems


class LoanIn(RequestSchema):
    """One loan as a bank posts it (API.md "Loans"), read into a `LoanDraft`."""

    contract_no = Text(60, required=True, metadata={
        "example": "ICBC-GZ-2025-0042", "description": "the bank's contract number, unique per "
                                                       "bank"})
    borrower = CreditCode(attribute="borrower_code", required=True, metadata={
        "description": "the borrower's unified social credit code (POST /v1/borrowers first)"})
    program = Text(60, attribute="program_code", required=True, metadata={
        "example": "gz-ip-2023", "description": "programme code; in force on start_date and "
                                                "covering the borrower's region"})
    principal = Money(attribute="principal_fen", required=True, allow_zero=False)
    annual_rate = Ratio(high=MAX_ANNUAL_RATE, required=True, metadata={
        "example": "0.0345", "description": "a decimal: 0.0345 is 3.45% a year"})
    start_date = Day(required=True, metadata={"description": "the disbursement day; not after "
                                                             "today (business time zone)"})
    maturity_date = Day(required=True, metadata={"example": "2026-02-28",
                                                 "description": "after start_date"})
    ip_share = Ratio(high=Decimal(1), allow_none=True, load_default=None, metadata={
        "example": "0.8", "description": "the IP part of the collateral, 0-1"})
    insured_amount = Money(attribute="insured_amount_fen", allow_none=True, load_default=None)
    pledges = Objects(PledgeIn, min_items=1, max_items=MAX_PLEDGES_PER_LOAN, required=True,
                      error_messages={"too_few": PLEDGE_COUNT_MESSAGE,
                                      "too_many": PLEDGE_COUNT_MESSAGE})

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, values: dict, **kwargs: Any) -> None:
        problems = loan_problems(values)
        if problems:
            raise ValidationError(messages_at(problems))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> LoanDraft:
        return LoanDraft(**{**values, "pledges": tuple(values["pledges"])})


class LoanBatchIn(RequestSchema):
    """`POST /v1/loans/batch`: 1 to 10,000 loans, all or nothing."""

    loans = Objects(LoanIn, min_items=1, max_items=MAX_BATCH, required=True,
                    error_messages={"too_few": BATCH_COUNT_MESSAGE,
                                    "too_many": BATCH_COUNT_MESSAGE},
                    metadata={"description": f"1 to {MAX_BATCH:,} loans, all or nothing; "
                                             "errors name the item (loans[17].principal)"})


# One instance of each, reused (the HTTP API parses with these very objects).
LOAN_IN, LOAN_BATCH_IN, LOANS = LoanIn(), LoanBatchIn(), LoanIn(many=True)


def parse_loans(raw_items: object, prefix: str = "loans") -> list[LoanDraft]:
    """API-shaped loan dicts -> drafts through `LoanIn`, as the batch endpoint reads them (the
    CSV import, the demo); ONE `Invalid` lists every error (`loans[3].pledges[0].number`)."""
    return load(LOANS, raw_items, (prefix,) if prefix else ())


def _where(prefix: str, index: int, name: str | None = None) -> str:
    """The path of item `index`'s field: `loans[3].start_date`, or `start_date` for a single
    loan (no prefix); without `name`, the item's own path (`loans[3]`, or "")."""
    parts = ((prefix, index) if prefix else ()) + ((name,) if name else ())
    return path_text(parts) if parts else ""


# --- creating ---------------------------------------------------------------------------------

def create_loans(conn: Connection, bank_id: int, drafts: Sequence[LoanDraft], actor: Actor,
                 prefix: str = "loans", today: date | None = None) -> list[int]:
    """Check and create every loan of the batch (read by `LoanIn`), with pledges and
    disbursement entries. Errors name `{prefix}[i].field`, or `field` with no prefix."""
    return [row["id"] for row in _create(conn, bank_id, drafts, actor, prefix, today).loan_rows]


def create_loan(conn: Connection, bank_id: int, draft: LoanDraft, actor: Actor,
                today: date | None = None) -> dict:
    """Create one loan (a batch of one, errors named without a prefix) and return it as
    `get_loan` would read it, built from what was just written rather than read back."""
    written = _create(conn, bank_id, [draft], actor, "", today)
    [row], [(borrower, facts, program, version, _size)] = written.loan_rows, written.bindings
    [event] = written.events
    return {**row, "bank": borrower.bank, "borrower": borrower.facts.credit_code,
            "program": program.code, "program_version": version.version,
            "borrower_facts_as_of": facts.as_of, "pledges": written.pledge_rows,
            "events": [event], "outstanding_principal_fen": draft.principal_fen}


@dataclass(frozen=True)
class _Written:
    """What `_create` wrote: loan rows with their ids, each loan's binding, the pledge rows
    and the disbursement events (shaped as `loan_events` reads them)."""

    loan_rows: list[dict]
    bindings: list[tuple]
    pledge_rows: list[dict]
    events: list[dict]


def _create(conn: Connection, bank_id: int, drafts: Sequence[LoanDraft], actor: Actor,
            prefix: str, today: date | None) -> _Written:
    assert drafts and all(isinstance(draft, LoanDraft) for draft in drafts)
    _check_started(drafts, prefix, today or business_today())
    records = borrowers_with_facts(conn, bank_id, {d.borrower_code for d in drafts})
    # Key-share: loans of one programme go on in parallel; add_version (FOR UPDATE) waits for them.
    programs_found = load_programs(conn, {d.program_code for d in drafts}, share_lock=True)
    bindings = _bind(drafts, records, programs_found, prefix)
    _check_numbers_free(conn, bank_id, drafts, prefix)
    rows = [_loan_row(bank_id, draft, *binding, actor) for draft, binding in zip(drafts, bindings)]
    try:
        loan_ids = insert_many(conn, loans, rows, return_ids=True)
    except IntegrityError as exc:  # a concurrent post of the same contract number
        raise Conflict("a contract number of this batch was just used by another request") from exc
    for row, loan_id in zip(rows, loan_ids):
        row["id"] = loan_id
    try:
        pledge_rows = _insert_pledges(conn, loan_ids, drafts)
    except IntegrityError as exc:  # uq_pledges_live_patent: a concurrent pledge of the same patent
        raise Conflict("a patent of this batch was just pledged by another request's loan") from exc
    events = _disburse(conn, bank_id, loan_ids, drafts, [b[0] for b in bindings], actor)
    return _Written(rows, bindings, pledge_rows, events)


def _check_started(drafts: list[LoanDraft], prefix: str, today: date) -> None:
    """A loan is posted when it is disbursed: a start date after today is a mistake."""
    raise_if_any([FieldError(_where(prefix, i, "start_date"), "cannot be in the future")
                  for i, draft in enumerate(drafts) if draft.start_date > today])


def _bind(drafts, records, programs_found, prefix):
    """Each loan's borrower record, the facts it freezes, programme, version and size class."""
    errors: list[FieldError] = []
    bindings = []
    for i, draft in enumerate(drafts):
        where = _where(prefix, i)
        borrower, versions = records.get(draft.borrower_code, (None, None))
        facts = facts_in_force(versions, draft.start_date) if borrower is not None else None
        if borrower is None:
            errors.append(FieldError(_where(prefix, i, "borrower"),
                                     f"borrower {draft.borrower_code} is not registered by this bank; "
                                     "POST /v1/borrowers first"))
        version, program_errors = program_errors_for_loan(
            programs_found.get(draft.program_code), draft.program_code, draft.start_date,
            facts.facts.region if facts else None, where)
        errors.extend(program_errors)
        size = None
        if facts is not None:
            try:
                size = classify(facts.facts.industry, facts.facts.employees, facts.facts.revenue_fen,
                                facts.facts.total_assets_fen, on=draft.start_date)
            except Invalid as error:
                errors.append(FieldError(_where(prefix, i, "start_date"), error.detail))
        program = programs_found.get(draft.program_code)
        bindings.append((borrower, facts, program, version, size))
    raise_if_any(errors)
    return bindings


# Contracts of the bank and live pledges of patents among the batch's numbers, in one statement
# (one round trip for both checks), built once: SQLAlchemy reuses its compiled form.
_TAKEN_OR_HELD = union_all(
    select(literal_column("'contract'").label("what"), loans.c.contract_no.label("number"), loans.c.id,
           loans.c.bank_id, loans.c.contract_no)
    .where(loans.c.bank_id == bindparam("bank_id"),
           loans.c.contract_no.in_(bindparam("contracts", expanding=True))),
    select(literal_column("'patent'"), pledges.c.number, loans.c.id, loans.c.bank_id, loans.c.contract_no)
    .join(loans, loans.c.id == pledges.c.loan_id)
    .where(pledges.c.kind == "patent", pledges.c.released_on.is_(None),
           pledges.c.number.in_(bindparam("patents", expanding=True))))


def _check_numbers_free(conn, bank_id: int, drafts, prefix: str) -> None:
    """Contract numbers the bank has not booked, patents under no live pledge (DOMAIN.md §1: the
    patent office registers one pledge at a time): repeats within the batch are 422 (all
    reported at once), numbers the books already hold 409 (contracts first)."""
    contracts, contract_errors = _first_contracts(drafts, prefix)
    patents, patent_errors = _first_patents(drafts, prefix)
    raise_if_any(contract_errors + patent_errors)
    taken, held = set(), []
    numbers, pledged = list(contracts), sorted(patents)
    for start in range(0, max(len(numbers), len(pledged)), 5000):
        for row in conn.execute(_TAKEN_OR_HELD, {"bank_id": bank_id, "contracts": numbers[start:start + 5000],
                                                 "patents": pledged[start:start + 5000]}):
            if row.what == "contract":
                taken.add(row.number)
            else:
                held.append(row)
    if taken:
        conflicts = [FieldError(_where(prefix, contracts[n], "contract_no"),
                                f"contract {n} is already booked by this bank") for n in sorted(taken)]
        raise Conflict(conflicts[0].message if len(conflicts) == 1
                       else f"{len(conflicts)} contract numbers are already booked", conflicts)
    if held:
        conflicts = [FieldError(_pledge_path(prefix, *patents[row.number]),
                                f"patent {row.number} is under the live pledge of "
                                + (f"loan {row.id} (contract {row.contract_no})" if row.bank_id == bank_id
                                   else "another bank's loan")
                                + "; it can be pledged again once that loan is closed")
                     for row in sorted(held, key=lambda r: patents[r.number])]
        raise Conflict(conflicts[0].message if len(conflicts) == 1
                       else f"{len(conflicts)} patents are under live pledges", conflicts)


def _first_contracts(drafts, prefix: str) -> tuple[dict[str, int], list[FieldError]]:
    """Each contract number's first item, and an error for every repeat."""
    errors, first = [], {}
    for i, draft in enumerate(drafts):
        if draft.contract_no in first:
            errors.append(FieldError(_where(prefix, i, "contract_no"),
                                     f"repeats item {first[draft.contract_no]} of this batch"))
        first.setdefault(draft.contract_no, i)
    return first, errors


def _first_patents(drafts, prefix: str) -> tuple[dict[str, tuple[int, int]], list[FieldError]]:
    """Each pledged patent's first (item, pledge), and an error for every repeat."""
    errors, first = [], {}
    for i, draft in enumerate(drafts):
        for j, pledge in enumerate(draft.pledges):
            if pledge.kind != "patent":
                continue
            if pledge.number in first:
                errors.append(FieldError(_pledge_path(prefix, i, j),
                                         f"patent {pledge.number} is also pledged by item {first[pledge.number][0]} "
                                         "of this batch; the patent office registers one pledge at a time"))
            first.setdefault(pledge.number, (i, j))
    return first, errors


def _pledge_path(prefix: str, index: int, position: int) -> str:
    """`loans[3].pledges[1].number`, or `pledges[1].number` for a single loan."""
    return path_text(((prefix, index) if prefix else ()) + ("pledges", position, "number"))


def _loan_row(bank_id: int, draft: LoanDraft, borrower: Borrower, facts: FactsVersion, program, version,
              size, actor: Actor) -> dict:
    return {
        "bank_id": bank_id, "contract_no": draft.contract_no, "borrower_id": borrower.id,
        "borrower_facts_id": facts.id, "program_id": program.id, "program_version_id": version.id,
        "principal_fen": draft.principal_fen, "annual_rate": str(draft.annual_rate),
        "start_date": draft.start_date, "maturity_date": draft.maturity_date,
        "ip_share": None if draft.ip_share is None else str(draft.ip_share),
        "insured_amount_fen": draft.insured_amount_fen, "pledge_type": pledge_type(draft.pledges),
        "borrower_size_class": size.size_class, "borrower_sme": size.sme,
        "borrower_private": facts.facts.private, "borrower_region": facts.facts.region,
        "borrower_industry": facts.facts.industry, "size_standard": size.standard,
        "status": "active", "closed_on": None, "created_by_key_id": actor.key_id, "created_at": utcnow()}


def _insert_pledges(conn, loan_ids: list[int], drafts: list[LoanDraft]) -> list[dict]:
    rows = [{"loan_id": loan_id, "position": position, "kind": p.kind, "number": p.number,
             "nice_class": p.nice_class, "registration_no": p.registration_no,
             "registered_on": p.registered_on, "appraised_value_fen": p.appraised_value_fen,
             "released_on": None}
            for loan_id, draft in zip(loan_ids, drafts) for position, p in enumerate(draft.pledges)]
    insert_many(conn, pledges, rows)
    return rows


def _disburse(conn, bank_id: int, loan_ids, drafts, borrower_list, actor: Actor) -> list[dict]:
    """One `loan_disbursed` entry per loan: the bank lends from settlement, the borrower receives.
    Returns the entries as `loan_events` reads them (for a response without a read-back)."""
    shared = [chart.settlement(bank_id)] + [chart.borrower_cash(b.id) for b in {b.id: b for b in borrower_list}.values()]
    shared_ids = ensure_accounts(conn, shared)
    own = [spec for loan_id, borrower in zip(loan_ids, borrower_list)
           for spec in (chart.loan_receivable(loan_id, bank_id), chart.loan_payable(loan_id, borrower.id))]
    own_ids = create_accounts(conn, own)
    by_code = {**shared_ids, **own_ids}
    code_of = {account_id: code for code, account_id in by_code.items()}
    # Found or created just now, each holding its spec's currency: not looked up again.
    currencies = {by_code[spec.code]: spec.currency for spec in shared + own}
    settlement = shared_ids[chart.settlement(bank_id).code]
    drafts_out = []
    for loan_id, draft, borrower in zip(loan_ids, drafts, borrower_list):
        p = draft.principal_fen
        lines = (Line(own_ids[f"loan:{loan_id}:receivable"], p), Line(settlement, -p),
                 Line(shared_ids[chart.borrower_cash(borrower.id).code], p),
                 Line(own_ids[f"loan:{loan_id}:payable"], -p))
        drafts_out.append(EntryDraft("loan_disbursed", draft.start_date, lines,
                                     memo=f"contract {draft.contract_no}", loan_id=loan_id))
    recorded_at = utcnow()
    entry_ids = post_entries(conn, drafts_out, actor, known_currencies=currencies, recorded_at=recorded_at)
    return [{"entry": entry_id, "kind": d.kind, "effective_on": d.effective_on, "recorded_at": recorded_at,
             "memo": d.memo, "reverses": None,
             "postings": [{"account": line.account_id, "account_code": code_of[line.account_id],
                           "amount_fen": line.amount_fen} for line in d.lines]}
            for entry_id, d in zip(entry_ids, drafts_out)]


# --- reading ----------------------------------------------------------------------------------

def outstanding_fen(conn: Connection, loan_ids: list[int], as_of: date | None = None) -> dict[int, int]:
    """Outstanding principal per loan: the balance of its receivable account (one query)."""
    query = (select(accounts.c.loan_id, func.coalesce(func.sum(postings.c.amount_fen), 0))
             .select_from(accounts).join(postings, postings.c.account_id == accounts.c.id)
             .where(accounts.c.loan_id.in_(loan_ids), accounts.c.purpose == "loans_receivable")
             .group_by(accounts.c.loan_id))
    if as_of is not None:
        query = query.join(entries, entries.c.id == postings.c.entry_id).where(entries.c.effective_on <= as_of)
    found = {loan_id: int(total) for loan_id, total in conn.execute(query)}
    return {loan_id: found.get(loan_id, 0) for loan_id in loan_ids}


def _loan_query():
    return (select(loans, borrowers.c.credit_code.label("borrower"), programs.c.code.label("program"),
                   institutions.c.code.label("bank"), program_versions.c.version.label("program_version"),
                   borrower_facts.c.as_of.label("borrower_facts_as_of"))
            .join(borrowers, borrowers.c.id == loans.c.borrower_id)
            .join(borrower_facts, borrower_facts.c.id == loans.c.borrower_facts_id)
            .join(programs, programs.c.id == loans.c.program_id)
            .join(program_versions, program_versions.c.id == loans.c.program_version_id)
            .join(institutions, institutions.c.id == loans.c.bank_id))


def list_loans(conn: Connection, condition, *, status: str | None = None, program: str | None = None,
               region_prefix: str = "", after_id: int = 0, limit: int = 50) -> list[dict]:
    query = _loan_query().where(condition, loans.c.id > after_id)
    if status:
        query = query.where(loans.c.status == status)
    if program:
        query = query.where(programs.c.code == program)
    if region_prefix:
        query = query.where(loans.c.borrower_region.like(f"{region_prefix}%"))
    rows = [dict(row) for row in conn.execute(query.order_by(loans.c.id).limit(limit)).mappings()]
    if rows:
        balances = outstanding_fen(conn, [row["id"] for row in rows])
        for row in rows:
            row["outstanding_principal_fen"] = balances[row["id"]]
    return _with_pledges(conn, rows)


def get_loan(conn: Connection, loan_id: int, condition) -> dict:
    """One loan with its pledges and events; outstanding principal is summed from the events'
    postings to its receivable account (the same journal rows, without another query)."""
    row = conn.execute(_loan_query().where(loans.c.id == loan_id, condition)).mappings().first()
    if row is None:
        raise NotFound(f"loan {loan_id} does not exist")
    loan = dict(row)
    loan["events"] = loan_events(conn, loan_id)
    receivable = f"loan:{loan_id}:receivable"
    loan["outstanding_principal_fen"] = sum(p["amount_fen"] for event in loan["events"]
                                            for p in event["postings"] if p["account_code"] == receivable)
    return _with_pledges(conn, [loan])[0]


def _with_pledges(conn, rows: list[dict]) -> list[dict]:
    if not rows:
        return rows
    by_loan: dict[int, list] = {row["id"]: [] for row in rows}
    for pledge in conn.execute(select(pledges).where(pledges.c.loan_id.in_(list(by_loan)))
                               .order_by(pledges.c.loan_id, pledges.c.position)).mappings():
        by_loan[pledge["loan_id"]].append(dict(pledge))
    for row in rows:
        row["pledges"] = by_loan[row["id"]]
    return rows


def loan_events(conn: Connection, loan_id: int) -> list[dict]:
    """Every entry made for the loan with its postings, in business order: by effective date,
    then by entry id (recording order within a day)."""
    rows = conn.execute(select(entries.c.id, entries.c.kind, entries.c.effective_on, entries.c.recorded_at,
                               entries.c.memo, entries.c.reverses_id, postings.c.account_id,
                               accounts.c.code, postings.c.amount_fen)
                        .join(postings, postings.c.entry_id == entries.c.id)
                        .join(accounts, accounts.c.id == postings.c.account_id)
                        .where(entries.c.loan_id == loan_id)
                        .order_by(entries.c.effective_on, entries.c.id, postings.c.id))
    events: dict[int, dict] = {}
    for row in rows:
        event = events.setdefault(row.id, {"entry": row.id, "kind": row.kind, "effective_on": row.effective_on,
                                           "recorded_at": row.recorded_at, "memo": row.memo,
                                           "reverses": row.reverses_id, "postings": []})
        event["postings"].append({"account": row.account_id, "account_code": row.code,
                                  "amount_fen": row.amount_fen})
    return list(events.values())


# --- repayments and fees ----------------------------------------------------------------------

def _lock_loan(conn: Connection, loan_id: int, bank_id: int):
    """Lock the loan row first (the fixed order: loan, then accounts) so concurrent postings
    to one loan serialise; another bank's loan is reported as missing."""
    row = conn.execute(select(loans).where(loans.c.id == loan_id, loans.c.bank_id == bank_id)
                       .with_for_update()).first()
    if row is None:
        raise NotFound(f"loan {loan_id} does not exist")
    return row


def _not_future(day: date, field: str, today: date | None) -> None:
    if day > (today or business_today()):
        raise Invalid.field(field, "cannot be in the future")


def principal_by_day(conn: Connection, loan_id: int) -> list[tuple[date, int]]:
    """The outstanding principal after each effective day with a movement, in date order: the
    running balance of the loan's receivable account (disbursement, repayments, reversals)."""
    rows = conn.execute(select(entries.c.effective_on, func.sum(postings.c.amount_fen))
                        .select_from(postings).join(entries, entries.c.id == postings.c.entry_id)
                        .join(accounts, accounts.c.id == postings.c.account_id)
                        .where(accounts.c.loan_id == loan_id, accounts.c.purpose == "loans_receivable")
                        .group_by(entries.c.effective_on).order_by(entries.c.effective_on))
    balances, running = [], 0
    for day, moved in rows:
        running += int(moved)
        balances.append((day, running))
    return balances


def balance_on(balances: list[tuple[date, int]], day: date) -> int:
    """The outstanding principal at the end of `day`. Pure."""
    at_day = 0
    for moved_on, balance in balances:
        if moved_on > day:
            break
        at_day = balance
    return at_day


def repayable_fen(balances: list[tuple[date, int]], day: date) -> tuple[int, date]:
    """The most principal a repayment on `day` may repay, and the day that bounds it: a
    repayment lowers the outstanding of `day` and of every later day, and none may go below
    zero. Pure."""
    limit, bound_on = balance_on(balances, day), day
    for moved_on, balance in balances:
        if moved_on > day and balance < limit:
            limit, bound_on = balance, moved_on
    return limit, bound_on


def with_movement(balances: list[tuple[date, int]], day: date, amount_fen: int) -> list[tuple[date, int]]:
    """The balances after one more movement of `amount_fen` on `day`. Pure."""
    moved = [(d, b + amount_fen if d >= day else b) for d, b in balances]
    if all(d != day for d, _ in balances):
        moved = sorted(moved + [(day, balance_on(balances, day) + amount_fen)])
    return moved


def closed_on_of(balances: list[tuple[date, int]]) -> date | None:
    """The day from which the outstanding principal stays zero, or None if it does not end at
    zero. Pure."""
    closed = None
    for day, balance in reversed(balances):
        if balance != 0:
            break
        closed = day
    return closed


def settle_status(conn: Connection, loan, balances: list[tuple[date, int]] | None = None) -> tuple[str, date | None]:
    """Make the loan's status and closed_on (and its pledges' release) what the journal says:
    closed from the day its outstanding principal stays zero, active otherwise. The caller holds
    the loan row lock. A defaulted loan keeps its status (the claims flow owns it)."""
    balances = principal_by_day(conn, loan.id) if balances is None else balances
    closed = closed_on_of(balances)
    status = loan.status if loan.status == "defaulted" else ("closed" if closed else "active")
    if (status, closed) != (loan.status, loan.closed_on):
        conn.execute(update(loans).where(loans.c.id == loan.id).values(status=status, closed_on=closed))
        try:
            conn.execute(update(pledges).where(pledges.c.loan_id == loan.id).values(released_on=closed))
        except IntegrityError as exc:  # reopened while another loan took one of its patents
            raise Conflict(f"loan {loan.id} would be live again, but a patent it pledged is now "
                           "under another loan's live pledge") from exc
    return status, closed


def record_repayment(conn: Connection, loan_id: int, bank_id: int, paid_on: date, principal_fen: int,
                     interest_fen: int, actor: Actor, today: date | None = None) -> dict:
    """Post a repayment dated `paid_on` (in any order of dates: see the module's guarantees)."""
    paid_on = parse_date(paid_on, "paid_on")
    principal_fen = check_fen(principal_fen, "principal")
    interest_fen = check_fen(interest_fen, "interest")
    if principal_fen == 0 and interest_fen == 0:
        raise Invalid.field("principal", "a repayment needs principal or interest")
    loan = _lock_loan(conn, loan_id, bank_id)
    if loan.status != "active":
        raise Conflict(f"loan {loan_id} is {loan.status}; repayments are posted to active loans")
    if paid_on < loan.start_date:
        raise Invalid.field("paid_on", f"is before the loan's start date {loan.start_date.isoformat()}")
    _not_future(paid_on, "paid_on", today)
    balances = principal_by_day(conn, loan_id)
    limit, bound_on = repayable_fen(balances, paid_on)
    if principal_fen > limit:
        later = "" if bound_on == paid_on else (
            f" of {bound_on.isoformat()} (repayments dated after {paid_on.isoformat()} are already "
            "posted, and no day's outstanding principal may go below zero)")
        raise Invalid.field("principal", f"exceeds the outstanding principal {format_yuan(limit)}{later}")
    specs = {"settlement": chart.settlement(bank_id), "income": chart.interest_income(bank_id),
             "cash": chart.borrower_cash(loan.borrower_id),
             "expense": chart.borrower_interest_expense(loan.borrower_id),
             "receivable": chart.loan_receivable(loan_id, bank_id),
             "payable": chart.loan_payable(loan_id, loan.borrower_id)}
    ids = ensure_accounts(conn, specs.values())
    a = {name: ids[spec.code] for name, spec in specs.items()}
    paid = principal_fen + interest_fen
    lines = [Line(a["settlement"], paid), Line(a["receivable"], -principal_fen),
             Line(a["income"], -interest_fen), Line(a["payable"], principal_fen),
             Line(a["expense"], interest_fen), Line(a["cash"], -paid)]
    entry_id = post_entry(conn, EntryDraft("repayment", paid_on, tuple(l for l in lines if l.amount_fen),
                                           loan_id=loan_id), actor)
    after = with_movement(balances, paid_on, -principal_fen)
    assert min(balance for _, balance in after) >= 0, "no day's outstanding principal goes below zero"
    status, _ = settle_status(conn, loan, after)
    remaining = after[-1][1]
    return {"entry": entry_id, "loan": loan_id, "paid_on": paid_on, "principal_fen": principal_fen,
            "interest_fen": interest_fen, "outstanding_principal_fen": remaining, "status": status}


def record_fee(conn: Connection, loan_id: int, bank_id: int, kind: str, amount_fen: int,
               paid_on: date, actor: Actor, today: date | None = None) -> dict:
    """A fee the borrower paid (premium, guarantee fee, appraisal fee): the basis of fee subsidies.
    It may precede the start date (appraisal and premium are often paid before disbursement)."""
    if kind not in chart.FEE_KINDS:
        raise Invalid.field("kind", f"must be one of: {', '.join(chart.FEE_KINDS)}")
    amount_fen = check_fen(amount_fen, "amount", allow_zero=False)
    paid_on = parse_date(paid_on, "paid_on")
    loan = _lock_loan(conn, loan_id, bank_id)
    _not_future(paid_on, "paid_on", today)
    specs = [chart.borrower_fees(loan.borrower_id, kind), chart.borrower_cash(loan.borrower_id)]
    ids = ensure_accounts(conn, specs)
    entry_id = post_entry(conn, EntryDraft(
        f"{kind}_paid", paid_on, (Line(ids[specs[0].code], amount_fen), Line(ids[specs[1].code], -amount_fen)),
        loan_id=loan_id), actor)
    return {"entry": entry_id, "loan": loan_id, "kind": kind, "amount_fen": amount_fen, "paid_on": paid_on}
