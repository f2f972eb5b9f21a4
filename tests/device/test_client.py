"""DeviceClient against a real platform and a real broker (embedded and Mosquitto)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from m2mhub.device import Counters
from tests.device.conftest import DEADLINE_S, Hub, eventually


async def test_telemetry_attributes_and_events_are_stored(hub: Hub) -> None:
    await hub.device("d1")
    async with hub.sdk("d1") as device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        before = time.time_ns() // 1_000_000
        await device.send({"temp": 21.5, "door": True, "mode": "eco"})
        after = time.time_ns() // 1_000_000
        await device.send({"temp": 22.0}, ts=before - 60_000)
        await device.send_attributes({"firmware": "1.4.2", "config": {"interval_s": 60}})
        await device.send_event("door_forced", {"door": 3}, ts=before - 1000)
        await asyncio.wait_for(device.flush(), DEADLINE_S)
        assert device.counters == Counters(sent=4, acknowledged=4, buffered=0, dropped=0)

    async def all_stored() -> bool:
        events = await hub.get("/api/v1/devices/d1/events?kind=door_forced")
        attributes = await hub.get("/api/v1/devices/d1/attributes")
        return len(await hub.points("d1")) == 4 and bool(events["items"]) and bool(attributes)

    await eventually(all_stored, "readings, attributes and the event stored")
    points = await hub.points("d1")
    assert points[0] == (before - 60_000, "temp", 22.0)
    stamped = {key: (ts, value) for ts, key, value in points[1:]}
    assert {key: value for key, (_, value) in stamped.items()} == {
        "temp": 21.5,
        "door": True,
        "mode": "eco",
    }
    assert all(before <= ts <= after for ts, _ in stamped.values())  # stamped at send()
    attributes = await hub.get("/api/v1/devices/d1/attributes")
    assert attributes["firmware"]["value"] == "1.4.2"
    assert attributes["config"]["value"] == {"interval_s": 60}
    events = (await hub.get("/api/v1/devices/d1/events?kind=door_forced"))["items"]
    assert events == [{"ts": before - 1000, "kind": "door_forced", "data": {"door": 3}}]


async def command(hub: Hub, device_id: str, method: str, params: dict[str, Any]) -> Any:
    """Send a command through the REST API and wait for it to finish."""
    response = await hub.client.post(
        f"/api/v1/devices/{device_id}/commands",
        json={"method": method, "params": params, "wait_s": DEADLINE_S},
        headers=hub.admin,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_command_handler_answers_with_its_result(hub: Hub) -> None:
    await hub.device("d1")
    device = hub.sdk("d1")
    relay = {"on": False}

    @device.command("set_relay")
    async def set_relay(params: dict[str, Any]) -> dict[str, bool]:
        relay["on"] = params["on"]
        return {"relay": relay["on"]}

    @device.command("ping")
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    async with device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        done = await command(hub, "d1", "set_relay", {"on": True})
        assert (done["status"], done["result"], done["error"]) == (
            "succeeded",
            {"relay": True},
            None,
        )
        assert relay["on"] is True
        done = await command(hub, "d1", "ping", {})
        assert (done["status"], done["result"]) == ("succeeded", "pong")
    stored = await hub.platform.commands.store.get_command(done["id"])
    assert stored.status == "succeeded" and stored.result == "pong"


async def test_a_failing_handler_fails_the_command_with_its_error(hub: Hub) -> None:
    await hub.device("d1")
    device = hub.sdk("d1")

    @device.command("reboot")
    def reboot(params: dict[str, Any]) -> None:
        raise RuntimeError(f"cannot reboot in mode {params['mode']}")

    async with device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        done = await command(hub, "d1", "reboot", {"mode": "safe"})
    assert done["status"] == "failed"
    assert done["error"] == "RuntimeError: cannot reboot in mode safe"


async def test_an_unknown_method_fails_the_command(hub: Hub) -> None:
    await hub.device("d1")
    device = hub.sdk("d1")
    device.command("ping")(lambda params: "pong")
    async with device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        done = await command(hub, "d1", "self_destruct", {})
    assert done["status"] == "failed"
    assert done["error"] == "unknown method 'self_destruct'; this device handles: ping"


async def test_a_oneway_command_runs_and_is_not_answered(hub: Hub) -> None:
    await hub.device("d1")
    device = hub.sdk("d1")
    ran: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    device.command("blink")(lambda params: ran.put_nowait(params))
    async with device:
        await asyncio.wait_for(device.wait_connected(), DEADLINE_S)
        response = await hub.client.post(
            "/api/v1/devices/d1/commands",
            json={"method": "blink", "params": {"times": 3}, "oneway": True, "wait_s": DEADLINE_S},
            headers=hub.admin,
        )
        assert response.json()["status"] == "delivered", response.text
        assert await asyncio.wait_for(ran.get(), DEADLINE_S) == {"times": 3}
        # A two-way command after it: once that is answered, an answer to the one-way
        # command would have come too.
        assert (await command(hub, "d1", "blink", {}))["status"] == "succeeded"
        assert hub.platform.mqtt is not None
        assert hub.platform.mqtt.rejected == 0  # no late answer to the one-way command


async def test_the_desired_state_is_applied_and_reported(hub: Hub) -> None:
    await hub.device("d1")

    async def set_desired(changes: dict[str, Any]) -> None:
        response = await hub.client.patch(
            "/api/v1/devices/d1/twin/desired", json={"desired": changes}, headers=hub.admin
        )
        assert response.status_code == 200, response.text

    # Set while the device is away: the broker keeps it (retained) for its next connection.
    await set_desired({"interval_s": 30, "led": "on"})
    device = hub.sdk("d1")
    applied: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @device.on_desired
    def apply(state: dict[str, Any]) -> None:
        applied.put_nowait(state)

    async def reported(state: dict[str, Any]) -> bool:
        twin = await hub.get("/api/v1/devices/d1/twin")
        return bool(twin["reported"] == state and twin["delta"] == {})

    async with device:
        assert await asyncio.wait_for(applied.get(), DEADLINE_S) == {"interval_s": 30, "led": "on"}
        assert device.desired.version == 1
        await eventually(lambda: reported({"interval_s": 30, "led": "on"}), "reported as desired")
        await set_desired({"interval_s": 10, "led": None})
        assert await asyncio.wait_for(applied.get(), DEADLINE_S) == {"interval_s": 10}
        assert (device.desired.version, device.desired.state) == (2, {"interval_s": 10})
        # "led" left the desired state: the device reports it gone.
        await eventually(lambda: reported({"interval_s": 10}), "the removed key reported gone")
    assert applied.empty()
