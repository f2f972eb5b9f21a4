"""MQTT over TLS: m2mhub and its devices reach Mosquitto through a TLS listener.

The broker's certificate is signed by a CA made for the test (trustme); m2mhub
verifies it with ``mqtt_ca_file``, devices with ``mosquitto_pub --cafile``.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from m2mhub.config import Settings
from m2mhub.core.errors import M2MHubError
from m2mhub.platform import Platform
from m2mhub.store.models import KeySpec
from tests.conftest import new_store
from tests.mosquitto import Mosquitto, ServerCertificate, start_mosquitto

DEADLINE_S = 10.0


def write_certificate(ca: trustme.CA, directory: Path) -> ServerCertificate:
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = ServerCertificate(directory / "ca.pem", directory / "server.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    for index, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(files.chain), append=index > 0)
    issued.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return write_certificate(trustme.CA(), tmp_path / "tls")


@pytest.fixture
def broker(tmp_path: Path, certificate: ServerCertificate) -> Iterator[Mosquitto]:
    started = start_mosquitto(tmp_path / "mosquitto", tls=certificate)
    yield started
    started.stop()


def tls_settings(broker: Mosquitto, tmp_path: Path, ca_file: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        roles="api,ingest",
        mqtt_url=f"mqtts://127.0.0.1:{broker.tls_port}",
        mqtt_username=broker.admin,
        mqtt_password=broker.password,
        mqtt_ca_file=str(ca_file),
        mqtt_client_id=f"m2mhub-tls-{tmp_path.name}",
    )


def publish_tls(port: int, ca_file: Path, device_id: str, token: str, payload: str) -> int:
    """mosquitto_pub over TLS at QoS 1; its exit code."""
    connection = ["-h", "127.0.0.1", "-p", str(port), "--cafile", str(ca_file)]
    account = ["-i", device_id, "-u", device_id, "-P", token]
    message = ["-q", "1", "-t", f"m2m/{device_id}/telemetry", "-m", payload]
    return subprocess.run(
        ["mosquitto_pub", *connection, *account, *message],
        capture_output=True,
        timeout=20,
        check=False,
    ).returncode


async def test_platform_and_devices_over_tls(
    broker: Mosquitto, certificate: ServerCertificate, tmp_path: Path
) -> None:
    store, _ = new_store("sqlite", tmp_path)
    async with Platform(tls_settings(broker, tmp_path, certificate.ca), store=store) as platform:
        tenant = await platform.registry.create_tenant("acme")
        await platform.registry.create_device_type(tenant.id, "sensor", [KeySpec("temp")])
        # The device's broker account was made over TLS too (dynamic security).
        device, token = await platform.registry.create_device(
            tenant.id, type_name="sensor", name="d1", device_id="d1"
        )
        assert broker.tls_port is not None
        sent = await asyncio.to_thread(
            publish_tls, broker.tls_port, certificate.ca, "d1", token, '{"temp": 21.5}'
        )
        assert sent == 0
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while await store.count_points(device.pk) < 1:
            assert asyncio.get_running_loop().time() < deadline, "the reading was not stored"
            await asyncio.sleep(0.02)
        # A device that does not trust the broker's CA does not connect.
        stranger = write_certificate(trustme.CA(), tmp_path / "other")
        refused = await asyncio.to_thread(
            publish_tls, broker.tls_port, stranger.ca, "d1", token, '{"temp": 1}'
        )
        assert refused != 0
        assert await store.count_points(device.pk) == 1


async def test_a_broker_signed_by_another_ca_is_refused_by_name(
    broker: Mosquitto, tmp_path: Path
) -> None:
    stranger = write_certificate(trustme.CA(), tmp_path / "other")
    store, _ = new_store("sqlite", tmp_path)
    with pytest.raises(M2MHubError) as caught:
        async with Platform(tls_settings(broker, tmp_path, stranger.ca), store=store):
            pass
    assert caught.value.field == "mqtt_url"
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message


async def test_a_missing_ca_file_is_named(broker: Mosquitto, tmp_path: Path) -> None:
    store, _ = new_store("sqlite", tmp_path)
    with pytest.raises(M2MHubError) as caught:
        async with Platform(tls_settings(broker, tmp_path, tmp_path / "nope.pem"), store=store):
            pass
    assert caught.value.field == "mqtt_ca_file"
    assert "nope.pem" in caught.value.message
