"""Claim payments: a party pays its share of a claim to the bank (DOMAIN.md 3.5).

Guarantees
- Only a party named on the claim pays, and only on its own share; another institution is told
  the claim does not exist (it cannot see it). Nothing beyond what the share still owes is
  accepted (`claim_shares.paid_fen <= amount_fen` is also a CHECK on both databases); while the
  claim's pays-first party has not paid in full, no other party's payment is accepted; nothing
  is paid on a withdrawn claim; a payer's reference is used once (statements match on it).
- ONE balanced entry per payment (`claim_paid`, docs/ACCOUNTING.md): the party's claims
  payable is discharged and the bank's claim receivable collected. A pool pays from its
  programme's fund, which never goes negative: the fund account is locked (FOR UPDATE) before
  its balance is read, so two payments at once cannot both spend its last yuan; on PostgreSQL
  the trigger `postings_fund_not_negative` refuses the same at the database (docs/DATABASE_RULES.md).
- The share's `paid_fen` is updated under the claim's lock; the claim is `settled` (with
  `settled_on`, the latest payment day) when every share is paid in full.
Lock order: claim, its shares, then the fund account (claim opening takes the loan, the cap
usage rows, then the fund account; no path takes them the other way round).
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from ledger import accounts as chart
from ledger import sharing
from ledger.claims import add_fund_paid
from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.db import utcnow
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import Actor, EntryDraft, Line, balance_fen, ensure_accounts, post_entry
from ledger.money import check_fen, format_yuan
from ledger.programs import lock_fund
from ledger.schema import accounts, claim_payments, claim_shares, claims, institutions

MAX_REFERENCE = 120


def pay_claim(conn: Connection, claim_id: int, payer_id: int, amount_fen: int, paid_on,
              reference: str | None, actor: Actor, today: date | None = None) -> dict:
    """Record `payer_id`'s payment of `amount_fen` on its share of the claim; returns it."""
    amount_fen = check_fen(amount_fen, "amount", allow_zero=False)
    paid_on = parse_date(paid_on, "paid_on")
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise Invalid.field("reference", f"1 to {MAX_REFERENCE} characters")
    claim = _lock_claim(conn, claim_id, payer_id)
    if claim.status == "withdrawn":
        raise Conflict(f"claim {claim_id} was withdrawn; nothing is paid on it")
    if paid_on > (today or business_today()):
        raise Invalid.field("paid_on", "cannot be in the future")
    if paid_on < claim.classified_on:
        raise Invalid.field("paid_on", f"is before the claim's date {claim.classified_on.isoformat()}")
    shares = conn.execute(select(claim_shares).where(claim_shares.c.claim_id == claim_id)
                          .order_by(claim_shares.c.position).with_for_update()).all()
    share = next(row for row in shares if row.institution_id == payer_id)
    _refuse_if_not_accepted(shares, share, amount_fen)
    _refuse_reused_reference(conn, payer_id, reference)
    entry_id = _post_payment(conn, claim, share, amount_fen, paid_on, actor)
    payment_id = _insert_payment(conn, claim, share, amount_fen, paid_on, reference, entry_id, actor)
    conn.execute(update(claim_shares).where(claim_shares.c.id == share.id)
                 .values(paid_fen=claim_shares.c.paid_fen + amount_fen))
    _settle_if_paid(conn, claim_id)
    return get_payment(conn, payment_id)


def _lock_claim(conn: Connection, claim_id: int, payer_id: int):
    """The claim, locked, if the payer is named on it; else it does not exist to the payer."""
    named = select(claim_shares.c.id).where(claim_shares.c.claim_id == claim_id,
                                            claim_shares.c.institution_id == payer_id)
    claim = conn.execute(select(claims).where(claims.c.id == claim_id, named.exists())
                         .with_for_update()).first()
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return claim


def _refuse_if_not_accepted(shares, share, amount_fen: int) -> None:
    values = [sharing.Share(str(row.institution_id), None, row.computed_fen, row.amount_fen,
                            row.pays_first) for row in shares]
    paid = {str(row.institution_id): row.paid_fen for row in shares}
    refusal = sharing.payment_refusal(values, paid, str(share.institution_id), amount_fen)
    if refusal == sharing.PAYMENT_PAYS_FIRST_UNPAID:
        first = next(row for row in shares if row.pays_first)
        raise Conflict(f"the pays-first party has paid {format_yuan(first.paid_fen)} of "
                       f"{format_yuan(first.amount_fen)}; no other payment is accepted before it "
                       "has paid in full")
    if refusal in (sharing.PAYMENT_OVERPAY, sharing.PAYMENT_NOT_A_PARTY):
        # A share capped to 0 is still the party's (it sees the claim): it owes 0.00 more.
        raise Invalid.field("amount", f"{format_yuan(amount_fen)} is more than the "
                                      f"{format_yuan(share.amount_fen - share.paid_fen)} outstanding")
    assert refusal is None, refusal


def _refuse_reused_reference(conn: Connection, payer_id: int, reference: str | None) -> None:
    if reference is None:
        return
    used = conn.execute(select(claim_payments.c.claim_id).where(
        claim_payments.c.institution_id == payer_id, claim_payments.c.reference == reference)).first()
    if used is not None:
        raise Conflict(f"reference {reference!r} is already used by a payment of yours "
                       f"(claim {used.claim_id})")


def pays_from_fund(role: str) -> bool:
    """A pool's share is paid from its programme's fund; other parties pay from settlement."""
    return role == "pool"


def _post_payment(conn: Connection, claim, share, amount_fen: int, paid_on: date, actor: Actor) -> int:
    """claim_paid: the party's payable is discharged, the bank's claim receivable collected.
    Each owner's lines balance: a pool's are met by the fund (the fund's own lines balance)."""
    bank_specs = [chart.settlement(claim.bank_id), chart.claim_receivable(claim.loan_id, claim.bank_id),
                  chart.claims_payable(share.institution_id)]
    if pays_from_fund(share.role):
        payer_specs = [chart.claims_met_by_fund(share.institution_id),
                       chart.program_claims_paid(claim.program_id), chart.program_fund(claim.program_id)]
    else:
        payer_specs = [chart.settlement(share.institution_id)]
    ids = ensure_accounts(conn, bank_specs + payer_specs)
    bank_cash, receivable, payable = (ids[spec.code] for spec in bank_specs)
    lines = [Line(bank_cash, amount_fen), Line(receivable, -amount_fen), Line(payable, amount_fen)]
    if pays_from_fund(share.role):
        met, paid_out, fund = (ids[spec.code] for spec in payer_specs)
        lock_fund(conn, claim.program_id)  # in turn with contributions, as claims are
        _refuse_fund_shortfall(conn, fund, amount_fen)
        add_fund_paid(conn, claim.program_id, share.institution_id, amount_fen)  # a later claim's fund cap
        lines += [Line(met, -amount_fen), Line(paid_out, amount_fen), Line(fund, -amount_fen)]
    else:
        lines.append(Line(ids[payer_specs[0].code], -amount_fen))
    draft = EntryDraft("claim_paid", paid_on, tuple(lines), memo=f"payment on claim {claim.id}",
                       loan_id=claim.loan_id)
    return post_entry(conn, draft, actor)


def _refuse_fund_shortfall(conn: Connection, fund_account_id: int, amount_fen: int) -> None:
    """Lock the fund account, then read its balance: payments from one fund serialise here."""
    conn.execute(select(accounts.c.id).where(accounts.c.id == fund_account_id).with_for_update())
    balance = balance_fen(conn, fund_account_id)
    if balance < amount_fen:
        raise Conflict(f"the programme's fund holds {format_yuan(balance)}, less than the "
                       f"{format_yuan(amount_fen)} to pay; the fund never goes negative: top it up first")


def _insert_payment(conn: Connection, claim, share, amount_fen: int, paid_on: date,
                    reference: str | None, entry_id: int, actor: Actor) -> int:
    try:
        with conn.begin_nested():  # a concurrent payment with the same reference won the race
            return conn.execute(claim_payments.insert().values(
                claim_id=claim.id, share_id=share.id, institution_id=share.institution_id,
                amount_fen=amount_fen, paid_on=paid_on, reference=reference, entry_id=entry_id,
                created_by_key_id=actor.key_id, created_at=utcnow()).returning(claim_payments.c.id)).scalar_one()
    except IntegrityError as exc:
        raise Conflict(f"reference {reference!r} is already used by a payment of yours") from exc


def _settle_if_paid(conn: Connection, claim_id: int) -> None:
    owed, paid = conn.execute(select(func.sum(claim_shares.c.amount_fen), func.sum(claim_shares.c.paid_fen))
                              .where(claim_shares.c.claim_id == claim_id)).one()
    if paid == owed:
        last_day = conn.execute(select(func.max(claim_payments.c.paid_on))
                                .where(claim_payments.c.claim_id == claim_id)).scalar_one()
        conn.execute(update(claims).where(claims.c.id == claim_id)
                     .values(status="settled", settled_on=last_day))


# --- reads ---------------------------------------------------------------------------------

def get_payment(conn: Connection, payment_id: int) -> dict:
    row = conn.execute(
        select(claim_payments, institutions.c.code.label("institution"), claim_shares.c.role,
               claim_shares.c.amount_fen.label("share_fen"), claim_shares.c.paid_fen.label("share_paid_fen"),
               claims.c.status.label("claim_status"))
        .join(institutions, institutions.c.id == claim_payments.c.institution_id)
        .join(claim_shares, claim_shares.c.id == claim_payments.c.share_id)
        .join(claims, claims.c.id == claim_payments.c.claim_id)
        .where(claim_payments.c.id == payment_id)).mappings().first()
    if row is None:
        raise NotFound(f"payment {payment_id} does not exist")
    return dict(row)


def payments_of(conn: Connection, claim_ids: list[int]) -> dict[int, list[dict]]:
    """Each claim's payments, oldest first (for claim reads)."""
    found: dict[int, list[dict]] = {claim_id: [] for claim_id in claim_ids}
    for row in conn.execute(
            select(claim_payments, institutions.c.code.label("institution"))
            .join(institutions, institutions.c.id == claim_payments.c.institution_id)
            .where(claim_payments.c.claim_id.in_(claim_ids)).order_by(claim_payments.c.id)).mappings():
        found[row["claim_id"]].append(dict(row))
    return found
