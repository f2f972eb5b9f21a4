"""The metering REST API on each backend, from declaring meters to a paid invoice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from m2mhub.apps.metering.payments import read_payment_status, validate_direct_debit
from m2mhub.core.values import Role
from tests.apps.metering.billing_data import (
    EAN_1,
    KEY,
    OCT_START,
    SETTINGS,
    TARIFF_YAML,
    m1_reads,
    post_reads,
)
from tests.conftest import Api

FIXTURES = Path(__file__).parent / "fixtures"
M = "/api/v1/metering"


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _declare(api: Api) -> None:
    """Meter m1 of billing_data at EAN_1, billed to account A-1 by direct debit."""
    await api.device_type("meter")
    await api.new_device("m1", "meter")
    await post_reads(api.client, "m1", api.tokens["m1"], m1_reads())
    h = api.admin
    post = api.client.post
    settings = {
        **msgspec.to_builtins(SETTINGS),
        "webhook_url": "http://127.0.0.1:9/hooks/billing",
        "webhook_secret": "s3cret",
    }
    await _ok(await api.client.put(f"{M}/settings", json=settings, headers=h))
    await _ok(
        await post(
            f"{M}/meters",
            json={
                "name": "m1",
                "device": "m1",
                "registers": [{"key": KEY, "digits": 6, "decimals": 3}],
            },
            headers=h,
        ),
        201,
    )
    await _ok(
        await post(
            f"{M}/supply-points", json={"code": EAN_1, "address": ["Dorpsstraat 1"]}, headers=h
        ),
        201,
    )
    await _ok(
        await post(
            f"{M}/accounts",
            json={
                "number": "A-1",
                "name": "J. de Vries",
                "address": ["Dorpsstraat 1", "6711 AA Ede"],
                "payment_method": "sepa_debit",
                "iban": "NL91 ABNA 0417 1643 00",
                "mandate_id": "MANDATE-A1",
                "mandate_signed_on": "2026-01-05",
            },
            headers=h,
        ),
        201,
    )
    for path, body in (
        ("links/meters", {"meter": "m1", "supply_point": EAN_1, "from": "2026-01-01T00:00:00Z"}),
        ("links/accounts", {"supply_point": EAN_1, "account": "A-1", "from": "2025-12-31T23:00Z"}),
    ):
        await _ok(await post(f"{M}/{path}", json=body, headers=h), 201)
    tariff = await api.client.put(
        f"{M}/tariffs", content=TARIFF_YAML, headers={**h, "Content-Type": "application/yaml"}
    )
    assert (await _ok(tariff))["name"] == "Flat 2026"
    await _ok(
        await post(
            f"{M}/accounts/A-1/tariffs",
            json={"tariff": "Flat 2026", "from": "2026-01-01"},
            headers=h,
        ),
        201,
    )


async def test_bill_render_collect_and_get_paid(api: Api) -> None:
    await _declare(api)
    viewer = api.as_key(await api.key(Role.VIEWER))
    operator = api.as_key(await api.key(Role.OPERATOR))

    # Viewers read, only admins bill.
    refused = await api.client.post(
        f"{M}/billing-runs", json={"period": "2026-10"}, headers=operator
    )
    assert refused.status_code == 403
    run = await _ok(
        await api.client.post(f"{M}/billing-runs", json={"period": "2026-10"}, headers=api.admin),
        201,
    )
    assert run["status"] == "done"
    assert run["summary"][0]["issued"] == ["INV-000001"]

    page = await _ok(await api.client.get(f"{M}/invoices", headers=viewer))
    assert [(i["number"], i["total"], i["status"]) for i in page["items"]] == [
        ("INV-000001", "242.24", "open")
    ]
    invoice = await _ok(await api.client.get(f"{M}/invoices/INV-000001", headers=viewer))
    assert invoice["document"]["schema"] == "m2mhub.invoice/1"
    assert invoice["document"]["total"] == "242.24"
    csv = await api.client.get(f"{M}/invoices/INV-000001.csv", headers=viewer)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[2] == (
        "INV-000001,invoice,2,Energy,2026-10-01,2026-11-01,745.000,kWh,0.25,186.25,EUR,0.21"
    )
    pdf = await api.client.get(f"{M}/invoices/INV-000001.pdf", headers=viewer)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

    # Intervals with their quality; an operator's edit is kept with its author.
    intervals = await _ok(
        await api.client.get(
            f"{M}/meters/m1/intervals",
            params={"from": str(OCT_START), "to": str(OCT_START + 6 * 3_600_000)},
            headers=viewer,
        )
    )
    [register] = intervals["registers"]
    assert [i["quality"] for i in register["intervals"]] == ["actual"] * 6
    edit = await _ok(
        await api.client.post(
            f"{M}/meters/m1/edits",
            json={"register": KEY, "start": OCT_START, "quantity": "3", "reason": "misread"},
            headers=operator,
        ),
        201,
    )
    assert edit["author"].startswith("key:")

    # SEPA: the open direct-debit invoice is collected once, in a schema-valid pain.008.
    export = await api.client.post(f"{M}/payments/sepa-export", headers=api.admin)
    assert export.status_code == 200, export.text
    assert export.headers["x-m2mhub-invoices"] == "INV-000001"
    validate_direct_debit(export.content)
    assert b"<SeqTp>FRST</SeqTp>" in export.content
    again = await api.client.post(f"{M}/payments/sepa-export", headers=api.admin)
    assert again.status_code == 422 and again.json()["error"]["field"] == "invoices"

    # The bank's pain.002 (a real report, renumbered for this file): accepted, in flight.
    message_id = export.headers["content-disposition"].split('"')[1].removesuffix(".xml")
    status_report = (
        (FIXTURES / "pain.002.001.03_partial_reject.xml")
        .read_text()
        .replace("INV-2024-0001", "INV-000001")
        .replace("M2M-2024-05-31-001", message_id)
    )
    accepted = await _ok(
        await api.client.post(
            f"{M}/payments/status",
            content=status_report,
            headers={**api.admin, "Content-Type": "application/xml"},
        )
    )
    assert accepted["pending"] == ["INV-000001"] and accepted["paid"] == []
    assert accepted["unknown"] == ["INV-2024-0002"]
    # Then the camt.054 booking on the creditor's account: paid.
    report = (
        (FIXTURES / "camt.054.001.02_collections_and_return.xml")
        .read_text()
        .replace("INV-2024-0001", "INV-000001")
        .replace("M2M-2024-05-31-001", message_id)
    )
    assert read_payment_status(report).results[0].end_to_end_id == "INV-000001"
    applied = await _ok(
        await api.client.post(
            f"{M}/payments/status",
            content=report,
            headers={**api.admin, "Content-Type": "application/xml"},
        )
    )
    assert applied["paid"] == ["INV-000001"]
    assert len(applied["webhooks"]) == 1
    [delivery] = await api.platform.store.list_deliveries(api.tenant.id, kind="webhook")
    event = msgspec.json.decode(delivery.body)
    assert event["type"] == "io.m2mhub.metering.payment.paid"
    assert event["subject"] == "INV-000001"
    paid = await _ok(await api.client.get(f"{M}/invoices/INV-000001", headers=viewer))
    assert paid["status"] == "paid"
    # The same file again changes nothing and sends nothing.
    twice = await _ok(
        await api.client.post(f"{M}/payments/status", content=report, headers=api.admin)
    )
    assert twice["paid"] == [] and twice["webhooks"] == []
    audit = await _ok(
        await api.client.get(
            "/api/v1/audit", params={"action": "metering.*", "from": "-1d"}, headers=api.admin
        )
    )
    actions = {entry["action"] for entry in audit["items"]}
    assert {"metering.billing.run", "metering.invoice.paid", "metering.sepa.export"} <= actions


async def test_errors_name_the_field(api: Api) -> None:
    await _declare(api)
    h = api.admin
    cases = [
        (f"{M}/billing-runs", {"period": "October"}, 422, "period"),
        (f"{M}/billing-runs", {"period": "2026-10", "account": "nobody"}, 404, "account"),
        (
            f"{M}/accounts",
            {"number": "A-9", "name": "X", "address": ["Y"], "payment_method": "sepa_debit"},
            422,
            "iban",
        ),
        (
            f"{M}/accounts",
            {"number": "A-9", "name": "X", "address": ["Y"], "iban": "NL00ABNA0417164300"},
            422,
            "iban",
        ),
        (f"{M}/accounts", {"number": "A-1", "name": "X", "address": ["Y"]}, 409, "number"),
        (
            f"{M}/meters",
            {"name": "m9", "device": "m1", "registers": [{"key": KEY}], "interval_minutes": 7},
            422,
            "interval_minutes",
        ),
        (
            f"{M}/meters/m1/edits",
            {"register": "nope", "start": OCT_START, "quantity": "1", "reason": "x"},
            422,
            "register",
        ),
        (
            f"{M}/links/meters",
            {"meter": "m1", "supply_point": EAN_1, "from": "2025-06-01T00:00:00Z"},
            409,
            "from",
        ),
    ]
    for url, body, status, field in cases:
        response = await api.client.post(url, json=body, headers=h)
        assert response.status_code == status, (url, body, response.text)
        assert response.json()["error"]["field"] == field, response.text
    bad_tariff = await api.client.put(
        f"{M}/tariffs", content=TARIFF_YAML.replace("0.25", "-1"), headers=h
    )
    assert bad_tariff.status_code == 422
    assert bad_tariff.json()["error"]["field"] == "versions[0].energy.price_per_kwh"
    overdue = await _ok(
        await api.client.post(f"{M}/invoices/mark-overdue", json={"today": "2027-01-01"}, headers=h)
    )
    assert overdue == {"overdue": []}
