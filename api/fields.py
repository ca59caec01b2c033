"""Marshmallow fields for the API's edge formats: money as yuan strings, rates as decimal strings.

Both convert once, here, to the domain's types (integer fen, `Decimal`) and back.
"""
from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError, fields

from ledger.dates import parse_date
from ledger.db import as_utc
from ledger.errors import Invalid
from ledger.money import format_yuan, parse_ratio, parse_yuan


class Money(fields.String):
    """Yuan at the edge (`"3200000.00"` or a JSON integer), integer fen inside."""

    def __init__(self, *, allow_negative: bool = False, allow_zero: bool = True, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("example", "3200000.00")
        kwargs["metadata"].setdefault(
            "description", "Yuan as a string with at most two decimals (a JSON integer is also accepted)")
        super().__init__(**kwargs)
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_yuan(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_yuan(value, attr or "amount", allow_negative=self.allow_negative,
                              allow_zero=self.allow_zero)
        except Invalid as error:
            raise ValidationError(error.errors[0].message) from None


class Ratio(fields.String):
    """A rate or ratio as a decimal string (`"0.0385"`), `Decimal` inside."""

    def __init__(self, *, high: Decimal | None = None, max_places: int = 8, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("example", "0.0385")
        super().__init__(**kwargs)
        self.high = high
        self.max_places = max_places

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_ratio(value, attr or "ratio", high=self.high, max_places=self.max_places)
        except Invalid as error:
            raise ValidationError(error.errors[0].message) from None


class Day(fields.Date):
    """A date in; `ledger.dates.parse_date` decides (marshmallow's Date also takes ISO week
    dates such as 2025-W01-1 and 20250101)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_date(value, attr or "date")
        except Invalid as error:
            raise ValidationError(error.errors[0].message) from None


class Region(fields.String):
    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"example": "440100",
                                       "description": "6-digit administrative code; 000000 is the country"})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) != 6 or not value.isdigit():
            raise ValidationError("must be a 6-digit administrative region code such as 440100")
        return value


class UtcTimestamp(fields.DateTime):
    """RFC 3339 in UTC with a `Z` (SQLite hands back naive datetimes; all are stored as UTC)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")
