"""Alarms: one open per (rule, device) by the database, lifecycle, comments, API filters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from m2mhub.core.values import Role
from m2mhub.store import Store
from m2mhub.store.models import Alarm
from tests.conftest import same_database
from tests.rules.helpers import Hub

HOT = {
    "name": "hot",
    "scope": {"type": "sensor"},
    "condition": {"threshold": {"key": "temp", "above": 80}},
    "actions": [{"alarm": {"severity": "major"}}],
}


async def _raise(store: Store, tenant_id: int, rule_id: int, device_pk: int, n: int) -> bool:
    _, created = await _raise_alarm(store, tenant_id, rule_id, device_pk, n)
    return created


async def _raise_alarm(
    store: Store, tenant_id: int, rule_id: int, device_pk: int, n: int, **changes: Any
) -> tuple[Alarm, bool]:
    fields: dict[str, Any] = {
        "rule_name": "hot",
        "device_id": "t1",
        "type": "hot",
        "severity": "major",
        "message": f"raise {n}",
        "details": {},
        "actor": "test",
    }
    return await store.raise_alarm(
        tenant_id=tenant_id,
        rule_id=rule_id,
        device_pk=device_pk,
        at_ms=n,
        **(fields | changes),
    )


async def test_one_open_alarm_per_rule_and_device_across_processes(hub: Hub) -> None:
    await hub.new_device("t1")
    rule = await hub.rule(HOT)
    stored = await hub.platform.store.get_rule(hub.tenant.id, rule["name"])
    device = await hub.platform.store.get_device("t1")
    async with same_database(hub.platform.store) as other:
        created = await asyncio.gather(
            *(
                _raise(s, hub.tenant.id, stored.id, device.pk, n)
                for n in range(20)
                for s in (hub.platform.store, other)
            )
        )
    assert created.count(True) == 1
    [alarm] = await hub.alarms()
    assert alarm.count == 40 and alarm.status == "active"
    # Cleared, the next raise opens a new alarm.
    await hub.platform.alarms.clear(hub.tenant.id, alarm.id, actor="test")
    assert await _raise(hub.platform.store, hub.tenant.id, stored.id, device.pk, 99)
    assert [a.status for a in await hub.alarms()] == ["active", "cleared"]


async def test_raising_and_changing_give_the_alarm_as_stored(hub: Hub) -> None:
    await hub.new_device("t1")
    store = hub.platform.store
    stored = await store.get_rule(hub.tenant.id, (await hub.rule(HOT))["name"])
    device = await store.get_device("t1")
    assert await _raise(store, hub.tenant.id, stored.id, device.pk, 1)
    assert not await _raise(store, hub.tenant.id, stored.id, device.pk, 2)
    raised, created = await _raise_alarm(
        store, hub.tenant.id, stored.id, device.pk, 3, severity="critical", details={"temp": 91}
    )
    assert not created and raised.count == 3 and raised.details == {"temp": 91}
    assert raised == await store.get_alarm(raised.id)
    cleared = await store.change_alarm(
        raised.id, to="cleared", allowed_from=("active",), actor="op", comment=None, at_ms=4
    )
    assert cleared is not None and (cleared.status, cleared.cleared_by) == ("cleared", "op")
    assert cleared == await store.get_alarm(raised.id)
    again = await store.change_alarm(
        raised.id, to="acknowledged", allowed_from=("active",), actor="op", comment=None, at_ms=5
    )
    assert again is None
    assert [e.kind for e in await store.alarm_history(raised.id)] == ["raised", "cleared"]


async def test_lifecycle_with_who_when_and_comments(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    await hub.send("t1", hub.clock.now, temp=90)
    [alarm] = await hub.alarms()
    operator = hub.as_key(await hub.key(Role.OPERATOR))
    viewer = hub.as_key(await hub.key(Role.VIEWER))
    url = f"/api/v1/alarms/{alarm.id}"
    assert (await hub.client.post(f"{url}/ack", headers=viewer)).status_code == 403
    acked = await hub.client.post(f"{url}/ack", json={"comment": "on my way"}, headers=operator)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"].startswith("key:")
    again = await hub.client.post(f"{url}/ack", headers=operator)
    assert again.status_code == 409 and "acknowledged" in again.json()["error"]["message"]
    commented = await hub.client.post(
        f"{url}/comments", json={"text": "valve replaced"}, headers=operator
    )
    assert commented.status_code == 201 and commented.json()["kind"] == "comment"
    cleared = await hub.client.post(f"{url}/clear", json={"comment": "fixed"}, headers=operator)
    assert cleared.json()["status"] == "cleared" and cleared.json()["cleared"] is not None
    assert (await hub.client.post(f"{url}/clear", headers=operator)).status_code == 409
    history = (await hub.client.get(f"{url}/history", headers=viewer)).json()
    assert [(h["kind"], h["comment"]) for h in history] == [
        ("raised", "hot"),
        ("acknowledged", "on my way"),
        ("comment", "valve replaced"),
        ("cleared", "fixed"),
    ]
    assert history[0]["by"] == "rule:hot"
    # Cleared by a person while still hot: the rule does not raise it again until it clears.
    await hub.send("t1", hub.clock.now + 1000, temp=95)
    assert len(await hub.alarms()) == 1
    audit = (await hub.client.get("/api/v1/audit", headers=hub.admin)).json()["items"]
    actions = {(e["action"], e["actor"].split(":")[0]) for e in audit}
    assert {
        ("alarm.raised", "rule"),
        ("alarm.acknowledged", "key"),
        ("alarm.cleared", "key"),
    } <= actions


async def test_list_filters_and_pages(hub: Hub) -> None:
    for name in ("a", "b", "c"):
        await hub.new_device(name)
    await hub.rule(HOT)
    await hub.rule(
        HOT
        | {
            "name": "very-hot",
            "actions": [{"alarm": {"severity": "critical"}}],
            "condition": {"threshold": {"key": "temp", "above": 100}},
        }
    )
    t = hub.clock.now
    await hub.send("a", t, temp=90)
    await hub.send("b", t, temp=110)
    await hub.send("c", t, temp=70)
    listed = await hub.client.get("/api/v1/alarms", headers=hub.admin)
    assert len(listed.json()["items"]) == 3
    critical = await hub.client.get(
        "/api/v1/alarms", params={"severity": "critical"}, headers=hub.admin
    )
    assert [(a["device"], a["rule"]) for a in critical.json()["items"]] == [("b", "very-hot")]
    by_device = await hub.client.get("/api/v1/alarms", params={"device": "a"}, headers=hub.admin)
    assert [a["rule"] for a in by_device.json()["items"]] == ["hot"]
    by_rule = await hub.client.get("/api/v1/alarms", params={"rule": "hot"}, headers=hub.admin)
    assert sorted(a["device"] for a in by_rule.json()["items"]) == ["a", "b"]
    seen, cursor = [], None
    while True:
        page = (
            await hub.client.get(
                "/api/v1/alarms",
                params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                headers=hub.admin,
            )
        ).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3 and seen == sorted(seen, reverse=True)
    bad = await hub.client.get("/api/v1/alarms", params={"status": "open"}, headers=hub.admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
    await hub.send("b", t + 1000, temp=50)
    open_only = await hub.client.get(
        "/api/v1/alarms", params={"status": "active,acknowledged"}, headers=hub.admin
    )
    assert [a["device"] for a in open_only.json()["items"]] == ["a"]


async def test_other_tenants_alarms_are_not_found(hub: Hub, tmp_path: Path) -> None:
    await hub.new_device("t1")
    await hub.rule(HOT)
    await hub.send("t1", hub.clock.now, temp=90)
    [alarm] = await hub.alarms()
    other = await hub.platform.registry.create_tenant("other", "Other")
    key = hub.as_key(await hub.key(Role.ADMIN, other))
    assert (await hub.client.get(f"/api/v1/alarms/{alarm.id}", headers=key)).status_code == 404
    assert (await hub.client.get("/api/v1/alarms", headers=key)).json()["items"] == []
