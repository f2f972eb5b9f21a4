"""Runs a simulated fleet against m2mhub over MQTT, each device through the device SDK.

Every device is a :class:`m2mhub.device.DeviceClient` of its own: it connects with its
id and token, sends its model's readings at its report interval, and handles the
commands its model understands (a pump's ``set_pump``). History can be backfilled
first, and device time can run faster than the wall clock (:class:`LiveClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from m2mhub.core.timeutil import now_ms
from m2mhub.device import DeviceClient, PayloadError
from m2mhub.sim.base import AnyModel
from m2mhub.sim.clock import SimClock, backfill
from m2mhub.sim.fleet import Fleet, FleetDevice
from m2mhub.sim.tank import Pump

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
    ) -> None:
        self.fleet = fleet
        self.models = models
        self.tokens = tokens
        self.host = host
        self.port = port
        self.clock = clock
        self.backfill_ms = backfill_ms
        self.interval_s = interval_s
        self.tallies = {d.id: DeviceTally() for d in fleet.devices}

    @property
    def reports(self) -> int:
        return sum(t.reports for t in self.tallies.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    async def run(self) -> None:
        """Run the fleet until cancelled; each device says goodbye on the way out."""
        async with asyncio.TaskGroup() as group:
            for spec in self.fleet.devices:
                group.create_task(self._run_device(spec), name=f"sim-{spec.id}")

    async def _run_device(self, spec: FleetDevice) -> None:
        model = self.models[spec.id]
        tally = self.tallies[spec.id]
        # History at the device's own pace; --interval changes the live pace only.
        history_ms = spec.report_interval_s * 1000
        interval_ms = round((self.interval_s or spec.report_interval_s) * 1000)
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
