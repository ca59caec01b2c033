"""Benchmark: posting journal entries through `ledger.journal` against raw SQL, in one run.

What it measures: entries per second for N balanced entries of 3 postings each (+3a, -a, -2a fen
over 50 accounts taken round-robin), posted four ways into the same scratch database:
1. journal single - one `post_entry` per transaction via `ledger.db.run_in_transaction`;
2. journal batch  - `post_entries` with B entries per transaction;
3. raw single     - psycopg 3 directly, one transaction per entry:
                    INSERT INTO entries ... RETURNING id, the 3 postings by executemany, COMMIT;
4. raw batch      - psycopg 3, B entries per transaction: reserve B ids from the entries id
                    sequence (one SELECT nextval(...) FROM generate_series), COPY the entries,
                    COPY the postings, COMMIT.
The raw rows carry every column the journal writes. The raw modes insert into the SAME migrated
tables, so they pay the same foreign keys, indexes and deferred balance trigger at commit; what
they skip is the journal's Python-side validation, its account lookup and SQLAlchemy.
Each mode is warmed up with 50 entries (not timed); then the modes take turns over R rounds of
N/R entries each and each mode's time is summed, so drift on a shared machine (other work on
the same server, disk flush latency) hits every mode alike. Afterwards `ledger.chain.verify` must
report balanced books holding exactly 4 * (N + 50) entries (the chain is left unsealed).

How to run (from the repository root):
    python bench/journal.py [--url postgresql://postgres@127.0.0.1:5432/test]
                            [--entries 5000] [--batch-size 500] [--rounds 5]
The URL defaults to $IPLEDGER_BENCH_POSTGRES_URL, else the one above. The benchmark creates its
own database `ipl_bench_<random>` on that server and always drops it; the database named in the
URL is only used to issue CREATE/DROP DATABASE. `--url sqlite:///any.sqlite3` is a quick smoke
run on a temporary SQLite file (raw modes then use the `sqlite3` module: execute ... RETURNING
per entry, postings by executemany).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import closing, contextmanager
from datetime import date
from pathlib import Path
from typing import Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import (BenchDatabase, Timing, default_url, machine_info,  # noqa: E402
                          open_raw_connection, print_machine_info, print_table, throwaway_database, timed)
from ledger.chain import verify  # noqa: E402
from ledger.db import run_in_transaction, utcnow  # noqa: E402
from ledger.institutions import create_institution  # noqa: E402
from ledger.journal import (AccountSpec, Actor, EntryDraft, Line, ensure_accounts,  # noqa: E402
                            post_entries, post_entry)

WARMUP_ENTRIES = 50
ACCOUNT_COUNT = 50
MODE_COUNT = 4
MAX_ENTRIES = 1_000_000
MAX_BATCH_SIZE = 10_000
MAX_ROUNDS = 100
ENTRY_KIND = "bench_transfer"
EFFECTIVE_ON = date(2026, 1, 15)

ENTRY_COLUMNS = ("kind", "effective_on", "recorded_at", "actor_key_id", "institution_id",
                 "idempotency_key", "reverses_id", "memo")
POSTING_COLUMNS = ("entry_id", "account_id", "amount_fen", "currency")
RESERVE_ENTRY_IDS = ("SELECT nextval(pg_get_serial_sequence('entries', 'id')) "
                     "FROM generate_series(1, %s)")
COPY_ENTRIES = f"COPY entries (id, {', '.join(ENTRY_COLUMNS)}) FROM STDIN"
COPY_POSTINGS = f"COPY postings ({', '.join(POSTING_COLUMNS)}) FROM STDIN"

Poster = Callable[[Sequence[EntryDraft]], None]


# --- the workload --------------------------------------------------------------------------

def setup_books(engine) -> tuple[Actor, list[int]]:
    """One bank and its accounts; returns the actor entries are posted as and the account ids."""
    def create(conn):
        bank = create_institution(conn, "bench-bank", "Bench Bank", "bank", "440106")
        specs = [AccountSpec(code=f"bench:{i}", name=f"bench account {i}", kind="asset",
                             purpose="bench", institution_id=bank.id)
                 for i in range(ACCOUNT_COUNT)]
        ids = ensure_accounts(conn, specs)
        return Actor(institution_id=bank.id), [ids[spec.code] for spec in specs]
    return run_in_transaction(engine, create)


def make_drafts(account_ids: list[int], start: int, count: int) -> list[EntryDraft]:
    """Entries start..start+count-1: +3a, -a, -2a fen (a varies) over round-robin accounts."""
    drafts = []
    for i in range(start, start + count):
        base_fen = 100 + i % 97
        picked = [account_ids[(3 * i + k) % len(account_ids)] for k in range(3)]
        lines = (Line(picked[0], 3 * base_fen), Line(picked[1], -base_fen),
                 Line(picked[2], -2 * base_fen))
        drafts.append(EntryDraft(kind=ENTRY_KIND, effective_on=EFFECTIVE_ON, lines=lines,
                                 memo=f"bench entry {i}"))
    return drafts


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- journal modes -------------------------------------------------------------------------

def journal_single(engine, actor: Actor) -> Poster:
    def post(drafts):
        for draft in drafts:
            run_in_transaction(engine, lambda conn, d=draft: post_entry(conn, d, actor))
    return post


def journal_batch(engine, actor: Actor, batch_size: int) -> Poster:
    def post(drafts):
        for chunk in chunks(drafts, batch_size):
            run_in_transaction(engine, lambda conn, c=chunk: post_entries(conn, c, actor))
    return post


# --- raw modes -----------------------------------------------------------------------------

def entry_values(draft: EntryDraft, actor: Actor, recorded_at) -> tuple:
    """The same columns, in ENTRY_COLUMNS order, that `ledger.journal` writes for an entry."""
    return (draft.kind, draft.effective_on, recorded_at, actor.key_id, actor.institution_id,
            actor.idempotency_key, draft.reverses_id, draft.memo)


def posting_values(entry_id: int, draft: EntryDraft) -> list[tuple]:
    return [(entry_id, line.account_id, line.amount_fen, line.currency) for line in draft.lines]


def insert_sql(table: str, columns: Sequence[str], marker: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))})")


def raw_single(conn, marker: str, actor: Actor) -> Poster:
    """One transaction per entry: INSERT ... RETURNING id, executemany the postings, commit."""
    entry_sql = insert_sql("entries", ENTRY_COLUMNS, marker) + " RETURNING id"
    posting_sql = insert_sql("postings", POSTING_COLUMNS, marker)

    def post(drafts):
        cur = conn.cursor()
        for draft in drafts:
            cur.execute(entry_sql, entry_values(draft, actor, utcnow()))
            entry_id = cur.fetchone()[0]
            cur.executemany(posting_sql, posting_values(entry_id, draft))
            conn.commit()
    return post


def raw_batch_postgres(conn, actor: Actor, batch_size: int) -> Poster:
    """B entries per transaction: reserve ids from the sequence, COPY entries, COPY postings."""
    def post(drafts):
        cur = conn.cursor()
        for chunk in chunks(drafts, batch_size):
            recorded_at = utcnow()
            entry_ids = [row[0] for row in cur.execute(RESERVE_ENTRY_IDS, (len(chunk),))]
            with cur.copy(COPY_ENTRIES) as copy:
                for entry_id, draft in zip(entry_ids, chunk):
                    copy.write_row((entry_id, *entry_values(draft, actor, recorded_at)))
            with cur.copy(COPY_POSTINGS) as copy:
                for entry_id, draft in zip(entry_ids, chunk):
                    for row in posting_values(entry_id, draft):
                        copy.write_row(row)
            conn.commit()
    return post


def raw_batch_sqlite(conn, actor: Actor, batch_size: int) -> Poster:
    """B entries per transaction: INSERT ... RETURNING per entry, all postings by executemany."""
    entry_sql = insert_sql("entries", ENTRY_COLUMNS, "?") + " RETURNING id"
    posting_sql = insert_sql("postings", POSTING_COLUMNS, "?")

    def post(drafts):
        cur = conn.cursor()
        for chunk in chunks(drafts, batch_size):
            recorded_at = utcnow()
            rows = []
            for draft in chunk:
                entry_id = cur.execute(entry_sql, entry_values(draft, actor, recorded_at)).fetchone()[0]
                rows.extend(posting_values(entry_id, draft))
            cur.executemany(posting_sql, rows)
            conn.commit()
    return post


@contextmanager
def raw_connection(bench_db: BenchDatabase):
    """A plain DB-API connection to the scratch database, outside SQLAlchemy."""
    with closing(open_raw_connection(bench_db)) as conn:
        yield conn


# --- the run -------------------------------------------------------------------------------

class DraftSource:
    """Hands out fresh, distinct drafts so every mode posts new entries."""

    def __init__(self, account_ids: list[int]):
        self.account_ids = account_ids
        self.next_index = 0

    def take(self, count: int) -> list[EntryDraft]:
        drafts = make_drafts(self.account_ids, self.next_index, count)
        self.next_index += count
        return drafts


def round_sizes(entries: int, rounds: int) -> list[int]:
    """Split `entries` into `rounds` near-equal parts (the first parts take the remainder)."""
    base, extra = divmod(entries, rounds)
    return [base + (1 if index < extra else 0) for index in range(rounds) if base or index < extra]


def measure_interleaved(posters: list[tuple[str, Poster]], source: DraftSource, entries: int,
                        rounds: int) -> list[Timing]:
    """Warm every mode up, then time them in alternating rounds and sum each mode's time.

    Why rounds: on a shared machine the commit latency drifts over seconds; alternating the
    modes exposes each one to the same drift, so the journal/raw ratio stays honest.
    """
    for _label, post in posters:
        post(source.take(WARMUP_ENTRIES))  # warm the pool, prepared statements and caches
    seconds = {label: 0.0 for label, _post in posters}
    for size in round_sizes(entries, rounds):
        for label, post in posters:
            drafts = source.take(size)  # built before the clock starts, for every mode alike
            seconds[label] += timed(label, size, lambda: post(drafts)).seconds
    return [Timing(label, entries, seconds[label]) for label, _post in posters]


def run_modes(bench_db: BenchDatabase, entries: int, batch_size: int, rounds: int
              ) -> list[Timing]:
    engine = bench_db.engine
    actor, account_ids = setup_books(engine)
    sqlite = bench_db.conninfo is None
    with raw_connection(bench_db) as conn:
        raw_batch = raw_batch_sqlite if sqlite else raw_batch_postgres
        posters = [("journal single", journal_single(engine, actor)),
                   (f"journal batch ({batch_size}/tx)", journal_batch(engine, actor, batch_size)),
                   ("raw single", raw_single(conn, "?" if sqlite else "%s", actor)),
                   (f"raw batch ({batch_size}/tx)", raw_batch(conn, actor, batch_size))]
        return measure_interleaved(posters, DraftSource(account_ids), entries, rounds)


def check_books(engine, entries: int):
    """The books must balance and hold exactly what the four modes posted."""
    with engine.connect() as conn:
        result = verify(conn)
    expected = MODE_COUNT * (entries + WARMUP_ENTRIES)
    assert result.balanced, f"unbalanced entries: {result.unbalanced_entry_ids}"
    assert result.entries == expected, f"{result.entries} entries, expected {expected}"
    assert result.postings == 3 * expected, f"{result.postings} postings, expected {3 * expected}"
    return result


def report(timings: list[Timing]) -> None:
    print_table([(t.label, t.entries, t.seconds, t.per_second) for t in timings],
                headers=("mode", "entries", "seconds", "entries/s"))
    print()
    for journal, raw in ((timings[0], timings[2]), (timings[1], timings[3])):
        print(f"{journal.label} / {raw.label}: journal reaches "
              f"{100 * journal.per_second / raw.per_second:.0f}% of raw")


def describe(bench_db: BenchDatabase, entries: int, batch_size: int, rounds: int) -> None:
    backend = "SQLite (temporary file)" if bench_db.conninfo is None else "PostgreSQL"
    print(f"ipledger journal benchmark: {entries:,} entries per mode x {MODE_COUNT} modes, "
          f"3 postings each, batch size {batch_size}, warm-up {WARMUP_ENTRIES} entries per mode,"
          f" modes alternated in {rounds} timed rounds")
    print(f"database: {backend} scratch database {bench_db.engine.url.database}, migrated to head,"
          " removed at exit")
    print_machine_info(machine_info(bench_db.engine))
    if bench_db.conninfo is None:
        print("raw baseline: inserts into the SAME migrated tables (same foreign keys and indexes;"
              "\n  SQLite has no balance trigger); it skips the journal's Python validation,"
              "\n  account lookup and SQLAlchemy.")
    else:
        print("raw baseline: inserts into the SAME migrated tables, so it pays the same foreign"
              "\n  keys, indexes and deferred balance trigger (checked at commit) as the journal;"
              "\n  it skips the journal's Python validation, account lookup and SQLAlchemy.")
        print("raw batch: SELECT nextval(entries id sequence) x B, COPY entries, COPY postings,"
              " COMMIT.")
    print()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url(),
                        help="server to create the scratch database on (default: "
                             "$IPLEDGER_BENCH_POSTGRES_URL or a local PostgreSQL `test`)")
    parser.add_argument("--entries", type=int, default=5000, help="entries per mode (5000)")
    parser.add_argument("--batch-size", type=int, default=500, help="entries per batch (500)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternate the modes in this many timed rounds (5)")
    args = parser.parse_args(argv)
    if not 1 <= args.entries <= MAX_ENTRIES:
        parser.error(f"--entries must be 1..{MAX_ENTRIES}")
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size must be 1..{MAX_BATCH_SIZE}")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 1..{MAX_ROUNDS}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with throwaway_database(args.url) as bench_db:
        describe(bench_db, args.entries, args.batch_size, args.rounds)
        timings = run_modes(bench_db, args.entries, args.batch_size, args.rounds)
        report(timings)
        result = check_books(bench_db.engine, args.entries)
        print(f"\nverify: balanced={result.balanced} entries={result.entries:,} "
              f"postings={result.postings:,} sealed={result.sealed} unsealed={result.unsealed:,}"
              " (the benchmark does not seal the chain)")


if __name__ == "__main__":
    main()
