"""The edge field types (ledger.fields), the one path form (ledger.errors) and RequestSchema's
lean loop, which must agree with marshmallow's own (pure: no database)."""
from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from ledger import fields as edge
from ledger.errors import FieldError, flatten_messages, messages_at, path_parts, path_text
from ledger.loans import LoanBatchIn, LoanIn
from ledger.terms import TermsIn
from tests.ledger.test_terms import API_EXAMPLE, _leaf_paths, json_values


def load(field, value):
    """Load `value` through a one-field request schema; (value, None) or (None, messages)."""
    schema = edge.RequestSchema.from_dict({"x": field})()
    try:
        return schema.load({"x": value})["x"], None
    except ValidationError as error:
        return None, error.messages["x"]


def refused(field, value) -> bool:
    return load(field, value)[1] is not None


# --- strict JSON types ---------------------------------------------------------------------

@pytest.mark.parametrize("value", [1, 0, 1.0, 0.0, "true", "false", "1", None, [], {}])
def test_boolean_is_only_true_or_false(value):
    assert refused(edge.Boolean(), value)


def test_boolean_accepts_json_bools():
    assert load(edge.Boolean(), True) == (True, None)
    assert load(edge.Boolean(), False) == (False, None)


@pytest.mark.parametrize("value", [True, False, 1.0, 5.5, "5", None, [5]])
def test_integer_is_only_a_json_integer(value):
    assert refused(edge.Integer(), value)


def test_integer_range():
    field = edge.Integer(low=1, high=45)
    assert load(field, 1) == (1, None) and load(field, 45) == (45, None)
    assert load(field, 46)[1] == ["must be within [1, 45]"]
    assert refused(field, 0)


@pytest.mark.parametrize("value", ["٥٠", " 50", "50 ", "+50", "-1", "5_0", "5.0", "", "1e3", 50])
def test_query_integer_is_ascii_digits_only(value):
    assert refused(edge.QueryInteger(low=0, high=1000), value)


def test_query_integer_reads_digits():
    assert load(edge.QueryInteger(low=1, high=1000), "50") == (50, None)
    assert refused(edge.QueryInteger(low=1, high=1000), "1001")


@pytest.mark.parametrize("value", ["２０２５-03-01", "2025-03-01\n", "20250301", "2025-3-1",
                                   "2025-02-30", 20250301, "2025-03-01T00:00:00", "٢٠٢٥-03-01"])
def test_day_is_exactly_yyyy_mm_dd_in_ascii(value):
    assert refused(edge.Day(), value)


def test_day_is_read_from_text_only():
    # parse_date also passes a date object through (for Python callers); a request has none.
    assert load(edge.Day(), date(2025, 3, 1))[1] == ["must be a date written YYYY-MM-DD"]


def test_day_reads_a_real_day_and_writes_it_back():
    assert load(edge.Day(), "2024-02-29") == (date(2024, 2, 29), None)
    assert edge.Day()._serialize(date(2024, 2, 29), None, None) == "2024-02-29"


@pytest.mark.parametrize("value", [1.5, "1.005", "-1.00", True, "1e6", "１００", "100\n", None])
def test_money_refuses_what_is_not_yuan(value):
    assert refused(edge.Money(), value)


def test_money_reads_yuan_strings_and_integers_into_fen():
    assert load(edge.Money(), "1200.50") == (120050, None)
    assert load(edge.Money(), 12) == (1200, None)
    assert refused(edge.Money(allow_zero=False), "0")
    assert load(edge.Money(allow_negative=True), "-1.00") == (-100, None)
    assert edge.Money()._serialize(120050, None, None) == "1200.50"


@pytest.mark.parametrize("value", [0.3, "0.123456789", "1.5", "-0.1", "", "0,5", True, "０.5"])
def test_ratio_refuses_what_is_not_a_decimal_string_in_range(value):
    assert refused(edge.Ratio(high=Decimal(1)), value)


def test_ratio_reads_decimals_and_writes_them_without_exponent():
    assert load(edge.Ratio(high=Decimal(1)), "0.0385") == (Decimal("0.0385"), None)
    assert load(edge.Ratio(allow_zero=False), "0")[1] == ["must be greater than zero"]
    assert edge.Ratio()._serialize(Decimal("0.00000001"), None, None) == "0.00000001"


@pytest.mark.parametrize("value", ["44010", "4401000", "４４０１００", " 440100", "440100\n", 440100,
                                   "001000"])
def test_region_is_six_ascii_digits(value):
    assert refused(edge.Region(), value)


def test_credit_code_is_normalised():
    assert load(edge.CreditCode(), " 91350100m000100y43 ") == ("91350100M000100Y43", None)
    assert refused(edge.CreditCode(), "91350100M000100Y44")


@pytest.mark.parametrize("value", ["", "-ABC", "A B", "ICBC\n", "ＩＣＢＣ", "X" * 41, 7])
def test_code_is_ascii_letters_digits_and_punctuation(value):
    assert refused(edge.Code(40), value)


def test_text_is_stripped_and_bounded():
    assert load(edge.Text(5), "  abc ") == ("abc", None)
    assert refused(edge.Text(5), "   ")
    assert refused(edge.Text(5), "abcdef")
    assert refused(edge.Text(5), 5)


def test_choice_is_one_of():
    field = edge.Choice(("patent", "trademark"))
    assert load(field, "patent") == ("patent", None)
    assert load(field, "design")[1] == ["must be one of: patent, trademark"]
    assert refused(field, None)


def test_objects_checks_the_count_before_reading_any_item():
    class Item(edge.RequestSchema):
        n = edge.Integer(required=True)

    field = edge.Objects(Item, min_items=1, max_items=3, noun="things")
    assert load(field, [{}] * 4)[1] == ["at most 3 things"]  # not four "n: is required"
    assert load(field, [])[1] == ["must list at least 1 things"]
    assert load(field, {"n": 1})[1] == ["must be a list"]
    assert load(field, [{"n": 1}, {"n": "x"}])[1] == {1: {"n": ["must be an integer"]}}


def test_fields_document_themselves():
    assert edge.Money().metadata["pattern"] == edge.MONEY_PATTERN
    assert "example" in edge.Ratio().metadata and edge.Day().metadata["pattern"] == edge.DAY_PATTERN
    described = edge.Money(metadata={"description": "operating revenue"}).metadata["description"]
    assert described.startswith("operating revenue. Yuan as a decimal string")


def test_unknown_keys_name_what_is_expected():
    with pytest.raises(ValidationError) as caught:
        LoanIn().load({"contract_nr": "x"})
    message = caught.value.messages["contract_nr"][0]
    assert message.startswith("unknown field; expected one of: contract_no, borrower")


# --- the path form -------------------------------------------------------------------------

@pytest.mark.parametrize("parts, text", [
    (("terms", "parties", 1, "caps", "per_claim"), "terms.parties[1].caps.per_claim"),
    (("loans", 17, "pledges", 0, "number"), "loans[17].pledges[0].number"),
    (("pledges", 0, "number"), "pledges[0].number"),
    (("query", "limit"), "query.limit"),
    ((), "body"),
])
def test_path_text_and_parts_are_inverse(parts, text):
    assert path_text(parts) == text
    assert path_parts(text) == parts


def test_flatten_reports_object_errors_on_the_object_in_order():
    messages = {"terms": {"parties": {1: {"caps": {"per_claim": ["bad"]}, "_schema": ["whole"]},
                                      "_schema": ["sum"]}}}
    assert flatten_messages(messages) == [
        FieldError("terms.parties[1].caps.per_claim", "bad"),
        FieldError("terms.parties[1]", "whole"), FieldError("terms.parties", "sum")]
    problems = [(("parties", 2, "institution"), "twice"), (("parties",), "sum")]
    assert flatten_messages(messages_at(problems), ("terms",)) == [
        FieldError("terms.parties[2].institution", "twice"), FieldError("terms.parties", "sum")]


# --- RequestSchema's lean loop agrees with marshmallow's own --------------------------------

def both_ways(schema_class, raw):
    """(loaded, messages) through RequestSchema._deserialize and through marshmallow's."""
    outcomes = []
    for lean in (True, False):
        schema = schema_class()
        if not lean:
            for each in _schemas_under(schema):
                each._deserialize = _marshmallow_loop(each)
        try:
            outcomes.append((schema.load(copy.deepcopy(raw)), None))
        except ValidationError as error:
            outcomes.append((None, _unordered(error.messages)))
    return outcomes


def _marshmallow_loop(schema):
    return lambda *args, **kwargs: Schema._deserialize(schema, *args, **kwargs)


def _schemas_under(schema):
    yield schema
    for field in schema.fields.values():
        if isinstance(field, edge.Object | edge.Objects):
            yield from _schemas_under(field.schema)


def _unordered(messages):
    """marshmallow reports unknown keys in set order; compare messages without order."""
    if isinstance(messages, dict):
        return {key: _unordered(value) for key, value in messages.items()}
    return sorted(messages) if isinstance(messages, list) else messages


def _mutated(data, raw, replacement):
    path = data.draw(st.sampled_from(list(_leaf_paths(raw))))
    if not path:
        return replacement
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    return raw


@given(st.data(), json_values)
def test_lean_loop_reads_terms_as_marshmallow_does(data, replacement):
    raw = _mutated(data, copy.deepcopy(API_EXAMPLE), replacement)
    lean, reference = both_ways(TermsIn, raw)
    assert lean == reference


LOAN = {"contract_no": "C-1", "borrower": "91350100M000100Y43", "program": "gz-ip-2023",
        "principal": "5000000.00", "annual_rate": "0.0345", "start_date": "2025-03-01",
        "maturity_date": "2026-02-28", "ip_share": "0.8", "insured_amount": "5000000.00",
        "pledges": [{"kind": "patent", "number": "ZL201710601862.3", "registration_no": "Y1",
                     "registered_on": "2025-02-20", "appraised_value": "6000000.00"},
                    {"kind": "trademark", "number": "12345678", "nice_class": 9,
                     "registration_no": "TM1", "registered_on": "2025-02-21"}]}


@given(st.data(), json_values)
def test_lean_loop_reads_loan_batches_as_marshmallow_does(data, replacement):
    raw = _mutated(data, {"loans": [copy.deepcopy(LOAN), copy.deepcopy(LOAN)]}, replacement)
    lean, reference = both_ways(LoanBatchIn, raw)
    assert lean == reference
