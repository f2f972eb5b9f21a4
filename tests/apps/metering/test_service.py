"""The metering service on each backend: reads stored through HTTP telemetry, billed.

The data and the hand-computed totals are in ``billing_data``'s docstring.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from m2mhub.apps.metering.consumption import Quality
from m2mhub.apps.metering.invoice_export import parse_invoice_json
from m2mhub.apps.metering.invoices import DirectDebit
from m2mhub.apps.metering.models import InvoiceKind, InvoiceStatus, RunStatus
from m2mhub.apps.metering.service import MeteringService, parse_period
from m2mhub.core.errors import ConflictError, PayloadError
from m2mhub.store import Store
from m2mhub.store.postgres import PostgresStore
from m2mhub.store.sqlite import SqliteStore
from tests.apps.metering.billing_data import (
    GAP,
    HOUR,
    KEY,
    NOV_START,
    OCT_START,
    declare,
    m1_reads,
    post_reads,
    swap_reads,
)
from tests.conftest import Api
from tests.processes import m2mhub_env, ok

#: The run's clock: invoices are issued on 2 November 2026.
ISSUED = int(datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp() * 1000)


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
    service = MeteringService(api.platform.store, holder="test", audit=api.platform.audit)
    await declare(service, api.tenant.id)
    return service


def test_periods() -> None:
    month, days = parse_period("2026-10"), parse_period("2026-10-01..2026-10-31")
    assert (
        (month.start, month.end) == (days.start, days.end) == (date(2026, 10, 1), date(2026, 11, 1))
    )
    assert parse_period("2026-12").end == date(2027, 1, 1)
    for text in ("2026-13", "october", "2026-10-05..2026-10-01"):
        with pytest.raises(PayloadError) as caught:
            parse_period(text)
        assert caught.value.field == "period"


async def test_intervals_of_a_month_with_a_gap_and_a_rollover(
    api: Api, billed: MeteringService
) -> None:
    meter, [series] = await billed.meter_series(
        api.tenant.id, meter="m1", start=OCT_START, end=NOV_START, tz="Europe/Amsterdam"
    )
    assert meter.registers[0].key == KEY
    intervals = series.intervals
    assert len(intervals) == 745  # 25 October has 25 hours
    assert sum(i.quantity for i in intervals if i.quantity is not None) == 745
    estimated = [i for i in intervals if i.quality is Quality.ESTIMATED]
    # Reads 200-202 are lost: the four hours from read 199 to read 203 are estimated,
    # linearly, and add up to the register difference.
    assert [(i.start - OCT_START) // HOUR for i in estimated] == [199, 200, 201, 202]
    assert all(i.quantity == 1 for i in estimated)
    codes = {flag.code.value for flag in series.flags}
    assert "gap" in codes
    wrapped = [i for i in intervals if "rollover" in i.flags]
    assert [(i.start - OCT_START) // HOUR for i in wrapped] == [499]
    assert GAP == (200, 201, 202)


async def test_a_billing_run_matches_the_hand_computed_invoice(
    api: Api, billed: MeteringService
) -> None:
    run = await billed.run_billing(api.tenant.id, "2026-10", actor="test", now=ISSUED)
    assert run.status is RunStatus.DONE
    outcomes = {entry["account"]: entry["outcome"] for entry in run.summary}
    assert outcomes == {"A-1": "issued", "A-2": "issued"}
    [a1] = await billed.storage.list_invoices(api.tenant.id, period="2026-10", account_id=1)
    assert (a1.subtotal, a1.tax, a1.total) == (
        Decimal("200.20"),
        Decimal("42.04"),
        Decimal("242.24"),
    )
    document = parse_invoice_json(msgspec.json.encode(a1.document))
    assert document.draft.import_kwh == 745
    assert document.draft.estimated_kwh == 4
    assert document.draft.estimated_intervals == 4
    assert [line.description for line in document.draft.lines] == ["Standing charge", "Energy"]
    assert isinstance(document.payment, DirectDebit)
    assert document.due_date == date(2026, 11, 16)
    assert a1.number == "INV-000001"
    reads = document.meters[0]
    assert (reads.first.value, reads.last.value) == (Decimal("999500.0"), Decimal("245.0"))
    assert reads.advance == 745


async def test_a_meter_swap_mid_month_bills_each_meter_for_its_days(
    api: Api, billed: MeteringService
) -> None:
    await billed.run_billing(api.tenant.id, "2026-10", account="A-2", actor="test", now=ISSUED)
    [a2] = await billed.storage.list_invoices(api.tenant.id, period="2026-10")
    assert a2.account == "A-2"
    assert (a2.subtotal, a2.tax, a2.total) == (
        Decimal("302.45"),
        Decimal("63.51"),
        Decimal("365.96"),
    )
    pieces = a2.details["meters"]
    assert [(p["meter"], p["registers"][KEY]["actual"]) for p in pieces] == [
        ("m2a", 336),
        ("m2b", 409),
    ]
    assert [m["meter"] for m in a2.document["meters"]] == ["m2a", "m2b"]


async def test_running_again_changes_nothing(api: Api, billed: MeteringService) -> None:
    await billed.run_billing(api.tenant.id, "2026-10", actor="test", now=ISSUED)
    first = await billed.storage.list_invoices(api.tenant.id)
    again = await billed.run_billing(api.tenant.id, "2026-10", actor="test", now=ISSUED + HOUR)
    assert {e["outcome"] for e in again.summary} == {"unchanged"}
    assert await billed.storage.list_invoices(api.tenant.id) == first


async def test_a_late_edit_issues_a_credit_note_and_a_new_invoice(
    api: Api, billed: MeteringService
) -> None:
    await billed.run_billing(api.tenant.id, "2026-10", account="A-1", actor="test", now=ISSUED)
    # The meter's owner finds 11 kWh were used in the hour from read 10 (the register
    # was misread): the edit is kept, the reads are not touched.
    await billed.add_edit(
        api.tenant.id,
        meter="m1",
        register=KEY,
        start=OCT_START + 10 * HOUR,
        quantity=Decimal(11),
        author="user:ops@example.com",
        reason="customer's photo of the register",
    )
    run = await billed.run_billing(
        api.tenant.id, "2026-10", account="A-1", actor="test", now=ISSUED + 24 * HOUR
    )
    [entry] = run.summary
    assert entry["outcome"] == "corrected"
    assert entry["credit_notes"] == ["CN-000001"]
    assert entry["issued"] == ["INV-000002"]
    old = await billed.storage.invoice(api.tenant.id, "INV-000001")
    credit = await billed.storage.invoice(api.tenant.id, "CN-000001")
    new = await billed.storage.invoice(api.tenant.id, "INV-000002")
    assert old.status is InvoiceStatus.CREDITED
    assert credit.kind is InvoiceKind.CREDIT_NOTE and credit.corrects == "INV-000001"
    assert credit.total == -old.total
    # 755 kWh: energy 188.75 + standing 13.95 = 202.70, VAT 42.567 -> 42.57.
    assert (new.subtotal, new.tax, new.total) == (
        Decimal("202.70"),
        Decimal("42.57"),
        Decimal("245.27"),
    )
    assert new.corrects == "INV-000001"
    assert new.details["meters"][0]["registers"][KEY]["edited"] == 1


async def test_a_second_run_waits_for_the_lease(api: Api, billed: MeteringService) -> None:
    other = MeteringService(api.platform.store, holder="another process")
    assert await api.platform.store.try_lease(f"metering.billing:{api.tenant.id}", "x", 60_000)
    with pytest.raises(ConflictError):
        await other.run_billing(api.tenant.id, "2026-10", actor="test", now=ISSUED)


def database_url(store: Store) -> str:
    """The URL another m2mhub process opens ``store``'s database with."""
    if isinstance(store, SqliteStore):
        return f"sqlite:///{store.path}"
    assert isinstance(store, PostgresStore)
    return f"{store.url}?schema={store.schema}"


async def test_processes_share_a_billing_run(
    billed: MeteringService, api: Api, tmp_path: Path
) -> None:
    # Two real processes (the command and the helper it starts) claim the accounts
    # in chunks through the database: every account billed once, numbers gapless.
    env = m2mhub_env(tmp_path / "cli", M2MHUB_DATABASE_URL=database_url(api.platform.store))
    command = ("billing", "run", "--period", "2026-10", "--tenant", "acme", "--workers", "2")
    first = ok(*command, env=env)
    assert "done" in first
    invoices = await billed.storage.list_invoices(api.tenant.id)
    assert sorted(i.number for i in invoices) == ["INV-000001", "INV-000002"]
    assert sorted(str(i.total) for i in invoices) == ["242.24", "365.96"]
    (run,) = await billed.storage.list_runs(api.tenant.id)
    assert run.status is RunStatus.DONE
    assert [(e["account"], e["outcome"]) for e in run.summary] == [
        ("A-1", "issued"),
        ("A-2", "issued"),
    ]
    # The chunks' leases go with the run; the tenant's lease is free for the next one.
    leases = await api.platform.store.query("SELECT name FROM leases WHERE expires_ms > 0", ())
    assert leases == []
    again = ok(*command, env=env)
    assert "unchanged" in again
    (latest, _) = await billed.storage.list_runs(api.tenant.id)
    assert [e["outcome"] for e in latest.summary] == ["unchanged", "unchanged"]
    assert len(await billed.storage.list_invoices(api.tenant.id)) == 2
