"""Benchmark of claims (issue 8 item 11): claims opened per second for N defaults over one
programme with every kind of cap active, and recoveries distributed per second, each beside a
raw-SQL baseline of the same writes in the same run (PostgreSQL by default).

The book: one bank, B borrowers, one programme whose terms use every cap of DOMAIN.md §3:
coverage (IP part only, maximum covered principal, per-borrower-year coverage limit), the
insurer (pays first) capped per claim and per bank-year, the guarantor per borrower-year and by
a portfolio cap rate, the pool per programme-year and by its fund's balance. N loans mature
2026-02-28; untimed setup creates them in batches of 10,000.

Measured:
- service claims: `ledger.claims.scan_overdue` (the daily job's path: one transaction per
  claim, claims split in claim order under the cap-usage row locks) over the N loans;
- raw claims: for each claim the service opened, the same rows written through psycopg for a
  second set of N loans, one transaction each (lock the loan and its cap-usage rows, insert its
  two sub-ledger accounts, the entry and its postings, the claim and its shares, add to the
  cap usage, mark the loan defaulted) with the figures the service computed: the writes
  without the reads and arithmetic that decide them;
- service recoveries: `ledger.recoveries.record_recovery` on R of the claimed loans, one
  transaction each; raw recoveries: the same entry, postings, recovery and its shares for the
  baseline claims.
Checked: every cap kind cut at least one share; the books balanced (ledger.chain.verify) and
the claim records equal to the journal (ledger.claim_books).

`python bench/claims.py` (10,000 defaults, 2,000 recoveries: the issue's size; wrap in
`flock /work/bench.lock` on a shared machine); `--defaults 200 --recoveries 50` is the CI smoke
run. Figures: docs/ACCOUNTING.md (Benchmark).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.common import (chunks, default_url, machine_info, open_raw_connection,  # noqa: E402
                          print_machine_info, print_table, throwaway_database)
from bench.common import credit_code as bench_credit_code  # noqa: E402
from bench.common import ACCOUNT_COLUMNS, ENTRY_COLUMNS, make_case  # noqa: E402
from ledger import programs  # noqa: E402
from ledger.claim_books import check_claim_books  # noqa: E402
from ledger.claims import _usage_keys, open_claim, overdue_loans  # noqa: E402
from ledger.chain import verify  # noqa: E402
from ledger.db import run_in_transaction  # noqa: E402
from ledger.institutions import create_institution  # noqa: E402
from ledger.journal import SYSTEM  # noqa: E402
from ledger.loans import create_loans, parse_loans  # noqa: E402
from ledger.parties import BorrowerFacts, upsert_borrower  # noqa: E402
from ledger.recoveries import record_recovery  # noqa: E402
from ledger.schema import (accounts, borrowers, claim_shares, claims, entries, postings,  # noqa: E402
                           recoveries, recovery_shares)
from ledger.terms import parse_terms  # noqa: E402

PROGRAM = "bench-claims"
SCAN_ON = date(2026, 6, 1)
RECOVERED_ON = date(2026, 9, 1)
PROGRESS_EVERY = 1000
CAPS = ("per_claim", "per_borrower_year", "per_bank_year", "per_program_year", "portfolio", "fund_balance")


def all_caps_terms(defaults: int) -> dict:
    """Terms with every cap kind of DOMAIN.md §3, each on a party where it is the one that binds
    (caps on one party in one claim year stop each other), sized to `defaults` so that each cuts
    part-way through the run. Shares of covered amount (about 2.6M yuan a loan): insurer 0.30,
    guarantor 0.10, pool 0.40, appraiser 0.05. The guarantor's per-borrower-year cap (2M yuan,
    about 8 claims of one borrower) bites first, its bank-year cap later: 96,000 yuan a default
    lies between 20 borrowers' 7 full shares and their 2M caps."""
    per_run = lambda yuan_per_default: f"{defaults * yuan_per_default}.00"  # noqa: E731
    return {"loss_base": "principal", "trigger_overdue_days": 90,
            "coverage": {"ip_share": "ip_part_only", "require_stated_ip_share": True, "min_ip_share": "0.5",
                         "max_covered_principal": "4000000.00",
                         "max_covered_principal_per_borrower_year": "40000000.00"},
            "parties": [
                {"institution": "B-INS", "role": "insurer", "share": "0.30", "pays_first": True,
                 "caps": {"per_claim": "800000.00", "per_program_year": per_run(150_000)}},
                {"institution": "B-GUA", "role": "guarantor", "share": "0.10",
                 "caps": {"per_borrower_year": "2000000.00", "per_bank_year": per_run(96_000)}},
                {"institution": "B-POOL", "role": "pool", "share": "0.40",
                 "share_tiers": [{"up_to": "3000000.00", "share": "0.40"}, {"up_to": None, "share": "0.30"}],
                 "caps": {"fund_balance": True}, "recoveries_to": "B-TREASURY"},
                {"institution": "B-APP", "role": "appraiser", "share": "0.05",
                 "caps": {"portfolio_cap_rate": "0.3"}}]}


class Book:
    def __init__(self, engine, borrower_count: int, defaults: int):
        self.engine = engine

        def create(conn):
            bank = create_institution(conn, "ICBC-GZ", "ICBC Guangzhou", "bank", "440100")
            ids = {code: create_institution(conn, code, code, kind, "440100").id for code, kind in (
                ("B-INS", "insurer"), ("B-GUA", "guarantor"), ("B-POOL", "pool"), ("B-APP", "appraiser"),
                ("B-TREASURY", "treasury"))}
            programs.create_program(conn, PROGRAM, "Claims bench", "440100", date(2023, 1, 1), None,
                                    parse_terms(all_caps_terms(defaults), None), SYSTEM)
            # The fund binds about a quarter of the way through (the pool owes ~1M yuan a claim).
            programs.contribute(conn, PROGRAM, ids["B-POOL"], defaults * 250_000_00, date(2025, 1, 2), SYSTEM)
            for i in range(borrower_count):
                upsert_borrower(conn, bank.id, BorrowerFacts(
                    bench_credit_code(i), f"Bench Borrower {i}", "440106", "software_it", 50,
                    8_000_000_00, 3_000_000_00, True), as_of=date(2019, 1, 1))
            return bank.id
        self.bank_id = run_in_transaction(engine, create)
        self.borrower_count = borrower_count
        self.next_index = 0

    def loans(self, count: int) -> list[int]:
        """`count` fresh loans (untimed): the bench's loan shapes under this programme."""
        made = []
        world = _LoanWorld(self.borrower_count)
        for part in chunks(range(self.next_index, self.next_index + count), 10_000):
            bodies = [{**make_case(i, world).payload, "program": PROGRAM} for i in part]
            drafts = parse_loans(bodies)
            made += run_in_transaction(self.engine, lambda conn: create_loans(conn, self.bank_id, drafts, SYSTEM))
        self.next_index += count
        return made


class _LoanWorld:
    """What `bench.common.make_case` reads of a world: the borrowers (by credit code)."""

    def __init__(self, count: int):
        self.borrowers = tuple(_Borrower(bench_credit_code(i)) for i in range(count))


class _Borrower:
    def __init__(self, code: str):
        self.credit_code = code


# --- the raw baseline ----------------------------------------------------------------------

def _columns(table, skip=("id",)) -> list[str]:
    return [c.name for c in table.columns if c.name not in skip]


def _insert(table, columns: list[str], rows: int = 1, returning: bool = False) -> str:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"
    return sql + (" RETURNING id" if returning else "")


class RawReplay:
    """The service's rows for one loan, written again for another loan through psycopg."""

    def __init__(self, engine, cur):
        self.engine, self.cur = engine, cur

    def _accounts_for(self, service_loan: int, raw_loan: int, account_ids: list[int]) -> dict[int, int]:
        """Map the entry's accounts: a sub-ledger of the service loan -> the same of the raw loan
        (created as the service creates it), every other account to itself."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts).where(accounts.c.id.in_(account_ids))).mappings().all()
        mapping = {row["id"]: row["id"] for row in rows if row["loan_id"] != service_loan}
        own = [row for row in rows if row["loan_id"] == service_loan]
        if own:
            columns = list(ACCOUNT_COLUMNS)  # what the service writes (the rest are server defaults)
            values = []
            for row in own:
                values += [row[c] if c not in ("code", "loan_id", "name") else
                           {"code": row["code"].replace(f"loan:{service_loan}:", f"loan:{raw_loan}:"),
                            "loan_id": raw_loan, "name": row["name"].replace(str(service_loan), str(raw_loan))}[c]
                           for c in columns]
            self.cur.execute(_insert(accounts, columns, len(own)) + " ON CONFLICT (code) DO NOTHING", values)
            codes = [row["code"].replace(f"loan:{service_loan}:", f"loan:{raw_loan}:") for row in own]
            self.cur.execute("SELECT code, id FROM accounts WHERE code = ANY(%s)", (codes,))
            by_code = dict(self.cur.fetchall())
            mapping.update({row["id"]: by_code[row["code"].replace(f"loan:{service_loan}:", f"loan:{raw_loan}:")]
                            for row in own})
        return mapping

    def entry(self, entry, lines, service_loan: int, raw_loan: int) -> int:
        mapping = self._accounts_for(service_loan, raw_loan, [line["account_id"] for line in lines])
        columns = list(ENTRY_COLUMNS)
        self.cur.execute(_insert(entries, columns, returning=True),
                         [raw_loan if c == "loan_id" else entry[c] for c in columns])
        entry_id = self.cur.fetchone()[0]
        posting_columns = ("entry_id", "account_id", "amount_fen", "currency")
        values = [v for line in lines for v in (entry_id, mapping[line["account_id"]], line["amount_fen"],
                                                 line["currency"])]
        self.cur.execute(_insert(postings, list(posting_columns), len(lines)), values)
        return entry_id


def _service_claims(engine, loan_ids: list[int]) -> list[dict]:
    with engine.connect() as conn:
        found = {row["loan_id"]: dict(row) for row in conn.execute(
            select(claims).where(claims.c.loan_id.in_(loan_ids))).mappings()}
        shares = {}
        for row in conn.execute(select(claim_shares).where(claim_shares.c.claim_id.in_(
                [c["id"] for c in found.values()])).order_by(claim_shares.c.id)).mappings():
            shares.setdefault(row["claim_id"], []).append(dict(row))
        lines = _entry_lines(conn, [c["entry_id"] for c in found.values()])
        heads = _entry_heads(conn, [c["entry_id"] for c in found.values()])
        codes = dict(conn.execute(select(claims.c.id, borrowers.c.credit_code)
                                  .join(borrowers, borrowers.c.id == claims.c.borrower_id)
                                  .where(claims.c.loan_id.in_(loan_ids))).all())
    ordered = sorted(found.values(), key=lambda c: c["id"])
    return [{"claim": c, "shares": shares[c["id"]], "entry": heads[c["entry_id"]],
             "lines": lines[c["entry_id"]], "credit_code": codes[c["id"]]} for c in ordered]


def _entry_lines(conn, entry_ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for part in chunks(entry_ids, 5000):
        for row in conn.execute(select(postings).where(postings.c.entry_id.in_(list(part)))
                                .order_by(postings.c.id)).mappings():
            out.setdefault(row["entry_id"], []).append(dict(row))
    return out


def _entry_heads(conn, entry_ids: list[int]) -> dict[int, dict]:
    out = {}
    for part in chunks(entry_ids, 5000):
        out.update({row["id"]: dict(row) for row in conn.execute(
            select(entries).where(entries.c.id.in_(list(part)))).mappings()})
    return out


def raw_claims(bench_db, made: list[dict], raw_loans: list[int]) -> None:
    conn = open_raw_connection(bench_db)
    try:
        with conn.cursor() as cur:
            replay = RawReplay(bench_db.engine, cur)
            claim_columns, share_columns = _columns(claims), _columns(claim_shares)
            for item, raw_loan in zip(made, raw_loans):
                claim = item["claim"]
                cur.execute("SELECT id FROM loans WHERE id = %s FOR UPDATE", (raw_loan,))
                parties = [s["institution_id"] for s in item["shares"]]
                keys = _usage_keys(item["credit_code"], claim["bank_id"], claim["claim_year"])
                cur.execute("SELECT id, institution_id FROM cap_usage WHERE program_id = %s AND institution_id = ANY(%s) "
                            "AND (scope, scope_key) IN (" + ", ".join(["(%s, %s)"] * len(keys)) + ") "
                            "ORDER BY id FOR UPDATE", [claim["program_id"], parties] + [v for k in keys for v in k])
                usage = cur.fetchall()
                entry_id = replay.entry(item["entry"], item["lines"], claim["loan_id"], raw_loan)
                cur.execute(_insert(claims, claim_columns, returning=True),
                            [{"loan_id": raw_loan, "entry_id": entry_id}.get(c, claim[c]) for c in claim_columns])
                claim_id = cur.fetchone()[0]
                cur.execute(_insert(claim_shares, share_columns, len(item["shares"])),
                            [claim_id if c == "claim_id" else s[c] for s in item["shares"] for c in share_columns])
                owed = {s["institution_id"]: s["amount_fen"] for s in item["shares"]}
                for usage_id, institution_id in usage:
                    if owed.get(institution_id):
                        cur.execute("UPDATE cap_usage SET used_fen = used_fen + %s WHERE id = %s",
                                    (owed[institution_id], usage_id))
                cur.execute("UPDATE loans SET status = 'defaulted' WHERE id = %s", (raw_loan,))
                conn.commit()
    finally:
        conn.close()


def _service_recoveries(engine, loan_ids: list[int]) -> list[dict]:
    with engine.connect() as conn:
        found = [dict(row) for row in conn.execute(select(recoveries).where(recoveries.c.loan_id.in_(loan_ids))
                                                   .order_by(recoveries.c.id)).mappings()]
        parts = {}
        for row in conn.execute(select(recovery_shares).where(recovery_shares.c.recovery_id.in_(
                [r["id"] for r in found])).order_by(recovery_shares.c.id)).mappings():
            parts.setdefault(row["recovery_id"], []).append(dict(row))
        ids = [r["entry_id"] for r in found if r["entry_id"]]
        lines, heads = _entry_lines(conn, ids), _entry_heads(conn, ids)
    return [{"recovery": r, "parts": parts[r["id"]], "entry": heads.get(r["entry_id"]),
             "lines": lines.get(r["entry_id"], [])} for r in found]


def raw_recoveries(bench_db, made: list[dict], raw_claim_of: dict[int, tuple[int, int]]) -> None:
    """`raw_claim_of`: service loan -> (raw loan, raw claim)."""
    conn = open_raw_connection(bench_db)
    try:
        with conn.cursor() as cur:
            replay = RawReplay(bench_db.engine, cur)
            columns, part_columns = _columns(recoveries), _columns(recovery_shares)
            for item in made:
                recovery = item["recovery"]
                raw_loan, raw_claim = raw_claim_of[recovery["loan_id"]]
                cur.execute("SELECT id FROM loans WHERE id = %s FOR UPDATE", (raw_loan,))
                cur.execute("SELECT id FROM claims WHERE id = %s FOR UPDATE", (raw_claim,))
                entry_id = replay.entry(item["entry"], item["lines"], recovery["loan_id"], raw_loan) \
                    if item["entry"] else None
                cur.execute(_insert(recoveries, columns, returning=True),
                            [{"loan_id": raw_loan, "claim_id": raw_claim, "entry_id": entry_id}.get(c, recovery[c])
                             for c in columns])
                recovery_id = cur.fetchone()[0]
                cur.execute(_insert(recovery_shares, part_columns, len(item["parts"])),
                            [recovery_id if c == "recovery_id" else p[c] for p in item["parts"] for c in part_columns])
                conn.commit()
    finally:
        conn.close()


# --- the run -------------------------------------------------------------------------------

def scan_with_progress(engine) -> int:
    """`ledger.claims.scan_overdue`'s body (one transaction per claim, in trigger order), with the
    rate printed every PROGRESS_EVERY claims: a claim's cost grows with the programme's book."""
    due = run_in_transaction(engine, lambda conn: overdue_loans(conn, SCAN_ON))
    started = last = time.perf_counter()
    for n, (loan_id, bank_id, classified_on, days) in enumerate(due, start=1):
        run_in_transaction(engine, lambda conn: open_claim(conn, loan_id, bank_id, classified_on, SYSTEM,
                                                           overdue_days=days, today=SCAN_ON))
        if n % PROGRESS_EVERY == 0:
            now = time.perf_counter()
            print(f"  {n:,} claims, {now - started:,.0f} s; last {PROGRESS_EVERY:,} at "
                  f"{PROGRESS_EVERY / (now - last):,.1f}/s", flush=True)
            last = now
    return len(due)


def recover_each(engine, bank_id: int, loan_ids: list[int]) -> None:
    for n, loan_id in enumerate(loan_ids):
        gross = 100_000_00 + (n % 50) * 1_000_00  # 100,000.00 to 149,000.00
        run_in_transaction(engine, lambda conn: record_recovery(
            conn, loan_id, bank_id, RECOVERED_ON, gross, 5_000_00, "auction", f"BENCH-R{n}", SYSTEM,
            today=RECOVERED_ON))


def cap_cuts(engine, loan_ids: list[int]) -> dict[str, int]:
    cut = dict.fromkeys(CAPS, 0)
    with engine.connect() as conn:
        for part in chunks(loan_ids, 5000):
            for (cuts_json,) in conn.execute(select(claim_shares.c.cuts_json).join(claims, claims.c.id == claim_shares.c.claim_id)
                                             .where(claims.c.loan_id.in_(list(part)))):
                for item in json.loads(cuts_json):
                    cut[item["cap"]] += 1
    return cut


def timed_run(label: str, count: int, fn) -> tuple[str, int, float, float]:
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    return label, count, seconds, count / seconds if seconds else float("inf")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defaults", type=int, default=10_000, help="loans defaulted (claims opened)")
    parser.add_argument("--recoveries", type=int, default=2_000, help="recoveries distributed")
    parser.add_argument("--borrowers", type=int, default=None,
                        help="default: one per 20 defaults (so per-borrower-year caps bind)")
    parser.add_argument("--url", default=default_url(), help="PostgreSQL server (a scratch database is made)")
    args = parser.parse_args(argv)
    assert 1 <= args.recoveries <= args.defaults <= 100_000
    with throwaway_database(args.url) as bench_db:
        engine = bench_db.engine
        print_machine_info(machine_info(engine))
        book = Book(engine, args.borrowers or max(args.defaults // 20, 1), args.defaults)
        service_loans = book.loans(args.defaults)
        rows = [timed_run("claims: service (the overdue scan)", args.defaults,
                          lambda: _expect(scan_with_progress(engine), args.defaults, "claims opened"))]
        made = _service_claims(engine, service_loans)
        raw_loans = book.loans(args.defaults)
        rows.append(timed_run("claims: raw SQL, same writes", args.defaults, lambda: raw_claims(bench_db, made, raw_loans)))
        recovered = service_loans[:args.recoveries]
        rows.append(timed_run("recoveries: service", args.recoveries,
                              lambda: recover_each(engine, book.bank_id, recovered)))
        with engine.connect() as conn:
            raw_claim_ids = dict(conn.execute(select(claims.c.loan_id, claims.c.id).where(
                claims.c.loan_id.in_(raw_loans[:args.recoveries]))).all())
        raw_of = {s: (r, raw_claim_ids[r]) for s, r in zip(recovered, raw_loans)}
        service_recoveries = _service_recoveries(engine, recovered)
        rows.append(timed_run("recoveries: raw SQL, same writes", args.recoveries,
                              lambda: raw_recoveries(bench_db, service_recoveries, raw_of)))
        print()
        print_table([(label, n, round(seconds, 2), per_s) for label, n, seconds, per_s in rows],
                    ["what", "count", "seconds", "per second"])
        print(f"\nclaims service/raw time: {rows[0][2] / rows[1][2]:.1f}x; "
              f"recoveries service/raw time: {rows[2][2] / rows[3][2]:.1f}x")
        cuts = cap_cuts(engine, service_loans)
        print("shares cut, by cap:", ", ".join(f"{cap} {n:,}" for cap, n in cuts.items()))
        with engine.connect() as conn:
            proof = verify(conn)
            books = check_claim_books(conn)
            count = conn.execute(select(func.count()).select_from(claims)).scalar_one()
        print(f"claims {count:,}; books balanced {proof.balanced}; claim records equal the journal: "
              f"{books.claims_agree}")
        missing = [cap for cap, n in cuts.items() if n == 0]
        if missing or not proof.balanced or not books.claims_agree or count != 2 * args.defaults:
            print(f"FAILED: caps never cut: {missing}" if missing else "FAILED: the books do not agree")
            return 1
    return 0


def _expect(got: int, wanted: int, what: str) -> None:
    assert got == wanted, f"{what}: {got}, expected {wanted}"


if __name__ == "__main__":
    sys.exit(main())
