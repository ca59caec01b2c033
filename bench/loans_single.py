"""Benchmark: posting loans one per request through the HTTP API, against raw SQL of the same
writes, in one run.

What it measures: loans per second, and wall and CPU milliseconds per loan, of two modes
posting loans with two pledges (a patent and a trademark) into one scratch database:
- http single - POST /v1/loans through the real WSGI app (Flask test client: the whole
                Flask/werkzeug/flask-smorest stack, no sockets), one loan per request, with a
                Bearer key and a fresh Idempotency-Key, as a bank integration sends it;
- raw single  - psycopg 3 directly, one transaction per loan, the same rows: INSERT loans
                RETURNING id; 2 pledges (executemany); 2 accounts (one INSERT RETURNING); INSERT
                entries RETURNING id; 4 postings (executemany); the idempotency_keys row; COMMIT.
Both are warmed up untimed (the first loan the service posts is compared row by row with the
raw rows for it), the statistics refreshed, then the pair is timed in alternating rounds; CPU
is that of this process and of the PostgreSQL backends. Afterwards the books must balance and
hold exactly what was posted. Shared machinery: bench/common.py.

How to run (from the repository root):
    python bench/loans_single.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                 [--loans 1000] [--rounds 5] [--no-analyze]
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

from bench.common import (MAX_LOANS, WARMUP_SINGLE, LoanBench, Mode, RawWriter,  # noqa: E402
                          World, _expect, argument_parser, bank_headers, describe, loan_bench,
                          one_per_loan, parse_bounded, report)
from ledger.db import utcnow  # noqa: E402

HOW = ("raw single: per loan INSERT loans RETURNING; executemany pledges; INSERT 2 accounts"
       "\n  RETURNING; INSERT entries RETURNING; executemany postings; INSERT idempotency_keys;"
       " COMMIT.",)


def http_single(client, world: World) -> tuple[Callable, Callable]:
    """POST /v1/loans, one loan per request, with the bank's key and a fresh Idempotency-Key."""
    def prepare(cases):
        return [(json.dumps(c.payload).encode(), bank_headers(world, f"bench-single-{c.index}"))
                for c in cases]

    def post(prepared):
        for body, headers in prepared:
            response = client.post("/v1/loans", data=body, headers=headers)
            _expect(response.status_code, response.get_data(), "POST /v1/loans")
    return prepare, post


def raw_single(conn, world: World, marker: str, tag: str = "raw-single") -> tuple[Callable, Callable]:
    """The same rows through one DB-API connection, one transaction per loan."""
    writer = RawWriter(world, marker)

    def post(cases):
        cur = conn.cursor()
        for case in cases:
            writer.write(cur, case, f"bench-{tag}-{case.index}", utcnow(), store_outcome=True)
            conn.commit()
    return (lambda cases: cases), post


def single_modes(bench: LoanBench) -> tuple[Mode, Mode]:
    service = Mode("http single (test client)", *http_single(bench.client, bench.world),
                   time.process_time, one_per_loan)
    raw = Mode("raw single (1 connection)", *raw_single(bench.raw_conn, bench.world, bench.marker),
               time.process_time, one_per_loan)
    return service, raw


def measure(bench: LoanBench, loans: int, rounds: int) -> list[Mode]:
    return bench.measure_pair(*single_modes(bench), loans, rounds, warmup=WARMUP_SINGLE,
                              mirror_key=lambda case: f"bench-single-{case.index}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--loans", type=int, default=1000, help="loans per mode (1000)")
    args = parse_bounded(parser, argv, {"loans": (1, MAX_LOANS)})
    with loan_bench(args.url, not args.no_analyze) as bench:
        describe(bench, f"{args.loans:,} loans per mode, one per request; modes alternated in up "
                        f"to {args.rounds} timed rounds", HOW)
        report(measure(bench, args.loans, args.rounds), bench.notes)
        bench.finish()


if __name__ == "__main__":
    main()
