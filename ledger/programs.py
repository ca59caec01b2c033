"""Programmes: risk-sharing schemes with versioned terms, and their compensation fund.

Guarantees
- Terms arrive typed (read by `ledger.terms.TermsIn`, which checks their form); before storage
  their references are checked (every named institution exists, each party's kind equals its
  role) and they are stored canonically; readers get typed `Terms`, never raw dicts.
- Versions only append: a new version takes effect after the latest one's start, and implicitly
  ends its predecessor the day before. A loan binds to the version in force on its start date,
  and stays bound: a new version must start after the latest start date of the programme's
  loans (checked under the programme's row lock, which loan creation shares), so
  `version_on(loan.start_date)` is every loan's bound version, before and after.
- A programme is in force on a day if a version covers that day (`effective_to` inclusive).
- Fund contributions are journal entries: the pool fund (an asset owned by the programme) rises
  and the contributor's settlement account pays. The amount is positive fen; the date is not in
  the future and not before the programme's first version starts.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, bindparam, insert, or_, select, text
from sqlalchemy.exc import IntegrityError

from ledger import accounts as chart
from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.db import is_postgres, utcnow
from ledger.errors import Conflict, FieldError, Invalid, NotFound, raise_if_any
from ledger.identifiers import region_covers, validate_region
from ledger.identifiers import region_prefix as region_prefix_of
from ledger.journal import Actor, EntryDraft, Line, balance_fen, ensure_accounts, post_entry
from ledger.money import check_fen
from ledger.schema import (entries, institutions, loans, postings, program_parties, program_versions,
                           programs)
from ledger.terms import Terms, parse_terms, reference_errors, terms_to_dict

CODE_MAX = 60


@dataclass(frozen=True)
class Version:
    id: int
    version: int
    effective_from: date
    effective_to: date | None
    terms: Terms


@dataclass(frozen=True)
class Program:
    id: int
    code: str
    name: str
    region: str
    versions: tuple[Version, ...]  # oldest first

    def version_on(self, day: date) -> Version | None:
        """The version in force on `day`, or None if the programme is not in force then."""
        current = None
        for version in self.versions:
            if version.effective_from <= day:
                current = version
        if current is None or (current.effective_to is not None and day > current.effective_to):
            return None
        return current

    def covers_region(self, region: str) -> bool:
        return region_covers(self.region, region)

    def involves_region(self, region: str) -> bool:
        """A fiscal bureau or auditor of `region` participates in this programme (reads it and
        its fund; a bureau tops the fund up) when the programme's region covers `region` (a
        city's bureau under a provincial scheme) or lies within it (a province's over a city's)."""
        return region_covers(self.region, region) or region_covers(region, self.region)

    def has_party(self, institution_code: str) -> bool:
        """The institution is named among the sharing parties of any version."""
        return any(p.institution == institution_code for v in self.versions for p in v.terms.parties)


def may_contribute(program: Program, kind: str, institution_code: str, region: str) -> bool:
    """Who tops up a programme's fund: a fiscal bureau participating in it, or a pool that is
    one of its parties (API.md: fund contributions are by fiscal bureaus and pools)."""
    if kind == "fiscal":
        return program.involves_region(region)
    return kind == "pool" and program.has_party(institution_code)


def region_and_ancestors(region: str) -> list[str]:
    """`440106` -> the country, its province, its city and itself (the regions covering it)."""
    region = validate_region(region)
    return sorted({"000000", region[:2] + "0000", region[:4] + "00", region})


def _institution_kinds(conn: Connection) -> dict[str, str]:
    return {row.code: row.kind for row in conn.execute(select(institutions.c.code, institutions.c.kind))}


def _check_references(conn: Connection, terms: Terms) -> None:
    assert isinstance(terms, Terms), "terms are read by ledger.terms.TermsIn (or parse_terms)"
    raise_if_any(reference_errors(terms, _institution_kinds(conn)))


def _check_window(effective_from, effective_to) -> None:
    if not isinstance(effective_from, date):
        raise Invalid.field("effective_from", "a date written YYYY-MM-DD is required")
    if effective_to is not None and effective_to < effective_from:
        raise Invalid.field("effective_to", "must not be before effective_from")


def create_program(conn: Connection, code: str, name: str, region: str, effective_from: date,
                   effective_to: date | None, terms: Terms, actor: Actor) -> Program:
    if not isinstance(code, str) or not 1 <= len(code) <= CODE_MAX or not code.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise Invalid.field("code", f"1-{CODE_MAX} letters, digits, '-', '_' or '.'")
    region = validate_region(region)
    _check_window(effective_from, effective_to)
    _check_references(conn, terms)
    if conn.execute(select(programs.c.id).where(programs.c.code == code)).first():
        raise Conflict(f"programme {code} already exists")
    try:
        program_id = conn.execute(insert(programs).values(
            code=code, name=name, region=region, created_by_key_id=actor.key_id,
            created_at=utcnow())).inserted_primary_key[0]
    except IntegrityError as exc:
        raise Conflict(f"programme {code} already exists") from exc
    _insert_version(conn, program_id, 1, effective_from, effective_to, terms, actor)
    return get_program(conn, code)


def add_version(conn: Connection, code: str, effective_from: date, effective_to: date | None,
                terms: Terms, actor: Actor) -> Program:
    program = get_program(conn, code, lock=True)
    _check_window(effective_from, effective_to)
    latest = program.versions[-1]
    if effective_from <= latest.effective_from:
        raise Invalid.field("effective_from", f"must be after the latest version's start "
                                              f"({latest.effective_from.isoformat()})")
    _check_bound_loans(conn, program, effective_from)
    _check_references(conn, terms)
    _insert_version(conn, program.id, latest.version + 1, effective_from, effective_to, terms, actor)
    return get_program(conn, code)


def _check_bound_loans(conn: Connection, program: Program, effective_from: date) -> None:
    """A version starting on or before a loan's start would be in force for a loan bound to an
    earlier one: refused, so bindings never change (the caller holds the programme's row lock)."""
    latest = conn.execute(select(loans.c.id, loans.c.start_date, program_versions.c.version)
                          .join(program_versions, program_versions.c.id == loans.c.program_version_id)
                          .where(loans.c.program_id == program.id)
                          .order_by(loans.c.start_date.desc(), loans.c.id.desc()).limit(1)).first()
    if latest is not None and effective_from <= latest.start_date:
        raise Invalid.field("effective_from", f"must be after {latest.start_date.isoformat()}: loan {latest.id} "
                                              f"started then, bound to version {latest.version}, and a "
                                              "version in force on a bound loan's start would change its terms")


def _insert_version(conn, program_id: int, number: int, effective_from: date,
                    effective_to: date | None, terms: Terms, actor: Actor) -> None:
    version_id = conn.execute(insert(program_versions).values(
        program_id=program_id, version=number, effective_from=effective_from,
        effective_to=effective_to, terms_json=json.dumps(terms_to_dict(terms), sort_keys=True),
        created_by_key_id=actor.key_id, created_at=utcnow())).inserted_primary_key[0]
    ids = {row.code: row.id for row in conn.execute(select(institutions.c.code, institutions.c.id)
                                                    .where(institutions.c.code.in_([p.institution for p in terms.parties])))}
    if terms.parties:
        conn.execute(insert(program_parties), [
            {"program_version_id": version_id, "institution_id": ids[party.institution],
             "position": position, "role": party.role}
            for position, party in enumerate(terms.parties)])


def get_program(conn: Connection, code: str, lock: bool = False) -> Program:
    return load_programs(conn, [code], lock=lock).get(code) or _not_found(code)


def _not_found(code: str):
    raise NotFound(f"programme {code} does not exist")


def _heads(lock: str | None):
    query = select(programs).where(programs.c.code.in_(bindparam("codes", expanding=True))).order_by(programs.c.id)
    return query if lock is None else query.with_for_update(read=lock == "key_share",
                                                            key_share=lock == "key_share")


# Built once (every loan post loads its programme): SQLAlchemy reuses their compiled form.
_HEADS = {lock: _heads(lock) for lock in (None, "key_share", "update")}
_VERSIONS = (select(program_versions).where(program_versions.c.program_id.in_(bindparam("ids", expanding=True)))
             .order_by(program_versions.c.program_id, program_versions.c.version))


def load_programs(conn: Connection, codes, lock: bool = False, share_lock: bool = False) -> dict[str, Program]:
    """Programmes by code with all their versions (two queries, whatever the count). `lock`
    takes their rows FOR UPDATE (adding a version), `share_lock` FOR KEY SHARE (creating loans:
    the lock the loans' foreign key takes anyway, taken before the versions are read), in id
    order; SQLite serialises writers instead. Two statements, not one join, on purpose: the
    versions must be read after the lock is granted (a join reads them from the snapshot taken
    before waiting, and would miss the version whose transaction held the lock)."""
    heads = conn.execute(_HEADS["update" if lock else "key_share" if share_lock else None],
                         {"codes": list(codes)}).all()
    if not heads:
        return {}
    versions: dict[int, list[Version]] = {head.id: [] for head in heads}
    for row in conn.execute(_VERSIONS, {"ids": list(versions)}):
        versions[row.program_id].append(Version(row.id, row.version, row.effective_from, row.effective_to,
                                                stored_terms(row.terms_json)))
    return {head.code: Program(head.id, head.code, head.name, head.region,
                               tuple(_close_superseded(versions[head.id]))) for head in heads}


@functools.lru_cache(maxsize=4096)
def stored_terms(terms_json: str) -> Terms:
    """Stored terms, read once per process: keyed by the stored text itself (versions only
    append and `Terms` is immutable), so a cached value can never be stale, on any database."""
    return parse_terms(json.loads(terms_json), None)


def _close_superseded(versions: list[Version]) -> list[Version]:
    """A version ends the day before its successor starts (if it did not end earlier)."""
    closed = []
    for current, following in zip(versions, versions[1:] + [None]):
        end = current.effective_to
        if following is not None:
            implicit = following.effective_from - timedelta(days=1)
            end = implicit if end is None else min(end, implicit)
        closed.append(Version(current.id, current.version, current.effective_from, end, current.terms))
    return closed


def list_programs(conn: Connection, region_prefix: str = "", after_id: int = 0, limit: int = 50,
                  involving_region: str | None = None) -> list[Program]:
    """Programmes by id; `region_prefix` keeps those within a region, `involving_region` those
    whose region covers it or lies within it (`Program.involves_region`)."""
    query = select(programs.c.code).where(programs.c.id > after_id)
    if region_prefix:
        query = query.where(programs.c.region.like(f"{region_prefix}%"))
    if involving_region is not None:
        query = query.where(or_(programs.c.region.like(f"{region_prefix_of(involving_region)}%"),
                                programs.c.region.in_(region_and_ancestors(involving_region))))
    codes = [row.code for row in conn.execute(query.order_by(programs.c.id).limit(limit))]
    loaded = load_programs(conn, codes)
    return sorted(loaded.values(), key=lambda p: p.id)


# --- the fund ---------------------------------------------------------------------------------

# Advisory-lock namespace of programme funds on PostgreSQL (an arbitrary constant: "IPFN").
FUND_LOCK_NS = 0x4950464E


def lock_fund(conn: Connection, program_id: int) -> None:
    """Contributions to a fund and the claims that split on its balance take turns: without it,
    a claim could read the balance just before a contribution whose entry precedes its own
    commits, and the book would differ from a replay of its entries in order (found by the soak).
    SQLite has one writer at a time."""
    if is_postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :program)"),
                     {"ns": FUND_LOCK_NS, "program": program_id})


def contribute(conn: Connection, code: str, contributor_id: int, amount_fen: int, on: date,
               actor: Actor, today: date | None = None) -> dict:
    """Top up the programme's compensation fund from the contributor's settlement account."""
    amount_fen = check_fen(amount_fen, "amount", allow_zero=False)
    on = parse_date(on, "on")
    if on > (today or business_today()):
        raise Invalid.field("on", "cannot be in the future")
    program = get_program(conn, code)
    if on < program.versions[0].effective_from:
        raise Invalid.field("on", f"is before the programme exists (its first version starts "
                                  f"{program.versions[0].effective_from.isoformat()})")
    specs = [chart.program_fund(program.id), chart.program_fund_capital(program.id),
             chart.fund_contributions(contributor_id), chart.settlement(contributor_id)]
    ids = ensure_accounts(conn, specs)
    fund, capital, expense, settlement = (ids[s.code] for s in specs)
    lock_fund(conn, program.id)
    entry_id = post_entry(conn, EntryDraft(
        "fund_contribution", on, (Line(fund, amount_fen), Line(capital, -amount_fen),
                                  Line(expense, amount_fen), Line(settlement, -amount_fen)),
        memo=f"contribution to {code}"), actor)
    return {"entry": entry_id, "program": code, "amount_fen": amount_fen, "on": on,
            "balance_fen": balance_fen(conn, fund)}


def fund_statement(conn: Connection, code: str, as_of: date | None = None) -> dict:
    """The fund's balance (from postings) and every movement, oldest first."""
    program = get_program(conn, code)
    fund_id = ensure_accounts(conn, [chart.program_fund(program.id)])[chart.program_fund(program.id).code]
    query = (select(entries.c.id, entries.c.kind, entries.c.effective_on, entries.c.memo,
                    postings.c.amount_fen)
             .join(postings, postings.c.entry_id == entries.c.id)
             .where(postings.c.account_id == fund_id).order_by(entries.c.effective_on, entries.c.id))
    if as_of is not None:
        query = query.where(entries.c.effective_on <= as_of)
    movements, running = [], 0
    for row in conn.execute(query):
        running += row.amount_fen
        movements.append({"entry": row.id, "kind": row.kind, "on": row.effective_on,
                          "memo": row.memo, "amount_fen": row.amount_fen, "balance_fen": running})
    assert running == balance_fen(conn, fund_id, as_of), "fund statement must equal the journal"
    return {"program": code, "account": fund_id, "as_of": as_of, "balance_fen": running,
            "movements": movements}


def program_errors_for_loan(program: Program | None, code: str, start: date | None, region: str | None,
                            prefix: str) -> tuple[Version | None, list[FieldError]]:
    """Whether a loan may bind to this programme: it exists, is in force, and covers the region."""
    field = f"{prefix}.program" if prefix else "program"
    if program is None:
        return None, [FieldError(field, f"programme {code} does not exist")]
    if start is None:
        return None, []
    version = program.version_on(start)
    if version is None:
        return None, [FieldError(field, f"programme {code} is not in force on {start.isoformat()}")]
    if region is not None and not program.covers_region(region):
        return None, [FieldError(field, f"programme {code} (region {program.region}) does not "
                                        f"cover the borrower's region {region}")]
    return version, []
