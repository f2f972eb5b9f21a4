"""What the SDK refuses before buffering it, and the topic scheme it shares with the platform."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from m2mhub.connect.mqtt.topics import Channel, command_topic, desired_topic, parse_topic
from m2mhub.core.errors import M2MHubError, PayloadError
from m2mhub.device import DeviceClient
from m2mhub.device._payloads import KEY, pack
from m2mhub.device._topics import DEVICE_ID, DeviceTopics, Outbound
from m2mhub.ingest.payload import parse_telemetry
from m2mhub.registry.naming import DEVICE_ID as PLATFORM_DEVICE_ID
from m2mhub.registry.naming import TELEMETRY_KEY
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "values"),
        ({"temp": None}, "values.temp"),
        ({"gps": {"lat": 1.0}}, "values.gps"),
        ({"temp": math.nan}, "values.temp"),
        ({"power kw": 1}, "values.power kw"),
        ({"note": "x" * 1025}, "values.note"),
    ],
)
async def test_a_reading_the_platform_would_refuse_is_refused_at_send(
    values: dict[str, Any], field: str
) -> None:
    async with DeviceClient("d1", "m2d_x", port=free_port()) as device:
        with pytest.raises(PayloadError) as caught:
            await device.send(values)
        assert caught.value.field == field
        assert device.counters.buffered == 0


async def test_timestamps_and_events_are_checked() -> None:
    async with DeviceClient("d1", "m2d_x", port=free_port()) as device:
        with pytest.raises(PayloadError, match="milliseconds, not seconds"):
            await device.send({"temp": 1}, ts=1_795_478_400)
        with pytest.raises(PayloadError, match="naive datetime"):
            await device.send({"temp": 1}, ts=datetime(2026, 11, 24))
        assert await device.send({"temp": 1}, ts=datetime(2026, 11, 24, tzinfo=UTC)) == (
            1_795_478_400_000
        )
        with pytest.raises(PayloadError):
            await device.send_event("door forced")
        with pytest.raises(PayloadError):
            await device.send_attributes({})
        assert device.counters.buffered == 1


async def test_a_client_is_used_inside_its_block() -> None:
    device = DeviceClient("d1", "m2d_x", port=free_port())
    with pytest.raises(M2MHubError, match="async with"):
        await device.send({"temp": 1})
    with pytest.raises(PayloadError):
        DeviceClient("no/slash", "m2d_x")
    with pytest.raises(M2MHubError) as caught:
        DeviceClient("d1", "m2d_x", tls="/nonexistent/ca.pem")
    assert caught.value.field == "tls"


def test_packed_batches_are_what_the_platform_accepts() -> None:
    readings = [
        msgspec.json.encode({"ts": 1_795_478_400_000 + i, "values": {"t": i}}) for i in range(3)
    ]
    parsed = parse_telemetry(pack(Outbound.TELEMETRY, readings), now=1_795_478_400_000)
    assert parsed == [(1_795_478_400_000 + i, {"t": i}) for i in range(3)]
    merged = pack(Outbound.ATTRIBUTES, [b'{"fw": "1.0", "sim": 1}', b'{"fw": "1.1"}'])
    assert msgspec.json.decode(merged) == {"fw": "1.1", "sim": 1}


def test_the_topics_and_names_agree_with_the_platform() -> None:
    topics = DeviceTopics("d1")
    assert KEY.pattern == TELEMETRY_KEY.pattern
    assert DEVICE_ID.pattern == PLATFORM_DEVICE_ID.pattern
    for kind, channel in [
        (Outbound.TELEMETRY, Channel.TELEMETRY),
        (Outbound.EVENTS, Channel.EVENTS),
        (Outbound.ATTRIBUTES, Channel.ATTRIBUTES),
    ]:
        parsed = parse_topic(topics.outbound(kind))
        assert parsed is not None and parsed.channel is channel
    for topic, channel in [
        (topics.status, Channel.STATUS),
        (topics.reported, Channel.TWIN_REPORTED),
        (topics.result("c1"), Channel.COMMAND_RESULT),
    ]:
        parsed = parse_topic(topic)
        assert parsed is not None and parsed.channel is channel
    assert topics.desired == desired_topic("d1")
    assert topics.command_id(command_topic("d1", "c1")) == "c1"
    assert topics.command_id(topics.result("c1")) is None
    assert topics.command_id("m2m/d2/commands/c1") is None
