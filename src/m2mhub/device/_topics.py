"""A device's own topics: ``m2m/{device}/{channel}`` (docs/devices.md#topics).

The platform's scheme lives in ``m2mhub.connect.mqtt.topics``; the SDK keeps its
own copy so that a device does not import the platform (its store, its
database drivers). A test checks that both agree.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from m2mhub.core.errors import PayloadError

PREFIX: Final = "m2m"
#: Device ids appear in topics: no '/', '+', '#' or spaces (docs/devices.md#device-id-and-token).
DEVICE_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class Outbound(enum.StrEnum):
    """What the device sends through its buffer; each is a topic of its own."""

    TELEMETRY = "telemetry"
    EVENTS = "events"
    ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class DeviceTopics:
    """Every topic one device publishes or subscribes to."""

    device_id: str

    def __post_init__(self) -> None:
        if not DEVICE_ID.match(self.device_id):
            raise PayloadError(
                f"device_id: {self.device_id!r} is not a valid device id; use 1-64 letters, "
                "digits, '_', '.', '-', starting with a letter or digit",
                field="device_id",
            )

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.device_id}"

    def outbound(self, kind: Outbound) -> str:
        """``m2m/{device}/telemetry``, ``.../events`` or ``.../attributes``."""
        return f"{self.base}/{kind.value}"

    @property
    def status(self) -> str:
        """Birth ("online"), last will and clean close ("offline")."""
        return f"{self.base}/status"

    @property
    def commands(self) -> str:
        """The filter for commands: one topic per command, ``commands/{command id}``."""
        return f"{self.base}/commands/+"

    @property
    def desired(self) -> str:
        """The desired state, retained by the broker."""
        return f"{self.base}/twin/desired"

    @property
    def reported(self) -> str:
        return f"{self.base}/twin/reported"

    def result(self, command_id: str) -> str:
        return f"{self.base}/commands/{command_id}/result"

    def command_id(self, topic: str) -> str | None:
        """``m2m/{device}/commands/{id}`` -> ``id``; None for any other topic."""
        head = f"{self.base}/commands/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :]
        return rest if rest and "/" not in rest else None
