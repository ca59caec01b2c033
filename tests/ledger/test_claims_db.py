"""Claims in the database (SQLite and PostgreSQL): opened from a default under the example terms
(docs/examples/programme.json), stored with their figures, posted as one balanced entry, caps
used in claim order, withdrawn by reversal; and on PostgreSQL two claims at once on a nearly
empty fund."""
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from ledger import programs
from ledger.claims import get_claim, list_claims, open_claim, withdraw_claim
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import SYSTEM
from ledger.loans import record_repayment
from ledger.schema import accounts, cap_usage, entries, institutions, loans, postings
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms,
                             at_the_same_moment, make_loan, program_parties, tx)

DEFAULTED_ON = date(2026, 6, 1)


def world(fund_yuan: int = 1_500_000, change=None, **terms_over):
    parties = program_parties()
    terms = api_terms(**parties)
    terms.update(terms_over)
    if change:
        change(terms)
    program = ProgramFactory(terms=terms)
    bank = InstitutionFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    pool_id = _institution_id(parties["pool"])
    if fund_yuan:
        tx(lambda conn: programs.contribute(conn, program.code, pool_id, fund_yuan * 100,
                                            date(2025, 1, 2), SYSTEM))
    return {"program": program, "bank": bank, "borrower": borrower, "pool": parties["pool"],
            "insurer": parties["insurer"], "pool_id": pool_id}


def _institution_id(code):
    return tx(lambda conn: conn.execute(select(institutions.c.id).where(institutions.c.code == code)).scalar_one())


def loan_in(w, **over):
    return make_loan(w["bank"].id, w["borrower"].facts.credit_code, w["program"].code, **over)


def default(w, loan_id, on=DEFAULTED_ON, days=93, interest=0):
    return tx(lambda conn: open_claim(conn, loan_id, w["bank"].id, on, SYSTEM,
                                      overdue_days=days, overdue_interest_fen=interest))


def shares(claim):
    return {s["institution"]: (s["computed_fen"], s["amount_fen"], s["cuts"]) for s in claim["shares"]}


def entry_postings(entry_id):
    return tx(lambda conn: {code: fen for code, fen in conn.execute(
        select(accounts.c.code, postings.c.amount_fen).join(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.entry_id == entry_id))})


def test_a_default_opens_a_claim_split_as_the_terms_say_and_posts_one_balanced_entry(engine):
    w = world()
    loan_id = loan_in(w)  # 5,000,000.00 with IP share 0.8 (ip_part_only): covered 4,000,000.00
    claim = default(w, loan_id)
    assert (claim["loss_base_fen"], claim["covered_fen"], claim["status"]) == (500_000_000, 400_000_000, "open")
    assert shares(claim) == {
        # insurer 0.30 of covered = 1,200,000.00, capped per claim at 1,000,000.00
        w["insurer"]: (120_000_000, 100_000_000, [{"cap": "per_claim", "fen": 20_000_000}]),
        # pool 0.50 (tier up to 5,000,000) = 2,000,000.00, capped by its fund of 1,500,000.00
        w["pool"]: (200_000_000, 150_000_000, [{"cap": "fund_balance", "fen": 50_000_000}])}
    assert claim["bank_retained_fen"] == 250_000_000
    assert claim["fund_balance_fen"] == 150_000_000 and claim["outstanding_principal_fen"] == 500_000_000
    lines = entry_postings(claim["entry_id"])
    assert sum(lines.values()) == 0
    assert lines[f"loan:{loan_id}:claim_receivable"] == 250_000_000
    assert lines[f"loan:{loan_id}:claimed"] == -500_000_000
    assert lines[f"inst:{w['bank'].id}:credit_losses"] == 250_000_000
    assert lines[f"inst:{w['pool_id']}:claims_payable"] == -150_000_000
    assert len(tx(lambda conn: conn.execute(select(entries.c.id).where(
        entries.c.loan_id == loan_id, entries.c.kind == "claim_opened")).all())) == 1
    status = tx(lambda conn: conn.execute(select(loans.c.status).where(loans.c.id == loan_id)).scalar_one())
    assert status == "defaulted"


def test_a_later_claim_sees_what_earlier_claims_used_of_the_fund(engine):
    w = world(fund_yuan=2_000_000)
    first, second = loan_in(w), loan_in(w)
    assert shares(default(w, first))[w["pool"]][1] == 200_000_000  # the whole fund promised
    later = default(w, second)
    assert shares(later)[w["pool"]][1:] == (0, [{"cap": "fund_balance", "fen": 200_000_000}])
    assert later["bank_retained_fen"] == 400_000_000


def test_withdrawal_reverses_the_entry_and_frees_the_caps(engine):
    w = world(fund_yuan=2_000_000)
    first, second = loan_in(w), loan_in(w)
    claim = default(w, first)
    withdrawn = tx(lambda conn: withdraw_claim(conn, claim["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    assert withdrawn["status"] == "withdrawn" and withdrawn["withdrawn_on"] == DEFAULTED_ON
    reversal = entry_postings(withdrawn["withdrawal_entry_id"])
    assert reversal == {code: -fen for code, fen in entry_postings(claim["entry_id"]).items()}
    used = tx(lambda conn: conn.execute(select(func.sum(cap_usage.c.used_fen))
                                        .where(cap_usage.c.program_id == claim["program_id"])).scalar_one())
    assert used == 0
    assert shares(default(w, second))[w["pool"]][1] == 200_000_000  # the freed fund is there again
    with pytest.raises(Conflict):  # twice
        tx(lambda conn: withdraw_claim(conn, claim["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    again = default(w, first)  # the loan is active again and may default anew
    assert shares(again)[w["pool"]][1] == 0


def test_defaults_that_are_refused(engine):
    w = world()
    loan_id = loan_in(w)
    with pytest.raises(Conflict, match="trigger of 90"):
        default(w, loan_id, days=89)
    with pytest.raises(Invalid):
        default(w, loan_id, on=date(2025, 2, 1))  # before the start
    with pytest.raises(Invalid):
        default(w, loan_id, days=-1)
    other_bank = InstitutionFactory().id
    with pytest.raises(NotFound):  # another bank's loan
        tx(lambda conn: open_claim(conn, loan_id, other_bank, DEFAULTED_ON, SYSTEM, overdue_days=93))
    tx(lambda conn: record_repayment(conn, loan_id, w["bank"].id, date(2026, 7, 1), 100, 0, SYSTEM))
    with pytest.raises(Conflict, match="movements after"):
        default(w, loan_id)
    default(w, loan_id, on=date(2026, 7, 2))
    with pytest.raises(Conflict, match="defaulted"):
        default(w, loan_id, on=date(2026, 7, 3))


def test_interest_joins_the_loss_base_only_where_the_terms_say_so(engine):
    w = world(fund_yuan=0, loss_base="principal_and_interest")
    loan_id = loan_in(w, ip_share="1")
    claim = default(w, loan_id, interest=1_000_00)
    assert claim["loss_base_fen"] == 500_100_000 and claim["overdue_interest_fen"] == 100_000
    assert entry_postings(claim["entry_id"])[f"inst:{w['bank'].id}:interest_income"] == -100_000
    plain = world(fund_yuan=0)
    assert default(plain, loan_in(plain), interest=1_000_00)["loss_base_fen"] == 500_000_000


def test_an_ineligible_loan_still_gets_a_claim_with_covered_zero_and_the_reason(engine):
    w = world()
    claim = default(w, loan_in(w, ip_share="0.4"))
    assert (claim["covered_fen"], claim["covered_reason"]) == (0, "ip_share_below_minimum")
    assert claim["bank_retained_fen"] == claim["loss_base_fen"]
    assert [s["amount_fen"] for s in claim["shares"]] == [0, 0]


def test_lists_filter_by_party_and_status(engine):
    w = world()
    claim = default(w, loan_in(w))
    found = tx(lambda conn: list_claims(conn, status="open", party_id=w["pool_id"]))
    assert claim["id"] in [c["id"] for c in found]
    assert tx(lambda conn: list_claims(conn, status="withdrawn", party_id=w["pool_id"])) == [] or \
        claim["id"] not in [c["id"] for c in tx(lambda conn: list_claims(conn, status="withdrawn"))]
    assert tx(lambda conn: get_claim(conn, claim["id"]))["shares"] == claim["shares"]


def test_the_database_refuses_a_claim_that_does_not_split_its_loss_base(engine, backend):
    if backend != "postgres":
        pytest.skip("a PostgreSQL rule (claims_split_sums)")
    w = world()
    loan_id = loan_in(w)

    def tamper(conn):  # a claim whose shares go missing before its transaction commits
        claim = open_claim(conn, loan_id, w["bank"].id, DEFAULTED_ON, SYSTEM, overdue_days=93)
        conn.execute(text("DELETE FROM claim_shares WHERE claim_id = :id"), {"id": claim["id"]})
    with pytest.raises(Exception, match="does not split its loss base"):
        tx(tamper)
    assert tx(lambda conn: conn.execute(select(loans.c.status).where(loans.c.id == loan_id)).scalar_one()) == "active"


def test_two_claims_at_once_on_a_nearly_empty_fund_do_not_both_get_the_last_yuan(engine, backend):
    if backend != "postgres":
        pytest.skip("concurrency with real commits: PostgreSQL")
    w = world(fund_yuan=1)
    loan_ids = [loan_in(w), loan_in(w)]
    # An earlier claim, withdrawn, leaves the usage rows in place: the race is then on locking
    # existing rows (a first-ever claim would also be serialised by the rows' unique key).
    earlier = default(w, loan_in(w))
    tx(lambda conn: withdraw_claim(conn, earlier["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    results, errors = at_the_same_moment(engine, [
        lambda conn, loan_id=loan_id: open_claim(conn, loan_id, w["bank"].id, DEFAULTED_ON, SYSTEM, overdue_days=93)
        for loan_id in loan_ids])
    assert errors == [] and len(results) == 2
    pool_fen = sorted(shares(result)[w["pool"]][1] for result in results)
    assert pool_fen == [0, 100]


def test_the_borrower_year_coverage_limit_is_spent_by_earlier_loans_in_start_date_order(engine):
    w = world(fund_yuan=0, change=lambda t: t["coverage"].update(
        max_covered_principal_per_borrower_year="6000000.00"))
    later = loan_in(w, start_date="2025-04-01")
    loan_in(w, start_date="2025-03-01")  # created second, started first: it spends the limit first
    claim = default(w, later)
    assert claim["borrower_year_principal_before_fen"] == 500_000_000
    assert claim["covered_fen"] == 100_000_000  # 6,000,000 less 5,000,000; not the IP part 4,000,000


def test_a_party_cap_per_borrower_year_is_shared_by_the_borrowers_claims_that_year(engine):
    w = world(fund_yuan=10_000_000, change=lambda t: t["parties"][1]["caps"].update(
        per_borrower_year="2500000.00"))
    first, second = default(w, loan_in(w)), default(w, loan_in(w))
    assert shares(first)[w["pool"]][1] == 200_000_000
    assert shares(second)[w["pool"]][1:] == (50_000_000, [{"cap": "per_borrower_year", "fen": 150_000_000}])


def test_the_claim_records_equal_the_journal(engine):
    w = world(fund_yuan=3_000_000)
    made = [default(w, loan_in(w)) for _ in range(3)]
    tx(lambda conn: withdraw_claim(conn, made[1]["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    live = [c for c in made if c is not made[1]]

    def balance(code):
        return tx(lambda conn: conn.execute(
            select(func.coalesce(func.sum(postings.c.amount_fen), 0))
            .join(accounts, accounts.c.id == postings.c.account_id).where(accounts.c.code == code)).scalar_one())
    for party in (w["insurer"], w["pool"]):
        owed = sum(shares(c)[party][1] for c in live)
        assert balance(f"inst:{_institution_id(party)}:claims_payable") == -owed
    assert balance(f"inst:{w['bank'].id}:credit_losses") == sum(c["bank_retained_fen"] for c in live)
    for claim in made:
        receivable = balance(f"loan:{claim['loan_id']}:claim_receivable")
        assert receivable == (0 if claim is made[1] else sum(s["amount_fen"] for s in claim["shares"]))


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(fund_fen=st.integers(0, 500_000_000),
       principals_fen=st.lists(st.integers(1_00, 8_000_000_00), min_size=1, max_size=4),
       withdraw=st.sets(st.integers(0, 3)))
def test_property_claims_in_order_never_overdraw_the_fund_and_equal_the_journal(
        engine, fund_fen, principals_fen, withdraw):
    w = world(fund_yuan=0)
    if fund_fen:
        tx(lambda conn: programs.contribute(conn, w["program"].code, w["pool_id"], fund_fen,
                                            date(2025, 1, 2), SYSTEM))
    made = [default(w, loan_in(w, principal=f"{p // 100}.{p % 100:02d}", insured_amount=None))
            for p in principals_fen]
    promised = 0
    for claim in made:  # in claim order the fund is never promised beyond its balance
        promised += shares(claim)[w["pool"]][1]
        assert promised <= fund_fen
        assert sum(s["amount_fen"] for s in claim["shares"]) + claim["bank_retained_fen"] == claim["loss_base_fen"]
        for computed, owed, cuts in shares(claim).values():
            assert owed == computed - sum(cut["fen"] for cut in cuts) and owed >= 0
        lines = entry_postings(claim["entry_id"])
        assert sum(lines.values()) == 0
        assert lines[f"loan:{claim['loan_id']}:claimed"] == -claim["outstanding_principal_fen"]
    for index in sorted(i for i in withdraw if i < len(made)):
        made[index] = tx(lambda conn: withdraw_claim(conn, made[index]["id"], w["bank"].id,
                                                     DEFAULTED_ON, SYSTEM))
    live = [c for c in made if c["status"] == "open"]
    used = tx(lambda conn: conn.execute(select(cap_usage.c.used_fen).where(
        cap_usage.c.program_id == made[0]["program_id"], cap_usage.c.institution_id == w["pool_id"],
        cap_usage.c.scope == "all")).scalar_one())
    assert used == sum(shares(c)[w["pool"]][1] for c in live)
