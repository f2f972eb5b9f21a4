"""Commands to devices whose type declares methods: checked, typed, defaults filled in."""

from __future__ import annotations

from typing import Any

from m2mhub.registry.methods import parse_methods
from tests.conftest import Api

METHODS = parse_methods(
    {
        "set_speed": {
            "timeout_s": 15,
            "params": {
                "rpm": {"type": "integer", "required": True, "min": 0, "max": 3000, "unit": "rpm"},
                "mode": {"type": "enum", "choices": ["eco", "boost"], "default": "eco"},
            },
        },
        "stop": {"two_way": False},
    }
)


async def setup(api: Api) -> None:
    await api.device_type("pump", methods=METHODS)
    await api.device_type("meter")  # declares nothing: free-form
    await api.new_device("p1", "pump")
    await api.new_device("m1", "meter")


async def send(api: Api, device_id: str, body: dict[str, Any]) -> Any:
    return await api.client.post(
        f"/api/v1/devices/{device_id}/commands", json=body, headers=api.admin
    )


async def test_a_declared_command_is_typed_and_gets_its_defaults(api: Api) -> None:
    await setup(api)
    sent = await send(api, "p1", {"method": "set_speed", "params": {"rpm": 1200.0}})
    assert sent.status_code == 201, sent.text
    assert sent.json()["params"] == {"rpm": 1200, "mode": "eco"}
    assert sent.json()["oneway"] is False
    stored = await api.platform.store.get_command(sent.json()["id"])
    assert stored.timeout_ms == 15_000  # the method's timeout
    assert isinstance(stored.params["rpm"], int)
    # What the device takes is what was checked.
    [taken] = (
        await api.client.get("/api/v1/devices/p1/commands/next", headers=api.device("p1"))
    ).json()
    assert taken["params"] == {"rpm": 1200, "mode": "eco"}


async def test_the_sender_s_timeout_wins_and_a_one_way_method_is_one_way(api: Api) -> None:
    await setup(api)
    sent = await send(api, "p1", {"method": "set_speed", "params": {"rpm": 5}, "timeout_s": 40})
    assert (await api.platform.store.get_command(sent.json()["id"])).timeout_ms == 40_000
    stop = await send(api, "p1", {"method": "stop"})
    assert stop.status_code == 201 and stop.json()["oneway"] is True
    assert (await api.platform.store.get_command(stop.json()["id"])).timeout_ms == 30_000


async def test_a_wrong_command_is_a_422_naming_the_param(api: Api) -> None:
    await setup(api)
    cases = [
        ({"method": "reboot"}, "method", "declares no method 'reboot'; use one of set_speed, stop"),
        ({"method": "set_speed"}, "params.rpm", "required: give an integer from 0 to 3000 (rpm)"),
        (
            {"method": "set_speed", "params": {"rpm": "1200"}},
            "params.rpm",
            'expected an integer from 0 to 3000 (rpm), got "1200"',
        ),
        ({"method": "set_speed", "params": {"rpm": 4000}}, "params.rpm", "got 4000"),
        (
            {"method": "set_speed", "params": {"rpm": 1, "mode": "turbo"}},
            "params.mode",
            "expected one of 'eco', 'boost', got \"turbo\"",
        ),
        ({"method": "stop", "params": {"now": True}}, "params.now", "no parameter 'now'"),
    ]
    for body, field, words in cases:
        response = await send(api, "p1", body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["field"] == field and words in error["message"], error
    assert (await api.client.get("/api/v1/devices/p1/commands", headers=api.admin)).json() == []


async def test_a_type_without_methods_takes_any_command_as_before(api: Api) -> None:
    await setup(api)
    sent = await send(api, "m1", {"method": "set_relay", "params": {"relay": "on", "n": [1]}})
    assert sent.status_code == 201
    assert sent.json()["params"] == {"relay": "on", "n": [1]}
    stored = await api.platform.store.get_command(sent.json()["id"])
    assert stored.timeout_ms == 30_000 and stored.oneway is False


async def test_a_group_command_is_checked_against_each_type(api: Api) -> None:
    await setup(api)
    store = api.platform.store
    group = await store.create_group(api.tenant.id, "mixed")
    pks = [(await store.get_device(d)).pk for d in ("p1", "m1")]
    await store.set_group_members(group.id, add=pks)
    body = {"method": "set_speed", "params": {"rpm": 10}}
    response = await api.client.post("/api/v1/groups/mixed/commands", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    by_device = {c["device"]: c["params"] for c in response.json()}
    assert by_device == {"p1": {"rpm": 10, "mode": "eco"}, "m1": {"rpm": 10}}
    refused = await api.client.post(
        "/api/v1/groups/mixed/commands", json={"method": "reboot"}, headers=api.admin
    )
    assert refused.status_code == 422 and "'pump'" in refused.json()["error"]["message"]
