"""The records of the metering service: meters, accounts, supply points, links over
time, tariffs, edits, billing runs, invoices and billing settings.

They are frozen msgspec Structs read from and written to the metering tables
(:mod:`m2mhub.apps.metering.storage`). Times are UTC milliseconds; tariff
assignments and invoice periods are local dates of the tariff's time zone.
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final

import msgspec

from m2mhub.actions.webhook import check_content_type, check_url
from m2mhub.apps.metering.values import MeterDataError, Register
from m2mhub.core.errors import PayloadError

__all__ = [
    "Account",
    "AccountLink",
    "BillingRun",
    "BillingSettings",
    "Direction",
    "EditRecord",
    "InvoiceKind",
    "InvoiceRecord",
    "InvoiceStatus",
    "Meter",
    "MeterKind",
    "MeterLink",
    "MissingData",
    "PaymentMethod",
    "RegisterSpec",
    "RunStatus",
    "SupplyPoint",
    "TariffAssignment",
    "TariffRecord",
]

#: Interval lengths a meter may be billed in (they divide a day; see _grid.check_length).
INTERVAL_MINUTES: Final = (5, 10, 15, 30, 60, 1440)


class MeterKind(enum.StrEnum):
    """What a meter measures; a tariff prices one kind."""

    ELECTRICITY = "electricity"
    GAS = "gas"
    WATER = "water"
    HEAT = "heat"
    #: Any cumulative device metric billed per unit: runtime hours of rented equipment.
    USAGE = "usage"


class Direction(enum.StrEnum):
    """Whether a register counts what the customer takes or gives back."""

    IMPORT = "import"
    EXPORT = "export"


class PaymentMethod(enum.StrEnum):
    """How an account pays: collected by SEPA direct debit, or by the customer's transfer."""

    SEPA_DEBIT = "sepa_debit"
    TRANSFER = "transfer"


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(enum.StrEnum):
    """Where an invoice stands; ``credited`` once a credit note replaced it unpaid.

    ``held``: billed over missing or too much estimated data and kept for review;
    it has a provisional reference (``HELD-000001``), no invoice number, is not
    collected, and becomes ``open`` with its number when an operator releases it.
    """

    HELD = "held"
    OPEN = "open"
    PAID = "paid"
    FAILED = "failed"
    OVERDUE = "overdue"
    CREDITED = "credited"


class MissingData(enum.StrEnum):
    """What a billing run does with a period whose data is incomplete."""

    #: Bill the estimates (flagged on the invoice); hold only what cannot be estimated.
    ESTIMATE = "estimate"
    #: Hold the invoice for review when estimates pass the threshold or data is missing.
    HOLD = "hold"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RegisterSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One register of a meter: the telemetry key that carries it and how it counts.

    ``digits`` and ``decimals`` describe the display (6 and 3: 999999.999), so a
    wrap past the maximum is read as a rollover; leave ``digits`` out for a
    register that never wraps. ``net`` registers run backwards while exporting.
    Several import registers (tariff 1 and 2 of a P1 meter) are added up.
    """

    key: str
    direction: Direction = Direction.IMPORT
    unit: str = "kWh"
    digits: int | None = None
    decimals: int = 3
    net: bool = False

    def __post_init__(self) -> None:
        if not self.key.strip():
            raise MeterDataError("registers[].key: name the telemetry key", field="key")
        if self.net and self.direction is Direction.EXPORT:
            raise MeterDataError(
                f"registers[{self.key}].net: a net register counts both ways; give it "
                "direction import",
                field="net",
            )

    def register(self) -> Register:
        """The :class:`Register` that :func:`derive` reads this register with."""
        if self.digits is None:
            return Register(unit=self.unit, import_only=not self.net)
        return Register.of_digits(
            self.digits, self.decimals, unit=self.unit, import_only=not self.net
        )


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A customer account: who is billed, and how they pay."""

    id: int
    number: str
    name: str
    address: tuple[str, ...]
    """Postal address, lines as printed on the invoice."""
    email: str | None
    payment_method: PaymentMethod
    iban: str | None
    bic: str | None
    mandate_id: str | None
    mandate_signed_on: date | None
    created_ms: int


class SupplyPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A connection (EAN code), or any place or contract a meter is billed at."""

    id: int
    code: str
    address: tuple[str, ...]
    created_ms: int


class Meter(msgspec.Struct, frozen=True, kw_only=True):
    """A device declared as a meter: its kind, registers and billing interval."""

    id: int
    name: str
    device_pk: int
    device_id: str
    kind: MeterKind
    registers: tuple[RegisterSpec, ...]
    interval_minutes: int
    created_ms: int


class MeterLink(msgspec.Struct, frozen=True, kw_only=True):
    """A meter installed at a supply point over ``[from_ms, to_ms)`` (open: None)."""

    id: int
    meter_id: int
    meter: str
    supply_point_id: int
    supply_point: str
    from_ms: int
    to_ms: int | None


class AccountLink(msgspec.Struct, frozen=True, kw_only=True):
    """A supply point billed to an account over ``[from_ms, to_ms)``."""

    id: int
    supply_point_id: int
    supply_point: str
    account_id: int
    account: str
    from_ms: int
    to_ms: int | None


class TariffRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A tariff as stored: its YAML text (see :mod:`.tariffs`) and the meter kind it prices."""

    id: int
    name: str
    kind: MeterKind
    yaml: str
    currency: str
    timezone: str
    created_ms: int
    updated_ms: int


class TariffAssignment(msgspec.Struct, frozen=True, kw_only=True):
    """A tariff in force for an account's meters of one kind, over local dates
    ``[from_date, to_date)``."""

    id: int
    account_id: int
    tariff_id: int
    tariff: str
    kind: MeterKind
    from_date: date
    to_date: date | None


class EditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A person's correction of one interval of one register, kept for the audit trail."""

    id: int
    meter_id: int
    register: str
    interval_start: int
    quantity: Decimal
    author: str
    at_ms: int
    reason: str


class BillingRun(msgspec.Struct, frozen=True, kw_only=True):
    """One billing run: a period, one account or all, and what became of each account."""

    id: int
    period: str
    account: str | None
    status: RunStatus
    holder: str
    actor: str
    started_ms: int
    finished_ms: int | None
    summary: list[dict[str, Any]]


class InvoiceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An issued invoice or credit note; ``document`` is the whole priced content."""

    id: int
    number: str
    kind: InvoiceKind
    account_id: int
    account: str
    period: str
    subject: str
    """What within the account and period it bills: ``<supply point>/<kind>/<start date>``."""
    start_date: date
    end_date: date
    corrects: str | None
    document: dict[str, Any]
    """The archived invoice (:mod:`.invoice_export`, schema ``m2mhub.invoice/1``)."""
    details: dict[str, Any]
    """How it was computed: meters and their pieces, interval quality, notes."""
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    status: InvoiceStatus
    status_ms: int
    status_reason: str | None
    content_hash: str
    issued_ms: int
    due_date: date
    run_id: int | None
    sepa_message_id: str | None
    amount_due: Decimal
    """What is left to pay: the total, less what a paid invoice it replaces already
    settled; a credit note's negative ``amount_due`` is money owed to the customer."""


class BillingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tenant's billing settings: the seller on its invoices (and SEPA creditor), payment
    terms, number prefixes, the webhook that hears of paid, failed and overdue invoices,
    the one that receives the usage billed, and what a billing run does with incomplete
    data.

    ``on_missing_data``: ``estimate`` bills estimated intervals (the invoice shows
    them); ``hold`` holds an invoice for review when more than
    ``max_estimated_percent`` of its intervals are estimated. In both modes an
    invoice with intervals still missing (nothing to estimate from) is held:
    billing without them would be a silent wrong bill.
    """

    seller_name: str | None = None
    seller_address: tuple[str, ...] = ()
    vat_id: str | None = None
    iban: str | None = None
    bic: str | None = None
    creditor_id: str | None = None
    due_days: int = 14
    grace_days: int = 0
    invoice_prefix: str = "INV-"
    credit_note_prefix: str = "CN-"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    on_missing_data: MissingData = MissingData.ESTIMATE
    max_estimated_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 10
    usage_webhook_url: str | None = None
    """Where each billing run sends the usage it billed, one CloudEvent a POST
    (:mod:`.usage`), signed with ``webhook_secret``; e.g. a billing system's ingest."""
    usage_webhook_token: str | None = None
    """Sent as ``Authorization: Bearer <token>`` with each usage event (an API token of
    the receiving system, such as OpenMeter's)."""
    usage_webhook_content_type: str = "application/json"
    """The media type the usage events are posted as; OpenMeter's ingest takes
    ``application/cloudevents+json``."""

    def __post_init__(self) -> None:
        check_content_type(self.usage_webhook_content_type, field="usage_webhook_content_type")
        token = self.usage_webhook_token
        if token is not None and not (
            0 < len(token) <= 4000 and token.isascii() and token.isprintable() and " " not in token
        ):
            raise PayloadError(
                "usage_webhook_token: a token is 1 to 4,000 printable ASCII characters "
                "without spaces",
                field="usage_webhook_token",
            )
        if self.usage_webhook_url is not None:
            try:
                check_url(self.usage_webhook_url)
            except PayloadError as exc:
                raise PayloadError(
                    f"usage_webhook_url: {exc.message.removeprefix('url: ')}",
                    field="usage_webhook_url",
                ) from None
