"""The simulator's Teltonika van against the platform's Teltonika server."""

from __future__ import annotations

from m2mhub.core.timeutil import now_ms
from m2mhub.sim.teltonika import BATCH, TeltonikaDevice
from tests.connect.trackers.conftest import Trackers

IMEI = "356307042441013"
MINUTE = 60_000


async def test_a_simulated_van_reports_through_codec_8e(trackers: Trackers) -> None:
    await trackers.device(IMEI)
    van = TeltonikaDevice(IMEI, host="127.0.0.1", port=trackers.server("teltonika").port)
    start = now_ms() - 2 * BATCH * MINUTE
    try:
        for n in range(2 * BATCH + 1):  # two full packets and one of a single record
            values = {
                "lat": 52.37 + n / 10_000,
                "lon": 4.89,
                "speed_kmh": 42.0,
                "heading_deg": 90.0,
                "ignition": True,
                "fuel_pct": 63.0,
                "odometer_m": 120_000 + 50 * n,
            }
            await van.send(values, ts=start + n * MINUTE)
        await van.flush()
    finally:
        await van.close()
    assert van.acknowledged == 2 * BATCH + 1 and not van.queued
    latest = await trackers.latest(IMEI)
    assert latest["lat"] == round(52.37 + 2 * BATCH / 10_000, 7)
    assert latest["ignition"] is True and latest["movement"] is True
    assert latest["fuel_pct"] == 63 and latest["odometer_m"] == 120_000 + 50 * 2 * BATCH
    assert trackers.server("teltonika").stats.readings == 2 * BATCH + 1


async def test_an_unregistered_van_keeps_its_reports(trackers: Trackers) -> None:
    van = TeltonikaDevice(IMEI, host="127.0.0.1", port=trackers.server("teltonika").port)
    await van.send({"lat": 52.37, "lon": 4.89}, ts=now_ms())
    await van.flush()
    await van.close()
    assert len(van.queued) == 1 and van.acknowledged == 0
