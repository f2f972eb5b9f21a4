"""PostgreSQL backend: psycopg 3, a connection pool, COPY for telemetry.

Telemetry batches are copied (binary COPY) straight into the table. A batch
that holds a value already stored (a re-delivered reading) makes the COPY
fail; its transaction is then done again, the batch copied into a
per-connection temporary table and moved into place with one ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING``, so re-sent values are ignored and new
ones stored.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import AsyncConnectionPool

from m2mhub.core.errors import StoreError
from m2mhub.core.timeutil import now_ms
from m2mhub.store import migrations
from m2mhub.store.base import (
    LAST_SEEN_EVERY_MS,
    Row,
    Store,
    TelemetryBatch,
    Tx,
    first_of_each_key,
)

_PLACEHOLDER = re.compile(r"\?")
# Any constant would do: it only has to be the same in every m2mhub process.
_MIGRATION_LOCK = 0x6D326D68


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _pg(sql: str) -> str:
    """Shared SQL uses ``?`` placeholders; psycopg wants ``%s``."""
    return _PLACEHOLDER.sub("%s", sql)


class _PgTx:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self._conn.execute(_pg(sql), params)
        return await cur.fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = await self._conn.execute(_pg(sql), params)
        return await cur.fetchone()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self._conn.execute(_pg(sql), params)
        return cur.rowcount

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        rows = list(params)
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(_pg(sql), rows)


class PostgresStore(Store):
    """The store for fleets that outgrow one machine."""

    backend = "postgres"

    def __init__(self, url: str, *, schema: str | None = None, max_size: int = 8) -> None:
        super().__init__()
        self.url = url
        self.schema = schema
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._staged: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    async def open(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.schema:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.schema):
                raise StoreError(f"schema {self.schema!r}: use lower-case letters, digits and _")
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=10
                ) as conn:
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL at {redact(self.url)}: {exc}") from None
            kwargs["options"] = f"-c search_path={self.schema}"
        self._pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self._max_size, kwargs=kwargs, open=False
        )
        try:
            await self._pool.open(wait=True, timeout=10)
        except Exception as exc:
            raise StoreError(f"PostgreSQL at {redact(self.url)}: {exc}") from None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise StoreError("the store is closed; call open() first")
        return self._pool

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self._require_pool().connection() as conn:
                cur = await conn.execute(_pg(sql), params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    def _latest_query(
        self, device_pks: list[int], key_ids: list[int] | None
    ) -> tuple[str, list[Any]]:
        sql = "SELECT device_pk, key_id, ts, num, str, bool FROM latest WHERE device_pk = ANY(?)"
        params: list[Any] = [device_pks]
        if key_ids is not None:
            sql += " AND key_id = ANY(?)"
            params.append(key_ids)
        return sql, params

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._require_pool().connection() as conn:
            try:
                async with conn.transaction():
                    yield _PgTx(conn)
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _write_telemetry(self, batch: TelemetryBatch) -> int:
        try:
            async with self._require_pool().connection() as conn:
                await self._create_staging(conn)
                try:
                    # COPY straight into the table is about twice as fast as INSERT ...
                    # ON CONFLICT, and a batch rarely holds a value already stored. If
                    # it does, the COPY fails and the transaction rolls back whole.
                    async with conn.transaction():
                        await self._copy_in(conn, "telemetry", batch.rows)
                        await self._write_latest(conn, batch)
                    return len(batch.rows)
                except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                    pass
                async with conn.transaction():
                    # The ORDER BY puts rows of one key in no particular order: keep the
                    # first of each before, as one statement over the batch would.
                    await self._copy_in(conn, "_telemetry_in", first_of_each_key(batch.rows))
                    cur = await conn.execute(
                        "INSERT INTO telemetry SELECT * FROM _telemetry_in "
                        "ORDER BY device_pk, ts, key_id ON CONFLICT DO NOTHING"
                    )
                    await self._write_latest(conn, batch)
                    return cur.rowcount
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _create_staging(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The connection's temporary tables for batches, created once per connection."""
        if conn in self._staged:
            return
        async with conn.transaction():
            for table, like in (("_telemetry_in", "telemetry"), ("_latest_in", "latest")):
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {table} (LIKE {like}) ON COMMIT DELETE ROWS"
                )
        self._staged.add(conn)

    async def _write_latest(
        self, conn: psycopg.AsyncConnection[Any], batch: TelemetryBatch
    ) -> None:
        """Latest values, last seen and pending rollups of a batch, in one round trip.

        Each statement takes its row locks in key order (rows sorted), so
        concurrent batches wait for each other but never deadlock.
        """
        await self._copy_in(conn, "_latest_in", batch.latest)
        async with conn.pipeline(), conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO latest (device_pk, ts, key_id, num, str, bool) "
                "SELECT device_pk, ts, key_id, num, str, bool FROM _latest_in "
                "ORDER BY device_pk, key_id "
                "ON CONFLICT (device_pk, key_id) DO UPDATE SET ts = excluded.ts, "
                "num = excluded.num, str = excluded.str, bool = excluded.bool "
                "WHERE excluded.ts > latest.ts"
            )
            await cur.executemany(
                "UPDATE devices SET last_seen_ms = GREATEST(last_seen_ms, %(at)s), "
                "connected = NULLIF(connected, FALSE) "
                "WHERE pk = %(pk)s AND (last_seen_ms IS NULL "
                f"OR last_seen_ms <= %(at)s - {LAST_SEEN_EVERY_MS} OR connected = FALSE)",
                [{"pk": pk, "at": at} for pk, at in sorted(batch.last_seen)],
            )
            await cur.executemany(
                "INSERT INTO rollup_pending (device_pk, hour) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                sorted(batch.pending_hours),
            )

    @staticmethod
    async def _copy_in(
        conn: psycopg.AsyncConnection[Any], table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        async with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY {table} (device_pk, ts, key_id, num, str, bool) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "int8", "int4", "float8", "text", "bool"])
            # copy.write_row(row) is a coroutine per row; its formatter only gives data to
            # send once its buffer is full, so await only then.
            format_row = copy.formatter.write_row
            for row in rows:
                if data := format_row(row):
                    await copy.write(data)

    async def schema_version(self) -> int:
        async with self._require_pool().connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)"
            )
            cur = await conn.execute("SELECT max(version) FROM schema_migrations")
            row = await cur.fetchone()
            await conn.commit()
            return int(row[0] or 0) if row else 0

    async def migrate(self, *, target: int | None = None) -> list[int]:
        target = len(migrations.POSTGRES) if target is None else target
        await self.schema_version()
        applied = []
        async with self._require_pool().connection() as conn, conn.transaction():
            # Several processes may start at once: one migrates, the others wait.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur = await conn.execute("SELECT max(version) FROM schema_migrations")
            row = await cur.fetchone()
            current = int(row[0] or 0) if row else 0
            for version in range(current + 1, target + 1):
                await conn.execute(migrations.POSTGRES[version - 1])
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s)", (version, now_ms())
                )
                applied.append(version)
        return applied
