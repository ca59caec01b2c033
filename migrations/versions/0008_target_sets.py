"""Target sets as data (DOMAIN.md §6), seeded with the three defaults.

- `target_sets` (code, created_at, created_by_key_id) and `target_set_checks` (position, metric,
  comparator `>` or `>=`, threshold as a decimal string): never changed once made.
- Seeded: key-city-2018 (amount growth > 20%, SME share > 50%), key-city-2019 (amount,
  pledge-count and insured-amount growth >= 30%), sichuan-2021 (amount growth >= 30%, count
  growth >= 15%, SME-enterprise growth >= 15%), exactly as DOMAIN.md words them ("exceed" is
  strict, "or more" is not).
- `target_snapshot_runs` and `target_snapshots`: the nightly figures per region, year and basis.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DEFAULTS = {
    "key-city-2018": [("amount_growth", ">", "0.20"), ("sme_share_count", ">", "0.50")],
    "key-city-2019": [("amount_growth", ">=", "0.30"), ("pledge_count_growth", ">=", "0.30"),
                      ("insured_amount_growth", ">=", "0.30")],
    "sichuan-2021": [("amount_growth", ">=", "0.30"), ("count_growth", ">=", "0.15"),
                     ("sme_enterprise_count_growth", ">=", "0.15")],
}


FIGURES = ("amount_fen", "count", "pledge_count", "insured_amount_fen", "enterprise_count",
           "sme_enterprise_count", "sme_count", "sme_amount_fen", "inclusive_count")


def upgrade() -> None:
    sets = op.create_table(
        "target_sets",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_key_id"], ["api_keys.id"],
                                name=op.f("fk_target_sets_created_by_key_id_api_keys")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_target_sets")))
    checks = op.create_table(
        "target_set_checks",
        sa.Column("target_set_code", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("comparator", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.String(length=20), nullable=False),
        sa.CheckConstraint("comparator IN ('>', '>=')", name=op.f("ck_target_set_checks_comparator")),
        sa.ForeignKeyConstraint(["target_set_code"], ["target_sets.code"],
                                name=op.f("fk_target_set_checks_target_set_code_target_sets")),
        sa.PrimaryKeyConstraint("target_set_code", "position", name=op.f("pk_target_set_checks")))
    now = datetime.now(timezone.utc)
    op.bulk_insert(sets, [{"code": code, "created_at": now, "created_by_key_id": None} for code in DEFAULTS])
    op.bulk_insert(checks, [{"target_set_code": code, "position": n, "metric": metric, "comparator": comparator,
                             "threshold": threshold}
                            for code, rules in DEFAULTS.items() for n, (metric, comparator, threshold) in enumerate(rules)])


    op.create_table(
        "target_snapshot_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_snapshot_runs")))
    op.create_table(
        "target_snapshots",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(length=12), nullable=False),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in FIGURES],
        sa.ForeignKeyConstraint(["run_id"], ["target_snapshot_runs.id"],
                                name=op.f("fk_target_snapshots_run_id_target_snapshot_runs")),
        sa.PrimaryKeyConstraint("run_id", "region", "year", "basis", name=op.f("pk_target_snapshots")))


def downgrade() -> None:
    op.drop_table("target_snapshots")
    op.drop_table("target_snapshot_runs")
    op.drop_table("target_set_checks")
    op.drop_table("target_sets")
