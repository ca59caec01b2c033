"""The rules of migration 0009 fire (docs/DATABASE_RULES.md, "Claim payments and recoveries"):
raw SQL around the app, each in a real transaction that commits, asserting the rule's own name
or message so that another rule firing first fails the test. CHECKs on both databases; the
triggers on PostgreSQL."""
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.claim_payments import pay_claim
from ledger.journal import SYSTEM
from tests.factories import engine as bound_engine
from tests.factories import tx
from tests.ledger.test_claims_db import _institution_id, default, loan_in, world

RECOVERY = ("INSERT INTO recoveries (loan_id, claim_id, bank_id, received_on, gross_fen, costs_fen, net_fen, "
            "source, created_at) VALUES (:loan, :claim, :bank, '2026-09-01', :gross, :costs, :net, :source, "
            "CURRENT_TIMESTAMP) RETURNING id")
RECOVERY_SHARE = ("INSERT INTO recovery_shares (recovery_id, position, institution_id, role, borne_fen, "
                  "amount_fen, to_institution_id) VALUES (:r, :pos, :inst, 'bank', :borne, :fen, :inst)")


@pytest.fixture
def claim(engine):
    w = world()
    made = default(w, loan_in(w))
    insurer = _institution_id(w["insurer"])
    tx(lambda conn: pay_claim(conn, made["id"], insurer, 100, date(2026, 6, 10), f"DB-RULES-{made['id']}", SYSTEM))
    return {**made, "insurer_id": insurer, "insurer_share": made["shares"][0]["id"]}


def committed(sql: str, **params):
    """One real transaction that commits (deferred triggers fire only then)."""
    with bound_engine().connect() as conn:
        result = conn.execute(text(sql), params)
        row = result.first() if result.returns_rows else None
        conn.commit()
    return row


def refused(match: str, fn, *args, **params):
    with pytest.raises(DBAPIError, match=match):
        fn(*args, **params)


@pytest.mark.parametrize("paid", ["amount_fen + 1", "-1"])
def test_a_share_is_never_paid_beyond_what_it_owes_or_below_zero(claim, paid):
    refused("paid_within_amount", committed,
            f"UPDATE claim_shares SET paid_fen = {paid} WHERE id = :id", id=claim["insurer_share"])


def test_a_recovery_net_is_gross_less_costs(claim):
    params = {"loan": claim["loan_id"], "claim": claim["id"], "bank": claim["bank_id"], "source": "auction"}
    refused("ck_recoveries_net", committed, RECOVERY, gross=100, costs=10, net=91, **params)
    refused("ck_recoveries_net", committed, RECOVERY, gross=100, costs=110, net=-10, **params)
    refused("ck_recoveries_source", committed, RECOVERY, gross=100, costs=10, net=90,
            **{**params, "source": "lottery"})


def test_a_payment_is_positive_and_a_payers_reference_is_used_once(claim):
    insert = ("INSERT INTO claim_payments (claim_id, share_id, institution_id, amount_fen, paid_on, reference, "
              "entry_id, created_at) VALUES (:claim, :share, :inst, :fen, '2026-06-11', :ref, :entry, "
              "CURRENT_TIMESTAMP)")
    params = {"claim": claim["id"], "share": claim["insurer_share"], "inst": claim["insurer_id"],
              "entry": claim["entry_id"]}
    refused("amount_positive", committed, insert, fen=0, ref="DB-RULES-NEW", **params)
    refused("uq_claim_payments_payer_reference|UNIQUE constraint failed", committed, insert, fen=1,
            ref=f"DB-RULES-{claim['id']}", **params)


def test_a_recovery_whose_parts_differ_from_its_net_is_refused_at_commit(claim, backend):
    if backend != "postgres":
        pytest.skip("a PostgreSQL rule (recoveries_split_sums)")
    params = {"loan": claim["loan_id"], "claim": claim["id"], "bank": claim["bank_id"], "source": "auction"}

    def split(parts_fen):
        with bound_engine().connect() as conn:
            recovery = conn.execute(text(RECOVERY), {**params, "gross": 100, "costs": 0, "net": 100}).scalar_one()
            conn.execute(text(RECOVERY_SHARE), {"r": recovery, "pos": 9, "inst": claim["bank_id"],
                                                "borne": 1000, "fen": parts_fen})
            conn.commit()
    refused("does not return its net: parts 99 <> net 100", split, 99)
    split(100)  # parts equal to the net: accepted
