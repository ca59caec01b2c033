"""Tamper evidence: the hash chain over journal entries, its sealing and the full verify.

Why sealing after commit: chaining at insert time would make every writer wait for the
previous entry's hash. Instead one sealer (the scheduler's job, or `ipledger verify --seal`)
takes committed, unsealed entries in id order and appends a seal for each:
    seal.hash = sha256(previous seal's hash + ":" + digest(entry and its postings))
Seal order (`seq`) is the chain order; an entry that commits late is simply sealed later.

`verify` guarantees to report: entry and posting counts; whether every entry is balanced (>= 2
postings, zero sum per currency); whether every seal still matches its entry and the seal
before it, with the first break; and how many entries await a seal (the unsealed tail).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Iterator

from sqlalchemy import Connection, func, insert, select, text

from ledger.db import as_utc, is_postgres, utcnow
from ledger.schema import entries, entry_seals, postings

GENESIS_HASH = "0" * 64
# Advisory-lock key for the one sealer at a time (an arbitrary constant: "IPLS").
SEALER_LOCK_KEY = 0x49504C53
DIGEST_ENTRY_FIELDS = ("id", "kind", "effective_on", "recorded_at", "actor_key_id",
                       "institution_id", "idempotency_key", "reverses_id", "memo", "loan_id")
VERIFY_CHUNK = 2000


def entry_digest(entry: dict, entry_postings: list) -> str:
    """sha256 over a canonical JSON of the entry's fields and its postings (in id order)."""
    content = {name: _canonical(entry.get(name)) for name in DIGEST_ENTRY_FIELDS}
    content["postings"] = [[p["id"], p["account_id"], p["amount_fen"], p["currency"]]
                           for p in sorted(entry_postings, key=lambda p: p["id"])]
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


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
    grouped: dict[int, list] = {entry_id: [] for entry_id in entry_ids}
    rows = conn.execute(select(postings).where(postings.c.entry_id.in_(entry_ids))).mappings()
    for row in rows:
        grouped[row["entry_id"]].append(dict(row))
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
                      "hash": prev_hash, "sealed_at": sealed_at})
    conn.execute(insert(entry_seals), seals)
    return len(seals)


# --- verify ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainBreak:
    """Where the chain first fails: the seal's position, its entry, and why."""

    seq: int
    entry_id: int
    reason: str


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

    def as_dict(self) -> dict:
        return asdict(self)


def verify(conn: Connection) -> Verification:
    """Recompute balance and the whole chain from the rows as they are now."""
    entry_count = conn.execute(select(func.count()).select_from(entries)).scalar_one()
    posting_count = conn.execute(select(func.count()).select_from(postings)).scalar_one()
    unbalanced = unbalanced_entry_ids(conn)
    sealed = conn.execute(select(func.count()).select_from(entry_seals)).scalar_one()
    first_break = find_first_break(conn)
    return Verification(entries=entry_count, postings=posting_count, balanced=not unbalanced,
                        unbalanced_entry_ids=unbalanced, chain_intact=first_break is None,
                        first_break=first_break, sealed=sealed, unsealed=entry_count - sealed)


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
        recomputed = chain_hash(expected_prev, entry_digest(entry, entry_postings))
        if recomputed != seal["hash"]:
            return ChainBreak(seal["seq"], seal["entry_id"],
                              "entry or its postings changed after sealing")
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
