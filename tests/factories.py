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


# --- borrowers, programmes, loans -------------------------------------------------------------

import json
import random
from datetime import date
from pathlib import Path

from ledger import loans as loan_domain, parties, programs
from ledger.identifiers import credit_code_check_char, patent_check_char
from ledger.journal import SYSTEM
from ledger.money import format_yuan
from ledger.terms import parse_terms

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_rng = random.Random()


def credit_code(region: str = "440106") -> str:
    body = "91" + region + "".join(_rng.choice(_ALPHABET) for _ in range(9))
    return body + credit_code_check_char(body)


def patent_number() -> str:
    digits = f"2019{_rng.randrange(10**8):08d}"
    return f"ZL{digits}.{patent_check_char(digits)}"


class BorrowerFactory(DomainFactory):
    """A small private software firm in Guangzhou's Tianhe-like district unless told otherwise,
    in the customer file of `bank_id` (a new bank unless given: pass the lending bank's id), with
    facts as of 2019-01-01 (before the loans tests make)."""

    class Meta:
        model = staticmethod(lambda conn, bank_id, as_of, **facts: parties.upsert_borrower(
            conn, bank_id, parties.BorrowerFacts(**facts), as_of=as_of)[0])

    bank_id = factory.LazyFunction(lambda: InstitutionFactory(kind="bank").id)
    as_of = date(2019, 1, 1)
    credit_code = factory.LazyAttribute(lambda o: credit_code(o.region))
    name = factory.LazyFunction(lambda: unique("Firm"))
    region = "440106"
    industry = "software_it"
    employees = 50
    revenue_fen = 8_000_000_00
    total_assets_fen = 3_000_000_00
    private = True


EXAMPLE_PROGRAMME = Path(__file__).resolve().parent.parent / "docs" / "examples" / "programme.json"


def api_terms(insurer: str, pool: str, treasury: str) -> dict:
    """The API.md example terms (docs/examples/programme.json) with the given institutions."""
    text = EXAMPLE_PROGRAMME.read_text(encoding="utf-8")
    for example, code in (("PICC-GZ", insurer), ("GZ-POOL", pool), ("GZ-TREASURY", treasury)):
        text = text.replace(f'"{example}"', json.dumps(code))
    return json.loads(text)["terms"]


def program_parties(region: str = "440100") -> dict:
    return {"insurer": InstitutionFactory(kind="insurer", region=region).code,
            "pool": InstitutionFactory(kind="pool", region=region).code,
            "treasury": InstitutionFactory(kind="treasury", region=region).code}


class ProgramFactory(DomainFactory):
    class Meta:
        model = staticmethod(lambda conn, terms, **kw: programs.create_program(
            conn, terms=parse_terms(terms, None), actor=SYSTEM, **kw))

    code = factory.LazyFunction(lambda: unique("prog").lower())
    name = "A city IP pledge risk-compensation scheme"
    region = "440100"
    effective_from = date(2019, 1, 1)
    effective_to = None
    terms = factory.LazyAttribute(lambda o: api_terms(**program_parties(o.region)))


def loan_body(borrower: str, program: str, **over) -> dict:
    """An API.md-shaped loan with a patent and a trademark pledge."""
    body = {"contract_no": unique("C"), "borrower": borrower, "program": program,
            "principal": "5000000.00", "annual_rate": "0.0345", "start_date": "2025-03-01",
            "maturity_date": "2026-02-28", "ip_share": "0.8", "insured_amount": "5000000.00",
            "pledges": [{"kind": "patent", "number": patent_number(), "registration_no": unique("Y"),
                         "registered_on": "2025-02-20", "appraised_value": "6000000.00"},
                        {"kind": "trademark", "number": str(_rng.randrange(1, 10**8)), "nice_class": 9,
                         "registration_no": unique("TM"), "registered_on": "2025-02-21"}]}
    body.update(over)
    return body


def make_loan(bank_id: int, borrower: str, program: str, **over) -> int:
    drafts = loan_domain.parse_loans([loan_body(borrower, program, **over)])
    return tx(lambda conn: loan_domain.create_loans(conn, bank_id, drafts, SYSTEM, prefix=""))[0]


def format_fen(fen: int) -> str:
    return format_yuan(fen)


def at_the_same_moment(engine, works) -> tuple[list, list]:
    """Run each `work(conn)` in its own thread and transaction (real commits, no retry), all
    starting together behind a barrier; returns (results, errors) in finishing order."""
    import threading
    barrier, results, errors = threading.Barrier(len(works)), [], []

    def run(work):
        def start(conn):
            barrier.wait(timeout=10)
            return work(conn)
        try:
            results.append(run_in_transaction(engine, start, retries=0))
        except Exception as exc:  # the caller asserts which failed and why
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors
