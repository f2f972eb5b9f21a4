"""Pricing a billing period, with every expected figure worked out by hand below.

Each worked example writes the arithmetic next to the figures so a reader can
check the tariff logic without running it. Rounding: each line to cents half
up, tax per rate on the sum of rounded lines (see m2mhub.apps.metering.money).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2mhub.apps.metering.money import Money
from m2mhub.apps.metering.pricing import (
    Interval,
    InvoiceDraft,
    PricingError,
    price_period,
)
from m2mhub.apps.metering.tariffs import Tariff, load_tariff

AMS = ZoneInfo("Europe/Amsterdam")
D = Decimal


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=AMS).astimezone(UTC)


def local_days(
    first: date, kwh_per_day: Sequence[str], *, estimated: bool = False
) -> list[Interval]:
    """One interval per local day, from local midnight to the next (23 h or 25 h at DST)."""
    reads = []
    for i, kwh in enumerate(kwh_per_day):
        day = first + timedelta(days=i)
        start, end = local_midnight(day), local_midnight(day + timedelta(days=1))
        minutes = int((end - start).total_seconds()) // 60
        reads.append(Interval(start, minutes, D(kwh), is_estimated=estimated))
    return reads


def hourly(day: date, kwh: Sequence[str] | str, *, hours: int = 24) -> list[Interval]:
    """Hourly intervals over one local day, stepping in UTC so DST days get 23 or 25."""
    start = datetime(day.year, day.month, day.day, tzinfo=AMS).astimezone(UTC)
    values = [kwh] * hours if isinstance(kwh, str) else list(kwh)
    return [
        Interval(start=start + timedelta(hours=i), minutes=60, import_kwh=D(v))
        for i, v in enumerate(values)
    ]


def tariff(**version: Any) -> Tariff:
    """A one-version tariff in Europe/Amsterdam, valid from 2026-01-01."""
    return load_tariff(
        {
            "name": "test",
            "currency": "EUR",
            "timezone": "Europe/Amsterdam",
            "holidays": {"country": "NL"},
            "versions": [{"valid_from": "2026-01-01", **version}],
        }
    )


def amounts(draft: InvoiceDraft) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [(ln.description, ln.quantity, ln.unit_price, ln.amount.amount) for ln in draft.lines]


FLAT = {"type": "flat", "price_per_kwh": "0.25"}
DAY_NIGHT = {
    "type": "time_of_use",
    "periods": [
        {"name": "day", "price_per_kwh": "0.30", "hours": [{"from": "07:00", "to": "23:00"}]},
        {"name": "night", "price_per_kwh": "0.20", "hours": [{"from": "23:00", "to": "07:00"}]},
    ],
}


# --- worked example 1: tiered blocks, a price change mid-period, standing charge, VAT --------

TIERED_WITH_PRICE_CHANGE: dict[str, Any] = {
    "name": "Tiered home",
    "currency": "EUR",
    "timezone": "Europe/Amsterdam",
    "versions": [
        {
            "valid_from": "2026-01-01",
            "tax": {"name": "VAT", "rate": "0.21"},
            "standing_charge": {"per_day": "0.40"},
            "energy": {
                "type": "tiered",
                "blocks": [
                    {"up_to_kwh": "100", "price_per_kwh": "0.20"},
                    {"price_per_kwh": "0.30"},
                ],
            },
        },
        {
            "valid_from": "2026-04-11",
            "tax": {"name": "VAT", "rate": "0.21"},
            "standing_charge": {"per_day": "0.50"},
            "energy": {
                "type": "tiered",
                "blocks": [
                    {"up_to_kwh": "100", "price_per_kwh": "0.22"},
                    {"price_per_kwh": "0.33"},
                ],
            },
        },
    ],
}


def test_worked_example_tiered_with_mid_period_price_change() -> None:
    # April 2026 has 30 days; the price changes on 11 April:
    #   part 1: 1-10 April, 10 days, 5 kWh a day = 50 kWh (two days estimated)
    #   part 2: 11-30 April, 20 days, 4 kWh a day = 80 kWh
    # Block 1 is 100 kWh a month, prorated by days:
    #   part 1: 100 * 10/30 = 33.333 kWh     part 2: 100 * 20/30 = 66.667 kWh
    # Part 1 lines:
    #   standing 10 d * 0.40        =  4.00
    #   block 1  33.333 * 0.20      =  6.6666  -> 6.67
    #   block 2  (50 - 33.333 = 16.667) * 0.30 = 5.0001 -> 5.00
    # Part 2 lines:
    #   standing 20 d * 0.50        = 10.00
    #   block 1  66.667 * 0.22      = 14.66674 -> 14.67
    #   block 2  (80 - 66.667 = 13.333) * 0.33 = 4.39989 -> 4.40
    # Subtotal 4.00 + 6.67 + 5.00 + 10.00 + 14.67 + 4.40 = 44.74
    # VAT 21 % of 44.74 = 9.3954 -> 9.40;  total 54.14
    tariff_ = load_tariff(TIERED_WITH_PRICE_CHANGE)
    intervals = (
        local_days(date(2026, 4, 1), ["5"] * 8)
        + local_days(date(2026, 4, 9), ["5", "5"], estimated=True)
        + local_days(date(2026, 4, 11), ["4"] * 20)
    )
    draft = price_period(tariff_, date(2026, 4, 1), date(2026, 5, 1), intervals)

    assert amounts(draft) == [
        ("Standing charge", D(10), D("0.40"), D("4.00")),
        (
            "Energy block 1 (up to 100 kWh/month x 10/30 month = 33.333 kWh)",
            D("33.333"),
            D("0.20"),
            D("6.67"),
        ),
        ("Energy block 2 (above 33.333 kWh)", D("16.667"), D("0.30"), D("5.00")),
        ("Standing charge", D(20), D("0.50"), D("10.00")),
        (
            "Energy block 1 (up to 100 kWh/month x 20/30 month = 66.667 kWh)",
            D("66.667"),
            D("0.22"),
            D("14.67"),
        ),
        ("Energy block 2 (above 66.667 kWh)", D("13.333"), D("0.33"), D("4.40")),
    ]
    first, second = draft.lines[0], draft.lines[3]
    assert (first.version, first.start, first.end) == (
        date(2026, 1, 1),
        date(2026, 4, 1),
        date(2026, 4, 11),
    )
    assert (second.version, second.start, second.end) == (
        date(2026, 4, 11),
        date(2026, 4, 11),
        date(2026, 5, 1),
    )
    assert [ln.tariff_period for ln in draft.lines[:3]] == [None, "block 1", "block 2"]
    assert draft.subtotal == eur("44.74")
    assert [(t.name, t.rate, t.base, t.amount) for t in draft.taxes] == [
        ("VAT", D("0.21"), eur("44.74"), eur("9.40"))
    ]
    assert draft.tax == eur("9.40")
    assert draft.total == eur("54.14")
    # Reads used: 28 actual days, 2 estimated days of 5 kWh.
    assert (draft.actual_intervals, draft.estimated_intervals) == (28, 2)
    assert (draft.actual_kwh, draft.estimated_kwh, draft.import_kwh) == (D(120), D(10), D(130))
    assert draft.days == 30


def test_a_whole_month_gets_the_block_as_written() -> None:
    # January, one version: block 1 is the full 100 kWh.
    # 31 days * 4 kWh = 124 kWh: 100 * 0.20 = 20.00, 24 * 0.30 = 7.20,
    # standing 31 * 0.40 = 12.40; subtotal 39.60, VAT 8.316 -> 8.32, total 47.92.
    draft = price_period(
        load_tariff(TIERED_WITH_PRICE_CHANGE),
        date(2026, 1, 1),
        date(2026, 2, 1),
        local_days(date(2026, 1, 1), ["4"] * 31),
    )
    assert amounts(draft) == [
        ("Standing charge", D(31), D("0.40"), D("12.40")),
        ("Energy block 1 (up to 100 kWh/month)", D(100), D("0.20"), D("20.00")),
        ("Energy block 2 (above 100 kWh)", D(24), D("0.30"), D("7.20")),
    ]
    assert draft.total == eur("47.92")


def test_a_period_across_two_months_sums_both_shares_of_the_block() -> None:
    # 15 Jan - 15 Feb: 17 of 31 January days and 14 of 28 February days.
    # Block 1 = 100 * (17/31 + 14/28) = 54.8387... + 50 = 104.839 kWh.
    # 31 days * 3 kWh = 93 kWh, all in block 1: 93 * 0.20 = 18.60.
    draft = price_period(
        load_tariff(TIERED_WITH_PRICE_CHANGE),
        date(2026, 1, 15),
        date(2026, 2, 15),
        local_days(date(2026, 1, 15), ["3"] * 31),
    )
    energy = draft.lines[1]
    assert energy.description == (
        "Energy block 1 (up to 100 kWh/month x 17/31 + 14/28 month = 104.839 kWh)"
    )
    assert (energy.quantity, energy.amount) == (D(93), eur("18.60"))
    assert len(draft.lines) == 2  # no kWh reached block 2


# --- worked example 2: time of use, a public holiday at the weekend rate, energy tax ---------


def test_worked_example_time_of_use_with_holiday_and_energy_tax() -> None:
    # 25-28 April 2026: Saturday, Sunday, Monday 27 April = King's Day (NL), Tuesday.
    # 1 kWh every hour: 4 days * 24 h = 96 kWh.
    #   peak     weekday 07-23       : Tuesday only, 16 h = 16 kWh * 0.30 =  4.80
    #   weekend  weekend and holiday : Sat, Sun, Mon   72 kWh * 0.18 = 12.96
    #   night    weekday 23-07       : Tuesday 8 h   =  8 kWh * 0.22 =  1.76
    #   standing 4 days * 0.45                                       =  1.80
    #   energy tax 96 kWh * 0.10                                     =  9.60
    # Subtotal 1.80 + 4.80 + 12.96 + 1.76 + 9.60 = 30.92
    # VAT 21 % of 30.92 = 6.4932 -> 6.49;  total 37.41
    tou = tariff(
        tax={"rate": "0.21"},
        standing_charge={"per_day": "0.45"},
        energy_tax={"per_kwh": "0.10"},
        energy={
            "type": "time_of_use",
            "periods": [
                {
                    "name": "peak",
                    "price_per_kwh": "0.30",
                    "days": ["weekday"],
                    "hours": [{"from": "07:00", "to": "23:00"}],
                },
                {"name": "weekend", "price_per_kwh": "0.18", "days": ["weekend", "holiday"]},
                {
                    "name": "night",
                    "price_per_kwh": "0.22",
                    "days": ["weekday"],
                    "hours": [{"from": "23:00", "to": "07:00"}],
                },
            ],
        },
    )
    intervals = [iv for d in range(25, 29) for iv in hourly(date(2026, 4, d), "1")]
    draft = price_period(tou, date(2026, 4, 25), date(2026, 4, 29), intervals)

    assert amounts(draft) == [
        ("Standing charge", D(4), D("0.45"), D("1.80")),
        ("Energy peak", D(16), D("0.30"), D("4.80")),
        ("Energy weekend", D(72), D("0.18"), D("12.96")),
        ("Energy night", D(8), D("0.22"), D("1.76")),
        ("Energy tax", D(96), D("0.10"), D("9.60")),
    ]
    assert draft.subtotal == eur("30.92")
    assert draft.tax == eur("6.49")
    assert draft.total == eur("37.41")
    assert [(c.period, c.kwh) for c in draft.consumption] == [
        ("peak", D(16)),
        ("weekend", D(72)),
        ("night", D(8)),
    ]


def test_a_holiday_is_priced_at_the_weekend_rate_and_a_plain_monday_is_not() -> None:
    energy = {
        "type": "time_of_use",
        "periods": [
            {
                "name": "peak",
                "price_per_kwh": "0.30",
                "days": ["weekday"],
                "hours": [{"from": "07:00", "to": "23:00"}],
            },
            {"name": "weekend", "price_per_kwh": "0.18", "days": ["weekend", "holiday"]},
            {
                "name": "night",
                "price_per_kwh": "0.22",
                "days": ["weekday"],
                "hours": [{"from": "23:00", "to": "07:00"}],
            },
        ],
    }
    tou = tariff(energy=energy)
    # King's Day, Monday 27 April 2026: 24 kWh * 0.18 = 4.32.
    kings_day = price_period(
        tou, date(2026, 4, 27), date(2026, 4, 28), hourly(date(2026, 4, 27), "1")
    )
    assert amounts(kings_day) == [("Energy weekend", D(24), D("0.18"), D("4.32"))]
    # The Monday after: 16 kWh * 0.30 = 4.80 and 8 kWh * 0.22 = 1.76.
    monday = price_period(tou, date(2026, 5, 4), date(2026, 5, 5), hourly(date(2026, 5, 4), "1"))
    assert amounts(monday) == [
        ("Energy peak", D(16), D("0.30"), D("4.80")),
        ("Energy night", D(8), D("0.22"), D("1.76")),
    ]
    # An extra date in the calendar is a holiday too.
    with_extra = load_tariff(
        {
            "name": "test",
            "currency": "EUR",
            "timezone": "Europe/Amsterdam",
            "holidays": {"country": "NL", "extra": ["2026-05-04"]},
            "versions": [{"valid_from": "2026-01-01", "energy": energy}],
        }
    )
    bridge = price_period(
        with_extra, date(2026, 5, 4), date(2026, 5, 5), hourly(date(2026, 5, 4), "1")
    )
    assert amounts(bridge) == [("Energy weekend", D(24), D("0.18"), D("4.32"))]


def test_seasons_choose_the_price_by_month_day() -> None:
    # Winter wraps the year end (10-01 to 03-31). 2 kWh a day on 31 March and on 1 April:
    # 31 March is winter: 2 * 0.28 = 0.56; 1 April is summer: 2 * 0.21 = 0.42.
    tou = tariff(
        energy={
            "type": "time_of_use",
            "seasons": {
                "summer": {"from": "04-01", "to": "09-30"},
                "winter": {"from": "10-01", "to": "03-31"},
            },
            "periods": [
                {"name": "summer", "price_per_kwh": "0.21", "seasons": ["summer"]},
                {"name": "winter", "price_per_kwh": "0.28", "seasons": ["winter"]},
            ],
        }
    )
    draft = price_period(
        tou, date(2026, 3, 31), date(2026, 4, 2), local_days(date(2026, 3, 31), ["2", "2"])
    )
    assert amounts(draft) == [
        ("Energy summer", D(2), D("0.21"), D("0.42")),
        ("Energy winter", D(2), D("0.28"), D("0.56")),
    ]


# --- DST: a 23 h and a 25 h local day ----------------------------------------------------------


def test_spring_forward_day_has_23_hours_and_is_one_day() -> None:
    # Sunday 29 March 2026, Europe/Amsterdam: 02:00 CET jumps to 03:00 CEST; 23 hourly reads
    # from 2026-03-28T23:00Z to 2026-03-29T21:00Z. 1 kWh each.
    #   day   07:00-23:00 local: 16 h = 16 kWh * 0.30 = 4.80
    #   night 23:00-07:00 local: 00, 01, 03, 04, 05, 06 and 23 = 7 h = 7 kWh * 0.20 = 1.40
    #   standing: one local day * 0.45 = 0.45;  total 6.65 (no tax)
    reads = hourly(date(2026, 3, 29), "1", hours=23)
    assert reads[0].start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert reads[-1].end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    t = tariff(standing_charge={"per_day": "0.45"}, energy=DAY_NIGHT)
    draft = price_period(t, date(2026, 3, 29), date(2026, 3, 30), reads)
    assert amounts(draft) == [
        ("Standing charge", D(1), D("0.45"), D("0.45")),
        ("Energy day", D(16), D("0.30"), D("4.80")),
        ("Energy night", D(7), D("0.20"), D("1.40")),
    ]
    assert draft.total == eur("6.65")
    assert draft.days == 1
    # A 24th hour would be 30 March, outside the period.
    with pytest.raises(PricingError, match="outside the billing period") as caught:
        price_period(t, date(2026, 3, 29), date(2026, 3, 30), hourly(date(2026, 3, 29), "1"))
    assert caught.value.field == "intervals[23].start"


def test_fall_back_day_has_25_hours_and_prices_the_repeated_hour_by_local_time() -> None:
    # Sunday 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:00-03:00 local happens
    # twice. 25 hourly reads from 2026-10-24T22:00Z; 1 kWh each except the two 02:00 hours,
    # 2 kWh (CEST) and 3 kWh (CET).
    #   night: 00, 01, 02 CEST, 02 CET, 03, 04, 05, 06, 23 = 7 * 1 + 2 + 3 = 12 kWh * 0.20 = 2.40
    #   day:   07 .. 22 = 16 h = 16 kWh * 0.30 = 4.80
    #   standing one local day * 0.45 = 0.45;  total 7.65
    kwh = ["1", "1", "2", "3"] + ["1"] * 21
    reads = hourly(date(2026, 10, 25), kwh, hours=25)
    assert reads[2].start.astimezone(AMS).hour == reads[3].start.astimezone(AMS).hour == 2
    t = tariff(standing_charge={"per_day": "0.45"}, energy=DAY_NIGHT)
    draft = price_period(t, date(2026, 10, 25), date(2026, 10, 26), reads)
    assert amounts(draft) == [
        ("Standing charge", D(1), D("0.45"), D("0.45")),
        ("Energy day", D(16), D("0.30"), D("4.80")),
        ("Energy night", D(12), D("0.20"), D("2.40")),
    ]
    assert draft.total == eur("7.65")
    assert (draft.days, draft.import_kwh, draft.actual_intervals) == (1, D(28), 25)


def test_a_month_with_a_dst_change_counts_local_days() -> None:
    # March 2026 has 31 local days although it is 743 hours long: 31 * 0.45 = 13.95.
    t = tariff(standing_charge={"per_day": "0.45"}, energy=FLAT)
    draft = price_period(t, date(2026, 3, 1), date(2026, 4, 1), [])
    assert amounts(draft)[0] == ("Standing charge", D(31), D("0.45"), D("13.95"))


# --- demand, minimum charge, export credit ---------------------------------------------------


def test_demand_charge_on_the_peak_interval() -> None:
    # 15-minute reads on 2 March 2026 (local): 0.5 kWh each, one of 0.9 kWh at 18:00 and one
    # of 0.9 kWh at 19:00. kW = kWh * 60 / 15: 0.9 kWh -> 3.6 kW, the earlier wins the tie.
    #   demand 3.6 kW * 4.00 = 14.40;  energy 96 reads: 94 * 0.5 + 2 * 0.9 = 48.8 kWh * 0.25
    #   = 12.20;  total 26.60
    start = datetime(2026, 3, 2, tzinfo=AMS).astimezone(UTC)
    reads = []
    for i in range(96):
        kwh = "0.9" if i in (72, 76) else "0.5"
        reads.append(Interval(start + timedelta(minutes=15 * i), 15, D(kwh)))
    t = tariff(energy=FLAT, demand={"per_kw": "4.00"})
    draft = price_period(t, date(2026, 3, 2), date(2026, 3, 3), reads)
    assert amounts(draft) == [
        ("Energy", D("48.8"), D("0.25"), D("12.20")),
        ("Demand charge (peak 2026-03-02T18:00+01:00)", D("3.600"), D("4.00"), D("14.40")),
    ]
    assert draft.peak is not None
    assert draft.peak.start == datetime(2026, 3, 2, 17, tzinfo=UTC)
    assert draft.total == eur("26.60")


def test_demand_uses_the_version_in_force_at_the_peak() -> None:
    # Price change on 3 March from 4.00 to 5.00 per kW; the peak (2 kWh in an hour = 2 kW)
    # is on 4 March: 2 * 5.00 = 10.00.
    t = load_tariff(
        {
            "name": "demand",
            "currency": "EUR",
            "timezone": "Europe/Amsterdam",
            "versions": [
                {"valid_from": "2026-01-01", "energy": FLAT, "demand": {"per_kw": "4.00"}},
                {"valid_from": "2026-03-03", "energy": FLAT, "demand": {"per_kw": "5.00"}},
            ],
        }
    )
    reads = hourly(date(2026, 3, 2), "1") + hourly(date(2026, 3, 4), ["2"] + ["1"] * 23)
    draft = price_period(t, date(2026, 3, 1), date(2026, 3, 6), reads)
    demand = draft.lines[-1]
    assert (demand.quantity, demand.unit_price, demand.amount) == (D(2), D("5.00"), eur("10.00"))
    assert demand.version == date(2026, 3, 3)


def test_minimum_charge_tops_up_a_small_bill() -> None:
    # 40 kWh * 0.25 = 10.00 < minimum 20.00: top-up 10.00.
    # VAT 21 % of 20.00 = 4.20; total 24.20.
    t = tariff(energy=FLAT, minimum_charge={"amount": "20.00"}, tax={"rate": "0.21"})
    draft = price_period(
        t, date(2026, 6, 1), date(2026, 7, 1), local_days(date(2026, 6, 1), ["2"] * 20)
    )
    assert amounts(draft) == [
        ("Energy", D(40), D("0.25"), D("10.00")),
        ("Minimum charge top-up (minimum 20.00, charges 10.00)", D(1), D("10.00"), D("10.00")),
    ]
    assert draft.total == eur("24.20")
    # 100 kWh * 0.25 = 25.00 is above the minimum: no top-up.
    big = price_period(
        t, date(2026, 6, 1), date(2026, 7, 1), local_days(date(2026, 6, 1), ["5"] * 20)
    )
    assert [ln.description for ln in big.lines] == ["Energy"]


def test_minimum_charge_is_prorated_by_days_across_a_price_change() -> None:
    # June (30 days): minimum 15.00 until the 11th, 30.00 from then on.
    # 15.00 * 10/30 + 30.00 * 20/30 = 5.00 + 20.00 = 25.00; no consumption: top-up 25.00.
    t = load_tariff(
        {
            "name": "minimum",
            "currency": "EUR",
            "timezone": "Europe/Amsterdam",
            "versions": [
                {"valid_from": "2026-01-01", "energy": FLAT, "minimum_charge": {"amount": "15"}},
                {"valid_from": "2026-06-11", "energy": FLAT, "minimum_charge": {"amount": "30"}},
            ],
        }
    )
    draft = price_period(t, date(2026, 6, 1), date(2026, 7, 1), [])
    assert draft.lines[-1].amount == eur("25.00")
    assert draft.total == eur("25.00")


def test_export_credit_is_a_negative_line_with_its_own_tax_rate() -> None:
    # Import 10 kWh * 0.25 = 2.50 (VAT 21 %); export 6.5 kWh * -0.08 = -0.52 (VAT 0 %).
    # VAT 21 % of 2.50 = 0.525 -> 0.53 (half up); VAT 0 % of -0.52 = 0.00.
    # Subtotal 2.50 - 0.52 = 1.98; total 1.98 + 0.53 = 2.51.
    t = tariff(energy=FLAT, tax={"rate": "0.21"}, export={"per_kwh": "0.08", "tax_rate": "0"})
    start = datetime(2026, 6, 1, 12, tzinfo=AMS)
    reads = [
        Interval(start, 60, D(6), export_kwh=D("2.5")),
        Interval(start + timedelta(hours=1), 60, D(4), export_kwh=D(4)),
    ]
    draft = price_period(t, date(2026, 6, 1), date(2026, 6, 2), reads)
    assert amounts(draft) == [
        ("Energy", D(10), D("0.25"), D("2.50")),
        ("Export credit", D("6.5"), D("-0.08"), D("-0.52")),
    ]
    assert [(x.rate, x.base, x.amount) for x in draft.taxes] == [
        (D("0.21"), eur("2.50"), eur("0.53")),
        (D("0"), eur("-0.52"), eur("0.00")),
    ]
    assert (draft.subtotal, draft.tax, draft.total) == (eur("1.98"), eur("0.53"), eur("2.51"))
    assert draft.export_kwh == D("6.5")


# --- input that cannot be priced ------------------------------------------------------------


def test_overlapping_reads_are_refused_with_the_index() -> None:
    t = tariff(energy=FLAT)
    reads = hourly(date(2026, 6, 1), "1", hours=3)
    reads.append(Interval(reads[1].start + timedelta(minutes=30), 60, D(1)))
    with pytest.raises(PricingError, match=r"inside intervals\[1\]") as caught:
        price_period(t, date(2026, 6, 1), date(2026, 6, 2), reads)
    assert caught.value.field == "intervals[3].start"


def test_a_period_before_the_first_version_is_refused() -> None:
    with pytest.raises(PricingError, match="before tariff 'test' begins") as caught:
        price_period(tariff(energy=FLAT), date(2025, 12, 31), date(2026, 1, 2), [])
    assert caught.value.field == "start"


def test_datetimes_are_not_dates() -> None:
    with pytest.raises(PricingError, match="not a local date") as caught:
        price_period(tariff(energy=FLAT), date(2026, 1, 2), datetime(2026, 1, 3, tzinfo=UTC), [])
    assert caught.value.field == "end"


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(PricingError, match="must be after start") as caught:
        price_period(tariff(energy=FLAT), date(2026, 1, 2), date(2026, 1, 2), [])
    assert caught.value.field == "end"


def test_intervals_refuse_floats_and_naive_times() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(TypeError, match="float"):
        Interval(start, 60, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        Interval(datetime(2026, 1, 1), 60, D(1))
    with pytest.raises(ValueError, match="at least 0"):
        Interval(start, 60, D(-1))
    assert Interval(start, 60, "1.5").import_kwh == D("1.5")  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------------

HALF_CENT = D("0.005")

kwh_values = st.decimals(min_value=0, max_value=5, places=3, allow_nan=False)


@st.composite
def hourly_reads(draw: st.DrawFn) -> tuple[date, date, list[Interval]]:
    """A period of 1-12 local days from 2026-03-25 (it may cross the spring DST change and
    the tariff's change on 10 April) with hourly reads, some missing and some estimated."""
    start = date(2026, 3, 25) + timedelta(days=draw(st.integers(0, 20)))
    end = start + timedelta(days=draw(st.integers(1, 12)))
    first = datetime(start.year, start.month, start.day, tzinfo=AMS).astimezone(UTC)
    last = datetime(end.year, end.month, end.day, tzinfo=AMS).astimezone(UTC)
    hours = int((last - first).total_seconds()) // 3600
    kept = draw(st.lists(st.booleans(), min_size=hours, max_size=hours))
    reads = [
        Interval(
            first + timedelta(hours=i),
            60,
            draw(kwh_values),
            export_kwh=draw(kwh_values),
            is_estimated=draw(st.booleans()),
        )
        for i in range(hours)
        if kept[i]
    ]
    return start, end, reads


FULL_TARIFF = {
    "name": "property",
    "currency": "EUR",
    "timezone": "Europe/Amsterdam",
    "holidays": {"country": "NL"},
    "versions": [
        {
            "valid_from": "2026-01-01",
            "tax": {"rate": "0.21"},
            "standing_charge": {"per_day": "0.4567"},
            "energy_tax": {"per_kwh": "0.1088"},
            "demand": {"per_kw": "3.25"},
            "minimum_charge": {"amount": "12.50"},
            "export": {"per_kwh": "0.0712", "tax_rate": "0.09"},
            "energy": {
                "type": "tiered",
                "blocks": [
                    {"up_to_kwh": "150", "price_per_kwh": "0.21"},
                    {"price_per_kwh": "0.27"},
                ],
            },
        },
        {
            "valid_from": "2026-04-10",
            "tax": {"rate": "0.19"},
            "standing_charge": {"per_day": "0.5011"},
            "energy": {
                "type": "time_of_use",
                "periods": [
                    {
                        "name": "peak",
                        "price_per_kwh": "0.3123",
                        "days": ["weekday"],
                        "hours": [{"from": "07:00", "to": "23:00"}],
                    },
                    {
                        "name": "off-peak",
                        "price_per_kwh": "0.2011",
                        "days": ["weekday"],
                        "hours": [{"from": "23:00", "to": "07:00"}],
                    },
                    {"name": "weekend", "price_per_kwh": "0.2011", "days": ["weekend", "holiday"]},
                ],
            },
            "export": {"per_kwh": "0.065"},
            "minimum_charge": {"amount": "15"},
        },
    ],
}


@settings(max_examples=40, deadline=None)
@given(hourly_reads())
def test_every_draft_adds_up_and_every_line_checks_by_hand(
    case: tuple[date, date, list[Interval]],
) -> None:
    start, end, reads = case
    draft = price_period(load_tariff(FULL_TARIFF), start, end, reads)
    for line in draft.lines:
        exact = line.quantity * line.unit_price
        assert abs(line.amount.amount - exact) <= HALF_CENT
        assert line.amount == Money(exact, "EUR").rounded()
    assert draft.subtotal == sum((ln.amount for ln in draft.lines), eur("0"))
    for tax in draft.taxes:
        lines = [ln.amount for ln in draft.lines if ln.tax_rate == tax.rate]
        assert tax.base == sum(lines, eur("0"))
        assert tax.amount == (tax.base * tax.rate).rounded()
    assert draft.total == draft.subtotal + draft.tax
    assert draft.tax == sum((t.amount for t in draft.taxes), eur("0"))
    assert sum((c.kwh for c in draft.consumption), D(0)) == draft.import_kwh
    assert draft.actual_kwh + draft.estimated_kwh == draft.import_kwh
    assert draft.actual_intervals + draft.estimated_intervals == len(reads)
    assert draft.import_kwh == sum((r.import_kwh for r in reads), D(0))
    # The minimum, prorated by days across the change on 10 April, is always reached.
    change = min(max(date(2026, 4, 10), start), end)
    before, after = (change - start).days, (end - change).days
    minimum = Money((D("12.50") * before + D(15) * after) / draft.days, "EUR").rounded()
    charges = sum((ln.amount for ln in draft.lines if ln.description != "Export credit"), eur("0"))
    assert charges >= minimum


@settings(max_examples=40, deadline=None)
@given(hourly_reads(), st.data())
def test_splitting_a_period_in_two_changes_a_flat_bill_by_rounding_only(
    case: tuple[date, date, list[Interval]], data: st.DataObject
) -> None:
    start, end, reads = case
    if (end - start).days < 2:
        end = start + timedelta(days=2)
    split = start + timedelta(days=data.draw(st.integers(1, (end - start).days - 1)))
    flat = tariff(
        tax={"rate": "0.21"},
        standing_charge={"per_day": "0.4567"},
        energy={"type": "flat", "price_per_kwh": "0.234567"},
        energy_tax={"per_kwh": "0.1088"},
    )
    edge = datetime(split.year, split.month, split.day, tzinfo=AMS)
    last = datetime(end.year, end.month, end.day, tzinfo=AMS)
    reads = [r for r in reads if r.end <= last]
    whole = price_period(flat, start, end, reads)
    first = price_period(flat, start, split, [r for r in reads if r.start < edge])
    second = price_period(flat, split, end, [r for r in reads if r.start >= edge])
    # Three lines each, rounded to half a cent: the subtotals differ by at most
    # 9 half cents; the tax by 21 % of that plus three half cents of its own rounding.
    subtotal_gap = abs(first.subtotal.amount + second.subtotal.amount - whole.subtotal.amount)
    assert subtotal_gap <= 9 * HALF_CENT
    total_gap = abs(first.total.amount + second.total.amount - whole.total.amount)
    assert total_gap <= subtotal_gap * D("1.21") + 3 * HALF_CENT
    assert first.import_kwh + second.import_kwh == whole.import_kwh
    assert first.days + second.days == whole.days


@given(st.integers(1, 12), st.data())
def test_the_prorated_parts_of_a_block_add_up_to_the_block(month: int, data: st.DataObject) -> None:
    # A price change on any day of a month splits block 1 into two shares that add up to
    # the monthly 100 kWh within a watt-hour each (each share is rounded to the Wh).
    start = date(2026, month, 1)
    end = date(2026 + month // 12, month % 12 + 1, 1)
    change = start + timedelta(days=data.draw(st.integers(1, (end - start).days - 1)))
    version = copy.deepcopy(TIERED_WITH_PRICE_CHANGE["versions"][0])
    tiered = load_tariff(
        {
            **TIERED_WITH_PRICE_CHANGE,
            "versions": [version, {**version, "valid_from": change.isoformat()}],
        }
    )
    # Enough consumption to fill block 1 in both parts.
    reads = local_days(start, ["20"] * (end - start).days)
    draft = price_period(tiered, start, end, reads)
    blocks = [ln.quantity for ln in draft.lines if ln.tariff_period == "block 1"]
    assert len(blocks) == 2
    assert abs(sum(blocks, D(0)) - D(100)) <= D("0.001")
