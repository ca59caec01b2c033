"""Turn the caller's key into a ledger read scope (who sees which accounts)."""
from api.auth import principal
from ledger.identifiers import region_prefix
from ledger.reads import EVERYTHING, ReadScope

PARTY_ROLES = ("insurer", "guarantor", "pool")


def read_scope() -> ReadScope:
    who = principal()
    if who.role == "admin":
        return EVERYTHING
    if who.role in ("fiscal", "auditor"):
        prefix = region_prefix(who.region)
        return EVERYTHING if prefix == "" else ReadScope(region_prefix=prefix)
    return ReadScope(institution_id=who.institution_id, party=who.role in PARTY_ROLES)
