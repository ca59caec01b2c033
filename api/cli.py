"""The `ipledger` command line (click): serve, scheduler, db, keys, institutions, rates,
import, demo, verify, subsidies, stress, jobs, audit, reconcile. Thin: each command calls the domain
in one transaction."""
from __future__ import annotations

import json
import logging
import sys

import click

from ledger.db import database_url, make_engine, run_in_transaction, upgrade_to_head
from ledger.errors import DomainError
from ledger.schema import INSTITUTION_KINDS


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
    click.echo(f"ipledger on http://{host}:{port} (database: {engine.url.render_as_string()}); "
               f"dashboard: http://{host}:{port}/dashboard")
    create_app(engine).run(host=host, port=port, threaded=True)


def _run_demo(engine) -> None:
    from ledger import demo
    from ledger.errors import Conflict
    bars: dict = {}

    def progress(step: str, done: int, total: int) -> None:
        if step not in bars:
            for bar in bars.values():
                bar.render_finish()
            bars[step] = click.progressbar(length=total, label=f"{step:<16}")
            bars[step].__enter__()
        bar = bars[step]
        bar.update(done - bar.pos)

    try:
        summary = demo.run(engine, progress=progress)
    except Conflict as error:
        click.echo(f"demo skipped: {error.detail}", err=True)
        return
    finally:
        for bar in bars.values():
            bar.render_finish()
    click.echo("demo data: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if summary.get("lpr_months_recorded_as_demo_data", "none") != "none":
        click.echo(f"recorded one-year LPR for {summary['lpr_months_recorded_as_demo_data']} as DEMO data "
                   "(months the seed lacks, at the demo's values): record the published ones on a real book")
    if summary.get("subsidy_batches_posted"):
        click.echo(f"subsidies: {summary['subsidy_batches_posted']} batches posted "
                   f"({summary['subsidy_lines_posted']} lines, {summary['subsidies_paid']} yuan); "
                   f"{summary['subsidy_draft']} awaits approval by a second fiscal officer")


@main.command()
def demo() -> None:
    """Fill an empty database with a realistic demo book (banks, programmes, loans...)."""
    engine = _engine()
    upgrade_to_head(engine)
    _run_demo(engine)


@main.group("import")
def import_() -> None:
    """Bulk imports."""


@import_.command("loans")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--bank", required=True, help="Code of the lending bank.")
def import_loans(path: str, bank: str) -> None:
    """Import loans from a CSV file (docs/loans-csv.md), all or nothing."""
    from ledger.loan_import import import_loans as run_import, read_file, read_loans
    with read_file(path) as handle:
        rows = list(handle)
    try:
        total = len(read_loans(rows))
        with click.progressbar(length=total, label="importing loans") as bar:
            count = run_import(_engine(), bank, rows, progress=bar.update)
    except DomainError as error:
        for item in error.errors[:50]:
            click.echo(f"  {item.field}: {item.message}", err=True)
        if len(error.errors) > 50:
            click.echo(f"  ... and {len(error.errors) - 50} more", err=True)
        raise click.ClickException(f"nothing imported: {error.detail if not error.errors else str(len(error.errors)) + ' error(s)'}")
    click.echo(f"imported {count} loans for {bank}")


@main.group()
def rates() -> None:
    """Reference rates (one-year LPR by month)."""


@rates.command("set")
@click.argument("month")
@click.argument("rate")
@click.option("--name", default="LPR1Y", show_default=True)
def rates_set(month: str, rate: str, name: str) -> None:
    """Record a month's published value, e.g. `ipledger rates set 2025-06 0.0300`."""
    from ledger.rates import record_rate
    try:
        recorded, created = run_in_transaction(_engine(), lambda conn: record_rate(conn, name, month, rate))
    except DomainError as error:
        _fail(error)
    click.echo(f"{name} {recorded.month} = {recorded.rate}" + ("" if created else " (already recorded)"))


@rates.command("list")
@click.option("--name", default="LPR1Y", show_default=True)
def rates_list(name: str) -> None:
    from ledger.rates import list_rates
    with _engine().connect() as conn:
        for rate in list_rates(conn, name):
            click.echo(f"{rate.month}  {rate.rate}")


@main.group()
def claims() -> None:
    """Defaults and claims."""


@claims.command("scan")
@click.option("--as-of", "as_of", default=None, help="The day to scan on (YYYY-MM-DD; default today).")
def claims_scan(as_of: str | None) -> None:
    """Open the claims of loans overdue past their programme's trigger (what the daily job runs)."""
    from ledger.claims import scan_overdue
    from ledger.dates import parse_date
    try:
        opened = scan_overdue(_engine(), parse_date(as_of, "as_of") if as_of else None)
    except DomainError as error:
        _fail(error)
    click.echo(f"opened {opened} claims")


@claims.command("show")
@click.argument("claim_id", type=int)
def claims_show(claim_id: int) -> None:
    """One claim as an operator reads it: each share owed, paid, outstanding and recovered, the
    bank's retained loss, the payments and the recoveries with where each part went."""
    from ledger.claim_payments import payments_of
    from ledger.claims import get_claim
    from ledger.recoveries import recoveries_of
    try:
        claim, payments, found = run_in_transaction(_engine(), lambda conn: (
            get_claim(conn, claim_id), payments_of(conn, [claim_id])[claim_id],
            recoveries_of(conn, [claim_id])[claim_id]))
    except DomainError as error:
        _fail(error)
    for line in claim_lines(claim, payments, found):
        click.echo(line)


def claim_lines(claim: dict, payments: list[dict], found: list[dict]) -> list[str]:
    from ledger.money import format_yuan as y
    lines = [f"claim {claim['id']} on loan {claim['loan_id']} ({claim['program']} v{claim['program_version']}, "
             f"bank {claim['bank']}): {claim['status']}"
             + (f" since {claim['settled_on']}" if claim.get("settled_on") else ""),
             f"  loss base {y(claim['loss_base_fen'])}, covered {y(claim['covered_fen'])}"
             + (f" ({claim['covered_reason']})" if claim["covered_reason"] else "")]
    for s in claim["shares"]:
        cut = ", ".join(f"{c['cap']} -{y(c['fen'])}" for c in s["cuts"])
        lines.append(f"  {s['role']:<10} {s['institution']:<20} owes {y(s['amount_fen']):>16}  paid "
                     f"{y(s['paid_fen']):>16}  outstanding {y(s['amount_fen'] - s['paid_fen']):>16}  "
                     f"recovered {y(s['recovered_fen'])}" + (f"  [{cut}]" if cut else ""))
    lines.append(f"  {'bank':<10} {claim['bank']:<20} bears {y(claim['bank_retained_fen']):>15}  "
                 f"recovered {y(claim['bank_recovered_fen'])}")
    for p in payments:
        lines.append(f"  paid {p['paid_on']} {p['institution']} {y(p['amount_fen'])} ref {p['reference']} "
                     f"(entry {p['entry_id']})")
    for r in found:
        parts = ", ".join(f"{d['institution']} {y(d['amount_fen'])}" + (f" -> {d['to']}" if d["to"] != d["institution"] else "")
                          for d in r["distribution"])
        lines.append(f"  recovery {r['received_on']} {r['source']} gross {y(r['gross_fen'])} costs "
                     f"{y(r['costs_fen'])} net {y(r['net_fen'])}: {parts}")
    return lines


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


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def db_backup(path: str) -> None:
    """Write a consistent backup to PATH (SQLite: online backup; PostgreSQL: pg_dump custom
    format, restored with pg_restore). Save `ipledger db fingerprint` beside it."""
    import subprocess

    from ledger.fingerprint import backup_database
    try:
        how = backup_database(database_url(), path)
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        raise click.ClickException(f"backup failed: {getattr(error, 'stderr', None) or error}")
    click.echo(f"backup written to {path} ({how})")


@db.command("fingerprint")
@click.option("--compare", "expected_path", type=click.Path(exists=True, dir_okay=False),
              help="A fingerprint saved earlier (e.g. of the live database before a backup): "
                   "exit 1 listing every figure this database does not reproduce.")
def db_fingerprint(expected_path: str | None) -> None:
    """Print the book's fingerprint (chain head, row count of every table, balances digest) as
    JSON: the restore drill of docs/OPERATING.md compares a restored copy's with the original's."""
    from ledger.fingerprint import book_fingerprint, fingerprint_differences
    with _engine().connect() as conn:
        actual = book_fingerprint(conn)
    click.echo(json.dumps(actual, indent=2))
    if expected_path is None:
        return
    with open(expected_path, encoding="utf-8") as handle:
        expected = json.load(handle)
    differences = fingerprint_differences(expected, actual)
    for line in differences:
        click.echo(f"differs: {line}", err=True)
    if differences:
        sys.exit(1)
    click.echo(f"every figure of {expected_path} reproduced", err=True)


@main.group()
def targets() -> None:
    """Targets: a region-year against a target set; snapshots."""


@targets.command("compute")
def targets_compute() -> None:
    """Take a snapshot of every region's figures now (the scheduler does it nightly)."""
    from ledger.targets import take_snapshot
    snapshot = run_in_transaction(_engine(), take_snapshot)
    click.echo(f"snapshot {snapshot.run_id} taken at {_utc_text(snapshot.taken_at)}: {snapshot.rows} region-years")


@targets.command("show")
@click.option("--region", required=True, help="6-digit region code (a province or city includes its districts).")
@click.option("--year", "year_", type=int, required=True)
@click.option("--basis", type=click.Choice(["registration", "start"]), default="registration", show_default=True)
@click.option("--target-set", default="key-city-2018", show_default=True)
def targets_show(region: str, year_: int, basis: str, target_set: str) -> None:
    """A region-year's figures, growth on the year before, and the target set's checks."""
    from ledger import targets
    try:
        with _engine().connect() as conn:
            chosen = targets.target_set(conn, target_set)
            figures, previous = targets.figures_with_previous(conn, region, year_, basis)
    except DomainError as error:
        _fail(error)
    for name, this, last in (("amount (fen)", figures.amount_fen, previous.amount_fen),
                             ("count", figures.count, previous.count),
                             ("pledge count", figures.pledge_count, previous.pledge_count),
                             ("insured amount (fen)", figures.insured_amount_fen, previous.insured_amount_fen),
                             ("enterprises", figures.enterprise_count, previous.enterprise_count),
                             ("SME enterprises", figures.sme_enterprise_count, previous.sme_enterprise_count)):
        click.echo(f"{name:<22}{this:>18,}  {year_ - 1}: {last:>18,}  growth "
                   f"{targets.ratio_text(targets.growth(this, last)) or 'undefined'}")
    for name, value in figures.shares.items():
        click.echo(f"{name:<22}{targets.ratio_text(value) or 'undefined':>18}")
    for check in targets.check_results(chosen, figures, previous):
        click.echo(f"{chosen.code}: {check['metric']} {check['comparator']} {targets.ratio_text(check['threshold'])}: "
                   f"{targets.ratio_text(check['value']) or 'undefined'} -> {'pass' if check['pass'] else 'FAIL'}")


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


KEY_COLUMNS = "{:<8}  {:<9} {:<20} {:<7}  {}"


@keys.command("list")
def keys_list() -> None:
    """Every key, oldest first (never the secrets: they are not stored)."""
    from ledger.keys import list_keys
    click.echo(KEY_COLUMNS.format("PREFIX", "ROLE", "INSTITUTION", "STATE", "LABEL"))
    with _engine().connect() as conn:
        for row in list_keys(conn):
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(KEY_COLUMNS.format(row["prefix"], row["role"], row["code"] or "-", state, row["label"] or ""))


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


def _utc_text(moment) -> str:
    from ledger.db import as_utc
    return as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _chain_head(value: str | None):
    from ledger.chain import parse_head
    if value is None:
        return None
    try:
        return parse_head(value, "--expect")
    except DomainError as error:
        raise click.BadParameter(error.errors[0].message) from None


INSTITUTION_COLUMNS = "{:<6} {:<20} {:<10} {:<7} {}"


@institutions.command("list")
@click.option("--kind", type=click.Choice(INSTITUTION_KINDS), help="Only institutions of this kind.")
@click.option("--region", help="Only those in this region (a province or city includes what is under it).")
def institutions_list(kind: str | None, region: str | None) -> None:
    """Every institution by id (the codes keys and payloads name them by)."""
    from ledger.identifiers import region_prefix
    from ledger.institutions import list_institutions
    try:
        prefix = region_prefix(region) if region else ""
    except DomainError as error:
        _fail(error)
    click.echo(INSTITUTION_COLUMNS.format("ID", "CODE", "KIND", "REGION", "NAME"))
    with _engine().connect() as conn:
        after = 0
        while batch := list_institutions(conn, after_id=after, limit=1000, kind=kind, region_prefix=prefix):
            for made in batch:
                click.echo(INSTITUTION_COLUMNS.format(made.id, made.code, made.kind, made.region, made.name))
            after = batch[-1].id


@main.command()
@click.option("--seal/--no-seal", default=True, show_default=True,
              help="Chain entries still unsealed before verifying.")
@click.option("--expect", metavar="SEQ:HASH", callback=lambda _ctx, _param, value: _chain_head(value),
              help="A head written down earlier (the `anchor` printed here or by GET "
                   "/v1/audit/head): also prove the book still extends it.")
def verify(seal: bool, expect) -> None:
    """Prove the books: every entry balanced, the hash chain intact, the claim records equal to
    the journal (and, with --expect, still extending a head written down earlier). Prints the
    head to write down. Exit 1 if not."""
    from jobs.tasks import seal_chain
    from ledger.chain import verify as verify_books
    engine = _engine()
    if seal:
        seal_chain(engine)
    from ledger.claim_books import check_claim_books
    with engine.connect() as conn:
        result = verify_books(conn, expect)
        claim_books = check_claim_books(conn)
    click.echo(json.dumps({**result.as_dict(), "claims_agree": claim_books.claims_agree,
                           "claim_breaks": claim_books.claim_breaks}, indent=2, default=_utc_text))
    if result.head:
        click.echo(f"head {result.head.anchor} (sealed {_utc_text(result.head.sealed_at)}): write it down; "
                   "`ipledger verify --expect` proves the book still extends it", err=True)
    if result.expect and not result.expect.extends:
        click.echo(f"the book does not extend {expect[0]}:{expect[1]}: {result.expect.reason}", err=True)
    if not claim_books.claims_agree:
        click.echo(f"the claim records differ from the journal: {claim_books.claim_breaks[0]}", err=True)
    if not (result.balanced and result.chain_intact and claim_books.claims_agree) \
            or (result.expect and not result.expect.extends):
        sys.exit(1)


@main.group()
def audit() -> None:
    """Loss histories for auditors."""


@audit.command("losses")
@click.option("--program", help="Programme code.")
@click.option("--region", help="6-digit region code of the borrowers (a province or city includes its districts).")
@click.option("--institution", help="Only this institution's rows (its code).")
@click.option("--from", "from_", help="First day shown (YYYY-MM-DD).")
@click.option("--to", help="Last day shown (YYYY-MM-DD).")
def audit_losses(program, region, institution, from_, to) -> None:
    """Every loss event (claim shares, the bank's retained part, payments, recoveries,
    withdrawals) with each party's running net loss, as CSV on stdout, streamed."""
    from ledger import audit as losses
    from ledger.dates import parse_date
    from ledger.identifiers import region_prefix
    try:
        wanted = losses.LossFilter(institution, program, region_prefix(region) if region else None,
                                   parse_date(from_, "from") if from_ else None, parse_date(to, "to") if to else None)
    except DomainError as error:
        _fail(error)
    with _engine().connect() as conn:
        for line in losses.csv_lines(losses.stream_losses(conn, losses.LossScope(), wanted)):
            click.echo(line, nl=False)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--institution", required=True, help="Code of the party whose statement it is.")
@click.option("--statement-date", required=True, help="The statement's date (YYYY-MM-DD).")
def reconcile(path: str, institution: str, statement_date: str) -> None:
    """Reconcile a party's CSV statement of claim payments (reference,claim,amount,paid_on)
    against the ledger, as POST /v1/reconciliations does; prints the counts and the lines that
    do not match."""
    from pathlib import Path

    from ledger.institutions import get_institution
    from ledger.journal import SYSTEM
    from ledger.reconciliation import read_csv, reconcile as reconcile_statement
    try:
        statement = read_csv(Path(path).read_text(encoding="utf-8-sig"), statement_date)
        made = run_in_transaction(_engine(), lambda conn: reconcile_statement(
            conn, get_institution(conn, institution).id, statement, SYSTEM))
    except DomainError as error:
        _fail(error)
    click.echo(f"reconciliation {made['id']}: " + ", ".join(f"{n} {outcome}" for outcome, n in made["counts"].items()))
    for outcome, lines in made["lines"].items():
        for line in lines if outcome != "matched" else []:
            click.echo(f"  {outcome}: line {line['line_no'] or '-'} {line['reference'] or '(no reference)'} "
                       f"statement {_fen_text(line['statement_amount_fen'])} ledger {_fen_text(line['ledger_amount_fen'])}")


def _fen_text(fen) -> str:
    from ledger.money import format_yuan
    return "-" if fen is None else format_yuan(fen)
# --- jobs --------------------------------------------------------------------------------------

@main.group()
def jobs() -> None:
    """Scheduled jobs: run one now, list the runs."""


JOB_NAMES = ("draft_subsidy_batches", "open_overdue_claims", "purge_idempotency_keys", "seal_chain",
             "snapshot_targets")


@jobs.command("run")
@click.argument("name", type=click.Choice(JOB_NAMES))
def jobs_run(name: str) -> None:
    """Run one job now, as the scheduler would (once per period: a done period is skipped)."""
    from jobs import tasks
    result = getattr(tasks, name)(_engine())
    click.echo(f"{name}: {result}")


@jobs.command("runs")
@click.option("--job", metavar="NAME")
@click.option("--status", type=click.Choice(("running", "done", "failed")))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def jobs_runs(job: str | None, status: str | None, limit: int) -> None:
    """The most recent runs (oldest of them first) as a table."""
    from jobs.runs import list_runs, recent_first_id
    with _engine().connect() as conn:
        rows = list_runs(conn, job=job, status=status, after_id=recent_first_id(conn, job, status, limit),
                         limit=limit)
    header = ("job", "period", "status", "started", "seconds", "counts", "detail")
    table = [header] + [(r["job"], r["period"], r["status"], r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
                         "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.1f}",
                         " ".join(f"{k}={v}" for k, v in r["counts"].items()), r["detail"] or "")
                        for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))


# --- subsidies -------------------------------------------------------------------------------

@main.group()
def subsidies() -> None:
    """Subsidy batches: draft a programme's period, approve (another officer), post, cancel, reverse."""


def _bureau_options(command):
    command = click.option("--key", "key_prefix", metavar="PREFIX",
                           help="The acting officer's fiscal key prefix (the 8 characters after 'ipl_').")(command)
    return click.option("--bureau", metavar="CODE", help="The fiscal bureau's code, acting as no key "
                                                         "(drafts only; approval names a --key).")(command)


def _bureau(conn, key_prefix, bureau):
    from ledger.subsidy_batches import bureau_of
    if bool(key_prefix) == bool(bureau):
        raise click.UsageError("name exactly one of --key and --bureau")
    return bureau_of(conn, key_prefix=key_prefix, institution_code=bureau)


def _print_batch(batch: dict) -> None:
    from ledger.money import format_yuan
    click.echo(f"batch {batch['id']} {batch['program']} {batch['period']}: {batch['status']}, "
               f"{batch['line_count']} lines, {batch['excluded_count']} excluded, total {format_yuan(batch['total_fen'])}")


@subsidies.command("run")
@click.option("--program", required=True, metavar="CODE")
@click.option("--period", required=True, metavar="2025|2025-Q4")
@_bureau_options
def subsidies_run(program: str, period: str, key_prefix: str | None, bureau: str | None) -> None:
    """Draft the programme's batch for a period that has ended (with a progress bar)."""
    from ledger.subsidy_batches import draft_batch
    steps = ("computed", "stored")
    with click.progressbar(length=len(steps), label=f"{program} {period}") as bar:
        def progress(step: str, _lines: int) -> None:
            bar.label = f"{program} {period}: {step} {_lines} lines"
            bar.update(1)
        try:
            made = run_in_transaction(_engine(), lambda conn: draft_batch(
                conn, program, period, _bureau(conn, key_prefix, bureau), progress=progress))
        except DomainError as error:
            _fail(error)
    _print_batch(made)


def _action(name: str, help_text: str):
    @subsidies.command(name, help=help_text)
    @click.argument("batch_id", type=int)
    @_bureau_options
    def command(batch_id: int, key_prefix: str | None, bureau: str | None) -> None:
        from ledger import subsidy_batches
        try:
            done = run_in_transaction(_engine(), lambda conn: getattr(subsidy_batches, name)(
                conn, batch_id, _bureau(conn, key_prefix, bureau)))
        except DomainError as error:
            _fail(error)
        _print_batch(done)
    return command


_action("approve", "Approve a draft as another officer of the bureau (--key; the drafting key is refused).")
_action("post", "Pay an approved batch: one balanced journal entry per line, dated today.")
_action("cancel", "Cancel a draft.")
_action("reverse", "Reverse a posted batch (every entry mirrored); its period is free again.")


@subsidies.command("list")
@click.option("--program", metavar="CODE")
def subsidies_list(program: str | None) -> None:
    """Every batch, oldest first."""
    from ledger.subsidy_batches import list_batches
    with _engine().connect() as conn:
        for batch in list_batches(conn, None, program=program, limit=1000):
            _print_batch(batch)


# --- stress tests ----------------------------------------------------------------------------

def _lending(_ctx, _param, values):
    pairs = []
    for value in values:
        year, sep, amount = value.partition(":")
        if not sep or not year.isdigit():
            raise click.BadParameter(f"{value!r} is not YEAR:AMOUNT (e.g. 2:50000000)")
        pairs.append({"year": int(year), "amount": amount})
    return pairs


@main.command()
@click.option("--program", required=True, metavar="CODE")
@click.option("--years", default=5, show_default=True, type=int)
@click.option("--scenarios", default=10_000, show_default=True, type=int)
@click.option("--pd", "pd", required=True, metavar="P", help="Yearly default probability, e.g. 0.03.")
@click.option("--pd-sme", metavar="P", help="Yearly default probability of SME loans (overrides --pd).")
@click.option("--pd-non-sme", metavar="P", help="Same, for loans to other enterprises.")
@click.option("--rho", required=True, metavar="R", help="Asset correlation, e.g. 0.15.")
@click.option("--recovery-rate", default="0", show_default=True, metavar="R")
@click.option("--recovery-sd", default="0", show_default=True, metavar="SD")
@click.option("--recovery-delay", default=1, show_default=True, type=int, metavar="YEARS")
@click.option("--contribution", metavar="YUAN", help="Annual fund contribution (default: last 12 months').")
@click.option("--new-lending", multiple=True, callback=_lending, metavar="YEAR:YUAN",
              help="Hypothetical new lending in a simulated year (repeatable).")
@click.option("--target", metavar="P", help="Also find the contribution keeping exhaustion at or below P.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--as-of", metavar="YYYY-MM-DD", help="The book's date (default today).")
@click.option("--json", "as_json", is_flag=True, help="Print the full results as JSON.")
@click.option("--save", is_flag=True, help="Store it as the programme's stress test (as the scheduler "
                                           "runs a POSTed one): the dashboard shows the latest stored.")
def stress(program, years, scenarios, pd, pd_sme, pd_non_sme, rho, recovery_rate, recovery_sd,
           recovery_delay, contribution, new_lending, target, seed, as_of, as_json, save) -> None:
    """Stress-test a programme's pool: Monte Carlo of its live loans' defaults (docs/STRESS.md)."""
    from ledger import stress as engine_
    from ledger.fields import load
    from api.stress_tests import ResultsOut
    from ledger.stress_runs import AssumptionsIn
    raw = {"years": years, "scenarios": scenarios, "default_probability": pd, "asset_correlation": rho,
           "recovery_rate": recovery_rate, "recovery_rate_sd": recovery_sd,
           "recovery_delay_years": recovery_delay, "new_lending": new_lending, "seed": seed}
    optional = {"as_of": as_of, "annual_contribution": contribution, "target_exhaustion_probability": target}
    raw.update({key: value for key, value in optional.items() if value is not None})
    if pd_sme or pd_non_sme:
        raw["default_probability_by"] = {"sme": pd_sme, "non_sme": pd_non_sme}
    try:
        assumptions = load(AssumptionsIn(), raw)
        with _engine().connect() as conn:
            book = engine_.load_book(conn, program, assumptions.as_of)
    except DomainError as error:
        _fail(error)
    if save:
        results = ResultsOut().dump(_saved_stress_run(program, assumptions))
    else:
        with click.progressbar(length=100, label=f"{program}: {scenarios} scenarios x {book.size} loans "
                                                 f"x {years} years", file=sys.stderr) as bar:
            def progress(done: float) -> None:
                bar.update(int(done * 100) - bar.pos)
            results = ResultsOut().dump(json.loads(json.dumps(engine_.run(book, assumptions, progress), default=str)))
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    _stress_report(results)


def _saved_stress_run(code: str, assumptions) -> dict:
    """Run it as the scheduler would and store it; its stored results."""
    from ledger import stress_runs
    engine = _engine()
    run_id, status = stress_runs.run_now(engine, code, assumptions)
    with engine.connect() as conn:
        run = stress_runs.get_run(conn, code, run_id)
    if status != "done":
        raise click.ClickException(f"stress test {run_id} {status}: {run['error'] or 'a scheduler has it'}")
    click.echo(f"stored as stress test {run_id}: GET /v1/programs/{code}/stress-tests/{run_id}", err=True)
    return run["results"]


def _stress_report(r: dict) -> None:
    curve = ", ".join(f"{y['year']}: {y['probability']}" for y in r["exhaustion_probability_by_year"])
    payout = r["fund_payout"]
    click.echo(f"fund {r['fund']['balance']} yuan, contributions {r['fund']['annual_contribution']} a year; "
               f"{r['loans']} loans, {r['claims_mean']} claims a scenario on average")
    click.echo(f"fund exhausted by year: {curve}")
    click.echo(f"fund payout: mean {payout['mean']}, p50 {payout['p50']}, p95 {payout['p95']}, "
               f"p99 {payout['p99']}, max {payout['max']}")
    for party in r["party_loss"]:
        click.echo(f"  {party['institution']} ({party['role']}): expected {party['expected']}, p99 {party['p99']}")
    click.echo(f"  banks: expected {r['bank_loss']['expected']}, p99 {r['bank_loss']['p99']}; of which "
               f"caps and exhaustion: expected {r['bank_extra_loss']['expected']}, p99 {r['bank_extra_loss']['p99']}")
    binding = ", ".join(f"{cap} {fen}" for cap, fen in r["bank_extra_loss_by_cap"].items() if fen != "0.00")
    click.echo(f"  expected extra loss by cap: {binding or 'none'}")
    click.echo(f"claims the fund could not pay in full: {r['uncovered_claims_mean']} a scenario on average")
    target = r["contribution_for_target"]
    if target:
        click.echo(f"annual contribution keeping exhaustion <= {target['target']}: {target['annual_contribution']} "
                   f"({target['probes']} probes)")


if __name__ == "__main__":  # pragma: no cover
    main()
