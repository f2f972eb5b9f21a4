"""The errors of SEPA payment files: one base, three kinds."""

from __future__ import annotations

from m2mhub.core.errors import PayloadError


class SepaError(PayloadError):
    """Base of every SEPA payment error; ``field`` names the culprit where there is one."""

    code = "invalid_sepa"


class PaymentDataError(SepaError):
    """A creditor, collection or usage record that cannot go into a payment file."""

    code = "invalid_payment_data"


class SchemaViolationError(SepaError):
    """A generated file that its ISO 20022 schema rejects: it must never reach a bank."""

    code = "sepa_schema_violation"


class StatusReportError(SepaError):
    """A bank status file (pain.002, camt.054) that is malformed, unsafe or of another kind."""

    code = "invalid_status_report"
