"""Billing incomplete data, netting and overdue invoices, on each backend.

The month of ``billing_data`` (posted through HTTP telemetry) is billed as in
test_service: A-1 242.24 EUR (745 kWh, 4 of 745 intervals estimated), A-2 365.96 EUR
(no estimates).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from m2mhub.apps.metering.models import BillingSettings, InvoiceStatus, MissingData
from m2mhub.apps.metering.service import MeteringService
from m2mhub.core.errors import ConflictError, PayloadError
from m2mhub.core.values import Role
from tests.apps.metering.billing_data import (
    HOUR,
    KEY,
    OCT_START,
    SETTINGS,
    declare,
    m1_reads,
    post_reads,
    swap_reads,
)
from tests.conftest import Api

FIXTURES = Path(__file__).parent / "fixtures"
#: The run's clock: invoices are issued on 2 November 2026, due on 16 November.
ISSUED = int(datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp() * 1000)
DAY = 24 * HOUR


@pytest.fixture
async def billed(api: Api) -> MeteringService:
    """The month of ``billing_data`` posted by its meters, declared, not yet billed."""
    await api.device_type("meter")
    for name in ("m1", "m2a", "m2b"):
        await api.new_device(name, "meter")
    old, new = swap_reads()
    await post_reads(api.client, "m1", api.tokens["m1"], m1_reads())
    await post_reads(api.client, "m2a", api.tokens["m2a"], old)
    await post_reads(api.client, "m2b", api.tokens["m2b"], new)
    service = MeteringService(
        api.platform.store, holder="test", audit=api.platform.audit, webhooks=api.platform.webhooks
    )
    await declare(service, api.tenant.id)
    return service


async def _settings(service: MeteringService, tenant_id: int, **changes: object) -> None:
    await service.storage.save_settings(tenant_id, msgspec.structs.replace(SETTINGS, **changes))


async def _pay(service: MeteringService, tenant_id: int, number: str) -> None:
    """Collect ``number`` by SEPA and read the bank's camt.054 booking of it."""
    file, numbers = await service.export_sepa(tenant_id, actor="test", now=ISSUED)
    assert numbers == [number]
    report = (
        (FIXTURES / "camt.054.001.02_collections_and_return.xml")
        .read_text()
        .replace("INV-2024-0001", number)
        .replace("M2M-2024-05-31-001", file.message_id)
    )
    applied = await service.import_status(tenant_id, report.encode(), actor="test", now=ISSUED)
    assert applied.paid == [number]


# --- held invoices ----------------------------------------------------------------------


async def test_too_many_estimates_hold_the_invoice_without_burning_a_number(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await _settings(billed, tenant, on_missing_data=MissingData.HOLD, max_estimated_percent=0)
    run = await billed.run_billing(tenant, "2026-10", actor="test", now=ISSUED)
    by_account = {entry["account"]: entry for entry in run.summary}
    assert by_account["A-1"]["outcome"] == "held"
    [held] = by_account["A-1"]["held"]
    assert held["reference"] == "HELD-000001"
    assert "4 of 745 intervals (0.5 %) are estimated" in held["reason"]
    assert by_account["A-2"]["issued"] == ["INV-000001"]  # numbers stay gapless

    record = await billed.storage.invoice(tenant, "HELD-000001")
    assert record.status is InvoiceStatus.HELD and "max_estimated_percent" in (
        record.status_reason or ""
    )
    assert Decimal(record.document["consumption"]["estimated_kwh"]) == 4
    assert record.document["consumption"]["estimated_dates"] == ["2026-10-09"]
    # Held is not collected: A-2 pays by transfer, so nothing is left to collect.
    with pytest.raises(PayloadError, match="no open direct-debit invoices"):
        await billed.export_sepa(tenant, actor="test", now=ISSUED)

    # Running again with the same data keeps it held, under the same reference.
    again = await billed.run_billing(tenant, "2026-10", actor="test", now=ISSUED + HOUR)
    assert {e["account"]: e["outcome"] for e in again.summary} == {
        "A-1": "held",
        "A-2": "unchanged",
    }
    assert [h["reference"] for h in again.summary[0]["held"]] == ["HELD-000001"]

    # An admin releases it: numbered next, issued today, collectable.
    released = await billed.release(tenant, "HELD-000001", actor="admin", now=ISSUED + DAY)
    assert released.number == "INV-000002" and released.status is InvoiceStatus.OPEN
    assert released.document["number"] == "INV-000002"
    assert released.document["issue_date"] == "2026-11-03"
    assert released.total == Decimal("242.24") and released.corrects is None
    with pytest.raises(Exception, match="not found"):
        await billed.storage.invoice(tenant, "HELD-000001")
    with pytest.raises(ConflictError, match="INV-000002 is open, not held"):
        await billed.release(tenant, "INV-000002", actor="admin")
    _, collected = await billed.export_sepa(tenant, actor="test", now=ISSUED + DAY)
    assert collected == ["INV-000002"]
    # Released, it is an ordinary invoice: the next run leaves it alone.
    last = await billed.run_billing(tenant, "2026-10", actor="test", now=ISSUED + 2 * DAY)
    assert {e["outcome"] for e in last.summary} == {"unchanged"}


async def test_estimates_under_the_threshold_are_billed_and_flagged(
    api: Api, billed: MeteringService
) -> None:
    await _settings(
        billed, api.tenant.id, on_missing_data=MissingData.HOLD, max_estimated_percent=1
    )
    run = await billed.run_billing(api.tenant.id, "2026-10", account="A-1", actor="t", now=ISSUED)
    assert run.summary[0]["issued"] == ["INV-000001"]
    invoice = await billed.storage.invoice(api.tenant.id, "INV-000001")
    assert invoice.document["consumption"]["estimated_reads"] == 4
    assert invoice.document["consumption"]["estimated_dates"] == ["2026-10-09"]


async def test_missing_data_is_held_in_either_mode_and_a_run_after_the_fix_replaces_it(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    assert (await billed.storage.settings(tenant)).on_missing_data is MissingData.ESTIMATE
    # m1's reads start on 1 October: 29 and 30 September have nothing to go on, neither
    # reads nor history to estimate from.
    run = await billed.run_billing(
        tenant, "2026-09-29..2026-09-30", account="A-1", actor="test", now=ISSUED
    )
    [entry] = run.summary
    assert entry["outcome"] == "held" and entry["issued"] == []
    assert "48 intervals have no data" in entry["held"][0]["reason"]
    # The reads arrive (1 kWh an hour up to the first October read, through the ingest
    # path); the next run issues the invoice and drops the held one.
    early = [
        {"ts": OCT_START - h * HOUR, "values": {KEY: float(999_500 - h)}} for h in range(1, 49)
    ]
    await post_reads(api.client, "m1", api.tokens["m1"], early)
    fixed = await billed.run_billing(
        tenant, "2026-09-29..2026-09-30", account="A-1", actor="test", now=ISSUED + DAY
    )
    [entry] = fixed.summary
    assert entry["outcome"] == "issued" and entry["issued"] == ["INV-000001"]
    assert await billed.storage.list_invoices(tenant, status=[InvoiceStatus.HELD]) == []
    invoice = await billed.storage.invoice(tenant, "INV-000001")
    assert Decimal(invoice.document["consumption"]["import_kwh"]) == 48


async def test_a_held_correction_keeps_the_old_invoice_until_released(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await billed.run_billing(tenant, "2026-10", account="A-1", actor="test", now=ISSUED)
    await _settings(billed, tenant, on_missing_data=MissingData.HOLD, max_estimated_percent=0)
    await billed.add_edit(
        tenant,
        meter="m1",
        register=KEY,
        start=OCT_START + 10 * HOUR,
        quantity=Decimal(11),
        author="user:ops@example.com",
        reason="customer's photo of the register",
    )
    run = await billed.run_billing(tenant, "2026-10", account="A-1", actor="test", now=ISSUED)
    assert run.summary[0]["outcome"] == "held" and run.summary[0]["credit_notes"] == []
    assert (await billed.storage.invoice(tenant, "INV-000001")).status is InvoiceStatus.OPEN
    released = await billed.release(tenant, "HELD-000001", actor="admin", now=ISSUED + DAY)
    assert (released.number, released.corrects) == ("INV-000002", "INV-000001")
    assert released.total == Decimal("245.27")
    old = await billed.storage.invoice(tenant, "INV-000001")
    assert old.status is InvoiceStatus.CREDITED and old.status_reason == "reversed by CN-000001"


async def test_an_admin_releases_a_held_invoice_over_the_api(
    api: Api, billed: MeteringService
) -> None:
    m = "/api/v1/metering"
    settings = {**msgspec.to_builtins(SETTINGS), "on_missing_data": "hold"}
    put = await api.client.put(
        f"{m}/settings", json={**settings, "max_estimated_percent": 0}, headers=api.admin
    )
    assert put.status_code == 200 and put.json()["on_missing_data"] == "hold"
    run = await api.client.post(
        f"{m}/billing-runs", json={"period": "2026-10", "account": "A-1"}, headers=api.admin
    )
    assert run.json()["summary"][0]["outcome"] == "held"
    held = await api.client.get(f"{m}/invoices", params={"status": "held"}, headers=api.admin)
    [item] = held.json()["items"]
    assert (item["number"], item["status"]) == ("HELD-000001", "held")
    assert "are estimated" in item["status_reason"]
    operator = api.as_key(await api.key(Role.OPERATOR))
    refused = await api.client.post(f"{m}/invoices/HELD-000001/release", headers=operator)
    assert refused.status_code == 403
    released = await api.client.post(f"{m}/invoices/HELD-000001/release", headers=api.admin)
    assert released.status_code == 200, released.text
    assert (released.json()["number"], released.json()["status"]) == ("INV-000001", "open")
    again = await api.client.post(f"{m}/invoices/INV-000001/release", headers=api.admin)
    assert again.status_code == 409 and again.json()["error"]["field"] == "invoice"


# --- netting ----------------------------------------------------------------------------


async def test_a_correction_of_a_paid_invoice_collects_only_the_difference(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await billed.run_billing(tenant, "2026-10", account="A-1", actor="test", now=ISSUED)
    await _pay(billed, tenant, "INV-000001")
    # 10 kWh more in one hour: 755 kWh, total 245.27 (test_service); 242.24 was paid.
    await billed.add_edit(
        tenant,
        meter="m1",
        register=KEY,
        start=OCT_START + 10 * HOUR,
        quantity=Decimal(11),
        author="user:ops@example.com",
        reason="customer's photo of the register",
    )
    run = await billed.run_billing(tenant, "2026-10", account="A-1", actor="t", now=ISSUED + DAY)
    assert run.summary[0]["credit_notes"] == ["CN-000001"]
    new = await billed.storage.invoice(tenant, "INV-000002")
    credit = await billed.storage.invoice(tenant, "CN-000001")
    assert (new.total, new.amount_due, new.status) == (
        Decimal("245.27"),
        Decimal("3.03"),
        InvoiceStatus.OPEN,
    )
    assert "242.24 EUR paid on invoice INV-000001" in (new.document["note"] or "")
    assert (credit.amount_due, credit.status) == (Decimal(0), InvoiceStatus.PAID)
    assert (await billed.storage.invoice(tenant, "INV-000001")).status is InvoiceStatus.PAID
    file, numbers = await billed.export_sepa(tenant, actor="test", now=ISSUED + DAY)
    assert numbers == ["INV-000002"] and file.control_sum == Decimal("3.03")


async def test_a_smaller_correction_of_a_paid_invoice_leaves_a_credit_balance(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await billed.run_billing(tenant, "2026-10", account="A-1", actor="test", now=ISSUED)
    await _pay(billed, tenant, "INV-000001")
    # The hour from read 10 used nothing: 744 kWh, energy 186.00 + standing 13.95 = 199.95,
    # VAT 41.9895 -> 41.99, total 241.94: 0.30 less than the 242.24 paid.
    await billed.add_edit(
        tenant,
        meter="m1",
        register=KEY,
        start=OCT_START + 10 * HOUR,
        quantity=Decimal(0),
        author="user:ops@example.com",
        reason="meter was off",
    )
    await billed.run_billing(tenant, "2026-10", account="A-1", actor="t", now=ISSUED + DAY)
    new = await billed.storage.invoice(tenant, "INV-000002")
    credit = await billed.storage.invoice(tenant, "CN-000001")
    assert (new.total, new.amount_due, new.status) == (
        Decimal("241.94"),
        Decimal(0),
        InvoiceStatus.PAID,
    )
    assert (credit.amount_due, credit.status) == (Decimal("-0.30"), InvoiceStatus.OPEN)
    with pytest.raises(PayloadError, match="no open direct-debit invoices"):
        await billed.export_sepa(tenant, actor="test", now=ISSUED + DAY)


# --- overlapping periods ----------------------------------------------------------------


async def test_a_period_overlapping_an_invoice_of_another_period_is_refused(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await billed.run_billing(tenant, "2026-10", actor="test", now=ISSUED)
    with pytest.raises(ConflictError, match="overlaps invoice INV-000001") as caught:
        await billed.run_billing(
            tenant, "2026-10-01..2026-10-15", account="A-1", actor="test", now=ISSUED
        )
    assert caught.value.field == "period"
    assert "period 2026-10, 2026-10-01 to 2026-10-31" in caught.value.message
    run = await billed.run_billing(tenant, "2026-10-15..2026-11-15", actor="test", now=ISSUED)
    assert [(e["account"], e["outcome"]) for e in run.summary] == [
        ("A-1", "error"),
        ("A-2", "error"),
    ]
    assert "INV-000002" in run.summary[1]["message"]
    # The same period again is a re-run, not an overlap; the next month is free.
    again = await billed.run_billing(tenant, "2026-10", account="A-1", actor="t", now=ISSUED)
    assert again.summary[0]["outcome"] == "unchanged"
    assert len(await billed.storage.list_invoices(tenant)) == 2


# --- overdue on a schedule --------------------------------------------------------------


async def test_the_scheduled_job_marks_overdue_once_with_a_webhook(
    api: Api, billed: MeteringService
) -> None:
    tenant = api.tenant.id
    await _settings(billed, tenant, webhook_url="http://127.0.0.1:9/hooks/billing")
    await billed.run_billing(tenant, "2026-10", actor="test", now=ISSUED)
    due = int(datetime(2026, 11, 16, 12, tzinfo=UTC).timestamp() * 1000)
    job = api.platform.metering  # what the scheduler role runs every OVERDUE_INTERVAL_S
    assert await job.mark_overdue_everywhere(now=due) == {}  # due today: not yet overdue
    await billed.storage.release_lease("metering.overdue", job.holder)
    marked = await job.mark_overdue_everywhere(now=due + DAY)
    assert marked == {tenant: ["INV-000002", "INV-000001"]}
    for number in ("INV-000001", "INV-000002"):
        invoice = await billed.storage.invoice(tenant, number)
        assert invoice.status is InvoiceStatus.OVERDUE
    deliveries = await api.platform.store.list_deliveries(tenant, kind="webhook")
    events = [msgspec.json.decode(d.body) for d in deliveries]
    assert {e["type"] for e in events} == {"io.m2mhub.metering.invoice.overdue"}
    assert sorted(e["subject"] for e in events) == ["INV-000001", "INV-000002"]
    assert {e["data"]["due_date"] for e in events} == {date(2026, 11, 16).isoformat()}
    # Another process within the interval does nothing: the lease is held.
    other = MeteringService(api.platform.store, holder="another process")
    assert await other.mark_overdue_everywhere(now=due + 2 * DAY) == {}
    audit = await api.platform.store.list_audit(
        tenant, start=0, end=2**62, action="metering.invoice.overdue"
    )
    assert len(audit) == 2 and {a.actor for a in audit} == {"scheduler"}


async def test_settings_refuse_a_threshold_outside_0_to_100() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_estimated_percent"):
        msgspec.convert({"max_estimated_percent": 150}, BillingSettings)
    with pytest.raises(msgspec.ValidationError, match="on_missing_data"):
        msgspec.convert({"on_missing_data": "guess"}, BillingSettings)
