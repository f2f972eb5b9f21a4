"""Registry operations shared by the REST API and the CLI."""

from __future__ import annotations

import csv
import enum
import io
import re
import time
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

import msgspec

from m2mhub.auth.secrets import (
    api_key_id,
    hash_password,
    hash_secret,
    new_api_key,
    new_device_id,
    new_device_token,
    password_matches,
    secret_matches,
)
from m2mhub.core.errors import AuthError, ForbiddenError, NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.registry.methods import check_methods
from m2mhub.registry.naming import check_device_id, check_key, check_name, check_slug
from m2mhub.store.base import LAST_SEEN_EVERY_MS, Store
from m2mhub.store.models import ApiKey, Device, DeviceType, KeySpec, MethodSpec, Tenant, User

# How long a verified credential is trusted without asking the store again. A
# revoked key or rotated token stops working in other processes within this.
_AUTH_CACHE_S = 10.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a tenant and a role (from an API key or a user session)."""

    tenant_id: int
    role: Role
    subject: str

    def require(self, role: Role) -> None:
        if not self.role.allows(role):
            raise ForbiddenError(f"this needs the {role.value} role; you have {self.role.value}")


class DeviceStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    NEVER_SEEN = "never_seen"


class RowError(msgspec.Struct, frozen=True):
    """One problem in one row of an import."""

    row: int
    field: str
    message: str


class ImportRejected(PayloadError):
    """An import with errors: nothing was created."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} row(s) have errors; nothing was imported", field="rows")
        self.errors = errors


class BrokerAccounts(Protocol):
    """Device accounts kept at an external MQTT broker (e.g. Mosquitto's dynamic security)."""

    async def add_devices(self, accounts: Sequence[tuple[str, str]]) -> None: ...

    async def set_token(self, device_id: str, token: str) -> None: ...

    async def remove_device(self, device_id: str) -> None: ...


class Registry:
    """Tenants, keys, device types, devices: the rules around the store's rows.

    With ``accounts``, every device created, re-keyed or deleted here is
    mirrored at the MQTT broker, so devices authenticate there too.
    """

    def __init__(
        self, store: Store, *, offline_factor: float = 2.0, accounts: BrokerAccounts | None = None
    ) -> None:
        self.store = store
        self.offline_factor = offline_factor
        self.accounts = accounts
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._devices: dict[tuple[str, str], tuple[float, Device]] = {}
        self._by_id: dict[str, tuple[float, Device]] = {}
        self._types: dict[int, tuple[float, DeviceType]] = {}

    # -- tenants and credentials -------------------------------------------------

    async def create_tenant(self, slug: str, name: str | None = None) -> Tenant:
        return await self.store.create_tenant(check_slug(slug), check_name(name or slug))

    async def tenant(self, slug: str) -> Tenant:
        tenant = await self.store.get_tenant(slug)
        if tenant is None:
            raise NotFoundError(f"tenant {slug!r} not found; create it with `m2mhub tenant create`")
        return tenant

    async def create_user(
        self, tenant_id: int, email: str, role: Role, password: str | None
    ) -> User:
        """A person who can sign in (password) and act with ``role`` in the tenant."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise PayloadError(f"email: {email!r} is not an e-mail address", field="email")
        if password is not None and len(password) < 8:
            raise PayloadError("password: use at least 8 characters", field="password")
        hashed = hash_password(password) if password is not None else None
        return await self.store.create_user(tenant_id, email, role, hashed)

    async def check_password(self, tenant_id: int, email: str, password: str) -> Principal:
        """The principal of a user whose password matches, else :class:`AuthError`."""
        user = await self.store.get_user(tenant_id, email.strip().lower())
        if (
            user is None
            or not user.password_hash
            or not password_matches(password, user.password_hash)
        ):
            raise AuthError("wrong e-mail or password")
        return Principal(tenant_id, user.role, f"user:{user.email}")

    async def create_api_key(self, tenant_id: int, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new API key; the full key is returned once and only its hash is kept."""
        key_id, key = new_api_key()
        record = await self.store.create_api_key(
            key_id, tenant_id, check_name(name), role, hash_secret(key)
        )
        return record, key

    async def authenticate_key(self, key: str) -> Principal:
        """The principal behind an API key, or :class:`AuthError`."""
        cached = self._keys.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        key_id = api_key_id(key)
        record = await self.store.get_api_key(key_id) if key_id else None
        if (
            record is None
            or record.revoked_ms is not None
            or not secret_matches(key, record.secret_hash)
        ):
            raise AuthError("invalid or revoked API key")
        principal = Principal(record.tenant_id, record.role, f"key:{record.id}")
        self._keys[key] = (time.monotonic() + _AUTH_CACHE_S, principal)
        return principal

    async def revoke_api_key(self, tenant_id: int, key_id: str) -> None:
        await self.store.revoke_api_key(tenant_id, key_id)
        self._keys = {k: v for k, v in self._keys.items() if api_key_id(k) != key_id}

    # -- device types --------------------------------------------------------------

    async def create_device_type(
        self,
        tenant_id: int,
        name: str,
        keys: Sequence[KeySpec] = (),
        *,
        strict: bool = False,
        report_interval_s: int = 60,
        retention_days: int | None = None,
        methods: Sequence[MethodSpec] = (),
    ) -> DeviceType:
        """A new device type; ``methods`` are the commands its devices handle (none: any)."""
        _check_type_fields(keys, report_interval_s, retention_days)
        check_methods(methods)
        return await self.store.create_device_type(
            tenant_id,
            check_name(name),
            keys,
            strict=strict,
            report_interval_s=report_interval_s,
            retention_days=retention_days,
            methods=methods,
        )

    async def update_device_type(
        self,
        tenant_id: int,
        name: str,
        *,
        keys: Sequence[KeySpec] | None = None,
        strict: bool | None = None,
        report_interval_s: int | None = None,
        retention_days: int | Literal["keep"] | None = "keep",
        methods: Sequence[MethodSpec] | None = None,
    ) -> DeviceType:
        """Change the fields given (None: keep); ``methods=[]`` makes commands free-form."""
        current = await self.store.get_device_type(tenant_id, name=name)
        new_keys = current.keys if keys is None else tuple(keys)
        interval = current.report_interval_s if report_interval_s is None else report_interval_s
        retention = current.retention_days if retention_days == "keep" else retention_days
        new_methods = current.methods if methods is None else tuple(methods)
        _check_type_fields(new_keys, interval, retention)
        check_methods(new_methods)
        updated = await self.store.update_device_type(
            tenant_id,
            current.id,
            keys=new_keys,
            strict=current.strict if strict is None else strict,
            report_interval_s=interval,
            retention_days=retention,
            methods=new_methods,
        )
        # This process checks the new declaration at once; others within the cache time.
        self._types.pop(current.id, None)
        return updated

    # -- devices -------------------------------------------------------------------

    async def create_device(
        self,
        tenant_id: int,
        *,
        type_name: str,
        name: str,
        device_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> tuple[Device, str]:
        """A new device and its token (shown once; only the hash is stored)."""
        device_type = await self.store.get_device_type(tenant_id, name=type_name)
        token = new_device_token()
        device_id = check_device_id(device_id) if device_id else new_device_id()
        [device] = await self._create_devices(
            tenant_id,
            [(device_id, device_type.id, check_name(name), hash_secret(token), labels or {})],
            [token],
        )
        return device, token

    async def import_devices_csv(self, tenant_id: int, text: str) -> list[tuple[Device, str]]:
        """Create every device of a CSV (columns name, type, and optional id, labels).

        All rows are checked first; if any has an error, nothing is created
        and :class:`ImportRejected` lists every error by row number (the
        header is row 1).
        """
        reader = csv.DictReader(io.StringIO(text))
        columns = set(reader.fieldnames or [])
        missing = {"name", "type"} - columns
        if missing:
            raise ImportRejected(
                [
                    RowError(
                        1, col, f"missing column {col!r}; the header needs name,type[,id,labels]"
                    )
                    for col in sorted(missing)
                ]
            )
        types = {t.name: t for t in await self.store.list_device_types(tenant_id)}
        errors: list[RowError] = []
        rows: list[tuple[str, int, str, str, dict[str, str]]] = []
        tokens: list[str] = []
        numbers: list[int] = []
        seen_names: set[str] = set()
        seen_ids: set[str] = set()
        for number, row in enumerate(reader, start=2):
            row_errors = len(errors)
            name = (row.get("name") or "").strip()
            type_name = (row.get("type") or "").strip()
            device_id = (row.get("id") or "").strip() or new_device_id()
            labels: dict[str, str] = {}
            try:
                check_name(name)
            except PayloadError as exc:
                errors.append(RowError(number, "name", _reason(exc)))
            if name in seen_names:
                errors.append(RowError(number, "name", f"{name!r} appears twice in the file"))
            seen_names.add(name)
            if type_name not in types:
                errors.append(RowError(number, "type", f"unknown device type {type_name!r}"))
            try:
                check_device_id(device_id)
            except PayloadError as exc:
                errors.append(RowError(number, "id", _reason(exc)))
            if device_id in seen_ids:
                errors.append(RowError(number, "id", f"{device_id!r} appears twice in the file"))
            seen_ids.add(device_id)
            try:
                labels = parse_labels(row.get("labels") or "")
            except PayloadError as exc:
                errors.append(RowError(number, "labels", _reason(exc)))
            if len(errors) == row_errors:
                token = new_device_token()
                tokens.append(token)
                numbers.append(number)
                rows.append((device_id, types[type_name].id, name, hash_secret(token), labels))
        existing_names = {d.name for d in await self._all_devices(tenant_id)}
        taken_ids = await self.store.taken_device_ids([row[0] for row in rows])
        for number, (device_id, _, name, _, _) in zip(numbers, rows, strict=True):
            if name in existing_names:
                errors.append(RowError(number, "name", f"a device named {name!r} already exists"))
            if device_id in taken_ids:
                errors.append(RowError(number, "id", f"device id {device_id!r} is taken"))
        if errors:
            raise ImportRejected(sorted(errors, key=lambda e: e.row))
        devices = await self._create_devices(tenant_id, rows, tokens)
        return list(zip(devices, tokens, strict=True))

    async def _create_devices(
        self,
        tenant_id: int,
        rows: Sequence[tuple[str, int, str, str, dict[str, str]]],
        tokens: Sequence[str],
    ) -> list[Device]:
        devices = await self.store.create_devices(tenant_id, rows)
        if self.accounts is not None:
            try:
                await self.accounts.add_devices(
                    [(d.id, token) for d, token in zip(devices, tokens, strict=True)]
                )
            except Exception:
                # Without a broker account the device could not connect: undo.
                for device in devices:
                    await self.store.delete_device(device.pk)
                raise
        return devices

    async def _all_devices(self, tenant_id: int) -> list[Device]:
        found: list[Device] = []
        after: str | None = None
        while True:
            page = await self.store.list_devices(tenant_id, after_name=after, limit=5000)
            found += page
            if len(page) < 5000:
                return found
            after = page[-1].name

    async def rotate_token(self, tenant_id: int, device_id: str) -> str:
        """Replace a device's token; the old one stops working at once in this process."""
        device = await self.store.get_device(device_id, tenant_id=tenant_id)
        token = new_device_token()
        if self.accounts is not None:
            await self.accounts.set_token(device.id, token)
        await self.store.set_device_token(device.pk, hash_secret(token))
        self._forget(device_id)
        return token

    async def delete_device(self, tenant_id: int, device_id: str) -> None:
        """Delete a device and all its data; its token stops working at once here."""
        device = await self.store.get_device(device_id, tenant_id=tenant_id)
        await self.store.delete_device(device.pk)
        self._forget(device_id)
        if self.accounts is not None:
            await self.accounts.remove_device(device.id)

    def _forget(self, device_id: str) -> None:
        self._devices = {k: v for k, v in self._devices.items() if k[0] != device_id}
        self._by_id.pop(device_id, None)

    async def authenticate_device(self, device_id: str, token: str) -> Device:
        """The device ``device_id`` if ``token`` is its token, else :class:`AuthError`."""
        cached = self._devices.get((device_id, token))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            device = await self.store.get_device(device_id)
        except NotFoundError:
            raise AuthError("unknown device or wrong token") from None
        if not secret_matches(token, device.token_hash):
            raise AuthError("unknown device or wrong token")
        self._devices[(device_id, token)] = (time.monotonic() + _AUTH_CACHE_S, device)
        return device

    async def device_for_token(self, token: str, device_id: str) -> Device:
        """Authenticate a device token presented for ``device_id``.

        A token of another device gets :class:`ForbiddenError` (403), an
        unknown token :class:`AuthError` (401).
        """
        try:
            return await self.authenticate_device(device_id, token)
        except AuthError:
            owner = await self.store.device_id_for_token_hash(hash_secret(token))
            if owner is not None:
                raise ForbiddenError(
                    f"this token belongs to device {owner!r}, not {device_id!r}"
                ) from None
            raise

    async def device(self, device_id: str) -> Device:
        """A device by id for transports that authenticated it already (cached briefly)."""
        device = (await self.devices([device_id])).get(device_id)
        if device is None:
            raise NotFoundError(f"device {device_id!r} not found", field="device")
        return device

    async def devices(self, device_ids: Iterable[str]) -> dict[str, Device]:
        """The known devices among ``device_ids``, by id: :meth:`device` for many, one query."""
        now = time.monotonic()
        found: dict[str, Device] = {}
        missing: list[str] = []
        for device_id in device_ids:
            cached = self._by_id.get(device_id)
            if cached and cached[0] > now:
                found[device_id] = cached[1]
            else:
                missing.append(device_id)
        if missing:
            fetched = await self.store.devices_by_id(None, missing)
            until = time.monotonic() + _AUTH_CACHE_S
            for device_id, device in fetched.items():
                self._by_id[device_id] = (until, device)
            found.update(fetched)
        return found

    async def device_type_of(self, device: Device) -> DeviceType:
        """The type of ``device`` (cached briefly: types change rarely)."""
        cached = self._types.get(device.type_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        device_type = await self.store.get_device_type(device.tenant_id, type_id=device.type_id)
        self._types[device.type_id] = (time.monotonic() + _AUTH_CACHE_S, device_type)
        return device_type

    def status(
        self, device: Device, device_type: DeviceType, *, now: int | None = None
    ) -> DeviceStatus:
        """Online while the device was heard from within ``offline_factor`` report intervals.

        A device whose MQTT connection closed (its last will, or its own
        "offline") is offline at once.
        """
        if device.last_seen_ms is None:
            return DeviceStatus.NEVER_SEEN
        if device.connected is False:
            return DeviceStatus.OFFLINE
        # Readings move last-seen once it is LAST_SEEN_EVERY_MS old: allow for that lag.
        window = device_type.report_interval_s * 1000 * self.offline_factor + LAST_SEEN_EVERY_MS
        current = now if now is not None else now_ms()
        return (
            DeviceStatus.ONLINE if current - device.last_seen_ms <= window else DeviceStatus.OFFLINE
        )


def _reason(exc: PayloadError) -> str:
    """The message without its ``field: `` prefix (a row error names the field already)."""
    prefix = f"{exc.field}: "
    return (
        exc.message[len(prefix) :] if exc.field and exc.message.startswith(prefix) else exc.message
    )


def parse_labels(text: str) -> dict[str, str]:
    """``"site=north;floor=2"`` -> ``{"site": "north", "floor": "2"}``."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise PayloadError(f"label {part!r} is not key=value", field="labels")
        labels[key.strip()] = value.strip()
    return labels


def _check_type_fields(
    keys: Sequence[KeySpec], report_interval_s: int, retention_days: int | None
) -> None:
    seen: set[str] = set()
    for index, spec in enumerate(keys):
        check_key(spec.key, field=f"keys[{index}].key")
        if spec.key in seen:
            raise PayloadError(f"key {spec.key!r} is declared twice", field=f"keys[{index}].key")
        seen.add(spec.key)
    if report_interval_s < 1:
        raise PayloadError("report_interval_s must be at least 1", field="report_interval_s")
    if retention_days is not None and retention_days < 1:
        raise PayloadError(
            "retention_days must be at least 1 (or empty to keep all)", field="retention_days"
        )
