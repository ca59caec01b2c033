"""Reference rates by month (the one-year LPR, `LPR1Y`).

Guarantees: one value per (rate, month), seeded 2019-08..2025-05 by migration 0002 from
DOMAIN.md §5; later months are recorded by an operator as they are published. Asking for a
month that has no record is an error, never a guess. A recorded month is not silently changed:
recording the same value again is a no-op, a different value is a conflict.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, insert, select

from ledger.dates import parse_month
from ledger.db import utcnow
from ledger.errors import Conflict, NotFound
from ledger.money import parse_ratio
from ledger.schema import reference_rates

RATE_NAMES = ("LPR1Y",)
MAX_RATE = Decimal("0.5")  # 50% a year: a larger "rate" is a typo (a percentage, not a decimal)
RATE_PLACES = 6


@dataclass(frozen=True)
class MonthlyRate:
    name: str
    month: str
    rate: Decimal


def check_name(name: str) -> str:
    if name not in RATE_NAMES:
        raise NotFound(f"no reference rate named {name}; known: {', '.join(RATE_NAMES)}")
    return name


def check_month(month: object, field: str = "month") -> str:
    return parse_month(month, field)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_month(day: date) -> str:
    return month_of(date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1))


def parse_rate(text: object) -> Decimal:
    """A rate as a decimal string (`"0.0300"` is 3.00% a year): at most 6 decimals, 0..0.5."""
    return parse_ratio(text, "rate", max_places=RATE_PLACES, high=MAX_RATE)


def record_rate(conn: Connection, name: str, month: str, rate: Decimal | str,
                actor_key_id: int | None = None) -> tuple[MonthlyRate, bool]:
    """Record a month's value (a Decimal read at the edge, or its decimal string); returns
    (rate, created). Same value again: not created."""
    check_name(name)
    check_month(month)
    value = parse_rate(rate if isinstance(rate, str) else format(rate, "f"))
    existing = conn.execute(select(reference_rates.c.rate).where(
        reference_rates.c.name == name, reference_rates.c.month == month)).first()
    if existing is not None:
        if Decimal(existing.rate) != value:
            raise Conflict(f"{name} for {month} is already recorded as {existing.rate}; "
                           "a published rate is not changed")
        return MonthlyRate(name, month, value), False
    conn.execute(insert(reference_rates).values(name=name, month=month, rate=str(value),
                                                recorded_by_key_id=actor_key_id, recorded_at=utcnow()))
    return MonthlyRate(name, month, value), True


def rate_for(conn: Connection, name: str, month: str) -> Decimal:
    row = conn.execute(select(reference_rates.c.rate).where(
        reference_rates.c.name == check_name(name), reference_rates.c.month == check_month(month))).first()
    if row is None:
        raise NotFound(f"no {name} is recorded for {month}; record it before using it")
    return Decimal(row.rate)


def list_rates(conn: Connection, name: str) -> list[MonthlyRate]:
    rows = conn.execute(select(reference_rates.c.month, reference_rates.c.rate)
                        .where(reference_rates.c.name == check_name(name)).order_by(reference_rates.c.month))
    return [MonthlyRate(name, row.month, Decimal(row.rate)) for row in rows]
