"""API keys: who may call, in which role, for which institution.

Guarantees: a key's secret is random (256 bits), shown once at creation and never stored; only
its sha256 is kept (the secret has full entropy, so a slow hash adds nothing). A key is found by
its public prefix and compared in constant time. A revoked key never authenticates again
(after the cache delay below).
A platform `admin` key belongs to no institution; every other key's role is its institution's
kind (a bank's key acts as `bank`, a fiscal bureau's as `fiscal`...).

`authenticate_cached` keeps a key's principal for `KEY_CACHE_SECONDS` (5 s) in this process, so a
busy client's key is looked up once per interval, not on every request. The price is a revocation
delay: a key revoked elsewhere (another worker, host or `ipledger keys revoke` process) still
authenticates here for at most `KEY_CACHE_SECONDS`; `revoke_key` forgets it in its own process at
once. Unknown or revoked keys are never cached (a stranger cannot fill the cache).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import Connection, insert, select, update

from ledger.db import utcnow
from ledger.errors import Invalid, NotFound, with_article
from ledger.institutions import get_institution
from ledger.schema import ROLES, api_keys, institutions

KEY_PREFIX = "ipl"
COUNTRY = "000000"
# How long a principal is trusted without a look-up: the revocation delay (docs/OPERATING.md "Keys").
KEY_CACHE_SECONDS = float(os.environ.get("IPLEDGER_KEY_CACHE_SECONDS", "5"))
KEY_CACHE_MAX = 10_000  # keys; the cache starts over when full rather than grow without bound


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `region` is what a fiscal or auditor key may see."""

    key_id: int
    prefix: str
    role: str
    institution_id: int | None
    institution_code: str | None
    region: str

    @property
    def scope(self) -> str:
        """The idempotency-key scope: the institution, or the platform for admin keys."""
        return f"inst:{self.institution_id}" if self.institution_id else "platform"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(conn: Connection, role: str, institution_code: str | None = None,
               label: str | None = None) -> tuple[str, str]:
    """Create a key; returns (prefix, full secret). The secret is not recoverable later."""
    if role not in ROLES:
        raise Invalid.field("role", f"must be one of {', '.join(ROLES)}")
    institution_id = None
    if role == "admin":
        if institution_code:
            raise Invalid.field("institution", "an admin key belongs to no institution")
    else:
        if not institution_code:
            raise Invalid.field("institution", f"{with_article(role)} key needs an institution")
        institution = get_institution(conn, institution_code)
        if institution.kind != role:
            raise Invalid.field("role", f"{institution.code} is {with_article(institution.kind)}; "
                                        f"its keys act as {institution.kind}")
        institution_id = institution.id
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    conn.execute(insert(api_keys).values(prefix=prefix, key_hash=_hash(secret), role=role,
                                         institution_id=institution_id, label=label,
                                         created_at=utcnow()))
    return prefix, secret


def revoke_key(conn: Connection, prefix: str) -> None:
    """Revoke the active key with this whole prefix. A shorter text is refused, never taken as
    an abbreviation (revoking is final), saying which active keys start with it."""
    if not _is_prefix(prefix):
        raise Invalid.field("prefix", _not_a_prefix(conn, prefix))
    done = conn.execute(update(api_keys).where(api_keys.c.prefix == prefix,
                                               api_keys.c.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
    if done.rowcount != 1:
        raise NotFound(f"no active key with prefix {prefix}")
    principals.forget(prefix)


def _not_a_prefix(conn: Connection, text: str) -> str:
    message = f"a key's prefix is the 8 hexadecimal characters after '{KEY_PREFIX}_'; '{text}' is not one"
    if not text or len(text) >= 8 or any(c not in "0123456789abcdef" for c in text):
        return message
    starting = [row.prefix for row in conn.execute(
        select(api_keys.c.prefix).where(api_keys.c.prefix.startswith(text), api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.prefix))]
    if len(starting) > 1:
        return f"'{text}' is too short and ambiguous: active keys {', '.join(starting)} start with it"
    if starting:
        return f"'{text}' is too short: give the whole prefix ({starting[0]} is the active key starting with it)"
    return f"'{text}' is too short, and no active key starts with it"


def _is_prefix(text: str) -> bool:
    return len(text) == 8 and all(c in "0123456789abcdef" for c in text)


def authenticate(conn: Connection, secret: str) -> Principal | None:
    """The principal for a presented secret, or None if unknown, malformed or revoked."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not _is_prefix(parts[1]):
        return None
    row = conn.execute(_key_rows().where(api_keys.c.prefix == parts[1])).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, _hash(secret)):
        return None
    return _principal(row)


class PrincipalCache:
    """Principals by the sha256 of their secret, each trusted for `ttl_s` seconds (thread-safe).
    Keyed by the whole secret's hash: another secret with the same prefix never hits."""

    def __init__(self, ttl_s: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = KEY_CACHE_MAX):
        self.ttl_s, self.clock, self.max_entries = ttl_s, clock, max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, key_hash: str) -> Principal | None:
        with self._lock:
            found = self._entries.get(key_hash)
            if found is None:
                return None
            if self.clock() >= found[1]:
                del self._entries[key_hash]
                return None
            return found[0]

    def put(self, key_hash: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_hash] = (principal, self.clock() + self.ttl_s)

    def forget(self, prefix: str) -> None:
        """Drop the key with this prefix (revoked in this process: it stops at once here)."""
        with self._lock:
            for key_hash in [h for h, (p, _) in self._entries.items() if p.prefix == prefix]:
                del self._entries[key_hash]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


principals = PrincipalCache()


def authenticate_cached(connect: Callable, secret: str) -> Principal | None:
    """`authenticate` through this process's `principals` cache; `connect()` gives a context
    manager yielding a connection, opened only on a miss (a hit costs no database call)."""
    key_hash = _hash(secret)
    principal = principals.get(key_hash)
    if principal is not None:
        return principal
    with connect() as conn:
        principal = authenticate(conn, secret)
    if principal is not None:
        principals.put(key_hash, principal)
    return principal


def active_principal(conn: Connection, key_id: int, prefix: str) -> Principal | None:
    """The principal of a key a signed-in dashboard session names (by id and prefix, never by
    its secret), or None once it is revoked: a revoked key's session ends on its next request."""
    row = conn.execute(_key_rows().where(api_keys.c.id == key_id, api_keys.c.prefix == prefix)).first()
    if row is None or row.revoked_at is not None:
        return None
    return _principal(row)


def _key_rows():
    return (select(api_keys, institutions.c.code, institutions.c.region)
            .outerjoin(institutions, institutions.c.id == api_keys.c.institution_id))


def _principal(row) -> Principal:
    return Principal(row.id, row.prefix, row.role, row.institution_id, row.code, row.region or COUNTRY)


def list_keys(conn: Connection) -> list[dict]:
    rows = conn.execute(select(api_keys.c.prefix, api_keys.c.role, api_keys.c.label,
                               api_keys.c.created_at, api_keys.c.revoked_at, institutions.c.code)
                        .outerjoin(institutions, institutions.c.id == api_keys.c.institution_id)
                        .order_by(api_keys.c.id))
    return [dict(row._mapping) for row in rows]
