"""A Teltonika tracker talking to the platform over real TCP and UDP sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from m2mhub.connect.trackers.teltonika import (
    decode_codec12,
    encode_codec12_response,
    encode_imei,
    encode_tcp_ack,
    encode_udp_ack,
)
from m2mhub.connect.trackers.teltonika.framing import parse_udp_datagram
from tests.connect.trackers.conftest import IDLE_TIMEOUT_S, Trackers
from tests.connect.trackers.teltonika.samples import frame

IMEI = "356307042441013"  # the IMEI of Teltonika's published handshake
MOVING = frame("device_codec8_moving")  # a real FMB record: 56.8255366, 60.4544333, 95 km/h


async def handshake(
    trackers: Trackers, imei: str = IMEI
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await trackers.connect("teltonika")
    writer.write(encode_imei(imei))
    await writer.drain()
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(IDLE_TIMEOUT_S * 5):
        return await reader.read() == b""


async def test_a_tracker_logs_in_sends_records_and_gets_them_acknowledged(
    trackers: Trackers,
) -> None:
    assert frame("wiki_imei") == encode_imei(IMEI)
    await trackers.device(IMEI)
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"
    writer.write(MOVING)
    await writer.drain()
    # the record count comes back only once the record is stored
    assert await reader.readexactly(4) == encode_tcp_ack(1)
    latest = await trackers.latest(IMEI)
    assert latest["lat"] == 56.8255366 and latest["lon"] == 60.4544333
    assert latest["speed_kmh"] == 95 and latest["ignition"] is True
    writer.close()


async def test_an_unknown_imei_is_refused_and_disconnected(trackers: Trackers) -> None:
    reader, writer = await handshake(trackers, "352093086403655")
    assert await reader.readexactly(1) == b"\x00"
    assert await closed(reader)
    assert trackers.server("teltonika").stats.unknown_devices == 1
    writer.close()


async def test_a_corrupt_frame_is_dropped_and_the_next_one_acknowledged(trackers: Trackers) -> None:
    await trackers.device(IMEI)
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"
    corrupt = bytearray(MOVING)
    corrupt[-1] ^= 0xFF  # the CRC no longer matches
    # byte by byte: the frame boundaries come from the stream, not from the reads
    for byte in bytes(corrupt) + MOVING:
        writer.write(bytes([byte]))
        await writer.drain()
    assert await reader.readexactly(4) == encode_tcp_ack(1)
    stats = trackers.server("teltonika").stats
    assert stats.dropped == {"teltonika_crc_mismatch": 1} and stats.readings == 1
    writer.close()


async def test_garbage_closes_the_connection_and_no_other(trackers: Trackers) -> None:
    await trackers.device(IMEI)
    good_reader, good_writer = await handshake(trackers)
    assert await good_reader.readexactly(1) == b"\x01"
    bad_reader, bad_writer = await handshake(trackers)
    assert await bad_reader.readexactly(1) == b"\x01"
    bad_writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await bad_writer.drain()
    assert await closed(bad_reader)
    good_writer.write(MOVING)
    await good_writer.drain()
    assert await good_reader.readexactly(4) == encode_tcp_ack(1)
    assert trackers.server("teltonika").stats.dropped["teltonika_bad_preamble"] == 1
    good_writer.close()
    bad_writer.close()


async def test_keepalive_pings_hold_an_idle_connection_open(trackers: Trackers) -> None:
    await trackers.device(IMEI)
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"
    # pings for three idle timeouts: each one moves the deadline, and none is answered
    for _ in range(12):
        writer.write(b"\xff")
        await writer.drain()
        await asyncio.sleep(IDLE_TIMEOUT_S / 4)
    writer.write(MOVING)
    await writer.drain()

    assert await reader.readexactly(4) == encode_tcp_ack(1)  # the first bytes since the login
    server = trackers.server("teltonika")
    assert server.stats.idle_timeouts == 0
    assert not server.stats.dropped
    writer.close()


async def test_a_slow_client_is_cut_by_the_idle_timeout(trackers: Trackers) -> None:
    await trackers.device(IMEI)
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"

    async def trickle() -> None:
        # a byte at a time, each well within the timeout, never a whole frame in time
        for byte in MOVING[:-1]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(IDLE_TIMEOUT_S / 4)

    task = asyncio.create_task(trickle())
    try:
        assert await closed(reader)
    finally:
        task.cancel()
    assert trackers.server("teltonika").stats.idle_timeouts == 1
    writer.close()


async def test_udp_datagrams_are_acknowledged_once_stored(trackers: Trackers) -> None:
    datagram = frame("wiki_udp_codec8")
    parsed = parse_udp_datagram(datagram)
    await trackers.device(parsed.imei)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
            answer.set_result(data)

    port = trackers.server("teltonika").port
    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", port), family=socket.AF_INET
    )
    try:
        transport.sendto(datagram)
        async with asyncio.timeout(5):
            ack = await answer
    finally:
        transport.close()
    assert ack == encode_udp_ack(parsed.packet_id, parsed.avl_packet_id, 1)
    assert (await trackers.latest(parsed.imei))["gps_valid"] is False  # the example has no fix


async def test_tracker_counters_are_in_the_metrics(trackers: Trackers) -> None:
    reader, writer = await handshake(trackers, "352093086403655")
    assert await reader.readexactly(1) == b"\x00"
    writer.close()
    metrics = (await trackers.client.get("/metrics")).text
    assert 'm2mhub_tracker_unknown_devices_total{protocol="teltonika"} 1.0' in metrics


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One TCP packet from the server: preamble, length, data, CRC."""
    header = await reader.readexactly(8)
    return header + await reader.readexactly(int.from_bytes(header[4:], "big") + 4)


async def test_a_command_goes_out_in_codec_12_and_its_answer_is_the_result(
    trackers: Trackers,
) -> None:
    await trackers.device(IMEI)
    # queued while the tracker is away: sent when it logs in
    device = await trackers.platform.store.get_device(IMEI)
    commands = trackers.platform.commands
    (queued,) = await commands.send([device], "send_text", {"text": "getinfo"}, created_by="test")
    assert queued.status == "queued"
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"
    packet = await read_packet(reader)
    assert packet == frame("wiki_codec12_getinfo")  # byte for byte the published command
    writer.write(frame("wiki_codec12_getinfo_response"))
    await writer.drain()
    (done,) = await commands.wait([queued], 5.0)
    assert done.status == "succeeded" and "RTC:2019/7/22" in done.result["text"]
    # and while it is connected: the engine stop of Teltonika's relay wiring
    (stop,) = await commands.send([device], "engine_stop", {}, created_by="test")
    packet = await read_packet(reader)
    assert decode_codec12(packet[8:-4]).text == "setdigout 1"
    writer.write(encode_codec12_response("DOUT1:1 Timeout:INFINITY"))
    await writer.drain()
    (stopped,) = await commands.wait([stop], 5.0)
    assert stopped.result == {"text": "DOUT1:1 Timeout:INFINITY"}
    # a method no tracker knows fails at once, naming the ones it does
    (odd,) = await commands.send([device], "reboot", {}, created_by="test")
    assert odd.status == "failed" and "engine_stop" in (odd.error or "")
    writer.close()


async def test_stopping_with_a_tracker_connected_logs_no_error(
    trackers: Trackers, caplog: pytest.LogCaptureFixture
) -> None:
    await trackers.device(IMEI)
    reader, writer = await handshake(trackers)
    assert await reader.readexactly(1) == b"\x01"
    server = trackers.server("teltonika")
    await server.stop()
    assert await closed(reader)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    writer.close()
