"""A province of its own for the dashboard's tests (API and browser): two cities, two years of
loans in the first city, one loan in the second, a claim in the first, and a key of each kind
of reader.

City A (`<P>0100`, district `<P>0101`): 2024 lends 3000000.00 (a private SME) + 2000000.00 (a
large firm); 2025 lends 5000000.00 (an SME, the claim's loan), 800000.00 (an SME) and 200000.00
(a large firm): amount growth exactly 20% (fails "> 20%"), count growth 50%, SME share 50% then
2/3. City B (`<P>0200`): one 2025 loan of 700000.00 with its own bank and programme.
`done_stress_run` gives a programme a finished stress test, run synchronously as the scheduler would.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

from ledger import claims, programs, stress_runs
from ledger.journal import SYSTEM
from ledger.schema import institutions
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, api_terms, make_key,
                             make_loan, patent_number, program_parties, tx, unique)
from sqlalchemy import select

_provinces = itertools.count(73)  # provinces 73.. : no other test lends there


@dataclass
class DashboardWorld:
    province: str
    city: str
    district: str
    other_city: str
    keys: dict = field(default_factory=dict)  # name -> secret
    claim_id: int = 0
    program: str = ""  # city A's programme (the claim's, the pool's)
    stress_run: int = 0  # a finished stress test of it, when a test made one
    other_program: str = ""  # city B's
    parties: dict = field(default_factory=dict)


def institution_id(code: str) -> int:
    return tx(lambda conn: conn.execute(select(institutions.c.id).where(institutions.c.code == code)).scalar_one())


def _lend(bank_id: int, program: str, district: str, principal: str, year: int, **facts) -> int:
    code = BorrowerFactory(bank_id=bank_id, region=district, **facts).facts.credit_code
    return make_loan(bank_id, code, program, principal=principal, start_date=f"{year}-03-01",
                     maturity_date=f"{year + 1}-02-28", insured_amount=principal,
                     pledges=[{"kind": "patent", "number": patent_number(), "registration_no": unique("Y"),
                               "registered_on": f"{year}-02-20"}])


def build(province: str | None = None) -> DashboardWorld:
    province = province or f"{next(_provinces)}0000"
    world = DashboardWorld(province, province[:2] + "0100", province[:2] + "0101", province[:2] + "0200")
    world.parties = program_parties(world.city)
    program = ProgramFactory(region=world.city, terms=api_terms(**world.parties))
    world.program = program.code
    bank = InstitutionFactory(kind="bank", region=world.city)
    pool_id = institution_id(world.parties["pool"])
    tx(lambda conn: programs.contribute(conn, program.code, pool_id, 150_000_000, date(2025, 1, 2), SYSTEM))
    large = {"employees": 2000, "revenue_fen": 500_000_000_00}
    _lend(bank.id, program.code, world.district, "3000000.00", 2024)
    _lend(bank.id, program.code, world.district, "2000000.00", 2024, **large)
    defaulting = _lend(bank.id, program.code, world.district, "5000000.00", 2025)
    _lend(bank.id, program.code, world.district, "800000.00", 2025)
    _lend(bank.id, program.code, world.district, "200000.00", 2025, **large)
    claim = tx(lambda conn: claims.open_claim(conn, defaulting, bank.id, date(2026, 6, 1), SYSTEM,
                                              overdue_days=93, today=date(2026, 6, 2)))
    world.claim_id = claim["id"]

    other_program = ProgramFactory(region=world.other_city)
    world.other_program = other_program.code
    other_bank = InstitutionFactory(kind="bank", region=world.other_city)
    _lend(other_bank.id, other_program.code, world.other_city[:4] + "01", "700000.00", 2025)

    world.keys = {
        "fiscal": make_key("fiscal", InstitutionFactory(kind="fiscal", region=world.city).code),
        "auditor": make_key("auditor", InstitutionFactory(kind="auditor", region=world.district).code),
        "other_auditor": make_key("auditor", InstitutionFactory(kind="auditor", region=world.other_city).code),
        "bank": make_key("bank", bank.code),
        "other_bank": make_key("bank", other_bank.code),
        "insurer": make_key("insurer", world.parties["insurer"]),
        "admin": make_key("admin"),
    }
    return world


STRESS = {"as_of": "2026-07-01", "years": 3, "scenarios": 40, "seed": 11, "default_probability": "0.3",
          "asset_correlation": "0.2", "recovery_rate": "0.2"}
"""A small stress test (40 scenarios: well under a second) of a world's programme."""


def queue_stress_run(code: str, **changes) -> int:
    a = stress_runs.assumptions_from_dict({**STRESS, **changes})
    return tx(lambda conn: stress_runs.queue_run(conn, programs.get_program(conn, code), a, None))["id"]


def done_stress_run(engine, code: str, **changes) -> int:
    """A finished run, run synchronously as the scheduler would (queue, claim, execute)."""
    run_id, status = stress_runs.run_now(engine, code, stress_runs.assumptions_from_dict({**STRESS, **changes}))
    assert status == "done"
    return run_id
