"""Identifiers: the official numbers that name borrowers, pledged IP and places.

Owns the form and check-character rules of
- the unified social credit code of an enterprise (GB 32100-2015),
- Chinese patent numbers (both the 12-digit form used since 2004 and the older 8-digit form),
- trademark registration numbers with their Nice class,
- 6-digit administrative region codes and which region covers which.

Guarantees:
- Every function is pure (no I/O, no clock, no database) and deterministic.
- A `normalize_*` function either returns the one canonical form of its input, so two spellings of
  the same identifier compare equal after normalisation, or raises `Invalid` naming the field and
  saying exactly what is wrong. It never returns something that fails its own check.
- Canonical forms:
  - credit code: 18 characters, upper case, no surrounding whitespace (`91350100M000100Y43`);
  - patent number: always with the `ZL` prefix, upper case, check `X` upper case
    (`ZL201710601862.3`, `ZL95115608.X`); a bare `201710601862.3` gains the prefix;
  - trademark number: 1-8 ASCII digits without leading zeros (`12345678`), with an `int` class;
  - region: 6 ASCII digits (`440106`).
- `region_covers(p, c)` is true exactly when `c` starts with `region_prefix(p)`, so a Python check
  and an SQL filter `region LIKE prefix || '%'` always agree.
"""
from __future__ import annotations

import re

from ledger.errors import FieldError, Invalid

# ---------------------------------------------------------------------------------------------
# Unified social credit code (GB 32100-2015)

# Value of each character is its index. I, O, Z, S and V are left out by the standard because
# they are easily confused with 1, 0, 2, 5 and U.
CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
CREDIT_CODE_LENGTH = 18
_CREDIT_CODE_MODULUS = 31
_CREDIT_CODE_VALUE = {char: value for value, char in enumerate(CREDIT_CODE_CHARSET)}


def credit_code_check_char(body: str) -> str:
    """Check character for the first 17 characters `body` (already upper case, valid charset)."""
    assert len(body) == CREDIT_CODE_LENGTH - 1, body
    weighted_sum = sum(
        _CREDIT_CODE_VALUE[char] * weight for char, weight in zip(body, CREDIT_CODE_WEIGHTS)
    )
    # 31 - (sum mod 31) lies in 1..31; the standard writes 31 as '0', hence the second mod.
    check_value = (_CREDIT_CODE_MODULUS - weighted_sum % _CREDIT_CODE_MODULUS) % _CREDIT_CODE_MODULUS
    return CREDIT_CODE_CHARSET[check_value]


def normalize_credit_code(code: str, field: str = "credit_code") -> str:
    """Return the canonical credit code (stripped, upper case) or raise `Invalid` on `field`."""
    text = _require_str(code, field).strip().upper()
    if len(text) != CREDIT_CODE_LENGTH:
        raise Invalid.field(
            field, f"must be {CREDIT_CODE_LENGTH} characters, got {len(text)}"
        )
    for position, char in enumerate(text, start=1):
        if char not in _CREDIT_CODE_VALUE:
            raise Invalid.field(
                field,
                f"bad character {char!r} at position {position}: allowed are 0-9 and A-Y "
                "except I, O, S, V, Z",
            )
    expected = credit_code_check_char(text[:-1])
    if text[-1] != expected:
        raise Invalid.field(
            field, f"check character should be {expected!r}, got {text[-1]!r}"
        )
    return text


# ---------------------------------------------------------------------------------------------
# Patent numbers (CNIPA application / patent numbers)

PATENT_PREFIX = "ZL"
# Since 2004: 4-digit year, 1-digit type, 7-digit serial. Before: 2-digit year, type, 5-digit serial.
PATENT_WEIGHTS_12 = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
PATENT_WEIGHTS_8 = (2, 3, 4, 5, 6, 7, 8, 9)
_PATENT_WEIGHTS_BY_LENGTH = {12: PATENT_WEIGHTS_12, 8: PATENT_WEIGHTS_8}
_PATENT_MODULUS = 11
_PATENT_RE = re.compile(r"(?:ZL)?([0-9]+)\.([0-9X])", re.ASCII)


def patent_check_char(digits: str) -> str:
    """Check character for 8 or 12 ASCII `digits`: weighted sum mod 11, 10 written 'X'."""
    weights = _PATENT_WEIGHTS_BY_LENGTH[len(digits)]
    check_value = sum(int(digit) * weight for digit, weight in zip(digits, weights)) % _PATENT_MODULUS
    return "X" if check_value == 10 else str(check_value)


def normalize_patent_number(number: str, field: str = "number") -> str:
    """Return `ZL<digits>.<check>` for a valid patent number or raise `Invalid` on `field`.

    Accepts the `ZL` prefix or none, any letter case and surrounding whitespace; nothing else
    (no inner spaces, no `CN` prefix), so that what is stored is what the registry prints.
    """
    text = _require_str(number, field).strip().upper()
    match = _PATENT_RE.fullmatch(text)
    if match is None:
        raise Invalid.field(
            field,
            "must look like ZL201710601862.3 or 201710601862.3 "
            "(optional ZL, 12 or 8 digits, a dot, a check character 0-9 or X)",
        )
    digits, check = match.groups()
    if len(digits) not in _PATENT_WEIGHTS_BY_LENGTH:
        raise Invalid.field(
            field, f"must have 12 digits (8 before 2004) before the dot, got {len(digits)}"
        )
    expected = patent_check_char(digits)
    if check != expected:
        raise Invalid.field(field, f"check character should be {expected!r}, got {check!r}")
    return f"{PATENT_PREFIX}{digits}.{check}"


# ---------------------------------------------------------------------------------------------
# Trademarks

TRADEMARK_NUMBER_MAX_DIGITS = 8
NICE_CLASS_MIN = 1
NICE_CLASS_MAX = 45
# No leading zero: registration numbers are plain counters, and allowing "0012345" would let the
# same registration be stored under two spellings.
_TRADEMARK_RE = re.compile(r"[1-9][0-9]{0,7}", re.ASCII)


def normalize_trademark(
    number: str, nice_class: int, field_prefix: str = ""
) -> tuple[str, int]:
    """Return `(number, nice_class)` canonical, or raise `Invalid` listing every bad field.

    Fields are reported as `<field_prefix>number` and `<field_prefix>nice_class`, so a caller
    validating `pledges[3]` passes `field_prefix="pledges[3]."`.
    """
    errors = []
    number_field = f"{field_prefix}number"
    class_field = f"{field_prefix}nice_class"
    if not isinstance(number, str):
        errors.append(FieldError(number_field, "must be a string of digits"))
    else:
        number = number.strip()
        if _TRADEMARK_RE.fullmatch(number) is None:
            errors.append(
                FieldError(
                    number_field,
                    f"must be 1 to {TRADEMARK_NUMBER_MAX_DIGITS} digits without a leading zero",
                )
            )
    # bool is a subclass of int; `true` as a class number is a client bug, not class 1.
    if (
        not isinstance(nice_class, int)
        or isinstance(nice_class, bool)
        or not NICE_CLASS_MIN <= nice_class <= NICE_CLASS_MAX
    ):
        errors.append(
            FieldError(
                class_field, f"must be an integer Nice class {NICE_CLASS_MIN} to {NICE_CLASS_MAX}"
            )
        )
    if errors:
        detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
        raise Invalid(detail, errors)
    return number, nice_class


# ---------------------------------------------------------------------------------------------
# Administrative regions (GB/T 2260 style 6-digit codes)

REGION_COUNTRY = "000000"
_REGION_RE = re.compile(r"[0-9]{6}", re.ASCII)


def validate_region(code: str, field: str = "region") -> str:
    """Return the stripped 6-digit region code, or raise `Invalid` on `field`.

    Beyond the form, a code whose province part is `00` must be the country code `000000`:
    anything else there names no place and would have no sensible coverage.
    """
    text = _require_str(code, field).strip()
    if _REGION_RE.fullmatch(text) is None:
        raise Invalid.field(field, "must be a 6-digit administrative code such as 440106")
    if text.startswith("00") and text != REGION_COUNTRY:
        raise Invalid.field(field, "province part 00 is only valid as the country code 000000")
    return text


def region_prefix(code: str) -> str:
    """The prefix every region under `code` starts with ('' for the country).

    `000000` -> '', `440000` (province) -> '44', `440100` (city) -> '4401', a district -> itself.
    """
    code = validate_region(code)
    if code == REGION_COUNTRY:
        return ""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def region_covers(parent: str, child: str) -> bool:
    """True when `child` is `parent` or lies inside it (the country covers everything)."""
    return validate_region(child, "child").startswith(region_prefix(parent))


# ---------------------------------------------------------------------------------------------


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise Invalid.field(field, "must be a string")
    return value
