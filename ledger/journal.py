"""The journal: accounts, balanced immutable entries, reversals and balances.

What `post_entries` promises (the only way money moves):
- every entry has at least two postings, no posting is zero, and the postings sum to zero per
  currency (debit positive, credit negative: see the design overview in `ledger.schema`);
- every account exists and holds the posting's currency; the effective date is given;
- a reversal (`reverses_id`) mirrors an entry that exists: the same accounts and currencies
  with negated amounts (as a multiset), the same loan, not dated before it; that entry is not
  itself a reversal and is reversed at most once (also within one batch);
- the whole batch is written or nothing is (it runs inside the caller's transaction);
- rows are only ever inserted: a correction is a reversal (`reverse_entry` builds one).
A single entry is a batch of one: there is no second, slower path. The database holds the same
rules where it can (docs/DATABASE_RULES.md).

Balances are sums of postings; `as_of` takes entries whose effective date is on or before it.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from ledger.bulk import insert_many
from ledger.db import is_postgres, utcnow
from ledger.errors import Conflict, Invalid, NotFound
from ledger.schema import accounts, entries, postings

CURRENCY = "CNY"
# Which side an account's balance naturally sits on: +1 debit (asset, expense), -1 credit.
NORMAL_SIGN = {"asset": 1, "expense": 1, "liability": -1, "equity": -1, "income": -1}
MAX_POSTINGS_PER_ENTRY = 100
# Look-ups every posting runs, built once (SQLAlchemy reuses their compiled form).
_ACCOUNTS_BY_CODE = select(accounts.c.code, accounts.c.id, accounts.c.currency).where(
    accounts.c.code.in_(bindparam("codes", expanding=True)))
_ACCOUNTS_BY_ID = select(accounts.c.id, accounts.c.currency).where(
    accounts.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class Line:
    """One posting to make: `amount_fen` > 0 debits the account, < 0 credits it."""

    account_id: int
    amount_fen: int
    currency: str = CURRENCY


@dataclass(frozen=True)
class EntryDraft:
    """A business event before it is posted.

    kind: event name (`loan_disbursed`, `repayment`, `reversal`...); effective_on: the business
    date balances use; lines: the postings; loan_id: the loan it concerns, if any.
    """

    kind: str
    effective_on: date
    lines: tuple[Line, ...]
    memo: str | None = None
    loan_id: int | None = None
    reverses_id: int | None = None


@dataclass(frozen=True)
class Actor:
    """Who makes an entry: the API key and its institution (None for jobs and the CLI)."""

    key_id: int | None = None
    institution_id: int | None = None
    idempotency_key: str | None = None


SYSTEM = Actor()


@dataclass(frozen=True)
class AccountSpec:
    """An account to find or create, identified by its unique `code`."""

    code: str
    name: str
    kind: str
    purpose: str
    institution_id: int | None = None
    borrower_id: int | None = None
    program_id: int | None = None
    loan_id: int | None = None
    currency: str = CURRENCY


# --- accounts -------------------------------------------------------------------------------

def ensure_accounts(conn: Connection, specs: Iterable[AccountSpec]) -> dict[str, int]:
    """Find or create each account by code; returns code -> id. Safe under concurrent callers.
    Every account returned holds its spec's currency (so callers may pass the specs' currencies
    to `post_entries` as known)."""
    wanted = {spec.code: spec for spec in specs}
    ids = _account_ids(conn, wanted)
    missing = [spec for code, spec in wanted.items() if code not in ids]
    if missing:
        rows = [_account_row(spec) for spec in missing]
        conn.execute(_insert_ignoring_duplicates(conn, accounts), rows)
        ids.update(_account_ids(conn, {spec.code: spec for spec in missing}))
    assert len(ids) == len(wanted), "every wanted account must exist after ensure_accounts"
    return ids


def create_accounts(conn: Connection, specs: Sequence[AccountSpec]) -> dict[str, int]:
    """Create accounts known to be new (e.g. a new loan's sub-ledgers) in one bulk insert."""
    if not specs:
        return {}
    ids = insert_many(conn, accounts, [_account_row(spec) for spec in specs], return_ids=True)
    return {spec.code: account_id for spec, account_id in zip(specs, ids)}


def _account_row(spec: AccountSpec) -> dict:
    assert spec.kind in NORMAL_SIGN, f"unknown account kind {spec.kind}"
    owners = [spec.institution_id, spec.borrower_id, spec.program_id]
    assert sum(owner is not None for owner in owners) == 1, f"{spec.code} needs exactly one owner"
    return {"code": spec.code, "name": spec.name, "kind": spec.kind, "purpose": spec.purpose,
            "currency": spec.currency, "institution_id": spec.institution_id,
            "borrower_id": spec.borrower_id, "program_id": spec.program_id,
            "loan_id": spec.loan_id, "created_at": utcnow()}


def _insert_ignoring_duplicates(conn: Connection, table):
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table).on_conflict_do_nothing(index_elements=["code"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=["code"])


def _account_ids(conn: Connection, wanted: dict) -> dict[str, int]:
    found: dict[str, int] = {}
    codes = list(wanted)
    for start in range(0, len(codes), 5000):  # stay under bind-parameter limits
        chunk = codes[start:start + 5000]
        rows = conn.execute(_ACCOUNTS_BY_CODE, {"codes": chunk})
        for code, account_id, currency in rows:
            if currency != wanted[code].currency:
                raise Conflict(f"account {code} holds {currency}, not {wanted[code].currency}")
            found[code] = account_id
    return found


def get_account(conn: Connection, account_id: int):
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        raise NotFound(f"account {account_id} does not exist")
    return row


# --- posting --------------------------------------------------------------------------------

def post_entry(conn: Connection, draft: EntryDraft, actor: Actor = SYSTEM) -> int:
    """Post one entry (a batch of one); returns its id."""
    return post_entries(conn, [draft], actor)[0]


def post_entries(conn: Connection, drafts: Sequence[EntryDraft], actor: Actor = SYSTEM, *,
                 known_currencies: Mapping[int, str] | None = None,
                 recorded_at: datetime | None = None) -> list[int]:
    """Validate and post every draft in the caller's transaction; returns ids in draft order.
    `known_currencies` (account id -> currency) names accounts the caller found or created in
    this transaction (`ensure_accounts`, `create_accounts`): they are not looked up again.
    `recorded_at` lets the caller render the entries without reading them back."""
    for index, draft in enumerate(drafts):
        check_draft(draft, index)
    _check_accounts(conn, drafts, known_currencies or {})
    _check_reversals(conn, drafts)
    recorded_at = recorded_at or utcnow()
    entry_rows = [_entry_row(draft, actor, recorded_at) for draft in drafts]
    try:
        entry_ids = insert_many(conn, entries, entry_rows, return_ids=True)
    except IntegrityError as exc:
        if any(d.reverses_id is not None for d in drafts):  # a concurrent reversal won
            raise Conflict("that entry has already been reversed") from exc
        raise
    posting_rows = [
        {"entry_id": entry_id, "account_id": line.account_id, "amount_fen": line.amount_fen,
         "currency": line.currency}
        for entry_id, draft in zip(entry_ids, drafts) for line in draft.lines]
    insert_many(conn, postings, posting_rows)
    return entry_ids


def check_draft(draft: EntryDraft, index: int = 0) -> None:
    """The balance rules, checked before anything is written (PostgreSQL re-checks at commit)."""
    where = f"entries.{index}"
    if not isinstance(draft.effective_on, date):
        raise Invalid.field(f"{where}.effective_on", "an effective date is required")
    if not 2 <= len(draft.lines) <= MAX_POSTINGS_PER_ENTRY:
        raise Invalid.field(f"{where}.postings",
                            f"an entry needs 2 to {MAX_POSTINGS_PER_ENTRY} postings")
    totals: dict[str, int] = defaultdict(int)
    for line in draft.lines:
        if not isinstance(line.amount_fen, int) or isinstance(line.amount_fen, bool):
            raise Invalid.field(f"{where}.postings", "amounts are integer fen")
        if line.amount_fen == 0:
            raise Invalid.field(f"{where}.postings", "a posting may not be zero")
        totals[line.currency] += line.amount_fen
    unbalanced = {cur: total for cur, total in totals.items() if total != 0}
    if unbalanced:
        raise Invalid.field(f"{where}.postings", f"postings do not sum to zero: {unbalanced}")


def _chunks(ids: Iterable[int], size: int = 5000) -> Iterable[list[int]]:
    """Sorted ids in lists that stay under bind-parameter limits."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def _check_accounts(conn: Connection, drafts: Sequence[EntryDraft], known: Mapping[int, str]) -> None:
    currency_by_id: dict[int, str] = dict(known)
    for chunk in _chunks(line.account_id for draft in drafts for line in draft.lines
                         if line.account_id not in known):
        rows = conn.execute(_ACCOUNTS_BY_ID, {"ids": chunk})
        currency_by_id.update({row.id: row.currency for row in rows})
    for draft_index, draft in enumerate(drafts):
        for line in draft.lines:
            currency = currency_by_id.get(line.account_id)
            if currency is None:
                raise Invalid.field(f"entries.{draft_index}.postings",
                                    f"account {line.account_id} does not exist")
            if currency != line.currency:
                raise Invalid.field(f"entries.{draft_index}.postings",
                                    f"account {line.account_id} holds {currency}, not {line.currency}")


def _check_reversals(conn: Connection, drafts: Sequence[EntryDraft]) -> None:
    """The reversal rules for every draft with `reverses_id` (three queries per 5,000 targets)."""
    reversals = [(index, draft) for index, draft in enumerate(drafts) if draft.reverses_id is not None]
    if not reversals:
        return
    originals, reversed_by, mirrors = {}, {}, defaultdict(Counter)
    for chunk in _chunks(draft.reverses_id for _, draft in reversals):
        originals.update({row.id: row for row in conn.execute(
            select(entries.c.id, entries.c.reverses_id, entries.c.effective_on, entries.c.loan_id)
            .where(entries.c.id.in_(chunk)))})
        reversed_by.update(dict(conn.execute(select(entries.c.reverses_id, entries.c.id)
                                             .where(entries.c.reverses_id.in_(chunk))).all()))
        for row in conn.execute(select(postings.c.entry_id, postings.c.account_id,
                                       postings.c.amount_fen, postings.c.currency)
                                .where(postings.c.entry_id.in_(chunk))):
            mirrors[row.entry_id][(row.account_id, -row.amount_fen, row.currency)] += 1
    in_batch: dict[int, int] = {}
    for index, draft in reversals:
        target = draft.reverses_id
        if target in in_batch:
            raise Conflict(f"entry {target} is reversed twice in this batch "
                           f"(entries.{in_batch[target]} and entries.{index})")
        in_batch[target] = index
        _check_reversal(index, draft, originals.get(target), reversed_by.get(target), mirrors[target])


def _check_reversal(index: int, draft: EntryDraft, original, reversed_by_id: int | None,
                    mirror: Counter) -> None:
    target, where = draft.reverses_id, f"entries.{index}"
    if original is None:
        raise NotFound(f"entry {target} does not exist")
    if original.reverses_id is not None:
        raise Conflict(f"entry {target} is itself a reversal; post the event again instead")
    if reversed_by_id is not None:
        raise Conflict(f"entry {target} was already reversed by entry {reversed_by_id}")
    if draft.effective_on < original.effective_on:
        raise Invalid.field(f"{where}.effective_on",
                            "a reversal cannot take effect before the entry it reverses")
    if draft.loan_id != original.loan_id:
        raise Invalid.field(f"{where}.loan_id", f"a reversal concerns the loan of the entry it "
                                                f"reverses (loan {original.loan_id})")
    if Counter((line.account_id, line.amount_fen, line.currency) for line in draft.lines) != mirror:
        raise Invalid.field(f"{where}.postings", f"a reversal must mirror entry {target}: its "
                                                 "postings' accounts and currencies, amounts negated")


def _entry_row(draft: EntryDraft, actor: Actor, recorded_at) -> dict:
    return {"kind": draft.kind, "effective_on": draft.effective_on, "recorded_at": recorded_at,
            "actor_key_id": actor.key_id, "institution_id": actor.institution_id,
            "idempotency_key": actor.idempotency_key, "reverses_id": draft.reverses_id,
            "memo": draft.memo, "loan_id": draft.loan_id}


# --- reversal -------------------------------------------------------------------------------

def reverse_entry(conn: Connection, entry_id: int, effective_on: date, actor: Actor = SYSTEM,
                  memo: str | None = None) -> int:
    """Post the mirror image of an entry; `post_entries` checks every reversal rule."""
    original = conn.execute(select(entries.c.loan_id).where(entries.c.id == entry_id)).first()
    if original is None:
        raise NotFound(f"entry {entry_id} does not exist")
    lines = tuple(Line(row.account_id, -row.amount_fen, row.currency) for row in conn.execute(
        select(postings).where(postings.c.entry_id == entry_id).order_by(postings.c.id)))
    draft = EntryDraft(kind="reversal", effective_on=effective_on, lines=lines,
                       memo=memo or f"reversal of entry {entry_id}", reverses_id=entry_id,
                       loan_id=original.loan_id)
    return post_entry(conn, draft, actor)


# --- balances -------------------------------------------------------------------------------

def balance_fen(conn: Connection, account_id: int, as_of: date | None = None) -> int:
    """Signed balance (debit positive) of one account, optionally as of an effective date."""
    return balances_fen(conn, [account_id], as_of).get(account_id, 0)


def balances_fen(conn: Connection, account_ids: Sequence[int], as_of: date | None = None
                 ) -> dict[int, int]:
    """Signed balances of many accounts in one query; accounts with no postings are 0."""
    query = (select(postings.c.account_id, func.coalesce(func.sum(postings.c.amount_fen), 0))
             .where(postings.c.account_id.in_(list(account_ids)))
             .group_by(postings.c.account_id))
    if as_of is not None:
        query = query.join(entries, and_(entries.c.id == postings.c.entry_id,
                                         entries.c.effective_on <= as_of))
    found = {account_id: int(total) for account_id, total in conn.execute(query)}
    return {account_id: found.get(account_id, 0) for account_id in account_ids}


def normal_balance_fen(kind: str, signed_fen: int) -> int:
    """The balance on the account's natural side (a liability of 100 shows as 100, not -100)."""
    return NORMAL_SIGN[kind] * signed_fen
