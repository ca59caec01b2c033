"""Bulk inserts for the batch paths (loan batches, CSV imports, journal batches).

`insert_many(conn, table, rows, return_ids=...)` writes rows in the caller's transaction and,
when asked, returns their ids in row order. On PostgreSQL, from `COPY_THRESHOLD` rows up, ids are
reserved from the table's sequence and the rows are written with COPY: measured in
bench/loans.py, SQLAlchemy's multi-row INSERT ... RETURNING and psycopg's per-row executemany
were 60% of a 5,000-loan batch. COPY fires the same row triggers (immutability, the deferred
balance check) and checks the same constraints, so nothing the database guarantees changes.
Smaller batches and SQLite use ordinary INSERTs.
"""
from __future__ import annotations

from functools import cache

from sqlalchemy import Connection, Table, insert, text
from sqlalchemy.exc import IntegrityError

from ledger.db import is_postgres

COPY_THRESHOLD = 64


def insert_many(conn: Connection, table: Table, rows: list[dict], *,
                return_ids: bool = False) -> list[int] | None:
    if not rows:
        return [] if return_ids else None
    if is_postgres(conn) and len(rows) >= COPY_THRESHOLD:
        return _copy(conn, table, rows, return_ids)
    if return_ids:
        return [row.id for row in conn.execute(_insert(table, returning_ids=True), rows)]
    conn.execute(_insert(table), rows)
    return None


@cache
def _insert(table: Table, returning_ids: bool = False):
    """One INSERT per table, built once: SQLAlchemy keeps its compiled form and cache key."""
    statement = insert(table)
    return statement.returning(table.c.id, sort_by_parameter_order=True) if returning_ids else statement


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` fresh ids from the table's own sequence, ascending."""
    return list(conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table.name, "n": count}).scalars())


def _copy(conn: Connection, table: Table, rows: list[dict], return_ids: bool) -> list[int] | None:
    columns = list(rows[0])
    assert all(len(row) == len(columns) for row in rows), "bulk rows must share their columns"
    ids = reserve_ids(conn, table, len(rows)) if return_ids else None
    names = (["id"] if ids else []) + columns
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for index, row in enumerate(rows):
                values = [row[column] for column in columns]
                copy.write_row([ids[index], *values] if ids else values)
    except Exception as error:  # psycopg's own exception: give callers SQLAlchemy's, as for INSERT
        import psycopg
        if isinstance(error, psycopg.errors.IntegrityError):
            raise IntegrityError(statement, None, error) from error
        raise
    finally:
        cursor.close()
    return ids
