"""Benchmark of the subsidy computation (issue 9 item 7, partly): the vectorised
`ledger.subsidies.compute` over N loans beside a pure-Python per-loan loop over the same data.

Measured: the compute step only, on an in-memory book (one disbursement, one repayment and one
interest payment per loan; a pct_of_paid rule with a per-borrower-year cap and a
pct_of_reference_rate rule). Not yet measured: the bulk SQL read and storing the lines on
PostgreSQL, and the raw COPY baseline (the batch tables are not built on this branch).
"""
from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np

from ledger.subsidies import Book, compute, parse_period, scaled
from ledger.terms import SubsidyCaps, SubsidyRule

RULES = (SubsidyRule("interest", "pct_of_paid", Decimal("0.4"), caps=SubsidyCaps(per_borrower_year_fen=50_000_000)),
         SubsidyRule("interest", "pct_of_reference_rate", Decimal("0.5"), "LPR1Y", "december_of_year"))
LPR = Decimal("0.0300")


def make_book(n: int, seed: int = 1) -> Book:
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1).toordinal() + rng.integers(0, 700, n)
    start.sort()
    principal = rng.integers(10_000_00, 10_000_000_00, n)
    idx = np.arange(n, dtype=np.int64)
    repay_day = start + rng.integers(30, 700, n)
    repay = principal // rng.integers(1, 4, n)
    return Book(loan_id=idx + 1, borrower_id=rng.integers(1, n // 3 + 2, n), start_ord=start,
                principal_fen=principal, rate_scaled=np.full(n, scaled(Decimal("0.0345"))),
                sme=np.ones(n, bool), private=np.ones(n, bool), revenue_fen=np.full(n, 10 ** 9),
                move_loan=np.concatenate([idx, idx]), move_ord=np.concatenate([start, repay_day]),
                move_fen=np.concatenate([principal, -repay]),
                paid={"interest": (idx, repay_day, principal * 3 // 100)})


def loop(book: Book, period: str) -> int:
    """The same two rules, one loan at a time in Python ints and Fractions."""
    first, end = (d.toordinal() for d in parse_period(period))
    total, used = 0, {}
    for i in range(book.size):
        paid_day, paid = int(book.paid["interest"][1][i]), int(book.paid["interest"][2][i])
        basis = paid if first <= paid_day < end else 0
        want = (2 * basis * 2 + 5) // 10  # 40 %, half up
        b = int(book.borrower_id[i])
        amount = min(want, max(50_000_000 - used.get(b, 0), 0))
        used[b] = used.get(b, 0) + amount
        pd = 0
        for day, fen in ((int(book.start_ord[i]), int(book.principal_fen[i])),
                         (int(book.move_ord[book.size + i]), int(book.move_fen[book.size + i]))):
            pd += fen * max(end - max(day, first), 0)
        x = Fraction(pd) * Fraction(1, 2) * Fraction(LPR) / 360
        total += amount + (2 * x.numerator + x.denominator) // (2 * x.denominator)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--period", default="2025")
    args = parser.parse_args()
    book = make_book(args.loans)
    t0 = time.perf_counter()
    result = compute(book, RULES, args.period, lambda month: LPR)
    vector_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop_total = loop(book, args.period)
    loop_s = time.perf_counter() - t0
    assert loop_total == result.total_fen, (loop_total, result.total_fen)
    print(f"loans {args.loans}: vectorised compute {vector_s:.2f} s ({result.line_count} lines), "
          f"per-loan loop {loop_s:.2f} s, ratio {loop_s / vector_s:.1f}x; totals equal ({result.total_fen} fen)")


if __name__ == "__main__":
    main()
