"""What all models share: determinism by seed, the same state whatever the step."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from m2mhub.sim.base import AnyModel, LocalTime, device_rng
from m2mhub.sim.clock import SimClock, backfill_fleet
from m2mhub.sim.fleet import build_models, load_fleet
from m2mhub.sim.machines import Machine, MachineParams
from m2mhub.sim.meters import ElectricityMeter, MeterParams
from m2mhub.sim.stock import StockBin, StockParams
from m2mhub.sim.tank import Tank, TankParams
from m2mhub.sim.trackers import AssetTracker, TrackerParams
from m2mhub.sim.vehicles import Vehicle, VehicleParams
from m2mhub.sim.wearables import Wearable, WearableParams
from tests.sim.conftest import DAY, HOUR, MONDAY


def fleet_history(seed: int, days: float = 1) -> list[tuple[str, int, dict[str, Any]]]:
    fleet = load_fleet()
    models = build_models(fleet, seed, origin_ms=MONDAY)
    intervals = {device.id: device.report_interval_s * 1000 for device in fleet.devices}
    return list(backfill_fleet(models, intervals, MONDAY, MONDAY + int(days * DAY)))


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    first, again, other = fleet_history(7), fleet_history(7), fleet_history(8)
    assert first == again
    by_device: dict[str, list[Any]] = defaultdict(list)
    for device_id, ts, values in first:
        by_device[device_id].append((ts, values))
    other_by_device: dict[str, list[Any]] = defaultdict(list)
    for device_id, ts, values in other:
        other_by_device[device_id].append((ts, values))
    # A pump nobody switches on reports the same zeros whatever the seed.
    differing = {d for d in by_device if by_device[d] != other_by_device[d]}
    assert differing == set(by_device) - {"pump-north"}


def test_device_generators_do_not_depend_on_the_process() -> None:
    # String seeds are hashed with SHA-512, not with hash(): stable across runs.
    assert device_rng(42, "meter-001").getrandbits(32) == device_rng(42, "meter-001").getrandbits(
        32
    )
    assert device_rng(42, "meter-001").random() == 0.08280246744848663
    assert device_rng(42, "meter-001").random() != device_rng(42, "meter-002").random()


def _state(model: AnyModel) -> tuple[Any, ...]:
    """The physical state of a model (no measurement noise)."""
    if isinstance(model, ElectricityMeter):
        return model.energy_kwh, model.power_kw
    if isinstance(model, Vehicle):
        return model.odometer_m, model.fuel_l, model.leg, model.along_m, model.speed_ms
    if isinstance(model, AssetTracker):
        return model.runtime_h, model.battery_pct, model.position
    if isinstance(model, Machine):
        return model.vibration_mm_s, model.temperature_c, model.current_a
    if isinstance(model, Wearable):
        return tuple(model.vitals.values())
    if isinstance(model, StockBin):
        return model.weight_kg, model.refills
    assert isinstance(model, Tank)
    return (model.volume_m3,)


FACTORIES: dict[str, Callable[[], AnyModel]] = {
    "meter": lambda: ElectricityMeter(MeterParams(gaps_per_day=5, spike_at_h=3), origin_ms=MONDAY),
    "vehicle": lambda: Vehicle(
        VehicleParams(speeding_at_h=8, fuel_theft_at_h=20), origin_ms=MONDAY
    ),
    "tracker": lambda: AssetTracker(TrackerParams(leaves_site_at_h=20), origin_ms=MONDAY),
    "machine": lambda: Machine(MachineParams(degradation_days_to_failure=1.5), origin_ms=MONDAY),
    "wearable": lambda: Wearable(WearableParams(deteriorates_after_h=12), origin_ms=MONDAY),
    "stock": lambda: StockBin(StockParams(start_pct=40), origin_ms=MONDAY),
    "tank": lambda: Tank(TankParams(), origin_ms=MONDAY),
}


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(sorted(FACTORIES)),
    interval_ms=st.integers(min_value=10_000, max_value=3 * HOUR),
    offset_ms=st.integers(min_value=0, max_value=3 * HOUR),
)
def test_state_depends_on_device_time_not_on_the_report_interval(
    kind: str, interval_ms: int, offset_ms: int
) -> None:
    """Reporting every minute or every few hours, from the start or later: same physics."""
    end = MONDAY + DAY + 7 * HOUR  # a working day and the next morning: incidents included
    fine, coarse = FACTORIES[kind](), FACTORIES[kind]()
    for ts in range(MONDAY, end, 60_000):
        fine.step(ts)
    for ts in range(MONDAY + offset_ms, end, interval_ms):
        coarse.step(ts)
    fine.step(end)
    coarse.step(end)
    assert _state(coarse) == _state(fine)


def test_speed_factor_gives_the_same_device_history() -> None:
    wall = [1_000_000]
    slow = SimClock(1, MONDAY, wall=lambda: wall[0])
    fast = SimClock(60, MONDAY, wall=lambda: wall[0])
    a = Vehicle(VehicleParams(), rng=random.Random(3))
    b = Vehicle(VehicleParams(), rng=random.Random(3))
    # 12 h of device time: every 30 device seconds at speed 1, every 2 wall seconds at 60.
    readings_a = {}
    while slow.now_ms() < MONDAY + 12 * HOUR:
        readings_a[slow.now_ms()] = a.step(slow.now_ms())
        wall[0] += 30_000
    wall[0] = 1_000_000
    readings_b = {}
    while fast.now_ms() < MONDAY + 12 * HOUR:
        readings_b[fast.now_ms()] = b.step(fast.now_ms())
        wall[0] += 2_000
    assert len(readings_b) == 360 and len(readings_a) == 1440
    assert _state(a) == _state(b)


def test_local_time() -> None:
    paris = LocalTime("Europe/Paris")
    assert paris.hour(MONDAY) == 1.0  # CET in March before the change
    assert paris.weekday(MONDAY) == 0
    summer = MONDAY + 28 * DAY  # 30 March: CEST
    assert paris.hour(summer) == 2.0
    assert LocalTime().weekday(MONDAY - 1) == 6
