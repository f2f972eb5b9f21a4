"""The running platform: store, registry, ingest, bus and periodic jobs, owned together.

``async with Platform(settings) as platform:`` opens the store, migrates it,
starts the batch writer and (for the scheduler role) the rollup and retention
jobs, and stops them all on exit, writing whatever was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from m2mhub.actions import DeliveryWorker, Notifier, WebhookService
from m2mhub.alarms import AlarmService
from m2mhub.apps.fleet.service import FleetService
from m2mhub.apps.metering.service import OVERDUE_INTERVAL_S, MeteringService
from m2mhub.audit import AuditLog
from m2mhub.bus import (
    AttributesReported,
    Bus,
    ConnectionChanged,
    DeviceEventRaised,
    PresenceChanged,
    ReadingsStored,
)
from m2mhub.commands.service import CommandService
from m2mhub.config import Settings
from m2mhub.connect.mqtt.dynsec import DynamicSecurity
from m2mhub.connect.mqtt.embedded import EmbeddedBroker
from m2mhub.connect.mqtt.topics import INBOUND
from m2mhub.connect.mqtt.transport import BrokerAddress, MqttTransport, embedded_address
from m2mhub.connect.trackers.filtering import FilterSettings, Fix, PositionFilter, Reading
from m2mhub.connect.trackers.positions import LAT, LON
from m2mhub.connect.trackers.protocols import tracker_protocol
from m2mhub.connect.trackers.server import ServerLimits, TrackerServer
from m2mhub.core.timeutil import now_ms
from m2mhub.ingest.batching import BatchWriter, store_stage
from m2mhub.ingest.payload import Limits
from m2mhub.ingest.pipeline import (
    DEVICE_TYPE_CHECK,
    IngestBatch,
    Pipeline,
    RejectHandler,
    Stage,
)
from m2mhub.registry.service import Registry
from m2mhub.rules.engine import RulesEngine
from m2mhub.store import Store, open_store
from m2mhub.store.models import Device

log = logging.getLogger(__name__)


class Platform:
    """Everything one m2mhub process runs, with an explicit lifecycle."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.resolved_database_url())
        self.registry = Registry(self.store, offline_factor=settings.offline_factor)
        self.bus = Bus()
        self.writer = BatchWriter(self.store)
        self.limits = Limits(
            max_readings=settings.max_batch_readings,
            max_string=settings.max_string_length,
            future_tolerance_ms=settings.future_tolerance_s * 1000,
        )
        self.pipeline = Pipeline(
            [DEVICE_TYPE_CHECK, store_stage(self.writer), Stage(self._publish, self._publish_many)]
        )
        self.commands = CommandService(self.store, self.bus)
        # Names this platform in leases: host and pid for operators, a nonce for uniqueness.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._jobs: list[asyncio.Task[None]] = []
        # Webhooks, notifications (one durable outbox, sent by the scheduler role) and audit.
        self.audit = AuditLog(self.store)
        self.deliveries = DeliveryWorker(self.store, settings, holder=self.holder, audit=self.audit)
        self.webhooks = WebhookService(self.store, settings, self.deliveries)
        self.notifier = Notifier(self.store, settings, self.deliveries)
        # Rules and alarms (the engine listens on the bus with the rules role).
        self.alarms = AlarmService(self.store, self.bus, audit=self.audit)
        self.rules = RulesEngine(self)
        # Trips, stops and events of vehicles (apps/fleet), also with the rules role.
        self.fleet = FleetService(self)
        # Billing (apps/metering); the scheduler role marks unpaid invoices overdue.
        self.metering = MeteringService(
            self.store, holder=self.holder, audit=self.audit, webhooks=self.webhooks
        )
        self.rejected = 0
        self.broker: EmbeddedBroker | None = None
        self.accounts: DynamicSecurity | None = None
        self.mqtt: MqttTransport | None = None
        # GPS trackers in their own protocols (ingest role), and phones over OsmAnd (api).
        self.positions = PositionFilter(
            FilterSettings(
                max_speed_kmh=settings.tracker_max_speed_kmh,
                future_tolerance_ms=settings.future_tolerance_s * 1000,
            ),
            self._last_fix,
        )
        self.trackers: list[TrackerServer] = []

    async def __aenter__(self) -> Platform:
        await self.store.open()
        await self.store.migrate()
        await self.writer.start()
        try:
            roles = self.settings.role_set()
            if self.settings.mqtt_url and self.settings.mqtt_dynsec and roles & {"api", "ingest"}:
                self.accounts = DynamicSecurity(BrokerAddress.from_settings(self.settings))
                await self.accounts.connect()
                self.registry.accounts = self.accounts
            if "ingest" in roles and self.settings.mqtt_enabled:
                await self._start_mqtt()
            if "ingest" in roles:
                await self._start_trackers()
        except BaseException:
            await self._stop_trackers()
            await self._stop_mqtt()
            await self.writer.stop()
            await self.store.close()
            raise
        if self.mqtt is not None:
            # Commands queued by other processes (the CLI, an API-only process).
            self._jobs.append(asyncio.create_task(self._every(1.0, self.commands.deliver_queued)))
        if self.trackers:
            # The same for trackers connected to this process.
            self._jobs.append(asyncio.create_task(self._every(1.0, self.commands.deliver_linked)))
        if "scheduler" in self.settings.role_set():
            self._jobs += [
                asyncio.create_task(self._every(2.0, self.commands.expire)),
                asyncio.create_task(
                    self._every(self.settings.presence_interval_s, self.announce_presence)
                ),
                asyncio.create_task(self._every(self.settings.rollup_interval_s, self.run_rollups)),
                asyncio.create_task(
                    self._every(self.settings.retention_interval_s, self.run_retention)
                ),
                asyncio.create_task(
                    self._every(OVERDUE_INTERVAL_S, self.metering.mark_overdue_everywhere)
                ),
            ]
            await self.deliveries.start()
        if "rules" in self.settings.role_set():
            try:
                await self.rules.start()
                await self.fleet.start()
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.fleet.stop()
        await self.rules.stop()
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await self.deliveries.stop()
        await self._stop_trackers()
        await self._stop_mqtt()
        await self.writer.stop()
        await self.store.close()

    async def _start_mqtt(self) -> None:
        settings = self.settings
        if settings.mqtt_url:
            address = BrokerAddress.from_settings(settings)
        else:
            self.broker = EmbeddedBroker(
                self.registry, host=settings.mqtt_host, port=settings.mqtt_port
            )
            await self.broker.start()
            address = embedded_address(
                settings.mqtt_host,
                settings.mqtt_port,
                self.broker.service_user,
                self.broker.service_secret,
            )
        client_id = settings.mqtt_client_id or f"m2mhub-{socket.gethostname()}"
        self.mqtt = MqttTransport(self, address, client_id=client_id)
        await self.mqtt.start()
        if self.broker is not None:
            await self.broker.open_to_devices(INBOUND)
        self.commands.publisher = self.mqtt.publish

    async def _stop_mqtt(self) -> None:
        self.commands.publisher = None
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None
        if self.accounts is not None:
            await self.accounts.close()
            self.accounts = None
            self.registry.accounts = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    async def _start_trackers(self) -> None:
        settings = self.settings
        limits = ServerLimits(
            idle_timeout_s=settings.tracker_idle_timeout_s,
            max_connections=settings.tracker_max_connections,
        )
        for name, port in settings.tracker_ports().items():
            protocol = tracker_protocol(name)
            server = TrackerServer(
                protocol,
                find_device=self.registry.device,
                store=self.store_positions,
                position_filter=self.positions,
                downlinks=self.commands,
                host=settings.tracker_host,
                port=port,
                udp=protocol.has_udp,
                limits=limits,
            )
            await server.start()
            self.trackers.append(server)

    async def _stop_trackers(self) -> None:
        for server in self.trackers:
            await server.stop()
        self.trackers.clear()

    async def store_positions(self, device: Device, readings: list[Reading], source: str) -> None:
        """Readings from a tracker protocol, through the ingest pipeline like any other."""
        device_type = await self.registry.device_type_of(device)
        await self.ingest(IngestBatch(device, device_type, readings, now_ms(), source=source))

    async def _last_fix(self, device_pk: int) -> Fix | None:
        latest = (await self.store.latest([device_pk], [LAT, LON])).get(device_pk, {})
        lat, lon = latest.get(LAT), latest.get(LON)
        if lat is None or lon is None:
            return None
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (lat[1], lon[1])
        ):
            return None
        return max(lat[0], lon[0]), float(lat[1]), float(lon[1])

    # -- ingest stages owned by the platform --------------------------------------

    async def _publish(self, batch: IngestBatch) -> IngestBatch:
        self.bus.publish(
            ReadingsStored(batch.device.tenant_id, batch.device.pk, batch.device.id, batch.readings)
        )
        return batch

    async def _publish_many(
        self, batches: list[IngestBatch], on_reject: RejectHandler
    ) -> list[IngestBatch]:
        publish = self.bus.publish
        for batch in batches:
            device = batch.device
            publish(ReadingsStored(device.tenant_id, device.pk, device.id, batch.readings))
        return batches

    async def ingest(self, batch: IngestBatch) -> IngestBatch | None:
        """Run a parsed batch through the pipeline; returns once it is stored."""
        return await self.pipeline.submit(batch)

    async def report_attributes(self, device: Device, attributes: dict[str, Any]) -> None:
        """Store attributes a device reported about itself and announce them."""
        ts = now_ms()
        await self.store.write_attributes(device.pk, ts, attributes)
        self.bus.publish(AttributesReported(device.tenant_id, device.pk, device.id, ts, attributes))

    async def record_events(
        self, device: Device, events: list[tuple[int, str, dict[str, Any]]]
    ) -> int:
        """Store events a device raised and announce the new ones; returns how many were new."""
        new = 0
        for ts, kind, data in events:
            if await self.store.write_event(device.pk, ts, kind, data):
                new += 1
                self.bus.publish(
                    DeviceEventRaised(device.tenant_id, device.pk, device.id, ts, kind, data)
                )
        return new

    async def set_connection(self, device: Device, online: bool) -> None:
        """Record a device's connection state (MQTT birth and last will) and announce it."""
        ts = now_ms()
        await self.store.set_connected(device.pk, online, ts)
        self.bus.publish(ConnectionChanged(device.tenant_id, device.pk, device.id, ts, online))
        await self.announce_presence(device)
        if online:
            await self.commands.deliver_queued(device)

    # -- periodic jobs ----------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("periodic job %s failed", getattr(job, "__name__", job))
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled while the job ran, and something in it swallowed the
                # CancelledError (seen in the PostgreSQL pool): stop all the same.
                raise asyncio.CancelledError

    async def announce_presence(
        self, device: Device | None = None, *, now: int | None = None
    ) -> int:
        """Announce devices that came online or went offline (of one device, or all).

        Each change is stored as a ``presence`` event of the device and published
        on the bus once, whichever process sees it first.
        """
        ts = now if now is not None else now_ms()
        changes = await self.store.presence_changes(
            now=ts,
            offline_factor=self.settings.offline_factor,
            device_pk=device.pk if device else None,
        )
        for change in changes:
            await self.store.write_event(
                change.device_pk,
                ts,
                "presence",
                {"online": change.online, "reason": change.reason},
            )
            self.bus.publish(
                PresenceChanged(
                    change.tenant_id,
                    change.device_pk,
                    change.device_id,
                    ts,
                    change.online,
                    change.reason,
                )
            )
        return len(changes)

    async def run_rollups(self) -> int:
        """Recompute pending rollups (pending hours are marked by ingest)."""
        total = 0
        while done := await self.store.refresh_rollups(limit=500):
            total += done
        return total

    async def run_retention(self) -> dict[str, int] | None:
        """Apply retention once across all processes (guarded by a lease)."""
        interval_ms = int(self.settings.retention_interval_s * 1000)
        if not await self.store.try_lease("retention", self.holder, interval_ms):
            return None
        deleted = await self.store.apply_retention(
            now=now_ms(),
            rollup_1m_days=self.settings.rollup_1m_retention_days,
            rollup_1h_days=self.settings.rollup_1h_retention_days,
        )
        log.info("retention deleted %s", deleted)
        return deleted
