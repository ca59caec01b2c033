"""The Idempotency-Key machinery of API.md, usable by every POST, and the write transaction.

`@write(idempotency="required"|"optional")` wraps a view so that:
- the view runs inside ONE database transaction (retried on PostgreSQL 40001/40P01), and any
  error rolls everything back: a rejected request writes nothing;
- with an `Idempotency-Key` (<= 255 chars, scoped to the caller's institution), a successful
  (2xx) response is stored in that same transaction; the same key and the same request again
  returns the stored status and body with `Idempotent-Replayed: true`; the same key with a
  different body (or path) is 422; while the first request is still running, 409;
- `required` answers 400 when the header is missing (bank postings).
Failed requests are not stored: the caller may fix the request and retry with the same key.
The fingerprint is sha256 over method, path and the body (canonical JSON when JSON).
"""
from __future__ import annotations

import hashlib
import json
import threading
from functools import wraps

from flask import Response, g, make_response, request
from flask_smorest.utils import deepupdate
from sqlalchemy import text

from api.db import engine
from api.problems import problem
from ledger import idempotency as store
from ledger.db import is_postgres, run_in_transaction
from ledger.errors import Conflict

REPLAY_HEADER = "Idempotent-Replayed"
# Advisory-lock namespace for in-flight keys on PostgreSQL (an arbitrary constant: "IPLI").
INFLIGHT_LOCK_NS = 0x49504C49
_HOLD_KEY = text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:scope_key))")
_local_inflight: set[tuple[str, str]] = set()
_local_lock = threading.Lock()


class InFlight(Conflict):
    kind = "idempotency-key-in-flight"
    title = "Request with this Idempotency-Key is still in flight"


class _Rollback(Exception):
    """Carries a non-2xx response out of the transaction so that it is rolled back."""

    def __init__(self, response: Response):
        self.response = response


def fingerprint() -> str:
    raw = request.get_data(cache=True)
    if request.is_json and raw:
        try:
            raw = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass  # malformed JSON: the parser will reject it; hash the bytes meanwhile
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), raw):
        digest.update(part + b"\x00")
    return digest.hexdigest()


def _problem_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _openapi_doc(required: bool) -> dict:
    """What every POST says in the OpenAPI document about the machinery above."""
    header = {"in": "header", "name": "Idempotency-Key", "required": required,
              "schema": {"type": "string", "maxLength": store.MAX_KEY_LENGTH},
              "description": "Scoped to your institution, kept >= 30 days. Same key and body: the "
                             "first response again, with Idempotent-Replayed: true."}
    responses = {"409": _problem_response("Conflict, or a request with this Idempotency-Key is in flight"),
                 "422": _problem_response("or this Idempotency-Key was used with another body"),
                 "400": _problem_response("Idempotency-Key missing or malformed" if required
                                          else "Idempotency-Key malformed")}
    return {"parameters": [header], "responses": responses}


def write(idempotency: str = "optional"):
    assert idempotency in ("optional", "required")

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = request.headers.get("Idempotency-Key")
            if key is None:
                if idempotency == "required":
                    return problem(400, "Idempotency-Key required",
                                   "This posting needs an Idempotency-Key header so that retries are safe.",
                                   "idempotency-key-required")
                return _run(view, args, kwargs, None)
            if not 1 <= len(key) <= store.MAX_KEY_LENGTH or not key.isprintable():
                return problem(400, "Bad Idempotency-Key",
                               "Idempotency-Key must be 1-255 printable characters (no line breaks).", "bad-idempotency-key")
            return _run(view, args, kwargs, key)
        wrapper._apidoc = deepupdate(dict(getattr(view, "_apidoc", {})),
                                     {"manual_doc": _openapi_doc(idempotency == "required")})
        return wrapper
    return decorate


def _run(view, args, kwargs, key: str | None) -> Response:
    scope = g.principal.scope
    print_ = fingerprint() if key else None

    def work(conn):
        if key is not None:
            _hold_key(conn, scope, key)
            stored = store.find(conn, scope, key)
            if stored is not None:
                return _replay(stored, print_)
        g.tx_conn = conn
        try:
            response = make_response(view(*args, **kwargs))
        finally:
            g.tx_conn = None
        if not 200 <= response.status_code < 300:
            raise _Rollback(response)
        if key is not None:
            store.store(conn, scope, key, store.StoredOutcome(
                print_, request.method, request.path, response.status_code,
                response.get_data(as_text=True), response.headers.get("Location")))
        return response

    try:
        if key is not None and not is_postgres(engine()):
            with _local_key(scope, key):
                return run_in_transaction(engine(), work)
        return run_in_transaction(engine(), work)
    except _Rollback as rollback:
        return rollback.response


def _hold_key(conn, scope: str, key: str) -> None:
    """PostgreSQL: a transaction-scoped advisory lock marks the key in flight across workers."""
    if not is_postgres(conn):
        return
    held = conn.execute(_HOLD_KEY, {"ns": INFLIGHT_LOCK_NS, "scope_key": f"{scope}\n{key}"}).scalar_one()
    if not held:
        raise InFlight("A request with this Idempotency-Key is still being processed; retry shortly.")


class _local_key:
    """SQLite (one process): the in-flight set of this process."""

    def __init__(self, scope: str, key: str):
        self.item = (scope, key)

    def __enter__(self):
        with _local_lock:
            if self.item in _local_inflight:
                raise InFlight("A request with this Idempotency-Key is still being processed; retry shortly.")
            _local_inflight.add(self.item)

    def __exit__(self, *exc):
        with _local_lock:
            _local_inflight.discard(self.item)


def _replay(stored: store.StoredOutcome, print_: str) -> Response:
    if stored.fingerprint != print_:
        raise _Rollback(problem(
            422, "Idempotency-Key reused", "This Idempotency-Key was used for a different request "
            f"({stored.method} {stored.path} with another body); use a new key.", "idempotency-key-reused",
            [{"field": "Idempotency-Key", "message": "already used with another body"}]))
    response = Response(stored.body, status=stored.status_code, mimetype="application/json")
    response.headers[REPLAY_HEADER] = "true"
    if stored.location:
        response.headers["Location"] = stored.location
    return response
