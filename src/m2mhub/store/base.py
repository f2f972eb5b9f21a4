"""The ``Store``: one interface over SQLite and PostgreSQL.

Everything above the store (ingest, API, CLI) talks to this class only. The
SQL here is shared by both backends; a backend supplies connections,
transactions, the bulk telemetry write and its migrations.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from operator import itemgetter
from typing import Any, Final, Protocol

import msgspec

from m2mhub.core.errors import ConflictError, NotFoundError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role, Value
from m2mhub.store.models import (
    Alarm,
    AlarmEvent,
    ApiKey,
    Asset,
    Assignment,
    AuditEntry,
    Bucket,
    Command,
    Delivery,
    Device,
    DeviceEvent,
    DeviceType,
    Group,
    KeySpec,
    MethodSpec,
    Point,
    PresenceChange,
    Recipient,
    RulePause,
    StoredRule,
    Tenant,
    Twin,
    User,
)

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
#: A device's last-seen time moves with its readings only once it is this much older: a
#: device sending 30 messages a second costs one row update a second, not 30. (A reading
#: after the device's last will moves it at once.) Presence allows for the lag.
LAST_SEEN_EVERY_MS: Final = 1_000

Row = tuple[Any, ...]
#: (device_pk, ts, key_id, num, str, bool): one telemetry row.
TelemetryRow = tuple[int, int, int, float | None, str | None, bool | None]


class Tx(Protocol):
    """A transaction: statements run on one connection and commit together."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None: ...


class TelemetryBatch(msgspec.Struct):
    """Rows ready for one bulk write, prepared by :meth:`Store.write_readings`."""

    rows: list[TelemetryRow]
    latest: list[TelemetryRow]
    last_seen: list[tuple[int, int]]  # (device_pk, arrival ms)
    pending_hours: list[tuple[int, int]]  # (device_pk, hour start ms)


class Segment(msgspec.Struct, frozen=True):
    """A device's data between two instants: a device alone, or one assignment of an asset."""

    device_pk: int
    start: int
    end: int


def split_value(value: Value) -> tuple[float | None, str | None, bool | None]:
    """A value -> its (num, str, bool) columns; exactly one is set."""
    # Exact type checks: values come from JSON decoding, and this runs once per value.
    if type(value) is float:
        return value, None, None
    if type(value) is bool:
        return None, None, value
    if type(value) is int:
        return float(value), None, None
    assert type(value) is str
    return None, value, None


def first_of_each_key(rows: list[TelemetryRow]) -> list[TelemetryRow]:
    """``rows`` without the later ones of the same (device, ts, key): the first written wins."""
    first: dict[tuple[int, int, int], TelemetryRow] = {}
    for row in rows:
        first.setdefault((row[0], row[1], row[2]), row)
    return rows if len(first) == len(rows) else list(first.values())


def join_value(num: float | None, text: str | None, flag: Any) -> Value:
    """The inverse of :func:`split_value`."""
    if num is not None:
        return num
    if text is not None:
        return text
    return bool(flag)


def _ceil_to(value: int, step: int) -> int:
    return -(-value // step) * step


class Store(abc.ABC):
    """Registry, telemetry and rollups, behind one async interface."""

    backend: str = "abstract"

    def __init__(self) -> None:
        self._key_ids: dict[str, int] = {}
        self._key_names: dict[int, str] = {}

    # -- what a backend provides ------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; call :meth:`migrate` afterwards to bring the schema up to date."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection and thread."""

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply missing migrations; returns the versions applied."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest applied migration, 0 for an empty database."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction; commits on success, rolls back on error."""

    @abc.abstractmethod
    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any write transaction."""

    @abc.abstractmethod
    async def _write_telemetry(self, batch: TelemetryBatch) -> int:
        """Write one batch in one transaction; returns the rows newly inserted."""

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in a transaction of its own; returns the rows it changed.

        The same as ``transaction()`` around one ``execute``, which a backend may run in
        fewer round trips (SQLite: one trip to its writer thread instead of three).
        """
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """One statement with ``RETURNING`` in a transaction of its own; its first row."""
        async with self.transaction() as tx:
            return await tx.fetchone(sql, params)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any write transaction, for the tables an app keeps itself
        (``?`` placeholders, as in every statement here)."""
        return await self._fetchall(sql, params)

    async def __aenter__(self) -> Store:
        await self.open()
        await self.migrate()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- tenants, users, API keys ----------------------------------------------

    _TENANT = "SELECT id, slug, name, retention_days, created_ms FROM tenants"

    async def create_tenant(self, slug: str, name: str) -> Tenant:
        async with self.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM tenants WHERE slug = ?", (slug,)):
                raise ConflictError(f"tenant {slug!r} already exists", field="slug")
            row = await tx.fetchone(
                "INSERT INTO tenants (slug, name, created_ms) VALUES (?, ?, ?) "
                "RETURNING id, slug, name, retention_days, created_ms",
                (slug, name, now_ms()),
            )
        assert row is not None
        return Tenant(*row)

    async def get_tenant(self, slug: str) -> Tenant | None:
        row = await self._fetchone(f"{self._TENANT} WHERE slug = ?", (slug,))
        return Tenant(*row) if row else None

    async def list_tenants(self) -> list[Tenant]:
        return [Tenant(*r) for r in await self._fetchall(f"{self._TENANT} ORDER BY id")]

    async def set_tenant_retention(self, tenant_id: int, days: int | None) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE tenants SET retention_days = ? WHERE id = ?", (days, tenant_id)
            )

    async def create_user(
        self, tenant_id: int, email: str, role: Role, password_hash: str | None
    ) -> User:
        async with self.transaction() as tx:
            if await tx.fetchone(
                "SELECT 1 FROM users WHERE tenant_id = ? AND email = ?", (tenant_id, email)
            ):
                raise ConflictError(f"user {email!r} already exists", field="email")
            await tx.execute(
                "INSERT INTO users (tenant_id, email, role, password_hash, created_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant_id, email, role.value, password_hash, now_ms()),
            )
        user = await self.get_user(tenant_id, email)
        assert user is not None
        return user

    async def list_users(self, tenant_id: int) -> list[User]:
        rows = await self._fetchall(
            "SELECT id, tenant_id, email, role, password_hash, created_ms FROM users "
            "WHERE tenant_id = ? ORDER BY email",
            (tenant_id,),
        )
        return [User(r[0], r[1], r[2], Role(r[3]), r[4], r[5]) for r in rows]

    async def get_user(self, tenant_id: int, email: str) -> User | None:
        row = await self._fetchone(
            "SELECT id, tenant_id, email, role, password_hash, created_ms FROM users "
            "WHERE tenant_id = ? AND email = ?",
            (tenant_id, email),
        )
        return User(row[0], row[1], row[2], Role(row[3]), row[4], row[5]) if row else None

    _API_KEY = "SELECT id, tenant_id, name, role, secret_hash, created_ms, revoked_ms FROM api_keys"

    async def create_api_key(
        self, key_id: str, tenant_id: int, name: str, role: Role, secret_hash: str
    ) -> ApiKey:
        created = now_ms()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, tenant_id, name, role.value, secret_hash, created),
            )
        return ApiKey(key_id, tenant_id, name, role, secret_hash, created, None)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        row = await self._fetchone(f"{self._API_KEY} WHERE id = ?", (key_id,))
        return _api_key(row) if row else None

    async def list_api_keys(self, tenant_id: int) -> list[ApiKey]:
        rows = await self._fetchall(
            f"{self._API_KEY} WHERE tenant_id = ? ORDER BY created_ms", (tenant_id,)
        )
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, tenant_id: int, key_id: str) -> None:
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND tenant_id = ? "
                "AND revoked_ms IS NULL",
                (now_ms(), key_id, tenant_id),
            )
        if not changed:
            raise NotFoundError(f"API key {key_id!r} not found or already revoked")

    # -- device types ----------------------------------------------------------

    _TYPE = (
        "SELECT id, tenant_id, name, keys, strict, report_interval_s, retention_days, "
        "created_ms, methods FROM device_types"
    )

    async def create_device_type(
        self,
        tenant_id: int,
        name: str,
        keys: Sequence[KeySpec],
        *,
        strict: bool,
        report_interval_s: int,
        retention_days: int | None,
        methods: Sequence[MethodSpec] = (),
    ) -> DeviceType:
        async with self.transaction() as tx:
            if await tx.fetchone(
                "SELECT 1 FROM device_types WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            ):
                raise ConflictError(f"device type {name!r} already exists", field="name")
            row = await tx.fetchone(
                "INSERT INTO device_types (tenant_id, name, keys, strict, report_interval_s, "
                "retention_days, created_ms, methods) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    tenant_id,
                    name,
                    msgspec.json.encode(list(keys)).decode(),
                    strict,
                    report_interval_s,
                    retention_days,
                    now_ms(),
                    msgspec.json.encode(list(methods)).decode(),
                ),
            )
        assert row is not None
        return await self.get_device_type(tenant_id, type_id=row[0])

    async def update_device_type(
        self,
        tenant_id: int,
        type_id: int,
        *,
        keys: Sequence[KeySpec],
        strict: bool,
        report_interval_s: int,
        retention_days: int | None,
        methods: Sequence[MethodSpec] = (),
    ) -> DeviceType:
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE device_types SET keys = ?, strict = ?, report_interval_s = ?, "
                "retention_days = ?, methods = ? WHERE id = ? AND tenant_id = ?",
                (
                    msgspec.json.encode(list(keys)).decode(),
                    strict,
                    report_interval_s,
                    retention_days,
                    msgspec.json.encode(list(methods)).decode(),
                    type_id,
                    tenant_id,
                ),
            )
        return await self.get_device_type(tenant_id, type_id=type_id)

    async def get_device_type(
        self, tenant_id: int, *, name: str | None = None, type_id: int | None = None
    ) -> DeviceType:
        if type_id is not None:
            row = await self._fetchone(
                f"{self._TYPE} WHERE tenant_id = ? AND id = ?", (tenant_id, type_id)
            )
        else:
            row = await self._fetchone(
                f"{self._TYPE} WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )
        if row is None:
            raise NotFoundError(f"device type {name or type_id!r} not found", field="type")
        return _device_type(row)

    async def list_device_types(self, tenant_id: int) -> list[DeviceType]:
        rows = await self._fetchall(f"{self._TYPE} WHERE tenant_id = ? ORDER BY name", (tenant_id,))
        return [_device_type(r) for r in rows]

    # -- devices ---------------------------------------------------------------

    _DEVICE = (
        "SELECT pk, id, tenant_id, type_id, name, token_hash, created_ms, last_seen_ms, labels, "
        "connected, rejected, last_error, last_error_ms FROM devices"
    )

    async def create_devices(
        self, tenant_id: int, devices: Sequence[tuple[str, int, str, str, dict[str, str]]]
    ) -> list[Device]:
        """Create (id, type_id, name, token_hash, labels) rows, all or none."""
        created = now_ms()
        async with self.transaction() as tx:
            for device_id, type_id, name, token_hash, labels in devices:
                if await tx.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,)):
                    raise ConflictError(f"device id {device_id!r} is taken", field="id")
                if await tx.fetchone(
                    "SELECT 1 FROM devices WHERE tenant_id = ? AND name = ?", (tenant_id, name)
                ):
                    raise ConflictError(f"device name {name!r} is taken", field="name")
                await tx.execute(
                    "INSERT INTO devices (id, tenant_id, type_id, name, token_hash, labels, "
                    "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        device_id,
                        tenant_id,
                        type_id,
                        name,
                        token_hash,
                        msgspec.json.encode(labels).decode(),
                        created,
                    ),
                )
            ids = [d[0] for d in devices]
            rows: list[Row] = []
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                rows += await tx.fetchall(f"{self._DEVICE} WHERE id IN ({marks})", chunk)
        by_id = {r[1]: _device(r) for r in rows}
        return [by_id[i] for i in ids]

    async def get_device(self, device_id: str, *, tenant_id: int | None = None) -> Device:
        """The device ``device_id``; with ``tenant_id``, only if it belongs to that tenant."""
        row = await self._fetchone(f"{self._DEVICE} WHERE id = ?", (device_id,))
        if row is None or (tenant_id is not None and row[2] != tenant_id):
            raise NotFoundError(f"device {device_id!r} not found", field="device")
        return _device(row)

    async def devices_by_pk(self, pks: Sequence[int]) -> dict[int, Device]:
        found: dict[int, Device] = {}
        for chunk in _chunks(list(pks), 500):
            marks = ",".join("?" * len(chunk))
            for row in await self._fetchall(f"{self._DEVICE} WHERE pk IN ({marks})", chunk):
                found[row[0]] = _device(row)
        return found

    async def devices_by_id(self, tenant_id: int | None, ids: Sequence[str]) -> dict[str, Device]:
        """The devices among ``ids`` (of the tenant, if given), by id; unknown ids are left out."""
        found: dict[str, Device] = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in await self._fetchall(f"{self._DEVICE} WHERE id IN ({marks})", chunk):
                if tenant_id is None or row[2] == tenant_id:
                    found[row[1]] = _device(row)
        return found

    async def list_devices(
        self,
        tenant_id: int,
        *,
        type_id: int | None = None,
        group_id: int | None = None,
        name_prefix: str | None = None,
        after_name: str | None = None,
        limit: int = 100,
    ) -> list[Device]:
        """Devices ordered by name, a page at a time (``after_name`` is the cursor)."""
        where, params = ["d.tenant_id = ?"], [tenant_id]
        join = ""
        if type_id is not None:
            where.append("d.type_id = ?")
            params.append(type_id)
        if group_id is not None:
            join = " JOIN group_members g ON g.device_pk = d.pk"
            where.append("g.group_id = ?")
            params.append(group_id)
        if name_prefix:
            where.append("d.name >= ? AND d.name < ?")
            params += [name_prefix, name_prefix + "\uffff"]  # type: ignore[list-item]
        if after_name is not None:
            where.append("d.name > ?")
            params.append(after_name)  # type: ignore[arg-type]
        sql = (
            "SELECT d.pk, d.id, d.tenant_id, d.type_id, d.name, d.token_hash, d.created_ms, "
            "d.last_seen_ms, d.labels, d.connected, d.rejected, d.last_error, d.last_error_ms "
            f"FROM devices d{join} WHERE {' AND '.join(where)} "
            f"ORDER BY d.name LIMIT {int(limit)}"
        )
        return [_device(r) for r in await self._fetchall(sql, params)]

    async def device_pks(self, tenant_id: int, *, group_id: int | None = None) -> list[int]:
        if group_id is None:
            rows = await self._fetchall("SELECT pk FROM devices WHERE tenant_id = ?", (tenant_id,))
        else:
            rows = await self._fetchall(
                "SELECT m.device_pk FROM group_members m JOIN devices d ON d.pk = m.device_pk "
                "WHERE m.group_id = ? AND d.tenant_id = ?",
                (group_id, tenant_id),
            )
        return [r[0] for r in rows]

    async def taken_device_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` already name a device, in any tenant (ids are global)."""
        taken: set[str] = set()
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = await self._fetchall(f"SELECT id FROM devices WHERE id IN ({marks})", chunk)
            taken.update(r[0] for r in rows)
        return taken

    async def device_id_for_token_hash(self, token_hash: str) -> str | None:
        row = await self._fetchone("SELECT id FROM devices WHERE token_hash = ?", (token_hash,))
        return str(row[0]) if row else None

    async def set_device_token(self, device_pk: int, token_hash: str) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE devices SET token_hash = ? WHERE pk = ?", (token_hash, device_pk)
            )

    async def delete_device(self, device_pk: int) -> None:
        """Delete a device and every value it sent."""
        async with self.transaction() as tx:
            for table in (
                "telemetry",
                "events",
                "latest",
                "attributes",
                "rollup_1m",
                "rollup_1h",
                "rollup_pending",
                "group_members",
                "asset_assignments",
            ):
                await tx.execute(f"DELETE FROM {table} WHERE device_pk = ?", (device_pk,))
            await tx.execute("DELETE FROM devices WHERE pk = ?", (device_pk,))

    async def set_connected(self, device_pk: int, connected: bool, at_ms: int) -> None:
        """Record a device's connection state (MQTT birth or last will)."""
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE devices SET connected = ? WHERE pk = ?", (connected, device_pk)
            )
            if connected:
                await tx.execute(
                    "UPDATE devices SET last_seen_ms = ? WHERE pk = ? "
                    "AND (last_seen_ms IS NULL OR last_seen_ms < ?)",
                    (at_ms, device_pk, at_ms),
                )

    async def presence_changes(
        self, *, now: int, offline_factor: float, device_pk: int | None = None
    ) -> list[PresenceChange]:
        """Devices whose presence differs from the one last announced, each claimed once.

        Presence follows the same rule as the status read by the API: online
        while heard from within ``offline_factor`` report intervals of the
        device's type (and the lag of LAST_SEEN_EVERY_MS) and not disconnected;
        devices never heard from have none.
        A change is claimed by a conditional update, so when several processes
        look at once, one of them announces it.
        """
        rows = await self._fetchall(
            "SELECT pk, tenant_id, id, presence, computed, connected FROM ("
            " SELECT d.pk, d.tenant_id, d.id, d.presence, d.connected, CASE"
            "  WHEN d.connected = ? THEN 'offline'"
            "  WHEN ? - d.last_seen_ms <= t.report_interval_s * 1000 * ? + ? THEN 'online'"
            "  ELSE 'offline' END AS computed"
            " FROM devices d JOIN device_types t ON t.id = d.type_id"
            " WHERE d.last_seen_ms IS NOT NULL"
            + (" AND d.pk = ?" if device_pk is not None else "")
            + ") AS p WHERE presence IS NULL OR presence <> computed",
            (
                False,
                now,
                offline_factor,
                LAST_SEEN_EVERY_MS,
                *(() if device_pk is None else (device_pk,)),
            ),
        )
        changes = []
        for pk, tenant_id, device_id, previous, presence, connected in rows:
            async with self.transaction() as tx:
                claimed = await tx.execute(
                    "UPDATE devices SET presence = ?, presence_ms = ? "
                    "WHERE pk = ? AND (presence IS NULL OR presence <> ?)",
                    (presence, now, pk, presence),
                )
            if claimed:
                if presence == "online":
                    reason = "connected" if connected else "reporting"
                else:
                    reason = "disconnected" if connected is not None and not connected else "silent"
                changes.append(
                    PresenceChange(pk, tenant_id, device_id, presence == "online", previous, reason)
                )
        return changes

    async def add_rejections(self, rejections: Sequence[tuple[int, int, str, int]]) -> None:
        """Add (device_pk, count, last error, at_ms) to the devices' rejected-message counters."""
        async with self.transaction() as tx:
            await tx.executemany(
                "UPDATE devices SET rejected = rejected + ?, last_error = ?, last_error_ms = ? "
                "WHERE pk = ?",
                [(count, error[:500], at, pk) for pk, count, error, at in rejections],
            )

    # -- events ----------------------------------------------------------------

    async def write_event(self, device_pk: int, ts: int, kind: str, data: dict[str, Any]) -> bool:
        """Store an event; False if the same (device, ts, kind) was already stored."""
        async with self.transaction() as tx:
            inserted = await tx.execute(
                "INSERT INTO events (device_pk, ts, kind, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (device_pk, ts, kind, msgspec.json.encode(data).decode()),
            )
        return inserted > 0

    async def events(
        self,
        device_pk: int,
        start: int,
        end: int,
        *,
        kind: str | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 100,
        descending: bool = True,
    ) -> list[DeviceEvent]:
        """A device's events in [start, end), newest first by default, a page at a time."""
        where = ["device_pk = ?", "ts >= ?", "ts < ?"]
        params: list[Any] = [device_pk, start, end]
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if after is not None:
            where.append(f"(ts, kind) {'<' if descending else '>'} (?, ?)")
            params += list(after)
        order = "DESC" if descending else "ASC"
        rows = await self._fetchall(
            f"SELECT ts, kind, data FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY ts {order}, kind {order} LIMIT {int(limit)}",
            params,
        )
        return [DeviceEvent(device_pk, ts, k, msgspec.json.decode(d)) for ts, k, d in rows]

    # -- commands and twins --------------------------------------------------------

    _COMMAND = (
        "SELECT id, tenant_id, device_pk, method, params, oneway, status, created_ms, "
        "expires_ms, timeout_ms, sent_ms, finished_ms, result, error, created_by FROM commands"
    )

    async def create_commands(self, commands: Sequence[Command]) -> None:
        sql = (
            "INSERT INTO commands (id, tenant_id, device_pk, method, params, oneway, status, "
            "created_ms, expires_ms, timeout_ms, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [
            (
                c.id,
                c.tenant_id,
                c.device_pk,
                c.method,
                msgspec.json.encode(c.params).decode(),
                c.oneway,
                c.status,
                c.created_ms,
                c.expires_ms,
                c.timeout_ms,
                c.created_by,
            )
            for c in commands
        ]
        if len(rows) == 1:  # a rule's command to one device, the usual case
            await self._write(sql, rows[0])
            return
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def get_command(self, command_id: str, *, tenant_id: int | None = None) -> Command:
        row = await self._fetchone(f"{self._COMMAND} WHERE id = ?", (command_id,))
        if row is None or (tenant_id is not None and row[1] != tenant_id):
            raise NotFoundError(f"command {command_id!r} not found", field="command")
        return _command(row)

    async def list_commands(
        self, device_pk: int, *, before: int | None = None, limit: int = 100
    ) -> list[Command]:
        """A device's commands, newest first; ``before`` is the created_ms cursor."""
        rows = await self._fetchall(
            f"{self._COMMAND} WHERE device_pk = ? AND created_ms < ? "
            f"ORDER BY created_ms DESC, id DESC LIMIT {int(limit)}",
            (device_pk, before if before is not None else 2**62),
        )
        return [_command(r) for r in rows]

    async def queued_commands(
        self, *, device_pk: int | None = None, now: int, limit: int = 500
    ) -> list[tuple[Command, str]]:
        """Queued, unexpired commands with their device id, oldest first.

        Without ``device_pk``: only for devices connected over MQTT (their birth
        message said so); the others take their commands over HTTP.
        """
        where = "c.status = 'queued' AND c.expires_ms > ?"
        params: list[Any] = [now]
        if device_pk is not None:
            where += " AND c.device_pk = ?"
            params.append(device_pk)
        else:
            where += " AND d.connected = ?"
            params.append(True)
        rows = await self._fetchall(
            "SELECT c.id, c.tenant_id, c.device_pk, c.method, c.params, c.oneway, c.status, "
            "c.created_ms, c.expires_ms, c.timeout_ms, c.sent_ms, c.finished_ms, c.result, "
            "c.error, c.created_by, d.id FROM commands c JOIN devices d ON d.pk = c.device_pk "
            f"WHERE {where} ORDER BY c.created_ms, c.id LIMIT {int(limit)}",
            params,
        )
        return [(_command(r[:15]), r[15]) for r in rows]

    async def mark_sent(self, command_id: str, *, oneway: bool, at_ms: int) -> bool:
        """queued -> sent (or, for a one-way command, straight to delivered)."""
        status = "delivered" if oneway else "sent"
        finished = at_ms if oneway else None
        changed = await self._write(
            "UPDATE commands SET status = ?, sent_ms = ?, finished_ms = ? "
            "WHERE id = ? AND status = 'queued'",
            (status, at_ms, finished, command_id),
        )
        return changed > 0

    async def finish_command(
        self,
        command_id: str,
        device_pk: int,
        *,
        status: str,
        result: Any,
        error: str | None,
        at_ms: int,
    ) -> bool:
        """Record the device's answer; False if the command was not open (or not its own)."""
        finished = at_ms if status in ("succeeded", "failed") else None
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE commands SET status = ?, result = ?, error = ?, finished_ms = ?, "
                "sent_ms = COALESCE(sent_ms, ?) "
                "WHERE id = ? AND device_pk = ? AND status IN ('queued', 'sent', 'delivered')",
                (
                    status,
                    None if result is None else msgspec.json.encode(result).decode(),
                    error,
                    finished,
                    at_ms,
                    command_id,
                    device_pk,
                ),
            )
        return changed > 0

    async def expire_commands(self, now: int) -> list[str]:
        """Expire queued commands past their time to live and fail those that got no result."""
        async with self.transaction() as tx:
            expired = await tx.fetchall(
                "UPDATE commands SET status = 'expired', finished_ms = ? "
                "WHERE status = 'queued' AND expires_ms <= ? RETURNING id",
                (now, now),
            )
            timed_out = await tx.fetchall(
                "UPDATE commands SET status = 'failed', finished_ms = ?, "
                "error = 'no result from the device in time' "
                "WHERE status IN ('sent', 'delivered') AND oneway = ? "
                "AND sent_ms + timeout_ms <= ? RETURNING id",
                (now, False, now),
            )
        return [r[0] for r in expired + timed_out]

    async def twin(self, device_pk: int) -> Twin:
        row = await self._fetchone(
            "SELECT desired, desired_version, desired_ms, reported, reported_version, "
            "reported_ms FROM twins WHERE device_pk = ?",
            (device_pk,),
        )
        if row is None:
            return Twin({}, 0, None, {}, 0, None)
        return Twin(
            msgspec.json.decode(row[0]), row[1], row[2], msgspec.json.decode(row[3]), row[4], row[5]
        )

    async def update_twin(
        self,
        device_pk: int,
        side: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None,
        at_ms: int,
    ) -> Twin:
        """Merge ``changes`` into the desired or reported side (None deletes a key).

        With ``expected_version``, the update applies only if the side is still at
        that version (:class:`ConflictError` otherwise): no lost writes.
        """
        assert side in ("desired", "reported")
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO twins (device_pk) VALUES (?) ON CONFLICT DO NOTHING", (device_pk,)
            )
            row = await tx.fetchone(
                f"SELECT {side}, {side}_version FROM twins WHERE device_pk = ?", (device_pk,)
            )
            assert row is not None
            current, version = msgspec.json.decode(row[0]), int(row[1])
            if expected_version is not None and expected_version != version:
                raise ConflictError(
                    f"{side} is at version {version}, not {expected_version}: read it again "
                    "and retry",
                    field="version",
                )
            for key, value in changes.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            await tx.execute(
                f"UPDATE twins SET {side} = ?, {side}_version = ?, {side}_ms = ? "
                "WHERE device_pk = ?",
                (msgspec.json.encode(current).decode(), version + 1, at_ms, device_pk),
            )
        return await self.twin(device_pk)

    # -- groups ----------------------------------------------------------------

    async def create_group(self, tenant_id: int, name: str) -> Group:
        async with self.transaction() as tx:
            if await tx.fetchone(
                "SELECT 1 FROM groups WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            ):
                raise ConflictError(f"group {name!r} already exists", field="name")
            row = await tx.fetchone(
                "INSERT INTO groups (tenant_id, name, created_ms) VALUES (?, ?, ?) "
                "RETURNING id, tenant_id, name, created_ms",
                (tenant_id, name, now_ms()),
            )
        assert row is not None
        return Group(*row)

    async def delete_group(self, group_id: int) -> None:
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
            await tx.execute("DELETE FROM groups WHERE id = ?", (group_id,))

    async def get_group(self, tenant_id: int, name: str) -> Group:
        row = await self._fetchone(
            "SELECT id, tenant_id, name, created_ms FROM groups WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        )
        if row is None:
            raise NotFoundError(f"group {name!r} not found", field="group")
        return Group(*row)

    async def list_groups(self, tenant_id: int) -> list[Group]:
        rows = await self._fetchall(
            "SELECT id, tenant_id, name, created_ms FROM groups WHERE tenant_id = ? ORDER BY name",
            (tenant_id,),
        )
        return [Group(*r) for r in rows]

    async def set_group_members(
        self, group_id: int, *, add: Sequence[int] = (), remove: Sequence[int] = ()
    ) -> None:
        async with self.transaction() as tx:
            await tx.executemany(
                "INSERT INTO group_members (group_id, device_pk) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(group_id, pk) for pk in add],
            )
            await tx.executemany(
                "DELETE FROM group_members WHERE group_id = ? AND device_pk = ?",
                [(group_id, pk) for pk in remove],
            )

    # -- assets ----------------------------------------------------------------

    _ASSET = "SELECT id, tenant_id, name, kind, properties, created_ms FROM assets"

    async def create_asset(
        self, tenant_id: int, name: str, kind: str, properties: dict[str, Value]
    ) -> Asset:
        async with self.transaction() as tx:
            if await tx.fetchone(
                "SELECT 1 FROM assets WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            ):
                raise ConflictError(f"asset {name!r} already exists", field="name")
            await tx.execute(
                "INSERT INTO assets (tenant_id, name, kind, properties, created_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant_id, name, kind, msgspec.json.encode(properties).decode(), now_ms()),
            )
        return await self.get_asset(tenant_id, name)

    async def get_asset(self, tenant_id: int, name: str) -> Asset:
        row = await self._fetchone(
            f"{self._ASSET} WHERE tenant_id = ? AND name = ?", (tenant_id, name)
        )
        if row is None:
            raise NotFoundError(f"asset {name!r} not found", field="asset")
        return _asset(row)

    async def list_assets(
        self, tenant_id: int, *, after_name: str | None = None, limit: int = 100
    ) -> list[Asset]:
        rows = await self._fetchall(
            f"{self._ASSET} WHERE tenant_id = ? AND name > ? ORDER BY name LIMIT {int(limit)}",
            (tenant_id, after_name or ""),
        )
        return [_asset(r) for r in rows]

    async def assign_device(self, asset_id: int, device_pk: int, at_ms: int) -> Assignment:
        """Assign a device to an asset from ``at_ms``, ending its previous assignment there."""
        async with self.transaction() as tx:
            # A device is in one place at a time: the new period [at, open) may not
            # overlap any closed period of the device.
            if await tx.fetchone(
                "SELECT 1 FROM asset_assignments WHERE device_pk = ? AND to_ms IS NOT NULL "
                "AND to_ms > ?",
                (device_pk, at_ms),
            ):
                raise ConflictError(
                    "the device has an assignment that ends after this time; assign it from "
                    "a later time",
                    field="at",
                )
            open_rows = await tx.fetchall(
                "SELECT id, asset_id, from_ms FROM asset_assignments "
                "WHERE device_pk = ? AND to_ms IS NULL",
                (device_pk,),
            )
            for assignment_id, current_asset, from_ms in open_rows:
                if current_asset == asset_id:
                    raise ConflictError("the device is already assigned to this asset")
                if from_ms >= at_ms:
                    raise ConflictError(
                        "the device's current assignment starts after this time", field="at"
                    )
                await tx.execute(
                    "UPDATE asset_assignments SET to_ms = ? WHERE id = ?", (at_ms, assignment_id)
                )
            row = await tx.fetchone(
                "INSERT INTO asset_assignments (asset_id, device_pk, from_ms) VALUES (?, ?, ?) "
                "RETURNING id, asset_id, device_pk, from_ms, to_ms",
                (asset_id, device_pk, at_ms),
            )
        assert row is not None
        return Assignment(*row)

    async def unassign_device(self, asset_id: int, device_pk: int, at_ms: int) -> None:
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE asset_assignments SET to_ms = ? WHERE asset_id = ? AND device_pk = ? "
                "AND to_ms IS NULL AND from_ms < ?",
                (at_ms, asset_id, device_pk, at_ms),
            )
        if not changed:
            raise NotFoundError("the device is not assigned to this asset", field="device")

    async def assignments(self, asset_id: int) -> list[Assignment]:
        rows = await self._fetchall(
            "SELECT id, asset_id, device_pk, from_ms, to_ms FROM asset_assignments "
            "WHERE asset_id = ? ORDER BY from_ms, id",
            (asset_id,),
        )
        return [Assignment(*r) for r in rows]

    # -- keys ------------------------------------------------------------------

    async def key_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of telemetry key names, creating the unknown ones."""
        names = set(names)
        missing = [n for n in names if n not in self._key_ids]
        if missing:
            async with self.transaction() as tx:
                await tx.executemany(
                    "INSERT INTO keys (name) VALUES (?) ON CONFLICT DO NOTHING",
                    [(n,) for n in missing],
                )
                for chunk in _chunks(missing, 500):
                    marks = ",".join("?" * len(chunk))
                    for key_id, name in await tx.fetchall(
                        f"SELECT id, name FROM keys WHERE name IN ({marks})", chunk
                    ):
                        self._remember_key(name, key_id)
        return {n: self._key_ids[n] for n in names}

    async def known_key_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the key names that exist; unknown names are left out."""
        names = list(set(names))
        missing = [n for n in names if n not in self._key_ids]
        for chunk in _chunks(missing, 500):
            marks = ",".join("?" * len(chunk))
            for key_id, name in await self._fetchall(
                f"SELECT id, name FROM keys WHERE name IN ({marks})", chunk
            ):
                self._remember_key(name, key_id)
        return {n: self._key_ids[n] for n in names if n in self._key_ids}

    async def key_name(self, key_id: int) -> str:
        if key_id not in self._key_names:
            for kid, name in await self._fetchall("SELECT id, name FROM keys"):
                self._remember_key(name, kid)
        return self._key_names[key_id]

    def _remember_key(self, name: str, key_id: int) -> None:
        self._key_ids[name] = key_id
        self._key_names[key_id] = name

    # -- telemetry writes --------------------------------------------------------

    async def write_readings(
        self,
        readings: Sequence[tuple[int, int, dict[str, Value]]],
        *,
        arrival_ms: int | None = None,
    ) -> int:
        """Store (device_pk, ts, values) readings in one transaction.

        Re-delivered values (same device, key and ts) are ignored: the first
        write wins and raw data is never overwritten. Returns rows inserted.
        """
        if not readings:
            return 0
        arrival = arrival_ms if arrival_ms is not None else now_ms()
        ids = await self.key_ids({k for _, _, values in readings for k in values})
        rows: list[TelemetryRow] = []
        add = rows.append
        hours: set[tuple[int, int]] = set()
        devices: set[int] = set()
        for device_pk, ts, values in readings:
            devices.add(device_pk)
            hours.add((device_pk, ts - ts % HOUR_MS))
            for key, value in values.items():
                # split_value inlined for the common case: it runs once per value.
                if type(value) is float:
                    add((device_pk, ts, ids[key], value, None, None))
                else:
                    add((device_pk, ts, ids[key], *split_value(value)))
        if len(devices) == len(readings):
            latest = rows  # one reading per device: each of its rows is its key's newest
        else:
            # The newest row of each (device, key); of rows with the same ts the first wins,
            # as in telemetry. Sorted newest first (a stable sort keeps ties in their order),
            # then read backwards, so the row that a dict keeps last is that newest, first one.
            by_ts = sorted(rows, key=itemgetter(1), reverse=True)
            latest = list({(row[0], row[2]): row for row in reversed(by_ts)}.values())
        batch = TelemetryBatch(
            rows=rows,
            latest=latest,
            last_seen=[(pk, arrival) for pk in devices],
            pending_hours=sorted(hours),
        )
        return await self._write_telemetry(batch)

    async def write_attributes(self, device_pk: int, ts: int, values: dict[str, Any]) -> None:
        """Store device-reported attributes; an older report never replaces a newer one."""
        async with self.transaction() as tx:
            await tx.executemany(
                "INSERT INTO attributes (device_pk, key, ts, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (device_pk, key) DO UPDATE SET ts = excluded.ts, "
                "value = excluded.value WHERE excluded.ts >= attributes.ts",
                [
                    (device_pk, key, ts, msgspec.json.encode(value).decode())
                    for key, value in values.items()
                ],
            )
            await tx.execute(
                "UPDATE devices SET last_seen_ms = ?, connected = NULLIF(connected, FALSE) "
                "WHERE pk = ? AND (last_seen_ms IS NULL OR last_seen_ms < ?)",
                (now_ms(), device_pk, now_ms()),
            )

    async def attributes(self, device_pk: int) -> dict[str, tuple[int, Any]]:
        rows = await self._fetchall(
            "SELECT key, ts, value FROM attributes WHERE device_pk = ? ORDER BY key", (device_pk,)
        )
        return {k: (ts, msgspec.json.decode(v)) for k, ts, v in rows}

    # -- telemetry reads ---------------------------------------------------------

    async def latest(
        self, device_pks: Sequence[int], keys: Sequence[str] | None = None
    ) -> dict[int, dict[str, tuple[int, Value]]]:
        """Latest value and its ts for every key of each device, in one query."""
        key_ids: list[int] | None = None
        if keys is not None:
            ids = await self.known_key_ids(keys)
            if not ids:
                return {pk: {} for pk in device_pks}
            key_ids = list(ids.values())
        sql, params = self._latest_query(list(device_pks), key_ids)
        rows = await self._fetchall(sql, params)
        names = self._key_names
        unknown = next((r[1] for r in rows if r[1] not in names), None)
        if unknown is not None:
            await self.key_name(unknown)  # loads every key name
        found: dict[int, dict[str, tuple[int, Value]]] = {pk: {} for pk in device_pks}
        # join_value, inlined: this loop runs once per device and key.
        for device_pk, key_id, ts, num, text, flag in rows:
            found[device_pk][names[key_id]] = (
                ts,
                num if num is not None else text if text is not None else bool(flag),
            )
        return found

    @abc.abstractmethod
    def _latest_query(
        self, device_pks: list[int], key_ids: list[int] | None
    ) -> tuple[str, list[Any]]:
        """SELECT device_pk, key_id, ts, num, str, bool FROM latest for these devices (and keys),
        with the device list as one parameter."""

    async def history(
        self,
        segments: Sequence[Segment],
        *,
        keys: Sequence[str] | None = None,
        after: tuple[int, int, int] | None = None,
        limit: int = 1000,
        descending: bool = False,
    ) -> list[Point]:
        """Raw points of the segments, ordered by (ts, device, key), a page at a time.

        ``after`` is the (ts, device_pk, key_id) of the last point of the
        previous page.
        """
        if not segments:
            return []
        where: list[str] = []
        params: list[Any] = []
        ors = []
        for seg in segments:
            ors.append("(device_pk = ? AND ts >= ? AND ts < ?)")
            params += [seg.device_pk, seg.start, seg.end]
        where.append(f"({' OR '.join(ors)})")
        if keys is not None:
            ids = await self.known_key_ids(keys)
            if not ids:
                return []
            where.append(f"key_id IN ({','.join('?' * len(ids))})")
            params += list(ids.values())
        if after is not None:
            where.append(f"(ts, device_pk, key_id) {'<' if descending else '>'} (?, ?, ?)")
            params += list(after)
        order = "DESC" if descending else "ASC"
        rows = await self._fetchall(
            f"SELECT device_pk, ts, key_id, num, str, bool FROM telemetry "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY ts {order}, device_pk {order}, key_id {order} LIMIT {int(limit)}",
            params,
        )
        points = []
        for device_pk, ts, key_id, num, text, flag in rows:
            name = self._key_names.get(key_id) or await self.key_name(key_id)
            points.append(Point(device_pk, ts, name, join_value(num, text, flag)))
        return points

    async def cursor_of(self, point: Point) -> tuple[int, int, int]:
        """The ``after`` value that continues a page past ``point``."""
        return (point.ts, point.device_pk, (await self.key_ids([point.key]))[point.key])

    async def aggregate(
        self, segments: Sequence[Segment], key: str, bucket_ms: int
    ) -> list[Bucket]:
        """Time-bucket aggregates of a numeric key over the segments.

        Buckets are aligned to the epoch (UTC). The parts of a segment that
        cover whole hours (or minutes) are read from the rollups; only the
        ragged edges are read raw, so a 30-day chart reads hundreds of rows,
        not millions.
        """
        ids = await self.known_key_ids([key])
        if key not in ids:
            return []
        key_id = ids[key]
        if bucket_ms % HOUR_MS == 0:
            grain, table = HOUR_MS, "rollup_1h"
        elif bucket_ms % MINUTE_MS == 0:
            grain, table = MINUTE_MS, "rollup_1m"
        else:
            grain, table = 0, ""
        if grain:
            await self.refresh_rollups({s.device_pk for s in segments})
        merged: dict[int, Bucket] = {}
        for seg in segments:
            parts: list[tuple[int, int, str]] = []
            if grain:
                mid_start, mid_end = _ceil_to(seg.start, grain), seg.end - seg.end % grain
                if mid_start < mid_end:
                    parts = [
                        (seg.start, mid_start, ""),
                        (mid_start, mid_end, table),
                        (mid_end, seg.end, ""),
                    ]
            if not parts:
                parts = [(seg.start, seg.end, "")]
            for start, end, source in parts:
                if start >= end:
                    continue
                for bucket in await self._aggregate_part(
                    seg.device_pk, key_id, start, end, bucket_ms, source
                ):
                    if bucket.ts in merged:
                        merged[bucket.ts].merge(bucket)
                    else:
                        merged[bucket.ts] = bucket
        return [merged[ts] for ts in sorted(merged)]

    async def _aggregate_part(
        self, device_pk: int, key_id: int, start: int, end: int, bucket_ms: int, source: str
    ) -> list[Bucket]:
        b = int(bucket_ms)
        if source:
            grain = HOUR_MS if source == "rollup_1h" else MINUTE_MS
            sql = (
                f"SELECT g.b, g.mn, g.mx, g.sm, g.cnt, g.fts, "
                f"(SELECT r.first FROM {source} r WHERE r.device_pk = ? AND r.key_id = ? "
                f"AND r.bucket = (g.fts / {grain}) * {grain}), g.lts, "
                f"(SELECT r.last FROM {source} r WHERE r.device_pk = ? AND r.key_id = ? "
                f"AND r.bucket = (g.lts / {grain}) * {grain}) "
                f"FROM (SELECT (bucket / {b}) * {b} AS b, min(min) AS mn, max(max) AS mx, "
                f"sum(sum) AS sm, sum(count) AS cnt, min(first_ts) AS fts, max(last_ts) AS lts "
                f"FROM {source} WHERE device_pk = ? AND key_id = ? AND bucket >= ? AND bucket < ? "
                f"GROUP BY (bucket / {b}) * {b}) g ORDER BY g.b"
            )
        else:
            sql = (
                f"SELECT g.b, g.mn, g.mx, g.sm, g.cnt, g.fts, "
                f"(SELECT t.num FROM telemetry t WHERE t.device_pk = ? AND t.key_id = ? "
                f"AND t.ts = g.fts), g.lts, "
                f"(SELECT t.num FROM telemetry t WHERE t.device_pk = ? AND t.key_id = ? "
                f"AND t.ts = g.lts) "
                f"FROM (SELECT (ts / {b}) * {b} AS b, min(num) AS mn, max(num) AS mx, "
                f"sum(num) AS sm, count(*) AS cnt, min(ts) AS fts, max(ts) AS lts "
                f"FROM telemetry WHERE device_pk = ? AND key_id = ? AND ts >= ? AND ts < ? "
                f"AND num IS NOT NULL GROUP BY (ts / {b}) * {b}) g ORDER BY g.b"
            )
        rows = await self._fetchall(
            sql, (device_pk, key_id, device_pk, key_id, device_pk, key_id, start, end)
        )
        return [
            Bucket(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5], r[6], r[7], r[8]) for r in rows
        ]

    # -- rules, rule state and alarms ---------------------------------------------------

    _RULE = (
        "SELECT id, tenant_id, name, definition, enabled, source, created_ms, updated_ms FROM rules"
    )

    async def upsert_rule(
        self, tenant_id: int, name: str, definition: str, *, enabled: bool, source: str
    ) -> tuple[StoredRule, bool]:
        """Create or replace the rule ``name``; True when it was created."""
        now = now_ms()
        async with self.transaction() as tx:
            existing = await tx.fetchone(
                "SELECT id FROM rules WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )
            if existing is None:
                await tx.execute(
                    "INSERT INTO rules (tenant_id, name, definition, enabled, source, "
                    "created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant_id, name, definition, enabled, source, now, now),
                )
            else:
                await tx.execute(
                    "UPDATE rules SET definition = ?, enabled = ?, source = ?, updated_ms = ? "
                    "WHERE id = ?",
                    (definition, enabled, source, now, existing[0]),
                )
        return await self.get_rule(tenant_id, name), existing is None

    async def get_rule(self, tenant_id: int, name: str) -> StoredRule:
        row = await self._fetchone(
            f"{self._RULE} WHERE tenant_id = ? AND name = ?", (tenant_id, name)
        )
        if row is None:
            raise NotFoundError(f"rule {name!r} not found", field="rule")
        return _rule(row)

    async def list_rules(self, tenant_id: int | None = None) -> list[StoredRule]:
        """The rules of a tenant (of every tenant without one), by name."""
        if tenant_id is None:
            rows = await self._fetchall(f"{self._RULE} ORDER BY tenant_id, name")
        else:
            rows = await self._fetchall(
                f"{self._RULE} WHERE tenant_id = ? ORDER BY name", (tenant_id,)
            )
        return [_rule(r) for r in rows]

    async def rules_version(self) -> tuple[int, int]:
        """(count, newest change) of all rules and pauses: cheap to poll for changes."""
        row = await self._fetchone(
            "SELECT (SELECT count(*) FROM rules), (SELECT max(updated_ms) FROM rules), "
            "(SELECT count(*) FROM rule_pauses), (SELECT max(paused_ms) FROM rule_pauses)"
        )
        assert row is not None
        return (int(row[0]) * 1_000_003 + int(row[2]), max(int(row[1] or 0), int(row[3] or 0)))

    async def set_rule_enabled(self, tenant_id: int, name: str, enabled: bool) -> StoredRule:
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE rules SET enabled = ?, updated_ms = ? WHERE tenant_id = ? AND name = ?",
                (enabled, now_ms(), tenant_id, name),
            )
        if not changed:
            raise NotFoundError(f"rule {name!r} not found", field="rule")
        return await self.get_rule(tenant_id, name)

    async def delete_rule(self, tenant_id: int, name: str) -> None:
        """Delete a rule, its state and pauses; its alarms stay, with their history."""
        rule = await self.get_rule(tenant_id, name)
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM rule_state WHERE rule_id = ?", (rule.id,))
            await tx.execute("DELETE FROM rule_pauses WHERE rule_id = ?", (rule.id,))
            await tx.execute("DELETE FROM rules WHERE id = ?", (rule.id,))

    async def rule_states(self, rule_ids: Sequence[int]) -> dict[tuple[int, int], str]:
        """Saved state (JSON text) of these rules, by (rule_id, device_pk)."""
        found = await self.versioned_rule_states(rule_ids)
        return {key: text for key, (text, _) in found.items()}

    async def versioned_rule_states(
        self, rule_ids: Sequence[int]
    ) -> dict[tuple[int, int], tuple[str, int]]:
        """Saved state (JSON text) of these rules and its version, by (rule_id, device_pk)."""
        found: dict[tuple[int, int], tuple[str, int]] = {}
        for chunk in _chunks(list(rule_ids), 500):
            marks = ",".join("?" * len(chunk))
            for rule_id, device_pk, state, version in await self._fetchall(
                "SELECT rule_id, device_pk, state, version FROM rule_state "
                f"WHERE rule_id IN ({marks})",
                chunk,
            ):
                found[(rule_id, device_pk)] = (state, int(version))
        return found

    async def rule_state(self, rule_id: int, device_pk: int) -> tuple[str, int] | None:
        """The saved state (JSON text) of one (rule, device) and its version."""
        row = await self._fetchone(
            "SELECT state, version FROM rule_state WHERE rule_id = ? AND device_pk = ?",
            (rule_id, device_pk),
        )
        return (row[0], int(row[1])) if row is not None else None

    async def save_rule_state(
        self, rule_id: int, device_pk: int, state: str, *, version: int
    ) -> bool:
        """Save a state read at ``version`` (0: none saved yet) as ``version + 1``.

        False, and nothing written, when the stored version is no longer ``version``:
        another process saved first. With several rules processes on one database,
        this is what lets exactly one of them act on a change.
        """
        now = now_ms()
        if version == 0:
            changed = await self._write(
                "INSERT INTO rule_state (rule_id, device_pk, state, updated_ms, version) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (rule_id, device_pk) DO NOTHING",
                (rule_id, device_pk, state, now),
            )
        else:
            changed = await self._write(
                "UPDATE rule_state SET state = ?, updated_ms = ?, version = version + 1 "
                "WHERE rule_id = ? AND device_pk = ? AND version = ?",
                (state, now, rule_id, device_pk, version),
            )
        return changed == 1

    async def set_rule_pause(
        self, tenant_id: int, rule_id: int, device_pk: int, *, paused: bool, by: str
    ) -> None:
        """Pause (manual mode) or resume a rule (``rule_id`` 0: every rule) for a device."""
        async with self.transaction() as tx:
            if paused:
                await tx.execute(
                    "INSERT INTO rule_pauses (tenant_id, rule_id, device_pk, paused_by, "
                    "paused_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (tenant_id, rule_id, device_pk, by, now_ms()),
                )
            else:
                await tx.execute(
                    "DELETE FROM rule_pauses WHERE tenant_id = ? AND rule_id = ? AND device_pk = ?",
                    (tenant_id, rule_id, device_pk),
                )
            # Resuming must also be seen by other processes polling rules_version().
            await tx.execute("UPDATE rules SET updated_ms = ? WHERE id = ?", (now_ms(), rule_id))

    async def rule_pauses(self, tenant_id: int | None = None) -> list[RulePause]:
        sql = "SELECT tenant_id, rule_id, device_pk, paused_by, paused_ms FROM rule_pauses"
        if tenant_id is None:
            rows = await self._fetchall(sql)
        else:
            rows = await self._fetchall(f"{sql} WHERE tenant_id = ?", (tenant_id,))
        return [RulePause(*r) for r in rows]

    _ALARM_COLUMNS = (
        "id, tenant_id, rule_id, rule_name, device_pk, device_id, type, severity, "
        "status, message, details, raised_ms, updated_ms, count, acked_ms, acked_by, "
        "cleared_ms, cleared_by"
    )
    _ALARM = f"SELECT {_ALARM_COLUMNS} FROM alarms"

    async def raise_alarm(
        self,
        *,
        tenant_id: int,
        rule_id: int,
        rule_name: str,
        device_pk: int,
        device_id: str,
        type: str,
        severity: str,
        message: str,
        details: dict[str, Any],
        actor: str,
        at_ms: int,
    ) -> tuple[Alarm, bool]:
        """Raise the alarm of (rule, device), or count a repeat of the open one.

        The partial unique index ``alarms_open`` makes this atomic in the database:
        however many raises race, in one process or several, one alarm is open.
        Returns the alarm and True when it is new.
        """
        async with self.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO alarms (tenant_id, rule_id, rule_name, device_pk, device_id, type, "
                "severity, status, message, details, raised_ms, updated_ms, count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, 1) "
                "ON CONFLICT (rule_id, device_pk) WHERE status <> 'cleared' DO UPDATE SET "
                "count = alarms.count + 1, updated_ms = excluded.updated_ms, "
                "severity = excluded.severity, message = excluded.message, "
                f"details = excluded.details RETURNING {self._ALARM_COLUMNS}",
                (
                    tenant_id,
                    rule_id,
                    rule_name,
                    device_pk,
                    device_id,
                    type,
                    severity,
                    message,
                    msgspec.json.encode(details).decode(),
                    at_ms,
                    at_ms,
                ),
            )
            assert row is not None
            alarm = _alarm(row)
            created = alarm.count == 1
            if created:
                await tx.execute(
                    "INSERT INTO alarm_events (alarm_id, ts, kind, actor, comment) "
                    "VALUES (?, ?, 'raised', ?, ?)",
                    (alarm.id, at_ms, actor, message),
                )
        return alarm, created

    async def get_alarm(self, alarm_id: int, *, tenant_id: int | None = None) -> Alarm:
        row = await self._fetchone(f"{self._ALARM} WHERE id = ?", (alarm_id,))
        if row is None or (tenant_id is not None and row[1] != tenant_id):
            raise NotFoundError(f"alarm {alarm_id} not found", field="alarm")
        return _alarm(row)

    async def open_alarm(self, rule_id: int, device_pk: int) -> Alarm | None:
        row = await self._fetchone(
            f"{self._ALARM} WHERE rule_id = ? AND device_pk = ? AND status <> 'cleared'",
            (rule_id, device_pk),
        )
        return _alarm(row) if row else None

    async def list_alarms(
        self,
        tenant_id: int,
        *,
        status: Sequence[str] = (),
        severity: Sequence[str] = (),
        device_pk: int | None = None,
        rule_name: str | None = None,
        alarm_type: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Alarm]:
        """Alarms newest first; ``before_id`` continues a page."""
        where = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        for column, values in (("status", status), ("severity", severity)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params += list(values)
        if device_pk is not None:
            where.append("device_pk = ?")
            params.append(device_pk)
        if rule_name is not None:
            where.append("rule_name = ?")
            params.append(rule_name)
        if alarm_type is not None:
            where.append("type = ?")
            params.append(alarm_type)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        rows = await self._fetchall(
            f"{self._ALARM} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}",
            params,
        )
        return [_alarm(r) for r in rows]

    async def change_alarm(
        self,
        alarm_id: int,
        *,
        to: str,
        allowed_from: Sequence[str],
        actor: str,
        comment: str | None,
        at_ms: int,
    ) -> Alarm | None:
        """Move an alarm to ``acknowledged`` or ``cleared`` if it is in ``allowed_from``;
        the alarm as changed, or None when it was not in ``allowed_from``."""
        assert to in ("acknowledged", "cleared")
        column = "acked" if to == "acknowledged" else "cleared"
        marks = ",".join("?" * len(allowed_from))
        async with self.transaction() as tx:
            row = await tx.fetchone(
                f"UPDATE alarms SET status = ?, {column}_ms = ?, {column}_by = ?, updated_ms = ? "
                f"WHERE id = ? AND status IN ({marks}) RETURNING {self._ALARM_COLUMNS}",
                (to, at_ms, actor, at_ms, alarm_id, *allowed_from),
            )
            if row is not None:
                await tx.execute(
                    "INSERT INTO alarm_events (alarm_id, ts, kind, actor, comment) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (alarm_id, at_ms, to, actor, comment),
                )
        return _alarm(row) if row is not None else None

    async def add_alarm_event(
        self, alarm_id: int, *, kind: str, actor: str, comment: str | None, at_ms: int
    ) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO alarm_events (alarm_id, ts, kind, actor, comment) "
                "VALUES (?, ?, ?, ?, ?)",
                (alarm_id, at_ms, kind, actor, comment),
            )

    async def alarm_history(self, alarm_id: int) -> list[AlarmEvent]:
        rows = await self._fetchall(
            "SELECT id, alarm_id, ts, kind, actor, comment FROM alarm_events "
            "WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        )
        return [AlarmEvent(*r) for r in rows]

    # -- rollups and retention ---------------------------------------------------

    async def refresh_rollups(
        self, device_pks: Iterable[int] | None = None, *, limit: int = 1000
    ) -> int:
        """Recompute the 1-minute and 1-hour rollups of hours that got new data.

        Ingest only marks (device, hour) as pending; this recomputes each such
        hour from raw data, so late, out-of-order and re-sent readings all end
        up counted exactly once. Returns the hours recomputed.
        """
        if device_pks is None:
            pending = await self._fetchall(
                f"SELECT device_pk, hour FROM rollup_pending ORDER BY hour LIMIT {int(limit)}"
            )
        else:
            pks = list(device_pks)
            pending = []
            for chunk in _chunks(pks, 500):
                marks = ",".join("?" * len(chunk))
                pending += await self._fetchall(
                    f"SELECT device_pk, hour FROM rollup_pending WHERE device_pk IN ({marks})",
                    chunk,
                )
        for device_pk, hour in pending:
            await self._recompute_hour(device_pk, hour)
        return len(pending)

    async def _recompute_hour(self, device_pk: int, hour: int) -> None:
        end = hour + HOUR_MS
        async with self.transaction() as tx:
            # Taking the marker first claims the hour: another process recomputing it
            # at the same time waits on this row, then finds it gone and skips. A
            # write that lands meanwhile marks the hour again.
            claimed = await tx.execute(
                "DELETE FROM rollup_pending WHERE device_pk = ? AND hour = ?", (device_pk, hour)
            )
            if not claimed:
                return
            await tx.execute(
                "DELETE FROM rollup_1m WHERE device_pk = ? AND bucket >= ? AND bucket < ?",
                (device_pk, hour, end),
            )
            await tx.execute(
                "INSERT INTO rollup_1m (device_pk, key_id, bucket, min, max, sum, count, "
                "first_ts, first, last_ts, last) "
                "SELECT g.device_pk, g.key_id, g.b, g.mn, g.mx, g.sm, g.cnt, g.fts, "
                "(SELECT t.num FROM telemetry t WHERE t.device_pk = g.device_pk "
                "AND t.ts = g.fts AND t.key_id = g.key_id), g.lts, "
                "(SELECT t.num FROM telemetry t WHERE t.device_pk = g.device_pk "
                "AND t.ts = g.lts AND t.key_id = g.key_id) "
                "FROM (SELECT device_pk, key_id, (ts / 60000) * 60000 AS b, min(num) AS mn, "
                "max(num) AS mx, sum(num) AS sm, count(*) AS cnt, min(ts) AS fts, max(ts) AS lts "
                "FROM telemetry WHERE device_pk = ? AND ts >= ? AND ts < ? AND num IS NOT NULL "
                "GROUP BY device_pk, key_id, (ts / 60000) * 60000) g",
                (device_pk, hour, end),
            )
            await tx.execute(
                "DELETE FROM rollup_1h WHERE device_pk = ? AND bucket = ?", (device_pk, hour)
            )
            await tx.execute(
                "INSERT INTO rollup_1h (device_pk, key_id, bucket, min, max, sum, count, "
                "first_ts, first, last_ts, last) "
                "SELECT g.device_pk, g.key_id, g.b, g.mn, g.mx, g.sm, g.cnt, g.fts, "
                "(SELECT r.first FROM rollup_1m r WHERE r.device_pk = g.device_pk "
                "AND r.key_id = g.key_id AND r.bucket = (g.fts / 60000) * 60000), g.lts, "
                "(SELECT r.last FROM rollup_1m r WHERE r.device_pk = g.device_pk "
                "AND r.key_id = g.key_id AND r.bucket = (g.lts / 60000) * 60000) "
                "FROM (SELECT device_pk, key_id, ? AS b, min(min) AS mn, max(max) AS mx, "
                "sum(sum) AS sm, sum(count) AS cnt, min(first_ts) AS fts, max(last_ts) AS lts "
                "FROM rollup_1m WHERE device_pk = ? AND bucket >= ? AND bucket < ? "
                "GROUP BY device_pk, key_id) g",
                (hour, device_pk, hour, end),
            )

    async def pending_rollups(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM rollup_pending")
        return int(row[0]) if row else 0

    async def apply_retention(
        self, *, now: int, rollup_1m_days: int, rollup_1h_days: int
    ) -> dict[str, int]:
        """Delete raw telemetry past each device's retention, and old rollups.

        A device type's ``retention_days`` wins over its tenant's; with
        neither, raw data is kept. Rollups have their own horizons.
        """
        deleted = {"telemetry": 0, "rollup_1m": 0, "rollup_1h": 0}
        rules = await self._fetchall(
            "SELECT d.pk, COALESCE(dt.retention_days, t.retention_days) FROM devices d "
            "JOIN device_types dt ON dt.id = d.type_id JOIN tenants t ON t.id = d.tenant_id "
            "WHERE COALESCE(dt.retention_days, t.retention_days) IS NOT NULL"
        )
        for device_pk, days in rules:
            async with self.transaction() as tx:
                deleted["telemetry"] += await tx.execute(
                    "DELETE FROM telemetry WHERE device_pk = ? AND ts < ?",
                    (device_pk, now - int(days) * 86_400_000),
                )
        for table, days in (("rollup_1m", rollup_1m_days), ("rollup_1h", rollup_1h_days)):
            if days > 0:
                async with self.transaction() as tx:
                    deleted[table] += await tx.execute(
                        f"DELETE FROM {table} WHERE bucket < ?", (now - days * 86_400_000,)
                    )
        return deleted

    async def try_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``holder``; False if another holds it."""
        now = now_ms()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_ms = excluded.expires_ms "
                "WHERE leases.holder = excluded.holder OR leases.expires_ms < ?",
                (name, holder, now + ttl_ms, now),
            )
            row = await tx.fetchone("SELECT holder FROM leases WHERE name = ?", (name,))
        return row is not None and row[0] == holder

    async def count_points(self, device_pk: int | None = None) -> int:
        if device_pk is None:
            row = await self._fetchone("SELECT count(*) FROM telemetry")
        else:
            row = await self._fetchone(
                "SELECT count(*) FROM telemetry WHERE device_pk = ?", (device_pk,)
            )
        return int(row[0]) if row else 0

    # -- outbox (webhooks, notifications), notification recipients, audit log ---------
    # A delivery is a row: claiming it is a conditional update (pending/held and due,
    # or sending with an expired lease -> sending), so with several processes each
    # delivery is attempted by one of them at a time.

    _DELIVERY_COLUMNS = (
        "id, tenant_id, kind, source, target, body, secret, headers, status, attempts, "
        "next_ms, created_ms, last_attempt_ms, finished_ms, last_error, last_code"
    )
    _DELIVERY_DUE = (
        "((status IN ('pending', 'held') AND next_ms <= ?) "
        "OR (status = 'sending' AND lease_ms <= ?))"
    )

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Store new deliveries; they are committed when this returns."""
        async with self.transaction() as tx:
            await tx.executemany(
                f"INSERT INTO outbox ({self._DELIVERY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.id,
                        d.tenant_id,
                        d.kind,
                        d.source,
                        d.target,
                        d.body,
                        d.secret,
                        msgspec.json.encode(d.headers).decode(),
                        d.status,
                        d.attempts,
                        d.next_ms,
                        d.created_ms,
                        d.last_attempt_ms,
                        d.finished_ms,
                        d.last_error,
                        d.last_code,
                    )
                    for d in deliveries
                ],
            )

    async def claim_deliveries(
        self, *, holder: str, now: int, lease_ms: int, limit: int
    ) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for ``holder``; each counts as an attempt.

        A claim lasts ``lease_ms``: a delivery whose holder died while sending is
        due again once its lease runs out.
        """
        # PostgreSQL: skip rows another process is claiming instead of waiting for it.
        lock = " FOR UPDATE SKIP LOCKED" if self.backend == "postgres" else ""
        async with self.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE outbox SET status = 'sending', claimed_by = ?, lease_ms = ?, "
                "attempts = attempts + 1, last_attempt_ms = ? "
                f"WHERE id IN (SELECT id FROM outbox WHERE {self._DELIVERY_DUE} "
                f"ORDER BY next_ms LIMIT {int(limit)}{lock}) AND {self._DELIVERY_DUE} "
                f"RETURNING {self._DELIVERY_COLUMNS}",
                (holder, now + lease_ms, now, now, now, now, now),
            )
        return sorted((_delivery(r) for r in rows), key=lambda d: (d.next_ms, d.id))

    async def finish_delivery(
        self,
        delivery_id: str,
        holder: str,
        *,
        status: str,
        next_ms: int,
        error: str | None,
        code: int | None,
        at_ms: int,
    ) -> bool:
        """Record an attempt's outcome: ``delivered``, ``dead`` or ``pending`` (a retry at
        ``next_ms``). False if ``holder`` no longer holds the claim."""
        assert status in ("delivered", "dead", "pending")
        finished = at_ms if status != "pending" else None
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE outbox SET status = ?, next_ms = ?, last_error = ?, last_code = ?, "
                "finished_ms = ?, claimed_by = NULL, lease_ms = NULL "
                "WHERE id = ? AND claimed_by = ? AND status = 'sending'",
                (status, next_ms, error, code, finished, delivery_id, holder),
            )
        return changed > 0

    async def release_deliveries(self, delivery_ids: Sequence[str], holder: str, now: int) -> None:
        """Hand claimed deliveries back unattempted (a process stopping mid-send)."""
        async with self.transaction() as tx:
            await tx.executemany(
                "UPDATE outbox SET status = 'pending', next_ms = ?, attempts = attempts - 1, "
                "claimed_by = NULL, lease_ms = NULL "
                "WHERE id = ? AND claimed_by = ? AND status = 'sending'",
                [(now, delivery_id, holder) for delivery_id in delivery_ids],
            )

    async def get_delivery(self, delivery_id: str, *, tenant_id: int | None = None) -> Delivery:
        row = await self._fetchone(
            f"SELECT {self._DELIVERY_COLUMNS} FROM outbox WHERE id = ?", (delivery_id,)
        )
        if row is None or (tenant_id is not None and row[1] != tenant_id):
            raise NotFoundError(f"delivery {delivery_id!r} not found", field="delivery")
        return _delivery(row)

    async def list_deliveries(
        self,
        tenant_id: int,
        *,
        kind: str,
        status: str | None = None,
        source: str | None = None,
        before: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """A tenant's deliveries of one kind, newest first; ``before`` is the
        (created_ms, id) of the last one of the previous page."""
        where, params = ["tenant_id = ?", "kind = ?"], [tenant_id, kind]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if before is not None:
            where.append("(created_ms, id) < (?, ?)")
            params += list(before)
        rows = await self._fetchall(
            f"SELECT {self._DELIVERY_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
            f"ORDER BY created_ms DESC, id DESC LIMIT {int(limit)}",
            params,
        )
        return [_delivery(r) for r in rows]

    async def retry_delivery(self, tenant_id: int, delivery_id: str, now: int) -> bool:
        """A dead delivery -> pending, due now, with a fresh count of attempts."""
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_ms = ?, "
                "finished_ms = NULL WHERE id = ? AND tenant_id = ? AND status = 'dead'",
                (now, delivery_id, tenant_id),
            )
        return changed > 0

    async def delete_delivery(self, tenant_id: int, delivery_id: str, *, status: str) -> bool:
        """Delete a delivery if it is in ``status`` (a dead letter, say)."""
        async with self.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM outbox WHERE id = ? AND tenant_id = ? AND status = ?",
                (delivery_id, tenant_id, status),
            )
        return changed > 0

    async def purge_deliveries(self, *, delivered_before: int) -> int:
        """Delete deliveries that succeeded before ``delivered_before`` (dead letters stay)."""
        async with self.transaction() as tx:
            return await tx.execute(
                "DELETE FROM outbox WHERE status = 'delivered' AND finished_ms < ?",
                (delivered_before,),
            )

    async def set_recipient(self, tenant_id: int, name: str, urls: Sequence[str]) -> Recipient:
        """Create or replace the named recipient ``name``."""
        created = now_ms()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO notify_recipients (tenant_id, name, urls, created_ms) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, name) DO UPDATE SET urls = excluded.urls",
                (tenant_id, name, msgspec.json.encode(list(urls)).decode(), created),
            )
        found = await self.recipients(tenant_id, [name])
        return found[name]

    async def delete_recipient(self, tenant_id: int, name: str) -> None:
        async with self.transaction() as tx:
            deleted = await tx.execute(
                "DELETE FROM notify_recipients WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )
        if not deleted:
            raise NotFoundError(f"recipient {name!r} not found", field="recipient")

    async def recipients(
        self, tenant_id: int, names: Sequence[str] | None = None
    ) -> dict[str, Recipient]:
        """The tenant's named recipients (all, or those of ``names`` that exist), by name."""
        sql = "SELECT tenant_id, name, urls, created_ms FROM notify_recipients WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        if names is not None:
            if not names:
                return {}
            sql += f" AND name IN ({','.join('?' * len(names))})"
            params += list(names)
        rows = await self._fetchall(sql + " ORDER BY name", params)
        return {
            r[1]: Recipient(r[0], r[1], msgspec.json.decode(r[2], type=list[str]), r[3])
            for r in rows
        }

    async def quiet_hours(self, tenant_id: int) -> dict[str, Any] | None:
        """The tenant's default quiet hours (as stored JSON), or None."""
        row = await self._fetchone(
            "SELECT quiet_hours FROM notify_settings WHERE tenant_id = ?", (tenant_id,)
        )
        return msgspec.json.decode(row[0]) if row and row[0] else None

    async def set_quiet_hours(self, tenant_id: int, quiet_hours: dict[str, Any] | None) -> None:
        text = None if quiet_hours is None else msgspec.json.encode(quiet_hours).decode()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO notify_settings (tenant_id, quiet_hours) VALUES (?, ?) "
                "ON CONFLICT (tenant_id) DO UPDATE SET quiet_hours = excluded.quiet_hours",
                (tenant_id, text),
            )

    async def add_audit(
        self,
        tenant_id: int,
        *,
        ts: int,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any],
        result: str,
    ) -> int:
        """Append an entry to the audit log; returns its id."""
        row = await self._write_returning(
            "INSERT INTO audit_log (tenant_id, ts, actor, action, target, details, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                tenant_id,
                ts,
                actor,
                action,
                target,
                msgspec.json.encode(details).decode(),
                result,
            ),
        )
        assert row is not None
        return int(row[0])

    async def list_audit(
        self,
        tenant_id: int,
        *,
        start: int,
        end: int,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit entries in [start, end), newest first; ``action`` ending in ``.*`` matches
        a prefix; ``before_id`` is the id of the last entry of the previous page."""
        where = ["tenant_id = ?", "ts >= ?", "ts < ?"]
        params: list[Any] = [tenant_id, start, end]
        for column, value in (("actor", actor), ("target", target)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if action is not None and action.endswith(".*"):
            where.append("substr(action, 1, ?) = ?")
            params += [len(action) - 1, action[:-1]]
        elif action is not None:
            where.append("action = ?")
            params.append(action)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        rows = await self._fetchall(
            "SELECT id, tenant_id, ts, actor, action, target, details, result FROM audit_log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}",
            params,
        )
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], msgspec.json.decode(r[6]), r[7])
            for r in rows
        ]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _api_key(row: Row) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], Role(row[3]), row[4], row[5], row[6])


def _device_type(row: Row) -> DeviceType:
    keys = tuple(msgspec.json.decode(row[3], type=list[KeySpec]))
    methods = tuple(msgspec.json.decode(row[8], type=list[MethodSpec])) if row[8] != "[]" else ()
    return DeviceType(row[0], row[1], row[2], keys, bool(row[4]), row[5], row[6], row[7], methods)


def _device(row: Row) -> Device:
    # Most devices have no labels: skip decoding "{}" (this runs per listed device).
    labels = msgspec.json.decode(row[8], type=dict[str, str]) if row[8] not in ("{}", "") else {}
    connected = None if row[9] is None else bool(row[9])
    return Device(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        labels,
        connected,
        int(row[10]),
        row[11],
        row[12],
    )


def _command(row: Row) -> Command:
    return Command(
        row[0],
        row[1],
        row[2],
        row[3],
        msgspec.json.decode(row[4]),
        bool(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        None if row[12] is None else msgspec.json.decode(row[12]),
        row[13],
        row[14],
    )


def _rule(row: Row) -> StoredRule:
    return StoredRule(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


def _alarm(row: Row) -> Alarm:
    return Alarm(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        msgspec.json.decode(row[10]),
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
        row[16],
        row[17],
    )


def _asset(row: Row) -> Asset:
    return Asset(row[0], row[1], row[2], row[3], msgspec.json.decode(row[4]), row[5])


def _delivery(row: Row) -> Delivery:
    return Delivery(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        msgspec.json.decode(row[7], type=dict[str, str]),
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
    )


__all__ = [
    "HOUR_MS",
    "MINUTE_MS",
    "Segment",
    "Store",
    "TelemetryBatch",
    "Tx",
    "first_of_each_key",
    "join_value",
    "split_value",
]
