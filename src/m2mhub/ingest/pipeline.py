"""The ingest pipeline: a list of small handlers, each ``async (batch) -> batch | None``.

Every transport (HTTP, MQTT; CoAP and trackers later) authenticates a
device, parses its payload into an :class:`IngestBatch` and submits it here.
The order of the stages is written once, where the platform builds its pipeline.

A transport that receives many small messages at once (MQTT) submits them
together with :meth:`Pipeline.submit_many`: each handler still sees one batch
at a time, except a :class:`Stage` with a form for many, which takes them all
in one call (the store stage: one transaction for all of them; the type check
and the announcement on the bus: one call instead of one await per message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from m2mhub.core.errors import PayloadError
from m2mhub.core.values import Value, ValueType
from m2mhub.store.models import Device, DeviceType

Handler = Callable[["IngestBatch"], Awaitable["IngestBatch | None"]]
RejectHandler = Callable[["IngestBatch", PayloadError], None]
ManyHandler = Callable[[list["IngestBatch"], RejectHandler], Awaitable[list["IngestBatch"]]]


class IngestBatch(msgspec.Struct):
    """Readings of one device from one message, on their way to the store."""

    device: Device
    device_type: DeviceType
    readings: list[tuple[int, dict[str, Value]]]
    arrival_ms: int
    source: str = "http"
    stored: int = 0


@dataclass(frozen=True)
class Stage:
    """A handler with a second form that takes many batches at once.

    The second form returns the batches that go on; one it refuses for itself
    goes to the ``on_reject`` it is given, as in :meth:`Pipeline.submit_many`.
    """

    one: Handler
    many: ManyHandler


class Pipeline:
    """Runs a batch through the handlers in order; a handler returning None stops it."""

    def __init__(self, handlers: Sequence[Handler | Stage]) -> None:
        self.handlers = list(handlers)

    async def submit(self, batch: IngestBatch) -> IngestBatch | None:
        item: IngestBatch | None = batch
        for handler in self.handlers:
            if item is None:
                return None
            item = await (handler.one if isinstance(handler, Stage) else handler)(item)
        return item

    async def submit_many(
        self,
        batches: Sequence[IngestBatch],
        *,
        on_reject: RejectHandler,
    ) -> list[IngestBatch]:
        """Run many batches through the handlers, stage after stage; the ones that got through.

        A batch that a handler refuses (:class:`PayloadError`) goes to
        ``on_reject`` and leaves the others alone. Any other error, such as a
        failed store transaction, propagates: then none of the batches is known
        to be stored. Plain handlers see the batches one after the other, so a
        handler that waits (for I/O) waits once per batch: give such a stage a
        ``many`` form.
        """
        items = list(batches)
        for handler in self.handlers:
            if not items:
                break
            if isinstance(handler, Stage):
                items = await handler.many(items, on_reject)
                continue
            kept: list[IngestBatch] = []
            for item in items:
                try:
                    result = await handler(item)
                except PayloadError as exc:
                    on_reject(item, exc)
                    continue
                if result is not None:
                    kept.append(result)
            items = kept
        return items


_ACCEPTS: dict[ValueType, Callable[[Value], bool]] = {
    ValueType.NUMBER: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    ValueType.BOOL: lambda v: isinstance(v, bool),
    ValueType.STRING: lambda v: isinstance(v, str),
}


#: The Python types JSON decoding gives for each declared type (exact: no subclasses).
_TYPES: dict[ValueType, tuple[type, ...]] = {
    ValueType.NUMBER: (int, float),
    ValueType.BOOL: (bool,),
    ValueType.STRING: (str,),
}
# id(device type) -> (that device type, key -> accepted types). The registry hands out
# the same DeviceType object while it caches it; holding it keeps its id from being reused.
_declared: dict[int, tuple[DeviceType, dict[str, tuple[type, ...]]]] = {}


def _declared_types(device_type: DeviceType) -> dict[str, tuple[type, ...]]:
    cached = _declared.get(id(device_type))
    if cached is not None and cached[0] is device_type:
        return cached[1]
    if len(_declared) >= 1024:
        _declared.clear()
    types = {spec.key: _TYPES[spec.type] for spec in device_type.keys}
    _declared[id(device_type)] = (device_type, types)
    return types


async def check_device_type(batch: IngestBatch) -> IngestBatch:
    """Values must match the types the device type declares; strict types refuse other keys."""
    return _check_device_type(batch)


async def _check_device_types(
    batches: list[IngestBatch], on_reject: RejectHandler
) -> list[IngestBatch]:
    kept: list[IngestBatch] = []
    for batch in batches:
        try:
            kept.append(_check_device_type(batch))
        except PayloadError as exc:
            on_reject(batch, exc)
    return kept


#: The type check as a pipeline stage: :func:`check_device_type`, and its form for many.
DEVICE_TYPE_CHECK: Final = Stage(check_device_type, _check_device_types)


def _check_device_type(batch: IngestBatch) -> IngestBatch:
    device_type = batch.device_type
    if not device_type.keys and not device_type.strict:
        return batch
    # The common case in one pass over exact types; any doubt goes to the full check,
    # which names the field at fault.
    declared_types = _declared_types(device_type)
    strict = device_type.strict
    for _, values in batch.readings:
        for key, value in values.items():
            accepted = declared_types.get(key)
            if accepted is None:
                if strict:
                    return _check_fully(batch)
            elif type(value) not in accepted:
                return _check_fully(batch)
    return batch


def _check_fully(batch: IngestBatch) -> IngestBatch:
    device_type = batch.device_type
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
