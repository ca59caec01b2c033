"""Money: integer fen inside, yuan strings at the edge, and the one way to split an amount.

Guarantees
- `parse_yuan` accepts exactly what API.md accepts (a decimal string of yuan with at most two
  decimals, or a JSON integer) and returns integer fen; everything else raises `Invalid`.
- `format_yuan` is its inverse on the two-decimal form: `format_yuan(parse_yuan(s))` has two decimals.
- `allocate(total_fen, weights)` returns integer parts that sum exactly to `total_fen`, each within
  one fen of its exact share, deterministically (largest remainder; ties to the earliest weight).
- `apply_rate` multiplies fen by a Decimal exactly, then rounds once with the mode named at the call.
No float ever touches an amount: floats are refused on input, ratios are `Decimal` or `Fraction`.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import Sequence, Union

from ledger.errors import Invalid

FEN_PER_YUAN = 100
# API.md: "beyond 10^13 yuan: 422". The bound is inclusive of 10^13 yuan itself.
MAX_YUAN = 10**13
MAX_FEN = MAX_YUAN * FEN_PER_YUAN

# re.ASCII and fullmatch: no full-width digits, no trailing newline ("$" matches before one).
_YUAN_RE = re.compile(r"(-)?(\d+)(?:\.(\d{1,2}))?", re.ASCII)
_RATIO_RE = re.compile(r"\d+(\.\d+)?", re.ASCII)

Weight = Union[int, Decimal, Fraction]


def parse_yuan(value: object, field: str = "amount", *, allow_negative: bool = False,
               allow_zero: bool = True) -> int:
    """Yuan (a decimal string with <= 2 decimals, or an int) -> integer fen.

    Refuses floats (`1.5` in JSON is ambiguous about exactness), bools, exponents, spaces,
    three decimals, negatives unless allowed, and magnitudes beyond 10^13 yuan.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Invalid.field(field, "must be a string of yuan such as \"1200.50\" or an integer")
    if isinstance(value, int):
        fen = value * FEN_PER_YUAN
    else:
        match = _YUAN_RE.fullmatch(value)
        if not match:
            raise Invalid.field(field, f"{value!r} is not an amount of yuan with at most two decimals")
        sign, whole, frac = match.groups()
        fen = int(whole) * FEN_PER_YUAN + int((frac or "").ljust(2, "0"))
        fen = -fen if sign else fen
    return check_fen(fen, field, allow_negative=allow_negative, allow_zero=allow_zero)


def check_fen(fen: int, field: str = "amount", *, allow_negative: bool = False,
              allow_zero: bool = True) -> int:
    """The range rules of `parse_yuan`, for amounts that arrive already in fen (an int, never a
    bool or a float: domain functions check what their callers pass, not only the API's fields)."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise Invalid.field(field, "must be an integer amount of fen")
    if abs(fen) > MAX_FEN:
        raise Invalid.field(field, "must not exceed 10^13 yuan")
    if fen < 0 and not allow_negative:
        raise Invalid.field(field, "must not be negative")
    if fen == 0 and not allow_zero:
        raise Invalid.field(field, "must be greater than zero")
    return fen


def format_yuan(fen: int) -> str:
    """Integer fen -> "1234.50" (always two decimals; a leading "-" for negatives)."""
    assert isinstance(fen, int) and not isinstance(fen, bool), f"fen must be int, got {fen!r}"
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{frac:02d}"


def parse_ratio(value: object, field: str, *, max_places: int = 8,
                low: Decimal = Decimal(0), high: Decimal | None = None) -> Decimal:
    """A rate or ratio given as a decimal string ("0.0385") -> Decimal, range-checked."""
    if not isinstance(value, str):
        raise Invalid.field(field, "must be a decimal string such as \"0.0385\"")
    if not _RATIO_RE.fullmatch(value):
        raise Invalid.field(field, f"{value!r} is not a non-negative decimal number")
    try:
        ratio = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise Invalid.field(field, f"{value!r} is not a decimal number") from None
    if -ratio.as_tuple().exponent > max_places:
        raise Invalid.field(field, f"at most {max_places} decimal places")
    if ratio < low or (high is not None and ratio > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise Invalid.field(field, f"must be within {bound}")
    return ratio


def apply_rate(fen: int, rate: Weight, rounding: str) -> int:
    """`fen * rate` rounded to whole fen once, with `rounding` (a `decimal` mode) named by the caller.

    Exact: the product is computed as a Fraction, so no intermediate rounding happens.
    """
    exact = Fraction(fen) * Fraction(rate)
    return round_fraction(exact, rounding)


def round_fraction(exact: Fraction, rounding: str) -> int:
    """Round an exact rational amount of fen to an int with a `decimal` rounding mode."""
    if exact.denominator == 1:
        return exact.numerator
    # 60 significant digits: fen amounts are < 10^16, so the quotient is exact far below 1 fen
    # and the rounding decision is the true one.
    with localcontext() as ctx:
        ctx.prec = 60
        quotient = Decimal(exact.numerator) / Decimal(exact.denominator)
        return int(quotient.quantize(Decimal(1), rounding=rounding))


def allocate(total_fen: int, weights: Sequence[Weight]) -> list[int]:
    """Split `total_fen` in proportion to `weights` by largest remainder.

    Rule: each part starts at floor(total * w / sum(w)); the fen left over go one each to the
    parts with the largest fractional remainders; a tie goes to the part listed first.
    Zero weights get zero. Negative totals are split as -(allocate(-total)).
    """
    assert isinstance(total_fen, int), "allocate works on integer fen"
    fractions = [Fraction(w) for w in weights]
    assert fractions and all(w >= 0 for w in fractions), "weights must be non-negative"
    weight_sum = sum(fractions)
    assert weight_sum > 0, "at least one weight must be positive"
    if total_fen < 0:
        return [-part for part in allocate(-total_fen, weights)]
    exact = [total_fen * w / weight_sum for w in fractions]
    parts = [int(share) for share in exact]  # floor: shares are non-negative
    left_fen = total_fen - sum(parts)
    # Largest remainder first; on equal remainders the earlier index wins (stable order).
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left_fen]:
        parts[i] += 1
    assert sum(parts) == total_fen, "allocation must sum to the total"
    return parts
