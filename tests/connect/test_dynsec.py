"""Mosquitto's dynamic-security plugin, driven by m2mhub's account client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from m2mhub.connect.mqtt.dynsec import CONTROL, DynamicSecurity
from m2mhub.connect.mqtt.transport import BrokerAddress
from tests.mosquitto import start_mosquitto


async def test_a_late_answer_is_not_taken_for_another_exchange(tmp_path: Path) -> None:
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
    try:
        address = BrokerAddress.from_url(
            f"mqtt://127.0.0.1:{broker.port}",
            username=broker.admin,
            password=broker.password,
            ca_file="",
            shared_group="",
        )
        async with DynamicSecurity(address) as accounts:
            # An answer nobody waits for any more (its exchange timed out, say) arrives
            # while the next exchange waits: it must not be read as the next one's answer.
            stray = {"command": "getClient", "username": "nobody", "correlationData": "old:0"}
            assert accounts._client is not None
            accounts._client.publish(CONTROL, msgspec.json.encode({"commands": [stray]}), qos=1)
            [answer] = await accounts.run([{"command": "getClient", "username": broker.admin}])
            assert answer["data"]["client"]["username"] == broker.admin
    finally:
        broker.stop()
