"""A simulated vehicle that talks the Teltonika protocol, as an FMB tracker wired to a van.

It opens a TCP connection, introduces itself with its IMEI, and sends its reports as Codec 8
Extended AVL packets, one packet for each batch of reports, waiting for the record count
before the next, like a real tracker. Reports that were not acknowledged stay queued and are
sent again after a reconnect, with their original timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final

from m2mhub.connect.trackers import positions as keys
from m2mhub.connect.trackers.teltonika import const
from m2mhub.connect.trackers.teltonika.decoder import AvlRecord
from m2mhub.connect.trackers.teltonika.encoder import (
    encode_avl_data,
    encode_imei,
    encode_tcp_ack,
    encode_tcp_packet,
)

log = logging.getLogger(__name__)

#: Records in one packet: FMB trackers send up to a few dozen when they catch up.
BATCH: Final = 50
#: How long to wait for the record count before the connection is taken as lost.
ACK_TIMEOUT_S: Final = 30.0


def to_record(ts: int, values: Mapping[str, Any]) -> AvlRecord:
    """The AVL record a tracker would send for a simulated vehicle's report."""
    io: dict[int, int] = {}
    if keys.IGNITION in values:
        io[const.IO_IGNITION] = int(bool(values[keys.IGNITION]))
    if keys.SPEED_KMH in values:
        io[const.IO_MOVEMENT] = int(float(values[keys.SPEED_KMH]) > 0)
    if keys.ODOMETER_M in values:
        io[const.IO_TOTAL_ODOMETER] = round(float(values[keys.ODOMETER_M]))
    if keys.FUEL_PCT in values:
        io[const.IO_FUEL_LEVEL] = round(float(values[keys.FUEL_PCT]))
    io[const.IO_EXTERNAL_VOLTAGE] = 13_800 if io.get(const.IO_IGNITION) else 12_600
    has_fix = keys.LAT in values and keys.LON in values
    return AvlRecord(
        ts=ts,
        priority=0,
        lat=round(float(values.get(keys.LAT, 0.0)), 7),
        lon=round(float(values.get(keys.LON, 0.0)), 7),
        altitude_m=round(float(values.get(keys.ALTITUDE_M, 0))),
        angle_deg=round(float(values.get(keys.HEADING_DEG, 0))) % 360,
        satellites=11 if has_fix else 0,
        speed_kmh=round(float(values.get(keys.SPEED_KMH, 0))),
        event_io_id=0,
        io=dict(io),
    )


class TeltonikaDevice:
    """Queues reports and sends them to the platform's Teltonika port."""

    def __init__(self, imei: str, *, host: str, port: int) -> None:
        self.imei = imei
        self.host = host
        self.port = port
        self.queued: list[AvlRecord] = []
        self.acknowledged = 0
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, values: Mapping[str, Any], *, ts: int) -> None:
        self.queued.append(to_record(ts, values))
        if len(self.queued) >= BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Send what is queued, a packet at a time; on failure keep it for the next flush."""
        while self.queued:
            batch = self.queued[:BATCH]
            try:
                reader, writer = await self._connected()
                writer.write(encode_tcp_packet(encode_avl_data(const.CODEC_8E, batch)))
                await writer.drain()
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    answer = await reader.readexactly(4)
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as exc:
                log.warning("%s: teltonika: %s", self.imei, exc or type(exc).__name__)
                await self.close()
                return
            if answer != encode_tcp_ack(len(batch)):
                log.warning("%s: teltonika: unexpected answer %s", self.imei, answer.hex())
                await self.close()
                return
            del self.queued[: len(batch)]
            self.acknowledged += len(batch)

    async def _connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._stream is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(encode_imei(self.imei))
            await writer.drain()
            if await reader.readexactly(1) != b"\x01":
                writer.close()
                raise ConnectionRefusedError(f"the platform does not know IMEI {self.imei}")
            self._stream = reader, writer
        return self._stream

    async def close(self) -> None:
        if self._stream is not None:
            _, writer = self._stream
            self._stream = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


__all__ = ["BATCH", "TeltonikaDevice", "to_record"]
