"""CSV import: one row per pledge, all or nothing, errors by line and column."""
import csv
import io
from pathlib import Path

import pytest

from ledger.errors import Conflict, Invalid
from ledger.loan_import import COLUMNS, import_loans, read_loans
from ledger.loans import list_loans
from ledger.reads import ReadScope
from tests.factories import (BorrowerFactory, InstitutionFactory, ProgramFactory, engine as bound_engine,
                             loan_body, tx)

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "loans-sample.csv"


def to_csv(loans: list[dict]) -> list[str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for loan in loans:
        for pledge in loan["pledges"]:
            writer.writerow({**{k: v for k, v in loan.items() if k != "pledges"},
                             "pledge_kind": pledge["kind"], "pledge_number": pledge["number"],
                             "nice_class": pledge.get("nice_class", ""), "registration_no": pledge["registration_no"],
                             "registered_on": pledge["registered_on"],
                             "appraised_value": pledge.get("appraised_value", "")})
    return out.getvalue().splitlines(keepends=True)


@pytest.fixture
def setup(engine):
    bank = InstitutionFactory(kind="bank")
    program = ProgramFactory()
    borrowers = [BorrowerFactory(bank_id=bank.id).facts.credit_code for _ in range(3)]
    return bank, program, borrowers


def test_import_groups_rows_into_loans(setup):
    bank, program, borrowers = setup
    loans = [loan_body(b, program.code) for b in borrowers]
    assert import_loans(bound_engine(), bank.code, to_csv(loans)) == 3
    scope = ReadScope(institution_id=bank.id)
    stored = tx(lambda conn: list_loans(conn, scope.loan_condition(), limit=100))
    assert sorted(l["contract_no"] for l in stored) == sorted(l["contract_no"] for l in loans)
    assert {l["pledge_type"] for l in stored} == {"mixed"} and all(len(l["pledges"]) == 2 for l in stored)


def test_errors_name_line_and_column_and_nothing_is_written(setup):
    bank, program, borrowers = setup
    loans = [loan_body(b, program.code) for b in borrowers]
    loans[1]["principal"] = "-5"
    loans[2]["pledges"][1]["nice_class"] = 99
    with pytest.raises(Invalid) as caught:
        import_loans(bound_engine(), bank.code, to_csv(loans))
    assert [(e.field, "must" in e.message or "Nice" in e.message) for e in caught.value.errors][:1] == [("line 4: principal", True)]
    assert "line 7: nice_class" in [e.field for e in caught.value.errors]
    scope = ReadScope(institution_id=bank.id)
    assert tx(lambda conn: list_loans(conn, scope.loan_condition(), limit=100)) == []


def test_rows_of_one_loan_must_agree(setup):
    bank, program, borrowers = setup
    lines = to_csv([loan_body(borrowers[0], program.code)])
    lines[2] = lines[2].replace("5000000.00", "5000001.00", 1)
    with pytest.raises(Invalid, match="differ from line 2"):
        read_loans(lines)


def test_importing_the_same_file_twice_is_refused_whole(setup):
    bank, program, borrowers = setup
    rows = to_csv([loan_body(b, program.code) for b in borrowers])
    import_loans(bound_engine(), bank.code, rows)
    with pytest.raises(Conflict):
        import_loans(bound_engine(), bank.code, rows)


def test_header_must_match():
    with pytest.raises(Invalid, match="missing columns"):
        read_loans(["contract_no,borrower\n", "a,b\n"])


def test_sample_file_is_in_the_documented_format():
    loans = read_loans(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True))
    assert len(loans) >= 3 and any(len(l.raw["pledges"]) > 1 for l in loans)


def test_nul_character_is_refused_with_its_line():
    header = ",".join(COLUMNS) + "\n"
    row = ",".join("x\x00" if c == "contract_no" else "" for c in COLUMNS) + "\n"
    with pytest.raises(Invalid) as caught:
        read_loans([header, row])
    assert caught.value.errors[0].field == "line 2: contract_no"
