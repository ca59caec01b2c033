"""Marshmallow fields of the API: the edge types of ledger.fields (money as yuan strings, ratios
as decimal strings, strict booleans, integers, days, codes), re-exported so every schema of
api/ reads requests with them, and the output-only fields.
"""
from __future__ import annotations

from marshmallow import fields

from ledger.db import as_utc
from ledger.fields import (Boolean, Choice, Code, CreditCode, Day, Integer, Money, Month,  # noqa: F401
                           Object, Objects, QueryInteger, Ratio, Region, RequestSchema, Text)


class UtcTimestamp(fields.DateTime):
    """RFC 3339 in UTC with a `Z` (SQLite hands back naive datetimes; all are stored as UTC)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")
