"""Migrations are the only way the schema is made: up, down, up again, and no drift."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ledger.db import current_revision, downgrade_to, head_revision, upgrade_to_head
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


def test_models_and_migrations_do_not_drift(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []
