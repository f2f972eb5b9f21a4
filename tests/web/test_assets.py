"""The asset registry page, its CSV export and the import endpoint behind it, and assigning
devices with the registry API's roles."""

from __future__ import annotations

import csv
import io

from m2mhub.core.values import Role
from tests.web.conftest import Console


async def _generator(console: Console) -> None:
    api = console.api
    body = {"name": "generator-7", "kind": "generator", "properties": {"rated_kw": 250}}
    assert (await api.client.post("/api/v1/assets", json=body, headers=api.admin)).is_success
    assigned = await api.client.post(
        "/api/v1/assets/generator-7/assignments", json={"device": "meter-1"}, headers=api.admin
    )
    assert assigned.status_code == 201


async def test_the_registry_shows_devices_values_location_and_condition(console: Console) -> None:
    await _generator(console)
    await console.api.post("meter-1", {"power_kw": 4.5, "lat": 48.85, "lon": 2.35})
    await console.api.platform.alarms.raise_alarm(
        tenant_id=console.api.tenant.id,
        rule_id=1,
        rule_name="hot",
        device_pk=(await console.api.platform.store.get_device("meter-1")).pk,
        device_id="meter-1",
        type="hot",
        severity="critical",
        message="hot",
        details={},
        actor="rule:1",
    )
    viewer = await console.client(Role.VIEWER)
    html = (await viewer.get("/console/assets")).text
    row = html[html.index('data-asset="generator-7"') :]
    assert "generator</small>" in row and "rated_kw" in row and "250" in row
    assert '<a href="/console/devices/meter-1">meter-1</a>' in row
    assert "status-online" in row
    assert '<span data-key="power_kw">4.5</span> <span class="unit">kW</span>' in row
    assert "48.85000, 2.35000" in row  # location from the device's lat/lon
    assert "sev-critical" in row and "1 open alarm" in row
    for action in ("data-api", "Unassign", "Import", "New asset"):
        assert action not in html, f"a viewer sees {action!r}"
    operator = (await (await console.client(Role.OPERATOR)).get("/console/assets")).text
    assert 'data-api="/api/v1/assets/generator-7/assignments/meter-1" data-method="DELETE"' in (
        operator
    )
    assert 'data-api="/api/v1/assets/generator-7/assignments"' in operator
    filtered = await viewer.get("/console/assets?q=nothing", headers={"HX-Request": "true"})
    assert "<html" not in filtered.text and "No asset matches these filters" in filtered.text


async def test_an_empty_registry_says_how_to_start(console: Console) -> None:
    html = (await (await console.client(Role.OPERATOR)).get("/console/assets")).text
    assert "No assets yet." in html and "import your spreadsheet as CSV" in html


async def test_export_then_import_round_trips_the_registry(console: Console) -> None:
    await _generator(console)
    viewer = await console.client(Role.VIEWER)
    exported = await viewer.get("/console/assets/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text == "name,kind,devices,rated_kw\ngenerator-7,generator,meter-1,250\n"
    operator = await console.client(Role.OPERATOR)
    headers = {"X-CSRF-Token": await console.csrf(operator), "Content-Type": "text/csv"}
    text = "name,kind,devices,rated_kw,site\ngenerator-8,generator,meter-2,300,north\npump-1,,,,\n"
    imported = await operator.post("/api/v1/assets/import", content=text, headers=headers)
    assert imported.status_code == 201, imported.text
    assert [a["name"] for a in imported.json()] == ["generator-8", "pump-1"]
    assert imported.json()[0]["properties"] == {"rated_kw": 300, "site": "north"}
    assert imported.json()[1]["kind"] == "equipment"
    again = await viewer.get("/console/assets/export.csv")
    rows = list(csv.DictReader(io.StringIO(again.text)))
    assert [(r["name"], r["devices"], r["site"]) for r in rows] == [
        ("generator-7", "meter-1", ""),
        ("generator-8", "meter-2", "north"),
        ("pump-1", "", ""),
    ]


async def test_a_bad_import_names_every_row_and_field_and_creates_nothing(
    console: Console,
) -> None:
    await _generator(console)
    operator = await console.client(Role.OPERATOR)
    headers = {"X-CSRF-Token": await console.csrf(operator), "Content-Type": "text/csv"}
    text = (
        "name,kind,devices\n"
        "truck-1,truck,meter-2\n"
        "generator-7,generator,\n"
        "truck/2,truck,nope\n"
        "truck-3,truck,meter-2\n"
    )
    refused = await operator.post("/api/v1/assets/import", content=text, headers=headers)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == "4 row(s) have errors; nothing was imported"
    assert [(r["row"], r["field"]) for r in error["rows"]] == [
        (3, "name"),
        (4, "name"),
        (4, "devices"),
        (5, "devices"),
    ]
    assert "already exists" in error["rows"][0]["message"]
    assert "also in row 2" in error["rows"][3]["message"]
    listed = await operator.get("/api/v1/assets")
    assert [a["name"] for a in listed.json()["items"]] == ["generator-7"]  # nothing created
    missing = await operator.post("/api/v1/assets/import", content="kind\nx\n", headers=headers)
    assert missing.status_code == 422 and missing.json()["error"]["rows"][0]["field"] == "name"


async def test_viewers_cannot_import_or_assign(console: Console) -> None:
    await _generator(console)
    viewer = await console.client(Role.VIEWER)
    token = {"X-CSRF-Token": await console.csrf(viewer)}
    imported = await viewer.post(
        "/api/v1/assets/import",
        content="name\nx\n",
        headers={**token, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 403
    assigned = await viewer.post(
        "/api/v1/assets/generator-7/assignments", json={"device": "meter-2"}, headers=token
    )
    assert assigned.status_code == 403
    unassigned = await viewer.delete(
        "/api/v1/assets/generator-7/assignments/meter-1", headers=token
    )
    assert unassigned.status_code == 403
    operator = await console.client(Role.OPERATOR)
    done = await operator.delete(
        "/api/v1/assets/generator-7/assignments/meter-1",
        headers={"X-CSRF-Token": await console.csrf(operator)},
    )
    assert done.status_code == 204
    html = (await operator.get("/console/assets")).text
    assert "no device" in html[html.index('data-asset="generator-7"') :]
