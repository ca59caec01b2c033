"""Database access: engines from what a user writes, transactions with retry, migrations.

Guarantees
- `make_engine("postgresql://user@host/db")` uses psycopg 3; `sqlite:///path` creates the
  parent folder and turns on foreign keys, WAL, `synchronous=FULL` and a busy timeout: a
  committed entry survives a power cut.
- `run_in_transaction(engine, fn)` calls `fn(conn)` inside one transaction and commits; on
  PostgreSQL a serialization failure or deadlock (40001/40P01), or a pooled connection found
  dead, rolls back and retries `fn` (at most `retries` times), invisible to the caller.
- The schema is only ever made by Alembic (`upgrade_to_head`).
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
DEFAULT_SQLITE_PATH = Path("instance") / "ipledger.sqlite3"
RETRYABLE_SQLSTATES = {"40001", "40P01"}
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def database_url() -> str:
    """`IPLEDGER_DATABASE_URL`, or the embedded default: a SQLite file under `instance/`."""
    return os.environ.get("IPLEDGER_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_url(url: str) -> str:
    """Accept `postgresql://` / `postgres://` and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = normalize_url(url or database_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    # No pre-ping (it costs a round trip per transaction, ~0.8 ms measured in bench/journal.py):
    # connections are recycled, and a transaction that meets a dead one is retried once.
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def _sqlite_engine(parsed, **kwargs) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
        # isolation_level=None hands transaction control to SQLAlchemy's BEGIN below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # FULL, not NORMAL: in WAL mode NORMAL syncs only at checkpoints, so the last commits
        # can vanish on power loss (the file stays consistent, but a posted entry the client was
        # told about is gone). A ledger's commit must be durable: FULL syncs the WAL per commit.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # pragma: no cover - trivial
        # BEGIN IMMEDIATE takes the write lock up front: two writers queue instead of one
        # failing with "database is locked" half-way through a read-then-write. Readers
        # (execution option ipledger_readonly) take no lock.
        readonly = conn.get_execution_options().get("ipledger_readonly")
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def run_in_transaction(engine: Engine, fn: Callable[[Connection], T], *, retries: int = 5) -> T:
    """Run `fn(conn)` in one transaction; retry on PostgreSQL serialization failure/deadlock."""
    for attempt in range(retries + 1):
        try:
            with engine.begin() as conn:
                return fn(conn)
        except DBAPIError as exc:
            retryable = _sqlstate(exc) in RETRYABLE_SQLSTATES or exc.connection_invalidated
            if not retryable or attempt == retries:
                raise
            time.sleep(0.01 * (2 ** attempt))
    raise AssertionError("unreachable")  # pragma: no cover


# --- migrations ---------------------------------------------------------------------------

def alembic_config(url: str | None = None):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url or database_url()).replace("%", "%%"))
    return cfg


def upgrade_to_head(engine: Engine) -> None:
    upgrade_to(engine, "head")


def upgrade_to(engine: Engine, revision: str) -> None:
    from alembic import command
    _migrate(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade_to(engine: Engine, revision: str) -> None:
    from alembic import command
    _migrate(engine, lambda cfg: command.downgrade(cfg, revision))


def _migrate(engine: Engine, step) -> None:
    """Run an Alembic step in one transaction. On SQLite, foreign keys are off meanwhile (as
    Alembic's batch mode requires) and checked in full before commit."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # outside any transaction, where SQLite honours this pragma
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    assert not broken, f"migration left dangling references: {broken[:5]}"
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def head_revision() -> str:
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext
    return MigrationContext.configure(conn).get_current_revision()
