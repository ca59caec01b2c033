"""Subsidy batches on SQLite and PostgreSQL: draft → approve (another key) → post → reverse, the
maker refused, one live batch per programme and period, caps consumed across batches, and the
journal balanced and verifiable afterwards."""
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger import accounts as chart
from ledger import chain
from ledger.errors import Conflict, Forbidden, Invalid, NotFound
from ledger.journal import SYSTEM, balances_fen, ensure_accounts
from ledger.keys import create_key
from ledger.loans import record_fee, record_repayment
from ledger.schema import api_keys, entries, subsidy_batch_entries, subsidy_batches, subsidy_lines
from ledger import subsidy_batches as batches
from tests.factories import BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, make_loan, program_parties, tx

TODAY = date(2025, 3, 1)
INTEREST_40 = {"kind": "interest", "method": "pct_of_paid", "pct": "0.40",
               "caps": {"per_borrower_year": "500.00"}}
PREMIUM_50 = {"kind": "premium", "method": "pct_of_paid", "pct": "0.50", "caps": {"per_loan": "30.00"}}


def programme(*rules):
    terms = api_terms(**program_parties())
    terms["subsidies"] = list(rules or [INTEREST_40, PREMIUM_50])
    return ProgramFactory(terms=terms)


def key_id(institution_code):
    prefix, _ = tx(lambda conn: create_key(conn, "fiscal", institution_code))
    return tx(lambda conn: conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == prefix)).scalar_one())


@pytest.fixture
def book(engine):
    """A programme; one borrower with two loans started in 2024, interest paid in Q1 and Q2,
    and a premium; a bureau of the programme's city with two keys (maker and checker)."""
    program = programme()
    bank = InstitutionFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    loans = [make_loan(bank.id, borrower.facts.credit_code, program.code, principal="100000.00",
                       start_date=f"2024-01-{day:02d}", maturity_date="2026-01-10") for day in (10, 11)]
    for loan_id in loans:
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 3, 1), 0, 600_00, SYSTEM))
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 5, 1), 0, 600_00, SYSTEM))
    tx(lambda conn: record_fee(conn, loans[0], bank.id, "premium", 100_00, date(2024, 2, 1), SYSTEM))
    bureau = InstitutionFactory(kind="fiscal", region="440100")
    maker = batches.Bureau(bureau.id, "440100", key_id(bureau.code))
    checker = batches.Bureau(bureau.id, "440100", key_id(bureau.code))
    return dict(program=program, loans=loans, borrower=borrower, bureau=bureau, maker=maker, checker=checker)


def draft(book, period="2024-Q1", who=None):
    return tx(lambda conn: batches.draft_batch(conn, book["program"].code, period, who or book["maker"], today=TODAY))


def act(action, batch_id, who, **kw):
    return tx(lambda conn: getattr(batches, action)(conn, batch_id, who, **kw))


def test_draft_approve_post_writes_balanced_entries_and_verify_holds(book):
    made = draft(book)
    # Interest 600 per loan at 40%: 240 + 240, within 500 per borrower and year. Premium 100 at
    # 50%: 50, cut to 30 by the per-loan cap.
    by = {(l["loan"], l["kind"]): l for l in made["lines"]}
    assert by[(book["loans"][0], "interest")]["amount_fen"] == 240_00
    assert by[(book["loans"][1], "interest")]["amount_fen"] == 240_00
    premium = by[(book["loans"][0], "premium")]
    assert (premium["computed_fen"], premium["amount_fen"], premium["capped_by"]) == (50_00, 30_00, ["per_loan"])
    assert made["status"] == "draft" and made["total_fen"] == 510_00 and made["line_count"] == 3
    approved = act("approve", made["id"], book["checker"])
    assert approved["status"] == "approved"
    posted = act("post", made["id"], book["checker"], today=TODAY)
    assert posted["status"] == "posted"
    bureau_id, borrower_id = book["bureau"].id, book["borrower"].id
    specs = [chart.subsidy_budget(bureau_id), chart.subsidies_paid(bureau_id),
             chart.borrower_cash(borrower_id), chart.borrower_subsidy_income(borrower_id)]
    ids = tx(lambda conn: ensure_accounts(conn, specs))
    balances = tx(lambda conn: balances_fen(conn, [ids[s.code] for s in specs]))
    assert list(balances.values())[0] == -510_00 and list(balances.values())[1] == 510_00
    assert list(balances.values())[3] == -510_00
    # This batch's entries only: the session database holds other tests' batches too.
    mine = select(subsidy_batch_entries.c.entry_id).where(subsidy_batch_entries.c.batch_id == made["id"])
    kinds = tx(lambda conn: conn.execute(select(entries.c.kind, func.count()).where(
        entries.c.id.in_(mine)).group_by(entries.c.kind)).all())
    assert dict(kinds) == {"subsidy_interest": 2, "subsidy_premium": 1}
    tx(chain.seal_pending)
    result = tx(chain.verify)
    assert result.balanced and result.chain_intact


def test_the_maker_may_not_approve_and_another_bureau_cannot_see_the_batch(book):
    made = draft(book)
    with pytest.raises(Forbidden):
        act("approve", made["id"], book["maker"])
    other = InstitutionFactory(kind="fiscal", region="440100")
    with pytest.raises(NotFound):
        act("approve", made["id"], batches.Bureau(other.id, "440100", key_id(other.code)))
    with pytest.raises(Conflict):  # not approved yet
        act("post", made["id"], book["checker"], today=TODAY)
    with pytest.raises(Forbidden):  # an approval always names its officer
        act("approve", made["id"], batches.Bureau(book["bureau"].id, "440100"))


def test_the_database_refuses_a_checker_who_is_the_maker(book):
    made = draft(book)
    with pytest.raises((IntegrityError, DBAPIError)):
        tx(lambda conn: conn.execute(update(subsidy_batches).where(subsidy_batches.c.id == made["id"])
                                     .values(status="approved", approved_at=func.now(),
                                             approved_by_key_id=book["maker"].key_id)))


def test_one_live_batch_per_programme_and_period(book):
    made = draft(book)
    with pytest.raises(Conflict):
        draft(book, who=book["checker"])
    with pytest.raises(Conflict, match="2024-Q1"):  # the year overlaps the live quarter
        draft(book, period="2024")
    act("cancel", made["id"], book["checker"])
    with pytest.raises(Conflict):  # cancelled: nothing more to do with it
        act("approve", made["id"], book["checker"])
    again = draft(book)
    assert again["id"] != made["id"] and again["total_fen"] == made["total_fen"]


def test_the_database_holds_one_live_batch_per_period(book):
    made = draft(book)
    columns = ", ".join(c for c in subsidy_batches.c.keys() if c != "id")
    with pytest.raises(IntegrityError):
        tx(lambda conn: conn.execute(text(
            f"INSERT INTO subsidy_batches ({columns}) SELECT {columns} FROM subsidy_batches WHERE id = :id"),
            {"id": made["id"]}))


def test_caps_are_consumed_across_posted_batches(book):
    first = draft(book)
    act("approve", first["id"], book["checker"])
    act("post", first["id"], book["checker"], today=TODAY)
    second = draft(book, period="2024-Q2")
    by = {(l["loan"], l["kind"]): l for l in second["lines"]}
    # Q2: 240 + 240 wanted; 480 of the borrower's 500 for 2024 already paid → 20, then 0.
    one, two = by[(book["loans"][0], "interest")], by[(book["loans"][1], "interest")]
    assert (one["amount_fen"], one["capped_by"]) == (20_00, ["per_borrower_year"])
    assert (two["amount_fen"], two["capped_by"]) == (0, ["per_borrower_year"])
    assert second["total_fen"] == 20_00


def test_a_draft_is_not_counted_before_it_is_posted(book):
    draft(book)
    second = draft(book, period="2024-Q2")
    assert second["total_fen"] == 480_00


def test_reversal_mirrors_the_batch_and_frees_the_period(book):
    made = draft(book)
    act("approve", made["id"], book["checker"])
    act("post", made["id"], book["checker"], today=TODAY)
    with pytest.raises(Conflict):
        act("cancel", made["id"], book["checker"])
    reversed_ = act("reverse", made["id"], book["maker"], today=TODAY)
    assert reversed_["status"] == "reversed"
    income = chart.borrower_subsidy_income(book["borrower"].id)
    ids = tx(lambda conn: ensure_accounts(conn, [income]))
    assert tx(lambda conn: balances_fen(conn, [ids[income.code]]))[ids[income.code]] == 0
    with pytest.raises(Conflict):
        act("reverse", made["id"], book["maker"], today=TODAY)
    # A reversed batch paid nothing: the corrected batch pays in full again.
    again = draft(book)
    assert again["total_fen"] == 510_00
    tx(chain.seal_pending)
    assert tx(chain.verify).balanced


def test_a_period_is_drafted_only_after_it_ends(book):
    with pytest.raises(Invalid, match="has not ended"):
        tx(lambda conn: batches.draft_batch(conn, book["program"].code, "2025-Q1", book["maker"], today=TODAY))
    with pytest.raises(Invalid, match="period"):
        draft(book, period="2024-Q5")


def test_a_bureau_outside_the_programme_region_does_not_see_it(book):
    far = InstitutionFactory(kind="fiscal", region="310000")
    with pytest.raises(NotFound):
        draft(book, who=batches.Bureau(far.id, "310000", key_id(far.code)))


def test_lines_are_paged_and_visible_in_region_only(book):
    made = draft(book)
    first = tx(lambda conn: batches.list_lines(conn, made["id"], "440100", limit=2))
    rest = tx(lambda conn: batches.list_lines(conn, made["id"], "440100", after_id=first[-1]["id"]))
    assert len(first) == 2 and len(rest) == 1
    with pytest.raises(NotFound):
        tx(lambda conn: batches.list_lines(conn, made["id"], "310000"))
    code = book["program"].code
    assert [b["id"] for b in tx(lambda conn: batches.list_batches(conn, "440106", program=code))] == [made["id"]]
    assert tx(lambda conn: batches.list_batches(conn, "310000", program=code)) == []


def test_many_lines_are_stored_in_bulk(engine):
    """Enough lines for the COPY path on PostgreSQL (ledger.bulk.COPY_THRESHOLD)."""
    program = programme(INTEREST_40)
    bank = InstitutionFactory()
    for _ in range(70):
        borrower = BorrowerFactory(bank_id=bank.id)
        loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="1000.00",
                            start_date="2024-01-10", maturity_date="2026-01-10")
        tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 2, 1), 0, 10_00, SYSTEM))
    bureau = InstitutionFactory(kind="fiscal", region="440100")
    made = tx(lambda conn: batches.draft_batch(conn, program.code, "2024", batches.Bureau(bureau.id, "440100"), today=TODAY))
    assert made["line_count"] == 70 and made["total_fen"] == 70 * 4_00
    stored = tx(lambda conn: conn.execute(select(func.count(), func.sum(subsidy_lines.c.amount_fen))
                                          .where(subsidy_lines.c.batch_id == made["id"])).one())
    assert tuple(stored) == (70, 70 * 4_00)


def test_two_drafts_racing_make_one_batch(book, backend, engine):
    """Two officers draft the same period at once (PostgreSQL: two real connections; the
    partial unique index decides): one batch, one Conflict."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers: no race to lose")
    import threading
    barrier, outcomes = threading.Barrier(2), []

    def run(who):
        try:
            with engine.begin() as conn:
                barrier.wait(timeout=10)
                outcomes.append(batches.draft_batch(conn, book["program"].code, "2024-Q3", who, today=TODAY)["id"])
        except Conflict as error:
            outcomes.append(error)
    threads = [threading.Thread(target=run, args=(who,)) for who in (book["maker"], book["checker"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "int"]
    live = tx(lambda conn: conn.execute(select(func.count()).select_from(subsidy_batches).where(
        subsidy_batches.c.program_id == book["program"].id, subsidy_batches.c.period == "2024-Q3")).scalar_one())
    assert live == 1


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(interest=st.lists(st.lists(st.integers(1, 200_000), min_size=4, max_size=4), min_size=1, max_size=2),
       cap_fen=st.integers(1, 100_000))
def test_quarterly_batches_never_pay_past_the_borrower_year_cap(engine, interest, cap_fen):
    """Whatever a borrower's loans pay in each quarter, four posted quarterly batches pay
    exactly min(cap, Σ formula amounts): greedy consumption across batches, never past the cap."""
    rule = {"kind": "interest", "method": "pct_of_paid", "pct": "0.40",
            "caps": {"per_borrower_year": f"{cap_fen // 100}.{cap_fen % 100:02d}"}}
    program = programme(rule)
    bank = InstitutionFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    for quarters in interest:
        loan_id = make_loan(bank.id, borrower.facts.credit_code, program.code, principal="10000.00",
                            start_date="2024-01-02", maturity_date="2026-01-10")
        for q, fen in enumerate(quarters):
            tx(lambda conn: record_repayment(conn, loan_id, bank.id, date(2024, 3 * q + 1, 15), 0, fen, SYSTEM))
    bureau = InstitutionFactory(kind="fiscal", region="440100")
    who = batches.Bureau(bureau.id, "440100")
    officer = batches.Bureau(bureau.id, "440100", key_id(bureau.code))
    paid, formula = 0, 0
    for q in range(1, 5):
        made = tx(lambda conn: batches.draft_batch(conn, program.code, f"2024-Q{q}", who, today=TODAY))
        assert all(0 <= line["amount_fen"] <= line["computed_fen"] for line in made["lines"])
        formula += sum(line["computed_fen"] for line in made["lines"])
        act("approve", made["id"], officer)
        paid += act("post", made["id"], officer, today=TODAY)["total_fen"]
    assert paid == min(cap_fen, formula)


# --- the lines' references (foreign keys on SQLite; per statement on PostgreSQL, migration 0015) ---

def _line_values(batch_id, loan_id, borrower_id):
    return {"b": batch_id, "l": loan_id, "w": borrower_id}


INSERT_LINE = ("INSERT INTO subsidy_lines (batch_id, loan_id, borrower_id, kind, method, basis_fen, computed_fen, "
               "amount_fen, capped_by) VALUES (:b, :l, :w, 'interest', 'pct_of_paid', 1, 1, 1, '')")


@pytest.mark.parametrize("what", ["batch", "loan"])
def test_a_line_naming_no_such_batch_or_loan_is_refused(book, what):
    made = draft(book)
    values = _line_values(made["id"], book["loans"][0], book["borrower"].id)
    values["b" if what == "batch" else "l"] = 10 ** 9
    with pytest.raises(IntegrityError):
        tx(lambda conn: conn.execute(text(INSERT_LINE), values))


def test_a_line_whose_borrower_is_not_its_loans_is_refused_on_postgres(book, backend):
    if backend != "postgres":
        pytest.skip("SQLite's foreign keys check that the borrower exists, not that it is the loan's")
    made = draft(book)
    other = BorrowerFactory(bank_id=InstitutionFactory().id)
    with pytest.raises(IntegrityError, match="no such loan of that borrower"):
        tx(lambda conn: conn.execute(text(INSERT_LINE), _line_values(made["id"], book["loans"][0], other.id)))


def test_a_copy_with_one_bad_line_is_refused_whole_on_postgres(book, backend):
    """The draft's own path (binary COPY) meets the same check."""
    import numpy as np
    import psycopg
    from ledger.subsidies import Result, RuleLines
    if backend != "postgres":
        pytest.skip("COPY is the PostgreSQL bulk path")
    made = draft(book)
    ids = np.array([book["loans"][0], 10 ** 9], dtype=np.int64)
    ones = np.ones(2, dtype=np.int64)
    chunk = RuleLines("interest", "pct_of_paid", ids, ones * book["borrower"].id, ones, ones, ones, {})
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="no such loan of that borrower"):
        tx(lambda conn: batches._copy_lines(conn, made["id"], Result([chunk], [])))
    assert tx(lambda conn: conn.execute(select(func.count()).select_from(subsidy_lines)
                                        .where(subsidy_lines.c.batch_id == made["id"])).scalar_one()) == made["line_count"]


def test_a_batch_with_lines_cannot_be_deleted_or_renumbered(book, backend):
    made = draft(book)
    with pytest.raises(IntegrityError):
        tx(lambda conn: conn.execute(text("DELETE FROM subsidy_batches WHERE id = :b"), {"b": made["id"]}))
    if backend == "postgres":  # SQLite's keys do not refuse a renumbered parent
        with pytest.raises(IntegrityError, match="subsidy lines refer to it"):
            tx(lambda conn: conn.execute(text("UPDATE subsidy_batches SET id = id + 1000000 WHERE id = :b"),
                                         {"b": made["id"]}))
