"""The HTTP device API: authentication, payloads, bad input, idempotence."""

from __future__ import annotations

from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Role, ValueType
from m2mhub.store.models import KeySpec
from tests.conftest import Api


async def count(api: Api, device_id: str) -> int:
    device = await api.platform.store.get_device(device_id)
    return await api.platform.store.count_points(device.pk)


async def test_post_single_bare_and_batch(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    now = now_ms()
    response = await api.post("d1", {"ts": now - 1000, "values": {"temp": 21.5}})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted_readings": 1, "accepted_values": 1}
    assert (await api.post("d1", {"temp": 22.0, "door": True})).status_code == 200
    batch = [{"ts": now - 60_000 * i, "values": {"temp": float(i)}} for i in range(1, 11)]
    assert (await api.post("d1", batch)).json()["accepted_readings"] == 10
    assert await count(api, "d1") == 13


async def test_resent_batch_is_not_duplicated(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    now = now_ms()
    batch = [{"ts": now - 1000 * i, "values": {"temp": float(i)}} for i in range(50)]
    assert (await api.post("d1", batch)).status_code == 200
    assert (await api.post("d1", batch)).status_code == 200
    assert await count(api, "d1") == 50


async def test_missing_and_wrong_tokens_are_401(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    url = "/api/v1/devices/d1/telemetry"
    missing = await api.client.post(url, json={"t": 1})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await api.client.post(url, json={"t": 1}, headers=api.as_key("m2d_nope"))
    assert wrong.status_code == 401
    unknown = await api.client.post(
        "/api/v1/devices/ghost/telemetry", json={"t": 1}, headers=api.device("d1")
    )
    assert unknown.status_code == 403  # a valid token, but not ghost's
    assert await count(api, "d1") == 0


async def test_another_devices_token_is_403(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    await api.new_device("d2")
    response = await api.client.post(
        "/api/v1/devices/d2/telemetry", json={"t": 1}, headers=api.device("d1")
    )
    assert response.status_code == 403
    assert "d1" in response.json()["error"]["message"]
    assert await count(api, "d2") == 0


async def test_operator_key_may_post_for_its_tenants_devices(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    operator = await api.key(Role.OPERATOR)
    viewer = await api.key(Role.VIEWER)
    url = "/api/v1/devices/d1/telemetry"
    assert (
        await api.client.post(url, json={"t": 1}, headers=api.as_key(operator))
    ).status_code == 200
    assert (
        await api.client.post(url, json={"t": 1}, headers=api.as_key(viewer))
    ).status_code == 403
    other = await api.platform.registry.create_tenant("other")
    foreign = await api.key(Role.ADMIN, other)
    assert (
        await api.client.post(url, json={"t": 1}, headers=api.as_key(foreign))
    ).status_code == 404


async def test_invalid_payloads_name_the_field_and_store_nothing(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    headers = {**api.device("d1"), "content-type": "application/json"}
    url = "/api/v1/devices/d1/telemetry"
    now = now_ms()
    second_null = (
        f'[{{"ts": {now}, "values": {{"t": 1}}}}, {{"ts": {now}, "values": {{"t": null}}}}]'
    )
    cases = [
        (b"{bad json", "body"),
        (b'{"t": NaN}', "body"),
        (b'{"t": 1e999}', "body"),
        (b'{"t": [1]}', "values.t"),
        (f'{{"ts": {now + 3_600_000}, "values": {{"t": 1}}}}'.encode(), "ts"),
        (second_null.encode(), "[1].values.t"),
    ]
    for body, field in cases:
        response = await api.client.post(url, content=body, headers=headers)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["field"] == field, (body, error)
        assert error["code"] == "invalid_payload"
    assert await count(api, "d1") == 0


async def test_oversized_body_is_413(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    limit = api.platform.settings.max_body_bytes
    body = b'{"s": "' + b"x" * limit + b'"}'
    response = await api.client.post(
        "/api/v1/devices/d1/telemetry", content=body, headers=api.device("d1")
    )
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "body"


async def test_strict_type_refuses_undeclared_keys_and_wrong_types(api: Api) -> None:
    keys = [KeySpec("kwh", ValueType.NUMBER, "kWh"), KeySpec("relay", ValueType.BOOL)]
    await api.device_type("meter", keys, strict=True)
    await api.new_device("m1", "meter")
    ok = await api.post("m1", {"kwh": 1.5, "relay": True})
    assert ok.status_code == 200
    unknown = await api.post("m1", [{"kwh": 2.0}, {"kwh": 3.0, "volts": 230}])
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "[1].values.volts"
    wrong = await api.post("m1", {"kwh": "lots"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "values.kwh"
    assert await count(api, "m1") == 2


async def test_declared_types_apply_to_non_strict_types_too(api: Api) -> None:
    await api.device_type("sensor", [KeySpec("temp")])
    await api.new_device("d1")
    assert (await api.post("d1", {"temp": True})).status_code == 422
    assert (await api.post("d1", {"temp": 1, "anything": "goes"})).status_code == 200


async def test_attributes_round_trip(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    url = "/api/v1/devices/d1/attributes"
    response = await api.client.post(
        url, json={"fw": "1.4.2", "cfg": {"rate": 10}}, headers=api.device("d1")
    )
    assert response.status_code == 204
    by_device = (await api.client.get(url, headers=api.device("d1"))).json()
    by_admin = (await api.client.get(url, headers=api.admin)).json()
    assert by_device == by_admin
    assert by_device["fw"]["value"] == "1.4.2" and by_device["cfg"]["value"] == {"rate": 10}
    bad = await api.client.post(url, json=[1], headers=api.device("d1"))
    assert bad.status_code == 422


async def test_posting_marks_the_device_online(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    before = (await api.client.get("/api/v1/devices/d1", headers=api.admin)).json()
    assert before["status"] == "never_seen" and before["last_seen"] is None
    await api.post("d1", {"t": 1})
    after = (await api.client.get("/api/v1/devices/d1", headers=api.admin)).json()
    assert after["status"] == "online" and after["last_seen"] is not None


async def test_a_changed_device_type_applies_at_once(api: Api) -> None:
    await api.device_type("sensor", [KeySpec("temp")])
    await api.new_device("d1")
    assert (await api.post("d1", {"temp": 1, "extra": 2})).status_code == 200
    await api.client.patch("/api/v1/device-types/sensor", json={"strict": True}, headers=api.admin)
    assert (await api.post("d1", {"temp": 1, "extra": 2})).status_code == 422


async def test_same_timestamp_keeps_the_first_value_everywhere(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    ts = now_ms() - 1000
    await api.post("d1", {"ts": ts, "values": {"p": 3.1}})
    await api.post("d1", {"ts": ts, "values": {"p": 42.0}})
    await api.post(
        "d1", [{"ts": ts + 1, "values": {"q": 1.0}}, {"ts": ts + 1, "values": {"q": 2.0}}]
    )
    latest = (await api.client.get("/api/v1/devices/d1/latest", headers=api.admin)).json()
    assert latest["values"]["p"]["value"] == 3.1
    assert latest["values"]["q"]["value"] == 1.0
    history = (await api.client.get("/api/v1/devices/d1/telemetry", headers=api.admin)).json()
    assert [(p["key"], p["value"]) for p in history["items"]] == [("p", 3.1), ("q", 1.0)]


async def test_attributes_answer_204_without_a_body(api: Api) -> None:
    await api.device_type("sensor")
    await api.new_device("d1")
    response = await api.client.post(
        "/api/v1/devices/d1/attributes", json={"fw": "1"}, headers=api.device("d1")
    )
    assert response.status_code == 204 and response.content == b""
