"""Tests for ledger.terms: the API.md example, every validation rule by its exact field path,
tier boundaries, and generated round trips (pure: no database).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import Invalid, path_parts
from ledger.money import MAX_FEN, format_yuan
from ledger.terms import (
    Coverage,
    Eligibility,
    Party,
    PartyCaps,
    ShareTier,
    SubsidyCaps,
    SubsidyRule,
    Terms,
    parse_terms,
    terms_to_dict,
)

KINDS = {
    "PICC-GZ": "insurer",
    "GZ-POOL": "pool",
    "GZ-TREASURY": "treasury",
    "GZ-GUAR": "guarantor",
    "GZ-APPR": "appraiser",
    "ICBC-GZ": "bank",
}

# API.md "Programmes", the `terms` object, as the JSON a client sends.
API_EXAMPLE = {
    "loss_base": "principal",
    "trigger_overdue_days": 90,
    "coverage": {"ip_share": "ip_part_only",
                 "require_stated_ip_share": True, "min_ip_share": "0.5",
                 "max_covered_principal": "10000000.00",
                 "max_covered_principal_per_borrower_year": "20000000.00"},
    "parties": [
        {"institution": "PICC-GZ", "role": "insurer", "share": "0.30", "pays_first": True,
         "caps": {"per_claim": "1000000.00"}},
        {"institution": "GZ-POOL", "role": "pool", "share": "0.50",
         "share_tiers": [{"up_to": "5000000.00", "share": "0.50"},
                         {"up_to": None, "share": "0.40"}],
         "caps": {"per_borrower_year": "20000000.00", "per_bank_year": None,
                  "per_program_year": "50000000.00", "portfolio_cap_rate": None,
                  "fund_balance": True},
         "recoveries_to": "GZ-TREASURY"},
    ],
    "subsidies": [
        {"kind": "interest", "method": "pct_of_paid", "pct": "0.40",
         "caps": {"per_borrower_year": "500000.00", "pct_of_principal": None, "per_loan": None,
                  "per_borrower_total": None, "years": None},
         "eligibility": {"max_rate_over_lpr": "1.4", "sme_only": False, "private_only": False,
                         "max_revenue": None}},
        {"kind": "interest", "method": "pct_of_reference_rate", "pct": "0.20",
         "reference": "LPR1Y", "reference_month": "december_of_year",
         "min_with_contract_rate": True},
        {"kind": "premium", "method": "pct_of_paid", "pct": "0.50",
         "caps": {"pct_of_principal": "0.012", "per_borrower_year": "150000.00"}},
    ],
}

YUAN = 100  # fen per yuan


def example() -> dict:
    return copy.deepcopy(API_EXAMPLE)


def errors_of(raw: object, kinds: dict | None = KINDS) -> dict[str, str]:
    """field -> message of the one `Invalid` that parse_terms raises."""
    with pytest.raises(Invalid) as caught:
        parse_terms(raw, kinds)
    fields = [error.field for error in caught.value.errors]
    assert len(fields) == len(set(fields)), f"one error per field expected: {fields}"
    return {error.field: error.message for error in caught.value.errors}


def only_error(raw: object, kinds: dict | None = KINDS) -> tuple[str, str]:
    errors = errors_of(raw, kinds)
    assert len(errors) == 1, errors
    return next(iter(errors.items()))


def flat(code: str, role: str, share: str, **extra) -> dict:
    return {"institution": code, "role": role, "share": share, **extra}


def tiered(code: str, role: str, tiers: list[tuple[str | None, str]], **extra) -> dict:
    return {"institution": code, "role": role,
            "share_tiers": [{"up_to": up_to, "share": share} for up_to, share in tiers], **extra}


def with_parties(*parties: dict) -> dict:
    return {"parties": list(parties)}


def with_subsidy(**rule) -> dict:
    return {"parties": [], "subsidies": [rule]}


# ---------------------------------------------------------------------------------------------
# The API.md example


def test_api_example_parses_to_the_documented_meaning():
    terms = parse_terms(example(), KINDS)
    assert terms.loss_base == "principal" and terms.trigger_overdue_days == 90
    assert terms.coverage == Coverage("ip_part_only", True, Decimal("0.5"), 10_000_000 * YUAN,
                                      20_000_000 * YUAN)
    insurer, pool = terms.parties
    assert insurer == Party("PICC-GZ", "insurer", Decimal("0.30"), (), True,
                            PartyCaps(per_claim_fen=1_000_000 * YUAN), None)
    assert pool.share_tiers == (ShareTier(5_000_000 * YUAN, Decimal("0.50")),
                                ShareTier(None, Decimal("0.40")))
    assert pool.caps == PartyCaps(None, 20_000_000 * YUAN, None, 50_000_000 * YUAN, None, True)
    assert pool.recoveries_to == "GZ-TREASURY"
    pct_of_paid, reference_rate, premium = terms.subsidies
    assert pct_of_paid.caps == SubsidyCaps(per_borrower_year_fen=500_000 * YUAN)
    assert pct_of_paid.eligibility == Eligibility(max_rate_over_lpr=Decimal("1.4"))
    # A rule without caps or eligibility gets the defaults: no caps, everyone eligible.
    assert reference_rate == SubsidyRule("interest", "pct_of_reference_rate", Decimal("0.20"),
                                         "LPR1Y", "december_of_year", True, SubsidyCaps(),
                                         Eligibility())
    assert premium.caps == SubsidyCaps(pct_of_principal=Decimal("0.012"),
                                       per_borrower_year_fen=150_000 * YUAN)


def test_api_example_round_trips_through_canonical_json():
    terms = parse_terms(example(), KINDS)
    stored = json.dumps(terms_to_dict(terms))
    assert parse_terms(json.loads(stored), None) == terms
    assert terms_to_dict(parse_terms(json.loads(stored), None)) == terms_to_dict(terms)


def test_canonical_dict_has_every_key_money_and_ratio_strings_and_nulls():
    canonical = terms_to_dict(parse_terms(example(), KINDS))
    insurer, pool = canonical["parties"]
    assert insurer == {
        "institution": "PICC-GZ", "role": "insurer", "share": "0.30", "share_tiers": None,
        "pays_first": True,
        "caps": {"per_claim": "1000000.00", "per_borrower_year": None, "per_bank_year": None,
                 "per_program_year": None, "portfolio_cap_rate": None, "fund_balance": False},
        "recoveries_to": None,
    }
    assert pool["share_tiers"] == [{"up_to": "5000000.00", "share": "0.50"},
                                   {"up_to": None, "share": "0.40"}]
    assert canonical["subsidies"][1] == {
        "kind": "interest", "method": "pct_of_reference_rate", "pct": "0.20",
        "reference": "LPR1Y", "reference_month": "december_of_year",
        "min_with_contract_rate": True,
        "caps": {"pct_of_principal": None, "per_loan": None, "per_borrower_year": None,
                 "per_borrower_total": None, "years": None},
        "eligibility": {"max_rate_over_lpr": None, "sme_only": False, "private_only": False,
                        "max_revenue": None},
    }
    assert canonical["coverage"]["max_covered_principal"] == "10000000.00"


def test_tiny_ratios_are_written_without_exponent():
    terms = parse_terms(with_parties(flat("PICC-GZ", "insurer", "0.00000001")), KINDS)
    assert str(terms.parties[0].share) == "1E-8"  # why terms_to_dict must not use str()
    assert terms_to_dict(terms)["parties"][0]["share"] == "0.00000001"
    assert parse_terms(terms_to_dict(terms), None) == terms


def test_convenience_accessors():
    terms = parse_terms(example(), KINDS)
    assert terms.party("GZ-POOL").role == "pool"
    assert terms.party("ICBC-GZ") is None
    assert terms.pays_first_party.institution == "PICC-GZ"
    assert [rule.method for rule in terms.subsidy_rules("interest")] == [
        "pct_of_paid", "pct_of_reference_rate"]
    assert terms.subsidy_rules("appraisal_fee") == ()
    assert parse_terms(with_parties(), KINDS).pays_first_party is None


def test_terms_are_immutable():
    terms = parse_terms(example(), KINDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.loss_base = "principal_and_interest"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.parties[0].share = Decimal("0.9")  # type: ignore[misc]


def test_defaults_for_everything_optional():
    terms = parse_terms({"parties": [flat("GZ-GUAR", "guarantor", "0.2")]}, KINDS)
    assert terms == Terms(
        "principal", 90, Coverage("whole_loan", False, None, None, None),
        (Party("GZ-GUAR", "guarantor", Decimal("0.2"), (), False, PartyCaps(), None),), ())
    assert PartyCaps() == PartyCaps(None, None, None, None, None, False)


def test_null_objects_mean_all_defaults():
    raw = {"coverage": None, "parties": [flat("GZ-POOL", "pool", "0.4", caps=None)],
           "subsidies": [{"kind": "premium", "method": "pct_of_paid", "pct": "0.5",
                          "caps": None, "eligibility": None}]}
    terms = parse_terms(raw, KINDS)
    assert terms.coverage == Coverage() and terms.parties[0].caps == PartyCaps()
    assert terms.subsidies[0].eligibility == Eligibility()


def test_money_accepts_json_integer_yuan():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.3", caps={"per_claim": 1500}))
    assert parse_terms(raw, KINDS).parties[0].caps.per_claim_fen == 1500 * YUAN


def test_institution_checks_are_skipped_without_kinds():
    raw = with_parties(flat("NOBODY", "insurer", "0.3", recoveries_to="NOWHERE"))
    assert parse_terms(raw, None).parties[0].institution == "NOBODY"


# ---------------------------------------------------------------------------------------------
# Shape: objects, unknown keys, types


def test_terms_must_be_an_object():
    assert only_error(["parties"]) == ("terms", "must be an object")


def test_parties_are_required_but_may_be_empty():
    assert only_error({})[0] == "terms.parties"
    assert parse_terms({"parties": []}, KINDS).parties == ()


@pytest.mark.parametrize("where, field", [
    (lambda raw: raw, "terms.loss_bse"),
    (lambda raw: raw["coverage"], "terms.coverage.loss_bse"),
    (lambda raw: raw["parties"][1], "terms.parties[1].loss_bse"),
    (lambda raw: raw["parties"][0]["caps"], "terms.parties[0].caps.loss_bse"),
    (lambda raw: raw["parties"][1]["share_tiers"][0], "terms.parties[1].share_tiers[0].loss_bse"),
    (lambda raw: raw["subsidies"][2], "terms.subsidies[2].loss_bse"),
    (lambda raw: raw["subsidies"][0]["caps"], "terms.subsidies[0].caps.loss_bse"),
    (lambda raw: raw["subsidies"][0]["eligibility"], "terms.subsidies[0].eligibility.loss_bse"),
])
def test_unknown_key_anywhere_is_an_error(where, field):
    raw = example()
    where(raw)["loss_bse"] = "principal"
    path, message = only_error(raw)
    assert path == field and message.startswith("unknown field")


@pytest.mark.parametrize("value", [1.5, "1.005", "-1.00", True, "1e6", [], {}])
def test_bad_money_is_refused_with_its_path(value):
    raw = example()
    raw["parties"][0]["caps"]["per_claim"] = value
    assert only_error(raw)[0] == "terms.parties[0].caps.per_claim"


def test_float_money_is_refused():
    raw = example()
    raw["coverage"]["max_covered_principal"] = 10000000.0
    assert only_error(raw)[0] == "terms.coverage.max_covered_principal"


@pytest.mark.parametrize("field, set_value", [
    ("terms.parties[0].caps.per_claim",
     lambda raw: raw["parties"][0]["caps"].update(per_claim="-1.00")),
    ("terms.coverage.max_covered_principal_per_borrower_year",
     lambda raw: raw["coverage"].update(max_covered_principal_per_borrower_year="-0.01")),
    ("terms.subsidies[0].caps.per_borrower_year",
     lambda raw: raw["subsidies"][0]["caps"].update(per_borrower_year=-5)),
    ("terms.subsidies[0].eligibility.max_revenue",
     lambda raw: raw["subsidies"][0]["eligibility"].update(max_revenue="-100")),
])
def test_negative_caps_are_refused(field, set_value):
    raw = example()
    set_value(raw)
    assert only_error(raw) == (field, "must not be negative")


def test_zero_caps_are_allowed():
    raw = example()
    raw["parties"][0]["caps"]["per_claim"] = "0"
    assert parse_terms(raw, KINDS).parties[0].caps.per_claim_fen == 0


@pytest.mark.parametrize("value", [True, False, "90", 90.0, None])
def test_trigger_overdue_days_must_be_a_real_integer(value):
    raw = {"parties": [], "trigger_overdue_days": value}
    assert only_error(raw) == ("terms.trigger_overdue_days", "must be an integer")


@pytest.mark.parametrize("days, ok", [(0, False), (1, True), (3650, True), (3651, False)])
def test_trigger_overdue_days_range(days, ok):
    raw = {"parties": [], "trigger_overdue_days": days}
    if ok:
        assert parse_terms(raw, KINDS).trigger_overdue_days == days
    else:
        assert only_error(raw)[0] == "terms.trigger_overdue_days"


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_bools_must_be_json_bools(value):
    raw = example()
    raw["parties"][0]["pays_first"] = value
    raw["coverage"]["require_stated_ip_share"] = value
    assert set(errors_of(raw)) == {"terms.parties[0].pays_first",
                                   "terms.coverage.require_stated_ip_share"}


@pytest.mark.parametrize("field, set_value", [
    ("terms.loss_base", lambda raw: raw.update(loss_base="interest")),
    ("terms.coverage.ip_share", lambda raw: raw["coverage"].update(ip_share="ip_only")),
    ("terms.parties[0].role", lambda raw: raw["parties"][0].update(role="bank")),
    ("terms.subsidies[0].kind", lambda raw: raw["subsidies"][0].update(kind="fee")),
    ("terms.subsidies[0].method", lambda raw: raw["subsidies"][0].update(method="flat")),
    ("terms.subsidies[1].reference", lambda raw: raw["subsidies"][1].update(reference="SHIBOR")),
    ("terms.subsidies[1].reference_month",
     lambda raw: raw["subsidies"][1].update(reference_month="june")),
])
def test_enumerations(field, set_value):
    raw = example()
    set_value(raw)
    assert only_error(raw)[0] == field


@pytest.mark.parametrize("field, value", [
    ("terms.parties", {}), ("terms.subsidies", "none"), ("terms.parties[0]", "PICC-GZ"),
    ("terms.coverage", []), ("terms.parties[1].share_tiers", {"up_to": None}),
])
def test_containers_must_have_their_json_type(field, value):
    raw = example()
    parts = path_parts(field)[1:]
    target = raw
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    assert field in errors_of(raw)


def test_every_error_is_reported_at_once():
    raw = example()
    raw["loss_base"] = "everything"
    raw["coverage"]["min_ip_share"] = "1.5"
    raw["parties"][1]["share_tiers"][0]["up_to"] = 1.5
    raw["subsidies"][2]["caps"]["years"] = 0
    with pytest.raises(Invalid) as caught:
        parse_terms(raw, KINDS)
    assert [error.field for error in caught.value.errors] == [
        "terms.loss_base", "terms.coverage.min_ip_share",
        "terms.parties[1].share_tiers[0].up_to", "terms.subsidies[2].caps.years"]
    assert "terms.loss_base" in caught.value.detail


# ---------------------------------------------------------------------------------------------
# Parties and shares


@pytest.mark.parametrize("share", ["1.01", "-0.1", "abc", 0.3, "", "0.123456789", None, True])
def test_bad_share(share):
    raw = with_parties(flat("PICC-GZ", "insurer", share))
    assert only_error(raw)[0] == "terms.parties[0].share"


@pytest.mark.parametrize("share", ["0", "1", "1.00000000", "0.5"])
def test_share_bounds_are_inclusive(share):
    raw = with_parties(flat("PICC-GZ", "insurer", share))
    assert parse_terms(raw, KINDS).parties[0].share == Decimal(share)


def test_shares_summing_above_one_without_tiers():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.5"), flat("GZ-POOL", "pool", "0.5"),
                       flat("GZ-GUAR", "guarantor", "0.00000001"))
    field, message = only_error(raw)
    assert field == "terms.parties"
    assert "1.00000001" in message


def test_shares_summing_to_exactly_one_are_allowed():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.3"), flat("GZ-POOL", "pool", "0.5"),
                       flat("GZ-GUAR", "guarantor", "0.2"))
    assert sum(party.share for party in parse_terms(raw, KINDS).parties) == 1


def test_shares_summing_above_one_in_a_lower_tier_only():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.5"),
                       tiered("GZ-POOL", "pool", [("100.00", "0.6"), (None, "0.5")]))
    field, message = only_error(raw)
    assert field == "terms.parties"
    assert "0.00 yuan" in message  # the first principal that oversubscribes


def test_shares_summing_above_one_just_above_a_boundary():
    # Pool falls from 0.6 to 0.3 above 100; guarantor rises from 0.1 to 0.5 above 100.00,
    # insurer rises from 0.2 to 0.3 above 100.00: at 100.01 the sum is 1.1.
    raw = with_parties(
        tiered("GZ-POOL", "pool", [("100.00", "0.6"), (None, "0.3")]),
        tiered("GZ-GUAR", "guarantor", [("100.00", "0.1"), (None, "0.5")]),
        tiered("PICC-GZ", "insurer", [("100.00", "0.2"), ("200.00", "0.3"), (None, "0.1")]),
    )
    field, message = only_error(raw)
    assert field == "terms.parties" and "100.01 yuan" in message


def test_tiered_shares_whose_maxima_exceed_one_but_never_at_the_same_principal():
    raw = with_parties(
        tiered("GZ-POOL", "pool", [("100.00", "0.9"), (None, "0.1")]),
        tiered("GZ-GUAR", "guarantor", [("100.00", "0.1"), (None, "0.9")]),
    )
    assert len(parse_terms(raw, KINDS).parties) == 2


def test_share_may_be_omitted_with_tiers_and_is_then_the_first_tier():
    raw = with_parties(tiered("GZ-POOL", "pool", [("100.00", "0.6"), (None, "0.3")]))
    assert parse_terms(raw, KINDS).parties[0].share == Decimal("0.6")


def test_share_and_tiers_together_tiers_win():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.45"),
                       tiered("GZ-POOL", "pool", [(None, "0.55")], share="0.9"))
    pool = parse_terms(raw, KINDS).parties[1]
    assert pool.share == Decimal("0.9")  # kept as given, shown back, not used
    assert pool.ratio_for(1) == pool.ratio_for(MAX_FEN) == Decimal("0.55")


def test_share_is_required_without_tiers():
    raw = with_parties({"institution": "PICC-GZ", "role": "insurer"})
    assert only_error(raw)[0] == "terms.parties[0].share"


def test_tiers_out_of_order():
    raw = with_parties(tiered("GZ-POOL", "pool",
                              [("500.00", "0.5"), ("100.00", "0.4"), (None, "0.3")]))
    field, message = only_error(raw)
    assert field == "terms.parties[0].share_tiers[1].up_to"
    assert "500.00" in message


def test_tiers_with_equal_bounds_are_out_of_order():
    raw = example()
    raw["parties"][1]["share_tiers"] = [{"up_to": "5", "share": "0.5"},
                                        {"up_to": "5.00", "share": "0.4"},
                                        {"up_to": None, "share": "0.4"}]
    assert only_error(raw)[0] == "terms.parties[1].share_tiers[1].up_to"


def test_last_tier_must_be_unbounded():
    raw = with_parties(tiered("GZ-POOL", "pool", [("100.00", "0.5"), ("200.00", "0.4")]))
    field, message = only_error(raw)
    assert field == "terms.parties[0].share_tiers[1].up_to" and "null" in message


def test_only_the_last_tier_may_be_unbounded():
    raw = with_parties(tiered("GZ-POOL", "pool", [(None, "0.5"), (None, "0.4")]))
    assert only_error(raw)[0] == "terms.parties[0].share_tiers[0].up_to"


def test_tiers_must_not_be_empty_but_null_means_flat():
    assert only_error(with_parties(tiered("GZ-POOL", "pool", [])))[0] == \
        "terms.parties[0].share_tiers"
    raw = with_parties(flat("GZ-POOL", "pool", "0.5", share_tiers=None))
    assert parse_terms(raw, KINDS).parties[0].share_tiers == ()


@pytest.mark.parametrize("tier, field", [
    ({"share": "0.5"}, "terms.parties[0].share_tiers[0].up_to"),  # up_to is required
    ({"up_to": "0", "share": "0.5"}, "terms.parties[0].share_tiers[0].up_to"),
    ({"up_to": "100", "share": "1.5"}, "terms.parties[0].share_tiers[0].share"),
    ({"up_to": "100"}, "terms.parties[0].share_tiers[0].share"),
])
def test_bad_tier(tier, field):
    raw = with_parties({"institution": "GZ-POOL", "role": "pool",
                        "share_tiers": [tier, {"up_to": None, "share": "0.4"}]})
    assert field in errors_of(raw)


def test_at_most_twenty_tiers():
    tiers = [(f"{n}.00", "0.1") for n in range(1, 21)] + [(None, "0.1")]
    assert only_error(with_parties(tiered("GZ-POOL", "pool", tiers)))[0] == \
        "terms.parties[0].share_tiers"
    parse_terms(with_parties(tiered("GZ-POOL", "pool", tiers[1:])), KINDS)


def test_ratio_for_at_and_around_tier_boundaries():
    pool = parse_terms(example(), KINDS).parties[1]
    bound_fen = 5_000_000 * YUAN
    assert pool.ratio_for(0) == Decimal("0.50")
    assert pool.ratio_for(bound_fen - 1) == Decimal("0.50")
    assert pool.ratio_for(bound_fen) == Decimal("0.50")  # exactly at up_to: that tier
    assert pool.ratio_for(bound_fen + 1) == Decimal("0.40")  # one fen above: the next
    assert pool.ratio_for(MAX_FEN) == Decimal("0.40")


def test_ratio_for_three_tiers_and_flat():
    party = parse_terms(with_parties(tiered(
        "GZ-POOL", "pool", [("1.00", "0.5"), ("2.00", "0.4"), (None, "0.3")])), KINDS).parties[0]
    assert [party.ratio_for(fen) for fen in (1, 100, 101, 200, 201)] == [
        Decimal("0.5"), Decimal("0.5"), Decimal("0.4"), Decimal("0.4"), Decimal("0.3")]
    insurer = parse_terms(example(), KINDS).parties[0]
    assert insurer.ratio_for(1) == insurer.ratio_for(MAX_FEN) == Decimal("0.30")


def test_unknown_institution():
    raw = example()
    raw["parties"][0]["institution"] = "PICC-SZ"
    assert only_error(raw) == ("terms.parties[0].institution", "unknown institution PICC-SZ")


def test_unknown_recoveries_to():
    raw = example()
    raw["parties"][1]["recoveries_to"] = "SZ-TREASURY"
    assert only_error(raw) == ("terms.parties[1].recoveries_to", "unknown institution SZ-TREASURY")


def test_recoveries_to_may_be_any_kind():
    raw = example()
    raw["parties"][1]["recoveries_to"] = "ICBC-GZ"
    assert parse_terms(raw, KINDS).parties[1].recoveries_to == "ICBC-GZ"


def test_institution_kind_must_equal_role():
    raw = example()
    raw["parties"][0]["institution"] = "ICBC-GZ"
    assert only_error(raw) == ("terms.parties[0].institution", "ICBC-GZ is a bank, not an insurer")
    raw = with_parties(flat("PICC-GZ", "appraiser", "0.1"))
    assert only_error(raw) == ("terms.parties[0].institution",
                               "PICC-GZ is an insurer, not an appraiser")


@pytest.mark.parametrize("code", ["", 7, "X" * 41, ["PICC-GZ"]])
def test_institution_code_shape(code):
    raw = with_parties(flat(code, "insurer", "0.1"))
    assert only_error(raw, None)[0] == "terms.parties[0].institution"


def test_duplicate_party():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.2"), flat("GZ-POOL", "pool", "0.2"),
                       flat("PICC-GZ", "insurer", "0.1"))
    field, message = only_error(raw)
    assert field == "terms.parties[2].institution" and "party 0" in message


def test_two_pays_first():
    raw = example()
    raw["parties"][1]["pays_first"] = True
    field, message = only_error(raw)
    assert field == "terms.parties[1].pays_first" and "party 0" in message


def test_rules_across_parties_also_read_a_party_with_other_errors():
    """One round trip: the duplicate and second payer are reported beside the broken share."""
    raw = with_parties(flat("PICC-GZ", "insurer", "0.2", pays_first=True),
                       flat("PICC-GZ", "insurer", "abc", pays_first=True),
                       flat("GZ-POOL", "pool", "0.1"))
    assert errors_of(raw).keys() == {"terms.parties[1].share", "terms.parties[1].institution",
                                     "terms.parties[1].pays_first"}


def test_shares_of_the_parties_that_loaded_are_summed_beside_other_errors():
    raw = with_parties(flat("PICC-GZ", "insurer", "0.6"), flat("GZ-POOL", "pool", "0.6"),
                       flat("GZ-GUAR", "guarantor", "0.1", caps={"per_clam": "1"}))
    errors = errors_of(raw)
    assert errors.keys() == {"terms.parties", "terms.parties[2].caps.per_clam"}
    assert "sum to 1.2" in errors["terms.parties"]


def test_references_are_checked_once_the_form_is_right():
    raw = with_parties(flat("NOBODY", "insurer", "0.2"), flat("GZ-POOL", "pool", "1.5"))
    assert errors_of(raw).keys() == {"terms.parties[1].share"}
    raw["parties"][1]["share"] = "0.5"
    assert only_error(raw) == ("terms.parties[0].institution", "unknown institution NOBODY")


def test_fund_balance_is_for_pools_only():
    raw = example()
    raw["parties"][0]["caps"]["fund_balance"] = True
    assert only_error(raw)[0] == "terms.parties[0].caps.fund_balance"


def test_portfolio_cap_rate_is_a_ratio():
    raw = example()
    raw["parties"][1]["caps"]["portfolio_cap_rate"] = "1.2"
    assert only_error(raw)[0] == "terms.parties[1].caps.portfolio_cap_rate"
    raw["parties"][1]["caps"]["portfolio_cap_rate"] = "0.08"
    assert parse_terms(raw, KINDS).parties[1].caps.portfolio_cap_rate == Decimal("0.08")


def test_at_most_twenty_parties():
    kinds = {f"P{n}": "guarantor" for n in range(21)}
    parties = [flat(f"P{n}", "guarantor", "0.01") for n in range(21)]
    assert only_error({"parties": parties}, kinds) == ("terms.parties", "at most 20 parties")
    assert len(parse_terms({"parties": parties[:20]}, kinds).parties) == 20


def test_min_ip_share_is_a_ratio():
    raw = example()
    raw["coverage"]["min_ip_share"] = "1.01"
    assert only_error(raw)[0] == "terms.coverage.min_ip_share"


# ---------------------------------------------------------------------------------------------
# Subsidies


def test_pct_of_reference_rate_is_for_interest_only():
    raw = with_subsidy(kind="premium", method="pct_of_reference_rate", pct="0.2",
                       reference="LPR1Y", reference_month="month_before_start")
    assert only_error(raw)[0] == "terms.subsidies[0].method"


def test_missing_reference_month():
    raw = with_subsidy(kind="interest", method="pct_of_reference_rate", pct="0.2",
                       reference="LPR1Y")
    assert only_error(raw)[0] == "terms.subsidies[0].reference_month"


def test_missing_reference():
    raw = with_subsidy(kind="interest", method="pct_of_reference_rate", pct="0.2",
                       reference_month="month_before_start")
    assert only_error(raw)[0] == "terms.subsidies[0].reference"


@pytest.mark.parametrize("extra, field", [
    ({"reference": "LPR1Y"}, "terms.subsidies[0].reference"),
    ({"reference_month": "december_of_year"}, "terms.subsidies[0].reference_month"),
    ({"min_with_contract_rate": True}, "terms.subsidies[0].min_with_contract_rate"),
])
def test_reference_fields_are_refused_for_pct_of_paid(extra, field):
    raw = with_subsidy(kind="interest", method="pct_of_paid", pct="0.4", **extra)
    assert only_error(raw)[0] == field


def test_reference_fields_may_be_null_or_false_for_pct_of_paid():
    raw = with_subsidy(kind="guarantee_fee", method="pct_of_paid", pct="0.4", reference=None,
                       reference_month=None, min_with_contract_rate=False)
    assert parse_terms(raw, KINDS).subsidies[0].reference is None


@pytest.mark.parametrize("rule, field", [
    ({"method": "pct_of_paid", "pct": "0.4"}, "terms.subsidies[0].kind"),
    ({"kind": "premium", "pct": "0.4"}, "terms.subsidies[0].method"),
    ({"kind": "premium", "method": "pct_of_paid"}, "terms.subsidies[0].pct"),
    ({"kind": "premium", "method": "pct_of_paid", "pct": "1.5"}, "terms.subsidies[0].pct"),
])
def test_subsidy_required_fields_and_pct_range(rule, field):
    assert only_error(with_subsidy(**rule))[0] == field


@pytest.mark.parametrize("years, ok", [(1, True), (100, True), (0, False), (101, False),
                                       (True, False), ("3", False), (None, True)])
def test_subsidy_cap_years(years, ok):
    raw = with_subsidy(kind="appraisal_fee", method="pct_of_paid", pct="0.5",
                       caps={"years": years})
    if ok:
        assert parse_terms(raw, KINDS).subsidies[0].caps.years == years
    else:
        assert only_error(raw)[0] == "terms.subsidies[0].caps.years"


def test_subsidy_cap_pct_of_principal_is_a_ratio():
    raw = with_subsidy(kind="premium", method="pct_of_paid", pct="0.5",
                       caps={"pct_of_principal": "2"})
    assert only_error(raw)[0] == "terms.subsidies[0].caps.pct_of_principal"


@pytest.mark.parametrize("value, ok", [
    ("1.4", True), ("2.5", True), ("100", True),
    ("0", False), ("100.01", False), ("-1", False), (1.4, False),
])
def test_max_rate_over_lpr_is_positive_and_may_exceed_one(value, ok):
    raw = with_subsidy(kind="interest", method="pct_of_paid", pct="0.5",
                       eligibility={"max_rate_over_lpr": value, "sme_only": True})
    if ok:
        assert parse_terms(raw, KINDS).subsidies[0].eligibility.max_rate_over_lpr == Decimal(value)
    else:
        assert only_error(raw)[0] == "terms.subsidies[0].eligibility.max_rate_over_lpr"


def test_at_most_twenty_subsidy_rules():
    rule = {"kind": "premium", "method": "pct_of_paid", "pct": "0.1"}
    assert only_error({"parties": [], "subsidies": [rule] * 21}) == (
        "terms.subsidies", "at most 20 subsidy rules")
    assert len(parse_terms({"parties": [], "subsidies": [rule] * 20}, KINDS).subsidies) == 20


# ---------------------------------------------------------------------------------------------
# Invariants of the values themselves


def test_values_assert_their_invariants():
    with pytest.raises(AssertionError):
        Party("A", "pool", Decimal("0.5"), (ShareTier(100, Decimal("0.5")),))  # last bounded
    with pytest.raises(AssertionError):
        Party("A", "pool", 0.5)  # type: ignore[arg-type]  # a float share
    with pytest.raises(AssertionError):
        Terms(parties=(Party("A", "pool", Decimal("0.6")), Party("B", "insurer", Decimal("0.6"))))
    with pytest.raises(AssertionError):
        Party("A", "pool", Decimal("0.5")).ratio_for(-1)


# ---------------------------------------------------------------------------------------------
# Generated terms


def ratio_text(max_units_1e8: int) -> st.SearchStrategy[str]:
    """Decimal strings in [0, max_units_1e8 / 10^8] with 0..8 places."""
    @st.composite
    def build(draw):
        places = draw(st.integers(0, 8))
        units = draw(st.integers(0, max_units_1e8 // 10 ** (8 - places)))
        return format(Decimal(units).scaleb(-places), "f")
    return build()


money_text = st.one_of(
    st.integers(0, MAX_FEN).map(format_yuan),
    st.integers(0, 10**9),  # JSON integer yuan
)


def maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def sparse(draw, fields: dict) -> dict:
    """A dict with a random subset of `fields` (name -> strategy)."""
    return {name: draw(strategy) for name, strategy in fields.items() if draw(st.booleans())}


@st.composite
def raw_party(draw, code: str, role: str, max_units: int, pays_first: bool,
              recovery_codes: list[str]) -> dict:
    party = {"institution": code, "role": role}
    if draw(st.booleans()):
        bounds = sorted(draw(st.sets(st.integers(1, MAX_FEN - 1), min_size=0, max_size=4)))
        party["share_tiers"] = [
            {"up_to": up_to, "share": draw(ratio_text(max_units))}
            for up_to in [format_yuan(b) for b in bounds] + [None]]
        if draw(st.booleans()):
            party["share"] = draw(ratio_text(max_units))
    else:
        party["share"] = draw(ratio_text(max_units))
    if pays_first or draw(st.booleans()):
        party["pays_first"] = pays_first
    if draw(st.booleans()):
        party["caps"] = draw(sparse({
            "per_claim": maybe(money_text), "per_borrower_year": maybe(money_text),
            "per_bank_year": maybe(money_text), "per_program_year": maybe(money_text),
            "portfolio_cap_rate": maybe(ratio_text(10**8)),
            "fund_balance": st.just(False) if role != "pool" else st.booleans(),
        }))
    if draw(st.booleans()):
        party["recoveries_to"] = draw(maybe(st.sampled_from(recovery_codes)))
    return party


@st.composite
def raw_subsidy(draw) -> dict:
    kind = draw(st.sampled_from(["interest", "premium", "guarantee_fee", "appraisal_fee"]))
    method = "pct_of_paid"
    if kind == "interest":
        method = draw(st.sampled_from(["pct_of_paid", "pct_of_reference_rate"]))
    rule = {"kind": kind, "method": method, "pct": draw(ratio_text(10**8))}
    if method == "pct_of_reference_rate":
        rule["reference"] = "LPR1Y"
        rule["reference_month"] = draw(st.sampled_from(["december_of_year", "month_before_start"]))
        rule.update(draw(sparse({"min_with_contract_rate": st.booleans()})))
    else:
        rule.update(draw(sparse({"reference": st.none(), "reference_month": st.none(),
                                 "min_with_contract_rate": st.just(False)})))
    if draw(st.booleans()):
        rule["caps"] = draw(sparse({
            "pct_of_principal": maybe(ratio_text(10**8)), "per_loan": maybe(money_text),
            "per_borrower_year": maybe(money_text), "per_borrower_total": maybe(money_text),
            "years": maybe(st.integers(1, 100)),
        }))
    if draw(st.booleans()):
        rule["eligibility"] = draw(sparse({
            "max_rate_over_lpr": maybe(ratio_text(100 * 10**8).filter(lambda s: Decimal(s) > 0)),
            "sme_only": st.booleans(), "private_only": st.booleans(),
            "max_revenue": maybe(money_text),
        }))
    return rule


ROLES = ["insurer", "guarantor", "pool", "appraiser"]


@st.composite
def raw_terms(draw) -> tuple[dict, dict[str, str]]:
    """Valid terms JSON and the institution kinds that make it valid."""
    codes = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9-]{0,11}", fullmatch=True),
                          unique=True, max_size=5))
    roles = [draw(st.sampled_from(ROLES)) for _ in codes]
    payer = draw(maybe(st.integers(0, len(codes) - 1))) if codes else None
    # Each party at most 1/n: every sum stays within 1 (the sum check has its own tests).
    max_units = 10**8 // max(len(codes), 1)
    kinds = dict(zip(codes, roles)) | {"TREASURY": "treasury"}
    parties = [draw(raw_party(code, role, max_units, index == payer, ["TREASURY", *codes]))
               for index, (code, role) in enumerate(zip(codes, roles))]
    raw: dict = {"parties": parties}
    raw.update(draw(sparse({
        "loss_base": st.sampled_from(["principal", "principal_and_interest"]),
        "trigger_overdue_days": st.integers(1, 3650),
        "coverage": sparse({
            "ip_share": st.sampled_from(["ip_part_only", "whole_loan"]),
            "require_stated_ip_share": st.booleans(),
            "min_ip_share": maybe(ratio_text(10**8)),
            "max_covered_principal": maybe(money_text),
            "max_covered_principal_per_borrower_year": maybe(money_text),
        }),
        "subsidies": st.lists(raw_subsidy(), max_size=4),
    })))
    return raw, kinds


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw_terms(), st.integers(0, MAX_FEN))
def test_generated_terms_round_trip(generated, principal_fen):
    raw, kinds = generated
    terms = parse_terms(raw, kinds)
    canonical = terms_to_dict(terms)
    assert parse_terms(canonical, None) == terms
    assert parse_terms(json.loads(json.dumps(canonical)), kinds) == terms
    assert terms_to_dict(parse_terms(canonical, None)) == canonical
    assert sum(party.ratio_for(principal_fen) for party in terms.parties) <= 1


@st.composite
def small_tiered_parties(draw) -> list[dict]:
    """Parties with tier bounds under 0.50 yuan, so principals 0..60 fen cover every band."""
    parties = []
    for index in range(draw(st.integers(1, 4))):
        bounds = sorted(draw(st.sets(st.integers(1, 50), max_size=3)))
        tiers = [(format_yuan(b), draw(ratio_text(6 * 10**7))) for b in bounds]
        parties.append(tiered(f"P{index}", "guarantor",
                              tiers + [(None, draw(ratio_text(6 * 10**7)))]))
    return parties


@given(small_tiered_parties())
def test_sum_check_agrees_with_exhaustive_search(parties):
    kinds = {party["institution"]: "guarantor" for party in parties}
    exact = {
        fen: sum(Decimal(next(t["share"] for t in party["share_tiers"]
                              if t["up_to"] is None or fen <= int(t["up_to"].replace(".", ""))))
                 for party in parties)
        for fen in range(61)
    }
    oversubscribed = [fen for fen, total in exact.items() if total > 1]
    if oversubscribed:
        field, message = only_error({"parties": parties}, kinds)
        assert field == "terms.parties"
        assert f"{format_yuan(oversubscribed[0])} yuan" in message
    else:
        parse_terms({"parties": parties}, kinds)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["0.5", "100.00", "pool", "LPR1Y", "pct_of_paid", "PICC-GZ"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=3),
    max_leaves=10,
)


def _leaf_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaf_paths(child, (*path, index))


@given(st.data(), json_values)
def test_any_mutation_of_the_example_is_parsed_or_refused_cleanly(data, replacement):
    raw = example()
    path = data.draw(st.sampled_from(list(_leaf_paths(raw))))
    if not path:
        raw = replacement
    else:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = replacement
    try:
        terms = parse_terms(raw, KINDS)
    except Invalid as exc:
        assert exc.errors and all(e.field == "terms" or e.field.startswith("terms.")
                                  for e in exc.errors)
    else:
        assert parse_terms(terms_to_dict(terms), None) == terms
