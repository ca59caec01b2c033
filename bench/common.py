"""Shared pieces of the benchmarks in `bench/`: a throwaway migrated database, timing, a result
table and the machine's basics.

Guarantees
- `throwaway_database(url)` never touches the tables of the database named in `url`. On
  PostgreSQL it connects to that database only to run `CREATE DATABASE ipl_bench_<random>`
  (AUTOCOMMIT) and, on the way out, `DROP DATABASE ... WITH (FORCE)` - always, even when the
  benchmark fails. On SQLite it ignores the path and uses a file in a temporary folder.
- The database it yields is migrated to head by `ledger.db.upgrade_to_head`, so a benchmark
  pays exactly the constraints, indexes and triggers production pays.
- `timed` measures wall-clock time with `time.perf_counter` around one call, nothing else.
"""
from __future__ import annotations

from pathlib import Path

from datetime import datetime, timezone

import sqlite3

import json

import os
import platform
import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

import sqlalchemy
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from ledger.db import make_engine, normalize_url, upgrade_to_head

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DATABASE_PREFIX = "ipl_bench_"


def default_url() -> str:
    """`IPLEDGER_BENCH_POSTGRES_URL`, else a local PostgreSQL database named `test`."""
    return os.environ.get("IPLEDGER_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL


# --- the throwaway database ----------------------------------------------------------------

class BenchDatabase(NamedTuple):
    """A migrated scratch database: `engine` for the ledger API; `conninfo` for raw psycopg
    (None on SQLite, where `engine.url.database` is the file to open with `sqlite3`)."""

    engine: Engine
    conninfo: str | None


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@contextmanager
def throwaway_database(url: str) -> Iterator[BenchDatabase]:
    """Create, migrate, yield and always drop a scratch database on the server `url` names."""
    if is_sqlite_url(url):
        with _sqlite_scratch() as bench_db:
            yield bench_db
        return
    with _postgres_scratch(url) as bench_db:
        yield bench_db


@contextmanager
def _sqlite_scratch() -> Iterator[BenchDatabase]:
    with tempfile.TemporaryDirectory(prefix=DATABASE_PREFIX) as folder:
        engine = make_engine(f"sqlite:///{os.path.join(folder, 'bench.sqlite3')}")
        try:
            upgrade_to_head(engine)
            yield BenchDatabase(engine, None)
        finally:
            engine.dispose()


@contextmanager
def _postgres_scratch(url: str) -> Iterator[BenchDatabase]:
    admin_conninfo = postgres_conninfo(url)
    name = DATABASE_PREFIX + secrets.token_hex(6)
    bench_url = make_url(normalize_url(url)).set(database=name)
    _run_autocommit(admin_conninfo, "CREATE DATABASE {}", name)
    engine = None
    try:
        engine = make_engine(bench_url.render_as_string(hide_password=False))
        upgrade_to_head(engine)
        yield BenchDatabase(engine, postgres_conninfo(bench_url))
    finally:
        if engine is not None:
            engine.dispose()  # close pooled connections before the drop
        _run_autocommit(admin_conninfo, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _run_autocommit(conninfo: str, template: str, database_name: str) -> None:
    """CREATE/DROP DATABASE cannot run inside a transaction: use a short AUTOCOMMIT session."""
    import psycopg
    from psycopg import sql

    statement = sql.SQL(template).format(sql.Identifier(database_name))
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(statement)


def postgres_conninfo(url) -> str:
    """A libpq URI for psycopg from a SQLAlchemy-style URL (drops the `+psycopg` driver part)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


# --- timing and the table ------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """One measured run: `entries` items done in `seconds` of wall-clock time."""

    label: str
    entries: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else float("inf")


def timed(label: str, n: int, fn: Callable[[], object]) -> Timing:
    """Call `fn()` once and time it; `n` is how many items it handles (for the rate)."""
    started = time.perf_counter()
    fn()
    return Timing(label, n, time.perf_counter() - started)


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str] | None = None) -> None:
    """Print rows as a plain left/right aligned text table (numbers right-aligned)."""
    cells = [[_cell(value) for value in row] for row in rows]
    if headers:
        cells.insert(0, list(headers))
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(widths))]
    for index, row in enumerate(cells):
        print("  ".join(value.rjust(w) if num else value.ljust(w)
                        for value, w, num in zip(row, widths, numeric)).rstrip())
        if headers and index == 0:
            print("  ".join("-" * w for w in widths))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# --- the machine ---------------------------------------------------------------------------

def machine_info(engine: Engine) -> dict[str, str]:
    """What a reader needs to compare runs: CPUs, Python, database server, driver versions."""
    info = {"cpus": str(os.cpu_count()), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "sqlalchemy": sqlalchemy.__version__}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            import psycopg
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar_one()
            # Per-commit cost depends on these more than on anything in Python.
            info["synchronous_commit"] = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            info["fsync"] = conn.execute(text("SHOW fsync")).scalar_one()
            info["psycopg"] = f"{psycopg.__version__} (libpq {psycopg.pq.version()})"
        else:
            info["sqlite"] = conn.execute(text("SELECT sqlite_version()")).scalar_one()
    return info


def print_machine_info(info: dict[str, str]) -> None:
    width = max(len(key) for key in info)
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")


def _sqlite_datetime(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def open_raw_connection(bench_db: "BenchDatabase"):
    """A plain DB-API connection to the scratch database, outside SQLAlchemy: psycopg on
    PostgreSQL, sqlite3 (with the pragmas ledger.db sets) on SQLite."""
    if bench_db.conninfo is None:
        # Store datetimes as SQLAlchemy's SQLite dialect does (naive UTC text), not isoformat.
        sqlite3.register_adapter(datetime, _sqlite_datetime)
        conn = sqlite3.connect(bench_db.engine.url.database)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    import psycopg
    return psycopg.connect(bench_db.conninfo)


def example_terms() -> dict:
    """The API.md example programme terms (docs/examples/programme.json): PICC-GZ, GZ-POOL, GZ-TREASURY."""
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "programme.json"
    return json.loads(path.read_text(encoding="utf-8"))["terms"]
