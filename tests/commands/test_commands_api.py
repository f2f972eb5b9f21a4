"""Commands and twins through the REST API, with an HTTP device on the other end."""

from __future__ import annotations

import asyncio

from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from tests.conftest import Api


async def setup(api: Api) -> None:
    await api.device_type("pump")
    await api.new_device("p1", "pump")
    await api.new_device("p2", "pump")


async def test_two_way_command_over_http(api: Api) -> None:
    await setup(api)
    sent = await api.client.post(
        "/api/v1/devices/p1/commands",
        json={"method": "set_speed", "params": {"rpm": 1200}},
        headers=api.admin,
    )
    assert sent.status_code == 201
    command = sent.json()
    assert command["status"] == "queued" and command["created_by"].startswith("key:")
    taken = await api.client.get("/api/v1/devices/p1/commands/next", headers=api.device("p1"))
    [mine] = taken.json()
    assert mine["id"] == command["id"] and mine["params"] == {"rpm": 1200}
    assert mine["status"] == "sent"
    # Taken once: a second poll finds nothing.
    again = await api.client.get("/api/v1/devices/p1/commands/next", headers=api.device("p1"))
    assert again.json() == []
    answered = await api.client.post(
        f"/api/v1/devices/p1/commands/{command['id']}/result",
        json={"status": "succeeded", "result": {"rpm": 1195}},
        headers=api.device("p1"),
    )
    assert answered.status_code == 200
    shown = (await api.client.get(f"/api/v1/commands/{command['id']}", headers=api.admin)).json()
    assert shown["status"] == "succeeded" and shown["result"] == {"rpm": 1195}
    assert shown["finished"] >= shown["sent"] >= shown["created"]
    twice = await api.client.post(
        f"/api/v1/devices/p1/commands/{command['id']}/result",
        json={"status": "failed"},
        headers=api.device("p1"),
    )
    assert twice.status_code == 422 and "already succeeded" in twice.json()["error"]["message"]


async def test_wait_for_the_result_and_long_poll(api: Api) -> None:
    await setup(api)

    async def device_loop() -> None:
        taken = await api.client.get(
            "/api/v1/devices/p1/commands/next", params={"wait": 10}, headers=api.device("p1")
        )
        [command] = taken.json()
        await api.client.post(
            f"/api/v1/devices/p1/commands/{command['id']}/result",
            json={"result": "ok"},
            headers=api.device("p1"),
        )

    device = asyncio.create_task(device_loop())
    response = await api.client.post(
        "/api/v1/devices/p1/commands",
        json={"method": "reboot", "wait_s": 10},
        headers=api.admin,
    )
    await device
    assert response.json()["status"] == "succeeded" and response.json()["result"] == "ok"


async def test_oneway_group_command(api: Api) -> None:
    await setup(api)
    await api.platform.store.create_group(api.tenant.id, "pumps")
    group = await api.platform.store.get_group(api.tenant.id, "pumps")
    pks = [(await api.platform.store.get_device(d)).pk for d in ("p1", "p2")]
    await api.platform.store.set_group_members(group.id, add=pks)
    sent = await api.client.post(
        "/api/v1/groups/pumps/commands", json={"method": "stop", "oneway": True}, headers=api.admin
    )
    assert sorted(c["device"] for c in sent.json()) == ["p1", "p2"]
    for device in ("p1", "p2"):
        [taken] = (
            await api.client.get(
                f"/api/v1/devices/{device}/commands/next", headers=api.device(device)
            )
        ).json()
        assert taken["status"] == "delivered" and taken["finished"] is not None


async def test_expiry_and_timeout(api: Api) -> None:
    await setup(api)
    queued = await api.client.post(
        "/api/v1/devices/p1/commands", json={"method": "a", "ttl_s": 5}, headers=api.admin
    )
    sent = await api.client.post(
        "/api/v1/devices/p2/commands", json={"method": "b", "timeout_s": 5}, headers=api.admin
    )
    await api.client.get("/api/v1/devices/p2/commands/next", headers=api.device("p2"))
    changed = await api.platform.store.expire_commands(now_ms() + 6000)
    assert sorted(changed) == sorted([queued.json()["id"], sent.json()["id"]])
    listed = (await api.client.get("/api/v1/devices/p1/commands", headers=api.admin)).json()
    assert listed[0]["status"] == "expired"
    failed = (
        await api.client.get(f"/api/v1/commands/{sent.json()['id']}", headers=api.admin)
    ).json()
    assert failed["status"] == "failed" and "no result" in failed["error"]


async def test_command_permissions(api: Api) -> None:
    await setup(api)
    viewer = api.as_key(await api.key(Role.VIEWER))
    body = {"method": "open"}
    assert (
        await api.client.post("/api/v1/devices/p1/commands", json=body, headers=viewer)
    ).status_code == 403
    bad_method = await api.client.post(
        "/api/v1/devices/p1/commands", json={"method": "no way"}, headers=api.admin
    )
    assert bad_method.status_code == 422 and bad_method.json()["error"]["field"] == "method"
    command = (
        await api.client.post("/api/v1/devices/p1/commands", json=body, headers=api.admin)
    ).json()
    # p2 can neither take p1's commands nor answer them.
    assert (
        await api.client.get("/api/v1/devices/p1/commands/next", headers=api.device("p2"))
    ).status_code == 403
    answer = await api.client.post(
        f"/api/v1/devices/p2/commands/{command['id']}/result", json={}, headers=api.device("p2")
    )
    assert answer.status_code == 422
    other = await api.platform.registry.create_tenant("other")
    foreign = api.as_key(await api.key(Role.ADMIN, other))
    assert (
        await api.client.get(f"/api/v1/commands/{command['id']}", headers=foreign)
    ).status_code == 404


async def test_twin_desired_reported_delta_and_versions(api: Api) -> None:
    await setup(api)
    url = "/api/v1/devices/p1/twin"
    first = await api.client.patch(
        f"{url}/desired", json={"desired": {"rpm": 1000, "mode": "auto"}}, headers=api.admin
    )
    assert first.json()["desired_version"] == 1
    assert first.json()["delta"] == {"rpm": 1000, "mode": "auto"}
    stale = await api.client.patch(
        f"{url}/desired", json={"desired": {"rpm": 900}, "version": 0}, headers=api.admin
    )
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "version"
    ok = await api.client.patch(
        f"{url}/desired",
        json={"desired": {"rpm": 900, "mode": None}, "version": 1},
        headers=api.admin,
    )
    assert ok.json()["desired"] == {"rpm": 900} and ok.json()["desired_version"] == 2
    reported = await api.client.post(
        f"{url}/reported", json={"reported": {"rpm": 900, "fw": "1.2"}}, headers=api.device("p1")
    )
    assert reported.json()["delta"] == {} and reported.json()["reported_version"] == 1
    seen_by_device = await api.client.get(url, headers=api.device("p1"))
    assert seen_by_device.json()["desired"] == {"rpm": 900}
    wrong = await api.client.post(f"{url}/reported", json={"rpm": 1}, headers=api.device("p1"))
    assert wrong.status_code == 422
