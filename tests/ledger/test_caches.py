"""Caches of what is append-only (issue 11): a cached value is still right after the data grew."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

from ledger import programs
from ledger.journal import SYSTEM
from ledger.loans import create_loan, parse_loans
from ledger.terms import parse_terms, terms_to_dict
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, loan_body, \
    program_parties, tx


def _version_of(conn, program_code: str, day: date) -> tuple[int, int]:
    found = programs.load_programs(conn, [program_code])[program_code].version_on(day)
    return found.version, found.terms.trigger_overdue_days


def test_a_new_version_is_seen_through_the_terms_cache(engine):
    program = ProgramFactory(effective_from=date(2024, 1, 1))
    code = program.code
    first = tx(lambda conn: _version_of(conn, code, date(2025, 6, 1)))  # fills the cache
    assert first[0] == 1
    later = replace(parse_terms(api_terms(**program_parties()), None), trigger_overdue_days=first[1] + 7)
    tx(lambda conn: programs.add_version(conn, code, date(2025, 5, 1), None, later, SYSTEM))
    assert tx(lambda conn: _version_of(conn, code, date(2025, 6, 1))) == (2, first[1] + 7)
    assert tx(lambda conn: _version_of(conn, code, date(2025, 4, 30))) == first  # v1 still, now ended
    bank = InstitutionFactory(kind="bank", region="440100")
    borrower = BorrowerFactory(region="440106", bank_id=bank.id).facts.credit_code
    [draft] = parse_loans([loan_body(borrower, code, start_date="2025-06-01")])
    loan = tx(lambda conn: create_loan(conn, bank.id, draft, SYSTEM))
    assert loan["program_version"] == 2


def test_the_terms_cache_is_keyed_by_the_stored_text():
    terms = parse_terms(api_terms("INS", "POOL", "TREASURY"), None)
    text = json.dumps(terms_to_dict(terms), sort_keys=True)
    assert programs.stored_terms(text) == terms
    other = json.dumps({**terms_to_dict(terms), "trigger_overdue_days": terms.trigger_overdue_days + 1},
                       sort_keys=True)
    assert programs.stored_terms(other).trigger_overdue_days == terms.trigger_overdue_days + 1
