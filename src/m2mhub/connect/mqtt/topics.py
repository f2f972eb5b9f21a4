"""The device topic scheme: ``m2m/{device}/{channel}[/...]``.

Every topic carries the device id, so the broker's ACL can confine a device
to its own prefix and the platform knows the sender without trusting the
payload (docs/devices.md).
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from m2mhub.registry.naming import DEVICE_ID

PREFIX: Final = "m2m"


class Channel(enum.StrEnum):
    """What a message on a device's topic is about."""

    TELEMETRY = "telemetry"  # device -> platform: readings
    ATTRIBUTES = "attributes"  # device -> platform: its reported state
    EVENTS = "events"  # device -> platform: something happened
    STATUS = "status"  # device -> platform: birth ("online") and last will ("offline")
    COMMAND_RESULT = "commands/+/result"  # device -> platform: m2m/{id}/commands/{cmd}/result
    TWIN_REPORTED = "twin/reported"  # device -> platform: its reported state


class DeviceTopic(msgspec.Struct, frozen=True):
    device_id: str
    channel: Channel
    command_id: str | None = None


#: What the platform subscribes to, one filter per inbound channel.
INBOUND: Final = tuple(f"{PREFIX}/+/{c.value}" for c in Channel)


def topic_for(device_id: str, channel: Channel) -> str:
    return f"{PREFIX}/{device_id}/{channel.value}"


def device_prefix(device_id: str) -> str:
    """Everything under this prefix belongs to the device (its ACL)."""
    return f"{PREFIX}/{device_id}/"


def command_topic(device_id: str, command_id: str) -> str:
    """Where the platform publishes a command for the device."""
    return f"{PREFIX}/{device_id}/commands/{command_id}"


def desired_topic(device_id: str) -> str:
    """Where the platform publishes (retained) the device's desired state."""
    return f"{PREFIX}/{device_id}/twin/desired"


def parse_topic(topic: str) -> DeviceTopic | None:
    """``m2m/d1/telemetry`` -> DeviceTopic("d1", TELEMETRY); None for other topics."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != PREFIX or not DEVICE_ID.match(parts[1]):
        return None
    device_id, rest = parts[1], parts[2:]
    if len(rest) == 3 and rest[0] == "commands" and rest[2] == "result" and rest[1]:
        return DeviceTopic(device_id, Channel.COMMAND_RESULT, rest[1])
    try:
        return DeviceTopic(device_id, Channel("/".join(rest)))
    except ValueError:
        return None


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching (MQTT 3.1.1 section 4.7): ``+`` one level, ``#`` the rest."""
    levels = topic.split("/")
    for index, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


def is_own_topic(device_id: str, topic: str) -> bool:
    """True when a topic or filter lies under the device's own prefix.

    Wildcards after the prefix (``m2m/d1/#``) stay inside it; a filter such as
    ``m2m/+/telemetry`` or ``#`` reaches other devices and is not the device's own.
    """
    return topic.startswith(device_prefix(device_id))
