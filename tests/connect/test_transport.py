"""The subscriber's QoS 1 groups: what is acknowledged, in which order, and when not.

The transport is driven without a broker: a group of received messages is
handed to it as gmqtt's reader would, and the PUBACKs it writes are captured.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from m2mhub.config import Settings
from m2mhub.connect.mqtt.transport import (
    GROUP_MAX,
    GROUP_MAX_BYTES,
    BrokerAddress,
    MqttTransport,
)
from m2mhub.core.timeutil import now_ms
from m2mhub.platform import Platform
from m2mhub.store.models import KeySpec
from tests.conftest import drop_schema, new_store


class Connection:
    """Stands in for gmqtt's connection: keeps what the transport writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def send_package(self, data: bytes) -> None:
        self.written.append(data)

    def acknowledged(self) -> list[int]:
        data = b"".join(self.written)
        assert all(data[i : i + 2] == b"\x40\x02" for i in range(0, len(data), 4)), data
        return [int.from_bytes(data[i + 2 : i + 4], "big") for i in range(0, len(data), 4)]


class Client:
    def __init__(self) -> None:
        self._connection = Connection()


@pytest.fixture
async def transport(backend: str, tmp_path: Path) -> AsyncIterator[MqttTransport]:
    settings = Settings(data_dir=tmp_path, roles="api", mqtt_enabled=False)
    store, schema = new_store(backend, tmp_path)
    try:
        async with Platform(settings, store=store) as platform:
            tenant = await platform.registry.create_tenant("acme")
            await platform.registry.create_device_type(
                tenant.id, "sensor", [KeySpec("temp")], report_interval_s=60
            )
            for name in ("d1", "d2"):
                await platform.registry.create_device(
                    tenant.id, type_name="sensor", name=name, device_id=name
                )
            address = BrokerAddress("127.0.0.1", 1, username="", password="")
            mqtt = MqttTransport(platform, address, client_id="test")
            mqtt._client = Client()  # type: ignore[assignment]
            yield mqtt
    finally:
        if schema:
            drop_schema(schema)


def reading(ts: int, temp: float) -> bytes:
    return f'{{"ts": {ts}, "values": {{"temp": {temp}}}}}'.encode()


def acks(transport: MqttTransport) -> list[int]:
    client: Any = transport._client
    acknowledged: list[int] = client._connection.acknowledged()
    return acknowledged


async def points(transport: MqttTransport, device_id: str) -> int:
    device = await transport.platform.store.get_device(device_id)
    return await transport.platform.store.count_points(device.pk)


async def test_a_group_is_stored_together_and_acknowledged_in_order(
    transport: MqttTransport,
) -> None:
    ts = now_ms() - 60_000
    await transport._handle_group(
        [
            (7, "m2m/d1/telemetry", reading(ts, 1.5)),
            (3, "m2m/d2/telemetry", b"{not json"),  # refused for itself: acknowledged
            (9, "m2m/nobody/telemetry", reading(ts, 2.0)),  # unknown device: acknowledged
            (4, "m2m/d2/telemetry", reading(ts, 2.5)),
            (5, "m2m/d2/telemetry", b'{"temp": "warm"}'),  # the type declares a number
        ]
    )
    assert acks(transport) == [7, 3, 9, 4, 5]
    assert await points(transport, "d1") == 1
    assert await points(transport, "d2") == 1
    assert transport.platform.writer.transactions == 1
    assert transport.rejected == 3


async def test_a_device_unknown_to_one_group_is_found_by_the_next_once_created(
    transport: MqttTransport,
) -> None:
    ts = now_ms() - 60_000
    group = [(1, "m2m/d1/telemetry", reading(ts, 1.5)), (2, "m2m/d3/telemetry", reading(ts, 3.5))]
    await transport._handle_group(group)
    assert acks(transport) == [1, 2]
    assert transport.rejected == 1
    registry = transport.platform.registry
    tenant = await registry.tenant("acme")
    await registry.create_device(tenant.id, type_name="sensor", name="d3", device_id="d3")
    await transport._handle_group([(3, "m2m/d3/telemetry", reading(ts + 1, 3.5))])
    assert acks(transport) == [1, 2, 3]
    assert transport.rejected == 1
    assert await points(transport, "d3") == 1


async def test_a_store_failure_acknowledges_only_what_was_refused(
    transport: MqttTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(transport.platform.store, "write_readings", failing)
    ts = now_ms() - 60_000
    group = [
        (1, "m2m/d1/telemetry", reading(ts, 1.5)),
        (2, "m2m/d1/telemetry", b"[]"),
        (3, "m2m/d2/telemetry", reading(ts, 2.5)),
    ]
    await transport._handle_group(group)
    assert acks(transport) == [2]  # the others come back from the broker
    monkeypatch.undo()
    await transport._handle_group(group)  # delivered again
    assert acks(transport) == [2, 1, 2, 3]
    assert await points(transport, "d1") == 1
    assert await points(transport, "d2") == 1


async def test_groups_stop_at_their_count_or_their_bytes(transport: MqttTransport) -> None:
    small = [(i, "m2m/d1/telemetry", b"{}") for i in range(1, GROUP_MAX + 3)]
    transport._inbox.extend(small)
    assert transport._take_group() == small[:GROUP_MAX]
    assert transport._take_group() == small[GROUP_MAX:]
    big = b"x" * (GROUP_MAX_BYTES // 2 + 1)  # two of them are over the limit
    large = [(i, "m2m/d1/telemetry", big) for i in (1, 2, 3)]
    transport._inbox.extend(large)
    assert [mid for mid, _, _ in transport._take_group()] == [1]
    assert [mid for mid, _, _ in transport._take_group()] == [2]
    huge = (4, "m2m/d1/telemetry", b"x" * (GROUP_MAX_BYTES + 1))  # alone over it: still taken
    transport._inbox.append(huge)
    assert [mid for mid, _, _ in transport._take_group()] == [3]
    assert transport._take_group() == [huge]
    assert transport._inbox == []


def test_the_fast_reader_takes_qos1_publish_and_leaves_the_rest(tmp_path: Path) -> None:
    received: list[tuple[int, bytes]] = []

    stub = SimpleNamespace(_inbox=[], _arrived=asyncio.Event())
    general = lambda command, packet: received.append((command, packet))  # noqa: E731
    for has_properties, no_properties in ((True, b"\x00"), (False, b"")):
        stub._inbox = []
        read = MqttTransport._publish_packet_reader(
            stub,  # type: ignore[arg-type]
            general,
            has_properties=has_properties,
        )
        topic = b"m2m/d1/telemetry"
        body = len(topic).to_bytes(2, "big") + topic + b"\x01\x02" + no_properties + b'{"t":1}'
        read(0x32, body)
        read(0x3A, body)  # DUP set: still QoS 1
        assert stub._inbox == [(0x0102, "m2m/d1/telemetry", b'{"t":1}')] * 2
        read(0x30, b"\x00\x01a{}")  # QoS 0: gmqtt's reader
        assert received[-1] == (0x30, b"\x00\x01a{}")
    with_property = len(topic).to_bytes(2, "big") + topic + b"\x01\x02" + b"\x02\x23\x00{}"
    read = MqttTransport._publish_packet_reader(
        stub,  # type: ignore[arg-type]
        general,
        has_properties=True,
    )
    read(0x32, with_property)  # a property (a topic alias): gmqtt's reader
    assert received[-1] == (0x32, with_property)
