"""Alembic environment: one for SQLite and PostgreSQL alike (batch mode on SQLite)."""
from alembic import context
from sqlalchemy import pool

from ledger.db import make_engine
from ledger.schema import metadata

config = context.config


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
        conn.commit()
