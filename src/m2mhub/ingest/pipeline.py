"""The ingest pipeline: a list of small handlers, each ``async (batch) -> batch | None``.

Every transport (HTTP today; MQTT, CoAP and trackers later) authenticates a
device, parses its payload into an :class:`IngestBatch` and submits it here.
The order of the stages is written once, in :func:`default_handlers`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.core.values import Value, ValueType
from m2mhub.store.models import Device, DeviceType

Handler = Callable[["IngestBatch"], Awaitable["IngestBatch | None"]]


class IngestBatch(msgspec.Struct):
    """Readings of one device from one message, on their way to the store."""

    device: Device
    device_type: DeviceType
    readings: list[tuple[int, dict[str, Value]]]
    arrival_ms: int
    source: str = "http"
    stored: int = 0


class Pipeline:
    """Runs a batch through the handlers in order; a handler returning None stops it."""

    def __init__(self, handlers: Sequence[Handler]) -> None:
        self.handlers = list(handlers)

    async def submit(self, batch: IngestBatch) -> IngestBatch | None:
        item: IngestBatch | None = batch
        for handler in self.handlers:
            if item is None:
                return None
            item = await handler(item)
        return item


_ACCEPTS: dict[ValueType, Callable[[Value], bool]] = {
    ValueType.NUMBER: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    ValueType.BOOL: lambda v: isinstance(v, bool),
    ValueType.STRING: lambda v: isinstance(v, str),
}


async def check_device_type(batch: IngestBatch) -> IngestBatch:
    """Values must match the types the device type declares; strict types refuse other keys."""
    device_type = batch.device_type
    if not device_type.keys and not device_type.strict:
        return batch
    declared = {spec.key: spec.type for spec in device_type.keys}
    many = len(batch.readings) > 1
    for index, (_, values) in enumerate(batch.readings):
        prefix = f"[{index}].values" if many else "values"
        for key, value in values.items():
            expected = declared.get(key)
            if expected is None:
                if device_type.strict:
                    raise PayloadError(
                        f"{prefix}.{key}: device type {device_type.name!r} does not declare "
                        f"this key (declared: {', '.join(sorted(declared)) or 'none'})",
                        field=f"{prefix}.{key}",
                    )
            elif not _ACCEPTS[expected](value):
                raise PayloadError(
                    f"{prefix}.{key}: device type {device_type.name!r} declares a "
                    f"{expected.value}, got {msgspec.json.encode(value).decode()}",
                    field=f"{prefix}.{key}",
                )
    return batch
