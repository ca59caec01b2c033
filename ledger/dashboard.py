"""The dashboard's figures (`GET /dashboard`): a region's yearly targets with their checks, the
claims' losses by party and the recent subsidy batches, read through the same domain reads the
API uses (`ledger.targets`, `ledger.claims.losses_by_party`, `ledger.subsidy_batches`). Nothing
here computes a figure of its own; it decides which years and regions a page shows together.

Guarantees
- Targets are computed now from the books, as `GET /v1/targets?fresh=true` and
  `GET /v1/targets/series` compute them, so the page and those answers agree figure for figure.
- At most `YEARS_SHOWN` years per chart and `MAX_REGIONS_OFFERED` regions in the choice: a page
  costs a bounded number of queries whatever the size of the book.
- What a reader may see is decided by the caller (api/ turns the key into a region it covers);
  this module only narrows within it.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger import targets
from ledger.identifiers import REGION_COUNTRY, region_covers

YEARS_SHOWN = 8  # the chosen year and the seven before it: a legible bar chart
MAX_REGIONS_OFFERED = 500  # the region choice lists at most this many (any covered code can be typed)


@dataclass(frozen=True)
class TargetYear:
    """One bar of the charts: a year's figures, the year before (for growth) and the target
    set's checks of that year (`ledger.targets.check_results`)."""

    year: int
    figures: targets.YearFigures
    previous: targets.YearFigures
    checks: tuple[dict, ...]

    def growth(self, metric: str):
        return targets.growth(self.figures.metric(metric), self.previous.metric(metric))


def target_years(conn: Connection, region: str, year: int, basis: str,
                 target_set: targets.TargetSet) -> list[TargetYear]:
    """`year` and up to `YEARS_SHOWN - 1` years before it, from the first year with loans in the
    region (none: an empty list, the page's empty state)."""
    first = year - YEARS_SHOWN + 1
    series = targets.yearly_figures(conn, region, first - 1, year, basis)  # one more year: growth base
    with_loans = [y for y in range(first, year + 1) if series[y].count]
    if not with_loans:
        return []
    return [TargetYear(y, series[y], series[y - 1], tuple(targets.check_results(target_set, series[y], series[y - 1])))
            for y in range(with_loans[0], year + 1)]


def years_offered(conn: Connection) -> list[int]:
    """The years any loan counts in (either basis), newest first; the span of the whole book, so
    it tells a reader nothing about another region's loans."""
    span = targets.loan_years(conn)
    if span is None:
        return []
    first = max(span[0], span[1] - targets.MAX_SERIES_YEARS + 1)
    return list(range(span[1], first - 1, -1))


def regions_offered(conn: Connection, home: str) -> list[str]:
    """`home` (the key's region; the country for admins) first, then every region with loans
    inside it, at every level (district, city, province), by code."""
    inside = [code for code in targets.regions_with_loans(conn) if code != home and region_covers(home, code)]
    return [home] + inside[:MAX_REGIONS_OFFERED - 1]


def home_region(role: str, region: str) -> str:
    """The region a reader starts in: an admin the whole country, others their institution's."""
    return REGION_COUNTRY if role == "admin" else region
