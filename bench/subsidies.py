"""Benchmark of subsidy drafts (issue 9 item 7).

In memory (default): the vectorised `ledger.subsidies.compute` over N generated loans beside a
pure-Python per-loan loop over the same arrays (the compute step only).

`--postgres`: the whole draft on PostgreSQL. A scratch database (bench.common) gets a book of N
loans bulk-generated in SQL (generate_series; triggers off for the load only, with
session_replication_role: this is test data, not a ledger's history): N/3 borrowers, one
disbursement and one repayment (principal and interest) per loan, 6 postings per loan, one
programme with two interest rules (40% of interest paid capped per borrower and year; 50% of
December's LPR). Then, in one run:
- the real draft, `ledger.subsidy_batches.draft_batch` in one committed transaction (bulk
  reads, numpy compute, COPY of the lines), with its read / compute / store split;
- the per-loan Python loop over the same book (as read), totals compared;
- a raw COPY of the draft's own line rows (same values, same order) as text into
  `subsidy_lines` (same indexes, foreign keys and checks; rolled back): the floor for the store.
Printed: read, compute, store, whole draft, loop, raw COPY, their ratios (the loop against the
compute, both from the read book; read + loop against read + compute), the load average.
Goals (issue 9): the whole draft within 5 s at 1,000,000 loans, and at least 20x the loop.

`--keep` keeps the generated database (`ipledger_bench_subsidies`, or `--database`) and a later
`--keep` run with the same `--loans` reuses it (generation takes over a minute at 1,000,000); the
timed draft's batch is deleted after each run so the next drafts the same period again.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from ledger.subsidies import Book, compute, parse_period, scaled  # noqa: E402
from ledger.terms import parse_terms  # noqa: E402

RULE_DICTS = [{"kind": "interest", "method": "pct_of_paid", "pct": "0.40", "caps": {"per_borrower_year": "500000.00"}},
              {"kind": "interest", "method": "pct_of_reference_rate", "pct": "0.50", "reference": "LPR1Y",
               "reference_month": "december_of_year"}]
RULES = parse_terms({"parties": [], "subsidies": RULE_DICTS}, None).subsidies
CAP_FEN = 50_000_000  # the per-borrower-year cap above, in fen
LPR = Decimal("0.0300")
PERIOD = "2025"
DATABASE = "ipledger_bench_subsidies"


def make_book(n: int, seed: int = 1) -> Book:
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1).toordinal() + rng.integers(0, 700, n)
    start.sort()
    principal = rng.integers(10_000_00, 10_000_000_00, n)
    idx = np.arange(n, dtype=np.int64)
    repay_day = start + rng.integers(30, 700, n)
    repay = principal // rng.integers(1, 4, n)
    return Book(loan_id=idx + 1, borrower_id=rng.integers(1, n // 3 + 2, n), start_ord=start,
                principal_fen=principal, rate_scaled=np.full(n, scaled(Decimal("0.0345"))),
                sme=np.ones(n, bool), private=np.ones(n, bool), revenue_fen=np.full(n, 10 ** 9),
                move_loan=np.concatenate([idx, idx]), move_ord=np.concatenate([start, repay_day]),
                move_fen=np.concatenate([principal, -repay]),
                paid={"interest": (idx, repay_day, principal * 3 // 100)})


def loop(book: Book, period: str) -> int:
    """The same two rules, one loan at a time in Python ints and Fractions, over any book."""
    first, end = (d.toordinal() for d in parse_period(period))
    moves: dict[int, list] = {}
    for i, day, fen in zip(book.move_loan.tolist(), book.move_ord.tolist(), book.move_fen.tolist()):
        moves.setdefault(i, []).append((day, fen))
    paid_in: dict[int, int] = {}
    for i, day, fen in zip(*(a.tolist() for a in book.paid["interest"])):
        if first <= day < end:
            paid_in[i] = paid_in.get(i, 0) + fen
    total, used = 0, {}
    for i in range(book.size):
        if book.start_ord[i] >= end:
            continue
        want = (2 * paid_in.get(i, 0) * 2 + 5) // 10  # 40 %, half up
        b = int(book.borrower_id[i])
        amount = min(want, max(CAP_FEN - used.get(b, 0), 0))
        used[b] = used.get(b, 0) + amount
        pd = sum(fen * max(end - max(day, first), 0) for day, fen in moves.get(i, ()))
        x = Fraction(pd) * Fraction(1, 2) * Fraction(LPR) / 360
        total += amount + (2 * x.numerator + x.denominator) // (2 * x.denominator)
    return total


def in_memory(loans: int) -> None:
    book = make_book(loans)
    t0 = time.perf_counter()
    result = compute(book, RULES, PERIOD, lambda month: LPR)
    vector_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop_total = loop(book, PERIOD)
    loop_s = time.perf_counter() - t0
    assert loop_total == result.total_fen, (loop_total, result.total_fen)
    print(f"loans {loans}: vectorised compute {vector_s:.2f} s ({result.line_count} lines), "
          f"per-loan loop {loop_s:.2f} s, ratio {loop_s / vector_s:.1f}x; totals equal ({result.total_fen} fen)")


# --- PostgreSQL -----------------------------------------------------------------------------------

# `\:` is a colon in text(), not a parameter.
GENERATE = r"""
-- test data: no per-row triggers or key checks while it loads
SET LOCAL session_replication_role = replica;
SELECT setseed(0.2025);
CREATE TEMP TABLE plan ON COMMIT DROP AS
SELECT i, 1 + floor(random() * :borrowers)::int AS borrower,
       DATE '2024-01-01' + floor(random() * 700)::int AS start_on,
       (1000000 + floor(random() * 999000000))::bigint AS principal_fen,
       30 + floor(random() * 670)::int AS repay_after, 1 + floor(random() * 3)::int AS repay_part
FROM generate_series(1, :loans) AS i;
INSERT INTO borrowers (id, bank_id, credit_code, as_of, name, region, industry, employees, revenue_fen,
                       total_assets_fen, private, size_class, size_standard, sme, created_at, updated_at)
SELECT b, :bank, 'B' || lpad(b::text, 17, '0'), DATE '2023-12-31', 'Borrower ' || b, '440106', 'software_it', 50,
       800000000, 300000000, true, 'small', 'bench', true, now(), now()
FROM generate_series(1, :borrowers) AS b;
INSERT INTO borrower_facts (id, borrower_id, as_of, name, region, industry, employees, revenue_fen,
                            total_assets_fen, private, size_class, size_standard, recorded_at)
SELECT id, id, as_of, name, region, industry, employees, revenue_fen, total_assets_fen, private,
       size_class, size_standard, now() FROM borrowers;
INSERT INTO loans (id, bank_id, contract_no, borrower_id, borrower_facts_id, program_id, program_version_id,
                   principal_fen, annual_rate, start_date, maturity_date, pledge_type, borrower_size_class,
                   borrower_sme, borrower_private, borrower_region, borrower_industry, size_standard, status,
                   created_at)
SELECT i, :bank, 'B-' || i, borrower, borrower, :program, :version, principal_fen, '0.0345', start_on,
       start_on + 730, 'patent', 'small', true, true, '440106', 'software_it', 'bench', 'active', now()
FROM plan;
-- accounts: each loan's receivable (id i), each borrower's interest expense (N + b) and cash
-- (N + B + b), the bank's settlement (N + 2B + 1)
INSERT INTO accounts (id, code, name, kind, purpose, currency, institution_id, loan_id, created_at)
SELECT i, 'loan\:' || i || '\:receivable', 'receivable', 'asset', 'loans_receivable', 'CNY', :bank, i, now() FROM plan;
INSERT INTO accounts (id, code, name, kind, purpose, currency, borrower_id, created_at)
SELECT :loans + b, 'borrower\:' || b || '\:interest_expense', 'interest', 'expense', 'interest_expense', 'CNY', b, now()
FROM generate_series(1, :borrowers) AS b
UNION ALL
SELECT :loans + :borrowers + b, 'borrower\:' || b || '\:cash', 'cash', 'asset', 'cash', 'CNY', b, now()
FROM generate_series(1, :borrowers) AS b;
INSERT INTO accounts (id, code, name, kind, purpose, currency, institution_id, created_at)
VALUES (:loans + 2 * :borrowers + 1, 'inst\:' || :bank || '\:settlement', 'settlement', 'asset', 'settlement', 'CNY',
        :bank, now());
-- entries: the disbursement (2i - 1) on the start day, the repayment (2i) later
INSERT INTO entries (id, kind, effective_on, recorded_at, institution_id, loan_id)
SELECT 2 * i - 1, 'disbursement', start_on, now(), :bank, i FROM plan
UNION ALL
SELECT 2 * i, 'repayment', start_on + repay_after, now(), :bank, i FROM plan;
INSERT INTO postings (id, entry_id, account_id, amount_fen, currency)
SELECT 6 * i - 5 + k, CASE WHEN k < 2 THEN 2 * i - 1 ELSE 2 * i END,
       CASE k WHEN 0 THEN i WHEN 1 THEN :loans + 2 * :borrowers + 1 WHEN 2 THEN :loans + 2 * :borrowers + 1
              WHEN 3 THEN i WHEN 4 THEN :loans + borrower ELSE :loans + :borrowers + borrower END,
       CASE k WHEN 0 THEN principal_fen WHEN 1 THEN -principal_fen WHEN 2 THEN principal_fen / repay_part
              WHEN 3 THEN -(principal_fen / repay_part) WHEN 4 THEN principal_fen * 3 / 100
              ELSE -(principal_fen * 3 / 100) END, 'CNY'
FROM plan, generate_series(0, 5) AS k;
"""
SEQUENCES = ("borrowers", "borrower_facts", "loans", "accounts", "entries", "postings")


def _world(engine):
    """The bank, the bureau and the programme through the domain; LPR months the draft needs."""
    from ledger import programs
    from ledger.institutions import create_institution
    from ledger.journal import SYSTEM
    from ledger.rates import record_rate
    from ledger.db import run_in_transaction

    def make(conn):
        bank = create_institution(conn, "BENCH-BANK", "Bench bank", "bank", "440100")
        bureau = create_institution(conn, "BENCH-FISCAL", "Bench bureau", "fiscal", "440100")
        program = programs.create_program(conn, "bench-subsidies", "Bench programme", "440100", date(2023, 1, 1),
                                          None, parse_terms({"parties": [], "subsidies": RULE_DICTS}, None), SYSTEM)
        for month in range(6, 13):  # the seed ends at 2025-05
            record_rate(conn, "LPR1Y", f"2025-{month:02d}", LPR)
        return bank.id, bureau, program
    return run_in_transaction(engine, make)


def _generate(engine, loans: int, bank_id: int, program) -> None:
    from sqlalchemy import text
    params = {"loans": loans, "borrowers": loans // 3 + 1, "bank": bank_id, "program": program.id,
              "version": program.versions[0].id}
    with engine.begin() as conn:
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                conn.execute(text(statement), params)
        for table in SEQUENCES:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _line_text(batch_id: int, result) -> str:
    """The draft's own line rows, in the order the draft writes them, as COPY text."""
    from ledger.subsidy_batches import _by_caps
    out = io.StringIO()
    for chunk in result.by_rule:
        for capped_by, rows in _by_caps(chunk):
            for loan, borrower, basis, computed, amount in zip(*(a[rows].tolist() for a in (
                    chunk.loan_id, chunk.borrower_id, chunk.basis_fen, chunk.computed_fen, chunk.amount_fen))):
                out.write(f"{batch_id}\t{loan}\t{borrower}\t{chunk.kind}\t{chunk.method}\t{basis}\t{computed}\t"
                          f"{amount}\t{capped_by}\n")
    return out.getvalue()


def _raw_copy(engine, result) -> float:
    """COPY the draft's line rows (same values, same order) into subsidy_lines for a scratch
    batch, as plain text through psycopg: timed, rolled back. The floor for the store step."""
    from sqlalchemy import text
    with engine.connect() as conn:
        batch_id = conn.execute(text(
            "INSERT INTO subsidy_batches (program_id, program_version_id, period, period_start, period_end, status, "
            "institution_id, created_at, line_count, excluded_count, total_fen) SELECT program_id, program_version_id, "
            "'2024', DATE '2024-01-01', DATE '2025-01-01', 'cancelled', institution_id, now(), 0, 0, 0 "
            "FROM subsidy_batches LIMIT 1 RETURNING id")).scalar_one()
        data = _line_text(batch_id, result)
        cursor = conn.connection.driver_connection.cursor()
        t0 = time.perf_counter()
        with cursor.copy("COPY subsidy_lines (batch_id, loan_id, borrower_id, kind, method, basis_fen, "
                         "computed_fen, amount_fen, capped_by) FROM STDIN") as copy:
            copy.write(data)
        elapsed = time.perf_counter() - t0
        conn.rollback()
    return elapsed


def _forget_batches(engine) -> None:
    """A kept database is reused: the timed draft's rows go (TRUNCATE: a row-by-row delete of a
    million lines takes minutes), so the next run drafts the same period into the same table
    shape. Bench data only: nothing but this benchmark writes batches here."""
    from sqlalchemy import text
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE subsidy_batch_entries, subsidy_lines, subsidy_excluded, subsidy_batches"))


def _kept_world(engine) -> tuple:
    """The bank, the bureau and the programme of a database generated by an earlier run."""
    from sqlalchemy import select
    from ledger import programs
    from ledger.schema import institutions
    with engine.connect() as conn:
        ids = dict(conn.execute(select(institutions.c.code, institutions.c.id)).all())
        bureau = conn.execute(select(institutions).where(institutions.c.code == "BENCH-FISCAL")).one()
        program = programs.get_program(conn, "bench-subsidies")
    return ids["BENCH-BANK"], bureau, program


@contextmanager
def _bench_database(url: str, loans: int, database: str | None, keep: bool):
    """(engine, reused): a throwaway database, or with --keep the named one (kept, reused)."""
    from bench.common import comment_sizes, kept_database, throwaway_database
    if database is None and not keep:
        with throwaway_database(url) as bench_db:
            yield bench_db.engine, False, lambda: None
        return
    sizes = f"ipledger bench/subsidies.py loans={loans}"
    with kept_database(url, database or DATABASE, sizes, keep) as (engine, conninfo, reused):
        yield engine, reused, lambda: comment_sizes(conninfo, database or DATABASE, sizes)


def on_postgres(loans: int, url: str, database: str | None = None, keep: bool = False) -> None:
    from bench.common import load_average
    from ledger import subsidy_batches as batches
    from ledger.db import run_in_transaction
    from ledger.subsidies import lpr_reader, read_book

    print(f"load average before: {load_average()}")
    with _bench_database(url, loans, database, keep) as (engine, reused, mark_filled):
        if reused:
            bank_id, bureau, program = _kept_world(engine)
            print(f"reused the kept database ({loans} loans)")
        else:
            bank_id, bureau, program = _world(engine)
            t0 = time.perf_counter()
            _generate(engine, loans, bank_id, program)
            mark_filled()
            print(f"generated {loans} loans, {loans // 3 + 1} borrowers, {6 * loans} postings in "
                  f"{time.perf_counter() - t0:.1f} s (untimed)")
        who = batches.Bureau(bureau.id, bureau.region)
        end = parse_period(PERIOD)[1]

        # The split, on a dry pass (rolled back): read, then compute.
        with engine.connect() as conn:
            t0 = time.perf_counter()
            book = read_book(conn, program.id, end)
            read_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = compute(book, RULES, PERIOD, lpr_reader(conn))
            compute_s = time.perf_counter() - t0
            conn.rollback()

        stamps = []
        t0 = time.perf_counter()
        made = run_in_transaction(engine, lambda conn: batches.draft_batch(
            conn, program.code, PERIOD, who, today=date(2026, 1, 5),
            progress=lambda step, _n: stamps.append((step, time.perf_counter()))))
        draft_s = time.perf_counter() - t0
        stored_s = dict(stamps)["stored"] - dict(stamps)["computed"]
        assert made["total_fen"] == result.total_fen and made["line_count"] == result.line_count
        load_after_draft = load_average()

        t0 = time.perf_counter()
        loop_total = loop(book, PERIOD)
        loop_s = time.perf_counter() - t0
        assert loop_total == result.total_fen, (loop_total, result.total_fen)
        copy_s = _raw_copy(engine, result)
        if keep:
            _forget_batches(engine)

    rows = result.line_count
    print(f"draft of {loans} loans on PostgreSQL ({rows} lines, total {result.total_fen} fen); "
          f"load average after the draft: {load_after_draft}")
    print(f"  read        {read_s:8.2f} s   (dry pass: bulk read into numpy)")
    print(f"  compute     {compute_s:8.2f} s   (dry pass: numpy)")
    print(f"  store       {stored_s:8.2f} s   (in the draft: binary COPY of the lines)")
    print(f"  whole draft {draft_s:8.2f} s   (end to end, committed)")
    print(f"  loop        {loop_s:8.2f} s   (per-loan Python over the same read book; totals equal)")
    print(f"  raw COPY    {copy_s:8.2f} s   ({rows} text rows into subsidy_lines, rolled back)")
    print(f"  ratios: loop / compute {loop_s / compute_s:.1f}x (both from the read book); "
          f"(read + loop) / (read + compute) {(read_s + loop_s) / (read_s + compute_s):.1f}x (both including "
          f"the read); loop / whole draft {loop_s / draft_s:.1f}x; store / raw COPY {stored_s / copy_s:.2f}x; "
          f"whole draft / raw COPY {draft_s / copy_s:.2f}x")
    print(f"  goals: whole draft <= 5 s: {'met' if draft_s <= 5 else 'NOT met'} ({draft_s:.2f} s); "
          f">= 20x the loop (compute, same inputs): {'met' if loop_s / compute_s >= 20 else 'NOT met'}; "
          f"whole draft >= 20x the loop: {'met' if loop_s / draft_s >= 20 else 'NOT met'}")
    print(f"load average at the end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="the whole draft on a scratch PostgreSQL database")
    parser.add_argument("--url", help="the PostgreSQL server (default: $IPLEDGER_BENCH_POSTGRES_URL or a local `test`)")
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the generated database ({DATABASE} unless --database); a later --keep run "
                             "with the same --loans reuses it instead of generating (minutes at 1,000,000)")
    parser.add_argument("--database", help="the database to keep (default with --keep: " + DATABASE + ")")
    args = parser.parse_args()
    if args.postgres:
        from bench.common import default_url
        on_postgres(args.loans, args.url or default_url(), args.database, args.keep)
    else:
        in_memory(args.loans)


if __name__ == "__main__":
    main()
