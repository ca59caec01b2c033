"""Borrowers: each bank's customer file of enterprises, and the dated facts its loans freeze.

Guarantees
- A borrower record belongs to one bank: (bank, credit code) is unique. Two banks lending to one
  enterprise keep two records, each with the facts that bank stated; the credit code (with a
  valid check character) names the enterprise across banks, so counts of enterprises count it
  once. A bank reads and changes only its own records (readers are scoped by
  `ledger.reads.ReadScope.borrower_condition`); posting a code another bank holds creates the
  poster's own record and leaves the other untouched.
- Facts are stated for a day (`as_of`, not after today, default today). Every version posted is
  kept in `borrower_facts`; the record's own columns are the version with the latest `as_of`
  (on the same day, the one posted last), so posting older facts adds history and leaves the
  current facts as they are. Each version is classified by the SME standard in force on its
  `as_of` (ledger.sme).
- `facts_in_force` is what a loan freezes: the version of the lending bank's record with the
  latest `as_of` on or before the loan's start date (same day: posted last). A loan starting
  before the record's first version freezes that first version (a bank registering a customer
  of long standing states its facts as it knows them; the loan says which `as_of` it froze).
  Loans keep the version they froze; no later posting rewrites them.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, bindparam, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.db import utcnow
from ledger.errors import Conflict, FieldError, Invalid, NotFound
from ledger.identifiers import normalize_credit_code, validate_region
from ledger.money import check_fen
from ledger.schema import borrower_facts, borrowers, institutions
from ledger.sme import Classification, classify

MAX_EMPLOYEES = 10_000_000
_FACT_FIELDS = ("name", "region", "industry", "employees", "revenue_fen", "total_assets_fen", "private")


@dataclass(frozen=True)
class BorrowerFacts:
    """What a bank states about a borrower. Money in fen."""

    credit_code: str
    name: str
    region: str
    industry: str
    employees: int
    revenue_fen: int
    total_assets_fen: int
    private: bool


@dataclass(frozen=True)
class Borrower:
    """A bank's record of an enterprise, with its current facts (those of the latest `as_of`)."""

    id: int
    bank_id: int
    bank: str
    """The bank's institution code."""
    facts: BorrowerFacts
    as_of: date
    """The day the current facts are stated for."""
    size_class: str
    sme: bool
    size_standard: str


@dataclass(frozen=True)
class FactsVersion:
    """One version of a record's facts, as posted: what a loan freezes."""

    id: int
    """The `borrower_facts` row."""
    borrower_id: int
    as_of: date
    facts: BorrowerFacts


def check_facts(facts: BorrowerFacts) -> BorrowerFacts:
    """Validate everything and report all bad fields at once."""
    errors: list[FieldError] = []

    def attempt(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Invalid as error:
            errors.extend(error.errors)
            return None

    code = attempt(normalize_credit_code, facts.credit_code)
    region = attempt(validate_region, facts.region)
    if not isinstance(facts.name, str) or not 1 <= len(facts.name.strip()) <= 200:
        errors.append(FieldError("name", "must be 1-200 characters"))
    if (not isinstance(facts.employees, int) or isinstance(facts.employees, bool)
            or not 0 <= facts.employees <= MAX_EMPLOYEES):
        errors.append(FieldError("employees", f"must be an integer from 0 to {MAX_EMPLOYEES}"))
    attempt(check_fen, facts.revenue_fen, "revenue")
    attempt(check_fen, facts.total_assets_fen, "total_assets")
    if not isinstance(facts.private, bool):
        errors.append(FieldError("private", "must be true or false"))
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    return BorrowerFacts(code, facts.name.strip(), region, facts.industry, facts.employees,
                         facts.revenue_fen, facts.total_assets_fen, facts.private)


def bank_named(conn: Connection, code: object) -> int:
    """The id of the bank with this institution code (for admin keys posting for a bank)."""
    row = conn.execute(select(institutions.c.id, institutions.c.kind)
                       .where(institutions.c.code == code)).first() if isinstance(code, str) else None
    if row is None:
        raise Invalid.field("bank", f"{code!r} is not an institution code")
    if row.kind != "bank":
        raise Invalid.field("bank", f"{code} is a {row.kind}, not a bank")
    return row.id


def upsert_borrower(conn: Connection, bank_id: int, facts: BorrowerFacts, *, as_of: date | None = None,
                    actor_key_id: int | None = None, today: date | None = None) -> tuple[Borrower, bool]:
    """Record facts in the bank's file, creating its record of the code if it has none.

    Returns (the record as it now stands, created). The record's current facts change only if
    `as_of` is on or after theirs; the version is kept in the history either way."""
    facts = check_facts(facts)
    as_of = _stated_day(as_of, today or business_today())
    bank_code = _bank_code(conn, bank_id)
    size = _classify(facts, as_of)
    now = utcnow()
    values = {**vars(facts), "as_of": as_of, "size_class": size.size_class, "sme": size.sme,
              "size_standard": size.standard, "updated_at": now}
    existing = conn.execute(select(borrowers.c.id, borrowers.c.as_of).where(
        borrowers.c.bank_id == bank_id, borrowers.c.credit_code == facts.credit_code).with_for_update()).first()
    if existing is None:
        try:
            borrower_id = conn.execute(insert(borrowers).values(**values, bank_id=bank_id, created_at=now)
                                       ).inserted_primary_key[0]
        except IntegrityError as exc:  # a concurrent first post of the same code by the same bank
            raise Conflict(f"borrower {facts.credit_code} was just created by another request; retry") from exc
    else:
        borrower_id = existing.id
        if as_of >= existing.as_of:
            conn.execute(update(borrowers).where(borrowers.c.id == borrower_id).values(**values))
    history = {k: v for k, v in values.items() if k not in ("credit_code", "sme", "updated_at")}
    conn.execute(insert(borrower_facts).values(**history, borrower_id=borrower_id,
                                               recorded_by_key_id=actor_key_id, recorded_at=now))
    if existing is None or as_of >= existing.as_of:
        return Borrower(borrower_id, bank_id, bank_code, facts, as_of, size.size_class, size.sme,
                        size.standard), existing is None
    return _one(conn, borrowers.c.id == borrower_id), False


def _stated_day(as_of: object, today: date) -> date:
    if as_of is None:
        return today
    day = parse_date(as_of, "as_of")
    if day > today:
        raise Invalid.field("as_of", "cannot be in the future: facts are stated for a day that has been")
    return day


def _bank_code(conn: Connection, bank_id: int) -> str:
    row = conn.execute(select(institutions.c.code, institutions.c.kind)
                       .where(institutions.c.id == bank_id)).first()
    if row is None or row.kind != "bank":
        raise Invalid.field("bank", "borrower records belong to a bank")
    return row.code


def _classify(facts: BorrowerFacts, as_of: date) -> Classification:
    try:
        return classify(facts.industry, facts.employees, facts.revenue_fen, facts.total_assets_fen, on=as_of)
    except Invalid as error:
        if error.errors:  # a bad industry or figure names its field
            raise
        raise Invalid.field("as_of", error.detail) from None  # no SME standard in force that day


def _query():
    return select(borrowers, institutions.c.code.label("bank")).join(
        institutions, institutions.c.id == borrowers.c.bank_id)


def _from_row(row) -> Borrower:
    facts = BorrowerFacts(row.credit_code, *(getattr(row, name) for name in _FACT_FIELDS))
    return Borrower(row.id, row.bank_id, row.bank, facts, row.as_of, row.size_class, row.sme, row.size_standard)


def _one(conn: Connection, condition) -> Borrower:
    return _from_row(conn.execute(_query().where(condition)).one())


def get_borrower(conn: Connection, credit_code: str, condition=None, bank: str | None = None) -> Borrower:
    """The record of `credit_code` the reader may see (`condition`, from its read scope); `bank`
    (an institution code) picks one bank's record when the reader sees several."""
    code = credit_code.strip().upper()
    query = _query().where(borrowers.c.credit_code == code, true() if condition is None else condition)
    if bank is not None:
        query = query.where(institutions.c.code == bank)
    rows = conn.execute(query.order_by(borrowers.c.id)).all()
    if not rows:
        raise NotFound(f"borrower {credit_code} is not registered" + (f" by {bank}" if bank else ""))
    if len(rows) > 1:
        banks = ", ".join(row.bank for row in rows)
        raise Invalid.field("bank", f"{len(rows)} banks hold a record of {code} ({banks}); "
                                    "choose one with ?bank=")
    return _from_row(rows[0])


def _history_query():
    """A bank's records of some credit codes, one row per version of their facts, oldest first
    (same day: posted last). Built once: SQLAlchemy then reuses its compiled form and cache key."""
    versions = [borrower_facts.c.id.label("facts_id"), borrower_facts.c.as_of.label("facts_as_of"),
                *(borrower_facts.c[name].label(f"facts_{name}") for name in _FACT_FIELDS)]
    return (select(borrowers, institutions.c.code.label("bank"), *versions)
            .join(institutions, institutions.c.id == borrowers.c.bank_id)
            .join(borrower_facts, borrower_facts.c.borrower_id == borrowers.c.id)
            .where(borrowers.c.bank_id == bindparam("bank_id"),
                   borrowers.c.credit_code.in_(bindparam("codes", expanding=True)))
            .order_by(borrowers.c.id, borrower_facts.c.as_of, borrower_facts.c.id))


_HISTORY = _history_query()


def borrowers_with_facts(conn: Connection, bank_id: int, codes
                         ) -> dict[str, tuple[Borrower, list[FactsVersion]]]:
    """The bank's own records of these credit codes (codes it has not registered are absent),
    each with every version of its facts, oldest first: one statement per 5,000 codes (a loan
    post reads its borrower and the facts it freezes in one round trip)."""
    found: dict[str, tuple[Borrower, list[FactsVersion]]] = {}
    codes = sorted(set(codes))
    for start in range(0, len(codes), 5000):
        for row in conn.execute(_HISTORY, {"bank_id": bank_id, "codes": codes[start:start + 5000]}):
            if row.credit_code not in found:
                found[row.credit_code] = (_from_row(row), [])
            facts = BorrowerFacts(row.credit_code, *(getattr(row, f"facts_{name}") for name in _FACT_FIELDS))
            found[row.credit_code][1].append(FactsVersion(row.facts_id, row.id, row.facts_as_of, facts))
    return found


def facts_in_force(versions: list[FactsVersion], day: date) -> FactsVersion:
    """The version in force on `day` (see the module's guarantees); `versions` oldest first, as
    `borrowers_with_facts` reads them. Pure."""
    assert versions, "every borrower record is created with its first facts"
    return versions[max(bisect_right([version.as_of for version in versions], day) - 1, 0)]
