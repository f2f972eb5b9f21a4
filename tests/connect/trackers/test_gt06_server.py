"""A GT06 tracker talking to the platform over a real TCP socket."""

from __future__ import annotations

import asyncio

from m2mhub.connect.trackers.gt06.decoder import decode_frame
from m2mhub.connect.trackers.gt06.errors import FrameError
from m2mhub.connect.trackers.gt06.framing import Deframer, Frame
from m2mhub.connect.trackers.gt06.packets import Login
from tests.connect.trackers.conftest import IDLE_TIMEOUT_S, Trackers
from tests.connect.trackers.gt06.frames import FRAMES

LOGIN = FRAMES["login_gt06"]
POSITION = FRAMES["gps_lbs_vilnius"]  # 2015-10-20 14:21:11 UTC at 54.94535, 24.01762


def imei_of(frame: bytes) -> str:
    (item,) = Deframer().feed(frame)
    packet = decode_frame(item)  # type: ignore[arg-type]
    assert isinstance(packet, Login)
    return packet.imei


async def test_login_position_and_heartbeat(trackers: Trackers) -> None:
    imei = imei_of(LOGIN)
    await trackers.device(imei)
    reader, writer = await trackers.connect("gt06")
    # glued in one write: the login is answered, the position stored, the status answered
    writer.write(LOGIN + POSITION + FRAMES["doc_status"])
    await writer.drain()
    login_ack = await reader.readexactly(10)
    assert login_ack[:4] == bytes.fromhex("78780501") and login_ack[-2:] == b"\r\n"
    status_ack = await reader.readexactly(10)
    assert status_ack[:4] == bytes.fromhex("78780513")
    latest = await trackers.latest(imei)
    assert round(float(latest["lat"]), 5) == 54.94535  # type: ignore[arg-type]
    assert round(float(latest["lon"]), 5) == 24.01762  # type: ignore[arg-type]
    device = await trackers.platform.store.get_device(imei)
    stored = await trackers.platform.store.latest([device.pk], ["lat"])
    assert stored[device.pk]["lat"][0] == 1445350871000  # the device's clock, not arrival
    writer.close()


async def test_an_unknown_tracker_gets_no_login_answer_and_is_closed(trackers: Trackers) -> None:
    reader, writer = await trackers.connect("gt06")
    writer.write(LOGIN)
    await writer.drain()
    async with asyncio.timeout(IDLE_TIMEOUT_S * 5):
        assert await reader.read() == b""
    assert trackers.server("gt06").stats.unknown_devices == 1
    writer.close()


async def test_positions_before_login_and_bad_crc_are_counted(trackers: Trackers) -> None:
    imei = imei_of(LOGIN)
    await trackers.device(imei)
    reader, writer = await trackers.connect("gt06")
    writer.write(POSITION + FRAMES["doc_gps_bad_crc"] + LOGIN)
    await writer.drain()
    assert (await reader.readexactly(10))[:4] == bytes.fromhex("78780501")
    dropped = trackers.server("gt06").stats.dropped
    assert dropped["crc_mismatch"] == 1 and dropped["not_logged_in"] == 1
    assert await trackers.latest(imei) == {}
    writer.close()


async def test_engine_stop_reaches_the_tracker_and_its_answer_is_the_result(
    trackers: Trackers,
) -> None:
    imei = imei_of(LOGIN)
    await trackers.device(imei)
    reader, writer = await trackers.connect("gt06")
    writer.write(LOGIN)
    await writer.drain()
    await reader.readexactly(10)  # the login answer
    device = await trackers.platform.store.get_device(imei)
    commands = trackers.platform.commands
    (stop,) = await commands.send([device], "engine_stop", {}, created_by="test")
    deframer = Deframer()
    frames: list[Frame | FrameError] = []
    while not frames:
        frames = deframer.feed(await reader.read(256))
    (command_frame,) = frames
    assert isinstance(command_frame, Frame) and b"RELAY,1#" in command_frame.content
    # the tracker answers with a string info packet, as Traccar's published frame
    writer.write(FRAMES["string_info_fuel_cut"])
    await writer.drain()
    (done,) = await commands.wait([stop], 5.0)
    assert done.status == "succeeded"
    assert done.result == {"text": "Cut off the fuel supply: Success!"}
    writer.close()
