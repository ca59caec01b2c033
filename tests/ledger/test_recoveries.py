"""Recoveries in the database (SQLite and PostgreSQL): DOMAIN.md 4 as table tests (net of costs,
in proportion to what each bore with the bank's retained loss included, never more than borne,
redirected by `recoveries_to`, several accumulating), one balanced `recovery_distributed` entry,
the claim showing what came back."""
from datetime import date

import pytest
from sqlalchemy import select

from ledger.claims import get_claim, withdraw_claim
from ledger.errors import Conflict, Invalid, NotFound
from ledger.journal import SYSTEM
from ledger.recoveries import record_recovery
from tests.factories import InstitutionFactory, tx
from tests.ledger.test_claims_db import DEFAULTED_ON, _institution_id, default, entry_postings, loan_in, world

RECEIVED_ON = date(2026, 9, 1)


def recover(w, loan_id, gross_fen, costs_fen=0, source="auction", on=RECEIVED_ON, bank_id=None):
    return tx(lambda conn: record_recovery(conn, loan_id, bank_id or w["bank"].id, on, gross_fen, costs_fen,
                                           source, "LOT-1", SYSTEM))


def parts(recovery):
    return [(p["role"], p["institution"], p["borne_fen"], p["amount_fen"], p["to"]) for p in recovery["distribution"]]


def treasury_of(w):
    terms = w["program"].versions[0].terms
    return next(p.recoveries_to for p in terms.parties if p.recoveries_to)


# The example terms: insurer 1,000,000.00, pool 1,500,000.00 (its recoveries to the treasury),
# bank 2,500,000.00 of a 5,000,000.00 loss.

def test_net_of_costs_returned_pro_rata_to_what_each_bore_bank_included_pool_to_the_treasury(engine):
    w = world()
    loan_id = loan_in(w)
    default(w, loan_id)
    recovery = recover(w, loan_id, 120_000_001, 20_000_001)  # net 1,000,000.00 = 20% of the loss
    treasury, bank = treasury_of(w), w["bank"].code
    assert recovery["net_fen"] == 100_000_000
    assert parts(recovery) == [("insurer", w["insurer"], 100_000_000, 20_000_000, w["insurer"]),
                               ("pool", w["pool"], 150_000_000, 30_000_000, treasury),
                               ("bank", bank, 250_000_000, 50_000_000, bank)]
    ids = {code: _institution_id(code) for code in (w["insurer"], treasury)}
    assert entry_postings(recovery["entry_id"]) == {
        f"inst:{ids[w['insurer']]}:settlement": 20_000_000, f"inst:{ids[w['insurer']]}:loss_recoveries": -20_000_000,
        f"inst:{ids[treasury]}:settlement": 30_000_000, f"inst:{ids[treasury]}:loss_recoveries": -30_000_000,
        f"inst:{w['bank'].id}:settlement": 50_000_000, f"inst:{w['bank'].id}:loss_recoveries": -50_000_000}


def test_the_largest_remainder_breaks_a_tie_for_the_party_listed_first(engine):
    w = world()
    loan_id = loan_in(w)
    default(w, loan_id)
    # 1 fen over 1,000,000 / 1,500,000 / 2,500,000: exact 0.2 / 0.3 / 0.5; the bank's 0.5 wins.
    assert [p[3] for p in parts(recover(w, loan_id, 1))] == [0, 0, 1]
    # 2 fen more (cumulative 3): exact 0.6 / 0.9 / 1.5 -> floors 0, 0, 1 and the two left to the
    # pool (0.9) and the insurer (0.6); the bank's 1 fen stays.
    assert [p[3] for p in parts(recover(w, loan_id, 2))] == [1, 1, 0]


def test_several_recoveries_accumulate_and_never_return_more_than_borne(engine):
    w = world()
    loan_id = loan_in(w)
    claim_id = default(w, loan_id)["id"]
    for gross in (1_00, 333_33, 1_000_000):
        recover(w, loan_id, gross)
    claim = tx(lambda conn: get_claim(conn, claim_id))
    assert claim["recovered_fen"] == 1_033_433
    # The cumulative 1,033,433 fen split as one: 206,686.6 / 310,029.9 / 516,716.5 -> the two
    # fen left to the pool (.9) and the insurer (.6).
    assert [s["recovered_fen"] for s in claim["shares"]] + [claim["bank_recovered_fen"]] == [
        206_687, 310_030, 516_716]
    everything = claim["loss_base_fen"] - claim["recovered_fen"]
    last = recover(w, loan_id, everything)
    claim = tx(lambda conn: get_claim(conn, claim_id))
    assert [s["recovered_fen"] for s in claim["shares"]] == [s["amount_fen"] for s in claim["shares"]]
    assert claim["bank_recovered_fen"] == claim["bank_retained_fen"] and last["net_fen"] == everything
    with pytest.raises(Invalid, match="surplus over the loss is the borrower's"):
        recover(w, loan_id, 1)


def test_a_pool_part_without_a_redirect_goes_back_into_its_fund(engine):
    def no_redirect(terms):
        terms["parties"][1].pop("recoveries_to", None)
    w = world(change=no_redirect)
    loan_id = loan_in(w)
    default(w, loan_id)
    recovery = recover(w, loan_id, 100_000_000)
    lines = entry_postings(recovery["entry_id"])
    assert lines[f"program:{w['program'].id}:fund"] == 30_000_000
    assert lines[f"program:{w['program'].id}:recoveries"] == -30_000_000


@pytest.mark.parametrize("call, error, match", [
    (lambda w, loan: recover(w, loan, 100, 101), Invalid, "more than the gross"),
    (lambda w, loan: recover(w, loan, 500_000_001), Invalid, "not yet recovered"),
    (lambda w, loan: recover(w, loan, 100, source="lottery"), Invalid, "source|one of"),
    (lambda w, loan: recover(w, loan, 100, on=date(2026, 5, 1)), Invalid, "before the claim"),
    (lambda w, loan: recover(w, loan, 100, on=date(2999, 1, 1)), Invalid, "future"),
    (lambda w, loan: recover(w, loan, 100, bank_id=InstitutionFactory().id), NotFound, "does not exist"),
])
def test_recoveries_that_are_refused(engine, call, error, match):
    w = world()
    loan_id = loan_in(w)
    default(w, loan_id)
    with pytest.raises(error, match=match):
        call(w, loan_id)


def test_only_a_loan_with_a_live_claim_records_a_recovery_and_then_its_claim_stays(engine):
    w = world()
    loan_id = loan_in(w)
    with pytest.raises(Conflict, match="no live claim"):
        recover(w, loan_id, 100)
    claim = default(w, loan_id)
    recover(w, loan_id, 100)
    with pytest.raises(Conflict, match="recoveries recorded"):
        tx(lambda conn: withdraw_claim(conn, claim["id"], w["bank"].id, DEFAULTED_ON, SYSTEM))
    zero = recover(w, loan_id, 50_00, 50_00)  # proceeds eaten by costs: recorded, no entry
    assert zero["net_fen"] == 0 and zero["entry_id"] is None and sum(p[3] for p in parts(zero)) == 0
