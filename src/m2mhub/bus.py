"""The in-process event bus: typed events to subscribers that must not slow ingest.

Each subscriber has a bounded queue. When it falls behind and its queue is
full, the oldest events are dropped for it alone and counted in ``dropped``,
so a slow console tab never holds up a device's acknowledgement.

A long-lived subscriber (the rules engine, the fleet service) reads its
subscription through a :class:`BusListener`: one task, one event at a time,
failures counted, and :meth:`BusListener.drain` to wait for what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from m2mhub.core.values import Value

log = logging.getLogger(__name__)


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

    def __init__(
        self,
        maxsize: int,
        tenant_id: int | None,
        name: str = "subscriber",
        device_ids: frozenset[str] | None = None,
        wants: Callable[[Event], bool] | None = None,
    ) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.tenant_id = tenant_id
        self.name = name
        self.device_ids = device_ids
        self.wants = wants
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.tenant_id is not None and event.tenant_id != self.tenant_id:
            return
        # Filtered here, not by the reader: a console tab watching 50 devices is then woken
        # for their events only, not for every event of the tenant.
        if self.device_ids is not None and event.device_id not in self.device_ids:
            return
        if self.wants is not None and not self.wants(event):
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
        self,
        *,
        maxsize: int = 1000,
        tenant_id: int | None = None,
        name: str = "subscriber",
        device_ids: frozenset[str] | None = None,
        wants: Callable[[Event], bool] | None = None,
    ) -> AsyncIterator[Subscription]:
        """A subscription that lasts as long as the ``async with`` block; ``name`` (rules,
        console, ...) labels its lag and drops in the metrics; with ``device_ids``, only
        those devices' events are queued, and with ``wants``, only the events it accepts
        (called as each event is published: it must be quick and must not raise)."""
        subscription = Subscription(maxsize, tenant_id, name, device_ids, wants)
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


#: Events a :class:`BusListener` queues before it drops the oldest: two groups of MQTT
#: messages (up to 10,000 each, one event per message) fit with room to spare.
LISTENER_QUEUE: Final = 50_000
#: A listener with a backlog hands the event loop back after this many seconds of handling.
#: Taking a queued event does not wait, so without it a group's thousands of events would be
#: handled in one go while MQTT packets, database answers and other listeners wait.
LISTENER_SLICE_S: Final = 0.002


class BusListener:
    """Hands the events of one bus subscription to ``handle``, one at a time, in its own task.

    What ``handle`` raises is logged and counted in ``errors``; the next event is handled
    as usual. Each event is handled holding ``lock``, so the subscriber's timers can take
    the same lock to stay out of its way.
    """

    #: Seconds :meth:`stop` waits for queued events before it gives up on them.
    STOP_GRACE_S: Final = 5.0

    def __init__(
        self,
        bus: Bus,
        handle: Callable[[Event], Awaitable[None]],
        *,
        name: str,
        maxsize: int = LISTENER_QUEUE,
        lock: asyncio.Lock | None = None,
        wants: Callable[[Event], bool] | None = None,
    ) -> None:
        self.bus = bus
        self.handle = handle
        self.name = name  # of the subscription, in the metrics and the logs
        self.maxsize = maxsize
        self.wants = wants  # the events worth queueing (Bus.subscribe); None: all
        self.lock = lock if lock is not None else asyncio.Lock()
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._subscribed = asyncio.Event()
        self._busy = False
        self._idle = asyncio.Event()

    async def start(self) -> None:
        """Subscribe and start handling; returns once subscribed, so no event published
        after it is missed."""
        if self._task is not None:
            raise RuntimeError(f"{self.name}: the listener runs already; stop() it first")
        self._task = asyncio.create_task(self._listen(), name=f"{self.name}-listen")
        await self._subscribed.wait()

    async def stop(self) -> None:
        """Handle what is queued (for up to :attr:`STOP_GRACE_S`), then unsubscribe."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), self.STOP_GRACE_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def dropped(self) -> int:
        """Events the subscription lost because its queue was full (0 when not listening)."""
        return self._subscription.dropped if self._subscription is not None else 0

    async def drain(self) -> None:
        """Wait until every event published so far has been handled (at once when stopped)."""
        while self._subscription is not None and (self._subscription.lag or self._busy):
            self._idle.clear()
            await self._idle.wait()

    async def _listen(self) -> None:
        async with self.bus.subscribe(
            maxsize=self.maxsize, name=self.name, wants=self.wants
        ) as subscription:
            self._subscription = subscription
            self._subscribed.set()
            try:
                since = time.perf_counter()  # when this listener last let the loop run
                while True:
                    if not subscription.lag:
                        since = time.perf_counter()  # get() waits: the loop runs meanwhile
                    elif time.perf_counter() - since > LISTENER_SLICE_S:
                        await asyncio.sleep(0)
                        since = time.perf_counter()
                    event = await subscription.get()
                    self._busy = True
                    try:
                        async with self.lock:
                            await self.handle(event)
                    except Exception:
                        self.errors += 1
                        log.exception("%s: handling %s failed", self.name, type(event).__name__)
                    finally:
                        if not subscription.lag:
                            self._busy = False
                            self._idle.set()
            finally:
                self._subscription = None
                self._subscribed.clear()
                self._busy = False
                self._idle.set()  # a drain waiting when the listener is stopped returns
