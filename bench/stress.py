"""Benchmark of the pool stress test (issue 12): S scenarios x N loans x Y years, vectorised,
beside the claims engine's own pure-Python loop (`ledger.sharing.split_claims_in_order`) over
the same defaults of a 1% sample of scenarios, scaled up. Also checks, on that sample, that the
two give the same shares to the fen.

    flock /work/bench.lock .venv/bin/python bench/stress.py [--scenarios 10000] [--loans 10000] [--years 5]

No database: a synthetic book under terms shaped like the demo's Guangdong programme (insurer
0.25 capped per claim; pool tiered 0.6/0.5/0.4 with per-borrower-year, per-programme-year and
fund caps). Peak memory is the process's maximum resident set (ru_maxrss).
"""
from __future__ import annotations

import argparse
import resource
import time
from decimal import Decimal

import numpy as np

from ledger import sharing, stress
from ledger.terms import Coverage, Party, PartyCaps, ShareTier, Terms

YUAN = 100


def terms() -> Terms:
    return Terms(
        parties=(Party("PICC", "insurer", Decimal("0.25"), pays_first=True,
                       caps=PartyCaps(per_claim_fen=3_000_000 * YUAN)),
                 Party("POOL", "pool", Decimal("0.6"), share_tiers=(
                     ShareTier(3_000_000 * YUAN, Decimal("0.6")), ShareTier(10_000_000 * YUAN, Decimal("0.5")),
                     ShareTier(None, Decimal("0.4"))),
                     caps=PartyCaps(per_borrower_year_fen=5_000_000 * YUAN,
                                    per_program_year_fen=500_000_000 * YUAN, fund_balance=True))),
        coverage=Coverage(ip_share="ip_part_only", require_stated_ip_share=True,
                          max_covered_principal_fen=20_000_000 * YUAN))


def book(n: int, seed: int = 1) -> stress.Book:
    rng = np.random.default_rng(seed)
    principal = (np.exp(rng.uniform(np.log(500_000), np.log(30_000_000), n)).astype(np.int64) // 1000 * 1000) * YUAN
    ip = [Decimal(x) for x in rng.choice(["0.4", "0.6", "0.8", "1"], n)]
    return stress.Book(
        loan_id=np.arange(1, n + 1, dtype=np.int64), outstanding_fen=principal, original_fen=principal,
        ip_share=ip, before_fen=[0] * n, first_year=np.ones(n, dtype=np.int64),
        last_year=rng.integers(1, 4, n).astype(np.int64), borrower=rng.integers(0, int(n * 0.8), n).astype(np.int64),
        bank=rng.integers(0, 12, n).astype(np.int64), sme=rng.random(n) < 0.85, version=np.zeros(n, dtype=np.int64),
        versions=[terms()], portfolio_loans=[], fund_balance_fen=2_000_000_000 * YUAN, program="bench")


def pure_python(b: stress.Book, events: list) -> tuple[float, list[dict]]:
    """The claims engine's own loop, claim by claim, for each scenario's defaults in claim order."""
    t = terms()
    started = time.perf_counter()
    owed = []
    for claims in events:
        inputs = [sharing.ClaimInput(sharing.LoanFacts(int(b.original_fen[i]), int(b.outstanding_fen[i]),
                                                       b.ip_share[i], 0),
                                     str(b.borrower[i]), str(b.bank[i]), year)
                  for year, loan_id, _ in claims for i in [int(loan_id) - 1]]
        splits = sharing.split_claims_in_order(t, inputs, {"POOL": b.fund_balance_fen})
        owed.append([{s.party: s.owed_fen for s in split.shares} for split in splits])
    return time.perf_counter() - started, owed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--years", type=int, default=5)
    args = parser.parse_args()
    b = book(args.loans)
    a = stress.Assumptions(as_of=__import__("datetime").date(2026, 1, 1), years=args.years,
                           scenarios=args.scenarios, seed=20261203, default_probability=Decimal("0.03"),
                           asset_correlation=Decimal("0.15"))
    started = time.perf_counter()
    plan = stress.prepare(b, a)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    outcome = stress.simulate(plan, a, 0)
    simulated = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sample = stress.Assumptions(**{**a.__dict__, "scenarios": max(1, args.scenarios // 100)})
    events = stress.simulate(plan, sample, 0, keep_events=True).events
    loop_s, loop_owed = pure_python(b, events)
    same = all([{k: v for k, v in owed.items()} for _, _, owed in claims] == pure
               for claims, pure in zip(events, loop_owed))
    claims = int(outcome.claims.sum())
    scale = args.scenarios / len(events)
    print(f"{args.scenarios} scenarios x {args.loans} loans x {args.years} years: {claims} claims")
    print(f"vectorised: prepare {prepared:.2f} s, simulate {simulated:.2f} s "
          f"({claims / simulated:,.0f} claims/s), peak RSS {peak_mib:,.0f} MiB")
    print(f"pure-Python claims engine on {len(events)} scenarios: {loop_s:.2f} s, "
          f"scaled x{scale:.0f}: {loop_s * scale:.0f} s ({loop_s * scale / simulated:.0f}x slower)")
    print(f"the sample's shares equal to the fen: {same}")
    print(f"P(fund exhausted within {args.years} years) = {float(stress.exhaustion_probability(outcome)):.4f}")


if __name__ == "__main__":
    main()
