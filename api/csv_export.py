"""`Accept: text/csv` on the list endpoints auditors use (API.md: Conventions).

The view renders its JSON page as usual; when the caller prefers CSV, the page's items become
rows (nested lists flattened by a per-endpoint `rows` function; remaining nested values as JSON
text). Paging is the same: the next cursor comes in `Link: <...>; rel="next"` and `X-Next-Cursor`.
"""
from __future__ import annotations

import csv
import io
import json
from functools import wraps
from typing import Callable, Iterable

from flask import Response, make_response, request
from flask_smorest.utils import deepupdate

CSV = "text/csv"


def wants_csv() -> bool:
    accept = request.accept_mimetypes
    return accept.quality(CSV) > accept.quality("application/json")


def csv_list(rows: Callable[[dict], Iterable[dict]] = lambda item: [item]):
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            response = make_response(view(*args, **kwargs))
            if response.status_code != 200 or not wants_csv():
                return response
            body = response.get_json()
            return render(body["items"], rows, body.get("next"))
        wrapper._apidoc = deepupdate(dict(getattr(view, "_apidoc", {})), {"manual_doc": {"responses": {
            "200": {"content": {CSV: {"schema": {"type": "string"}}}}}}})
        return wrapper
    return decorate


def render(items: list[dict], rows: Callable[[dict], Iterable[dict]], next_cursor: str | None) -> Response:
    flat = [row for item in items for row in rows(item)]
    columns: list[str] = []
    for row in flat:
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                         for k, v in row.items()})
    response = Response(out.getvalue(), mimetype=CSV)
    if next_cursor:
        args = request.args.to_dict()
        args["after"] = next_cursor
        query = "&".join(f"{k}={v}" for k, v in args.items())
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
        response.headers["X-Next-Cursor"] = next_cursor
    return response


def postings_rows(entry: dict) -> list[dict]:
    """A journal entry as one row per posting, the entry's fields repeated."""
    head = {k: v for k, v in entry.items() if k != "postings"}
    return [{**head, **{f"posting_{k}": v for k, v in posting.items()}} for posting in entry["postings"]]


def loan_rows(loan: dict) -> list[dict]:
    """A loan as one row; its pledges as a count and their numbers."""
    pledges = loan.get("pledges", [])
    row = {k: v for k, v in loan.items() if k not in ("pledges", "events")}
    return [{**row, "pledge_count": len(pledges), "pledge_numbers": " ".join(p["number"] for p in pledges)}]
