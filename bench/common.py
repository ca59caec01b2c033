"""Shared pieces of the benchmarks in `bench/`: a throwaway migrated database, timing, result
tables and the machine's basics (every benchmark), then what the loan benchmarks share.

Each loan benchmark (`loans_single.py`, `loans_batch.py`, `loans_server.py`, `loans_profile.py`,
all of them at once: `loans.py`) posts loans with two pledges (a patent and a trademark) through
the service and, beside it, the same rows through raw psycopg, into the same scratch database.
What they share, in order below:
- the world: institutions, the API.md example programme, 200 borrowers, a bank key
  (`setup_world`); fresh, distinct loans (`CaseSource`);
- modes and measuring: a `Mode` prepares request bodies untimed and posts them timed;
  `measure_interleaved` times a (service, raw) pair in alternating rounds so drift on a shared
  machine hits both alike, adding up wall-clock time and CPU (this process or a process tree,
  and the PostgreSQL backends of the scratch database, read from /proc when the server is
  local: `BackendCpu`);
- raw rows: exactly what the service writes, column for column (`check_column_lists` fails
  loudly if the schema grew a column), and `RawWriter`, one loan's rows statement by statement;
- checks: `check_mirror` compares, row by row, what the service wrote for one loan with what
  the raw baseline writes for it; `check_books` proves the books balanced and holding exactly
  what every mode posted (`LoanBench.finish`);
- the report: loans/s, wall and CPU ms per loan, service/raw ratios, the goals.

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

import argparse
import hashlib
import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import sqlalchemy
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `bench` is not installed

from ledger import accounts as chart  # noqa: E402
from ledger.chain import verify  # noqa: E402
from ledger.db import make_engine, normalize_url, run_in_transaction, upgrade_to_head  # noqa: E402
from ledger.identifiers import credit_code_check_char, patent_check_char  # noqa: E402
from ledger.institutions import create_institution  # noqa: E402
from ledger.journal import SYSTEM, ensure_accounts  # noqa: E402
from ledger.keys import create_key  # noqa: E402
from ledger.parties import BorrowerFacts, upsert_borrower  # noqa: E402
from ledger.programs import create_program  # noqa: E402
from ledger.schema import (accounts, api_keys, borrower_facts, entries, idempotency_keys,  # noqa: E402
                           loans, pledges, postings)
from ledger.terms import parse_terms  # noqa: E402

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


@contextmanager
def kept_database(url: str, name: str, sizes: str, keep: bool) -> Iterator[tuple[Engine, str, bool]]:
    """(engine, conninfo, reused): the database `name` on the server `url`, migrated to head;
    dropped at exit unless `keep`. A kept database whose comment is `sizes` is reused as it is
    (the caller then skips generating and comments a fresh one once filled: `comment_sizes`). A
    database of other sizes is someone's kept one: refused unless `keep`, then regenerated."""
    import psycopg
    admin = postgres_conninfo(url)
    bench_url = make_url(normalize_url(url)).set(database=name)
    with psycopg.connect(admin, autocommit=True) as conn:
        comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               "WHERE datname = %s", (name,)).fetchone()
    reused = comment is not None and comment[0] == sizes
    if comment is not None and not reused:
        if not keep:
            sys.exit(f"database {name} exists with other sizes ({comment[0]}): pass --keep to "
                     "regenerate it, or another --database")
        _run_autocommit(admin, "DROP DATABASE {} WITH (FORCE)", name)
    if not reused:
        _run_autocommit(admin, "CREATE DATABASE {}", name)
    engine = make_engine(bench_url.render_as_string(hide_password=False))
    try:
        upgrade_to_head(engine)  # a reused database gets any migration added since
        yield engine, postgres_conninfo(bench_url), reused
    finally:
        engine.dispose()
        if not keep:
            _run_autocommit(admin, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def comment_sizes(conninfo: str, name: str, sizes: str) -> None:
    """Mark a filled database with its sizes, so a later --keep run reuses it."""
    import psycopg
    from psycopg import sql
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(sizes)))


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


# =============================================================================================
# What the loan benchmarks share
# =============================================================================================

GOAL_SINGLE_PER_S = 1_000
GOAL_BATCH_PER_S = 20_000
WARMUP_SINGLE = 20
MAX_LOANS = 1_000_000
MAX_BATCH_SIZE = 10_000  # ledger.loans.MAX_BATCH: the API refuses more
MAX_ROUNDS = 100
BORROWER_COUNT = 200

BANK_CODE = "ICBC-GZ"
PROGRAM_CODE = "gz-ip-2023"
REGION_CITY = "440100"
REGION_BORROWER = "440106"
START_DATE = date(2025, 3, 1)
MATURITY_DATE = date(2026, 2, 28)
ANNUAL_RATE = "0.0345"
IP_SHARE = "0.8"
BORROWER_INDUSTRY = "software_it"
TRADEMARK_NICE_CLASS = 9

# The example terms of API.md: loading a programme parses these on every request, so a
# realistic document matters for the measurement.
PROGRAM_TERMS = example_terms()  # the API.md example (docs/examples/programme.json)

# Every column the service writes, per table (the id comes from the table's sequence).
LOAN_COLUMNS = ("bank_id", "contract_no", "borrower_id", "borrower_facts_id", "program_id", "program_version_id",
                "principal_fen", "annual_rate", "start_date", "maturity_date", "ip_share",
                "insured_amount_fen", "pledge_type", "borrower_size_class", "borrower_sme",
                "borrower_private", "borrower_region", "borrower_industry", "size_standard",
                "status", "closed_on", "created_by_key_id", "created_at")
PLEDGE_COLUMNS = ("loan_id", "position", "kind", "number", "nice_class", "registration_no",
                  "registered_on", "appraised_value_fen", "released_on")
ACCOUNT_COLUMNS = ("code", "name", "kind", "purpose", "currency", "institution_id",
                   "borrower_id", "program_id", "loan_id", "created_at")
ENTRY_COLUMNS = ("kind", "effective_on", "recorded_at", "actor_key_id", "institution_id",
                 "idempotency_key", "reverses_id", "memo", "loan_id")
POSTING_COLUMNS = ("entry_id", "account_id", "amount_fen", "currency")
IDEMPOTENCY_COLUMNS = ("scope", "key", "fingerprint", "method", "path", "status_code",
                       "response_body", "location", "created_at")
WRITTEN_TABLES = ((loans, LOAN_COLUMNS), (pledges, PLEDGE_COLUMNS), (accounts, ACCOUNT_COLUMNS),
                  (entries, ENTRY_COLUMNS), (postings, POSTING_COLUMNS),
                  (idempotency_keys, IDEMPOTENCY_COLUMNS))


# --- the world: institutions, programme, borrowers, a bank key --------------------------------

@dataclass(frozen=True)
class BorrowerRow:
    """A registered borrower and the facts a loan freezes from it (what the service looks up)."""

    id: int
    facts_id: int  # the borrower_facts version a loan starting on START_DATE freezes
    credit_code: str
    region: str
    industry: str
    private: bool
    size_class: str
    sme: bool
    size_standard: str
    cash_account_id: int


@dataclass(frozen=True)
class World:
    bank_id: int
    program_id: int
    program_version_id: int
    key_id: int
    secret: str
    settlement_account_id: int
    borrowers: tuple[BorrowerRow, ...]

    @property
    def scope(self) -> str:
        return f"inst:{self.bank_id}"  # ledger.keys.Principal.scope


def credit_code(index: int) -> str:
    body = f"91{REGION_BORROWER}MA{index:07d}"
    return body + credit_code_check_char(body)


def setup_world(engine, borrower_count: int = BORROWER_COUNT) -> World:
    """Institutions, the programme, borrowers with their cash accounts, the bank's settlement
    account and a bank key: everything that exists before a bank posts its first loan."""
    def create(conn):
        bank = create_institution(conn, BANK_CODE, "ICBC Guangzhou", "bank", REGION_CITY)
        create_institution(conn, "PICC-GZ", "PICC Guangzhou", "insurer", REGION_CITY)
        create_institution(conn, "GZ-POOL", "Guangzhou IP risk pool", "pool", REGION_CITY)
        create_institution(conn, "GZ-TREASURY", "Guangzhou treasury", "treasury", REGION_CITY)
        program = create_program(conn, PROGRAM_CODE, "Guangzhou IP pledge financing", REGION_CITY,
                                 date(2023, 1, 1), None, parse_terms(PROGRAM_TERMS, None), SYSTEM)
        made = []
        for i in range(borrower_count):
            facts = BorrowerFacts(credit_code(i), f"Bench Borrower {i}", REGION_BORROWER,
                                  BORROWER_INDUSTRY, 20 + (i * 7) % 400,
                                  (5_000_000 + i * 250_000) * 100, (8_000_000 + i * 100_000) * 100,
                                  i % 5 != 0)
            made.append(upsert_borrower(conn, bank.id, facts, as_of=START_DATE)[0])
        ids = ensure_accounts(conn, [chart.settlement(bank.id)]
                              + [chart.borrower_cash(b.id) for b in made])
        _prefix, secret = create_key(conn, "bank", BANK_CODE)
        key_id = conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == _prefix)).scalar_one()
        facts_ids = dict(conn.execute(select(borrower_facts.c.borrower_id, borrower_facts.c.id).where(
            borrower_facts.c.borrower_id.in_([b.id for b in made]))).all())
        rows = tuple(BorrowerRow(b.id, facts_ids[b.id], b.facts.credit_code, b.facts.region, b.facts.industry,
                                 b.facts.private, b.size_class, b.sme, b.size_standard,
                                 ids[chart.borrower_cash(b.id).code]) for b in made)
        version = program.version_on(START_DATE)
        return World(bank.id, program.id, version.id, key_id, secret,
                     ids[chart.settlement(bank.id).code], rows)
    return run_in_transaction(engine, create)


# --- the loans -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoanCase:
    """Loan number `index`: its API payload and the typed values the service stores for it."""

    index: int
    borrower: BorrowerRow
    contract_no: str
    principal_fen: int
    pledges: tuple[tuple, ...]  # PLEDGE_COLUMNS after loan_id, canonical as stored
    payload: dict


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def make_case(index: int, world: World) -> LoanCase:
    """A distinct, valid loan: contract number, patent and trademark numbers all unique."""
    borrower = world.borrowers[index % len(world.borrowers)]
    principal_fen = (1_000_000 + (index % 97) * 50_000) * 100
    digits = f"20231{index % 10**7:07d}"
    patent = f"ZL{digits}.{patent_check_char(digits)}"
    trademark = str(10_000_000 + index % 89_999_999)  # at most 8 digits, no leading zero
    appraised_fen = principal_fen * 6 // 5
    pledge_rows_ = ((0, "patent", patent, None, f"Y2025440{index:07d}", date(2025, 2, 20), appraised_fen, None),
                    (1, "trademark", trademark, TRADEMARK_NICE_CLASS, f"TM-2025-{index:07d}",
                     date(2025, 2, 21), None, None))
    contract_no = f"{BANK_CODE}-2025-{index:07d}"
    payload = {
        "contract_no": contract_no, "borrower": borrower.credit_code, "program": PROGRAM_CODE,
        "principal": _yuan(principal_fen), "annual_rate": ANNUAL_RATE,
        "start_date": START_DATE.isoformat(), "maturity_date": MATURITY_DATE.isoformat(),
        "ip_share": IP_SHARE, "insured_amount": _yuan(principal_fen),
        "pledges": [
            {"kind": "patent", "number": patent, "registration_no": pledge_rows_[0][4],
             "registered_on": pledge_rows_[0][5].isoformat(), "appraised_value": _yuan(appraised_fen)},
            {"kind": "trademark", "number": trademark, "nice_class": TRADEMARK_NICE_CLASS,
             "registration_no": pledge_rows_[1][4], "registered_on": pledge_rows_[1][5].isoformat()}]}
    return LoanCase(index, borrower, contract_no, principal_fen, pledge_rows_, payload)


class CaseSource:
    """Hands out fresh loans (new contract numbers) so every mode posts new loans."""

    def __init__(self, world: World):
        self.world = world
        self.next_index = 0

    def take(self, count: int) -> list[LoanCase]:
        cases = [make_case(i, self.world) for i in range(self.next_index, self.next_index + count)]
        self.next_index += count
        return cases


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- a mode: prepare (untimed) then post (timed) -----------------------------------------------

@dataclass
class Mode:
    """One way of posting loans. `prepare(cases)` builds request bodies before the clock starts;
    `post(prepared)` is what is timed. `app_cpu()` reads the cumulative CPU seconds of the Python
    side doing the work (None: unknown). `requests(n_loans)` is how many requests (and stored
    idempotency outcomes) posting n loans in one go makes."""

    label: str
    prepare: Callable[[list[LoanCase]], object]
    post: Callable[[object], None]
    app_cpu: Callable[[], float | None]
    requests: Callable[[int], int]
    loans_written: int = 0  # warm-up included: what the books must hold afterwards
    outcomes_written: int = 0
    loans_timed: int = 0
    seconds: float = 0.0
    app_cpu_s: float | None = 0.0
    db_cpu_s: float | None = 0.0
    driver_cpu_s: float | None = None  # the load generator's CPU when it is not the app

    @property
    def per_second(self) -> float:
        return self.loans_timed / self.seconds if self.seconds > 0 else float("inf")


def one_per_loan(count: int) -> int:
    return count


def per_chunk(batch_size: int) -> Callable[[int], int]:
    return lambda count: -(-count // batch_size)


def bank_headers(world: World, key: str | None) -> dict:
    headers = {"Authorization": f"Bearer {world.secret}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _expect(status: int, body: bytes | str, what: str) -> None:
    if status != 201:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        raise AssertionError(f"{what}: HTTP {status}: {text[:800]}")


# --- raw rows: exactly what the service writes --------------------------------------------------

def check_column_lists() -> None:
    """The raw baseline must write every column the service writes: fail loudly if the schema
    grew a column this file does not know about."""
    for table, columns in WRITTEN_TABLES:
        expected = {c.name for c in table.columns if not c.info.get("filled_by_database")} - {"id"}
        assert set(columns) == expected, (
            f"bench/loans.py writes {sorted(columns)} to {table.name}, the schema has {sorted(expected)}")


def loan_values(case: LoanCase, world: World, now: datetime) -> tuple:
    b = case.borrower
    return (world.bank_id, case.contract_no, b.id, b.facts_id, world.program_id, world.program_version_id,
            case.principal_fen, ANNUAL_RATE, START_DATE, MATURITY_DATE, IP_SHARE,
            case.principal_fen, "mixed", b.size_class, b.sme, b.private, b.region, b.industry,
            b.size_standard, "active", None, world.key_id, now)


def pledge_rows(loan_id: int, case: LoanCase) -> list[tuple]:
    return [(loan_id, *values) for values in case.pledges]


def account_specs(loan_id: int, case: LoanCase, world: World):
    """The loan's two sub-ledger accounts, from the same chart the service uses."""
    return (chart.loan_receivable(loan_id, world.bank_id),
            chart.loan_payable(loan_id, case.borrower.id))


def account_values(spec, now: datetime) -> tuple:
    return (spec.code, spec.name, spec.kind, spec.purpose, spec.currency, spec.institution_id,
            spec.borrower_id, spec.program_id, spec.loan_id, now)


def entry_values(loan_id: int, case: LoanCase, world: World, idempotency_key: str | None,
                 now: datetime) -> tuple:
    return ("loan_disbursed", START_DATE, now, world.key_id, world.bank_id, idempotency_key, None,
            f"contract {case.contract_no}", loan_id)


def posting_rows(entry_id: int, receivable_id: int, payable_id: int, case: LoanCase,
                 world: World) -> list[tuple]:
    p = case.principal_fen
    return [(entry_id, receivable_id, p, "CNY"), (entry_id, world.settlement_account_id, -p, "CNY"),
            (entry_id, case.borrower.cash_account_id, p, "CNY"), (entry_id, payable_id, -p, "CNY")]


def response_body(loan_id: int, case: LoanCase) -> str:
    """A stand-in of the service's 201 body (same fields, similar size) for idempotency_keys."""
    return json.dumps({**case.payload, "id": loan_id, "bank": BANK_CODE, "program_version": 1,
                       "pledge_type": "mixed", "borrower_size_class": case.borrower.size_class,
                       "borrower_sme": case.borrower.sme, "borrower_private": case.borrower.private,
                       "borrower_region": case.borrower.region,
                       "borrower_facts_as_of": START_DATE.isoformat(),
                       "outstanding_principal": case.payload["principal"], "status": "active",
                       "closed_on": None, "events": []})


def idempotency_values(world: World, key: str, path: str, body: str, location: str | None,
                       now: datetime) -> tuple:
    return (world.scope, key, hashlib.sha256(body.encode()).hexdigest(), "POST", path, 201, body,
            location, now)


def insert_sql(table: str, columns: Sequence[str], marker: str, rows: int = 1) -> str:
    one = f"({', '.join([marker] * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"


class RawWriter:
    """One loan's rows through a DB-API cursor, statement by statement (the raw single path)."""

    def __init__(self, world: World, marker: str):
        self.world = world
        self.loan_sql = insert_sql("loans", LOAN_COLUMNS, marker) + " RETURNING id"
        self.pledge_sql = insert_sql("pledges", PLEDGE_COLUMNS, marker)
        # RETURNING code too: row order of RETURNING is not promised, the code is unique.
        self.account_sql = insert_sql("accounts", ACCOUNT_COLUMNS, marker, rows=2) + " RETURNING id, code"
        self.entry_sql = insert_sql("entries", ENTRY_COLUMNS, marker) + " RETURNING id"
        self.posting_sql = insert_sql("postings", POSTING_COLUMNS, marker)
        self.idempotency_sql = insert_sql("idempotency_keys", IDEMPOTENCY_COLUMNS, marker)

    def write(self, cur, case: LoanCase, idempotency_key: str | None, now: datetime,
              store_outcome: bool) -> int:
        """The loan's rows; its entry carries `idempotency_key` as the service's does, and with
        `store_outcome` the idempotency_keys row (a single post's stored response) is written."""
        world = self.world
        loan_id = cur.execute(self.loan_sql, loan_values(case, world, now)).fetchone()[0]
        cur.executemany(self.pledge_sql, pledge_rows(loan_id, case))
        receivable, payable = account_specs(loan_id, case, world)
        ids = dict((code, account_id) for account_id, code in cur.execute(
            self.account_sql, account_values(receivable, now) + account_values(payable, now)).fetchall())
        entry_id = cur.execute(self.entry_sql, entry_values(loan_id, case, world, idempotency_key,
                                                            now)).fetchone()[0]
        cur.executemany(self.posting_sql, posting_rows(entry_id, ids[receivable.code],
                                                       ids[payable.code], case, world))
        if store_outcome:
            cur.execute(self.idempotency_sql, idempotency_values(
                world, idempotency_key, "/v1/loans", response_body(loan_id, case),
                f"/v1/loans/{loan_id}", now))
        return loan_id


# --- CPU seconds: this process, a process tree, the PostgreSQL backends -----------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_cpu_s(pid: int) -> float | None:
    fields = _proc_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime + stime


def process_tree_cpu_s(pid: int) -> float | None:
    """CPU of `pid` and its direct children (a gunicorn master and its workers)."""
    total = process_cpu_s(pid)
    if total is None:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and fields[1] == str(pid):
                total += process_cpu_s(int(entry.name)) or 0.0
    return total


class BackendCpu:
    """CPU seconds used by the PostgreSQL backends of the scratch database, from /proc (only
    when the server runs on this machine; otherwise every reading is None).

    `reading()` sums utime+stime over the backends connected now; a mode's cost is the
    difference of two readings (a backend that appears in between counts from zero)."""

    def __init__(self, conninfo: str | None):
        self.conn = None
        if conninfo is None or not Path("/proc/self/stat").exists():
            return
        import psycopg
        self.conn = psycopg.connect(conninfo, autocommit=True)
        if not self._readable():
            self.close()

    def _readable(self) -> bool:
        pids = self._pids()
        return bool(pids) and all(process_cpu_s(pid) is not None for pid in pids)

    def _pids(self) -> list[int]:
        return [row[0] for row in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]

    def snapshot(self) -> dict[int, float] | None:
        if self.conn is None:
            return None
        return {pid: cpu for pid in self._pids() if (cpu := process_cpu_s(pid)) is not None}

    @staticmethod
    def used(before: dict | None, after: dict | None) -> float | None:
        if before is None or after is None:
            return None
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --- measuring -----------------------------------------------------------------------------------

def round_sizes(total: int, rounds: int, unit: int = 1) -> list[int]:
    """Split `total` loans into at most `rounds` near-equal rounds of whole `unit`s (batches)."""
    units, rest = divmod(total, unit)
    pieces = [unit] * units + ([rest] if rest else [])
    rounds = max(1, min(rounds, len(pieces)))
    sizes = [0] * rounds
    for index, piece in enumerate(pieces):
        sizes[index * rounds // len(pieces)] += piece
    return [size for size in sizes if size]


def warm_up(mode: Mode, source: CaseSource, count: int) -> list[LoanCase]:
    cases = source.take(count)
    mode.post(mode.prepare(cases))
    mode.loans_written += count
    mode.outcomes_written += mode.requests(count)
    return cases


def measure_interleaved(modes: list[Mode], source: CaseSource, sizes: list[int],
                        backend_cpu: BackendCpu) -> None:
    """Time the modes in alternating rounds and sum each mode's time and CPU.

    Why rounds: on a shared machine commit latency and CPU contention drift over seconds;
    alternating the modes exposes each to the same drift, so the service/raw ratio stays honest.
    """
    for size in sizes:
        for mode in modes:
            prepared = mode.prepare(source.take(size))  # before the clock, for every mode alike
            app_before, db_before, driver_before = mode.app_cpu(), backend_cpu.snapshot(), time.process_time()
            started = time.perf_counter()
            mode.post(prepared)
            mode.seconds += time.perf_counter() - started
            app_after, db_after = mode.app_cpu(), backend_cpu.snapshot()
            mode.app_cpu_s = _add(mode.app_cpu_s, None if app_before is None or app_after is None
                                  else app_after - app_before)
            mode.db_cpu_s = _add(mode.db_cpu_s, BackendCpu.used(db_before, db_after))
            if mode.driver_cpu_s is not None:
                mode.driver_cpu_s += time.process_time() - driver_before
            mode.loans_timed += size
            mode.loans_written += size
            mode.outcomes_written += mode.requests(size)


def _add(total: float | None, value: float | None) -> float | None:
    return None if total is None or value is None else total + value


# --- the raw rows are the service's rows --------------------------------------------------------

def check_mirror(engine, world: World, case: LoanCase, entry_key: str) -> None:
    """Compare, row by row, what the service wrote for `case` with what the raw baseline writes
    for the same loan (same ids; timestamps taken from the service's rows)."""
    with engine.connect() as conn:
        loan = conn.execute(select(loans).where(loans.c.contract_no == case.contract_no)).mappings().one()
        loan_id, now = loan["id"], loan["created_at"]
        _same("loans", [tuple(loan[c] for c in LOAN_COLUMNS)], [loan_values(case, world, now)])
        got = conn.execute(select(*[pledges.c[c] for c in PLEDGE_COLUMNS])
                           .where(pledges.c.loan_id == loan_id).order_by(pledges.c.position)).all()
        _same("pledges", [tuple(r) for r in got], pledge_rows(loan_id, case))
        got = conn.execute(select(accounts).where(accounts.c.loan_id == loan_id)
                           .order_by(accounts.c.id)).mappings().all()
        _same("accounts", [tuple(r[c] for c in ACCOUNT_COLUMNS) for r in got],
              [account_values(spec, row["created_at"])
               for spec, row in zip(account_specs(loan_id, case, world), got)])
        entry = conn.execute(select(entries).where(entries.c.loan_id == loan_id)).mappings().one()
        _same("entries", [tuple(entry[c] for c in ENTRY_COLUMNS)],
              [entry_values(loan_id, case, world, entry_key, entry["recorded_at"])])
        got = conn.execute(select(*[postings.c[c] for c in POSTING_COLUMNS])
                           .where(postings.c.entry_id == entry["id"]).order_by(postings.c.id)).all()
        _same("postings", [tuple(r) for r in got],
              posting_rows(entry["id"], got[0][1], got[3][1], case, world))


def _same(table: str, got: list[tuple], expected: list[tuple]) -> None:
    assert got == expected, (f"raw {table} rows differ from the service's:\n"
                             f"  service {got}\n  raw     {expected}")


# --- checking the books ---------------------------------------------------------------------------

def check_books(engine, modes: list[Mode], world: World):
    """The books balance and hold exactly what the modes posted, table by table."""
    loans_expected = sum(m.loans_written for m in modes)
    outcomes_expected = sum(m.outcomes_written for m in modes)
    with engine.connect() as conn:
        result = verify(conn)

        def count(table):
            return conn.execute(select(func.count()).select_from(table)).scalar_one()
        counts = {"loans": count(loans), "pledges": count(pledges), "accounts": count(accounts),
                  "idempotency_keys": count(idempotency_keys)}
    expected = {"loans": loans_expected, "pledges": 2 * loans_expected,
                "accounts": 2 * loans_expected + 1 + len(world.borrowers),
                "idempotency_keys": outcomes_expected}
    assert result.balanced, f"unbalanced entries: {result.unbalanced_entry_ids}"
    assert result.entries == loans_expected, f"{result.entries} entries, expected {loans_expected}"
    assert result.postings == 4 * loans_expected, f"{result.postings} postings, expected {4 * loans_expected}"
    assert counts == expected, f"row counts {counts}, expected {expected}"
    return result, counts


# --- reporting --------------------------------------------------------------------------------

def _ms_per_loan(seconds: float | None, loans_count: int) -> float | str:
    return "n/a" if seconds is None else 1000 * seconds / loans_count


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "n/a"


def report(modes: list[Mode], notes: list[str]) -> None:
    print("results (timed rounds only, warm-up excluded; CPU: 'app' is the Python side doing the"
          "\nwork - this process, or the gunicorn master and workers; 'db' is the PostgreSQL"
          "\nbackends of the scratch database):")
    print_table([(m.label, m.loans_timed, m.seconds, m.per_second, 1000 * m.seconds / m.loans_timed,
                  _ms_per_loan(m.app_cpu_s, m.loans_timed), _ms_per_loan(m.db_cpu_s, m.loans_timed))
                 for m in modes],
                headers=("mode", "loans", "seconds", "loans/s", "wall ms/loan", "app CPU ms/loan",
                         "db CPU ms/loan"))
    for m in modes:
        if m.driver_cpu_s is not None:
            print(f"  ({m.label}: the {m.loans_timed:,} requests' client threads in this process used"
                  f" {1000 * m.driver_cpu_s / m.loans_timed:.3f} ms CPU/loan more, on the same 2 cores)")
    for note in notes:
        print(f"  note: {note}")
    print(f"  load average after the timed rounds: {load_average()}")
    print("\nservice / raw (same writes, same database, same run):")
    for service, raw in zip(modes[0::2], modes[1::2]):
        print(f"  {service.label} / {raw.label}: service reaches "
              f"{100 * service.per_second / raw.per_second:.1f}% of raw "
              f"(raw is {raw.per_second / service.per_second:.1f}x faster)")
    print("\ngoals (this machine):")
    rows = []
    for service, raw in zip(modes[0::2], modes[1::2]):
        batch = "batch" in service.label
        goal = GOAL_BATCH_PER_S if batch else GOAL_SINGLE_PER_S
        rows.append((service.label, goal, service.per_second, f"{100 * service.per_second / goal:.0f}%",
                     raw.per_second, f"{100 * raw.per_second / goal:.0f}%",
                     "MET" if service.per_second >= goal else
                     f"short by {goal - service.per_second:,.0f}/s "
                     f"({goal / service.per_second:.1f}x needed)"))
    print_table(rows, headers=("service mode", "goal/s", "service/s", "of goal", "raw/s",
                               "raw of goal", "where we stand"))


# --- a run: the scratch database, the world, the pair of modes, the books -------------------

@contextmanager
def raw_connections(bench_db: BenchDatabase, count: int) -> Iterator[list]:
    """Plain DB-API connections to the scratch database, outside SQLAlchemy."""
    opened = []
    try:
        for _ in range(count):
            opened.append(open_raw_connection(bench_db))
        yield opened
    finally:
        for conn in opened:
            conn.close()


@dataclass
class LoanBench:
    """One run of loan benchmarks on one scratch database: the world, fresh loans, the app (Flask
    test client), one raw connection and the database CPU meter; `modes` is every mode that
    wrote (warm-up and profiling included), which `finish` checks the books against."""

    db: BenchDatabase
    world: World
    source: CaseSource
    client: object
    raw_conn: object
    backend_cpu: BackendCpu
    refresh_statistics: bool = True
    modes: list[Mode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def sqlite(self) -> bool:
        return self.db.conninfo is None

    @property
    def marker(self) -> str:
        """The DB-API placeholder of the raw connection."""
        return "?" if self.sqlite else "%s"

    def analyze(self, conn=None) -> None:
        """Refresh the planner's statistics (untimed) before each timed phase.

        Why: the scratch tables grow by tens of thousands of rows within seconds, faster than
        autovacuum re-analyzes them; with stale statistics PostgreSQL plans the read-back of a
        new loan's events (`ledger.loans.loan_events`) as a sequential scan of `postings`, and
        the single-post time then grows with the table. A long-running database has fresh
        statistics; `--no-analyze` shows the stale case."""
        if self.refresh_statistics:
            conn = conn or self.raw_conn
            conn.execute("ANALYZE")
            conn.commit()

    def measure_pair(self, service: Mode, raw: Mode, total: int, rounds: int, *, warmup: int,
                     unit: int = 1, mirror_key: Callable[[LoanCase], str] | None = None) -> list[Mode]:
        """Warm both modes up (untimed; with `mirror_key`, the service's first loan is compared
        row by row with the raw rows for it), refresh statistics, then time the pair in
        alternating rounds of whole `unit`s (batches)."""
        self.modes += [service, raw]
        first = warm_up(service, self.source, warmup)[0]
        if mirror_key is not None:
            check_mirror(self.db.engine, self.world, first, mirror_key(first))
        warm_up(raw, self.source, warmup)
        self.analyze()
        measure_interleaved([service, raw], self.source, round_sizes(total, rounds, unit),
                            self.backend_cpu)
        return [service, raw]

    def finish(self) -> None:
        """The books balance and hold exactly what every mode posted."""
        result, counts = check_books(self.db.engine, self.modes, self.world)
        print(f"\nverify: balanced={result.balanced} entries={result.entries:,} "
              f"postings={result.postings:,} loans={counts['loans']:,} pledges={counts['pledges']:,}"
              f" accounts={counts['accounts']:,} idempotency_keys={counts['idempotency_keys']:,}"
              " - all as posted (warm-up and profile runs included; the chain is left unsealed)")


@contextmanager
def loan_bench(url: str, refresh_statistics: bool = True) -> Iterator[LoanBench]:
    """A scratch database on the server `url` names, with the world set up; dropped at exit."""
    from api import create_app
    check_column_lists()
    with throwaway_database(url) as bench_db, ExitStack() as stack:
        world = setup_world(bench_db.engine)
        backend_cpu = BackendCpu(bench_db.conninfo)
        stack.callback(backend_cpu.close)
        (raw_conn,) = stack.enter_context(raw_connections(bench_db, 1))
        yield LoanBench(bench_db, world, CaseSource(world), create_app(bench_db.engine).test_client(),
                        raw_conn, backend_cpu, refresh_statistics)


def describe(bench: LoanBench, what: str, how: Sequence[str] = ()) -> None:
    """The run's header: what is measured, on which database and machine, and how."""
    backend = "SQLite (temporary file)" if bench.sqlite else "PostgreSQL"
    print(f"ipledger loans benchmark: {what}")
    print(f"database: {backend} scratch database {bench.db.engine.url.database}, migrated to head,"
          " removed at exit")
    print_machine_info(machine_info(bench.db.engine))
    print(f"  load average        {load_average()} (before the run; other work on this machine"
          " shares its cores)")
    print(f"goals: {GOAL_SINGLE_PER_S:,} single posts/s, {GOAL_BATCH_PER_S:,} batch loans/s")
    print("per loan the service writes: 1 loans row, 2 pledges, 2 accounts (receivable, payable),"
          "\n  1 entries row (loan_disbursed) + 4 postings; per request 1 idempotency_keys row.")
    print("raw baseline: the same rows, column for column (checked against the service's rows),"
          "\n  into the SAME migrated tables (same foreign keys, indexes"
          + ("" if bench.sqlite else ", deferred balance trigger at commit") + ");"
          "\n  it skips HTTP, auth, idempotency lock/lookup, validation, lookups, read-back,"
          "\n  SQLAlchemy.")
    for line in how:
        print(line)
    print()


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every loan benchmark takes (--url, --rounds, --no-analyze)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url(),
                        help="server to create the scratch database on (default: "
                             "$IPLEDGER_BENCH_POSTGRES_URL or a local PostgreSQL `test`)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per pair of modes (5)")
    parser.add_argument("--no-analyze", action="store_true",
                        help="do not ANALYZE before each timed phase (shows stale-statistics plans)")
    return parser


def parse_bounded(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                  bounds: dict[str, tuple[int, int]]) -> argparse.Namespace:
    """Parse, and refuse any integer option outside its (low, high) bounds."""
    args = parser.parse_args(argv)
    for name, (low, high) in {"rounds": (1, MAX_ROUNDS), **bounds}.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be {low}..{high:,}")
    return args
