"""factory-boy factories that create rows through the domain functions (never raw inserts),
so test data obeys the same rules as production data. `bind(engine)` is done by conftest."""
from __future__ import annotations

import uuid

import factory

from ledger import institutions, keys
from ledger.db import run_in_transaction

_engine = None


def bind(engine) -> None:
    global _engine
    _engine = engine


def engine():
    assert _engine is not None, "factories are unbound: use the engine fixture"
    return _engine


def tx(fn):
    """Run fn(conn) in its own committed transaction on the bound engine."""
    return run_in_transaction(engine(), fn)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


class DomainFactory(factory.Factory):
    """`Meta.model` is a domain function `f(conn, **fields)`; create commits its result."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return tx(lambda conn: model_class(conn, *args, **kwargs))


class InstitutionFactory(DomainFactory):
    class Meta:
        model = institutions.create_institution

    code = factory.LazyFunction(lambda: unique("INST"))
    name = factory.LazyAttribute(lambda o: f"Institution {o.code}")
    kind = "bank"
    region = "440100"


def make_key(role: str, institution_code: str | None = None) -> str:
    """A new API key's secret."""
    return tx(lambda conn: keys.create_key(conn, role, institution_code))[1]


def auth(role: str, institution_code: str | None = None) -> dict:
    """Headers for a new key of `role` (creating an institution of that kind if none given)."""
    if role != "admin" and institution_code is None:
        institution_code = InstitutionFactory(kind=role).code
    return {"Authorization": f"Bearer {make_key(role, institution_code)}"}
