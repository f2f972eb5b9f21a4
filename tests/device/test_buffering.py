"""The SDK's buffer against a real broker that goes away: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from m2mhub.bus import Event, ReadingsStored, Subscription
from m2mhub.device import Counters, DeviceClient
from tests.device.conftest import DEADLINE_S, Hub, eventually

DEVICE_PROCESS = Path(__file__).with_name("device_process.py")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def disconnected(device: DeviceClient) -> bool:
    return not device.connected


async def test_readings_sent_while_the_broker_is_down_arrive_once_in_order(
    hub: Hub, tmp_path: Path
) -> None:
    await hub.device("d1")
    device = hub.sdk("d1", buffer_path=tmp_path / "d1.buffer")
    device.command("ping")(lambda params: "pong")
    async with hub.platform.bus.subscribe(maxsize=10_000) as arrivals, device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        await device.send({"temp": 0.0})
        await asyncio.wait_for(device.flush(), DEADLINE_S)
        await hub.broker_down()
        await eventually(lambda: disconnected(device), "the client sees the broker gone")
        before = now_ms()
        # Stamped now, sent later.
        stamps = [await device.send({"temp": float(i)}) for i in range(1, 201)]
        after = now_ms()
        assert device.counters.buffered == 200
        await hub.broker_up()
        await asyncio.wait_for(device.flush(), DEADLINE_S)
        assert device.connected
        counters = device.counters
        # Subscribed again on the new connection: commands reach it.
        response = await hub.client.post(
            "/api/v1/devices/d1/commands",
            json={"method": "ping", "wait_s": DEADLINE_S},
            headers=hub.admin,
        )
        assert response.json()["status"] == "succeeded"

        async def all_stored() -> bool:
            return len(await hub.points("d1")) >= 201

        await eventually(all_stored, "201 readings stored")
        arrived = [
            values["temp"]
            for event in drain(arrivals)
            if isinstance(event, ReadingsStored)
            for _, values in event.readings
        ]
    assert (counters.acknowledged, counters.buffered, counters.dropped) == (201, 0, 0)
    # The platform got them in the order they were sent. A message the broker delivered
    # again (its acknowledgement was cut by the restart) is announced again; it is stored
    # once (below).
    assert list(dict.fromkeys(arrived)) == [float(i) for i in range(201)]
    points = await hub.points("d1")
    # With the times they were taken at: not stamped again when sent.
    assert points[1:] == [(ts, "temp", float(i)) for i, ts in enumerate(stamps, 1)]
    assert len(points) == 201 and points[0][2] == 0.0
    # Taken at send(); a burst moves on by a millisecond a reading so that each is distinct.
    assert before <= stamps[0] <= after and stamps == sorted(set(stamps))


def drain(subscription: Subscription) -> list[Event]:
    """The events a bus subscription holds now."""
    events = []
    while not subscription.queue.empty():
        events.append(subscription.queue.get_nowait())
    return events


async def test_a_new_client_replays_what_a_closed_one_left_buffered(
    hub: Hub, tmp_path: Path
) -> None:
    await hub.device("d1")
    path = tmp_path / "d1.buffer"
    base = now_ms() - 100_000
    await hub.broker_down()
    async with hub.sdk("d1", buffer_path=path) as device:
        for i in range(50):
            await device.send({"temp": float(i)}, ts=base + i)
        assert device.counters.buffered == 50
    await hub.broker_up()
    async with hub.sdk("d1", buffer_path=path) as device:
        assert device.counters.buffered == 50  # found in the file
        await asyncio.wait_for(device.flush(), DEADLINE_S)

    async def all_stored() -> bool:
        return len(await hub.points("d1")) >= 50

    await eventually(all_stored, "the 50 buffered readings stored")
    assert await hub.points("d1") == [(base + i, "temp", float(i)) for i in range(50)]


async def test_a_killed_device_process_keeps_what_it_buffered(hub: Hub, tmp_path: Path) -> None:
    await hub.device("d1")
    path = tmp_path / "d1.buffer"
    base = now_ms() - 100_000
    await hub.broker_down()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEVICE_PROCESS),
        "d1",
        hub.tokens["d1"],
        str(hub.port),
        str(path),
        str(base),
        "40",
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
        assert line == b"buffered 40\n"
    finally:
        process.send_signal(signal.SIGKILL)  # no close(): a crash or a power cut of the process
        await process.wait()
    await hub.broker_up()
    async with hub.sdk("d1", buffer_path=path) as device:
        assert device.counters.buffered == 40
        await asyncio.wait_for(device.flush(), DEADLINE_S)

    async def all_stored() -> bool:
        return len(await hub.points("d1")) >= 40

    await eventually(all_stored, "the killed process's readings stored")
    assert await hub.points("d1") == [(base + i, "temp", float(i)) for i in range(40)]


async def test_a_full_buffer_drops_the_oldest_and_counts_them(hub: Hub, tmp_path: Path) -> None:
    await hub.device("d1")
    base = now_ms() - 100_000
    await hub.broker_down()
    async with hub.sdk("d1", buffer_path=tmp_path / "d1.buffer", max_buffered=10) as device:
        for i in range(25):
            await device.send({"temp": float(i)}, ts=base + i)
        assert device.counters == Counters(sent=0, acknowledged=0, buffered=10, dropped=15)
        await hub.broker_up()
        await asyncio.wait_for(device.flush(), DEADLINE_S)
        assert device.counters == Counters(sent=10, acknowledged=10, buffered=0, dropped=15)

    async def all_stored() -> bool:
        return len(await hub.points("d1")) >= 10

    await eventually(all_stored, "the 10 newest readings stored")
    assert await hub.points("d1") == [(base + i, "temp", float(i)) for i in range(15, 25)]


async def test_birth_last_will_and_clean_close_set_the_connection_state(hub: Hub) -> None:
    await hub.device("d1")

    async def connected_is(state: bool) -> bool:
        return bool((await hub.get("/api/v1/devices/d1"))["connected"] is state)

    async with hub.sdk("d1") as device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        await eventually(lambda: connected_is(True), "the birth message marks it connected")
    await eventually(lambda: connected_is(False), "a clean close says offline")
    # A process that dies without closing: the broker publishes its last will.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEVICE_PROCESS),
        "d1",
        hub.tokens["d1"],
        str(hub.port),
        "-",
        "0",
        "0",
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), DEADLINE_S) == b"buffered 0\n"
        assert await asyncio.wait_for(process.stdout.readline(), DEADLINE_S) == b"connected\n"
        await eventually(lambda: connected_is(True), "the process's birth message")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    await eventually(lambda: connected_is(False), "the last will marks it disconnected")
