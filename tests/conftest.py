"""Test fixtures: every database test runs against SQLite and, when IPLEDGER_TEST_POSTGRES_URL
is set, PostgreSQL too (tests are parametrized `[sqlite]` / `[postgres]`).

Each test session (each xdist worker) gets its own freshly created database, migrated to head
and dropped at the end; `fresh_engine` gives one test a database of its own (for tests that
need an empty journal, tamper with rows, or run migrations up and down). Nothing is rolled
back between tests: rows are immutable by design, so tests make their own uniquely named data
with the factories and assert on that, and PostgreSQL's deferred triggers fire at real commits.

With IPLEDGER_REQUIRE_POSTGRES=1 (CI), a missing PostgreSQL or any skipped PostgreSQL test
fails the run.

Every Flask test client of the suite is a `tests.contract.ContractClient`: each response of
every API test is checked against the served OpenAPI document (status documented, content type,
required headers, JSON body valid against the schema), so the whole suite is a conformance test.
"""
from __future__ import annotations

import os
import uuid

import flask
import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from ledger.db import make_engine, normalize_url, upgrade_to_head
from tests.contract import ContractClient

flask.Flask.test_client_class = ContractClient

# Properties are about exactness, not speed: no per-example deadline (a shared 2-core CI machine
# is slow at times), and a fixed example count so the suite's run time stays predictable.
settings.register_profile("ipledger", deadline=None, max_examples=100)
settings.load_profile("ipledger")

PG_URL = os.environ.get("IPLEDGER_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("IPLEDGER_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def pytest_configure(config):
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError("IPLEDGER_REQUIRE_POSTGRES=1 but IPLEDGER_TEST_POSTGRES_URL is not set")


class Database:
    """Creates and drops one throwaway database on a backend."""

    def __init__(self, backend: str, tmp_path_factory):
        self.backend = backend
        self.tmp_path_factory = tmp_path_factory
        self.made: list = []

    def create(self, migrate: bool = True):
        if self.backend == "sqlite":
            path = self.tmp_path_factory.mktemp("db") / "ipledger.sqlite3"
            engine = make_engine(f"sqlite:///{path}")
        else:
            name = f"ipl_test_{uuid.uuid4().hex[:12]}"
            with self._admin() as admin:
                admin.execute(text(f'CREATE DATABASE "{name}"'))
            engine = make_engine(_with_database(PG_URL, name), pool_size=10, max_overflow=10)
            self.made.append(name)
        if migrate:
            upgrade_to_head(engine)
        return engine

    def drop(self, engine) -> None:
        engine.dispose()
        if self.backend == "postgres":
            name = engine.url.database
            with self._admin() as admin:
                admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _admin(self):
        admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
        return _disposing(admin)


class _disposing:
    def __init__(self, engine):
        self.engine = engine

    def __enter__(self):
        self.conn = self.engine.connect()
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
        self.engine.dispose()


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(normalize_url(url)).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def databases(backend, tmp_path_factory):
    return Database(backend, tmp_path_factory)


@pytest.fixture(scope="session")
def engine(databases):
    made = databases.create()
    yield made
    databases.drop(made)


@pytest.fixture
def fresh_engine(databases):
    made = databases.create()
    yield made
    databases.drop(made)


@pytest.fixture
def unmigrated_engine(databases):
    made = databases.create(migrate=False)
    yield made
    databases.drop(made)


@pytest.fixture(scope="session")
def app(engine):
    from api import create_app
    return create_app(engine, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def _bind_factories(request):
    """Factories write through whichever engine the test uses."""
    if "engine" in request.fixturenames or "fresh_engine" in request.fixturenames:
        from tests import factories
        name = "fresh_engine" if "fresh_engine" in request.fixturenames else "engine"
        factories.bind(request.getfixturevalue(name))
    yield


# --- CI guard: PostgreSQL tests must run, not skip -----------------------------------------

_pg_outcomes = {"passed": 0, "skipped": 0, "failed": 0}


def pytest_runtest_logreport(report):
    if "[postgres" not in report.nodeid and "-postgres" not in report.nodeid:
        return
    if report.when == "call" and report.passed:
        _pg_outcomes["passed"] += 1
    elif report.skipped:
        _pg_outcomes["skipped"] += 1
    elif report.failed:
        _pg_outcomes["failed"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput"):
        return
    terminalreporter.write_line(
        f"PostgreSQL tests: {_pg_outcomes['passed']} passed, {_pg_outcomes['skipped']} skipped"
        + ("" if PG_URL else " (IPLEDGER_TEST_POSTGRES_URL not set)"))


def pytest_sessionfinish(session, exitstatus):
    if not REQUIRE_PG or hasattr(session.config, "workerinput"):
        return
    if _pg_outcomes["skipped"] or not _pg_outcomes["passed"]:
        session.exitstatus = 1
