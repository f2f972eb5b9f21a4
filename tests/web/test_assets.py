"""The asset registry page, its CSV and Excel exports and the import endpoint behind them, and
assigning devices with the registry API's roles."""

from __future__ import annotations

import csv
import io

import httpx
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from m2mhub.core.values import Role
from m2mhub.registry.assets_xlsx import XLSX_MEDIA_TYPE
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
    assert "No assets yet." in html and "import your spreadsheet as CSV or Excel" in html
    assert 'href="/console/assets/export.csv"' in html
    assert 'href="/console/assets/export.xlsx"' in html
    assert 'accept=".csv,.xlsx,' in html


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


def _workbook(*rows: list[object]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _import(
    console: Console, data: bytes, content_type: str
) -> tuple[httpx.AsyncClient, httpx.Response]:
    operator = await console.client(Role.OPERATOR)
    headers = {"X-CSRF-Token": await console.csrf(operator), "Content-Type": content_type}
    return operator, await operator.post("/api/v1/assets/import", content=data, headers=headers)


async def _asset_names(client: httpx.AsyncClient) -> list[str]:
    return [a["name"] for a in (await client.get("/api/v1/assets")).json()["items"]]


async def test_an_excel_export_imports_back_with_its_types(console: Console) -> None:
    api = console.api
    body = {
        "name": "generator-7",
        "kind": "generator",
        "properties": {"rated_kw": 250, "efficiency": 0.93, "standby": True, "since": "2021-04-01"},
    }
    assert (await api.client.post("/api/v1/assets", json=body, headers=api.admin)).is_success
    viewer = await console.client(Role.VIEWER)
    exported = await viewer.get("/console/assets/export.xlsx")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == XLSX_MEDIA_TYPE
    assert 'filename="assets.xlsx"' in exported.headers["content-disposition"]
    book = load_workbook(io.BytesIO(exported.content))
    sheet = book["assets"]
    assert [c.value for c in sheet[1]] == [
        "name",
        "kind",
        "devices",
        "efficiency",
        "rated_kw",
        "since",
        "standby",
    ]
    assert [c.data_type for c in sheet[2]][3:] == ["n", "n", "d", "b"]
    # The exported sheet, edited in the spreadsheet: a second generator on meter-2.
    sheet["A2"], sheet["C2"] = "generator-8", "meter-2"
    edited = io.BytesIO()
    book.save(edited)
    operator, imported = await _import(console, edited.getvalue(), "application/octet-stream")
    assert imported.status_code == 201, imported.text
    assert imported.json() == [
        {
            "name": "generator-8",
            "kind": "generator",
            "properties": body["properties"],
            "created": imported.json()[0]["created"],
        }
    ]
    assignments = await operator.get("/api/v1/assets/generator-8/assignments")
    assert [a["device"] for a in assignments.json()] == ["meter-2"]
    again = await viewer.get("/console/assets/export.csv")
    assert again.text == (
        "name,kind,devices,efficiency,rated_kw,since,standby\n"
        "generator-7,generator,,0.93,250,2021-04-01,true\n"
        "generator-8,generator,meter-2,0.93,250,2021-04-01,true\n"
    )


async def test_a_bad_workbook_names_excel_rows_and_fields_and_creates_nothing(
    console: Console,
) -> None:
    await _generator(console)
    data = _workbook(
        ["name", "kind", "devices", "rated_kw"],
        ["truck-1", "truck", "meter-2", 90],
        [],
        ["generator-7", "generator", None, None],  # row 4: the blank row 3 still counts
        ["truck-2", "truck", "nope", "=D2*2"],
    )
    operator, refused = await _import(console, data, XLSX_MEDIA_TYPE)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == "3 row(s) have errors; nothing was imported"  # one per error
    assert [(r["row"], r["field"]) for r in error["rows"]] == [
        (4, "name"),
        (5, "rated_kw"),
        (5, "devices"),
    ]
    assert "cell D5 holds the formula =D2*2 but no saved result" in error["rows"][1]["message"]
    assert await _asset_names(operator) == ["generator-7"]  # nothing created
    assignments = await operator.get("/api/v1/assets/generator-7/assignments")
    assert [a["device"] for a in assignments.json()] == ["meter-1"]  # nothing changed


async def test_a_file_that_is_not_a_workbook_is_refused_with_a_reason(console: Console) -> None:
    await _generator(console)
    renamed_csv = b"name,kind\ntruck-1,truck\n"
    operator, refused = await _import(console, renamed_csv, XLSX_MEDIA_TYPE)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "file"
    assert (
        "not an Excel workbook (.xlsx) but text, perhaps a CSV file renamed" in (error["message"])
    )
    _, binary = await _import(console, bytes(range(256)), "text/csv")
    assert binary.status_code == 422
    assert "is not UTF-8 text" in binary.json()["error"]["message"]
    _, xls = await _import(console, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "text/csv")
    assert xls.status_code == 422 and "(.xls)" in xls.json()["error"]["message"]
    assert await _asset_names(operator) == ["generator-7"]


async def test_the_import_documents_both_media_types(console: Console) -> None:
    schema = (await console.api.client.get("/openapi.json")).json()
    body = schema["paths"]["/api/v1/assets/import"]["post"]["requestBody"]["content"]
    assert set(body) == {"text/csv", XLSX_MEDIA_TYPE}
    assert body[XLSX_MEDIA_TYPE]["schema"] == {"type": "string", "format": "binary"}
