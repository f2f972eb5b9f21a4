"""Usage events for billing systems: exported over the API and the command line, and
pushed by a billing run to a real HTTP receiver on 127.0.0.1, signed, with the same
ids when the period is run again.

The month is ``billing_data``'s: m1 counts 745 kWh for A-1, 4 of them estimated (the
lost reads); A-2's meter m2a counts 336 kWh (14 days) before the swap, m2b 818 kWh after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from m2mhub.actions.webhook import SIGNATURE_HEADER, verify_signature
from m2mhub.apps.metering.billing_events import UsageRecord, UsageRecordError, usage_event
from m2mhub.apps.metering.models import BillingSettings
from m2mhub.apps.metering.service import MeteringService
from m2mhub.core.errors import PayloadError
from tests.actions.conftest import Database, Receiver, database, receiver, serve, wait_for
from tests.apps.metering.billing_data import (
    EAN_1,
    EAN_2,
    KEY,
    NOV_START,
    OCT_START,
    SETTINGS,
    SWAP,
    TARIFF_YAML,
    declare,
    m1_reads,
    post_reads,
    swap_reads,
)
from tests.apps.metering.test_cli import DECLARATIONS, hub
from tests.conftest import Api
from tests.processes import ok

__all__ = ["database", "hub", "receiver"]  # fixtures shared with the webhook and CLI tests

SECRET = "usage-secret"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


#: (subject, meter, quantity, estimated, start, end) of each expected event.
EXPECTED = [
    ("A-1", "m1", "745.000", "4.000", OCT_START, NOV_START),
    ("A-2", "m2a", "336.000", "0", OCT_START, SWAP),
    ("A-2", "m2b", "818.000", "0", SWAP, NOV_START),
]


def _summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            e["subject"],
            e["data"]["dimensions"]["meter"],
            e["data"]["quantity"],
            e["data"]["estimated_quantity"],
            e["data"]["period_start"],
            e["data"]["period_end"],
        )
        for e in events
    )


def _expected() -> list[tuple[Any, ...]]:
    return sorted(
        (subject, meter, Decimal(q), Decimal(est), _iso(start), _iso(end))
        for subject, meter, q, est, start, end in EXPECTED
    )


def _as_decimals(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(s, m, Decimal(q), Decimal(e), a, b) for s, m, q, e, a, b in rows]


async def _month(api: Api) -> MeteringService:
    """``billing_data``'s month, posted as the meters post it, declared with the webhooks."""
    await api.device_type("meter")
    for name in ("m1", "m2a", "m2b"):
        await api.new_device(name, "meter")
    old, new = swap_reads()
    await post_reads(api.client, "m1", api.tokens["m1"], m1_reads())
    await post_reads(api.client, "m2a", api.tokens["m2a"], old)
    await post_reads(api.client, "m2b", api.tokens["m2b"], new)
    service = MeteringService(
        api.platform.store,
        holder="test",
        audit=api.platform.audit,
        webhooks=api.platform.webhooks,
    )
    await declare(service, api.tenant.id)
    return service


async def test_the_api_exports_the_usage_billing_counts(database: Database, tmp_path: Path) -> None:
    async with serve(database.first, tmp_path) as api:
        await _month(api)
        response = await api.client.get(
            "/api/v1/metering/usage", params={"period": "2026-10"}, headers=api.admin
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/cloudevents-batch+json"
        events = response.json()
        assert _as_decimals(_summary(events)) == _expected()
        first = next(e for e in events if e["subject"] == "A-1")
        assert first["specversion"] == "1.0"
        assert first["type"] == "electricity_import"
        # The id of the example in docs/metering.md: stable for all time.
        assert first["id"] == "8d2b3ed5-4e3a-5eee-a343-018c3b87de6c"
        assert first["data"]["unit"] == "kWh"
        assert first["data"]["dimensions"] == {
            "meter": "m1",
            "register": KEY,
            "supply_point": EAN_1,
            "tariff": "Flat 2026",
        }
        # The swap gives two events of one account and type, told apart by their ids.
        swapped = [e for e in events if e["subject"] == "A-2"]
        assert {e["data"]["dimensions"]["supply_point"] for e in swapped} == {EAN_2}
        assert len({e["id"] for e in events}) == 3

        one = await api.client.get(
            "/api/v1/metering/usage",
            params={"period": "2026-10", "account": "A-2"},
            headers=api.admin,
        )
        assert {e["subject"] for e in one.json()} == {"A-2"}
        again = await api.client.get(
            "/api/v1/metering/usage", params={"period": "2026-10"}, headers=api.admin
        )
        assert [e["id"] for e in again.json()] == [e["id"] for e in events]

        bad = await api.client.get(
            "/api/v1/metering/usage", params={"period": "2026-13"}, headers=api.admin
        )
        assert bad.status_code in (400, 422) and "period" in bad.text
        unknown = await api.client.get(
            "/api/v1/metering/usage",
            params={"period": "2026-10", "account": "A-9"},
            headers=api.admin,
        )
        assert unknown.status_code == 404


async def test_a_billing_run_pushes_signed_usage_and_a_rerun_sends_the_same_ids(
    database: Database, tmp_path: Path, receiver: Receiver
) -> None:
    async with serve(database.first, tmp_path) as api:
        service = await _month(api)
        tenant = api.tenant.id
        await _set(service, tenant, usage_webhook_url=receiver.url, webhook_secret=SECRET)

        run = await service.run_billing(tenant, "2026-10", actor="test")
        queued = [d for entry in run.summary for d in entry.get("usage_deliveries", [])]
        assert len(queued) == 3
        requests = await wait_for(
            lambda: _arrived(receiver, 3), what="three usage events at the receiver"
        )
        for request in requests:
            assert verify_signature(SECRET, request.body, request.headers[SIGNATURE_HEADER])
        events = [request.json() for request in requests]
        assert _as_decimals(_summary(events)) == _expected()
        listed = await api.client.get(
            "/api/v1/webhooks/deliveries",
            params={"source": "metering.usage"},
            headers=api.admin,
        )
        assert {d["id"] for d in listed.json()["items"]} == set(queued)
        assert all(d["status"] == "delivered" for d in listed.json()["items"])

        # The same period again: nothing changes on the invoices, the same events are
        # sent (the receiver drops them by id).
        rerun = await service.run_billing(tenant, "2026-10", actor="test")
        assert {entry["outcome"] for entry in rerun.summary} == {"unchanged"}
        resent = await wait_for(lambda: _arrived(receiver, 6), what="the events sent again")
        assert sorted(r.json()["id"] for r in resent[3:]) == sorted(e["id"] for e in events)


async def _set(service: MeteringService, tenant_id: int, **changes: Any) -> None:
    """The test's billing settings with ``changes``."""
    await service.storage.save_settings(tenant_id, msgspec.structs.replace(SETTINGS, **changes))


async def _arrived(receiver: Receiver, count: int) -> Any:
    requests = receiver.received()
    return requests if len(requests) >= count else None


async def test_held_invoices_push_no_usage(
    database: Database, tmp_path: Path, receiver: Receiver
) -> None:
    async with serve(database.first, tmp_path) as api:
        service = await _month(api)
        await _set(
            service,
            api.tenant.id,
            usage_webhook_url=receiver.url,
            on_missing_data="hold",
            max_estimated_percent=0,
        )
        run = await service.run_billing(api.tenant.id, "2026-10", actor="test")
        by_account = {entry["account"]: entry for entry in run.summary}
        assert by_account["A-1"]["outcome"] == "held"
        assert "usage_deliveries" not in by_account["A-1"]
        assert len(by_account["A-2"]["usage_deliveries"]) == 2
        requests = await wait_for(lambda: _arrived(receiver, 2), what="A-2's usage")
        assert {r.json()["subject"] for r in requests} == {"A-2"}


async def test_usage_goes_straight_to_an_openmeter_style_ingest(
    database: Database, tmp_path: Path, receiver: Receiver
) -> None:
    async with serve(database.first, tmp_path) as api:
        service = await _month(api)
        await _set(
            service,
            api.tenant.id,
            usage_webhook_url=receiver.url,
            usage_webhook_token="om_token-123",
            usage_webhook_content_type="application/cloudevents+json",
        )
        await service.run_billing(api.tenant.id, "2026-10", actor="test")

        requests = await wait_for(lambda: _arrived(receiver, 3), what="three usage events")
        for request in requests:
            assert request.headers["Authorization"] == "Bearer om_token-123"
            assert request.headers["Content-Type"] == "application/cloudevents+json"
            assert request.json()["specversion"] == "1.0"
        shown = await api.client.get("/api/v1/metering/settings", headers=api.admin)
        assert shown.json()["usage_webhook_token"] == "***"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("usage_webhook_content_type", "text/plain"),
        ("usage_webhook_content_type", "application/json; charset=latin-1"),
        ("usage_webhook_token", "two words"),
        ("usage_webhook_token", "line\nbreak"),
        ("usage_webhook_token", ""),
    ],
)
def test_the_usage_token_and_content_type_are_checked(field: str, value: str) -> None:
    with pytest.raises(PayloadError) as caught:
        BillingSettings(
            usage_webhook_url="https://openmeter.example.com/api/v1/events", **{field: value}
        )
    assert caught.value.field == field


def test_the_usage_webhook_url_is_checked() -> None:
    with pytest.raises(PayloadError) as caught:
        BillingSettings(usage_webhook_url="openmeter.example.com/api/v1/events")
    assert caught.value.field == "usage_webhook_url"
    assert "http" in caught.value.message


def test_the_command_line_writes_the_usage_export(hub: dict[str, str], tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "flat.yaml").write_text(TARIFF_YAML)
    (files / "metering.yaml").write_text(DECLARATIONS)
    ok("metering", "apply", str(files / "metering.yaml"), env=hub)
    target = tmp_path / "usage.json"
    written = ok(
        "billing",
        "usage",
        "--period",
        "2026-10",
        "--output",
        str(target),
        "--tenant",
        "acme",
        env=hub,
    )
    assert "1 usage events" in written
    [event] = json.loads(target.read_text())
    assert event["subject"] == "A-1" and event["type"] == "electricity_import"
    assert Decimal(event["data"]["quantity"]) == 745
    assert Decimal(event["data"]["estimated_quantity"]) == 4
    printed = ok("billing", "usage", "--period", "2026-10", "--tenant", "acme", env=hub)
    assert json.loads(printed) == [event]


def test_records_that_differ_in_a_dimension_are_two_events() -> None:
    start, end = datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)

    def record(meter: str, estimated: str = "0") -> UsageRecord:
        return UsageRecord(
            subject="A-2",
            meter="electricity_import",
            quantity=Decimal(10),
            estimated_quantity=Decimal(estimated),
            period_start=start,
            period_end=end,
            dimensions={"meter": meter, "register": KEY},
        )

    a, b = usage_event(record("m2a"), source="m2mhub"), usage_event(record("m2b"), source="m2mhub")
    assert a.id != b.id
    assert usage_event(record("m2a"), source="m2mhub").id == a.id
    with pytest.raises(UsageRecordError) as caught:
        usage_event(record("m2a", estimated="11"), source="m2mhub")
    assert caught.value.field == "estimated_quantity"
