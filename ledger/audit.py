"""Loss histories (issue 8 item 6): who lost what on claims, one row per loss event.

Events, read from the claim records (which `ledger.claims` keeps equal to the journal):
- `claim_share`: a party takes on its share of a claim (on the classification day), loss +owed;
- `bank_retained`: the bank takes on what no party bears, as its own row, loss +retained;
- `payment`: a party pays on its share (cash out; the loss was taken on with the share: 0);
- `recovery`: a recovery returns a part to a party that bore the loss, loss -returned (under
  `recoveries_to` the money goes to `to`, but it still reduces the loss of the party that bore
  it: the redirect is where the party's returned money is sent, not a loss of someone else);
- `withdrawal`: a withdrawn claim gives back each share and the bank's retained part, loss -it.
Rows with a zero amount (a share capped to 0, no retained loss) are not events and are left out.

Guarantees
- Order is total and stable: by date, then event kind (in the order above), then the id of the
  row it comes from; the cursor is that triple, so paging never skips or repeats a row.
- `net_loss_fen` is the party's running net loss over ALL its events that match the filters
  other than the dates, up to and including the row: a page or a `from` date starts from the
  party's opening figure (summed in SQL), not from zero.
- The scope is SQL (`LossScope`): a bank or party sees only its own rows; a region, rows of its
  borrowers' loans; everything otherwise. A filter never widens it.
- `stream_losses` yields rows one at a time from a server-side cursor with only the running
  figures per party in memory, so a CSV of millions of rows is never held whole.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Iterator

from sqlalchemy import (Connection, Integer, String, and_, cast, func, literal, null, or_, select,
                        tuple_, union_all)
from sqlalchemy.orm import aliased

from ledger.money import format_yuan
from ledger.schema import (claim_payments, claim_shares, claims, institutions, loans, programs,
                           recoveries, recovery_shares)

EVENTS = ("claim_share", "bank_retained", "payment", "recovery", "withdrawal")
EVENT_OF_RANK = EVENTS + ("withdrawal",)  # rank 5: the bank's retained part of a withdrawal
STREAM_BATCH_ROWS = 1000


@dataclass(frozen=True)
class LossScope:
    """Whose rows a reader sees: one institution's (`institution_id`), a region's borrowers'
    loans' (`region_prefix`), or everything (neither; '' is the country)."""

    institution_id: int | None = None
    region_prefix: str | None = None


@dataclass(frozen=True)
class LossFilter:
    """The query's narrowing: institution and programme by code, a region prefix, a date span."""

    institution: str | None = None
    program: str | None = None
    region_prefix: str | None = None
    on_from: date | None = None
    on_to: date | None = None


Key = tuple[date, int, int]  # (date, event rank, source row id): the order and the cursor


def _event(rank: int, on, source_id, institution_id, role, claim_id, loan_id, amount, loss,
           to_id=None, reference=None):
    return [on.label("on"), literal(rank, Integer).label("rank"), source_id.label("source_id"),
            institution_id.label("institution_id"), cast(role, String).label("role"),
            claim_id.label("claim_id"), loan_id.label("loan_id"), amount.label("amount_fen"),
            loss.label("loss_fen"), (cast(null(), Integer) if to_id is None else to_id).label("to_id"),
            (cast(null(), String) if reference is None else reference).label("reference")]


def _events():
    """Every loss event as one union of the claim, payment and recovery records."""
    c, s, p, r, rs = claims.c, claim_shares.c, claim_payments.c, recoveries.c, recovery_shares.c
    zero = literal(0, Integer)
    share = select(*_event(0, c.classified_on, s.id, s.institution_id, s.role, c.id, c.loan_id,
                           s.amount_fen, s.amount_fen)).select_from(claim_shares.join(claims, c.id == s.claim_id)
                                                                   ).where(s.amount_fen > 0)
    retained = select(*_event(1, c.classified_on, c.id, c.bank_id, literal("bank"), c.id, c.loan_id,
                              c.bank_retained_fen, c.bank_retained_fen)).where(c.bank_retained_fen > 0)
    payment = select(*_event(2, p.paid_on, p.id, p.institution_id, s.role, p.claim_id, c.loan_id,
                             p.amount_fen, zero, reference=p.reference)).select_from(
        claim_payments.join(claim_shares, s.id == p.share_id).join(claims, c.id == p.claim_id))
    recovery = select(*_event(3, r.received_on, rs.id, rs.institution_id, rs.role, r.claim_id, r.loan_id,
                              rs.amount_fen, -rs.amount_fen, rs.to_institution_id, r.reference)).select_from(
        recovery_shares.join(recoveries, r.id == rs.recovery_id)).where(rs.amount_fen > 0)
    withdrawn_share = select(*_event(4, c.withdrawn_on, s.id, s.institution_id, s.role, c.id, c.loan_id,
                                     s.amount_fen, -s.amount_fen)).select_from(
        claim_shares.join(claims, c.id == s.claim_id)).where(c.status == "withdrawn", s.amount_fen > 0)
    # The bank's give-back has a rank of its own (its source is the claim row, not a share).
    withdrawn_retained = select(*_event(5, c.withdrawn_on, c.id, c.bank_id, literal("bank"), c.id, c.loan_id,
                                        c.bank_retained_fen, -c.bank_retained_fen)).where(
        c.status == "withdrawn", c.bank_retained_fen > 0)
    return union_all(share, retained, payment, recovery, withdrawn_share, withdrawn_retained).subquery("events")


def _query(scope: LossScope, wanted: LossFilter):
    """The events the reader may see that match the filters other than the dates, with the
    codes a reader knows them by. Returns (select, events subquery)."""
    events = _events()
    e = events.c
    party, receiver = aliased(institutions), aliased(institutions)
    query = (select(e.on, e.rank, e.source_id, e.role, e.claim_id, e.loan_id, e.amount_fen, e.loss_fen,
                    e.reference, e.institution_id, party.c.code.label("institution"),
                    receiver.c.code.label("to"), programs.c.code.label("program"),
                    loans.c.borrower_region.label("region"))
             .select_from(events.join(loans, loans.c.id == e.loan_id)
                          .join(programs, programs.c.id == loans.c.program_id)
                          .join(party, party.c.id == e.institution_id)
                          .outerjoin(receiver, receiver.c.id == e.to_id)))
    conditions = []
    if scope.institution_id is not None:
        conditions.append(e.institution_id == scope.institution_id)
    for prefix in (scope.region_prefix, wanted.region_prefix):
        if prefix:
            conditions.append(loans.c.borrower_region.like(f"{prefix}%"))
    if wanted.institution:
        conditions.append(party.c.code == wanted.institution)
    if wanted.program:
        conditions.append(programs.c.code == wanted.program)
    return query.where(and_(*conditions)) if conditions else query, events


def _shown(events, wanted: LossFilter, after: Key | None):
    """The rows a page or stream shows: within the dates and after the cursor."""
    e = events.c
    conditions = []
    if wanted.on_from:
        conditions.append(e.on >= wanted.on_from)
    if wanted.on_to:
        conditions.append(e.on <= wanted.on_to)
    if after is not None:
        conditions.append(tuple_(e.on, e.rank, e.source_id) > tuple_(*after))
    return and_(*conditions) if conditions else None


def _opening(conn: Connection, scope: LossScope, wanted: LossFilter, after: Key | None) -> dict[int, int]:
    """Each party's net loss before the first row shown: its events before `from` or up to the
    cursor (under the same scope and filters)."""
    query, events = _query(scope, wanted)
    e = events.c
    before = []
    if wanted.on_from:
        before.append(e.on < wanted.on_from)
    if after is not None:
        before.append(tuple_(e.on, e.rank, e.source_id) <= tuple_(*after))
    if not before:
        return {}
    inner = query.where(or_(*before)).subquery()
    rows = conn.execute(select(inner.c.institution_id, func.sum(inner.c.loss_fen)).group_by(inner.c.institution_id))
    return {institution_id: int(total) for institution_id, total in rows}


def _ordered(scope: LossScope, wanted: LossFilter, after: Key | None):
    query, events = _query(scope, wanted)
    shown = _shown(events, wanted, after)
    e = events.c
    return (query.where(shown) if shown is not None else query).order_by(e.on, e.rank, e.source_id)


def _with_running(rows: Iterable, opening: dict[int, int]) -> Iterator[dict]:
    running: dict[int, int] = defaultdict(int, opening)
    for row in rows:
        running[row.institution_id] += int(row.loss_fen)
        yield {"on": row.on, "event": EVENT_OF_RANK[row.rank], "institution": row.institution, "role": row.role,
               "claim": row.claim_id, "loan": row.loan_id, "program": row.program, "region": row.region,
               "amount_fen": int(row.amount_fen), "loss_fen": int(row.loss_fen),
               "net_loss_fen": running[row.institution_id], "to": row.to, "reference": row.reference,
               "key": (row.on, row.rank, row.source_id)}


def list_losses(conn: Connection, scope: LossScope, wanted: LossFilter, *, after: Key | None = None,
                limit: int = 50) -> list[dict]:
    """One page of loss events after the cursor `after` (fetch limit + 1 to learn of a next page)."""
    opening = _opening(conn, scope, wanted, after)
    rows = conn.execute(_ordered(scope, wanted, after).limit(limit))
    return list(_with_running(rows, opening))


def stream_losses(conn: Connection, scope: LossScope, wanted: LossFilter, *,
                  after: Key | None = None) -> Iterator[dict]:
    """Every loss event after `after`, one at a time from a server-side cursor."""
    opening = _opening(conn, scope, wanted, after)
    result = conn.execution_options(stream_results=True, yield_per=STREAM_BATCH_ROWS).execute(
        _ordered(scope, wanted, after))
    yield from _with_running(result, opening)


CSV_COLUMNS = ("on", "event", "institution", "role", "claim", "loan", "program", "region", "amount",
               "loss", "net_loss", "to", "reference")


def csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    """Loss rows as CSV text, a header line first, one line at a time (money in yuan)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def line(values) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(values)
        return out.getvalue()
    yield line(CSV_COLUMNS)
    for row in rows:
        cells = {**row, "on": row["on"].isoformat(), "amount": format_yuan(row["amount_fen"]),
                 "loss": format_yuan(row["loss_fen"]), "net_loss": format_yuan(row["net_loss_fen"])}
        yield line("" if cells[name] is None else cells[name] for name in CSV_COLUMNS)
