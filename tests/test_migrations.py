"""Migrations are the only way the schema is made: up, down, up again, and no drift."""
from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from ledger.db import current_revision, downgrade_to, head_revision, upgrade_to, upgrade_to_head
from ledger.schema import metadata


def test_upgrade_downgrade_upgrade(unmigrated_engine):
    upgrade_to_head(unmigrated_engine)
    with unmigrated_engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    downgrade_to(unmigrated_engine, "base")
    tables = set(inspect(unmigrated_engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    upgrade_to_head(unmigrated_engine)
    assert set(metadata.tables) <= set(inspect(unmigrated_engine).get_table_names())


def _fk_columns(item) -> tuple:
    return tuple(item[1].column_keys) if item[0] in ("add_fk", "remove_fk") else ()


def test_models_and_migrations_do_not_drift(engine, backend):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    if backend == "sqlite":
        # SQLite keeps postings' foreign key on account_id alone (its journal tables are never
        # rebuilt, see migration 0003); a trigger ties the posting's currency to its account's
        # instead of the composite key.
        allowed = {("add_fk", "postings", ("account_id", "currency")),
                   ("remove_fk", "postings", ("account_id",))}
    else:
        # PostgreSQL checks subsidy lines' references per statement, not per row (migration
        # 0015; tests/ledger/test_subsidy_batches.py shows the refusals).
        allowed = {("add_fk", "subsidy_lines", (column,)) for column in ("batch_id", "loan_id", "borrower_id")}
    found = {(item[0], item[1].table.name, _fk_columns(item)) for item in diff if item[0] in ("add_fk", "remove_fk")}
    assert found == allowed
    assert [item for item in diff if item[0] not in ("add_fk", "remove_fk")] == []


def test_a_book_sealed_before_0003_still_verifies_after_the_upgrade(unmigrated_engine):
    """Seals written with digest v1 (entries and postings, no accounts) keep verifying; new
    seals use v2; both still catch a changed entry."""
    from ledger import chain
    from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
    from tests import factories
    upgrade_to(unmigrated_engine, "0002")
    factories.bind(unmigrated_engine)
    bank = factories.InstitutionFactory()
    specs = [AccountSpec(f"old:{i}", "old", "asset", "test", institution_id=bank.id) for i in range(2)]
    a, b = factories.tx(lambda conn: ensure_accounts(conn, specs)).values()

    def post(fen: int) -> int:
        return factories.tx(lambda conn: post_entry(conn, EntryDraft("test", date(2025, 1, 1),
                                                                     (Line(a, fen), Line(b, -fen)))))
    old_ids = [post(1), post(2)]
    factories.tx(_seal_as_before_0003)
    upgrade_to_head(unmigrated_engine)
    assert factories.tx(chain.verify).chain_intact
    post(3)
    factories.tx(chain.seal_pending)
    with unmigrated_engine.connect() as conn:
        versions = conn.execute(text("SELECT digest_version FROM entry_seals ORDER BY seq")).scalars().all()
    assert versions == [1, 1, 2]
    result = factories.tx(chain.verify)
    assert result.chain_intact and result.sealed == 3 and result.head.seq == 3
    with unmigrated_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER entries_no_update"))
        conn.execute(text(f"UPDATE entries SET memo = 'changed' WHERE id = {old_ids[1]}"))
    broken = factories.tx(chain.verify)
    assert not broken.chain_intact and broken.first_break.seq == 2


def _seal_as_before_0003(conn) -> None:
    """What the sealer of revisions 0001-0002 wrote (the v1 digest is pinned in test_chain)."""
    from sqlalchemy import select
    from ledger import chain
    from ledger.schema import entries, postings
    prev_hash = chain.GENESIS_HASH
    fields = [entries.c[name] for name in chain.DIGEST_ENTRY_FIELDS]
    rows = conn.execute(select(*fields).order_by(entries.c.id)).mappings().all()
    for seq, entry in enumerate(rows, start=1):
        lines = conn.execute(select(postings).where(postings.c.entry_id == entry["id"])).mappings().all()
        digest = chain.entry_digest(dict(entry), [dict(line) for line in lines], version=1)
        new_hash = chain.chain_hash(prev_hash, digest)
        conn.execute(text("INSERT INTO entry_seals (entry_id, seq, prev_hash, hash, sealed_at) "
                          "VALUES (:e, :s, :p, :h, CURRENT_TIMESTAMP)"),
                     {"e": entry["id"], "s": seq, "p": prev_hash, "h": new_hash})
        prev_hash = new_hash


# --- 0004 on a book written before it ----------------------------------------------------------

def _upgrade_to(engine, revision):
    from alembic import command

    from ledger.db import _migrate
    _migrate(engine, lambda cfg: command.upgrade(cfg, revision))


T = ["2025-01-10 08:00:00", "2025-02-10 08:00:00", "2025-03-10 08:00:00", "2025-04-10 08:00:00"]


def _old_book(conn, *, double_pledge=False):
    """A book as revision 0002 kept it: one borrower record per credit code, lent to by two banks."""
    from sqlalchemy import text
    run = lambda sql, **values: conn.execute(text(sql), values)  # noqa: E731
    for i, (code, kind) in enumerate([("BANK-A", "bank"), ("BANK-B", "bank"), ("INS", "insurer")], start=1):
        run("INSERT INTO institutions (id, code, name, kind, region, created_at) VALUES (:i, :c, :c, :k, '440100', :t)",
            i=i, c=code, k=kind, t=T[0])
    run("INSERT INTO api_keys (id, prefix, key_hash, role, institution_id, created_at) "
        "VALUES (1, 'iplB', 'h', 'bank', 2, :t)", t=T[0])
    facts = ("name, region, industry, employees, revenue_fen, total_assets_fen, private, size_class, size_standard")
    for borrower_id, code in ((1, "91350100M000100Y43"), (2, "91440106708361136L"), (3, "91440106MA5CXX0N1P")):
        run(f"INSERT INTO borrowers (id, credit_code, {facts}, sme, created_at, updated_at) VALUES "
            f"(:b, :code, 'Firm', '440106', 'other', 50, 0, 0, :true, 'small', 'MIIT-2011-300', :true, :t, :t)",
            b=borrower_id, code=code, true=True, t=T[0])
    history = [(1, 1, None, T[0], 50), (2, 1, None, T[2], 400),    # borrower 1: two versions
               (3, 2, 1, T[1], 20), (4, 3, None, T[1], 30)]         # 2: posted by bank B's key; 3: by nobody
    for fact_id, borrower_id, key_id, recorded_at, employees in history:
        run(f"INSERT INTO borrower_facts (id, borrower_id, {facts}, recorded_by_key_id, recorded_at) VALUES "
            f"(:f, :b, 'Firm', '440106', 'other', :e, 0, 0, :true, 'small', 'MIIT-2011-300', :k, :t)",
            f=fact_id, b=borrower_id, e=employees, true=True, k=key_id, t=recorded_at)
    run("INSERT INTO programs (id, code, name, region, created_at) VALUES (1, 'p', 'P', '440100', :t)", t=T[0])
    run("INSERT INTO program_versions (id, program_id, version, effective_from, terms_json, created_at) "
        "VALUES (1, 1, 1, '2019-01-01', '{}', :t)", t=T[0])
    loans = [(1, 2, "B-1", T[1], "active", None), (2, 1, "A-1", T[3], "closed", "2025-06-01"),
             (3, 2, "B-2", T[3], "active", None)]
    for loan_id, bank_id, contract, created_at, status, closed_on in loans:
        run("INSERT INTO loans (id, bank_id, contract_no, borrower_id, program_id, program_version_id, principal_fen, "
            "annual_rate, start_date, maturity_date, pledge_type, borrower_size_class, borrower_sme, borrower_private, "
            "borrower_region, borrower_industry, size_standard, status, closed_on, created_at) VALUES "
            "(:l, :bank, :c, 1, 1, 1, 100, '0.03', '2025-01-01', '2026-01-01', 'patent', 'small', :true, :true, "
            "'440106', 'other', 'MIIT-2011-300', :s, :closed, :t)",
            l=loan_id, bank=bank_id, c=contract, true=True, s=status, closed=closed_on, t=created_at)
    pledged = [(1, "ZL201710601862.3"), (2, "ZL201710601862.3"), (3, "ZL201710601862.3" if double_pledge else "ZL95115608.X")]
    for loan_id, number in pledged:
        run("INSERT INTO pledges (loan_id, position, kind, number, registration_no, registered_on) "
            "VALUES (:l, 0, 'patent', :n, 'R', '2024-12-20')", l=loan_id, n=number)


def test_0004_keeps_an_existing_book(unmigrated_engine):
    from datetime import date

    from sqlalchemy import text
    _upgrade_to(unmigrated_engine, "0002")
    with unmigrated_engine.begin() as conn:
        _old_book(conn)
    upgrade_to_head(unmigrated_engine)
    with unmigrated_engine.connect() as conn:
        rows = lambda sql: [tuple(r) for r in conn.execute(text(sql))]  # noqa: E731
        # first lender; else the bank whose key posted the facts; else the first bank
        assert rows("SELECT id, bank_id FROM borrowers ORDER BY id") == [(1, 2), (2, 2), (3, 1)]
        assert rows("SELECT id, as_of FROM borrower_facts ORDER BY id") in (
            [(1, "2025-01-10"), (2, "2025-03-10"), (3, "2025-02-10"), (4, "2025-02-10")],
            [(1, date(2025, 1, 10)), (2, date(2025, 3, 10)), (3, date(2025, 2, 10)), (4, date(2025, 2, 10))])
        assert [str(day) for _, day in rows("SELECT id, as_of FROM borrowers ORDER BY id")] == [
            "2025-03-10", "2025-02-10", "2025-02-10"]
        # each loan froze the facts current when it was created
        assert rows("SELECT id, borrower_facts_id FROM loans ORDER BY id") == [(1, 1), (2, 2), (3, 2)]
        assert [(loan, str(day)) for loan, day in rows("SELECT loan_id, released_on FROM pledges ORDER BY loan_id")] \
            == [(1, "None"), (2, "2025-06-01"), (3, "None")]
    # and back: one record per credit code again, every row kept
    downgrade_to(unmigrated_engine, "0002")
    with unmigrated_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM borrower_facts")).scalar_one() == 4
        assert [r[0] for r in conn.execute(text("SELECT id FROM loans ORDER BY id"))] == [1, 2, 3]


def test_0004_stops_at_patents_pledged_to_two_live_loans(unmigrated_engine):
    import pytest
    _upgrade_to(unmigrated_engine, "0002")
    with unmigrated_engine.begin() as conn:
        _old_book(conn, double_pledge=True)
    with pytest.raises(RuntimeError, match=r"ZL201710601862.3 \(loans 1 and 3\)"):
        upgrade_to_head(unmigrated_engine)
    with unmigrated_engine.connect() as conn:
        assert current_revision(conn) == "0002"  # nothing half done


def test_0016_fills_the_fund_paid_usage_from_the_payments_already_made(fresh_engine):
    """Down to 0015 (the rows go), up again: the rows are filled from the pools' payments, and
    the claim books agree (they compare the rows with the payments)."""
    from ledger.claim_books import check_claim_books
    from ledger.schema import cap_usage
    from tests.factories import tx
    from tests.ledger.test_claim_payments import pay
    from tests.ledger.test_claims_db import default, loan_in, world
    w = world(fund_yuan=3_000_000)
    claims = [default(w, loan_in(w)) for _ in range(2)]
    pay(w, claims[0], "insurer", 100_000_000)
    pay(w, claims[0], "pool", 120_000_000)
    pay(w, claims[0], "pool", 30_000_000)

    def fund_paid(conn):
        return conn.execute(cap_usage.select().with_only_columns(cap_usage.c.institution_id, cap_usage.c.used_fen)
                            .where(cap_usage.c.scope == "fund_paid")).all()
    assert tx(fund_paid) == [(w["pool_id"], 150_000_000)]
    downgrade_to(fresh_engine, "0015")
    assert tx(fund_paid) == []
    upgrade_to_head(fresh_engine)
    assert tx(fund_paid) == [(w["pool_id"], 150_000_000)]
    assert tx(lambda conn: check_claim_books(conn).claims_agree)
