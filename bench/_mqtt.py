"""A fast MQTT 3.1.1 device fleet for the benchmarks: raw packets over asyncio protocols.

Each device is one TCP connection logged in with its own id and token. Its
messages are encoded before the clock starts; at run time a connection only
writes prepared bytes and counts PUBACKs, so one Python process keeps tens of
thousands of QoS 1 messages a second moving (a paho client manages about
16,000, and stalls past 65,535 unacknowledged messages). Each connection keeps
at most ``window`` messages unacknowledged, so packet ids never wrap onto a
message still in flight.

Packet layouts are those of MQTT 3.1.1 (OASIS standard, section 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from m2mhub.sim.mqtt_wire import (
    CONNACK,
    PUBACK,
    SUBACK,
    connect_packet,
    next_packet,
    puback_packet,
    publish_packet,
    subscribe_packet,
)

#: How many connections are opened at once (Mosquitto's listen backlog is 100).
CONNECTING_AT_ONCE: Final = 64


def prepare_messages(topic: str, payloads: Sequence[bytes]) -> list[bytes]:
    """PUBLISH packets with packet ids 1..65535, wrapping."""
    return [publish_packet(topic, p, i % 65_535 + 1) for i, p in enumerate(payloads)]


class DeviceConnection(asyncio.Protocol):
    """One device: logs in, then publishes its prepared messages with a bounded window.

    ``on_publish`` (topic, payload) receives what the broker sends the device
    (commands); the device acknowledges each at once.
    """

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.suback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_publish: Callable[[DeviceConnection, str, bytes], None] | None = None
        self.stream = b""  # the prepared packets, back to back
        self.offsets: list[int] = [0]  # where packet i starts in ``stream``
        self.sent = 0
        self.acked = 0
        self.done: asyncio.Future[None] | None = None
        self.next_id = 60_000  # ids for the occasional message outside the prepared stream

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.connack, self.suback, self.done):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"{self.device_id}: connection lost: {exc}"))
                future.exception()  # raised to whoever awaits it; no "never retrieved" noise
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        # The hot path: nothing but PUBACKs (4 bytes each) while publishing.
        count = len(buffer) // 4
        if count and buffer[0 : count * 4 : 4] == b"\x40" * count:
            self.buffer = buffer[count * 4 :]
            if not self.buffer:
                self._acknowledged(count)
                return
            buffer = self.buffer
            self._acknowledged(count)
        self.buffer = self._parse(buffer)

    # -- packets ------------------------------------------------------------------------

    def _parse(self, buffer: bytes) -> bytes:
        """Handle every whole packet in ``buffer``; returns the incomplete rest."""
        acks = 0
        while (found := next_packet(buffer)) is not None:
            first, body, buffer = found
            kind = first & 0xF0
            if kind == PUBACK:
                acks += 1
            elif kind == 0x30:  # PUBLISH
                (topic_length,) = struct.unpack_from("!H", body)
                topic = body[2 : 2 + topic_length].decode()
                rest = body[2 + topic_length :]
                if first & 0x06:  # QoS 1: acknowledge at once
                    (packet_id,) = struct.unpack_from("!H", rest)
                    rest = rest[2:]
                    assert self.transport is not None
                    self.transport.write(puback_packet(packet_id))
                if self.on_publish is not None:
                    self.on_publish(self, topic, rest)
            elif kind == CONNACK and not self.connack.done():
                self.connack.set_result(body[1])
            elif kind == SUBACK and not self.suback.done():
                self.suback.set_result(None)
        if acks:
            self._acknowledged(acks)
        return buffer

    def _acknowledged(self, count: int) -> None:
        self.acked += count
        if self.sent < len(self.offsets) - 1:
            self._send(count)
        finished = self.acked >= len(self.offsets) - 1
        if finished and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _send(self, count: int) -> None:
        start = self.sent
        end = min(start + count, len(self.offsets) - 1)
        if end > start:
            assert self.transport is not None
            self.transport.write(self.stream[self.offsets[start] : self.offsets[end]])
            self.sent = end

    # -- what a benchmark calls ------------------------------------------------------------

    def load(self, packets: Sequence[bytes]) -> None:
        """Messages to publish on the next :meth:`start`."""
        self.stream = b"".join(packets)
        self.offsets = [0]
        for packet in packets:
            self.offsets.append(self.offsets[-1] + len(packet))
        self.sent = self.acked = 0
        self.done = asyncio.get_running_loop().create_future()
        if not packets:
            self.done.set_result(None)

    def start(self, window: int) -> None:
        self._send(window)

    def publish(self, topic: str, payload: bytes) -> None:
        """One QoS 1 message outside the prepared stream (its PUBACK is not counted)."""
        assert self.transport is not None
        self.next_id = 60_000 + (self.next_id - 59_999) % 5_000  # 60,000..64,999
        self.acked -= 1  # the PUBACK of this message is not one of the stream's
        self.transport.write(publish_packet(topic, payload, self.next_id))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.write(b"\xe0\x00")  # DISCONNECT
            self.transport.close()


@dataclass
class Fleet:
    """Connected devices, in the order they were given."""

    devices: list[DeviceConnection]

    async def publish(self, window: int) -> float:
        """Start every device's prepared messages; seconds until the broker acknowledged all."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for device in self.devices:
            device.start(window)
        await asyncio.gather(*(d.done for d in self.devices if d.done is not None))
        return loop.time() - start

    async def subscribe(self, topic_of: Callable[[str], str]) -> None:
        """Every device subscribes to ``topic_of(its id)`` at QoS 1."""
        for device in self.devices:
            assert device.transport is not None
            device.transport.write(subscribe_packet(topic_of(device.device_id), 1))
        await asyncio.gather(*(d.suback for d in self.devices))

    async def close(self) -> None:
        for device in self.devices:
            device.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(d.closed for d in self.devices)), 10)


async def connect_fleet(port: int, credentials: Sequence[tuple[str, str]]) -> Fleet:
    """Log every (device id, token) in at 127.0.0.1:``port``; raise if one is refused."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def one(device_id: str, token: str) -> DeviceConnection:
        async with gate:
            _, device = await loop.create_connection(
                lambda: DeviceConnection(device_id), "127.0.0.1", port
            )
            assert device.transport is not None
            device.transport.write(connect_packet(device_id, device_id, token))
            code = await asyncio.wait_for(device.connack, 30)
        if code != 0:
            raise ConnectionError(f"{device_id}: the broker refused the login (code {code})")
        return device

    devices = await asyncio.gather(*(one(d, t) for d, t in credentials))
    return Fleet(list(devices))
