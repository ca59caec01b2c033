"""The portfolio cap's base for one claim, without re-reading the programme's whole book.

The base (DOMAIN.md 3.3, portfolio cap rate) is the sum over the programme's loans started up to
the claim date of covered principal at start (the claiming loan's coverage terms, the
per-borrower-year limit consumed in start-date then id order) x the party's ratio. Read afresh
per claim that is O(book) (about 1 claim/s at 10,000 defaults, bench/claims.py).

Why a cache of committed loans, validated per claim by one count (and not a persisted running
figure): the figure for a day depends on every loan started by then, a backdated loan (an
earlier start inserted later) changes the borrower-year limit of the later loans of its
borrower, and each terms version and party weighs it differently. A sorted book with prefix
sums answers every (day, coverage, ratio) exactly by one lookup, and is rebuilt only when a
loan is added.

Guarantees
- The result always equals `sharing.portfolio_weight` over `loans_started_by` read in the
  claim's own transaction (`direct_weight`, the fallback and the tests' reference).
- The cache holds committed loans only: it is read through a separate connection, never the
  claim's, so an uncommitted loan (the claim's own transaction, or one later rolled back) is
  never in it. It is scoped to the Engine object (weakly: a disposed test database takes its
  cache with it) and keyed by programme id and the programme row's created_at (a database made
  again under the same engine, ids restarting, does not match).
- Validation: loans are append-only facts (no path updates principal, IP share, start date,
  programme or borrower, none deletes a loan; a borrower's credit code never changes). So the
  loans visible to a claim include every loan of a book committed before the claim's count
  query ran (READ COMMITTED on PostgreSQL; on SQLite the claim holds the write lock), and
  equal counts of loans started by the claim day mean the same loans. A mismatch (a loan added
  since, or the claim's own uncommitted loans) rebuilds once, then falls back to `direct_weight`.
- Not used (always direct) for in-memory SQLite (one shared connection), a PostgreSQL
  transaction not at READ COMMITTED (its snapshot may predate the book), or a pool with no
  connection to spare.
"""
from __future__ import annotations

import threading
import weakref
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import Connection, Engine, and_, func, select

from ledger import sharing
from ledger.db import is_postgres
from ledger.schema import borrowers, loans, programs
from ledger.terms import Coverage, Party

MAX_BOOKS_PER_ENGINE = 32
"""Programmes kept per engine (least recently used dropped): ~100 bytes a loan each."""

_books: "weakref.WeakKeyDictionary[Engine, OrderedDict[int, Book]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass
class Book:
    """One programme's committed loans in start-date then id order, as of one read."""

    created_at: object
    """The programme row's created_at: tells a database made again under one engine apart."""
    start_days: list[int]
    """date.toordinal() of each loan's start, ascending."""
    rows: list[tuple[int, Decimal | None, int]]
    """(principal, IP share, the borrower's earlier principal that start year) per loan."""
    prefixes: dict[tuple, list[Fraction]] = field(default_factory=dict)
    """Per (coverage, party ratio terms): `sharing.portfolio_weight_prefix` of `rows`."""

    def count_by(self, day: date) -> int:
        return bisect_right(self.start_days, day.toordinal())

    def weight(self, coverage: Coverage, party: Party, day: date) -> Fraction:
        key = (coverage, party.share, party.share_tiers)
        prefix = self.prefixes.get(key)
        if prefix is None:  # a race computes it twice, to the same figures
            prefix = self.prefixes[key] = sharing.portfolio_weight_prefix(coverage, party, self.rows)
        return prefix[self.count_by(day)]


def portfolio_weight(conn: Connection, program_id: int, coverage: Coverage, party: Party,
                     day: date) -> Fraction:
    """The base of `party`'s portfolio cap on a claim of the programme classified on `day`."""
    if not _cacheable(conn):
        return direct_weight(conn, program_id, coverage, party, day)
    book, fresh = _cached(conn.engine, program_id), False
    if book is None:
        book, fresh = _build(conn.engine, program_id), True
    for _ in range(2):
        # The count is read after the book was read (so the book's loans are all visible here).
        count, created_at = _visible(conn, program_id, day)
        if book.created_at == created_at and book.count_by(day) == count:
            return book.weight(coverage, party, day)
        if fresh:
            break  # just read and still different: this transaction's own loans
        book, fresh = _build(conn.engine, program_id), True
    return direct_weight(conn, program_id, coverage, party, day)


def direct_weight(conn: Connection, program_id: int, coverage: Coverage, party: Party,
                  day: date) -> Fraction:
    """The weight computed from the loans this transaction sees: O(book)."""
    rows, before = loans_started_by(conn, program_id, day)
    return sharing.portfolio_weight(coverage, party, [
        (row.principal_fen, Decimal(row.ip_share) if row.ip_share else None, spent)
        for row, spent in zip(rows, before)])


def loans_started_by(conn: Connection, program_id: int, day: date, *columns) -> tuple[list, list[int]]:
    """The programme's loans started by `day`, in start-date order then id, and for each the
    principal of its borrower's earlier loans that year (what the coverage limit already spent)."""
    rows = conn.execute(
        select(loans.c.id, loans.c.principal_fen, loans.c.ip_share, loans.c.start_date,
               borrowers.c.credit_code, *columns)
        .join(borrowers, borrowers.c.id == loans.c.borrower_id)
        .where(loans.c.program_id == program_id, loans.c.start_date <= day)
        .order_by(loans.c.start_date, loans.c.id)).all()
    before = sharing.borrower_year_principal_before(
        [(r.credit_code, r.start_date.year, r.id, r.principal_fen) for r in rows])
    return rows, before


def forget(engine: Engine) -> None:
    """Drop the engine's cached books (tests; nothing in the service needs it)."""
    with _lock:
        _books.pop(engine, None)


def _visible(conn: Connection, program_id: int, day: date) -> tuple[int, object]:
    row = conn.execute(
        select(programs.c.created_at, func.count(loans.c.id))
        .select_from(programs.outerjoin(loans, and_(loans.c.program_id == programs.c.id,
                                                    loans.c.start_date <= day)))
        .where(programs.c.id == program_id).group_by(programs.c.id, programs.c.created_at)).one()
    return int(row[1]), row[0]


def _cached(engine: Engine, program_id: int) -> Book | None:
    with _lock:
        books = _books.get(engine)
        if books is None or program_id not in books:
            return None
        books.move_to_end(program_id)
        return books[program_id]


def _build(engine: Engine, program_id: int) -> Book:
    """Read the programme's committed loans through a connection of its own, and keep them."""
    with engine.connect().execution_options(ipledger_readonly=True) as conn:
        created_at = conn.execute(select(programs.c.created_at).where(programs.c.id == program_id)).scalar_one()
        rows, before = loans_started_by(conn, program_id, date.max)
    book = Book(created_at, [r.start_date.toordinal() for r in rows],
                [(r.principal_fen, Decimal(r.ip_share) if r.ip_share else None, spent)
                 for r, spent in zip(rows, before)])
    with _lock:
        books = _books.setdefault(engine, OrderedDict())
        books[program_id] = book
        while len(books) > MAX_BOOKS_PER_ENGINE:
            books.popitem(last=False)
    return book


def _cacheable(conn: Connection) -> bool:
    engine = conn.engine
    if not is_postgres(conn):
        return engine.url.database not in (None, "", ":memory:")
    level = conn.get_execution_options().get("isolation_level") or conn.default_isolation_level
    return level == "READ COMMITTED" and _pool_has_room(engine)


def _pool_has_room(engine: Engine) -> bool:
    """A second connection can be had without waiting (a claim holds one already)."""
    pool = engine.pool
    size, max_overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
    if size is None or max_overflow is None:
        return True
    return max_overflow < 0 or pool.checkedout() < size() + max_overflow
