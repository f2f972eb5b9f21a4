"""The in-process event bus: typed events to subscribers that must not slow ingest.

Each subscriber has a bounded queue. When it falls behind and its queue is
full, the oldest events are dropped for it alone and counted in ``dropped``,
so a slow console tab never holds up a device's acknowledgement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

from m2mhub.core.values import Value


class ReadingsStored(msgspec.Struct, frozen=True, tag="readings_stored"):
    """Readings of one device were committed to the store."""

    tenant_id: int
    device_pk: int
    device_id: str
    readings: list[tuple[int, dict[str, Value]]]


class AttributesReported(msgspec.Struct, frozen=True, tag="attributes_reported"):
    """A device reported attributes (its own state)."""

    tenant_id: int
    device_pk: int
    device_id: str
    ts: int
    attributes: dict[str, Any]


class DeviceEventRaised(msgspec.Struct, frozen=True, tag="device_event"):
    """A device reported that something happened."""

    tenant_id: int
    device_pk: int
    device_id: str
    ts: int
    kind: str
    data: dict[str, Any]


class ConnectionChanged(msgspec.Struct, frozen=True, tag="connection_changed"):
    """A device's MQTT connection opened (birth) or closed (last will)."""

    tenant_id: int
    device_pk: int
    device_id: str
    ts: int
    online: bool


class PresenceChanged(msgspec.Struct, frozen=True, tag="presence_changed"):
    """A device came online or went offline: announced once per change, across processes.

    ``reason`` says why: "connected" (its birth message), "reporting" (it is heard
    from), "silent" (nothing for ``offline_factor`` report intervals) or
    "disconnected" (its last will or its own "offline").
    """

    tenant_id: int
    device_pk: int
    device_id: str
    ts: int
    online: bool
    reason: str


class CommandChanged(msgspec.Struct, frozen=True, tag="command_changed"):
    """A command was queued, sent, answered, expired or timed out."""

    tenant_id: int
    device_pk: int
    device_id: str
    command_id: str
    method: str
    status: str


class TwinChanged(msgspec.Struct, frozen=True, tag="twin_changed"):
    """A device twin's desired or reported side changed."""

    tenant_id: int
    device_pk: int
    device_id: str
    side: str
    version: int


class AlarmChanged(msgspec.Struct, frozen=True, tag="alarm_changed"):
    """An alarm was raised, acknowledged, cleared or commented on."""

    tenant_id: int
    device_pk: int
    device_id: str
    alarm_id: int
    rule: str
    severity: str
    status: str
    change: str  # raised, acknowledged, cleared, comment


Event = (
    ReadingsStored
    | AttributesReported
    | DeviceEventRaised
    | ConnectionChanged
    | PresenceChanged
    | CommandChanged
    | TwinChanged
    | AlarmChanged
)


class Subscription:
    """A bounded queue of events for one subscriber."""

    def __init__(self, maxsize: int, tenant_id: int | None, name: str = "subscriber") -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.tenant_id = tenant_id
        self.name = name
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.tenant_id is not None and event.tenant_id != self.tenant_id:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    @property
    def lag(self) -> int:
        return self.queue.qsize()


class Bus:
    """Publish/subscribe within one process."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        # events dropped by subscriptions that have ended, by name: the metric never goes back
        self._dropped_before: dict[str, int] = {}

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.offer(event)

    @asynccontextmanager
    async def subscribe(
        self, *, maxsize: int = 1000, tenant_id: int | None = None, name: str = "subscriber"
    ) -> AsyncIterator[Subscription]:
        """A subscription that lasts as long as the ``async with`` block; ``name`` (rules,
        console, ...) labels its lag and drops in the metrics."""
        subscription = Subscription(maxsize, tenant_id, name)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            if subscription.dropped:
                before = self._dropped_before.get(name, 0)
                self._dropped_before[name] = before + subscription.dropped

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def stats(self) -> dict[str, SubscriberStats]:
        """Per subscriber name: how many are live, events waiting, events dropped ever."""
        stats = {
            name: SubscriberStats(live=0, lag=0, dropped=dropped)
            for name, dropped in self._dropped_before.items()
        }
        for subscription in self._subscriptions:
            entry = stats.setdefault(subscription.name, SubscriberStats(0, 0, 0))
            entry.live += 1
            entry.lag += subscription.lag
            entry.dropped += subscription.dropped
        return stats


@dataclass(slots=True)
class SubscriberStats:
    """The state of the bus subscribers that share a name."""

    live: int
    lag: int
    dropped: int
