"""SME size classification (micro / small / medium / large) under versioned reference data.

Owns the question "what size class is this enterprise, under which standard, on this date".
The figures are not in code: each standard is a JSON file `ledger/reference/sme_*.json` (today
only `sme_miit_2011.json`, MIIT 工信部联企业〔2011〕300号, in force from 2011-06-18), so a
revision is a new data file with a later `effective_from`, not a code change.

Rule (the same for every standard): for the borrower's industry row, the class is
`large` if every large bound holds, else `medium` if every medium bound holds, else `small` if
every small bound holds, else `micro`. A bound is a minimum on employees (persons), operating
revenue or total assets; the file writes money in 万元 (10,000 yuan), the code compares in
integer fen (1 万元 = 1,000,000 fen). No floats anywhere.

Guarantees:
- `classify` is pure given the reference files (the only I/O is reading them once, cached) and
  names the standard it used, so a loan can freeze both the class and its source.
- Every loaded standard has exactly the industries in `INDUSTRIES`, each with large, medium and
  small tiers bounding the same variables, and bounds that never increase from large to medium to
  small; a file that breaks this fails loudly at load (a bug in shipped data, not a user error).
  Hence meeting a tier implies meeting every lower one, and more employees, revenue or assets
  never give a smaller class.
- Bad input (unknown industry, negative or non-integer figures, a date before any standard) is an
  `Invalid` naming the field.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ledger.errors import FieldError, Invalid
from ledger.dates import today as business_today

# Package data next to this module; Path(__file__) keeps it working without an installed dist.
REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_GLOB = "sme_*.json"

FEN_PER_WAN_YUAN = 1_000_000  # 万元 = 10,000 yuan = 1,000,000 fen

SIZE_CLASSES = ("micro", "small", "medium", "large")  # ascending
SME_CLASSES = frozenset({"micro", "small", "medium"})

# The industry vocabulary is part of the API contract, so it is fixed here and every standard
# file must define all of it: any industry a borrower can be registered under classifies under
# every standard.
INDUSTRIES = (
    "agriculture",
    "industry",
    "construction",
    "wholesale",
    "retail",
    "transport",
    "warehousing",
    "postal",
    "accommodation",
    "catering",
    "information_transmission",
    "software_it",
    "real_estate_development",
    "property_management",
    "leasing_business_services",
    "other",
)

_TIERS = ("large", "medium", "small")  # tested in this order; first match wins
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_BOUND_KEYS = ("employees_min", "revenue_min_wan_yuan", "total_assets_min_wan_yuan")


@dataclass(frozen=True)
class Threshold:
    """Lower bounds of one tier; all present bounds must hold. `None` means "not bounded"."""

    employees_min: int | None
    """Minimum number of employees (persons)."""
    revenue_min_fen: int | None
    """Minimum operating revenue, fen."""
    total_assets_min_fen: int | None
    """Minimum total assets, fen."""

    def met_by(self, employees: int, revenue_fen: int, total_assets_fen: int) -> bool:
        return (
            _at_least(employees, self.employees_min)
            and _at_least(revenue_fen, self.revenue_min_fen)
            and _at_least(total_assets_fen, self.total_assets_min_fen)
        )

    def bounds(self) -> tuple[int | None, int | None, int | None]:
        return (self.employees_min, self.revenue_min_fen, self.total_assets_min_fen)


@dataclass(frozen=True)
class IndustryRow:
    """One industry's tiers in one standard."""

    industry: str
    """Code from `INDUSTRIES`."""
    name_zh: str
    """The industry's name in the standard's text."""
    large: Threshold
    medium: Threshold
    small: Threshold

    def size_class(self, employees: int, revenue_fen: int, total_assets_fen: int) -> str:
        for tier in _TIERS:
            if getattr(self, tier).met_by(employees, revenue_fen, total_assets_fen):
                return tier
        return "micro"


@dataclass(frozen=True)
class Standard:
    """One published SME size standard, in force from `effective_from` until the next one."""

    code: str
    """Stable identifier recorded with every classification, e.g. `MIIT-2011-300`."""
    title: str
    effective_from: date
    rows: tuple[IndustryRow, ...]
    """One row per code in `INDUSTRIES`, in that order."""

    def row(self, industry: str) -> IndustryRow:
        for row in self.rows:
            if row.industry == industry:
                return row
        raise Invalid.field(
            "industry", f"unknown industry {industry!r}; must be one of: {', '.join(INDUSTRIES)}"
        )


@dataclass(frozen=True)
class Classification:
    """The outcome of `classify`, frozen on a loan at its date."""

    size_class: str
    """One of `SIZE_CLASSES`."""
    sme: bool
    """True for micro, small and medium."""
    standard: str
    """`Standard.code` the class was decided under."""


# ---------------------------------------------------------------------------------------------
# Classification


def classify(
    industry: str,
    employees: int,
    revenue_fen: int,
    total_assets_fen: int,
    on: date | None = None,
) -> Classification:
    """Size class of an enterprise under the standard in force `on` (default: today).

    Raises `Invalid` for an unknown industry, a negative or non-integer figure, or a date
    before the first standard.
    """
    _check_inputs(industry, employees, revenue_fen, total_assets_fen)
    standard = standard_in_force(business_today() if on is None else on)
    size_class = standard.row(industry).size_class(employees, revenue_fen, total_assets_fen)
    return Classification(
        size_class=size_class, sme=size_class in SME_CLASSES, standard=standard.code
    )


def standard_in_force(on: date) -> Standard:
    """The standard with the latest `effective_from` not after `on`; `Invalid` if none."""
    in_force = [standard for standard in load_standards() if standard.effective_from <= on]
    if not in_force:
        raise Invalid(f"no SME size standard is in force on {on.isoformat()}")
    return in_force[-1]  # load_standards() is sorted by effective_from


def _check_inputs(
    industry: str, employees: int, revenue_fen: int, total_assets_fen: int
) -> None:
    # Report every bad field at once so an integrator fixes the request in one round trip.
    errors = [
        error
        for error in (
            _industry_error(industry),
            _count_error("employees", employees),
            _count_error("revenue", revenue_fen),
            _count_error("total_assets", total_assets_fen),
        )
        if error is not None
    ]
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def _industry_error(industry: object) -> FieldError | None:
    if industry in INDUSTRIES:
        return None
    return FieldError(
        "industry", f"unknown industry {industry!r}; must be one of: {', '.join(INDUSTRIES)}"
    )


def _count_error(field: str, value: object) -> FieldError | None:
    # bool is an int subclass and float would bring rounding into a boundary comparison.
    if not isinstance(value, int) or isinstance(value, bool):
        return FieldError(field, "must be an integer")
    if value < 0:
        return FieldError(field, "must not be negative")
    return None


def _at_least(value: int, minimum: int | None) -> bool:
    return minimum is None or value >= minimum


# ---------------------------------------------------------------------------------------------
# Reference data


@functools.cache
def load_standards() -> tuple[Standard, ...]:
    """Every standard shipped in `ledger/reference/`, sorted by `effective_from` (read once)."""
    standards = read_standards(REFERENCE_DIR)
    _require(bool(standards), str(REFERENCE_DIR), f"no {REFERENCE_GLOB} file found")
    return standards


def read_standards(directory: Path) -> tuple[Standard, ...]:
    """Parse and check every `sme_*.json` in `directory`; uncached (tests point it elsewhere)."""
    standards = []
    for path in sorted(directory.glob(REFERENCE_GLOB)):
        with path.open(encoding="utf-8") as file:
            standards.append(parse_standard(json.load(file), source=path.name))
    standards.sort(key=lambda standard: standard.effective_from)
    _require_unique([s.code for s in standards], str(directory), "standard code")
    _require_unique([s.effective_from for s in standards], str(directory), "effective_from")
    return tuple(standards)


def parse_standard(document: dict, source: str) -> Standard:
    """Build a `Standard` from one decoded JSON document; `AssertionError` if it is malformed."""
    _require(isinstance(document, dict), source, "top level must be an object")
    code, title = document.get("code"), document.get("title")
    _require(isinstance(code, str) and code != "", source, "code must be a non-empty string")
    _require(isinstance(title, str), source, "title must be a string")
    effective_from = _parse_date(document.get("effective_from"), source)
    entries = document.get("industries")
    _require(isinstance(entries, list), source, "industries must be a list")
    rows = {}
    for entry in entries:
        row = _parse_row(entry, source)
        _require(row.industry not in rows, source, f"industry {row.industry!r} listed twice")
        rows[row.industry] = row
    missing = [industry for industry in INDUSTRIES if industry not in rows]
    _require(not missing, source, f"industries missing: {missing}")
    return Standard(
        code=code,
        title=title,
        effective_from=effective_from,
        rows=tuple(rows[industry] for industry in INDUSTRIES),
    )


def _parse_row(entry: object, source: str) -> IndustryRow:
    _require(isinstance(entry, dict), source, "each industry must be an object")
    industry = entry.get("industry")
    where = f"{source}: {industry}"
    _require(industry in INDUSTRIES, source, f"unknown industry {industry!r}")
    name_zh = entry.get("name_zh", "")
    _require(isinstance(name_zh, str), where, "name_zh must be a string")
    large, medium, small = (_parse_threshold(entry.get(tier), f"{where}.{tier}") for tier in _TIERS)
    _require_descending(large, medium, small, where)
    return IndustryRow(industry=industry, name_zh=name_zh, large=large, medium=medium, small=small)


def _parse_threshold(tier: object, where: str) -> Threshold:
    _require(isinstance(tier, dict) and tier != {}, where, "tier must be a non-empty object")
    unknown = set(tier) - set(_BOUND_KEYS)
    _require(not unknown, where, f"unknown bounds {sorted(unknown)}")
    for key, value in tier.items():
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            where,
            f"{key} must be a positive integer",
        )
    revenue_wan_yuan = tier.get("revenue_min_wan_yuan")
    total_assets_wan_yuan = tier.get("total_assets_min_wan_yuan")
    return Threshold(
        employees_min=tier.get("employees_min"),
        revenue_min_fen=None if revenue_wan_yuan is None else revenue_wan_yuan * FEN_PER_WAN_YUAN,
        total_assets_min_fen=(
            None if total_assets_wan_yuan is None else total_assets_wan_yuan * FEN_PER_WAN_YUAN
        ),
    )


def _require_descending(large: Threshold, medium: Threshold, small: Threshold, where: str) -> None:
    # Same variables in every tier and large >= medium >= small: otherwise a firm could meet a
    # higher tier but not a lower one, and "first tier met" would no longer be a size order.
    for high, low in ((large, medium), (medium, small)):
        for high_bound, low_bound in zip(high.bounds(), low.bounds()):
            _require(
                (high_bound is None) == (low_bound is None),
                where,
                "every tier must bound the same variables",
            )
            _require(
                high_bound is None or high_bound >= low_bound,
                where,
                "bounds must not increase from large to medium to small",
            )


def _parse_date(value: object, source: str) -> date:
    # Python 3.11's fromisoformat also takes forms like 20110618; the file format is YYYY-MM-DD.
    _require(
        isinstance(value, str) and _ISO_DATE_RE.fullmatch(value) is not None,
        source,
        f"effective_from {value!r} must be a YYYY-MM-DD string",
    )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AssertionError(
            f"SME reference data {source}: effective_from {value!r} is not a real date"
        ) from None


def _require_unique(values: list, where: str, what: str) -> None:
    _require(len(values) == len(set(values)), where, f"duplicate {what} across standards")


def _require(condition: bool, where: str, message: str) -> None:
    # Raised explicitly, not with `assert`, so `python -O` cannot skip checking shipped data.
    if not condition:
        raise AssertionError(f"SME reference data {where}: {message}")
