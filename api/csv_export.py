"""`Accept: text/csv` on the list endpoints auditors use (API.md: Conventions).

The view renders its JSON page as usual; when the caller prefers CSV, the page's items become
rows (nested lists flattened by a per-endpoint `rows` function; remaining nested values as JSON
text; booleans `true`/`false` as in JSON). Paging is the same: the next cursor comes in
`Link: <...>; rel="next"` and `X-Next-Cursor`. The link is built only from the query parameters
the view documents, URL-encoded: nothing a caller sends is copied into a header unencoded.
"""
from __future__ import annotations

import csv
import io
import json
from functools import wraps
from typing import Callable, Iterable
from urllib.parse import quote, urlencode

from flask import Response, make_response, request
from flask_smorest.utils import deepupdate

CSV = "text/csv"
CSV_DOC = {
    "description": "A page: JSON `{items, next}`; with `Accept: text/csv`, the items as CSV rows "
                   "(a header row first) and the next page in the `Link` and `X-Next-Cursor` headers",
    "content": {CSV: {"schema": {"type": "string"}}},
    "headers": {
        "Link": {"description": "CSV only: `<...?after=...>; rel=\"next\"` while there is a next page",
                 "schema": {"type": "string"}},
        "X-Next-Cursor": {"description": "CSV only: the next page's cursor, while there is one",
                          "schema": {"type": "string"}}},
}


def wants_csv() -> bool:
    accept = request.accept_mimetypes
    return accept.quality(CSV) > accept.quality("application/json")


def csv_list(rows: Callable[[dict], Iterable[dict]] = lambda item: [item]):
    def decorate(view):
        known = _query_names(getattr(view, "_apidoc", {}))

        @wraps(view)
        def wrapper(*args, **kwargs):
            response = make_response(view(*args, **kwargs))
            if response.status_code != 200 or not wants_csv():
                return response
            body = response.get_json()
            return render(body["items"], rows, body.get("next"), known)
        wrapper._apidoc = deepupdate(dict(getattr(view, "_apidoc", {})),
                                     {"manual_doc": {"responses": {"200": CSV_DOC}}})
        return wrapper
    return decorate


def _query_names(apidoc: dict) -> tuple[str, ...]:
    """The query parameters a view parses (its `@blp.arguments(..., location="query")`)."""
    names: list[str] = []
    for argument in apidoc.get("arguments", {}).get("parameters", []):
        if argument.get("in") == "query":
            schema = argument["schema"]
            fields = (schema() if isinstance(schema, type) else schema).fields
            names += [field.data_key or name for name, field in fields.items()]
    return tuple(names)


def render(items: list[dict], rows: Callable[[dict], Iterable[dict]], next_cursor: str | None,
           known: tuple[str, ...] = ()) -> Response:
    flat = [row for item in items for row in rows(item)]
    columns: list[str] = []
    for row in flat:
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    response = Response(out.getvalue(), mimetype=CSV)
    if next_cursor:
        response.headers["Link"] = f'<{next_link(next_cursor, known)}>; rel="next"'
        response.headers["X-Next-Cursor"] = next_cursor
    return response


def next_link(next_cursor: str, known: tuple[str, ...]) -> str:
    pairs = [(name, value) for name in known if name != "after" for value in request.args.getlist(name)]
    return f"{quote(request.path)}?{urlencode(pairs + [('after', next_cursor)])}"


def _cell(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def postings_rows(entry: dict) -> list[dict]:
    """A journal entry as one row per posting, the entry's fields repeated."""
    head = {k: v for k, v in entry.items() if k != "postings"}
    return [{**head, **{f"posting_{k}": v for k, v in posting.items()}} for posting in entry["postings"]]


def loan_rows(loan: dict) -> list[dict]:
    """A loan as one row; its pledges as a count and their numbers."""
    pledges = loan.get("pledges", [])
    row = {k: v for k, v in loan.items() if k not in ("pledges", "events")}
    return [{**row, "pledge_count": len(pledges), "pledge_numbers": " ".join(p["number"] for p in pledges)}]
