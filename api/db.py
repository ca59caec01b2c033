"""Per-request database access. Reads use a plain connection; writes run in one transaction
(with retry on PostgreSQL serialization failures) opened by `api.idempotency.write`."""
from __future__ import annotations

from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy import Connection, Engine


def engine() -> Engine:
    return current_app.extensions["ipledger.engine"]


@contextmanager
def read():
    """A connection for reading; on SQLite its transaction does not take the write lock.

    It ends with COMMIT, not the pool's ROLLBACK: after a rollback psycopg discards its
    prepared statements (DEALLOCATE ALL), which measured 16% of a loan post in bench/loans.py.
    """
    with engine().connect().execution_options(ipledger_readonly=True) as conn:
        yield conn
        conn.commit()


def tx() -> Connection:
    """The connection of the current write transaction (inside a `write` view)."""
    conn = g.get("tx_conn")
    assert conn is not None, "tx() is only available inside a view decorated with @write"
    return conn
