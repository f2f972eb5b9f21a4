"""The SDK over TLS: a Mosquitto with a TLS listener, its certificate from a test CA."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import trustme

from m2mhub.config import Settings
from m2mhub.device import DeviceClient
from m2mhub.platform import Platform
from m2mhub.store import SqliteStore
from m2mhub.store.models import KeySpec
from tests.connect.test_mqtt_tls import write_certificate
from tests.device.conftest import DEADLINE_S, eventually
from tests.mosquitto import start_mosquitto


async def test_a_device_connects_with_a_ca_file_or_a_context(tmp_path: Path) -> None:
    certificate = write_certificate(trustme.CA(), tmp_path / "tls")
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto", tls=certificate)
    try:
        settings = Settings(
            data_dir=tmp_path,
            roles="api,ingest",
            mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
            mqtt_username=broker.admin,
            mqtt_password=broker.password,
        )
        async with Platform(settings, store=SqliteStore(tmp_path / "m2mhub.db")) as platform:
            tenant = await platform.registry.create_tenant("acme")
            await platform.registry.create_device_type(tenant.id, "sensor", [KeySpec("temp")])
            device, token = await platform.registry.create_device(
                tenant.id, type_name="sensor", name="d1", device_id="d1"
            )
            context = ssl.create_default_context(cafile=str(certificate.ca))
            for tls in (certificate.ca, context):
                client = DeviceClient("d1", token, port=broker.tls_port, tls=tls)
                async with client:
                    await asyncio.wait_for(client.wait_connected(), DEADLINE_S)
                    await client.send({"temp": 21.5})
                    await asyncio.wait_for(client.flush(), DEADLINE_S)

            async def both_stored() -> bool:
                return await platform.store.count_points(device.pk) == 2

            await eventually(both_stored, "a reading over TLS from each client")
    finally:
        broker.stop()
