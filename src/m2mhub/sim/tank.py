"""A water tank and the pump that fills it: the classic M2M control loop.

The models do not close the loop: a platform rule reads ``level_pct`` and
sends the pump a command (or a desired state) that calls :meth:`Pump.set`.
"""

from __future__ import annotations

import bisect
import math
from typing import Annotated, ClassVar, Final

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import SimModel, relax
from m2mhub.sim.keys import CURRENT_A, FLOW_M3_H, LEVEL_PCT, PUMP

Positive = Annotated[float, msgspec.Meta(gt=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]

# Hourly water demand relative to the daily mean: low at night, peaks at breakfast
# and in the evening (a typical municipal diurnal pattern).
_DEMAND_BY_HOUR: Final = (
    0.45, 0.4, 0.35, 0.35, 0.4, 0.6, 1.1, 1.6, 1.5, 1.2, 1.1, 1.1,
    1.2, 1.1, 1.0, 1.0, 1.1, 1.3, 1.5, 1.45, 1.2, 0.9, 0.7, 0.5,
)  # fmt: skip


class PumpParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`Pump` (see its docstring)."""

    flow_m3_h: Positive = 12.0
    rated_current_a: Positive = 16.0
    starts_on: bool = False


class Pump(SimModel[PumpParams]):
    """A pump delivering ``flow_m3_h`` into a tank while it is on.

    It is switched only from outside: :meth:`set` is what a ``set_pump``
    command or a desired ``pump`` state calls. It reports ``pump`` (on or
    off), the flow and the motor current.
    """

    keys: ClassVar[tuple[str, ...]] = (PUMP, FLOW_M3_H, CURRENT_A)

    def _setup(self) -> None:
        self._switch_ms: list[int] = []  # device times of the switches, in order
        self._switch_on: list[bool] = []
        self._last_ms: int | None = None

    def set(self, on: bool, *, at_ms: int | None = None) -> dict[str, Value]:
        """Switch the pump at device time ``at_ms`` (default: its last report); returns its state.

        A switch earlier than one already recorded is moved to that one's time,
        so the history stays in order.
        """
        at = at_ms if at_ms is not None else (self._last_ms or 0)
        if self._switch_ms:
            at = max(at, self._switch_ms[-1])
        self._switch_ms.append(at)
        self._switch_on.append(bool(on))
        return {PUMP: bool(on)}

    def is_on_at(self, t_ms: int) -> bool:
        """Whether the pump runs at device time ``t_ms``."""
        i = bisect.bisect_right(self._switch_ms, t_ms)
        return self._switch_on[i - 1] if i else self.params.starts_on

    @property
    def is_on(self) -> bool:
        return self._switch_on[-1] if self._switch_on else self.params.starts_on

    def _start(self, t_ms: int) -> None:
        self._load = 1.0

    def _advance(self, t_ms: int, dt_s: float) -> None:
        self._load = relax(self._load, 1.0, 0.02, 600, dt_s, self.process)

    def _read(self, ts_ms: int) -> dict[str, Value]:
        self._last_ms = ts_ms
        on = self.is_on_at(ts_ms)
        flow = self.params.flow_m3_h * self._load if on else 0.0
        current = self.params.rated_current_a * self._load if on else 0.0
        rng = self.noise
        return {
            PUMP: on,
            FLOW_M3_H: round(max(0.0, flow + rng.gauss(0, 0.1) * on), 2),
            CURRENT_A: round(max(0.0, current + rng.gauss(0, 0.1) * on), 1),
        }


class TankParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`Tank` (see its docstring)."""

    capacity_m3: Positive = 50.0
    start_pct: Percent = 60.0
    demand_m3_h: Annotated[float, msgspec.Meta(ge=0)] = 4.0
    pump: str | None = None


class Tank(SimModel[TankParams]):
    """A water tank with a level sensor, drained by consumption, filled by its pump.

    Demand averages ``demand_m3_h`` over a day, low at night and peaking in
    the morning and evening, with random variation. While the pump named by
    ``pump`` (a device of model ``pump``, attached with :meth:`attach`) is on,
    its flow fills the tank; a full tank overflows, an empty one stays empty.
    With the defaults (50 m³, 4 m³/h demand, a 12 m³/h pump) the tank takes
    about 9 hours to drain from 90 % to 20 % and about 4.5 hours to refill.
    """

    keys: ClassVar[tuple[str, ...]] = (LEVEL_PCT,)

    def _setup(self) -> None:
        self.pump: Pump | None = None

    def attach(self, pump: Pump) -> None:
        """Connect the pump whose flow fills this tank."""
        self.pump = pump

    def _start(self, t_ms: int) -> None:
        self.volume_m3 = self.params.capacity_m3 * self.params.start_pct / 100
        self._variation = 1.0

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        hour = self.local.hour(t_ms)
        self._variation = max(0.0, relax(self._variation, 1.0, 0.2, 1200, dt_s, self.process))
        demand = p.demand_m3_h * _DEMAND_BY_HOUR[math.floor(hour) % 24] * self._variation
        inflow = 0.0
        if self.pump is not None and self.pump.is_on_at(t_ms):
            inflow = self.pump.params.flow_m3_h
        self.volume_m3 += (inflow - demand) * dt_s / 3600
        self.volume_m3 = min(p.capacity_m3, max(0.0, self.volume_m3))

    @property
    def level_pct(self) -> float:
        return 100 * self.volume_m3 / self.params.capacity_m3

    def _read(self, ts_ms: int) -> dict[str, Value]:
        # Ultrasonic level sensors: about 0.2 % of range of noise.
        level = self.level_pct + self.noise.gauss(0, 0.2)
        return {LEVEL_PCT: round(min(100.0, max(0.0, level)), 1)}
