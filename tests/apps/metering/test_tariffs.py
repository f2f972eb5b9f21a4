"""Tariffs as data: loading, YAML decimals, and errors that name the field at fault."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import yaml

from m2mhub.apps.metering.tariffs import (
    FlatEnergy,
    TariffError,
    TieredEnergy,
    TimeOfUseEnergy,
    load_tariff,
    parse_tariff_yaml,
)

TARIFF_YAML = """
name: Residential time-of-use 2026
currency: EUR
timezone: Europe/Amsterdam
holidays:
  country: NL
  extra: [2026-12-31]
versions:
  - valid_from: 2026-01-01
    tax: {name: VAT, rate: 0.21}
    standing_charge: {per_day: 0.4512}
    energy_tax: {per_kwh: 0.1088}
    export: {per_kwh: 0.07, tax_rate: 0}
    energy:
      type: time_of_use
      seasons:
        summer: {from: "04-01", to: "09-30"}
        winter: {from: "10-01", to: "03-31"}
      periods:
        - name: winter peak
          price_per_kwh: 0.31
          days: [weekday]
          seasons: [winter]
          hours: [{from: 7:00, to: 23:00}]
        - name: summer peak
          price_per_kwh: 0.27
          days: [weekday]
          seasons: [summer]
          hours: [{from: 7:00, to: 23:00}]
        - name: off-peak
          price_per_kwh: 0.19
          days: [weekday]
          hours: [{from: "23:00", to: "07:00"}]
        - name: weekend
          price_per_kwh: 0.19
          days: [weekend, holiday]
  - valid_from: 2026-07-01
    tax: {name: VAT, rate: 0.21}
    energy: {type: flat, price_per_kwh: 0.123456}
"""


def base() -> dict[str, Any]:
    return {
        "name": "test",
        "currency": "EUR",
        "timezone": "Europe/Amsterdam",
        "versions": [
            {"valid_from": "2026-01-01", "energy": {"type": "flat", "price_per_kwh": "0.25"}},
            {
                "valid_from": "2026-04-01",
                "energy": {
                    "type": "tiered",
                    "blocks": [
                        {"up_to_kwh": "100", "price_per_kwh": "0.20"},
                        {"up_to_kwh": "300", "price_per_kwh": "0.25"},
                        {"price_per_kwh": "0.30"},
                    ],
                },
            },
        ],
    }


def test_yaml_reads_unquoted_decimals_and_clock_times_exactly() -> None:
    tariff = parse_tariff_yaml(TARIFF_YAML)
    first, second = tariff.versions
    assert first.tax.rate == Decimal("0.21")
    assert first.standing_charge is not None
    assert first.standing_charge.per_day == Decimal("0.4512")
    assert first.export is not None and first.tax_rate(first.export) == Decimal(0)
    assert first.energy_tax is not None and first.tax_rate(first.energy_tax) == Decimal("0.21")
    assert isinstance(first.energy, TimeOfUseEnergy)
    peak = first.energy.periods[0]
    assert peak.price_per_kwh == Decimal("0.31")
    assert (peak.hours[0].start, peak.hours[0].end) == (7 * 60, 23 * 60)
    assert isinstance(second.energy, FlatEnergy)
    assert second.energy.price_per_kwh == Decimal("0.123456")
    assert tariff.version_at(date(2026, 6, 30)) is first
    assert tariff.version_at(date(2026, 7, 1)) is second


def test_day_types_come_from_the_calendar() -> None:
    tariff = parse_tariff_yaml(TARIFF_YAML)
    assert tariff.day_type(date(2026, 4, 27)) == "holiday"  # King's Day, a Monday
    assert tariff.day_type(date(2026, 12, 31)) == "holiday"  # extra date
    assert tariff.day_type(date(2026, 4, 25)) == "weekend"
    assert tariff.day_type(date(2026, 4, 28)) == "weekday"
    energy = tariff.versions[0].energy
    assert isinstance(energy, TimeOfUseEnergy)
    # 1 February 2026 is a Sunday; 2 February a Monday in winter; 2 June a Tuesday in summer.
    assert energy.period_at("weekday", date(2026, 2, 2), 8 * 60).name == "winter peak"
    assert energy.period_at("weekday", date(2026, 6, 2), 8 * 60).name == "summer peak"
    assert energy.period_at("weekday", date(2026, 6, 2), 23 * 60).name == "off-peak"
    assert energy.period_at("holiday", date(2026, 6, 2), 8 * 60).name == "weekend"


def test_subdivision_holidays() -> None:
    data = base()
    data["holidays"] = {"country": "DE", "subdivision": "BY"}
    tariff = load_tariff(data)
    assert tariff.day_type(date(2026, 1, 6)) == "holiday"  # Epiphany in Bavaria


def test_tiered_blocks_load_in_order() -> None:
    energy = load_tariff(base()).versions[1].energy
    assert isinstance(energy, TieredEnergy)
    assert [b.up_to_kwh for b in energy.blocks] == [Decimal(100), Decimal(300), None]


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base())
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


BLOCK0: list[str | int] = ["versions", 1, "energy", "blocks", 0]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (_with([*BLOCK0, "up_to_kwh"], 0.5), "versions[1].energy.blocks[0].up_to_kwh", "float"),
        (_with([*BLOCK0, "up_to_kwh"], "-5"), "versions[1].energy.blocks[0].up_to_kwh", "above 0"),
        (
            _with([*BLOCK0, "up_to_kwh"], "400"),
            "versions[1].energy.blocks[1].up_to_kwh",
            "above the previous block's 400",
        ),
        (_with([*BLOCK0, "up_to_kwh"], "ten"), "versions[1].energy.blocks[0].up_to_kwh", "'0.25'"),
        (
            _with(["versions", 1, "energy", "blocks", 2, "up_to_kwh"], "900"),
            "versions[1].energy.blocks[2].up_to_kwh",
            "open-ended",
        ),
        (
            _with(["versions", 0, "energy", "price_per_kwh"], "0.1234567"),
            "versions[0].energy.price_per_kwh",
            "more than 6 decimal places",
        ),
        (_with(["versions", 0, "energy", "type"], "spot"), "versions[0].energy.type", "flat"),
        (_with(["versions", 0, "energy", "colour"], "red"), "versions[0].energy.colour", "unknown"),
        (_with(["versions", 1, "valid_from"], "2025-12-01"), "versions[1].valid_from", "after"),
        (_with(["versions", 1, "valid_from"], "2026-01-01"), "versions[1].valid_from", "repeats"),
        (_with(["versions", 1, "valid_from"], "1 April"), "versions[1].valid_from", "YYYY-MM-DD"),
        (_with(["versions", 0, "tax"], {"rate": "21"}), "versions[0].tax.rate", "'0.21'"),
        (
            _with(["versions", 0, "minimum_charge"], {"amount": "10.001"}),
            "versions[0].minimum_charge.amount",
            "2 decimal places",
        ),
        (
            _with(["versions", 0, "demand"], {"per_kwh": "1"}),
            "versions[0].demand.per_kwh",
            "per_kw",
        ),
        (_with(["versions", 0, "energy"], None), "versions[0].energy", "required"),
        (_with(["versions"], []), "versions", "at least one"),
        (_with(["timezone"], "Europe/Amsterdamm"), "timezone", "IANA"),
        (_with(["currency"], "eur"), "currency", "ISO 4217"),
        (_with(["holidays"], {"country": "XX"}), "holidays.country", "ISO 3166"),
        (_with(["holidays"], {"country": "DE", "subdivision": "ZZ"}), "holidays.subdivision", "ZZ"),
        (_with(["holidays"], {"extra": ["31-12-2026"]}), "holidays.extra[0]", "YYYY-MM-DD"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(TariffError, match=message) as caught:
        load_tariff(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert caught.value.code == "invalid_tariff"


def _tou(periods: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return _with(["versions", 0, "energy"], {"type": "time_of_use", "periods": periods, **extra})


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            _tou([{"name": "peak", "price_per_kwh": "0.3", "days": ["weekday"]}]),
            "versions[0].energy.periods",
            "no period covers a weekend on 01-01 at 00:00",
        ),
        (
            _tou(
                [
                    {"name": "a", "price_per_kwh": "0.3", "days": ["weekday"]},
                    {"name": "b", "price_per_kwh": "0.2", "days": ["weekend"]},
                ]
            ),
            "versions[0].energy.periods",
            "no period covers a holiday",
        ),
        (
            _tou(
                [
                    {
                        "name": "day",
                        "price_per_kwh": "0.3",
                        "hours": [{"from": "07:00", "to": "23:00"}],
                    },
                    {
                        "name": "x",
                        "price_per_kwh": "0.2",
                        "hours": [{"from": "23:00", "to": "06:00"}],
                    },
                ]
            ),
            "versions[0].energy.periods",
            "at 06:00",
        ),
        (
            _tou([{"name": "p", "price_per_kwh": "0.3", "hours": [{"from": 420, "to": "23:00"}]}]),
            "versions[0].energy.periods[0].hours[0].from",
            "HH:MM in quotes",
        ),
        (
            _tou(
                [{"name": "p", "price_per_kwh": "0.3", "hours": [{"from": "07:00", "to": "07:00"}]}]
            ),
            "versions[0].energy.periods[0].hours[0]",
            "whole day",
        ),
        (
            _tou([{"name": "p", "price_per_kwh": "0.3", "seasons": ["summer"]}]),
            "versions[0].energy.periods[0].seasons[0]",
            "unknown season 'summer'",
        ),
        (
            _tou(
                [{"name": "p", "price_per_kwh": "0.3"}],
                seasons={"summer": {"from": "04-31", "to": "09-30"}},
            ),
            "versions[0].energy.seasons.summer.from",
            "MM-DD",
        ),
        (
            _tou([{"name": "p", "price_per_kwh": "0.3", "days": ["monday"]}]),
            "versions[0].energy.periods[0].days[0]",
            "weekday, weekend, holiday",
        ),
        (
            _tou([{"name": "p", "price_per_kwh": "0.3"}, {"name": "p", "price_per_kwh": "0.2"}]),
            "versions[0].energy.periods[1].name",
            "used by another period",
        ),
    ],
)
def test_time_of_use_errors_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(TariffError, match=message) as caught:
        load_tariff(data)
    assert caught.value.field == field


def test_a_plain_yaml_float_is_refused_with_a_hint() -> None:
    data = yaml.safe_load(TARIFF_YAML)  # a plain loader turns 0.21 into a binary float
    with pytest.raises(TariffError, match="parse_tariff_yaml") as caught:
        load_tariff(data)
    assert caught.value.field == "versions[0].tax.rate"


def test_invalid_yaml_is_a_tariff_error() -> None:
    with pytest.raises(TariffError, match="not valid YAML"):
        parse_tariff_yaml("name: [unclosed")
    with pytest.raises(TariffError, match="expected a mapping"):
        parse_tariff_yaml("- just a list")


def test_a_season_may_wrap_the_year_end() -> None:
    data = _tou(
        [
            {"name": "winter", "price_per_kwh": "0.3", "seasons": ["winter"]},
            {"name": "rest", "price_per_kwh": "0.2", "seasons": ["rest"]},
        ],
        seasons={
            "winter": {"from": "11-01", "to": "02-29"},
            "rest": {"from": "03-01", "to": "10-31"},
        },
    )
    energy = load_tariff(data).versions[0].energy
    assert isinstance(energy, TimeOfUseEnergy)
    assert energy.period_at("weekday", date(2026, 12, 31), 0).name == "winter"
    assert energy.period_at("weekday", date(2026, 2, 28), 0).name == "winter"
    assert energy.period_at("weekday", date(2026, 3, 1), 0).name == "rest"
    assert energy.period_at("weekday", date(2026, 10, 31), 0).name == "rest"


PEAK = {
    "name": "peak",
    "price_per_kwh": "0.30",
    "days": ["weekday"],
    "hours": [{"from": "07:00", "to": "23:00"}],
}
NIGHT = {
    "name": "night",
    "price_per_kwh": "0.20",
    "days": ["weekday"],
    "hours": [{"from": "23:00", "to": "07:00"}],
}
WEEKEND = {"name": "weekend", "price_per_kwh": "0.18", "days": ["weekend", "holiday"]}
SEASONS = {"summer": {"from": "04-01", "to": "09-30"}, "winter": {"from": "10-01", "to": "03-31"}}


def test_explicit_complements_load_and_the_order_does_not_matter() -> None:
    for periods in ([PEAK, NIGHT, WEEKEND], [WEEKEND, NIGHT, PEAK]):
        energy = load_tariff(_tou(periods)).versions[0].energy
        assert isinstance(energy, TimeOfUseEnergy)
        assert energy.period_at("weekday", date(2026, 2, 2), 7 * 60).name == "peak"
        assert energy.period_at("weekday", date(2026, 2, 2), 6 * 60 + 59).name == "night"
        assert energy.period_at("holiday", date(2026, 2, 2), 12 * 60).name == "weekend"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (  # the catch-all last period that first-match-wins used to hide
            _tou([PEAK, {"name": "off-peak", "price_per_kwh": "0.2"}]),
            "versions[0].energy.periods[1]",
            r"overlaps periods\[0\] \(peak\) on weekdays 07:00-23:00;",
        ),
        (
            _tou(
                [
                    {**PEAK, "seasons": ["winter"]},
                    {**PEAK, "name": "summer peak", "seasons": ["summer"]},
                    NIGHT,
                    WEEKEND,
                    {
                        "name": "morning",
                        "price_per_kwh": "0.25",
                        "days": ["weekday", "weekend"],
                        "seasons": ["winter"],
                        "hours": [{"from": "06:00", "to": "08:00"}],
                    },
                ],
                seasons=SEASONS,
            ),
            "versions[0].energy.periods[4]",
            r"overlaps periods\[0\] \(peak\) on weekdays 07:00-08:00 in season winter",
        ),
        (  # a wrapping range meeting another just after midnight
            _tou(
                [
                    PEAK,
                    {**NIGHT, "hours": [{"from": "22:00", "to": "07:00"}]},
                    WEEKEND,
                ]
            ),
            "versions[0].energy.periods[1]",
            r"overlaps periods\[0\] \(peak\) on weekdays 22:00-23:00",
        ),
        (
            _tou(
                [{"name": "p", "price_per_kwh": "0.3"}],
                seasons={
                    "summer": {"from": "04-01", "to": "09-30"},
                    "winter": {"from": "09-30", "to": "03-31"},
                },
            ),
            "versions[0].energy.seasons.winter",
            "overlaps season summer on 09-30",
        ),
        (
            _tou(
                [{"name": "p", "price_per_kwh": "0.3"}],
                seasons={
                    "summer": {"from": "04-01", "to": "09-30"},
                    "winter": {"from": "11-01", "to": "03-31"},
                },
            ),
            "versions[0].energy.seasons",
            "no season covers 10-01 to 10-31",
        ),
        (
            _tou(
                [{"name": "p", "price_per_kwh": "0.3"}],
                seasons={
                    "summer": {"from": "03-01", "to": "10-31"},
                    "winter": {"from": "11-01", "to": "02-28"},
                },
            ),
            "versions[0].energy.seasons",
            "no season covers 02-29 to 02-29",
        ),
        (  # disjoint periods that leave out a season
            _tou([{**PEAK, "days": None, "hours": None, "seasons": ["summer"]}], seasons=SEASONS),
            "versions[0].energy.periods",
            "no period covers a weekday on 01-01 at 00:00",
        ),
    ],
)
def test_overlaps_and_gaps_are_refused_with_an_example(
    data: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(TariffError, match=message) as caught:
        load_tariff(data)
    assert caught.value.field == field
