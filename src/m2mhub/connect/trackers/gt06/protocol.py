"""GT06 wiring: the session's packets turned into the tracker server's messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from m2mhub.connect.trackers.commands import ENGINE_RESUME, ENGINE_STOP, command_text
from m2mhub.connect.trackers.gt06.const import COMMAND_ENGINE_RESUME, COMMAND_ENGINE_STOP
from m2mhub.connect.trackers.gt06.packets import AlarmReport, Location, Login, StringInfo
from m2mhub.connect.trackers.gt06.readings import to_values
from m2mhub.connect.trackers.gt06.session import Gt06Session
from m2mhub.connect.trackers.server import Answer, Dropped, Hello, Message, Positions, Reply
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms

ENGINE_TEXTS: Final = {ENGINE_STOP: COMMAND_ENGINE_STOP, ENGINE_RESUME: COMMAND_ENGINE_RESUME}


class Gt06Conversation:
    """One device's TCP connection."""

    def __init__(self) -> None:
        self.session = Gt06Session()

    def received(self, data: bytes) -> Sequence[Message]:
        now = now_ms()
        received = self.session.receive(data, now_ms=now)
        messages: list[Message] = [Dropped(error.code) for error in received.errors]
        for packet, reply in received.answered:
            if isinstance(packet, Login):
                messages.append(Hello(packet.imei, accept=reply or b""))
                continue
            if isinstance(packet, StringInfo):
                messages.append(Answer(packet.text))
                continue
            values = to_values(packet)
            if values:
                # A status or heartbeat carries no clock: it is true now.
                ts = packet.gps.time_ms if isinstance(packet, Location | AlarmReport) else now
                messages.append(Positions([(ts, values)], ack=reply or b""))
            elif reply is not None:
                messages.append(Reply(reply))
        if self.session.should_close:
            messages.append(Dropped("desynchronised", fatal=True))
        return messages

    def command(self, method: str, params: dict[str, Any]) -> bytes:
        """An online command frame (0x80)."""
        return self.session.command(command_text(method, params, ENGINE_TEXTS))


class Gt06Protocol:
    """GT06 / Concox over TCP."""

    name = "gt06"
    has_udp = False

    def conversation(self) -> Gt06Conversation:
        return Gt06Conversation()

    def datagram(self, data: bytes) -> Sequence[Message]:
        raise PayloadError("gt06 trackers talk TCP only")


__all__ = ["Gt06Conversation", "Gt06Protocol"]
