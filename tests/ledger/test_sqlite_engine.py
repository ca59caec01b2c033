"""The embedded default's durability settings (ledger.db): WAL with synchronous=FULL, so a
committed entry survives power loss; foreign keys on; writers queue."""
from __future__ import annotations

from ledger.db import make_engine

SYNCHRONOUS_FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_every_sqlite_connection_is_wal_full_and_checks_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        for _ in range(2):  # each new connection, not only the first
            with engine.connect() as conn:
                pragma = conn.connection.driver_connection.execute
                assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert pragma("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
                assert pragma("PRAGMA foreign_keys").fetchone()[0] == 1
                assert pragma("PRAGMA busy_timeout").fetchone()[0] == 30000
            engine.dispose()
    finally:
        engine.dispose()
