"""Corrections: a bank reverses a mistaken repayment or fee of its own loan (issue 8 item 7).

Guarantees
- A correction is ONE reversal entry (`ledger.journal.reverse_entry`): the mirror of the
  mistaken posting, never an edit of it. It takes effect on the original's effective date, so
  every balance as of any day reads as if the mistake had never been posted (the reversal's
  `recorded_at` says when it was corrected).
- Only a `repayment` or a fee (`premium_paid`, `guarantee_fee_paid`, `appraisal_fee_paid`)
  posted for THIS loan may be reversed; any other entry id is refused the same way whether it
  exists or not (422 on `entry`: another bank's entry ids are not disclosed).
- Refused (Conflict) once a live claim exists on the loan: the claim's loss base was computed
  from the loan's principal, and a claim is corrected by withdrawing it first. A withdrawn
  claim does not block (its entry is already reversed, nothing depends on it).
- Refused (Conflict) for an entry already reversed; the journal's unique `reverses_id` keeps
  that true under concurrency too.
- The loan's status and closed_on follow the journal (`ledger.loans.settle_status`, under the
  loan's row lock): a loan closed by the reversed repayment is active again, its pledges live
  again (Conflict if one of its patents is meanwhile pledged to another live loan).
"""
from __future__ import annotations

from sqlalchemy import Connection, select

from ledger.accounts import FEE_KINDS
from ledger.errors import Conflict, Invalid
from ledger.journal import Actor, reverse_entry
from ledger.loans import _lock_loan, principal_by_day, settle_status
from ledger.schema import claims, entries

CORRECTABLE_KINDS = ("repayment",) + tuple(f"{kind}_paid" for kind in FEE_KINDS)
MAX_REASON_LENGTH = 500


def reverse_posting(conn: Connection, loan_id: int, bank_id: int, entry_id: int, reason: str,
                    actor: Actor) -> dict:
    """Reverse the bank's mistaken repayment or fee `entry_id` of loan `loan_id` (see above)."""
    reason = _check_reason(reason)
    loan = _lock_loan(conn, loan_id, bank_id)  # the fixed order: loan first, then the journal
    original = conn.execute(select(entries.c.id, entries.c.kind, entries.c.effective_on)
                            .where(entries.c.id == entry_id, entries.c.loan_id == loan_id)).first()
    if original is None or original.kind not in CORRECTABLE_KINDS:
        raise Invalid.field("entry", f"entry {entry_id} is not a repayment or fee of loan {loan_id}")
    live_claim = conn.execute(select(claims.c.id).where(
        claims.c.loan_id == loan_id, claims.c.status != "withdrawn")).scalar()
    if live_claim is not None:
        raise Conflict(f"loan {loan_id} has claim {live_claim}; its postings are no longer corrected "
                       "by reversal (withdraw the claim first)")
    reversal_id = reverse_entry(conn, entry_id, original.effective_on, actor,
                                memo=f"correction of entry {entry_id}: {reason}")
    balances = principal_by_day(conn, loan_id)
    status, closed_on = settle_status(conn, loan, balances)
    return {"entry": reversal_id, "reverses": entry_id, "kind": original.kind, "loan": loan_id,
            "effective_on": original.effective_on, "reason": reason,
            "outstanding_principal_fen": balances[-1][1] if balances else 0,
            "status": status, "closed_on": closed_on}


def _check_reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > MAX_REASON_LENGTH:
        raise Invalid.field("reason", f"must say why, in 1-{MAX_REASON_LENGTH} characters")
    return reason.strip()
