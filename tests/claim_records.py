"""Payment and recovery records for tests of what reads them (loss histories, reconciliation),
written the way the payments work (branch i8-pay) will: one balanced journal entry each and the
rows of migration 0009 (`claim_payments`, `claim_shares.paid_fen`, `recoveries`,
`recovery_shares`). A stand-in until `ledger` records them itself; only tests use it."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select, update

from ledger import accounts as chart
from ledger.db import utcnow
from ledger.journal import SYSTEM, EntryDraft, Line, ensure_accounts, post_entry
from ledger.money import allocate
from ledger.schema import claim_payments, claim_shares, claims, recoveries, recovery_shares
from tests.factories import tx


def pay(claim_id: int, institution_id: int, amount_fen: int, paid_on: date, reference: str | None = None) -> int:
    """The party pays `amount_fen` on its share: Dr its claims payable, Cr its settlement; the
    bank's side Dr settlement, Cr the loan's claim receivable. Returns the payment id."""
    def work(conn):
        claim = conn.execute(select(claims).where(claims.c.id == claim_id)).first()
        share = conn.execute(select(claim_shares).where(claim_shares.c.claim_id == claim_id,
                                                        claim_shares.c.institution_id == institution_id)).first()
        specs = [chart.claims_payable(institution_id), chart.settlement(institution_id),
                 chart.settlement(claim.bank_id), chart.claim_receivable(claim.loan_id, claim.bank_id)]
        ids = [ensure_accounts(conn, [spec])[spec.code] for spec in specs]
        entry = post_entry(conn, EntryDraft("claim_paid", paid_on, (
            Line(ids[0], amount_fen), Line(ids[1], -amount_fen), Line(ids[2], amount_fen), Line(ids[3], -amount_fen)),
            loan_id=claim.loan_id))
        conn.execute(update(claim_shares).where(claim_shares.c.id == share.id)
                     .values(paid_fen=claim_shares.c.paid_fen + amount_fen))
        return conn.execute(claim_payments.insert().values(
            claim_id=claim_id, share_id=share.id, institution_id=institution_id, amount_fen=amount_fen,
            paid_on=paid_on, reference=reference, entry_id=entry, created_at=utcnow())
            .returning(claim_payments.c.id)).scalar_one()
    return tx(work)


def recover(claim_id: int, net_fen: int, received_on: date, redirect: dict | None = None,
            reference: str | None = None) -> list[tuple[int, int]]:
    """A recovery of `net_fen` (no costs) returned in proportion to what each bore (largest
    remainder, the bank last), no journal entry (the net is recorded, the entry is i8-pay's);
    `redirect` maps a party id to the institution that receives its part. Returns
    [(institution id, returned fen)]."""
    def work(conn):
        claim = conn.execute(select(claims).where(claims.c.id == claim_id)).first()
        shares = conn.execute(select(claim_shares).where(claim_shares.c.claim_id == claim_id)
                              .order_by(claim_shares.c.position)).all()
        bearers = [(s.institution_id, s.role, s.amount_fen) for s in shares] + [
            (claim.bank_id, "bank", claim.bank_retained_fen)]
        parts = allocate(net_fen, [borne for _, _, borne in bearers])
        recovery_id = conn.execute(recoveries.insert().values(
            loan_id=claim.loan_id, claim_id=claim_id, bank_id=claim.bank_id, received_on=received_on,
            gross_fen=net_fen, costs_fen=0, net_fen=net_fen, source="auction", reference=reference,
            entry_id=None, created_at=utcnow()).returning(recoveries.c.id)).scalar_one()
        conn.execute(recovery_shares.insert(), [
            {"recovery_id": recovery_id, "position": position, "institution_id": institution,
             "role": role, "borne_fen": borne, "amount_fen": part,
             "to_institution_id": (redirect or {}).get(institution, institution)}
            for position, ((institution, role, borne), part) in enumerate(zip(bearers, parts))])
        return [(institution, part) for (institution, _, _), part in zip(bearers, parts)]
    return tx(work)
