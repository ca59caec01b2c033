"""Stored outcomes of idempotent requests, keyed by (scope, key).

Guarantees: an outcome is stored in the same transaction as the effect it describes, so a key
either has both or neither. `(scope, key)` is unique. Outcomes are kept at least
`RETENTION_DAYS` days; `purge_expired` removes older ones (the scheduler runs it daily).
This module stores opaque bytes; what they mean (HTTP, fingerprints) is the caller's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, insert, select

from ledger.db import utcnow
from ledger.schema import idempotency_keys

RETENTION_DAYS = 30
MAX_KEY_LENGTH = 255
# Built once, run with parameters: every POST runs both (no per-call construction, cache key).
_FIND = select(idempotency_keys).where(idempotency_keys.c.scope == bindparam("scope"),
                                       idempotency_keys.c.key == bindparam("key"))
_STORE = insert(idempotency_keys)


@dataclass(frozen=True)
class StoredOutcome:
    fingerprint: str
    method: str
    path: str
    status_code: int
    body: str
    location: str | None


def find(conn: Connection, scope: str, key: str) -> StoredOutcome | None:
    row = conn.execute(_FIND, {"scope": scope, "key": key}).first()
    if row is None:
        return None
    return StoredOutcome(row.fingerprint, row.method, row.path, row.status_code,
                         row.response_body, row.location)


def store(conn: Connection, scope: str, key: str, outcome: StoredOutcome) -> None:
    conn.execute(_STORE, {
        "scope": scope, "key": key, "fingerprint": outcome.fingerprint, "method": outcome.method,
        "path": outcome.path, "status_code": outcome.status_code, "response_body": outcome.body,
        "location": outcome.location, "created_at": utcnow()})


def purge_expired(conn: Connection, now: datetime | None = None,
                  retention_days: int = RETENTION_DAYS) -> int:
    """Delete outcomes older than the retention period; returns how many went."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)).rowcount
