

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(fund_fen=st.integers(0, 500_000_000),
       principals_fen=st.lists(st.integers(1_00, 8_000_000_00), min_size=1, max_size=4),
       withdraw=st.sets(st.integers(0, 3)))
def test_property_claims_in_order_never_overdraw_the_fund_and_equal_the_journal(
        engine, fund_fen, principals_fen, withdraw):
    w = world(fund_yuan=0)
    if fund_fen:
        tx(lambda conn: programs.contribute(conn, w["program"].code, w["pool_id"], fund_fen,
                                            date(2025, 1, 2), SYSTEM))
    made = [default(w, loan_in(w, principal=f"{p // 100}.{p % 100:02d}", insured_amount=None))
            for p in principals_fen]
    for index in sorted(withdraw):
        if index < len(made):
            made[index] = tx(lambda conn: withdraw_claim(conn, made[index]["id"], w["bank"].id,
                                                         DEFAULTED_ON, SYSTEM))
    live = [c for c in made if c["status"] == "open"]
    assert sum(shares(c)[w["pool"]][1] for c in made[:len(made)]) >= sum(shares(c)[w["pool"]][1] for c in live)
    for claim in made:
        assert sum(s["amount_fen"] for s in claim["shares"]) + claim["bank_retained_fen"] == claim["loss_base_fen"]
        for computed, owed, cuts in shares(claim).values():
            assert owed == computed - sum(cut["fen"] for cut in cuts) and owed >= 0
        lines = entry_postings(claim["entry_id"])
        assert sum(lines.values()) == 0
        assert lines.get(f"loan:{claim['loan_id']}:claimed") == -claim["outstanding_principal_fen"]
    # the fund is never promised beyond its balance at any point in claim order
    promised = 0
    for claim in made:
        promised += shares(claim)[w["pool"]][1]
        assert promised <= fund_fen
    used = tx(lambda conn: conn.execute(select(cap_usage.c.used_fen).where(
        cap_usage.c.program_id == made[0]["program_id"], cap_usage.c.institution_id == w["pool_id"],
        cap_usage.c.scope == "all")).scalar_one())
    assert used == sum(shares(c)[w["pool"]][1] for c in live)
