"""Trips, stops and events of one vehicle, detected incrementally from its readings.

A vehicle is *in motion* at a reading when its ignition is on (once the device has
reported ignition and :attr:`~FleetSettings.use_ignition` is set) or else when its speed
is at least :attr:`~FleetSettings.motion_speed_kmh`. Speed is the reported one or, for
devices that report none, the filtered odometer's increase over the time since the
previous reading. From motion:

* Standing still inside a trip starts a *stop candidate*. Moving again before
  ``min_parking_ms`` keeps the trip (the halt is idle time of the trip); standing that long
  closes the trip at the candidate, where the stop begins.
* Moving inside a stop starts a *trip candidate*. It becomes a trip, beginning at the
  candidate, at the first moving reading where it has moved for ``min_trip_duration_ms``
  and covered ``min_trip_distance_m``; standing for ``min_parking_ms`` drops it and the
  stop goes on (a van shunted across the yard has not made a trip).
* Readings more than ``max_gap_ms`` apart: a trip ends at the last reading before the gap;
  a stop goes on when the vehicle is found within ``gap_stop_radius_m`` of where it stood,
  else it ends there too. Detection starts afresh after the gap.
* Stops shorter than ``min_parking_ms`` (only possible at the start of the data or next to a
  gap) are not reported.

Events: ignition on and off (a change of the reported value), overspeed (above the global
limit or a :class:`~m2mhub.apps.fleet.settings.SpeedZone`'s for ``min_overspeed_ms``),
idling (ignition on, standing, for ``idling_limit_ms``), fuel drop (while standing, the fuel
level ``fuel_drop`` below the highest level since the vehicle stopped) and offline (no data
for ``offline_after_ms``). An event's ``ts`` is the reading that established it; offline's
is the instant the silence passed the limit.

Incremental use and late data
-----------------------------
:class:`TripDetector` keeps all it knows in a :class:`DetectorState`, a msgspec Struct the
service stores (``msgspec.json.encode(detector.snapshot())``) and hands back after a
restart. Outputs come out in the order they are decided; ``state.emitted`` counts them, so
output number ``n`` of a device is the same whether the history was fed at once or in any
chunks. :func:`detect` over a whole history feeds the same detector, so it gives the same
outputs as any incremental run over the same readings.

A reading at or before the newest one fed (or inside a silence that :meth:`TripDetector.tick`
has already acted on) raises :class:`~m2mhub.apps.fleet.errors.LateReadingError`. The policy
for it, which the service carries out:

1. Store the reading with the rest of the history.
2. Take the newest checkpoint (a snapshot saved after an earlier feed) that
   :func:`accepts` the late timestamp; with none, start from no state.
3. Run ``detect(stored readings newer than checkpoint.last_ts, settings, state=checkpoint)``
   and replace the stored outputs numbered from ``checkpoint.emitted`` on by its outputs.

The result equals a batch run over the complete history (the tests check it). Keeping a
checkpoint per closed stop, a few a day, bounds the replay to a few hours of readings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import msgspec

from m2mhub.apps.fleet._values import Values, flag, number, position
from m2mhub.apps.fleet.errors import LateReadingError
from m2mhub.apps.fleet.models import Activity, EventKind, FleetEvent, Output, Stop, Trip
from m2mhub.apps.fleet.odometer import (
    EngineState,
    OdometerState,
    advance_engine,
    advance_odometer,
)
from m2mhub.apps.fleet.settings import FleetSettings
from m2mhub.connect.trackers.positions import IGNITION, ODOMETER_M, SPEED_KMH
from m2mhub.core.geo import haversine_m
from m2mhub.core.values import Value

#: A reading as the fleet app takes it: UTC milliseconds and the values at that instant.
Reading = tuple[int, Mapping[str, Value]]


class Phase(enum.StrEnum):
    """Where a detector stands."""

    NONE = "none"  # no reading yet
    STOP = "stop"
    TRIP = "trip"
    GAP = "gap"  # a trip was closed by silence; the next reading starts afresh


class Mark(msgspec.Struct):
    """A reading where a segment or a candidate begins."""

    ts: int
    lat: float | None
    lon: float | None
    odometer_m: float


class Tally(msgspec.Struct):
    """Time and top speed of a stretch of a trip."""

    driving_ms: int = 0
    idle_ms: int = 0
    max_speed_kmh: float = 0.0

    def merge(self, other: Tally) -> None:
        self.driving_ms += other.driving_ms
        self.idle_ms += other.idle_ms
        self.max_speed_kmh = max(self.max_speed_kmh, other.max_speed_kmh)


class DetectorState(msgspec.Struct):
    """Everything a :class:`TripDetector` knows about one vehicle; serialise with msgspec."""

    last_ts: int | None = None
    #: Readings at or before this are late: a tick acted on the silence up to it.
    sealed_until: int | None = None
    #: Outputs emitted so far; the number of the next one.
    emitted: int = 0
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float = 0.0
    ignition: bool | None = None
    is_moving: bool = False
    phase: Phase = Phase.NONE
    start: Mark | None = None
    #: A stop candidate inside a trip, a trip candidate inside a stop.
    pending: Mark | None = None
    #: Inside a stop with a trip candidate: since when the vehicle stands again.
    still_since: int | None = None
    tally: Tally = msgspec.field(default_factory=Tally)
    pending_tally: Tally = msgspec.field(default_factory=Tally)
    odometer: OdometerState = msgspec.field(default_factory=OdometerState)
    engine: EngineState = msgspec.field(default_factory=EngineState)
    overspeed_since: int | None = None
    is_overspeed_reported: bool = False
    idle_since: int | None = None
    is_idling_reported: bool = False
    fuel_reference: float | None = None
    is_offline_reported: bool = False


_STATE_DECODER = msgspec.msgpack.Decoder(DetectorState)
_STATE_ENCODER = msgspec.msgpack.Encoder()


def _copy(state: DetectorState) -> DetectorState:
    return _STATE_DECODER.decode(_STATE_ENCODER.encode(state))


def accepts(state: DetectorState | None, ts: int) -> bool:
    """True when a detector in ``state`` can take a reading at ``ts`` (it is not late)."""
    if state is None or state.last_ts is None:
        return True
    return ts > state.last_ts and (state.sealed_until is None or ts > state.sealed_until)


class Detection(msgspec.Struct, frozen=True):
    """What :func:`detect` found: the closed outputs, the final state, the open segment."""

    outputs: list[Output]
    state: DetectorState
    #: The trip or stop still going on at the last reading (provisional), if any.
    ongoing: Trip | Stop | None


class TripDetector:
    """Detects trips, stops and events of one vehicle, fed its readings in time order."""

    def __init__(self, settings: FleetSettings, state: DetectorState | None = None) -> None:
        self.settings = settings
        self._s = _copy(state) if state is not None else DetectorState()

    def snapshot(self) -> DetectorState:
        """A copy of the state: store it, or keep it as a checkpoint for late data."""
        return _copy(self._s)

    @property
    def odometer_m(self) -> float:
        """The vehicle's filtered odometer."""
        return self._s.odometer.total_m

    @property
    def speed_kmh(self) -> float:
        """The speed at the last reading, reported or derived."""
        return self._s.speed_kmh

    @property
    def engine_ms(self) -> float:
        """The vehicle's engine time."""
        return self._s.engine.total_ms

    @property
    def activity(self) -> Activity | None:
        """What the vehicle was doing at the last reading; None before the first."""
        s = self._s
        if s.last_ts is None:
            return None
        if s.is_moving:
            return Activity.DRIVING
        return Activity.IDLE if s.ignition else Activity.OFF

    def feed(self, ts: int, values: Values) -> list[Output]:
        """Take the next reading; return the trips, stops and events it closes or raises.

        Raises :class:`LateReadingError` for a reading this detector is past (see the
        module's policy for late data).
        """
        s, cfg = self._s, self.settings
        if not accepts(s, ts):
            raise LateReadingError(ts, max(s.last_ts or ts, s.sealed_until or ts))
        # Past the silence a tick acted on: the seal has done its work, and a batch run
        # (which never ticks) has none, so the states compare equal.
        s.sealed_until = None
        prev_ts = s.last_ts
        gap = ts - prev_ts if prev_ts is not None else None
        is_after_gap = gap is not None and gap > cfg.max_gap_ms
        prev = Mark(ts if prev_ts is None else prev_ts, s.lat, s.lon, s.odometer.total_m)

        reported_speed = number(values, SPEED_KMH)
        added = advance_odometer(
            s.odometer,
            ts,
            values,
            is_moving=None if reported_speed is None else reported_speed >= cfg.motion_speed_kmh,
            settings=cfg,
        )
        advance_engine(s.engine, ts, values, settings=cfg)
        fix = position(values)
        speed = reported_speed
        if speed is None:
            # Without a reported speed: the counted distance over the time (m/ms -> km/h),
            # where this reading can add distance; else the last speed holds.
            can_add = ODOMETER_M in values or (fix is not None and s.odometer.device_m is None)
            is_derived = gap is not None and gap > 0 and not is_after_gap and can_add
            speed = added * 3600 / gap if is_derived and gap else s.speed_kmh
        ignition = flag(values, IGNITION)
        is_ignition_on = ignition if ignition is not None else s.ignition
        is_moving = speed >= cfg.motion_speed_kmh
        is_motion = is_ignition_on if cfg.use_ignition and is_ignition_on is not None else is_moving

        out: list[Output] = []
        offline = (
            [self._offline_event()]
            if gap is not None and gap > cfg.offline_after_ms and not s.is_offline_reported
            else []
        )
        # Outputs of a silence come in the order of the instants that decide them (offline
        # at offline_after_ms, the gap at max_gap_ms), as tick() emits them.
        is_offline_first = cfg.offline_after_ms <= cfg.max_gap_ms
        if is_offline_first:
            out.extend(offline)
        if fix is not None:
            s.lat, s.lon = fix
        mark = Mark(ts, s.lat, s.lon, s.odometer.total_m)
        # A trip candidate's distance includes the step that set the vehicle moving.
        lead_m = 0.0 if is_after_gap else added

        if s.phase in (Phase.NONE, Phase.GAP):
            self._begin(mark)
        elif is_after_gap:
            self._close_for_gap(prev, mark, out)
        elif gap is not None:
            self._attribute(gap)
        if s.phase is Phase.TRIP:
            self._trip_step(mark, speed, is_motion, out)
        else:
            self._stop_step(mark, speed, is_motion, lead_m, out)
        if not is_offline_first:
            out.extend(offline)

        self._events(ts, values, ignition, is_ignition_on, speed, is_moving, is_after_gap, out)
        s.last_ts, s.speed_kmh, s.is_moving = ts, speed, is_moving
        s.is_offline_reported = False
        s.emitted += len(out)
        return out

    def tick(self, now_ms: int) -> list[Output]:
        """Act on silence up to ``now_ms``: raise ``offline``, end a trip after a data gap.

        The same outputs come from feeding the next reading once it arrives; readings from
        inside the silence become late (see the module's policy).
        """
        s, cfg = self._s, self.settings
        if s.last_ts is None or now_ms <= s.last_ts:
            return []
        out: list[Output] = []
        silence = now_ms - s.last_ts
        sealed = s.sealed_until or s.last_ts
        is_offline_first = cfg.offline_after_ms <= cfg.max_gap_ms
        if is_offline_first:
            sealed = self._tick_offline(silence, sealed, out)
        if silence > cfg.max_gap_ms and s.phase is Phase.TRIP:
            # Only trips: whether a stop goes on depends on where the next reading is.
            last = Mark(s.last_ts, s.lat, s.lon, s.odometer.total_m)
            self._close_for_gap(last, None, out)
            sealed = max(sealed, s.last_ts + cfg.max_gap_ms)
        if not is_offline_first:
            sealed = self._tick_offline(silence, sealed, out)
        if out:
            s.sealed_until = sealed
        s.emitted += len(out)
        return out

    def _tick_offline(self, silence: int, sealed: int, out: list[Output]) -> int:
        s = self._s
        assert s.last_ts is not None
        if silence <= self.settings.offline_after_ms or s.is_offline_reported:
            return sealed
        out.append(self._offline_event())
        s.is_offline_reported = True
        return max(sealed, s.last_ts + self.settings.offline_after_ms)

    def ongoing(self) -> Trip | Stop | None:
        """The trip or stop going on at the last reading, ended there (provisional)."""
        s = self._s
        if s.start is None or s.last_ts is None or s.phase not in (Phase.TRIP, Phase.STOP):
            return None
        last = Mark(s.last_ts, s.lat, s.lon, s.odometer.total_m)
        if s.phase is Phase.STOP:
            return _stop(s.start, last)
        tally = Tally(s.tally.driving_ms, s.tally.idle_ms, s.tally.max_speed_kmh)
        if s.pending is not None:
            return _trip(s.start, s.pending, tally)
        return _trip(s.start, last, tally)

    # -- segments ---------------------------------------------------------------------

    def _begin(self, mark: Mark) -> None:
        s = self._s
        s.phase, s.start, s.pending, s.still_since = Phase.STOP, mark, None, None
        s.tally, s.pending_tally = Tally(), Tally()

    def _close_for_gap(self, prev: Mark, mark: Mark | None, out: list[Output]) -> None:
        """End what a gap after ``prev`` interrupts; ``mark`` is the reading after it."""
        s, cfg = self._s, self.settings
        assert s.start is not None
        if s.phase is Phase.TRIP:
            out.append(_trip(s.start, s.pending or prev, s.tally))
            if mark is None:
                s.phase = Phase.GAP
            else:
                self._begin(mark)
            return
        is_near = (
            mark is None
            or mark.lat is None
            or prev.lat is None
            or prev.lon is None
            or mark.lon is None
            or haversine_m(prev.lat, prev.lon, mark.lat, mark.lon) <= cfg.gap_stop_radius_m
        )
        # A trip candidate cannot be confirmed across missing data.
        s.pending, s.still_since, s.pending_tally = None, None, Tally()
        if not is_near and mark is not None:
            self._emit_stop(s.start, prev, out)
            self._begin(mark)

    def _attribute(self, interval: int) -> None:
        """Count the time since the previous reading into the stretch it belongs to."""
        s = self._s
        if s.phase is Phase.TRIP or s.pending is not None:
            tally = s.pending_tally if s.pending is not None else s.tally
            if s.is_moving:
                tally.driving_ms += interval
            else:
                tally.idle_ms += interval

    def _trip_step(self, mark: Mark, speed: float, is_motion: bool, out: list[Output]) -> None:
        s = self._s
        assert s.start is not None
        if is_motion:
            if s.pending is not None:
                s.tally.merge(s.pending_tally)
                s.pending, s.pending_tally = None, Tally()
            s.tally.max_speed_kmh = max(s.tally.max_speed_kmh, speed)
            return
        if s.pending is None:
            s.pending, s.pending_tally = mark, Tally()
        else:
            s.pending_tally.max_speed_kmh = max(s.pending_tally.max_speed_kmh, speed)
        if mark.ts - s.pending.ts >= self.settings.min_parking_ms:
            out.append(_trip(s.start, s.pending, s.tally))
            self._begin(s.pending)

    def _stop_step(
        self, mark: Mark, speed: float, is_motion: bool, lead_m: float, out: list[Output]
    ) -> None:
        s, cfg = self._s, self.settings
        assert s.start is not None
        if not is_motion:
            if s.pending is not None:
                s.pending_tally.max_speed_kmh = max(s.pending_tally.max_speed_kmh, speed)
                s.still_since = s.still_since if s.still_since is not None else mark.ts
                if mark.ts - s.still_since >= cfg.min_parking_ms:
                    s.pending, s.still_since, s.pending_tally = None, None, Tally()
            return
        s.still_since = None
        if s.pending is None:
            s.pending = Mark(mark.ts, mark.lat, mark.lon, mark.odometer_m - lead_m)
            s.pending_tally = Tally(max_speed_kmh=speed)
        else:
            s.pending_tally.max_speed_kmh = max(s.pending_tally.max_speed_kmh, speed)
        if (
            mark.ts - s.pending.ts >= cfg.min_trip_duration_ms
            and mark.odometer_m - s.pending.odometer_m >= cfg.min_trip_distance_m
        ):
            self._emit_stop(s.start, s.pending, out)
            s.phase, s.start, s.tally = Phase.TRIP, s.pending, s.pending_tally
            s.pending, s.pending_tally = None, Tally()

    def _emit_stop(self, start: Mark, end: Mark, out: list[Output]) -> None:
        duration = end.ts - start.ts
        if duration > 0 and duration >= self.settings.min_parking_ms:
            out.append(_stop(start, end))

    # -- events -----------------------------------------------------------------------

    def _offline_event(self) -> FleetEvent:
        s = self._s
        assert s.last_ts is not None
        return FleetEvent(
            EventKind.OFFLINE,
            s.last_ts + self.settings.offline_after_ms,
            _where(s, {"last_seen_ts": s.last_ts}),
        )

    def _events(
        self,
        ts: int,
        values: Values,
        ignition: bool | None,
        is_ignition_on: bool | None,
        speed: float,
        is_moving: bool,
        is_after_gap: bool,
        out: list[Output],
    ) -> None:
        s, cfg = self._s, self.settings
        if ignition is not None:
            if s.ignition is not None and ignition != s.ignition:
                kind = EventKind.IGNITION_ON if ignition else EventKind.IGNITION_OFF
                out.append(FleetEvent(kind, ts, _where(s, {})))
            s.ignition = ignition
        if is_after_gap:
            s.overspeed_since, s.idle_since = None, None

        if s.lat is not None and s.lon is not None:
            limit = cfg.speed_limit(s.lat, s.lon)
        else:
            limit = None if cfg.overspeed_kmh is None else (float(cfg.overspeed_kmh), "")
        if limit is not None and speed > limit[0]:
            if s.overspeed_since is None:
                s.overspeed_since, s.is_overspeed_reported = ts, False
            if not s.is_overspeed_reported and ts - s.overspeed_since >= cfg.min_overspeed_ms:
                s.is_overspeed_reported = True
                data: dict[str, Value] = {
                    "speed_kmh": speed,
                    "limit_kmh": limit[0],
                    "zone": limit[1],
                    "start_ts": s.overspeed_since,
                }
                out.append(FleetEvent(EventKind.OVERSPEED, ts, _where(s, data)))
        else:
            s.overspeed_since = None

        if is_ignition_on and not is_moving:
            if s.idle_since is None:
                s.idle_since, s.is_idling_reported = ts, False
            if not s.is_idling_reported and ts - s.idle_since >= cfg.idling_limit_ms:
                s.is_idling_reported = True
                data = {"start_ts": s.idle_since}
                out.append(FleetEvent(EventKind.IDLING, ts, _where(s, data)))
        else:
            s.idle_since = None

        fuel = number(values, cfg.fuel_key)
        if cfg.fuel_drop is None or fuel is None:
            return
        if is_moving:
            # Levels while driving are consumption and sloshing; compare only standing.
            s.fuel_reference = None
        elif s.fuel_reference is None or fuel > s.fuel_reference:
            s.fuel_reference = fuel
        elif s.fuel_reference - fuel >= cfg.fuel_drop:
            data = {"from": s.fuel_reference, "to": fuel, "drop": s.fuel_reference - fuel}
            out.append(FleetEvent(EventKind.FUEL_DROP, ts, _where(s, data)))
            s.fuel_reference = fuel


def _where(state: DetectorState, data: dict[str, Value]) -> dict[str, Value]:
    if state.lat is not None and state.lon is not None:
        data["lat"], data["lon"] = state.lat, state.lon
    return data


def _trip(start: Mark, end: Mark, tally: Tally) -> Trip:
    duration = end.ts - start.ts
    distance = max(0.0, end.odometer_m - start.odometer_m)
    return Trip(
        start_ts=start.ts,
        end_ts=end.ts,
        start_lat=start.lat,
        start_lon=start.lon,
        end_lat=end.lat,
        end_lon=end.lon,
        distance_m=distance,
        duration_ms=duration,
        max_speed_kmh=tally.max_speed_kmh,
        avg_speed_kmh=distance * 3600 / duration if duration else 0.0,
        driving_ms=tally.driving_ms,
        idle_ms=tally.idle_ms,
        start_odometer_m=start.odometer_m,
        end_odometer_m=end.odometer_m,
    )


def _stop(start: Mark, end: Mark) -> Stop:
    return Stop(start.ts, end.ts, start.lat, start.lon, end.ts - start.ts)


def in_time_order(readings: Iterable[Reading]) -> list[tuple[int, dict[str, Value]]]:
    """Readings sorted by time, those at the same instant merged (as the store keeps them).

    At one instant a later reading's value for a key wins, like a re-delivered message.
    """
    merged: dict[int, dict[str, Value]] = {}
    for ts, values in readings:
        merged.setdefault(ts, {}).update(values)
    return sorted(merged.items())


def detect(
    readings: Iterable[Reading],
    settings: FleetSettings,
    *,
    state: DetectorState | None = None,
    now_ms: int | None = None,
) -> Detection:
    """Trips, stops and events over a history of readings, in any order.

    With ``state`` (a checkpoint) detection continues from it and readings at or before
    its ``last_ts`` are skipped as already counted. With ``now_ms`` the silence after the
    last reading is acted on as :meth:`TripDetector.tick` does.
    """
    detector = TripDetector(settings, state)
    outputs: list[Output] = []
    last_ts = state.last_ts if state is not None else None
    for ts, values in in_time_order(readings):
        if last_ts is None or ts > last_ts:
            outputs.extend(detector.feed(ts, values))
    if now_ms is not None:
        outputs.extend(detector.tick(now_ms))
    return Detection(outputs, detector.snapshot(), detector.ongoing())


__all__ = [
    "Detection",
    "DetectorState",
    "Reading",
    "TripDetector",
    "accepts",
    "detect",
    "in_time_order",
]
