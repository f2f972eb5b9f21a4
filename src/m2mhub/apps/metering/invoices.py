"""Invoices and credit notes: a priced billing period made into a document.

An :class:`Invoice` is the :class:`~m2mhub.apps.metering.pricing.InvoiceDraft`
of :func:`~m2mhub.apps.metering.pricing.price_period` as it is (lines, taxes,
totals, consumption per tariff period, actual and estimated kWh) plus what a
customer needs to check and pay it: the seller, the customer account, the
supply point, the register reads used and the payment terms. The module is
pure: numbering, storing and sending invoices belong to the billing run.

Corrections never edit an issued invoice. :func:`credit_note` reverses one
whole (every line, tax and total negated, kWh included, so an invoice and its
credit note add up to zero); :func:`correct_invoice` issues that credit note
together with a new invoice priced from a corrected draft.

Renderings: :mod:`.invoice_export` (JSON, CSV) and :mod:`.invoice_pdf` (PDF).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec
from msgspec.structs import force_setattr

from m2mhub.apps.metering.money import Money
from m2mhub.apps.metering.pricing import InvoiceDraft, PeriodConsumption, TaxLine
from m2mhub.apps.metering.sepa.charset import check_reference
from m2mhub.apps.metering.sepa.errors import PaymentDataError
from m2mhub.apps.metering.sepa.identifiers import check_bic, check_creditor_id, check_iban
from m2mhub.core.errors import PayloadError

__all__ = [
    "BankTransfer",
    "CustomerAccount",
    "DirectDebit",
    "Invoice",
    "InvoiceError",
    "InvoiceKind",
    "MeterReads",
    "PaymentTerms",
    "RegisterRead",
    "Seller",
    "SupplyPoint",
    "correct_invoice",
    "credit_note",
    "creditor_reference",
]

# ISO 11649 structured creditor reference: "RF", two check digits, 1-21 letters or digits.
_RF_BODY_LENGTH: Final = 21
_ALPHANUMERIC: Final = frozenset(string.ascii_uppercase + string.digits)


class InvoiceError(PayloadError):
    """An invoice that cannot be issued as given; ``field`` names the culprit."""

    code = "invalid_invoice"


class InvoiceKind(StrEnum):
    """What a document is: a bill, or the reversal of one."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


def _text(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvoiceError(f"{field}: must not be empty", field=field)
    return value.strip()


def _address(lines: Sequence[str], field: str) -> tuple[str, ...]:
    if isinstance(lines, str) or not lines:
        raise InvoiceError(
            f"{field}: give the address as a list of lines as printed, "
            "e.g. ['Keizersgracht 1', '1015 CJ Amsterdam']",
            field=field,
        )
    return tuple(_text(line, f"{field}[{i}]") for i, line in enumerate(lines))


def _bank_id(check: Callable[..., str], value: str, field: str) -> str:
    """A bank identifier checked by :mod:`.sepa.identifiers`, its error made an InvoiceError."""
    try:
        return check(value, field=field)
    except PaymentDataError as exc:
        raise InvoiceError(exc.message, field=field) from None


class Seller(msgspec.Struct, frozen=True, kw_only=True):
    """The supplier issuing the invoice and receiving the money.

    ``address`` holds the lines as printed. ``creditor_id`` (SEPA creditor
    identifier) is needed only for direct debit; ``bic`` is optional within SEPA.
    """

    name: str
    address: tuple[str, ...]
    vat_id: str
    iban: str
    creditor_id: str | None = None
    bic: str | None = None

    def __post_init__(self) -> None:
        force_setattr(self, "name", _text(self.name, "seller.name"))
        force_setattr(self, "address", _address(self.address, "seller.address"))
        force_setattr(self, "vat_id", _text(self.vat_id, "seller.vat_id").replace(" ", ""))
        force_setattr(self, "iban", _bank_id(check_iban, self.iban, "seller.iban"))
        if self.creditor_id is not None:
            force_setattr(
                self,
                "creditor_id",
                _bank_id(check_creditor_id, self.creditor_id, "seller.creditor_id"),
            )
        if self.bic is not None:
            force_setattr(self, "bic", _bank_id(check_bic, self.bic, "seller.bic"))


class CustomerAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The customer billed: account number, name and postal address (lines as printed)."""

    number: str
    name: str
    address: tuple[str, ...]
    vat_id: str | None = None

    def __post_init__(self) -> None:
        force_setattr(self, "number", _text(self.number, "customer.number"))
        force_setattr(self, "name", _text(self.name, "customer.name"))
        force_setattr(self, "address", _address(self.address, "customer.address"))
        if self.vat_id is not None:
            force_setattr(self, "vat_id", _text(self.vat_id, "customer.vat_id").replace(" ", ""))


class SupplyPoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where the energy is delivered: its identifier (EAN, MPAN, PDL ...) and address."""

    id: str
    address: tuple[str, ...]

    def __post_init__(self) -> None:
        force_setattr(self, "id", _text(self.id, "supply_point.id"))
        force_setattr(self, "address", _address(self.address, "supply_point.address"))


class RegisterRead(msgspec.Struct, frozen=True, kw_only=True):
    """A register value on a local date, read from the meter or estimated."""

    read_on: date
    value: Decimal
    is_estimated: bool = False


class MeterReads(msgspec.Struct, frozen=True, kw_only=True):
    """The first and last register reads of a meter that the billing period used.

    ``register`` names the register as the customer sees it on the meter (an
    OBIS code such as 1.8.0, or "import"). ``modulus`` is the value the register
    wraps at (100000 for five whole digits), None for one that never wraps.
    """

    meter: str
    register: str
    first: RegisterRead
    last: RegisterRead
    unit: str = "kWh"
    modulus: Decimal | None = None

    def __post_init__(self) -> None:
        force_setattr(self, "meter", _text(self.meter, "meters.meter"))
        force_setattr(self, "register", _text(self.register, "meters.register"))
        if self.last.read_on <= self.first.read_on:
            raise InvoiceError(
                f"meters.last.read_on: {self.last.read_on} must be after the first read "
                f"({self.first.read_on})",
                field="meters.last.read_on",
            )
        if self.last.value < self.first.value and self.modulus is None:
            raise InvoiceError(
                f"meters.last.value: {self.last.value} is below the first read "
                f"({self.first.value}); if the register wrapped, give its modulus "
                "(100000 for five whole digits)",
                field="meters.last.value",
            )

    @property
    def advance(self) -> Decimal:
        """What the register counted between the two reads, across a wrap if it made one."""
        step = self.last.value - self.first.value
        if step < 0 and self.modulus is not None:
            step += self.modulus
        return step

    @property
    def is_estimated(self) -> bool:
        """Whether either read was estimated."""
        return self.first.is_estimated or self.last.is_estimated


class DirectDebit(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="method", tag="sepa_direct_debit"
):
    """Paid by SEPA Core direct debit under a mandate, collected on the due date."""

    mandate_reference: str
    debtor_iban: str

    def __post_init__(self) -> None:
        try:
            check_reference(self.mandate_reference, field="payment.mandate_reference")
        except PaymentDataError as exc:
            raise InvoiceError(exc.message, field=exc.field) from None
        force_setattr(
            self, "debtor_iban", _bank_id(check_iban, self.debtor_iban, "payment.debtor_iban")
        )


class BankTransfer(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="method", tag="bank_transfer"
):
    """Paid by credit transfer quoting an ISO 11649 creditor reference (``RF...``).

    :func:`creditor_reference` makes one from an invoice number.
    """

    reference: str

    def __post_init__(self) -> None:
        force_setattr(self, "reference", _check_creditor_reference(self.reference))


PaymentTerms = DirectDebit | BankTransfer


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 remainder of ``text``, letters counted as A=10 ... Z=35."""
    return int("".join(str(int(char, 36)) for char in text)) % 97


def creditor_reference(invoice_number: str) -> str:
    """The ISO 11649 creditor reference of an invoice number: ``RF`` + check digits + body.

    The body is the number's letters and digits (``INV-2026-0042`` -> ``INV20260042``),
    at most 21 of them.
    """
    body = "".join(char for char in invoice_number.upper() if char in _ALPHANUMERIC)
    if not body or len(body) > _RF_BODY_LENGTH:
        raise InvoiceError(
            f"number: {invoice_number!r} has {len(body)} letters and digits; a creditor "
            f"reference holds 1 to {_RF_BODY_LENGTH}",
            field="number",
        )
    return f"RF{98 - _mod97(body + 'RF00'):02d}{body}"


def _check_creditor_reference(value: str) -> str:
    reference = "".join(value.split()).upper()
    body = reference[4:]
    if (
        not reference.startswith("RF")
        or not reference[2:4].isdigit()
        or not 1 <= len(body) <= _RF_BODY_LENGTH
        or not set(body) <= _ALPHANUMERIC
    ):
        raise InvoiceError(
            f"payment.reference: {value!r} is not an ISO 11649 creditor reference "
            "(RF, two check digits, 1-21 letters or digits); make one with "
            "creditor_reference(invoice_number)",
            field="payment.reference",
        )
    # ISO 11649: the reference with its first four characters moved to the end is 1 mod 97.
    if _mod97(body + reference[:4]) != 1:
        raise InvoiceError(
            f"payment.reference: {reference} fails its check digits (ISO 11649); copy it again",
            field="payment.reference",
        )
    return reference


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    """An invoice or credit note: who, where, what was read, what it costs, how to pay.

    ``number`` is also the end-to-end id of its SEPA collection, so it must be 1-35
    characters of the SEPA Latin set. ``corrects`` is, on a credit note, the number
    of the invoice it reverses and, on an invoice, the number of the invoice it
    replaces. Billing period, currency, lines, taxes and totals are the draft's.
    """

    number: str
    kind: InvoiceKind
    issue_date: date
    due_date: date
    seller: Seller
    customer: CustomerAccount
    supply_point: SupplyPoint
    meters: tuple[MeterReads, ...]
    draft: InvoiceDraft
    payment: PaymentTerms
    corrects: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        try:
            check_reference(self.number, field="number")
        except PaymentDataError as exc:
            raise InvoiceError(exc.message, field="number") from None
        if self.due_date < self.issue_date:
            raise InvoiceError(
                f"due_date: {self.due_date} is before the issue date {self.issue_date}",
                field="due_date",
            )
        if self.kind is InvoiceKind.CREDIT_NOTE and self.corrects is None:
            raise InvoiceError(
                "corrects: a credit note must name the invoice it corrects", field="corrects"
            )
        if self.corrects == self.number:
            raise InvoiceError(
                f"corrects: {self.corrects} is this document's own number", field="corrects"
            )
        if isinstance(self.payment, DirectDebit):
            if self.currency != "EUR":
                raise InvoiceError(
                    f"payment: SEPA direct debit collects EUR only, this invoice is in "
                    f"{self.currency}; use BankTransfer",
                    field="payment",
                )
            if self.seller.creditor_id is None:
                raise InvoiceError(
                    "seller.creditor_id: direct debit needs the seller's SEPA creditor "
                    "identifier, e.g. NL98ZZZ999999999999",
                    field="seller.creditor_id",
                )
        _check_totals(self.draft)

    @property
    def currency(self) -> str:
        """ISO 4217 code of every amount."""
        return self.draft.currency

    @property
    def is_credit_note(self) -> bool:
        """Whether this document reverses another."""
        return self.kind is InvoiceKind.CREDIT_NOTE

    @property
    def total(self) -> Money:
        """What the customer owes (negative: what is owed to the customer)."""
        return self.draft.total


def _check_totals(draft: InvoiceDraft) -> None:
    """Refuse a draft whose lines, taxes and totals do not add up (e.g. edited JSON)."""
    currency = draft.currency
    lines = sum((line.amount for line in draft.lines), Money.zero(currency))
    taxes = sum((tax.amount for tax in draft.taxes), Money.zero(currency))
    for field, stated, computed in (
        ("subtotal", draft.subtotal, lines),
        ("tax", draft.tax, taxes),
        ("total", draft.total, draft.subtotal + draft.tax),
    ):
        if stated != computed:
            raise InvoiceError(
                f"draft.{field}: {stated} but the figures behind it add up to {computed}; "
                "price the period again rather than editing amounts",
                field=f"draft.{field}",
            )


def _negated(number: Decimal) -> Decimal:
    # 0 - x rather than -x: a zero stays 0, never -0, on the document.
    return Decimal(0) - number


def _negated_money(money: Money) -> Money:
    return Money(_negated(money.amount), money.currency)


def _reversed_draft(draft: InvoiceDraft) -> InvoiceDraft:
    """Every quantity, amount and kWh of ``draft`` negated; unit prices, rates and reads kept.

    Negating the quantity and keeping the price keeps ``amount = quantity * unit_price``
    true on each line; rounding half away from zero makes each negated tax exactly
    the tax of the negated base.
    """
    return dataclasses.replace(
        draft,
        lines=tuple(
            dataclasses.replace(
                line, quantity=_negated(line.quantity), amount=_negated_money(line.amount)
            )
            for line in draft.lines
        ),
        taxes=tuple(
            TaxLine(t.name, t.rate, _negated_money(t.base), _negated_money(t.amount))
            for t in draft.taxes
        ),
        consumption=tuple(PeriodConsumption(c.period, _negated(c.kwh)) for c in draft.consumption),
        import_kwh=_negated(draft.import_kwh),
        export_kwh=_negated(draft.export_kwh),
        actual_kwh=_negated(draft.actual_kwh),
        estimated_kwh=_negated(draft.estimated_kwh),
        subtotal=_negated_money(draft.subtotal),
        tax=_negated_money(draft.tax),
        total=_negated_money(draft.total),
    )


def credit_note(
    invoice: Invoice,
    *,
    number: str,
    issue_date: date,
    due_date: date | None = None,
    note: str | None = None,
) -> Invoice:
    """A credit note reversing the whole of ``invoice``: every line and total negated.

    It keeps the invoice's parties, supply point, reads and payment terms (a
    refund goes back the way the money came), and is due on ``due_date``
    (default: its issue date).
    """
    if invoice.is_credit_note:
        raise InvoiceError(
            f"invoice: {invoice.number} is itself a credit note; issue a new invoice instead",
            field="invoice",
        )
    if issue_date < invoice.issue_date:
        raise InvoiceError(
            f"issue_date: {issue_date} is before invoice {invoice.number} was issued "
            f"({invoice.issue_date})",
            field="issue_date",
        )
    return msgspec.structs.replace(
        invoice,
        number=number,
        kind=InvoiceKind.CREDIT_NOTE,
        issue_date=issue_date,
        due_date=issue_date if due_date is None else due_date,
        draft=_reversed_draft(invoice.draft),
        corrects=invoice.number,
        note=note,
    )


def correct_invoice(
    invoice: Invoice,
    draft: InvoiceDraft,
    *,
    credit_number: str,
    new_number: str,
    issue_date: date,
    due_date: date,
    meters: Sequence[MeterReads] | None = None,
    note: str | None = None,
) -> tuple[Invoice, Invoice]:
    """Correct ``invoice``: a credit note reversing it and a new invoice for ``draft``.

    The new invoice keeps the old one's parties and payment terms, takes
    ``meters`` (the reads behind the corrected draft; default: the old ones) and
    names the old invoice in ``corrects``. The customer pays the sum of the two
    totals. ``note`` (why, e.g. "estimated reads replaced by actual reads") goes
    on both.
    """
    if draft.currency != invoice.currency:
        raise InvoiceError(
            f"draft.currency: {draft.currency} differs from invoice {invoice.number}'s "
            f"{invoice.currency}; a correction keeps the currency",
            field="draft.currency",
        )
    credit = credit_note(invoice, number=credit_number, issue_date=issue_date, note=note)
    replacement = msgspec.structs.replace(
        invoice,
        number=new_number,
        kind=InvoiceKind.INVOICE,
        issue_date=issue_date,
        due_date=due_date,
        meters=invoice.meters if meters is None else tuple(meters),
        draft=draft,
        corrects=invoice.number,
        note=note,
    )
    if replacement.number == credit.number:
        raise InvoiceError(
            f"new_number: {new_number} is also the credit note's number", field="new_number"
        )
    return credit, replacement
