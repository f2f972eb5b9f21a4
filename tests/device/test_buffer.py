"""The outbox contract, run on both kinds: the SQLite file and memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from m2mhub.core.errors import M2MHubError
from m2mhub.device._buffer import Buffer, MemoryBuffer, SqliteBuffer
from m2mhub.device._topics import Outbound

TELEMETRY = Outbound.TELEMETRY


@pytest.fixture(params=["sqlite", "memory"])
async def buffer(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Buffer]:
    opened: Buffer = (
        SqliteBuffer(tmp_path / "outbox.db", max_items=5)
        if request.param == "sqlite"
        else MemoryBuffer(max_items=5)
    )
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def bodies(buffer: Buffer) -> list[bytes]:
    return [item.body for item in await buffer.oldest(100)]


async def test_items_come_out_in_the_order_they_went_in(buffer: Buffer) -> None:
    for i in range(3):
        assert await buffer.put(TELEMETRY, b"%d" % i) == 0
    await buffer.put(Outbound.EVENTS, b"e")
    assert await bodies(buffer) == [b"0", b"1", b"2", b"e"]
    assert [item.kind for item in await buffer.oldest(10)][-1] is Outbound.EVENTS
    assert len(await buffer.oldest(2)) == 2
    assert await buffer.count() == 4


async def test_removed_items_are_gone_and_unknown_ones_ignored(buffer: Buffer) -> None:
    for i in range(4):
        await buffer.put(TELEMETRY, b"%d" % i)
    first_two = [item.seq for item in await buffer.oldest(2)]
    await buffer.remove([*first_two, 999])
    assert await bodies(buffer) == [b"2", b"3"]
    assert await buffer.count() == 2


async def test_past_the_bound_the_oldest_are_dropped(buffer: Buffer) -> None:
    dropped = [await buffer.put(TELEMETRY, b"%d" % i) for i in range(8)]
    assert dropped == [0, 0, 0, 0, 0, 1, 1, 1]
    assert await bodies(buffer) == [b"3", b"4", b"5", b"6", b"7"]
    assert await buffer.count() == 5


async def test_the_file_keeps_items_for_the_next_opening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = SqliteBuffer(path, max_items=10)
    await first.open()
    for i in range(3):
        await first.put(TELEMETRY, b"%d" % i)
    await first.remove([(await first.oldest(1))[0].seq])
    await first.close()
    again = SqliteBuffer(path, max_items=10)
    await again.open()
    try:
        assert await again.count() == 2
        assert await bodies(again) == [b"1", b"2"]
        await again.put(TELEMETRY, b"3")
        seqs = [item.seq for item in await again.oldest(10)]
        assert seqs == sorted(seqs)  # new items after the old ones
    finally:
        await again.close()


async def test_one_file_serves_one_client_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = SqliteBuffer(path, max_items=10)
    await first.open()
    try:
        second = SqliteBuffer(path, max_items=10)
        with pytest.raises(M2MHubError) as caught:
            await second.open()
        assert caught.value.field == "buffer_path"
        assert "in use by another DeviceClient" in caught.value.message
    finally:
        await first.close()


async def test_a_file_that_is_not_a_buffer_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database, just text " * 100)
    with pytest.raises(M2MHubError) as caught:
        await SqliteBuffer(path, max_items=10).open()
    assert caught.value.field == "buffer_path"
