"""The load generator's lean MQTT 3.1.1 publisher: one asyncio connection per device.

A device's values are encoded before the run; at run time a connection only
stamps a timestamp into a prepared payload, writes the PUBLISH packet and counts
what the broker confirms. It keeps at most ``window`` messages unconfirmed, so
QoS 1 packet ids never wrap onto a message still in flight (paho stalls past
65,535). At QoS 1 a message is confirmed by its PUBACK; at QoS 0 nothing is
acknowledged, so the connection sends a PINGREQ after every ``window // 2``
messages: a broker handles a connection's packets in order, so its PINGRESP
confirms that it has read every message before it.

There is no reconnection: a refused login or a lost connection ends the device,
and what it had not confirmed counts as failed. Packet layouts are those of
MQTT 3.1.1 (OASIS standard, section 3).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from typing import Final, cast

from m2mhub.sim.mqtt_wire import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBLISH_QOS0,
    PUBLISH_QOS1,
    connect_packet,
    next_packet,
    remaining_length,
    string,
)

#: CONNACK return codes (section 3.2.2.3).
CONNACK_REASONS: Final = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
#: How many connections are opened at once (Mosquitto's listen backlog is 100).
CONNECTING_AT_ONCE: Final = 64
#: Bytes written but not yet taken by the kernel before a QoS 0 device waits.
WRITE_HIGH_WATER: Final = 256 * 1024


class MqttDevice(asyncio.Protocol):
    """One device's connection: publishes what it is allowed to, within its window.

    ``payloads`` are the device's readings as JSON fragments (``{"power_kw":1.2}``);
    each message is ``{"ts":<ms>,"values":<fragment>}``, cycling through them,
    with a timestamp that is the wall clock, or 1 ms after the device's previous
    one when that is later, so that no two readings of a device share a time.
    """

    def __init__(
        self,
        device_id: str,
        topic: str,
        payloads: Sequence[bytes],
        *,
        qos: int,
        window: int,
        quota: int | None = None,
    ) -> None:
        self.device_id = device_id
        self.qos = qos
        self.quota = quota  #: how many messages the device sends in all; None: no end
        self.window = window
        self.payloads = payloads
        self.topic = string(topic)
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.allowed = 0  #: messages the pacing allows so far (may be more than sent)
        self.sent = 0  #: messages written to the connection
        self.acked = 0  #: messages the broker confirmed
        self.error: str | None = None  #: why the device stopped early
        self.settled = asyncio.Event()  #: set whenever nothing is waiting for the broker
        self.confirmed_at: float | None = None  #: ``time.monotonic()`` of the last confirmation
        self.settled.set()
        self._buffer = b""
        self._next_id = 0
        self._last_ts = 0
        self._pinged_at: list[int] = []  # ``sent`` at each PINGREQ not yet answered
        self._paused = False

    @property
    def is_alive(self) -> bool:
        return self.error is None and self.transport is not None

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = f"connection lost{f': {exc}' if exc else ''}"
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(self.error))
            self.connack.exception()  # retrieved by whoever awaits it; no "never retrieved"
        self.transport = None
        self.settled.set()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self.pump()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        # The hot path at QoS 1: nothing but PUBACKs, 4 bytes each.
        count = len(buffer) // 4
        if count and buffer[0 : count * 4 : 4] == b"\x40" * count:
            buffer = buffer[count * 4 :]
            self._confirmed(count)
        self._buffer = self._parse(buffer)
        self.pump()

    def _parse(self, buffer: bytes) -> bytes:
        """Handle every whole packet in ``buffer``; returns the incomplete rest."""
        while (found := next_packet(buffer)) is not None:
            first, body, buffer = found
            kind = first & 0xF0
            if kind == PUBACK:
                self._confirmed(1)
            elif kind == PINGRESP and self._pinged_at:
                self._confirmed(self._pinged_at.pop(0) - self.acked)
            elif kind == CONNACK and not self.connack.done():
                self.connack.set_result(body[1])
        return buffer

    def _confirmed(self, count: int) -> None:
        self.acked += count
        self.confirmed_at = time.monotonic()
        if self.acked >= self.sent:
            self.settled.set()

    # -- publishing ---------------------------------------------------------------------

    def allow(self, count: int) -> None:
        """Let the device send ``count`` more messages, as soon as its window has room."""
        self.allowed += count
        self.pump()

    def pump(self) -> None:
        """Write what is allowed and fits in the window."""
        transport = self.transport
        if transport is None or self.error is not None or self._paused:
            return
        end = min(self.allowed, self.acked + self.window)
        if end <= self.sent:
            return
        now = int(time.time() * 1000)
        packets = []
        payloads, count, topic = self.payloads, len(self.payloads), self.topic
        for i in range(self.sent, end):
            ts = now if now > self._last_ts else self._last_ts + 1
            self._last_ts = ts
            payload = b'{"ts":%d,"values":%b}' % (ts, payloads[i % count])
            if self.qos:
                self._next_id = self._next_id % 65_535 + 1
                body = topic + struct.pack("!H", self._next_id) + payload
                packets.append(bytes([PUBLISH_QOS1]) + remaining_length(len(body)) + body)
            else:
                body = topic + payload
                packets.append(bytes([PUBLISH_QOS0]) + remaining_length(len(body)) + body)
        self.settled.clear()
        if not self.qos:
            # Ask for a confirmation every half window, and after the last message allowed.
            half = max(1, self.window // 2)
            since = self._pinged_at[-1] if self._pinged_at else self.acked
            if end - since >= half or end == self.quota:
                packets.append(PINGREQ)
                self._pinged_at.append(end)
        self.sent = end
        transport.write(b"".join(packets))

    def finish(self) -> None:
        """At QoS 0, ask the broker to confirm what it has not confirmed yet."""
        if self.qos or self.transport is None or self.error is not None:
            return
        last = self._pinged_at[-1] if self._pinged_at else self.acked
        if self.sent > last:
            self._pinged_at.append(self.sent)
            self.settled.clear()
            self.transport.write(PINGREQ)

    def close(self) -> None:
        """Disconnect cleanly (what is still unconfirmed stays so)."""
        if self.transport is not None:
            self.transport.write(DISCONNECT)
            self.transport.close()


async def connect_device(
    device: MqttDevice,
    host: str,
    port: int,
    *,
    username: str | None,
    password: str | None,
    gate: asyncio.Semaphore,
    timeout_s: float = 30.0,
) -> None:
    """Open the device's connection and log in; on failure, ``device.error`` says why."""
    loop = asyncio.get_running_loop()
    async with gate:
        try:
            await loop.create_connection(lambda: device, host, port)
        except OSError as exc:
            device.error = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
            return
        assert device.transport is not None
        device.transport.write(connect_packet(device.device_id, username, password))
        try:
            code = await asyncio.wait_for(device.connack, timeout_s)
        except ConnectionError:  # closed before its CONNACK: how amqtt refuses a login
            device.error = "login refused: the broker closed the connection"
            return
        except TimeoutError:
            device.error = f"no CONNACK from {host}:{port} within {timeout_s:g} s"
            if device.transport is not None:
                device.transport.abort()
            return
    if code != 0:
        device.error = f"login refused: {CONNACK_REASONS.get(code, f'code {code}')}"
        device.close()
