"""Business dates: the one parser of dates and months, and what "today" is.

Guarantees
- `parse_date` accepts exactly `YYYY-MM-DD` in ASCII digits naming a real day (no ISO week
  dates, no `20250101`, no trailing newline, no full-width digits) and returns a `date`;
  `parse_month` accepts exactly `YYYY-MM`. Anything else raises `Invalid` on the named field.
  Every edge that reads a date (JSON bodies, queries, CSV cells) goes through `parse_date`.
- `today()` is the date in the business time zone (`IPLEDGER_TIMEZONE`, default
  `Asia/Shanghai`), not the server's local date: on a UTC host a Beijing loan made at 07:00
  Beijing time is dated today, not yesterday. Timestamps stay UTC (`ledger.db.utcnow`).
"""
from __future__ import annotations

import os
import re
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.errors import Invalid

DEFAULT_TIMEZONE = "Asia/Shanghai"
# re.ASCII: \d must not match full-width or other Unicode digits; fullmatch: no trailing "\n".
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])", re.ASCII)
MIN_YEAR = 1900
MAX_YEAR = 2999


def parse_date(value: object, field: str = "date") -> date:
    """`"2025-03-01"` -> date(2025, 3, 1); anything else is `Invalid` on `field`."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    match = _DATE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid.field(field, "must be a date written YYYY-MM-DD")
    year, month, day = map(int, match.groups())
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Invalid.field(field, f"year must be from {MIN_YEAR} to {MAX_YEAR}")
    try:
        return date(year, month, day)
    except ValueError:
        raise Invalid.field(field, f"{value} is not a real day") from None


def parse_month(value: object, field: str = "month") -> str:
    """`"2025-06"` -> `"2025-06"` (validated); anything else is `Invalid` on `field`."""
    match = _MONTH_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or not MIN_YEAR <= int(match.group(1)) <= MAX_YEAR:
        raise Invalid.field(field, "must be a month written YYYY-MM")
    return value


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(f"IPLEDGER_TIMEZONE={name!r} is not a known time zone") from None


def business_zone() -> ZoneInfo:
    return _zone(os.environ.get("IPLEDGER_TIMEZONE") or DEFAULT_TIMEZONE)


def today() -> date:
    """Today's date in the business time zone."""
    return datetime.now(business_zone()).date()
