"""Smart electricity meters: household and commercial load profiles, a cumulative register."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Final, Literal

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import SimModel, relax, smoothstep
from m2mhub.sim.keys import ENERGY_KWH, POWER_KW, VOLTAGE_V

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Profile = Literal["household", "commercial"]

# (hour of the peak, width in hours, height relative to peak_kw): the morning and evening
# peaks of residential standard load profiles (e.g. BDEW H0), later and broader at weekends.
_HOUSEHOLD_WEEKDAY: Final = ((7.0, 1.0, 0.55), (12.5, 1.5, 0.2), (19.2, 1.8, 1.0))
_HOUSEHOLD_WEEKEND: Final = ((9.5, 1.5, 0.7), (13.0, 2.0, 0.45), (19.0, 2.0, 1.0))
_DEFAULTS: Final = {"household": (0.2, 0.9), "commercial": (4.0, 22.0)}  # (base_kw, peak_kw)


class MeterParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`ElectricityMeter` (see its docstring)."""

    profile: Profile = "household"
    base_kw: NonNegative | None = None
    peak_kw: NonNegative | None = None
    register_start_kwh: NonNegative | None = None
    rollover_at_kwh: Positive = 1_000_000.0
    spike_at_h: float | None = None
    spike_kw: float = 999.9
    gaps_per_day: NonNegative = 0.0
    gap_minutes: Positive = 45.0
    voltage_v: Positive = 230.0
    office_hours: tuple[float, float] = (8.0, 18.0)

    def __post_init__(self) -> None:
        start = self.register_start_kwh
        if start is not None and start >= self.rollover_at_kwh:
            raise ValueError("register_start_kwh: must be below rollover_at_kwh")


class ElectricityMeter(SimModel[MeterParams]):
    """A smart electricity meter reporting power, voltage and its kWh register.

    Load follows a profile in local time: ``household`` has a night base, a
    morning peak around 07:00, a small one at lunch and the largest in the
    evening, with a later morning and a busier midday at weekends, plus
    appliances (kettle, oven, washer) switching on at random, more often when
    people are active; about 11 kWh a day with the defaults. ``commercial`` is
    an office: a base load (servers, refrigeration) and HVAC and lighting that
    ramp up over ``office_hours`` on weekdays; about 340 kWh a weekday.
    ``base_kw`` and ``peak_kw`` scale the profile.

    The register counts from ``register_start_kwh`` (random when unset) and
    wraps to zero at ``rollover_at_kwh``, like a register with a fixed number
    of digits. Incidents:

    - ``rollover_at_kwh`` with ``register_start_kwh`` just below it: the
      register rolls over to zero (consumption is ``new + rollover - old``);
    - ``spike_at_h``: the first report at or after that many hours from the
      origin carries ``power_kw = spike_kw``, a corrupted value (the register
      is unaffected);
    - ``gaps_per_day``: the meter goes silent (``step`` returns ``{}``) about
      that often, for ``gap_minutes`` on average; the register keeps counting,
      so the report after a gap shows the energy used meanwhile.
    """

    keys: ClassVar[tuple[str, ...]] = (POWER_KW, ENERGY_KWH, VOLTAGE_V)

    def _start(self, t_ms: int) -> None:
        p = self.params
        default_base, default_peak = _DEFAULTS[p.profile]
        self.base_kw = default_base if p.base_kw is None else p.base_kw
        self.peak_kw = default_peak if p.peak_kw is None else p.peak_kw
        if p.register_start_kwh is not None:
            self.energy_kwh = p.register_start_kwh
        else:
            high = 30_000.0 if p.profile == "household" else 400_000.0
            self.energy_kwh = self.process.uniform(0.1, 0.9) * min(high, p.rollover_at_kwh)
        self._variation = 1.0  # slow multiplicative wander of the load
        self._appliances: list[tuple[int, float]] = []  # (until_ms, kW)
        self._gap_until_ms = 0
        self.spiked = False
        self.power_kw = self._demand(t_ms)

    def _shape(self, t_ms: int) -> float:
        hour = self.local.hour(t_ms)
        weekend = self.local.is_weekend(t_ms)
        if self.params.profile == "commercial":
            if weekend:
                return 0.05
            start, end = self.params.office_hours
            # HVAC starts two hours before the office opens and runs on two hours after.
            ramp_up = smoothstep((hour - start + 2) / 2)
            ramp_down = smoothstep((end + 2 - hour) / 2)
            return 0.05 + 0.95 * ramp_up * ramp_down
        peaks = _HOUSEHOLD_WEEKEND if weekend else _HOUSEHOLD_WEEKDAY
        return sum(h * math.exp(-((hour - c) ** 2) / (2 * w * w)) for c, w, h in peaks)

    def _demand(self, t_ms: int) -> float:
        appliances = sum(kw for until, kw in self._appliances if until > t_ms)
        profile = (self.base_kw + self.peak_kw * self._shape(t_ms)) * self._variation
        return max(0.02, profile + appliances)

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        rng = self.process
        sigma = 0.25 if p.profile == "household" else 0.08
        self._variation = max(0.3, relax(self._variation, 1.0, sigma, 1800, dt_s, rng))
        if p.profile == "household":
            self._appliances = [a for a in self._appliances if a[0] > t_ms]
            # About four appliance runs a day, most when people are up.
            rate_per_s = (0.05 + 0.25 * self._shape(t_ms)) / 3600
            if rng.random() < rate_per_s * dt_s:
                minutes = rng.uniform(3, 40)
                self._appliances.append((t_ms + int(minutes * 60_000), rng.uniform(1.0, 2.2)))
        gap_chance = p.gaps_per_day * dt_s / 86_400
        if p.gaps_per_day > 0 and t_ms >= self._gap_until_ms and rng.random() < gap_chance:
            minutes = max(5.0, rng.expovariate(1 / p.gap_minutes))
            self._gap_until_ms = t_ms + int(minutes * 60_000)
        self.power_kw = self._demand(t_ms)
        self.energy_kwh = (self.energy_kwh + self.power_kw * dt_s / 3600) % p.rollover_at_kwh

    def _read(self, ts_ms: int) -> dict[str, Value]:
        p = self.params
        if ts_ms < self._gap_until_ms:
            return {}
        power = self.power_kw * (1 + self.noise.gauss(0, 0.005))
        if not self.spiked and self._is_due(p.spike_at_h, ts_ms):
            self.spiked = True
            power = p.spike_kw
        return {
            POWER_KW: round(power, 3),
            ENERGY_KWH: round(self.energy_kwh, 3),
            VOLTAGE_V: round(p.voltage_v + self.noise.gauss(0, 1.5), 1),
        }
