"""`ledger.stress`: the simulation splits claims exactly as the claims engine books them.

The proof: a simulated scenario's defaults are replayed through `ledger.claims.open_claim` on a
real database (SQLite and PostgreSQL), in the same order with the fund's same contributions, and
every party's share must equal the simulated one to the fen, under random terms (hypothesis)."""
from datetime import date
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger import programs, stress
from ledger.claims import open_claim
from ledger.journal import SYSTEM
from ledger.money import allocate
from ledger.sharing import CAP_ORDER, split_recovery
from ledger.terms import Coverage, Party, PartyCaps, ShareTier, Terms
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms,
                             make_loan, program_parties, tx)

AS_OF = date(2026, 1, 1)
TODAY = date(2031, 1, 1)
YUAN = 100


def _yuan(fen):
    return None if fen is None else f"{fen // 100}.{fen % 100:02d}"


def random_terms(draw, parties):
    insurer_share = draw(st.sampled_from(["0.10", "0.25", "0.30"]))
    pool_low, pool_high = draw(st.sampled_from([("0.50", "0.40"), ("0.60", "0.60"), ("0.20", "0.50")]))
    money = st.one_of(st.none(), st.integers(1, 60).map(lambda m: _yuan(m * 100_000 * YUAN)))
    terms = api_terms(**parties)
    terms["coverage"] = {
        "ip_share": draw(st.sampled_from(["ip_part_only", "whole_loan"])),
        "require_stated_ip_share": draw(st.booleans()),
        "min_ip_share": draw(st.sampled_from([None, "0.5"])),
        "max_covered_principal": draw(money),
        "max_covered_principal_per_borrower_year": draw(money)}
    insurer, pool = terms["parties"]
    insurer.update(share=insurer_share, caps={
        "per_claim": draw(money), "per_bank_year": draw(money),
        "portfolio_cap_rate": draw(st.sampled_from([None, "0.05", "0.2"]))})
    pool.update(share=pool_low, share_tiers=[{"up_to": "5000000.00", "share": pool_low},
                                              {"up_to": None, "share": pool_high}],
                caps={"per_borrower_year": draw(money), "per_bank_year": draw(money),
                      "per_program_year": draw(money), "portfolio_cap_rate": None,
                      "fund_balance": True})
    return terms


LOANS = [  # (bank, borrower, principal yuan, IP share)
    (0, 0, "5000000.00", "0.8"), (0, 0, "12000000.00", "1"), (0, 1, "3000000.00", None),
    (1, 2, "8000000.00", "0.6"), (1, 2, "2500000.00", "0.4"), (0, 1, "6000000.00", "0.9"),
    (1, 3, "4000000.00", "0.75"), (0, 0, "1500000.00", "0.5")]


def make_world(terms, fund_fen):
    program = ProgramFactory(terms=terms)
    banks = [InstitutionFactory(), InstitutionFactory()]
    people = [BorrowerFactory(bank_id=banks[b].id) for b in (0, 0, 1, 1)]
    loan_ids, bank_of = [], {}
    for bank, who, principal, ip in LOANS:
        loan_id = make_loan(banks[bank].id, people[who].facts.credit_code, program.code,
                            principal=principal, ip_share=ip, insured_amount=principal,
                            maturity_date="2029-12-31")
        loan_ids.append(loan_id)
        bank_of[loan_id] = banks[bank].id
    pool_id = _pool_id(program.code)
    if fund_fen:
        tx(lambda conn: programs.contribute(conn, program.code, pool_id, fund_fen, date(2025, 1, 2), SYSTEM))
    return program, bank_of, pool_id


def _pool_id(code):
    program = tx(lambda conn: programs.get_program(conn, code))
    pool = next(p for p in program.versions[0].terms.parties if p.role == "pool").institution
    from sqlalchemy import select
    from ledger.schema import institutions
    return tx(lambda conn: conn.execute(select(institutions.c.id).where(institutions.c.code == pool)).scalar_one())


def assumptions(**over):
    base = dict(as_of=AS_OF, years=3, scenarios=6, seed=7, default_probability=Decimal("0.35"),
                asset_correlation=Decimal("0.3"), annual_contribution_fen=2_000_000 * YUAN)
    base.update(over)
    return stress.Assumptions(**base)


def replay_and_compare(program, bank_of, pool_id, a):
    """Simulate, take the scenario with the most claims, open the same claims for real, compare."""
    book = tx(lambda conn: stress.load_book(conn, program.code, a.as_of))
    plan = stress.prepare(book, a)
    outcome = stress.simulate(plan, a, a.annual_contribution_fen, keep_events=True)
    events = max(outcome.events, key=len)
    assert events, "the scenario has claims to compare"
    year_done, cut_by = 0, set()
    for year, loan_id, simulated in events:
        while year_done < year:  # each simulated year begins with its contribution
            year_done += 1
            if not a.annual_contribution_fen:
                continue
            on = date(a.as_of.year + year_done - 1, 1, 2)
            tx(lambda conn: programs.contribute(conn, program.code, pool_id, a.annual_contribution_fen,
                                                on, SYSTEM, today=TODAY))
        on = date(a.as_of.year + year - 1, 6, 1)
        claim = tx(lambda conn: open_claim(conn, loan_id, bank_of[loan_id], on, SYSTEM,
                                           overdue_days=93, today=TODAY))
        booked = {s["institution"]: s["amount_fen"] for s in claim["shares"]}
        assert booked == simulated, f"claim on loan {loan_id} in year {year}"
        cut_by |= {cap for s in claim["shares"] for cap in s["capped_by"]}
    return events, cut_by


TIGHT = ({"per_bank_year": "1500000.00", "portfolio_cap_rate": "0.5"},
         {"per_borrower_year": "2200000.00", "per_program_year": "6000000.00"})
FUND_RICH = ({}, {"per_borrower_year": "2200000.00", "per_program_year": "3000000.00"})
WORLDS = [(2, 3_000_000, TIGHT), (6, 3_000_000, TIGHT), (3, 30_000_000, FUND_RICH)]
"""(seed, fund in yuan, cap changes): between them every cap binds, several only through what
earlier claims used (breaking any usage update in ledger.stress fails this test)."""


def test_a_simulated_scenario_books_the_same_shares_as_the_claims_engine(engine):
    cut_by = set()
    for seed, fund_yuan, (insurer_caps, pool_caps) in WORLDS:
        parties = program_parties()
        terms = api_terms(**parties)
        insurer, pool = terms["parties"]
        insurer["caps"].update(insurer_caps)
        pool["caps"].update(pool_caps)
        program, bank_of, pool_id = make_world(terms, fund_yuan * YUAN)
        events, cuts = replay_and_compare(program, bank_of, pool_id, assumptions(seed=seed))
        assert len(events) >= 3
        cut_by |= cuts
    assert cut_by == set(CAP_ORDER), cut_by


# No shrinking: each example builds a database world; a failure prints its draws as they are.
@settings(max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
@given(data=st.data(), fund_millions=st.integers(0, 8), seed=st.integers(0, 2**32 - 1))
def test_on_random_terms_and_defaults_the_simulation_equals_the_claims_engine(engine, data, fund_millions, seed):
    parties = program_parties()
    terms = data.draw(st.composite(lambda draw: random_terms(draw, parties))())
    program, bank_of, pool_id = make_world(terms, fund_millions * 1_000_000 * YUAN)
    contribution = data.draw(st.integers(0, 4)) * 1_000_000 * YUAN
    replay_and_compare(program, bank_of, pool_id, assumptions(seed=seed, annual_contribution_fen=contribution))


# --- pure: the simulation's own properties ---------------------------------------------------


def synthetic_book(n=200, seed=3, fund_fen=20_000_000 * YUAN):
    rng = np.random.default_rng(seed)
    terms = Terms(
        parties=(Party("INS", "insurer", Decimal("0.3"), pays_first=True,
                       caps=PartyCaps(per_claim_fen=1_000_000 * YUAN)),
                 Party("POOL", "pool", Decimal("0.5"),
                       share_tiers=(ShareTier(5_000_000 * YUAN, Decimal("0.5")), ShareTier(None, Decimal("0.4"))),
                       caps=PartyCaps(per_borrower_year_fen=2_000_000 * YUAN,
                                      per_program_year_fen=60_000_000 * YUAN, fund_balance=True))),
        coverage=Coverage(ip_share="ip_part_only"))
    principal = (rng.integers(5, 200, n) * 50_000 * YUAN).astype(np.int64)
    ip = [Decimal(str(x)) for x in rng.choice([0.5, 0.8, 1.0], n)]
    return stress.Book(
        loan_id=np.arange(1, n + 1, dtype=np.int64), outstanding_fen=principal, original_fen=principal,
        ip_share=ip, before_fen=[0] * n, first_year=np.ones(n, dtype=np.int64),
        last_year=rng.integers(1, 4, n).astype(np.int64), borrower=rng.integers(0, n // 2, n).astype(np.int64),
        bank=rng.integers(0, 3, n).astype(np.int64), sme=rng.random(n) < 0.8,
        version=np.zeros(n, dtype=np.int64), versions=[terms],
        portfolio_loans=[(1, int(p), s, 0) for p, s in zip(principal, ip)], fund_balance_fen=fund_fen,
        contributions_last_year_fen=5_000_000 * YUAN, program="SYN")


def pure(**over):
    base = dict(as_of=AS_OF, years=5, scenarios=600, seed=11, default_probability=Decimal("0.04"),
                asset_correlation=Decimal("0.2"), recovery_rate=Decimal("0.3"),
                recovery_rate_sd=Decimal("0.2"), recovery_delay_years=1)
    base.update(over)
    return stress.Assumptions(**base)


def test_same_assumptions_and_seed_give_the_same_results_whatever_the_chunk_size(monkeypatch):
    book = synthetic_book()
    first = stress.run(book, pure())
    assert stress.run(book, pure()) == first
    monkeypatch.setattr(stress, "MEMORY_BUDGET_BYTES", 1)  # one block per chunk
    assert stress.run(book, pure()) == first
    assert stress.run(book, pure(seed=12)) != first


def test_every_simulated_claim_sums_to_its_loss_base_and_results_are_consistent():
    book = synthetic_book()
    a = pure(recovery_rate=Decimal(0))
    plan = stress.prepare(book, a)
    o = stress.simulate(plan, a, 0)
    owed = sum(o.owed_fen.values())
    # Without recoveries: per scenario the parties' shares + the bank's = the defaulted loss bases.
    events = stress.simulate(plan, pure(scenarios=50, recovery_rate=Decimal(0)), 0, keep_events=True).events
    loss = dict(zip(book.loan_id.tolist(), book.outstanding_fen.tolist()))
    small = stress.simulate(plan, pure(scenarios=50, recovery_rate=Decimal(0)), 0)
    for s, claims in enumerate(events):
        assert sum(loss[loan] for _, loan, _ in claims) == int(sum(small.owed_fen.values())[s] + small.bank_retained_fen[s])
    assert (owed >= 0).all() and (o.bank_retained_fen >= 0).all()
    by_year = np.cumsum(o.exhausted_in_year, axis=1) > 0
    assert (np.diff(by_year.sum(axis=0)) >= 0).all()  # exhaustion by year never falls


def test_a_larger_contribution_never_exhausts_more_and_the_bisection_meets_its_target():
    book = synthetic_book(fund_fen=0)
    a = pure(scenarios=500, target_exhaustion_probability=Decimal("0.05"))
    plan = stress.prepare(book, a)
    low = stress.exhaustion_probability(stress.simulate(plan, a, 1_000_000 * YUAN))
    high = stress.exhaustion_probability(stress.simulate(plan, a, 30_000_000 * YUAN))
    assert high <= low and low > Decimal("0.05")
    found = stress.contribution_for_target(plan, a, Decimal("0.05"))
    fen = found["annual_contribution_fen"]
    assert fen % 100 == 0
    assert stress.exhaustion_probability(stress.simulate(plan, a, fen)) <= Decimal("0.05")
    # A fraction of a percent less fails the target (the bisection's resolution).
    assert stress.exhaustion_probability(stress.simulate(plan, a, fen - max(100, fen // 500))) > Decimal("0.05")


def test_recoveries_return_pro_rata_and_never_more_than_the_loss():
    book = synthetic_book()
    a = pure(recovery_rate=Decimal("0.9"), recovery_rate_sd=Decimal("0"), recovery_delay_years=0)
    o = stress.simulate(stress.prepare(book, a), a, 0)
    for name in o.owed_fen:
        assert (o.recovered_fen[name] <= o.owed_fen[name]).all()
    assert (o.bank_recovered_fen <= o.bank_retained_fen).all()
    assert int(sum(o.recovered_fen.values()).sum() + o.bank_recovered_fen.sum()) > 0


@given(st.lists(st.tuples(st.integers(0, 10**12), st.lists(st.integers(0, 10**11), min_size=1, max_size=5)),
                min_size=1, max_size=20))
def test_allocate_rows_is_allocate_row_by_row_and_split_recovery(rows):
    width = max(len(w) for _, w in rows)
    weights = [w + [0] * (width - len(w)) for _, w in rows]
    weights = [w if sum(w) else [1] + w[1:] for w in weights]
    totals = [min(t, sum(w)) for (t, _), w in zip(rows, weights)]
    got = stress.allocate_rows(np.array(totals, dtype=np.int64), np.array(weights, dtype=np.int64))
    for total, w, parts in zip(totals, weights, got.tolist()):
        assert parts == allocate(total, w)
        back, surplus = split_recovery(total, [(str(i), fen) for i, fen in enumerate(w)])
        assert [p.fen for p in back] == parts and surplus == 0


def test_new_lending_adds_loans_at_risk_from_their_year():
    book = synthetic_book(n=20)
    grown = stress.with_new_lending(book, [(2, 30_000_000 * YUAN)], years=5)
    added = grown.size - book.size
    assert added >= 1 and int(grown.outstanding_fen[book.size:].sum()) == 30_000_000 * YUAN
    assert (grown.first_year[book.size:] == 2).all() and (grown.loan_id[book.size:] < 0).all()


def test_a_part_the_terms_send_to_the_treasury_does_not_lower_the_pools_loss():
    book = synthetic_book()
    pool = book.versions[0].parties[1]
    redirected = Terms(parties=(book.versions[0].parties[0], Party(
        pool.institution, pool.role, pool.share, pool.share_tiers, caps=pool.caps, recoveries_to="TREASURY")),
        coverage=book.versions[0].coverage)
    book.versions = [redirected]
    a = pure(recovery_rate=Decimal("0.9"), recovery_rate_sd=Decimal("0"), recovery_delay_years=0)
    o = stress.simulate(stress.prepare(book, a), a, 0)
    assert int(o.recovered_fen["POOL"].sum()) == 0 and int(o.recovered_fen["INS"].sum()) > 0


def test_a_programme_with_no_live_loans_simulates_to_nothing():
    book = synthetic_book(n=0)
    results = stress.run(book, pure(scenarios=10))
    assert results["fund_payout"]["max"] == 0 and results["claims_mean"] == Decimal(0)


def test_the_book_is_the_loans_live_on_as_of_not_today(engine):
    from ledger.loans import record_repayment
    parties = program_parties()
    program, bank_of, pool_id = make_world(api_terms(**parties), 3_000_000 * YUAN)
    repaid, defaulted = list(bank_of)[:2]
    tx(lambda conn: record_repayment(conn, repaid, bank_of[repaid], date(2026, 3, 1), 5_000_000 * YUAN, 0, SYSTEM))
    claim = tx(lambda conn: open_claim(conn, defaulted, bank_of[defaulted], date(2026, 6, 1), SYSTEM,
                                       overdue_days=93, today=TODAY))

    def book_on(day):
        return tx(lambda conn: stress.load_book(conn, program.code, day))
    before, after = book_on(date(2026, 1, 1)), book_on(date(2026, 7, 1))
    assert {repaid, defaulted} <= set(before.loan_id.tolist()) and before.owed_before_fen == {}
    assert not {repaid, defaulted} & set(after.loan_id.tolist())
    assert after.owed_before_fen == {s["institution"]: s["amount_fen"] for s in claim["shares"] if s["amount_fen"]}
    assert before.fund_balance_fen == after.fund_balance_fen == 3_000_000 * YUAN
