"""The outbox: what the device has sent and the broker has not acknowledged yet.

Every reading, event and attribute report goes in first and comes out only
after the broker's PUBACK, in the order it went in. The outbox is bounded:
past ``max_items``, the oldest items are dropped and counted.

``SqliteBuffer`` keeps it in a file (WAL) that survives a crash or restart of
the device's process; all of its SQLite work runs on one thread of its own,
never on the event loop. ``MemoryBuffer`` has the same rules and dies with
the process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, TypeVar

from m2mhub.core.errors import M2MHubError
from m2mhub.device._topics import Outbound

T = TypeVar("T")

#: How long opening waits for another process's lock on the file.
LOCK_WAIT_S: Final = 2.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: never reused, so order holds
    kind TEXT NOT NULL,                     -- telemetry | events | attributes
    body BLOB NOT NULL                      -- the item's JSON, its timestamp inside
)
"""


@dataclass(frozen=True)
class Item:
    """One buffered reading, event or attribute report."""

    seq: int
    kind: Outbound
    body: bytes


class Buffer(Protocol):
    """What the client needs of an outbox."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def count(self) -> int: ...

    async def put(self, kind: Outbound, body: bytes) -> int:
        """Append one item; returns how many of the oldest were dropped to make room."""
        ...

    async def oldest(self, limit: int) -> list[Item]:
        """Up to ``limit`` items, oldest first."""
        ...

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged items (those already dropped are ignored)."""
        ...


class MemoryBuffer:
    """An outbox in memory: the same order and bound, lost with the process."""

    def __init__(self, *, max_items: int) -> None:
        self.max_items = max_items
        self._items: deque[Item] = deque()
        self._next = 1

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def count(self) -> int:
        return len(self._items)

    async def put(self, kind: Outbound, body: bytes) -> int:
        self._items.append(Item(self._next, kind, body))
        self._next += 1
        dropped = max(0, len(self._items) - self.max_items)
        for _ in range(dropped):
            self._items.popleft()
        return dropped

    async def oldest(self, limit: int) -> list[Item]:
        return [item for _, item in zip(range(limit), self._items, strict=False)]

    async def remove(self, seqs: Sequence[int]) -> None:
        gone = set(seqs)
        self._items = deque(item for item in self._items if item.seq not in gone)


class SqliteBuffer:
    """An outbox in a SQLite file, worked on by one thread of its own."""

    def __init__(self, path: Path, *, max_items: int) -> None:
        self.path = path
        self.max_items = max_items
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._thread: ThreadPoolExecutor | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._thread is None:
            raise M2MHubError("the buffer is closed; use the client inside `async with`")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="m2mhub-device-buffer")
        try:
            await self._run(self._open)
        except BaseException:
            self._thread.shutdown(wait=True)
            self._thread = None
            raise

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # A crash of the process loses nothing committed; a power cut may lose the last
            # items (as the platform's own SQLite, docs/architecture.md).
            db.execute("PRAGMA synchronous=NORMAL")
            # One client per file: hold the write lock for as long as it is open.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")
            db.execute(_SCHEMA)
            db.execute("COMMIT")
            (self._count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise M2MHubError(
                    f"buffer_path: {self.path} is in use by another DeviceClient; give each "
                    "client a file of its own",
                    field="buffer_path",
                ) from None
            raise M2MHubError(
                f"buffer_path: cannot use {self.path}: {exc}", field="buffer_path"
            ) from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise M2MHubError(
                f"buffer_path: {self.path} is not a buffer file ({exc})", field="buffer_path"
            ) from None
        self._db = db

    async def close(self) -> None:
        if self._thread is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "opened before use"
        return self._db

    async def count(self) -> int:
        return self._count

    async def put(self, kind: Outbound, body: bytes) -> int:
        return await self._run(lambda: self._put(kind, body))

    def _put(self, kind: Outbound, body: bytes) -> int:
        db = self._conn()
        dropped = max(0, self._count + 1 - self.max_items)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO outbox (kind, body) VALUES (?, ?)", (kind.value, body))
            if dropped:
                db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                    (dropped,),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count += 1 - dropped
        return dropped

    async def oldest(self, limit: int) -> list[Item]:
        return await self._run(lambda: self._oldest(limit))

    def _oldest(self, limit: int) -> list[Item]:
        rows = self._conn().execute(
            "SELECT seq, kind, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
        )
        return [Item(seq, Outbound(kind), bytes(body)) for seq, kind, body in rows]

    async def remove(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._run(lambda: self._remove(seqs))

    def _remove(self, seqs: Sequence[int]) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count -= removed.rowcount
