"""Device types declare command methods through the API: round trip, errors, old clients."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

PUMP: dict[str, Any] = {
    "name": "pump",
    "keys": [{"key": "flow_m3_h", "unit": "m³/h"}],
    "methods": [
        {
            "name": "set_speed",
            "description": "Run at a speed",
            "timeout_s": 15,
            "params": [
                {
                    "name": "rpm",
                    "type": "integer",
                    "required": True,
                    "min": 0,
                    "max": 3000,
                    "unit": "rpm",
                    "description": "shaft speed",
                },
                {"name": "mode", "type": "enum", "choices": ["eco", "boost"], "default": "eco"},
            ],
        },
        {"name": "stop", "two_way": False},
    ],
}


async def test_methods_round_trip_through_create_get_list_and_patch(api: Api) -> None:
    created = await api.client.post("/api/v1/device-types", json=PUMP, headers=api.admin)
    assert created.status_code == 201, created.text
    [set_speed, stop] = created.json()["methods"]
    assert set_speed["name"] == "set_speed" and set_speed["timeout_s"] == 15
    assert set_speed["two_way"] is True and stop["two_way"] is False
    rpm, mode = set_speed["params"]
    assert rpm == {
        "name": "rpm",
        "type": "integer",
        "required": True,
        "default": None,
        "min": 0,
        "max": 3000,
        "choices": None,
        "unit": "rpm",
        "description": "shaft speed",
    }
    assert (mode["type"], mode["choices"], mode["default"]) == ("enum", ["eco", "boost"], "eco")
    got = await api.client.get("/api/v1/device-types/pump", headers=api.admin)
    assert got.json()["methods"] == created.json()["methods"]
    listed = await api.client.get("/api/v1/device-types", headers=api.admin)
    assert listed.json()[0]["methods"] == created.json()["methods"]

    # A patch of other fields keeps the methods; a patch of methods replaces them.
    kept = await api.client.patch(
        "/api/v1/device-types/pump", json={"report_interval_s": 30}, headers=api.admin
    )
    assert kept.json()["methods"] == created.json()["methods"]
    replaced = await api.client.patch(
        "/api/v1/device-types/pump", json={"methods": [{"name": "reset"}]}, headers=api.admin
    )
    assert [m["name"] for m in replaced.json()["methods"]] == ["reset"]
    cleared = await api.client.patch(
        "/api/v1/device-types/pump", json={"methods": []}, headers=api.admin
    )
    assert cleared.json()["methods"] == []
    stored = await api.platform.store.get_device_type(api.tenant.id, name="pump")
    assert stored.methods == ()


async def test_a_type_made_without_methods_still_works_as_before(api: Api) -> None:
    body = {"name": "meter", "keys": [{"key": "energy_kwh"}]}
    created = await api.client.post("/api/v1/device-types", json=body, headers=api.admin)
    assert created.status_code == 201 and created.json()["methods"] == []


@pytest.mark.parametrize(
    ("methods", "field", "words"),
    [
        (
            [{"name": "a"}, {"name": "b", "params": [{"name": "x", "type": "float"}]}],
            "methods[1].params[0].type",
            ["'float'", "number, integer, boolean, string, enum"],
        ),
        ([{"name": "a"}, {"name": "a"}], "methods[1].name", ["declared twice"]),
        (
            [{"name": "a", "params": [{"name": "x", "min": 10, "max": 1}]}],
            "methods[0].params[0].max",
            ["below min"],
        ),
        (
            [{"name": "a", "params": [{"name": "x", "type": "enum", "choices": []}]}],
            "methods[0].params[0].choices",
            ["needs its choices"],
        ),
        ([{"name": "bad name"}], "methods[0].name", ["'bad name'"]),
    ],
)
async def test_a_wrong_declaration_is_a_422_naming_the_field(
    api: Api, methods: list[dict[str, Any]], field: str, words: list[str]
) -> None:
    body = {"name": "pump", "methods": methods}
    response = await api.client.post("/api/v1/device-types", json=body, headers=api.admin)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert all(word in error["message"] for word in words), error
    # Nothing was created, and a patch is checked the same way.
    assert (await api.client.get("/api/v1/device-types/pump", headers=api.admin)).status_code == 404
    await api.device_type("pump")
    patched = await api.client.patch(
        "/api/v1/device-types/pump", json={"methods": methods}, headers=api.admin
    )
    assert patched.status_code == 422 and patched.json()["error"]["field"] == field
