"""Pledges: the patent and trademark registrations that secure a loan.

Owns the `pledges` items of a loan (`POST /v1/loans`, the batch, the CSV import): the `Pledge`
value, the request schema `PledgeIn` that reads one, and the rules across its fields.

Guarantees: every patent number has a valid check character and is stored in canonical form
(`ZL201710601862.3`); every trademark is 1-8 digits with a Nice class 1-45 (a patent has no
class); a loan pledges each registration at most once (`duplicate_problems`, checked by the
loan); a loan's pledge type is `patent`, `trademark` or `mixed`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema

from ledger.errors import Invalid, Path, messages_at
from ledger.fields import Choice, Day, Integer, Money, RequestSchema, Text
from ledger.identifiers import (NICE_CLASS_MAX, NICE_CLASS_MIN, normalize_patent_number,
                                normalize_trademark)

PLEDGE_KINDS = ("patent", "trademark")
MAX_PLEDGES_PER_LOAN = 50
NICE_CLASS_MESSAGE = f"must be an integer Nice class {NICE_CLASS_MIN} to {NICE_CLASS_MAX}"


@dataclass(frozen=True)
class Pledge:
    """One registration pledged. `nice_class` only for trademarks; value in fen if appraised."""

    kind: str
    number: str
    nice_class: int | None
    registration_no: str
    registered_on: date
    appraised_value_fen: int | None


@lru_cache(maxsize=256)
def canonical_registration(kind: str, number: str, nice_class: int | None) -> tuple[str, int | None]:
    """(number, nice_class) in canonical form for `kind`, or `Invalid` naming `number` or
    `nice_class`. Memoised (pure): `PledgeIn` checks a number with it and then builds the
    `Pledge` with the same call, a few pledges later."""
    if kind == "patent":
        return normalize_patent_number(number, "number"), None
    return normalize_trademark(number, nice_class)


def pledge_problems(pledge: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """One pledge, over the fields that loaded: the number's form depends on the kind, and only
    a trademark has (and must have) a Nice class."""
    kind, number = pledge.get("kind"), pledge.get("number")
    if kind is None:
        return []
    if kind == "patent" and pledge.get("nice_class") is not None:
        return [(("nice_class",), "only trademarks have a Nice class")]
    if kind == "trademark" and "nice_class" in pledge and pledge["nice_class"] is None:
        return [(("nice_class",), f"is required for a trademark: {NICE_CLASS_MESSAGE}")]
    if number is None or "nice_class" not in pledge:
        return []
    try:
        canonical_registration(kind, number, pledge["nice_class"])
    except Invalid as error:
        return [((item.field,), item.message) for item in error.errors]
    return []


def duplicate_problems(pledges: Sequence[Pledge]) -> list[tuple[Path, str]]:
    """A loan pledges each registration once (after canonical spelling)."""
    problems, seen = [], set()
    for index, pledge in enumerate(pledges):
        identity = (pledge.kind, pledge.number, pledge.nice_class)
        if identity in seen:
            problems.append((("pledges", index, "number"), "this registration is pledged twice"))
        seen.add(identity)
    return problems


def pledge_type(pledges: Sequence[Pledge]) -> str:
    kinds = {p.kind for p in pledges}
    assert kinds, "a loan has at least one pledge"
    return "mixed" if len(kinds) > 1 else kinds.pop()


class PledgeIn(RequestSchema):
    """One pledged registration of a loan (API.md "Loans")."""

    kind = Choice(PLEDGE_KINDS, required=True)
    number = Text(40, required=True, metadata={
        "example": "ZL201710601862.3",
        "description": "patent: ZL201710601862.3, 201710601862.3 or pre-2004 ZL95115608.X "
                       "(check character verified; stored with ZL); trademark: 1-8 digits"})
    nice_class = Integer(low=NICE_CLASS_MIN, high=NICE_CLASS_MAX, allow_none=True,
                         load_default=None,
                         error_messages={"invalid": NICE_CLASS_MESSAGE, "null": NICE_CLASS_MESSAGE,
                                         "range": NICE_CLASS_MESSAGE},
                         metadata={"description": "trademarks only (required for them): the "
                                                  "Nice class 1-45"})
    registration_no = Text(60, required=True, metadata={"example": "Y2025440000123"})
    registered_on = Day(required=True)
    appraised_value = Money(attribute="appraised_value_fen", allow_none=True, load_default=None)

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, values: dict, **kwargs: Any) -> None:
        problems = pledge_problems(values)
        if problems:
            raise ValidationError(messages_at(problems))

    @post_load
    def _value(self, values: dict, **kwargs: Any) -> Pledge:
        number, nice_class = canonical_registration(values["kind"], values["number"],
                                                    values["nice_class"])
        return Pledge(values["kind"], number, nice_class, values["registration_no"],
                      values["registered_on"], values["appraised_value_fen"])
