"""Tamper evidence: the hash chain over journal entries, its sealing, its head and the full verify.

Why sealing after commit: chaining at insert time would make every writer wait for the
previous entry's hash. Instead one sealer (the scheduler's job, or `ipledger verify --seal`)
takes committed, unsealed entries in id order and appends a seal for each:
    seal.hash = sha256(previous seal's hash + ":" + digest(entry, its postings, their accounts))
Seal order (`seq`) is the chain order; an entry that commits late is simply sealed later.

Digest versions (`entry_seals.digest_version`): 1, written before migration 0003, covers the
entry's fields and its postings; 2 also covers each posting's account identity
(`DIGEST_ACCOUNT_FIELDS`), so moving an account to another owner or loan breaks the chain at
the first entry posted to it. Each seal is verified with the version it was written with, so a
book sealed before the upgrade still verifies. In an account's identity a NULL field is left
out: a column added later (a claim's `claim_id`) joins `DIGEST_ACCOUNT_FIELDS` without
changing any existing digest.

The head (`head`) is the last seal. Anyone able to switch the database's triggers off can
rewrite rows and recompute every seal, so an intact chain alone proves nothing about the past:
an auditor writes the head down (`SEQ:HASH`), and `verify(conn, expect=(seq, hash))` later
proves the book still extends it.

`verify` guarantees to report: entry and posting counts; whether every entry is balanced (>= 2
postings, zero sum per currency); whether every seal still matches its entry and the seal
before it, with the first break; how many entries await a seal (the unsealed tail); the head;
and, when asked, whether the book extends an expected head (the seal at that position has that
hash and the whole chain is intact).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import Connection, func, insert, select, text

from ledger.db import as_utc, is_postgres, utcnow
from ledger.errors import Invalid
from ledger.schema import accounts, entries, entry_seals, postings

GENESIS_HASH = "0" * 64
# Advisory-lock key for the one sealer at a time (an arbitrary constant: "IPLS").
SEALER_LOCK_KEY = 0x49504C53
DIGEST_VERSION = 2
DIGEST_VERSIONS = (1, 2)
DIGEST_ENTRY_FIELDS = ("id", "kind", "effective_on", "recorded_at", "actor_key_id",
                       "institution_id", "idempotency_key", "reverses_id", "memo", "loan_id")
DIGEST_ACCOUNT_FIELDS = ("code", "kind", "purpose", "currency", "institution_id", "borrower_id",
                         "program_id", "loan_id")
VERIFY_CHUNK = 2000
MAX_SEQ = 2**63 - 1
HEAD_PATTERN = re.compile(r"\s*([0-9]{1,19}):([0-9a-fA-F]{64})\s*", re.ASCII)


def entry_digest(entry: dict, entry_postings: list, version: int = DIGEST_VERSION) -> str:
    """sha256 over a canonical JSON of the entry's fields and its postings (in id order); from
    version 2 each posting carries its account's identity (`posting["account"]`)."""
    assert version in DIGEST_VERSIONS, f"unknown digest version {version}"
    content = {name: _canonical(entry.get(name)) for name in DIGEST_ENTRY_FIELDS}
    lines = []
    for p in sorted(entry_postings, key=lambda p: p["id"]):
        line = [p["id"], p["account_id"], p["amount_fen"], p["currency"]]
        lines.append(line if version == 1 else line + [p["account"]])
    content["postings"] = lines
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def account_identity(row: dict) -> dict:
    """What an account is, for the digest: its non-NULL identity fields."""
    return {name: row[name] for name in DIGEST_ACCOUNT_FIELDS if row.get(name) is not None}


def _canonical(value):
    if value is None or isinstance(value, (int, str)):
        return value
    if hasattr(value, "hour"):  # datetime: UTC to the microsecond, whatever the driver returns
        return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat()  # date


def chain_hash(prev_hash: str, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}:{digest}".encode()).hexdigest()


def _entry_columns():
    return [c for c in entries.c if c.name in DIGEST_ENTRY_FIELDS]


def _postings_by_entry(conn: Connection, entry_ids: list[int]) -> dict[int, list]:
    """Each entry's postings, each with its account's identity (`{}` if the account is gone)."""
    grouped: dict[int, list] = {entry_id: [] for entry_id in entry_ids}
    account_columns = [accounts.c[name].label(f"account_{name}") for name in DIGEST_ACCOUNT_FIELDS]
    rows = conn.execute(
        select(postings.c.id, postings.c.entry_id, postings.c.account_id, postings.c.amount_fen,
               postings.c.currency, *account_columns)
        .outerjoin(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.entry_id.in_(entry_ids))).mappings()
    identities: dict[int, dict] = {}  # accounts recur across postings: build each once
    for row in rows:
        account = identities.get(row["account_id"])
        if account is None:
            account = identities[row["account_id"]] = account_identity(
                {name: row[f"account_{name}"] for name in DIGEST_ACCOUNT_FIELDS})
        grouped[row["entry_id"]].append({"id": row["id"], "account_id": row["account_id"],
                                         "amount_fen": row["amount_fen"],
                                         "currency": row["currency"], "account": account})
    return grouped


# --- sealing --------------------------------------------------------------------------------

def seal_pending(conn: Connection, limit: int = 5000) -> int:
    """Seal up to `limit` committed, unsealed entries, in id order. Returns how many were sealed."""
    if is_postgres(conn):
        # One sealer at a time; a second waits and then sees the first one's seals.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY})
    last = conn.execute(select(entry_seals.c.seq, entry_seals.c.hash)
                        .order_by(entry_seals.c.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    pending = conn.execute(
        select(*_entry_columns()).outerjoin(entry_seals, entry_seals.c.entry_id == entries.c.id)
        .where(entry_seals.c.entry_id.is_(None)).order_by(entries.c.id).limit(limit)).mappings().all()
    if not pending:
        return 0
    grouped = _postings_by_entry(conn, [row["id"] for row in pending])
    sealed_at = utcnow()
    seals = []
    for row in pending:
        seq += 1
        prev_hash_for_row = prev_hash
        prev_hash = chain_hash(prev_hash, entry_digest(dict(row), grouped[row["id"]]))
        seals.append({"entry_id": row["id"], "seq": seq, "prev_hash": prev_hash_for_row,
                      "hash": prev_hash, "sealed_at": sealed_at, "digest_version": DIGEST_VERSION})
    conn.execute(insert(entry_seals), seals)
    return len(seals)


# --- the head -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """The last seal: what an auditor writes down (`anchor`, i.e. `SEQ:HASH`)."""

    seq: int
    hash: str
    entry_id: int
    sealed_at: datetime

    @property
    def anchor(self) -> str:
        return f"{self.seq}:{self.hash}"

    def as_dict(self) -> dict:
        return {**asdict(self), "anchor": self.anchor}


def head(conn: Connection) -> Head | None:
    """The chain's last seal, or None while nothing is sealed."""
    row = conn.execute(select(entry_seals.c.seq, entry_seals.c.hash, entry_seals.c.entry_id,
                              entry_seals.c.sealed_at)
                       .order_by(entry_seals.c.seq.desc()).limit(1)).first()
    return None if row is None else Head(row.seq, row.hash, row.entry_id, row.sealed_at)


def parse_head(written: str, field: str = "expect") -> tuple[int, str]:
    """`SEQ:HASH` as `head().anchor` writes it -> (seq, lowercase hash); Invalid otherwise."""
    match = HEAD_PATTERN.fullmatch(written) if isinstance(written, str) else None
    seq = int(match.group(1)) if match else 0
    if not 1 <= seq <= MAX_SEQ:
        raise Invalid.field(field, "a chain head is written SEQ:HASH: the seal's position (1 or "
                                   "more), a colon and its 64 hexadecimal digits, as "
                                   "GET /v1/audit/head gives it")
    return seq, match.group(2).lower()


# --- verify ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainBreak:
    """Where the chain first fails: the seal's position, its entry, and why."""

    seq: int
    entry_id: int
    reason: str


@dataclass(frozen=True)
class Expectation:
    """Whether the book still extends a head written down earlier, and if not, why."""

    seq: int
    hash: str
    extends: bool
    reason: str | None


@dataclass(frozen=True)
class Verification:
    entries: int
    postings: int
    balanced: bool
    unbalanced_entry_ids: list[int]
    chain_intact: bool
    first_break: ChainBreak | None
    sealed: int
    unsealed: int
    head: Head | None
    expect: Expectation | None

    def as_dict(self) -> dict:
        return {**asdict(self), "head": self.head.as_dict() if self.head else None}


def verify(conn: Connection, expect: tuple[int, str] | None = None) -> Verification:
    """Recompute balance and the whole chain from the rows as they are now; with `expect`
    (seq, hash), also whether the book still extends that head.

    All figures come from one snapshot: on PostgreSQL a connection not yet in a transaction is
    switched to REPEATABLE READ (READ COMMITTED would let an entry sealed half-way through show
    in the head but not in the counts); SQLite's read transaction is one snapshot already."""
    if conn.dialect.name == "postgresql" and not conn.in_transaction():
        conn.execution_options(isolation_level="REPEATABLE READ")
    entry_count = conn.execute(select(func.count()).select_from(entries)).scalar_one()
    posting_count = conn.execute(select(func.count()).select_from(postings)).scalar_one()
    unbalanced = unbalanced_entry_ids(conn)
    sealed = conn.execute(select(func.count()).select_from(entry_seals)).scalar_one()
    first_break = find_first_break(conn)
    last = head(conn)
    expectation = None if expect is None else _extends(conn, expect, first_break, last)
    return Verification(entries=entry_count, postings=posting_count, balanced=not unbalanced,
                        unbalanced_entry_ids=unbalanced, chain_intact=first_break is None,
                        first_break=first_break, sealed=sealed, unsealed=entry_count - sealed,
                        head=last, expect=expectation)


def _extends(conn: Connection, expect: tuple[int, str], first_break: ChainBreak | None,
             last: Head | None) -> Expectation:
    """An intact chain whose seal at `seq` has `hash`: then the book up to that seal is the one
    the head was written from (the chain recomputes each hash from content), and it goes on."""
    seq, expected_hash = expect
    found = conn.execute(select(entry_seals.c.hash).where(entry_seals.c.seq == seq)).scalar()
    if first_break is not None:
        reason = f"the chain is broken at seal {first_break.seq}: it proves nothing"
    elif found is None:
        reason = f"no seal {seq}: the chain has {last.seq if last else 0} seals"
    elif found != expected_hash:
        reason = (f"the seal at {seq} has another hash ({found}): the book up to it was "
                  "rewritten and resealed")
    else:
        reason = None
    return Expectation(seq=seq, hash=expected_hash, extends=reason is None, reason=reason)


def unbalanced_entry_ids(conn: Connection, limit: int = 20) -> list[int]:
    """Entries with fewer than two postings or a non-zero sum in some currency (first `limit`)."""
    per_currency = (select(postings.c.entry_id).group_by(postings.c.entry_id, postings.c.currency)
                    .having(func.sum(postings.c.amount_fen) != 0))
    counts = (select(postings.c.entry_id, func.count().label("n"))
              .group_by(postings.c.entry_id).subquery())
    too_few = (select(entries.c.id).outerjoin(counts, counts.c.entry_id == entries.c.id)
               .where(func.coalesce(counts.c.n, 0) < 2))
    ids = {row[0] for row in conn.execute(per_currency.limit(limit))}
    ids |= {row[0] for row in conn.execute(too_few.limit(limit))}
    return sorted(ids)[:limit]


CHANGED_AFTER_SEALING = {
    1: "the entry or its postings changed after sealing",
    2: "the entry, its postings or the accounts they post to changed after sealing",
}


def find_first_break(conn: Connection) -> ChainBreak | None:
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for seal, entry, entry_postings in _walk_seals(conn):
        if seal["seq"] != expected_seq:
            return ChainBreak(seal["seq"], seal["entry_id"], f"seal {expected_seq} is missing")
        if seal["prev_hash"] != expected_prev:
            return ChainBreak(seal["seq"], seal["entry_id"], "previous hash does not match")
        if entry is None:
            return ChainBreak(seal["seq"], seal["entry_id"], "sealed entry is missing")
        version = seal["digest_version"]
        if version not in DIGEST_VERSIONS:
            return ChainBreak(seal["seq"], seal["entry_id"], f"unknown digest version {version}")
        recomputed = chain_hash(expected_prev, entry_digest(entry, entry_postings, version))
        if recomputed != seal["hash"]:
            return ChainBreak(seal["seq"], seal["entry_id"], CHANGED_AFTER_SEALING[version])
        expected_prev, expected_seq = seal["hash"], expected_seq + 1
    return None


def _walk_seals(conn: Connection) -> Iterator[tuple[dict, dict | None, list]]:
    after_seq = 0
    while True:
        seals = conn.execute(select(entry_seals).where(entry_seals.c.seq > after_seq)
                             .order_by(entry_seals.c.seq).limit(VERIFY_CHUNK)).mappings().all()
        if not seals:
            return
        ids = [seal["entry_id"] for seal in seals]
        rows = conn.execute(select(*_entry_columns()).where(entries.c.id.in_(ids))).mappings()
        by_id = {row["id"]: dict(row) for row in rows}
        grouped = _postings_by_entry(conn, ids)
        for seal in seals:
            yield dict(seal), by_id.get(seal["entry_id"]), grouped[seal["entry_id"]]
        after_seq = seals[-1]["seq"]
