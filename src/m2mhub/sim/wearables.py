"""Wearables on patients: heart rate, SpO2, respiration, temperature, blood pressure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, ClassVar, Final

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import SimModel, relax, smoothstep
from m2mhub.sim.keys import (
    BODY_TEMP_C,
    DIASTOLIC_MMHG,
    HEART_RATE_BPM,
    RESPIRATION_RPM,
    SPO2_PCT,
    SYSTOLIC_MMHG,
)

Positive = Annotated[float, msgspec.Meta(gt=0)]

#: Change of each vital at full deterioration: the picture of sepsis or pneumonia
#: (tachycardia, tachypnoea, falling saturation, fever, hypotension).
DETERIORATION: Final = {
    HEART_RATE_BPM: 45.0,
    RESPIRATION_RPM: 12.0,
    SPO2_PCT: -8.0,
    BODY_TEMP_C: 2.2,
    SYSTOLIC_MMHG: -30.0,
    DIASTOLIC_MMHG: -20.0,
}


class WearableParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`Wearable` (see its docstring)."""

    heart_rate_bpm: Positive = 72.0
    spo2_pct: Annotated[float, msgspec.Meta(gt=50, le=100)] = 97.0
    respiration_rpm: Positive = 14.0
    body_temp_c: Annotated[float, msgspec.Meta(ge=34, le=42)] = 36.8
    systolic_mmhg: Positive = 122.0
    diastolic_mmhg: Positive = 78.0
    awake_hours: tuple[float, float] = (7.0, 22.5)
    bp_interval_min: Positive = 60.0
    deteriorates_after_h: float | None = None
    deterioration_hours: Positive = 12.0
    severity: Annotated[float, msgspec.Meta(ge=0, le=1.5)] = 1.0


class Wearable(SimModel[WearableParams]):
    """A patient's wearable monitor.

    Vitals sit at the baselines given, with circadian rhythms in local time
    (heart rate and blood pressure dip at night, body temperature is lowest
    around 04:00 and highest around 17:00), bouts of activity while awake
    (heart and breathing rates rise), and sensor noise. Blood pressure comes
    from a cuff: it is reported once every ``bp_interval_min``, the other
    reports carry no blood pressure keys.

    Incident, ``deteriorates_after_h``: from that many hours after the origin
    the patient deteriorates over ``deterioration_hours`` (an S-curve) toward
    :data:`DETERIORATION` times ``severity``: heart rate +45, respiration +12,
    SpO2 -8, temperature +2.2 °C, systolic -30 mmHg. With the default
    baselines the NEWS2 score goes from 0 to about 11 (urgent response from 7;
    see :func:`news2_score`).
    """

    keys: ClassVar[tuple[str, ...]] = (
        HEART_RATE_BPM,
        SPO2_PCT,
        RESPIRATION_RPM,
        BODY_TEMP_C,
        SYSTOLIC_MMHG,
        DIASTOLIC_MMHG,
    )

    def _start(self, t_ms: int) -> None:
        self._activity = 0.0  # 0 rest .. 1 brisk walk
        self._active_until_ms = 0
        self._drift = {key: 0.0 for key in self.keys}
        self._next_bp_ms = t_ms
        self.vitals: dict[str, float] = {}
        self._update(t_ms)

    def severity_at(self, t_ms: int) -> float:
        """How far the deterioration has gone at ``t_ms``, 0 (none) to ``severity``."""
        p = self.params
        if p.deteriorates_after_h is None:
            return 0.0
        hours = self.hours_since_origin(t_ms) - p.deteriorates_after_h
        return p.severity * smoothstep(hours / p.deterioration_hours)

    def _is_awake(self, t_ms: int) -> bool:
        start, end = self.params.awake_hours
        return start <= self.local.hour(t_ms) < end

    def _advance(self, t_ms: int, dt_s: float) -> None:
        rng = self.process
        awake = self._is_awake(t_ms) and self.severity_at(t_ms) < 0.5
        if t_ms >= self._active_until_ms:
            self._activity = 0.0
            if awake and rng.random() < dt_s / 3600:  # about one bout an hour
                self._activity = rng.uniform(0.3, 1.0)
                self._active_until_ms = t_ms + int(rng.uniform(5, 30) * 60_000)
        for key in self._drift:
            self._drift[key] = relax(self._drift[key], 0.0, 1.0, 1800, dt_s, rng)
        self._update(t_ms)

    def _update(self, t_ms: int) -> None:
        p = self.params
        hour = self.local.hour(t_ms)
        # Circadian rhythms: a cosine peaking in the afternoon.
        day_wave = math.cos(2 * math.pi * (hour - 16) / 24)
        temp_wave = math.cos(2 * math.pi * (hour - 17) / 24)
        s = self.severity_at(t_ms)
        a = self._activity
        d = self._drift
        self.vitals = {
            HEART_RATE_BPM: p.heart_rate_bpm
            + 6 * day_wave
            + 35 * a
            + 3 * d[HEART_RATE_BPM]
            + DETERIORATION[HEART_RATE_BPM] * s,
            RESPIRATION_RPM: p.respiration_rpm
            + 0.8 * day_wave
            + 6 * a
            + 0.7 * d[RESPIRATION_RPM]
            + DETERIORATION[RESPIRATION_RPM] * s,
            SPO2_PCT: p.spo2_pct + 0.5 * d[SPO2_PCT] + DETERIORATION[SPO2_PCT] * s,
            BODY_TEMP_C: p.body_temp_c
            + 0.3 * temp_wave
            + 0.08 * d[BODY_TEMP_C]
            + DETERIORATION[BODY_TEMP_C] * s,
            SYSTOLIC_MMHG: p.systolic_mmhg
            + 8 * day_wave
            + 15 * a
            + 3 * d[SYSTOLIC_MMHG]
            + DETERIORATION[SYSTOLIC_MMHG] * s,
            DIASTOLIC_MMHG: p.diastolic_mmhg
            + 5 * day_wave
            + 6 * a
            + 2 * d[DIASTOLIC_MMHG]
            + DETERIORATION[DIASTOLIC_MMHG] * s,
        }

    def _read(self, ts_ms: int) -> dict[str, Value]:
        rng = self.noise
        v = self.vitals
        values: dict[str, Value] = {
            HEART_RATE_BPM: round(v[HEART_RATE_BPM] + rng.gauss(0, 2)),
            SPO2_PCT: min(100, round(v[SPO2_PCT] + rng.gauss(0, 0.7))),
            RESPIRATION_RPM: max(4, round(v[RESPIRATION_RPM] + rng.gauss(0, 0.8))),
            BODY_TEMP_C: round(v[BODY_TEMP_C] + rng.gauss(0, 0.05), 1),
        }
        if ts_ms >= self._next_bp_ms:
            interval = int(self.params.bp_interval_min * 60_000)
            self._next_bp_ms = ts_ms - ts_ms % interval + interval
            values[SYSTOLIC_MMHG] = round(v[SYSTOLIC_MMHG] + rng.gauss(0, 4))
            values[DIASTOLIC_MMHG] = round(v[DIASTOLIC_MMHG] + rng.gauss(0, 3))
        return values


def news2_score(vitals: Mapping[str, Value], *, on_oxygen: bool = False, alert: bool = True) -> int:
    """The NEWS2 score of a set of vitals (Royal College of Physicians, 2017; SpO2 scale 1).

    Missing vitals score 0. 5-6 asks for an urgent review, 7 or more for an
    emergency response.
    """

    def band(key: str, bands: tuple[tuple[float, int], ...], above: int) -> int:
        value = vitals.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return 0
        for upper, points in bands:
            if value <= upper:
                return points
        return above

    score = band(RESPIRATION_RPM, ((8, 3), (11, 1), (20, 0), (24, 2)), 3)
    score += band(SPO2_PCT, ((91, 3), (93, 2), (95, 1)), 0)
    score += band(SYSTOLIC_MMHG, ((90, 3), (100, 2), (110, 1), (219, 0)), 3)
    score += band(HEART_RATE_BPM, ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3)
    score += band(BODY_TEMP_C, ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2)
    score += 2 if on_oxygen else 0
    score += 0 if alert else 3
    return score
