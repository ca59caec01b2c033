"""The database schema: every table, as SQLAlchemy Core, with a fixed constraint naming convention.

Design overview (read this before the journal code)
- `accounts` belong to one owner: an institution, a borrower, or a programme's fund; each has a
  kind (asset, liability, equity, income, expense) and a purpose (`loans_receivable`,
  `fund_balance`...), optionally tied to one loan (a sub-ledger). `code` is a unique, readable
  natural key (`inst:3:settlement`, `loan:42:receivable`) so get-or-create is one lookup.
- `entries` are business events; `postings` are their lines. Sign convention: ONE signed column,
  `amount_fen`, debit positive and credit negative; an entry's postings sum to zero per currency
  and no posting is zero. An asset's or expense's natural balance is positive; a liability's,
  equity's or income's is negative (shown negated as its "normal balance").
- Posted rows never change: corrections are reversal entries (`reverses_id`, unique, so an
  entry is reversed at most once; a reversal mirrors its entry and is never itself reversed).
  An entry's postings are written in the transaction that creates it, each in its account's
  currency, and accounts never change either: what a posting means cannot be altered later.
  PostgreSQL enforces all of this with triggers and keys (migrations 0001 and 0003,
  docs/DATABASE_RULES.md); SQLite with the triggers it allows, the rest in `ledger.journal`.
- `entry_seals` chain the entries: seal n holds sha256(seal n-1's hash + entry n's content
  digest, which covers its postings and their accounts from digest version 2). Seals are
  written after commit, in order, by one sealer (see `ledger.chain`), so writers never queue
  behind a chain head.
- Money columns are BIGINT fen; rates and ratios are decimal text (exact on both databases).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey,
                        ForeignKeyConstraint, Index, Integer, MetaData, SmallInteger, String, Table,
                        Text, UniqueConstraint, text)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

INSTITUTION_KINDS = ("bank", "insurer", "guarantor", "pool", "fiscal", "appraiser", "treasury",
                     "auditor")
ROLES = ("bank", "insurer", "guarantor", "pool", "fiscal", "auditor", "admin")
ACCOUNT_KINDS = ("asset", "liability", "equity", "income", "expense")
JOB_RUN_STATUSES = ("running", "done", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


institutions = Table(
    "institutions", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("region", String(6), nullable=False, index=True),
    _ts("created_at"),
    CheckConstraint(_in("kind", INSTITUTION_KINDS), name="kind"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("institution_id", ForeignKey("institutions.id"), nullable=True, index=True),
    Column("label", String(200), nullable=True),
    _ts("created_at"),
    _ts("revoked_at", nullable=True),
    CheckConstraint(_in("role", ROLES), name="role"),
    # A platform admin key belongs to no institution; every other key to exactly one.
    CheckConstraint("(role = 'admin' AND institution_id IS NULL) OR "
                    "(role <> 'admin' AND institution_id IS NOT NULL)", name="owner"),
)

accounts = Table(
    "accounts", metadata,
    Column("id", BigId, primary_key=True),
    Column("code", String(120), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("institution_id", ForeignKey("institutions.id"), nullable=True, index=True),
    _ts("created_at"),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=True, index=True),
    Column("program_id", ForeignKey("programs.id"), nullable=True, index=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=True, index=True),
    CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind"),
    # The target of postings' (account_id, currency) key: a posting is in its account's currency.
    Index("uq_accounts_id_currency", "id", "currency", unique=True),
)

entries = Table(
    "entries", metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("effective_on", Date, nullable=False, index=True),
    _ts("recorded_at"),
    Column("actor_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=True, index=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("reverses_id", ForeignKey("entries.id"), nullable=True, unique=True),
    Column("memo", String(500), nullable=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=True, index=True),
    # PostgreSQL: the top-level transaction that created the entry (pg_current_xact_id(), by
    # column default); postings are refused for any other. NULL on SQLite (it has no
    # transaction ids) and for entries made before migration 0003. Not business content: not
    # in the API, not in the chain digest.
    Column("created_xact", BigInteger, nullable=True, info={"filled_by_database": True}),
)

postings = Table(
    "postings", metadata,
    Column("id", BigId, primary_key=True),
    Column("entry_id", ForeignKey("entries.id"), nullable=False, index=True),
    Column("account_id", BigId, nullable=False, index=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    CheckConstraint("amount_fen <> 0", name="nonzero"),
    # PostgreSQL. SQLite keeps its original key on account_id alone (journal tables are never
    # rebuilt there) and a trigger checks the currency: see migration 0003.
    ForeignKeyConstraint(["account_id", "currency"], ["accounts.id", "accounts.currency"]),
)

entry_seals = Table(
    "entry_seals", metadata,
    Column("entry_id", ForeignKey("entries.id"), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    _ts("sealed_at"),
    # Which `ledger.chain` digest the hash was computed with: 1 before migration 0003 (entry and
    # postings), 2 after (and each posting's account).
    Column("digest_version", SmallInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("id", BigId, primary_key=True),
    Column("scope", String(40), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(500), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("location", String(500), nullable=True),
    _ts("created_at"),
    UniqueConstraint("scope", "key"),
    Index(None, "created_at"),
)

job_runs = Table(
    "job_runs", metadata,
    Column("id", BigId, primary_key=True),
    Column("job", String(60), nullable=False),
    Column("period", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=True),
    _ts("started_at"),
    _ts("finished_at", nullable=True),
    Column("owner", String(80), nullable=True),      # host:pid of the running scheduler (0011)
    Column("counts_json", Text, nullable=True),      # what the run made, {"batches": 1, ...} (0011)
    UniqueConstraint("job", "period"),
    CheckConstraint(_in("status", JOB_RUN_STATUSES), name="status"),
)


# --- borrowers, reference rates, programmes, loans (migration 0002) ----------------------------

SIZE_CLASSES = ("micro", "small", "medium", "large")
LOAN_STATUSES = ("active", "defaulted", "closed")
PLEDGE_TYPES = ("patent", "trademark", "mixed")

def _borrower_fact_columns(region_index: bool) -> list[Column]:
    """What a bank states about a borrower and the class derived from it: the same columns on
    the borrower (current facts) and in its history (every version posted)."""
    return [
        # The day the facts are stated for (a balance sheet's date, say): a loan freezes the
        # version in force on its start date, not the one posted last.
        Column("as_of", Date, nullable=False),
        Column("name", String(200), nullable=False),
        Column("region", String(6), nullable=False, index=region_index),
        Column("industry", String(40), nullable=False),
        Column("employees", Integer, nullable=False),
        Column("revenue_fen", BigInteger, nullable=False),
        Column("total_assets_fen", BigInteger, nullable=False),
        Column("private", Boolean, nullable=False),
        Column("size_class", String(10), nullable=False),
        Column("size_standard", String(40), nullable=False),
    ]


# A bank's customer file: one record per (bank, credit code). Two banks lending to one enterprise
# hold two records (each its own facts); the credit code names the enterprise across banks. The
# record's columns are its current facts: the version with the latest `as_of`.
borrowers = Table(
    "borrowers", metadata,
    Column("id", Integer, primary_key=True),
    Column("bank_id", ForeignKey("institutions.id"), nullable=False),  # indexed by the unique key
    Column("credit_code", String(18), nullable=False, index=True),
    *_borrower_fact_columns(region_index=True),
    Column("sme", Boolean, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("bank_id", "credit_code"),
    CheckConstraint(_in("size_class", SIZE_CLASSES), name="size_class"),
)

# Every version of a record's facts as posted, each with the day it is stated for.
borrower_facts = Table(
    "borrower_facts", metadata,
    Column("id", BigId, primary_key=True),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=False, index=True),
    *_borrower_fact_columns(region_index=False),
    Column("recorded_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("recorded_at"),
)

reference_rates = Table(
    "reference_rates", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("month", String(7), nullable=False),
    Column("rate", String(20), nullable=False),  # decimal text, e.g. "0.0385"
    Column("recorded_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("recorded_at"),
    UniqueConstraint("name", "month"),
)

programs = Table(
    "programs", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(60), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("region", String(6), nullable=False, index=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
)

program_versions = Table(
    "program_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date, nullable=True),
    Column("terms_json", Text, nullable=False),  # canonical, validated (ledger.terms)
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    UniqueConstraint("program_id", "version"),
)

# The parties named by each version's terms, for "which programmes is this insurer in" queries.
program_parties = Table(
    "program_parties", metadata,
    Column("id", Integer, primary_key=True),
    Column("program_version_id", ForeignKey("program_versions.id"), nullable=False, index=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("role", String(20), nullable=False),
    UniqueConstraint("program_version_id", "institution_id"),
)

loans = Table(
    "loans", metadata,
    Column("id", BigId, primary_key=True),
    Column("bank_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("contract_no", String(60), nullable=False),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=False, index=True),
    # The version of the lending bank's record frozen by the loan: the one in force on start_date.
    Column("borrower_facts_id", ForeignKey("borrower_facts.id"), nullable=False, index=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("program_version_id", ForeignKey("program_versions.id"), nullable=False, index=True),
    Column("principal_fen", BigInteger, nullable=False),
    Column("annual_rate", String(20), nullable=False),
    Column("start_date", Date, nullable=False, index=True),
    Column("maturity_date", Date, nullable=False),
    Column("ip_share", String(20), nullable=True),
    Column("insured_amount_fen", BigInteger, nullable=True),
    Column("pledge_type", String(10), nullable=False),
    # The borrower's facts frozen at the loan's date: later updates do not rewrite history.
    Column("borrower_size_class", String(10), nullable=False),
    Column("borrower_sme", Boolean, nullable=False),
    Column("borrower_private", Boolean, nullable=False),
    Column("borrower_region", String(6), nullable=False, index=True),
    Column("borrower_industry", String(40), nullable=False),
    Column("size_standard", String(40), nullable=False),
    Column("status", String(10), nullable=False),
    Column("closed_on", Date, nullable=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    UniqueConstraint("bank_id", "contract_no"),
    Index(None, "program_id", "start_date"),  # the latest start bound to a programme's versions
    CheckConstraint("principal_fen > 0", name="principal_positive"),
    CheckConstraint("maturity_date > start_date", name="maturity_after_start"),
    CheckConstraint(_in("status", LOAN_STATUSES), name="status"),
    CheckConstraint(_in("pledge_type", PLEDGE_TYPES), name="pledge_type"),
)

pledges = Table(
    "pledges", metadata,
    Column("id", BigId, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("number", String(20), nullable=False),
    Column("nice_class", Integer, nullable=True),
    Column("registration_no", String(60), nullable=False),
    Column("registered_on", Date, nullable=False, index=True),
    Column("appraised_value_fen", BigInteger, nullable=True),
    # The day the pledge ended: its loan's closed_on. NULL while the loan is active or defaulted.
    Column("released_on", Date, nullable=True),
    CheckConstraint("kind IN ('patent', 'trademark')", name="kind"),
    CheckConstraint("(kind = 'trademark') = (nice_class IS NOT NULL)", name="nice_class"),
    Index(None, "number"),
    # DOMAIN.md §1: the patent office registers no second pledge of a patent while one lasts.
    Index("uq_pledges_live_patent", "number", unique=True,
          postgresql_where=text("kind = 'patent' AND released_on IS NULL"),
          sqlite_where=text("kind = 'patent' AND released_on IS NULL")),
)

# Target sets (DOMAIN.md §6) are data: the three defaults are seeded by migration 0008, an admin
# adds more. Never changed once made (a changed threshold would rewrite past judgements): a new
# policy is a new code.
TARGET_COMPARATORS = (">", ">=")

target_sets = Table(
    "target_sets", metadata,
    Column("code", String(40), primary_key=True),
    _ts("created_at"),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True),
)

target_set_checks = Table(
    "target_set_checks", metadata,
    Column("target_set_code", ForeignKey("target_sets.code"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("metric", String(40), nullable=False),
    Column("comparator", String(2), nullable=False),
    Column("threshold", String(20), nullable=False),  # a decimal string, read as an exact Fraction
    CheckConstraint(_in("comparator", TARGET_COMPARATORS), name="comparator"),
)

# Nightly snapshots of the targets figures (`ledger.targets.take_snapshot`): one run, then one
# row per region (every level that has loans), year and basis. The API answers from the latest
# run and says when it was taken; `?fresh=true` recomputes.
target_snapshot_runs = Table(
    "target_snapshot_runs", metadata,
    Column("id", Integer, primary_key=True),
    _ts("taken_at"),
    Column("rows", Integer, nullable=False),
)

target_snapshots = Table(
    "target_snapshots", metadata,
    Column("run_id", ForeignKey("target_snapshot_runs.id"), primary_key=True),
    Column("region", String(6), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("basis", String(12), primary_key=True),
    *[Column(name, BigInteger, nullable=False) for name in (
        "amount_fen", "count", "pledge_count", "insured_amount_fen", "enterprise_count",
        "sme_enterprise_count", "sme_count", "sme_amount_fen", "inclusive_count")],
)

# --- subsidy batches (migration 0007) ---------------------------------------------------------

SUBSIDY_BATCH_STATUSES = ("draft", "approved", "posted", "cancelled", "reversed")
# A live batch holds its programme and period: one at a time (drafts, approved and posted ones;
# a cancelled or reversed batch frees the period for a new draft).
LIVE_SUBSIDY_BATCH = "status IN ('draft', 'approved', 'posted')"

subsidy_batches = Table(
    "subsidy_batches", metadata,
    Column("id", BigId, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("program_version_id", ForeignKey("program_versions.id"), nullable=False, index=True),
    Column("period", String(7), nullable=False),  # "2025" or "2025-Q4"
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),   # exclusive
    Column("status", String(10), nullable=False),
    # The paying bureau: its subsidy budget pays; only its keys approve and post.
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    Column("approved_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    Column("posted_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    Column("closed_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    _ts("approved_at", nullable=True),
    _ts("posted_at", nullable=True),
    _ts("closed_at", nullable=True),  # cancelled or reversed
    Column("line_count", Integer, nullable=False),
    Column("excluded_count", Integer, nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    CheckConstraint(_in("status", SUBSIDY_BATCH_STATUSES), name="status"),
    CheckConstraint("total_fen >= 0", name="total_not_negative"),
    CheckConstraint("period_end > period_start", name="period_window"),
    # Maker-checker: the key that approves is never the key that drafted.
    CheckConstraint("approved_by_key_id IS NULL OR created_by_key_id IS NULL "
                    "OR approved_by_key_id <> created_by_key_id", name="checker_not_maker"),
    CheckConstraint("status IN ('draft', 'cancelled') OR approved_at IS NOT NULL",
                    name="approved_before_posting"),
    Index("uq_subsidy_batches_live", "program_id", "period", unique=True,
          postgresql_where=text(LIVE_SUBSIDY_BATCH), sqlite_where=text(LIVE_SUBSIDY_BATCH)),
)

subsidy_lines = Table(
    "subsidy_lines", metadata,
    Column("id", BigId, primary_key=True),
    Column("batch_id", ForeignKey("subsidy_batches.id"), nullable=False),
    # No index on loan_id or borrower_id: every read starts from a batch (migration 0014).
    Column("loan_id", ForeignKey("loans.id"), nullable=False),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("method", String(30), nullable=False),
    Column("basis_fen", BigInteger, nullable=False),
    Column("computed_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("capped_by", String(120), nullable=False),  # cap names joined by ",", "" for none
    CheckConstraint("amount_fen >= 0 AND amount_fen <= computed_fen", name="amount_within_formula"),
    Index("ix_subsidy_lines_batch_id_id", "batch_id", "id"),  # a batch's lines in id order
)

subsidy_excluded = Table(
    "subsidy_excluded", metadata,
    Column("id", BigId, primary_key=True),
    Column("batch_id", ForeignKey("subsidy_batches.id"), nullable=False, index=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("reason", String(40), nullable=False),
)

# The journal entries a batch posted (one per paid line) and, if reversed, their reversals.
subsidy_batch_entries = Table(
    "subsidy_batch_entries", metadata,
    Column("entry_id", ForeignKey("entries.id"), primary_key=True),
    Column("batch_id", ForeignKey("subsidy_batches.id"), nullable=False, index=True),
    Column("line_id", ForeignKey("subsidy_lines.id"), nullable=False, index=True),
    Column("reversal", Boolean, nullable=False),
)

# --- claims (issue 8; migration 0006) ---------------------------------------------------------
# A claim keeps the terms version and every figure it was computed from, so it can be recomputed
# and audited later; its shares keep ratio, computed (before caps) and owed amounts and each cut.
CLAIM_STATUSES = ("open", "settled", "withdrawn")
CAP_SCOPES = ("borrower_year", "bank_year", "program_year", "all", "fund_paid")
"""`fund_paid` (0016) is not a cap: what a pool paid from the programme's fund on its claims,
kept so a claim's fund cap reads one row, not every share of the programme."""

claims = Table(
    "claims", metadata,
    Column("id", BigId, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False, index=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("program_version_id", ForeignKey("program_versions.id"), nullable=False, index=True),
    Column("bank_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("borrower_id", ForeignKey("borrowers.id"), nullable=False, index=True),
    Column("classified_on", Date, nullable=False),
    Column("claim_year", Integer, nullable=False),
    Column("overdue_days", Integer, nullable=False),
    Column("outstanding_principal_fen", BigInteger, nullable=False),
    Column("overdue_interest_fen", BigInteger, nullable=False),
    Column("loss_base_fen", BigInteger, nullable=False),
    Column("covered_fen", BigInteger, nullable=False),
    Column("covered_reason", String(40), nullable=True),
    Column("borrower_year_principal_before_fen", BigInteger, nullable=False),
    Column("fund_balance_fen", BigInteger, nullable=False),  # the fund as the claim saw it
    Column("bank_retained_fen", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),
    Column("entry_id", ForeignKey("entries.id"), nullable=False, unique=True),
    Column("withdrawal_entry_id", ForeignKey("entries.id"), nullable=True, unique=True),
    Column("withdrawn_on", Date, nullable=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    Column("settled_on", Date, nullable=True),  # migration 0009: the day the last share was paid
    CheckConstraint("overdue_days >= 0 AND overdue_interest_fen >= 0 "
                    "AND outstanding_principal_fen >= 0", name="facts_non_negative"),
    CheckConstraint("covered_fen >= 0 AND covered_fen <= loss_base_fen", name="covered_within_base"),
    CheckConstraint("bank_retained_fen >= 0 AND bank_retained_fen <= loss_base_fen",
                    name="retained_within_base"),
    CheckConstraint(_in("status", CLAIM_STATUSES), name="status"),
    CheckConstraint("(status = 'withdrawn') = (withdrawal_entry_id IS NOT NULL)",
                    name="withdrawn_has_reversal"),
    # One live claim per loan; a withdrawn claim leaves room for a new one.
    Index("uq_claims_live_loan", "loan_id", unique=True,
          postgresql_where=text("status <> 'withdrawn'"),
          sqlite_where=text("status <> 'withdrawn'")),
)

claim_shares = Table(
    "claim_shares", metadata,
    Column("id", BigId, primary_key=True),
    Column("claim_id", ForeignKey("claims.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),  # the party's place in the terms
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("ratio", String(20), nullable=False),
    Column("computed_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("pays_first", Boolean, nullable=False),
    Column("cuts_json", Text, nullable=False),  # [{"cap": ..., "fen": ...}] in cap order
    # migration 0009: what the party has paid; never above what it owes (no overpayment commits)
    Column("paid_fen", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("claim_id", "position"),
    UniqueConstraint("claim_id", "institution_id"),
    CheckConstraint("amount_fen >= 0 AND amount_fen <= computed_fen", name="amount_within_computed"),
    CheckConstraint("paid_fen >= 0 AND paid_fen <= amount_fen", name="paid_within_amount"),
)

# What each party of a programme owes under each shared cap, summed over live claims; the rows a
# claim reads are locked (FOR UPDATE) so two claims never use one remaining allowance. Scope
# `fund_paid`: a pool's payments from the fund (updated under the fund's lock, ledger/claim_payments.py).
cap_usage = Table(
    "cap_usage", metadata,
    Column("id", BigId, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("scope", String(20), nullable=False),
    Column("scope_key", String(60), nullable=False),
    Column("used_fen", BigInteger, nullable=False),
    UniqueConstraint("program_id", "institution_id", "scope", "scope_key"),
    CheckConstraint("used_fen >= 0", name="used_non_negative"),
    CheckConstraint(_in("scope", CAP_SCOPES), name="scope"),
)


# --- claim payments and recoveries (issue 8; migration 0009) -----------------------------------
RECOVERY_SOURCES = ("auction", "transfer", "license", "fund_purchase", "borrower")

# One row per payment a party makes on its share, with the entry that moved the money; a payer's
# reference is unique to it, since statements are matched on it.
claim_payments = Table(
    "claim_payments", metadata,
    Column("id", BigId, primary_key=True),
    Column("claim_id", ForeignKey("claims.id"), nullable=False, index=True),
    Column("share_id", ForeignKey("claim_shares.id"), nullable=False, index=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("reference", String(120), nullable=True),
    Column("entry_id", ForeignKey("entries.id"), nullable=False, unique=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True),
    _ts("created_at"),
    CheckConstraint("amount_fen > 0", name="amount_positive"),
    Index("uq_claim_payments_payer_reference", "institution_id", "reference", unique=True,
          postgresql_where=text("reference IS NOT NULL"),
          sqlite_where=text("reference IS NOT NULL")),
)

# Net recovery = gross - costs; returned to the parties that bore the loss (recovery_shares).
recoveries = Table(
    "recoveries", metadata,
    Column("id", BigId, primary_key=True),
    Column("loan_id", ForeignKey("loans.id"), nullable=False, index=True),
    Column("claim_id", ForeignKey("claims.id"), nullable=False, index=True),
    Column("bank_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("received_on", Date, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("costs_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("source", String(20), nullable=False),
    Column("reference", String(120), nullable=True),
    Column("entry_id", ForeignKey("entries.id"), nullable=True, unique=True),  # none for a zero net
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True),
    _ts("created_at"),
    CheckConstraint("gross_fen >= 0 AND costs_fen >= 0 AND net_fen >= 0 "
                    "AND net_fen = gross_fen - costs_fen", name="net"),
    CheckConstraint(_in("source", RECOVERY_SOURCES), name="source"),
)

# Each party's returned part of one recovery (terms order, the bank last) and who received it:
# `to_institution_id` differs from the party under the terms' `recoveries_to`.
recovery_shares = Table(
    "recovery_shares", metadata,
    Column("id", BigId, primary_key=True),
    Column("recovery_id", ForeignKey("recoveries.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("borne_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("to_institution_id", ForeignKey("institutions.id"), nullable=False),
    UniqueConstraint("recovery_id", "position"),
    CheckConstraint("amount_fen >= 0 AND borne_fen >= 0", name="non_negative"),
)


# --- reconciliation (issue 8 item 5; migration 0010) -------------------------------------------
# A party's statement of its claim payments, classified against the ledger's claim_payments of
# that party paid up to the statement date; each line keeps both figures side by side.
RECONCILIATION_CLASSES = ("matched", "amount_mismatch", "missing_from_statement", "unknown_to_ledger",
                          "duplicate")

reconciliations = Table(
    "reconciliations", metadata,
    Column("id", BigId, primary_key=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=False, index=True),
    Column("statement_date", Date, nullable=False),
    Column("line_count", Integer, nullable=False),  # lines the statement had
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    CheckConstraint("line_count >= 0", name="line_count_non_negative"),
)

reconciliation_lines = Table(
    "reconciliation_lines", metadata,
    Column("id", BigId, primary_key=True),
    Column("reconciliation_id", ForeignKey("reconciliations.id"), nullable=False, index=True),
    Column("outcome", String(30), nullable=False),
    Column("line_no", Integer, nullable=True),  # the statement's line (1 = first); none if missing
    Column("reference", String(120), nullable=True),
    Column("statement_claim_id", BigInteger, nullable=True),  # as stated: no key, it may name nothing
    Column("statement_amount_fen", BigInteger, nullable=True),
    Column("statement_paid_on", Date, nullable=True),
    Column("payment_id", ForeignKey("claim_payments.id"), nullable=True, index=True),
    Column("ledger_claim_id", ForeignKey("claims.id"), nullable=True, index=True),
    Column("ledger_amount_fen", BigInteger, nullable=True),
    Column("ledger_paid_on", Date, nullable=True),
    Column("differences", String(40), nullable=False),  # "amount,claim,paid_on" subset, "" none
    UniqueConstraint("reconciliation_id", "line_no"),
    CheckConstraint(_in("outcome", RECONCILIATION_CLASSES), name="outcome"),
    # A statement line has its figures and line number; a ledger figure has its payment.
    CheckConstraint("(outcome = 'missing_from_statement') = (line_no IS NULL)", name="line_no_unless_missing"),
    CheckConstraint("line_no IS NULL OR (statement_amount_fen IS NOT NULL AND statement_paid_on IS NOT NULL "
                    "AND statement_claim_id IS NOT NULL)", name="statement_figures"),
    CheckConstraint("(payment_id IS NULL) = (ledger_amount_fen IS NULL) AND "
                    "(payment_id IS NULL) = (ledger_paid_on IS NULL) AND "
                    "(payment_id IS NULL) = (ledger_claim_id IS NULL)", name="ledger_figures"),
    CheckConstraint("outcome NOT IN ('matched', 'amount_mismatch', 'missing_from_statement') "
                    "OR payment_id IS NOT NULL", name="ledger_side_present"),
    CheckConstraint("outcome <> 'unknown_to_ledger' OR payment_id IS NULL", name="unknown_has_no_payment"),
    CheckConstraint("outcome <> 'matched' OR (statement_amount_fen = ledger_amount_fen "
                    "AND statement_claim_id = ledger_claim_id)", name="matched_agrees"),
    CheckConstraint("outcome <> 'amount_mismatch' OR statement_amount_fen <> ledger_amount_fen "
                    "OR statement_claim_id <> ledger_claim_id", name="mismatch_differs"),
)

# Pool stress tests (ledger.stress_runs): queued by the API, run by the scheduler process.
STRESS_RUN_STATUSES = ("queued", "running", "done", "failed")

stress_runs = Table(
    "stress_runs", metadata,
    Column("id", BigId, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("assumptions_json", Text, nullable=False),  # canonical (ledger.stress_runs.AssumptionsIn)
    Column("status", String(10), nullable=False),
    Column("progress_pct", Integer, nullable=False),
    Column("results_json", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    # The scheduler that holds a running run: only it writes progress and results.
    Column("runner", String(40), nullable=True),
    Column("created_by_key_id", ForeignKey("api_keys.id"), nullable=True, index=True),
    _ts("created_at"),
    _ts("started_at", nullable=True),
    _ts("heartbeat_at", nullable=True),
    _ts("finished_at", nullable=True),
    Index(None, "status", "id"),  # the scheduler's poll for the oldest queued run
    CheckConstraint(_in("status", STRESS_RUN_STATUSES), name="status"),
    CheckConstraint("progress_pct BETWEEN 0 AND 100", name="progress_pct"),
    CheckConstraint("status <> 'done' OR results_json IS NOT NULL", name="done_has_results"),
)
