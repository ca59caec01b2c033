"""What the soak (bench/soak.py) and the crash drills (tests/test_crash_safety.py) share: real
gunicorn servers on a database, killed with SIGKILL (master and workers, by the pids we started)
and started again, and a small HTTP client that reports a dropped connection instead of raising.

PostgreSQL only: SQLite allows one writer at a time, and the point is concurrent processes.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO_ROOT, _proc_stat
from bench.loans_server import _free_port, _wait_until_ready

HTTP_TIMEOUT_S = 120


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (a gunicorn master's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and fields[1] == str(pid):
                found.append(int(entry.name))
    return found


@dataclass
class Gunicorn:
    """`gunicorn wsgi:app` (gthread) on `database_url`, on a port of its own; `kill_hard` is
    kill -9 of the master and every worker at once (no graceful shutdown, no atexit)."""

    database_url: str
    workers: int = 2
    threads: int = 4
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen | None = None

    def start(self) -> "Gunicorn":
        self.launch()
        return self.wait_until_ready()

    def wait_until_ready(self) -> "Gunicorn":
        _wait_until_ready(self.process, self.port, self.log)
        return self

    def launch(self) -> "Gunicorn":
        """Start the process without waiting for it to answer (several boot at once)."""
        env = {**os.environ, "IPLEDGER_DATABASE_URL": self.database_url,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
                   "--workers", str(self.workers), "--threads", str(self.threads),
                   "--bind", f"127.0.0.1:{self.port}", "--timeout", "300", "--graceful-timeout", "5",
                   "--log-level", "warning", "--chdir", str(REPO_ROOT), "wsgi:app"]
        self.log = tempfile.TemporaryFile(prefix="ipl_drill_gunicorn_")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill_hard(self) -> int:
        """SIGKILL the workers and the master; returns how many processes were killed."""
        victims = child_pids(self.process.pid) + [self.process.pid]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        return len(victims)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: the connection dropped before an answer
    body: dict | None
    headers: dict
    seconds: float

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed") == "true"


def post(port: int, path: str, payload: dict, headers: dict, timeout: float = HTTP_TIMEOUT_S) -> Reply:
    """One POST on a fresh connection; a dropped or refused connection is a Reply with no status."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(payload),
                     headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        raw = response.read()
        body = json.loads(raw) if raw else None
        return Reply(response.status, body, {k.lower(): v for k, v in response.getheaders()},
                     time.perf_counter() - started)
    except (OSError, http.client.HTTPException):
        return Reply(None, None, {}, time.perf_counter() - started)
    finally:
        conn.close()


def wait_for_backends_to_end(engine, timeout_s: float = 60) -> None:
    """After a kill, PostgreSQL backends of the dead workers roll back when they notice their client
    is gone; count rows only after they have (otherwise a count races the rollback)."""
    from sqlalchemy import text
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state <> 'idle'")).scalar_one()
            if not others:
                return
            time.sleep(0.05)
        left = conn.execute(text(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND state <> 'idle'")).all()
    raise AssertionError(f"the killed server's database sessions did not end: {left}")
