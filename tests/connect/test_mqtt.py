"""MQTT with real clients (mosquitto_pub, paho) through both broker modes.

Every test runs against the embedded broker and against a Mosquitto of its
own (dynamic security, on a free port), on each store backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from m2mhub.ingest.pipeline import IngestBatch, Stage
from m2mhub.platform import Platform
from m2mhub.store import Segment
from m2mhub.store.models import Device, KeySpec
from tests.conftest import drop_schema, free_port, new_store, same_database
from tests.mosquitto import Mosquitto, start_mosquitto

DEADLINE_S = 10.0


@dataclass
class Hub:
    platform: Platform
    client: httpx.AsyncClient
    admin: dict[str, str]
    port: int
    tokens: dict[str, str]

    async def device(self, name: str) -> str:
        tenant = await self.platform.store.get_tenant("acme")
        assert tenant is not None
        device, token = await self.platform.registry.create_device(
            tenant.id, type_name="sensor", name=name, device_id=name
        )
        self.tokens[device.id] = token
        return device.id

    async def points(self, device_id: str) -> int:
        device = await self.platform.store.get_device(device_id)
        return await self.platform.store.count_points(device.pk)

    def pub(self, device_id: str, topic: str, payload: str, *, token: str | None = None) -> int:
        """mosquitto_pub at QoS 1 as ``device_id``; its exit code."""
        return subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-q",
                "1",
                "-i",
                device_id,
                "-u",
                device_id,
                "-P",
                token or self.tokens[device_id],
                "-t",
                topic,
                "-m",
                payload,
            ],
            capture_output=True,
            timeout=20,
            check=False,
        ).returncode

    async def paho(
        self, device_id: str, *, on_message: Callable[..., None] | None = None, **will: object
    ) -> paho.Client:
        """A connected paho client (its network loop in a thread of its own)."""
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=device_id)
        client.username_pw_set(device_id, self.tokens[device_id])
        if on_message is not None:
            client.on_message = on_message
        if will:
            client.will_set(**will)  # type: ignore[arg-type]
        connected = threading.Event()
        client.on_connect = lambda *args: connected.set()
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        # The broker runs on this event loop: wait in a thread, never block the loop.
        assert await asyncio.to_thread(connected.wait, DEADLINE_S), "no CONNACK"
        return client


async def published(info: paho.MQTTMessageInfo) -> None:
    """Wait for the broker's PUBACK without blocking the loop the broker runs on."""
    await asyncio.to_thread(info.wait_for_publish, DEADLINE_S)
    assert info.is_published()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, failing after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(params=["embedded", "mosquitto"])
async def hub(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> AsyncIterator[Hub]:
    if request.param == "mosquitto":
        broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
        request.addfinalizer(broker.stop)
        mqtt = {
            "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
            "mqtt_username": broker.admin,
            "mqtt_password": broker.password,
            "mqtt_client_id": f"m2mhub-test-{tmp_path.name}",
        }
        port = broker.port
    else:
        port = free_port()
        mqtt = {"mqtt_port": port}
    settings = Settings(data_dir=tmp_path, roles="api,ingest", mqtt_device_rate=50, **mqtt)
    store, schema = new_store(backend, tmp_path)
    try:
        async with Platform(settings, store=store) as platform:
            tenant = await platform.registry.create_tenant("acme")
            await platform.registry.create_device_type(
                tenant.id, "sensor", [KeySpec("temp")], report_interval_s=60
            )
            _, key = await platform.registry.create_api_key(tenant.id, "admin", Role.ADMIN)
            app = create_app(settings, platform=platform)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                yield Hub(platform, client, {"Authorization": f"Bearer {key}"}, port, {})
    finally:
        if schema:
            drop_schema(schema)


async def test_telemetry_in_every_shape(hub: Hub) -> None:
    await hub.device("d1")
    now = now_ms()
    topic = "m2m/d1/telemetry"
    assert (
        await asyncio.to_thread(
            hub.pub, "d1", topic, json.dumps({"ts": now - 5000, "values": {"temp": 1.5}})
        )
        == 0
    )
    assert await asyncio.to_thread(hub.pub, "d1", topic, '{"temp": 2.5, "door": true}') == 0
    batch = [{"ts": now - 60_000 * i, "values": {"temp": float(i)}} for i in range(1, 11)]
    assert await asyncio.to_thread(hub.pub, "d1", topic, json.dumps(batch)) == 0
    # The broker acknowledges the publisher; the platform acknowledges the broker once
    # it has stored the message. Storing happens shortly after mosquitto_pub returns.
    await eventually(lambda: has_points(hub, "d1", 13), "13 values stored")
    latest = (await hub.client.get("/api/v1/devices/d1/latest", headers=hub.admin)).json()
    assert latest["values"]["door"]["value"] is True
    # A re-sent batch (a device retrying) is not stored twice; one new reading rides
    # along in the same message, so once it is stored the whole message was handled.
    resent = [*batch, {"ts": now, "values": {"temp": 0.0}}]
    assert await asyncio.to_thread(hub.pub, "d1", topic, json.dumps(resent)) == 0
    await eventually(lambda: has_points(hub, "d1", 14), "only the new value added")


async def has_points(hub: Hub, device_id: str, count: int) -> bool:
    return await hub.points(device_id) == count


async def test_wrong_token_and_unknown_device_are_refused(hub: Hub) -> None:
    await hub.device("d1")
    refused = await asyncio.to_thread(
        hub.pub, "d1", "m2m/d1/telemetry", '{"t": 1}', token="m2d_wrong"
    )
    assert refused != 0
    hub.tokens["ghost"] = hub.tokens["d1"]
    assert await asyncio.to_thread(hub.pub, "ghost", "m2m/ghost/telemetry", '{"t": 1}') != 0
    assert await hub.points("d1") == 0


async def test_a_device_cannot_publish_or_subscribe_as_another(hub: Hub) -> None:
    await hub.device("d1")
    await hub.device("d2")
    received: list[str] = []
    spy = await hub.paho("d1")
    try:
        granted: list[int] = []
        subscribed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_subscribe(
            client: paho.Client, userdata: object, mid: int, codes: list, props: object
        ) -> None:
            granted.extend(c.value for c in codes)
            loop.call_soon_threadsafe(subscribed.set)

        spy.on_subscribe = on_subscribe
        spy.on_message = lambda c, u, m: received.append(m.topic)
        spy.subscribe([("m2m/d2/#", 1), ("m2m/d1/#", 1)])
        await asyncio.wait_for(subscribed.wait(), DEADLINE_S)
        assert granted[0] >= 0x80 and granted[1] < 0x80  # the other's refused, its own granted
        # d1 publishes into d2's topic, then into its own, on one connection (in order).
        # (The broker does not acknowledge the refused message, so do not wait for it.
        # Mosquitto also closes the connection of an MQTT 3.1.1 client that publishes where it
        # may not; paho reconnects and sends again what was not acknowledged, so the own
        # message counts once it is acknowledged, on whichever connection.)
        acknowledged: set[int] = set()
        spy.on_publish = lambda client, userdata, mid, code, props: acknowledged.add(mid)
        spy.publish("m2m/d2/telemetry", '{"temp": 99}', qos=1)
        own = spy.publish("m2m/d1/telemetry", '{"temp": 1}', qos=1)

        async def own_acknowledged() -> bool:
            return own.mid in acknowledged

        await eventually(own_acknowledged, "d1's own reading acknowledged")

        async def own_stored() -> bool:
            return await hub.points("d1") == 1

        await eventually(own_stored, "d1's own reading stored")
        assert await hub.points("d2") == 0
        # What d2 publishes does not reach d1's subscription.
        assert await asyncio.to_thread(hub.pub, "d2", "m2m/d2/telemetry", '{"temp": 5}') == 0
        await eventually(lambda: has_points(hub, "d2", 1), "d2's own reading stored")
        assert "m2m/d2/telemetry" not in received
    finally:
        spy.loop_stop()
        spy.disconnect()


async def test_attributes_events_and_status(hub: Hub) -> None:
    await hub.device("d1")
    will = {"topic": "m2m/d1/status", "payload": "offline", "qos": 1, "retain": True}
    device = await hub.paho("d1", **will)
    try:
        await published(device.publish("m2m/d1/status", "online", qos=1, retain=True))
        await published(device.publish("m2m/d1/attributes", json.dumps({"fw": "2.1"}), qos=1))
        event = {"kind": "door_forced", "data": {"door": 3}}
        await published(device.publish("m2m/d1/events", json.dumps(event), qos=1))

        async def all_seen() -> bool:
            shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
            events = await device_events(hub, "d1", "door_forced")
            return shown["connected"] is True and len(events) == 1

        await eventually(all_seen, "status and event recorded")
        shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
        assert shown["status"] == "online"
        assert (await device_events(hub, "d1", "door_forced"))[0]["data"] == {"door": 3}
        attributes = (
            await hub.client.get("/api/v1/devices/d1/attributes", headers=hub.admin)
        ).json()
        assert attributes["fw"]["value"] == "2.1"
    finally:
        device.loop_stop()
        device.socket().close()  # a lost connection, not a clean disconnect: the will fires

    async def offline() -> bool:
        shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
        return shown["connected"] is False and shown["status"] == "offline"

    await eventually(offline, "last will marks the device offline")

    async def both_announced() -> bool:
        return len(await device_events(hub, "d1", "presence")) == 2

    # The platform announced both changes, and keeps them as the device's events.
    await eventually(both_announced, "online and offline announced")
    presence = [e["data"] for e in await device_events(hub, "d1", "presence")]
    assert presence == [
        {"online": False, "reason": "disconnected"},
        {"online": True, "reason": "connected"},
    ]


async def device_events(hub: Hub, device_id: str, kind: str) -> list[dict[str, object]]:
    response = await hub.client.get(
        f"/api/v1/devices/{device_id}/events", params={"kind": kind}, headers=hub.admin
    )
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_malformed_payloads_are_counted_per_device(hub: Hub) -> None:
    await hub.device("d1")
    await hub.device("d2")
    for payload in ("{not json", '{"temp": "hot"}', '{"temp": null}'):
        assert await asyncio.to_thread(hub.pub, "d1", "m2m/d1/telemetry", payload) == 0
    # Ingestion goes on for the others.
    assert await asyncio.to_thread(hub.pub, "d2", "m2m/d2/telemetry", '{"temp": 1}') == 0
    await eventually(lambda: has_points(hub, "d2", 1), "d2's reading stored")

    async def counted() -> bool:
        shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
        return shown["rejected"] == 3

    await eventually(counted, "three rejected messages on d1")
    shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
    assert "temp" in shown["last_error"] and shown["last_error_at"] is not None
    assert await hub.points("d1") == 0


async def test_a_flooding_device_is_limited(hub: Hub) -> None:
    await hub.device("d1")
    flooder = await hub.paho("d1")
    base = now_ms()  # one base: each message a distinct timestamp, none deduplicated
    try:
        sent = [
            flooder.publish(
                "m2m/d1/telemetry", json.dumps({"ts": base - i, "values": {"temp": i}}), qos=1
            )
            for i in range(600)
        ]
        await asyncio.to_thread(lambda: [m.wait_for_publish(DEADLINE_S) for m in sent])
    finally:
        flooder.loop_stop()
        flooder.disconnect()

    async def accounted() -> bool:
        shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
        return await hub.points("d1") + shown["rejected"] == 600

    await eventually(accounted, "every message stored or counted as rejected")
    stored = await hub.points("d1")
    assert 0 < stored < 600


async def test_a_taken_port_is_named(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        settings = Settings(data_dir=tmp_path, roles="ingest", mqtt_port=port)
        with pytest.raises(M2MHubError) as caught:
            async with Platform(settings):
                pass
    assert caught.value.field == "mqtt_port"
    assert "M2MHUB_MQTT_PORT" in caught.value.message


async def test_commands_and_desired_state_over_mqtt(hub: Hub) -> None:
    await hub.device("d1")
    loop = asyncio.get_running_loop()
    desired: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    device = await hub.paho("d1")
    subscribed = asyncio.Event()
    device.on_subscribe = lambda *args: loop.call_soon_threadsafe(subscribed.set)

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        body = json.loads(message.payload)
        if message.topic.endswith("/twin/desired"):
            loop.call_soon_threadsafe(desired.put_nowait, body)
            return
        # A command: answer it, as a device would.
        answer = {"status": "succeeded", "result": {"echo": body["params"]}}
        client.publish(f"{message.topic}/result", json.dumps(answer), qos=1)

    device.on_message = on_message
    try:
        device.subscribe([("m2m/d1/commands/+", 1), ("m2m/d1/twin/desired", 1)])
        await asyncio.wait_for(subscribed.wait(), DEADLINE_S)
        # Its birth message tells the platform that commands can go out over MQTT.
        await published(device.publish("m2m/d1/status", "online", qos=1))
        await eventually(lambda: is_connected(hub, "d1"), "the birth message recorded")
        response = await hub.client.post(
            "/api/v1/devices/d1/commands",
            json={"method": "ping", "params": {"n": 1}, "wait_s": DEADLINE_S},
            headers=hub.admin,
        )
        command = response.json()
        assert command["status"] == "succeeded", command
        assert command["result"] == {"echo": {"n": 1}}
        await hub.client.patch(
            "/api/v1/devices/d1/twin/desired", json={"desired": {"led": "on"}}, headers=hub.admin
        )
        got = await asyncio.wait_for(desired.get(), DEADLINE_S)
        assert got == {"version": 1, "desired": {"led": "on"}}
        await published(
            device.publish("m2m/d1/twin/reported", json.dumps({"reported": {"led": "on"}}), qos=1)
        )

        async def in_sync() -> bool:
            twin = (await hub.client.get("/api/v1/devices/d1/twin", headers=hub.admin)).json()
            return twin["reported"] == {"led": "on"} and twin["delta"] == {}

        await eventually(in_sync, "the reported state matches the desired state")
    finally:
        device.loop_stop()
        device.disconnect()


async def is_connected(hub: Hub, device_id: str) -> bool:
    shown = (await hub.client.get(f"/api/v1/devices/{device_id}", headers=hub.admin)).json()
    return shown["connected"] is True


async def test_a_command_waits_for_an_offline_device(hub: Hub) -> None:
    await hub.device("d1")
    platform = hub.platform
    await platform.set_connection(await platform.registry.device("d1"), online=False)
    response = await hub.client.post(
        "/api/v1/devices/d1/commands", json={"method": "wake", "ttl_s": 60}, headers=hub.admin
    )
    command_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[str] = asyncio.Queue()
    device = await hub.paho("d1")
    subscribed = asyncio.Event()
    device.on_subscribe = lambda *args: loop.call_soon_threadsafe(subscribed.set)
    device.on_message = lambda c, u, m: loop.call_soon_threadsafe(received.put_nowait, m.topic)
    try:
        device.subscribe("m2m/d1/commands/+", 1)
        await asyncio.wait_for(subscribed.wait(), DEADLINE_S)
        # A delivery pass leaves it queued while the device counts as offline...
        await platform.commands.deliver_queued()
        shown = (await hub.client.get(f"/api/v1/commands/{command_id}", headers=hub.admin)).json()
        assert shown["status"] == "queued"
        # ...and its birth message releases it.
        await published(device.publish("m2m/d1/status", "online", qos=1))
        topic = await asyncio.wait_for(received.get(), DEADLINE_S)
        assert topic == f"m2m/d1/commands/{command_id}"
        shown = (await hub.client.get(f"/api/v1/commands/{command_id}", headers=hub.admin)).json()
        assert shown["status"] == "sent"
    finally:
        device.loop_stop()
        device.disconnect()


def external_settings(broker: Mosquitto, tmp_path: Path, name: str) -> Settings:
    """api and ingest against ``broker``, with a device rate no test here reaches."""
    return Settings(
        data_dir=tmp_path,
        roles="api,ingest",
        mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
        mqtt_username=broker.admin,
        mqtt_password=broker.password,
        mqtt_client_id=f"m2mhub-{name}-{tmp_path.name}",
        mqtt_device_rate=10_000,
    )


def publish_readings(port: int, token: str, base: int, numbers: range) -> None:
    """A session of device d1: connect, publish reading i (temp i at base + i) at QoS 1 for
    each number, wait for every PUBACK of the broker."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="d1")
    client.username_pw_set("d1", token)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = [
        client.publish("m2m/d1/telemetry", json.dumps({"ts": base + i, "values": {"temp": i}}), 1)
        for i in numbers
    ]
    for message in sent:
        message.wait_for_publish(DEADLINE_S)
        assert message.is_published()
    client.loop_stop()
    client.disconnect()


@contextlib.asynccontextmanager
async def on_mosquitto(
    backend: str, tmp_path: Path, name: str
) -> AsyncIterator[tuple[Mosquitto, Platform, Device, str]]:
    """A platform against a Mosquitto of its own, with device d1 (type sensor, key temp) and
    its token; the broker is stopped and the store dropped on exit."""
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
    store, schema = new_store(backend, tmp_path)
    try:
        async with Platform(external_settings(broker, tmp_path, name), store=store) as platform:
            tenant = await platform.registry.create_tenant("acme")
            await platform.registry.create_device_type(tenant.id, "sensor", [KeySpec("temp")])
            device, token = await platform.registry.create_device(
                tenant.id, type_name="sensor", name="d1", device_id="d1"
            )
            yield broker, platform, device, token
    finally:
        broker.stop()
        if schema:
            drop_schema(schema)


async def test_a_broker_restart_loses_and_duplicates_nothing(backend: str, tmp_path: Path) -> None:
    """Mosquitto restarts mid-stream: every reading it acknowledged is stored exactly once."""
    async with on_mosquitto(backend, tmp_path, "restart") as (broker, platform, device, token):
        base = now_ms() - 10_000
        await asyncio.to_thread(publish_readings, broker.port, token, base, range(300))
        # A clean restart: Mosquitto saves its queues (persistence) and comes back.
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.restart)
        await asyncio.to_thread(publish_readings, broker.port, token, base, range(300, 600))

        async def all_stored() -> bool:
            return await platform.store.count_points(device.pk) == 600

        await eventually(all_stored, "600 readings stored after the broker restart")
        history = await platform.store.history([Segment(device.pk, base, base + 600)], limit=1000)
        assert [p.value for p in history] == [float(i) for i in range(600)]


async def test_two_ingest_processes_share_the_stream(tmp_path: Path) -> None:
    """With a shared group, each message goes to one of the processes and is stored once."""
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
    common = {
        "data_dir": tmp_path,
        "roles": "api,ingest",
        "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
        "mqtt_username": broker.admin,
        "mqtt_password": broker.password,
        "mqtt_shared_group": "ingest",
        "mqtt_device_rate": 10_000,
    }
    store, _ = new_store("sqlite", tmp_path)
    try:
        async with Platform(Settings(**common, mqtt_client_id="ingest-a"), store=store) as first:
            second_store = same_database(store)
            settings_b = Settings(**common, mqtt_client_id="ingest-b")
            async with Platform(settings_b, store=second_store) as second:
                tenant = await first.registry.create_tenant("acme")
                await first.registry.create_device_type(tenant.id, "sensor", [KeySpec("temp")])
                device, token = await first.registry.create_device(
                    tenant.id, type_name="sensor", name="d1", device_id="d1"
                )
                hub = Hub(first, None, {}, broker.port, {"d1": token})  # type: ignore[arg-type]
                publisher = await hub.paho("d1")
                base = now_ms() - 10_000
                try:
                    sent = [
                        publisher.publish(
                            "m2m/d1/telemetry",
                            json.dumps({"ts": base + i, "values": {"t": i}}),
                            qos=1,
                        )
                        for i in range(400)
                    ]
                    await asyncio.to_thread(lambda: [m.wait_for_publish(DEADLINE_S) for m in sent])
                finally:
                    publisher.loop_stop()
                    publisher.disconnect()

                async def all_stored() -> bool:
                    return await store.count_points(device.pk) == 400

                await eventually(all_stored, "400 readings stored")
                assert first.mqtt is not None and second.mqtt is not None
                # Each message reached exactly one process, and both took a share.
                assert first.mqtt.received + second.mqtt.received == 400
                assert first.mqtt.received > 0 and second.mqtt.received > 0
    finally:
        broker.stop()


async def test_retained_messages_stay_with_their_device(hub: Hub) -> None:
    await hub.device("d1")
    await hub.device("d2")
    first_device = await hub.paho("d1")
    try:
        await published(first_device.publish("m2m/d1/status", "online", qos=1, retain=True))
    finally:
        first_device.loop_stop()
        first_device.disconnect()
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[str] = asyncio.Queue()
    subscribed = asyncio.Event()
    # Listening from before the connection: a broker may push retained messages at once.
    other = await hub.paho(
        "d2", on_message=lambda c, u, m: loop.call_soon_threadsafe(received.put_nowait, m.topic)
    )
    other.on_subscribe = lambda *args: loop.call_soon_threadsafe(subscribed.set)
    try:
        other.subscribe([("m2m/d2/nothing-here", 1), ("m2m/d2/#", 1)])
        await asyncio.wait_for(subscribed.wait(), DEADLINE_S)
        await published(other.publish("m2m/d2/events", json.dumps({"kind": "ping"}), qos=1))
        # Its own message comes back through its own subscription; nothing of d1's before it.
        first = await asyncio.wait_for(received.get(), DEADLINE_S)
        assert first == "m2m/d2/events"
    finally:
        other.loop_stop()
        other.disconnect()


async def test_device_accounts_still_change_after_a_broker_restart(tmp_path: Path) -> None:
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "mosquitto")
    settings = Settings(
        data_dir=tmp_path,
        roles="api",
        mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
        mqtt_username=broker.admin,
        mqtt_password=broker.password,
    )
    try:
        async with Platform(settings, store=new_store("sqlite", tmp_path)[0]) as platform:
            tenant = await platform.registry.create_tenant("acme")
            await platform.registry.create_device_type(tenant.id, "sensor", [KeySpec("temp")])
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.restart)
            _, token = await platform.registry.create_device(
                tenant.id, type_name="sensor", name="late", device_id="late"
            )
            hub = Hub(platform, None, {}, broker.port, {"late": token})  # type: ignore[arg-type]
            # The account exists at the broker: the device may publish.
            assert await asyncio.to_thread(hub.pub, "late", "m2m/late/telemetry", '{"t": 1}') == 0
    finally:
        broker.stop()


async def test_data_after_a_last_will_brings_the_device_back(hub: Hub) -> None:
    await hub.device("d1")
    platform = hub.platform
    assert await asyncio.to_thread(hub.pub, "d1", "m2m/d1/telemetry", '{"temp": 1}') == 0
    await eventually(lambda: has_points(hub, "d1", 1), "the first reading stored")
    await platform.set_connection(await platform.registry.device("d1"), online=False)
    shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
    assert shown["status"] == "offline"
    assert await asyncio.to_thread(hub.pub, "d1", "m2m/d1/telemetry", '{"temp": 2}') == 0

    async def back_online() -> bool:
        shown = (await hub.client.get("/api/v1/devices/d1", headers=hub.admin)).json()
        return shown["status"] == "online" and shown["connected"] is None

    await eventually(back_online, "the device counts as online again")


async def test_mosquitto_sends_a_backlog_before_the_first_acknowledgement(
    backend: str, tmp_path: Path
) -> None:
    """Groups grow with a backlog only if the broker sends more than it has had acknowledged:
    the subscriber asks for a Receive Maximum (MQTT 5) of mqtt_receive_maximum."""
    count = 2_000
    async with on_mosquitto(backend, tmp_path, "backlog") as (broker, platform, device, token):
        # Nothing is stored, so nothing is acknowledged, until the gate opens.
        gate = asyncio.Event()

        async def wait_at_the_gate(batch: IngestBatch) -> IngestBatch:
            await gate.wait()
            return batch

        async def wait_many(batches: list[IngestBatch], on_reject: object) -> list[IngestBatch]:
            await gate.wait()
            return batches

        platform.pipeline.handlers.insert(0, Stage(wait_at_the_gate, wait_many))
        transport = platform.mqtt
        assert transport is not None
        # Acknowledged by the broker, not yet by m2mhub.
        base = now_ms() - 10_000
        await asyncio.to_thread(publish_readings, broker.port, token, base, range(count))

        async def all_delivered() -> bool:
            return transport.received + len(transport._inbox) == count

        await eventually(all_delivered, f"the broker sent all {count} before any PUBACK")
        gate.set()

        async def all_stored() -> bool:
            return await platform.store.count_points(device.pk) == count

        await eventually(all_stored, f"{count} readings stored")
