"""Benchmark: where a loan post spends its time, by cProfile, for one request of each kind.

What it measures: one profiled run of each service mode (bench/loans_single.py's http single,
N requests; bench/loans_batch.py's http batch, one request of B loans), both warmed up first
and with fresh planner statistics, so the profile shows a steady state. For each it prints the
top functions by cumulative and by own time, then a breakdown by part (authentication, reading
the request, idempotency, each step of `ledger.loans.create_loans`, the read-back, rendering)
and by cross-cutting cost (SQLAlchemy, psycopg, COMMIT, pool), with calls per request.
cProfile inflates Python-heavy parts: the figures are for comparing parts, the loans/s of the
timed benchmarks are the speed. The books are checked afterwards as in the others. Shared
machinery: bench/common.py.

How to run (from the repository root):
    python bench/loans_profile.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                  [--single 300] [--batch-size 5000] [--cpu] [--no-analyze]
The URL defaults to $IPLEDGER_BENCH_POSTGRES_URL, else the one above; the benchmark creates its
own database `ipl_bench_<random>` there and always drops it. `--url sqlite:///x` profiles on a
temporary SQLite file.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import (MAX_BATCH_SIZE, MAX_LOANS, REPO_ROOT, WARMUP_SINGLE,  # noqa: E402
                          BackendCpu, LoanBench, LoanCase, Mode, argument_parser, bank_headers,
                          describe, loan_bench, parse_bounded, print_table, warm_up)
from bench.loans_batch import WARMUP_BATCH, batch_modes  # noqa: E402
from bench.loans_single import single_modes  # noqa: E402

PROFILE_TOP = 20


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
    ("  read the request (webargs: JSON, then LoanIn / LoanBatchIn)", [("webargs/core.py", "parse")]),
    ("    of which the JSON body", [("webargs/flaskparser.py", "_raw_load_json")]),
    ("  idempotency: fingerprint (canonical JSON + sha256)", [("api/idempotency.py", "fingerprint")]),
    ("  idempotency: advisory lock", [("api/idempotency.py", "_hold_key")]),
    ("  idempotency: look up stored outcome", [("ledger/idempotency.py", "find")]),
    ("  create_loans / create_loan (all of it)", [("ledger/loans.py", "_create")]),
    ("    borrower and facts lookup (one SELECT)", [("ledger/parties.py", "borrowers_with_facts")]),
    ("    programme load", [("ledger/programs.py", "load_programs")]),
    ("      of which reading stored terms (parse_terms)", [("ledger/terms.py", "parse_terms")]),
    ("    bind: programme version, SME classification", [("ledger/loans.py", "_bind")]),
    ("      of which sme.classify", [("ledger/sme.py", "classify")]),
    ("    contract-number and patent checks (one SELECT)", [("ledger/loans.py", "_check_numbers_free")]),
    ("    build loan rows", [("ledger/loans.py", "_loan_row")]),
    ("    INSERT pledges", [("ledger/loans.py", "_insert_pledges")]),
    ("    accounts + journal (_disburse)", [("ledger/loans.py", "_disburse")]),
    ("      ensure_accounts (settlement, borrower cash)", [("ledger/journal.py", "ensure_accounts")]),
    ("      create_accounts (receivable, payable)", [("ledger/journal.py", "create_accounts")]),
    ("      post_entries (check accounts, INSERT entries, postings)",
     [("ledger/journal.py", "post_entries")]),
    ("  read the loan back for the response (get_loan; none since issue 11)",
     [("ledger/loans.py", "get_loan")]),
    ("  auth: key look-ups on a cache miss (ledger.keys.authenticate)",
     [("ledger/keys.py", "authenticate")]),
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


# Own time by layer, the list: each function's own time goes to the layer of its file;
# a builtin's (isinstance, a C method) to the layers of its callers, in proportion.
LAYERS = (
    ("psycopg: waiting on the server (round trips)", ("psycopg/connection.py:wait",)),
    ("psycopg (the rest: adapting, results)", ("psycopg/", "psycopg_binary/", "psycopg_c/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("werkzeug (WSGI, request, test client)", ("werkzeug/",)),
    ("flask", ("flask/",)),
    ("flask-smorest + webargs (arguments, response)", ("flask_smorest/", "webargs/", "apispec/")),
    ("marshmallow (schemas: parse and render)", ("marshmallow/",)),
    ("parsing: ipledger fields, money, dates", ("ledger/fields.py", "api/fields.py", "ledger/money.py",
                                               "ledger/dates.py", "ledger/identifiers.py")),
    ("auth (api/auth, ledger/keys)", ("api/auth.py", "ledger/keys.py")),
    ("idempotency (fingerprint, lock, outcome)", ("api/idempotency.py", "ledger/idempotency.py",
                                                  )),
    ("domain (ledger: loans, journal, parties, programmes, bulk...)", ("ledger/",)),
    ("api views and the rest of api/", ("api/",)),
)


SQLITE_LAYER = "SQLite (the database, in this process)"
REST_LAYER = "stdlib (json, re...), the bench client, the rest"


def layer_of(key: tuple) -> str:
    filename, _line, name = key
    where = short_path(filename) + ":" + name
    for label, prefixes in LAYERS:
        if any(where.startswith(prefix) or f"/{prefix}" in where for prefix in prefixes):
            return label
    return REST_LAYER


def print_layers(stats: pstats.Stats, loans_count: int) -> None:
    """Own time per layer; a builtin's own time is split among its callers' layers."""
    totals: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, callers) in stats.stats.items():
        if key[0] == "~" and "sqlite3" in key[2]:  # the embedded database itself, fsync included
            totals[SQLITE_LAYER] = totals.get(SQLITE_LAYER, 0.0) + tt
            continue
        if key[0] != "~" or not callers:
            totals[layer_of(key)] = totals.get(layer_of(key), 0.0) + tt
            continue
        called = sum(caller[2] for caller in callers.values()) or 1.0
        for caller_key, caller in callers.items():
            layer = layer_of(caller_key)
            totals[layer] = totals.get(layer, 0.0) + tt * caller[2] / called
    total = sum(totals.values()) or 1.0
    order = [SQLITE_LAYER] + [label for label, _ in LAYERS] + [REST_LAYER]
    print_table([(label, totals.get(label, 0.0), f"{100 * totals.get(label, 0.0) / total:.1f}%",
                  1000 * totals.get(label, 0.0) / loans_count) for label in order],
                headers=("layer (own time)", "seconds", "share", "ms/loan"))


def profile_mode(label: str, mode: Mode, cases: list[LoanCase], cpu: bool = False) -> None:
    prepared = mode.prepare(cases)
    requests = mode.requests(len(cases))
    # --cpu: this process's CPU time (time.process_time), so waiting on PostgreSQL and on a
    # loaded machine's other work does not count: the Python cost of each layer.
    profiler = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
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
    print("\nby layer (own time of every function, builtins given to their callers; with --cpu "
          "the waits drop out):")
    print_layers(stats, len(cases))


FLOOR_REQUESTS = 1000


def request_floor(bench: LoanBench, count: int = FLOOR_REQUESTS) -> None:
    """CPU per request of the lightest requests through the same app and test client (no
    profiler): what every loan post pays before it does any work of its own."""
    from sqlalchemy import text
    with bench.db.engine.connect() as conn:
        bank = conn.execute(text("SELECT code FROM institutions WHERE id = :id"),
                            {"id": bench.world.bank_id}).scalar_one()
    headers = bank_headers(bench.world, None)
    rows = []
    for label, path, kwargs in (("GET /healthz (werkzeug, flask, flask-smorest)", "/healthz", {}),
                                (f"GET /v1/institutions/{bank} (+ auth from the key cache, one read "
                                 "transaction, one SELECT)", f"/v1/institutions/{bank}", {"headers": headers})):
        for _ in range(50):  # warm
            bench.client.get(path, **kwargs)
        db_before, started = bench.backend_cpu.snapshot(), time.process_time()
        for _ in range(count):
            response = bench.client.get(path, **kwargs)
            assert response.status_code == 200, response.get_data(as_text=True)
        app_s, db_s = time.process_time() - started, BackendCpu.used(db_before, bench.backend_cpu.snapshot())
        rows.append((label, 1000 * app_s / count, "" if db_s is None else 1000 * db_s / count))
    print(f"\nthe floor: CPU per request of the lightest requests ({count:,} each, no profiler, "
          "this process incl. the test client):")
    print_table(rows, headers=("request", "app CPU ms", "db CPU ms"))


def profile(bench: LoanBench, single: int, batch_size: int, cpu: bool = False) -> None:
    """Profile `single` single posts and one batch of `batch_size`, each mode warmed up first."""
    single_mode, batch_mode = single_modes(bench)[0], batch_modes(bench, batch_size)[0]
    bench.modes += [single_mode, batch_mode]
    warm_up(single_mode, bench.source, WARMUP_SINGLE)
    warm_up(batch_mode, bench.source, min(batch_size, WARMUP_BATCH))
    bench.analyze()
    profile_mode(single_mode.label, single_mode, bench.source.take(single), cpu)
    profile_mode(batch_mode.label, batch_mode, bench.source.take(batch_size), cpu)
    request_floor(bench)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--single", type=int, default=300, help="single posts to profile (300)")
    parser.add_argument("--batch-size", type=int, default=5000,
                        help="loans in the profiled batch request (5000)")
    parser.add_argument("--cpu", action="store_true",
                        help="profile CPU time (time.process_time) instead of wall-clock time")
    args = parse_bounded(parser, argv, {"single": (1, MAX_LOANS), "batch_size": (1, MAX_BATCH_SIZE)})
    with loan_bench(args.url, not args.no_analyze) as bench:
        describe(bench, f"profile of {args.single:,} single posts and one batch of "
                        f"{args.batch_size:,} loans")
        profile(bench, args.single, args.batch_size, args.cpu)
        bench.finish()


if __name__ == "__main__":
    main()
