"""Industrial machines (a motor driving a fan or a pump) whose bearing wears toward failure."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Final, Literal

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import DAY_MS, SimModel, approach, in_hours, relax
from m2mhub.sim.keys import CURRENT_A, RUNNING, TEMPERATURE_C, VIBRATION_MM_S

Positive = Annotated[float, msgspec.Meta(gt=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]

# ISO 10816-3 vibration severity (RMS velocity, 10-1000 Hz), machines of group 2
# (15-300 kW) on flexible foundations: zone boundaries A/B, B/C and C/D in mm/s.
ZONE_B_MM_S: Final = 2.3  # "acceptable for unrestricted long-term operation" below
ZONE_C_MM_S: Final = 4.5  # unsatisfactory for long-term operation: plan maintenance
ZONE_D_MM_S: Final = 7.1  # severe enough to cause damage
# The exponential rise spans this many time constants from the origin to failure, so
# vibration is flat for the first half of the time and crosses zone C about 20 % before
# failure: the P-F interval seen on rolling bearings.
_WEAR_SPAN: Final = 6.0
# Bearing temperature rise per mm/s of excess vibration (friction), K; current rise, fraction.
_FRICTION_K: Final = 3.0
_FRICTION_CURRENT: Final = 0.015


class MachineParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`Machine` (see its docstring)."""

    rated_current_a: Positive = 40.0
    load_pct: Percent = 75.0
    duty: Literal["continuous", "shifts"] = "continuous"
    shift_hours: tuple[float, float] = (6.0, 22.0)
    ambient_c: float = 25.0
    full_load_rise_c: Positive = 40.0
    base_vibration_mm_s: Positive = 1.6
    failure_vibration_mm_s: Positive = 11.0
    degradation_days_to_failure: Positive | None = None

    def __post_init__(self) -> None:
        if self.failure_vibration_mm_s <= ZONE_D_MM_S:
            raise ValueError(f"failure_vibration_mm_s must exceed {ZONE_D_MM_S} (ISO zone D)")
        if self.base_vibration_mm_s >= ZONE_B_MM_S:
            raise ValueError(f"base_vibration_mm_s must be below {ZONE_B_MM_S} (a healthy machine)")


class Machine(SimModel[MachineParams]):
    """A motor-driven machine reporting vibration, bearing temperature, current and running.

    Healthy, it vibrates at ``base_vibration_mm_s`` (ISO 10816-3 zone A) with
    small load-dependent wander; current follows the load (``load_pct`` of
    ``rated_current_a``, running all the time or during ``shift_hours`` on
    weekdays with ``duty: shifts``) and the bearing warms toward ambient plus
    ``full_load_rise_c`` times the load, with a 30-minute time constant.

    Incident, ``degradation_days_to_failure``: a bearing defect grows so that
    the machine fails that many days after the origin. The excess vibration
    grows exponentially (flat for days, then faster and faster), crossing zone
    B (2.3 mm/s) about 40 % and zone C (4.5 mm/s, "plan maintenance") about
    20 % of the time before failure; friction raises the temperature and the
    current with it. At ``failure_vibration_mm_s`` the machine trips: running
    false, no current, cooling down. :meth:`repair` (a bearing change) makes
    it healthy again.
    """

    keys: ClassVar[tuple[str, ...]] = (VIBRATION_MM_S, TEMPERATURE_C, CURRENT_A, RUNNING)

    def _start(self, t_ms: int) -> None:
        p = self.params
        self.failed = False
        self.running = self._is_duty(t_ms)
        self._load = p.load_pct / 100
        self.temperature_c = p.ambient_c + (p.full_load_rise_c * self._load if self.running else 0)
        self._wander = 0.0
        days = p.degradation_days_to_failure
        self.fails_at_ms: int | None = None
        if days is not None:
            self.fails_at_ms = (self.origin_ms or t_ms) + int(days * DAY_MS)
            self._tau_ms = days * DAY_MS / _WEAR_SPAN
        self._update(t_ms)

    def repair(self) -> None:
        """A new bearing: wear and any failure are gone."""
        self.fails_at_ms = None
        self.failed = False

    def _is_duty(self, t_ms: int) -> bool:
        p = self.params
        if p.duty == "continuous":
            return True
        return not self.local.is_weekend(t_ms) and in_hours(self.local.hour(t_ms), *p.shift_hours)

    def _wear_mm_s(self, t_ms: int) -> float:
        """Excess vibration of the defect at ``t_ms``, reaching failure at ``fails_at_ms``."""
        if self.fails_at_ms is None:
            return 0.0
        p = self.params
        excess = p.failure_vibration_mm_s - p.base_vibration_mm_s
        return excess * math.exp(min(0.0, (t_ms - self.fails_at_ms) / self._tau_ms))

    def _vibration(self, t_ms: int) -> float:
        p = self.params
        if not self.running:
            return 0.1  # the floor and neighbouring machines
        return (
            (p.base_vibration_mm_s + self._wear_mm_s(t_ms))
            * (1 + self._wander)
            * (0.7 + 0.3 * self._load / max(0.01, p.load_pct / 100))
        )

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        rng = self.process
        if self.fails_at_ms is not None and t_ms >= self.fails_at_ms:
            self.failed = True
        self.running = not self.failed and self._is_duty(t_ms)
        mean_load = p.load_pct / 100
        self._load = min(1.1, max(0.0, relax(self._load, mean_load, 0.06, 900, dt_s, rng)))
        self._wander = relax(self._wander, 0.0, 0.04, 3600, dt_s, rng)
        self._update(t_ms)
        target = p.ambient_c
        if self.running:
            target += p.full_load_rise_c * self._load + _FRICTION_K * self._excess()
        self.temperature_c = approach(self.temperature_c, target, 1800, dt_s)

    def _excess(self) -> float:
        return max(0.0, self.vibration_mm_s - self.params.base_vibration_mm_s)

    def _update(self, t_ms: int) -> None:
        """Vibration and current from the wear, the load and whether it runs."""
        p = self.params
        self.vibration_mm_s = self._vibration(t_ms)
        self.current_a = 0.0
        if self.running:
            # A motor draws about a third of rated current unloaded (magnetising current).
            share = 0.3 + 0.7 * self._load
            self.current_a = p.rated_current_a * share * (1 + _FRICTION_CURRENT * self._excess())

    def _read(self, ts_ms: int) -> dict[str, Value]:
        rng = self.noise
        vibration = max(0.0, self.vibration_mm_s * (1 + rng.gauss(0, 0.03)))
        current = self.current_a * (1 + rng.gauss(0, 0.01)) if self.running else 0.0
        return {
            VIBRATION_MM_S: round(vibration, 2),
            TEMPERATURE_C: round(self.temperature_c + rng.gauss(0, 0.2), 1),
            CURRENT_A: round(current, 1),
            RUNNING: self.running,
        }
