"""Targets (DOMAIN.md §6): a region's yearly pledge-financing figures, their growth, and the
checks of a target set.

Every figure is an integer (fen or a count) aggregated by the database; every ratio is an exact
`Fraction` of two of them, rendered as a decimal string only at the edge (`ratio_text`), and
every check compares the exact fraction, never a rounded string: 20.00% growth does not pass
"> 20%", 30.00% passes ">= 30%".

Rules, by name:
- a loan belongs to the year of its earliest pledge registration (`registration` basis, the
  default) or of its start date (`start`), and to its borrower's region frozen on the loan; a
  province or city code includes its districts (`ledger.identifiers.region_prefix`);
- `count` counts projects (a mixed pledge is one loan), `pledge_count` registrations (a loan
  with two patents and a trademark has three);
- `sme_count`: loans to private SMEs (both facts frozen on the loan); the SME shares divide it
  (and its principal) by all loans; `inclusive_share_count`: loans under 10 million yuan;
- enterprises are distinct credit codes (one enterprise across banks' customer files); an
  enterprise is an SME enterprise of the year if any of its loans that year froze it as an SME;
- growth = this year / last year - 1, `None` (undefined, not infinite) when last year is zero.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction

from decimal import Decimal

import itertools

from sqlalchemy import Connection, String, and_, case, extract, func, insert, literal, select, tuple_

from ledger.db import utcnow
from ledger.errors import Conflict, Invalid
from ledger.fields import Choice, Code, Objects, Ratio, RequestSchema
from ledger.identifiers import REGION_COUNTRY, region_prefix
from ledger.journal import Actor
from ledger.schema import TARGET_COMPARATORS as COMPARATORS
from ledger.schema import (borrowers, loans, pledges, target_set_checks, target_sets, target_snapshot_runs,
                           target_snapshots)

BASES = ("registration", "start")
INCLUSIVE_LIMIT_FEN = 10_000_000_00  # "loans under 10 million yuan"
RATIO_PLACES = 6  # decimal places of a rendered ratio (API.md: exact to at least 4)
GROWTH_METRICS = ("amount", "count", "pledge_count", "insured_amount", "enterprise_count",
                  "sme_enterprise_count")
SHARE_METRICS = ("sme_share_count", "sme_share_amount", "inclusive_share_count")
CHECK_METRICS = tuple(f"{name}_growth" for name in GROWTH_METRICS) + SHARE_METRICS
MAX_CHECKS = 20
MAX_SERIES_YEARS = 50  # one series request: bounded work per call


@dataclass(frozen=True)
class YearFigures:
    """One region-year's integers; every share and growth is derived from these."""

    amount_fen: int = 0
    count: int = 0
    pledge_count: int = 0
    insured_amount_fen: int = 0
    enterprise_count: int = 0
    sme_enterprise_count: int = 0
    sme_count: int = 0
    sme_amount_fen: int = 0
    inclusive_count: int = 0

    def metric(self, name: str) -> int:
        """A growth metric's integer by its API name (`amount`, `insured_amount`: fen)."""
        return getattr(self, f"{name}_fen" if name in ("amount", "insured_amount") else name)

    @property
    def shares(self) -> dict[str, Fraction | None]:
        return {"sme_share_count": share(self.sme_count, self.count),
                "sme_share_amount": share(self.sme_amount_fen, self.amount_fen),
                "inclusive_share_count": share(self.inclusive_count, self.count)}


@dataclass(frozen=True)
class Check:
    metric: str
    comparator: str
    threshold: Fraction

    def passes(self, value: Fraction | None) -> bool:
        """Exactly as written; an undefined value (growth from zero) passes nothing."""
        if value is None:
            return False
        return value > self.threshold if self.comparator == ">" else value >= self.threshold


@dataclass(frozen=True)
class TargetSet:
    code: str
    checks: tuple[Check, ...]


def share(part: int, whole: int) -> Fraction | None:
    return None if whole == 0 else Fraction(part, whole)


def growth(this_year: int, last_year: int) -> Fraction | None:
    """This year / last year - 1; undefined (None), not infinite, when last year is zero."""
    return None if last_year == 0 else Fraction(this_year, last_year) - 1


def ratio_text(value: Fraction | None, places: int = RATIO_PLACES) -> str | None:
    """A ratio as a decimal string, half up at `places` (display only: checks use the fraction)."""
    if value is None:
        return None
    scaled = abs(value) * 10**places
    units = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    sign = "-" if value < 0 and units else ""
    return f"{sign}{units // 10**places}.{units % 10**places:0{places}d}"


def check_results(target_set: TargetSet, figures: YearFigures, previous: YearFigures) -> list[dict]:
    values = metric_values(figures, previous)
    return [{"metric": c.metric, "comparator": c.comparator, "threshold": c.threshold,
             "value": values[c.metric], "pass": c.passes(values[c.metric])} for c in target_set.checks]


def metric_values(figures: YearFigures, previous: YearFigures) -> dict[str, Fraction | None]:
    values = {f"{name}_growth": growth(figures.metric(name), previous.metric(name)) for name in GROWTH_METRICS}
    values.update(figures.shares)
    return values


# --- target sets: data (seeded with DOMAIN.md §6's three by migration 0008) --------------------

class CheckIn(RequestSchema):
    metric = Choice(CHECK_METRICS, required=True)
    comparator = Choice(COMPARATORS, required=True, metadata={
        "description": "'>' for \"exceed\" (strictly greater), '>=' for \"or more\""})
    threshold = Ratio(required=True, max_places=4, high=Decimal(100), metadata={
        "example": "0.20", "description": "a decimal: 0.20 is 20%"})


class TargetSetIn(RequestSchema):
    """`POST /v1/target-sets`: a new policy under a new code (sets are never changed)."""

    code = Code(required=True, metadata={"example": "guangdong-2026"})
    checks = Objects(CheckIn, min_items=1, max_items=MAX_CHECKS, required=True)


def target_sets_in(conn: Connection) -> list[TargetSet]:
    rows = conn.execute(select(target_set_checks).order_by(target_set_checks.c.target_set_code,
                                                          target_set_checks.c.position)).all()
    codes = conn.execute(select(target_sets.c.code).order_by(target_sets.c.code)).scalars().all()
    checks: dict[str, list[Check]] = {code: [] for code in codes}
    for row in rows:
        checks[row.target_set_code].append(Check(row.metric, row.comparator, Fraction(row.threshold)))
    return [TargetSet(code, tuple(checks[code])) for code in codes]


def target_set(conn: Connection, code: str) -> TargetSet:
    found = [t for t in target_sets_in(conn) if t.code == code]
    if not found:
        raise Invalid.field("target_set", f"unknown target set {code!r}: GET /v1/target-sets lists them")
    return found[0]


def create_target_set(conn: Connection, code: str, checks: list[dict], actor: Actor) -> TargetSet:
    if conn.execute(select(target_sets.c.code).where(target_sets.c.code == code)).first():
        raise Conflict(f"target set {code} already exists; target sets never change: use a new code")
    conn.execute(insert(target_sets).values(code=code, created_at=utcnow(), created_by_key_id=actor.key_id))
    conn.execute(insert(target_set_checks), [
        {"target_set_code": code, "position": n, "metric": c["metric"], "comparator": c["comparator"],
         "threshold": format(c["threshold"], "f")} for n, c in enumerate(checks)])
    return target_set(conn, code)


# --- the database aggregates -------------------------------------------------------------------

def yearly_figures(conn: Connection, region: str, first_year: int, last_year: int,
                   basis: str = "registration") -> dict[int, YearFigures]:
    """Every year from `first_year` to `last_year` (inclusive) for `region` and its districts,
    years without loans included (all zero), in two GROUP BY queries."""
    if basis not in BASES:
        raise Invalid.field("basis", f"must be one of {', '.join(BASES)}")
    per_loan = _loans_with_year(region, basis)
    totals = {int(row.year): row for row in conn.execute(_loan_totals(per_loan))}
    people = {int(row.year): row for row in conn.execute(_enterprise_totals(per_loan))}
    return {year: _figures(totals.get(year), people.get(year)) for year in range(first_year, last_year + 1)}


def figures_with_previous(conn: Connection, region: str, year: int,
                          basis: str = "registration") -> tuple[YearFigures, YearFigures]:
    series = yearly_figures(conn, region, year - 1, year, basis)
    return series[year], series[year - 1]


def all_series(conn: Connection, first_year: int, last_year: int,
               basis: str = "registration") -> dict[str, dict[int, YearFigures]]:
    """`yearly_figures` of every region with loans (each district with loans, its city, its
    province, the country) in one pass over the loans, grouped per region level: GROUPING SETS
    on PostgreSQL, one query per level on SQLite. Enterprises are counted distinct in each group:
    distinct counts do not add up across regions (one enterprise can borrow in two districts)."""
    if basis not in BASES:
        raise Invalid.field("basis", f"must be one of {', '.join(BASES)}")
    per_loan = _loans_with_year(REGION_COUNTRY, basis)
    keys = {length: _region_key(per_loan.c.borrower_region, length) for length in REGION_LEVELS}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_level_totals(per_loan, [keys[n] for n in REGION_LEVELS[1:]], grouping_sets=True))
    else:
        rows = itertools.chain.from_iterable(conn.execute(_level_totals(per_loan, [keys[n]])) for n in REGION_LEVELS)
    found: dict[str, dict[int, YearFigures]] = {}
    for row in rows:
        length, code = _row_region(row)
        # A loan lent in a city's own code (440100) lands in its city's group, not a district's.
        if len(region_prefix(code)) == length:
            found.setdefault(code, {})[int(row.year)] = _figures(row, row)
    return {code: {year: years.get(year, YearFigures()) for year in range(first_year, last_year + 1)}
            for code, years in sorted(found.items())}


REGION_LEVELS = (0, 2, 4, 6)  # region prefix lengths: the country, a province, a city, a district


def _region_key(region, length: int):
    """The code of the level-`length` region a district code lies in (`440106` -> `440100`)."""
    if length == 0:
        return literal(REGION_COUNTRY, String).label("key0")
    if length == 6:
        return region.label("key6")
    return func.substr(region, 1, length, type_=String).concat("0" * (6 - length)).label(f"key{length}")


def _level_totals(per_loan, keys: list, grouping_sets: bool = False):
    """Every figure per (region key, year): one GROUP BY per key, or on PostgreSQL one query whose
    grouping sets are (year), (year, province), (year, city), (year, district)."""
    query = _loan_totals(per_loan).add_columns(*_enterprise_counts(per_loan), *keys)
    if not grouping_sets:
        return query.group_by(*keys)
    return query.group_by(None).group_by(func.grouping_sets(
        tuple_(per_loan.c.year), *[tuple_(per_loan.c.year, key) for key in keys]))


def _row_region(row) -> tuple[int, str]:
    """(prefix length, code) of a grouped row: the finest key it holds (a grouping set leaves the
    keys it does not group by NULL; a key is never NULL otherwise: borrower_region is NOT NULL)."""
    for length in reversed(REGION_LEVELS):
        code = getattr(row, f"key{length}", None)
        if code is not None:
            return length, code
    return 0, REGION_COUNTRY


def _loans_with_year(region: str, basis: str):
    """One row per loan of the region: its id, year, borrower and frozen facts, pledge count."""
    per_pledge = (select(pledges.c.loan_id, func.min(pledges.c.registered_on).label("first_registered"),
                         func.count().label("pledge_count"))
                  .group_by(pledges.c.loan_id).subquery())
    day = per_pledge.c.first_registered if basis == "registration" else loans.c.start_date
    query = (select(loans.c.id, extract("year", day).label("year"), loans.c.principal_fen,
                    loans.c.insured_amount_fen, loans.c.borrower_sme, loans.c.borrower_private,
                    loans.c.borrower_region, borrowers.c.credit_code, per_pledge.c.pledge_count)
             .join(per_pledge, per_pledge.c.loan_id == loans.c.id)
             .join(borrowers, borrowers.c.id == loans.c.borrower_id))
    prefix = region_prefix(region)
    if prefix:
        query = query.where(loans.c.borrower_region.startswith(prefix, autoescape=True))
    return query.subquery()


def _loan_totals(per_loan):
    private_sme = and_(per_loan.c.borrower_sme, per_loan.c.borrower_private)
    return (select(per_loan.c.year, func.sum(per_loan.c.principal_fen).label("amount_fen"),
                   func.count().label("count"), func.sum(per_loan.c.pledge_count).label("pledge_count"),
                   func.sum(func.coalesce(per_loan.c.insured_amount_fen, 0)).label("insured_amount_fen"),
                   func.sum(case((private_sme, 1), else_=0)).label("sme_count"),
                   func.sum(case((private_sme, per_loan.c.principal_fen), else_=0)).label("sme_amount_fen"),
                   func.sum(case((per_loan.c.principal_fen < INCLUSIVE_LIMIT_FEN, 1), else_=0))
                   .label("inclusive_count"))
            .group_by(per_loan.c.year))


def _enterprise_totals(per_loan):
    return select(per_loan.c.year, *_enterprise_counts(per_loan)).group_by(per_loan.c.year)


def _enterprise_counts(per_loan) -> list:
    sme_code = case((per_loan.c.borrower_sme, per_loan.c.credit_code), else_=None)
    return [func.count(per_loan.c.credit_code.distinct()).label("enterprise_count"),
            func.count(sme_code.distinct()).label("sme_enterprise_count")]


def _figures(totals, people) -> YearFigures:
    if totals is None:
        return YearFigures()
    names = [f.name for f in fields(YearFigures)]
    values = {name: int(getattr(totals, name)) for name in names if hasattr(totals, name)}
    values.update(enterprise_count=int(people.enterprise_count),
                  sme_enterprise_count=int(people.sme_enterprise_count))
    return YearFigures(**values)


# --- snapshots (nightly, `ipledger targets compute`) ------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    run_id: int
    taken_at: object  # datetime (UTC)
    rows: int


def regions_with_loans(conn: Connection) -> list[str]:
    """Every region a figure is asked for: each district with loans, its city, its province and
    the country."""
    districts = conn.execute(select(loans.c.borrower_region).distinct()).scalars().all()
    levels = {REGION_COUNTRY}
    for code in districts:
        levels.update({code, code[:4] + "00", code[:2] + "0000"})
    return sorted(levels)


def loan_years(conn: Connection) -> tuple[int, int] | None:
    """The first and last year any loan counts in, on either basis (None without loans)."""
    first_start, last_start = conn.execute(select(func.min(loans.c.start_date), func.max(loans.c.start_date))).one()
    first_reg, last_reg = conn.execute(select(func.min(pledges.c.registered_on), func.max(pledges.c.registered_on))).one()
    if first_start is None:
        return None
    return min(first_start, first_reg).year, max(last_start, last_reg).year


def take_snapshot(conn: Connection) -> Snapshot:
    """Store every region's figures for every year with loans (and the year after the last, so
    its growth has a base), on both bases, as one snapshot run."""
    years = loan_years(conn)
    rows = []
    if years is not None:
        regions = regions_with_loans(conn)
        for basis in BASES:
            series = all_series(conn, years[0], years[1], basis)
            empty = dict.fromkeys(range(years[0], years[1] + 1), YearFigures())
            for region in regions:
                for year, figures in series.get(region, empty).items():
                    rows.append({"region": region, "year": year, "basis": basis,
                                 **{f.name: getattr(figures, f.name) for f in fields(YearFigures)}})
    taken_at = utcnow()
    run_id = conn.execute(insert(target_snapshot_runs).values(taken_at=taken_at, rows=len(rows))).inserted_primary_key[0]
    if rows:
        conn.execute(insert(target_snapshots), [{"run_id": run_id, **row} for row in rows])
    return Snapshot(run_id, taken_at, len(rows))


def latest_snapshot(conn: Connection) -> Snapshot | None:
    row = conn.execute(select(target_snapshot_runs).order_by(target_snapshot_runs.c.id.desc()).limit(1)).first()
    return None if row is None else Snapshot(row.id, row.taken_at, row.rows)


def snapshot_series(conn: Connection, snapshot: Snapshot, basis: str = "registration") -> dict[str, dict[int, YearFigures]]:
    """Every region's yearly figures as `snapshot` holds them: what `all_series` computes, read
    back in one indexed range of its rows (a picture of every region at once, in milliseconds;
    computing afresh scans every loan and pledge)."""
    rows = conn.execute(select(target_snapshots).where(
        target_snapshots.c.run_id == snapshot.run_id, target_snapshots.c.basis == basis))
    found: dict[str, dict[int, YearFigures]] = {}
    for row in rows:
        found.setdefault(row.region, {})[row.year] = _held_figures(row)
    return {region: dict(sorted(years.items())) for region, years in sorted(found.items())}


def _held_figures(row) -> YearFigures:
    return YearFigures(**{f.name: int(getattr(row, f.name)) for f in fields(YearFigures)})


def snapshot_figures(conn: Connection, snapshot: Snapshot, region: str, year: int,
                     basis: str) -> tuple[YearFigures, YearFigures] | None:
    """The region-year and the year before from `snapshot`; None when it does not hold them
    (a region without loans then, or a year outside the book): the caller computes afresh."""
    found = {row.year: _held_figures(row) for row in conn.execute(select(target_snapshots).where(
                 target_snapshots.c.run_id == snapshot.run_id, target_snapshots.c.region == region,
                 target_snapshots.c.basis == basis, target_snapshots.c.year.in_([year - 1, year])))}
    if year not in found:
        return None
    return found[year], found.get(year - 1, YearFigures())


def answer(conn: Connection, region: str, year: int, basis: str = "registration", *,
           fresh: bool = False) -> tuple[YearFigures, YearFigures, object]:
    """A region-year and the year before, from the latest snapshot (with its `taken_at`) unless
    `fresh`, or when the snapshot does not hold them; computed now then (`taken_at` None)."""
    snapshot = None if fresh else latest_snapshot(conn)
    held = snapshot and snapshot_figures(conn, snapshot, region, year, basis)
    if held:
        return (*held, snapshot.taken_at)
    return (*figures_with_previous(conn, region, year, basis), None)


def series_answer(conn: Connection, region: str, first_year: int, last_year: int,
                  basis: str = "registration", *, fresh: bool = False) -> tuple[dict[int, YearFigures], object]:
    """A region's yearly figures from `first_year - 1` (the base of the first growth) to
    `last_year`: from the latest snapshot (with its `taken_at`) when it holds the region up to
    `last_year`, else computed now (`taken_at` None). A snapshot holds every year of the book
    for each region with loans, so a year before its first had no loans: zero. Computing afresh
    scans the region's loans and pledges (minutes on a book of millions): pages read the snapshot."""
    snapshot = None if fresh else latest_snapshot(conn)
    if snapshot is not None:
        held = {row.year: _held_figures(row) for row in conn.execute(select(target_snapshots).where(
                    target_snapshots.c.run_id == snapshot.run_id, target_snapshots.c.region == region,
                    target_snapshots.c.basis == basis))}
        if held and last_year <= max(held):
            return ({year: held.get(year, YearFigures()) for year in range(first_year - 1, last_year + 1)},
                    snapshot.taken_at)
    return yearly_figures(conn, region, first_year - 1, last_year, basis), None


def check_series_span(first_year: int, last_year: int) -> None:
    if not 0 <= last_year - first_year < MAX_SERIES_YEARS:
        raise Invalid.field("query.to", f"must be from `from` to {MAX_SERIES_YEARS - 1} years after it")
