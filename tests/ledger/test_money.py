from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from ledger.errors import Invalid
from ledger.money import MAX_FEN, allocate, apply_rate, format_yuan, parse_ratio, parse_yuan


@pytest.mark.parametrize("value, fen", [
    ("3200000.00", 320000000), ("15", 1500), (15, 1500), ("0.5", 50), ("0.05", 5),
    ("10000000000000", MAX_FEN), ("0", 0),
])
def test_parse_yuan_accepts_api_forms(value, fen):
    assert parse_yuan(value) == fen


@pytest.mark.parametrize("value", [
    1.5, "1.005", "-1.00", "1e3", " 1.00", "1,000.00", "", ".5", "1.", True, None, [], "10000000000000.01",
    10**13 + 1, "abc",
])
def test_parse_yuan_rejects(value):
    with pytest.raises(Invalid) as caught:
        parse_yuan(value, "principal")
    assert caught.value.errors[0].field == "principal"


def test_parse_yuan_negative_and_zero_rules():
    assert parse_yuan("-1.25", allow_negative=True) == -125
    with pytest.raises(Invalid):
        parse_yuan("0", allow_zero=False)


@given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
def test_format_and_parse_round_trip(fen):
    assert parse_yuan(format_yuan(fen), allow_negative=True) == fen
    assert format_yuan(fen).split(".")[1].__len__() == 2


def test_domain_example_split():
    # DOMAIN.md §3: pool 0.40, insurer 0.30, guarantor 0.20, bank the rest; loss 1,000,000.05.
    parts = allocate(100000005, [Decimal("0.40"), Decimal("0.30"), Decimal("0.20"), Decimal("0.10")])
    assert parts == [40000002, 30000002, 20000001, 10000000]


def test_allocate_tie_goes_to_first_listed():
    assert allocate(1, [1, 1]) == [1, 0]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]


def test_allocate_zero_weight_gets_nothing():
    assert allocate(10, [0, 1, 0]) == [0, 10, 0]


weights = st.lists(st.one_of(st.integers(0, 10**6),
                             st.decimals(min_value=0, max_value=1, places=4, allow_nan=False)),
                   min_size=1, max_size=12).filter(lambda ws: sum(ws) > 0)


@given(st.integers(-10**15, 10**15), weights)
def test_allocate_sums_exactly_and_stays_within_one_fen(total, ws):
    parts = allocate(total, ws)
    assert sum(parts) == total
    weight_sum = sum(Fraction(w) for w in ws)
    for part, w in zip(parts, ws):
        exact = total * Fraction(w) / weight_sum
        assert abs(part - exact) < 1
    assert allocate(total, ws) == parts  # deterministic


@given(st.integers(0, 10**15), weights)
def test_allocate_never_negative_for_positive_totals(total, ws):
    assert all(part >= 0 for part in allocate(total, ws))


@pytest.mark.parametrize("fen, rate, mode, expected", [
    (100, Decimal("0.005"), "ROUND_HALF_UP", 1), (100, Decimal("0.004"), "ROUND_HALF_UP", 0),
    (-3, Decimal("0.5"), "ROUND_HALF_UP", -2), (3, Decimal("0.5"), "ROUND_HALF_EVEN", 2),
    (10**15, Decimal("0.0385"), "ROUND_HALF_UP", 385 * 10**11),
])
def test_apply_rate_rounds_once_with_named_mode(fen, rate, mode, expected):
    assert apply_rate(fen, rate, mode) == expected


def test_parse_ratio():
    assert parse_ratio("0.0385", "annual_rate") == Decimal("0.0385")
    for bad in ("1.5e-2", "-0.1", 0.5, "0.123456789"):
        with pytest.raises(Invalid):
            parse_ratio(bad, "annual_rate")
    with pytest.raises(Invalid):
        parse_ratio("1.01", "share", high=Decimal(1))
