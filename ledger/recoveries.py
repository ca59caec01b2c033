"""Recoveries: what selling the pledged IP (or the borrower) brings back after a claim (DOMAIN.md 4).

Guarantees
- Net recovery = gross - costs (costs above gross are refused; `ck_recoveries_net` on both
  databases). Only a loan with a live (open or settled) claim records one, by its own bank.
- The net is returned to those who bore the loss: each party its owed share, the bank its
  retained loss, in proportion, by largest remainder with the shares' tie-break
  (`sharing.split_recovery`). Several recoveries on one loan: the cumulative net is split and
  what earlier recoveries returned is subtracted, so rounding never drifts; no party ever gets
  back more than it bore. A cumulative net beyond the whole loss (the loss base) is refused:
  the surplus is the borrower's money, not a loss recovery.
- A party's `recoveries_to` (terms) sends its part to another institution (e.g. the treasury).
- ONE balanced entry per recovery with a net above zero (`recovery_distributed`,
  docs/ACCOUNTING.md); its parts sum to the net (also the PostgreSQL trigger
  `recoveries_split_sums`). Lock order: the loan, then its claim.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select

from ledger import accounts as chart
from ledger import sharing
from ledger.claim_payments import pays_from_fund
from ledger.claims import bound_terms
from ledger.dates import parse_date
from ledger.dates import today as business_today
from ledger.db import utcnow
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import Actor, EntryDraft, Line, ensure_accounts, post_entry
from ledger.loans import _lock_loan
from ledger.money import check_fen, format_yuan
from ledger.schema import (RECOVERY_SOURCES, claim_shares, claims, institutions, recoveries,
                           recovery_shares)

MAX_REFERENCE = 120


def record_recovery(conn: Connection, loan_id: int, bank_id: int, received_on, gross_fen: int,
                    costs_fen: int, source: str, reference: str | None, actor: Actor,
                    today: date | None = None) -> dict:
    """Record a recovery on the loan's live claim and return its net to the bearers."""
    received_on = parse_date(received_on, "received_on")
    gross_fen, costs_fen = check_fen(gross_fen, "gross"), check_fen(costs_fen, "costs")
    if costs_fen > gross_fen:
        raise Invalid.field("costs", f"{format_yuan(costs_fen)} is more than the gross "
                                     f"{format_yuan(gross_fen)}: net recovery = gross - costs")
    if source not in RECOVERY_SOURCES:
        raise Invalid.field("source", f"must be one of {', '.join(RECOVERY_SOURCES)}")
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise Invalid.field("reference", f"1 to {MAX_REFERENCE} characters")
    loan = _lock_loan(conn, loan_id, bank_id)
    claim = conn.execute(select(claims).where(claims.c.loan_id == loan_id, claims.c.status != "withdrawn")
                         .with_for_update()).first()
    if claim is None:
        raise Conflict(f"loan {loan_id} has no live claim; a recovery follows a claim")
    if received_on > (today or business_today()):
        raise Invalid.field("received_on", "cannot be in the future")
    if received_on < claim.classified_on:
        raise Invalid.field("received_on", f"is before the claim's date {claim.classified_on.isoformat()}")
    net_fen = gross_fen - costs_fen
    bearers = _bearers(conn, claim)
    before = _returned_before(conn, claim.id, len(bearers))
    _refuse_beyond_loss(conn, claim, net_fen)
    redirects = _redirect_ids(conn, loan)
    parts, surplus = sharing.split_recovery(net_fen, [(str(b["position"]), b["borne_fen"]) for b in bearers],
                                            [before.get(b["position"], 0) for b in bearers])
    assert surplus == 0, "a net beyond the loss was refused above"
    rows = [{**bearer, "amount_fen": part.fen,
             "to_institution_id": redirects.get(bearer["institution_id"], bearer["institution_id"])}
            for bearer, part in zip(bearers, parts)]
    entry_id = _post_recovery(conn, claim, rows, received_on, actor) if net_fen else None
    recovery_id = conn.execute(recoveries.insert().values(
        loan_id=loan_id, claim_id=claim.id, bank_id=bank_id, received_on=received_on,
        gross_fen=gross_fen, costs_fen=costs_fen, net_fen=net_fen, source=source,
        reference=reference, entry_id=entry_id, created_by_key_id=actor.key_id,
        created_at=utcnow()).returning(recoveries.c.id)).scalar_one()
    conn.execute(recovery_shares.insert(), [{"recovery_id": recovery_id, **row} for row in rows])
    return get_recovery(conn, recovery_id)


def _bearers(conn: Connection, claim) -> list[dict]:
    """Who bore the loss, in terms order, the bank last (position after every party)."""
    shares = conn.execute(select(claim_shares).where(claim_shares.c.claim_id == claim.id)
                          .order_by(claim_shares.c.position)).all()
    bearers = [{"position": s.position, "institution_id": s.institution_id, "role": s.role,
                "borne_fen": s.amount_fen} for s in shares]
    bearers.append({"position": len(shares), "institution_id": claim.bank_id, "role": "bank",
                    "borne_fen": claim.bank_retained_fen})
    return [bearer for bearer in bearers if bearer["borne_fen"] > 0]  # the loss base is > 0


def _returned_before(conn: Connection, claim_id: int, count: int) -> dict[int, int]:
    rows = conn.execute(
        select(recovery_shares.c.position, func.sum(recovery_shares.c.amount_fen))
        .join(recoveries, recoveries.c.id == recovery_shares.c.recovery_id)
        .where(recoveries.c.claim_id == claim_id).group_by(recovery_shares.c.position))
    return {position: int(fen) for position, fen in rows}


def _refuse_beyond_loss(conn: Connection, claim, net_fen: int) -> None:
    earlier_fen = int(conn.execute(select(func.coalesce(func.sum(recoveries.c.net_fen), 0))
                                   .where(recoveries.c.claim_id == claim.id)).scalar_one())
    left_fen = claim.loss_base_fen - earlier_fen
    if net_fen > left_fen:
        raise Invalid.field("gross", f"the net recovery {format_yuan(net_fen)} is more than the "
                                     f"{format_yuan(left_fen)} of loss not yet recovered on this claim; "
                                     "a surplus over the loss is the borrower's, not a loss recovery")


def _redirect_ids(conn: Connection, loan) -> dict[int, int]:
    codes = sharing.recovery_redirects(bound_terms(conn, loan))
    if not codes:
        return {}
    ids = dict(conn.execute(select(institutions.c.code, institutions.c.id)
                            .where(institutions.c.code.in_(set(codes) | set(codes.values())))).all())
    return {ids[party]: ids[to] for party, to in codes.items()}


def _post_recovery(conn: Connection, claim, rows: list[dict], on: date, actor: Actor) -> int:
    """recovery_distributed: each recipient's cash rises against a recovery income; a pool's
    own part goes back into its programme's fund. The bank passes the others' parts on, so
    only its own part shows in its books."""
    specs = {}
    for row in rows:
        if not row["amount_fen"]:
            continue
        to = row["to_institution_id"]
        into_fund = to == row["institution_id"] and pays_from_fund(row["role"])
        specs[row["position"]] = ((chart.program_fund(claim.program_id), chart.program_recoveries(claim.program_id))
                                  if into_fund else (chart.settlement(to), chart.loss_recoveries(to)))
    ids = ensure_accounts(conn, [spec for pair in specs.values() for spec in pair])
    lines: dict[int, int] = {}  # one line per account (a treasury may receive two parts)
    for row in rows:
        if row["position"] in specs:
            cash, income = specs[row["position"]]
            lines[ids[cash.code]] = lines.get(ids[cash.code], 0) + row["amount_fen"]
            lines[ids[income.code]] = lines.get(ids[income.code], 0) - row["amount_fen"]
    draft = EntryDraft("recovery_distributed", on, tuple(Line(a, fen) for a, fen in lines.items() if fen),
                       memo=f"recovery on claim {claim.id}", loan_id=claim.loan_id)
    return post_entry(conn, draft, actor)


# --- reads ---------------------------------------------------------------------------------

def get_recovery(conn: Connection, recovery_id: int) -> dict:
    row = conn.execute(select(recoveries).where(recoveries.c.id == recovery_id)).mappings().first()
    if row is None:
        raise NotFound(f"recovery {recovery_id} does not exist")
    return {**dict(row), "distribution": _distribution(conn, [recovery_id])[recovery_id]}


def _distribution(conn: Connection, recovery_ids: list[int]) -> dict[int, list[dict]]:
    to = institutions.alias("to_institution")
    found: dict[int, list[dict]] = {recovery_id: [] for recovery_id in recovery_ids}
    for row in conn.execute(
            select(recovery_shares, institutions.c.code.label("institution"), to.c.code.label("to"))
            .join(institutions, institutions.c.id == recovery_shares.c.institution_id)
            .join(to, to.c.id == recovery_shares.c.to_institution_id)
            .where(recovery_shares.c.recovery_id.in_(recovery_ids))
            .order_by(recovery_shares.c.recovery_id, recovery_shares.c.position)).mappings():
        found[row["recovery_id"]].append(dict(row))
    return found


def recoveries_of(conn: Connection, claim_ids: list[int]) -> dict[int, list[dict]]:
    """Each claim's recoveries with their distribution, oldest first (for claim reads)."""
    rows = [dict(row) for row in conn.execute(select(recoveries).where(recoveries.c.claim_id.in_(claim_ids))
                                              .order_by(recoveries.c.id)).mappings()]
    parts = _distribution(conn, [row["id"] for row in rows]) if rows else {}
    found: dict[int, list[dict]] = {claim_id: [] for claim_id in claim_ids}
    for row in rows:
        found[row["claim_id"]].append({**row, "distribution": parts[row["id"]]})
    return found
