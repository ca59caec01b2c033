"""One date parser, one month parser, and "today" in the business time zone."""
from datetime import date, datetime, timezone

import pytest

from ledger import dates
from ledger.errors import Invalid
from ledger.money import parse_ratio, parse_yuan


@pytest.mark.parametrize("text", ["2025-W01-1", "20250101", "2025-1-01", "2025-01-01\n", " 2025-01-01",
                                  "２０２５-01-01", "2025-02-30", "0011-07-11", "3000-01-01", "", None, 20250101])
def test_parse_date_refuses_anything_but_yyyy_mm_dd(text):
    with pytest.raises(Invalid) as caught:
        dates.parse_date(text, "start_date")
    assert caught.value.errors[0].field == "start_date"


def test_parse_date_reads_a_real_day():
    assert dates.parse_date("2024-02-29", "d") == date(2024, 2, 29)


@pytest.mark.parametrize("text", ["2025-06\n", "2025-6", "2025-13", "２０２５-06", "2025-06-01", "0999-01"])
def test_parse_month_refuses_loose_forms(text):
    with pytest.raises(Invalid):
        dates.parse_month(text)


@pytest.mark.parametrize("text", ["100.00\n", "１００.00", "100.00 ", "1e3", "٣.00"])
def test_money_and_ratios_are_ascii_and_anchored(text):
    with pytest.raises(Invalid):
        parse_yuan(text, "amount")
    with pytest.raises(Invalid):
        parse_ratio(text, "rate")


def test_today_is_the_business_zones_date(monkeypatch):
    # 2025-01-01 23:30 UTC is already 2025-01-02 in Beijing.
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2025, 1, 1, 23, 30, tzinfo=timezone.utc).astimezone(tz)
    monkeypatch.setattr(dates, "datetime", Clock)
    assert dates.today() == date(2025, 1, 2)
    monkeypatch.setenv("IPLEDGER_TIMEZONE", "UTC")
    assert dates.today() == date(2025, 1, 1)
    monkeypatch.setenv("IPLEDGER_TIMEZONE", "Mars/Olympus")
    with pytest.raises(RuntimeError):
        dates.today()
