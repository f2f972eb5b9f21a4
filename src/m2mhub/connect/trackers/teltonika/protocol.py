"""Teltonika wiring: the deframer's events turned into the tracker server's messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from m2mhub.connect.trackers.commands import ENGINE_RESUME, ENGINE_STOP, command_text
from m2mhub.connect.trackers.server import Answer, Dropped, Hello, Message, Positions, Reply
from m2mhub.connect.trackers.teltonika.decoder import AvlPacket, Codec12Message
from m2mhub.connect.trackers.teltonika.encoder import (
    encode_codec12_command,
    encode_imei_answer,
    encode_tcp_ack,
    encode_udp_ack,
)
from m2mhub.connect.trackers.teltonika.errors import TeltonikaError
from m2mhub.connect.trackers.teltonika.framing import (
    ImeiHandshake,
    Ping,
    TcpDeframer,
    parse_udp_datagram,
)
from m2mhub.connect.trackers.teltonika.readings import to_values

#: Digital output 1 drives the engine-blocking relay in Teltonika's wiring diagrams.
ENGINE_TEXTS: Final = {ENGINE_STOP: "setdigout 1", ENGINE_RESUME: "setdigout 0"}


def _positions(packet: AvlPacket, ack: bytes) -> Positions:
    return Positions([(r.ts, to_values(r)) for r in packet.records], ack=ack)


class TeltonikaConversation:
    """One device's TCP connection."""

    def __init__(self) -> None:
        self._deframer = TcpDeframer()

    def received(self, data: bytes) -> Sequence[Message]:
        messages: list[Message] = []
        try:
            events = self._deframer.feed(data)
        except TeltonikaError as exc:  # fed after a fatal error: nothing more to read
            return [Dropped(exc.code, fatal=True)]
        for event in events:
            if isinstance(event, ImeiHandshake):
                accept, refuse = encode_imei_answer(True), encode_imei_answer(False)
                messages.append(Hello(event.imei, accept=accept, refuse=refuse))
            elif isinstance(event, Ping):
                messages.append(Reply(b""))  # alive: the idle deadline moves, nothing to write
            elif isinstance(event, AvlPacket):
                messages.append(_positions(event, encode_tcp_ack(len(event.records))))
            elif isinstance(event, Codec12Message):
                if event.is_response:
                    messages.append(Answer(event.text))
                else:
                    messages.append(Dropped("teltonika_codec12_command_from_device"))
            else:
                messages.append(Dropped(event.code, fatal=event.is_fatal))
        return messages

    def command(self, method: str, params: dict[str, Any]) -> bytes:
        """A Codec 12 command frame."""
        return encode_codec12_command(command_text(method, params, ENGINE_TEXTS))


class TeltonikaProtocol:
    """Codec 8, 8 Extended and 16 over TCP and UDP."""

    name = "teltonika"
    has_udp = True

    def conversation(self) -> TeltonikaConversation:
        return TeltonikaConversation()

    def datagram(self, data: bytes) -> Sequence[Message]:
        datagram = parse_udp_datagram(data)  # TeltonikaError (a PayloadError) when bad
        count = len(datagram.packet.records)
        ack = encode_udp_ack(datagram.packet_id, datagram.avl_packet_id, count)
        # UDP has no IMEI answer: an unknown device simply gets no acknowledgement.
        return [Hello(datagram.imei), _positions(datagram.packet, ack)]


__all__ = ["TeltonikaConversation", "TeltonikaProtocol"]
