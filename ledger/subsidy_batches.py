"""Subsidy batches (DOMAIN.md §5, API.md Subsidies): draft → approved → posted (→ reversed), or
draft → cancelled, with maker-checker.

Guarantees
- A draft is computed by `ledger.subsidies` over the programme's book, with a `Prior` of what the
  programme's posted batches already paid (per loan, per borrower and year, per borrower), so
  caps are consumed across batches. Its lines and exclusions are stored in bulk (COPY on
  PostgreSQL); the batch's `total_fen` is their sum. The rules are those of the programme version
  in force on the period's last day.
- One live batch (draft, approved, posted) per programme and period: a second is a Conflict
  (the partial unique index `uq_subsidy_batches_live` decides races). A live batch of another,
  overlapping period (2025 against 2025-Q4) is a Conflict too: a period is never paid twice.
- A period is drafted only once it has ended (its interest and fees are then known).
- Approval is by a key of the paying bureau other than the drafting key (the maker: Forbidden;
  the database refuses it as well); an approval without a key (the CLI's `--bureau`) is
  Forbidden: the checker is always a named officer. Only approved batches post; only drafts cancel; only posted batches reverse.
- Posting writes one balanced entry per line with an amount: the bureau's subsidy budget pays
  (credit) its subsidies-paid expense (debit); the borrower's cash (debit) receives its subsidy
  income (credit). Each owner's postings balance on their own. A reversal mirrors every entry of
  the batch and frees the period for a corrected batch; nothing posted is ever recomputed.
- Every state change is one conditional UPDATE on the expected status: two racing approvals,
  or a post racing a cancel, cannot both win.
- Another bureau's batch is NotFound to a writer (existence is not disclosed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ledger import accounts as chart
from ledger.bulk import insert_many
from ledger.dates import today as business_today
from ledger.db import is_postgres, utcnow
from ledger.errors import Conflict, Forbidden, Invalid, NotFound
from ledger.identifiers import region_prefix
from ledger.institutions import get_institution
from ledger.journal import Actor, EntryDraft, Line, ensure_accounts, post_entries
from ledger.programs import Program, get_program, load_programs, region_and_ancestors
from ledger.schema import (api_keys, borrowers, entries, institutions, loans, postings, programs,
                           subsidy_batch_entries, subsidy_batches, subsidy_excluded, subsidy_lines)
from ledger.subsidies import Prior, Result, draft_lines, parse_period

LIVE_STATUSES = ("draft", "approved", "posted")
# A year from 1000 to 2999, or a quarter of one: `ledger.subsidies.parse_period`'s form, with
# years `date` can hold on both sides of the window (0000 or 9999-Q4 would not be).
PERIOD_PATTERN = re.compile(r"^[12][0-9]{3}(?:-Q[1-4])?$")
PERIOD_RULE = "a year (2025) or a quarter (2025-Q4)"
CAP_SEPARATOR = ","


@dataclass(frozen=True)
class Bureau:
    """The fiscal bureau acting: its institution, its region and the key that acts (None for
    the CLI and the scheduler)."""

    institution_id: int
    region: str
    key_id: int | None = None


# --- reading -----------------------------------------------------------------------------------

def _batch_columns():
    return (subsidy_batches, programs.c.code.label("program_code"), programs.c.region.label("program_region"))


def _load(conn: Connection, batch_id: int, lock: bool = False):
    query = (select(*_batch_columns()).join(programs, programs.c.id == subsidy_batches.c.program_id)
             .where(subsidy_batches.c.id == batch_id))
    if lock:
        query = query.with_for_update(of=subsidy_batches)
    return conn.execute(query).mappings().first()


def region_condition(region: str | None):
    """Batches a fiscal or auditor key of `region` reads: of programmes involving the region
    (covering it, or lying within it; `Program.involves_region`). None: every batch (admin)."""
    if region is None or region == "000000":
        return None
    return or_(programs.c.region.like(f"{region_prefix(region)}%"),
               programs.c.region.in_(region_and_ancestors(region)))


def get_batch(conn: Connection, batch_id: int, region: str | None, lines_limit: int = 1000) -> dict:
    row = _load(conn, batch_id)
    if row is None or not _visible(row, region):
        raise NotFound(f"subsidy batch {batch_id} does not exist")
    return _render(conn, row, lines_limit)


def _visible(row, region: str | None) -> bool:
    if region is None or region == "000000":
        return True
    program_region = row["program_region"]
    return program_region.startswith(region_prefix(region)) or program_region in region_and_ancestors(region)


def list_batches(conn: Connection, region: str | None, *, program: str | None = None,
                 period: str | None = None, status: str | None = None, after_id: int = 0,
                 limit: int = 50, newest_first: bool = False) -> list[dict]:
    """Batches by id (`newest_first`: the most recent first, `after_id` unused, for the dashboard)."""
    query = (select(*_batch_columns()).join(programs, programs.c.id == subsidy_batches.c.program_id)
             .where(subsidy_batches.c.id > (0 if newest_first else after_id)))
    condition = region_condition(region)
    if condition is not None:
        query = query.where(condition)
    if program:
        query = query.where(programs.c.code == program)
    if period:
        query = query.where(subsidy_batches.c.period == period)
    if status:
        query = query.where(subsidy_batches.c.status == status)
    order = subsidy_batches.c.id.desc() if newest_first else subsidy_batches.c.id
    rows = conn.execute(query.order_by(order).limit(limit)).mappings().all()
    keys = _key_prefixes(conn, rows)
    return [_summary(row, keys) for row in rows]


def list_lines(conn: Connection, batch_id: int, region: str | None, after_id: int = 0,
               limit: int = 50) -> list[dict]:
    row = _load(conn, batch_id)
    if row is None or not _visible(row, region):
        raise NotFound(f"subsidy batch {batch_id} does not exist")
    return _lines(conn, batch_id, after_id, limit)


def _lines(conn: Connection, batch_id: int, after_id: int, limit: int) -> list[dict]:
    rows = conn.execute(
        select(subsidy_lines, borrowers.c.credit_code)
        .join(borrowers, borrowers.c.id == subsidy_lines.c.borrower_id)
        .where(subsidy_lines.c.batch_id == batch_id, subsidy_lines.c.id > after_id)
        .order_by(subsidy_lines.c.id).limit(limit)).mappings()
    return [{"id": r["id"], "loan": r["loan_id"], "borrower": r["credit_code"], "kind": r["kind"],
             "method": r["method"], "basis_fen": r["basis_fen"], "computed_fen": r["computed_fen"],
             "amount_fen": r["amount_fen"],
             "capped_by": [c for c in r["capped_by"].split(CAP_SEPARATOR) if c]} for r in rows]


def _excluded(conn: Connection, batch_id: int, limit: int) -> list[dict]:
    rows = conn.execute(select(subsidy_excluded).where(subsidy_excluded.c.batch_id == batch_id)
                        .order_by(subsidy_excluded.c.id).limit(limit)).mappings()
    return [{"loan": r["loan_id"], "kind": r["kind"], "reason": r["reason"]} for r in rows]


def _key_prefixes(conn: Connection, rows) -> dict[int, str]:
    ids = {row[c] for row in rows for c in ("created_by_key_id", "approved_by_key_id") if row[c]}
    if not ids:
        return {}
    return dict(conn.execute(select(api_keys.c.id, api_keys.c.prefix).where(api_keys.c.id.in_(ids))).all())


def _summary(row, keys: dict[int, str]) -> dict:
    return {"id": row["id"], "program": row["program_code"], "period": row["period"],
            "status": row["status"], "total_fen": row["total_fen"], "line_count": row["line_count"],
            "excluded_count": row["excluded_count"],
            "created_by": keys.get(row["created_by_key_id"]), "created_at": row["created_at"],
            "approved_by": keys.get(row["approved_by_key_id"]), "approved_at": row["approved_at"],
            "posted_at": row["posted_at"], "closed_at": row["closed_at"]}


def _render(conn: Connection, row, lines_limit: int) -> dict:
    """The batch with its first `lines_limit` lines and exclusions (the rest: `/lines`)."""
    out = _summary(row, _key_prefixes(conn, [row]))
    out["lines"] = _lines(conn, row["id"], 0, lines_limit)
    out["excluded"] = _excluded(conn, row["id"], lines_limit)
    out["lines_complete"] = row["line_count"] <= lines_limit and row["excluded_count"] <= lines_limit
    return out


# --- drafting ----------------------------------------------------------------------------------

def posted_prior(conn: Connection, program_id: int) -> Prior:
    """What the programme's posted batches paid: per (kind, loan), (kind, borrower, year of the
    batch's period) and (kind, borrower), in three grouped queries."""
    posted = and_(subsidy_batches.c.id == subsidy_lines.c.batch_id,
                  subsidy_batches.c.program_id == program_id, subsidy_batches.c.status == "posted")
    paid = func.sum(subsidy_lines.c.amount_fen)
    base = select().select_from(subsidy_lines).join(subsidy_batches, posted)
    year = subsidy_batches.c.period_start

    def grouped(*columns):
        return conn.execute(base.add_columns(*columns, paid).group_by(*columns)).all()

    per_loan = {(kind, loan): int(fen) for kind, loan, fen in grouped(subsidy_lines.c.kind, subsidy_lines.c.loan_id)}
    per_year: dict = {}
    for kind, borrower, start, fen in grouped(subsidy_lines.c.kind, subsidy_lines.c.borrower_id, year):
        key = (kind, borrower, start.year)
        per_year[key] = per_year.get(key, 0) + int(fen)
    per_total = {(kind, b): int(fen) for kind, b, fen in grouped(subsidy_lines.c.kind, subsidy_lines.c.borrower_id)}
    return Prior(per_loan, per_year, per_total)


def _rules_version(program: Program, period_end: date):
    version = program.version_on(period_end - timedelta(days=1))
    if version is None:
        raise Invalid.field("period", f"programme {program.code} is not in force on the period's last day")
    if not version.terms.subsidies:
        raise Invalid.field("program", f"programme {program.code} has no subsidy rules")
    return version


def _refuse_overlap(conn: Connection, program_id: int, period: str, start: date, end: date) -> None:
    live = conn.execute(
        select(subsidy_batches.c.id, subsidy_batches.c.period)
        .where(subsidy_batches.c.program_id == program_id, subsidy_batches.c.status.in_(LIVE_STATUSES),
               subsidy_batches.c.period_start < end, subsidy_batches.c.period_end > start)).first()
    if live is not None:
        raise Conflict(f"subsidy batch {live.id} for period {live.period} is live for this programme: "
                       f"cancel or reverse it before drafting {period}")


def draft_batch(conn: Connection, program_code: str, period: str, bureau: Bureau,
                today: date | None = None, progress=None) -> dict:
    """Compute and store a draft batch; returns it as `get_batch` does."""
    if not isinstance(period, str) or not PERIOD_PATTERN.match(period):
        raise Invalid.field("period", f"must be {PERIOD_RULE}")
    start, end = parse_period(period)
    if end > (today or business_today()):
        raise Invalid.field("period", f"{period} has not ended yet (it ends {(end - timedelta(days=1)).isoformat()})")
    program = get_program(conn, program_code)
    if not program.involves_region(bureau.region):
        raise NotFound(f"programme {program_code} does not exist")
    version = _rules_version(program, end)
    _refuse_overlap(conn, program.id, period, start, end)
    result = draft_lines(conn, program.id, version.terms.subsidies, period, posted_prior(conn, program.id))
    if progress:
        progress("computed", result.line_count)
    batch_id = _insert_batch(conn, program.id, version.id, period, start, end, bureau, result)
    _store_lines(conn, batch_id, result)
    if progress:
        progress("stored", result.line_count)
    return get_batch(conn, batch_id, None)


def _insert_batch(conn, program_id, version_id, period, start, end, bureau: Bureau, result: Result) -> int:
    row = {"program_id": program_id, "program_version_id": version_id, "period": period,
           "period_start": start, "period_end": end, "status": "draft",
           "institution_id": bureau.institution_id, "created_by_key_id": bureau.key_id,
           "created_at": utcnow(), "line_count": result.line_count,
           "excluded_count": len(result.excluded), "total_fen": result.total_fen}
    try:
        with conn.begin_nested():  # a racing draft for the same period loses here, cleanly
            return conn.execute(insert(subsidy_batches).returning(subsidy_batches.c.id), row).scalar_one()
    except IntegrityError as error:
        if "uq_subsidy_batches_live" in str(error.orig) or "subsidy_batches.program_id" in str(error.orig):
            raise Conflict(f"a live subsidy batch for period {period} already exists for this programme") from error
        raise


def _store_lines(conn: Connection, batch_id: int, result: Result) -> None:
    if is_postgres(conn):
        _copy_lines(conn, batch_id, result)
    else:
        _insert_lines(conn, batch_id, result)
    insert_many(conn, subsidy_excluded, [{"batch_id": batch_id, "loan_id": e.loan_id, "kind": e.kind,
                                          "reason": e.reason} for e in result.excluded])


# PostgreSQL binary COPY of the lines (the columns' own widths: borrowers.id is an int4).
_LINE_COPY = ("COPY subsidy_lines (batch_id, loan_id, borrower_id, kind, method, basis_fen, computed_fen, "
              "amount_fen, capped_by) FROM STDIN (FORMAT binary)")
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
_COPY_TRAILER = b"\xff\xff"


def _copy_lines(conn: Connection, batch_id: int, result: Result) -> None:
    """One binary COPY of every line, built by numpy a block at a time: each block is one rule's
    lines bound by the same caps (rows of one fixed size), in loan id order within the block. So
    the lines' ids run by rule, then by the caps that bound them, then by loan. Loan id order
    makes each row's foreign key checks (a lookup and a row lock) walk loans, and borrowers
    mostly made with their loans, in key order instead of at random over tables larger than
    the buffer cache."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(_LINE_COPY) as copy:
            copy.write(_COPY_HEADER)
            for chunk in result.by_rule:
                for capped_by, rows in _by_caps(chunk):
                    copy.write(_line_block(batch_id, chunk, capped_by, rows))
            copy.write(_COPY_TRAILER)
    finally:
        cursor.close()


def _by_caps(chunk) -> list[tuple[str, np.ndarray]]:
    """The chunk's line positions grouped by the caps that bound them (at most 2^caps groups),
    each group in loan id order."""
    names = list(chunk.bound)
    code = np.zeros(len(chunk.loan_id), dtype=np.int64)
    for bit, name in enumerate(names):
        code |= chunk.bound[name].astype(np.int64) << bit
    by_loan = np.argsort(chunk.loan_id, kind="stable")
    return [(CAP_SEPARATOR.join(n for bit, n in enumerate(names) if value >> bit & 1), by_loan[code[by_loan] == value])
            for value in np.unique(code).tolist()]


def _line_block(batch_id: int, chunk, capped_by: str, rows: np.ndarray) -> bytes:
    texts = [t.encode() for t in (chunk.kind, chunk.method, capped_by)]
    fields = [("count", ">i2"), ("batch_len", ">i4"), ("batch", ">i8"), ("loan_len", ">i4"), ("loan", ">i8"),
              ("borrower_len", ">i4"), ("borrower", ">i4"), ("kind_len", ">i4"), ("kind", f"S{len(texts[0])}"),
              ("method_len", ">i4"), ("method", f"S{len(texts[1])}"), ("basis_len", ">i4"), ("basis", ">i8"),
              ("computed_len", ">i4"), ("computed", ">i8"), ("amount_len", ">i4"), ("amount", ">i8"),
              ("capped_len", ">i4")] + ([("capped", f"S{len(texts[2])}")] if texts[2] else [])
    block = np.zeros(len(rows), dtype=np.dtype(fields))
    block["count"] = 9
    for name, width in (("batch", 8), ("loan", 8), ("borrower", 4), ("basis", 8), ("computed", 8), ("amount", 8)):
        block[f"{name}_len"] = width
    block["batch"], block["loan"], block["borrower"] = batch_id, chunk.loan_id[rows], chunk.borrower_id[rows]
    assert (chunk.borrower_id[rows] < 2 ** 31).all(), "borrower ids are int4"
    block["kind_len"], block["kind"] = len(texts[0]), texts[0]
    block["method_len"], block["method"] = len(texts[1]), texts[1]
    block["basis"], block["computed"], block["amount"] = (chunk.basis_fen[rows], chunk.computed_fen[rows],
                                                          chunk.amount_fen[rows])
    block["capped_len"] = len(texts[2])
    if texts[2]:
        block["capped"] = texts[2]
    return block.tobytes()


def _insert_lines(conn: Connection, batch_id: int, result: Result) -> None:
    rows: list[dict] = []
    for chunk in result.by_rule:
        masks = [(name, mask.tolist()) for name, mask in chunk.bound.items()]
        for j, (loan, borrower, basis, computed, amount) in enumerate(zip(
                chunk.loan_id.tolist(), chunk.borrower_id.tolist(), chunk.basis_fen.tolist(),
                chunk.computed_fen.tolist(), chunk.amount_fen.tolist())):
            rows.append({"batch_id": batch_id, "loan_id": loan, "borrower_id": borrower,
                         "kind": chunk.kind, "method": chunk.method, "basis_fen": basis,
                         "computed_fen": computed, "amount_fen": amount,
                         "capped_by": CAP_SEPARATOR.join(n for n, mask in masks if mask[j])})
    insert_many(conn, subsidy_lines, rows)


# --- the schedule -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DuePeriod:
    """A programme's period the scheduler drafts: ended, rules in force, nothing live on it."""

    program_code: str
    period: str
    bureau: Bureau


def payer_of(conn: Connection, program: Program) -> Bureau | None:
    """The fiscal bureau that pays a programme's subsidies when the scheduler drafts them: the
    bureau of the programme's own region, else the only fiscal bureau involved in it (a city's
    bureau under a provincial scheme). None when that is not one bureau: an officer drafts."""
    rows = conn.execute(select(institutions.c.id, institutions.c.region)
                        .where(institutions.c.kind == "fiscal").order_by(institutions.c.id)).all()
    involved = [row for row in rows if program.involves_region(row.region)]
    own = [row for row in involved if row.region == program.region]
    chosen = own[:1] or (involved if len(involved) == 1 else [])
    return Bureau(chosen[0].id, chosen[0].region) if chosen else None


def due_periods(conn: Connection, today: date, programs_limit: int = 10_000) -> list[DuePeriod]:
    """Every year that has ended, from the year of a programme's first loan, whose rules (the
    version in force on its last day) have subsidies and on which no live batch lies (a quarter
    drafted by hand holds its year). Years only: the rules do not say a programme pays by
    quarter, so quarterly batches are drafted by an officer."""
    first_start = dict(conn.execute(select(loans.c.program_id, func.min(loans.c.start_date))
                                    .group_by(loans.c.program_id)).all())
    live = conn.execute(select(subsidy_batches.c.program_id, subsidy_batches.c.period_start,
                               subsidy_batches.c.period_end)
                        .where(subsidy_batches.c.status.in_(LIVE_STATUSES))).all()
    codes = conn.execute(select(programs.c.code).where(programs.c.id.in_(list(first_start)))
                         .order_by(programs.c.id).limit(programs_limit)).scalars().all()
    due = []
    for program in sorted(load_programs(conn, codes).values(), key=lambda p: p.id):
        bureau = None
        for year in range(first_start[program.id].year, today.year):
            start, end = date(year, 1, 1), date(year + 1, 1, 1)
            version = program.version_on(end - timedelta(days=1))
            if version is None or not version.terms.subsidies:
                continue
            if any(b.program_id == program.id and b.period_start < end and b.period_end > start for b in live):
                continue
            bureau = bureau or payer_of(conn, program)
            if bureau is not None:
                due.append(DuePeriod(program.code, str(year), bureau))
    return due


# --- the state changes ---------------------------------------------------------------------------

def _own(conn: Connection, batch_id: int, bureau: Bureau):
    row = _load(conn, batch_id, lock=True)
    if row is None or row["institution_id"] != bureau.institution_id:
        raise NotFound(f"subsidy batch {batch_id} does not exist")
    return row


def _move(conn: Connection, batch_id: int, expected: str, values: dict) -> None:
    done = conn.execute(update(subsidy_batches)
                        .where(subsidy_batches.c.id == batch_id, subsidy_batches.c.status == expected)
                        .values(**values)).rowcount
    if done != 1:
        raise Conflict(f"subsidy batch {batch_id} is no longer {expected}")


def _expect(row, *statuses: str, action: str) -> None:
    if row["status"] not in statuses:
        raise Conflict(f"subsidy batch {row['id']} is {row['status']}: only {' or '.join(statuses)} "
                       f"batches can be {action}")


def approve(conn: Connection, batch_id: int, bureau: Bureau) -> dict:
    row = _own(conn, batch_id, bureau)
    _expect(row, "draft", action="approved")
    if bureau.key_id is None:
        raise Forbidden("an approval names the approving officer: act with a fiscal key of the bureau")
    if bureau.key_id == row["created_by_key_id"]:
        raise Forbidden("the key that drafted a subsidy batch may not approve it: another key of "
                        "the bureau approves (maker-checker)")
    _move(conn, batch_id, "draft", {"status": "approved", "approved_by_key_id": bureau.key_id,
                                    "approved_at": utcnow()})
    return get_batch(conn, batch_id, None)


def cancel(conn: Connection, batch_id: int, bureau: Bureau) -> dict:
    row = _own(conn, batch_id, bureau)
    _expect(row, "draft", action="cancelled")
    _move(conn, batch_id, "draft", {"status": "cancelled", "closed_by_key_id": bureau.key_id,
                                    "closed_at": utcnow()})
    return get_batch(conn, batch_id, None)


def post(conn: Connection, batch_id: int, bureau: Bureau, today: date | None = None) -> dict:
    """Pay every line with an amount: one balanced entry each, dated `today`."""
    row = _own(conn, batch_id, bureau)
    _expect(row, "approved", action="posted")
    paid = conn.execute(select(subsidy_lines.c.id, subsidy_lines.c.loan_id, subsidy_lines.c.borrower_id,
                               subsidy_lines.c.kind, subsidy_lines.c.amount_fen)
                        .where(subsidy_lines.c.batch_id == batch_id, subsidy_lines.c.amount_fen > 0)
                        .order_by(subsidy_lines.c.id)).all()
    bureau_specs = [chart.subsidy_budget(row["institution_id"]), chart.subsidies_paid(row["institution_id"])]
    borrower_ids = sorted({line.borrower_id for line in paid})
    borrower_specs = [spec for b in borrower_ids
                      for spec in (chart.borrower_cash(b), chart.borrower_subsidy_income(b))]
    ids = ensure_accounts(conn, bureau_specs + borrower_specs)
    budget, expense = (ids[spec.code] for spec in bureau_specs)
    on = today or business_today()
    drafts = [EntryDraft(f"subsidy_{line.kind}", on, (
        Line(expense, line.amount_fen), Line(budget, -line.amount_fen),
        Line(ids[chart.borrower_cash(line.borrower_id).code], line.amount_fen),
        Line(ids[chart.borrower_subsidy_income(line.borrower_id).code], -line.amount_fen)),
        memo=f"subsidy batch {batch_id} ({row['program_code']} {row['period']}) line {line.id}",
        loan_id=line.loan_id) for line in paid]
    _post_for_lines(conn, batch_id, bureau, drafts, [line.id for line in paid], reversal=False)
    assert sum(line.amount_fen for line in paid) == row["total_fen"], "a batch pays exactly its total"
    _move(conn, batch_id, "approved", {"status": "posted", "posted_by_key_id": bureau.key_id,
                                       "posted_at": utcnow()})
    return get_batch(conn, batch_id, None)


def _post_for_lines(conn: Connection, batch_id: int, bureau: Bureau, drafts: list[EntryDraft],
                    line_ids: list[int], reversal: bool) -> None:
    """Post the entries (one journal batch) and record which line each pays or reverses."""
    entry_ids = post_entries(conn, drafts, Actor(bureau.key_id, bureau.institution_id))
    insert_many(conn, subsidy_batch_entries, [
        {"entry_id": entry_id, "batch_id": batch_id, "line_id": line_id, "reversal": reversal}
        for entry_id, line_id in zip(entry_ids, line_ids)])


def reverse(conn: Connection, batch_id: int, bureau: Bureau, today: date | None = None) -> dict:
    """Mirror every entry the batch posted (one journal batch) and free its period."""
    row = _own(conn, batch_id, bureau)
    _expect(row, "posted", action="reversed")
    posted = conn.execute(select(subsidy_batch_entries.c.entry_id, subsidy_batch_entries.c.line_id,
                                 entries.c.loan_id, entries.c.effective_on)
                          .join(entries, entries.c.id == subsidy_batch_entries.c.entry_id)
                          .where(subsidy_batch_entries.c.batch_id == batch_id,
                                 subsidy_batch_entries.c.reversal.is_(False))
                          .order_by(subsidy_batch_entries.c.entry_id)).all()
    lines_by_entry: dict[int, list[Line]] = {}
    for p in conn.execute(select(postings.c.entry_id, postings.c.account_id, postings.c.amount_fen,
                                 postings.c.currency)
                          .join(subsidy_batch_entries, subsidy_batch_entries.c.entry_id == postings.c.entry_id)
                          .where(subsidy_batch_entries.c.batch_id == batch_id).order_by(postings.c.id)):
        lines_by_entry.setdefault(p.entry_id, []).append(Line(p.account_id, -p.amount_fen, p.currency))
    on = today or business_today()
    drafts = [EntryDraft("reversal", max(on, e.effective_on), tuple(lines_by_entry[e.entry_id]),
                         memo=f"reversal of subsidy batch {batch_id}", loan_id=e.loan_id,
                         reverses_id=e.entry_id) for e in posted]
    _post_for_lines(conn, batch_id, bureau, drafts, [e.line_id for e in posted], reversal=True)
    _move(conn, batch_id, "posted", {"status": "reversed", "closed_by_key_id": bureau.key_id,
                                     "closed_at": utcnow()})
    return get_batch(conn, batch_id, None)


# --- who acts from the command line ----------------------------------------------------------------

def bureau_of(conn: Connection, *, key_prefix: str | None = None, institution_code: str | None = None) -> Bureau:
    """The bureau an operator acts for: by an active fiscal key's prefix (the officer, so
    maker-checker holds at the CLI too), or by institution code (acting as no key: it may
    draft, and any key of the bureau may approve such a draft; it may not approve)."""
    if key_prefix is not None:
        row = conn.execute(select(api_keys.c.id, api_keys.c.role, institutions.c.id.label("institution_id"),
                                  institutions.c.region)
                           .join(institutions, institutions.c.id == api_keys.c.institution_id)
                           .where(api_keys.c.prefix == key_prefix, api_keys.c.revoked_at.is_(None))).first()
        if row is None or row.role != "fiscal":
            raise NotFound(f"no active fiscal key with prefix {key_prefix}")
        return Bureau(row.institution_id, row.region, row.id)
    institution = get_institution(conn, institution_code)
    if institution.kind != "fiscal":
        raise Invalid.field("bureau", f"{institution_code} is not a fiscal bureau")
    return Bureau(institution.id, institution.region)
