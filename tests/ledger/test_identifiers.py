"""Tests for ledger.identifiers: check characters, canonical forms, region coverage.

The check-character references below are written again here from DOMAIN.md §1 on purpose, so a
slip in the module is not copied into the expected values.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import Invalid
from ledger.identifiers import (
    normalize_credit_code,
    normalize_patent_number,
    normalize_trademark,
    region_covers,
    region_prefix,
    validate_region,
)

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def reference_credit_check(body: str) -> str:
    check = 31 - sum(CHARSET.index(c) * w for c, w in zip(body, WEIGHTS)) % 31
    return "0" if check == 31 else CHARSET[check]


def reference_patent_check(digits: str) -> str:
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5][: len(digits)]
    check = sum(int(d) * w for d, w in zip(digits, weights)) % 11
    return "X" if check == 10 else str(check)


def field_errors(excinfo) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in excinfo.value.errors]


# --- credit code -----------------------------------------------------------------------------

credit_bodies = st.text(alphabet=CHARSET, min_size=17, max_size=17)


def test_domain_example_credit_code_is_valid():
    assert reference_credit_check("91350100M000100Y4") == "3"
    assert normalize_credit_code("91350100M000100Y43") == "91350100M000100Y43"


def test_credit_code_is_stripped_and_upper_cased():
    assert normalize_credit_code("  91350100m000100y43\n") == "91350100M000100Y43"


@pytest.mark.parametrize("code", ["", "91350100M000100Y4", "91350100M000100Y433"])
def test_credit_code_wrong_length(code):
    with pytest.raises(Invalid) as excinfo:
        normalize_credit_code(code)
    [(field, message)] = field_errors(excinfo)
    assert field == "credit_code"
    assert "18 characters" in message and f"got {len(code)}" in message


@pytest.mark.parametrize("bad", ["I", "O", "Z", "S", "V", "-", "é", "１"])
def test_credit_code_bad_character_names_position(bad):
    code = "91350100" + bad + "000100Y43"
    with pytest.raises(Invalid) as excinfo:
        normalize_credit_code(code)
    [(_, message)] = field_errors(excinfo)
    assert "position 9" in message


def test_credit_code_wrong_check_says_which():
    with pytest.raises(Invalid) as excinfo:
        normalize_credit_code("91350100M000100Y44", field="borrower.credit_code")
    [(field, message)] = field_errors(excinfo)
    assert field == "borrower.credit_code"
    assert "should be '3'" in message


@pytest.mark.parametrize("value", [None, 91350100, b"91350100M000100Y43"])
def test_credit_code_must_be_a_string(value):
    with pytest.raises(Invalid):
        normalize_credit_code(value)


def test_credit_code_check_31_is_written_zero():
    # Find a body whose weighted sum is 0 mod 31: the all-zero body.
    body = "0" * 17
    assert reference_credit_check(body) == "0"
    assert normalize_credit_code(body + "0") == body + "0"


@given(credit_bodies)
def test_generated_credit_code_round_trips(body):
    code = body + reference_credit_check(body)
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(code.lower()) == code


@given(credit_bodies, st.integers(0, 17), st.sampled_from(CHARSET))
def test_any_single_character_change_of_credit_code_is_rejected(body, position, replacement):
    code = body + reference_credit_check(body)
    if code[position] == replacement:
        replacement = CHARSET[(CHARSET.index(replacement) + 1) % len(CHARSET)]
    changed = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(Invalid):
        normalize_credit_code(changed)


# --- patent numbers --------------------------------------------------------------------------


def test_domain_example_patent_numbers_verify():
    assert reference_patent_check("201710601862") == "3"
    assert reference_patent_check("95115608") == "X"
    assert normalize_patent_number("ZL201710601862.3") == "ZL201710601862.3"
    assert normalize_patent_number("201710601862.3") == "ZL201710601862.3"
    assert normalize_patent_number("ZL95115608.X") == "ZL95115608.X"


@pytest.mark.parametrize(
    "spelling", ["zl95115608.x", " ZL95115608.X ", "95115608.x", "95115608.X"]
)
def test_patent_number_canonical_form(spelling):
    assert normalize_patent_number(spelling) == "ZL95115608.X"


@pytest.mark.parametrize(
    "number",
    [
        "",
        "ZL",
        "ZL201710601862",  # no dot
        "ZL201710601862.",  # no check
        "ZL201710601862.33",
        "ZL 201710601862.3",  # inner space
        "CN201710601862.3",
        "ZL201710601862-3",
        "ZL20171060186２.3",  # full-width digit
        "ZL201710601862.A",
    ],
)
def test_patent_number_bad_form(number):
    with pytest.raises(Invalid) as excinfo:
        normalize_patent_number(number)
    [(field, message)] = field_errors(excinfo)
    assert field == "number"
    assert "ZL201710601862.3" in message


@pytest.mark.parametrize("digits", ["1234567", "123456789", "12345678901", "1234567890123"])
def test_patent_number_wrong_digit_count(digits):
    number = f"{digits}.0"
    with pytest.raises(Invalid) as excinfo:
        normalize_patent_number(number, field="pledges[0].number")
    [(field, message)] = field_errors(excinfo)
    assert field == "pledges[0].number"
    assert f"got {len(digits)}" in message


def test_patent_number_wrong_check_says_which():
    with pytest.raises(Invalid) as excinfo:
        normalize_patent_number("ZL201710601862.4")
    [(_, message)] = field_errors(excinfo)
    assert "should be '3'" in message


patent_digits = st.one_of(
    st.text(alphabet="0123456789", min_size=12, max_size=12),
    st.text(alphabet="0123456789", min_size=8, max_size=8),
)


@given(patent_digits, st.booleans(), st.booleans())
def test_generated_patent_number_round_trips(digits, with_prefix, lower):
    number = ("ZL" if with_prefix else "") + digits + "." + reference_patent_check(digits)
    spelled = number.lower() if lower else number
    assert normalize_patent_number(spelled) == "ZL" + digits + "." + reference_patent_check(digits)


@given(patent_digits, st.data())
def test_any_single_character_change_of_patent_number_is_rejected(digits, data):
    check = reference_patent_check(digits)
    position = data.draw(st.integers(0, len(digits)))  # len(digits) means the check character
    if position == len(digits):
        other = data.draw(st.sampled_from([c for c in "0123456789X" if c != check]))
        changed = f"ZL{digits}.{other}"
    else:
        other = data.draw(st.sampled_from([d for d in "0123456789" if d != digits[position]]))
        changed = f"ZL{digits[:position]}{other}{digits[position + 1:]}.{check}"
    with pytest.raises(Invalid):
        normalize_patent_number(changed)


# --- trademarks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "nice_class", "expected"),
    [
        ("12345678", 9, ("12345678", 9)),
        ("1", 1, ("1", 1)),
        (" 345 ", 45, ("345", 45)),
    ],
)
def test_trademark_valid(number, nice_class, expected):
    assert normalize_trademark(number, nice_class) == expected


@pytest.mark.parametrize("number", ["", "123456789", "0", "01234", "12a4", "12 34", "１２", 12345])
def test_trademark_bad_number(number):
    with pytest.raises(Invalid) as excinfo:
        normalize_trademark(number, 9)
    [(field, _)] = field_errors(excinfo)
    assert field == "number"


@pytest.mark.parametrize("nice_class", [0, 46, -1, True, False, 9.0, "9", None])
def test_trademark_bad_nice_class(nice_class):
    with pytest.raises(Invalid) as excinfo:
        normalize_trademark("12345678", nice_class)
    [(field, message)] = field_errors(excinfo)
    assert field == "nice_class"
    assert "1 to 45" in message


def test_trademark_reports_both_fields_with_prefix():
    with pytest.raises(Invalid) as excinfo:
        normalize_trademark("", 0, field_prefix="pledges.1.")
    assert [field for field, _ in field_errors(excinfo)] == [
        "pledges.1.number",
        "pledges.1.nice_class",
    ]


@given(st.integers(1, 99_999_999), st.integers(1, 45))
def test_every_trademark_in_range_is_accepted(number, nice_class):
    assert normalize_trademark(str(number), nice_class) == (str(number), nice_class)


# --- regions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["000000", "440000", "440100", "440106", " 110101 "])
def test_validate_region_accepts(code):
    assert validate_region(code) == code.strip()


@pytest.mark.parametrize(
    "code", ["", "44010", "4401060", "44010a", "４40106", "000100", "001234", None, 440106]
)
def test_validate_region_rejects(code):
    with pytest.raises(Invalid) as excinfo:
        validate_region(code, field="institution.region")
    [(field, _)] = field_errors(excinfo)
    assert field == "institution.region"


@pytest.mark.parametrize(
    ("code", "prefix"),
    [("000000", ""), ("440000", "44"), ("440100", "4401"), ("440106", "440106")],
)
def test_region_prefix(code, prefix):
    assert region_prefix(code) == prefix


@pytest.mark.parametrize(
    ("parent", "child", "covered"),
    [
        ("000000", "000000", True),
        ("000000", "440106", True),
        ("000000", "110000", True),
        ("440000", "440000", True),
        ("440000", "440100", True),
        ("440000", "440106", True),
        ("440000", "450106", False),
        ("440000", "000000", False),
        ("440100", "440100", True),
        ("440100", "440106", True),
        ("440100", "440200", False),
        ("440100", "440000", False),
        ("440106", "440106", True),
        ("440106", "440107", False),
        ("440106", "440100", False),
    ],
)
def test_region_covers(parent, child, covered):
    assert region_covers(parent, child) is covered


region_codes = st.one_of(
    st.just("000000"),
    st.from_regex(r"[1-9][0-9]0000", fullmatch=True),
    st.from_regex(r"[1-9][0-9]{3}00", fullmatch=True),
    st.from_regex(r"[1-9][0-9]{5}", fullmatch=True),
)


def ancestors(code: str) -> set[str]:
    """The region itself, its city, its province and the country, by the code's structure."""
    return {code, code[:4] + "00", code[:2] + "0000", "000000"}


@given(region_codes, region_codes)
def test_region_covers_means_parent_is_an_ancestor(parent, child):
    assert region_covers(parent, child) == (parent in ancestors(child))


@given(region_codes, region_codes)
def test_region_covers_agrees_with_sql_like_prefix(parent, child):
    # The SQL filter `region LIKE prefix || '%'` must select exactly what region_covers says.
    with closing(sqlite3.connect(":memory:")) as connection:
        [(selected,)] = connection.execute(
            "SELECT ? LIKE ? || '%'", (child, region_prefix(parent))
        ).fetchall()
    assert bool(selected) == region_covers(parent, child)


@given(region_codes)
def test_region_covers_itself_and_country_covers_it(code):
    assert region_covers(code, code)
    assert region_covers("000000", code)
