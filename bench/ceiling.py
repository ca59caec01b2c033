"""Benchmark: the machine's ceiling for one money event - pgbench running the five-statement
ledger transaction of issue 11 (an entry, two postings, two balance updates; bench/pgbench_ledger.sql)
- and the service's rates as shares of it.

What it measures: pgbench's transactions per second on tables of its own (`pgb_*`: no foreign
keys, no triggers, prepared statements) in a scratch database on the same server, with K
clients on min(K, 2) pgbench threads, for S seconds. Afterwards the books must balance: the
postings sum to zero and so do the balances. `ceiling_ratios` prints the service's single and
batch rates beside it (bench/loans.py calls it after its report; `make bench` runs both).
PostgreSQL only; needs `pgbench` (installed with PostgreSQL) on PATH or in
/usr/lib/postgresql/*/bin.

How to run (from the repository root):
    python bench/ceiling.py [--url postgresql://postgres@127.0.0.1:5432/test]
                            [--clients 8] [--seconds 10] [--accounts 1000]
CI smoke run (seconds): python bench/ceiling.py --clients 2 --seconds 1
"""
from __future__ import annotations

import argparse
import glob
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import default_url, is_sqlite_url, throwaway_database  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "pgbench_ledger.sql"
TABLES = """
CREATE TABLE pgb_entries (id bigserial PRIMARY KEY, kind text NOT NULL, effective_on date NOT NULL,
                          recorded_at timestamptz NOT NULL);
CREATE TABLE pgb_postings (id bigserial PRIMARY KEY, entry_id bigint NOT NULL, account_id bigint NOT NULL,
                           amount_fen bigint NOT NULL);
CREATE TABLE pgb_balances (account_id bigint PRIMARY KEY, balance_fen bigint NOT NULL);
"""
TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
# Goals of issue 11, as shares of the ceiling and of the raw rate of the same rows.
GOAL_SINGLE_OF_CEILING, GOAL_BATCH_OF_CEILING = 0.08, 1.5
GOAL_SINGLE_OF_RAW, GOAL_BATCH_OF_RAW = 0.60, 0.85


@dataclass(frozen=True)
class Ceiling:
    per_second: float
    clients: int
    seconds: int
    transactions: int


def pgbench_path() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    return candidates[-1] if candidates else None


def measure_ceiling(conninfo: str, clients: int, seconds: int, accounts: int = 1000) -> Ceiling:
    """Run pgbench's ledger transaction on fresh `pgb_*` tables in the database `conninfo`
    names; check the books; drop the tables."""
    import psycopg
    pgbench = pgbench_path()
    if pgbench is None:
        raise RuntimeError("pgbench not found (it comes with PostgreSQL's client or server package)")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS pgb_entries, pgb_postings, pgb_balances")
        conn.execute(TABLES)
        conn.execute("INSERT INTO pgb_balances SELECT g, 0 FROM generate_series(1, %s) g", (accounts,))
        conn.execute("VACUUM ANALYZE pgb_balances")
        try:
            run = subprocess.run(
                [pgbench, "--no-vacuum", "--file", str(SCRIPT), "--define", f"accounts={accounts}",
                 "--protocol", "prepared", "--client", str(clients), "--jobs", str(min(clients, 2)),
                 "--time", str(seconds), conninfo],
                capture_output=True, text=True, timeout=seconds + 120)
            found = TPS.search(run.stdout)
            if run.returncode != 0 or not found:
                raise RuntimeError(f"pgbench failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
            postings, balances, entries = conn.execute(
                "SELECT (SELECT coalesce(sum(amount_fen), 0) FROM pgb_postings),"
                " (SELECT coalesce(sum(balance_fen), 0) FROM pgb_balances),"
                " (SELECT count(*) FROM pgb_entries)").fetchone()
            assert postings == 0 and balances == 0, f"pgbench's books do not balance: {postings}, {balances}"
        finally:
            conn.execute("DROP TABLE IF EXISTS pgb_entries, pgb_postings, pgb_balances")
    return Ceiling(float(found.group(1)), clients, seconds, entries)


def print_ceiling(ceiling: Ceiling) -> None:
    print(f"\nceiling: pgbench's five-statement ledger transaction (bench/pgbench_ledger.sql), "
          f"{ceiling.clients} clients, {ceiling.seconds} s: {ceiling.per_second:,.0f} transactions/s "
          f"({ceiling.transactions:,} entries, books balanced)")


def ceiling_ratios(ceiling: Ceiling, modes) -> None:
    """The service modes of bench/loans.py as shares of their raw pair and of the ceiling, with
    issue 11's goals. `modes` alternate service, raw (common.report's order)."""
    print("\nservice vs raw and vs the ceiling (issue 11 goals: single >= 60% of raw and >= 8% of "
          "the ceiling; batch >= 85% of raw and >= 1.5x the ceiling):")
    for service, raw in zip(modes[0::2], modes[1::2]):
        batch = "batch" in service.label
        of_raw, of_ceiling = service.per_second / raw.per_second, service.per_second / ceiling.per_second
        goal_raw = GOAL_BATCH_OF_RAW if batch else GOAL_SINGLE_OF_RAW
        goal_ceiling = GOAL_BATCH_OF_CEILING if batch else GOAL_SINGLE_OF_CEILING
        print(f"  {service.label}: {service.per_second:,.0f}/s = {100 * of_raw:.0f}% of raw "
              f"({raw.per_second:,.0f}/s; goal {100 * goal_raw:.0f}%: {'met' if of_raw >= goal_raw else 'not met'}), "
              f"{of_ceiling:.2f}x the ceiling (goal {goal_ceiling:.2f}x: "
              f"{'met' if of_ceiling >= goal_ceiling else 'not met'})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url(), help="server for the scratch database")
    parser.add_argument("--clients", type=int, default=8, help="pgbench clients (8)")
    parser.add_argument("--seconds", type=int, default=10, help="pgbench run time (10)")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts the entries hit (1000)")
    args = parser.parse_args(argv)
    if is_sqlite_url(args.url):
        parser.error("PostgreSQL only (pgbench)")
    if not (1 <= args.clients <= 64 and 1 <= args.seconds <= 600 and 2 <= args.accounts <= 10**6):
        parser.error("--clients 1..64, --seconds 1..600, --accounts 2..1,000,000")
    with throwaway_database(args.url) as bench_db:
        print_ceiling(measure_ceiling(bench_db.conninfo, args.clients, args.seconds, args.accounts))


if __name__ == "__main__":
    main()
