"""`/healthz` (the process is up) and `/readyz` (database reachable, migrations at head)."""
import functools

from flask_smorest import Blueprint
from marshmallow import fields
from sqlalchemy import text

from api.db import read
from api.openapi import Output
from api.problems import problem
from ledger.db import current_revision, head_revision

blp = Blueprint("health", __name__, description="Liveness and readiness (no key needed)")


class HealthOut(Output):
    status = fields.String(metadata={"example": "ok"})


class ReadyOut(HealthOut):
    database = fields.String()
    revision = fields.String(allow_none=True)
    head = fields.String()


@blp.route("/healthz")
@blp.response(200, HealthOut)
@blp.doc(security=[])
def healthz():
    return {"status": "ok"}


@functools.cache
def _head() -> str:
    """The migration head of this code: read from the scripts once per process, since they
    cannot change under a running process (reading them on every call made /readyz answer
    ~90/s beside ~1,500/s for /healthz)."""
    return head_revision()


@blp.route("/readyz")
@blp.response(200, ReadyOut)
@blp.alt_response(503, description="Database unreachable or migrations not at head")
@blp.doc(security=[])
def readyz():
    head = _head()
    try:
        with read() as conn:
            conn.execute(text("SELECT 1"))
            revision = current_revision(conn)
            dialect = conn.dialect.name
    except Exception as error:  # any failure to reach the database means "not ready"
        return problem(503, "Not ready", f"database unreachable: {type(error).__name__}", "not-ready")
    if revision != head:
        return problem(503, "Not ready", f"database at migration {revision}, code expects {head}; "
                                         "run `ipledger db upgrade`", "not-ready")
    return {"status": "ready", "database": dialect, "revision": revision, "head": head}
