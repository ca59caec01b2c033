"""Claims in the database: a default opens a claim, split by `ledger.sharing`, posted as one entry.

Guarantees
- A claim is opened only for an active loan of the calling bank, at or beyond the programme's
  trigger (`trigger_overdue_days`), with principal outstanding on the classification day and no
  movement after it; one live claim per loan (also `uq_claims_live_loan`).
- The claim keeps its terms version and every figure the split was computed from (loss base,
  outstanding principal, overdue interest, the borrower's earlier principal that year, the fund
  balance it saw) and each share's ratio, computed amount, owed amount and cuts.
- Claims of one programme are split in claim order: the claim locks its parties' `cap_usage`
  rows (FOR UPDATE on PostgreSQL; every claim locks each party's programme-wide row, so claims of
  one programme serialise) before reading what earlier claims used, and adds its own shares
  before commit. Two claims at once never use the same remaining allowance or fund balance.
- ONE balanced entry per claim (`claim_opened`, docs/ACCOUNTING.md); withdrawal posts its
  reversal, frees the caps the claim used and makes the loan active again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import Connection, Engine, and_, func, or_, select, tuple_, update

from ledger import accounts as chart
from ledger import portfolio_book, sharing
from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.db import is_postgres, run_in_transaction, utcnow
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import (SYSTEM, Actor, EntryDraft, Line, balance_fen, ensure_accounts, post_entry,
                            reverse_entry)
from ledger.loans import _lock_loan, balance_on, principal_by_day
from ledger.money import check_fen, format_yuan
from ledger.programs import load_programs, lock_fund
from ledger.reads import ReadScope
from ledger.schema import (accounts, borrowers, cap_usage, claim_shares, claims, institutions, loans,
                           program_versions, programs, recoveries, recovery_shares)
from ledger.terms import Terms

MAX_OVERDUE_DAYS = 36500


@dataclass(frozen=True)
class DefaultFacts:
    """What the bank states when it classifies a loan as defaulted (API.md: default)."""

    classified_on: date
    overdue_days: int
    overdue_interest_fen: int = 0


def check_default(classified_on, overdue_days, overdue_interest_fen) -> DefaultFacts:
    day = parse_date(classified_on, "classified_on")
    if type(overdue_days) is not int or not 0 <= overdue_days <= MAX_OVERDUE_DAYS:
        raise Invalid.field("overdue_days", f"must be a whole number of days, 0 to {MAX_OVERDUE_DAYS}")
    return DefaultFacts(day, overdue_days, check_fen(overdue_interest_fen, "overdue_interest"))


# --- opening -------------------------------------------------------------------------------

def open_claim(conn: Connection, loan_id: int, bank_id: int, defaulted_on, actor: Actor, *,
               overdue_days: int, overdue_interest_fen: int = 0,
               today: date | None = None) -> dict:
    """Classify the loan as defaulted on `defaulted_on` and open its claim; returns the claim."""
    facts = check_default(defaulted_on, overdue_days, overdue_interest_fen)
    loan = _lock_loan(conn, loan_id, bank_id)
    if facts.classified_on > (today or business_today()):
        raise Invalid.field("classified_on", "cannot be in the future")
    if facts.classified_on < loan.start_date:
        raise Invalid.field("classified_on", f"is before the loan's start date {loan.start_date.isoformat()}")
    if loan.status != "active":
        raise Conflict(f"loan {loan_id} is {loan.status}; only an active loan defaults")
    terms = bound_terms(conn, loan)
    if facts.overdue_days < terms.trigger_overdue_days:
        raise Conflict(f"{facts.overdue_days} days overdue is below the programme's trigger of "
                       f"{terms.trigger_overdue_days} days")
    outstanding = _outstanding_on(conn, loan, facts.classified_on)
    base = sharing.loss_base_fen(terms, outstanding, facts.overdue_interest_fen)
    interest_claimed = base - outstanding
    credit_code = _credit_code(conn, loan.borrower_id)
    parties = _party_ids(conn, terms)
    year = facts.classified_on.year
    keys = {party: _usage_keys(credit_code, bank_id, year) for party in parties.values()}
    usage = _lock_usage(conn, loan.program_id, keys)
    fund_fen = _fund_balance(conn, loan.program_id, terms)
    before = _borrower_year_before(conn, loan, credit_code)
    loan_facts = sharing.LoanFacts(loan.principal_fen, base,
                                   Decimal(loan.ip_share) if loan.ip_share else None, before)
    paid = _paid_by_party(conn, loan.program_id) if fund_fen else {}
    used = [_caps_used(party, parties[party.institution], usage, keys, fund_fen,
                       paid.get(parties[party.institution], 0),
                       _portfolio_weight(conn, loan, terms, party, facts.classified_on))
            for party in terms.parties]
    split = sharing.split_claim(terms, loan_facts, used)
    entry_id = _post_claim(conn, loan, split, parties, outstanding, interest_claimed,
                           facts.classified_on, actor)
    claim_id = _insert_claim(conn, loan, terms, facts, outstanding, before, fund_fen, split,
                             parties, entry_id, actor)
    _add_usage(conn, loan.program_id, keys, {parties[s.party]: s.owed_fen for s in split.shares})
    conn.execute(update(loans).where(loans.c.id == loan_id).values(status="defaulted"))
    return get_claim(conn, claim_id)


def bound_terms(conn: Connection, loan) -> Terms:
    code = conn.execute(select(programs.c.code).where(programs.c.id == loan.program_id)).scalar_one()
    program = load_programs(conn, [code])[code]
    return next(v.terms for v in program.versions if v.id == loan.program_version_id)


def _outstanding_on(conn: Connection, loan, day: date) -> int:
    balances = principal_by_day(conn, loan.id)
    if any(moved_on > day for moved_on, _ in balances):
        raise Conflict(f"loan {loan.id} has principal movements after {day.isoformat()}; a default "
                       "is classified on or after the last one")
    outstanding = balance_on(balances, day)
    if outstanding <= 0:
        raise Conflict(f"loan {loan.id} has no principal outstanding on {day.isoformat()}")
    return outstanding


def _credit_code(conn: Connection, borrower_id: int) -> str:
    return conn.execute(select(borrowers.c.credit_code).where(borrowers.c.id == borrower_id)).scalar_one()


def _party_ids(conn: Connection, terms: Terms) -> dict[str, int]:
    codes = [party.institution for party in terms.parties]
    rows = conn.execute(select(institutions.c.code, institutions.c.id).where(institutions.c.code.in_(codes)))
    return dict(rows.all())


def _usage_keys(credit_code: str, bank_id: int, year: int) -> list[tuple[str, str]]:
    """The cap scopes a claim's share counts under (sharing's per-party shared caps)."""
    return [("borrower_year", f"{credit_code}:{year}"), ("bank_year", f"{bank_id}:{year}"),
            ("program_year", str(year)), ("all", "")]


def _lock_usage(conn: Connection, program_id: int, keys: dict[int, list[tuple[str, str]]]
                ) -> dict[tuple[int, str, str], int]:
    """Make sure every usage row exists, then lock them (in id order) and read them.

    On PostgreSQL a concurrent claim's uncommitted insert of the same row makes this insert wait
    for it; FOR UPDATE then reads the committed figure. SQLite has one writer at a time."""
    rows = [{"program_id": program_id, "institution_id": party, "scope": scope, "scope_key": key,
             "used_fen": 0} for party, party_keys in sorted(keys.items()) for scope, key in party_keys]
    _ensure_usage_rows(conn, rows)
    wanted = [(r["institution_id"], r["scope"], r["scope_key"]) for r in rows]
    found = conn.execute(
        select(cap_usage.c.institution_id, cap_usage.c.scope, cap_usage.c.scope_key, cap_usage.c.used_fen)
        .where(cap_usage.c.program_id == program_id,
               tuple_(cap_usage.c.institution_id, cap_usage.c.scope, cap_usage.c.scope_key).in_(wanted))
        .order_by(cap_usage.c.id).with_for_update()).all()
    return {(r.institution_id, r.scope, r.scope_key): r.used_fen for r in found}


def _ensure_usage_rows(conn: Connection, rows: list[dict]) -> None:
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    conn.execute(dialect_insert(cap_usage).on_conflict_do_nothing(), rows)


def add_fund_paid(conn: Connection, program_id: int, pool_id: int, fen: int) -> None:
    """Count a pool's payment from the programme's fund (the caller holds the fund's lock, as a
    claim reading the figure does: ledger/programs.lock_fund)."""
    _ensure_usage_rows(conn, [{"program_id": program_id, "institution_id": pool_id, "scope": "fund_paid",
                               "scope_key": "", "used_fen": 0}])
    conn.execute(update(cap_usage).where(
        cap_usage.c.program_id == program_id, cap_usage.c.institution_id == pool_id,
        cap_usage.c.scope == "fund_paid", cap_usage.c.scope_key == "")
        .values(used_fen=cap_usage.c.used_fen + fen))


def _add_usage(conn: Connection, program_id: int, keys: dict[int, list[tuple[str, str]]],
               owed_fen: dict[int, int]) -> None:
    for party, party_keys in keys.items():
        if not owed_fen.get(party):
            continue
        for scope, key in party_keys:
            conn.execute(update(cap_usage).where(
                cap_usage.c.program_id == program_id, cap_usage.c.institution_id == party,
                cap_usage.c.scope == scope, cap_usage.c.scope_key == key)
                .values(used_fen=cap_usage.c.used_fen + owed_fen[party]))


def _fund_balance(conn: Connection, program_id: int, terms: Terms) -> int:
    """The fund's balance, its account locked first: a payment from the fund (which takes the
    same lock, ledger/claim_payments.py) cannot land between this read and the paid figures."""
    if not any(party.caps.fund_balance for party in terms.parties):
        return 0
    spec = chart.program_fund(program_id)
    lock_fund(conn, program_id)  # held to commit: the balance of the contributions before this claim
    fund_id = ensure_accounts(conn, [spec])[spec.code]
    conn.execute(select(accounts.c.id).where(accounts.c.id == fund_id).with_for_update())
    return balance_fen(conn, fund_id)


def _paid_by_party(conn: Connection, program_id: int) -> dict[int, int]:
    """What each pool has paid from the programme's fund on its claims (withdrawn ones paid
    nothing): one usage row a pool, read under the fund's lock (`_fund_balance` took it)."""
    rows = conn.execute(select(cap_usage.c.institution_id, cap_usage.c.used_fen)
                        .where(cap_usage.c.program_id == program_id, cap_usage.c.scope == "fund_paid"))
    return {institution_id: int(fen) for institution_id, fen in rows}


def _borrower_year_before(conn: Connection, loan, credit_code: str) -> int:
    """Principal of the borrower's loans in this programme starting earlier the same calendar
    year (start date, then loan id): what the per-borrower-year coverage limit already spent."""
    year_start = date(loan.start_date.year, 1, 1)
    earlier = or_(loans.c.start_date < loan.start_date,
                  and_(loans.c.start_date == loan.start_date, loans.c.id < loan.id))
    total = conn.execute(
        select(func.coalesce(func.sum(loans.c.principal_fen), 0))
        .join(borrowers, borrowers.c.id == loans.c.borrower_id)
        .where(loans.c.program_id == loan.program_id, borrowers.c.credit_code == credit_code,
               loans.c.start_date >= year_start, earlier)).scalar_one()
    return int(total)


def _portfolio_weight(conn: Connection, loan, terms: Terms, party, day: date) -> Fraction:
    """Sum over the programme's loans started up to `day` of covered principal at start x ratio
    (a cached sorted book, not a read of every loan per claim: ledger/portfolio_book.py)."""
    if party.caps.portfolio_cap_rate is None:
        return Fraction(0)
    return portfolio_book.portfolio_weight(conn, loan.program_id, terms.coverage, party, day)


def _caps_used(party, party_id: int, usage, keys, fund_fen: int, paid_fen: int,
               weight: Fraction) -> sharing.CapsUsed:
    by_scope = {scope: usage[(party_id, scope, key)] for scope, key in keys[party_id]}
    return sharing.CapsUsed(
        borrower_year_fen=by_scope["borrower_year"], bank_year_fen=by_scope["bank_year"],
        program_year_fen=by_scope["program_year"], portfolio_owed_fen=by_scope["all"],
        portfolio_weighted_principal=weight, fund_balance_fen=fund_fen,
        # What the party owes on live claims less what it paid on them (the fund paid that).
        fund_owed_unpaid_fen=by_scope["all"] - paid_fen)


def _post_claim(conn: Connection, loan, split: sharing.ClaimSplit, parties: dict[str, int],
                outstanding_fen: int, interest_fen: int, on: date, actor: Actor) -> int:
    """claim_opened: the bank moves the loss base out of the loan into what the parties owe it
    and what it bears; each party books its share as a loss and a payable. Balanced per owner."""
    bank = loan.bank_id
    specs = {"receivable": chart.claim_receivable(loan.id, bank), "claimed": chart.loan_claimed(loan.id, bank),
             "losses": chart.credit_losses(bank), "income": chart.interest_income(bank)}
    for share in split.shares:
        specs[f"loss:{share.party}"] = chart.claim_losses(parties[share.party])
        specs[f"payable:{share.party}"] = chart.claims_payable(parties[share.party])
    ids = ensure_accounts(conn, specs.values())
    a = {name: ids[spec.code] for name, spec in specs.items()}
    owed = sum(share.owed_fen for share in split.shares)
    lines = [Line(a["receivable"], owed), Line(a["losses"], split.bank_retained_fen),
             Line(a["claimed"], -outstanding_fen), Line(a["income"], -interest_fen)]
    for share in split.shares:
        lines += [Line(a[f"loss:{share.party}"], share.owed_fen),
                  Line(a[f"payable:{share.party}"], -share.owed_fen)]
    draft = EntryDraft("claim_opened", on, tuple(line for line in lines if line.amount_fen),
                       memo=f"claim on loan {loan.id}", loan_id=loan.id)
    return post_entry(conn, draft, actor)


def _insert_claim(conn: Connection, loan, terms: Terms, facts: DefaultFacts, outstanding: int,
                  before: int, fund_fen: int, split: sharing.ClaimSplit, parties: dict[str, int],
                  entry_id: int, actor: Actor) -> int:
    claim_id = conn.execute(claims.insert().values(
        loan_id=loan.id, program_id=loan.program_id, program_version_id=loan.program_version_id,
        bank_id=loan.bank_id, borrower_id=loan.borrower_id, classified_on=facts.classified_on,
        claim_year=facts.classified_on.year, overdue_days=facts.overdue_days,
        outstanding_principal_fen=outstanding, overdue_interest_fen=facts.overdue_interest_fen,
        loss_base_fen=split.loss_base_fen, covered_fen=split.covered_fen,
        covered_reason=split.not_covered_reason, borrower_year_principal_before_fen=before,
        fund_balance_fen=fund_fen, bank_retained_fen=split.bank_retained_fen, status="open",
        entry_id=entry_id, created_by_key_id=actor.key_id, created_at=utcnow())
        .returning(claims.c.id)).scalar_one()
    roles = {party.institution: party.role for party in terms.parties}
    conn.execute(claim_shares.insert(), [
        {"claim_id": claim_id, "position": position, "institution_id": parties[share.party],
         "role": roles[share.party], "ratio": str(share.ratio), "computed_fen": share.rounded_fen,
         "amount_fen": share.owed_fen, "pays_first": share.pays_first,
         "cuts_json": json.dumps([{"cap": cut.cap, "fen": cut.fen} for cut in split.cuts
                                  if cut.party == share.party])}
        for position, share in enumerate(split.shares)])
    return claim_id


# --- the overdue scan ---------------------------------------------------------------------

def overdue_loans(conn: Connection, as_of: date) -> list[tuple[int, int, date, int]]:
    """Active loans whose maturity passed more than their programme's trigger days before
    `as_of`, in maturity order: (loan, bank, the day it reached the trigger, trigger days)."""
    rows = conn.execute(select(loans.c.id, loans.c.bank_id, loans.c.maturity_date,
                               loans.c.program_version_id, programs.c.code)
                        .join(programs, programs.c.id == loans.c.program_id)
                        .where(loans.c.status == "active", loans.c.maturity_date < as_of)
                        .order_by(loans.c.maturity_date, loans.c.id)).all()
    found = load_programs(conn, {row.code for row in rows})
    trigger = {v.id: v.terms.trigger_overdue_days for p in found.values() for v in p.versions}
    due = [(row.id, row.bank_id, row.maturity_date + timedelta(days=trigger[row.program_version_id]),
            trigger[row.program_version_id]) for row in rows]
    return [item for item in due if item[2] < as_of]


def scan_overdue(engine: Engine, as_of: date | None = None) -> int:
    """Open a claim, each in its own transaction, for every overdue loan (claim order = the order
    the loans reached the trigger), classified on the day it did. A loan refused (principal
    repaid to zero or moved after that day: a bank would not classify it then) stays active."""
    as_of = as_of or business_today()
    opened = 0
    for loan_id, bank_id, classified_on, days in run_in_transaction(engine, lambda conn: overdue_loans(conn, as_of)):
        try:
            run_in_transaction(engine, lambda conn: open_claim(
                conn, loan_id, bank_id, classified_on, SYSTEM, overdue_days=days, today=as_of))
            opened += 1
        except Conflict:
            continue
    return opened


# --- withdrawal ----------------------------------------------------------------------------

def withdraw_claim(conn: Connection, claim_id: int, bank_id: int, withdrawn_on, actor: Actor,
                   today: date | None = None) -> dict:
    """The bank takes back a claim nothing was paid or recovered on: the reversal of its entry,
    its caps freed for later claims, the loan active again."""
    withdrawn_on = parse_date(withdrawn_on, "withdrawn_on")
    head = conn.execute(select(claims.c.loan_id).where(claims.c.id == claim_id,
                                                       claims.c.bank_id == bank_id)).first()
    if head is None:
        raise NotFound(f"claim {claim_id} does not exist")
    loan = _lock_loan(conn, head.loan_id, bank_id)  # the fixed order: loan, then claim, then caps
    claim = conn.execute(select(claims).where(claims.c.id == claim_id).with_for_update()).first()
    if claim.status != "open":
        raise Conflict(f"claim {claim_id} is {claim.status}; only an open claim is withdrawn")
    if withdrawn_on > (today or business_today()):
        raise Invalid.field("withdrawn_on", "cannot be in the future")
    if withdrawn_on < claim.classified_on:
        raise Invalid.field("withdrawn_on", f"is before the claim's date {claim.classified_on.isoformat()}")
    shares = conn.execute(select(claim_shares).where(claim_shares.c.claim_id == claim_id)).all()
    _refuse_if_moved(conn, claim_id, shares)
    credit_code = _credit_code(conn, claim.borrower_id)
    keys = {s.institution_id: _usage_keys(credit_code, claim.bank_id, claim.claim_year) for s in shares}
    _lock_usage(conn, claim.program_id, keys)
    reversal = reverse_entry(conn, claim.entry_id, withdrawn_on, actor, memo=f"claim {claim_id} withdrawn")
    _add_usage(conn, claim.program_id, keys, {s.institution_id: -s.amount_fen for s in shares})
    conn.execute(update(claims).where(claims.c.id == claim_id).values(
        status="withdrawn", withdrawal_entry_id=reversal, withdrawn_on=withdrawn_on))
    # It had principal outstanding when it defaulted and nothing moved since: active again.
    conn.execute(update(loans).where(loans.c.id == loan.id).values(status="active"))
    return get_claim(conn, claim_id)


def _refuse_if_moved(conn: Connection, claim_id: int, shares) -> None:
    """A claim is withdrawn only while nothing was paid or recovered on it: a withdrawal
    reverses the claim's entry alone, and money that moved stays moved."""
    paid_fen = sum(share.paid_fen for share in shares)
    if paid_fen:
        raise Conflict(f"claim {claim_id} has {format_yuan(paid_fen)} paid on it; a claim is "
                       "withdrawn only while nothing is paid")
    if conn.execute(select(recoveries.c.id).where(recoveries.c.claim_id == claim_id)).first():
        raise Conflict(f"claim {claim_id} has recoveries recorded; it can no longer be withdrawn")


# --- reads ---------------------------------------------------------------------------------

def claim_condition(scope: ReadScope):
    """Claims visible: a bank's own loans'; a party's, those it has a share in (one capped to 0
    included: it is still the party's claim); a region's, its borrowers' loans'; else all."""
    if scope.institution_id is not None and scope.party:
        return claims.c.id.in_(select(claim_shares.c.claim_id).where(
            claim_shares.c.institution_id == scope.institution_id))
    if scope.institution_id is not None:
        return claims.c.bank_id == scope.institution_id
    return claims.c.loan_id.in_(select(loans.c.id).where(scope.loan_condition()))


def get_claim(conn: Connection, claim_id: int, condition=None) -> dict:
    """One claim with its shares in terms order; `condition` scopes it to the caller (else 404)."""
    query = select(claims).where(claims.c.id == claim_id)
    if condition is not None:
        query = query.where(condition)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return _with_shares(conn, [dict(row)])[0]


def list_claims(conn: Connection, condition=None, *, status: str | None = None,
                party_id: int | None = None, after_id: int = 0, limit: int = 50) -> list[dict]:
    query = select(claims).where(claims.c.id > after_id).order_by(claims.c.id).limit(limit)
    if condition is not None:
        query = query.where(condition)
    if status is not None:
        query = query.where(claims.c.status == status)
    if party_id is not None:
        # Named on the claim, as visibility is: a share capped to 0 is still the party's claim.
        query = query.where(claims.c.id.in_(select(claim_shares.c.claim_id).where(
            claim_shares.c.institution_id == party_id)))
    return _with_shares(conn, [dict(row) for row in conn.execute(query).mappings()])


@dataclass(frozen=True)
class PartyLoss:
    """What one party bears on the live claims a reader sees: `claim_count` claims and
    `amount_fen` owed after caps (for a bank, `role` is `bank` and the amount what it retained)."""

    institution: str
    name: str
    role: str
    claim_count: int
    amount_fen: int


def losses_by_party(conn: Connection, condition=None) -> list[PartyLoss]:
    """Live (not withdrawn) claims under `condition`, summed per party and per lending bank,
    largest loss first. The parties' amounts plus the banks' equal the claims' loss bases."""
    live = claims.c.status != "withdrawn"
    if condition is not None:
        live = and_(live, condition)
    shared = (select(institutions.c.code, institutions.c.name, claim_shares.c.role,
                     func.count().label("claim_count"), func.sum(claim_shares.c.amount_fen).label("amount_fen"))
              .join(claims, claims.c.id == claim_shares.c.claim_id)
              .join(institutions, institutions.c.id == claim_shares.c.institution_id)
              .where(live).group_by(institutions.c.code, institutions.c.name, claim_shares.c.role))
    retained = (select(institutions.c.code, institutions.c.name, func.count().label("claim_count"),
                       func.sum(claims.c.bank_retained_fen).label("amount_fen"),
                       func.sum(claims.c.loss_base_fen).label("loss_base_fen"))
                .join(institutions, institutions.c.id == claims.c.bank_id)
                .where(live).group_by(institutions.c.code, institutions.c.name))
    rows = [PartyLoss(r.code, r.name, r.role, int(r.claim_count), int(r.amount_fen)) for r in conn.execute(shared)]
    banks = conn.execute(retained).all()
    rows += [PartyLoss(r.code, r.name, "bank", int(r.claim_count), int(r.amount_fen)) for r in banks]
    # Every claim's shares plus its bank's retained loss are its loss base (asserted per claim too).
    assert sum(r.amount_fen for r in rows) == sum(int(r.loss_base_fen) for r in banks)
    return sorted(rows, key=lambda r: (-r.amount_fen, r.institution, r.role))


def _with_shares(conn: Connection, rows: list[dict]) -> list[dict]:
    if not rows:
        return rows
    by_claim: dict[int, list[dict]] = {row["id"]: [] for row in rows}
    for share in conn.execute(
            select(claim_shares, institutions.c.code.label("institution"))
            .join(institutions, institutions.c.id == claim_shares.c.institution_id)
            .where(claim_shares.c.claim_id.in_(list(by_claim)))
            .order_by(claim_shares.c.claim_id, claim_shares.c.position)).mappings():
        share = dict(share)
        cuts = json.loads(share.pop("cuts_json"))
        share["cuts"] = cuts
        share["capped_by"] = [cut["cap"] for cut in cuts]
        by_claim[share["claim_id"]].append(share)
    names = _names(conn, rows)
    recovered = _recovered(conn, list(by_claim))
    for row in rows:
        row.update(names[row["id"]])
        row["shares"] = by_claim[row["id"]]
        back = recovered.get(row["id"], {})
        for share in row["shares"]:
            share["recovered_fen"] = back.get(share["position"], 0)
        row["bank_recovered_fen"] = back.get(len(row["shares"]), 0)  # the bank's place: last
        row["recovered_fen"] = sum(back.values())
        assert sum(s["amount_fen"] for s in row["shares"]) + row["bank_retained_fen"] == row["loss_base_fen"]
    return rows


def _recovered(conn: Connection, claim_ids: list[int]) -> dict[int, dict[int, int]]:
    """Net recovery returned so far, per claim and bearer position (terms order, the bank last)."""
    found: dict[int, dict[int, int]] = {}
    for claim_id, position, fen in conn.execute(
            select(recoveries.c.claim_id, recovery_shares.c.position, func.sum(recovery_shares.c.amount_fen))
            .join(recoveries, recoveries.c.id == recovery_shares.c.recovery_id)
            .where(recoveries.c.claim_id.in_(claim_ids))
            .group_by(recoveries.c.claim_id, recovery_shares.c.position)):
        found.setdefault(claim_id, {})[position] = int(fen)
    return found


def _names(conn: Connection, rows: list[dict]) -> dict[int, dict]:
    """The codes a reader knows a claim by: programme, its version number, the bank."""
    query = (select(claims.c.id, programs.c.code.label("program"),
                    program_versions.c.version.label("program_version"),
                    institutions.c.code.label("bank"))
             .join(programs, programs.c.id == claims.c.program_id)
             .join(program_versions, program_versions.c.id == claims.c.program_version_id)
             .join(institutions, institutions.c.id == claims.c.bank_id)
             .where(claims.c.id.in_([row["id"] for row in rows])))
    return {row.id: {"program": row.program, "program_version": row.program_version, "bank": row.bank}
            for row in conn.execute(query)}
