"""The OpenAPI document tells the truth about every operation, so a generated client is usable.

- `Output` is the base of every response schema: each of its fields is always present (null
  where `allow_none`), so the document marks every field `required` (apispec renders
  `nullable: true` for `allow_none`). A field that may be absent says `metadata={"optional": True}`.
- `ErrorResponses`, an apispec plugin, documents on every operation the errors its shape can
  produce, so a new endpoint gets them without writing them: 400 (a NUL in the URL) everywhere;
  401 and 503 under /v1; 404 where the path names an object; 422 where a query or body is
  parsed; 413 and 415 where a body is read; 403 for the roles `@require` (api.auth) leaves out.
  Each is `application/problem+json`.
  Decorators mark what they add with `x-ipledger-*` keys that the plugin turns into the document.
- Response status keys are strings, merged when two decorators document the same status.
- `money_input` documents request money as API.md accepts it: a yuan string or a JSON integer;
  `null_or_object` makes a nullable nested object exactly "that object or null"; `null_in_enum`
  lets a nullable choice be null.
"""
from __future__ import annotations

from apispec import BasePlugin
from marshmallow import Schema
from marshmallow.utils import missing

from api.fields import Money
from ledger.money import MAX_YUAN

# ledger.fields.Money's own sentence on the request form starts so; a response says MONEY_OUT.
MONEY_FORMAT_START = "Yuan as a decimal string"
MONEY_OUT = "Yuan, a string with two decimals."
PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ROLES_MARK = "x-ipledger-roles"
ALL_ROLES_MARK = "x-ipledger-all-roles"


class Output(Schema):
    """A response body: every field is always present, so the document marks each required."""

    def on_bind_field(self, field_name, field_obj):
        if not field_obj.metadata.get("optional"):
            field_obj.required = True
        # Never loaded: a default (inherited from a request schema's field) is not documented.
        field_obj.load_default = missing


def money_input(self, field, ret, **kwargs) -> dict:
    """apispec attribute function, the one place money's form is documented: a money field of a
    request accepts what `ledger.money.parse_yuan` accepts, a string of yuan with at most two
    decimals or a JSON integer of yuan, each within 10^13 (API.md: Money; the field's own
    description says so); in a response it is always the two-decimal string."""
    if not isinstance(field, Money):
        return {}
    negative = field.allow_negative
    if isinstance(field.parent, Output):
        own = ret.get("description", "").split(MONEY_FORMAT_START, 1)[0].strip()
        return {"pattern": r"^-?[0-9]+\.[0-9]{2}$" if negative else r"^[0-9]+\.[0-9]{2}$",
                "description": f"{own} {MONEY_OUT}".strip()}
    for key in ("type", "pattern", "nullable"):  # each branch below says its own
        ret.pop(key, None)
    pattern = r"^-?[0-9]+(\.[0-9]{1,2})?$" if negative else r"^(-0+(\.0{1,2})?|[0-9]+(\.[0-9]{1,2})?)$"
    low = -MAX_YUAN if negative else (0 if field.allow_zero else 1)
    branches = [{"type": "string", "pattern": pattern},
                {"type": "integer", "minimum": low, "maximum": MAX_YUAN}]
    if field.allow_none:
        branches.append({"type": "string", "nullable": True, "enum": [None]})
    return {"oneOf": branches}


def null_or_object(self, field, ret, **kwargs) -> dict:
    """apispec attribute function: a nullable nested object is that object or null, exactly.
    apispec writes `anyOf: [{type: object, nullable: true}, {$ref}]`, which also admits any
    object (and generated clients grow a free-form type for it); the null branch is narrowed
    to `null` alone."""
    loose = {"type": "object", "nullable": True}
    if loose in ret.get("anyOf", []):
        ret["anyOf"] = [branch for branch in ret["anyOf"] if branch != loose] + [{**loose, "enum": [None]}]
    return {}


def null_in_enum(self, field, ret, **kwargs) -> dict:
    """apispec attribute function: a nullable choice lists null among its values (OpenAPI 3.0.3:
    `nullable` does not widen an `enum`), as the canonical terms write an absent choice."""
    if ret.get("nullable") and "enum" in ret and None not in ret["enum"]:
        return {"enum": [*ret["enum"], None]}
    return {}


def problem_response(description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}
    if headers:
        response["headers"] = headers
    return response


UNAUTHORIZED = problem_response("No API key, or one that is unknown or revoked (`Authorization: Bearer <key>`)",
                                {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}})
UNAVAILABLE = problem_response("The database connection was lost; nothing was written. Retry.",
                               {"Retry-After": {"schema": {"type": "integer"}}})
NOT_FOUND = problem_response("No such object, or one the caller may not see (existence is not disclosed)")
UNPROCESSABLE = problem_response("Validation failed: `errors` names each field and why")
NUL_IN_URL = problem_response("The path or query holds a NUL character")
BAD_BODY = problem_response("The body is not JSON, the path or query holds a NUL character, "
                            "or a header is malformed")
TOO_LARGE = problem_response("The body is larger than the service accepts")


def unsupported(media_types) -> dict:
    """415, naming the body types this operation reads (most read JSON only)."""
    return problem_response(f"The body is not {' or '.join(f'`{t}`' for t in media_types)}")


def forbidden(roles) -> dict:
    return problem_response(f"This key's role may not do this (allowed: {', '.join(roles)}), "
                            "or its institution or region may not act on this object")


class ErrorResponses(BasePlugin):
    """Documents the errors an operation can return from its shape (see the module docstring)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in operations.values():
            responses = _string_keys(operation.setdefault("responses", {}))
            roles = operation.pop(ROLES_MARK, None)
            all_roles = operation.pop(ALL_ROLES_MARK, None)
            for status, response in self._errors(path, operation, roles, all_roles).items():
                current = responses.get(status)  # absent, flask-smorest's bare ref, or a view's own
                responses[status] = _merge(response, current, join=True) if isinstance(current, dict) else response
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and isinstance(response, dict) \
                        and "content" not in response:
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
            responses.pop("default", None)  # every status is listed: nothing is left to a default
            operation["responses"] = dict(sorted(responses.items()))
            if roles:
                operation["description"] = _join(operation.get("description"), f"Roles: {', '.join(roles)}.")

    @staticmethod
    def _errors(path: str, operation: dict, roles, all_roles) -> dict:
        errors = {"400": NUL_IN_URL}  # api._refuse_nul, on every request
        if path.startswith("/v1"):
            errors.update({"401": UNAUTHORIZED, "503": UNAVAILABLE})
        if roles and set(roles) != set(all_roles or ()):
            errors["403"] = forbidden(roles)
        if "{" in path:
            errors["404"] = NOT_FOUND
        if "requestBody" in operation:
            media_types = list(operation["requestBody"].get("content") or ["application/json"])
            errors.update({"400": BAD_BODY, "413": TOO_LARGE, "415": unsupported(media_types),
                           "422": UNPROCESSABLE})
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            errors["422"] = UNPROCESSABLE
        return errors


def _string_keys(responses: dict) -> dict:
    """flask-smorest keys statuses by int, manual docs by str: one str key each, merged (a
    manual description replaces the decorator's default one)."""
    merged: dict = {}
    for status, response in responses.items():
        key = str(status)
        if isinstance(merged.get(key), dict) and isinstance(response, dict):
            merged[key] = _merge(merged[key], response, join=False)
        elif key not in merged or not isinstance(response, str):
            merged[key] = response
    return merged


def _merge(first: dict, second: dict, *, join: bool) -> dict:
    out = {**first, **second}
    if join and first.get("description") and second.get("description") \
            and second["description"] not in first["description"]:
        out["description"] = f"{first['description']}; {second['description']}"
    for part in ("content", "headers"):
        if part in first or part in second:
            out[part] = {**first.get(part, {}), **second.get(part, {})}
    return out


def _join(first: str | None, second: str) -> str:
    return f"{first}\n\n{second}" if first else second
