"""One asyncio server per tracker protocol: connections, identity, acknowledgements.

A protocol plugs in a :class:`Conversation` per connection: it is fed the bytes as they
arrive (split or glued anyhow by TCP) and answers with messages in the order of the stream:

- :class:`Hello`: the device said who it is (an IMEI); the server looks the device up
  and writes the protocol's accept or refuse answer; an unknown device is refused and
  disconnected;
- :class:`Positions`: readings for the identified device; the server runs them through
  the position filter and the ingest pipeline and writes ``ack`` only once they are stored,
  so a tracker resends what a crash lost (at-least-once, like MQTT QoS 1);
- :class:`Reply`: bytes the device waits for that carry no data (a heartbeat answer);
- :class:`Dropped`: a frame that could not be used (bad CRC, bad length, unknown codec),
  counted for the connection and the protocol; ``fatal`` when the stream cannot be
  resynchronised, which closes the connection.

Every connection has an idle timeout (a slow-loris client that trickles bytes is cut when a
whole frame does not arrive in time) and the server a limit on connections. One bad tracker
affects only its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from m2mhub.commands.service import CommandResult, Link
from m2mhub.connect.trackers.filtering import PositionFilter, Reading
from m2mhub.core.errors import NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.models import Command, Device

log = logging.getLogger(__name__)

#: The reason counted when the device type refuses a tracker's values.
REFUSED_BY_TYPE = "refused by the device type"


@dataclass(frozen=True, slots=True)
class Hello:
    """The device identified itself."""

    imei: str
    accept: bytes = b""
    refuse: bytes = b""


@dataclass(frozen=True, slots=True)
class Positions:
    """Readings of the identified device; ``ack`` is written once they are stored."""

    readings: list[Reading]
    ack: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to write back at once."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """A frame that was refused; ``fatal`` closes the connection."""

    reason: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The device's answer to the oldest command sent down this connection."""

    text: str


Message = Hello | Positions | Reply | Answer | Dropped


class Conversation(Protocol):
    """A protocol's state for one connection."""

    def received(self, data: bytes) -> Sequence[Message]:
        """The messages completed by ``data`` (and the bytes before it)."""
        ...

    def command(self, method: str, params: dict[str, Any]) -> bytes:
        """The bytes of a command; :class:`PayloadError` naming what the protocol offers
        when it has no such command."""
        ...


class Downlinks(Protocol):
    """Where a connected tracker is offered for commands (the command service)."""

    async def attach(self, device: Device, link: Link) -> int: ...

    def detach(self, device: Device, link: Link) -> None: ...

    async def answer(self, device: Device, command_id: str, answer: CommandResult) -> Command: ...


class TrackerProtocol(Protocol):
    """What a tracker protocol gives the servers."""

    name: str
    #: Whether the protocol also runs over UDP (on the same port number).
    has_udp: bool

    def conversation(self) -> Conversation:
        """A new connection's state."""
        ...

    def datagram(self, data: bytes) -> Sequence[Message]:
        """The messages of one UDP datagram (one :class:`Hello` first); protocols
        without UDP raise :class:`PayloadError`."""
        ...


#: Looks up a device by the identifier it sent; :class:`NotFoundError` when unknown.
FindDevice = Callable[[str], Awaitable[Device]]
#: Stores readings of a device through the ingest pipeline; returns once they are stored.
StoreReadings = Callable[[Device, list[Reading], str], Awaitable[None]]


@dataclass
class TrackerStats:
    """Counters of one protocol's servers (read by /metrics)."""

    connections: int = 0
    refused_connections: int = 0
    unknown_devices: int = 0
    idle_timeouts: int = 0
    readings: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    idle_timeout_s: float = 300.0
    max_connections: int = 10_000
    read_size: int = 65_536


class _Connection:
    """Counts of one connection, logged when it ends."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.device: Device | None = None
        self.dropped = 0
        self.readings = 0
        self.link: Link | None = None
        # commands sent and not answered yet, oldest first: the protocols answer in order
        self.pending: deque[Command] = deque()


class TrackerServer:
    """Serves one tracker protocol on a TCP port and, when asked, the same UDP port."""

    def __init__(
        self,
        protocol: TrackerProtocol,
        *,
        find_device: FindDevice,
        store: StoreReadings,
        position_filter: PositionFilter,
        downlinks: Downlinks | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        udp: bool = False,
        limits: ServerLimits | None = None,
    ) -> None:
        self.protocol = protocol
        self._find = find_device
        self._store = store
        self.filter = position_filter
        self.downlinks = downlinks
        self.host = host
        self.port = port
        self.udp = udp
        self.limits = limits or ServerLimits()
        self.stats = TrackerStats()
        self._server: asyncio.Server | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._open: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; with ``port=0`` the system picks a free port, read back from :attr:`port`."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.udp:
            loop = asyncio.get_running_loop()
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, self.port)
            )
        log.info("%s trackers: listening on %s:%d", self.protocol.name, self.host, self.port)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._server is not None:
            self._server.close()
            for task in list(self._open):
                task.cancel()
            for task in list(self._open):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TrackerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        if len(self._open) >= self.limits.max_connections:
            self.stats.refused_connections += 1
            name, count = self.protocol.name, len(self._open)
            log.warning("%s trackers: refused %s, %d connections open", name, peer, count)
            writer.close()
            return
        self._open.add(task)
        self.stats.connections += 1
        connection = _Connection(peer)
        try:
            await self._converse(reader, writer, connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() ends the open connections. A connection task that ended cancelled
            # would be logged as an error by Python 3.11's stream server (it asks the
            # task for its exception without checking for cancellation first), so the
            # connection ends as if the tracker had closed it. Nothing awaits this task
            # but stop().
            pass
        finally:
            self._open.discard(task)
            if self.downlinks and connection.device and connection.link:
                self.downlinks.detach(connection.device, connection.link)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            log.info(
                "%s trackers: %s (%s) closed: %d readings, %d frames dropped",
                self.protocol.name,
                peer,
                connection.device.id if connection.device else "not identified",
                connection.readings,
                connection.dropped,
            )

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        conversation = self.protocol.conversation()
        loop = asyncio.get_running_loop()
        # The deadline moves only when a whole message arrives: a client that trickles a
        # byte now and then (slow loris) is cut as surely as a silent one.
        deadline = loop.time() + self.limits.idle_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(self.limits.read_size)
            except TimeoutError:
                self.stats.idle_timeouts += 1
                return
            if not data:
                return
            messages = conversation.received(data)
            if messages:
                deadline = loop.time() + self.limits.idle_timeout_s
            for message in messages:
                if not await self._handle(message, writer, connection, conversation):
                    await writer.drain()
                    return
            await writer.drain()

    async def _handle(
        self,
        message: Message,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        conversation: Conversation,
    ) -> bool:
        """Act on one message; False ends the connection."""
        if isinstance(message, Hello):
            device = await self._identify(message.imei)
            writer.write(message.accept if device else message.refuse)
            if device is not None and connection.device is None:
                connection.device = device
                await self._offer(device, writer, connection, conversation)
            return device is not None
        if isinstance(message, Answer):
            await self._answered(message, connection)
            return True
        if isinstance(message, Positions):
            if connection.device is None:
                self._drop(connection, "data before identification")
                return False
            await self._accept(connection.device, message.readings, connection)
            if message.ack:
                writer.write(message.ack)
            return True
        if isinstance(message, Reply):
            writer.write(message.data)
            return True
        self._drop(connection, message.reason)
        return not message.fatal

    async def _offer(
        self,
        device: Device,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        conversation: Conversation,
    ) -> None:
        """Offer the connection to the command service; queued commands go down it now."""
        if self.downlinks is None:
            return

        async def link(command: Command) -> None:
            data = conversation.command(command.method, command.params)
            connection.pending.append(command)
            writer.write(data)
            await writer.drain()

        connection.link = link
        await self.downlinks.attach(device, link)

    async def _answered(self, message: Answer, connection: _Connection) -> None:
        if not connection.pending or connection.device is None or self.downlinks is None:
            self._drop(connection, "answer to no command")
            return
        command = connection.pending.popleft()
        if command.oneway:
            return  # delivered is all a one-way command waits for
        try:
            result = CommandResult(status="succeeded", result={"text": message.text})
            await self.downlinks.answer(connection.device, command.id, result)
        except PayloadError as exc:  # expired or timed out meanwhile
            name = self.protocol.name
            log.info("%s trackers: answer to %s not recorded: %s", name, command.id, exc.message)

    def _drop(self, connection: _Connection, reason: str) -> None:
        connection.dropped += 1
        self.stats.dropped[reason] += 1
        log.info(
            "%s trackers: %s: dropped a frame: %s", self.protocol.name, connection.peer, reason
        )

    async def _identify(self, imei: str) -> Device | None:
        try:
            return await self._find(imei)
        except NotFoundError:
            self.stats.unknown_devices += 1
            log.warning("%s trackers: unknown device %r refused", self.protocol.name, imei)
            return None

    async def _accept(
        self, device: Device, readings: list[Reading], connection: _Connection | None
    ) -> None:
        kept = await self.filter.apply(device.pk, readings, now_ms())
        if kept:
            try:
                await self._store(device, kept, self.protocol.name)
            except PayloadError as exc:
                # The device's type refuses these values: resending would not help, so the
                # frame is still acknowledged, and the refusal counted and logged.
                self.stats.dropped[REFUSED_BY_TYPE] += 1
                log.warning("%s trackers: %s: %s", self.protocol.name, device.id, exc.message)
                return
        self.stats.readings += len(kept)
        if connection is not None:
            connection.readings += len(kept)

    async def handle_datagram(self, data: bytes) -> bytes:
        """One UDP datagram: its answer (empty when nothing is to be sent)."""
        try:
            messages = self.protocol.datagram(data)
        except PayloadError as exc:
            self.stats.dropped[exc.code] += 1
            return b""
        device: Device | None = None
        answer = b""
        for message in messages:
            if isinstance(message, Hello):
                device = await self._identify(message.imei)
                answer += message.accept if device else message.refuse
                if device is None:
                    break
            elif isinstance(message, Positions) and device is not None:
                await self._accept(device, message.readings, None)
                answer += message.ack
            elif isinstance(message, Reply):
                answer += message.data
            elif isinstance(message, Dropped):
                self.stats.dropped[message.reason] += 1
        return answer


class _Datagrams(asyncio.DatagramProtocol):
    """UDP: each datagram is whole; answers go back to its sender once stored."""

    def __init__(self, server: TrackerServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        task = asyncio.create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            answer = await self.server.handle_datagram(data)
        except Exception:
            log.exception("%s trackers: datagram from %s failed", self.server.protocol.name, addr)
            return
        if answer and self.transport is not None:
            self.transport.sendto(answer, addr)


__all__ = [
    "Answer",
    "Conversation",
    "Downlinks",
    "Dropped",
    "FindDevice",
    "Hello",
    "Message",
    "Positions",
    "Reply",
    "ServerLimits",
    "StoreReadings",
    "TrackerProtocol",
    "TrackerServer",
    "TrackerStats",
]
