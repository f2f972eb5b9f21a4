"""Invoices as data: a stable JSON document and CSV rows of the lines.

The JSON document is the archived form of an invoice: :func:`parse_invoice_json`
gives back an equal :class:`~m2mhub.apps.metering.invoices.Invoice`, from which
the PDF can be rendered again. Its shape (``schema`` = ``m2mhub.invoice/1``;
:func:`invoice_json_schema` returns it as JSON Schema)::

    {"schema": "m2mhub.invoice/1", "number": "INV-2026-000123", "kind": "invoice",
     "corrects": null, "issue_date": "2026-05-04", "due_date": "2026-05-18",
     "currency": "EUR", "note": null,
     "seller": {"name", "address": [lines], "vat_id", "iban", "creditor_id", "bic"},
     "customer": {"number", "name", "address": [lines], "vat_id"},
     "supply_point": {"id", "address": [lines]},
     "meters": [{"meter", "register", "unit", "modulus", "advance",
                 "first": {"read_on", "value", "is_estimated"}, "last": {...}}],
     "period": {"start", "end", "days", "timezone", "tariff"},
     "consumption": {"import_kwh", "export_kwh", "actual_kwh", "estimated_kwh",
                     "actual_reads", "estimated_reads", "periods": [{"period", "kwh"}],
                     "peak": null | {"kw", "start", "local_start"},
                     "unit": "kWh", "estimated_dates": ["2026-04-12"]},
     "lines": [{"description", "quantity", "unit", "unit_price", "amount", "tax_rate",
                "tariff_period", "version", "start", "end"}],
     "taxes": [{"name", "rate", "base", "amount"}],
     "subtotal": "44.74", "tax": "9.40", "total": "54.14",
     "payment": {"method": "sepa_direct_debit", "mandate_reference", "debtor_iban"}
              | {"method": "bank_transfer", "reference"}}

Every amount, quantity, price and rate is a decimal *string* ("9.40", "0.21"),
never a JSON number, so no reader turns it into a binary float. Dates are ISO
8601 local dates; ``end`` dates are exclusive, as in the pricing core (a period
``2026-04-01`` to ``2026-05-01`` is April). Keys keep the order above. The
``*_kwh`` values are in ``consumption.unit`` (``h`` for a usage tariff billed by
runtime hours); documents written before ``unit`` and ``estimated_dates`` existed
read as ``kWh`` and no dates.

CSV (:func:`render_lines_csv`) has one row per invoice line, for a spreadsheet
or an accounting import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec

from m2mhub.apps.metering.invoices import (
    CustomerAccount,
    Invoice,
    InvoiceError,
    InvoiceKind,
    MeterReads,
    PaymentTerms,
    RegisterRead,
    Seller,
    SupplyPoint,
)
from m2mhub.apps.metering.money import Money
from m2mhub.apps.metering.pricing import (
    InvoiceDraft,
    InvoiceLine,
    Peak,
    PeriodConsumption,
    TaxLine,
)

__all__ = [
    "CSV_COLUMNS",
    "SCHEMA",
    "invoice_json_schema",
    "parse_invoice_document",
    "parse_invoice_json",
    "render_invoice_json",
    "render_lines_csv",
]

#: Identifies the JSON shape; a change that breaks a reader gets a new number.
SCHEMA: Final = "m2mhub.invoice/1"
#: Header of :func:`render_lines_csv`.
CSV_COLUMNS: Final = (
    "invoice_number",
    "kind",
    "line",
    "description",
    "start",
    "end",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "tax_rate",
)

#: Units printed to the watt-hour in CSV; quantities in other units keep their digits.
_ENERGY_UNITS: Final = frozenset({"Wh", "kWh", "MWh", "GWh", "kvarh"})
_WATT_HOUR: Final = Decimal("0.001")

# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

Amount = Annotated[Decimal, msgspec.Meta(description="decimal string in the invoice currency")]
Kwh = Annotated[Decimal, msgspec.Meta(description="decimal string, kWh")]


class _Consumption(msgspec.Struct, frozen=True, kw_only=True):
    import_kwh: Kwh
    export_kwh: Kwh
    actual_kwh: Kwh
    estimated_kwh: Kwh
    actual_reads: int
    estimated_reads: int
    periods: tuple[PeriodConsumption, ...]
    peak: Peak | None
    unit: str = "kWh"
    estimated_dates: tuple[date, ...] = ()


class _Period(msgspec.Struct, frozen=True, kw_only=True):
    start: date
    end: Annotated[date, msgspec.Meta(description="exclusive")]
    days: int
    timezone: str
    tariff: str


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    description: str
    quantity: Decimal
    unit: str
    unit_price: Amount
    amount: Amount
    tax_rate: Annotated[Decimal, msgspec.Meta(description="0.21 is 21 %")]
    tariff_period: str | None
    version: Annotated[date, msgspec.Meta(description="valid_from of the tariff version")]
    start: date
    end: Annotated[date, msgspec.Meta(description="exclusive")]


class _Tax(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    rate: Decimal
    base: Amount
    amount: Amount


class _Meter(msgspec.Struct, frozen=True, kw_only=True):
    meter: str
    register: str
    unit: str
    modulus: Decimal | None
    advance: Annotated[Decimal, msgspec.Meta(description="last - first, across a wrap")]
    first: RegisterRead
    last: RegisterRead


class _Document(msgspec.Struct, frozen=True, kw_only=True):
    schema: Literal["m2mhub.invoice/1"]
    number: str
    kind: InvoiceKind
    corrects: str | None
    issue_date: date
    due_date: date
    currency: str
    note: str | None
    seller: Seller
    customer: CustomerAccount
    supply_point: SupplyPoint
    meters: tuple[_Meter, ...]
    period: _Period
    consumption: _Consumption
    lines: tuple[_Line, ...]
    taxes: tuple[_Tax, ...]
    subtotal: Amount
    tax: Amount
    total: Amount
    payment: Annotated[PaymentTerms, msgspec.Meta(description="tagged by 'method'")]


def _plain(number: Decimal) -> Decimal:
    """``1E+2`` -> ``100``: no exponent in a document meant to be read."""
    exponent = number.as_tuple().exponent
    return number.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else number


def _document(invoice: Invoice) -> _Document:
    draft = invoice.draft
    return _Document(
        schema=SCHEMA,
        number=invoice.number,
        kind=invoice.kind,
        corrects=invoice.corrects,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=invoice.currency,
        note=invoice.note,
        seller=invoice.seller,
        customer=invoice.customer,
        supply_point=invoice.supply_point,
        meters=tuple(
            _Meter(
                meter=m.meter,
                register=m.register,
                unit=m.unit,
                modulus=m.modulus,
                advance=_plain(m.advance),
                first=m.first,
                last=m.last,
            )
            for m in invoice.meters
        ),
        period=_Period(
            start=draft.start,
            end=draft.end,
            days=draft.days,
            timezone=draft.timezone,
            tariff=draft.tariff,
        ),
        consumption=_Consumption(
            import_kwh=_plain(draft.import_kwh),
            export_kwh=_plain(draft.export_kwh),
            actual_kwh=_plain(draft.actual_kwh),
            estimated_kwh=_plain(draft.estimated_kwh),
            actual_reads=draft.actual_intervals,
            estimated_reads=draft.estimated_intervals,
            periods=tuple(PeriodConsumption(c.period, _plain(c.kwh)) for c in draft.consumption),
            peak=draft.peak,
            unit=draft.unit,
            estimated_dates=draft.estimated_dates,
        ),
        lines=tuple(
            _Line(
                description=line.description,
                quantity=_plain(line.quantity),
                unit=line.unit,
                unit_price=_plain(line.unit_price),
                amount=line.amount.amount,
                tax_rate=_plain(line.tax_rate),
                tariff_period=line.tariff_period,
                version=line.version,
                start=line.start,
                end=line.end,
            )
            for line in draft.lines
        ),
        taxes=tuple(
            _Tax(name=t.name, rate=_plain(t.rate), base=t.base.amount, amount=t.amount.amount)
            for t in draft.taxes
        ),
        subtotal=draft.subtotal.amount,
        tax=draft.tax.amount,
        total=draft.total.amount,
        payment=invoice.payment,
    )


def render_invoice_json(invoice: Invoice) -> bytes:
    """The invoice as a UTF-8 JSON document (shape in the module docstring).

    The same invoice always gives the same bytes.
    """
    return msgspec.json.encode(_document(invoice))


def invoice_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of :func:`render_invoice_json`'s document."""
    return msgspec.json.schema(_Document)


def parse_invoice_document(document: dict[str, Any]) -> Invoice:
    """The invoice of an archived document already decoded (an invoice record's
    ``document``), checked like :func:`parse_invoice_json`."""
    return parse_invoice_json(msgspec.json.encode(document))


def parse_invoice_json(data: bytes | str) -> Invoice:
    """Read a document written by :func:`render_invoice_json` back into an :class:`Invoice`.

    Raises :class:`InvoiceError` naming the JSON path at fault, also when the
    lines, taxes and totals do not add up.
    """
    try:
        document = msgspec.json.decode(data, type=_Document)
    except msgspec.ValidationError as exc:
        # msgspec ends its message with " - at `$.lines[0].amount`".
        message, _, where = str(exc).partition(" - at ")
        field = where.strip("`").removeprefix("$.") or "invoice"
        raise InvoiceError(f"{field}: {message}", field=field) from None
    except msgspec.DecodeError as exc:
        raise InvoiceError(f"invoice: not valid JSON: {exc}", field="invoice") from None
    currency = document.currency
    consumption = document.consumption
    draft = InvoiceDraft(
        tariff=document.period.tariff,
        currency=currency,
        timezone=document.period.timezone,
        start=document.period.start,
        end=document.period.end,
        days=document.period.days,
        lines=tuple(
            InvoiceLine(
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                amount=Money(line.amount, currency),
                tax_rate=line.tax_rate,
                version=line.version,
                start=line.start,
                end=line.end,
                tariff_period=line.tariff_period,
            )
            for line in document.lines
        ),
        taxes=tuple(
            TaxLine(t.name, t.rate, Money(t.base, currency), Money(t.amount, currency))
            for t in document.taxes
        ),
        consumption=consumption.periods,
        import_kwh=consumption.import_kwh,
        export_kwh=consumption.export_kwh,
        actual_kwh=consumption.actual_kwh,
        estimated_kwh=consumption.estimated_kwh,
        actual_intervals=consumption.actual_reads,
        estimated_intervals=consumption.estimated_reads,
        peak=consumption.peak,
        subtotal=Money(document.subtotal, currency),
        tax=Money(document.tax, currency),
        total=Money(document.total, currency),
        estimated_dates=consumption.estimated_dates,
        unit=consumption.unit,
    )
    return Invoice(
        number=document.number,
        kind=document.kind,
        issue_date=document.issue_date,
        due_date=document.due_date,
        seller=document.seller,
        customer=document.customer,
        supply_point=document.supply_point,
        meters=tuple(
            MeterReads(
                meter=m.meter,
                register=m.register,
                unit=m.unit,
                modulus=m.modulus,
                first=m.first,
                last=m.last,
            )
            for m in document.meters
        ),
        draft=draft,
        payment=document.payment,
        corrects=document.corrects,
        note=document.note,
    )


def _quantity(quantity: Decimal, unit: str) -> Decimal:
    """Energy to the watt-hour (3 decimals); any other unit with as many as it needs."""
    if unit in _ENERGY_UNITS:
        return quantity.quantize(_WATT_HOUR)
    return _plain(quantity.normalize())


def _cell(text: str) -> str:
    """Text that a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_lines_csv(invoices: Iterable[Invoice]) -> str:
    """One CSV row per line of each invoice, under the :data:`CSV_COLUMNS` header.

    RFC 4180: comma separated, CRLF line ends, quotes where needed. Numbers are
    plain decimals with a dot; quantities of energy (kWh and the like) have 3
    decimals, other quantities (days, hours, m3) as many as they need; ``line``
    counts from 1 within an invoice; ``end`` is exclusive.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in invoices:
        for number, line in enumerate(invoice.draft.lines, start=1):
            writer.writerow(
                (
                    _cell(invoice.number),
                    invoice.kind.value,
                    number,
                    _cell(line.description),
                    line.start.isoformat(),
                    line.end.isoformat(),
                    _quantity(line.quantity, line.unit),
                    _cell(line.unit),
                    _plain(line.unit_price),
                    line.amount.amount,
                    invoice.currency,
                    _plain(line.tax_rate),
                )
            )
    return out.getvalue()
