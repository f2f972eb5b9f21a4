"""The platform's side of MQTT: one subscriber that feeds the ingest pipeline.

It subscribes to every device's inbound topics (through ``$share/<group>/``
on an external MQTT 5 broker, so several ingest processes split the load)
and handles each message:

- telemetry -> the same ingest pipeline as HTTP;
- attributes, events, status -> the registry's state and the bus.

QoS 1 is at-least-once end to end: a message is acknowledged to the broker
only after it has been committed (gmqtt sends PUBACK when the handler
returns). A message that fails for a reason of its own (bad JSON, unknown
device, over its rate) is acknowledged, logged and counted on the device, so
it is not redelivered for ever; a store failure is not acknowledged, so the
broker delivers it again after reconnecting.
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

from m2mhub.commands.service import parse_command_result
from m2mhub.connect.mqtt.topics import INBOUND, Channel, parse_topic
from m2mhub.core.errors import M2MHubError, NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.ingest.events import parse_events, parse_status
from m2mhub.ingest.payload import parse_attributes, parse_telemetry
from m2mhub.ingest.pipeline import IngestBatch
from m2mhub.store.models import Device

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
        self._buckets: dict[str, tuple[float, float]] = {}

    def admits(self, device_id: str) -> bool:
        now = time.monotonic()
        capacity = self.rate * BURST
        tokens, last = self._buckets.get(device_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[device_id] = (tokens, now)
            return False
        self._buckets[device_id] = (tokens - 1, now)
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
        )
        client.set_auth_credentials(self.address.username, self.address.password)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 2})
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
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
        # Let the handlers of messages already received finish (and commit) before the
        # store closes; they are not acknowledged, so the broker would send them again.
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

    async def _handle(self, topic: str, payload: bytes) -> int:
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
            if len(payload) > self.max_payload:
                raise PayloadError(
                    f"payload of {len(payload)} bytes is over the limit of {self.max_payload}",
                    field="body",
                )
            if not self.limiter.admits(device.id):
                raise PayloadError(
                    f"over the rate limit of {self.limiter.rate:g} messages/s", field="rate"
                )
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
