"""Electronic payments of metering invoices: SEPA direct debits and billing events.

The flow, all of it pure (no database, no I/O):

1. :func:`export_direct_debit` turns a :class:`Creditor` and its
   :class:`Collection` list (one per invoice, the invoice number as end-to-end
   id) into a schema-validated ISO 20022 pain.008 file (:class:`DirectDebitFile`).
   Keep the returned batches with the invoices: a bank may reject a whole
   block by its payment information id.
2. :func:`read_payment_status` reads the bank's answer, a pain.002 status
   report or a camt.054 notification, into :class:`PaymentResult` values keyed
   by invoice number: paid, rejected (with the reason in words) or pending.
3. :func:`invoice_payment_state` decides what an invoice is now, given its
   due date and the latest result: paid, pending, failed or overdue.
4. :func:`payment_events` and :func:`usage_event` produce CloudEvents for
   webhooks and external billing systems (OpenMeter-style usage events).

Every input error is a :class:`~m2mhub.core.errors.PayloadError` whose
``field`` names the culprit, e.g. ``collections[3].debtor_iban``.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from m2mhub.apps.metering.billing_events import (
    CloudEvent,
    UsageRecord,
    UsageRecordError,
    payment_events,
    usage_event,
)
from m2mhub.apps.metering.sepa.direct_debit import (
    Collection,
    Creditor,
    DirectDebitFile,
    PaymentBatch,
    SequenceType,
    export_direct_debit,
    validate_direct_debit,
)
from m2mhub.apps.metering.sepa.errors import (
    PaymentDataError,
    SchemaViolationError,
    SepaError,
    StatusReportError,
)
from m2mhub.apps.metering.sepa.identifiers import check_bic, check_creditor_id, check_iban
from m2mhub.apps.metering.sepa.reasons import describe_reason
from m2mhub.apps.metering.sepa.status import (
    PaymentOutcome,
    PaymentResult,
    PaymentStatusReport,
    RejectedBatch,
    read_payment_status,
)

__all__ = [
    "CloudEvent",
    "Collection",
    "Creditor",
    "DirectDebitFile",
    "InvoicePaymentState",
    "PaymentBatch",
    "PaymentDataError",
    "PaymentOutcome",
    "PaymentResult",
    "PaymentStatusReport",
    "RejectedBatch",
    "SchemaViolationError",
    "SepaError",
    "SequenceType",
    "StatusReportError",
    "UsageRecord",
    "UsageRecordError",
    "check_bic",
    "check_creditor_id",
    "check_iban",
    "describe_reason",
    "export_direct_debit",
    "invoice_payment_state",
    "payment_events",
    "read_payment_status",
    "usage_event",
    "validate_direct_debit",
]


class InvoicePaymentState(StrEnum):
    """Where an invoice stands on its way to being paid."""

    OPEN = "open"
    """Not yet due and no bank answer."""
    PENDING = "pending"
    """The bank has the collection and has not given its last word."""
    PAID = "paid"
    FAILED = "failed"
    """Collection rejected or returned, the invoice is not yet past due (plus grace)."""
    OVERDUE = "overdue"
    """Past due (plus grace) and not paid: no collection, or it failed."""


def invoice_payment_state(
    *,
    due_date: date,
    today: date,
    result: PaymentResult | None,
    grace_days: int = 0,
) -> InvoicePaymentState:
    """The state of an invoice on ``today`` given the latest bank ``result`` for it.

    A pending collection stays pending past the due date: the money is with
    the banks, and dunning a customer whose debit is in flight is wrong. A
    rejected one becomes overdue once ``due_date + grace_days`` has passed.
    """
    if grace_days < 0:
        raise PaymentDataError(f"grace_days: {grace_days} must be zero or more", field="grace_days")
    if result is not None and result.outcome is PaymentOutcome.PAID:
        return InvoicePaymentState.PAID
    if result is not None and result.outcome is PaymentOutcome.PENDING:
        return InvoicePaymentState.PENDING
    if today > due_date + timedelta(days=grace_days):
        return InvoicePaymentState.OVERDUE
    if result is not None:
        return InvoicePaymentState.FAILED
    return InvoicePaymentState.OPEN
