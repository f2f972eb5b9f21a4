"""The public face of payments: its names, invoice states and the whole flow."""

from __future__ import annotations

import inspect
from datetime import date
from decimal import Decimal

import pytest

from m2mhub.apps.metering import payments
from m2mhub.apps.metering.payments import (
    Creditor,
    InvoicePaymentState,
    PaymentOutcome,
    PaymentResult,
    SequenceType,
    export_direct_debit,
    invoice_payment_state,
    read_payment_status,
)
from m2mhub.core.errors import PayloadError
from tests.apps.metering.payment_samples import CREATED_AT, FIXTURES, collection

PUBLIC = {
    "CloudEvent", "Collection", "Creditor", "DirectDebitFile", "InvoicePaymentState",
    "PaymentBatch", "PaymentDataError", "PaymentOutcome", "PaymentResult",
    "PaymentStatusReport", "RejectedBatch", "SchemaViolationError", "SepaError",
    "SequenceType", "StatusReportError", "UsageRecord", "UsageRecordError", "check_bic",
    "check_creditor_id", "check_iban", "describe_reason", "export_direct_debit",
    "invoice_payment_state", "payment_events", "read_payment_status", "usage_event",
    "validate_direct_debit",
}  # fmt: skip


def test_public_api_is_small_documented_and_complete() -> None:
    assert set(payments.__all__) == PUBLIC
    for name in payments.__all__:
        value = getattr(payments, name)
        assert inspect.getdoc(value), f"{name} has no docstring"
    for error in ("PaymentDataError", "SchemaViolationError", "StatusReportError"):
        assert issubclass(getattr(payments, error), payments.SepaError)
    assert issubclass(payments.SepaError, PayloadError)
    assert issubclass(payments.UsageRecordError, PayloadError)


def _result(outcome: PaymentOutcome) -> PaymentResult:
    return PaymentResult(end_to_end_id="INV-1", outcome=outcome, status="X")


DUE = date(2024, 6, 5)


@pytest.mark.parametrize(
    ("today", "outcome", "grace", "state"),
    [
        (date(2024, 6, 1), None, 0, InvoicePaymentState.OPEN),
        (DUE, None, 0, InvoicePaymentState.OPEN),
        (date(2024, 6, 6), None, 0, InvoicePaymentState.OVERDUE),
        (date(2024, 6, 6), None, 3, InvoicePaymentState.OPEN),
        (date(2024, 6, 9), None, 3, InvoicePaymentState.OVERDUE),
        (date(2024, 6, 1), PaymentOutcome.REJECTED, 0, InvoicePaymentState.FAILED),
        (date(2024, 6, 6), PaymentOutcome.REJECTED, 0, InvoicePaymentState.OVERDUE),
        (date(2024, 7, 1), PaymentOutcome.PENDING, 0, InvoicePaymentState.PENDING),
        (date(2024, 7, 1), PaymentOutcome.PAID, 0, InvoicePaymentState.PAID),
    ],
)
def test_invoice_payment_state(
    today: date, outcome: PaymentOutcome | None, grace: int, state: InvoicePaymentState
) -> None:
    result = None if outcome is None else _result(outcome)
    assert (
        invoice_payment_state(due_date=DUE, today=today, result=result, grace_days=grace) is state
    )


def test_negative_grace_is_rejected() -> None:
    with pytest.raises(payments.PaymentDataError) as caught:
        invoice_payment_state(due_date=DUE, today=DUE, result=None, grace_days=-1)
    assert caught.value.field == "grace_days"


def test_export_then_bank_answers_then_invoice_states() -> None:
    creditor = Creditor(
        name="Stadtwerke Mühlheim GmbH",
        iban="DE89370400440532013000",
        creditor_id="DE98ZZZ09999999999",
    )
    invoices = [collection(1, amount=Decimal("48.20")), collection(2)]
    exported = export_direct_debit(
        creditor, invoices, message_id="M2M-2024-05-31-001", created_at=CREATED_AT
    )
    [batch] = exported.batches
    assert batch.sequence_type is SequenceType.RECURRING

    status = read_payment_status((FIXTURES / "pain.002.001.03_partial_reject.xml").read_bytes())
    assert status.original_message_id == exported.message_id
    results = status.by_end_to_end_id()
    assert set(results) == set(batch.end_to_end_ids)
    assert {r.payment_information_id for r in results.values()} == {batch.payment_information_id}
    after_due = date(2024, 6, 6)
    states = {
        number: invoice_payment_state(due_date=DUE, today=after_due, result=results[number])
        for number in batch.end_to_end_ids
    }
    assert states == {
        "INV-2024-0001": InvoicePaymentState.PENDING,
        "INV-2024-0002": InvoicePaymentState.OVERDUE,
    }

    booked = read_payment_status(
        (FIXTURES / "camt.054.001.02_collections_and_return.xml").read_bytes()
    ).by_end_to_end_id()
    assert (
        invoice_payment_state(due_date=DUE, today=after_due, result=booked["INV-2024-0001"])
        is InvoicePaymentState.PAID
    )
