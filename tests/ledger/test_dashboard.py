"""`ledger.dashboard` and `ledger.claims.losses_by_party`: which years and regions a page shows,
and the losses by party of live claims (tests/dashboard_world.py: a province of its own)."""
from datetime import date

from ledger import claims, dashboard, targets
from ledger.journal import SYSTEM
from ledger.reads import ReadScope
from ledger.schema import claims as claims_table
from tests.dashboard_world import build
from tests.factories import tx


def test_losses_by_party_sum_to_the_loss_base_and_a_withdrawn_claim_leaves_them(engine):
    world = build()
    scope = claims.claim_condition(ReadScope(region_prefix=world.city[:4]))
    losses = tx(lambda conn: claims.losses_by_party(conn, scope))
    assert [(row.role, row.claim_count, row.amount_fen) for row in losses] == [
        ("bank", 1, 2_500_000_00), ("pool", 1, 1_500_000_00), ("insurer", 1, 1_000_000_00)]
    bank_id = tx(lambda conn: conn.execute(claims_table.select().where(
        claims_table.c.id == world.claim_id)).first().bank_id)
    tx(lambda conn: claims.withdraw_claim(conn, world.claim_id, bank_id, date(2026, 6, 2), SYSTEM))
    assert tx(lambda conn: claims.losses_by_party(conn, scope)) == []


def test_the_years_start_at_the_first_with_loans_and_an_empty_region_has_none(engine):
    world = build()
    key_city = tx(lambda conn: targets.target_set(conn, "key-city-2018"))
    rows = tx(lambda conn: dashboard.target_years(conn, world.city, 2025, "registration", key_city))
    assert [row.year for row in rows] == [2024, 2025]
    assert [(c["metric"], c["pass"]) for c in rows[-1].checks] == [("amount_growth", False), ("sme_share_count", True)]
    later = tx(lambda conn: dashboard.target_years(conn, world.city, 2032, "registration", key_city))
    assert [row.year for row in later] == list(range(2025, 2033))  # YEARS_SHOWN, 2024 left out
    assert tx(lambda conn: dashboard.target_years(conn, world.city, 2040, "registration", key_city)) == []
    empty = world.province[:2] + "0900"
    assert tx(lambda conn: dashboard.target_years(conn, empty, 2025, "registration", key_city)) == []


def test_the_regions_offered_start_at_home_and_stay_inside_it(engine):
    world = build()
    offered = tx(lambda conn: dashboard.regions_offered(conn, world.city))
    assert offered[0] == world.city and world.district in offered
    assert world.province not in offered and world.other_city not in offered
    assert dashboard.home_region("admin", "440100") == "000000"
    assert dashboard.home_region("fiscal", "440100") == "440100"
