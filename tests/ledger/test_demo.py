"""`ledger.demo`: a small demo book on an empty database, checked against the database itself."""
from ledger.dates import today as business_today
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledger import chain, demo, programs
from ledger.errors import Conflict, Invalid
from ledger.institutions import list_institutions
from ledger.loans import outstanding_fen
from ledger.claim_books import check_claim_books
from ledger.schema import claims, recoveries, target_snapshots
from ledger.schema import (
    accounts,
    borrowers,
    entries,
    loans,
    pledges,
    postings,
    program_versions,
)
from ledger.sme import INDUSTRIES
from tests.factories import format_fen, tx

AS_OF = date(2025, 12, 31)
SMALL = {"borrowers": 60, "loans": 120}
FEE_ENTRY_KINDS = ("premium_paid", "guarantee_fee_paid", "appraisal_fee_paid")


def _count(conn, table, *where) -> int:
    return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _entry_count(conn, *kinds) -> int:
    return _count(conn, entries, entries.c.kind.in_(kinds))


def test_demo_fills_an_empty_database_with_a_consistent_book(fresh_engine):
    steps = []
    summary = demo.run(fresh_engine, progress=lambda step, done, total: steps.append((step, done, total)),
                       seed=7, as_of=AS_OF, **SMALL)

    # the summary counts what is in the database
    def counts(conn):
        return {
            "institutions": len(list_institutions(conn, limit=1000)),
            "programs": len(programs.list_programs(conn, limit=1000)),
            "program_versions": _count(conn, program_versions),
            "borrowers": _count(conn, borrowers),
            "loans": _count(conn, loans),
            "pledges": _count(conn, pledges),
            "repayments": _entry_count(conn, "repayment"),
            "fees": _entry_count(conn, *FEE_ENTRY_KINDS),
            "fund_contributions": _entry_count(conn, "fund_contribution"),
            "loans_closed": _count(conn, loans, loans.c.status == "closed"),
            "loans_active": _count(conn, loans, loans.c.status == "active"),
            "loans_defaulted": _count(conn, loans, loans.c.status == "defaulted"),
            "claims": _entry_count(conn, "claim_opened"),
            "target_region_years": _count(conn, target_snapshots),
            "claim_payments": _entry_count(conn, "claim_paid"),
            "claims_settled": _count(conn, claims, claims.c.status == "settled"),
            "recoveries": _count(conn, recoveries),
        }
    found = tx(counts)
    assert {key: summary[key] for key in found} == found
    assert found["borrowers"] == 60 + len(demo.SAMPLE_BORROWERS) and found["loans"] == 120
    assert found["institutions"] == 13
    assert found["repayments"] > 0 and found["fees"] > 0 and found["fund_contributions"] > 0
    assert found["loans_closed"] > 0 and found["loans_active"] > 0
    assert found["claims"] > 0 and found["claims"] == found["loans_defaulted"]
    assert found["target_region_years"] > 0  # the snapshot /v1/targets answers from
    # one claim settled (every party in full), one partly paid, a recovery with the pool's part
    # redirected to the treasury; and the claim records equal the journal
    assert (found["claim_payments"], found["claims_settled"], found["recoveries"]) == (3, 1, 1)
    assert summary["claims_partly_paid"] == 1 and summary["recovered_to_treasury"] != "0.00"
    assert tx(check_claim_books).claims_agree
    assert summary["as_of"] == AS_OF.isoformat() and summary["seconds"] >= 0

    # progress: the steps in order, each ending at its total
    order = list(dict.fromkeys(step for step, _, _ in steps))
    assert order == ["institutions", "programmes", "borrowers", "loans & payments"]
    for step in order:
        done = [d for s, d, _ in steps if s == step]
        assert done == sorted(done) and done[-1] == [t for s, _, t in steps if s == step][-1]

    # the journal balances and its chain is intact
    verification = tx(chain.verify)
    assert verification.balanced and verification.chain_intact and verification.entries > 0

    # every loan's outstanding principal is its principal less the principal repaid (read from
    # the borrower's side of each repayment entry), and a loan is closed exactly when it is zero
    def loan_books(conn):
        rows = conn.execute(select(loans.c.id, loans.c.principal_fen, loans.c.status, loans.c.closed_on,
                                   loans.c.start_date, loans.c.maturity_date)).all()
        repaid = dict(conn.execute(
            select(entries.c.loan_id, func.sum(postings.c.amount_fen))
            .join(postings, postings.c.entry_id == entries.c.id)
            .join(accounts, accounts.c.id == postings.c.account_id)
            .where(entries.c.kind == "repayment", accounts.c.purpose == "loans_payable")
            .group_by(entries.c.loan_id)).all())
        last_paid = dict(conn.execute(select(entries.c.loan_id, func.max(entries.c.effective_on))
                                      .where(entries.c.kind == "repayment").group_by(entries.c.loan_id)).all())
        first_paid = dict(conn.execute(select(entries.c.loan_id, func.min(entries.c.effective_on))
                                       .where(entries.c.kind == "repayment").group_by(entries.c.loan_id)).all())
        return rows, repaid, last_paid, first_paid, outstanding_fen(conn, [row.id for row in rows])
    rows, repaid, last_paid, first_paid, outstanding = tx(loan_books)
    for row in rows:
        assert outstanding[row.id] == row.principal_fen - int(repaid.get(row.id, 0)), row.id
        assert (row.status == "closed") == (outstanding[row.id] == 0), row.id
        if row.status == "closed":
            assert row.closed_on == last_paid[row.id] <= min(row.maturity_date, AS_OF)
        if row.id in first_paid:
            assert row.start_date <= first_paid[row.id] and last_paid[row.id] <= AS_OF
    # matured loans are mostly closed; the rest stay active (overdue, for the claim flow)
    matured = [row for row in rows if row.maturity_date <= AS_OF]
    assert matured and sum(row.status == "closed" for row in matured) >= 0.8 * len(matured)

    # both programmes, the Guangdong one with its 2024 version, and loans bound by start date
    gd, cd = tx(lambda conn: programs.get_program(conn, demo.GD_PROGRAM)), \
        tx(lambda conn: programs.get_program(conn, demo.CD_PROGRAM))
    assert [v.effective_from for v in gd.versions] == [date(2019, 1, 1), demo.VERSION_2_FROM]
    assert gd.versions[0].effective_to == demo.VERSION_2_FROM - timedelta(days=1)
    assert len(cd.versions) == 1 and gd.region == "440000" and cd.region == "510100"
    assert gd.versions[0].terms.pays_first_party.institution == "PICC-GD"

    def bindings(conn):
        return conn.execute(select(loans.c.start_date, loans.c.program_id, program_versions.c.version)
                            .join(program_versions, program_versions.c.id == loans.c.program_version_id)).all()
    bound = tx(bindings)
    for start, program_id, version in bound:
        expected = 2 if program_id == gd.id and start >= demo.VERSION_2_FROM else 1
        assert version == expected
    assert {version for _, program_id, version in bound if program_id == gd.id} == {1, 2}

    # loans in every year 2019-2025, growing
    per_year = Counter(start.year for start, _, _ in bound)
    assert sorted(per_year) == list(range(demo.FIRST_YEAR, demo.LAST_YEAR + 1))
    assert per_year[demo.LAST_YEAR] > 2 * per_year[demo.FIRST_YEAR]

    _assert_subsidies(summary)

    # a second run refuses, and writes nothing
    with pytest.raises(Conflict, match="already has data"):
        demo.run(fresh_engine, seed=7, as_of=AS_OF, **SMALL)
    assert tx(counts) == found

    # the documented CSV sample imports into the demo book as it is
    from ledger.loan_import import import_loans
    sample = Path(__file__).resolve().parents[2] / "docs" / "loans-sample.csv"
    assert import_loans(fresh_engine, "ICBC-GZ", sample.read_text(encoding="utf-8").splitlines(True)) == 3


def test_demo_refuses_a_future_as_of_before_writing(fresh_engine):
    with pytest.raises(Invalid):
        demo.run(fresh_engine, as_of=business_today() + timedelta(days=1), **SMALL)
    assert tx(lambda conn: list_institutions(conn, limit=1)) == []


def test_plan_is_deterministic_and_realistic():
    book = demo.plan(seed=11, borrowers=2500, loans=4000)
    assert book == demo.plan(seed=11, borrowers=2500, loans=4000)
    assert book != demo.plan(seed=12, borrowers=2500, loans=4000)

    facts = [b.facts for b in book.borrowers]
    assert len({f.credit_code for f in facts}) == 2500
    assert {f.industry for f in facts} == set(INDUSTRIES)
    sizes = Counter(b.size_class for b in book.borrowers)
    assert sizes["micro"] + sizes["small"] > 0.7 * 2500 and 0 < sizes["large"] < 0.1 * 2500
    assert 0.8 <= sum(f.private for f in facts) / 2500 <= 0.9
    assert {f.region[:4] for f in facts} == {"4401", "4403", "5101"}

    principals = sorted(loan.principal_fen for loan in book.loans)
    in_band = sum(1_000_000_00 <= p <= 10_000_000_00 for p in principals)
    assert in_band > 0.7 * 4000 and principals[-1] <= 30_000_000_00
    for loan in book.loans:
        body = loan.body
        assert Decimal("0.03") <= Decimal(body["annual_rate"]) <= Decimal("0.055")
        assert 1 <= len(body["pledges"]) <= 3
        assert all(date.fromisoformat(p["registered_on"]) < loan.start for p in body["pledges"])
        principal = sum(e.principal_fen for e in loan.events if e.kind == "repayment")
        assert principal <= loan.principal_fen and all(
            e.on >= loan.start for e in loan.events if e.kind == "repayment")
    per_year = Counter(loan.start.year for loan in book.loans)
    assert all(per_year[y + 1] > per_year[y] for y in range(demo.FIRST_YEAR, demo.LAST_YEAR))


def test_demo_contributions_obey_who_may_contribute():
    """The demo books each fund contribution from an institution that may make it: a fiscal
    bureau participating in the programme (a programme whose region covers the bureau's or lies
    within it; GZ-FISCAL of 440100 under the province-wide gd-ip-pledge), or a pool among its
    parties (ledger.programs.may_contribute, which the API applies)."""
    from ledger.terms import parse_terms
    kinds = {code: (kind, region) for code, _name, kind, region in demo.INSTITUTIONS}
    made = {code: programs.Program(0, code, name, region, (programs.Version(
        0, 1, start, None, parse_terms(terms(), {c: k for c, (k, _r) in kinds.items()})),))
        for code, name, region, start, terms in demo.PROGRAMS}
    contributions = demo.plan(**SMALL).contributions
    assert {c.contributor for c in contributions} == {"GZ-FISCAL", "CD-FISCAL"}
    for contribution in contributions:
        kind, region = kinds[contribution.contributor]
        assert programs.may_contribute(made[contribution.program], kind, contribution.contributor, region)
    # ...and the rule says no to a bureau of another city, or to a pool that is no party.
    assert not programs.may_contribute(made[demo.GD_PROGRAM], "fiscal", "CD-FISCAL", "510100")
    assert not programs.may_contribute(made[demo.GD_PROGRAM], "pool", "CD-POOL", "510100")
    assert programs.may_contribute(made[demo.GD_PROGRAM], "pool", "GZ-POOL", "440100")


def _assert_subsidies(summary: dict) -> None:
    """The demo ends with the year before last paid under both programmes (interest by both
    methods, and fees), the last ended year of the Guangdong scheme awaiting approval, and the
    LPR months it needed recorded (and said so)."""
    from ledger.schema import reference_rates, subsidy_batches, subsidy_lines
    from ledger.subsidy_batches import list_batches
    made = tx(lambda conn: list_batches(conn, None))
    assert [(b["program"], b["period"], b["status"]) for b in made] == [
        (demo.GD_PROGRAM, "2023", "posted"), (demo.CD_PROGRAM, "2023", "posted"), (demo.GD_PROGRAM, "2024", "draft")]
    assert made[-1]["approved_by"] is None and made[0]["approved_by"] != made[0]["created_by"]
    paid = tx(lambda conn: conn.execute(
        select(subsidy_lines.c.kind, subsidy_lines.c.method, func.sum(subsidy_lines.c.amount_fen))
        .join(subsidy_batches, subsidy_batches.c.id == subsidy_lines.c.batch_id)
        .where(subsidy_batches.c.status == "posted")
        .group_by(subsidy_lines.c.kind, subsidy_lines.c.method)).all())
    paid = {(kind, method): int(fen) for kind, method, fen in paid}
    for kind, method in (("interest", "pct_of_paid"), ("interest", "pct_of_reference_rate"),
                         ("premium", "pct_of_paid"), ("guarantee_fee", "pct_of_paid")):
        assert paid.get((kind, method), 0) > 0, (kind, method, paid)
    assert summary["subsidy_batches_posted"] == 2 and summary["subsidy_batches_awaiting_approval"] == 1
    assert summary["subsidy_lines_posted"] == made[0]["line_count"] + made[1]["line_count"]
    assert summary["subsidies_paid"] == format_fen(sum(paid.values()))
    assert summary["subsidy_draft"] == f"{demo.GD_PROGRAM} 2024 (batch {made[-1]['id']})"
    # Loans from 2019-01 need LPRs the seed (2019-08..2025-05) lacks, from the month before the
    # first start (a `month_before_start` rule reads it): the demo recorded them, and says so.
    months = sorted(tx(lambda conn: conn.execute(select(reference_rates.c.month, reference_rates.c.rate)
                                                 .where(reference_rates.c.month < "2019-08")).all()))
    first_start = tx(lambda conn: conn.execute(select(func.min(loans.c.start_date))).scalar_one())
    expected_first = (first_start.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert summary["lpr_months_recorded_as_demo_data"] == f"{expected_first}..2019-07"
    assert months[0][0] == expected_first and {rate for _, rate in months} == {"0.0431"}
    assert len(months) == 12 * (2019 - int(expected_first[:4])) + 8 - int(expected_first[5:])
