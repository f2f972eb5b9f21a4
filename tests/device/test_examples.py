"""The example scripts run as a device maker would run them, against a real platform."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.device.conftest import DEADLINE_S, Hub, eventually

EXAMPLES = Path(__file__).parents[2] / "examples"


async def test_the_meter_example_sends_its_readings(hub: Hub, tmp_path: Path) -> None:
    await hub.device("meter-001")
    # A desired interval the meter follows: four readings come quicker than with --interval.
    response = await hub.client.patch(
        "/api/v1/devices/meter-001/twin/desired",
        json={"desired": {"report_interval_s": 0.05}},
        headers=hub.admin,
    )
    assert response.status_code == 200
    # A bounded run: --count stops it by itself.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "meter.py"),
        *("--host", "127.0.0.1", "--port", str(hub.port)),
        *("--device", "meter-001", "--token", hub.tokens["meter-001"]),
        *("--buffer", str(tmp_path / "meter.buffer"), "--count", "4", "--interval", "30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 3 * DEADLINE_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "acknowledged=5" in out.decode()  # the attributes and four readings

    async def stored() -> bool:
        return len(await hub.points("meter-001")) >= 12

    await eventually(stored, "four readings of three values stored")
    keys = {key for _, key, _ in await hub.points("meter-001")}
    assert keys == {"power_kw", "energy_kwh", "relay"}
    attributes = await hub.get("/api/v1/devices/meter-001/attributes")
    assert attributes["firmware"]["value"] == "1.4.2"

    async def interval_reported() -> bool:
        twin = await hub.get("/api/v1/devices/meter-001/twin")
        return bool(twin["reported"] == {"report_interval_s": 0.05})

    await eventually(interval_reported, "the meter reports the interval it follows")
