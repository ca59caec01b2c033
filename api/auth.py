"""Bearer-key authentication, roles and institution/region scoping.

Every `/v1` request needs `Authorization: Bearer <key>` (401 otherwise). A view states the
roles that may call it with `@require(...)` (403 otherwise). Objects of another institution are
reported as 404 by the views, so their existence is not disclosed.
"""
from __future__ import annotations

from functools import wraps

from flask import g, request
from flask_smorest.utils import deepupdate

from api.db import read
from api.openapi import ALL_ROLES_MARK, ROLES_MARK
from api.problems import problem
from ledger.errors import with_article
from ledger.identifiers import region_covers, region_prefix
from ledger.journal import Actor
from ledger.keys import Principal, authenticate_cached

ANY_ROLE = ("bank", "insurer", "guarantor", "pool", "fiscal", "auditor", "admin")
READ_EVERYTHING = ("admin",)
REGIONAL_READERS = ("fiscal", "auditor")


def authenticate_request():
    """before_request hook: sets g.principal for /v1 paths, or answers 401."""
    if not request.path.startswith("/v1/") and request.path != "/v1":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
    # Cached for a few seconds per process (ledger.keys: the revocation delay).
    principal = authenticate_cached(read, secret.strip())
    if principal is None:
        return _unauthorized("The API key is unknown or revoked.")
    g.principal = principal
    return None


def _unauthorized(detail: str):
    return problem(401, "Unauthorized", detail, "unauthorized",
                   headers={"WWW-Authenticate": 'Bearer realm="ipledger"'})


def principal() -> Principal:
    return g.principal


def actor() -> Actor:
    """The caller as the journal records it: key, institution, idempotency key."""
    who = g.principal
    return Actor(who.key_id, who.institution_id, request.headers.get("Idempotency-Key"))


def require(*roles: str):
    """Allow only these roles to call the view (403 for the others); the OpenAPI document
    lists the roles and, unless every role may call, the 403 (api.openapi)."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            who = g.get("principal")
            if who is None or who.role not in roles:
                role = who.role if who else "anonymous"
                return problem(403, "Forbidden", f"{with_article(role).capitalize()} key may not do this; "
                               f"allowed roles: {', '.join(roles)}.", "forbidden")
            return view(*args, **kwargs)
        wrapper.__dict__.setdefault("_ipledger_roles", roles)
        wrapper._apidoc = deepupdate(dict(getattr(view, "_apidoc", {})), {"manual_doc": {
            ROLES_MARK: list(roles), ALL_ROLES_MARK: list(ANY_ROLE)}})
        return wrapper
    return decorate


def sees_everything(who: Principal) -> bool:
    return who.role in READ_EVERYTHING or (who.role in REGIONAL_READERS and who.region == "000000")


def visible_region_prefix(who: Principal) -> str | None:
    """For fiscal/auditor keys, the region prefix they may read ('' = country); else None."""
    if who.role == "admin":
        return ""
    if who.role in REGIONAL_READERS:
        return region_prefix(who.region)
    return None


def may_see_region(who: Principal, region: str) -> bool:
    return who.role == "admin" or (who.role in REGIONAL_READERS and region_covers(who.region, region))
