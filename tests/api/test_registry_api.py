"""Registry endpoints: device types, devices, import, tokens, roles, tenant isolation."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.config import Settings
from m2mhub.core.errors import AuthError
from m2mhub.core.values import Role
from tests.conftest import Api


async def test_device_type_lifecycle(api: Api) -> None:
    body = {
        "name": "meter",
        "keys": [{"key": "energy_kwh", "unit": "kWh"}, {"key": "relay", "type": "bool"}],
        "report_interval_s": 900,
    }
    created = await api.client.post("/api/v1/device-types", json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    assert created.json()["keys"][0] == {
        "key": "energy_kwh",
        "type": "number",
        "unit": "kWh",
        "description": None,
    }
    again = await api.client.post("/api/v1/device-types", json=body, headers=api.admin)
    assert again.status_code == 409
    patched = await api.client.patch(
        "/api/v1/device-types/meter", json={"strict": True, "retention_days": 30}, headers=api.admin
    )
    assert patched.json()["strict"] is True and patched.json()["retention_days"] == 30
    assert patched.json()["report_interval_s"] == 900
    listed = await api.client.get("/api/v1/device-types", headers=api.admin)
    assert [t["name"] for t in listed.json()] == ["meter"]


async def test_device_type_validation_names_the_field(api: Api) -> None:
    cases = [
        ({"name": "x", "keys": [{"key": "bad key"}]}, "keys[0].key"),
        ({"name": "x", "keys": [{"key": "a"}, {"key": "a"}]}, "keys[1].key"),
        ({"name": "x", "report_interval_s": 0}, "report_interval_s"),
        ({"name": "x", "keys": [{"key": "a", "type": "complex"}]}, "keys.0.type"),
        ({"name": "x", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = await api.client.post("/api/v1/device-types", json=body, headers=api.admin)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field, response.json()


async def test_device_create_shows_token_once_and_rotation(api: Api) -> None:
    await api.device_type("meter")
    created = await api.client.post(
        "/api/v1/devices",
        json={"name": "m-001", "type": "meter", "labels": {"site": "n"}},
        headers=api.admin,
    )
    assert created.status_code == 201
    device = created.json()
    assert device["token"].startswith("m2d_") and device["labels"] == {"site": "n"}
    url = f"/api/v1/devices/{device['id']}"
    shown = (await api.client.get(url, headers=api.admin)).json()
    assert "token" not in shown
    stored = await api.platform.store.get_device(device["id"])
    assert device["token"] not in stored.token_hash
    post = f"{url}/telemetry"
    old = {"Authorization": f"Bearer {device['token']}"}
    assert (await api.client.post(post, json={"t": 1}, headers=old)).status_code == 200
    rotated = await api.client.post(f"{url}/token", headers=api.admin)
    new = {"Authorization": f"Bearer {rotated.json()['token']}"}
    assert (await api.client.post(post, json={"t": 2}, headers=old)).status_code == 401
    assert (await api.client.post(post, json={"t": 3}, headers=new)).status_code == 200


async def test_device_errors(api: Api) -> None:
    await api.device_type("meter")
    unknown_type = await api.client.post(
        "/api/v1/devices", json={"name": "a", "type": "nope"}, headers=api.admin
    )
    assert unknown_type.status_code == 404 and unknown_type.json()["error"]["field"] == "type"
    bad_id = await api.client.post(
        "/api/v1/devices", json={"name": "a", "type": "meter", "id": "a/b"}, headers=api.admin
    )
    assert bad_id.status_code == 422 and bad_id.json()["error"]["field"] == "id"
    await api.client.post("/api/v1/devices", json={"name": "a", "type": "meter"}, headers=api.admin)
    taken = await api.client.post(
        "/api/v1/devices", json={"name": "a", "type": "meter"}, headers=api.admin
    )
    assert taken.status_code == 409 and taken.json()["error"]["field"] == "name"
    missing = await api.client.get("/api/v1/devices/nope", headers=api.admin)
    assert missing.status_code == 404


async def test_list_devices_paginates_and_filters(api: Api) -> None:
    await api.device_type("meter")
    await api.device_type("sensor")
    for i in range(12):
        await api.new_device(f"m-{i:02d}", "meter")
    await api.new_device("s-1", "sensor")
    await api.post("m-03", {"t": 1})
    names: list[str] = []
    cursor = None
    while True:
        params = {"type": "meter", "limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/v1/devices", params=params, headers=api.admin)).json()
        names += [d["name"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"m-{i:02d}" for i in range(12)]
    online = await api.client.get("/api/v1/devices", params={"status": "online"}, headers=api.admin)
    assert [d["name"] for d in online.json()["items"]] == ["m-03"]
    prefixed = await api.client.get(
        "/api/v1/devices", params={"name_prefix": "s-"}, headers=api.admin
    )
    assert [d["name"] for d in prefixed.json()["items"]] == ["s-1"]
    bad = await api.client.get("/api/v1/devices", params={"cursor": "zz!"}, headers=api.admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


async def test_csv_import_thousands(api: Api) -> None:
    await api.device_type("meter")
    rows = "\n".join(f"meter-{i:05d},meter,,site=s{i % 7};floor={i % 3}" for i in range(3000))
    body = f"name,type,id,labels\n{rows}\n"
    response = await api.client.post(
        "/api/v1/devices/import", content=body, headers={**api.admin, "content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text[:500]
    result = response.json()
    assert result["created"] == 3000
    first = result["devices"][0]
    assert first["labels"] == {"site": "s0", "floor": "0"}
    ok = await api.client.post(
        f"/api/v1/devices/{first['id']}/telemetry",
        json={"kwh": 1},
        headers={"Authorization": f"Bearer {first['token']}"},
    )
    assert ok.status_code == 200


async def test_csv_import_with_errors_creates_nothing(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("existing", "meter")
    body = (
        "name,type,id,labels\n"
        "good-1,meter,,\n"
        "bad-type,pump,,\n"
        "good-1,meter,,\n"
        "bad-id,meter,a/b,\n"
        "bad-labels,meter,,novalue\n"
        ",meter,,\n"
        "existing,meter,,\n"
    )
    response = await api.client.post(
        "/api/v1/devices/import", content=body, headers={**api.admin, "content-type": "text/csv"}
    )
    assert response.status_code == 422
    errors = [(e["row"], e["field"]) for e in response.json()["error"]["rows"]]
    assert errors == [(3, "type"), (4, "name"), (5, "id"), (6, "labels"), (7, "name"), (8, "name")]
    listed = (await api.client.get("/api/v1/devices", headers=api.admin)).json()["items"]
    assert [d["name"] for d in listed] == ["existing"]
    no_header = await api.client.post(
        "/api/v1/devices/import", content="a,b\n1,2\n", headers=api.admin
    )
    assert no_header.status_code == 422
    assert {e["field"] for e in no_header.json()["error"]["rows"]} == {"name", "type"}


async def test_roles(api: Api) -> None:
    await api.device_type("meter")
    viewer = api.as_key(await api.key(Role.VIEWER))
    operator = api.as_key(await api.key(Role.OPERATOR))
    body = {"name": "d", "type": "meter"}
    assert (await api.client.get("/api/v1/devices", headers=viewer)).status_code == 200
    denied = await api.client.post("/api/v1/devices", json=body, headers=viewer)
    assert denied.status_code == 403 and "operator" in denied.json()["error"]["message"]
    assert (
        await api.client.post("/api/v1/devices", json=body, headers=operator)
    ).status_code == 201
    new_type = {"name": "t2"}
    assert (
        await api.client.post("/api/v1/device-types", json=new_type, headers=operator)
    ).status_code == 403
    assert (
        await api.client.post("/api/v1/api-keys", json={"name": "x"}, headers=operator)
    ).status_code == 403
    assert (await api.client.delete("/api/v1/devices/d", headers=operator)).status_code == 403
    no_key = await api.client.get("/api/v1/devices")
    assert no_key.status_code == 401
    device_token = await api.client.get("/api/v1/devices", headers=api.as_key("m2d_x"))
    assert device_token.status_code == 401


async def test_api_key_revocation(api: Api) -> None:
    created = await api.client.post(
        "/api/v1/api-keys", json={"name": "ci", "role": "viewer"}, headers=api.admin
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert (await api.client.get("/api/v1/devices", headers=api.as_key(key))).status_code == 200
    revoked = await api.client.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=api.admin)
    assert revoked.status_code == 204
    assert (await api.client.get("/api/v1/devices", headers=api.as_key(key))).status_code == 401
    tampered = key[:-4] + "AAAA"
    assert (
        await api.client.get("/api/v1/devices", headers=api.as_key(tampered))
    ).status_code == 401


async def test_tenants_cannot_see_or_touch_each_other(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("ours", "meter")
    await api.post("ours", {"t": 1})
    await api.platform.store.create_group(api.tenant.id, "g")
    await api.platform.store.create_asset(api.tenant.id, "truck", "truck", {})
    other = await api.platform.registry.create_tenant("other")
    theirs = api.as_key(await api.key(Role.ADMIN, other))
    for url in [
        "/api/v1/devices/ours",
        "/api/v1/devices/ours/latest",
        "/api/v1/devices/ours/telemetry",
        "/api/v1/devices/ours/aggregates?key=t",
        "/api/v1/devices/ours/export.csv",
        "/api/v1/devices/ours/attributes",
        "/api/v1/device-types/meter",
        "/api/v1/groups/g/export.csv",
        "/api/v1/assets/truck",
        "/api/v1/assets/truck/telemetry",
    ]:
        response = await api.client.get(url, headers=theirs)
        assert response.status_code == 404, url
    assert (await api.client.get("/api/v1/devices", headers=theirs)).json()["items"] == []
    assert (await api.client.get("/api/v1/latest", headers=theirs)).json() == []
    writes = [
        ("delete", "/api/v1/devices/ours", None),
        ("post", "/api/v1/devices/ours/token", None),
        ("post", "/api/v1/devices/ours/telemetry", {"t": 2}),
        ("patch", "/api/v1/device-types/meter", {"strict": True}),
        ("post", "/api/v1/devices", {"name": "x", "type": "meter"}),
    ]
    for method, url, body in writes:
        response = await api.client.request(method, url, json=body, headers=theirs)
        assert response.status_code == 404, url
    device = await api.platform.store.get_device("ours")
    assert await api.platform.store.count_points(device.pk) == 1


async def test_groups_and_members(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("a", "meter")
    await api.new_device("b", "meter")
    assert (
        await api.client.post("/api/v1/groups", json={"name": "north"}, headers=api.admin)
    ).status_code == 201
    members = await api.client.post(
        "/api/v1/groups/north/members", json={"add": ["a", "b"]}, headers=api.admin
    )
    assert members.status_code == 204
    await api.client.post("/api/v1/groups/north/members", json={"remove": ["b"]}, headers=api.admin)
    listed = await api.client.get("/api/v1/devices", params={"group": "north"}, headers=api.admin)
    assert [d["id"] for d in listed.json()["items"]] == ["a"]
    unknown = await api.client.post(
        "/api/v1/groups/north/members", json={"add": ["zz"]}, headers=api.admin
    )
    assert unknown.status_code == 404


async def test_health_metrics_and_openapi(api: Api) -> None:
    health = (await api.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["schema_version"] >= 2
    await api.device_type("meter")
    await api.new_device("a", "meter")
    await api.post("a", {"t": 1, "u": 2})
    await api.post("a", {"t": []})
    metrics = (await api.client.get("/metrics")).text
    assert "m2mhub_ingest_values_total 2.0" in metrics
    assert "m2mhub_ingest_rejected_total 1.0" in metrics
    assert "m2mhub_rules_errors_total 0.0" in metrics
    spec = (await api.client.get("/openapi.json")).json()
    assert "/api/v1/devices/{device_id}/telemetry" in spec["paths"]
    assert "/api/v1/devices/{device_id}/aggregates" in spec["paths"]


async def test_tenant_retention_setting(api: Api) -> None:
    ok = await api.client.put(
        "/api/v1/tenant/retention", json={"retention_days": 30}, headers=api.admin
    )
    assert ok.status_code == 200
    assert (await api.platform.store.get_tenant("acme")).retention_days == 30  # type: ignore[union-attr]
    bad = await api.client.put(
        "/api/v1/tenant/retention", json={"retention_days": 0}, headers=api.admin
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "retention_days"


async def test_users_with_roles_and_passwords(api: Api) -> None:
    body = {"email": "Ops@Example.com", "role": "operator", "password": "correct horse"}
    created = await api.client.post("/api/v1/users", json=body, headers=api.admin)
    assert created.status_code == 201
    assert created.json()["email"] == "ops@example.com"
    again = await api.client.post("/api/v1/users", json=body, headers=api.admin)
    assert again.status_code == 409
    short = {"email": "a@b.io", "password": "short"}
    assert (await api.client.post("/api/v1/users", json=short, headers=api.admin)).json()["error"][
        "field"
    ] == "password"
    not_email = {"email": "nobody", "password": "long enough"}
    assert (
        await api.client.post("/api/v1/users", json=not_email, headers=api.admin)
    ).status_code == 422
    listed = (await api.client.get("/api/v1/users", headers=api.admin)).json()
    assert [(u["email"], u["role"]) for u in listed] == [("ops@example.com", "operator")]
    registry = api.platform.registry
    principal = await registry.check_password(api.tenant.id, "ops@example.com", "correct horse")
    assert principal.role == Role.OPERATOR
    stored = await api.platform.store.get_user(api.tenant.id, "ops@example.com")
    assert stored is not None and "correct horse" not in (stored.password_hash or "")
    with pytest.raises(AuthError):
        await registry.check_password(api.tenant.id, "ops@example.com", "wrong horse")


async def test_api_docs_load_nothing_from_outside(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert "/static/swagger-ui/swagger-ui-bundle.js" in assets
    assert all(a.startswith("/") for a in assets), assets
    assert "cdn" not in page.text.lower()
    for asset in assets:
        assert (await api.client.get(asset)).status_code == 200, asset


async def test_deleting_a_device_stops_its_token_at_once(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("d", "meter")
    assert (await api.post("d", {"t": 1})).status_code == 200
    assert (await api.client.delete("/api/v1/devices/d", headers=api.admin)).status_code == 204
    assert (await api.post("d", {"t": 2})).status_code == 401


async def test_group_names_are_checked_and_groups_deleted(api: Api) -> None:
    for name in ("", "   ", "a/b"):
        response = await api.client.post("/api/v1/groups", json={"name": name}, headers=api.admin)
        assert response.status_code == 422 and response.json()["error"]["field"] == "name"
    await api.client.post("/api/v1/groups", json={"name": "north"}, headers=api.admin)
    assert (await api.client.delete("/api/v1/groups/north", headers=api.admin)).status_code == 204
    assert (await api.client.get("/api/v1/groups", headers=api.admin)).json() == []


async def test_tenant_retention_reads_back(api: Api) -> None:
    assert (await api.client.get("/api/v1/tenant/retention", headers=api.admin)).json() == {
        "retention_days": None
    }
    await api.client.put("/api/v1/tenant/retention", json={"retention_days": 7}, headers=api.admin)
    shown = await api.client.get("/api/v1/tenant/retention", headers=api.admin)
    assert shown.json() == {"retention_days": 7}


async def test_csv_import_errors_do_not_repeat_the_field(api: Api) -> None:
    await api.device_type("meter")
    body = "name,type,id\nx,meter,a b\n"
    response = await api.client.post("/api/v1/devices/import", content=body, headers=api.admin)
    [row] = response.json()["error"]["rows"]
    assert row["field"] == "id" and not row["message"].startswith("id:")


async def test_a_scheduler_only_process_serves_no_api(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, roles="scheduler")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        assert (await client.get("/api/v1/devices")).status_code == 404
        assert (await client.get("/metrics")).status_code == 200
