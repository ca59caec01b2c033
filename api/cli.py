"""The `ipledger` command line (click): serve, scheduler, db, keys, institutions, verify."""
from __future__ import annotations

import json
import logging
import sys

import click

from ledger.db import database_url, make_engine, run_in_transaction, upgrade_to_head
from ledger.errors import DomainError


def _engine():
    return make_engine()


def _fail(error: DomainError):
    raise click.ClickException(error.detail)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """ipledger: books for IP pledge loans. The database is IPLEDGER_DATABASE_URL
    (default: a SQLite file under instance/)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Fill an empty database with demo data first.")
@click.option("--no-scheduler", is_flag=True,
              help="Do not run the jobs in this process (run `ipledger scheduler` instead).")
def serve(host: str, port: int, demo: bool, no_scheduler: bool) -> None:
    """Development server: migrates the database, then serves the API."""
    from api import create_app
    engine = _engine()
    upgrade_to_head(engine)
    if demo:
        _run_demo(engine)
    if not no_scheduler:
        # One process only (the development server): jobs run beside it in a thread.
        from jobs import scheduler
        scheduler.build(engine, background=True).start()
    click.echo(f"ipledger on http://{host}:{port} (database: {engine.url.render_as_string()})")
    create_app(engine).run(host=host, port=port, threaded=True)


def _run_demo(engine) -> None:
    try:
        from ledger import demo
    except ImportError:  # pragma: no cover - until the demo module exists
        raise click.ClickException("demo data is not available in this version")
    demo.run_cli(engine)


@main.command()
def scheduler() -> None:
    """Run the scheduled jobs (chain sealing, key purge...) in the foreground."""
    from jobs import scheduler as sched
    engine = _engine()
    click.echo("ipledger scheduler running; Ctrl-C to stop")
    sched.build(engine).start()


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema."""
    engine = _engine()
    upgrade_to_head(engine)
    click.echo(f"database at head ({database_url()})")


@db.command("current")
def db_current() -> None:
    from ledger.db import current_revision, head_revision
    with _engine().connect() as conn:
        click.echo(f"current: {current_revision(conn)}  head: {head_revision()}")


@main.group()
def keys() -> None:
    """API keys (shown once; only a hash is stored)."""


@keys.command("create")
@click.option("--role", required=True,
              type=click.Choice(["admin", "bank", "insurer", "guarantor", "pool", "fiscal", "auditor"]))
@click.option("--institution", help="Institution code (every role but admin).")
@click.option("--label", help="What the key is for, e.g. 'core banking batch loader'.")
def keys_create(role: str, institution: str | None, label: str | None) -> None:
    """Create a key; prints it alone on the last line."""
    from ledger.keys import create_key
    try:
        prefix, secret = run_in_transaction(_engine(),
                                            lambda conn: create_key(conn, role, institution, label))
    except DomainError as error:
        _fail(error)
    click.echo(f"created {role} key {prefix}" + (f" for {institution}" if institution else "")
               + "; it is shown only now:", err=True)
    click.echo(secret)


@keys.command("revoke")
@click.argument("prefix")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with this prefix (the 8 characters after 'ipl_')."""
    from ledger.keys import revoke_key
    try:
        run_in_transaction(_engine(), lambda conn: revoke_key(conn, prefix))
    except DomainError as error:
        _fail(error)
    click.echo(f"revoked {prefix}")


@keys.command("list")
def keys_list() -> None:
    from ledger.keys import list_keys
    with _engine().connect() as conn:
        for row in list_keys(conn):
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(f"{row['prefix']}  {row['role']:<9} {row['code'] or '-':<20} {state}  {row['label'] or ''}")


@main.group()
def institutions() -> None:
    """Institutions (the API's POST /v1/institutions does the same)."""


@institutions.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--kind", required=True)
@click.option("--region", required=True)
def institutions_create(code, name, kind, region) -> None:
    from ledger.institutions import create_institution
    try:
        made = run_in_transaction(_engine(), lambda conn: create_institution(conn, code, name, kind, region))
    except DomainError as error:
        _fail(error)
    click.echo(f"created {made.kind} {made.code} (id {made.id})")


@main.command()
@click.option("--seal/--no-seal", default=True, show_default=True,
              help="Chain entries still unsealed before verifying.")
def verify(seal: bool) -> None:
    """Prove the books: every entry balanced, the hash chain intact. Exit 1 if not."""
    from jobs.tasks import seal_chain
    from ledger.chain import verify as verify_books
    engine = _engine()
    if seal:
        seal_chain(engine)
    with engine.connect() as conn:
        result = verify_books(conn)
    click.echo(json.dumps(result.as_dict(), indent=2))
    if not (result.balanced and result.chain_intact):
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
