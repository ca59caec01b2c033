"""The risk-sharing engine: DOMAIN.md 3-4 worked examples as tables, then invariants."""

from decimal import Decimal
from fractions import Fraction

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import sharing
from ledger.sharing import CapsUsed, LoanFacts, split_claim, split_recovery
from ledger.terms import Coverage, Party, PartyCaps, ShareTier, Terms

D = Decimal
YUAN = 100


def _party(code, role, share, **kwargs):
    return Party(institution=code, role=role, share=D(share), **kwargs)


EXAMPLE_TERMS = Terms(parties=(
    _party("POOL", "pool", "0.40"),
    _party("INS", "insurer", "0.30", pays_first=True),
    _party("GUA", "guarantor", "0.20"),
))


def _loan(loss_base_fen, principal_fen=None, ip_share=None, before_fen=0):
    return LoanFacts(principal_fen if principal_fen is not None else loss_base_fen,
                     loss_base_fen, None if ip_share is None else D(ip_share), before_fen)


def _owed(split):
    return {share.party: share.owed_fen for share in split.shares} | {
        sharing.BANK: split.bank_retained_fen}


def test_rounding_example_tie_goes_to_the_party_listed_first():
    # DOMAIN.md 3: loss base 1,000,000.05 yuan; the last fen is a tie insurer/bank, insurer wins.
    split = split_claim(EXAMPLE_TERMS, _loan(100_000_005))
    assert _owed(split) == {"POOL": 40_000_002, "INS": 30_000_002, "GUA": 20_000_001,
                            sharing.BANK: 10_000_000}
    assert split.cuts == ()


def test_per_claim_cap_example_the_bank_bears_the_cut():
    # DOMAIN.md 3: a city layer of 0.25 capped at 500,000 per claim, covered 3,000,000.
    terms = Terms(parties=(_party("CITY", "pool", "0.25",
                                  caps=PartyCaps(per_claim_fen=500_000 * YUAN)),))
    split = split_claim(terms, _loan(3_000_000 * YUAN))
    assert _owed(split) == {"CITY": 500_000 * YUAN, sharing.BANK: 2_500_000 * YUAN}
    assert split.cuts == (sharing.Cut("CITY", "per_claim", 250_000 * YUAN),)


def test_ip_part_only_example():
    # DOMAIN.md 3: loan 4,000,000 with IP share 0.75, 2,000,000 outstanding: covered 1,500,000.
    terms = Terms(coverage=Coverage(ip_share="ip_part_only"), parties=EXAMPLE_TERMS.parties)
    split = split_claim(terms, _loan(2_000_000 * YUAN, 4_000_000 * YUAN, "0.75"))
    assert split.covered_fen == 1_500_000 * YUAN
    assert split.shares[0].owed_fen == 600_000 * YUAN
    assert split.bank_retained_fen == 2_000_000 * YUAN - 1_350_000 * YUAN


@pytest.mark.parametrize("coverage, ip_share, before_fen, covered_fen, reason", [
    (Coverage(require_stated_ip_share=True), None, 0, 0, sharing.NOT_COVERED_NO_IP_SHARE),
    (Coverage(require_stated_ip_share=True), "0.5", 0, 1_000_000, None),
    (Coverage(min_ip_share=D("0.6")), "0.5", 0, 0, sharing.NOT_COVERED_LOW_IP_SHARE),
    (Coverage(min_ip_share=D("0.6")), None, 0, 0, sharing.NOT_COVERED_LOW_IP_SHARE),
    (Coverage(min_ip_share=D("0.5")), "0.5", 0, 1_000_000, None),
    (Coverage(max_covered_principal_fen=400_000), None, 0, 400_000, None),
    (Coverage(max_covered_principal_per_borrower_year_fen=1_500_000), None, 800_000, 700_000, None),
    (Coverage(max_covered_principal_per_borrower_year_fen=1_500_000), None, 2_000_000, 0, None),
    (Coverage(ip_share="ip_part_only"), "0.333", 0, 333_000, None),
    (Coverage(ip_share="ip_part_only", max_covered_principal_fen=300_000), "0.5", 0, 300_000, None),
])
def test_covered_amount_table(coverage, ip_share, before_fen, covered_fen, reason):
    loan = _loan(1_000_000, ip_share=ip_share, before_fen=before_fen)
    assert sharing.covered_amount(coverage, loan) == (covered_fen, reason)


def test_ip_part_rounds_down():
    loan = _loan(1_001, ip_share="0.5")
    assert sharing.covered_amount(Coverage(ip_share="ip_part_only"), loan) == (500, None)


def test_tiered_ratio_by_original_principal():
    tiers = (ShareTier(1_000_000, D("0.5")), ShareTier(None, D("0.3")))
    terms = Terms(parties=(_party("POOL", "pool", "0.5", share_tiers=tiers),))
    small = split_claim(terms, _loan(100_000, principal_fen=1_000_000))
    large = split_claim(terms, _loan(100_000, principal_fen=1_000_001))
    assert small.shares[0].owed_fen == 50_000 and large.shares[0].owed_fen == 30_000


@pytest.mark.parametrize("caps, used, owed_fen, cap", [
    (PartyCaps(per_borrower_year_fen=500_000), CapsUsed(borrower_year_fen=300_000), 200_000,
     "per_borrower_year"),
    (PartyCaps(per_bank_year_fen=500_000), CapsUsed(bank_year_fen=600_000), 0, "per_bank_year"),
    (PartyCaps(per_program_year_fen=900_000), CapsUsed(program_year_fen=550_000), 350_000,
     "per_program_year"),
    # 0.10 x (covered principal 5,000,000 x ratio 0.4 = 2,000,000) = 200,000, less 50,000 owed.
    (PartyCaps(portfolio_cap_rate=D("0.10")),
     CapsUsed(portfolio_owed_fen=50_000, portfolio_weighted_principal=Fraction(2_000_000)),
     150_000, "portfolio"),
    (PartyCaps(fund_balance=True), CapsUsed(fund_balance_fen=300_000, fund_owed_unpaid_fen=250_000),
     50_000, "fund_balance"),
])
def test_each_cap_cuts_and_names_itself(caps, used, owed_fen, cap):
    terms = Terms(parties=(_party("P", "pool", "0.40", caps=caps),))
    split = split_claim(terms, _loan(1_000_000), [used])
    assert split.shares[0].rounded_fen == 400_000
    assert split.shares[0].owed_fen == owed_fen
    assert split.cuts == (sharing.Cut("P", cap, 400_000 - owed_fen),)
    assert split.bank_retained_fen == 1_000_000 - owed_fen


def test_caps_apply_in_order_each_cut_recorded_by_the_cap_that_made_it():
    caps = PartyCaps(per_claim_fen=300_000, per_borrower_year_fen=250_000, fund_balance=True)
    terms = Terms(parties=(_party("P", "pool", "0.40", caps=caps),))
    split = split_claim(terms, _loan(1_000_000), [CapsUsed(fund_balance_fen=100_000)])
    assert [(cut.cap, cut.fen) for cut in split.cuts] == [
        ("per_claim", 100_000), ("per_borrower_year", 50_000), ("fund_balance", 150_000)]
    assert split.shares[0].owed_fen == 100_000


def test_ineligible_loan_bank_bears_everything():
    terms = Terms(coverage=Coverage(require_stated_ip_share=True), parties=EXAMPLE_TERMS.parties)
    split = split_claim(terms, _loan(123_456))
    assert split.covered_fen == 0 and split.not_covered_reason == sharing.NOT_COVERED_NO_IP_SHARE
    assert split.bank_retained_fen == 123_456


def test_zero_loss_base():
    assert split_claim(EXAMPLE_TERMS, _loan(0)).bank_retained_fen == 0


def test_rules_apply_to_numpy_arrays():
    shares = numpy.array([100, 500, 900], dtype=numpy.int64)
    assert sharing.cap_cut_fen(shares, 500).tolist() == [0, 0, 400]
    assert sharing.allowance_fen(numpy.array([100, 700]), 500).tolist() == [0, 200]
    assert sharing.ip_part_fen(numpy.array([1_001, 2_000]), 3, 4).tolist() == [750, 1_500]
    assert sharing.fund_available_fen(numpy.array([10, 20]), numpy.array([15, 5])).tolist() == [
        0, 15]


# Recoveries


def test_recovery_pro_rata_to_what_each_bore_bank_included_with_redirect():
    borne = [("POOL", 400_000), ("INS", 300_000), (sharing.BANK, 300_000)]
    parts, surplus = split_recovery(100_001, borne, redirects={"POOL": "TREASURY"})
    assert [(p.party, p.recipient, p.fen) for p in parts] == [
        ("POOL", "TREASURY", 40_001), ("INS", "INS", 30_000), (sharing.BANK, sharing.BANK, 30_000)]
    assert surplus == 0


def test_recovery_never_more_than_borne_surplus_is_not_the_bearers():
    parts, surplus = split_recovery(1_500, [("A", 600), ("B", 400)], returned_before=[100, 0])
    assert [p.fen for p in parts] == [500, 400]
    assert surplus == 600


def test_recovery_redirects_from_terms():
    terms = Terms(parties=(_party("POOL", "pool", "0.4", recoveries_to="TREASURY"),
                           _party("INS", "insurer", "0.3")))
    assert sharing.recovery_redirects(terms) == {"POOL": "TREASURY"}


# Invariants

_ratio = st.integers(0, 100).map(lambda n: D(n) / 100)
_cap = st.one_of(st.none(), st.integers(0, 10**9))


@st.composite
def _terms_and_used(draw):
    count = draw(st.integers(0, 4))
    ratios, total = [], D(0)
    for _ in range(count):
        ratio = min(draw(_ratio), D(1) - total)
        ratios.append(ratio)
        total += ratio
    roles = ["pool", "insurer", "guarantor", "appraiser"]
    parties = tuple(
        _party(f"P{i}", roles[i], ratio,
               caps=PartyCaps(per_claim_fen=draw(_cap), per_borrower_year_fen=draw(_cap),
                              portfolio_cap_rate=draw(st.one_of(st.none(), _ratio)),
                              fund_balance=draw(st.booleans())))
        for i, ratio in enumerate(ratios))
    coverage = Coverage(ip_share=draw(st.sampled_from(["ip_part_only", "whole_loan"])),
                        max_covered_principal_fen=draw(_cap))
    used = [CapsUsed(borrower_year_fen=draw(st.integers(0, 10**9)),
                     portfolio_weighted_principal=Fraction(draw(st.integers(0, 10**10))),
                     fund_balance_fen=draw(st.integers(0, 10**9)))
            for _ in parties]
    return Terms(coverage=coverage, parties=parties), used


@settings(max_examples=300, deadline=None)
@given(_terms_and_used(), st.integers(0, 10**12), st.one_of(st.none(), _ratio))
def test_split_sums_to_loss_base_and_caps_only_cut(terms_used, loss_base_fen, ip_share):
    terms, used = terms_used
    split = split_claim(terms, LoanFacts(loss_base_fen, loss_base_fen, ip_share), used)
    assert sum(s.owed_fen for s in split.shares) + split.bank_retained_fen == loss_base_fen
    assert 0 <= split.covered_fen <= loss_base_fen
    for share in split.shares:
        assert 0 <= share.owed_fen <= share.rounded_fen
        cut = sum(c.fen for c in split.cuts if c.party == share.party)
        assert share.rounded_fen - share.owed_fen == cut
    # Rounding moves each share by less than one fen from the exact product.
    for share in split.shares:
        assert abs(share.rounded_fen - Fraction(split.covered_fen) * Fraction(share.ratio)) < 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**10), min_size=1, max_size=5),
       st.lists(st.integers(0, 10**10), min_size=1, max_size=4))
def test_recoveries_never_return_more_than_borne(borne_fen, recoveries_fen):
    borne = [(f"P{i}", fen) for i, fen in enumerate(borne_fen)]
    returned = [0] * len(borne)
    for net in recoveries_fen:
        parts, surplus = split_recovery(net, borne, returned)
        assert sum(p.fen for p in parts) + surplus == net and surplus >= 0
        returned = [r + p.fen for r, p in zip(returned, parts)]
        assert all(r <= fen for r, fen in zip(returned, borne_fen))
    if sum(recoveries_fen) >= sum(borne_fen):
        assert returned == borne_fen


# Claim order


def _claim(loss_fen, borrower="B1", bank="BANK1", year=2026, portfolio=()):
    return sharing.ClaimInput(_loan(loss_fen), borrower, bank, year, portfolio)


def test_borrower_year_cap_is_used_in_claim_order():
    terms = Terms(parties=(_party("P", "pool", "0.5",
                                  caps=PartyCaps(per_borrower_year_fen=600_000)),))
    first, second, other_year, other_borrower = sharing.split_claims_in_order(terms, [
        _claim(1_000_000), _claim(1_000_000), _claim(1_000_000, year=2027),
        _claim(1_000_000, borrower="B2")])
    assert first.shares[0].owed_fen == 500_000
    assert second.shares[0].owed_fen == 100_000
    assert second.cuts == (sharing.Cut("P", "per_borrower_year", 400_000),)
    assert other_year.shares[0].owed_fen == 500_000
    assert other_borrower.shares[0].owed_fen == 500_000


def test_bank_and_programme_year_caps_across_borrowers():
    caps = PartyCaps(per_bank_year_fen=700_000, per_program_year_fen=900_000)
    terms = Terms(parties=(_party("P", "pool", "0.5", caps=caps),))
    splits = sharing.split_claims_in_order(terms, [
        _claim(1_000_000, borrower="B1"), _claim(1_000_000, borrower="B2"),
        _claim(1_000_000, borrower="B3", bank="BANK2")])
    assert [s.shares[0].owed_fen for s in splits] == [500_000, 200_000, 200_000]
    assert [c.cap for c in splits[1].cuts] == ["per_bank_year"]
    assert [c.cap for c in splits[2].cuts] == ["per_program_year"]


def test_fund_balance_is_used_by_earlier_claims_first():
    terms = Terms(parties=(_party("P", "pool", "0.5", caps=PartyCaps(fund_balance=True)),))
    splits = sharing.split_claims_in_order(terms, [_claim(1_000_000), _claim(1_000_000)],
                                           {"P": 700_000})
    assert [s.shares[0].owed_fen for s in splits] == [500_000, 200_000]
    assert [s.bank_retained_fen for s in splits] == [500_000, 800_000]


def test_portfolio_cap_weights_covered_principal_by_the_party_ratio():
    tiers = (ShareTier(1_000_000, D("0.5")), ShareTier(None, D("0.25")))
    terms = Terms(parties=(_party("P", "pool", "0.5", share_tiers=tiers,
                                  caps=PartyCaps(portfolio_cap_rate=D("0.2"))),))
    # 0.2 x (1,000,000 x 0.5 + 2,000,000 x 0.25) = 200,000 across the claims.
    portfolio = ((1_000_000, 1_000_000), (2_000_000, 2_000_000))
    splits = sharing.split_claims_in_order(terms, [
        _claim(300_000, portfolio=portfolio), _claim(300_000, portfolio=portfolio)])
    assert [s.shares[0].owed_fen for s in splits] == [150_000, 50_000]
    assert [c.cap for c in splits[1].cuts] == ["portfolio"]


def test_borrower_year_principal_before_in_start_order():
    rows = [("B1", 2026, 1, 300), ("B2", 2026, 2, 50), ("B1", 2026, 3, 200), ("B1", 2027, 4, 9)]
    assert sharing.borrower_year_principal_before(rows) == [0, 0, 300, 0]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
       st.integers(0, 10**7), _ratio, _ratio,
       st.lists(st.tuples(st.integers(0, 10**7), st.sampled_from(["B1", "B2"]),
                          st.sampled_from(["K1", "K2"]), st.sampled_from([2025, 2026])),
                max_size=8))
def test_claims_in_order_never_exceed_a_shared_cap(borrower_cap, bank_cap, year_cap, fund_fen,
                                                   pool_ratio, insurer_ratio, rows):
    insurer_ratio = min(insurer_ratio, D(1) - pool_ratio)
    caps = PartyCaps(per_borrower_year_fen=borrower_cap, per_bank_year_fen=bank_cap,
                     per_program_year_fen=year_cap, fund_balance=True)
    terms = Terms(parties=(_party("POOL", "pool", pool_ratio, caps=caps),
                           _party("INS", "insurer", insurer_ratio)))
    claims = [_claim(loss, borrower, bank, year) for loss, borrower, bank, year in rows]
    splits = sharing.split_claims_in_order(terms, claims, {"POOL": fund_fen})
    totals: dict = {}
    for claim, split in zip(claims, splits):
        assert sum(s.owed_fen for s in split.shares) + split.bank_retained_fen == claim.loan.loss_base_fen
        pool = split.shares[0].owed_fen
        for key in [("b", claim.borrower, claim.year), ("k", claim.bank, claim.year),
                    ("y", claim.year), ("fund",)]:
            totals[key] = totals.get(key, 0) + pool
    for key, total in totals.items():
        limit = {"b": borrower_cap, "k": bank_cap, "y": year_cap, "fund": fund_fen}[key[0]]
        assert total <= limit


# Loss base and payments


@pytest.mark.parametrize("loss_base, expected_fen", [("principal", 1_000),
                                                     ("principal_and_interest", 1_070)])
def test_loss_base_adds_overdue_interest_only_where_the_terms_say_so(loss_base, expected_fen):
    assert sharing.loss_base_fen(Terms(loss_base=loss_base), 1_000, 70) == expected_fen


_SHARES = split_claim(EXAMPLE_TERMS, _loan(1_000_000)).shares  # pool 400k, insurer 300k first


@pytest.mark.parametrize("paid, party, amount_fen, refusal", [
    ({}, "INS", 300_000, None),
    ({}, "INS", 300_001, sharing.PAYMENT_OVERPAY),
    ({"INS": 100_000}, "INS", 200_001, sharing.PAYMENT_OVERPAY),
    ({}, "POOL", 1, sharing.PAYMENT_PAYS_FIRST_UNPAID),
    ({"INS": 299_999}, "POOL", 1, sharing.PAYMENT_PAYS_FIRST_UNPAID),
    ({"INS": 300_000}, "POOL", 400_000, None),
    ({"INS": 300_000, "POOL": 400_000}, "POOL", 1, sharing.PAYMENT_OVERPAY),
    ({}, "SOMEONE", 1, sharing.PAYMENT_NOT_A_PARTY),
    ({}, sharing.BANK, 1, sharing.PAYMENT_NOT_A_PARTY),
])
def test_payment_order_and_amount(paid, party, amount_fen, refusal):
    assert sharing.payment_refusal(_SHARES, paid, party, amount_fen) == refusal


def test_a_party_whose_share_was_capped_to_zero_owes_nothing_to_pay():
    terms = Terms(parties=(_party("P", "pool", "0.5", caps=PartyCaps(per_claim_fen=0)),))
    shares = split_claim(terms, _loan(1_000)).shares
    assert sharing.payment_refusal(shares, {}, "P", 1) == sharing.PAYMENT_NOT_A_PARTY


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**15), st.integers(0, 10**15), st.integers(1, 10**6)),
                min_size=1, max_size=20))
def test_numpy_arrays_get_the_same_fen_as_ints(rows):
    # Issue 12's simulation runs these rules on int64 arrays; they must agree with the int path.
    a, b, den = (numpy.array(column, dtype=numpy.int64) for column in zip(*rows))
    num = numpy.minimum(den, b % 10**6)  # a ratio num/den in [0, 1]; keeps a x num within int64
    small = a // 10**4
    assert sharing.cap_cut_fen(a, b).tolist() == [sharing.cap_cut_fen(int(x), int(y))
                                                  for x, y in zip(a, b)]
    assert sharing.allowance_fen(a, b).tolist() == [sharing.allowance_fen(int(x), int(y))
                                                    for x, y in zip(a, b)]
    assert sharing.ip_part_fen(small, num, den).tolist() == [
        sharing.ip_part_fen(int(x), int(n), int(d)) for x, n, d in zip(small, num, den)]


# Recoveries over time: the cumulative net is split, earlier returns subtracted (DOMAIN.md 4)


def test_several_recoveries_split_the_cumulative_net_so_rounding_never_drifts():
    borne = [("A", 1), ("B", 1), (sharing.BANK, 1)]
    returned = [0, 0, 0]
    for _ in range(2):  # two recoveries of 1 fen each: A, then B (never A twice)
        parts, _ = split_recovery(1, borne, returned)
        returned = [r + p.fen for r, p in zip(returned, parts)]
    assert returned == [1, 1, 0]
    assert [p.fen for p in split_recovery(2, borne)[0]] == returned  # as one recovery of 2 fen


def test_a_recovery_never_claws_back_a_rounding_fen_won_earlier():
    # Largest remainder is not monotone: 3 fen over (1, 3, 3) gives (1, 1, 1), 4 fen (0, 2, 2).
    borne = [("A", 1), ("B", 3), (sharing.BANK, 3)]
    first, _ = split_recovery(3, borne)
    assert [p.fen for p in first] == [1, 1, 1]
    second, surplus = split_recovery(1, borne, [1, 1, 1])
    assert [p.fen for p in second] == [0, 1, 0] and surplus == 0  # A keeps its fen; B gets this one


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=5).filter(lambda b: sum(b) > 0),
       st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_recoveries_sum_to_the_net_stay_within_borne_and_track_the_cumulative_split(borne_fen, nets):
    borne = [(f"P{i}", fen) for i, fen in enumerate(borne_fen)]
    returned, cumulative = [0] * len(borne), 0
    for net in nets:
        parts, surplus = split_recovery(net, borne, returned)
        assert all(p.fen >= 0 for p in parts)
        assert sum(p.fen for p in parts) + surplus == net
        returned = [r + p.fen for r, p in zip(returned, parts)]
        cumulative = min(cumulative + net, sum(borne_fen))
        assert sum(returned) == cumulative
        assert all(r <= fen for r, fen in zip(returned, borne_fen))
        exact = [Fraction(cumulative * fen, sum(borne_fen)) for fen in borne_fen]
        assert all(abs(r - e) < len(borne) for r, e in zip(returned, exact))  # never drifts
