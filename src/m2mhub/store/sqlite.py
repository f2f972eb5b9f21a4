"""SQLite backend: one file, WAL mode, one writer thread, a pool of reader threads.

Every write goes through a single thread and connection, serialised by an
asyncio lock, so the event loop never blocks on the disk and writers never
fight over SQLite's lock. Readers use their own connections (WAL lets them
read while the writer writes).

Durability: WAL with ``synchronous=NORMAL`` keeps every committed transaction
through a crash of the process (``kill -9``); only a power loss may drop the
last transactions. Set ``?synchronous=full`` on the URL to survive that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache, partial
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from m2mhub.core.errors import StoreError
from m2mhub.core.timeutil import now_ms
from m2mhub.store import migrations
from m2mhub.store.base import (
    LAST_SEEN_EVERY_MS,
    Row,
    Store,
    TelemetryBatch,
    TelemetryRow,
    Tx,
    first_of_each_key,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

_READERS = 4


class _SqliteTx:
    """The statements of one write transaction, each run on the writer thread.

    ``BEGIN IMMEDIATE`` goes with the first statement rather than on a trip of its own:
    under load every trip to the writer thread waits for the event loop and for the GIL,
    and most transactions have one or two statements.
    """

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.begun = False

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.begun:
            return await self._store._in_writer(fn)
        self.begun = True
        return await self._store._in_writer(partial(_begun, fn))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._run(lambda c: c.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._run(lambda c: c.execute(sql, params).fetchone())
        return row

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._run(lambda c: c.execute(sql, params).rowcount)

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        rows = list(params)
        if rows:
            await self._run(lambda c: c.executemany(sql, rows))


def _begun(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    conn.execute("BEGIN IMMEDIATE")
    return fn(conn)


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _in_transaction(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``fn`` between BEGIN IMMEDIATE and COMMIT, all on the writer thread: one trip."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    return result


#: Rows per multi-row statement, largest first: a batch is cut into as many of the largest as
#: fit, then the rest into smaller ones, so a handful of statements, each prepared once and
#: kept in the connection's statement cache, carry any number of rows. (6 columns x 256 rows
#: stays far below SQLite's limit of 32,766 parameters.)
_CHUNKS = (256, 64, 16, 4, 1)


@cache  # a handful of (statement, size) pairs, built once instead of at every write
def _statement(head: str, columns: int, rows: int, tail: str = "") -> str:
    one = "(" + ",".join("?" * columns) + ")"
    return f"{head} VALUES {','.join([one] * rows)}{tail}"


def _write_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """Run ``head VALUES (...), (...) tail`` over ``rows``, up to 256 rows per statement.

    ``executemany`` takes the GIL back after every row, so under load the
    writer thread keeps waiting for the event loop (and the other way round).
    One statement of many rows binds its parameters in one call and runs
    without the GIL from start to end; it also costs SQLite less than the
    same rows unpacked from JSON.
    """
    if not rows:
        return
    columns = len(rows[0])
    position = 0
    for size in _CHUNKS:
        sql = ""
        while len(rows) - position >= size:
            sql = sql or _statement(head, columns, size, tail)
            conn.execute(sql, list(chain.from_iterable(rows[position : position + size])))
            position += size


#: The value columns of telemetry and latest rows, in the order of a TelemetryRow.
_VALUE_COLUMNS = ("num", "str", "bool")
_UPSERT_LATEST = (
    " ON CONFLICT (device_pk, key_id) DO UPDATE SET "
    "ts = excluded.ts, num = excluded.num, str = excluded.str, "
    "bool = excluded.bool WHERE excluded.ts > latest.ts"
)


def _by_value_column(rows: Sequence[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
    """(device_pk, ts, key_id, value) rows for each value column: num, str, bool.

    Python's sqlite3 module binds a None through its adapter protocol, which looks for
    ``__adapt__`` and ``__conform__`` and raises and clears an AttributeError on the way:
    about a microsecond per None, more than SQLite takes for the rest of the row. So each
    statement names only the column its values go in; the two others are NULL by default.
    """
    split: list[list[tuple[Any, ...]]] = [[], [], []]
    nums, texts, flags = split
    for row in rows:
        device_pk, ts, key_id, num, text, flag = row
        if num is not None:
            nums.append((device_pk, ts, key_id, num))
        elif text is not None:
            texts.append((device_pk, ts, key_id, text))
        else:
            flags.append((device_pk, ts, key_id, flag))
    return split


def _write_values(
    conn: sqlite3.Connection, table: str, rows: list[TelemetryRow], tail: str
) -> None:
    """Telemetry rows into ``table``, one statement per value column (see _by_value_column)."""
    split = _by_value_column(rows)
    if table == "telemetry" and sum(1 for part in split if part) > 1:
        # Written column by column, a later row of a key could come first: keep the first.
        split = _by_value_column(first_of_each_key(rows))
    for column, part in zip(_VALUE_COLUMNS, split, strict=True):
        _write_rows(conn, f"INSERT INTO {table} (device_pk, ts, key_id, {column})", part, tail)


#: Pages the WAL gains before the checkpointer copies them into the database. Checkpoints run
#: on a connection and thread of their own, beside the writer: SQLite's own (in the commit that
#: passes ``wal_autocheckpoint`` pages) held the writer up to 100 ms, and every transaction
#: behind it. A checkpoint writes a page once however often it changed since the last one, so a
#: longer WAL (about 40 MB instead of SQLite's 4 MB) copies fewer pages per reading.
_CHECKPOINT_PAGES = 10_000
#: How often the checkpointer looks at the WAL's length.
_CHECKPOINT_POLL_S = 0.1
#: WAL pages past which the writer copies the last ones itself, between two transactions: a
#: checkpoint beside a busy writer never finds the WAL without new pages, and SQLite starts the
#: WAL again from its beginning (instead of growing it) only at a transaction that does.
_WAL_RESTART_PAGES = 20_000
#: The writer's page cache in KiB (SQLite's default is 2 MiB): the pages that a burst of
#: readings from thousands of devices touches stay in memory instead of being read again.
_WRITER_CACHE_KIB = 65_536


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    """A passive checkpoint (it waits for nobody): the pages in the WAL, and of them copied."""
    _, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(pages), int(copied)


def _wal_frames(index: Path) -> int | None:
    """The pages in the WAL, from the header of its index (the ``-shm`` file), or None.

    ``mxFrame``, a 32-bit integer in the machine's byte order at byte 16
    (https://www.sqlite.org/walformat.html, section 2.2.1). Read without SQLite's locks:
    a hint for when to checkpoint, nothing more.
    """
    try:
        with index.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    return int.from_bytes(header[16:20], sys.byteorder) if len(header) == 20 else None


class SqliteStore(Store):
    """The default store: a SQLite file under the data directory."""

    backend = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._lock = asyncio.Lock()
        self._checkpoint_pool: ThreadPoolExecutor | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._writes = 0  # transactions committed, for the checkpointer

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_loop
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(_READERS, thread_name_prefix="sqlite-reader")
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._writer_pool, self._connect_writer)
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        for pool in (self._writer_pool, self._reader_pool, self._checkpoint_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        for conn in [self._writer, *self._readers]:
            if conn is not None:
                conn.close()
        self._writer, self._readers = None, []
        self._writer_pool = self._reader_pool = self._checkpoint_pool = None

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database beside the writer, every _CHECKPOINT_PAGES pages."""
        assert self._checkpoint_pool is not None
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._checkpoint_pool, self._connect)
        index = self.path.with_name(self.path.name + "-shm")
        copied = 0  # WAL pages in the database already
        restart_at: int | None = None  # self._writes when the writer copied the last pages
        try:
            while True:
                await asyncio.sleep(_CHECKPOINT_POLL_S)
                if restart_at == self._writes:
                    continue  # the next transaction starts the WAL again: none beside it
                frames = _wal_frames(index)
                if frames is not None:
                    if frames < copied:
                        copied = 0  # the WAL started again
                    if frames - copied < _CHECKPOINT_PAGES:
                        continue
                try:
                    pages, copied = await loop.run_in_executor(
                        self._checkpoint_pool, _checkpoint, conn
                    )
                    if pages > _WAL_RESTART_PAGES:
                        async with self._lock:
                            pages, copied = await self._in_writer(_checkpoint)
                        restart_at = self._writes
                except (sqlite3.Error, StoreError):
                    log.exception("SQLite checkpoint failed; trying again")
        finally:
            await loop.run_in_executor(self._checkpoint_pool, conn.close)

    async def _in_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None or self._writer_pool is None:
            raise StoreError("the store is closed; call open() first")
        conn = self._writer
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer_pool, partial(fn, conn))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._reader_pool is None:
            raise StoreError("the store is closed; call open() first")

        def run() -> list[Row]:
            return self._reader().execute(sql, params).fetchall()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_pool, run)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def _latest_query(
        self, device_pks: list[int], key_ids: list[int] | None
    ) -> tuple[str, list[Any]]:
        # The devices as one JSON array: one statement whatever their number.
        sql = (
            "SELECT device_pk, key_id, ts, num, str, bool FROM latest "
            "WHERE device_pk IN (SELECT value FROM json_each(?))"
        )
        params: list[Any] = [msgspec.json.encode(device_pks)]
        if key_ids is not None:
            sql += " AND key_id IN (SELECT value FROM json_each(?))"
            params.append(msgspec.json.encode(key_ids))
        return sql, params

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            tx = _SqliteTx(self)
            try:
                yield tx
            except BaseException:
                if tx.begun:
                    await self._in_writer(_roll_back)
                raise
            if tx.begun:
                await self._in_writer(lambda c: c.execute("COMMIT"))
                self._writes += 1

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._in_transaction(lambda c: c.execute(sql, params).rowcount)

    async def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._in_transaction(lambda c: c.execute(sql, params).fetchone())
        return row

    async def _in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            result = await self._in_writer(partial(_in_transaction, fn))
            self._writes += 1
            return result

    async def _write_telemetry(self, batch: TelemetryBatch) -> int:
        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            _write_values(conn, "telemetry", batch.rows, " ON CONFLICT DO NOTHING")
            inserted = conn.total_changes - before
            _write_values(conn, "latest", batch.latest, _UPSERT_LATEST)
            _write_rows(
                conn,
                "UPDATE devices SET last_seen_ms = max(coalesce(last_seen_ms, 0), seen.at), "
                "connected = NULLIF(connected, FALSE) "
                "FROM (SELECT column1 AS pk, column2 AS at FROM (",
                batch.last_seen,
                ")) AS seen WHERE devices.pk = seen.pk "
                f"AND (last_seen_ms IS NULL OR last_seen_ms <= seen.at - {LAST_SEEN_EVERY_MS} "
                "OR connected = FALSE)",
            )
            _write_rows(
                conn,
                "INSERT INTO rollup_pending (device_pk, hour)",
                batch.pending_hours,
                " ON CONFLICT DO NOTHING",
            )
            return inserted

        return await self._in_transaction(write)

    async def schema_version(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

        async with self._lock:
            return await self._in_writer(read)

    async def migrate(self, *, target: int | None = None) -> list[int]:
        target = len(migrations.SQLITE) if target is None else target
        current = await self.schema_version()
        applied = []
        for version in range(current + 1, target + 1):
            script = migrations.SQLITE[version - 1]

            def apply(
                conn: sqlite3.Connection, script: str = script, version: int = version
            ) -> None:
                try:
                    conn.executescript(
                        f"BEGIN IMMEDIATE;\n{script}\n"
                        f"INSERT INTO schema_migrations VALUES ({version}, {now_ms()});\nCOMMIT;"
                    )
                except sqlite3.Error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

            async with self._lock:
                await self._in_writer(apply)
            applied.append(version)
        return applied
