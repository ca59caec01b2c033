"""Demo data: fills an EMPTY database with a realistic book so a new user has something to look at.

`run(engine, progress=None, seed=20251122)` creates, only through the domain functions (so every
rule of the ledger applies to demo data exactly as to real data):
- institutions: three banks (Guangzhou, Shenzhen, Chengdu), an insurer, a guarantee firm, two city
  pools, two treasuries, two fiscal bureaus, an appraiser and the national auditor;
- two programmes modelled on real city schemes (a Guangdong/Guangzhou one with an insurer paying
  first and a fund-capped pool, a Chengdu one with a guarantor and a pool), the first with a
  second terms version from 2024-01-01; yearly fund contributions from the fiscal bureaus;
- a few thousand borrowers with valid unified social credit codes across every industry and size,
  each in the customer file of its city's bank, with facts as of 2018-12-31 (before any loan);
- a few thousand loans from 2019 to 2025, growing year on year, each with 1-3 patent and/or
  trademark pledges registered a few days before the start, posted by the banks in batches;
- fees (the insurance premium or guarantee fee for the term, paid before the start; some
  appraisal fees) and repayments (quarterly interest on the 21st of each quarter's last month and
  principal at maturity; many one-year loans pay interest with the principal instead; some
  amortise, some prepay, a few borrowers stop paying and stay active, overdue) up to `as_of`
  (default: today);
- then the overdue loans default: each active loan whose maturity passed more than its
  programme's trigger days before `as_of` is classified on the day it reached the trigger and
  its claim opened (`ledger.claims.open_claim`), in maturity order, so the caps and the fund
  bind on the later claims;
- then the parties pay (`ledger.claim_payments`): on the first claim where every party owes,
  each pays in full (a pays-first insurer before the pool, the pool from its fund), so it
  settles; on the next such claim the pays-first party (else the first) pays half, so it stays
  open; and the settled claim's pledged IP is auctioned (`ledger.recoveries`): the net returned
  pro rata to what each bore, the pool's part to the treasury (both programmes redirect it).
- then the subsidies (`_subsidies`): the year before the last ended year paid under both
  programmes (interest by `pct_of_paid` and by `pct_of_reference_rate`, the premium and the
  guarantee fee: drafted as the scheduler does, approved by a second officer's fiscal key, posted)
  and the last ended year of the Guangdong scheme drafted, awaiting approval. LPR months the
  loans need that the seed lacks (2018-12..2019-07; after 2025-05 when `as_of` is past 2026) are
  recorded first at the demo's values, and the summary says which.
- last, one finished stress test of the Guangdong pool (`_stress_test`: docs/STRESS.md's worked
  example, 10,000 scenarios x 5 years as of `as_of`), run in process as the scheduler would, so
  the dashboard's "Pool stress test" section has a run to show: about 1 s at the default size.
- Cost: each fee and repayment is one `record_fee` / `record_repayment` call (several statements
  each), which dominates the run: about a minute on SQLite at the default size.

Guarantees
- Deterministic: everything is drawn from `random.Random(seed)` in `plan()`, a pure function; the
  draws do not depend on `as_of` (the whole life of every loan is planned, then only what happened
  up to `as_of` is posted), so the same seed gives the same loans on any day.
- Refuses a database that already has institutions or programmes (`Conflict`), before writing.
- Money is integer fen throughout; yuan strings appear only in the API-shaped loan dicts.
- Each loan batch (at most `LOAN_BATCH` loans, one bank) and each group of fees/repayments is its
  own transaction; postings go year by year so the journal reads roughly in date order.
- The programme terms below are EXAMPLES modelled on the shape of real schemes (Guangzhou's and
  Chengdu's IP pledge financing risk-compensation pools); they are not any programme's real terms.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select

from ledger import institutions as inst
from ledger import loans as loan_domain
from ledger import programs, stress_runs, subsidy_batches
from ledger.db import run_in_transaction
from ledger.dates import today as business_today
from ledger.claims import scan_overdue
from ledger.keys import create_key
from ledger.rates import record_rate
from ledger.schema import institutions, reference_rates
from ledger.targets import take_snapshot
from ledger.errors import Conflict, Invalid
from ledger.identifiers import (
    CREDIT_CODE_CHARSET,
    credit_code_check_char,
    patent_check_char,
)
from ledger.journal import SYSTEM
from ledger.money import format_yuan
from ledger.parties import BorrowerFacts, upsert_borrower
from ledger.sme import INDUSTRIES, classify, standard_in_force
from ledger.terms import parse_terms

Progress = Callable[[str, int, int], None]

DEFAULT_SEED = 20251122
DEFAULT_BORROWERS = 2500
DEFAULT_LOANS = 4000
FIRST_YEAR, LAST_YEAR = 2019, 2025  # loans start in these years
LOAN_BATCH = 500       # loans per create_loans call (one transaction each)
EVENT_BATCH = 1000     # fees / repayments per transaction
BORROWER_BATCH = 500   # borrowers per transaction
FEN_PER_YUAN = 100
FEN_PER_WAN = 1_000_000  # 万元 (10,000 yuan)

# Each bank states its borrowers' facts as of the end of 2018, before the first loans (a loan
# freezes the facts in force on its start date).
FACTS_AS_OF = date(2018, 12, 31)
GD_PROGRAM = "gd-ip-pledge"
CD_PROGRAM = "cd-ip-pledge"
VERSION_2_FROM = date(2024, 1, 1)

# code, name, kind, region
INSTITUTIONS = (
    ("ICBC-GZ", "Industrial and Commercial Bank of China, Guangzhou Branch", "bank", "440100"),
    ("CCB-SZ", "China Construction Bank, Shenzhen Branch", "bank", "440300"),
    ("BOC-CD", "Bank of China, Chengdu Branch", "bank", "510100"),
    ("PICC-GD", "PICC Property and Casualty, Guangdong Branch", "insurer", "440000"),
    ("GD-GUARANTEE", "Guangdong Technology Financing Guarantee Co., Ltd.", "guarantor", "440000"),
    ("GZ-POOL", "Guangzhou IP Pledge Financing Risk Compensation Fund", "pool", "440100"),
    ("CD-POOL", "Chengdu IP Pledge Financing Risk Compensation Pool", "pool", "510100"),
    ("GZ-TREASURY", "Guangzhou Municipal Treasury", "treasury", "440100"),
    ("CD-TREASURY", "Chengdu Municipal Treasury", "treasury", "510100"),
    ("GZ-FISCAL", "Guangzhou Municipal Finance Bureau", "fiscal", "440100"),
    ("CD-FISCAL", "Chengdu Municipal Finance Bureau", "fiscal", "510100"),
    ("GD-APPRAISAL", "Guangdong Huacheng Assets Appraisal Co., Ltd.", "appraiser", "440000"),
    ("NAO", "National Audit Office", "auditor", "000000"),
)


@dataclass(frozen=True)
class Group:
    """A lending market: one bank lending its city's borrowers under one programme."""

    key: str
    city: str
    bank: str
    program: str
    districts: tuple[str, ...]
    share: int           # of borrowers and loans, in parts
    growth: float        # loans per year grow roughly by this factor
    insured: bool        # loans carry insurance (the programme has an insurer)
    fee_kind: str        # the yearly fee borrowers pay (premium or guarantee fee)


GROUPS = (
    Group("gz", "Guangzhou", "ICBC-GZ", GD_PROGRAM,
          ("440103", "440104", "440105", "440106", "440111", "440112", "440113"),
          4, 1.30, True, "premium"),
    Group("sz", "Shenzhen", "CCB-SZ", GD_PROGRAM,
          ("440303", "440304", "440305", "440306", "440307", "440309"),
          3, 1.25, True, "premium"),
    Group("cd", "Chengdu", "BOC-CD", CD_PROGRAM,
          ("510104", "510105", "510106", "510107", "510108"),
          3, 1.40, False, "guarantee_fee"),
)

# One-year LPR in basis points by the month a value took effect (DOMAIN.md 5); before the LPR
# reform of August 2019 the benchmark one-year rate was 4.35% (loans priced near 4.31%).
_LPR_CHANGES = ((2019, 1, 431), (2019, 8, 425), (2019, 9, 420), (2019, 11, 415), (2020, 2, 405),
                (2020, 4, 385), (2021, 12, 380), (2022, 1, 370), (2022, 8, 365), (2023, 6, 355),
                (2023, 8, 345), (2024, 7, 335), (2024, 10, 310), (2025, 5, 300))
MIN_RATE_BP, MAX_RATE_BP = 300, 550


# --- programme terms (EXAMPLES, not any real programme's terms) -------------------------------

def _gd_terms_v1() -> dict:
    """Modelled on Guangzhou's IP pledge financing risk-compensation scheme: only the IP part of a
    loan is covered, the insurer pays its 30% first, the city pool bears up to half (less for big
    loans) out of its fund, the pool's recoveries go to the treasury; interest and premium
    subsidies for SMEs. Province-wide region (440000) so the Shenzhen bank's loans are covered."""
    return {
        "loss_base": "principal", "trigger_overdue_days": 90,
        "coverage": {"ip_share": "ip_part_only", "require_stated_ip_share": True,
                     "min_ip_share": "0.3", "max_covered_principal": "10000000.00",
                     "max_covered_principal_per_borrower_year": "20000000.00"},
        "parties": [
            {"institution": "PICC-GD", "role": "insurer", "share": "0.30", "pays_first": True,
             "caps": {"per_claim": "3000000.00"}},
            {"institution": "GZ-POOL", "role": "pool", "share": "0.50",
             "share_tiers": [{"up_to": "5000000.00", "share": "0.50"},
                             {"up_to": None, "share": "0.40"}],
             "caps": {"per_borrower_year": "5000000.00", "per_bank_year": None,
                      "per_program_year": "50000000.00", "portfolio_cap_rate": None,
                      "fund_balance": True},
             "recoveries_to": "GZ-TREASURY"}],
        "subsidies": [
            {"kind": "interest", "method": "pct_of_paid", "pct": "0.40",
             "caps": {"per_borrower_year": "500000.00", "pct_of_principal": None, "per_loan": None,
                      "per_borrower_total": None, "years": None},
             "eligibility": {"max_rate_over_lpr": "1.5", "sme_only": True, "private_only": False,
                             "max_revenue": None}},
            {"kind": "premium", "method": "pct_of_paid", "pct": "0.50",
             "caps": {"pct_of_principal": "0.012", "per_borrower_year": "150000.00"}}]}


def _gd_terms_v2() -> dict:
    """The 2024 revision (example): smaller loans get a larger pool share, the insurer's share
    falls to 25%, bigger loans are covered, and the interest subsidy rises to 50% for 3 years."""
    terms = _gd_terms_v1()
    terms["coverage"].update({"min_ip_share": "0.25", "max_covered_principal": "20000000.00",
                              "max_covered_principal_per_borrower_year": "30000000.00"})
    terms["parties"][0]["share"] = "0.25"
    terms["parties"][1].update({
        "share": "0.60",
        "share_tiers": [{"up_to": "3000000.00", "share": "0.60"},
                        {"up_to": "10000000.00", "share": "0.50"},
                        {"up_to": None, "share": "0.40"}]})
    terms["subsidies"][0].update({"pct": "0.50"})
    terms["subsidies"][0]["caps"].update({"per_borrower_year": "600000.00", "years": 3})
    return terms


def _cd_terms() -> dict:
    """Modelled on Chengdu's IP pledge financing risk pool: the whole loan is covered, a
    guarantee firm and the city pool share the loss (the pool capped by its fund and an EIF-style
    portfolio cap), interest subsidised at half the one-year LPR of the month before the start
    (at most the contract rate) for private SMEs, guarantee fees half subsidised."""
    return {
        "loss_base": "principal", "trigger_overdue_days": 90,
        "coverage": {"ip_share": "whole_loan", "require_stated_ip_share": False,
                     "min_ip_share": None, "max_covered_principal": "10000000.00",
                     "max_covered_principal_per_borrower_year": None},
        "parties": [
            {"institution": "GD-GUARANTEE", "role": "guarantor", "share": "0.30",
             "caps": {"per_claim": "3000000.00"}},
            {"institution": "CD-POOL", "role": "pool", "share": "0.40",
             "caps": {"per_borrower_year": None, "per_bank_year": None,
                      "per_program_year": "30000000.00", "portfolio_cap_rate": "0.10",
                      "fund_balance": True},
             "recoveries_to": "CD-TREASURY"}],
        "subsidies": [
            {"kind": "interest", "method": "pct_of_reference_rate", "pct": "0.50",
             "reference": "LPR1Y", "reference_month": "month_before_start",
             "min_with_contract_rate": True,
             "caps": {"per_borrower_year": "300000.00", "years": 2},
             "eligibility": {"max_rate_over_lpr": "1.5", "sme_only": True, "private_only": True,
                             "max_revenue": None}},
            {"kind": "guarantee_fee", "method": "pct_of_paid", "pct": "0.50",
             "caps": {"per_borrower_year": "100000.00"}}]}


PROGRAMS = (
    # code, name, region, effective_from, terms
    (GD_PROGRAM, "Guangdong IP pledge financing risk compensation (Guangzhou pool; example terms)",
     "440000", date(2019, 1, 1), _gd_terms_v1),
    (CD_PROGRAM, "Chengdu IP pledge financing risk compensation pool (example terms)",
     "510100", date(2019, 1, 1), _cd_terms),
)

# --- borrowers ---------------------------------------------------------------------------------

# Relative weights: IP pledge loans go mostly to manufacturers and tech firms.
INDUSTRY_WEIGHTS = {
    "agriculture": 3, "industry": 32, "construction": 4, "wholesale": 7, "retail": 5,
    "transport": 2, "warehousing": 1, "postal": 1, "accommodation": 1, "catering": 3,
    "information_transmission": 5, "software_it": 20, "real_estate_development": 1,
    "property_management": 1, "leasing_business_services": 6, "other": 8,
}
assert set(INDUSTRY_WEIGHTS) == set(INDUSTRIES), "every industry gets borrowers"

DESCRIPTORS = {
    "agriculture": ("Agricultural Technology", "Ecological Agriculture", "Tea", "Seed Industry"),
    "industry": ("Precision Machinery", "New Materials", "Electronics", "Biotechnology",
                 "Medical Devices", "Auto Parts", "Optoelectronics", "Fine Chemicals",
                 "Intelligent Equipment", "Pharmaceutical"),
    "construction": ("Construction Engineering", "Decoration Engineering", "Municipal Engineering"),
    "wholesale": ("Trading", "Supply Chain Management", "Import and Export"),
    "retail": ("Commerce", "Retail Chain", "Pharmacy Chain"),
    "transport": ("Logistics", "Freight Transport"),
    "warehousing": ("Warehousing", "Cold Chain Logistics"),
    "postal": ("Express Delivery", "Courier Services"),
    "accommodation": ("Hotel Management", "Hospitality"),
    "catering": ("Catering Management", "Food and Beverage", "Hotpot Restaurant"),
    "information_transmission": ("Communication Technology", "Internet Services", "Cloud Services"),
    "software_it": ("Software", "Information Technology", "Intelligent Technology",
                    "Data Technology", "Network Technology"),
    "real_estate_development": ("Real Estate Development",),
    "property_management": ("Property Management", "Property Services"),
    "leasing_business_services": ("Consulting", "Equipment Leasing", "Business Services",
                                  "Advertising"),
    "other": ("Culture Media", "Education Technology", "Environmental Technology",
              "Health Management", "Testing and Certification"),
}
SYLLABLES = ("Hua", "Xin", "Jin", "Rui", "Tai", "Hong", "Sheng", "Da", "Tian", "Yuan", "Kang",
             "Long", "Feng", "Heng", "Cheng", "Ming", "Zhi", "Yi", "Bo", "Chuang", "Hai", "Guang",
             "Run", "Xiang", "Jia", "An", "Wei", "Teng", "Yu", "Chen", "Ke", "Lian", "Mei", "Nan",
             "Pu", "Qi", "Shun", "Tong", "Wan", "Xing", "Yao", "Zhong", "Ding", "Fu", "Ling")
# Trademark-led industries pledge trademarks more than patents.
TRADEMARK_LED = frozenset({"wholesale", "retail", "transport", "warehousing", "postal",
                           "accommodation", "catering", "real_estate_development",
                           "property_management", "leasing_business_services"})
NICE_CLASSES = {
    "agriculture": (31, 30, 29), "industry": (7, 9, 1, 10, 12, 5), "construction": (37, 19),
    "wholesale": (35, 29, 30), "retail": (35, 3, 25), "transport": (39,), "warehousing": (39,),
    "postal": (39,), "accommodation": (43,), "catering": (43, 30, 29),
    "information_transmission": (38, 9, 42), "software_it": (9, 42),
    "real_estate_development": (36, 37), "property_management": (36, 37),
    "leasing_business_services": (35, 36, 41), "other": (41, 44, 35, 42),
}

SIZE_WEIGHTS = (("micro", 40), ("small", 38), ("medium", 17), ("large", 5))
PRIVATE_PROBABILITY = {"micro": 0.92, "small": 0.88, "medium": 0.72, "large": 0.45}
# Baseline draws per size class: (employees, revenue in 万元, total assets in 万元) ranges.
BASELINES = {
    "micro": ((3, 19), (30, 300), (20, 300)),
    "small": ((20, 99), (300, 2500), (300, 3000)),
    "medium": ((100, 600), (2000, 20000), (2000, 20000)),
    "large": ((1000, 6000), (40000, 300000), (40000, 400000)),
}
_NEXT_TIER = {"micro": "small", "small": "medium", "medium": "large"}


# --- the plan (pure) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BorrowerPlan:
    facts: BorrowerFacts
    group: str
    size_class: str  # as classified under the SME standard


@dataclass(frozen=True)
class Event:
    """A fee or repayment of one loan, in fen."""

    on: date
    kind: str  # "repayment" or a fee kind
    principal_fen: int = 0
    interest_fen: int = 0
    amount_fen: int = 0


@dataclass
class LoanPlan:
    group: str
    bank: str
    body: dict            # the API-shaped loan (POST /v1/loans)
    start: date
    maturity: date
    principal_fen: int
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Contribution:
    program: str
    contributor: str
    amount_fen: int
    on: date


@dataclass
class Plan:
    borrowers: list[BorrowerPlan]
    loans: list[LoanPlan]
    contributions: list[Contribution]


def plan(seed: int = DEFAULT_SEED, borrowers: int = DEFAULT_BORROWERS,
         loans: int = DEFAULT_LOANS) -> Plan:
    """Everything the demo will post, drawn from `random.Random(seed)`; no I/O, no clock."""
    if borrowers < len(GROUPS) or loans < len(GROUPS):
        raise Invalid.field("borrowers", f"the demo needs at least {len(GROUPS)} borrowers and loans")
    rng = random.Random(seed)
    group_borrowers = _split(borrowers, [g.share for g in GROUPS])
    group_loans = _split(loans, [g.share for g in GROUPS])
    codes: set[str] = set()
    names: set[str] = set()
    borrower_plans: list[BorrowerPlan] = []
    by_group: dict[str, list[BorrowerPlan]] = {}
    for group, count in zip(GROUPS, group_borrowers):
        made = [_borrower(rng, group, codes, names) for _ in range(count)]
        by_group[group.key] = made
        borrower_plans.extend(made)
    loan_plans: list[LoanPlan] = []
    # "patents": every patent number drawn so far: a patent is pledged to one live loan at a time
    counters = {"patent": 0, "trademark": 0, "patents": set()}
    for group, count in zip(GROUPS, group_loans):
        loan_plans.extend(_group_loans(rng, group, count, by_group[group.key], counters))
    return Plan(borrower_plans, loan_plans, _contributions(rng))


def _split(total: int, parts: list[int]) -> list[int]:
    """`total` split in proportion to `parts` by largest remainder (ties to the first)."""
    whole = sum(parts)
    shares = [total * p // whole for p in parts]
    order = sorted(range(len(parts)), key=lambda i: (-(total * parts[i] % whole), i))
    for i in order[:total - sum(shares)]:
        shares[i] += 1
    return shares


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    """A random draw, spread evenly in orders of magnitude. Floats only shape the draw of a
    synthetic figure; callers round it to an integer before it is ever used as money."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _credit_code(rng: random.Random, region: str, taken: set[str]) -> str:
    """A valid unified social credit code: 9 (industry & commerce) 1 (enterprise), the region,
    a 9-character organisation code (post-2015 `MA...` style, or an older all-digit code with
    its own GB 11714 check character), then the GB 32100 check character."""
    while True:
        if rng.random() < 0.6:
            org = "MA" + "".join(rng.choice(CREDIT_CODE_CHARSET) for _ in range(7))
        else:
            digits = "".join(rng.choice("0123456789") for _ in range(8))
            check = 11 - sum(int(d) * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
            org = digits + {10: "X", 11: "0"}.get(check, str(check))
        body = "91" + region + org
        code = body + credit_code_check_char(body)
        if code not in taken:
            taken.add(code)
            return code


def _figures(rng: random.Random, industry: str, target: str) -> tuple[int, int, int]:
    """(employees, revenue fen, total assets fen) drawn to land in `target` size class."""
    row = standard_in_force(date(2025, 1, 1)).row(industry)
    (e_lo, e_hi), (r_lo, r_hi), (a_lo, a_hi) = BASELINES[target]
    employees = round(_log_uniform(rng, e_lo, e_hi))
    revenue = round(_log_uniform(rng, r_lo, r_hi) * 100) * (FEN_PER_WAN // 100)  # whole 100 yuan
    assets = round(_log_uniform(rng, a_lo, a_hi) * 100) * (FEN_PER_WAN // 100)
    values = [employees, revenue, assets]
    if target != "micro":  # meet every lower bound of the target tier
        for i, bound in enumerate(getattr(row, target).bounds()):
            if bound is not None and values[i] < bound:
                values[i] = _round_figure(i, math.ceil(bound * rng.uniform(1.0, 1.4)), up=True)
    higher = _NEXT_TIER.get(target)
    if higher is not None and getattr(row, higher).met_by(*values):
        # fall short of the next tier on one of its bounds
        bounded = [i for i, bound in enumerate(getattr(row, higher).bounds()) if bound is not None]
        i = rng.choice(bounded)
        values[i] = max(_round_figure(i, int(getattr(row, higher).bounds()[i] * rng.uniform(0.4, 0.95))), 1)
    return values[0], values[1], values[2]


def _round_figure(index: int, value: int, up: bool = False) -> int:
    """Employees stay as they are; money is kept in whole hundreds of yuan."""
    if index == 0:
        return value
    step = 100 * FEN_PER_YUAN
    return -(-value // step) * step if up else value // step * step


def _borrower(rng: random.Random, group: Group, codes: set[str], names: set[str]) -> BorrowerPlan:
    industry = rng.choices(list(INDUSTRY_WEIGHTS), weights=list(INDUSTRY_WEIGHTS.values()))[0]
    target = rng.choices([s for s, _ in SIZE_WEIGHTS], weights=[w for _, w in SIZE_WEIGHTS])[0]
    employees, revenue, assets = _figures(rng, industry, target)
    size_class = classify(industry, employees, revenue, assets, on=date(2025, 1, 1)).size_class
    private = rng.random() < PRIVATE_PROBABILITY[size_class]
    region = rng.choice(group.districts)
    while True:
        brand = rng.choice(SYLLABLES) + rng.choice(SYLLABLES).lower()
        suffix = "Group Co., Ltd." if size_class == "large" and rng.random() < 0.6 else "Co., Ltd."
        name = f"{group.city} {brand} {rng.choice(DESCRIPTORS[industry])} {suffix}"
        if name not in names:
            names.add(name)
            break
    facts = BorrowerFacts(_credit_code(rng, region, codes), name, region, industry, employees,
                          revenue, assets, private)
    return BorrowerPlan(facts, group.key, size_class)


def _lpr_bp(day: date) -> int:
    value = _LPR_CHANGES[0][2]
    for year, month, bp in _LPR_CHANGES:
        if (year, month) <= (day.year, day.month):
            value = bp
    return value


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _weekday(day: date) -> date:
    """The next business day (Monday for a weekend), staying in the same year."""
    moved = day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)
    return moved if moved.year == day.year else day - timedelta(days=day.weekday() - 4)


def _year_counts(rng: random.Random, total: int, growth: float) -> list[int]:
    years = list(range(FIRST_YEAR, LAST_YEAR + 1))
    weights = [growth ** k * rng.uniform(0.95, 1.05) for k in range(len(years))]
    # integer parts per year (millionths) so the split is exact and deterministic
    return _split(total, [max(1, round(w * 1_000_000)) for w in weights])


def _group_loans(rng: random.Random, group: Group, count: int, pool: list[BorrowerPlan],
                 counters: dict) -> list[LoanPlan]:
    # Some borrowers come back for more loans: a skewed (log-normal) preference per borrower.
    preference = [rng.lognormvariate(0, 0.5) for _ in pool]
    cumulative, running = [], 0.0
    for weight in preference:
        running += weight
        cumulative.append(running)
    made: list[LoanPlan] = []
    for year, year_count in zip(range(FIRST_YEAR, LAST_YEAR + 1), _year_counts(rng, count, group.growth)):
        first, last = date(year, 1, 2), date(year, 12, 31)
        drafts = []
        for _ in range(year_count):
            start = _weekday(first + timedelta(days=rng.randrange((last - first).days + 1)))
            borrower = rng.choices(pool, cum_weights=cumulative)[0]
            drafts.append((start, borrower))
        drafts.sort(key=lambda d: d[0])
        for seq, (start, borrower) in enumerate(drafts, start=1):
            made.append(_loan(rng, group, f"{group.bank}-{year}-{seq:05d}", start, borrower, counters))
    return made


def _principal_fen(rng: random.Random, size_class: str) -> int:
    u = rng.random()
    boost = {"micro": 0.0, "small": 0.0, "medium": 0.04, "large": 0.12}[size_class]
    if u < 0.15 - boost:      # small loans: 0.3-1 million yuan, in 50,000s
        yuan = rng.randrange(6, 20) * 50_000
    elif u < 0.95 - boost:    # the bulk: 1-10 million yuan, in 100,000s
        yuan = round(_log_uniform(rng, 1_000_000, 10_000_000) / 100_000) * 100_000
    else:                     # a few big ones: 10-30 million yuan, in millions
        yuan = rng.randrange(10, 31) * 1_000_000
    return yuan * FEN_PER_YUAN


def _loan(rng: random.Random, group: Group, contract_no: str, start: date, borrower: BorrowerPlan,
          counters: dict) -> LoanPlan:
    principal = _principal_fen(rng, borrower.size_class)
    # priced a little around the LPR of the start month; a few above 1.5 x LPR (no interest subsidy)
    lpr = _lpr_bp(start)
    spread = lpr // 2 + rng.randint(5, 30) if rng.random() < 0.06 else rng.randint(-20, 110)
    rate_bp = min(MAX_RATE_BP, max(MIN_RATE_BP, lpr + spread))
    months = rng.choices((12, 24, 36), weights=(70, 22, 8))[0]  # mostly one-year working capital
    maturity = add_months(start, months) - timedelta(days=1)
    ip_share = _ip_share(rng, group)
    insured = principal if group.insured and rng.random() < 0.9 else None
    pledges = _pledges(rng, borrower, start, principal, counters)
    body = {"contract_no": contract_no, "borrower": borrower.facts.credit_code,
            "program": group.program, "principal": format_yuan(principal),
            "annual_rate": f"0.{rate_bp:04d}", "start_date": start.isoformat(),
            "maturity_date": maturity.isoformat(), "ip_share": ip_share,
            "insured_amount": None if insured is None else format_yuan(insured),
            "pledges": pledges}
    loan = LoanPlan(group.key, group.bank, body, start, maturity, principal)
    repayments = _repayments(rng, loan, rate_bp, months)
    loan.events = sorted(_fees(rng, group, loan, insured, pledges, months) + repayments,
                         key=lambda e: (e.on, e.kind == "repayment"))
    return loan


def _ip_share(rng: random.Random, group: Group) -> str | None:
    if group.program == CD_PROGRAM and rng.random() < 0.15:
        return None  # Chengdu covers the whole loan and does not ask for the IP share
    u = rng.random()
    if u < 0.40:
        return "1"  # a pure IP pledge
    if u < 0.93:
        return f"0.{rng.randrange(50, 100):02d}"
    if u < 0.97:
        return f"0.{rng.randrange(30, 50):02d}"
    return f"0.{rng.randrange(15, 25):02d}"  # below the Guangdong minimum: covered 0


def _pledges(rng: random.Random, borrower: BorrowerPlan, start: date, principal: int,
             counters: dict) -> list[dict]:
    industry = borrower.facts.industry
    lead, other = ("trademark", "patent") if industry in TRADEMARK_LED else ("patent", "trademark")
    mix = rng.choices(("lead", "mixed", "other"), weights=(65, 20, 15))[0]
    count = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
    if mix == "mixed":
        kinds = [lead, other] + [rng.choice((lead, other)) for _ in range(max(count, 2) - 2)]
    else:
        kinds = [lead if mix == "lead" else other] * count
    n_patents = kinds.count("patent")
    made, seen = [], set()
    for kind in kinds:
        registered_on = start - timedelta(days=rng.randint(3, 15))
        counters[kind] += 1
        if kind == "patent":
            while True:
                digits = (f"{rng.randint(max(2008, start.year - 10), start.year - 1)}"
                          f"{rng.choices('123', weights=(50, 40, 10))[0]}{rng.randrange(10 ** 7):07d}")
                if digits not in seen and digits not in counters["patents"]:
                    seen.add(digits)
                    counters["patents"].add(digits)
                    break
            value = principal * rng.randint(120, 200) // 100 // n_patents
            made.append({"kind": "patent", "number": f"ZL{digits}.{patent_check_char(digits)}",
                         "registration_no": f"Y{registered_on.year}{borrower.facts.region[:2]}"
                                            f"{counters['patent']:07d}",
                         "registered_on": registered_on.isoformat(),
                         "appraised_value": format_yuan(value // 100_000 * 100_000)})
        else:
            while True:
                number = str(rng.randint(1_000_000, 69_999_999))
                if number not in seen:
                    seen.add(number)
                    break
            made.append({"kind": "trademark", "number": number,
                         "nice_class": rng.choice(NICE_CLASSES[industry]),
                         "registration_no": f"TM-{registered_on.year}-{counters['trademark']:06d}",
                         "registered_on": registered_on.isoformat()})
    return made


def _fees(rng: random.Random, group: Group, loan: LoanPlan, insured: int | None,
          pledges: list[dict], months: int) -> list[Event]:
    events = []
    # The insurance premium on the insured amount (Guangdong) or the guarantee fee on the
    # principal (Chengdu): a yearly rate for the whole term, paid once a few days before the start.
    basis = insured if group.fee_kind == "premium" else loan.principal_fen
    if basis:
        fee_bp = rng.randint(100, 180) if group.fee_kind == "premium" else rng.randint(100, 150)
        amount = basis * fee_bp * months // (10_000 * 12) // FEN_PER_YUAN * FEN_PER_YUAN  # whole yuan
        events.append(Event(loan.start - timedelta(days=rng.randint(0, 5)), group.fee_kind,
                            amount_fen=amount))
    appraised = sum(int(p["appraised_value"].replace(".", "")) for p in pledges if "appraised_value" in p)
    if appraised and rng.random() < 0.2:  # the borrower paid the appraisal firm itself
        amount = min(max(appraised * rng.randint(30, 60) // 10_000, 3_000 * FEN_PER_YUAN),
                     100_000 * FEN_PER_YUAN) // FEN_PER_YUAN * FEN_PER_YUAN
        first = min(date.fromisoformat(p["registered_on"]) for p in pledges)
        events.append(Event(first - timedelta(days=rng.randint(3, 20)), "appraisal_fee",
                            amount_fen=amount))
    return events


def _quarter_dates(start: date, maturity: date) -> list[date]:
    """Interest settlement days (the 21st of Mar, Jun, Sep, Dec) after start, before maturity."""
    return [day for year in range(start.year, maturity.year + 1) for month in (3, 6, 9, 12)
            if start < (day := date(year, month, 21)) < maturity]


def _interest_fen(outstanding: int, rate_bp: int, days: int) -> int:
    """outstanding x rate x days / 360 (actual/360), rounded half up to the fen."""
    numerator, denominator = outstanding * rate_bp * days, 10_000 * 360
    return (2 * numerator + denominator) // (2 * denominator)


def _repayments(rng: random.Random, loan: LoanPlan, rate_bp: int, months: int) -> list[Event]:
    """Quarterly interest, principal at maturity; some one-year loans pay interest with the
    principal at maturity (利随本清). Behaviours: most pay as agreed, some amortise, some prepay
    and close early, a few stop paying (they stay active and become overdue)."""
    bullet = months == 12 and rng.random() < 0.6
    behaviour = rng.choices(("normal", "amortising", "prepay", "distressed"),
                            weights=(83, 10, 4, 3))[0]
    quarters = [] if bullet else _quarter_dates(loan.start, loan.maturity)
    days = quarters + [loan.maturity]
    stop = len(days)
    if behaviour == "prepay" and len(quarters) >= 3:
        stop = rng.randint(len(quarters) // 3, len(quarters) - 1) + 1  # closes on days[stop - 1]
    elif behaviour == "distressed":
        stop = rng.randint(0, len(days) - 1)  # pays days[:stop], then nothing
    installment = loan.principal_fen // (len(quarters) + 1) if behaviour == "amortising" else 0
    events, outstanding, previous = [], loan.principal_fen, loan.start
    for i, day in enumerate(days[:stop]):
        interest = _interest_fen(outstanding, rate_bp, (day - previous).days)
        last = i == len(days) - 1 or (behaviour == "prepay" and i == stop - 1)
        principal = outstanding if last else min(installment, outstanding)
        if principal or interest:
            events.append(Event(day, "repayment", principal_fen=principal, interest_fen=interest))
        outstanding -= principal
        previous = day
    return events


def _contributions(rng: random.Random) -> list[Contribution]:
    """Each bureau seeds its pool when the scheme opens and tops it up twice a year after."""
    made = []
    for program, bureau, seed_yuan, top_up in ((GD_PROGRAM, "GZ-FISCAL", 30_000_000, (8, 20)),
                                               (CD_PROGRAM, "CD-FISCAL", 20_000_000, (5, 15))):
        made.append(Contribution(program, bureau, seed_yuan * FEN_PER_YUAN, date(2019, 1, 15)))
        for year in range(FIRST_YEAR, LAST_YEAR + 2):
            for month in (3, 9):
                millions = rng.randint(*top_up)
                made.append(Contribution(program, bureau, millions * 1_000_000 * FEN_PER_YUAN,
                                         date(year, month, 15)))
    return made


# --- posting -----------------------------------------------------------------------------------

SAMPLE_BORROWERS = (  # docs/loans-sample.csv (import it with --bank ICBC-GZ)
    BorrowerFacts("91350100M000100Y43", "Minjiang Patent Works", "440106", "industry", 120,
                  60_000_000_00, 45_000_000_00, True),
    BorrowerFacts("91440106708361136L", "Tianhe Optics", "440106", "industry", 35, 9_000_000_00,
                  6_000_000_00, True),
    BorrowerFacts("91440106MA5CXX0N1P", "Zhujiang Brands", "440106", "retail", 12, 3_000_000_00,
                  1_000_000_00, True),
)


def run(engine: Engine, progress: Progress | None = None, seed: int = DEFAULT_SEED, *,
        borrowers: int = DEFAULT_BORROWERS, loans: int = DEFAULT_LOANS,
        as_of: date | None = None) -> dict:
    """Fill an empty database with the demo book; returns counts of what was made.

    `progress(step, done, total)` is called after each transaction, for the steps
    "institutions", "programmes", "borrowers" and "loans & payments" in that order.
    Fees, repayments and contributions dated after `as_of` (default: today) are not posted.
    """
    started = time.perf_counter()
    today = business_today()
    as_of = as_of or today
    if as_of > today:
        raise Invalid.field("as_of", "cannot be in the future")
    book = plan(seed, borrowers, loans)
    report = progress or (lambda step, done, total: None)

    # 1. institutions (refusing a database that has any)
    ids: dict[str, int] = {}

    def setup(conn):
        if inst.list_institutions(conn, limit=1) or programs.list_programs(conn, limit=1):
            raise Conflict("the database already has data; demo fills an empty one")
        for code, name, kind, region in INSTITUTIONS:
            ids[code] = inst.create_institution(conn, code, name, kind, region).id

    run_in_transaction(engine, setup)
    report("institutions", len(INSTITUTIONS), len(INSTITUTIONS))
    bank_of_group = {group.key: ids[group.bank] for group in GROUPS}

    # 2. programmes, the Guangdong scheme's 2024 version
    def make_programs(conn):
        for code, name, region, effective_from, terms in PROGRAMS:
            programs.create_program(conn, code, name, region, effective_from, None,
                                    parse_terms(terms(), None), SYSTEM)
        programs.add_version(conn, GD_PROGRAM, VERSION_2_FROM, None, parse_terms(_gd_terms_v2(), None),
                             SYSTEM)

    run_in_transaction(engine, make_programs)
    report("programmes", 3, 3)

    # 3. borrowers
    for done in range(0, len(book.borrowers), BORROWER_BATCH):
        chunk = book.borrowers[done:done + BORROWER_BATCH]
        run_in_transaction(engine, lambda conn, chunk=chunk: [
            upsert_borrower(conn, bank_of_group[b.group], b.facts, as_of=FACTS_AS_OF, today=today) for b in chunk])
        report("borrowers", done + len(chunk), len(book.borrowers))

    # The borrowers of docs/loans-sample.csv, so the sample imports into a demo database.
    run_in_transaction(engine, lambda conn: [upsert_borrower(conn, ids["ICBC-GZ"], facts, as_of=FACTS_AS_OF,
                                                             today=today) for facts in SAMPLE_BORROWERS])

    # 4. year by year: contributions, the year's loans, then its fees and repayments
    counts = _post_book(engine, book, ids, as_of, report)
    counts["claims"] = scan_overdue(engine, as_of)  # the overdue scan, as the daily job runs it
    counts["loans_defaulted"] = counts["claims"]
    counts["loans_active"] -= counts["claims"]
    counts.update(run_in_transaction(engine, lambda conn: _pay_and_recover(conn, as_of)))
    # The targets snapshot, as the nightly job takes it: /v1/targets answers from it at once.
    counts["target_region_years"] = run_in_transaction(engine, take_snapshot).rows
    counts.update(_subsidies(engine, book, as_of))
    counts["stress_test_done"] = _stress_test(engine, as_of)
    return {"institutions": len(INSTITUTIONS), "programs": len(PROGRAMS), "program_versions": 3,
            "borrowers": len(book.borrowers) + len(SAMPLE_BORROWERS), **counts,
            "as_of": as_of.isoformat(), "seconds": round(time.perf_counter() - started, 1)}


STRESS_ASSUMPTIONS = {"years": 5, "scenarios": 10_000, "seed": 1, "default_probability": "0.03",
                      "asset_correlation": "0.15", "recovery_rate": "0.3", "recovery_rate_sd": "0.15"}
"""docs/STRESS.md's worked example (measured: 1.1 s for the default book on SQLite)."""


def _stress_test(engine: Engine, as_of: date) -> int:
    """The Guangdong pool's stress test, run at once as the scheduler would; the run's id."""
    a = stress_runs.assumptions_from_dict({**STRESS_ASSUMPTIONS, "as_of": as_of.isoformat()})
    run_id, status = stress_runs.run_now(engine, GD_PROGRAM, a)
    if status != "done":
        raise RuntimeError(f"the demo's stress test {run_id} is {status}")
    return run_id


def _pay_and_recover(conn, as_of: date) -> dict:
    """Payments (one claim settled, one partly paid) and a recovery with a treasury redirect."""
    from sqlalchemy import select

    from ledger.claim_payments import pay_claim
    from ledger.claims import get_claim
    from ledger.recoveries import record_recovery
    from ledger.schema import claims
    ids = conn.execute(select(claims.c.id).where(claims.c.status == "open").order_by(claims.c.id)).scalars().all()
    owing = [c for c in (get_claim(conn, claim_id) for claim_id in ids)
             if c["shares"] and all(share["amount_fen"] for share in c["shares"])]
    made = {"claim_payments": 0, "claims_settled": 0, "claims_partly_paid": 0, "recoveries": 0,
            "recovered_to_treasury": format_yuan(0)}
    if len(owing) < 2:
        return made
    settled, partly = owing[:2]

    def pay(claim, share, fen):
        day = min(claim["classified_on"] + timedelta(days=30), as_of)
        pay_claim(conn, claim["id"], share["institution_id"], fen, day, f"DEMO-{claim['id']}-{share['position']}-{fen}",
                  SYSTEM, today=as_of)
        made["claim_payments"] += 1
    for share in sorted(settled["shares"], key=lambda share: not share["pays_first"]):  # pays-first first
        pay(settled, share, share["amount_fen"])
    first = next((share for share in partly["shares"] if share["pays_first"]), partly["shares"][0])
    pay(partly, first, first["amount_fen"] // 2)  # half, rounded down to the fen
    made["claims_settled"], made["claims_partly_paid"] = 1, 1
    # The pledged patents of the settled claim's loan sell for 30% of its loss base; costs 5%
    # of the proceeds (both rounded down to the fen).
    gross = settled["loss_base_fen"] * 30 // 100
    recovery = record_recovery(conn, settled["loan_id"], settled["bank_id"],
                               min(settled["classified_on"] + timedelta(days=90), as_of), gross,
                               gross * 5 // 100, "auction", f"DEMO-AUCTION-{settled['id']}", SYSTEM, today=as_of)
    made["recoveries"] = 1
    made["recovered_to_treasury"] = format_yuan(sum(p["amount_fen"] for p in recovery["distribution"]
                                                    if p["to"] != p["institution"]))
    return made


def _post_book(engine: Engine, book: Plan, ids: dict[str, int], as_of: date, report) -> dict:
    loans_in = [loan for loan in book.loans if loan.start <= as_of]
    contributions = [c for c in book.contributions if c.on <= as_of]
    # phase = the year in which something is posted; a loan's events never precede its creation
    phases: dict[int, dict] = {}

    def phase(year: int) -> dict:
        return phases.setdefault(year, {"contributions": [], "loans": [], "events": []})

    for c in contributions:
        phase(c.on.year)["contributions"].append(c)
    for index, loan in enumerate(loans_in):
        phase(loan.start.year)["loans"].append(index)
        for event in loan.events:
            if event.on <= as_of:
                phase(max(event.on.year, loan.start.year))["events"].append((event.on, index, event))
    total = len(contributions) + len(loans_in) + sum(len(p["events"]) for p in phases.values())
    done = 0
    loan_ids: dict[int, int] = {}
    repaid: dict[int, int] = {}
    counts = {"loans": 0, "pledges": 0, "repayments": 0, "fees": 0, "fund_contributions": 0}
    step = "loans & payments"

    for year in sorted(phases):
        todo = phases[year]
        if todo["contributions"]:
            def contribute(conn, items=todo["contributions"]):
                for c in items:
                    programs.contribute(conn, c.program, ids[c.contributor], c.amount_fen, c.on, SYSTEM)
            run_in_transaction(engine, contribute)
            done += len(todo["contributions"])
            counts["fund_contributions"] += len(todo["contributions"])
            report(step, done, total)
        for bank in sorted({loans_in[i].bank for i in todo["loans"]}):
            indexes = sorted((i for i in todo["loans"] if loans_in[i].bank == bank),
                             key=lambda i: (loans_in[i].start, i))
            for first in range(0, len(indexes), LOAN_BATCH):
                chunk = indexes[first:first + LOAN_BATCH]
                made = run_in_transaction(engine, lambda conn, chunk=chunk, bank=bank: loan_domain.create_loans(
                    conn, ids[bank], loan_domain.parse_loans([loans_in[i].body for i in chunk]), SYSTEM))
                loan_ids.update(zip(chunk, made, strict=True))
                done += len(chunk)
                counts["loans"] += len(chunk)
                counts["pledges"] += sum(len(loans_in[i].body["pledges"]) for i in chunk)
                report(step, done, total)
        events = sorted(todo["events"], key=lambda e: (e[0], e[1], e[2].kind == "repayment"))
        for first in range(0, len(events), EVENT_BATCH):
            chunk = events[first:first + EVENT_BATCH]

            def post(conn, chunk=chunk):
                for _, index, event in chunk:
                    bank_id = ids[loans_in[index].bank]
                    if event.kind == "repayment":
                        loan_domain.record_repayment(conn, loan_ids[index], bank_id, event.on,
                                                     event.principal_fen, event.interest_fen, SYSTEM)
                    else:
                        loan_domain.record_fee(conn, loan_ids[index], bank_id, event.kind,
                                               event.amount_fen, event.on, SYSTEM)
            run_in_transaction(engine, post)
            for _, index, event in chunk:
                repaid[index] = repaid.get(index, 0) + event.principal_fen
            repayments = sum(1 for _, _, e in chunk if e.kind == "repayment")
            counts["repayments"] += repayments
            counts["fees"] += len(chunk) - repayments
            done += len(chunk)
            report(step, done, total)
    counts["loans_closed"] = sum(1 for i, loan in enumerate(loans_in) if repaid.get(i) == loan.principal_fen)
    counts["loans_active"] = counts["loans"] - counts["loans_closed"]
    return counts




# --- subsidies: what the fiscal bureaus paid ----------------------------------------------------

def _subsidies(engine: Engine, book: Plan, as_of: date) -> dict:
    """The year before last ended is paid under both programmes (interest by both methods, the
    premium and the guarantee fee), the last ended year of the Guangdong scheme is drafted and
    awaits approval. The bureaus draft as the scheduler does (no key); a second officer (a demo
    fiscal key per bureau) approves. LPR months the draws need that the seed lacks (before
    2019-08, after 2025-05) are recorded first, as demo data."""
    last = as_of.year - 1  # the last year that has ended
    first_start = min((loan.start for loan in book.loans if loan.start <= as_of), default=None)
    if first_start is None or first_start.year >= last:
        return {"lpr_months_recorded_as_demo_data": "none", "subsidy_batches_posted": 0,
                "subsidy_batches_awaiting_approval": 0}
    # From the month before the first start (`month_before_start` reads it) to December of `last`.
    recorded = run_in_transaction(engine, lambda conn: _record_lpr_months(
        conn, add_months(first_start.replace(day=1), -1), date(last, 12, 1)))
    posted = [run_in_transaction(engine, lambda conn, code=code: _pay(conn, code, str(last - 1), as_of))
              for code in (GD_PROGRAM, CD_PROGRAM)]
    waiting = run_in_transaction(engine, lambda conn: _draft(conn, GD_PROGRAM, str(last), as_of))
    return {"lpr_months_recorded_as_demo_data": _month_ranges(recorded),
            "subsidy_batches_posted": len(posted), "subsidy_lines_posted": sum(b["line_count"] for b in posted),
            "subsidies_paid": format_yuan(sum(b["total_fen"] for b in posted)),
            "subsidy_batches_awaiting_approval": 1, "subsidy_draft": f"{GD_PROGRAM} {last} (batch {waiting['id']})"}


def _record_lpr_months(conn, first: date, last: date) -> list[str]:
    """Each month from `first` to `last` with no LPR1Y recorded, at the demo's value for it."""
    have = set(conn.execute(select(reference_rates.c.month).where(reference_rates.c.name == "LPR1Y")).scalars())
    months = []
    day = first.replace(day=1)
    while day <= last:
        month = day.strftime("%Y-%m")
        if month not in have:
            # basis points / 10^4: an exact 4-place decimal rate, e.g. 300 -> 0.0300
            record_rate(conn, "LPR1Y", month, Decimal(_lpr_bp(day)).scaleb(-4))
            months.append(month)
        day = add_months(day, 1)
    return months


def _month_ranges(months: list[str]) -> str:
    """["2019-01", "2019-02", "2025-06"] -> "2019-01..2019-02, 2025-06" (months in order)."""
    ranges: list[list[str]] = []
    for month in months:
        if ranges and add_months(date.fromisoformat(ranges[-1][-1] + "-01"), 1).strftime("%Y-%m") == month:
            ranges[-1][1:] = [month]
        else:
            ranges.append([month])
    return ", ".join("..".join(r) for r in ranges) or "none"


def _draft(conn, code: str, period: str, as_of: date) -> dict:
    program = programs.get_program(conn, code)
    bureau = subsidy_batches.payer_of(conn, program)
    assert bureau is not None, f"the demo's {code} has one paying bureau"
    return subsidy_batches.draft_batch(conn, code, period, bureau, today=as_of)


def _pay(conn, code: str, period: str, as_of: date) -> dict:
    made = _draft(conn, code, period, as_of)
    bureau = subsidy_batches.payer_of(conn, programs.get_program(conn, code))
    bureau_code = conn.execute(select(institutions.c.code).where(institutions.c.id == bureau.institution_id)).scalar_one()
    prefix, _secret = create_key(conn, "fiscal", bureau_code, label="demo approving officer")
    checker = subsidy_batches.bureau_of(conn, key_prefix=prefix)
    subsidy_batches.approve(conn, made["id"], checker)
    return subsidy_batches.post(conn, made["id"], checker, today=as_of)
