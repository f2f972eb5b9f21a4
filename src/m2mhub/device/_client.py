"""``DeviceClient``: one device's connection to m2mhub over MQTT.

Three loops run while the client is open:

- the connection loop connects (MQTT 3.1.1, clean session, a last will of
  ``offline``), subscribes to the device's commands and desired state, says
  ``online``, then receives messages and drains the buffer until the
  connection drops; it reconnects with backoff and jitter;
- the drain publishes the oldest buffered items at QoS 1, one message at a
  time, and removes them from the buffer when the broker's PUBACK arrives;
- the twin loop applies the latest desired state and reports back.

Commands run in tasks of their own, so a slow handler does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import aiomqtt
import msgspec
from aiomqtt.exceptions import MqttConnectError

from m2mhub.core.errors import M2MHubError
from m2mhub.device import _payloads as payloads
from m2mhub.device._backoff import backoff_delay
from m2mhub.device._buffer import Buffer, MemoryBuffer, SqliteBuffer
from m2mhub.device._commands import CommandHandler, CommandRouter
from m2mhub.device._topics import DeviceTopics, Outbound
from m2mhub.device._twin import DesiredHandler, DesiredState, parse_desired, report_for

log = logging.getLogger("m2mhub.device")

H = TypeVar("H", bound=CommandHandler)
D = TypeVar("D", bound=DesiredHandler)

#: At most this many messages a second from the drain: the platform refuses a device over
#: 50 a second by default (docs/devices.md#mqtt-limits); readings sent faster share a batch.
MAX_MESSAGES_PER_S: Final = 20.0
#: How long ``close()`` waits for the connection loop to say ``offline`` and disconnect.
CLOSE_TIMEOUT_S: Final = 10.0
#: Command ids remembered to ignore a QoS 1 re-delivery of a command already handled.
SEEN_COMMANDS: Final = 256
#: At most one log line about dropped items per this many seconds.
DROP_LOG_EVERY_S: Final = 60.0


@dataclass(frozen=True)
class Counters:
    """What became of the items (readings, events, attribute reports) this client took."""

    sent: int  #: items published; an item sent again after a lost connection counts again
    acknowledged: int  #: items the broker acknowledged (PUBACK) and that left the buffer
    buffered: int  #: items in the buffer now, waiting for the broker
    dropped: int  #: oldest items dropped because the buffer was full


class DeviceClient:
    """A device of m2mhub: sends telemetry, attributes and events, runs commands, follows
    its desired state.

    ``async with DeviceClient("meter-001", token, host="broker.example") as device:``
    opens the buffer and starts connecting in the background; ``send()`` works at
    once, connected or not. Leaving the block says ``offline`` and disconnects;
    what the broker has not acknowledged stays in the buffer for the next client
    on the same ``buffer_path``.

    Register command handlers and ``on_desired`` before entering the block, or
    right at its start, before the first ``await``.
    """

    def __init__(
        self,
        device_id: str,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: ssl.SSLContext | str | os.PathLike[str] | bool | None = None,
        buffer_path: str | os.PathLike[str] | None = None,
        max_buffered: int = 100_000,
        client_id: str | None = None,
        keepalive_s: int = 30,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        """Describe the connection; nothing happens until ``async with``.

        ``tls``: an ``ssl.SSLContext``, the path of a CA file, or True for the system's
        CAs (the port then defaults to 8883). ``buffer_path``: a SQLite file that
        keeps unacknowledged items across restarts; without it they are kept in
        memory only. ``max_buffered``: past this many items, the oldest are dropped.
        """
        self.topics = DeviceTopics(device_id)
        if max_buffered < 1:
            raise M2MHubError("max_buffered: must be at least 1", field="max_buffered")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise M2MHubError(
                "reconnect_min_s: must be above 0 and at most reconnect_max_s",
                field="reconnect_min_s",
            )
        self.device_id = device_id
        self._token = token
        self._host = host
        self._tls = _tls_context(tls)
        self._port = port if port is not None else (8883 if self._tls else 1883)
        self._client_id = client_id or device_id
        self._keepalive_s = keepalive_s
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._ack_timeout_s = ack_timeout_s
        self._buffer: Buffer = (
            SqliteBuffer(Path(buffer_path), max_items=max_buffered)
            if buffer_path is not None
            else MemoryBuffer(max_items=max_buffered)
        )
        self._commands = CommandRouter()
        self._on_desired: DesiredHandler | None = None
        self._desired = DesiredState()
        self._applied: Mapping[str, Any] = {}
        self._applied_version = 0
        self._unreported: dict[str, Any] = {}
        self._seen: deque[str] = deque(maxlen=SEEN_COMMANDS)
        # State of the connection, changed only by the connection loop.
        self._session: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._closing = asyncio.Event()
        self._wake = asyncio.Event()  # new items in the buffer
        self._progress = asyncio.Event()  # items left the buffer
        self._twin_due = asyncio.Event()
        self._sent = self._acknowledged = self._buffered = self._dropped = 0
        self._last_stamp = 0
        self._last_drop_log = -DROP_LOG_EVERY_S
        self._open = False
        self._runner: asyncio.Task[None] | None = None
        self._twin: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> DeviceClient:
        if self._open or self._closing.is_set():
            raise M2MHubError("a DeviceClient is opened once; make a new one to connect again")
        await self._buffer.open()
        self._buffered = await self._buffer.count()
        self._open = True
        name = f"m2mhub-device-{self.device_id}"
        self._runner = asyncio.create_task(self._connect_loop(), name=name)
        self._twin = asyncio.create_task(self._twin_loop(), name=f"{name}-twin")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Say ``offline``, disconnect cleanly and close the buffer (what is in it stays)."""
        if not self._open:
            return
        self._open = False
        self._closing.set()
        pending = [*self._tasks, *([self._twin] if self._twin else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), CLOSE_TIMEOUT_S)
            except TimeoutError:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
        await self._buffer.close()

    # -- sending -----------------------------------------------------------------------

    async def send(self, values: Mapping[str, Any], *, ts: int | datetime | None = None) -> int:
        """Send one reading: ``{"temp": 21.5, "door": True}``; returns its timestamp (UTC ms).

        ``ts`` (UTC milliseconds or an aware datetime) defaults to now, taken at this
        call and kept through the buffer. Returns once the reading is in the buffer;
        it goes out when the client is connected. Raises ``PayloadError`` for a
        reading the platform would refuse.
        """
        stamp = self._stamp() if ts is None else payloads.to_ms(ts)
        await self._put(Outbound.TELEMETRY, payloads.reading(values, stamp))
        return stamp

    async def send_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Report attributes of the device itself (firmware, configuration): any JSON values.

        The platform keeps the last value of each, stamped when it arrives.
        """
        await self._put(Outbound.ATTRIBUTES, payloads.attributes(attributes))

    async def send_event(
        self,
        kind: str,
        data: Mapping[str, Any] | None = None,
        *,
        ts: int | datetime | None = None,
    ) -> int:
        """Raise an event: ``send_event("door_forced", {"door": 3})``; returns its timestamp."""
        stamp = self._stamp() if ts is None else payloads.to_ms(ts)
        await self._put(Outbound.EVENTS, payloads.event(kind, data, stamp))
        return stamp

    async def flush(self) -> None:
        """Wait until the buffer is empty: everything sent so far acknowledged by the broker."""
        self._check_open()
        while self._buffered:
            self._progress.clear()
            await self._progress.wait()

    def _stamp(self) -> int:
        """Now in UTC ms, distinct from the previous stamp.

        The platform keeps one value per (device, key, ts): a second reading in the
        same millisecond would be taken for a re-send. A burst moves on by a
        millisecond each; a clock set back by more than a second is followed.
        """
        now = time.time_ns() // 1_000_000
        if now <= self._last_stamp < now + 1000:
            now = self._last_stamp + 1
        self._last_stamp = now
        return now

    async def _put(self, kind: Outbound, body: bytes) -> None:
        self._check_open()
        dropped = await self._buffer.put(kind, body)
        self._buffered = await self._buffer.count()
        if dropped:
            self._dropped += dropped
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_EVERY_S:
                self._last_drop_log = now
                log.warning(
                    "%s: buffer full (%d items): dropped the oldest, %d so far",
                    self.device_id,
                    self._buffered,
                    self._dropped,
                )
        self._wake.set()

    def _check_open(self) -> None:
        if not self._open:
            raise M2MHubError(
                "the client is not open; use it inside `async with DeviceClient(...) as device:`"
            )

    # -- commands and twin -------------------------------------------------------------

    def command(self, method: str) -> Callable[[H], H]:
        """Register the handler of a command method.

        The handler (async or not) gets the command's params as a dict and returns
        its result (any JSON value). An exception fails the command with its text::

            @device.command("set_relay")
            async def set_relay(params):
                relay.set(params["on"])
                return {"relay": params["on"]}

        A command whose method has no handler fails with "unknown method".
        """
        payloads.check_key(method, "method")

        def register(handler: H) -> H:
            self._commands.add(method, handler)
            return handler

        return register

    def on_desired(self, handler: D) -> D:
        """Register the function that applies the desired state (async or not).

        It gets the whole desired state as a dict, on the first connection and on
        every change. Returning None reports that state as applied; returning a
        dict reports that instead. An exception reports nothing (logged).
        """
        self._on_desired = handler
        self._twin_due.set()  # a desired state may have arrived already
        return handler

    @property
    def desired(self) -> DesiredState:
        """The latest desired state received, with its version (0 before the first)."""
        return self._desired

    async def report(self, state: Mapping[str, Any]) -> None:
        """Report state of the device to its twin (merged; None deletes a key).

        Sent at once when connected, else on the next connection.
        """
        payloads.encode(dict(state), what="state")
        self._unreported.update(state)
        self._twin_due.set()

    # -- state -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected to the broker (subscribed and ``online`` acknowledged)."""
        return self._session is not None

    async def wait_connected(self) -> None:
        """Wait until the client is connected."""
        self._check_open()
        await self._up.wait()

    @property
    def counters(self) -> Counters:
        return Counters(self._sent, self._acknowledged, self._buffered, self._dropped)

    # -- the connection loop -----------------------------------------------------------

    def _mqtt_client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self._host,
            self._port,
            username=self.device_id,
            password=self._token,
            identifier=self._client_id,
            # MQTT 3.1.1: the embedded broker speaks nothing newer (docs/devices.md#connecting).
            protocol=aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=False),
            clean_session=True,
            keepalive=self._keepalive_s,
            tls_context=self._tls,
            timeout=self._ack_timeout_s,
            logger=logging.getLogger("m2mhub.device.mqtt"),
        )

    async def _connect_loop(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            try:
                async with self._mqtt_client() as client:
                    attempt = 0
                    await self._serve(client)
            except MqttConnectError as exc:
                # "Not authorised" needs a new token: retrying only slowly (backoff) helps.
                log.error("%s: the broker refused the connection: %s", self.device_id, exc)
            except aiomqtt.MqttError as exc:
                log.warning("%s: connection lost or failed: %s", self.device_id, exc)
            except Exception:
                log.exception("%s: unexpected error; reconnecting", self.device_id)
            if self._closing.is_set():
                return
            delay = backoff_delay(attempt, first_s=self._reconnect[0], max_s=self._reconnect[1])
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connection: subscribe, birth message, then receive and drain until it ends."""
        topics = self.topics
        # Subscribed before "online": the birth message releases queued commands.
        await client.subscribe([(topics.commands, 1), (topics.desired, 1)])
        await client.publish(topics.status, b"online", qos=1)
        self._set_session(client)
        log.info("%s: connected to %s:%d", self.device_id, self._host, self._port)
        work = {
            asyncio.create_task(self._receive(client)),
            asyncio.create_task(self._drain(client)),
        }
        closing = asyncio.create_task(self._closing.wait())
        try:
            done, _ = await asyncio.wait({*work, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._set_session(None)
            for task in (*work, closing):
                task.cancel()
            await asyncio.gather(*work, closing, return_exceptions=True)
        if closing in done:
            # A clean disconnect does not fire the last will: say it ourselves.
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(topics.status, b"offline", qos=1)
            return
        for task in done:
            task.result()  # raises what ended the connection

    def _set_session(self, client: aiomqtt.Client | None) -> None:
        self._session = client
        if client is None:
            self._up.clear()
            self._down.set()
        else:
            self._down.clear()
            self._up.set()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            body = message.payload if isinstance(message.payload, bytes) else b""
            if topic == self.topics.desired:
                self._take_desired(body)
            elif (command_id := self.topics.command_id(topic)) is not None:
                self._take_command(command_id, body)

    async def _drain(self, client: aiomqtt.Client) -> None:
        topics = self.topics
        loop = asyncio.get_running_loop()
        next_at = 0.0
        while True:
            self._wake.clear()
            items = await self._buffer.oldest(payloads.MAX_BATCH)
            if not items:
                await self._wake.wait()
                continue
            wait = next_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the rate limit; what arrives meanwhile joins later
            batch = payloads.next_batch(items)
            kind = batch[0].kind
            message = payloads.pack(kind, [item.body for item in batch])
            self._sent += len(batch)
            next_at = loop.time() + 1 / MAX_MESSAGES_PER_S
            await client.publish(topics.outbound(kind), message, qos=1)  # returns on PUBACK
            await self._buffer.remove([item.seq for item in batch])
            self._acknowledged += len(batch)
            self._buffered = await self._buffer.count()
            self._progress.set()

    async def _publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 on the current connection, again on the next one if it drops."""
        while True:
            await self._up.wait()
            client = self._session
            if client is None:
                continue
            try:
                await client.publish(topic, payload, qos=1)
                return
            except aiomqtt.MqttError:
                while self._session is client:
                    await self._down.wait()

    def _take_command(self, command_id: str, payload: bytes) -> None:
        if command_id in self._seen:
            return  # a QoS 1 re-delivery: answered already
        self._seen.append(command_id)
        task = asyncio.create_task(self._answer(command_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, command_id: str, payload: bytes) -> None:
        answer = await self._commands.answer(payload)
        if answer is not None:
            await self._publish(self.topics.result(command_id), answer)

    def _take_desired(self, payload: bytes) -> None:
        try:
            desired = parse_desired(payload)
        except ValueError as exc:
            log.warning("%s: %s", self.device_id, exc)
            return
        if desired.version > self._desired.version:
            self._desired = desired
        self._twin_due.set()

    async def _twin_loop(self) -> None:
        while True:
            await self._twin_due.wait()
            self._twin_due.clear()
            desired = self._desired
            if self._on_desired is not None and desired.version > self._applied_version:
                await self._apply(self._on_desired, desired)
            if self._unreported:
                report, self._unreported = self._unreported, {}
                body = msgspec.json.encode({"reported": report, "version": self._applied_version})
                try:
                    await self._publish(self.topics.reported, body)
                except BaseException:
                    self._unreported = {**report, **self._unreported}
                    raise

    async def _apply(self, handler: DesiredHandler, desired: DesiredState) -> None:
        try:
            returned = handler(dict(desired.state))
            if inspect.isawaitable(returned):
                returned = await returned
        except Exception:
            log.exception("%s: on_desired failed on version %d", self.device_id, desired.version)
            return
        report = (
            dict(returned) if returned is not None else report_for(self._applied, desired.state)
        )
        self._applied, self._applied_version = desired.state, desired.version
        self._unreported.update(report)


def _tls_context(
    tls: ssl.SSLContext | str | os.PathLike[str] | bool | None,
) -> ssl.SSLContext | None:
    """None or False: plain TCP; True: the system's CAs; a path: that CA file; or a context."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    if tls is None or tls is False:
        return None
    cafile = None if tls is True else os.fspath(tls)
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise M2MHubError(f"tls: cannot use the CA file {cafile!r}: {exc}", field="tls") from None
