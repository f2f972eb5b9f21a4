"""Commands and twins: what people and rules ask of devices, and what became of it.

A command is created ``queued``. It goes out over MQTT at once when the
device is connected (its birth message said so; otherwise as soon as it
says it is online), or an HTTP device takes it with a long poll; it is then ``sent``
(a one-way command is ``delivered`` and done). The device answers on
``m2m/{id}/commands/{cmd}/result`` (or over HTTP) with ``succeeded`` or
``failed`` and a result. A command still queued after its time to live is
``expired``; one sent but unanswered within its timeout is ``failed``.

Claiming a command (queued -> sent) is a conditional update, so when several
processes deliver, each command goes out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec

from m2mhub.bus import Bus, CommandChanged, TwinChanged
from m2mhub.connect.mqtt.topics import command_topic, desired_topic
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.registry.methods import check_command
from m2mhub.registry.naming import TELEMETRY_KEY
from m2mhub.store.base import Store
from m2mhub.store.models import Command, Device, MethodSpec, Twin

log = logging.getLogger(__name__)

#: Publishes (topic, payload, retain) to the broker, QoS 1.
Publisher = Callable[[str, bytes, bool], Awaitable[None]]
#: Writes a command down a device's own open connection (a tracker's TCP link).
Link = Callable[[Command], Awaitable[None]]

RESULT_STATUSES: Final = ("delivered", "succeeded", "failed")
#: A command in one of these is done: nothing more will happen to it.
TERMINAL: Final = ("delivered", "succeeded", "failed", "expired")
MAX_PARAMS_BYTES: Final = 65_536
#: How long a sent command waits for its answer when neither the sender nor the
#: declared method says.
DEFAULT_TIMEOUT_MS: Final = 30_000


class CommandResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: str = "succeeded"
    result: Any = None
    error: str | None = None


def parse_command_result(body: bytes) -> CommandResult:
    """``{"status": "succeeded"|"failed"|"delivered", "result": ..., "error": "..."}``."""
    try:
        answer = msgspec.json.decode(body, type=CommandResult)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(f"command result: {exc}", field="body") from None
    if answer.status not in RESULT_STATUSES:
        raise PayloadError(
            f"status: {answer.status!r}; use {', '.join(RESULT_STATUSES)}", field="status"
        )
    return answer


def _timeout_ms(spec: MethodSpec | None, given: int | None) -> int:
    """The sender's timeout, else the declared method's, else the default."""
    if given is not None:
        return given
    if spec is not None and spec.timeout_s is not None:
        return spec.timeout_s * 1000
    return DEFAULT_TIMEOUT_MS


class TwinReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reported: dict[str, Any]
    version: int | None = None


class CommandService:
    """Creates, delivers, answers and expires commands; keeps twins."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.publisher: Publisher | None = None
        # device pk -> its open connection, for devices that keep one (trackers)
        self.links: dict[int, Link] = {}
        self._waiting: dict[int, asyncio.Event] = {}  # device pk -> new command for HTTP pollers

    # -- commands -----------------------------------------------------------------

    async def send(
        self,
        devices: Sequence[Device],
        method: str,
        params: dict[str, Any],
        *,
        oneway: bool = False,
        ttl_ms: int = 3_600_000,
        timeout_ms: int | None = None,
        created_by: str,
    ) -> list[Command]:
        """Queue ``method(params)`` for each device and try to deliver it now.

        When a device's type declares methods, the command is checked against
        the declaration of ``method`` (:func:`~m2mhub.registry.methods.check_command`):
        its parameters typed and their defaults filled in, one-way if the method
        is, and its timeout the method's unless ``timeout_ms`` is given. Without
        either, the timeout is :data:`DEFAULT_TIMEOUT_MS`.
        """
        if not TELEMETRY_KEY.match(method):
            raise PayloadError(
                f"method: {method!r}; use letters, digits, '_', '.', '-' (max 64)", field="method"
            )
        if len(msgspec.json.encode(params)) > MAX_PARAMS_BYTES:
            raise PayloadError(f"params: larger than {MAX_PARAMS_BYTES} bytes", field="params")
        if ttl_ms < 1000 or (timeout_ms is not None and timeout_ms < 1000):
            raise PayloadError("ttl and timeout must be at least 1 s", field="ttl_s")
        declared = await self._declared(devices, method, params)
        now = now_ms()
        commands = []
        for d in devices:
            spec, checked = declared[d.type_id]
            commands.append(
                Command(
                    secrets.token_hex(8),
                    d.tenant_id,
                    d.pk,
                    method,
                    checked,
                    oneway or (spec is not None and not spec.two_way),
                    "queued",
                    now,
                    now + ttl_ms,
                    _timeout_ms(spec, timeout_ms),
                    None,
                    None,
                    None,
                    None,
                    created_by,
                )
            )
        await self.store.create_commands(commands)
        for command, device in zip(commands, devices, strict=True):
            self._announce(command, device.id)
            self._waiting.setdefault(device.pk, asyncio.Event()).set()
            # Over MQTT only to a device that said it is connected (its birth message):
            # a command published to nobody would be lost, and HTTP devices poll.
            if device.pk in self.links:
                await self._deliver_link(command, device.id)
            elif self.publisher is not None and device.connected:
                await self._deliver(command, device.id)
        return [await self.store.get_command(c.id) for c in commands]

    async def _declared(
        self, devices: Sequence[Device], method: str, params: dict[str, Any]
    ) -> dict[int, tuple[MethodSpec | None, dict[str, Any]]]:
        """Per device type id: the declaration of ``method`` and the params checked by it."""
        checked: dict[int, tuple[MethodSpec | None, dict[str, Any]]] = {}
        for device in devices:
            if device.type_id not in checked:
                device_type = await self.store.get_device_type(
                    device.tenant_id, type_id=device.type_id
                )
                checked[device.type_id] = check_command(device_type, method, params)
        return checked

    async def wait(self, commands: Sequence[Command], wait_s: float) -> list[Command]:
        """The commands as they are once all are done, or after ``wait_s``.

        The store is read again and again, since the device may answer through
        another process.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        current = list(commands)
        while not all(c.status in TERMINAL for c in current) and loop.time() < deadline:
            await asyncio.sleep(0.05)
            current = [await self.store.get_command(c.id) for c in current]
        return current

    async def _deliver(self, command: Command, device_id: str) -> None:
        """Claim a queued command and publish it to the device."""
        assert self.publisher is not None
        now = now_ms()
        if not await self.store.mark_sent(command.id, oneway=command.oneway, at_ms=now):
            return  # another process (or an HTTP poll) took it
        payload = msgspec.json.encode(
            {
                "id": command.id,
                "method": command.method,
                "params": command.params,
                "oneway": command.oneway,
            }
        )
        try:
            await self.publisher(command_topic(device_id, command.id), payload, False)
        except Exception:
            log.exception("could not publish command %s to %s", command.id, device_id)
            return
        self._announce(await self.store.get_command(command.id), device_id)

    # -- devices with their own connection (trackers) -------------------------------

    async def attach(self, device: Device, link: Link) -> int:
        """``device`` is connected through ``link`` (until :meth:`detach`); its queued
        commands go down it now. Returns how many."""
        self.links[device.pk] = link
        return await self.deliver_linked(device.pk)

    def detach(self, device: Device, link: Link) -> None:
        if self.links.get(device.pk) is link:
            del self.links[device.pk]

    async def deliver_linked(self, device_pk: int | None = None) -> int:
        """Send queued commands down the open links (those made by other processes)."""
        if not self.links or (device_pk is not None and device_pk not in self.links):
            return 0
        queued = await self.store.queued_commands(device_pk=device_pk, now=now_ms())
        sent = 0
        for command, device_id in queued:
            if command.device_pk in self.links:
                await self._deliver_link(command, device_id)
                sent += 1
        return sent

    async def _deliver_link(self, command: Command, device_id: str) -> None:
        link = self.links[command.device_pk]
        if not await self.store.mark_sent(command.id, oneway=command.oneway, at_ms=now_ms()):
            return
        try:
            await link(command)
        except PayloadError as exc:
            # The device's protocol has no such command: it fails now, not at its timeout.
            await self.store.finish_command(
                command.id,
                command.device_pk,
                status="failed",
                result=None,
                error=exc.message,
                at_ms=now_ms(),
            )
        except (ConnectionError, OSError):
            log.warning("could not send command %s to %s: connection lost", command.id, device_id)
        self._announce(await self.store.get_command(command.id), device_id)

    async def deliver_queued(self, device: Device | None = None) -> int:
        """Publish queued commands (of one device, or of every connected device)."""
        if self.publisher is None:
            return 0
        queued = await self.store.queued_commands(
            device_pk=device.pk if device else None, now=now_ms()
        )
        for command, device_id in queued:
            await self._deliver(command, device_id)
        return len(queued)

    async def take(self, device: Device, *, wait_s: float) -> list[Command]:
        """Commands for an HTTP device, waiting up to ``wait_s`` for one to arrive."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            event = self._waiting.setdefault(device.pk, asyncio.Event())
            event.clear()
            taken = []
            for command, _ in await self.store.queued_commands(device_pk=device.pk, now=now_ms()):
                if await self.store.mark_sent(command.id, oneway=command.oneway, at_ms=now_ms()):
                    taken.append(await self.store.get_command(command.id))
                    self._announce(taken[-1], device.id)
            remaining = deadline - asyncio.get_running_loop().time()
            if taken or remaining <= 0:
                return taken
            # Woken at once by a command made in this process; another process's
            # commands are seen within a second.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))

    async def answer(self, device: Device, command_id: str, answer: CommandResult) -> Command:
        """Record the device's answer to one of its commands."""
        done = await self.store.finish_command(
            command_id,
            device.pk,
            status=answer.status,
            result=answer.result,
            error=answer.error,
            at_ms=now_ms(),
        )
        command = await self.store.get_command(command_id, tenant_id=device.tenant_id)
        if command.device_pk != device.pk:
            raise PayloadError(f"command {command_id!r} is not this device's", field="command")
        if not done:
            raise PayloadError(
                f"command {command_id!r} is already {command.status}; nothing recorded",
                field="command",
            )
        self._announce(command, device.id)
        return command

    async def expire(self) -> int:
        """Expire and time out commands; returns how many changed."""
        changed = await self.store.expire_commands(now_ms())
        for command_id in changed:
            command = await self.store.get_command(command_id)
            devices = await self.store.devices_by_pk([command.device_pk])
            self._announce(command, devices[command.device_pk].id)
        return len(changed)

    def _announce(self, command: Command, device_id: str) -> None:
        self.bus.publish(
            CommandChanged(
                command.tenant_id,
                command.device_pk,
                device_id,
                command.id,
                command.method,
                command.status,
            )
        )

    # -- twins --------------------------------------------------------------------

    async def set_desired(
        self, device: Device, changes: dict[str, Any], *, expected_version: int | None
    ) -> Twin:
        """Merge ``changes`` into the desired state and send it (retained) to the device."""
        twin = await self.store.update_twin(
            device.pk, "desired", changes, expected_version=expected_version, at_ms=now_ms()
        )
        await self.publish_desired(device, twin)
        self.bus.publish(
            TwinChanged(device.tenant_id, device.pk, device.id, "desired", twin.desired_version)
        )
        return twin

    async def publish_desired(self, device: Device, twin: Twin) -> None:
        if self.publisher is None:
            return
        payload = msgspec.json.encode({"version": twin.desired_version, "desired": twin.desired})
        try:
            # Retained: a device that connects later gets the latest desired state.
            await self.publisher(desired_topic(device.id), payload, True)
        except Exception:
            log.exception("could not publish the desired state of %s", device.id)

    async def report(self, device: Device, body: bytes) -> Twin:
        """Merge what the device reports about its state into the twin."""
        try:
            report = msgspec.json.decode(body, type=TwinReport)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise PayloadError(f"twin report: {exc}", field="body") from None
        twin = await self.store.update_twin(
            device.pk, "reported", report.reported, expected_version=None, at_ms=now_ms()
        )
        self.bus.publish(
            TwinChanged(device.tenant_id, device.pk, device.id, "reported", twin.reported_version)
        )
        return twin
