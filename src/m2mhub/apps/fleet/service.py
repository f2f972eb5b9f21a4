"""The fleet service: trips, stops and events of every vehicle, computed as positions arrive.

It listens on the bus (the ``rules`` role runs it, beside the rules engine) for
``ReadingsStored`` of devices whose type has a fleet profile. Per vehicle:

1. It loads the stored :class:`~m2mhub.apps.fleet.trips.DetectorState` and its version.
2. When the batch's oldest reading is newer than the state, it feeds the detector the
   stored readings newer than the state (reading the store, not the event, so a batch a
   full bus queue dropped is picked up by the next). Otherwise the batch holds late data
   and the policy of :mod:`m2mhub.apps.fleet.trips` applies: replay from the newest
   checkpoint before it and replace the outputs numbered from that checkpoint on.
3. It saves the state, the outputs and the new checkpoints in one transaction,
   conditionally on the version it read. A lost save (another process moved the vehicle
   on) is retried from the stored state, so several processes can share the work.
4. Fleet events are recorded as device events ``fleet.<kind>`` (``fleet.overspeed``),
   which publishes them on the bus once, whichever process recorded them first.

A checkpoint is kept after each closed stop and at least every :data:`CHECKPOINT_EVERY_MS`
of data. A timer (one process at a time, under a lease) acts on vehicles that have been
silent on the wall clock: offline events, a trip ended by missing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from m2mhub.apps.fleet import storage
from m2mhub.apps.fleet.models import FleetEvent, Output, Stop
from m2mhub.apps.fleet.profiles import FleetProfile
from m2mhub.apps.fleet.settings import FleetSettings
from m2mhub.apps.fleet.trips import DetectorState, Reading, TripDetector, accepts
from m2mhub.bus import BusListener, Event, ReadingsStored
from m2mhub.connect.trackers.positions import (
    GPS_VALID,
    IGNITION,
    ODOMETER_M,
    POSITION_KEYS,
    RUNTIME_H,
)
from m2mhub.core.timeutil import now_ms
from m2mhub.store.models import Device

if TYPE_CHECKING:
    from m2mhub.platform import Platform

log = logging.getLogger(__name__)

#: The reading keys detection reads, besides a profile's ``fuel_key`` and ``engine_key``.
READING_KEYS: Final = POSITION_KEYS | {GPS_VALID, IGNITION, ODOMETER_M, RUNTIME_H}
#: A checkpoint at least this often in data time (6 h), also for vehicles that never stop.
CHECKPOINT_EVERY_MS: Final = 6 * 3_600_000
#: Attempts to save one batch before giving up on a vehicle other processes keep moving on.
SAVE_ATTEMPTS: Final = 10
#: Device event kinds are ``fleet.`` and the event kind (``fleet.ignition_on``).
EVENT_PREFIX: Final = "fleet."
#: How long loaded profiles and devices are used before they are read again.
PROFILES_TTL_S: Final = 10.0
TICK_LEASE: Final = "fleet-tick"


def reading_keys(settings: FleetSettings) -> list[str]:
    """The keys to read from the store for a vehicle with these settings."""
    return sorted({*READING_KEYS, settings.fuel_key, settings.engine_key})


class Run:
    """Readings fed to a detector, with the outputs and checkpoints they gave."""

    def __init__(
        self, settings: FleetSettings, state: DetectorState | None, checkpoint_ts: int | None
    ) -> None:
        self.detector = TripDetector(settings, state)
        self.outputs: list[Output] = []
        self.checkpoints: list[DetectorState] = []
        self._checkpoint_ts = checkpoint_ts

    def feed(self, readings: Sequence[Reading]) -> None:
        for ts, values in readings:
            out = self.detector.feed(ts, values)
            self.outputs.extend(out)
            due = self._checkpoint_ts is None or ts - self._checkpoint_ts >= CHECKPOINT_EVERY_MS
            if due or any(isinstance(o, Stop) for o in out):
                self.checkpoints.append(self.detector.snapshot())
                self._checkpoint_ts = ts


#: How often the service checks whether its bus queue dropped events (then catches up).
CATCH_UP_S: Final = 2.0


class FleetService:
    """Runs fleet detection for one process (with the ``rules`` role)."""

    def __init__(
        self,
        platform: Platform,
        *,
        clock: Callable[[], int] = now_ms,
        tick_s: float = 60.0,
    ) -> None:
        self.platform = platform
        self.store = platform.store
        self.clock = clock
        self.tick_s = tick_s
        self._errors = 0  # timer and given-up saves; the listener counts its own
        self.conflicts = 0  # saves lost to another process, each retried from its state
        self.replays = 0  # batches with late readings, replayed from a checkpoint
        self._profiles: dict[int, FleetProfile] = {}  # by type id
        self._devices: dict[int, Device] = {}
        self._not_vehicles: set[int] = set()  # device pks, until the profiles are read again
        self._loaded_at = -PROFILES_TTL_S
        self._lock = asyncio.Lock()
        self._listener = BusListener(
            platform.bus, self.handle, name="fleet", lock=self._lock, wants=self._wants
        )
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening on the bus and the timer."""
        await self._listener.start()
        self._tasks = [
            asyncio.create_task(self._every(self.tick_s), name="fleet-tick"),
            asyncio.create_task(self._catch_up_after_drops(), name="fleet-catch-up"),
        ]

    async def stop(self) -> None:
        """Finish what is queued (for up to 5 s), then stop; the state is in the store."""
        await self._listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def errors(self) -> int:
        """Batches, ticks and saves that failed in this process."""
        return self._errors + self._listener.errors

    async def drain(self) -> None:
        """Wait until every event published so far has been processed."""
        await self._listener.drain()

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                async with self._lock:
                    await self.tick()
            except Exception:
                self._errors += 1
                log.exception("fleet: tick failed")

    async def _catch_up_after_drops(self) -> None:
        seen = 0
        while True:
            await asyncio.sleep(CATCH_UP_S)
            dropped = self._listener.dropped
            if dropped == seen:
                continue
            seen = dropped
            # Once the queue is empty: the events still in it trigger their vehicles anyway,
            # and sweeping every vehicle while overloaded would only add to the load.
            await self._listener.drain()
            try:
                async with self._lock:
                    await self.catch_up()
            except Exception:
                self._errors += 1
                log.exception("fleet: catching up after dropped events failed")

    async def catch_up(self) -> int:
        """Bring every vehicle up to its stored readings; returns the outputs written.

        When processing falls behind, the bus queue drops its oldest events. Their readings
        are in the store, and a vehicle's next batch would pick them up, but a vehicle whose
        last batch was dropped may not send another for an hour (a tracker parked). So after
        drops, every vehicle is brought up to date from the store.
        """
        written = 0
        for profile in await storage.profiles(self.store):
            devices = await self.store.list_devices(
                profile.tenant_id, type_id=profile.type_id, limit=1_000_000
            )
            for device in devices:
                written += await self.process(device.pk)
        log.info("fleet: caught up after dropped bus events: %d outputs", written)
        return written

    # -- profiles and devices -----------------------------------------------------------

    async def profile_of(self, device_pk: int) -> tuple[Device, FleetProfile] | None:
        """The device and its type's fleet profile, None when it is not a vehicle."""
        if time.monotonic() - self._loaded_at > PROFILES_TTL_S:
            self._profiles = {p.type_id: p for p in await storage.profiles(self.store)}
            self._devices = {}
            self._not_vehicles = set()
            self._loaded_at = time.monotonic()
        found = await self._vehicle(device_pk)
        if found is None:
            self._not_vehicles.add(device_pk)
        return found

    async def _vehicle(self, device_pk: int) -> tuple[Device, FleetProfile] | None:
        if not self._profiles:
            return None
        device = self._devices.get(device_pk)
        if device is None:
            device = (await self.store.devices_by_pk([device_pk])).get(device_pk)
            if device is None:
                return None
            self._devices[device_pk] = device
        profile = self._profiles.get(device.type_id)
        return None if profile is None else (device, profile)

    # -- events -------------------------------------------------------------------------

    def _wants(self, event: Event) -> bool:
        """Whether to queue an event, asked as it is published: not the readings of a
        device found not to be a vehicle, until the profiles are read again."""
        if not isinstance(event, ReadingsStored):
            return False
        return (
            event.device_pk not in self._not_vehicles
            or time.monotonic() - self._loaded_at > PROFILES_TTL_S
        )

    async def handle(self, event: Event) -> None:
        """Process the readings of a vehicle."""
        if isinstance(event, ReadingsStored) and event.readings:
            await self.process(event.device_pk, min(ts for ts, _ in event.readings))

    async def process(self, device_pk: int, first_ts: int | None = None) -> int:
        """Bring a vehicle's trips, stops and events up to its stored readings.

        ``first_ts`` is the oldest reading that arrived (None: only newer readings); when
        the stored state is past it, the history is replayed from a checkpoint. Returns
        how many outputs were (re)written.
        """
        found = await self.profile_of(device_pk)
        if found is None:
            return 0
        device, profile = found
        settings = profile.settings
        keys = reading_keys(settings)
        for _ in range(SAVE_ATTEMPTS):
            saved = await storage.load_state(self.store, device_pk)
            state = saved.state if saved is not None else None
            version = saved.version if saved is not None else 0
            replay_after: int | None = None
            checkpoint_ts = saved.checkpoint_ts if saved is not None else None
            if first_ts is not None and not accepts(state, first_ts):
                state = await storage.checkpoint_before(self.store, device_pk, first_ts)
                replay_after = state.last_ts if state is not None else None
                replay_after = -1 if replay_after is None else replay_after
                checkpoint_ts = state.last_ts if state is not None else None
            after = state.last_ts if state is not None else None
            news = await storage.readings(self.store, device_pk, keys, after=after)
            if news and not accepts(state, news[0][0]):
                # Stored inside a silence a tick already acted on: replay as late data.
                first_ts = news[0][0]
                continue
            if not news and replay_after is None:
                return 0
            run = Run(settings, state, checkpoint_ts)
            run.feed(news)
            first_seq = state.emitted if state is not None else 0
            if await storage.save(
                self.store,
                device_pk,
                run.detector.snapshot(),
                version=version,
                outputs=run.outputs,
                first_seq=first_seq,
                checkpoints=run.checkpoints,
                replay_after=replay_after,
            ):
                if replay_after is not None:
                    self.replays += 1
                await self._announce(device, run.outputs)
                return len(run.outputs)
            self.conflicts += 1
        self._errors += 1
        log.error(
            "fleet: %s: other processes saved first %d times in a row; its readings wait "
            "for the next batch",
            device.id,
            SAVE_ATTEMPTS,
        )
        return 0

    async def tick(self, now: int | None = None) -> int:
        """Act on vehicles silent (on the wall clock) past their offline or gap limit.

        One process at a time does it (a lease); returns how many outputs it added.
        """
        now = self.clock() if now is None else now
        if not await self.store.try_lease(
            TICK_LEASE, self.platform.holder, int(self.tick_s * 3000)
        ):
            return 0
        states = await storage.all_states(self.store)
        devices = await self.store.devices_by_pk(list(states))
        added = 0
        for pk, (state, version) in states.items():
            found = await self.profile_of(pk)
            device = devices.get(pk)
            if found is None or device is None or state.last_ts is None:
                continue
            settings = found[1].settings
            limit = min(settings.offline_after_ms, settings.max_gap_ms)
            # Silence is measured by arrival: a tracker flushing an old buffer, or a
            # replay, is not silent while it sends.
            if device.last_seen_ms is not None and now - device.last_seen_ms <= limit:
                continue
            detector = TripDetector(settings, state)
            out = detector.tick(now)
            if not out:
                continue
            if await storage.save(
                self.store,
                pk,
                detector.snapshot(),
                version=version,
                outputs=out,
                first_seq=state.emitted,
            ):
                added += len(out)
                await self._announce(device, out)
            else:
                self.conflicts += 1  # the next tick looks again
        return added

    async def _announce(self, device: Device, outputs: Sequence[Output]) -> None:
        events = [
            (o.ts, f"{EVENT_PREFIX}{o.kind.value}", dict(o.values))
            for o in outputs
            if isinstance(o, FleetEvent)
        ]
        if events:
            # Stored once per (device, ts, kind): a replay that decides an event again
            # does not announce it twice.
            await self.platform.record_events(device, events)


__all__ = [
    "CHECKPOINT_EVERY_MS",
    "EVENT_PREFIX",
    "READING_KEYS",
    "FleetService",
    "Run",
    "reading_keys",
]
