"""Field types of the API's edge: how one JSON value (or query-string value, or CSV cell) is read
into a domain value, and how the OpenAPI document describes it.

Every request schema is built from these and from `RequestSchema`, so no request field is read
by marshmallow's lenient defaults, and the HTTP API, the batch endpoint and the CSV import read a
value identically. The schemas live next to the values they build, `<Value>In` in the domain
module that owns the value (ledger.terms.TermsIn and its parts, ledger.loans.LoanIn and
LoanBatchIn, ledger.pledges.PledgeIn); the other bodies and queries are in their api/ module.
`load(schema, raw, prefix)` reads JSON held by a caller (the CSV import, stored terms) into one
`Invalid` listing every error with its path.

Guarantees
- Strict JSON types: a bool is never an integer (`true` is not 1), a number is never a bool
  (`1`, `0.0` are not booleans: note `1 in {True}` is True in Python, so marshmallow's truthy
  sets cannot tell them apart; identity can), a float is never an integer, money or a ratio.
- One parser per format, the domain's own: money by `ledger.money.parse_yuan` (yuan string or
  JSON integer -> int fen), ratios by `parse_ratio` (decimal string -> Decimal), days by
  `ledger.dates.parse_date` (exactly YYYY-MM-DD in ASCII digits; marshmallow's Date would accept
  Unicode digits and a trailing newline), identifiers by `ledger.identifiers`.
- Each field documents itself: apispec reads its type (from the marshmallow class it extends)
  and the `pattern`, `format`, `example`, `description`, `minimum`... set in its metadata.
- `Objects` checks a list's length before reading any item, so an oversized batch is refused
  in one message, without parsing (and reporting on) ten thousand items.
- Cheap on large batches: `EdgeField.deserialize` and `RequestSchema._deserialize` skip the
  parts of marshmallow's per-value and per-field machinery these schemas never use (tests
  check the latter against marshmallow's own loop); one schema instance serves every request.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

from ledger.dates import parse_date, parse_month
from ledger.errors import Invalid, Path, flatten_messages, raise_if_any
from ledger.identifiers import (CREDIT_CODE_LENGTH, normalize_credit_code,
                                validate_region)
from ledger.money import MAX_YUAN, format_yuan, parse_ratio, parse_yuan

# Patterns for the OpenAPI document (and, where a field says so, for reading).
MONEY_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"
SIGNED_MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]{1,2})?$"
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
REGION_RE = re.compile(r"[0-9]{6}", re.ASCII)
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
QUERY_INTEGER_RE = re.compile(r"[0-9]{1,19}", re.ASCII)


def _message(error: Invalid) -> str:
    """The message of a domain parser's one field error (its field name is the schema's job)."""
    return error.errors[0].message if error.errors else error.detail


def _with_metadata(kwargs: dict, **defaults: Any) -> dict:
    """`kwargs` with `metadata` holding `defaults` unless the caller set them; a caller's
    `description` comes first and the field's own (its format) follows it."""
    given = dict(kwargs.get("metadata", {}))
    if "description" in given and "description" in defaults:
        given["description"] = f"{given['description'].rstrip('.')}. {defaults['description']}"
    kwargs["metadata"] = {**defaults, **given}
    return kwargs


def _with_messages(kwargs: dict, **defaults: str) -> dict:
    """`kwargs` with `error_messages` holding `defaults` unless the caller set them."""
    kwargs["error_messages"] = {**defaults, **(kwargs.get("error_messages") or {})}
    return kwargs


class EdgeField(fields.Field):
    """Base of every edge field: plain messages, and a cheaper `deserialize`.

    marshmallow's `Field.deserialize` also runs field-level pre/post-load functions and builds
    a composite validator on every call; neither is used here, and on a 10,000-loan batch
    (some 200,000 values) that overhead is a measurable share of the request. This one keeps
    its contract: required, load_default, allow_none, then `_deserialize`, then validators.
    """

    default_error_messages = {"required": "is required", "null": "must not be null"}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        assert not self.pre_load and not self.post_load, "edge fields take no load hooks"

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any):
        if value is missing:
            if self.required:
                raise self.make_error("required")
            default = self.load_default
            return default() if callable(default) else default
        if value is None:
            if self.allow_none:
                return None
            raise self.make_error("null")
        output = self._deserialize(value, attr, data, **kwargs)
        if self.validators:
            self._validate(output)
        return output


class Money(EdgeField, fields.String):
    """Yuan at the edge (`"3200000.00"` or a JSON integer of yuan), integer fen inside."""

    def __init__(self, *, allow_negative: bool = False, allow_zero: bool = True, **kwargs: Any):
        range_text = ("may be negative" if allow_negative else
                      "greater than zero" if not allow_zero else "zero or more")
        super().__init__(**_with_metadata(
            kwargs, example="3200000.00",
            pattern=SIGNED_MONEY_PATTERN if allow_negative else MONEY_PATTERN,
            description=f"Yuan as a decimal string with at most two decimals ({range_text}, at "
                        f"most 10^{len(str(MAX_YUAN)) - 1}); a JSON integer of yuan is also "
                        "accepted, a JSON float never."))
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_yuan(value)

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        try:
            return parse_yuan(value, attr or "amount", allow_negative=self.allow_negative,
                              allow_zero=self.allow_zero)
        except Invalid as error:
            raise ValidationError(_message(error)) from None


class Ratio(EdgeField, fields.String):
    """A rate or ratio as a decimal string (`"0.0385"`), `Decimal` inside; range-checked."""

    default_error_messages = {"zero": "must be greater than zero"}

    def __init__(self, *, low: Decimal = Decimal(0), high: Decimal | None = None,
                 max_places: int = 8, allow_zero: bool = True, **kwargs: Any):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        super().__init__(**_with_metadata(
            kwargs, example="0.0385", pattern=rf"^[0-9]+(\.[0-9]{{1,{max_places}}})?$",
            description=f"A decimal string in {bounds}"
                        f"{'' if allow_zero else ', greater than zero'}, at most {max_places} "
                        "decimals (never a JSON number)."))
        self.low, self.high, self.max_places = low, high, max_places
        self.allow_zero = allow_zero

    def _serialize(self, value, attr, obj, **kwargs):
        # format "f", not str(): str(Decimal("0.00000001")) is "1E-8", which parse_ratio refuses.
        return None if value is None else format(value, "f")

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        try:
            ratio = parse_ratio(value, attr or "ratio", max_places=self.max_places, low=self.low,
                                high=self.high)
        except Invalid as error:
            raise ValidationError(_message(error)) from None
        if ratio == 0 and not self.allow_zero:
            raise self.make_error("zero")
        return ratio


class Day(EdgeField, fields.Date):
    """A calendar day written `YYYY-MM-DD` (ASCII digits, a real day), read by `parse_date`."""

    def __init__(self, **kwargs: Any):
        super().__init__(**_with_metadata(kwargs, example="2025-03-01", pattern=DAY_PATTERN))

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.isoformat()

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        if not isinstance(value, str):  # parse_date also takes a date object; JSON has none
            raise ValidationError("must be a date written YYYY-MM-DD")
        try:
            return parse_date(value, attr or "date")
        except Invalid as error:
            raise ValidationError(_message(error)) from None


class Month(EdgeField, fields.String):
    """A calendar month written `YYYY-MM`, read by `parse_month` (kept as that string)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**_with_metadata(kwargs, example="2025-06", pattern=MONTH_PATTERN))

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        try:
            return parse_month(value, attr or "month")
        except Invalid as error:
            raise ValidationError(_message(error)) from None


class Boolean(EdgeField, fields.Boolean):
    """Only JSON `true` or `false`: not 1, 0, 1.0, "true" or "yes"."""

    default_error_messages = {"invalid": "must be true or false"}

    def __init__(self, **kwargs: Any):
        super().__init__(**_with_metadata(kwargs, description="JSON true or false only (not 1, "
                                                              "0 or a string)."))

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        # Identity, not membership: 1 == True and hash(1) == hash(True), so `1 in {True}`.
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class Integer(EdgeField, fields.Integer):
    """A JSON integer: not a bool, not a float (not even 1.0), not a string of digits; within
    [low, high] when given."""

    default_error_messages = {"invalid": "must be an integer", "null": "must be an integer"}
    description = "A JSON integer (not a float such as 9.0, not a string)."

    def __init__(self, *, low: int | None = None, high: int | None = None, **kwargs: Any):
        bounds = {key: value for key, value in (("minimum", low), ("maximum", high))
                  if value is not None}
        _with_messages(kwargs, range=f"must be within [{'' if low is None else low}, "
                                     f"{'' if high is None else high}]")
        super().__init__(**_with_metadata(kwargs, **bounds, description=self.description))
        self.low, self.high = low, high

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if type(value) is not int:  # type(): bool is a subclass of int
            raise self.make_error("invalid")
        return self._in_range(value)

    def _in_range(self, value: int) -> int:
        # Checked here rather than by a Range validator: one comparison instead of a validator
        # call per value (the document shows the bounds as minimum/maximum all the same).
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.make_error("range")
        return value


class QueryInteger(Integer):
    """An integer in a query string (`?limit=50`): ASCII digits only, no sign, no spaces (int()
    would accept "٥٠", " 50" and "5_0")."""

    description = "ASCII digits only."

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if not isinstance(value, str) or QUERY_INTEGER_RE.fullmatch(value) is None:
            raise self.make_error("invalid")
        return self._in_range(int(value))


class Text(EdgeField, fields.String):
    """A string of 1 to `max_length` characters after surrounding whitespace is removed (the
    stripped text is what is kept)."""

    def __init__(self, max_length: int, **kwargs: Any):
        _with_messages(kwargs, invalid=f"must be a string of 1-{max_length} characters")
        super().__init__(**_with_metadata(kwargs, minLength=1, maxLength=max_length))
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        if not 1 <= len(text) <= self.max_length:
            raise self.make_error("invalid")
        return text


class Code(EdgeField, fields.String):
    """An identifier such as an institution or programme code: 1 to `max_length` ASCII letters,
    digits, '.', '_' or '-', starting with a letter or digit; case and spelling kept as given."""

    def __init__(self, max_length: int = 40, **kwargs: Any):
        pattern = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{max_length - 1}}}$"
        _with_messages(kwargs, invalid=f"must be 1-{max_length} letters, digits, '.', '_' or "
                                       "'-', starting with a letter or digit")
        super().__init__(**_with_metadata(kwargs, pattern=pattern, minLength=1,
                                          maxLength=max_length))
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if (not isinstance(value, str) or len(value) > self.max_length
                or CODE_RE.fullmatch(value) is None):
            raise self.make_error("invalid")
        return value


class Choice(EdgeField, fields.String):
    """One of a fixed set of strings (documented as an enum)."""

    def __init__(self, choices: Sequence[str], **kwargs: Any):
        _with_messages(kwargs, invalid=f"must be one of: {', '.join(choices)}")
        super().__init__(**_with_metadata(kwargs, enum=list(choices)))
        self.choices = frozenset(choices)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        # A set lookup here rather than a OneOf validator: one step per value on large batches.
        if not isinstance(value, str) or value not in self.choices:
            raise self.make_error("invalid")
        return value


class Region(EdgeField, fields.String):
    """A 6-digit administrative region code (ASCII digits, no spaces); `000000` is the country."""

    default_error_messages = {"invalid": "must be a 6-digit administrative region code such as "
                                         "440100"}

    def __init__(self, **kwargs: Any):
        super().__init__(**_with_metadata(
            kwargs, example="440100", pattern=r"^[0-9]{6}$",
            description="6-digit administrative code; 000000 is the country"))

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str) or REGION_RE.fullmatch(value) is None:
            raise self.make_error("invalid")
        try:
            return validate_region(value, attr or "region")
        except Invalid as error:
            raise ValidationError(_message(error)) from None


class CreditCode(EdgeField, fields.String):
    """A unified social credit code (GB 32100-2015) with a valid check character; read in any
    letter case with surrounding spaces, kept canonical (upper case, stripped)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**_with_metadata(
            kwargs, example="91350100M000100Y43",
            pattern=rf"^[0-9A-HJ-NPQRTUWXYa-hj-npqrtuwxy]{{{CREDIT_CODE_LENGTH}}}$",
            description="unified social credit code (GB 32100-2015), check character verified"))

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        try:
            return normalize_credit_code(value, attr or "credit_code")
        except Invalid as error:
            raise ValidationError(_message(error)) from None


class Object(EdgeField, fields.Nested):
    """A JSON object read by `schema` (its own unknown keys refused)."""


class Objects(EdgeField, fields.Nested):
    """A JSON list of objects, each read by `schema`, with `min_items`..`max_items` items.

    The count is checked before any item is read. With `each=True` every item is read on its
    own, so an item that is fine comes out as its value even when another one is broken (the
    checks across items then see every item that loaded); with `each=False` the list is one
    `many=True` load (cheaper per item: the loan batch and pledges), and comes out as values
    only when every item is fine.
    """

    default_error_messages = {"type": "must be a list"}

    def __init__(self, schema: Any, *, max_items: int, min_items: int = 0, noun: str = "items",
                 each: bool = False, **kwargs: Any):
        kwargs["many"] = True
        _with_messages(kwargs, too_few=f"must list at least {min_items} {noun}",
                       too_many=f"at most {max_items} {noun}")
        super().__init__(schema, **_with_metadata(kwargs, minItems=min_items, maxItems=max_items))
        self.min_items, self.max_items, self.each = min_items, max_items, each

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("type")
        if len(value) < self.min_items:
            raise self.make_error("too_few")
        if len(value) > self.max_items:
            raise self.make_error("too_many")
        if not self.each:
            return self._load(value, partial=partial)
        loaded, errors = [], {}
        for index, item in enumerate(value):
            try:
                loaded.append(self.schema.load(item, many=False, partial=partial,
                                               unknown=self.unknown))
            except ValidationError as error:
                errors[index] = error.messages
                loaded.append(error.valid_data)
        if errors:
            raise ValidationError(errors, valid_data=loaded)
        return loaded


class RequestSchema(Schema):
    """Base of every request schema: unknown keys are errors (a typo such as `per_clam` is not
    silently ignored), with messages that name what is expected, and a cheaper loop over the
    fields (see `_deserialize`)."""

    class Meta:
        unknown = RAISE

    error_messages = {"type": "must be an object"}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # (key in the request, key in the loaded dict, field), in declaration order
        self._load_plan = [(field.data_key or name, field.attribute or name, field)
                           for name, field in self.load_fields.items()]
        assert all("." not in key for _, key, _ in self._load_plan), "no dotted attributes"
        self._load_names = frozenset(name for name, _, _ in self._load_plan)
        self.error_messages = {
            **self.error_messages,
            "unknown": f"unknown field; expected one of: {', '.join(n for n, _, _ in self._load_plan)}"}

    def _deserialize(self, data, *, error_store, many=False, partial=None, unknown=RAISE,
                     index=None):
        """marshmallow's loop over one object's fields, without the parts a request schema never
        uses (partial loading, dotted attributes, other `unknown` modes: for those, and for
        collections and non-objects, marshmallow's own loop runs). Same results and errors; on
        a 10,000-loan batch (some 200,000 values) marshmallow's per-field closure, partial
        checks and key splitting were a quarter of the reading time."""
        if many or partial is not None or unknown != RAISE or not isinstance(data, Mapping):
            return super()._deserialize(data, error_store=error_store, many=many,
                                        partial=partial, unknown=unknown, index=index)
        index = index if self.opts.index_errors else None
        values = self.dict_class()
        for name, key, field in self._load_plan:
            try:
                value = field.deserialize(data.get(name, missing), name, data)
            except ValidationError as error:
                error_store.store_error(error.messages, name, index=index)
                value = error.valid_data or missing
            if value is not missing:
                values[key] = value
        for key in data:
            if key not in self._load_names:
                error_store.store_error([self.error_messages["unknown"]], key, index)
        return values


def load(schema: Schema, raw: object, prefix: Path = ()) -> Any:
    """`schema.load(raw)`, or ONE `Invalid` listing every error with its path under `prefix`
    (for callers that hold JSON rather than an HTTP request: the CSV import, stored terms)."""
    try:
        return schema.load(raw)
    except ValidationError as error:
        raise_if_any(flatten_messages(error.messages, prefix))
        raise  # pragma: no cover - a ValidationError always carries messages


def _as_list(validators: Any) -> list:
    if validators is None:
        return []
    return list(validators) if isinstance(validators, (list, tuple)) else [validators]
