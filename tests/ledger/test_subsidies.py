"""The subsidy computation (DOMAIN.md §5): a plain per-loan reference, the worked example, each
method, cap and eligibility rule at its boundary, and the vectorised code equal to the reference
on random books (hypothesis)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import Invalid, NotFound
from ledger.subsidies import Book, Excluded, Prior, compute, half_up_quotient, parse_period, scaled
from ledger.terms import Eligibility, SubsidyCaps, SubsidyRule

LPR = {f"{y}-{m:02d}": Decimal("0.0345") if m % 2 else Decimal("0.0310")
       for y in range(2019, 2027) for m in range(1, 13)}


def lpr_for(month: str) -> Decimal:
    if month not in LPR:
        raise NotFound(f"no LPR1Y is recorded for {month}; record it before using it")
    return LPR[month]


# --- a book from plain loans ---------------------------------------------------------------------

def loan(loan_id, borrower_id, start, principal_fen, rate="0.0400", sme=True, private=True,
         revenue_fen=10 ** 9, repayments=(), paid=()):
    """repayments: [(day, principal_fen)], paid: [(kind, day, fen)]."""
    return dict(id=loan_id, borrower=borrower_id, start=start, principal=principal_fen,
                rate=Decimal(rate), sme=sme, private=private, revenue=revenue_fen,
                repayments=list(repayments), paid=list(paid))


def book_of(plain: list[dict]) -> Book:
    plain = sorted(plain, key=lambda l: (l["start"], l["id"]))
    moves = [(i, l["start"], l["principal"]) for i, l in enumerate(plain)]
    moves += [(i, d, -fen) for i, l in enumerate(plain) for d, fen in l["repayments"]]
    paid: dict[str, list] = {}
    for i, l in enumerate(plain):
        for kind, d, fen in l["paid"]:
            paid.setdefault(kind, []).append((i, d.toordinal(), fen))
    arr = lambda xs: np.array(xs, dtype=np.int64)
    return Book(
        loan_id=arr([l["id"] for l in plain]), borrower_id=arr([l["borrower"] for l in plain]),
        start_ord=arr([l["start"].toordinal() for l in plain]), principal_fen=arr([l["principal"] for l in plain]),
        rate_scaled=arr([scaled(l["rate"]) for l in plain]), sme=np.array([l["sme"] for l in plain], dtype=bool),
        private=np.array([l["private"] for l in plain], dtype=bool), revenue_fen=arr([l["revenue"] for l in plain]),
        move_loan=arr([m[0] for m in moves]), move_ord=arr([m[1].toordinal() for m in moves]),
        move_fen=arr([m[2] for m in moves]),
        paid={k: (arr([r[0] for r in v]), arr([r[1] for r in v]), arr([r[2] for r in v])) for k, v in paid.items()})


# --- the reference: one loan at a time, Fractions, day by day -------------------------------------

def half_up(x: Fraction) -> int:
    """Half up to the fen, by integer arithmetic on the exact fraction (x ≥ 0)."""
    return (2 * x.numerator + x.denominator) // (2 * x.denominator)


def anniversary(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return date(d.year + years, 3, 1)


def ref_formula(l, rule, first, end):
    if rule.method == "pct_of_paid":
        basis = sum(fen for kind, d, fen in l["paid"] if kind == rule.kind and first <= d < end)
        return basis, half_up(Fraction(max(basis, 0)) * Fraction(rule.pct))
    day, basis = first, 0
    while day < end:
        if day >= l["start"]:
            basis += l["principal"] - sum(fen for d, fen in l["repayments"] if d <= day)
        day += timedelta(days=1)
    if rule.reference_month == "december_of_year":
        rate = lpr_for(f"{first.year}-12")
    else:
        rate = lpr_for((l["start"].replace(day=1) - timedelta(days=1)).strftime("%Y-%m"))
    if rule.min_with_contract_rate:
        rate = min(rate, l["rate"])
    return basis, half_up(Fraction(max(basis, 0)) * Fraction(rule.pct) * Fraction(rate) / 360)


def ref_eligibility(l, e):
    if e.sme_only and not l["sme"]:
        return "sme_only"
    if e.private_only and not l["private"]:
        return "private_only"
    if e.max_revenue_fen is not None and l["revenue"] > e.max_revenue_fen:
        return "max_revenue"
    if e.max_rate_over_lpr is not None and l["rate"] > e.max_rate_over_lpr * lpr_for(l["start"].strftime("%Y-%m")):
        return "max_rate_over_lpr"
    return None


def reference(plain, rules, period, prior=Prior()):
    first, end = parse_period(period)
    lines, excluded = [], []
    for rule in rules:
        caps = rule.caps
        used_year = {}  # borrower → paid by earlier lines of this rule
        for l in sorted(plain, key=lambda l: (l["start"], l["id"])):
            reason = ref_eligibility(l, rule.eligibility)
            if reason:
                excluded.append(Excluded(l["id"], rule.kind, reason))
                continue
            if l["start"] >= end:
                continue
            basis, computed = ref_formula(l, rule, first, end)
            if computed <= 0:
                continue
            limits = {}
            if caps.years is not None:
                limits["years"] = ref_formula(l, rule, first, min(end, anniversary(l["start"], caps.years)))[1]
            loan_prior = prior.per_loan_fen.get((rule.kind, l["id"]), 0)
            if caps.pct_of_principal is not None:
                limits["pct_of_principal"] = max(half_up(Fraction(l["principal"]) * Fraction(caps.pct_of_principal)) - loan_prior, 0)
            if caps.per_loan_fen is not None:
                limits["per_loan"] = max(caps.per_loan_fen - loan_prior, 0)
            earlier = used_year.get(l["borrower"], 0)
            if caps.per_borrower_year_fen is not None:
                before = prior.per_borrower_year_fen.get((rule.kind, l["borrower"], first.year), 0)
                limits["per_borrower_year"] = max(caps.per_borrower_year_fen - before - earlier, 0)
            if caps.per_borrower_total_fen is not None:
                before = prior.per_borrower_total_fen.get((rule.kind, l["borrower"]), 0)
                limits["per_borrower_total"] = max(caps.per_borrower_total_fen - before - earlier, 0)
            amount = min([computed, *limits.values()])
            used_year[l["borrower"]] = earlier + amount
            bound = tuple(n for n, v in limits.items() if v == amount and v < computed)
            lines.append((l["id"], rule.kind, basis, computed, amount, bound))
    return lines, excluded


def as_tuples(result):
    return [(x.loan_id, x.kind, x.basis_fen, x.computed_fen, x.amount_fen, x.capped_by) for x in result.lines]


def check_same(plain, rules, period, prior=Prior()):
    result = compute(book_of(plain), tuple(rules), period, lpr_for, prior)
    lines, excluded = reference(plain, rules, period, prior)
    assert as_tuples(result) == lines
    assert result.excluded == excluded
    return result


PAID = SubsidyRule("interest", "pct_of_paid", Decimal("0.4"))
REF = SubsidyRule("interest", "pct_of_reference_rate", Decimal("0.5"), "LPR1Y", "month_before_start")
Y2025 = date(2025, 1, 1)


# --- DOMAIN.md §5's worked example -----------------------------------------------------------------

def test_worked_example_40pct_of_paid_capped_per_borrower_year():
    rule = replace(PAID, caps=SubsidyCaps(per_borrower_year_fen=50_000_000))  # 500,000 yuan
    plain = [loan(1, 7, date(2024, 3, 1), 10 ** 10, paid=[("interest", date(2025, 6, 30), 100_000_000)])]
    uncapped = compute(book_of(plain), (PAID,), "2025", lpr_for)
    assert uncapped.lines[0].computed_fen == uncapped.lines[0].amount_fen == 40_000_000  # 400,000
    prior = Prior(per_borrower_year_fen={("interest", 7, 2025): 20_000_000})  # 200,000 already paid
    line = check_same(plain, [rule], "2025", prior).lines[0]
    assert (line.computed_fen, line.amount_fen, line.capped_by) == (40_000_000, 30_000_000, ("per_borrower_year",))


# --- each method ----------------------------------------------------------------------------------

def test_pct_of_paid_counts_only_the_period_and_rounds_half_up_once():
    plain = [loan(1, 1, date(2024, 5, 1), 10 ** 8, paid=[
        ("interest", date(2024, 12, 31), 999), ("interest", date(2025, 1, 1), 3),
        ("interest", date(2025, 12, 31), 2), ("interest", date(2026, 1, 1), 999)])]
    rule = replace(PAID, pct=Decimal("0.5"))  # 5 × 0.5 = 2.5 → 3 (two lines of 1.5 would give 4)
    line = check_same(plain, [rule], "2025").lines[0]
    assert (line.basis_fen, line.computed_fen) == (5, 3)


def test_pct_of_reference_rate_day_by_day_until_full_repayment_exclusive():
    # Live 2025-01-01 (start, inclusive) .. 2025-01-11 (repaid in full: exclusive): 10 days.
    plain = [loan(1, 1, date(2025, 1, 1), 3_600_000_00, repayments=[(date(2025, 1, 11), 3_600_000_00)])]
    line = check_same(plain, [REF], "2025").lines[0]
    assert line.basis_fen == 10 * 3_600_000_00
    # 10 days × 3,600,000 yuan × 0.5 × LPR(2024-12 = 3.10%) / 360 = 1,550 yuan
    assert line.computed_fen == 155_000


def test_reference_month_december_and_min_with_contract_rate():
    plain = [loan(1, 1, date(2025, 12, 1), 36_000_000_00, rate="0.0300")]
    dec = replace(REF, reference_month="december_of_year")
    lower = replace(dec, min_with_contract_rate=True)
    a, b = check_same(plain, [dec, lower], "2025").lines
    assert a.computed_fen == 31 * 36_000_000_00 * 5 * 310 // (10 * 10000 * 360)  # LPR 2025-12 = 3.10%
    assert b.computed_fen == 31 * 36_000_000_00 * 5 * 300 // (10 * 10000 * 360)  # contract 3.00% is lower


def test_a_month_without_an_lpr_is_an_error_naming_it():
    plain = [loan(1, 1, date(2019, 1, 1), 10 ** 8)]
    with pytest.raises(NotFound, match="2018-12"):
        compute(book_of(plain), (REF,), "2019", lpr_for)


def test_fee_subsidy_of_the_fee_paid():
    rule = SubsidyRule("guarantee_fee", "pct_of_paid", Decimal("0.3"))
    plain = [loan(1, 1, date(2025, 2, 1), 10 ** 8, paid=[("guarantee_fee", date(2025, 1, 20), 1_000_00),
                                                         ("premium", date(2025, 1, 20), 5_000_00)])]
    line = check_same(plain, [rule], "2025").lines[0]
    assert (line.kind, line.basis_fen, line.amount_fen) == ("guarantee_fee", 1_000_00, 300_00)


def test_quarter_periods():
    assert parse_period("2025-Q4") == (date(2025, 10, 1), date(2026, 1, 1))
    assert parse_period("2025-Q1") == (date(2025, 1, 1), date(2025, 4, 1))
    for bad in ("2025-Q5", "25", "2025Q1", None, 2025):
        with pytest.raises(Invalid):
            parse_period(bad)


# --- each cap at its boundary ------------------------------------------------------------------------

def paid_loan(loan_id=1, borrower=1, start=date(2024, 1, 1), principal=10 ** 8, interest=1_000_00):
    return loan(loan_id, borrower, start, principal, paid=[("interest", date(2025, 3, 1), interest)])


@pytest.mark.parametrize("caps, name", [
    (SubsidyCaps(per_loan_fen=400_00), "per_loan"),
    (SubsidyCaps(pct_of_principal=Decimal("0.0004")), "pct_of_principal"),  # 10^8 fen × 4e-4 = 400 yuan
    (SubsidyCaps(per_borrower_year_fen=400_00), "per_borrower_year"),
    (SubsidyCaps(per_borrower_total_fen=400_00), "per_borrower_total"),
])
def test_each_cap_binds_below_and_not_at_or_above(caps, name):
    plain = [paid_loan()]  # 40% of 1,000 yuan = 400 yuan = 40,000 fen
    at = check_same(plain, [replace(PAID, caps=caps)], "2025").lines[0]
    assert (at.amount_fen, at.capped_by) == (400_00, ())  # cap equal to the formula: not "bound"
    field_name, value = next((k, v) for k, v in vars(caps).items() if v is not None)
    lower = replace(caps, **{field_name: value - (1 if isinstance(value, int) else Decimal("0.00000001"))})
    below = check_same(plain, [replace(PAID, caps=lower)], "2025").lines[0]
    assert below.amount_fen < 400_00 and below.capped_by == (name,)


def test_years_cap_counts_from_the_start_and_cuts_within_the_period():
    rule = replace(PAID, caps=SubsidyCaps(years=1))
    plain = [loan(1, 1, date(2024, 3, 2), 10 ** 8, paid=[("interest", date(2025, 3, 1), 100_00),
                                                         ("interest", date(2025, 3, 2), 100_00)])]
    line = check_same(plain, [rule], "2025").lines[0]
    assert (line.computed_fen, line.amount_fen, line.capped_by) == (80_00, 40_00, ("years",))


def test_borrower_caps_consumed_in_loan_date_then_id_order_and_across_batches():
    rule = replace(PAID, caps=SubsidyCaps(per_borrower_year_fen=600_00))
    plain = [paid_loan(3, 1, date(2024, 2, 1)), paid_loan(2, 1, date(2024, 2, 1)),
             paid_loan(1, 1, date(2024, 6, 1)), paid_loan(4, 2, date(2024, 1, 1))]
    result = check_same(plain, [rule], "2025")
    assert [(x.loan_id, x.amount_fen) for x in result.lines] == [(4, 400_00), (2, 400_00), (3, 200_00), (1, 0)]
    prior = Prior(per_borrower_year_fen={("interest", 1, 2025): 500_00})
    again = check_same(plain, [rule], "2025", prior)
    assert [x.amount_fen for x in again.lines] == [400_00, 100_00, 0, 0]
    assert check_same(plain, [rule], "2026", prior).lines == []  # nothing paid in 2026


def test_per_loan_cap_consumed_by_earlier_batches():
    rule = replace(PAID, caps=SubsidyCaps(per_loan_fen=500_00))
    prior = Prior(per_loan_fen={("interest", 1): 300_00})
    line = check_same([paid_loan()], [rule], "2025", prior).lines[0]
    assert (line.amount_fen, line.capped_by) == (200_00, ("per_loan",))


# --- each eligibility rule at its boundary -------------------------------------------------------------

def test_eligibility_rules_name_the_failed_rule():
    e = Eligibility(max_rate_over_lpr=Decimal("1.5"), sme_only=True, private_only=True, max_revenue_fen=10 ** 9)
    rule = replace(PAID, eligibility=e)
    start = date(2024, 1, 1)  # LPR 2024-01 = 3.45%; 1.5 × 3.45% = 5.175%
    plain = [replace_loan(paid_loan(1, 1, start), rate="0.05175"),
             replace_loan(paid_loan(2, 2, start), rate="0.05176"),
             replace_loan(paid_loan(3, 3, start), sme=False),
             replace_loan(paid_loan(4, 4, start), private=False),
             replace_loan(paid_loan(5, 5, start), revenue=10 ** 9),
             replace_loan(paid_loan(6, 6, start), revenue=10 ** 9 + 1)]
    result = check_same(plain, [rule], "2025")
    assert [x.loan_id for x in result.lines] == [1, 5]
    assert [(x.loan_id, x.reason) for x in result.excluded] == [
        (2, "max_rate_over_lpr"), (3, "sme_only"), (4, "private_only"), (6, "max_revenue")]


def replace_loan(l, **over):
    if "rate" in over:
        over["rate"] = Decimal(over["rate"])
    return {**l, **over}


# --- exact arithmetic beyond int64 ---------------------------------------------------------------------

def test_half_up_quotient_is_exact_where_int64_would_overflow():
    a = np.array([10 ** 15 + 7, 3], dtype=np.int64)
    b = np.array([99_999_999, 1], dtype=np.int64)
    got = half_up_quotient([a, b], 3 * 10 ** 8)
    assert list(got) == [half_up(Fraction(int(a[0]) * int(b[0]), 3 * 10 ** 8)), 0]


# --- the vectorised code equals the reference on random books ------------------------------------------

ratios = st.integers(0, 100).map(lambda n: Decimal(n) / 100)
caps_st = st.builds(SubsidyCaps,
                    pct_of_principal=st.none() | st.integers(1, 50).map(lambda n: Decimal(n) / 10000),
                    per_loan_fen=st.none() | st.integers(0, 200_000),
                    per_borrower_year_fen=st.none() | st.integers(0, 300_000),
                    per_borrower_total_fen=st.none() | st.integers(0, 400_000),
                    years=st.none() | st.integers(1, 3))
elig_st = st.builds(Eligibility, max_rate_over_lpr=st.none() | st.sampled_from([Decimal("1"), Decimal("1.3")]),
                    sme_only=st.booleans(), private_only=st.booleans(),
                    max_revenue_fen=st.none() | st.integers(0, 2 * 10 ** 9))
rule_st = st.one_of(
    st.builds(SubsidyRule, kind=st.sampled_from(["interest", "premium", "guarantee_fee", "appraisal_fee"]),
              method=st.just("pct_of_paid"), pct=ratios, caps=caps_st, eligibility=elig_st),
    st.builds(SubsidyRule, kind=st.just("interest"), method=st.just("pct_of_reference_rate"), pct=ratios,
              reference=st.just("LPR1Y"), reference_month=st.sampled_from(["december_of_year", "month_before_start"]),
              min_with_contract_rate=st.booleans(), caps=caps_st, eligibility=elig_st))
days = st.integers(0, 900).map(lambda n: date(2023, 6, 1) + timedelta(days=n))


@st.composite
def books(draw):
    plain = []
    for loan_id in range(1, draw(st.integers(1, 6)) + 1):
        start = draw(days)
        principal = draw(st.integers(1, 10 ** 7))
        repayments, left = [], principal
        for d in sorted(draw(st.lists(st.integers(0, 700), max_size=3))):
            fen = draw(st.integers(1, left)) if left else 0
            if fen:
                repayments.append((start + timedelta(days=d), fen))
                left -= fen
        paid = draw(st.lists(st.tuples(st.sampled_from(["interest", "premium", "guarantee_fee", "appraisal_fee"]),
                                       days, st.integers(1, 10 ** 6)), max_size=4))
        plain.append(loan(loan_id, draw(st.integers(1, 3)), start, principal,
                          rate=draw(st.sampled_from(["0.0300", "0.0345", "0.0400", "0.0449"])),
                          sme=draw(st.booleans()), private=draw(st.booleans()),
                          revenue_fen=draw(st.integers(0, 2 * 10 ** 9)), repayments=repayments, paid=paid))
    return plain


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain=books(), rules=st.lists(rule_st, min_size=1, max_size=3),
       period=st.sampled_from(["2024", "2025", "2024-Q3", "2025-Q1"]),
       prior_year=st.integers(0, 100_000), prior_loan=st.integers(0, 100_000))
def test_vectorised_equals_the_per_loan_reference(plain, rules, period, prior_year, prior_loan):
    year = int(period[:4])
    prior = Prior(per_loan_fen={(r.kind, 1): prior_loan for r in rules},
                  per_borrower_year_fen={(r.kind, 1, year): prior_year for r in rules},
                  per_borrower_total_fen={(r.kind, 2): prior_year for r in rules})
    check_same(plain, rules, period, prior)
