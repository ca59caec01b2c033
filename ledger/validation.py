"""Reading raw request-shaped dicts (JSON bodies, CSV rows) into typed values, collecting
every field error with its dotted path instead of stopping at the first.

Used where the domain itself owns the parsing because several edges share it (the loan API,
the batch API and the CSV import parse loans through one path).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Callable

from ledger.dates import parse_date
from ledger.errors import FieldError, Invalid
from ledger.money import parse_ratio, parse_yuan

MISSING = object()


class Fields:
    """Reads fields of one raw object; errors are recorded under `prefix`."""

    def __init__(self, raw: Any, prefix: str, errors: list[FieldError], allowed: tuple[str, ...]):
        self.prefix = prefix
        self.errors = errors
        if not isinstance(raw, dict):
            self.raw = {}
            self.add("", "must be an object")
            return
        self.raw = raw
        for key in raw:
            if key not in allowed:
                self.add(key, "unknown field")

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)

    def add(self, key: str, message: str) -> None:
        self.errors.append(FieldError(self.path(key) or "body", message))

    def get(self, key: str, required: bool = True):
        value = self.raw.get(key, MISSING)
        if value is MISSING or value is None:
            if required:
                self.add(key, "is required")
            return MISSING
        return value

    def run(self, key: str, fn: Callable, *args, **kwargs):
        """Call a domain parser; re-home its field errors under this object's path."""
        try:
            return fn(*args, **kwargs)
        except Invalid as error:
            for item in error.errors or [FieldError(key, error.detail)]:
                self.errors.append(FieldError(self.path(key), item.message))
            return MISSING

    def text(self, key: str, max_len: int, required: bool = True) -> str | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        if not isinstance(value, str) or not 1 <= len(value.strip()) <= max_len:
            self.add(key, f"must be a string of 1-{max_len} characters")
            return None
        return value.strip()

    def money(self, key: str, required: bool = True, allow_zero: bool = True) -> int | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        fen = self.run(key, parse_yuan, value, key, allow_zero=allow_zero)
        return None if fen is MISSING else fen

    def ratio(self, key: str, required: bool = True, high: Decimal | None = None,
              low: Decimal = Decimal(0)) -> Decimal | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        ratio = self.run(key, parse_ratio, value, key, high=high, low=low)
        return None if ratio is MISSING else ratio

    def day(self, key: str, required: bool = True) -> date | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        try:
            return parse_date(value, key)
        except Invalid as error:
            self.add(key, error.errors[0].message)
            return None

    def integer(self, key: str, low: int, high: int, required: bool = True) -> int | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(key, f"must be an integer from {low} to {high}")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...], required: bool = True) -> str | None:
        value = self.get(key, required)
        if value is MISSING:
            return None
        if value not in choices:
            self.add(key, f"must be one of: {', '.join(choices)}")
            return None
        return value


def raise_if_any(errors: list[FieldError], summary: str = "validation failed") -> None:
    if errors:
        first = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise Invalid(f"{first}{more}" if first else summary, errors)
