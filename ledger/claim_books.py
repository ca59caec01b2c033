"""The journal equals the claim records: the check behind `ipledger verify` and `GET /v1/audit/verify`.

Claims keep their figures in tables (`claim_shares.paid_fen`, `claim_payments`, `recoveries`,
`recovery_shares`) for reads, caps and statements; the journal holds the money. This module
recomputes both sides and reports every place they differ (DESIGN.md: every figure the API
reports comes from the journal or is checked against it):
- each share's `paid_fen` equals the sum of its payments;
- each party's paid shares equal what the journal's `claim_paid` entries discharged from its
  claims payable, and what it still owes equals that account's balance;
- each bank's claim receivable equals what its live claims' parties still owe it;
- each programme fund's balance equals its contributions less the pool shares it paid plus the
  recoveries returned into it;
- each programme's `fund_paid` usage rows (what a claim's fund cap reads) equal its pools'
  payments from the fund;
- each bank's net loss after recoveries (credit losses less loss recoveries) equals its retained
  losses on live claims less the recoveries it received.
Read-only; a difference is reported, never repaired (corrections are entries).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, func, select

from ledger.schema import (accounts, cap_usage, claim_payments, claim_shares, claims, entries,
                           postings, recoveries, recovery_shares)

MAX_BREAKS = 20


@dataclass(frozen=True)
class ClaimBooks:
    """`claims_agree`: no difference found; `claim_breaks`: the first differences, each naming
    the figure, whose it is, and both sides in fen."""

    claims_agree: bool
    claim_breaks: list[dict] = field(default_factory=list)


def check_claim_books(conn: Connection) -> ClaimBooks:
    breaks: list[dict] = []
    for check in (_shares_paid_equal_payments, _parties_paid_equal_journal, _parties_owed_equal_payables,
                  _banks_receivable_equal_owed, _funds_equal_journal, _fund_paid_usage_equals_payments,
                  _banks_net_loss_equal_journal):
        breaks.extend(check(conn))
    return ClaimBooks(not breaks, breaks[:MAX_BREAKS])


def _differences(figure: str, owner: str, records: dict, journal: dict) -> list[dict]:
    return [{"figure": figure, owner: key, "records_fen": records.get(key, 0), "journal_fen": journal.get(key, 0)}
            for key in sorted(set(records) | set(journal)) if records.get(key, 0) != journal.get(key, 0)]


def _sums(conn: Connection, query) -> dict:
    return {key: int(total) for key, total in conn.execute(query)}


LIVE = claims.c.status != "withdrawn"


def _shares_paid_equal_payments(conn: Connection) -> list[dict]:
    records = _sums(conn, select(claim_shares.c.id, claim_shares.c.paid_fen).where(claim_shares.c.paid_fen != 0))
    payments = _sums(conn, select(claim_payments.c.share_id, func.sum(claim_payments.c.amount_fen))
                     .group_by(claim_payments.c.share_id))
    return _differences("share_paid_vs_payments", "share", records, payments)


def _parties_paid_equal_journal(conn: Connection) -> list[dict]:
    records = _sums(conn, select(claim_shares.c.institution_id, func.sum(claim_shares.c.paid_fen))
                    .join(claims, claims.c.id == claim_shares.c.claim_id).where(LIVE)
                    .group_by(claim_shares.c.institution_id))
    journal = _sums(conn, select(accounts.c.institution_id, func.sum(postings.c.amount_fen))
                    .join(postings, postings.c.account_id == accounts.c.id)
                    .join(entries, and_(entries.c.id == postings.c.entry_id, entries.c.kind == "claim_paid"))
                    .where(accounts.c.purpose == "claims_payable").group_by(accounts.c.institution_id))
    return _differences("party_paid", "institution", records, journal)


def _balances_by(conn: Connection, owner, purpose: str, sign: int = 1) -> dict:
    return {key: sign * total for key, total in _sums(
        conn, select(owner, func.sum(postings.c.amount_fen)).join(postings, postings.c.account_id == accounts.c.id)
        .where(accounts.c.purpose == purpose).group_by(owner)).items()}


def _owed_by(conn: Connection, owner) -> dict:
    return _sums(conn, select(owner, func.sum(claim_shares.c.amount_fen - claim_shares.c.paid_fen))
                 .join(claims, claims.c.id == claim_shares.c.claim_id).where(LIVE).group_by(owner))


def _parties_owed_equal_payables(conn: Connection) -> list[dict]:
    return _differences("party_owed", "institution", _owed_by(conn, claim_shares.c.institution_id),
                        _balances_by(conn, accounts.c.institution_id, "claims_payable", sign=-1))


def _banks_receivable_equal_owed(conn: Connection) -> list[dict]:
    return _differences("bank_claim_receivable", "institution", _owed_by(conn, claims.c.bank_id),
                        _balances_by(conn, accounts.c.institution_id, "claims_receivable"))


def _funds_equal_journal(conn: Connection) -> list[dict]:
    contributed = _sums(conn, select(accounts.c.program_id, func.sum(postings.c.amount_fen))
                        .join(postings, postings.c.account_id == accounts.c.id)
                        .join(entries, and_(entries.c.id == postings.c.entry_id, entries.c.kind == "fund_contribution"))
                        .where(accounts.c.purpose == "fund_balance").group_by(accounts.c.program_id))
    paid = _sums(conn, select(claims.c.program_id, func.sum(claim_payments.c.amount_fen))
                 .join(claims, claims.c.id == claim_payments.c.claim_id)
                 .join(claim_shares, claim_shares.c.id == claim_payments.c.share_id)
                 .where(claim_shares.c.role == "pool").group_by(claims.c.program_id))
    returned = _sums(conn, select(claims.c.program_id, func.sum(recovery_shares.c.amount_fen))
                     .join(recoveries, recoveries.c.id == recovery_shares.c.recovery_id)
                     .join(claims, claims.c.id == recoveries.c.claim_id)
                     .where(recovery_shares.c.role == "pool",
                            recovery_shares.c.to_institution_id == recovery_shares.c.institution_id)
                     .group_by(claims.c.program_id))
    records = {program: contributed.get(program, 0) - paid.get(program, 0) + returned.get(program, 0)
               for program in set(contributed) | set(paid) | set(returned)}
    return _differences("fund_balance", "program", records,
                        _balances_by(conn, accounts.c.program_id, "fund_balance"))


def _fund_paid_usage_equals_payments(conn: Connection) -> list[dict]:
    usage = _sums(conn, select(cap_usage.c.program_id, func.sum(cap_usage.c.used_fen))
                  .where(cap_usage.c.scope == "fund_paid").group_by(cap_usage.c.program_id))
    paid = _sums(conn, select(claims.c.program_id, func.sum(claim_payments.c.amount_fen))
                 .join(claims, claims.c.id == claim_payments.c.claim_id)
                 .join(claim_shares, claim_shares.c.id == claim_payments.c.share_id)
                 .where(claim_shares.c.role == "pool").group_by(claims.c.program_id))
    return _differences("fund_paid_usage", "program", {k: v for k, v in usage.items() if v}, paid)


def _banks_net_loss_equal_journal(conn: Connection) -> list[dict]:
    retained = _sums(conn, select(claims.c.bank_id, func.sum(claims.c.bank_retained_fen)).where(LIVE)
                     .group_by(claims.c.bank_id))
    back = _sums(conn, select(recoveries.c.bank_id, func.sum(recovery_shares.c.amount_fen))
                 .join(recoveries, recoveries.c.id == recovery_shares.c.recovery_id)
                 .where(recovery_shares.c.role == "bank").group_by(recoveries.c.bank_id))
    records = {bank: retained.get(bank, 0) - back.get(bank, 0) for bank in set(retained) | set(back)}
    losses = _balances_by(conn, accounts.c.institution_id, "credit_losses")
    recovered = _balances_by(conn, accounts.c.institution_id, "loss_recoveries", sign=-1)
    journal = {bank: losses.get(bank, 0) - recovered.get(bank, 0) for bank in losses}
    return _differences("bank_net_loss", "institution", records, journal)
