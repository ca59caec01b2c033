"""Read scopes and the journal's read side: which accounts and entries a reader may see.

A `ReadScope` is decided once by the caller (api/ from the key's role; the CLI sees all) and
applied here as SQL, so a page of results never leaks rows and never needs filtering in Python.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import Connection, case, exists, func, or_, select, true

from ledger import chain
from ledger.claim_books import check_claim_books
from ledger.errors import NotFound
from ledger.journal import balance_fen, normal_balance_fen
from ledger.schema import (accounts, borrowers, entries, institutions, loans, postings,
                           program_parties, programs)


@dataclass(frozen=True)
class ReadScope:
    """What one reader may see: everything (no fields set), one institution's own books
    (`institution_id`; as a lender, or as a programme party when `party` is set), or a region
    (`region_prefix`, '' meaning the country)."""

    institution_id: int | None = None
    region_prefix: str | None = None
    party: bool = False

    def loan_condition(self):
        """Loans visible: a bank's own; a party's programmes'; a region's borrowers'."""
        if self.institution_id is not None:
            if self.party:
                versions = select(program_parties.c.program_version_id).where(
                    program_parties.c.institution_id == self.institution_id)
                return loans.c.program_version_id.in_(versions)
            return loans.c.bank_id == self.institution_id
        if self.region_prefix:
            return loans.c.borrower_region.like(f"{self.region_prefix}%")
        return true()

    def borrower_condition(self):
        """Borrower records visible: a bank's own customer file; a party's, those of the loans
        it may see (its programmes'); a region's, records whose current region is in it."""
        if self.institution_id is not None:
            if self.party:
                return borrowers.c.id.in_(select(loans.c.borrower_id).where(self.loan_condition()))
            return borrowers.c.bank_id == self.institution_id
        if self.region_prefix:
            return borrowers.c.region.like(f"{self.region_prefix}%")
        return true()

    def account_condition(self):
        """Accounts visible: the institution's own and its loans' sub-ledgers; or, for a
        region, those of institutions, borrowers and programmes in it."""
        if self.institution_id is not None:
            own = accounts.c.institution_id == self.institution_id
            if self.party:
                return own
            lent = select(loans.c.id).where(loans.c.bank_id == self.institution_id)
            return or_(own, accounts.c.loan_id.in_(lent))
        if self.region_prefix:
            like = f"{self.region_prefix}%"
            return or_(
                accounts.c.institution_id.in_(select(institutions.c.id).where(institutions.c.region.like(like))),
                accounts.c.borrower_id.in_(select(borrowers.c.id).where(borrowers.c.region.like(like))),
                accounts.c.program_id.in_(select(programs.c.id).where(programs.c.region.like(like))))
        return true()


EVERYTHING = ReadScope()


def _accounts_with_owner():
    """Accounts with their owner's code (institution code, borrower credit code or programme
    code) and kind."""
    owner = func.coalesce(institutions.c.code, borrowers.c.credit_code, programs.c.code)
    owner_kind = case((accounts.c.institution_id.is_not(None), "institution"),
                      (accounts.c.borrower_id.is_not(None), "borrower"), else_="program")
    return (select(accounts, owner.label("owner"), owner_kind.label("owner_kind"))
            .outerjoin(institutions, institutions.c.id == accounts.c.institution_id)
            .outerjoin(borrowers, borrowers.c.id == accounts.c.borrower_id)
            .outerjoin(programs, programs.c.id == accounts.c.program_id)), owner


def list_accounts(conn: Connection, scope: ReadScope, *, owner_code: str | None = None,
                  after_id: int = 0, limit: int = 50) -> list[dict]:
    query, owner = _accounts_with_owner()
    query = query.where(scope.account_condition(), accounts.c.id > after_id)
    if owner_code:
        query = query.where(owner == owner_code)
    rows = conn.execute(query.order_by(accounts.c.id).limit(limit)).mappings()
    return [dict(row) for row in rows]


def account_balance(conn: Connection, scope: ReadScope, account_id: int,
                    as_of: date | None = None) -> dict:
    query, _ = _accounts_with_owner()
    row = conn.execute(query.where(accounts.c.id == account_id, scope.account_condition())).mappings().first()
    if row is None:
        raise NotFound(f"account {account_id} does not exist")
    signed = balance_fen(conn, account_id, as_of)
    return {"account": dict(row), "as_of": as_of, "balance_fen": signed,
            "normal_balance_fen": normal_balance_fen(row["kind"], signed)}


def _entries_in(scope: ReadScope):
    """The entries a reader sees: those touching its accounts (all of them for EVERYTHING)."""
    if scope == EVERYTHING:
        return true()
    return exists().where(postings.c.entry_id == entries.c.id,
                          postings.c.account_id == accounts.c.id, scope.account_condition())


def list_entries(conn: Connection, scope: ReadScope, *, after_id: int = 0, limit: int = 50) -> list[dict]:
    """Entries in id order with their postings; a scoped reader sees entries touching its accounts."""
    query = select(entries).where(entries.c.id > after_id, _entries_in(scope))
    rows = [dict(row) for row in conn.execute(query.order_by(entries.c.id).limit(limit)).mappings()]
    if not rows:
        return rows
    by_entry: dict[int, list] = {row["id"]: [] for row in rows}
    lines = conn.execute(select(postings, accounts.c.code.label("account_code"))
                         .join(accounts, accounts.c.id == postings.c.account_id)
                         .where(postings.c.entry_id.in_(list(by_entry)))
                         .order_by(postings.c.id)).mappings()
    for line in lines:
        by_entry[line["entry_id"]].append(dict(line))
    for row in rows:
        row["postings"] = by_entry[row["id"]]
    return rows


def verify_for(conn: Connection, scope: ReadScope, expect: tuple[int, str] | None = None) -> dict:
    """The whole book's proof (`ledger.chain.verify`: a hash chain can only be proven whole,
    whoever asks) and, under `scope`, what this reader's `/v1/journal` holds: its entries and
    their postings."""
    proof = chain.verify(conn, expect).as_dict()
    proof.update(asdict(check_claim_books(conn)))  # the journal equals the claim records
    if scope == EVERYTHING:
        proof["scope"] = {"entries": proof["entries"], "postings": proof["postings"]}
        return proof
    visible = select(entries.c.id).where(_entries_in(scope)).subquery()
    proof["scope"] = {
        "entries": conn.execute(select(func.count()).select_from(visible)).scalar_one(),
        "postings": conn.execute(select(func.count()).select_from(postings)
                                 .where(postings.c.entry_id.in_(select(visible.c.id)))).scalar_one(),
    }
    return proof
