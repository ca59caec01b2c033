"""Benchmark: the targets figures (ledger.targets) over a large generated book, beside a plain SQL
GROUP BY of the same figures, in one run.

What it builds: a dedicated PostgreSQL database `ipledger_bench_targets`, migrated with Alembic to
head, then filled in bulk SQL (INSERT ... SELECT FROM generate_series, one statement per million
loans, through every trigger, key and index the schema has): `--loans` loans over `--years` years
(more each year: growth is positive) across `--regions` districts (provinces of 3 cities of 10
districts), lent to `--enterprises` enterprises (one customer file at a bank, every fifth also at a
second bank), their SME and private facts frozen on each loan (a tenth of the SMEs grow out of SME
in 2021: a second facts version, frozen by their later loans), 1-3 pledges a loan (patents,
trademarks, mixed; registered 5-50 days before the start, so early-January loans fall in the year
before on the registration basis), two thirds of the loans insured. No journal: the targets read
loans, pledges and borrowers only (a real import would also post each loan's disbursement: 2
accounts, 1 entry, 4 postings a loan, which the metrics never read).

What it measures, in one run:
(a) the series of every region (country, provinces, cities, districts) and every year, on the
    registration basis, through `ledger.targets.all_series` (goal 2 s), beside the same through the
    per-region `yearly_figures` for a few regions (extrapolated to all of them);
(b) the snapshot job (`take_snapshot`: every region, year and both bases), timed;
(c) one region-year from that snapshot through the API: GET /v1/targets with a fiscal key through
    the Flask test client, median and p95 over `--requests` requests (goal 20 ms);
(d) the raw baseline: one plain SQL GROUP BY (GROUPING SETS over the four levels) of the same
    figures with psycopg, no SQLAlchemy, no Python objects; its figures must equal (a)'s.

How to run (from the repository root; `make bench-targets` runs the full size):
    flock /work/bench.lock python bench/targets.py [--loans 10000000] [--regions 300]
        [--enterprises N] [--years 10] [--requests 200] [--keep] [--url postgresql://...]
`--keep` leaves the database in place and a later run with the same sizes reuses it (generation
takes minutes at full size); without it the database is dropped at exit. A run never drops a
database of other sizes unless given --keep (CI's smoke run uses a --database of its own).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import (PROGRAM_TERMS, comment_sizes, default_url, kept_database,  # noqa: E402
                          load_average, machine_info, print_machine_info, print_table)
from ledger import targets  # noqa: E402
from ledger.db import normalize_url, run_in_transaction  # noqa: E402
from ledger.identifiers import REGION_COUNTRY, region_prefix  # noqa: E402
from ledger.institutions import create_institution  # noqa: E402
from ledger.journal import SYSTEM  # noqa: E402
from ledger.keys import create_key  # noqa: E402
from ledger.programs import create_program  # noqa: E402
from ledger.schema import api_keys, program_versions  # noqa: E402
from ledger.sme import classify  # noqa: E402
from ledger.terms import parse_terms  # noqa: E402

DATABASE = "ipledger_bench_targets"
GOAL_SERIES_S = 2.0
GOAL_API_MS = 20.0
FIRST_YEAR = 2016
BANKS = 10
DISTRICTS_PER_CITY, CITIES_PER_PROVINCE = 10, 3
# Province codes of the national standard (GB/T 2260), enough for 930 districts.
PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
             "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")
MAX_REGIONS = len(PROVINCES) * CITIES_PER_PROVINCE * DISTRICTS_PER_CITY
CHUNK_LOANS = 1_000_000  # loans per INSERT ... SELECT statement (and per transaction)
PER_REGION_SAMPLE = 1  # regions timed through the per-region path (a city: minutes at full size)
GROWN_FROM = date(2021, 1, 1)  # the day grown SMEs' second facts version is stated for


def district_code(n: int) -> str:
    """District number `n` (0-based): province, city (3 a province) and district (10 a city)."""
    province = PROVINCES[n // (CITIES_PER_PROVINCE * DISTRICTS_PER_CITY)]
    city = n // DISTRICTS_PER_CITY % CITIES_PER_PROVINCE + 1
    return f"{province}{city:02d}{n % DISTRICTS_PER_CITY + 1:02d}"


# --- the database: created, migrated, filled (or reused with --keep) ---------------------------

def sizes_comment(args) -> str:
    return (f"ipledger bench/targets.py loans={args.loans} regions={args.regions} "
            f"enterprises={args.enterprises} years={args.years}")


@contextmanager
def bench_database(url: str, args) -> Iterator[tuple[object, str, bool]]:
    """(engine, conninfo, reused): the dedicated database (`bench.common.kept_database`)."""
    with kept_database(url, args.database, sizes_comment(args), args.keep) as opened:
        yield opened


def setup_world(engine) -> dict:
    """Banks, the programme's institutions, one programme and a fiscal bureau's key, through the
    domain code (what exists before any loan)."""
    def create(conn):
        banks = [create_institution(conn, f"BANK-{n:02d}", f"Bench bank {n}", "bank", REGION_COUNTRY).id
                 for n in range(BANKS)]
        for code, kind in (("PICC-GZ", "insurer"), ("GZ-POOL", "pool"), ("GZ-TREASURY", "treasury")):
            create_institution(conn, code, f"Bench {code}", kind, REGION_COUNTRY)
        program = create_program(conn, "bench-ip", "Bench IP pledge financing", REGION_COUNTRY,
                                 date(FIRST_YEAR - 1, 1, 1), None, parse_terms(PROGRAM_TERMS, None), SYSTEM)
        version_id = conn.execute(select(program_versions.c.id).where(
            program_versions.c.program_id == program.id)).scalar_one()
        create_institution(conn, "FISCAL-BENCH", "Bench fiscal bureau", "fiscal", REGION_COUNTRY)
        return {"banks": banks, "program_id": program.id, "program_version_id": version_id}
    return run_in_transaction(engine, create)


def fiscal_secret(engine) -> str:
    """A fresh key of the bench's fiscal bureau (secrets are not stored: one per run)."""
    def create(conn):
        return create_key(conn, "fiscal", "FISCAL-BENCH", label="bench")[1]
    return run_in_transaction(engine, create)


def enterprise_sql(args) -> dict[str, str]:
    """SQL expressions of enterprise `e` (0-based), written once for borrowers and loans: its
    district number, SME and private facts, and whether it grows out of SME in 2021."""
    return {"district": f"(e % {args.regions})", "sme": "(e % 5 <> 4)", "private": "(e % 7 <> 0)",
            "grows": "(e % 5 <> 4 AND e % 10 = 3)"}


def generate(conninfo: str, args, world: dict) -> list[tuple[str, int, float]]:
    """Fill the book in bulk SQL; returns (table, rows, seconds) per table."""
    import psycopg
    small, large = (classify("software_it", *figures, on=date(FIRST_YEAR, 1, 1))
                    for figures in ((50, 20_000_000_00, 15_000_000_00), (2000, 500_000_000_00, 300_000_000_00)))
    assert small.sme and not large.sme and small.standard == large.standard
    timings = []
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TEMP TABLE bench_districts (n integer PRIMARY KEY, code varchar(6))")
        with conn.cursor().copy("COPY bench_districts (n, code) FROM STDIN") as copy:
            for n in range(args.regions):
                copy.write_row((n, district_code(n)))
        values = {"banks": "ARRAY[" + ",".join(map(str, world["banks"])) + "]", "nbanks": BANKS,
                  "E": args.enterprises, "first_day": date(FIRST_YEAR, 1, 1).isoformat(),
                  "days": (date(FIRST_YEAR + args.years, 1, 1) - date(FIRST_YEAR, 1, 1)).days,
                  "grown_from": GROWN_FROM.isoformat(), "small": small.size_class, "large": large.size_class,
                  "standard": small.standard, "program": world["program_id"],
                  "version": world["program_version_id"], **enterprise_sql(args)}
        for table, sql, total in (("borrowers", BORROWERS_SQL, None), ("borrower_facts", FACTS_SQL, None),
                                  ("loans", LOANS_SQL, args.loans), ("pledges", PLEDGES_SQL, args.loans)):
            started, rows = time.perf_counter(), 0
            for low in range(0, total or 1, CHUNK_LOANS):
                high = min(low + CHUNK_LOANS, total) if total else 0
                rows += conn.execute(sql.format(**values, low=low, high=high)).rowcount
                conn.commit()
            timings.append((table, rows, time.perf_counter() - started))
            print(f"  generated {table}: {rows:,} rows in {timings[-1][2]:.1f} s", flush=True)
        for table in ("borrowers", "borrower_facts", "loans", "pledges"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        started = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        timings.append(("VACUUM ANALYZE", 0, time.perf_counter() - started))
    return timings


# Enterprise e (0..E-1) has a customer file at bank e % 10 (borrower id e + 1); every fifth also
# at the next bank (id E + e/5 + 1). Credit codes carry the district, like real ones.
BORROWERS_SQL = """
INSERT INTO borrowers (id, bank_id, credit_code, as_of, name, region, industry, employees, revenue_fen,
                       total_assets_fen, private, size_class, size_standard, sme, created_at, updated_at)
SELECT b.id, ({banks})[(e + b.second) % {nbanks} + 1], '91' || d.code || 'MA' || lpad(e::text, 8, '0'),
       CASE WHEN {grows} THEN DATE '{grown_from}' ELSE DATE '{first_day}' END,
       'Bench enterprise ' || e, d.code, 'software_it',
       CASE WHEN {sme} AND NOT {grows} THEN 50 ELSE 2000 END,
       CASE WHEN {sme} AND NOT {grows} THEN 2000000000 ELSE 50000000000 END,
       CASE WHEN {sme} AND NOT {grows} THEN 1500000000 ELSE 30000000000 END,
       {private}, CASE WHEN {sme} AND NOT {grows} THEN '{small}' ELSE '{large}' END, '{standard}',
       {sme} AND NOT {grows}, now(), now()
FROM generate_series(0, {E} - 1) AS e
CROSS JOIN LATERAL (VALUES (e + 1, 0), ({E} + e / 5 + 1, 1)) AS b(id, second)
JOIN bench_districts d ON d.n = {district}
WHERE b.second = 0 OR e % 5 = 0
"""

# Every file's first version (id = borrower id), stated for the first day; a grown SME's second
# (id = borrower id + 2E), stated for 2021-01-01, as a large enterprise.
FACTS_SQL = """
INSERT INTO borrower_facts (id, borrower_id, as_of, name, region, industry, employees, revenue_fen,
                            total_assets_fen, private, size_class, size_standard, recorded_at)
SELECT b.id + v.grown * 2 * {E}, b.id, CASE WHEN v.grown = 1 THEN DATE '{grown_from}' ELSE DATE '{first_day}' END,
       b.name, b.region, b.industry,
       CASE WHEN {sme} AND v.grown = 0 THEN 50 ELSE 2000 END,
       CASE WHEN {sme} AND v.grown = 0 THEN 2000000000 ELSE 50000000000 END,
       CASE WHEN {sme} AND v.grown = 0 THEN 1500000000 ELSE 30000000000 END,
       b.private, CASE WHEN {sme} AND v.grown = 0 THEN '{small}' ELSE '{large}' END, '{standard}', now()
FROM borrowers b
CROSS JOIN LATERAL (SELECT CASE WHEN b.id <= {E} THEN b.id - 1 ELSE (b.id - {E} - 1) * 5 END AS e) AS ent
CROSS JOIN LATERAL (VALUES (0), (1)) AS v(grown)
WHERE v.grown = 0 OR {grows}
"""

# Loan i (id i + 1): enterprise i % E, at its second bank for odd i when it has one; a start day
# drawn with density rising over the years (day = days * sqrt(u): each year lends more than the
# last); principal 100k-10M yuan for 80% (inclusive), up to 50M for the rest; insured at 80%
# (integer fen, rounded down) for two loans in three; 1-3 pledges (avg 1.4); the facts version
# in force on the start day frozen.
LOANS_SQL = """
INSERT INTO loans (id, bank_id, contract_no, borrower_id, borrower_facts_id, program_id, program_version_id,
                   principal_fen, annual_rate, start_date, maturity_date, ip_share, insured_amount_fen,
                   pledge_type, borrower_size_class, borrower_sme, borrower_private, borrower_region,
                   borrower_industry, size_standard, status, closed_on, created_at)
SELECT i + 1, ({banks})[(e + second) % {nbanks} + 1], 'BENCH-' || i, borrower_id,
       borrower_id + CASE WHEN {grows} AND start_on >= DATE '{grown_from}' THEN 2 * {E} ELSE 0 END,
       {program}, {version}, principal_fen, '0.0345', start_on, maturity_on, '0.8',
       CASE WHEN i % 3 <> 0 THEN principal_fen * 4 / 5 END,
       CASE WHEN i % 10 >= 6 THEN 'mixed' WHEN i % 2 = 0 THEN 'patent' ELSE 'trademark' END,
       CASE WHEN frozen_sme THEN '{small}' ELSE '{large}' END, frozen_sme, {private}, d.code, 'software_it',
       '{standard}', CASE WHEN maturity_on <= DATE '2026-12-01' THEN 'closed' ELSE 'active' END,
       CASE WHEN maturity_on <= DATE '2026-12-01' THEN maturity_on END, now()
FROM (SELECT i, e, second, CASE WHEN second = 1 THEN {E} + e / 5 + 1 ELSE e + 1 END AS borrower_id,
             start_on, start_on + (365 * (1 + i % 3))::integer AS maturity_on,
             CASE WHEN i % 10 < 8 THEN (100000 + (i * 7919) % 9900000) * 100 + i % 100
                  ELSE (10000000 + (i * 7919) % 40000000) * 100 + i % 100 END AS principal_fen
      FROM (SELECT i, i % {E} AS e, CASE WHEN i % {E} % 5 = 0 AND i % 2 = 1 THEN 1 ELSE 0 END AS second,
                   DATE '{first_day}' + floor({days} * sqrt(((i * 2654435761) % 1000003)::float8 / 1000003))::integer
                   AS start_on
            FROM generate_series({low}::bigint, {high}::bigint - 1) AS i) AS base) AS loan
CROSS JOIN LATERAL (SELECT {sme} AND NOT ({grows} AND start_on >= DATE '{grown_from}') AS frozen_sme) AS f
JOIN bench_districts d ON d.n = {district}
"""

# Pledge p of loan i: 1 pledge for i % 10 < 6, 2 below 9, else 3; a single pledge is a patent
# (even i) or a trademark, a mixed loan's are patent, trademark, patent. Registered 5 + 20p + i % 7
# days before the start (the last is the earliest); released with the loan's closing.
PLEDGES_SQL = """
INSERT INTO pledges (loan_id, position, kind, number, nice_class, registration_no, registered_on,
                     appraised_value_fen, released_on)
SELECT l.id, p, kind, CASE WHEN kind = 'patent' THEN 'ZL' || lpad((l.id * 3 + p)::text, 12, '0') || '.X'
                           ELSE (10000000 + (l.id * 3 + p) % 89999999)::text END,
       CASE WHEN kind = 'trademark' THEN 9 END, 'BENCH-REG-' || l.id || '-' || p,
       l.start_date - (5 + 20 * p + (l.id - 1) % 7)::integer,
       CASE WHEN p = 0 THEN l.principal_fen * 6 / 5 END, l.closed_on
FROM loans l
CROSS JOIN LATERAL generate_series(0, CASE WHEN (l.id - 1) % 10 < 6 THEN 0 WHEN (l.id - 1) % 10 < 9 THEN 1 ELSE 2 END) AS p
CROSS JOIN LATERAL (SELECT CASE WHEN l.pledge_type = 'trademark' OR (l.pledge_type = 'mixed' AND p = 1)
                                THEN 'trademark' ELSE 'patent' END AS kind) AS k
WHERE l.id > {low} AND l.id <= {high}
"""


# --- the measurements ------------------------------------------------------------------------

def time_series(engine, first: int, last: int, basis: str) -> tuple[float, dict]:
    with engine.connect() as conn:
        started = time.perf_counter()
        series = targets.all_series(conn, first, last, basis)
        return time.perf_counter() - started, series


def time_per_region(engine, regions: Sequence[str], first: int, last: int) -> tuple[float, dict]:
    """The per-region path (`yearly_figures`, two GROUP BY queries a region) for `regions`."""
    with engine.connect() as conn:
        started = time.perf_counter()
        got = {region: targets.yearly_figures(conn, region, first, last) for region in regions}
        return time.perf_counter() - started, got


# The raw baseline: the same figures in one plain SQL statement (psycopg, no SQLAlchemy).
RAW_SQL = """
WITH first_pledge AS (SELECT loan_id, min(registered_on) AS day, count(*) AS pledge_count
                      FROM pledges GROUP BY loan_id),
     per_loan AS (SELECT extract(year FROM f.day)::integer AS year, l.borrower_region AS district,
                         l.principal_fen, coalesce(l.insured_amount_fen, 0) AS insured_fen, f.pledge_count,
                         l.borrower_sme AND l.borrower_private AS private_sme, l.borrower_sme, b.credit_code
                  FROM loans l JOIN first_pledge f ON f.loan_id = l.id JOIN borrowers b ON b.id = l.borrower_id)
SELECT CASE WHEN GROUPING(district) = 0 THEN district
            WHEN GROUPING(substr(district, 1, 4)) = 0 THEN substr(district, 1, 4) || '00'
            WHEN GROUPING(substr(district, 1, 2)) = 0 THEN substr(district, 1, 2) || '0000'
            ELSE '000000' END AS region,
       year, sum(principal_fen), count(*), sum(pledge_count), sum(insured_fen),
       count(DISTINCT credit_code), count(DISTINCT CASE WHEN borrower_sme THEN credit_code END),
       count(*) FILTER (WHERE private_sme), coalesce(sum(principal_fen) FILTER (WHERE private_sme), 0),
       count(*) FILTER (WHERE principal_fen < %s)
FROM per_loan
GROUP BY GROUPING SETS ((year), (year, substr(district, 1, 2)), (year, substr(district, 1, 4)), (year, district))
"""


def time_raw(conninfo: str) -> tuple[float, dict]:
    import psycopg
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        rows = conn.execute(RAW_SQL, (targets.INCLUSIVE_LIMIT_FEN,)).fetchall()
        seconds = time.perf_counter() - started
    names = [f.name for f in fields(targets.YearFigures)]
    order = ("amount_fen", "count", "pledge_count", "insured_amount_fen", "enterprise_count",
             "sme_enterprise_count", "sme_count", "sme_amount_fen", "inclusive_count")
    figures = {(region, year): targets.YearFigures(**dict(zip(order, map(int, values))))
               for region, year, *values in rows}
    assert sorted(order) == sorted(names)
    return seconds, figures


def same_figures(series: dict, raw: dict) -> bool:
    """The domain's series hold exactly the raw GROUP BY's figures (every non-empty region-year;
    the domain's extra years are all zero). The raw query has no region-level guard, so loans
    lent in a city's own code are in the districts it writes; the bench lends in districts."""
    held = {(region, year): f for region, years in series.items() for year, f in years.items()
            if f != targets.YearFigures()}
    return held == {key: f for key, f in raw.items() if key[1] in {y for _, y in held}}


def time_api(engine, secret: str, region: str, year: int, requests: int) -> list[float]:
    """GET /v1/targets from the snapshot through the Flask test client: milliseconds each."""
    from api import create_app
    client = create_app(engine).test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"/v1/targets?region={region}&year={year}"
    first = client.get(url, headers=headers)
    assert first.status_code == 200 and first.get_json()["snapshot_taken_at"], first.get_data()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return times


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio(value: float, goal: float) -> str:
    return f"{value / goal:.2f}x goal"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    last = FIRST_YEAR + args.years - 1
    with bench_database(args.url, args) as (engine, conninfo, reused):
        print(f"ipledger targets benchmark: {args.loans:,} loans, {args.regions} districts, "
              f"{args.enterprises:,} enterprises, {FIRST_YEAR}-{last}")
        print(f"database: PostgreSQL {args.database}, migrated to head, "
              + ("reused (kept by an earlier --keep run)" if reused else "generated now")
              + ("; kept (--keep)" if args.keep else "; dropped at exit"))
        print_machine_info(machine_info(engine))
        print(f"  load average        {load_average()} (before the run; the machine is shared)")
        rows = []
        if not reused:
            started = time.perf_counter()
            world = setup_world(engine)
            for table, count, seconds in generate(conninfo, args, world):
                rows.append((f"generate {table}", f"{count:,} rows" if count else "", seconds, ""))
            rows.append(("generate (all)", "", time.perf_counter() - started, ""))
            comment_sizes(conninfo, args.database, sizes_comment(args))
        secret = fiscal_secret(engine)
        seconds, series = time_series(engine, FIRST_YEAR - 1, last, "registration")
        regions = len(series)
        rows.append(("(a) all_series, registration", f"{regions} regions x {last - FIRST_YEAR + 2} years",
                     seconds, ratio(seconds, GOAL_SERIES_S)))
        start_seconds, _ = time_series(engine, FIRST_YEAR - 1, last, "start")
        rows.append(("(a) all_series, start basis", "", start_seconds, ratio(start_seconds, GOAL_SERIES_S)))
        sample = [district_code(0)[:4] + "00", REGION_COUNTRY][:PER_REGION_SAMPLE]
        per_seconds, per_region = time_per_region(engine, sample, FIRST_YEAR - 1, last)
        checks = {"(a) equals the per-region yearly_figures": all(per_region[r] == series[r] for r in sample)}
        rows.append((f"    yearly_figures x {len(sample)} regions", f"-> {regions} regions: "
                     f"{per_seconds / len(sample) * regions:,.0f} s", per_seconds, ""))
        raw_seconds, raw = time_raw(conninfo)
        checks["(a) equals the raw GROUP BY (d)"] = same_figures(series, raw)
        rows.append(("(d) raw SQL GROUP BY (GROUPING SETS)", f"domain / raw = {seconds / raw_seconds:.2f}",
                     raw_seconds, ""))
        with engine.begin() as conn:
            started = time.perf_counter()
            snapshot = targets.take_snapshot(conn)
        snap_seconds = time.perf_counter() - started
        rows.append(("(b) take_snapshot (both bases)", f"{snapshot.rows:,} rows", snap_seconds, ""))
        with engine.connect() as conn:
            started = time.perf_counter()
            held = targets.snapshot_series(conn, snapshot, "registration")
            read_seconds = time.perf_counter() - started
        checks["the snapshot read (a') equals (a)"] = held == series
        rows.append(("(a') snapshot_series: (a) read from the snapshot", f"{len(held)} regions",
                     read_seconds, ratio(read_seconds, GOAL_SERIES_S)))
        times = time_api(engine, secret, district_code(0)[:4] + "00", last, args.requests)
        median, p95 = statistics.median(times), percentile(times, 0.95)
        rows.append((f"(c) GET /v1/targets (snapshot), median of {len(times)}", f"{median:.1f} ms",
                     median / 1000, ratio(median, GOAL_API_MS)))
        rows.append(("(c) GET /v1/targets (snapshot), p95", f"{p95:.1f} ms", p95 / 1000, ratio(p95, GOAL_API_MS)))
        print()
        print_table([(what, note, f"{s:.3f}", goal) for what, note, s, goal in rows],
                    ["what", "size / note", "seconds", "vs goal"])
        print(f"\ngoals: full series {GOAL_SERIES_S} s, one region-year at the API {GOAL_API_MS} ms")
        for what, ok in checks.items():
            print(f"check: {what}: {'yes' if ok else 'NO'}")
        if not all(checks.values()):
            sys.exit("the figures differ (see the checks above)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url(), help="PostgreSQL server to create the database on")
    parser.add_argument("--loans", type=int, default=10_000_000)
    parser.add_argument("--regions", type=int, default=300, help=f"districts (at most {MAX_REGIONS})")
    parser.add_argument("--enterprises", type=int, help="default: loans / 20")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200, help="API requests timed (200)")
    parser.add_argument("--database", default=DATABASE, help=f"the database to create ({DATABASE})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database (a run with the same sizes reuses a kept one)")
    args = parser.parse_args(argv)
    args.enterprises = args.enterprises or max(1, args.loans // 20)
    for name, low, high in (("loans", 1, 100_000_000), ("regions", 1, MAX_REGIONS), ("years", 2, 40),
                            ("requests", 1, 100_000), ("enterprises", 1, args.loans)):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be {low}..{high:,}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database):
        parser.error("--database must be a plain lower-case PostgreSQL name")
    if make_url(normalize_url(args.url)).get_backend_name() != "postgresql":
        parser.error("--url must name a PostgreSQL server (the bench generates in PostgreSQL SQL)")
    return args


if __name__ == "__main__":
    main()
