"""CloudEvents for external billing systems: usage (OpenMeter style) and payments."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from m2mhub.apps.metering.payments import (
    PaymentOutcome,
    PaymentResult,
    PaymentStatusReport,
    RejectedBatch,
    UsageRecord,
    UsageRecordError,
    payment_events,
    read_payment_status,
    usage_event,
)
from tests.apps.metering.payment_samples import FIXTURES

MAY = datetime(2024, 5, 1, tzinfo=UTC)
JUNE = datetime(2024, 6, 1, tzinfo=UTC)


def _record(**changes: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "subject": "customer-42",
        "meter": "energy_kwh",
        "quantity": Decimal("123.450"),
        "period_start": MAY,
        "period_end": JUNE,
        "unit": "kWh",
        "dimensions": {"tariff": "HT"},
    }
    values.update(changes)
    return UsageRecord(**values)


def test_usage_event_has_the_cloudevents_shape() -> None:
    event = json.loads(usage_event(_record(), source="m2mhub/plant-1").to_json())
    assert event == {
        "specversion": "1.0",
        "type": "energy_kwh",
        "id": event["id"],
        "source": "m2mhub/plant-1",
        "subject": "customer-42",
        "time": "2024-06-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "meter": "energy_kwh",
            "quantity": "123.450",
            "unit": "kWh",
            "period_start": "2024-05-01T00:00:00Z",
            "period_end": "2024-06-01T00:00:00Z",
            "dimensions": {"tariff": "HT"},
        },
    }
    assert uuid.UUID(event["id"]).version == 5


def test_usage_event_ids_are_deterministic_per_period() -> None:
    first = usage_event(_record(), source="m2mhub")
    assert usage_event(_record(), source="m2mhub").id == first.id
    # The same period in another zone is the same period.
    berlin = timezone(timedelta(hours=2))
    shifted = _record(period_start=MAY.astimezone(berlin), period_end=JUNE.astimezone(berlin))
    assert usage_event(shifted, source="m2mhub").id == first.id
    # A resend with another quantity is the same event (deduplicated by the receiver).
    assert usage_event(_record(quantity=Decimal(1)), source="m2mhub").id == first.id
    others = {
        usage_event(_record(subject="customer-43"), source="m2mhub").id,
        usage_event(_record(meter="water_m3"), source="m2mhub").id,
        usage_event(_record(period_end=JUNE + timedelta(days=1)), source="m2mhub").id,
        usage_event(_record(), source="m2mhub/other").id,
    }
    assert len(others) == 4
    assert first.id not in others


def test_usage_quantities_are_exact_decimal_strings() -> None:
    assert usage_event(_record(quantity=Decimal("1E+3")), source="s").data["quantity"] == "1000"
    assert usage_event(_record(quantity=Decimal("0.1")), source="s").data["quantity"] == "0.1"
    minimal = usage_event(_record(unit=None, dimensions={}), source="s")
    assert set(minimal.data) == {"meter", "quantity", "period_start", "period_end"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": " "}, "subject"),
        ({"meter": ""}, "meter"),
        ({"quantity": Decimal("-1")}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": Decimal("Infinity")}, "quantity"),
        ({"period_start": datetime(2024, 5, 1)}, "period_start"),
        ({"period_end": MAY}, "period_end"),
    ],
)
def test_invalid_usage_records_are_rejected_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(UsageRecordError) as caught:
        usage_event(_record(**changes), source="m2mhub")
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")


def test_payment_events_from_a_status_report() -> None:
    report = read_payment_status((FIXTURES / "pain.002.001.03_partial_reject.xml").read_bytes())
    received = datetime(2024, 6, 4, 10, 0, tzinfo=UTC)
    events = payment_events(report, source="m2mhub/billing", received_at=received)
    assert [(e.type, e.subject) for e in events] == [
        ("io.m2mhub.metering.payment.pending", "INV-2024-0001"),
        ("io.m2mhub.metering.payment.rejected", "INV-2024-0002"),
    ]
    rejected = json.loads(events[1].to_json())
    assert rejected["time"] == "2024-06-04T10:00:00Z"
    assert rejected["data"] == {
        "invoice": "INV-2024-0002",
        "outcome": "rejected",
        "status": "RJCT",
        "reason_code": "AM04",
        "reason": "insufficient funds",
        "amount": "24.45",
        "report": "pain.002",
        "report_message_id": "STRP240604081527000001",
    }
    again = payment_events(report, source="m2mhub/billing", received_at=received + timedelta(1))
    assert [e.id for e in again] == [e.id for e in events]
    assert len({e.id for e in events}) == 2


def test_payment_events_for_rejected_batches() -> None:
    report = PaymentStatusReport(
        kind="pain.002",
        message_id="STS-9",
        created_at=datetime(2024, 6, 4, 8, 0),
        original_message_id="M-9",
        group_status="RJCT",
        results=(PaymentResult(end_to_end_id="I-1", outcome=PaymentOutcome.PAID, status="ACSC"),),
        rejected_batches=(
            RejectedBatch(
                original_message_id="M-9",
                payment_information_id=None,
                reason_code="FF01",
                reason="invalid file format",
            ),
        ),
    )
    paid, batch = payment_events(report, source="s", received_at=datetime(2024, 6, 4, tzinfo=UTC))
    assert paid.type == "io.m2mhub.metering.payment.paid"
    assert (batch.type, batch.subject) == ("io.m2mhub.metering.payment.batch_rejected", "M-9")
    assert batch.data["reason_code"] == "FF01"
    with pytest.raises(UsageRecordError) as caught:
        payment_events(report, source="s", received_at=datetime(2024, 6, 4))
    assert caught.value.field == "received_at"
