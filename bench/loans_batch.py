"""Benchmark: posting loans through the batch endpoint, against raw SQL of the same writes, in
one run.

What it measures: loans per second, and wall and CPU milliseconds per loan, of two modes
posting loans with two pledges (a patent and a trademark) into one scratch database:
- http batch - POST /v1/loans/batch through the real WSGI app (Flask test client), B loans per
               request, each with an Idempotency-Key (a careful bank client retries its monthly
               load safely); the service reads every loan with ledger.loans.LoanIn, checks
               references, and writes through the bulk path (COPY on PostgreSQL);
- raw batch  - psycopg 3, B loans per transaction: reserve ids from the loans, accounts and
               entries sequences, COPY loans, pledges, accounts, entries, postings, INSERT the
               batch's idempotency_keys row, COMMIT (SQLite: the rows statement by statement,
               one COMMIT per batch).
Both are warmed up untimed with a small batch (the first loan the service posts is compared row
by row with the raw rows for it), the statistics refreshed, then the pair is timed in
alternating rounds of whole batches; CPU is that of this process and of the PostgreSQL
backends. Afterwards the books must balance and hold exactly what was posted. Shared
machinery: bench/common.py.

How to run (from the repository root):
    python bench/loans_batch.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                [--loans 20000] [--batch-size 5000] [--rounds 5] [--no-analyze]
The URL defaults to $IPLEDGER_BENCH_POSTGRES_URL, else the one above; the benchmark creates its
own database `ipl_bench_<random>` there and always drops it. `--url sqlite:///x` is a smoke run
on a temporary SQLite file.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import (IDEMPOTENCY_COLUMNS, LOAN_COLUMNS, PLEDGE_COLUMNS,  # noqa: E402
                          ACCOUNT_COLUMNS, ENTRY_COLUMNS, POSTING_COLUMNS, MAX_BATCH_SIZE,
                          MAX_LOANS, LoanBench, Mode, RawWriter, World, _expect, account_specs,
                          account_values, argument_parser, bank_headers, chunks, describe,
                          entry_values, idempotency_values, insert_sql, loan_bench, loan_values,
                          parse_bounded, per_chunk, pledge_rows, posting_rows, report)
from ledger.db import utcnow  # noqa: E402

WARMUP_BATCH = 200  # loans, in one request (or fewer: at most one batch)
HOW_POSTGRES = ("raw batch: reserve ids (SELECT nextval(seq) FROM generate_series) for loans,"
                "\n  accounts, entries; COPY loans, pledges, accounts, entries, postings; INSERT the"
                "\n  batch's idempotency_keys row; COMMIT.",)
HOW_SQLITE = ("raw batch: the raw single statements per loan (SQLite has no COPY), one COMMIT per"
              " batch.",)


def http_batch(client, world: World, batch_size: int) -> tuple[Callable, Callable]:
    """POST /v1/loans/batch, B loans per request, each request with its own Idempotency-Key."""
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


RESERVE_SQL = "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)"
COPY_SQL = {name: f"COPY {name} ({', '.join(columns)}) FROM STDIN"
            for name, columns in (("loans", ("id",) + LOAN_COLUMNS), ("pledges", PLEDGE_COLUMNS),
                                  ("accounts", ("id",) + ACCOUNT_COLUMNS),
                                  ("entries", ("id",) + ENTRY_COLUMNS),
                                  ("postings", POSTING_COLUMNS))}


def copy_batch(cur, world: World, chunk, key: str, lap: Callable[[str], None] = lambda step: None
               ) -> list[int]:
    """One batch's rows in the caller's transaction: reserve ids, COPY each table; `lap(step)`
    after each step (bench/db_floor.py times them). Returns the loan ids."""
    now = utcnow()

    def ids(table: str, count: int) -> list[int]:
        return [row[0] for row in cur.execute(RESERVE_SQL, (table, count))]

    loan_ids, account_ids, entry_ids = (ids("loans", len(chunk)), ids("accounts", 2 * len(chunk)),
                                        ids("entries", len(chunk)))
    lap("reserve ids")
    with cur.copy(COPY_SQL["loans"]) as copy:
        for loan_id, case in zip(loan_ids, chunk):
            copy.write_row((loan_id, *loan_values(case, world, now)))
    lap("COPY loans")
    with cur.copy(COPY_SQL["pledges"]) as copy:
        for loan_id, case in zip(loan_ids, chunk):
            for row in pledge_rows(loan_id, case):
                copy.write_row(row)
    lap("COPY pledges")
    with cur.copy(COPY_SQL["accounts"]) as copy:
        for i, (loan_id, case) in enumerate(zip(loan_ids, chunk)):
            receivable, payable = account_specs(loan_id, case, world)
            copy.write_row((account_ids[2 * i], *account_values(receivable, now)))
            copy.write_row((account_ids[2 * i + 1], *account_values(payable, now)))
    lap("COPY accounts")
    with cur.copy(COPY_SQL["entries"]) as copy:
        for entry_id, loan_id, case in zip(entry_ids, loan_ids, chunk):
            copy.write_row((entry_id, *entry_values(loan_id, case, world, key, now)))
    lap("COPY entries")
    with cur.copy(COPY_SQL["postings"]) as copy:
        for i, (entry_id, case) in enumerate(zip(entry_ids, chunk)):
            for row in posting_rows(entry_id, account_ids[2 * i], account_ids[2 * i + 1], case, world):
                copy.write_row(row)
    lap("COPY postings")
    return loan_ids


def raw_batch_postgres(conn, world: World, batch_size: int) -> tuple[Callable, Callable]:
    """B loans per transaction: reserve ids from the sequences, COPY every table, COMMIT."""
    idempotency_sql = insert_sql("idempotency_keys", IDEMPOTENCY_COLUMNS, "%s")

    def post(cases):
        cur = conn.cursor()
        for chunk in chunks(cases, batch_size):
            key = f"bench-raw-batch-{chunk[0].index}"
            loan_ids = copy_batch(cur, world, chunk, key)
            body = json.dumps({"count": len(chunk), "loans": [
                {"id": loan_id, "contract_no": case.contract_no} for loan_id, case in zip(loan_ids, chunk)]})
            cur.execute(idempotency_sql, idempotency_values(world, key, "/v1/loans/batch", body, None,
                                                            utcnow()))
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


def batch_modes(bench: LoanBench, batch_size: int) -> tuple[Mode, Mode]:
    b = batch_size
    service = Mode(f"http batch ({b:,}/request)", *http_batch(bench.client, bench.world, b),
                   time.process_time, per_chunk(b))
    raw_batch = raw_batch_sqlite if bench.sqlite else raw_batch_postgres
    raw = Mode(f"raw batch ({b:,}/tx, {'INSERT per row' if bench.sqlite else 'COPY'})",
               *raw_batch(bench.raw_conn, bench.world, b), time.process_time, per_chunk(b))
    return service, raw


def measure(bench: LoanBench, loans: int, batch_size: int, rounds: int) -> list[Mode]:
    return bench.measure_pair(*batch_modes(bench, batch_size), loans, rounds,
                              warmup=min(batch_size, WARMUP_BATCH), unit=batch_size,
                              mirror_key=lambda case: f"bench-batch-{case.index}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--loans", type=int, default=20_000, help="loans per mode (20000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="loans per batch request (5000)")
    args = parse_bounded(parser, argv, {"loans": (1, MAX_LOANS), "batch_size": (1, MAX_BATCH_SIZE)})
    with loan_bench(args.url, not args.no_analyze) as bench:
        describe(bench, f"{args.loans:,} loans per mode in batches of {args.batch_size:,}; modes "
                        f"alternated in up to {args.rounds} timed rounds",
                 HOW_SQLITE if bench.sqlite else HOW_POSTGRES)
        report(measure(bench, args.loans, args.batch_size, args.rounds), bench.notes)
        bench.finish()


if __name__ == "__main__":
    main()
