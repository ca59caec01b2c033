"""`/dashboard`: server-rendered pages for people (API.md "Pages"): sign in with an API key, then
a region's targets against their thresholds (charts and tables), the claims' losses by party and
recent subsidy batches and, for keys that may read a programme's stress tests (fiscal, pool,
admin: `ledger.stress_runs.may_stress`, as the API), each programme's latest finished stress test
beside its actual fund; showing what the key's role may see through the API and nothing more.

Sessions and forms
- The sign-in form takes an API key and checks it as the API does (`ledger.keys.authenticate`).
  The signed session cookie (Flask's, signed with `SECRET_KEY`; `api.settings`) holds the key's
  id and prefix, never its secret; every request looks the key up again, so a revoked key is
  signed out on its next request. A cookie that fails its signature is no session at all.
- Every form that changes the session (sign-in, sign-out) carries the session's CSRF token
  (`csrf_token`, random per session, renewed at sign-in); a POST without the right one is 400
  and changes nothing. The region/year choice is a GET: it changes nothing.
- Pages are HTML, outside /v1 and outside the OpenAPI document; they send a strict
  Content-Security-Policy (scripts only from /static: the chart data travels as a JSON data
  block, not a script) and are never cached.

Thin like every view: the figures come from `ledger.dashboard`, `ledger.targets`,
`ledger.claims`, `ledger.subsidy_batches` and `ledger.stress_runs` with the same scopes as the API's readers.
"""
from __future__ import annotations

import hmac
import secrets
from decimal import Decimal

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from marshmallow import EXCLUDE, ValidationError

from api.auth import REGIONAL_READERS, may_see_region
from api.db import read
from api.fields import Choice, Code, QueryInteger, Region, RequestSchema
from api.problems import DOMAIN_STATUS
from api.scope import read_scope
from api.stress_tests import ROLES as STRESS_READERS
from api.subsidy_batches import READERS as BATCH_READERS
from api.targets import FIRST_YEAR, LAST_YEAR
from ledger import claims, dashboard, keys, stress_runs, subsidy_batches, targets
from ledger.errors import DomainError, flatten_messages
from ledger.identifiers import region_prefix
from ledger.money import format_yuan
from ledger.reads import EVERYTHING, ReadScope

blp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

FORM_TYPES = ("application/x-www-form-urlencoded",)  # the pages' forms (api._check_content_type)
DEFAULT_TARGET_SET = "key-city-2018"
RECENT_BATCHES = 10
SME_LINE = "0.5"  # DOMAIN.md §6: the SME share is judged against half, when the set has no check of it
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
ROLE_NOTES = {
    "bank": "your loans' claims",
    "insurer": "the claims you are named on", "guarantor": "the claims you are named on",
    "pool": "the claims you are named on",
}


class DashboardQuery(RequestSchema):
    region = Region()
    year = QueryInteger(low=FIRST_YEAR, high=LAST_YEAR)
    basis = Choice(targets.BASES, load_default="registration")
    target_set = Code(load_default=DEFAULT_TARGET_SET)


# --- session -----------------------------------------------------------------------------------

@blp.before_request
def _signed_in_key():
    """g.principal: the key the session names, if it is still active; else the session ends."""
    g.principal = None
    key_id, prefix = session.get("key_id"), session.get("key_prefix")
    if not isinstance(key_id, int) or not isinstance(prefix, str):
        return None
    with read() as conn:
        g.principal = keys.active_principal(conn, key_id, prefix)
    if g.principal is None:
        session.clear()
        g.signed_out = "Your key was revoked: sign in with another."
    return None


@blp.after_request
def _page_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"  # figures and the CSRF token: never from a cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _csrf_token() -> str:
    if not isinstance(session.get("csrf_token"), str):
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def _csrf_ok() -> bool:
    given, expected = request.form.get("csrf_token", ""), session.get("csrf_token")
    return isinstance(expected, str) and hmac.compare_digest(given.encode(), expected.encode())


def _refused_form(message: str):
    return render_template("sign_in.html", message=message, csrf_token=_csrf_token()), 400


@blp.route("/sign-in", methods=["GET"])
def sign_in_form():
    if g.principal is not None:
        return redirect(url_for(".page"), 303)
    return render_template("sign_in.html", message=g.get("signed_out"), csrf_token=_csrf_token())


@blp.route("/sign-in", methods=["POST"])
def sign_in():
    if not _csrf_ok():
        return _refused_form("The form had expired or did not come from this page: try again.")
    with read() as conn:
        who = keys.authenticate(conn, request.form.get("api_key", "").strip())
    if who is None:
        return render_template("sign_in.html", message="That API key is unknown or revoked.",
                               csrf_token=_csrf_token()), 401
    session.clear()  # a new session at sign-in: nothing from before (fixation), a new CSRF token
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME (api.settings)
    session.update(key_id=who.key_id, key_prefix=who.prefix)
    _csrf_token()
    return redirect(url_for(".page"), 303)


@blp.route("/sign-out", methods=["POST"])
def sign_out():
    if not _csrf_ok():
        return _refused_form("The sign-out form had expired: you are still signed in; try again.")
    session.clear()
    return redirect(url_for(".sign_in_form"), 303)


for view in (sign_in, sign_out):
    view._ipledger_extra_types = FORM_TYPES


# --- the page ----------------------------------------------------------------------------------

@blp.route("", methods=["GET"])
def page():
    who = g.principal
    if who is None and g.get("signed_out"):
        return render_template("sign_in.html", message=g.signed_out, csrf_token=_csrf_token()), 401
    if who is None:
        return redirect(url_for(".sign_in_form"), 303)
    try:
        args = DashboardQuery().load({k: v for k, v in request.args.items() if v != ""}, unknown=EXCLUDE)
    except ValidationError as error:
        problems = flatten_messages(error.messages)
        return _error_page(400, "; ".join(f"{e.field}: {e.message}" for e in problems))
    home = dashboard.home_region(who.role, who.region)
    region = args.get("region", home)
    if who.role in REGIONAL_READERS + ("admin",) and not may_see_region(who, region):
        return _error_page(404, f"Region {region} is outside your jurisdiction ({who.region}).")
    try:
        with read() as conn:
            context = _context(conn, who, home, region, args)
    except DomainError as error:
        return _error_page(next(code for cls, code in DOMAIN_STATUS if isinstance(error, cls)), error.detail)
    context["stress_chart"] = _stress_chart_data(context.get("stress", []))
    return render_template("dashboard.html", **context)


def _error_page(status: int, message: str):
    return render_template("error.html", status=status, message=message, who=g.principal,
                           csrf_token=_csrf_token()), status


def _context(conn, who, home: str, region: str, args: dict) -> dict:
    context = {"who": who, "csrf_token": _csrf_token(), "region": region, "basis": args["basis"],
               "bases": targets.BASES, "role_note": ROLE_NOTES.get(who.role), "chart": None}
    if who.role in REGIONAL_READERS + ("admin",):
        context.update(_targets_context(conn, home, region, args))
        scope = _region_scope(region)
    else:
        scope = read_scope()
    context["losses"] = [_loss_row(row) for row in claims.losses_by_party(conn, claims.claim_condition(scope))]
    if who.role in BATCH_READERS:
        rows = subsidy_batches.list_batches(conn, None if region_prefix(region) == "" else region,
                                            limit=RECENT_BATCHES, newest_first=True)
        context["batches"] = [{**row, "total": format_yuan(row["total_fen"])} for row in rows]
    if who.role in STRESS_READERS:
        # A pool has no region to choose: every programme it is a party to.
        context["stress"] = _stress_sections(conn, who, None if who.role == "pool" else region)
    return context


def _stress_sections(conn, who, region: str | None) -> list[dict]:
    """Each programme the key may stress in the region: its latest finished run, or None."""
    shown = stress_runs.programs_to_show(conn, who.role, who.institution_code, who.region, region)
    latest = stress_runs.latest_done_runs(conn, [p.id for p in shown])
    return [_stress_section(p, stress_runs.stress_summary(conn, latest[p.id]) if p.id in latest else None)
            for p in shown]


def _stress_section(program, summary: dict | None) -> dict:
    section = {"program": program.code, "name": program.name, "run": None}
    if summary is None:
        return section
    a = summary["assumptions"]
    curve = summary["exhaustion_probability_by_year"]
    bins = summary["fund_payout_histogram"]
    section.update(
        run=summary["run"], as_of=a["as_of"], fund_balance=format_yuan(summary["fund_balance_today_fen"]),
        simulated_fund_balance=format_yuan(summary["simulated_fund_balance_fen"]),
        assumptions={"scenarios": a["scenarios"], "years": a["years"], "pd": a["default_probability"],
                     "rho": a["asset_correlation"], "seed": a["seed"]},
        exhaustion=[{"year": point["year"], "probability": point["probability"],
                     "percent": _percent(Decimal(point["probability"]))} for point in curve],
        histogram=[{"from": format_yuan(b["from"]), "to": format_yuan(b["to"]), "count": b["count"]}
                   for b in bins])
    return section


def _stress_chart_data(sections: list[dict]) -> list[dict]:
    """What dashboard.js draws for each finished run: exact strings (probabilities, yuan)."""
    return [{"program": s["program"], "years": [p["year"] for p in s["exhaustion"]],
             "exhaustion_probability": [p["probability"] for p in s["exhaustion"]],
             "payout_from": [b["from"] for b in s["histogram"]], "payout_to": [b["to"] for b in s["histogram"]],
             "payout_count": [b["count"] for b in s["histogram"]]}
            for s in sections if s["run"] is not None]


def _region_scope(region: str) -> ReadScope:
    """A regional reader's (or admin's) claims narrowed to the chosen region."""
    prefix = region_prefix(region)
    return EVERYTHING if prefix == "" else ReadScope(region_prefix=prefix)


def _targets_context(conn, home: str, region: str, args: dict) -> dict:
    target_set = targets.target_set(conn, args["target_set"])
    years = dashboard.years_offered(conn)
    year = args.get("year", years[0] if years else None)
    rows = [] if year is None else dashboard.target_years(conn, region, year, args["basis"], target_set)
    return {"targets_shown": True, "year": year, "years": years,
            "regions": dashboard.regions_offered(conn, home), "target_set": target_set,
            "target_sets": [t.code for t in targets.target_sets_in(conn)],
            "rows": [_year_row(row) for row in rows],
            "chart": _chart_data(rows, target_set) if rows else None}


def _percent(value) -> str | None:
    """A ratio as a percentage for people, 2 places (the exact ratio is in the API)."""
    text = targets.ratio_text(None if value is None else value * 100, places=2)
    return None if text is None else f"{text}%"


def _year_row(row: dashboard.TargetYear) -> dict:
    f = row.figures
    return {"year": row.year, "amount": format_yuan(f.amount_fen), "count": f.count,
            "pledge_count": f.pledge_count, "insured_amount": format_yuan(f.insured_amount_fen),
            "enterprise_count": f.enterprise_count, "sme_enterprise_count": f.sme_enterprise_count,
            "sme_count": f.sme_count,
            "amount_growth": _percent(row.growth("amount")), "count_growth": _percent(row.growth("count")),
            "sme_share_count": _percent(f.shares["sme_share_count"]),
            "checks": [{"metric": c["metric"], "comparator": c["comparator"], "threshold": _percent(c["threshold"]),
                        "value": _percent(c["value"]), "pass": c["pass"]} for c in row.checks]}


def _threshold(target_set: targets.TargetSet, metric: str) -> dict | None:
    found = [c for c in target_set.checks if c.metric == metric]
    return None if not found else {"comparator": found[0].comparator,
                                   "ratio": targets.ratio_text(found[0].threshold)}


def _chart_data(rows: list[dashboard.TargetYear], target_set: targets.TargetSet) -> dict:
    """What dashboard.js draws: exact decimal strings (yuan, ratios); the browser turns them into
    numbers only to place bars and lines, the tables beside the charts print them exactly."""
    def passes(metric: str) -> list[bool | None]:
        return [next((c["pass"] for c in row.checks if c["metric"] == metric), None) for row in rows]
    return {
        "years": [row.year for row in rows],
        "amount": [format_yuan(row.figures.amount_fen) for row in rows],
        "count": [row.figures.count for row in rows],
        "amount_growth": [targets.ratio_text(row.growth("amount")) for row in rows],
        "count_growth": [targets.ratio_text(row.growth("count")) for row in rows],
        "sme_share_count": [targets.ratio_text(row.figures.shares["sme_share_count"]) for row in rows],
        "thresholds": {metric: _threshold(target_set, metric)
                       for metric in ("amount_growth", "count_growth", "sme_share_count")},
        "sme_line": (_threshold(target_set, "sme_share_count") or {"comparator": ">", "ratio": SME_LINE}),
        "passes": {metric: passes(metric) for metric in ("amount_growth", "count_growth", "sme_share_count")},
    }


def _loss_row(row: claims.PartyLoss) -> dict:
    return {"institution": row.institution, "name": row.name, "role": row.role,
            "claim_count": row.claim_count, "amount": format_yuan(row.amount_fen)}
