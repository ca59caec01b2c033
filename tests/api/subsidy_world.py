"""Subsidy batches for the contract harness (matrix, bad inputs, fuzzing): batches in each state
on a programme, drafted by a bureau's CLI (no key, so any key of the bureau may approve), each on
a period never used before on that programme (2019-Q1 ... 2024-Q4: in force, LPR recorded)."""
from __future__ import annotations

import itertools
from collections import defaultdict

from sqlalchemy import select

from ledger import subsidy_batches as batches
from ledger.institutions import get_institution
from ledger.keys import create_key
from ledger.schema import api_keys
from tests import factories

_quarters = defaultdict(lambda: itertools.count())


def fresh_period(program_code: str) -> str:
    n = next(_quarters[program_code])
    assert n < 24, "the harness ran out of periods for this programme"
    return f"{2019 + n // 4}-Q{n % 4 + 1}"


def batch_in(program, bureau_code: str, state: str) -> int:
    """A new batch of `program` in `state` (draft, approved, posted), drafted by the bureau."""
    def make(conn):
        bureau = get_institution(conn, bureau_code)
        who = batches.Bureau(bureau.id, bureau.region)
        made = batches.draft_batch(conn, program.code, fresh_period(program.code), who)
        if state in ("approved", "posted"):
            batches.approve(conn, made["id"], checker(conn, bureau_code))
        if state == "posted":
            batches.post(conn, made["id"], who)
        return made["id"]
    return factories.tx(make)


def checker(conn, bureau_code: str) -> batches.Bureau:
    """A new fiscal key of the bureau, as the approving officer."""
    prefix, _ = create_key(conn, "fiscal", bureau_code)
    bureau = get_institution(conn, bureau_code)
    key_id = conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == prefix)).scalar_one()
    return batches.Bureau(bureau.id, bureau.region, key_id)
