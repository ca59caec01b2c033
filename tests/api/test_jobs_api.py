"""GET /v1/jobs/runs over HTTP: paged by id, filtered by job and status, with times, duration
and counts; refused to roles that do not operate or oversee (bank: 403)."""
import pytest

from jobs import runs
from tests.factories import auth, unique


def _three_runs(engine, job: str) -> None:
    for day in ("2026-01-05", "2026-01-06"):
        runs.run_once(engine, job, day, lambda day=day: runs.Outcome(f"did {day}", {"things": int(day[-1])}))
    with pytest.raises(RuntimeError):
        runs.run_once(engine, job, "2026-01-07", lambda: (_ for _ in ()).throw(RuntimeError("no LPR for 2025-12")))


def test_runs_are_listed_paged_and_filtered(client, engine):
    job = unique("job").lower()
    _three_runs(engine, job)
    auditor = auth("auditor")
    first = client.get(f"/v1/jobs/runs?job={job}&limit=2", headers=auditor)
    assert first.status_code == 200
    page = first.get_json()
    assert [(r["period"], r["status"], r["counts"]) for r in page["items"]] == [
        ("2026-01-05", "done", {"things": 5}), ("2026-01-06", "done", {"things": 6})]
    row = page["items"][0]
    assert row["job"] == job and row["detail"] == "did 2026-01-05" and row["duration_seconds"] >= 0
    assert row["started_at"].endswith("Z") and row["finished_at"] >= row["started_at"]
    rest = client.get(f"/v1/jobs/runs?job={job}&limit=2&after={page['next']}", headers=auditor).get_json()
    assert [(r["period"], r["status"]) for r in rest["items"]] == [("2026-01-07", "failed")]
    assert rest["next"] is None and "2025-12" in rest["items"][0]["detail"]
    failed = client.get(f"/v1/jobs/runs?job={job}&status=failed", headers=auth("fiscal")).get_json()
    assert [r["period"] for r in failed["items"]] == ["2026-01-07"]


def test_runs_are_not_for_banks(client):
    assert client.get("/v1/jobs/runs", headers=auth("bank")).status_code == 403
