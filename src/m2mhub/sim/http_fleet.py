"""A fleet of simulated devices posting telemetry over the HTTP device API."""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec

from m2mhub.core.timeutil import now_ms
from m2mhub.sim.models import DeviceModel

log = logging.getLogger(__name__)


class SimDevice(msgspec.Struct):
    """One simulated device: its id, token and physical model."""

    device_id: str
    token: str
    model: DeviceModel
    sent: int = 0
    failed: int = 0


class HttpFleet:
    """Posts each device's readings every ``interval_s`` until stopped."""

    def __init__(self, base_url: str, devices: list[SimDevice], *, interval_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.devices = devices
        self.interval_s = interval_s

    async def run(self, *, rounds: int | None = None) -> None:
        """Report ``rounds`` times (forever when None), all devices per round."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            done = 0
            while rounds is None or done < rounds:
                await asyncio.gather(*(self._report(client, d) for d in self.devices))
                done += 1
                if rounds is None or done < rounds:
                    await asyncio.sleep(self.interval_s)

    async def _report(self, client: httpx.AsyncClient, device: SimDevice) -> None:
        ts = now_ms()
        body = {"ts": ts, "values": device.model.step(ts)}
        try:
            response = await client.post(
                f"/api/v1/devices/{device.device_id}/telemetry",
                json=body,
                headers={"Authorization": f"Bearer {device.token}"},
            )
        except httpx.HTTPError as exc:
            device.failed += 1
            log.warning("%s: %s", device.device_id, exc)
            return
        if response.status_code == 200:
            device.sent += 1
        else:
            device.failed += 1
            log.warning("%s: HTTP %s %s", device.device_id, response.status_code, response.text)
