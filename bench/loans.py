"""Benchmark: posting loans through the HTTP API (one per request, and in batches) against raw SQL
of the same writes, in one run.

What it measures: loans per second for loans with two pledges (a patent and a trademark), each
posted into the same scratch database in these modes:
1. http single      - POST /v1/loans through the real WSGI app (Flask test client: the whole
                      Flask/werkzeug/flask-smorest stack, no sockets), one loan per request, with
                      a Bearer key and a fresh Idempotency-Key, as a bank integration sends it;
2. raw single       - psycopg 3 directly, one transaction per loan, the same rows: INSERT loans
                      RETURNING id; 2 pledges (executemany); 2 accounts (one INSERT RETURNING);
                      INSERT entries RETURNING id; 4 postings (executemany); the idempotency_keys
                      row; COMMIT;
3. http batch       - POST /v1/loans/batch, B loans per request (with an Idempotency-Key: a
                      careful bank client retries its monthly load safely);
4. raw batch        - psycopg 3, B loans per transaction: reserve ids from the loans, accounts
                      and entries sequences, COPY loans, pledges, accounts, entries, postings,
                      INSERT the batch's idempotency_keys row, COMMIT;
5. http server      - (PostgreSQL, gunicorn installed) POST /v1/loans to a real gunicorn
                      (gthread workers) on 127.0.0.1, from K client threads in this process, each
                      with a keep-alive http.client connection;
6. raw single xK    - raw single from K threads, each on its own connection: the raw baseline
                      at the same concurrency as mode 5.
The raw rows carry every column the service writes (the column lists are asserted against
`ledger.schema`, and before timing one loan of each kind is compared row by row with what the
service wrote). The raw modes insert into the SAME migrated tables, so they pay the same
foreign keys, indexes and deferred balance trigger at commit; what they skip is HTTP, JSON,
authentication, idempotency locking and lookup, validation, the borrower/programme/contract
lookups, SME classification, reading the loan back for the response, and SQLAlchemy.
Each pair of modes (service, raw) is warmed up untimed, the planner statistics are refreshed
(ANALYZE, untimed: see `analyze`), then the pair is timed in alternating rounds whose times are
summed per mode, so drift on a shared machine hits both alike. Beside wall-clock time
it reports the CPU seconds of the Python side (this process, or the gunicorn workers) and of the
PostgreSQL backends serving the scratch database (read from /proc when the server is local).
Afterwards `ledger.chain.verify` must report balanced books, and the loans, pledges, accounts,
entries, postings and idempotency rows must be exactly what the modes posted.
Then it profiles (cProfile) the http single and http batch paths and breaks the time down.

How to run (from the repository root):
    python bench/loans.py [--url postgresql://postgres@127.0.0.1:5432/test]
                          [--single 1000] [--batch-loans 20000] [--batch-size 5000]
                          [--rounds 5] [--clients 8] [--server-workers 2] [--server-threads 4]
                          [--no-server] [--no-profile] [--profile-single 300] [--no-analyze]
CI smoke run (seconds): python bench/loans.py --single 20 --batch-loans 200 --batch-size 100
The URL defaults to $IPLEDGER_BENCH_POSTGRES_URL, else the one above. The benchmark creates its
own database `ipl_bench_<random>` on that server and always drops it. `--url sqlite:///x` is a
smoke run on a temporary SQLite file (raw modes use the `sqlite3` module with INSERT ... RETURNING
per row; no server mode, no database CPU).
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import http.client
import importlib.util
import io
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # `bench` is not installed

from sqlalchemy import func, select  # noqa: E402

from bench.common import (BenchDatabase, example_terms, open_raw_connection, default_url, machine_info,  # noqa: E402
                          print_machine_info, print_table, throwaway_database)
from ledger import accounts as chart  # noqa: E402
from ledger.chain import verify  # noqa: E402
from ledger.db import run_in_transaction, utcnow  # noqa: E402
from ledger.identifiers import credit_code_check_char, patent_check_char  # noqa: E402
from ledger.institutions import create_institution  # noqa: E402
from ledger.journal import SYSTEM, ensure_accounts  # noqa: E402
from ledger.keys import create_key  # noqa: E402
from ledger.parties import BorrowerFacts, upsert_borrower  # noqa: E402
from ledger.programs import create_program  # noqa: E402
from ledger.terms import parse_terms  # noqa: E402
from ledger.schema import (accounts, api_keys, entries, idempotency_keys, loans,  # noqa: E402
                           pledges, postings)

GOAL_SINGLE_PER_S = 1_000
GOAL_BATCH_PER_S = 20_000
WARMUP_SINGLE = 20
MAX_LOANS = 1_000_000
MAX_BATCH_SIZE = 10_000  # ledger.loans.MAX_BATCH: the API refuses more
MAX_ROUNDS = 100
MAX_CLIENTS = 64
MAX_SERVER_PROCESSES = 16
BORROWER_COUNT = 200
SERVER_START_TIMEOUT_S = 60
CLIENT_RETRIES = 3
PROFILE_TOP = 20

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
LOAN_COLUMNS = ("bank_id", "contract_no", "borrower_id", "program_id", "program_version_id",
                "principal_fen", "annual_rate", "start_date", "maturity_date", "ip_share",
                "insured_amount_fen", "pledge_type", "borrower_size_class", "borrower_sme",
                "borrower_private", "borrower_region", "borrower_industry", "size_standard",
                "status", "closed_on", "created_by_key_id", "created_at")
PLEDGE_COLUMNS = ("loan_id", "position", "kind", "number", "nice_class", "registration_no",
                  "registered_on", "appraised_value_fen")
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


def setup_world(engine) -> World:
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
        for i in range(BORROWER_COUNT):
            facts = BorrowerFacts(credit_code(i), f"Bench Borrower {i}", REGION_BORROWER,
                                  BORROWER_INDUSTRY, 20 + (i * 7) % 400,
                                  (5_000_000 + i * 250_000) * 100, (8_000_000 + i * 100_000) * 100,
                                  i % 5 != 0)
            made.append(upsert_borrower(conn, facts, today=START_DATE)[0])
        ids = ensure_accounts(conn, [chart.settlement(bank.id)]
                              + [chart.borrower_cash(b.id) for b in made])
        _prefix, secret = create_key(conn, "bank", BANK_CODE)
        key_id = conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == _prefix)).scalar_one()
        rows = tuple(BorrowerRow(b.id, b.facts.credit_code, b.facts.region, b.facts.industry,
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
    pledge_rows_ = ((0, "patent", patent, None, f"Y2025440{index:07d}", date(2025, 2, 20), appraised_fen),
                    (1, "trademark", trademark, TRADEMARK_NICE_CLASS, f"TM-2025-{index:07d}",
                     date(2025, 2, 21), None))
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


def http_single(client, world: World) -> tuple[Callable, Callable]:
    def prepare(cases):
        return [(json.dumps(c.payload).encode(), bank_headers(world, f"bench-single-{c.index}"))
                for c in cases]

    def post(prepared):
        for body, headers in prepared:
            response = client.post("/v1/loans", data=body, headers=headers)
            _expect(response.status_code, response.get_data(), "POST /v1/loans")
    return prepare, post


def http_batch(client, world: World, batch_size: int) -> tuple[Callable, Callable]:
    def prepare(cases):
        return [(json.dumps({"loans": [c.payload for c in chunk]}).encode(),
                 bank_headers(world, f"bench-batch-{chunk[0].index}"), len(chunk))
                for chunk in chunks(cases, batch_size)]

    def post(prepared):
        for body, headers, count in prepared:
            response = client.post("/v1/loans/batch", data=body, headers=headers)
            _expect(response.status_code, response.get_data(), "POST /v1/loans/batch")
            assert response.get_json()["count"] == count
    return prepare, post


# --- raw rows: exactly what the service writes --------------------------------------------------

def check_column_lists() -> None:
    """The raw baseline must write every column the service writes: fail loudly if the schema
    grew a column this file does not know about."""
    for table, columns in WRITTEN_TABLES:
        expected = {c.name for c in table.columns} - {"id"}
        assert set(columns) == expected, (
            f"bench/loans.py writes {sorted(columns)} to {table.name}, the schema has {sorted(expected)}")


def loan_values(case: LoanCase, world: World, now: datetime) -> tuple:
    b = case.borrower
    return (world.bank_id, case.contract_no, b.id, world.program_id, world.program_version_id,
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


def raw_single(conn, world: World, marker: str, tag: str = "raw-single") -> tuple[Callable, Callable]:
    writer = RawWriter(world, marker)

    def post(cases):
        cur = conn.cursor()
        for case in cases:
            writer.write(cur, case, f"bench-{tag}-{case.index}", utcnow(), store_outcome=True)
            conn.commit()
    return (lambda cases: cases), post


def raw_batch_postgres(conn, world: World, batch_size: int) -> tuple[Callable, Callable]:
    """B loans per transaction: reserve ids from the sequences, COPY every table, COMMIT."""
    reserve = ("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)")
    copy_sql = {name: f"COPY {name} ({', '.join(columns)}) FROM STDIN"
                for name, columns in (("loans", ("id",) + LOAN_COLUMNS), ("pledges", PLEDGE_COLUMNS),
                                      ("accounts", ("id",) + ACCOUNT_COLUMNS),
                                      ("entries", ("id",) + ENTRY_COLUMNS),
                                      ("postings", POSTING_COLUMNS))}
    idempotency_sql = insert_sql("idempotency_keys", IDEMPOTENCY_COLUMNS, "%s")

    def ids(cur, table: str, count: int) -> list[int]:
        return [row[0] for row in cur.execute(reserve, (table, count))]

    def post(cases):
        cur = conn.cursor()
        for chunk in chunks(cases, batch_size):
            now, key = utcnow(), f"bench-raw-batch-{chunk[0].index}"
            loan_ids = ids(cur, "loans", len(chunk))
            account_ids = ids(cur, "accounts", 2 * len(chunk))
            entry_ids = ids(cur, "entries", len(chunk))
            with cur.copy(copy_sql["loans"]) as copy:
                for loan_id, case in zip(loan_ids, chunk):
                    copy.write_row((loan_id, *loan_values(case, world, now)))
            with cur.copy(copy_sql["pledges"]) as copy:
                for loan_id, case in zip(loan_ids, chunk):
                    for row in pledge_rows(loan_id, case):
                        copy.write_row(row)
            with cur.copy(copy_sql["accounts"]) as copy:
                for i, (loan_id, case) in enumerate(zip(loan_ids, chunk)):
                    receivable, payable = account_specs(loan_id, case, world)
                    copy.write_row((account_ids[2 * i], *account_values(receivable, now)))
                    copy.write_row((account_ids[2 * i + 1], *account_values(payable, now)))
            with cur.copy(copy_sql["entries"]) as copy:
                for entry_id, loan_id, case in zip(entry_ids, loan_ids, chunk):
                    copy.write_row((entry_id, *entry_values(loan_id, case, world, key, now)))
            with cur.copy(copy_sql["postings"]) as copy:
                for i, (entry_id, case) in enumerate(zip(entry_ids, chunk)):
                    for row in posting_rows(entry_id, account_ids[2 * i], account_ids[2 * i + 1],
                                            case, world):
                        copy.write_row(row)
            body = json.dumps({"count": len(chunk), "loans": [
                {"id": loan_id, "contract_no": case.contract_no} for loan_id, case in zip(loan_ids, chunk)]})
            cur.execute(idempotency_sql, idempotency_values(world, key, "/v1/loans/batch", body, None, now))
            conn.commit()
    return (lambda cases: cases), post


def raw_batch_sqlite(conn, world: World, batch_size: int) -> tuple[Callable, Callable]:
    """SQLite: B loans per transaction, each loan's rows statement by statement (no COPY)."""
    writer = RawWriter(world, "?")
    idempotency_sql = insert_sql("idempotency_keys", IDEMPOTENCY_COLUMNS, "?")

    def post(cases):
        cur = conn.cursor()
        for chunk in chunks(cases, batch_size):
            now, key = utcnow(), f"bench-raw-batch-{chunk[0].index}"
            loan_ids = [writer.write(cur, case, key, now, store_outcome=False) for case in chunk]
            body = json.dumps({"count": len(chunk), "loans": [
                {"id": loan_id, "contract_no": case.contract_no} for loan_id, case in zip(loan_ids, chunk)]})
            cur.execute(idempotency_sql, idempotency_values(world, key, "/v1/loans/batch", body, None, now))
            conn.commit()
    return (lambda cases: cases), post


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


# --- a real server: gunicorn on 127.0.0.1, K keep-alive clients --------------------------------

@dataclass
class Server:
    process: subprocess.Popen
    port: int
    workers: int
    threads: int
    log: object

    def wait_until_ready(self) -> None:
        _wait_until_ready(self.process, self.port, self.log)


def gunicorn_available() -> bool:
    return importlib.util.find_spec("gunicorn") is not None


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn_server(bench_db: BenchDatabase, workers: int, threads: int) -> Iterator[Server]:
    """`gunicorn wsgi:app` (gthread workers) on the scratch database, started at once (it boots
    while the benchmark sets up; `Server.wait_until_ready` before use); stopped (SIGTERM to the
    master we started, by its pid) on the way out, before the database is dropped."""
    port = _free_port()
    env = {**os.environ,
           "IPLEDGER_DATABASE_URL": bench_db.engine.url.render_as_string(hide_password=False),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
               "--workers", str(workers), "--threads", str(threads),
               "--bind", f"127.0.0.1:{port}", "--keep-alive", "75", "--graceful-timeout", "5",
               "--log-level", "warning",
               "--chdir", str(REPO_ROOT), "wsgi:app"]
    with tempfile.TemporaryFile(prefix="ipl_bench_gunicorn_") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield Server(process, port, workers, threads, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n"
                               f"{log.read().decode(errors='replace')[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer /healthz within {SERVER_START_TIMEOUT_S}s")


def split_round_robin(items: Sequence, parts: int) -> list[list]:
    return [list(items[k::parts]) for k in range(parts)]


def run_threads(work: Callable[[int, list], None], shares: list[list]) -> None:
    """Run work(k, shares[k]) on one thread per share; re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(k: int, share: list) -> None:
        try:
            work(k, share)
        except BaseException as exc:  # noqa: BLE001 - carried to the caller
            failures.append(exc)
    threads = [threading.Thread(target=guarded, args=(k, share)) for k, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def http_server_single(server: Server, world: World, clients: int
                       ) -> tuple[Callable, Callable, Callable]:
    """K client threads, each with one keep-alive connection, POST /v1/loans one loan each;
    returns prepare, post and close (the client connections)."""
    connections: list[http.client.HTTPConnection | None] = [None] * clients

    def connection(k: int) -> http.client.HTTPConnection:
        if connections[k] is None:
            connections[k] = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        return connections[k]

    def prepare(cases):
        bodies = [(json.dumps(c.payload).encode(), bank_headers(world, f"bench-server-{c.index}"))
                  for c in cases]
        return split_round_robin(bodies, clients)

    def send(k: int, share: list) -> None:
        for body, headers in share:
            for attempt in range(CLIENT_RETRIES):
                try:
                    conn = connection(k)
                    conn.request("POST", "/v1/loans", body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    # The server closed the keep-alive connection: reconnect and send again;
                    # the Idempotency-Key makes the retry safe (a replay answers 201 too).
                    connections[k].close()
                    connections[k] = None
                    if attempt == CLIENT_RETRIES - 1:
                        raise
            _expect(response.status, data, "POST /v1/loans (gunicorn)")

    def close() -> None:
        for k, conn in enumerate(connections):
            if conn is not None:
                conn.close()
                connections[k] = None
    return prepare, lambda shares: run_threads(send, shares), close


def raw_single_concurrent(connections: list, world: World) -> tuple[Callable, Callable]:
    """Raw single from K threads, one connection each: the raw baseline at the server's
    concurrency (commits of concurrent transactions can share a WAL flush)."""
    writer = RawWriter(world, "%s")

    def send(k: int, cases: list) -> None:
        conn = connections[k]
        cur = conn.cursor()
        for case in cases:
            writer.write(cur, case, f"bench-raw-concurrent-{case.index}", utcnow(),
                         store_outcome=True)
            conn.commit()

    return (lambda cases: split_round_robin(cases, len(connections))), \
        (lambda shares: run_threads(send, shares))


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


# --- profiling ----------------------------------------------------------------------------------

SITE_MARKERS = ("site-packages/", "dist-packages/", "lib/python3")


def short_path(filename: str) -> str:
    name = filename.replace("\\", "/")
    root = str(REPO_ROOT).replace("\\", "/") + "/"
    if name.startswith(root):
        return name[len(root):]
    for marker in SITE_MARKERS[:2]:
        if marker in name:
            return name.split(marker, 1)[1]
    return name.rsplit("/", 2)[-1] if "/" in name else name


def function_label(key: tuple) -> str:
    filename, line, name = key
    if filename == "~":
        return name  # a builtin, e.g. <method 'execute' of 'psycopg.Cursor' objects>
    return f"{short_path(filename)}:{line}({name})"


def print_top(stats: pstats.Stats, sort: str, loans_count: int) -> None:
    index = 3 if sort == "cumulative" else 2
    rows = sorted(stats.stats.items(), key=lambda item: item[1][index], reverse=True)[:PROFILE_TOP]
    print_table([(f"{cc}/{nc}" if cc != nc else str(nc), tt, ct,
                  1000 * (ct if index == 3 else tt) / loans_count, function_label(key))
                 for key, (cc, nc, tt, ct, _callers) in rows],
                headers=("ncalls", "tottime", "cumtime", f"ms/loan ({sort[:3]})", "function"))


# (label, [(path suffix, function name)...][, count calls]); the time of a part is the cumulative
# time of its functions (their own callees included). Indented labels are inside the part above.
DBAPI_EXECUTE = [("sqlalchemy/engine/default.py", "do_execute"),
                 ("sqlalchemy/engine/default.py", "do_execute_no_params")]
DBAPI_EXECUTEMANY = [("sqlalchemy/engine/default.py", "do_executemany")]
CONNECTION_EXECUTE = [("sqlalchemy/engine/base.py", "execute")]
COMMIT = [("sqlalchemy/engine/default.py", "do_commit")]
ROLLBACK = [("sqlalchemy/engine/default.py", "do_rollback")]
PRE_PING = [("sqlalchemy/engine/default.py", "_do_ping_w_event")]
BREAKDOWN = (
    ("Flask app (wsgi_app), the rest is the test client", [("flask/app.py", "wsgi_app")]),
    ("  auth: Bearer key lookup (read connection)", [("api/auth.py", "authenticate_request")]),
    ("  JSON body parse (request.get_json)", [("api/loans.py", "json_body")]),
    ("  idempotency: fingerprint (canonical JSON + sha256)", [("api/idempotency.py", "fingerprint")]),
    ("  idempotency: advisory lock", [("api/idempotency.py", "_hold_key")]),
    ("  idempotency: look up stored outcome", [("ledger/idempotency.py", "find")]),
    ("  create_loans (all of it)", [("ledger/loans.py", "create_loans")]),
    ("    parse + validate payload (parse_batch)", [("ledger/loans.py", "parse_batch")]),
    ("    borrower lookup", [("ledger/parties.py", "borrowers_by_code")]),
    ("    programme load", [("ledger/programs.py", "load_programs")]),
    ("      of which parse_terms of stored terms", [("ledger/terms.py", "parse_terms")]),
    ("    bind: programme version, SME classification", [("ledger/loans.py", "_bind")]),
    ("      of which sme.classify", [("ledger/sme.py", "classify")]),
    ("    contract-number check (SELECT)", [("ledger/loans.py", "_check_contract_numbers")]),
    ("    build loan rows", [("ledger/loans.py", "_loan_row")]),
    ("    INSERT pledges", [("ledger/loans.py", "_insert_pledges")]),
    ("    accounts + journal (_disburse)", [("ledger/loans.py", "_disburse")]),
    ("      ensure_accounts (settlement, borrower cash)", [("ledger/journal.py", "ensure_accounts")]),
    ("      create_accounts (receivable, payable)", [("ledger/journal.py", "create_accounts")]),
    ("      post_entries (check accounts, INSERT entries, postings)",
     [("ledger/journal.py", "post_entries")]),
    ("  read the loan back for the response (get_loan)", [("ledger/loans.py", "get_loan")]),
    ("  render response (marshmallow dump)", [("marshmallow/schema.py", "dump")]),
    ("  idempotency: store outcome", [("ledger/idempotency.py", "store")]),
    ("cross-cutting:", []),
    ("  SQLAlchemy insertmanyvalues (multi-row INSERT ... RETURNING pages)",
     [("sqlalchemy/engine/base.py", "_exec_insertmany_context")]),
    ("  psycopg: placeholder parsing of long statements (not cached)",
     [("psycopg/_queries.py", "_query2pg_nocache")]),
    ("  psycopg: executemany in pipeline mode (one INSERT per row)",
     [("psycopg/_cursor_base.py", "_executemany_gen_pipeline")], False),
    ("  DBAPI execute/executemany: psycopg incl. waiting on the server",
     DBAPI_EXECUTE + DBAPI_EXECUTEMANY),
    ("  SQLAlchemy Connection.execute (incl. DBAPI above)", CONNECTION_EXECUTE),
    ("  COMMIT (incl. deferred balance triggers)", COMMIT),
    ("  ROLLBACK on pool return (+ psycopg's DEALLOCATE ALL after it)", ROLLBACK),
    ("  pool checkout (incl. pre-ping SELECT 1)", [("sqlalchemy/pool/base.py", "_checkout")]),
    ("    of which pre-ping", PRE_PING),
)


def _find(stats: pstats.Stats, suffix: str, name: str) -> list[tuple]:
    return [(key, value) for key, value in stats.stats.items()
            if key[2] == name and key[0].replace("\\", "/").endswith(suffix)]


def part_time(stats: pstats.Stats, functions) -> tuple[float, int]:
    seconds, calls = 0.0, 0
    for suffix, name in functions:
        for _key, (_cc, nc, _tt, ct, _callers) in _find(stats, suffix, name):
            seconds += ct
            calls += nc
    return seconds, calls


def print_breakdown(stats: pstats.Stats, total_s: float, loans_count: int, requests: int) -> None:
    rows = []
    for label, functions, *count_calls in BREAKDOWN:
        if not functions:
            rows.append((label, "", "", "", ""))
            continue
        seconds, calls = part_time(stats, functions)
        # A generator's ncalls counts its resumptions, not calls: leave those blank.
        rows.append((label, seconds, f"{100 * seconds / total_s:.1f}%", 1000 * seconds / loans_count,
                     f"{calls / requests:.1f}" if count_calls != [False] else ""))
    dbapi, _ = part_time(stats, DBAPI_EXECUTE + DBAPI_EXECUTEMANY)
    execute, _ = part_time(stats, CONNECTION_EXECUTE)
    rows.append(("  => SQLAlchemy's own overhead (execute - DBAPI)", execute - dbapi,
                 f"{100 * (execute - dbapi) / total_s:.1f}%", 1000 * (execute - dbapi) / loans_count, ""))
    print_table(rows, headers=("part", "seconds", "share", "ms/loan", "calls/request"))
    executes = part_time(stats, DBAPI_EXECUTE)[1]
    executemanys = part_time(stats, DBAPI_EXECUTEMANY)[1]
    commits, pings, rollbacks = (part_time(stats, f)[1] for f in (COMMIT, PRE_PING, ROLLBACK))
    print(f"  database calls per request: {executes / requests:.1f} execute + "
          f"{executemanys / requests:.1f} executemany (psycopg pipelines one INSERT per row) + "
          f"{pings / requests:.1f} pre-ping + {rollbacks / requests:.1f} rollback + "
          f"{commits / requests:.1f} commit")


def profile_mode(label: str, mode: Mode, cases: list[LoanCase]) -> None:
    prepared = mode.prepare(cases)
    requests = mode.requests(len(cases))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    mode.post(prepared)
    profiler.disable()
    total_s = time.perf_counter() - started
    mode.loans_written += len(cases)
    mode.outcomes_written += requests
    stats = pstats.Stats(profiler, stream=io.StringIO())
    print(f"\n=== profile: {label}: {len(cases):,} loans in {requests:,} request(s), "
          f"{total_s:.2f} s under cProfile ({len(cases) / total_s:,.0f} loans/s) ===")
    print(f"\ntop {PROFILE_TOP} by cumulative time:")
    print_top(stats, "cumulative", len(cases))
    print(f"\ntop {PROFILE_TOP} by own time (tottime):")
    print_top(stats, "tottime", len(cases))
    print("\nwhere the time goes (cumulative time of each part; cProfile inflates Python-heavy parts):")
    print_breakdown(stats, total_s, len(cases), requests)


# --- the run --------------------------------------------------------------------------------------

@dataclass
class Settings:
    single: int
    batch_loans: int
    batch_size: int
    rounds: int
    clients: int
    server_workers: int
    server_threads: int
    server: bool
    profile: bool
    profile_single: int
    analyze: bool


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


def run(bench_db: BenchDatabase, settings: Settings,
        report: Callable[[list[Mode], list[str]], None]) -> tuple[list[Mode], World]:
    """Set up, measure every pair of modes, `report` the results, then profile; returns the
    modes (with what each wrote, for `check_books`) and the world."""
    from api import create_app
    check_column_lists()
    engine = bench_db.engine
    sqlite = bench_db.conninfo is None
    notes: list[str] = []
    if sqlite and settings.server:
        notes.append("server mode skipped: PostgreSQL only (SQLite allows one writer at a time).")
    elif not settings.server:
        notes.append("server mode skipped (--no-server, or gunicorn is not installed: "
                     "pip install -e '.[server]').")
    with ExitStack() as stack:
        server = (stack.enter_context(gunicorn_server(bench_db, settings.server_workers,
                                                      settings.server_threads))
                  if settings.server and not sqlite else None)
        world = setup_world(engine)
        source = CaseSource(world)
        client = create_app(engine).test_client()
        backend_cpu = BackendCpu(bench_db.conninfo)
        stack.callback(backend_cpu.close)
        (raw_conn,) = stack.enter_context(raw_connections(bench_db, 1))
        own_cpu = time.process_time
        b = settings.batch_size
        single = Mode("http single (test client)", *http_single(client, world), own_cpu, one_per_loan)
        raw_one = Mode("raw single (1 connection)",
                       *raw_single(raw_conn, world, "?" if sqlite else "%s"), own_cpu, one_per_loan)
        batch = Mode(f"http batch ({b:,}/request)", *http_batch(client, world, b), own_cpu, per_chunk(b))
        raw_many = Mode(f"raw batch ({b:,}/tx, {'INSERT per row' if sqlite else 'COPY'})",
                        *(raw_batch_sqlite if sqlite else raw_batch_postgres)(raw_conn, world, b),
                        own_cpu, per_chunk(b))
        modes = [single, raw_one]
        first = warm_up(single, source, WARMUP_SINGLE)[0]
        check_mirror(engine, world, first, f"bench-single-{first.index}")
        warm_up(raw_one, source, WARMUP_SINGLE)
        analyze(raw_conn, settings)
        measure_interleaved([single, raw_one], source, round_sizes(settings.single, settings.rounds),
                            backend_cpu)
        if server is not None:
            modes += run_server_modes(bench_db, server, world, source, settings, backend_cpu)
        modes += [batch, raw_many]
        warmup_batch = min(b, 200)
        first = warm_up(batch, source, warmup_batch)[0]
        check_mirror(engine, world, first, f"bench-batch-{first.index}")
        warm_up(raw_many, source, warmup_batch)
        analyze(raw_conn, settings)
        measure_interleaved([batch, raw_many], source,
                            round_sizes(settings.batch_loans, settings.rounds, b), backend_cpu)
        report(modes, notes)
        if settings.profile:
            analyze(raw_conn, settings)
            profile_mode("http single (test client)", single, source.take(settings.profile_single))
            profile_mode(f"http batch ({b:,}/request)", batch, source.take(b))
    return modes, world


def analyze(raw_conn, settings: Settings) -> None:
    """Refresh the planner's statistics (untimed) before each timed phase.

    Why: the scratch tables grow by tens of thousands of rows within seconds, faster than
    autovacuum re-analyzes them; with stale statistics PostgreSQL plans the read-back of a new
    loan's events (`ledger.loans.loan_events`) as a sequential scan of `postings`, and the
    single-post time then grows with the table. A long-running database has fresh statistics;
    `--no-analyze` shows the stale case."""
    if settings.analyze:
        raw_conn.execute("ANALYZE")
        raw_conn.commit()


def run_server_modes(bench_db: BenchDatabase, server: Server, world: World, source: CaseSource,
                     settings: Settings, backend_cpu: BackendCpu) -> list[Mode]:
    k = settings.clients
    server.wait_until_ready()
    with raw_connections(bench_db, k) as conns:
        prepare, post, close = http_server_single(server, world, k)
        served = Mode(f"http single (gunicorn {server.workers}w x {server.threads}t, {k} clients)",
                      prepare, post, lambda: process_tree_cpu_s(server.process.pid), one_per_loan,
                      driver_cpu_s=0.0)
        raw_k = Mode(f"raw single ({k} connections)", *raw_single_concurrent(conns, world),
                     time.process_time, one_per_loan)
        try:
            # Warm every worker: each imports the app and fills its caches on first use.
            warm_up(served, source, max(WARMUP_SINGLE, 4 * k))
            warm_up(raw_k, source, max(WARMUP_SINGLE, 4 * k))
            analyze(conns[0], settings)
            measure_interleaved([served, raw_k], source,
                                round_sizes(settings.single, settings.rounds), backend_cpu)
        finally:
            close()
    return [served, raw_k]


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


def describe(bench_db: BenchDatabase, settings: Settings) -> None:
    sqlite = bench_db.conninfo is None
    backend = "SQLite (temporary file)" if sqlite else "PostgreSQL"
    print(f"ipledger loans benchmark: {settings.single:,} single posts per single mode, "
          f"{settings.batch_loans:,} loans per batch mode in batches of {settings.batch_size:,}; "
          f"2 pledges per loan (patent + trademark); modes alternated in up to "
          f"{settings.rounds} timed rounds")
    print(f"database: {backend} scratch database {bench_db.engine.url.database}, migrated to head,"
          " removed at exit")
    print_machine_info(machine_info(bench_db.engine))
    print(f"  load average        {load_average()} (before the run; other work on this machine"
          " shares its cores)")
    print(f"goals: {GOAL_SINGLE_PER_S:,} single posts/s, {GOAL_BATCH_PER_S:,} batch loans/s")
    print("per loan the service writes: 1 loans row, 2 pledges, 2 accounts (receivable, payable),"
          "\n  1 entries row (loan_disbursed) + 4 postings; per request 1 idempotency_keys row.")
    print("raw baseline: the same rows, column for column (checked against the service's rows),"
          "\n  into the SAME migrated tables (same foreign keys, indexes"
          + ("" if sqlite else ", deferred balance trigger at commit") + ");"
          "\n  it skips HTTP, auth, idempotency lock/lookup, validation, lookups, read-back,"
          "\n  SQLAlchemy.")
    print("raw single: per loan INSERT loans RETURNING; executemany pledges; INSERT 2 accounts"
          "\n  RETURNING; INSERT entries RETURNING; executemany postings; INSERT idempotency_keys;"
          " COMMIT.")
    if sqlite:
        print("raw batch: the raw single statements per loan (SQLite has no COPY), one COMMIT per"
              " batch.")
    else:
        print("raw batch: reserve ids (SELECT nextval(seq) FROM generate_series) for loans,"
              "\n  accounts, entries; COPY loans, pledges, accounts, entries, postings; INSERT the"
              "\n  batch's idempotency_keys row; COMMIT.")
    print()


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url(),
                        help="server to create the scratch database on (default: "
                             "$IPLEDGER_BENCH_POSTGRES_URL or a local PostgreSQL `test`)")
    parser.add_argument("--single", type=int, default=1000, help="loans per single mode (1000)")
    parser.add_argument("--batch-loans", type=int, default=20_000, help="loans per batch mode (20000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="loans per batch request (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per pair of modes (5)")
    parser.add_argument("--clients", type=int, default=8,
                        help="client threads (and raw connections) of the server mode (8)")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--server-threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--no-server", action="store_true", help="skip the gunicorn mode")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument("--no-analyze", action="store_true",
                        help="do not ANALYZE before each timed phase (shows stale-statistics plans)")
    parser.add_argument("--profile-single", type=int, default=300,
                        help="single posts to profile (300, at most --single)")
    args = parser.parse_args(argv)
    for name, low, high in (("single", 1, MAX_LOANS), ("batch_loans", 1, MAX_LOANS),
                            ("batch_size", 1, MAX_BATCH_SIZE), ("rounds", 1, MAX_ROUNDS),
                            ("clients", 1, MAX_CLIENTS), ("server_workers", 1, MAX_SERVER_PROCESSES),
                            ("server_threads", 1, MAX_CLIENTS), ("profile_single", 1, MAX_LOANS)):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be {low}..{high:,}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    server = not args.no_server and gunicorn_available()
    settings = Settings(args.single, args.batch_loans, args.batch_size, args.rounds, args.clients,
                        args.server_workers, args.server_threads, server, not args.no_profile,
                        min(args.profile_single, args.single), not args.no_analyze)
    with throwaway_database(args.url) as bench_db:
        describe(bench_db, settings)
        modes, world = run(bench_db, settings, report)
        result, counts = check_books(bench_db.engine, modes, world)
        print(f"\nverify: balanced={result.balanced} entries={result.entries:,} "
              f"postings={result.postings:,} loans={counts['loans']:,} pledges={counts['pledges']:,}"
              f" accounts={counts['accounts']:,} idempotency_keys={counts['idempotency_keys']:,}"
              " - all as posted (warm-up and profile runs included; the chain is left unsealed)")


if __name__ == "__main__":
    main()
