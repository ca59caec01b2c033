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
        # The one allowed difference: SQLite keeps postings' foreign key on account_id alone
        # (its journal tables are never rebuilt, see migration 0003); a trigger ties the
        # posting's currency to its account's instead of the composite key.
        allowed = {("add_fk", "postings", ("account_id", "currency")),
                   ("remove_fk", "postings", ("account_id",))}
        found = {(item[0], item[1].table.name, _fk_columns(item)) for item in diff
                 if item[0] in ("add_fk", "remove_fk")}
        assert found == allowed
        diff = [item for item in diff if item[0] not in ("add_fk", "remove_fk")]
    assert diff == []


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
