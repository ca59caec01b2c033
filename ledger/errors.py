"""Domain errors: the expected, typed outcomes of a rule saying no.

A domain error is not a bug. `api/` maps each class to an HTTP status and an RFC 9457 problem;
jobs and the CLI print them. Bugs (a broken invariant) are `AssertionError` and crash loudly.

Every error carries a short `detail` for people and, for validation, a list of
`(field, message)` pairs so a bank integrator can see exactly which field to fix.

Field paths have one form everywhere (HTTP problems, the CLI, the CSV import's mapping back to
lines): names joined by dots, list positions in brackets, from the request body's top:
`terms.parties[1].caps.per_claim`, `loans[17].pledges[0].number`, or for a single loan
`pledges[0].number`. `path_text` writes that form, `path_parts` reads it back, and
`flatten_messages` turns marshmallow's nested error messages into `FieldError`s with it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Path = tuple  # of str (a key) and int (a list position)
SCHEMA_KEY = "_schema"  # marshmallow's key for an error on an object as a whole
BODY = "body"  # the path of an error on the request body itself
_PART_RE = re.compile(r"\[([0-9]+)\]|([^.\[\]]+)")


@dataclass(frozen=True)
class FieldError:
    """One rejected field: `field` is its path (`pledges[0].number`), `message` says why."""

    field: str
    message: str


def path_text(parts: Sequence[str | int]) -> str:
    """`("loans", 17, "pledges", 0, "number")` -> `"loans[17].pledges[0].number"`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or BODY


def path_parts(text: str) -> Path:
    """The inverse of `path_text`: `"loans[17].number"` -> `("loans", 17, "number")`."""
    if text == BODY:
        return ()
    return tuple(int(index) if index else name for index, name in _PART_RE.findall(text))


def flatten_messages(messages: object, prefix: Path = ()) -> list[FieldError]:
    """marshmallow's nested messages (`{"parties": {1: {"caps": {"per_claim": ["..."]}}}}`)
    -> `[FieldError("terms.parties[1].caps.per_claim", "...")]` under `prefix`, in order.

    An error on an object as a whole (marshmallow's `_schema` key) is reported on the object.
    List items come in their order (marshmallow adds an item's cross-field errors after every
    item's field errors); an object's fields in the schema's order.
    """
    if isinstance(messages, Mapping):
        out: list[FieldError] = []
        in_order = sorted(messages.items(), key=lambda item: (
            not isinstance(item[0], int), item[0] if isinstance(item[0], int) else 0))
        for key, value in in_order:
            part = () if key == SCHEMA_KEY else (key if isinstance(key, int) else str(key),)
            out.extend(flatten_messages(value, prefix + part))
        return out
    if isinstance(messages, (list, tuple)):
        return [error for item in messages for error in flatten_messages(item, prefix)]
    return [FieldError(path_text(prefix), str(messages))]


def messages_at(problems: Iterable[tuple[Path, str]]) -> dict:
    """`[(("parties", 2, "institution"), "...")]` -> marshmallow-shaped nested messages, the
    inverse of `flatten_messages` (for checks that report several paths at once)."""
    tree: dict = {}
    for parts, message in problems:
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
        node.setdefault(SCHEMA_KEY, []).append(message)
    return tree


def raise_if_any(errors: list[FieldError], summary: str = "validation failed") -> None:
    """One `Invalid` listing every error (its detail shows the first three), or nothing."""
    if errors:
        first = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise Invalid(f"{first}{more}" if first else summary, errors)


def with_article(noun: str) -> str:
    """`an auditor`, `an admin`, `a bank`: messages name roles and kinds with the right article."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


class DomainError(Exception):
    """Base of every expected refusal. `kind` is a stable slug used in the problem `type`."""

    kind = "domain-error"
    title = "Request refused"

    def __init__(self, detail: str, errors: list[FieldError] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])


class Invalid(DomainError):
    """The input breaks a rule of form or content (HTTP 422)."""

    kind = "validation-error"
    title = "Validation failed"

    @classmethod
    def field(cls, field: str, message: str) -> "Invalid":
        return cls(f"{field}: {message}", [FieldError(field, message)])


class Ineligible(Invalid):
    """The object exists and is well formed but a programme rule excludes it (HTTP 422)."""

    kind = "ineligible"
    title = "Not eligible"


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it does (HTTP 404)."""

    kind = "not-found"
    title = "Not found"


class Forbidden(DomainError):
    """The caller is known and may see the object, but this action is not theirs (HTTP 403):
    the maker of a subsidy batch approving it."""

    kind = "forbidden"
    title = "Forbidden"


class Conflict(DomainError):
    """The object is in a state that refuses this action, or a uniqueness rule (HTTP 409)."""

    kind = "conflict"
    title = "Conflict"


class CapExceeded(Conflict):
    """An amount would go past a limit the rules set (HTTP 409)."""

    kind = "cap-exceeded"
    title = "Cap exceeded"
