"""Use per local day (daylight saving included), per ISO week, per asset and per group."""

from __future__ import annotations

from datetime import date

import pytest

from m2mhub.apps.fleet import (
    FleetSettings,
    Utilization,
    group_utilization,
    summarize_days,
    utilization,
)
from m2mhub.apps.fleet.utilization import period_of
from m2mhub.core.values import Value
from tests.apps.fleet.vans import AMSTERDAM, HOUR, MINUTE, Van, VanDay, local_ms

SETTINGS = FleetSettings()


def test_the_van_day_splits_into_driving_idling_off_and_no_data() -> None:
    day = VanDay()
    (summary, next_day) = summarize_days(day.readings, SETTINGS, zone=AMSTERDAM)
    assert summary.day == date(2026, 6, 10)
    assert next_day.day == date(2026, 6, 11) and next_day.driving_ms == 0  # the midnight fix
    covered = summary.driving_ms + summary.idle_ms + summary.off_ms + summary.no_data_ms
    assert covered == 24 * HOUR
    # 20 + 17 + 25 minutes at the wheel; warm-up, red light and 8 minutes at the customer.
    assert summary.driving_ms == pytest.approx(62 * MINUTE, abs=MINUTE)
    assert summary.idle_ms == pytest.approx(11.5 * MINUTE, abs=MINUTE)
    assert summary.no_data_ms == day.gap_end - day.gap_start
    assert summary.max_speed_kmh == 120
    # The odometer counts what was driven, the gap as a straight line (it was straight).
    true_m = day.trip1_m + day.trip2_m + day.gap_m + day.trip3_m
    assert abs(summary.distance_m - true_m) <= 0.005 * true_m + 4 * SETTINGS.jitter_m
    assert summary.odometer_end_m - summary.odometer_start_m == pytest.approx(summary.distance_m)
    # Ignition on-time: driving and idling, the gap not counted.
    assert summary.engine_ms == pytest.approx(summary.driving_ms + summary.idle_ms, abs=MINUTE)


def parked_day_with_an_hour_of_driving(day: str) -> list[tuple[int, dict[str, Value]]]:
    """From local midnight to the next, ten-minute reports; driving 10:00-11:00 local."""
    van = Van(local_ms(f"{day}T00:00"), 52.37, 4.89)
    while van.ts < local_ms(f"{day}T10:00"):
        van.stand(10, every_s=600)
    van.switch(True)
    van.drive(60, 40, 90, every_s=60)
    van.switch(False)
    end = local_ms(f"{day}T00:00") + 30 * HOUR  # safely past the next local midnight
    while van.ts < end:
        van.stand(10, every_s=600)
    return van.readings


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-10", 24)],
)
def test_a_local_day_has_the_hours_of_its_date_in_amsterdam(day: str, hours: int) -> None:
    readings = parked_day_with_an_hour_of_driving(day)
    summaries = {s.day: s for s in summarize_days(readings, SETTINGS, zone=AMSTERDAM)}
    summary = summaries[date.fromisoformat(day)]
    covered = summary.driving_ms + summary.idle_ms + summary.off_ms + summary.no_data_ms
    assert covered == hours * HOUR
    # The minute after key-on counts as idling (each stretch takes its opening reading's state).
    assert summary.driving_ms == pytest.approx(59 * MINUTE, abs=2000)
    assert summary.driving_ms + summary.idle_ms == pytest.approx(HOUR, abs=2000)
    assert summary.no_data_ms == 0


def test_weeks_sum_days_and_groups_sum_assets() -> None:
    # Monday 2026-03-23 .. Sunday 2026-03-29 is ISO week 13; Monday 2026-03-30 is week 14.
    readings = [
        r
        for day in ("2026-03-27", "2026-03-28", "2026-03-30")
        for r in parked_day_with_an_hour_of_driving(day)
    ]
    days = summarize_days(readings, SETTINGS, zone=AMSTERDAM)
    weeks = utilization("van-1", days, period="week")
    assert [w.period for w in weeks] == ["2026-W13", "2026-W14"]
    assert weeks[0].used_ms == pytest.approx(2 * HOUR, abs=4000)
    assert weeks[0].used_ms == weeks[0].driving_ms + weeks[0].idle_ms
    per_day = utilization("van-1", days, period="day")
    assert sum(d.driving_ms for d in per_day) == sum(w.driving_ms for w in weeks)

    other = [
        Utilization("van-2", "2026-W13", HOUR, HOUR, 10 * HOUR, 0, 30_000.0),
        Utilization("van-2", "2026-W15", 0, 0, 24 * HOUR, 0, 0.0),
    ]
    group = group_utilization("north", [*weeks, *other])
    assert [(g.asset, g.period, g.assets) for g in group] == [
        ("north", "2026-W13", 2),
        ("north", "2026-W14", 1),
        ("north", "2026-W15", 1),
    ]
    assert group[0].driving_ms == weeks[0].driving_ms + HOUR
    assert group[0].idle_share == pytest.approx(group[0].idle_ms / group[0].used_ms)
    assert group[2].idle_share == 0.0


def test_periods_are_iso_dates_and_iso_weeks() -> None:
    assert period_of(date(2026, 3, 29), "day") == "2026-03-29"
    assert period_of(date(2027, 1, 1), "week") == "2026-W53"
