"""Institutions: banks, insurers, guarantors, pools, fiscal bureaus, appraisers, treasuries,
auditors. Each has a unique, immutable `code` that other records and API payloads name it by.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from ledger.db import utcnow
from ledger.errors import Conflict, Invalid, NotFound
from ledger.identifiers import validate_region
from ledger.schema import INSTITUTION_KINDS, institutions

# fullmatch, ASCII: "$" would accept a trailing newline, \d full-width digits
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", re.ASCII)


@dataclass(frozen=True)
class Institution:
    id: int
    code: str
    name: str
    kind: str
    region: str


def _from_row(row) -> Institution:
    return Institution(row.id, row.code, row.name, row.kind, row.region)


def create_institution(conn: Connection, code: str, name: str, kind: str, region: str) -> Institution:
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        raise Invalid.field("code", "1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not name or len(name) > 200:
        raise Invalid.field("name", "must be 1-200 characters")
    if kind not in INSTITUTION_KINDS:
        raise Invalid.field("kind", f"must be one of {', '.join(INSTITUTION_KINDS)}")
    region = validate_region(region)
    if conn.execute(select(institutions.c.id).where(institutions.c.code == code)).first():
        raise Conflict(f"institution {code} already exists")
    try:
        new_id = conn.execute(insert(institutions).values(
            code=code, name=name, kind=kind, region=region, created_at=utcnow())).inserted_primary_key[0]
    except IntegrityError as exc:  # a concurrent insert of the same code
        raise Conflict(f"institution {code} already exists") from exc
    return Institution(new_id, code, name, kind, region)


def get_institution(conn: Connection, code: str) -> Institution:
    row = conn.execute(select(institutions).where(institutions.c.code == code)).first()
    if row is None:
        raise NotFound(f"institution {code} does not exist")
    return _from_row(row)


def get_institution_by_id(conn: Connection, institution_id: int) -> Institution:
    row = conn.execute(select(institutions).where(institutions.c.id == institution_id)).first()
    if row is None:
        raise NotFound(f"institution {institution_id} does not exist")
    return _from_row(row)


def institutions_by_code(conn: Connection, codes) -> dict[str, Institution]:
    rows = conn.execute(select(institutions).where(institutions.c.code.in_(list(codes))))
    return {row.code: _from_row(row) for row in rows}


def list_institutions(conn: Connection, *, after_id: int = 0, limit: int = 50,
                      kind: str | None = None, region_prefix: str = "") -> list[Institution]:
    query = select(institutions).where(institutions.c.id > after_id)
    if kind:
        query = query.where(institutions.c.kind == kind)
    if region_prefix:
        query = query.where(institutions.c.region.like(f"{region_prefix}%"))
    rows = conn.execute(query.order_by(institutions.c.id).limit(limit))
    return [_from_row(row) for row in rows]
