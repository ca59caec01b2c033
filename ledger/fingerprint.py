"""A book's fingerprint: what a restored copy must reproduce exactly.

The restore drill (docs/OPERATING.md) takes the fingerprint of the live database, restores a
backup into a new one, and compares: the chain head (sequence and hash: the restored book is
the one the head was sealed from, since every hash is recomputed from content by `verify`), the
row count of every table, and every account's balance. Balances are summed from the postings
themselves, per account and currency, and folded into one sha256 so the fingerprint stays a
few lines however large the book.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import Connection, func, select

from ledger import chain
from ledger.schema import metadata, postings


def book_fingerprint(conn: Connection) -> dict:
    """Head, verification, per-table row counts and the balances digest, as plain JSON data."""
    proof = chain.verify(conn)
    balances = _balances(conn)
    return {
        "head": proof.head.anchor if proof.head else None,
        "entries": proof.entries,
        "postings": proof.postings,
        "balanced": proof.balanced,
        "chain_intact": proof.chain_intact,
        "unsealed": proof.unsealed,
        "tables": {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                   for table in metadata.sorted_tables},
        "accounts_with_postings": len(balances),
        "balances_sha256": _digest(balances),
    }


def fingerprint_differences(expected: dict, actual: dict) -> list[str]:
    """Each figure of `expected` that `actual` does not reproduce, as a sentence."""
    differences = []
    for name, want in expected.items():
        have = actual.get(name)
        if isinstance(want, dict):
            differences += [f"{name}.{key}: {value} expected, {(have or {}).get(key)} found"
                            for key, value in want.items() if (have or {}).get(key) != value]
        elif have != want:
            differences.append(f"{name}: {want} expected, {have} found")
    return differences


def _balances(conn: Connection) -> list[tuple[int, str, int]]:
    rows = conn.execute(select(postings.c.account_id, postings.c.currency, func.sum(postings.c.amount_fen))
                        .group_by(postings.c.account_id, postings.c.currency)
                        .order_by(postings.c.account_id, postings.c.currency))
    return [(account_id, currency, int(total)) for account_id, currency, total in rows]


def _digest(balances: list[tuple[int, str, int]]) -> str:
    digest = hashlib.sha256()
    for account_id, currency, total_fen in balances:
        digest.update(f"{account_id}|{currency}|{total_fen}\n".encode())
    return digest.hexdigest()


def backup_database(url: str, path: str) -> str:
    """Write a consistent backup of the database at `url` to `path`; says how it was taken.

    SQLite: the online backup API (a consistent copy while the service runs). PostgreSQL:
    `pg_dump --format=custom` (one snapshot; restore with `pg_restore`), which must be on PATH
    and of the server's major version or newer."""
    import shutil
    import sqlite3
    import subprocess

    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        source, target = sqlite3.connect(parsed.database), sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return "sqlite online backup"
    if shutil.which("pg_dump") is None:
        raise FileNotFoundError("pg_dump is not on PATH (Debian: postgresql-client)")
    libpq_url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(["pg_dump", "--format=custom", "--file", path, "--dbname", libpq_url],
                   check=True, capture_output=True, text=True)
    return "pg_dump --format=custom"
