"""Domain errors: the expected, typed outcomes of a rule saying no.

A domain error is not a bug. `api/` maps each class to an HTTP status and an RFC 9457 problem;
jobs and the CLI print them. Bugs (a broken invariant) are `AssertionError` and crash loudly.

Every error carries a short `detail` for people and, for validation, a list of
`(field, message)` pairs so a bank integrator can see exactly which field to fix.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One rejected field: `field` is a dotted path (`pledges.0.number`), `message` says why."""

    field: str
    message: str


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


class Conflict(DomainError):
    """The object is in a state that refuses this action, or a uniqueness rule (HTTP 409)."""

    kind = "conflict"
    title = "Conflict"


class CapExceeded(Conflict):
    """An amount would go past a limit the rules set (HTTP 409)."""

    kind = "cap-exceeded"
    title = "Cap exceeded"
