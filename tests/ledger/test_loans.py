"""Loan invariants as properties, and the domain functions' own checks.

Whatever repayments a bank posts, in whatever order of their dates (accepted or refused), the
loan agrees with a replay of the accepted ones in date order: a repayment is accepted exactly
when no day's outstanding principal would go below zero; outstanding principal as of every day,
status and closed_on are the replay's; the books stay balanced with an intact chain.
"""
import threading
import time
from datetime import date, timedelta

import pytest

from ledger.terms import parse_terms
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from ledger import chain, programs
from ledger.errors import Conflict, DomainError, Invalid
from ledger.journal import SYSTEM
from ledger.loans import (closed_on_of, create_loans, parse_loans, outstanding_fen, record_fee, record_repayment,
                          repayable_fen, with_movement)
from ledger.money import MAX_FEN
from ledger.schema import loans, pledges
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, loan_body,
                             make_loan, program_parties, tx)

START = date(2024, 1, 10)
MATURITY = "2026-01-10"


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def new_loan(principal_fen: int = 100_000, **over):
    bank = InstitutionFactory()
    loan_id = make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code,
                        principal=yuan(principal_fen), start_date=START.isoformat(), maturity_date=MATURITY, **over)
    return bank, loan_id


def loan_row(loan_id):
    return tx(lambda conn: conn.execute(select(loans.c.status, loans.c.closed_on).where(loans.c.id == loan_id)).one())


class Replay:
    """The rule, written independently of ledger.loans: accepted repayments replayed in date order."""

    def __init__(self, principal_fen: int):
        self.principal_fen = principal_fen
        self.repaid: list[tuple[date, int]] = []

    def outstanding(self, day: date, extra=()) -> int:
        if day < START:
            return 0
        return self.principal_fen - sum(p for d, p in [*self.repaid, *extra] if d <= day)

    def days(self, extra=()):
        return sorted({START, *(d for d, _ in [*self.repaid, *extra])})

    def accepts(self, day: date, principal_fen: int) -> bool:
        return all(self.outstanding(d, [(day, principal_fen)]) >= 0 for d in self.days([(day, principal_fen)]))

    def closed_on(self) -> date | None:
        if self.outstanding(date.max) != 0:
            return None
        return min(d for d in self.days() if all(self.outstanding(e) == 0 for e in self.days() if e >= d))


# Principal repaid per payment up to 60% of the largest loan: some batches overpay, some fit, and
# backdated ones often meet a later repayment that bounds them.
payment = st.tuples(st.integers(0, 6 * 10**5), st.integers(0, 10**6), st.integers(-3, 400))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(principal_fen=st.integers(1, 10**6), payments=st.lists(payment, max_size=6))
def test_any_order_of_repayments_agrees_with_the_date_ordered_replay(engine, principal_fen, payments):
    bank, loan_id = new_loan(principal_fen)
    model = Replay(principal_fen)
    for principal, interest, days in payments:
        day = START + timedelta(days=days)
        closed = model.closed_on() is not None
        try:
            tx(lambda conn: record_repayment(conn, loan_id, bank.id, day, principal, interest, SYSTEM))
        except DomainError:
            assert closed or days < 0 or principal == interest == 0 or not model.accepts(day, principal)
            continue
        assert not closed and days >= 0 and model.accepts(day, principal), "accepted what the rule refuses"
        model.repaid.append((day, principal))
    status, closed_on = loan_row(loan_id)
    assert closed_on == model.closed_on()
    assert status == ("closed" if model.closed_on() else "active")
    for day in [*model.days(), START + timedelta(days=401)]:
        for probe in (day - timedelta(days=1), day):
            assert tx(lambda conn: outstanding_fen(conn, [loan_id], as_of=probe))[loan_id] == model.outstanding(probe)
    tx(chain.seal_pending)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), parts=st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 400)), min_size=1, max_size=5))
def test_a_full_repayment_in_any_order_closes_on_the_last_day(engine, data, parts):
    """Repayments summing to the principal, posted in any order: every one is accepted, and the
    loan closes on the latest date among them, as if posted in date order."""
    principal_fen = sum(p for p, _ in parts)
    bank, loan_id = new_loan(principal_fen)
    for principal, days in data.draw(st.permutations(parts)):
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, START + timedelta(days=days), principal, 0, SYSTEM))
    assert tuple(loan_row(loan_id)) == ("closed", START + timedelta(days=max(d for _, d in parts)))


def test_after_a_reversal_a_backdated_repayment_is_bounded_by_the_days_in_between(engine):
    """Where the rule differs from "at most today's outstanding": a reversal raises a later day's
    outstanding; a repayment dated before it may not take the days in between below zero."""
    from ledger.journal import reverse_entry
    from ledger.loans import settle_status
    bank, loan_id = new_loan(10_000)
    mistaken = tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 3, 1), 10_000, 0, SYSTEM))["entry"]
    assert tuple(loan_row(loan_id)) == ("closed", date(2024, 3, 1))

    def reverse(conn):
        reverse_entry(conn, mistaken, date(2024, 5, 1), SYSTEM)
        return settle_status(conn, conn.execute(select(loans).where(loans.c.id == loan_id).with_for_update()).one())
    assert tx(reverse) == ("active", None)
    assert tx(lambda conn: outstanding_fen(conn, [loan_id], as_of=date(2024, 4, 1)))[loan_id] == 0
    with pytest.raises(Invalid, match="exceeds the outstanding principal 0.00"):  # today's is 100.00
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 4, 1), 6_000, 0, SYSTEM))
    tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 5, 2), 6_000, 0, SYSTEM))
    tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 5, 3), 4_000, 0, SYSTEM))
    assert tuple(loan_row(loan_id)) == ("closed", date(2024, 5, 3))


def test_the_pure_rule_on_the_issue_example():
    balances = [(date(2025, 1, 1), 100), (date(2025, 6, 1), 50)]  # lent 100, repaid 50 on 06-01
    assert repayable_fen(balances, date(2025, 3, 1)) == (50, date(2025, 6, 1))
    after = with_movement(balances, date(2025, 3, 1), -50)
    assert after == [(date(2025, 1, 1), 100), (date(2025, 3, 1), 50), (date(2025, 6, 1), 0)]
    assert closed_on_of(after) == date(2025, 6, 1)
    assert closed_on_of(balances) is None
    reopened = [(date(2025, 1, 1), 100), (date(2025, 3, 1), 0), (date(2025, 4, 1), 30), (date(2025, 5, 1), 0)]
    assert closed_on_of(reopened) == date(2025, 5, 1)  # a reversal reopened it; zero again from 05-01


# --- the domain functions check what they are given ----------------------------------------------

@pytest.mark.parametrize("principal, interest, field", [
    (-5000, 0, "principal"),          # raised the outstanding before
    (0, -1, "interest"), (True, 0, "principal"), (1.5, 0, "principal"), ("100", 0, "principal"),
    (MAX_FEN + 1, 0, "principal"), (0, MAX_FEN + 1, "interest"), (0, 0, "principal"),
])
def test_record_repayment_refuses_bad_amounts(engine, principal, interest, field):
    bank, loan_id = new_loan()
    with pytest.raises(Invalid) as refused:
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, START, principal, interest, SYSTEM))
    assert refused.value.errors[0].field == field
    assert tx(lambda conn: outstanding_fen(conn, [loan_id]))[loan_id] == 100_000


@pytest.mark.parametrize("paid_on", ["2024-6-1", date(2024, 6, 1).toordinal(), None,
                                     __import__("datetime").datetime(2024, 6, 1, 12, 0)])
def test_record_repayment_refuses_a_date_that_is_not_a_date(engine, paid_on):
    bank, loan_id = new_loan()
    with pytest.raises(Invalid) as refused:
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, paid_on, 100, 0, SYSTEM))
    assert refused.value.errors[0].field == "paid_on"


@pytest.mark.parametrize("amount", [0, -100, True, 10.0, MAX_FEN + 1])
def test_record_fee_refuses_bad_amounts(engine, amount):
    bank, loan_id = new_loan()
    with pytest.raises(Invalid) as refused:
        tx(lambda conn: record_fee(conn, loan_id, bank.id, "premium", amount, START, SYSTEM))
    assert refused.value.errors[0].field == "amount"


@pytest.mark.parametrize("amount, on, field", [
    (0, date(2025, 1, 5), "amount"), (-1, date(2025, 1, 5), "amount"), (False, date(2025, 1, 5), "amount"),
    (100, date(11, 7, 11), "on"), (100, date(9999, 12, 31), "on"),
    (100, date(2018, 12, 31), "on"),  # the programme starts 2019-01-01
])
def test_contribute_refuses_bad_amounts_and_dates(engine, amount, on, field):
    program = ProgramFactory()
    fiscal = InstitutionFactory(kind="fiscal")
    with pytest.raises(Invalid) as refused:
        tx(lambda conn: programs.contribute(conn, program.code, fiscal.id, amount, on, SYSTEM))
    assert refused.value.errors[0].field == field
    made = tx(lambda conn: programs.contribute(conn, program.code, fiscal.id, 100, date(2019, 1, 1), SYSTEM))
    assert made["balance_fen"] == 100


# --- what the database itself refuses ------------------------------------------------------------

def test_the_database_refuses_a_second_live_pledge_of_a_patent(engine):
    """Raw SQL past ledger.loans: a second live pledge of a patent fails at the unique index."""
    bank, first = new_loan()
    _, second = new_loan()
    number = tx(lambda conn: conn.execute(select(pledges.c.number).where(
        pledges.c.loan_id == first, pledges.c.kind == "patent")).scalar_one())
    insert = text("INSERT INTO pledges (loan_id, position, kind, number, registration_no, registered_on) "
                  "VALUES (:loan, 9, 'patent', :number, 'RAW', '2024-01-01')")
    with pytest.raises(IntegrityError, match="uq_pledges_live_patent|UNIQUE constraint failed"):
        tx(lambda conn: conn.execute(insert, {"loan": second, "number": number}))
    # released when its loan closes: then a new pledge of it is fine
    tx(lambda conn: record_repayment(conn, first, bank.id, START, 100_000, 0, SYSTEM))
    assert tx(lambda conn: conn.execute(select(pledges.c.released_on).where(pledges.c.loan_id == first)).scalars().all()) \
        == [START, START]
    tx(lambda conn: conn.execute(insert, {"loan": second, "number": number}))


def test_a_loan_being_created_waits_for_a_new_version(engine, backend):
    """PostgreSQL: add_version holds the programme row; a loan starting after the new version's
    start waits for it and binds the new version (without the shared lock it read the old
    versions, then waited at its foreign key, and bound version 1 where version 2 was in force)."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): there is no interleaving to test")
    program = ProgramFactory()
    bank = InstitutionFactory()
    code = BorrowerFactory(bank_id=bank.id).facts.credit_code
    terms = parse_terms(api_terms(**program_parties()), None)
    result = {}

    def post_loan():
        try:
            [loan_id] = tx(lambda conn: create_loans(conn, bank.id, parse_loans([loan_body(code, program.code)]), SYSTEM, prefix=""))
            result["version"] = tx(lambda conn: conn.execute(text(
                "SELECT v.version FROM loans l JOIN program_versions v ON v.id = l.program_version_id "
                "WHERE l.id = :id"), {"id": loan_id}).scalar_one())
        except Exception as error:  # pragma: no cover - reported below
            result["error"] = error

    with engine.connect() as conn:
        trans = conn.begin()
        programs.add_version(conn, program.code, date(2025, 1, 1), None, terms, SYSTEM)
        worker = threading.Thread(target=post_loan)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the loan did not wait for the programme's row lock"
        trans.commit()
    worker.join(10)
    assert result == {"version": 2}


def test_a_version_waits_for_loans_being_created(engine, backend):
    """PostgreSQL: the other order: a loan not yet committed holds its programme; a version that
    would start before it waits, then sees the loan and is refused."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): there is no interleaving to test")
    program = ProgramFactory()
    bank = InstitutionFactory()
    code = BorrowerFactory(bank_id=bank.id).facts.credit_code
    terms = parse_terms(api_terms(**program_parties()), None)
    outcome = {}

    def add_version():
        try:
            tx(lambda conn: programs.add_version(conn, program.code, date(2025, 1, 1), None, terms, SYSTEM))
            outcome["added"] = True
        except Invalid as error:
            outcome["refused"] = error.errors[0].message

    with engine.connect() as conn:
        trans = conn.begin()
        create_loans(conn, bank.id, parse_loans([loan_body(code, program.code)]), SYSTEM, prefix="")
        worker = threading.Thread(target=add_version)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the version did not wait for the loan"
        trans.commit()
    worker.join(10)
    assert "started then, bound to version 1" in outcome["refused"]


def test_every_loan_is_bound_to_the_version_in_force_on_its_start(engine):
    program = ProgramFactory()
    bank = InstitutionFactory()
    code = BorrowerFactory(bank_id=bank.id).facts.credit_code
    terms = parse_terms(api_terms(**program_parties()), None)
    starts = ["2019-06-01", "2021-03-01", "2022-07-01", "2024-02-01", "2025-03-01"]
    for number, start in enumerate(starts):
        make_loan(bank.id, code, program.code, start_date=start, maturity_date="2026-12-31")
        with pytest.raises(Invalid):
            tx(lambda conn: programs.add_version(conn, program.code, date.fromisoformat(start), None, terms, SYSTEM))
        if number < len(starts) - 1:
            tx(lambda conn: programs.add_version(conn, program.code, date.fromisoformat(start) + timedelta(days=1),
                                                 None, terms, SYSTEM))
    loaded = tx(lambda conn: programs.get_program(conn, program.code))
    bound = tx(lambda conn: conn.execute(select(loans.c.start_date, loans.c.program_version_id)
                                         .where(loans.c.program_id == program.id)).all())
    assert len(bound) == len(starts) and len(loaded.versions) == len(starts)
    assert all(loaded.version_on(start).id == version_id for start, version_id in bound)


def test_a_closed_loan_refuses_repayments(engine):
    bank, loan_id = new_loan()
    tx(lambda conn: record_repayment(conn, loan_id, bank.id, START, 100_000, 0, SYSTEM))
    with pytest.raises(Conflict):
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, START, 0, 100, SYSTEM))
