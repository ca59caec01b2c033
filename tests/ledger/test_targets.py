"""Targets (DOMAIN.md §6): figures by region and year from the database, exact shares and growth,
and checks applied exactly as written."""
import itertools
import random
from datetime import date, timedelta
from dataclasses import fields
from fractions import Fraction

import pytest
from sqlalchemy import select
from hypothesis import HealthCheck, given, settings, strategies as st

from ledger import targets
from ledger.parties import BorrowerFacts, upsert_borrower
from ledger.schema import target_snapshots
from ledger.targets import Check, YearFigures, check_results, growth, ratio_text, target_set
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, make_loan,
                             patent_number, tx, unique)

# Districts of an otherwise unused province (71: no loan elsewhere in the suite lives there), one
# city per test, so each test's figures are its own in the shared session database.
_cities = itertools.count(1)
PROVINCE = "710000"


def new_city() -> str:
    return f"71{next(_cities):02d}00"


@pytest.fixture
def program(engine):
    return ProgramFactory(region=PROVINCE)


def pledge(kind="patent", on="2025-02-20"):
    if kind == "patent":
        return {"kind": "patent", "number": patent_number(), "registration_no": unique("Y"), "registered_on": on}
    return {"kind": "trademark", "number": str(random.randrange(1, 10**8)), "nice_class": 9,
            "registration_no": unique("TM"), "registered_on": on}


def lend(program, region, principal="1000000.00", start="2025-03-01", pledges=None, bank=None,
         borrower=None, sme=True, private=True, insured="500000.00"):
    bank = bank or InstitutionFactory(kind="bank")
    if borrower is None:
        size = {} if sme else {"employees": 2000, "revenue_fen": 500_000_000_00}
        borrower = BorrowerFactory(bank_id=bank.id, region=region, private=private, **size).facts.credit_code
    year = int(start[:4])
    return make_loan(bank.id, borrower, program.code, principal=principal, start_date=start,
                     maturity_date=f"{year + 1}-{start[5:]}", insured_amount=insured,
                     pledges=pledges or [pledge(on=start.replace(start[5:], "01-05"))])


def year(region, y, basis="registration"):
    return tx(lambda conn: targets.figures_with_previous(conn, region, y, basis))


# --- exact arithmetic, comparators as written -------------------------------------------------

@pytest.mark.parametrize("this, last, comparator, threshold, passes", [
    (120, 100, ">", "0.20", False),   # 20.00% growth does not "exceed 20%"
    (121, 100, ">", "0.20", True),
    (130, 100, ">=", "0.30", True),   # 30.00% is "30% or more"
    (129, 100, ">=", "0.30", False),
    (13_000_000_01, 10_000_000_00, ">=", "0.30", True),
    (12_999_999_99, 10_000_000_00, ">=", "0.30", False),  # one fen short
    (5, 0, ">=", "0", False),         # growth from zero is undefined: passes nothing
])
def test_growth_checks_apply_the_comparator_exactly(this, last, comparator, threshold, passes):
    check = Check("amount_growth", comparator, Fraction(threshold))
    assert check.passes(growth(this, last)) is passes


def test_growth_is_undefined_not_infinite_when_last_year_is_zero():
    assert growth(10, 0) is None and growth(0, 0) is None
    assert growth(0, 10) == -1 and growth(15, 10) == Fraction(1, 2)


@pytest.mark.parametrize("value, text", [
    (Fraction(1, 3), "0.333333"), (Fraction(2, 3), "0.666667"), (Fraction(-1, 8), "-0.125000"),
    (Fraction(1, 2_000_000), "0.000001"), (Fraction(1, 2_000_001), "0.000000"), (Fraction(3, 2), "1.500000"),
    (None, None),
])
def test_ratios_render_half_up_to_six_places(value, text):
    assert ratio_text(value) == text


def test_sme_share_of_exactly_half_does_not_exceed_half(engine):
    half = YearFigures(count=4, sme_count=2, amount_fen=400, sme_amount_fen=200)
    key_city_2018 = tx(lambda conn: target_set(conn, "key-city-2018"))
    result = {c["metric"]: c for c in check_results(key_city_2018, half, YearFigures())}
    assert result["sme_share_count"]["value"] == Fraction(1, 2) and not result["sme_share_count"]["pass"]
    assert result["amount_growth"]["value"] is None and not result["amount_growth"]["pass"]


def test_the_three_default_target_sets_are_seeded_as_domain_md_words_them(engine):
    sets = {t.code: [(c.metric, c.comparator, c.threshold) for c in t.checks]
            for t in tx(targets.target_sets_in) if t.code in ("key-city-2018", "key-city-2019", "sichuan-2021")}
    assert sets == {
        "key-city-2018": [("amount_growth", ">", Fraction(1, 5)), ("sme_share_count", ">", Fraction(1, 2))],
        "key-city-2019": [("amount_growth", ">=", Fraction(3, 10)), ("pledge_count_growth", ">=", Fraction(3, 10)),
                          ("insured_amount_growth", ">=", Fraction(3, 10))],
        "sichuan-2021": [("amount_growth", ">=", Fraction(3, 10)), ("count_growth", ">=", Fraction(3, 20)),
                         ("sme_enterprise_count_growth", ">=", Fraction(3, 20))]}


# --- the database figures ---------------------------------------------------------------------

def test_a_mixed_pledge_is_one_project_and_one_pledge_per_registration(program):
    city = new_city()
    lend(program, city[:4] + "01", pledges=[pledge(on="2025-01-05"), pledge(on="2025-01-06"),
                                           pledge("trademark", on="2025-01-07")])
    figures, _ = year(city, 2025)
    assert (figures.count, figures.pledge_count) == (1, 3)


def test_registration_and_start_bases_put_a_loan_in_different_years(program):
    city = new_city()
    lend(program, city[:4] + "01", principal="700.00", start="2025-01-10", pledges=[pledge(on="2024-12-20")])
    assert year(city, 2024)[0].amount_fen == 700_00 and year(city, 2025)[0].count == 0
    assert year(city, 2025, "start")[0].amount_fen == 700_00 and year(city, 2024, "start")[0].count == 0


def test_a_city_includes_its_districts_and_nothing_else(program):
    city, other = new_city(), new_city()
    lend(program, city[:4] + "01", principal="100.00")
    lend(program, city[:4] + "02", principal="200.00")
    lend(program, other[:4] + "01", principal="400.00")
    assert year(city, 2025)[0].amount_fen == 300_00
    assert year(city[:4] + "02", 2025)[0].amount_fen == 200_00
    assert year(other, 2025)[0].amount_fen == 400_00


def test_frozen_sme_facts_keep_last_years_share(program):
    city = new_city()
    bank = InstitutionFactory(kind="bank")
    code = BorrowerFactory(bank_id=bank.id, region=city[:4] + "01").facts.credit_code
    lend(program, None, start="2024-03-01", bank=bank, borrower=code)
    before = year(city, 2024)[0]
    grown = BorrowerFacts(credit_code=code, name="Grown Firm", region=city[:4] + "01", industry="software_it",
                          employees=2000, revenue_fen=500_000_000_00, total_assets_fen=300_000_000_00, private=True)
    tx(lambda conn: upsert_borrower(conn, bank.id, grown, as_of=date(2025, 1, 1)))
    lend(program, None, start="2025-03-01", bank=bank, borrower=code)
    assert year(city, 2024)[0] == before and (before.sme_count, before.sme_enterprise_count) == (1, 1)
    this_year = year(city, 2025)[0]
    assert (this_year.sme_count, this_year.sme_enterprise_count) == (0, 0)


def test_one_enterprise_across_banks_and_shares_by_count_and_amount(program):
    city = new_city()
    district = city[:4] + "01"
    first, second = InstitutionFactory(kind="bank"), InstitutionFactory(kind="bank")
    code = BorrowerFactory(bank_id=first.id, region=district).facts.credit_code
    BorrowerFactory(bank_id=second.id, region=district, credit_code=code)
    lend(program, None, principal="100.00", bank=first, borrower=code)
    lend(program, None, principal="300.00", bank=second, borrower=code)
    lend(program, district, principal="20000000.00", sme=False)          # not an SME, not inclusive
    lend(program, district, principal="600.00", private=False)          # an SME, not private
    figures = year(city, 2025)[0]
    assert (figures.count, figures.enterprise_count, figures.sme_enterprise_count) == (4, 3, 2)
    assert figures.shares == {"sme_share_count": Fraction(2, 4),
                              "sme_share_amount": Fraction(400_00, 20_000_000_00 + 1000_00),
                              "inclusive_share_count": Fraction(3, 4)}


# --- the aggregates against a plain Python reference ----------------------------------------

loan_specs = st.lists(st.tuples(st.integers(1, 3),                 # which district
                                st.integers(1, 30_000_000_00),     # principal, fen
                                st.sampled_from([2024, 2025]),     # registration year
                                st.booleans(), st.booleans(),      # sme, private
                                st.integers(1, 3),                 # pledges
                                st.integers(0, 2)),                # borrower (shared within a district)
                      min_size=0, max_size=6)


def reference(specs) -> dict[int, YearFigures]:
    out = {}
    for y in (2024, 2025):
        rows = [s for s in specs if s[2] == y]
        enterprises = {(s[0], s[6]) for s in rows}
        out[y] = YearFigures(
            amount_fen=sum(s[1] for s in rows), count=len(rows), pledge_count=sum(s[5] for s in rows),
            insured_amount_fen=100 * len(rows), enterprise_count=len(enterprises),
            sme_enterprise_count=len({(s[0], s[6]) for s in rows if s[3]}),
            sme_count=sum(1 for s in rows if s[3] and s[4]),
            sme_amount_fen=sum(s[1] for s in rows if s[3] and s[4]),
            inclusive_count=sum(1 for s in rows if s[1] < targets.INCLUSIVE_LIMIT_FEN))
    return out


# The programme is shared by every example on purpose: each example lends in a city of its own.
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=loan_specs)
def test_the_database_aggregates_equal_a_plain_reference(program, specs):
    city = new_city()
    bank = InstitutionFactory(kind="bank")
    # A borrower's SME and private facts are its own: the first spec naming it decides them.
    facts = {}
    for district, _, _, sme, private, _, who in specs:
        facts.setdefault((district, who), (sme, private))
    specs = [(d, p, y, *facts[(d, w)], n, w) for d, p, y, _, _, n, w in specs]
    codes = {}
    for (district, who), (sme, private) in facts.items():
        size = {} if sme else {"employees": 2000, "revenue_fen": 500_000_000_00}
        codes[(district, who)] = BorrowerFactory(bank_id=bank.id, region=f"{city[:4]}{district:02d}",
                                                 private=private, **size).facts.credit_code
    for district, principal, y, _, _, n, who in specs:
        make_loan(bank.id, codes[(district, who)], program.code, principal=f"{principal // 100}.{principal % 100:02d}",
                  start_date=f"{y}-06-01", maturity_date=f"{y + 1}-06-01", insured_amount="1.00",
                  pledges=[pledge(on=f"{y}-05-0{k + 1}") for k in range(n)])
    got = tx(lambda conn: targets.yearly_figures(conn, city, 2024, 2025))
    assert got == reference(specs)


# --- the fast series (every region at once) against the per-region answer ------------------

FAST_PROVINCE = "730000"  # no other test lends here; the test's own fresh database besides

fast_specs = st.lists(st.tuples(st.integers(1, 2),                  # city
                                st.sampled_from(["01", "02", "00"]),  # district ("00": the city's own code)
                                st.integers(1, 30_000_000_00),      # principal, fen
                                st.sampled_from(["2024-01-03", "2024-07-01", "2025-01-02"]),  # start
                                st.booleans(), st.booleans(),       # sme, private
                                st.integers(1, 3),                  # pledges (the last registered 10 days early)
                                st.integers(0, 2)),                 # enterprise (one credit code, any region)
                      min_size=1, max_size=8)


def _file(bank, code, region, sme, private):
    size = {} if sme else {"employees": 2000, "revenue_fen": 500_000_000_00}
    return BorrowerFactory(bank_id=bank.id, region=region, private=private, credit_code=code, **size)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=fast_specs)
def test_all_series_equals_the_per_region_answer_for_every_region(fresh_engine, specs):
    program = ProgramFactory(region=FAST_PROVINCE)
    codes = [BorrowerFactory(region=FAST_PROVINCE[:4] + "01").facts.credit_code for _ in range(3)]
    files = {}  # (enterprise, region) -> (bank, code): a region's file at a bank of its own
    for city, district, principal, start, sme, private, n, who in specs:
        region = f"73{city:02d}{district}"
        if (who, region) not in files:
            bank = InstitutionFactory(kind="bank")
            _file(bank, codes[who], region, sme, private)
            files[(who, region)] = bank
        year_ = int(start[:4])
        make_loan(files[(who, region)].id, codes[who], program.code, principal=f"{principal // 100}.{principal % 100:02d}",
                  start_date=start, maturity_date=f"{year_ + 1}{start[4:]}", insured_amount="1.00",
                  pledges=[pledge(on=(date.fromisoformat(start) - timedelta(days=10 * k)).isoformat())
                           for k in range(n)])

    def compare(conn):
        for basis in targets.BASES:
            fast = targets.all_series(conn, 2022, 2026, basis)
            assert set(fast) == set(targets.regions_with_loans(conn))
            for region, series in fast.items():
                assert series == targets.yearly_figures(conn, region, 2022, 2026, basis), (region, basis)
    tx(compare)


def test_a_loan_in_a_citys_own_code_counts_in_the_city_not_a_district(fresh_engine):
    program = ProgramFactory(region=FAST_PROVINCE)
    lend(program, "730100", principal="100.00")
    lend(program, "730101", principal="200.00")
    series = tx(lambda conn: targets.all_series(conn, 2025, 2025))
    assert {r: s[2025].amount_fen for r, s in series.items()} == {
        "000000": 300_00, "730000": 300_00, "730100": 300_00, "730101": 200_00}


def test_the_snapshot_holds_the_per_region_answer_for_every_region_year_and_basis(fresh_engine):
    program = ProgramFactory(region=FAST_PROVINCE)
    lend(program, "730101", principal="100.00", start="2024-01-03", pledges=[pledge(on="2023-12-28")])
    lend(program, "730102", principal="200.00", start="2025-06-01")
    lend(program, "730100", principal="400.00", start="2025-06-01")
    snapshot = tx(targets.take_snapshot)

    def held(conn):
        return conn.execute(select(target_snapshots).where(target_snapshots.c.run_id == snapshot.run_id)).all()
    rows = tx(held)
    names = [f.name for f in fields(YearFigures)]
    assert len(rows) == snapshot.rows == 5 * 3 * 2  # country, province, city, 2 districts; 2023-2025; bases
    for row in rows:
        expected = year(row.region, row.year, row.basis)[0]
        assert YearFigures(**{name: getattr(row, name) for name in names}) == expected, row
    for basis in targets.BASES:
        assert tx(lambda conn: targets.snapshot_series(conn, snapshot, basis)) == tx(
            lambda conn: targets.all_series(conn, 2023, 2025, basis))
