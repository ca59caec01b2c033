"""Cursor pagination: `?limit=` (default 50, max 1000) and `?after=<cursor>`; order by id."""
from __future__ import annotations

import base64

from marshmallow import ValidationError, fields

from api.fields import QueryInteger, RequestSchema, Text
from api.openapi import Output

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        last_id = int(value)
        assert kind == "id" and 0 <= last_id < 2**63
        return last_id
    except Exception:
        raise ValidationError("not a cursor returned by this API") from None


class Cursor(Text):
    """The `next` of a page: an opaque string this API wrote, read back into the last id."""

    def __init__(self, **kwargs):
        super().__init__(100, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return decode_cursor(super()._deserialize(value, attr, data, **kwargs))


class PageArgs(RequestSchema):
    limit = QueryInteger(low=1, high=MAX_LIMIT, load_default=DEFAULT_LIMIT)
    # A callable default: the first page starts after id 0, but the document shows no default
    # (a generated client would send it, and "0" is not a cursor this API returns).
    after = Cursor(load_default=int, metadata={"description": "the `next` cursor of the previous page; "
                                                             "omit it for the first page"})


def page(items: list, limit: int, id_of=lambda item: item["id"]) -> dict:
    """Callers fetch `limit + 1` rows; the extra row only says whether a next page exists."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": encode_cursor(id_of(items[-1])) if more and items else None}


def page_schema(item_schema, name: str):
    """A `{items, next}` envelope schema around `item_schema`, named for the OpenAPI document."""
    return Output.from_dict({"items": fields.List(fields.Nested(item_schema)),
                             "next": fields.String(allow_none=True, metadata={
                                 "description": "the cursor of the next page (`?after=`); null on the last"})},
                            name=name)
