"""Small physical models of devices: each step returns the values a device would report."""

from __future__ import annotations

import math
import random
from typing import Protocol

from m2mhub.core.values import Value

_DAY_S = 86_400.0


class DeviceModel(Protocol):
    """Produces the next report of a simulated device at time ``ts`` (ms)."""

    def step(self, ts: int) -> dict[str, Value]: ...


class Meter:
    """An electricity meter: a household daily load curve, a cumulative kWh register."""

    def __init__(self, rng: random.Random, *, base_kw: float = 0.4, peak_kw: float = 2.5) -> None:
        self.rng = rng
        self.base_kw = base_kw
        self.peak_kw = peak_kw
        self.energy_kwh = rng.uniform(1000, 20000)
        self.last_ts: int | None = None

    def power_kw(self, ts: int) -> float:
        hour = (ts / 1000 % _DAY_S) / 3600
        # Morning and evening peaks, as in standard household load profiles.
        shape = math.exp(-((hour - 7.5) ** 2) / 2) * 0.6 + math.exp(-((hour - 19) ** 2) / 3)
        return max(0.05, self.base_kw + self.peak_kw * shape + self.rng.gauss(0, 0.08))

    def step(self, ts: int) -> dict[str, Value]:
        power = self.power_kw(ts)
        if self.last_ts is not None:
            self.energy_kwh += power * (ts - self.last_ts) / 3_600_000
        self.last_ts = ts
        voltage = 230 + self.rng.gauss(0, 1.5)
        return {
            "power_kw": round(power, 3),
            "energy_kwh": round(self.energy_kwh, 4),
            "voltage_v": round(voltage, 1),
        }


class EnvironmentSensor:
    """A room sensor: temperature with a daily swing, humidity, a door contact."""

    def __init__(self, rng: random.Random, *, mean_c: float = 21.0) -> None:
        self.rng = rng
        self.mean_c = mean_c

    def step(self, ts: int) -> dict[str, Value]:
        phase = 2 * math.pi * (ts / 1000 % _DAY_S) / _DAY_S
        temp = self.mean_c + 1.5 * math.sin(phase - math.pi / 2) + self.rng.gauss(0, 0.1)
        return {
            "temperature_c": round(temp, 2),
            "humidity_pct": round(45 + 8 * math.sin(phase) + self.rng.gauss(0, 0.5), 1),
            "door_open": self.rng.random() < 0.05,
        }


class TankLevel:
    """A water tank drained by consumption and refilled by a pump below 20 %."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.level = rng.uniform(40, 90)
        self.pump_on = False

    def step(self, ts: int) -> dict[str, Value]:
        self.level -= self.rng.uniform(0.2, 0.8)
        if self.level < 20:
            self.pump_on = True
        if self.pump_on:
            self.level += 2.5
            if self.level > 90:
                self.pump_on = False
        self.level = min(100.0, max(0.0, self.level))
        return {"level_pct": round(self.level, 1), "pump": "on" if self.pump_on else "off"}
