"""Wearables: circadian vitals, cuff blood pressure, a patient who deteriorates."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from m2mhub.sim.keys import (
    BODY_TEMP_C,
    DIASTOLIC_MMHG,
    HEART_RATE_BPM,
    RESPIRATION_RPM,
    SPO2_PCT,
    SYSTOLIC_MMHG,
)
from m2mhub.sim.wearables import Wearable, WearableParams, news2_score
from tests.sim.conftest import HOUR, MONDAY, hour_of, number, run

MINUTE = 60_000


def wearable(seed: int = 5, **params: Any) -> Wearable:
    return Wearable(WearableParams(**params), rng=random.Random(seed))


def test_vitals_follow_the_day() -> None:
    reports = run(wearable(), days=7, interval_ms=5 * MINUTE)

    def mean(key: str, hours: range) -> float:
        return statistics.fmean(number(v, key) for ts, v in reports if int(hour_of(ts)) in hours)

    assert mean(HEART_RATE_BPM, range(2, 5)) + 5 < mean(HEART_RATE_BPM, range(14, 18))
    assert mean(BODY_TEMP_C, range(3, 6)) + 0.3 < mean(BODY_TEMP_C, range(16, 19))
    for _, values in reports:
        assert 45 <= number(values, HEART_RATE_BPM) <= 130
        assert 93 <= number(values, SPO2_PCT) <= 100
        assert 35.8 <= number(values, BODY_TEMP_C) <= 37.8
        assert news2_score(values) <= 4


def test_blood_pressure_comes_from_the_cuff_every_hour() -> None:
    reports = run(wearable(), days=1, interval_ms=MINUTE)
    with_bp = [ts for ts, v in reports if SYSTOLIC_MMHG in v]
    assert len(with_bp) == 24
    assert all((ts - MONDAY) % HOUR == 0 for ts in with_bp)
    for ts, values in reports:
        if ts in with_bp:
            assert 90 < number(values, SYSTOLIC_MMHG) < 160
            assert number(values, DIASTOLIC_MMHG) < number(values, SYSTOLIC_MMHG) - 20


def test_patient_deteriorates_after_the_onset() -> None:
    reports = run(
        wearable(deteriorates_after_h=10, deterioration_hours=8), days=1, interval_ms=MINUTE
    )
    before = [v for ts, v in reports if ts < MONDAY + 10 * HOUR]
    after = [v for ts, v in reports if ts >= MONDAY + 18 * HOUR]
    assert max(news2_score(v) for v in before) <= 4
    assert statistics.median(news2_score(v) for v in after) >= 7
    for key, change in ((HEART_RATE_BPM, 30), (RESPIRATION_RPM, 8), (BODY_TEMP_C, 1.5)):
        assert statistics.fmean(number(v, key) for v in after) > change + statistics.fmean(
            number(v, key) for v in before
        )
    assert statistics.fmean(number(v, SPO2_PCT) for v in after) < 91


@pytest.mark.parametrize(
    ("vitals", "score"),
    [
        ({}, 0),
        ({RESPIRATION_RPM: 16, SPO2_PCT: 97, SYSTOLIC_MMHG: 120, HEART_RATE_BPM: 70}, 0),
        ({RESPIRATION_RPM: 26, SPO2_PCT: 89, SYSTOLIC_MMHG: 92, HEART_RATE_BPM: 117}, 10),
        ({BODY_TEMP_C: 39.1, HEART_RATE_BPM: 131}, 5),
        ({RESPIRATION_RPM: 8, BODY_TEMP_C: 35.0}, 6),
    ],
)
def test_news2_score(vitals: dict[str, float], score: int) -> None:
    assert news2_score(vitals) == score
