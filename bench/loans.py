"""Benchmark: every loan benchmark in one run on one scratch database, in this order:
bench/loans_single.py (http single vs raw single), bench/loans_server.py (gunicorn with K
clients vs raw single xK; PostgreSQL with gunicorn installed, unless --no-server),
bench/loans_batch.py (http batch vs raw batch), one report of all pairs, then the machine's
ceiling: pgbench's five-statement ledger transaction at the server mode's concurrency
(bench/ceiling.py; PostgreSQL, unless --ceiling-seconds 0) with every service mode's share of
its raw pair and of the ceiling, then bench/loans_profile.py (unless --no-profile), then the
books check over everything posted. `make bench` runs this with --no-profile.
Each file's docstring says what its modes measure; this one only runs them together (the
options keep their names of the former single file).

How to run (from the repository root):
    python bench/loans.py [--url postgresql://postgres@127.0.0.1:5432/test]
                          [--single 1000] [--batch-loans 20000] [--batch-size 5000]
                          [--rounds 5] [--clients 8] [--server-workers 2] [--server-threads 4]
                          [--no-server] [--no-profile] [--profile-single 300] [--no-analyze]
                          [--ceiling-seconds 10]
CI smoke run (seconds): python bench/loans.py --single 20 --batch-loans 200 --batch-size 100
                                              --no-server --no-profile --ceiling-seconds 1
"""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench import ceiling, loans_batch, loans_profile, loans_server, loans_single  # noqa: E402
from bench.common import (MAX_BATCH_SIZE, MAX_LOANS, argument_parser, describe,  # noqa: E402
                          loan_bench, parse_bounded, report)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--single", type=int, default=1000, help="loans per single mode (1000)")
    parser.add_argument("--batch-loans", type=int, default=20_000, help="loans per batch mode (20000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="loans per batch request (5000)")
    loans_server.add_server_arguments(parser)
    parser.add_argument("--no-server", action="store_true", help="skip the gunicorn mode")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument("--profile-single", type=int, default=300,
                        help="single posts to profile (300, at most --single)")
    parser.add_argument("--ceiling-seconds", type=int, default=10,
                        help="pgbench run time for the ceiling (10; 0 skips it)")
    args = parse_bounded(parser, argv, {"single": (1, MAX_LOANS), "batch_loans": (1, MAX_LOANS),
                                        "batch_size": (1, MAX_BATCH_SIZE),
                                        "profile_single": (1, MAX_LOANS),
                                        "ceiling_seconds": (0, 600),
                                        **loans_server.SERVER_BOUNDS})
    with loan_bench(args.url, not args.no_analyze) as bench, ExitStack() as stack:
        server = None
        if bench.sqlite and not args.no_server:
            bench.notes.append("server mode skipped: PostgreSQL only (SQLite allows one writer "
                               "at a time).")
        elif args.no_server or not loans_server.gunicorn_available():
            bench.notes.append("server mode skipped (--no-server, or gunicorn is not installed: "
                               "pip install -e '.[server]').")
        else:
            server = stack.enter_context(loans_server.gunicorn_server(
                bench.db, args.server_workers, args.server_threads, args.worker_class))
        describe(bench, f"{args.single:,} single posts per single mode, {args.batch_loans:,} "
                        f"loans per batch mode in batches of {args.batch_size:,}; modes alternated"
                        f" in up to {args.rounds} timed rounds",
                 loans_single.HOW + (loans_batch.HOW_SQLITE if bench.sqlite else
                                     loans_batch.HOW_POSTGRES))
        modes = loans_single.measure(bench, args.single, args.rounds)
        if server is not None:
            modes += loans_server.measure(bench, server, args.single, args.rounds, args.clients)
        modes += loans_batch.measure(bench, args.batch_loans, args.batch_size, args.rounds)
        report(modes, bench.notes)
        if not bench.sqlite and args.ceiling_seconds:
            found = ceiling.measure_ceiling(bench.db.conninfo, args.clients, args.ceiling_seconds)
            ceiling.print_ceiling(found)
            ceiling.ceiling_ratios(found, modes)
        if not args.no_profile:
            loans_profile.profile(bench, min(args.profile_single, args.single), args.batch_size)
        bench.finish()


if __name__ == "__main__":
    main()
