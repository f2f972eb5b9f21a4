"""Usage and payment events for external billing systems, as CloudEvents 1.0 JSON.

Usage events follow the shape OpenMeter ingests (``POST /api/v1/events`` with
``application/cloudevents+json``): the CloudEvents context attributes, the
customer as ``subject`` and the measured values under ``data``. Example::

    {
      "specversion": "1.0",
      "type": "energy_kwh",
      "id": "3f0c3b8e-6a0d-5a49-9f5e-2a6f0b6c1d11",
      "source": "m2mhub/plant-1",
      "subject": "customer-42",
      "time": "2024-06-01T00:00:00Z",
      "datacontenttype": "application/json",
      "data": {
        "meter": "energy_kwh",
        "quantity": "123.456",
        "unit": "kWh",
        "period_start": "2024-05-01T00:00:00Z",
        "period_end": "2024-06-01T00:00:00Z",
        "dimensions": {"tariff": "HT"}
      }
    }

- ``type`` is the meter name, so a billing-side meter selects its events by
  type (OpenMeter's ``eventType``) and reads ``$.data.quantity`` as its value.
- ``quantity`` is a decimal string: JSON numbers would turn 0.1 kWh into a
  binary float; OpenMeter parses numeric strings.
- ``id`` is a UUIDv5 of source, subject, meter, period and dimensions, so sending
  the same period again is deduplicated by the receiver (CloudEvents: ``source`` +
  ``id`` identify an event), while two records of one customer and period that
  differ in a dimension (two meters, tariff HT and LT) stay two events. The
  quantity is not part of it: a corrected reading for a period already sent is
  not picked up by a resend and must be booked on the billing side as a correction.
- ``time`` is the end of the period, in UTC.

Payment events (:func:`payment_events`) carry the outcome of each collection
from a bank status file to webhooks or other systems, with types
``io.m2mhub.metering.payment.paid``, ``.rejected``, ``.pending`` and
``.batch_rejected``; their ids are deterministic in the same way. An invoice
marked overdue is :func:`overdue_event` (``io.m2mhub.metering.invoice.overdue``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from m2mhub.apps.metering.sepa.status import PaymentStatusReport
from m2mhub.core.errors import PayloadError

# Fixed for all time: changing it changes every event id and defeats deduplication.
_EVENT_NAMESPACE: Final = uuid.UUID("cdbe27ad-b68d-4533-b3a9-03e7491fa91e")
PAYMENT_EVENT_PREFIX: Final = "io.m2mhub.metering.payment."
OVERDUE_EVENT_TYPE: Final = "io.m2mhub.metering.invoice.overdue"


class UsageRecordError(PayloadError):
    """A usage record that cannot be sent to a billing system; ``field`` names the culprit."""

    code = "invalid_usage_record"


class UsageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Consumption of one customer on one meter over one billing period."""

    subject: str
    """The customer (or subscription) the billing system charges."""
    meter: str
    """The metric, e.g. ``energy_kwh``; becomes the event type."""
    quantity: Decimal
    period_start: datetime
    period_end: datetime
    unit: str | None = None
    dimensions: Mapping[str, str] = msgspec.field(default_factory=dict)
    """Extra values the billing side may group by (tariff, site)."""
    estimated_quantity: Decimal | None = None
    """How much of ``quantity`` is estimated (reads missing), when the sender knows."""


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A CloudEvents 1.0 event in structured JSON mode; :meth:`to_json` gives the body."""

    specversion: str
    type: str
    id: str
    source: str
    subject: str
    time: str
    datacontenttype: str
    data: dict[str, Any]

    def to_json(self) -> bytes:
        """The event as a JSON object, to send as ``application/cloudevents+json``."""
        return msgspec.json.encode(self)


def _event_id(*parts: str) -> str:
    # Unit separator: no part can forge another part's boundary.
    return str(uuid.uuid5(_EVENT_NAMESPACE, "\x1f".join(parts)))


def _utc(moment: datetime, field: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageRecordError(
            f"{field}: give a time zone (e.g. datetime(..., tzinfo=UTC))", field=field
        )
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _required_text(value: str, field: str) -> str:
    if not value or not value.strip():
        raise UsageRecordError(f"{field}: must not be empty", field=field)
    return value


def usage_event(record: UsageRecord, *, source: str) -> CloudEvent:
    """Turn a usage record into an OpenMeter-style CloudEvent (see the module docstring).

    ``source`` names the sender (e.g. ``m2mhub/plant-1``) and, with ``id``,
    is what receivers deduplicate on: keep it stable. Raises
    :class:`UsageRecordError` for an empty subject or meter, a negative or
    non-decimal quantity, a period without time zone or ending before it starts.
    """
    _required_text(source, "source")
    subject = _required_text(record.subject, "subject")
    meter = _required_text(record.meter, "meter")
    quantity = record.quantity
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity < 0:
        raise UsageRecordError(
            f"quantity: {quantity!r} must be a decimal.Decimal of zero or more", field="quantity"
        )
    start = _utc(record.period_start, "period_start")
    end = _utc(record.period_end, "period_end")
    if record.period_end <= record.period_start:
        raise UsageRecordError(
            f"period_end: {end} must be after period_start {start}", field="period_end"
        )
    data: dict[str, Any] = {
        "meter": meter,
        "quantity": format(quantity, "f"),
        "period_start": start,
        "period_end": end,
    }
    if record.unit is not None:
        data["unit"] = record.unit
    if record.dimensions:
        data["dimensions"] = dict(record.dimensions)
    estimated = record.estimated_quantity
    if estimated is not None:
        if not isinstance(estimated, Decimal) or not 0 <= estimated <= quantity:
            raise UsageRecordError(
                f"estimated_quantity: {estimated!r} must be a decimal.Decimal from zero to "
                "the quantity",
                field="estimated_quantity",
            )
        data["estimated_quantity"] = format(estimated, "f")
    # Sorted: the same dimensions give the same id whatever order they were built in.
    dimensions = [part for pair in sorted(record.dimensions.items()) for part in pair]
    return CloudEvent(
        specversion="1.0",
        type=meter,
        id=_event_id("usage", source, subject, meter, start, end, *dimensions),
        source=source,
        subject=subject,
        time=end,
        datacontenttype="application/json",
        data=data,
    )


def payment_events(
    report: PaymentStatusReport, *, source: str, received_at: datetime
) -> list[CloudEvent]:
    """One CloudEvent per collection result and per rejected batch of a bank status file.

    The subject is the invoice number (end-to-end id); for a rejected batch it
    is the payment information id, or the original message id when the whole
    file was rejected. ``received_at`` (with time zone) becomes the event time;
    it is not part of the id, so reading the same file twice yields the same events.
    """
    _required_text(source, "source")
    time = _utc(received_at, "received_at")
    events: list[CloudEvent] = []
    for result in report.results:
        events.append(
            CloudEvent(
                specversion="1.0",
                type=PAYMENT_EVENT_PREFIX + result.outcome.value,
                id=_event_id(
                    "payment", source, report.message_id, result.end_to_end_id, result.status
                ),
                source=source,
                subject=result.end_to_end_id,
                time=time,
                datacontenttype="application/json",
                data={
                    "invoice": result.end_to_end_id,
                    "outcome": result.outcome.value,
                    "status": result.status,
                    "reason_code": result.reason_code,
                    "reason": result.reason,
                    "amount": None if result.amount is None else format(result.amount, "f"),
                    "report": report.kind,
                    "report_message_id": report.message_id,
                },
            )
        )
    for batch in report.rejected_batches:
        subject = batch.payment_information_id or batch.original_message_id
        events.append(
            CloudEvent(
                specversion="1.0",
                type=PAYMENT_EVENT_PREFIX + "batch_rejected",
                id=_event_id("batch", source, report.message_id, subject),
                source=source,
                subject=subject,
                time=time,
                datacontenttype="application/json",
                data={
                    "original_message_id": batch.original_message_id,
                    "payment_information_id": batch.payment_information_id,
                    "reason_code": batch.reason_code,
                    "reason": batch.reason,
                    "report": report.kind,
                    "report_message_id": report.message_id,
                },
            )
        )
    return events


def overdue_event(
    *,
    invoice: str,
    account: str,
    due_date: date,
    amount_due: Decimal,
    currency: str,
    source: str,
    marked_at: datetime,
) -> CloudEvent:
    """The CloudEvent of an invoice marked overdue; the subject is the invoice number.

    The id is derived from source, invoice and due date: marking the same invoice
    again (another process, a restart) yields the same event.
    """
    _required_text(source, "source")
    return CloudEvent(
        specversion="1.0",
        type=OVERDUE_EVENT_TYPE,
        id=_event_id("overdue", source, invoice, due_date.isoformat()),
        source=source,
        subject=invoice,
        time=_utc(marked_at, "marked_at"),
        datacontenttype="application/json",
        data={
            "invoice": invoice,
            "account": account,
            "due_date": due_date.isoformat(),
            "amount_due": format(amount_due, "f"),
            "currency": currency,
        },
    )
