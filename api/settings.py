"""Settings the app reads from the environment at start (beyond the database's
`IPLEDGER_DATABASE_URL`): the dashboard's session cookie.

- `IPLEDGER_SECRET_KEY`: signs the dashboard's session cookie (Flask `SECRET_KEY`). Production
  sets it (at least 32 characters, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)
  and keeps it the same across every worker and restart; a change signs every session out.
  Unset, each process draws a random one: fine for `ipledger serve`, but sessions then end at
  every restart and do not carry between several gunicorn workers (a warning is logged).
- `IPLEDGER_COOKIE_SECURE=1`: the cookie is sent over HTTPS only (set it behind TLS).
"""
from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta

MIN_SECRET_KEY_CHARS = 32
SESSION_LIFETIME = timedelta(hours=8)  # a working day; then sign in again

log = logging.getLogger("ipledger.settings")


def session_config(environ=os.environ) -> dict:
    secret = environ.get("IPLEDGER_SECRET_KEY", "")
    if secret and len(secret) < MIN_SECRET_KEY_CHARS:
        raise RuntimeError(f"IPLEDGER_SECRET_KEY must have at least {MIN_SECRET_KEY_CHARS} characters")
    if not secret:
        log.warning("IPLEDGER_SECRET_KEY is not set: dashboard sessions last until this process ends")
        secret = secrets.token_hex(32)
    return {"SECRET_KEY": secret, "SESSION_COOKIE_NAME": "ipledger_session",
            "SESSION_COOKIE_PATH": "/dashboard", "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax", "SESSION_COOKIE_SECURE": environ.get("IPLEDGER_COOKIE_SECURE") == "1",
            "PERMANENT_SESSION_LIFETIME": SESSION_LIFETIME}
