"""The distance a vehicle covered and the hours its engine ran, from its readings.

Distance:

* When the device reports its own odometer (``odometer_m``), that is preferred: the
  total starts at its value in the first reading (if that carries it) and each reading adds
  the increase since the previous one. A decrease (the counter was reset, the
  tracker replaced) or an increase faster than ``max_speed_kmh`` (the counter was set to
  the dashboard value) adds nothing and counting goes on from the new value, so the total
  never jumps. Readings without the key add nothing once the device has reported it.
* Otherwise the distance is summed from GPS fixes with :func:`m2mhub.core.geo.haversine_m`
  (within 0.5 % of the WGS 84 ellipsoid). A parked vehicle's fixes wander by metres, so
  while the reading is not moving a fix adds distance only once it lies ``jitter_m`` or
  more from the last counted one; this loses at most ``jitter_m`` per stop. A fix that
  would mean moving faster than ``max_speed_kmh`` from the last accepted fix is refused.

Engine hours prefer the device's counter (``runtime_h``) the same way, and otherwise add
the time between two readings while the engine input (ignition by default) was on, unless
the readings are more than ``max_gap_ms`` apart (what happened then is not known).

The state is a plain msgspec Struct, serialisable, and advanced in time order. A GPS-only
vehicle's total starts at 0; set ``total_m`` of a fresh state to its dashboard reading to
follow it.
"""

from __future__ import annotations

import msgspec

from m2mhub.apps.fleet._values import Values, flag, number, position
from m2mhub.apps.fleet.settings import FleetSettings
from m2mhub.connect.trackers.positions import ODOMETER_M, RUNTIME_H
from m2mhub.core.geo import haversine_m

_MS_PER_HOUR = 3_600_000


class OdometerState(msgspec.Struct):
    """Where distance counting stands: total, last counted fix, last device value."""

    total_m: float = 0.0
    # The last fix distance was counted to (moves only when distance is added).
    anchor_lat: float | None = None
    anchor_lon: float | None = None
    # The last accepted fix, for the impossible-jump check.
    fix_ts: int | None = None
    fix_lat: float | None = None
    fix_lon: float | None = None
    device_m: float | None = None
    device_ts: int | None = None
    is_started: bool = False


class EngineState(msgspec.Struct):
    """Where engine-hour counting stands."""

    total_ms: float = 0.0
    is_on: bool | None = None
    last_ts: int | None = None
    counter_h: float | None = None
    counter_ts: int | None = None


def advance_odometer(
    state: OdometerState,
    ts: int,
    values: Values,
    *,
    is_moving: bool | None,
    settings: FleetSettings,
) -> float:
    """Count one reading into ``state``; return the metres it added.

    ``is_moving`` is whether the reading's reported speed is at or above the motion speed
    (None when it reported none): a moving fix is counted in full, a standing one only
    beyond ``jitter_m``.
    """
    is_first, state.is_started = not state.is_started, True
    device = number(values, ODOMETER_M)
    if device is not None and device >= 0:
        added = 0.0
        if is_first and state.total_m == 0:
            # The first reading: take the vehicle's odometer as it stands.
            state.total_m = device
        elif state.device_m is not None and state.device_ts is not None:
            step = device - state.device_m
            hours = (ts - state.device_ts) / _MS_PER_HOUR
            if step > 0 and hours > 0 and step / 1000 / hours <= settings.max_speed_kmh:
                added = step
        state.device_m, state.device_ts = device, ts
        state.total_m += added
        return added
    if state.device_m is not None:
        return 0.0
    fix = position(values)
    if fix is None:
        return 0.0
    lat, lon = fix
    if (
        state.fix_ts is None
        or state.fix_lat is None
        or state.fix_lon is None
        or state.anchor_lat is None
        or state.anchor_lon is None
    ):
        state.fix_ts, state.fix_lat, state.fix_lon = ts, lat, lon
        state.anchor_lat, state.anchor_lon = lat, lon
        return 0.0
    hours = (ts - state.fix_ts) / _MS_PER_HOUR
    step_m = haversine_m(state.fix_lat, state.fix_lon, lat, lon)
    if hours <= 0 or step_m / 1000 / hours > settings.max_speed_kmh:
        return 0.0
    state.fix_ts, state.fix_lat, state.fix_lon = ts, lat, lon
    from_anchor = haversine_m(state.anchor_lat, state.anchor_lon, lat, lon)
    if is_moving or from_anchor >= settings.jitter_m:
        state.anchor_lat, state.anchor_lon = lat, lon
        state.total_m += from_anchor
        return from_anchor
    return 0.0


def advance_engine(
    state: EngineState, ts: int, values: Values, *, settings: FleetSettings
) -> float:
    """Count one reading into ``state``; return the engine milliseconds it added."""
    added = 0.0
    counter = number(values, RUNTIME_H)
    if counter is not None and counter >= 0:
        if state.counter_h is not None and state.counter_ts is not None:
            step_ms = (counter - state.counter_h) * _MS_PER_HOUR
            # A counter cannot run faster than the clock (give or take its resolution, an
            # hour at worst): anything else is a reset or the counter being set.
            if 0 < step_ms <= ts - state.counter_ts + _MS_PER_HOUR:
                added = step_ms
        state.counter_h, state.counter_ts = counter, ts
    elif (
        state.counter_h is None
        and state.is_on
        and state.last_ts is not None
        and ts - state.last_ts <= settings.max_gap_ms
    ):
        added = float(ts - state.last_ts)
    is_on = flag(values, settings.engine_key)
    if is_on is not None:
        state.is_on = is_on
    state.last_ts = ts
    state.total_ms += added
    return added


__all__ = ["EngineState", "OdometerState", "advance_engine", "advance_odometer"]
