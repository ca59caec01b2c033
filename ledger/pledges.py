"""Pledges: the patent and trademark registrations that secure a loan.

Guarantees: every patent number has a valid check character and is stored in canonical form
(`ZL201710601862.3`); every trademark is 1-8 digits with a Nice class 1-45; a loan pledges
each registration at most once; a loan's pledge type is `patent`, `trademark` or `mixed`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.errors import FieldError
from ledger.identifiers import normalize_patent_number, normalize_trademark
from ledger.validation import MISSING, Fields

PLEDGE_FIELDS = ("kind", "number", "nice_class", "registration_no", "registered_on", "appraised_value")
MAX_PLEDGES_PER_LOAN = 50


@dataclass(frozen=True)
class Pledge:
    """One registration pledged. `nice_class` only for trademarks; value in fen if appraised."""

    kind: str
    number: str
    nice_class: int | None
    registration_no: str
    registered_on: date
    appraised_value_fen: int | None


def parse_pledges(raw: object, prefix: str, errors: list[FieldError]) -> list[Pledge]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PLEDGES_PER_LOAN:
        errors.append(FieldError(prefix, f"must list 1 to {MAX_PLEDGES_PER_LOAN} pledged registrations"))
        return []
    parsed = [parse_pledge(item, f"{prefix}.{i}", errors) for i, item in enumerate(raw)]
    seen: set[tuple] = set()
    for i, pledge in enumerate(parsed):
        if pledge is None:
            continue
        identity = (pledge.kind, pledge.number, pledge.nice_class)
        if identity in seen:
            errors.append(FieldError(f"{prefix}.{i}.number", "this registration is pledged twice"))
        seen.add(identity)
    return [p for p in parsed if p is not None]


def parse_pledge(raw: object, prefix: str, errors: list[FieldError]) -> Pledge | None:
    before = len(errors)
    f = Fields(raw, prefix, errors, PLEDGE_FIELDS)
    kind = f.choice("kind", ("patent", "trademark"))
    number, nice_class = _number(f, kind)
    registration_no = f.text("registration_no", 60)
    registered_on = f.day("registered_on")
    appraised = f.money("appraised_value", required=False)
    if len(errors) > before:
        return None
    return Pledge(kind, number, nice_class, registration_no, registered_on, appraised)


def _number(f: Fields, kind: str | None) -> tuple[str | None, int | None]:
    number = f.get("number")
    if kind == "patent":
        if f.raw.get("nice_class") is not None:
            f.add("nice_class", "only trademarks have a Nice class")
        if number is MISSING:
            return None, None
        canonical = f.run("number", normalize_patent_number, number)
        return (None if canonical is MISSING else canonical), None
    if kind == "trademark":
        nice_class = f.get("nice_class")
        if number is MISSING or nice_class is MISSING:
            return None, None
        try:
            return normalize_trademark(number, nice_class)
        except Exception as error:  # Invalid with fields `number` / `nice_class`
            for item in getattr(error, "errors", []):
                f.add(item.field, item.message)
            return None, None
    return None, None


def pledge_type(pledges: list[Pledge]) -> str:
    kinds = {p.kind for p in pledges}
    assert kinds, "a loan has at least one pledge"
    return "mixed" if len(kinds) > 1 else kinds.pop()
