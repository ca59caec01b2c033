"""Benchmark: posting loans one per request to a real server (gunicorn) from concurrent clients,
against raw SQL of the same writes at the same concurrency, in one run.

What it measures: loans per second, and wall and CPU milliseconds per loan, of two modes
posting loans with two pledges (a patent and a trademark) into one PostgreSQL scratch database:
- http server - `gunicorn wsgi:app` (gthread workers) on 127.0.0.1, started by this benchmark
                on the scratch database; K client threads in this process, each with one
                keep-alive http.client connection, POST /v1/loans one loan per request with a
                fresh Idempotency-Key (a retry after a dropped connection is safe: it replays);
- raw single xK - the raw single baseline (bench/loans_single.py) from K threads, each on its
                own connection (commits of concurrent transactions can share a WAL flush).
Both are warmed up untimed (every worker imports the app and fills its caches), the statistics
refreshed, then the pair is timed in alternating rounds; the service's CPU is that of the
gunicorn master and workers (from /proc), the client threads' CPU is reported beside it, and
the PostgreSQL backends' CPU too. Afterwards the books must balance and hold exactly what was
posted. PostgreSQL only (SQLite allows one writer at a time); needs gunicorn
(pip install -e '.[server]'). Shared machinery: bench/common.py.

How to run (from the repository root):
    python bench/loans_server.py [--url postgresql://postgres@127.0.0.1:5432/test]
                                 [--loans 1000] [--clients 8] [--server-workers 2]
                                 [--server-threads 4] [--worker-class gthread|sync]
                                 [--rounds 5] [--no-analyze]
The URL defaults to $IPLEDGER_BENCH_POSTGRES_URL, else the one above; the benchmark creates its
own database `ipl_bench_<random>` there and always drops it (after stopping the server).
"""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from bench.common import (MAX_LOANS, REPO_ROOT, WARMUP_SINGLE, BenchDatabase,  # noqa: E402
                          LoanBench, Mode, RawWriter, World, _expect, argument_parser,
                          bank_headers, describe, is_sqlite_url, loan_bench, one_per_loan,
                          parse_bounded, process_tree_cpu_s, raw_connections, report)
from ledger.db import utcnow  # noqa: E402

MAX_CLIENTS = 64
MAX_SERVER_PROCESSES = 16
SERVER_START_TIMEOUT_S = 60
CLIENT_RETRIES = 3


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    workers: int
    threads: int
    log: object
    worker_class: str = "gthread"

    def wait_until_ready(self) -> None:
        _wait_until_ready(self.process, self.port, self.log)


def gunicorn_available() -> bool:
    return importlib.util.find_spec("gunicorn") is not None


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn_server(bench_db: BenchDatabase, workers: int, threads: int,
                    worker_class: str = "gthread") -> Iterator[Server]:
    """`gunicorn wsgi:app` (gthread workers) on the scratch database, started at once (it boots
    while the benchmark sets up; `Server.wait_until_ready` before use); stopped (SIGTERM to the
    master we started, by its pid) on the way out, before the database is dropped."""
    port = _free_port()
    env = {**os.environ,
           "IPLEDGER_DATABASE_URL": bench_db.engine.url.render_as_string(hide_password=False),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "gunicorn", "--worker-class", worker_class,
               "--workers", str(workers), "--threads", str(threads),
               "--bind", f"127.0.0.1:{port}", "--keep-alive", "75", "--graceful-timeout", "5",
               "--log-level", "warning",
               "--chdir", str(REPO_ROOT), "wsgi:app"]
    with tempfile.TemporaryFile(prefix="ipl_bench_gunicorn_") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield Server(process, port, workers, threads, log, worker_class)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n"
                               f"{log.read().decode(errors='replace')[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer /healthz within {SERVER_START_TIMEOUT_S}s")


def split_round_robin(items: Sequence, parts: int) -> list[list]:
    return [list(items[k::parts]) for k in range(parts)]


def run_threads(work: Callable[[int, list], None], shares: list[list]) -> None:
    """Run work(k, shares[k]) on one thread per share; re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(k: int, share: list) -> None:
        try:
            work(k, share)
        except BaseException as exc:  # noqa: BLE001 - carried to the caller
            failures.append(exc)
    threads = [threading.Thread(target=guarded, args=(k, share)) for k, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def http_server_single(server: Server, world: World, clients: int
                       ) -> tuple[Callable, Callable, Callable]:
    """K client threads, each with one keep-alive connection, POST /v1/loans one loan each;
    returns prepare, post and close (the client connections)."""
    connections: list[http.client.HTTPConnection | None] = [None] * clients

    def connection(k: int) -> http.client.HTTPConnection:
        if connections[k] is None:
            connections[k] = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        return connections[k]

    def prepare(cases):
        bodies = [(json.dumps(c.payload).encode(), bank_headers(world, f"bench-server-{c.index}"))
                  for c in cases]
        return split_round_robin(bodies, clients)

    def send(k: int, share: list) -> None:
        for body, headers in share:
            for attempt in range(CLIENT_RETRIES):
                try:
                    conn = connection(k)
                    conn.request("POST", "/v1/loans", body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    # The server closed the keep-alive connection: reconnect and send again;
                    # the Idempotency-Key makes the retry safe (a replay answers 201 too).
                    connections[k].close()
                    connections[k] = None
                    if attempt == CLIENT_RETRIES - 1:
                        raise
            _expect(response.status, data, "POST /v1/loans (gunicorn)")

    def close() -> None:
        for k, conn in enumerate(connections):
            if conn is not None:
                conn.close()
                connections[k] = None
    return prepare, lambda shares: run_threads(send, shares), close


def raw_single_concurrent(connections: list, world: World) -> tuple[Callable, Callable]:
    """Raw single from K threads, one connection each: the raw baseline at the server's
    concurrency (commits of concurrent transactions can share a WAL flush)."""
    writer = RawWriter(world, "%s")

    def send(k: int, cases: list) -> None:
        conn = connections[k]
        cur = conn.cursor()
        for case in cases:
            writer.write(cur, case, f"bench-raw-concurrent-{case.index}", utcnow(),
                         store_outcome=True)
            conn.commit()

    return (lambda cases: split_round_robin(cases, len(connections))), \
        (lambda shares: run_threads(send, shares))


def measure(bench: LoanBench, server: Server, loans: int, rounds: int, clients: int) -> list[Mode]:
    server.wait_until_ready()
    with raw_connections(bench.db, clients) as conns:
        prepare, post, close = http_server_single(server, bench.world, clients)
        shape = (f"{server.workers}w x {server.threads}t" if server.worker_class == "gthread"
                 else f"{server.workers}w {server.worker_class}")
        served = Mode(f"http single (gunicorn {shape}, {clients} clients)", prepare, post, lambda: process_tree_cpu_s(server.process.pid),
                      one_per_loan, driver_cpu_s=0.0)
        raw_k = Mode(f"raw single ({clients} connections)",
                     *raw_single_concurrent(conns, bench.world), time.process_time, one_per_loan)
        try:
            # Warm every worker: each imports the app and fills its caches on first use.
            return bench.measure_pair(served, raw_k, loans, rounds,
                                      warmup=max(WARMUP_SINGLE, 4 * clients))
        finally:
            close()


def add_server_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=8,
                        help="client threads (and raw connections) of the server mode (8)")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--server-threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread",
                        help="gunicorn worker class (gthread; sync workers serve one request at "
                             "a time and close the connection after each)")


SERVER_BOUNDS = {"clients": (1, MAX_CLIENTS), "server_workers": (1, MAX_SERVER_PROCESSES),
                 "server_threads": (1, MAX_CLIENTS)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--loans", type=int, default=1000, help="loans per mode (1000)")
    add_server_arguments(parser)
    args = parse_bounded(parser, argv, {"loans": (1, MAX_LOANS), **SERVER_BOUNDS})
    if is_sqlite_url(args.url):
        parser.error("PostgreSQL only: SQLite allows one writer at a time")
    if not gunicorn_available():
        parser.error("gunicorn is not installed: pip install -e '.[server]'")
    with loan_bench(args.url, not args.no_analyze) as bench:
        with gunicorn_server(bench.db, args.server_workers, args.server_threads,
                             args.worker_class) as server:
            describe(bench, f"{args.loans:,} loans per mode, one per request, from "
                            f"{args.clients} clients; modes alternated in up to {args.rounds} "
                            "timed rounds")
            modes = measure(bench, server, args.loans, args.rounds, args.clients)
        report(modes, bench.notes)
        bench.finish()


if __name__ == "__main__":
    main()
