"""The embedded broker's own fixes to amqtt, each shown on the piece it mends."""

from __future__ import annotations

from typing import Any

from m2mhub.connect.mqtt.embedded import Subscriptions, _Broker


def test_subscriptions_can_change_while_they_are_walked() -> None:
    # amqtt routes a message by walking the table with awaits inside the loop; a device
    # that subscribes meanwhile must neither break the walk nor be half-seen by it.
    platform: Any = object()
    table = Subscriptions({"m2m/+/telemetry": [(platform, 1)]})
    walked = []
    for topic, subscribers in table.items():
        table["m2m/d1/commands/+"] = []
        subscribers.append((platform, 0))  # a copy: the table's list is unchanged
        walked.append(topic)
    for topic in table:
        table.pop("m2m/d1/commands/+", None)
        walked.append(topic)
    assert walked == ["m2m/+/telemetry", "m2m/+/telemetry", "m2m/d1/commands/+"]
    assert table == {"m2m/+/telemetry": [(platform, 1)]}


async def test_the_broker_walks_copies() -> None:
    broker = _Broker(
        {"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}}, "plugins": {}}
    )
    assert isinstance(broker._subscriptions, Subscriptions)
