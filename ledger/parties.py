"""Borrowers: enterprises identified by their unified social credit code.

Guarantees: a borrower's code has a valid check character; its size class is computed by the
SME standard in force (ledger.sme) from its facts; posting a known code updates its current
facts and appends the new facts to `borrower_facts` (the history); loans keep the facts frozen
at their own date and are never rewritten by such an update.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.db import utcnow
from ledger.dates import today as business_today
from ledger.errors import Conflict, FieldError, Invalid, NotFound
from ledger.identifiers import normalize_credit_code, validate_region
from ledger.money import check_fen
from ledger.schema import borrower_facts, borrowers
from ledger.sme import classify

MAX_EMPLOYEES = 10_000_000


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
    id: int
    facts: BorrowerFacts
    size_class: str
    sme: bool
    size_standard: str


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


def upsert_borrower(conn: Connection, facts: BorrowerFacts, actor_key_id: int | None = None,
                    today: date | None = None) -> tuple[Borrower, bool]:
    """Create the borrower, or update its current facts; returns (borrower, created)."""
    facts = check_facts(facts)
    size = classify(facts.industry, facts.employees, facts.revenue_fen, facts.total_assets_fen,
                    on=today or business_today())
    now = utcnow()
    values = {**vars(facts), "size_class": size.size_class, "sme": size.sme,
              "size_standard": size.standard, "updated_at": now}
    existing = conn.execute(select(borrowers.c.id).where(
        borrowers.c.credit_code == facts.credit_code)).first()
    if existing is None:
        try:
            borrower_id = conn.execute(insert(borrowers).values(**values, created_at=now)
                                       ).inserted_primary_key[0]
        except IntegrityError as exc:  # a concurrent first post of the same code
            raise Conflict(f"borrower {facts.credit_code} was just created by another request; retry") from exc
    else:
        borrower_id = existing.id
        conn.execute(update(borrowers).where(borrowers.c.id == borrower_id).values(**values))
    history = {k: v for k, v in values.items() if k not in ("credit_code", "sme", "updated_at")}
    conn.execute(insert(borrower_facts).values(**history, borrower_id=borrower_id,
                                               recorded_by_key_id=actor_key_id, recorded_at=now))
    return Borrower(borrower_id, facts, size.size_class, size.sme, size.standard), existing is None


def _from_row(row) -> Borrower:
    facts = BorrowerFacts(row.credit_code, row.name, row.region, row.industry, row.employees,
                          row.revenue_fen, row.total_assets_fen, row.private)
    return Borrower(row.id, facts, row.size_class, row.sme, row.size_standard)


def get_borrower(conn: Connection, credit_code: str) -> Borrower:
    row = conn.execute(select(borrowers).where(borrowers.c.credit_code == credit_code.strip().upper())).first()
    if row is None:
        raise NotFound(f"borrower {credit_code} is not registered")
    return _from_row(row)


def borrowers_by_code(conn: Connection, codes) -> dict[str, Borrower]:
    found: dict[str, Borrower] = {}
    codes = sorted(set(codes))
    for start in range(0, len(codes), 5000):
        rows = conn.execute(select(borrowers).where(borrowers.c.credit_code.in_(codes[start:start + 5000])))
        found.update({row.credit_code: _from_row(row) for row in rows})
    return found
