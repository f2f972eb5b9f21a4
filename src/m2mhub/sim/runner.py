"""Runs a simulated fleet against m2mhub, each device over its own transport.

An MQTT device is a :class:`m2mhub.device.DeviceClient` of its own: it connects with
its id and token, sends its model's readings at its report interval, and handles the
commands its model understands (a pump's ``set_pump``). An HTTP device posts its
readings to the device API with its token (:class:`HttpDevice`). History can be
backfilled first, and device time can run faster than the wall clock (:class:`LiveClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import now_ms
from m2mhub.device import DeviceClient, PayloadError
from m2mhub.sim.base import AnyModel
from m2mhub.sim.clock import SimClock, backfill
from m2mhub.sim.fleet import Fleet, FleetDevice
from m2mhub.sim.tank import Pump
from m2mhub.sim.teltonika import TeltonikaDevice

log = logging.getLogger(__name__)

#: How long a stopping device may take to have its last readings acknowledged.
FLUSH_TIMEOUT_S: Final = 5.0


class LiveClock:
    """Device time for a live fleet: ``speed`` times faster, never ahead of the wall clock.

    At a speed above 1 it starts ``lead_ms`` in the past and runs fast until it
    reaches the present, then keeps pace with the wall clock. Timestamps are then
    always plausible (none in the future), and a day of device time, with the
    incidents it holds, passes in ``lead_ms / speed``.
    """

    def __init__(self, speed: float = 1.0, *, lead_ms: int = 0) -> None:
        self.speed = speed
        self._sim = SimClock(speed, now_ms() - lead_ms if speed > 1 else None)
        self.start_ms = self._sim.start_ms

    @property
    def is_fast(self) -> bool:
        """True while device time still catches up with the wall clock."""
        return self._sim.now_ms() < now_ms()

    def now_ms(self) -> int:
        return min(self._sim.now_ms(), now_ms())

    def wall_seconds(self, device_ms: int) -> float:
        """How long ``device_ms`` of device time lasts on the wall clock now."""
        return self._sim.wall_seconds(device_ms) if self.is_fast else device_ms / 1000


class HttpDevice:
    """A device that posts to ``/api/v1/devices/{id}/telemetry``, keeping what failed.

    Readings are queued and posted as a batch (original timestamps kept); a post
    that fails leaves them queued for the next one, as a device's store-and-forward
    would (docs/devices.md#store-and-forward).
    """

    #: The most readings in one post (the platform's default limit is 10,000).
    BATCH: Final = 1000

    def __init__(self, client: httpx.AsyncClient, device_id: str, token: str) -> None:
        self.client = client
        self.device_id = device_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.queued: list[dict[str, Any]] = []
        self.acknowledged = 0

    async def send(self, values: Mapping[str, Any], *, ts: int) -> None:
        self.queued.append({"ts": ts, "values": dict(values)})
        if len(self.queued) >= self.BATCH:
            await self.flush()

    async def close(self) -> None:
        """Nothing of its own to close: the HTTP client is the runner's."""

    async def flush(self) -> None:
        while self.queued:
            batch = self.queued[: self.BATCH]
            try:
                response = await self.client.post(
                    f"/api/v1/devices/{self.device_id}/telemetry",
                    json=batch,
                    headers=self.headers,
                )
            except httpx.HTTPError as exc:
                log.warning("%s: %s", self.device_id, exc)
                return
            if response.status_code != 200:
                log.warning("%s: HTTP %s %s", self.device_id, response.status_code, response.text)
                return
            del self.queued[: len(batch)]
            self.acknowledged += len(batch)


@dataclass
class DeviceTally:
    """What one simulated device handed to its client, and what became of it."""

    reports: int = 0
    failed: int = 0  # refused by the SDK's checks, dropped, or still unacknowledged at stop


class FleetRunner:
    """Runs every device of a fleet until cancelled."""

    def __init__(
        self,
        fleet: Fleet,
        models: Mapping[str, AnyModel],
        tokens: Mapping[str, str],
        *,
        host: str,
        port: int,
        clock: LiveClock,
        backfill_ms: int = 0,
        interval_s: float | None = None,
        http_url: str | None = None,
        teltonika: tuple[str, int] | None = None,
    ) -> None:
        self.fleet = fleet
        self.models = models
        self.tokens = tokens
        self.host = host
        self.port = port
        self.clock = clock
        self.backfill_ms = backfill_ms
        self.interval_s = interval_s
        self.http_url = http_url
        self.teltonika = teltonika  # host and port of the platform's Teltonika server
        self.tallies = {d.id: DeviceTally() for d in fleet.devices}

    @property
    def reports(self) -> int:
        return sum(t.reports for t in self.tallies.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    async def run(self) -> None:
        """Run the fleet until cancelled; each device says goodbye on the way out."""
        transports = {d.transport for d in self.fleet.devices}
        if self.http_url is None and "http" in transports:
            raise M2MHubError("the fleet has HTTP devices: give the runner the platform's URL")
        if self.teltonika is None and "teltonika" in transports:
            raise M2MHubError("the fleet has Teltonika trackers: give the runner the tracker port")
        async with (
            httpx.AsyncClient(base_url=self.http_url or "", timeout=30) as http,
            asyncio.TaskGroup() as group,
        ):
            for spec in self.fleet.devices:
                name = f"sim-{spec.id}"
                if spec.transport == "http":
                    device = HttpDevice(http, spec.id, self.tokens[spec.id])
                    group.create_task(self._run_batching_device(spec, device), name=name)
                elif spec.transport == "teltonika" and self.teltonika is not None:
                    host, port = self.teltonika
                    tracker = TeltonikaDevice(spec.id, host=host, port=port)
                    group.create_task(self._run_batching_device(spec, tracker), name=name)
                else:
                    group.create_task(self._run_device(spec), name=name)

    def _intervals(self, spec: FleetDevice) -> tuple[int, int]:
        """(history, live) report intervals in ms: --interval changes the live pace only."""
        history_ms = spec.report_interval_s * 1000
        return history_ms, round((self.interval_s or spec.report_interval_s) * 1000)

    async def _run_batching_device(
        self, spec: FleetDevice, device: HttpDevice | TeltonikaDevice
    ) -> None:
        """A device that queues its reports and sends them in batches (HTTP, a tracker)."""
        model = self.models[spec.id]
        tally = self.tallies[spec.id]
        history_ms, interval_ms = self._intervals(spec)
        try:
            start = self.clock.now_ms()
            if self.backfill_ms:
                for ts, values in backfill(model, start - self.backfill_ms, start, history_ms):
                    await device.send(values, ts=ts)
                    tally.reports += 1
            while True:
                ts = self.clock.now_ms()
                values = model.step(ts)
                if values:
                    await device.send(values, ts=ts)
                    tally.reports += 1
                await device.flush()
                await asyncio.sleep(self.clock.wall_seconds(interval_ms))
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(device.flush(), FLUSH_TIMEOUT_S)
            tally.failed += len(device.queued)
            await device.close()

    async def _run_device(self, spec: FleetDevice) -> None:
        model = self.models[spec.id]
        tally = self.tallies[spec.id]
        history_ms, interval_ms = self._intervals(spec)
        device = DeviceClient(spec.id, self.tokens[spec.id], host=self.host, port=self.port)
        if isinstance(model, Pump):
            pump = model

            @device.command("set_pump")
            def set_pump(params: dict[str, Any]) -> dict[str, Any]:
                return dict(pump.set(bool(params.get("on")), at_ms=self.clock.now_ms()))

        async with device:
            try:
                start = self.clock.now_ms()
                if self.backfill_ms:
                    for ts, values in backfill(model, start - self.backfill_ms, start, history_ms):
                        await self._send(device, tally, values, ts)
                while True:
                    values = model.step(self.clock.now_ms())
                    if values:  # an empty report is a gap the model makes on purpose
                        await self._send(device, tally, values, None)
                    await asyncio.sleep(self.clock.wall_seconds(interval_ms))
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(device.flush(), FLUSH_TIMEOUT_S)
                tally.failed += device.counters.dropped + device.counters.buffered

    async def _send(
        self, device: DeviceClient, tally: DeviceTally, values: dict[str, Any], ts: int | None
    ) -> None:
        try:
            await device.send(values, ts=ts if ts is not None else self.clock.now_ms())
        except PayloadError as exc:  # the model made a reading m2mhub would refuse
            tally.failed += 1
            log.warning("%s: reading refused: %s", device.topics.device_id, exc)
            return
        tally.reports += 1
