"""The platform's side of MQTT: one subscriber that feeds the ingest pipeline.

It subscribes to every device's inbound topics (through ``$share/<group>/``
on an external MQTT 5 broker, so several ingest processes split the load)
and handles each message:

- telemetry -> the same ingest pipeline as HTTP;
- attributes, events, status -> the registry's state and the bus.

QoS 1 is at-least-once end to end: a message is acknowledged to the broker
only after it has been committed. A message that fails for a reason of its
own (bad JSON, unknown device, over its rate) is acknowledged, logged and
counted on the device, so it is not redelivered for ever; a store failure is
not acknowledged, so the broker delivers it again after reconnecting.

QoS 1 messages do not each get a task: they are collected as gmqtt reads
them, and what has arrived meanwhile goes through the pipeline together, one
transaction for all its telemetry, then every PUBACK of the group is written
at once (docs/architecture.md). QoS 0 messages and the rare channels
(attributes, events, status, command results, twins) take the one-message path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.mqtt.package import Package

from m2mhub.commands.service import parse_command_result
from m2mhub.connect.mqtt.topics import INBOUND, Channel, parse_topic
from m2mhub.core.errors import M2MHubError, NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.ingest.events import parse_events, parse_status
from m2mhub.ingest.payload import parse_attributes, parse_telemetry
from m2mhub.ingest.pipeline import IngestBatch
from m2mhub.store.models import Device, DeviceType

if TYPE_CHECKING:
    from m2mhub.config import Settings
    from m2mhub.platform import Platform

log = logging.getLogger(__name__)

#: A device may exceed its rate by this factor in a short burst (token bucket size).
BURST: Final = 5.0
#: How often rejected-message counters are written to the devices.
FLUSH_S: Final = 2.0
#: At most one log line per device per this many seconds about its rejected messages.
LOG_EVERY_S: Final = 10.0
#: How long the subscriber keeps a telemetry topic's device and type before asking the
#: registry again (which caches them for 10 s itself).
ROUTE_TTL_S: Final = 2.0
#: At most this many received messages, and payloads of at most this many bytes, are handled
#: together (one transaction, one write of acks). A large transaction writes each device's
#: pages once for more of its readings.
GROUP_MAX: Final = 10_000
GROUP_MAX_BYTES: Final = 32 * 1024 * 1024
#: While a group is parsed, the event loop turns to other work after this many messages.
YIELD_EVERY: Final = 1_000
#: Groups handled at once: while one waits for its commit, the next is parsed.
GROUPS_IN_FLIGHT: Final = 2
#: PUBACK with a packet id and nothing else: MQTT 3.1.1 section 3.4; in MQTT 5 (section
#: 3.4.2.1) the reason code may be left out when it is 0 (success) and there are no properties.
PUBACK: Final = b"\x40\x02"


class BrokerAddress:
    """Where the subscriber connects: host, port, TLS, credentials, protocol version."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        password: str,
        tls: ssl.SSLContext | None = None,
        version: int = MQTTv50,
        shared_group: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls = tls
        self.version = version
        self.shared_group = shared_group

    @classmethod
    def from_url(
        cls, url: str, *, username: str, password: str, ca_file: str, shared_group: str
    ) -> BrokerAddress:
        """``mqtt://host:1883`` or ``mqtts://host:8883`` of an external MQTT 5 broker."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise M2MHubError(
                f"mqtt_url: {url!r} is not an MQTT URL; use mqtt://host:1883 or mqtts://host:8883",
                field="mqtt_url",
            )
        tls = None
        if parts.scheme == "mqtts":
            try:
                tls = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise M2MHubError(
                    f"mqtt_ca_file: cannot use {ca_file!r}: {exc}", field="mqtt_ca_file"
                ) from None
        port = parts.port or (8883 if tls else 1883)
        return cls(
            parts.hostname,
            port,
            username=parts.username or username,
            password=parts.password or password,
            tls=tls,
            version=MQTTv50,
            shared_group=shared_group or None,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerAddress:
        """The external broker of ``mqtt_url``, as m2mhub's account sees it."""
        return cls.from_url(
            settings.mqtt_url,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            ca_file=settings.mqtt_ca_file,
            shared_group=settings.mqtt_shared_group,
        )

    def filters(self) -> list[str]:
        if self.shared_group:
            return [f"$share/{self.shared_group}/{f}" for f in INBOUND]
        return list(INBOUND)


class RateLimiter:
    """A token bucket per device: ``rate`` messages a second, bursts of ``BURST * rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._capacity = rate * BURST
        self._buckets: dict[str, list[float]] = {}  # device id -> [tokens, at]

    def admits(self, device_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = [self._capacity, now]
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self._capacity:
            tokens = self._capacity
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True


class MqttTransport:
    """Subscribes to devices' topics on a broker and hands messages to the platform."""

    def __init__(self, platform: Platform, address: BrokerAddress, *, client_id: str) -> None:
        self.platform = platform
        self.address = address
        self.client_id = client_id
        self.limiter = RateLimiter(platform.settings.mqtt_device_rate)
        self.max_payload = platform.settings.mqtt_max_payload_bytes
        self.received = 0
        self.rejected = 0
        self.connected = asyncio.Event()
        self._pending: dict[int, list[Any]] = {}  # device pk -> [count, error, at]
        self._logged: dict[str, float] = {}
        self._client: Client | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()  # message handlers not finished yet
        self._inbox: list[tuple[int, str, bytes]] = []  # QoS 1 (packet id, topic, payload)
        self._arrived = asyncio.Event()
        self._grouper: asyncio.Task[None] | None = None
        # telemetry topic -> (valid until, device, its type); see ROUTE_TTL_S
        self._routes: dict[str, tuple[float, Device, DeviceType]] = {}
        self._read_publish: Callable[[int, bytes], None] = lambda command, packet: None
        self._handlers: dict[Channel, Callable[[Device, bytes, int], Awaitable[None]]] = {
            Channel.TELEMETRY: self._telemetry,
            Channel.ATTRIBUTES: self._attributes,
            Channel.EVENTS: self._events,
            Channel.STATUS: self._status,
            Channel.TWIN_REPORTED: self._twin_reported,
        }

    async def start(self) -> None:
        # A persistent session keeps QoS 1 messages for us while we reconnect.
        client = Client(
            self.client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            session_expiry_interval=3600,
            # Enough for groups to grow to GROUP_MAX with a backlog at the broker; without
            # it Mosquitto sends a few hundred messages ahead of the acknowledgements.
            receive_maximum=self.platform.settings.mqtt_receive_maximum,
        )
        client.set_auth_credentials(self.address.username, self.address.password)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 2})
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message  # QoS 0
        # gmqtt 0.8 runs each QoS 1 message's on_message as its own task and acknowledges it
        # when that returns; receive them here instead, to handle and acknowledge in groups.
        # Set on the instance before gmqtt caches its packet handlers (at the first packet).
        handler = client._package_handler
        handler._handle_qos_1_publish_packet = self._receive
        self._read_publish = self._publish_packet_reader(
            handler._handle_publish_packet, has_properties=self.address.version == MQTTv50
        )
        handler._handle_publish_packet = self._read_publish
        self._client = client
        self._grouper = asyncio.create_task(self._group_loop(), name="m2mhub-mqtt-groups")
        try:
            await client.connect(
                self.address.host,
                self.address.port,
                ssl=self.address.tls or False,
                version=self.address.version,
            )
        except Exception as exc:
            raise M2MHubError(
                f"mqtt_url: cannot connect to the MQTT broker at "
                f"{self.address.host}:{self.address.port}: {exc}",
                field="mqtt_url",
            ) from exc
        await self.connected.wait()
        self._flusher = asyncio.create_task(self._flush_loop(), name="m2mhub-mqtt-rejections")

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)
        if self._grouper is not None:
            self._grouper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._grouper
            self._grouper = None
        # Let the handlers of messages already received finish (and commit) before the
        # store closes; they are not acknowledged, so the broker would send them again.
        while self._inbox:
            messages = self._take_group()
            self._track(asyncio.create_task(self._handle_group(messages)))
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=10)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush()

    # -- gmqtt callbacks ---------------------------------------------------------------

    def _on_connect(self, client: Client, flags: int, rc: int, properties: Any) -> None:
        self._read_packets_faster(client)
        for topic_filter in self.address.filters():
            client.subscribe(topic_filter, qos=1)
        log.info("MQTT subscriber connected to %s:%d", self.address.host, self.address.port)
        self.connected.set()

    def _on_disconnect(self, client: Client, packet: Any, exc: Any = None) -> None:
        self.connected.clear()
        if self._client is not None:  # not a stop() of ours
            log.warning("MQTT subscriber disconnected; reconnecting")

    async def _on_message(
        self, client: Client, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await self._handle(topic, payload)
        finally:
            self._inflight.discard(task)

    # -- QoS 1: handled in groups -----------------------------------------------------

    def _receive(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        """gmqtt's QoS 1 hook: keep the message until its group is handled."""
        self._inbox.append((mid, topic, payload))
        self._arrived.set()

    def _read_packets_faster(self, client: Client) -> None:
        """Split the connection's incoming bytes into packets with less work per packet.

        gmqtt 0.8 hands every packet through four calls (with a log call and two
        clock reads) before it reaches the PUBLISH reader; QoS 1 PUBLISH packets
        go straight to it here, everything else the way gmqtt does. Installed on
        each new connection (gmqtt makes one per reconnect).
        """
        connection = client._connection
        protocol = connection._protocol
        handler = client._package_handler
        general = protocol._read_packet
        read_publish = self._read_publish

        def read_packets(data: bytes) -> int:
            if handler.current_connection is not connection:
                return int(general(data))  # a superseded connection: gmqtt drops its packets
            size = len(data)
            position = 0
            published = False
            while size - position >= 2:
                # Fixed header: the type byte, then the remaining length in 1-4 bytes of
                # 7 bits each (MQTT 3.1.1 section 2.2.3).
                length = shift = 0
                index = position + 1
                while True:
                    if index >= size:
                        return position
                    byte = data[index]
                    length |= (byte & 0x7F) << shift
                    index += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        return -1
                end = index + length
                if end > size:
                    break
                command = data[position]
                if command & 0xF6 == 0x32:  # PUBLISH at QoS 1 (any DUP and RETAIN)
                    read_publish(command, data[index:end])
                    published = True
                else:
                    connection.put_package(Package(command, data[index:end]))
                position = end
            if published:  # what gmqtt's keep-alive looks at
                connection._last_data_in = handler._last_msg_in = time.monotonic()
            return position

        protocol._read_packet = read_packets

    def _publish_packet_reader(
        self, general: Callable[[int, bytes], None], *, has_properties: bool
    ) -> Callable[[int, bytes], None]:
        """A PUBLISH reader for the common case: QoS 1, a topic name, no properties.

        gmqtt's own reader builds struct formats, parses properties and logs for
        every message, which cost more than the rest of ingest together. Anything
        else (QoS 0 or 2, properties such as topic aliases) goes to gmqtt's reader.
        Layout: MQTT 3.1.1 section 3.3.2, MQTT 5 section 3.3.2.
        """
        inbox = self._inbox
        arrived = self._arrived

        def read(command: int, packet: bytes) -> None:
            if command & 0x06 != 0x02:  # not QoS 1
                general(command, packet)
                return
            end = 2 + (packet[0] << 8 | packet[1])
            start = end + 2
            if has_properties:
                if packet[start] != 0:  # a property length other than 0
                    general(command, packet)
                    return
                start += 1
            try:
                topic = packet[2:end].decode()
            except UnicodeDecodeError:
                general(command, packet)
                return
            inbox.append((packet[end] << 8 | packet[end + 1], topic, packet[start:]))
            arrived.set()

        return read

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _group_loop(self) -> None:
        """Hand what has arrived to a group handler, at most GROUPS_IN_FLIGHT at a time.

        Messages that arrive while the groups in flight wait for their commits
        form the next group, so groups grow with the load.
        """
        slots = asyncio.Semaphore(GROUPS_IN_FLIGHT)
        while True:
            await self._arrived.wait()
            await slots.acquire()
            messages = self._take_group()
            if not self._inbox:
                self._arrived.clear()
            if not messages:
                slots.release()
                continue
            task = asyncio.create_task(self._handle_group(messages))
            self._track(task)
            task.add_done_callback(lambda _: slots.release())

    def _take_group(self) -> list[tuple[int, str, bytes]]:
        """The oldest messages of the inbox, up to GROUP_MAX of them and GROUP_MAX_BYTES."""
        messages = self._inbox[:GROUP_MAX]
        size = 0
        for index, (_, _, payload) in enumerate(messages):
            size += len(payload)
            if size > GROUP_MAX_BYTES and index:
                messages = messages[:index]
                break
        del self._inbox[: len(messages)]
        return messages

    async def _handle_group(self, messages: list[tuple[int, str, bytes]]) -> None:
        """Telemetry of the whole group through the pipeline at once; then the PUBACKs.

        Messages refused for themselves are acknowledged with the group; if the
        store fails, only they are, and the stored-or-not telemetry is left to
        the broker to deliver again.
        """
        self.received += len(messages)
        done: set[int] = set()  # packet ids to acknowledge whatever happens to the store
        batches: list[IngestBatch] = []
        mids: list[int] = []
        arrival = now_ms()
        clock = time.monotonic()
        routes = self._routes
        stale = {t for _, t, _ in messages if (r := routes.get(t)) is None or r[0] < clock}
        if stale:
            await self._route(stale, clock)
        for index, (mid, topic, payload) in enumerate(messages):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a large group does not hold the API up
            route = routes.get(topic)
            if route is None:  # not the telemetry topic of a known device
                parsed = parse_topic(topic)
                if parsed is None:
                    done.add(mid)
                elif parsed.channel is not Channel.TELEMETRY:
                    self._handle_alone(mid, topic, payload)
                else:
                    self.rejected += 1
                    self._log(parsed.device_id, "message from an unknown device")
                    done.add(mid)
                continue
            _, device, device_type = route
            try:
                self._check_limits(device, payload, clock)
                readings = parse_telemetry(payload, now=arrival, limits=self.platform.limits)
            except PayloadError as exc:
                self._reject(device, Channel.TELEMETRY, exc.message, arrival)
                done.add(mid)
                continue
            batches.append(
                IngestBatch(device, device_type, readings, arrival_ms=arrival, source="mqtt")
            )
            mids.append(mid)
        if batches:
            try:
                await self.platform.pipeline.submit_many(
                    batches,
                    on_reject=lambda b, e: self._reject(
                        b.device, Channel.TELEMETRY, e.message, b.arrival_ms
                    ),
                )
            except Exception:
                log.exception(
                    "could not store %d MQTT messages; not acknowledged, the broker will "
                    "send them again",
                    len(batches),
                )
            else:
                done.update(mids)
        # In the order received (MQTT 3.1.1 section 4.6).
        self._acknowledge([mid for mid, _, _ in messages if mid in done])

    async def _route(self, topics: set[str], clock: float) -> None:
        """Find the device and type of each telemetry topic among ``topics``, in one query.

        A topic of another channel or of an unknown device is left without a route.
        """
        wanted: dict[str, str] = {}  # device id -> its telemetry topic
        for topic in topics:
            self._routes.pop(topic, None)
            parsed = parse_topic(topic)
            if parsed is not None and parsed.channel is Channel.TELEMETRY:
                wanted[parsed.device_id] = topic
        if not wanted:
            return
        devices = await self.platform.registry.devices(wanted)
        until = clock + ROUTE_TTL_S
        for device_id, device in devices.items():
            try:
                device_type = await self.platform.registry.device_type_of(device)
            except NotFoundError:  # deleted meanwhile: as an unknown device
                continue
            self._routes[wanted[device_id]] = (until, device, device_type)

    def _handle_alone(self, mid: int, topic: str, payload: bytes) -> None:
        """A message of another channel: its own task, acknowledged when it returns."""

        def finished(task: asyncio.Task[int]) -> None:
            if task.cancelled():
                return
            if task.exception() is not None:
                log.error(
                    "MQTT message on %s failed; not acknowledged", topic, exc_info=task.exception()
                )
                return
            self._acknowledge([mid])

        task = asyncio.create_task(self._handle(topic, payload, counted=True))
        self._track(task)
        task.add_done_callback(finished)

    def _acknowledge(self, mids: list[int]) -> None:
        """One write for every PUBACK of a group."""
        client = self._client
        connection = client._connection if client is not None else None
        if not mids or connection is None or connection.is_closing():
            return  # not acknowledged: the broker sends them again after reconnecting
        connection.send_package(b"".join(PUBACK + mid.to_bytes(2, "big") for mid in mids))

    def _check_limits(self, device: Device, payload: bytes, now: float | None = None) -> None:
        if len(payload) > self.max_payload:
            raise PayloadError(
                f"payload of {len(payload)} bytes is over the limit of {self.max_payload}",
                field="body",
            )
        if not self.limiter.admits(device.id, now):
            raise PayloadError(
                f"over the rate limit of {self.limiter.rate:g} messages/s", field="rate"
            )

    # -- one message at a time (QoS 0, and channels other than telemetry) -------------------

    async def _handle(self, topic: str, payload: bytes, *, counted: bool = False) -> int:
        if not counted:
            self.received += 1
        parsed = parse_topic(topic)
        if parsed is None:
            return 0
        arrival = now_ms()
        try:
            device = await self.platform.registry.device(parsed.device_id)
        except NotFoundError:
            self.rejected += 1
            self._log(parsed.device_id, "message from an unknown device")
            return 0
        try:
            self._check_limits(device, payload)
            if parsed.channel is Channel.COMMAND_RESULT:
                await self._command_result(device, parsed.command_id or "", payload)
            else:
                await self._handlers[parsed.channel](device, payload, arrival)
        except PayloadError as exc:
            self._reject(device, parsed.channel, exc.message, arrival)
        return 0

    # -- channels -----------------------------------------------------------------------

    async def _telemetry(self, device: Device, payload: bytes, arrival: int) -> None:
        readings = parse_telemetry(payload, now=arrival, limits=self.platform.limits)
        device_type = await self.platform.registry.device_type_of(device)
        await self.platform.ingest(
            IngestBatch(device, device_type, readings, arrival_ms=arrival, source="mqtt")
        )

    async def _attributes(self, device: Device, payload: bytes, arrival: int) -> None:
        await self.platform.report_attributes(device, parse_attributes(payload))

    async def _events(self, device: Device, payload: bytes, arrival: int) -> None:
        events = parse_events(payload, now=arrival, limits=self.platform.limits)
        await self.platform.record_events(device, events)

    async def _status(self, device: Device, payload: bytes, arrival: int) -> None:
        await self.platform.set_connection(device, parse_status(payload))

    async def _twin_reported(self, device: Device, payload: bytes, arrival: int) -> None:
        await self.platform.commands.report(device, payload)

    async def _command_result(self, device: Device, command_id: str, payload: bytes) -> None:
        try:
            await self.platform.commands.answer(device, command_id, parse_command_result(payload))
        except NotFoundError:
            raise PayloadError(f"no command {command_id!r}", field="command") from None

    async def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish to a device topic at QoS 1 (commands, desired state)."""
        if self._client is None or not self.connected.is_set():
            raise M2MHubError("the MQTT subscriber is not connected; the broker will be retried")
        self._client.publish(topic, payload, qos=1, retain=retain)

    # -- rejected messages -----------------------------------------------------------------

    def _reject(self, device: Device, channel: Channel, reason: str, at: int) -> None:
        self.rejected += 1
        self.platform.rejected += 1
        entry = self._pending.setdefault(device.pk, [0, "", 0])
        entry[0] += 1
        entry[1] = f"mqtt {channel.value}: {reason}"
        entry[2] = at
        self._log(device.id, f"rejected {channel.value}: {reason}")

    def _log(self, device_id: str, message: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(device_id, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[device_id] = now
            log.warning("device %s: %s", device_id, message)

    async def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        await self.platform.store.add_rejections(
            [(pk, count, error, at) for pk, (count, error, at) in pending.items()]
        )

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await self._flush()
            except Exception:
                log.exception("could not record rejected MQTT messages")


def embedded_address(host: str, port: int, username: str, password: str) -> BrokerAddress:
    """The embedded broker speaks MQTT 3.1.1 and serves one process: no shared group."""
    return BrokerAddress(
        "127.0.0.1" if host in ("0.0.0.0", "") else host,
        port,
        username=username,
        password=password,
        version=MQTTv311,
    )
