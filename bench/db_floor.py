"""Benchmark: the database floor of a loan batch - what each COPY, each trigger and the
deferred checks at COMMIT cost PostgreSQL, by switching them off one at a time.

What it measures: batches of B loans written as bench/loans_batch.py's raw batch writes them
(reserve ids, COPY loans, pledges, accounts, entries, postings), each in a transaction that is
then ROLLED BACK, so the books stay as posted. Per batch it times every step, and the deferred
constraint triggers by `SET CONSTRAINTS ALL IMMEDIATE` (which runs them where COMMIT would),
wall clock and the backend's CPU (from /proc). Each configuration switches triggers off with
`ALTER TABLE ... DISABLE TRIGGER` inside the rolled-back transaction (superuser; the scratch
database only): all on; one named trigger off; every user trigger off (the foreign keys stay);
every trigger off (the foreign keys' RI triggers too); each foreign key's check triggers off.
A trigger's cost is the difference from
"all on". Indexes and CHECK constraints cannot be switched off and stay in every figure. The
configurations alternate, rounds times; the median is reported.

How to run (from the repository root; PostgreSQL only):
    python bench/db_floor.py [--url postgresql://postgres@127.0.0.1:5432/test]
                             [--batch-size 5000] [--rounds 3]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import (MAX_BATCH_SIZE, argument_parser, describe, loan_bench,  # noqa: E402
                          parse_bounded, print_table, process_cpu_s, warm_up)
from bench.loans_batch import WARMUP_BATCH, batch_modes, copy_batch  # noqa: E402

STEPS = ("reserve ids", "COPY loans", "COPY pledges", "COPY accounts", "COPY entries",
         "COPY postings", "deferred checks (at COMMIT)")
# (label, [(table, trigger)]): "USER" / "ALL" as the trigger switch off a table's whole class.
JOURNAL_TABLES = ("loans", "pledges", "accounts", "entries", "postings")
CONFIGURATIONS = (
    ("all on (as the service writes)", []),
    ("without entries_balanced (deferred, per entry)", [("entries", "entries_balanced")]),
    ("without entries_reversal_mirrors (deferred, WHEN reversal)", [("entries", "entries_reversal_mirrors")]),
    ("without postings_same_transaction (per statement)", [("postings", "postings_same_transaction")]),
    ("without postings_fund_not_negative (per statement)", [("postings", "postings_fund_not_negative")]),
    ("every user trigger off (foreign keys on)", [(table, "USER") for table in JOURNAL_TABLES]),
    ("every trigger off (foreign keys too)", [(table, "ALL") for table in JOURNAL_TABLES]),
)


FOREIGN_KEYS_SQL = """
SELECT c.conname, t.tgrelid::regclass::text, t.tgname FROM pg_constraint c
JOIN pg_trigger t ON t.tgconstraint = c.oid AND t.tgrelid = c.conrelid
WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s) ORDER BY 1, 3"""


def foreign_key_configurations(conn) -> list[tuple[str, list]]:
    """One configuration per foreign key of the journal tables: its check triggers off."""
    by_key: dict[str, list] = {}
    for name, table, trigger in conn.execute(FOREIGN_KEYS_SQL, (list(JOURNAL_TABLES),)):
        by_key.setdefault(name, []).append((table, f'"{trigger}"'))
    conn.rollback()
    return [(f"without {name}", triggers) for name, triggers in by_key.items()]


def run_once(conn, world, cases, switched_off) -> dict[str, tuple[float, float]]:
    """One batch in a rolled-back transaction: step -> (wall s, backend CPU s)."""
    cur = conn.cursor()
    pid = cur.execute("SELECT pg_backend_pid()").fetchone()[0]
    for table, trigger in switched_off:
        cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    laps: dict[str, tuple[float, float]] = {}
    mark = [time.perf_counter(), process_cpu_s(pid) or 0.0]

    def lap(step: str) -> None:
        now, cpu = time.perf_counter(), process_cpu_s(pid) or 0.0
        laps[step] = (now - mark[0], cpu - mark[1])
        mark[:] = [now, cpu]

    lap("setup")
    copy_batch(cur, world, cases, "bench-db-floor", lap)
    cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred triggers run here, as at COMMIT
    lap("deferred checks (at COMMIT)")
    conn.rollback()
    return laps


def measure(bench, configurations, batch_size: int, rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    cases = bench.source.take(batch_size)  # never committed: the same cases serve every run
    samples: dict[str, dict[str, list]] = {label: {step: [] for step in STEPS} for label, _ in configurations}
    run_once(bench.raw_conn, bench.world, cases, [])  # warm the caches
    for _ in range(rounds):
        for label, switched_off in configurations:
            for step, value in run_once(bench.raw_conn, bench.world, cases, switched_off).items():
                if step in STEPS:
                    samples[label][step].append(value)
    return {label: {step: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
                    for step, values in steps.items()} for label, steps in samples.items()}


def report(medians, configurations, batch_size: int) -> None:
    us = 1e6 / batch_size
    base = medians[configurations[0][0]]
    print("per loan (µs, median), wall / backend CPU; each loan: 1 loan, 2 pledges, 2 accounts, "
          "1 entry, 4 postings")
    rows = []
    for step in STEPS:
        rows.append((step, *(f"{medians[label][step][0] * us:.0f} / {medians[label][step][1] * us:.0f}"
                             for label, _ in configurations)))
    rows.append(("total", *(f"{sum(v[0] for v in medians[label].values()) * us:.0f} / "
                            f"{sum(v[1] for v in medians[label].values()) * us:.0f}"
                            for label, _ in configurations)))
    print_table(rows, headers=("step",) + tuple(f"[{i}]" for i in range(len(configurations))))
    for i, (label, _) in enumerate(configurations):
        print(f"  [{i}] {label}")
    wall, cpu = (sum(v[i] for v in base.values()) for i in (0, 1))
    print("\nwhat each switched-off part costs (all on minus without it; backend CPU is the steadier "
          "figure on a shared machine):")
    for label, _ in configurations[1:]:
        saved_wall, saved_cpu = (total - sum(v[i] for v in medians[label].values())
                                 for i, total in ((0, wall), (1, cpu)))
        print(f"  {label}: wall {saved_wall * us:.0f} µs/loan ({100 * saved_wall / wall:.0f}%), "
              f"backend CPU {saved_cpu * us:.0f} µs/loan ({100 * saved_cpu / (cpu or 1):.0f}%)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--batch-size", type=int, default=5000, help="loans per batch (5000)")
    args = parse_bounded(parser, argv, {"batch_size": (1, MAX_BATCH_SIZE)})
    if not args.url.startswith("postgres"):
        parser.error("PostgreSQL only: the triggers measured are PostgreSQL's")
    with loan_bench(args.url, not args.no_analyze) as bench:
        describe(bench, f"the database floor of a {args.batch_size:,}-loan batch, trigger "
                        f"configurations x {args.rounds} rounds, each rolled back")
        service, _raw = batch_modes(bench, args.batch_size)
        bench.modes.append(service)
        warm_up(service, bench.source, min(args.batch_size, WARMUP_BATCH))  # real rows to refer to
        bench.analyze()
        configurations = list(CONFIGURATIONS) + foreign_key_configurations(bench.raw_conn)
        report(measure(bench, configurations, args.batch_size, args.rounds), configurations, args.batch_size)
        bench.finish()


if __name__ == "__main__":
    main()
