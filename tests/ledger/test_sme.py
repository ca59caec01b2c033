"""Tests for ledger.sme: the 2011 MIIT figures, every bound of every row, and revisions as data.

`EXPECTED_2011` is typed in again from the standard (not read from the JSON) so a typo in the
data file fails here; the boundary tests are then generated from the JSON so every bound of
every industry row is exercised exactly at and one unit below.
"""
from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import sme
from ledger.errors import Invalid
from ledger.sme import (
    INDUSTRIES,
    Classification,
    classify,
    load_standards,
    read_standards,
    standard_in_force,
)

DATA_FILE = Path(sme.__file__).parent / "reference" / "sme_miit_2011.json"
FEN_PER_WAN = 1_000_000
ON = date(2025, 1, 1)
ORDER = ["micro", "small", "medium", "large"]
LOWER = {"large": "medium", "medium": "small", "small": "micro"}

# (large, medium, small) as {X: employees, Y: revenue 万元, Z: total assets 万元}.
EXPECTED_2011 = {
    "agriculture": ({"Y": 20000}, {"Y": 500}, {"Y": 50}),
    "industry": ({"X": 1000, "Y": 40000}, {"X": 300, "Y": 2000}, {"X": 20, "Y": 300}),
    "construction": ({"Y": 80000, "Z": 80000}, {"Y": 6000, "Z": 5000}, {"Y": 300, "Z": 300}),
    "wholesale": ({"X": 200, "Y": 40000}, {"X": 20, "Y": 5000}, {"X": 5, "Y": 1000}),
    "retail": ({"X": 300, "Y": 20000}, {"X": 50, "Y": 500}, {"X": 10, "Y": 100}),
    "transport": ({"X": 1000, "Y": 30000}, {"X": 300, "Y": 3000}, {"X": 20, "Y": 200}),
    "warehousing": ({"X": 200, "Y": 30000}, {"X": 100, "Y": 1000}, {"X": 20, "Y": 100}),
    "postal": ({"X": 1000, "Y": 30000}, {"X": 300, "Y": 2000}, {"X": 20, "Y": 100}),
    "accommodation": ({"X": 300, "Y": 10000}, {"X": 100, "Y": 2000}, {"X": 10, "Y": 100}),
    "catering": ({"X": 300, "Y": 10000}, {"X": 100, "Y": 2000}, {"X": 10, "Y": 100}),
    "information_transmission": (
        {"X": 2000, "Y": 100000},
        {"X": 100, "Y": 1000},
        {"X": 10, "Y": 100},
    ),
    "software_it": ({"X": 300, "Y": 10000}, {"X": 100, "Y": 1000}, {"X": 10, "Y": 50}),
    "real_estate_development": (
        {"Y": 200000, "Z": 10000},
        {"Y": 1000, "Z": 5000},
        {"Y": 100, "Z": 2000},
    ),
    "property_management": ({"X": 1000, "Y": 5000}, {"X": 300, "Y": 1000}, {"X": 100, "Y": 500}),
    "leasing_business_services": (
        {"X": 300, "Z": 120000},
        {"X": 100, "Z": 8000},
        {"X": 10, "Z": 100},
    ),
    "other": ({"X": 300}, {"X": 100}, {"X": 10}),
}

# DOMAIN.md §2 table, row by row: (medium, small, large).
DOMAIN_TABLE = {
    "industry": ({"X": 300, "Y": 2000}, {"X": 20, "Y": 300}, {"X": 1000, "Y": 40000}),
    "wholesale": ({"X": 20, "Y": 5000}, {"X": 5, "Y": 1000}, {"X": 200, "Y": 40000}),
    "retail": ({"X": 50, "Y": 500}, {"X": 10, "Y": 100}, {"X": 300, "Y": 20000}),
    "software_it": ({"X": 100, "Y": 1000}, {"X": 10, "Y": 50}, {"X": 300, "Y": 10000}),
    "construction": ({"Y": 6000, "Z": 5000}, {"Y": 300, "Z": 300}, {"Y": 80000, "Z": 80000}),
    "other": ({"X": 100}, {"X": 10}, {"X": 300}),
}

JSON_KEY = {"X": "employees_min", "Y": "revenue_min_wan_yuan", "Z": "total_assets_min_wan_yuan"}
UNIT = {"X": 1, "Y": 1, "Z": 1}  # one employee, one fen, one fen (inputs below are in fen)


def raw_rows() -> dict[str, dict]:
    document = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {entry["industry"]: entry for entry in document["industries"]}


def tier_inputs(tier_json: dict) -> dict[str, int]:
    """Inputs exactly at a tier's bounds, in classify's units; unbounded variables at zero."""
    return {
        "X": tier_json.get("employees_min", 0),
        "Y": tier_json.get("revenue_min_wan_yuan", 0) * FEN_PER_WAN,
        "Z": tier_json.get("total_assets_min_wan_yuan", 0) * FEN_PER_WAN,
    }


def size(industry: str, inputs: dict[str, int], on: date = ON) -> str:
    return classify(industry, inputs["X"], inputs["Y"], inputs["Z"], on=on).size_class


def wan(x: int = 0, y_wan: int = 0, z_wan: int = 0) -> dict[str, int]:
    return {"X": x, "Y": y_wan * FEN_PER_WAN, "Z": z_wan * FEN_PER_WAN}


# --- the data file ---------------------------------------------------------------------------


def test_data_file_header():
    document = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert document["code"] == "MIIT-2011-300"
    assert document["effective_from"] == "2011-06-18"
    assert [entry["industry"] for entry in document["industries"]] == list(INDUSTRIES)
    assert len(INDUSTRIES) == 16


@pytest.mark.parametrize("industry", INDUSTRIES)
def test_data_file_matches_the_2011_standard(industry):
    entry = raw_rows()[industry]
    for tier, expected in zip(("large", "medium", "small"), EXPECTED_2011[industry]):
        assert entry[tier] == {JSON_KEY[v]: bound for v, bound in expected.items()}, tier


def loaded_bounds(threshold) -> dict[str, int]:
    """A loaded tier back in DOMAIN.md's terms: X persons, Y and Z in 万元."""
    employees, revenue_fen, assets_fen = threshold.bounds()
    found = {"X": employees, "Y": None if revenue_fen is None else revenue_fen // FEN_PER_WAN,
             "Z": None if assets_fen is None else assets_fen // FEN_PER_WAN}
    return {variable: bound for variable, bound in found.items() if bound is not None}


@pytest.mark.parametrize("industry", sorted(DOMAIN_TABLE))
def test_the_standard_in_force_matches_domain_md(industry):
    """DOMAIN.md §2's rows against what classify uses (the loaded reference data, in fen)."""
    medium, small, large = DOMAIN_TABLE[industry]
    row = standard_in_force(ON).row(industry)
    assert (loaded_bounds(row.large), loaded_bounds(row.medium), loaded_bounds(row.small)) == (large, medium, small)


def test_loaded_standard_is_in_fen():
    [standard] = load_standards()
    assert standard.code == "MIIT-2011-300"
    assert standard.effective_from == date(2011, 6, 18)
    industry = standard.row("industry")
    assert industry.large.employees_min == 1000
    assert industry.large.revenue_min_fen == 40000 * 1_000_000
    assert industry.large.total_assets_min_fen is None
    assert standard.row("construction").medium.total_assets_min_fen == 5_000_000_000
    assert [row.industry for row in standard.rows] == list(INDUSTRIES)


# --- every bound of every row, generated from the JSON ---------------------------------------


def boundary_cases():
    for industry, entry in raw_rows().items():
        for tier in ("large", "medium", "small"):
            yield pytest.param(industry, tier, None, id=f"{industry}-{tier}-at")
            for variable, key in JSON_KEY.items():
                if key in entry[tier]:
                    yield pytest.param(
                        industry, tier, variable, id=f"{industry}-{tier}-{variable}-minus-one"
                    )


@pytest.mark.parametrize(("industry", "tier", "lowered"), list(boundary_cases()))
def test_every_bound_at_and_one_unit_below(industry, tier, lowered):
    inputs = tier_inputs(raw_rows()[industry][tier])
    if lowered is None:
        assert size(industry, inputs) == tier
    else:
        inputs[lowered] -= UNIT[lowered]
        # Bounds strictly fall from tier to tier, so one unit short lands exactly one tier down.
        assert size(industry, inputs) == LOWER[tier]


def unbounded_cases():
    for industry, entry in raw_rows().items():
        for variable, key in JSON_KEY.items():
            if key not in entry["small"]:
                yield pytest.param(industry, variable, id=f"{industry}-ignores-{variable}")


@pytest.mark.parametrize(("industry", "variable"), list(unbounded_cases()))
def test_variables_a_row_does_not_bound_are_ignored(industry, variable):
    for tier in ("large", "medium", "small"):
        inputs = tier_inputs(raw_rows()[industry][tier])
        for value in (0, 10**15):
            inputs[variable] = value
            assert size(industry, inputs) == tier


@pytest.mark.parametrize("industry", INDUSTRIES)
def test_zero_is_micro_and_far_above_is_large(industry):
    assert size(industry, wan()) == "micro"
    assert size(industry, wan(10**6, 10**9, 10**9)) == "large"


@pytest.mark.parametrize("industry", INDUSTRIES)
def test_meeting_only_some_large_bounds_is_not_large(industry):
    large = tier_inputs(raw_rows()[industry]["large"])
    medium = tier_inputs(raw_rows()[industry]["medium"])
    for variable in ("X", "Y", "Z"):
        if large[variable] == 0:
            continue
        inputs = dict(large, **{variable: medium[variable]})
        assert size(industry, inputs) == "medium"


# --- hand-written examples for the DOMAIN.md rows --------------------------------------------


@pytest.mark.parametrize(
    ("industry", "inputs", "expected"),
    [
        # industry: medium X≥300 and Y≥2000; small X≥20 and Y≥300; large X≥1000 and Y≥40000
        ("industry", wan(1000, 40000), "large"),
        ("industry", wan(999, 40000), "medium"),
        ("industry", wan(5000, 39999), "medium"),
        ("industry", wan(300, 2000), "medium"),
        ("industry", wan(299, 2000), "small"),
        ("industry", wan(2000, 1999), "small"),
        ("industry", wan(20, 300), "small"),
        ("industry", wan(19, 300), "micro"),
        ("industry", wan(5000, 299), "micro"),
        # wholesale: medium X≥20 and Y≥5000; small X≥5 and Y≥1000; large X≥200 and Y≥40000
        ("wholesale", wan(200, 40000), "large"),
        ("wholesale", wan(20, 5000), "medium"),
        ("wholesale", wan(19, 40000), "small"),
        ("wholesale", wan(5, 1000), "small"),
        ("wholesale", wan(4, 40000), "micro"),
        ("wholesale", wan(100, 999), "micro"),
        # retail: medium X≥50 and Y≥500; small X≥10 and Y≥100; large X≥300 and Y≥20000
        ("retail", wan(300, 20000), "large"),
        ("retail", wan(50, 500), "medium"),
        ("retail", wan(49, 500), "small"),
        ("retail", wan(10, 100), "small"),
        ("retail", wan(9, 100), "micro"),
        ("retail", wan(300, 99), "micro"),
        # software_it: medium X≥100 and Y≥1000; small X≥10 and Y≥50; large X≥300 and Y≥10000
        ("software_it", wan(300, 10000), "large"),
        ("software_it", wan(299, 10000), "medium"),
        ("software_it", wan(100, 1000), "medium"),
        ("software_it", wan(10, 50), "small"),
        ("software_it", wan(10, 49), "micro"),
        ("software_it", wan(9, 50000), "micro"),
        # construction: medium Y≥6000 and Z≥5000; small Y≥300 and Z≥300; large Y≥80000, Z≥80000
        ("construction", wan(0, 80000, 80000), "large"),
        ("construction", wan(0, 80000, 79999), "medium"),
        ("construction", wan(0, 6000, 5000), "medium"),
        ("construction", wan(0, 5999, 5000), "small"),
        ("construction", wan(0, 300, 300), "small"),
        ("construction", wan(0, 300, 299), "micro"),
        ("construction", wan(100000, 299, 100000), "micro"),
        # other: medium X≥100; small X≥10; large X≥300
        ("other", wan(300), "large"),
        ("other", wan(299, 10**6, 10**6), "medium"),
        ("other", wan(100), "medium"),
        ("other", wan(99), "small"),
        ("other", wan(10), "small"),
        ("other", wan(9, 10**6, 10**6), "micro"),
    ],
)
def test_domain_md_examples(industry, inputs, expected):
    assert size(industry, inputs) == expected


def test_one_fen_matters():
    # 20,000,000 yuan of revenue is 2000 万元: medium for industry; one fen less is small.
    revenue_fen = 20_000_000 * 100
    assert classify("industry", 300, revenue_fen, 0, on=ON).size_class == "medium"
    assert classify("industry", 300, revenue_fen - 1, 0, on=ON).size_class == "small"


# --- the result ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("employees", "expected"),
    [(0, ("micro", True)), (10, ("small", True)), (100, ("medium", True)), (300, ("large", False))],
)
def test_classification_result(employees, expected):
    result = classify("other", employees, 0, 0, on=ON)
    assert result == Classification(size_class=expected[0], sme=expected[1], standard="MIIT-2011-300")


def test_classify_defaults_to_today():
    assert classify("other", 10, 0, 0).standard == "MIIT-2011-300"


def test_a_loan_freezes_the_class_of_its_start_date(engine, tmp_path, monkeypatch):
    """DOMAIN.md §2: a loan freezes its borrower's class at the loan's date. The class is decided
    by the standard in force on the start date, from the facts in force then; later facts and
    later standards do not rewrite it."""
    from sqlalchemy import select

    from ledger.journal import SYSTEM
    from ledger.loans import create_loans, parse_loans
    from ledger.parties import BorrowerFacts, upsert_borrower
    from ledger.schema import loans
    from tests.factories import InstitutionFactory, ProgramFactory, loan_body, tx

    shutil.copy(DATA_FILE, tmp_path / DATA_FILE.name)

    def revise(document):  # a revision from 2025-05-01 under which 5 employees is "small"
        document["code"], document["effective_from"] = "TEST-2025", "2025-05-01"
        next(e for e in document["industries"] if e["industry"] == "other")["small"] = {"employees_min": 5}

    write_standard(tmp_path, "sme_test_2025.json", revise)
    standards = read_standards(tmp_path)
    monkeypatch.setattr(sme, "load_standards", lambda: standards)
    bank, program = InstitutionFactory(kind="bank"), ProgramFactory()
    firm = BorrowerFacts("91440106MA5CXX0N1P", "Five Hands", "440106", "other", 5, 0, 0, True)
    tx(lambda conn: upsert_borrower(conn, bank.id, firm, as_of=date(2024, 1, 1)))

    def lend(start: str) -> int:
        body = loan_body(firm.credit_code, program.code, start_date=start, maturity_date="2026-12-31")
        return tx(lambda conn: create_loans(conn, bank.id, parse_loans([body]), SYSTEM, prefix=""))[0]

    def frozen(loan_id: int) -> tuple:
        return tuple(tx(lambda conn: conn.execute(select(loans.c.borrower_size_class, loans.c.borrower_sme,
                                                         loans.c.size_standard).where(loans.c.id == loan_id)).one()))

    before, after = lend("2025-04-30"), lend("2025-05-01")
    assert frozen(before) == ("micro", True, "MIIT-2011-300")
    assert frozen(after) == ("small", True, "TEST-2025")
    grown = BorrowerFacts(firm.credit_code, "Five Hands", "440106", "other", 400, 0, 0, True)
    tx(lambda conn: upsert_borrower(conn, bank.id, grown, as_of=date(2025, 6, 1)))
    assert frozen(before) == ("micro", True, "MIIT-2011-300") and frozen(after) == ("small", True, "TEST-2025")
    assert frozen(lend("2025-06-01")) == ("large", False, "TEST-2025")
    assert frozen(lend("2025-05-31")) == ("small", True, "TEST-2025")  # backdated: the facts of its day


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("industry", ["", "Industry", "manufacturing", None, 3])
def test_unknown_industry(industry):
    with pytest.raises(Invalid) as excinfo:
        classify(industry, 10, 0, 0, on=ON)
    [error] = excinfo.value.errors
    assert error.field == "industry"
    assert "one of: agriculture, industry" in error.message


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, 0, 0), "employees"),
        ((0, -1, 0), "revenue"),
        ((0, 0, -1), "total_assets"),
        ((True, 0, 0), "employees"),
        ((10.0, 0, 0), "employees"),
        ((0, 1.5, 0), "revenue"),
        ((0, 0, "100"), "total_assets"),
        ((0, None, 0), "revenue"),
    ],
)
def test_bad_figures(args, field):
    with pytest.raises(Invalid) as excinfo:
        classify("industry", *args, on=ON)
    assert [error.field for error in excinfo.value.errors] == [field]


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(Invalid) as excinfo:
        classify("nope", -1, -1, -1, on=ON)
    assert [e.field for e in excinfo.value.errors] == [
        "industry",
        "employees",
        "revenue",
        "total_assets",
    ]


def test_no_standard_before_2011_06_18():
    assert standard_in_force(date(2011, 6, 18)).code == "MIIT-2011-300"
    with pytest.raises(Invalid):
        standard_in_force(date(2011, 6, 17))
    with pytest.raises(Invalid):
        classify("other", 10, 0, 0, on=date(2010, 1, 1))


# --- properties ------------------------------------------------------------------------------


def reference_size(industry: str, x: int, y_fen: int, z_fen: int) -> str:
    """Independent classifier straight from EXPECTED_2011 (万元 bounds compared in fen)."""
    values = {"X": x, "Y": y_fen, "Z": z_fen}
    scale = {"X": 1, "Y": FEN_PER_WAN, "Z": FEN_PER_WAN}
    for tier, bounds in zip(("large", "medium", "small"), EXPECTED_2011[industry]):
        if all(values[v] >= bound * scale[v] for v, bound in bounds.items()):
            return tier
    return "micro"


employees_st = st.integers(0, 5000)
money_fen_st = st.one_of(st.integers(0, 300_000 * FEN_PER_WAN), st.integers(0, 10**15))


@given(st.sampled_from(INDUSTRIES), employees_st, money_fen_st, money_fen_st)
def test_matches_independent_reference(industry, x, y_fen, z_fen):
    assert classify(industry, x, y_fen, z_fen, on=ON).size_class == reference_size(
        industry, x, y_fen, z_fen
    )


@given(
    st.sampled_from(INDUSTRIES),
    employees_st,
    money_fen_st,
    money_fen_st,
    st.sampled_from([0, 1, 2]),
    st.integers(1, 10**12),
)
def test_more_never_means_smaller(industry, x, y_fen, z_fen, which, extra):
    inputs = [x, y_fen, z_fen]
    before = classify(industry, *inputs, on=ON)
    inputs[which] += extra
    after = classify(industry, *inputs, on=ON)
    assert ORDER.index(after.size_class) >= ORDER.index(before.size_class)
    assert before.sme == (before.size_class != "large")


# --- reference data: checks and revisions ----------------------------------------------------


def write_standard(directory: Path, name: str, change) -> None:
    document = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    change(document)
    (directory / name).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def test_a_revision_is_a_data_change(tmp_path, monkeypatch):
    shutil.copy(DATA_FILE, tmp_path / DATA_FILE.name)

    def revise(document):
        document["code"] = "TEST-2030"
        document["effective_from"] = "2030-01-01"
        other = next(e for e in document["industries"] if e["industry"] == "other")
        other["small"] = {"employees_min": 5}

    write_standard(tmp_path, "sme_test_2030.json", revise)
    standards = read_standards(tmp_path)
    assert [s.code for s in standards] == ["MIIT-2011-300", "TEST-2030"]
    monkeypatch.setattr(sme, "load_standards", lambda: standards)
    assert classify("other", 5, 0, 0, on=date(2029, 12, 31)) == Classification(
        "micro", True, "MIIT-2011-300"
    )
    assert classify("other", 5, 0, 0, on=date(2030, 1, 1)) == Classification(
        "small", True, "TEST-2030"
    )


def test_files_not_named_sme_are_ignored(tmp_path):
    shutil.copy(DATA_FILE, tmp_path / "other_data.json")
    assert read_standards(tmp_path) == ()


def _drop_industry(document):
    document["industries"].pop()


def _rising_bounds(document):
    document["industries"][1]["small"]["employees_min"] = 301


def _mismatched_variables(document):
    document["industries"][1]["small"] = {"employees_min": 20}


def _float_bound(document):
    document["industries"][1]["small"]["revenue_min_wan_yuan"] = 300.5


def _unknown_bound(document):
    document["industries"][1]["small"]["assets"] = 1


def _unknown_industry(document):
    document["industries"][1]["industry"] = "mining"


def _bad_date(document):
    document["effective_from"] = "18/06/2011"


def _compact_date(document):
    document["effective_from"] = "20110618"


def _impossible_date(document):
    document["effective_from"] = "2011-02-30"


def _duplicate_industry(document):
    document["industries"].append(document["industries"][0])


@pytest.mark.parametrize(
    "corrupt",
    [
        _drop_industry,
        _rising_bounds,
        _mismatched_variables,
        _float_bound,
        _unknown_bound,
        _unknown_industry,
        _bad_date,
        _compact_date,
        _impossible_date,
        _duplicate_industry,
    ],
)
def test_malformed_reference_data_fails_loudly(tmp_path, corrupt):
    write_standard(tmp_path, "sme_bad.json", corrupt)
    with pytest.raises(AssertionError, match="SME reference data"):
        read_standards(tmp_path)


def test_two_standards_on_the_same_date_fail_loudly(tmp_path):
    shutil.copy(DATA_FILE, tmp_path / DATA_FILE.name)

    def recode(document):
        document["code"] = "TEST-SAME-DAY"

    write_standard(tmp_path, "sme_copy.json", recode)
    with pytest.raises(AssertionError, match="duplicate effective_from"):
        read_standards(tmp_path)
