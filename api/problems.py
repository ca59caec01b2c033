"""RFC 9457 problem details for every error the service returns.

Every error response is `application/problem+json` with `type`, `title`, `status`, `detail`,
`request_id`, and for validation an `errors` list of `{field, message}`. No stack trace ever
reaches a client: an unexpected exception is logged with its request id and answered with 500.
"""
from __future__ import annotations

import json
import logging

from flask import Response, current_app, g
from marshmallow import fields
from werkzeug.exceptions import HTTPException

from api.openapi import Output
from ledger.errors import SCHEMA_KEY, Conflict, DomainError, Forbidden, Invalid, NotFound
from ledger.errors import flatten_messages as ledger_flatten

log = logging.getLogger("ipledger.api")
PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:ipledger:problem:"
DOMAIN_STATUS = ((NotFound, 404), (Forbidden, 403), (Conflict, 409), (Invalid, 422), (DomainError, 422))


class FieldErrorSchema(Output):
    field = fields.String(metadata={
        "example": "pledges[0].number",
        "description": "the path from the body's top: names joined by dots, list positions in "
                       "brackets (terms.parties[1].caps.per_claim, loans[17].pledges[0].number); "
                       "query-string fields start with query. (query.limit); body: the whole body"})
    message = fields.String(metadata={"example": "check character should be '3', got '4'"})


class ProblemSchema(Output):
    """RFC 9457 problem details."""

    class Meta:
        name = "Problem"

    type = fields.String(metadata={"example": "urn:ipledger:problem:validation-error",
                                   "description": "urn:ipledger:problem:<slug>; the slug is stable"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    request_id = fields.String(allow_none=True, metadata={"description": "quote it when reporting a problem"})
    errors = fields.List(fields.Nested(FieldErrorSchema),
                         metadata={"description": "validation only: each rejected field and why",
                                   "optional": True})


# The slug of errors that carry no kind of their own (HTTP-level refusals, abort()s): one
# `urn:ipledger:problem:` scheme for every error, never about:blank.
STATUS_KINDS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                405: "method-not-allowed", 406: "not-acceptable", 409: "conflict",
                413: "request-too-large", 415: "unsupported-media-type", 422: "validation-error",
                500: "internal-error", 503: "unavailable"}


def kind_for_status(status: int) -> str:
    return STATUS_KINDS.get(status) or f"http-{status}"


def problem(status: int, title: str, detail: str, kind: str | None = None,
            errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body = {"type": f"{TYPE_PREFIX}{kind or kind_for_status(status)}", "title": title,
            "status": status, "detail": detail, "request_id": g.get("request_id")}
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain_error(error: DomainError) -> Response:
    status = next(code for cls, code in DOMAIN_STATUS if isinstance(error, cls))
    errors = [{"field": e.field, "message": e.message} for e in error.errors]
    return problem(status, error.title, error.detail, error.kind, errors or None)


def from_http_exception(error: HTTPException) -> Response:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if error.code == 422 and messages:
        errors = flatten_messages(messages)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, "Validation failed", detail, "validation-error", errors)
    if error.code == 400 and messages:
        errors = flatten_messages(messages)
        return problem(400, "Bad request", errors[0]["message"] if errors else error.description,
                       "bad-request", errors)
    if error.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        return problem(413, "Request body too large", f"The body is larger than the {limit:,} bytes "
                       "this service accepts; send a large book in several batches.", "request-too-large")
    headers = dict(data.get("headers") or {})
    if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem(error.code or 500, error.name, data.get("message") or error.description,
                   None, headers=headers)


def flatten_messages(messages) -> list[dict]:
    """webargs/marshmallow nested messages -> [{field, message}] with paths in the one form of
    `ledger.errors` (`loans[17].pledges[0].number`).

    The request location webargs adds is dropped for the body (`json`) and kept for the others,
    so a bank sees `pledges[0].number` for a body field and `query.limit` for a query one.
    """
    if isinstance(messages, dict) and "json" in messages:
        body = messages["json"]
        messages = {**{key: value for key, value in messages.items() if key != "json"},
                    **(body if isinstance(body, dict) else {SCHEMA_KEY: body})}
    return [{"field": error.field, "message": error.message}
            for error in ledger_flatten(messages)]


def unexpected(error: Exception) -> Response:
    log.exception("unhandled error (request_id=%s)", g.get("request_id"))
    return problem(500, "Internal Server Error",
                   "The server failed to handle this request; quote the request_id when reporting it.")
