"""Manual actions land in the audit log with who did them; the log is filtered and paged."""

from __future__ import annotations

from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role
from tests.conftest import Api


async def audit(api: Api, **params: object) -> list[dict[str, object]]:
    response = await api.client.get("/api/v1/audit", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_command_and_twin_change_are_audited(api: Api) -> None:
    await api.device_type("pump")
    await api.new_device("p1", "pump")
    key = await api.key(Role.OPERATOR)
    operator = api.as_key(key)
    key_id = key.split("_")[1]
    sent = await api.client.post(
        "/api/v1/devices/p1/commands",
        json={"method": "set_speed", "params": {"rpm": 1200}},
        headers=operator,
    )
    assert sent.status_code == 201
    desired = await api.client.patch(
        "/api/v1/devices/p1/twin/desired", json={"desired": {"mode": "eco"}}, headers=operator
    )
    assert desired.status_code == 200
    [twin, command] = await audit(api, actor=f"key:{key_id}")
    assert command["action"] == "command.send" and command["target"] == "device:p1"
    assert command["details"] == {
        "method": "set_speed",
        "params": {"rpm": 1200},
        "command": sent.json()["id"],
        "status": "queued",
    }
    assert command["result"] == "ok"
    assert twin["action"] == "twin.desired" and twin["target"] == "device:p1"
    assert twin["details"] == {"desired": {"mode": "eco"}, "expected_version": None, "version": 1}
    assert now_ms() - 60_000 < int(str(command["ts"])) <= int(str(twin["ts"])) <= now_ms()
    # Another key's actions are not attributed to this one.
    assert await audit(api, actor="key:someone-else") == []


async def test_failures_are_audited_with_the_reason(api: Api) -> None:
    await api.device_type("pump")
    await api.new_device("p1", "pump")
    bad = await api.client.post(
        "/api/v1/devices/p1/commands", json={"method": "no way"}, headers=api.admin
    )
    assert bad.status_code == 422
    conflict = await api.client.patch(
        "/api/v1/devices/p1/twin/desired",
        json={"desired": {"a": 1}, "version": 5},
        headers=api.admin,
    )
    assert conflict.status_code == 409
    missing = await api.client.delete("/api/v1/devices/nope", headers=api.admin)
    assert missing.status_code == 404
    entries = await audit(api)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("device.delete", "device:nope"),
        ("twin.desired", "device:p1"),
        ("command.send", "device:p1"),
    ]
    assert entries[0]["result"] == "error: device 'nope' not found"
    assert str(entries[1]["result"]).startswith("error: desired is at version 0")
    assert str(entries[2]["result"]).startswith("error: method: 'no way'")


async def test_registry_changes_are_audited(api: Api) -> None:
    await api.device_type("meter")
    created = await api.client.post(
        "/api/v1/devices", json={"name": "m-1", "type": "meter"}, headers=api.admin
    )
    device_id = created.json()["id"]
    await api.client.post(f"/api/v1/devices/{device_id}/token", headers=api.admin)
    await api.client.delete(f"/api/v1/devices/{device_id}", headers=api.admin)
    key = (
        await api.client.post(
            "/api/v1/api-keys", json={"name": "ci", "role": "viewer"}, headers=api.admin
        )
    ).json()
    await api.client.delete(f"/api/v1/api-keys/{key['id']}", headers=api.admin)
    entries = await audit(api)
    assert [(e["action"], e["target"], e["result"]) for e in entries] == [
        ("apikey.revoke", f"apikey:{key['id']}", "ok"),
        ("apikey.create", f"apikey:{key['id']}", "ok"),
        ("device.delete", f"device:{device_id}", "ok"),
        ("device.rotate_token", f"device:{device_id}", "ok"),
        ("device.create", f"device:{device_id}", "ok"),
    ]
    # Secrets never reach the log.
    assert key["key"] not in str(entries) and "token" not in str(entries[3]["details"])
    devices_only = await audit(api, action="device.*")
    assert [e["action"] for e in devices_only] == [
        "device.delete",
        "device.rotate_token",
        "device.create",
    ]
    assert [e["action"] for e in await audit(api, target=f"apikey:{key['id']}")] == [
        "apikey.revoke",
        "apikey.create",
    ]


async def test_pages_time_range_and_roles(api: Api) -> None:
    for i in range(5):
        await api.platform.audit.record(
            tenant_id=api.tenant.id,
            actor="rule:1",
            action="alarm.raise",
            target=f"device:d{i}",
            details={"i": i},
        )
    seen: list[object] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/v1/audit", params=params, headers=api.admin)).json()
        seen += [e["details"]["i"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [4, 3, 2, 1, 0]
    assert await audit(api, to="-1h") == []
    assert len(await audit(api, **{"from": "-1m"})) == 5
    bad = await api.client.get("/api/v1/audit", params={"from": "soon"}, headers=api.admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "from"
    # Operators read the log; viewers do not.
    viewer = api.as_key(await api.key(Role.VIEWER))
    assert (await api.client.get("/api/v1/audit", headers=viewer)).status_code == 403
    operator = api.as_key(await api.key(Role.OPERATOR))
    assert (await api.client.get("/api/v1/audit", headers=operator)).status_code == 200
    # Another tenant sees none of it.
    other = await api.platform.registry.create_tenant("other", "Other")
    _, other_key = await api.platform.registry.create_api_key(other.id, "admin", Role.ADMIN)
    theirs = await api.client.get("/api/v1/audit", headers=api.as_key(other_key))
    assert theirs.json()["items"] == []
