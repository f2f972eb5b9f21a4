"""Invoices and credit notes as A4 PDF, drawn with fpdf2 in the core Helvetica font.

No font file is embedded. The PDF core fonts are declared by fpdf2 with
``/WinAnsiEncoding``, which is Windows code page 1252, so the text is encoded
as cp1252 (``FPDF.core_fonts_encoding``): the euro sign, curly quotes and dashes
print as themselves (the euro is byte 0x80). Any character cp1252 lacks is
transliterated by :func:`to_pdf_text` (``Łódź`` -> ``Lódz``, ``Ștefan`` ->
``Stefan``); one with no Latin rendering prints as ``?``. The JSON rendering
keeps the exact text.

Layout, top to bottom: seller, title and document details; the customer's
address block (where a window envelope shows it); the meter reads used, with
estimated reads marked and the days with estimated intervals named;
consumption per tariff period, in the unit the tariff bills (kWh, m3, h); the lines (headings
repeated on each page); the tax summary and the total; payment instructions.
Every page's footer carries the seller's VAT id and bank account and the page
number. Text is English; amounts use a dot for decimals and commas for
thousands.

The output is deterministic: the creation date is the invoice's issue date, so
the same invoice renders to the same bytes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from fpdf import FPDF
from fpdf.fonts import FontFace

from m2mhub.apps.metering.invoices import BankTransfer, DirectDebit, Invoice, MeterReads
from m2mhub.apps.metering.money import Money
from m2mhub.apps.metering.pricing import TaxLine

__all__ = ["render_invoice_pdf", "to_pdf_text"]

_ENCODING: Final = "cp1252"  # what /WinAnsiEncoding means (PDF 32000-1, annex D.2)
_FONT: Final = "helvetica"
_MARGIN: Final = 18.0  # mm
_WIDTH: Final = 210.0 - 2 * _MARGIN  # A4 is 210 mm wide
_ADDRESS_TOP: Final = 48.0  # DIN 5008 form B puts the address window 45-90 mm from the top
_GREY: Final = (235, 235, 235)
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_SYMBOLS: Final = {"EUR": "\u20ac", "GBP": "\u00a3", "USD": "$", "JPY": "\u00a5"}
# Characters outside cp1252 that Unicode does not decompose into a Latin letter.
_REPLACEMENTS: Final = str.maketrans(
    {
        "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0131": "i",
        "\u0126": "H", "\u0127": "h", "\u2212": "-", "\u2010": "-", "\u2011": "-",
        "\u2009": " ", "\u202f": " ", "\u2192": "->", "\u2264": "<=", "\u2265": ">=",
        "\u2248": "~", "\t": " ", "\n": " ", "\r": " ",
    }
)  # fmt: skip


def to_pdf_text(text: str) -> str:
    """``text`` made printable in the core fonts: cp1252 kept, the rest transliterated."""
    out = []
    for char in text.translate(_REPLACEMENTS):
        if _is_printable(char):
            out.append(char)
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        latin = "".join(c for c in decomposed if not unicodedata.combining(c))
        out.append(latin if latin and all(_is_printable(c) for c in latin) else "?")
    return "".join(out)


def _is_printable(char: str) -> bool:
    try:
        char.encode(_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def _day(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _span(start: date, end: date) -> str:
    """A half-open date range printed with its last day, as people read periods."""
    last = end - timedelta(days=1)
    if last == start:
        return _day(start)
    if start.year == last.year:
        return f"{start.day} {_MONTHS[start.month - 1]} - {_day(last)}"
    return f"{_day(start)} - {_day(last)}"


def _days_text(days: Sequence[date], *, most: int = 8) -> str:
    """Dates as runs of consecutive days: ``8 - 9 Oct 2026, 12 Oct 2026``."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day == runs[-1][1]:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    shown = ", ".join(_span(start, end) for start, end in runs[:most])
    rest = sum((end - start).days for start, end in runs[most:])
    return shown + (f" and {rest} more days" if rest else "")


def _number(value: Decimal) -> str:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        value = value.quantize(Decimal(1))
    return format(value, ",f")


def _rate(rate: Decimal) -> str:
    return f"{_number((rate * 100).normalize())} %"


def _money(money: Money) -> str:
    return f"{_SYMBOLS.get(money.currency, money.currency)} {_number(money.amount)}"


def _grouped(identifier: str) -> str:
    """IBANs and creditor references are printed in groups of four (ISO 13616, ISO 11649)."""
    return " ".join(identifier[i : i + 4] for i in range(0, len(identifier), 4))


def _masked_iban(iban: str) -> str:
    return _grouped(iban[:4] + "*" * (len(iban) - 8) + iban[-4:])


class _Document(FPDF):
    """An A4 page set with the seller's details and the page number in every footer."""

    def __init__(self, invoice: Invoice) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.invoice = invoice
        self.core_fonts_encoding = _ENCODING
        self.set_margins(_MARGIN, 15, _MARGIN)
        self.set_auto_page_break(auto=True, margin=22)
        self.alias_nb_pages()

    def footer(self) -> None:
        seller = self.invoice.seller
        self.set_y(-18)
        self.set_draw_color(180)
        self.line(_MARGIN, self.get_y(), _MARGIN + _WIDTH, self.get_y())
        self.set_font(_FONT, size=7.5)
        self.set_text_color(90)
        parts = [seller.name, f"VAT {seller.vat_id}", f"IBAN {_grouped(seller.iban)}"]
        if seller.bic:
            parts.append(f"BIC {seller.bic}")
        if seller.creditor_id:
            parts.append(f"Creditor ID {seller.creditor_id}")
        self.cell(_WIDTH, 4, to_pdf_text("  |  ".join(parts)), new_x="LMARGIN", new_y="NEXT")
        title = f"{_title(self.invoice)} {self.invoice.number}"
        self.cell(_WIDTH - 30, 4, to_pdf_text(title))
        self.cell(30, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0)

    def text_line(
        self, text: str, *, size: float = 9, style: str = "", height: float = 4.2
    ) -> None:
        self.set_font(_FONT, style=style, size=size)
        self.multi_cell(_WIDTH, height, to_pdf_text(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.text_line(text, size=10.5, style="B", height=5.5)


def _title(invoice: Invoice) -> str:
    return "Credit note" if invoice.is_credit_note else "Invoice"


def _draw_header(pdf: _Document) -> None:
    invoice = pdf.invoice
    seller, customer = invoice.seller, invoice.customer
    pdf.set_font(_FONT, style="B", size=13)
    pdf.cell(_WIDTH / 2, 7, to_pdf_text(seller.name))
    pdf.set_font(_FONT, style="B", size=18)
    pdf.cell(_WIDTH / 2, 7, _title(invoice), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=8.5)
    for line in seller.address:
        pdf.cell(_WIDTH / 2, 4, to_pdf_text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(_WIDTH / 2, 4, to_pdf_text(f"VAT {seller.vat_id}"), new_x="LMARGIN", new_y="NEXT")

    # Customer's address on the left, the document's details on the right.
    pdf.set_y(_ADDRESS_TOP)
    pdf.set_font(_FONT, size=10)
    for line in (customer.name, *customer.address):
        pdf.cell(_WIDTH / 2, 5, to_pdf_text(line), new_x="LMARGIN", new_y="NEXT")
    bottom_left = pdf.get_y()

    draft = invoice.draft
    details = [
        (f"{_title(invoice)} number", invoice.number),
        ("Issue date", _day(invoice.issue_date)),
        ("Refund by" if draft.total.amount < 0 else "Due date", _day(invoice.due_date)),
        ("Customer account", customer.number),
        ("Billing period", f"{_span(draft.start, draft.end)} ({draft.days} days)"),
        ("Supply point", invoice.supply_point.id),
        ("Tariff", draft.tariff),
    ]
    if customer.vat_id:
        details.append(("Your VAT id", customer.vat_id))
    if invoice.corrects is not None:
        label = "Reverses invoice" if invoice.is_credit_note else "Replaces invoice"
        details.append((label, invoice.corrects))
    pdf.set_y(_ADDRESS_TOP)
    for label, value in details:
        pdf.set_x(_MARGIN + _WIDTH / 2)
        pdf.set_font(_FONT, size=8.5)
        pdf.cell(32, 4.5, to_pdf_text(label))
        pdf.set_font(_FONT, style="B" if label.endswith("number") else "", size=8.5)
        pdf.cell(_WIDTH / 2 - 32, 4.5, to_pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(bottom_left, pdf.get_y()) + 3)
    pdf.set_font(_FONT, size=8.5)
    address = ", ".join(invoice.supply_point.address)
    pdf.text_line(f"Supply address: {address}", size=8.5)
    if invoice.is_credit_note:
        pdf.text_line(
            f"This credit note reverses invoice {invoice.corrects} in full: every line "
            "and amount below is that invoice's, negated.",
            size=9,
        )
    elif invoice.corrects is not None:
        pdf.text_line(
            f"This invoice replaces invoice {invoice.corrects}, which has been credited.",
            size=9,
        )
    if invoice.note:
        pdf.text_line(invoice.note, size=9)


def _reading(meter: MeterReads, which: str) -> str:
    read = meter.first if which == "first" else meter.last
    return f"{_number(read.value)}{' E' if read.is_estimated else ''}"


def _draw_consumption(pdf: _Document) -> None:
    invoice, draft = pdf.invoice, pdf.invoice.draft
    pdf.heading("Meter reads used")
    if invoice.meters:
        with pdf.table(
            width=_WIDTH,
            col_widths=(34, 18, 22, 26, 22, 26, 26),
            text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT", "RIGHT"),
            borders_layout="HORIZONTAL_LINES",
            headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
            line_height=4.2,
            padding=(0.6, 1.5),
        ) as table:
            pdf.set_font(_FONT, size=8.5)
            header = ("Meter", "Register", "From", "Reading", "To", "Reading", "Used")
            table.row(header)
            for meter in invoice.meters:
                table.row(
                    tuple(
                        to_pdf_text(cell)
                        for cell in (
                            meter.meter,
                            meter.register,
                            _day(meter.first.read_on),
                            _reading(meter, "first"),
                            _day(meter.last.read_on),
                            _reading(meter, "last"),
                            f"{_number(meter.advance)} {meter.unit}",
                        )
                    )
                )
        if any(meter.is_estimated for meter in invoice.meters):
            pdf.text_line("E = estimated read: the meter was not read on that date.", size=8)
    unit = to_pdf_text(draft.unit)
    if draft.actual_intervals + draft.estimated_intervals:
        # A credit note's kWh are negated; the reads behind them are the same reads.
        pdf.text_line(
            f"{'Credited interval' if invoice.is_credit_note else 'Interval'} reads: "
            f"{_number(abs(draft.actual_kwh))} {unit} from {draft.actual_intervals} actual "
            f"reads, {_number(abs(draft.estimated_kwh))} {unit} from "
            f"{draft.estimated_intervals} estimated reads.",
            size=8.5,
        )
    if draft.estimated_dates:
        pdf.text_line(f"Estimated on: {_days_text(draft.estimated_dates)}.", size=8.5)
    if draft.estimated_intervals and not invoice.is_credit_note:
        pdf.text_line(
            "Estimated reads are replaced by actual reads once the meter reports them; "
            "any difference is corrected by a credit note and a new invoice.",
            size=8,
        )

    pdf.heading("Consumption per tariff period")
    with pdf.table(
        width=90,
        align="LEFT",
        col_widths=(60, 30),
        text_align=("LEFT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
        line_height=4.2,
        padding=(0.6, 1.5),
    ) as table:
        pdf.set_font(_FONT, size=8.5)
        table.row(("Tariff period", unit))
        if len(draft.consumption) > 1:
            for period in draft.consumption:
                table.row((to_pdf_text(period.period), _number(period.kwh)))
        table.row(("Total imported", _number(draft.import_kwh)))
        if draft.export_kwh:
            table.row(("Exported", _number(draft.export_kwh)))
    if draft.peak is not None and any(line.unit == "kW" for line in draft.lines):
        local = draft.peak.local_start
        pdf.text_line(
            f"Peak demand: {_number(draft.peak.kw)} kW in the interval starting "
            f"{_day(local.date())} {local:%H:%M}.",
            size=8.5,
        )


def _draw_lines(pdf: _Document) -> None:
    draft = pdf.invoice.draft
    pdf.heading("Charges")
    with pdf.table(
        width=_WIDTH,
        col_widths=(56, 34, 20, 10, 18, 12, 24),
        text_align=("LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
        line_height=4,
        padding=(0.6, 1.5),
        repeat_headings=1,
    ) as table:
        pdf.set_font(_FONT, size=8)
        currency = draft.currency
        table.row(
            ("Description", "Period", "Quantity", "Unit", "Unit price", "Tax", f"Amount {currency}")
        )
        for line in draft.lines:
            table.row(
                (
                    to_pdf_text(line.description),
                    _span(line.start, line.end),
                    _number(line.quantity),
                    to_pdf_text(line.unit),
                    _number(line.unit_price),
                    _rate(line.tax_rate),
                    _number(line.amount.amount),
                )
            )

    pdf.heading("Tax summary")
    with pdf.table(
        width=110,
        align="RIGHT",
        col_widths=(38, 18, 27, 27),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
        line_height=4.2,
        padding=(0.6, 1.5),
    ) as table:
        pdf.set_font(_FONT, size=8.5)
        table.row(("Tax", "Rate", f"Base {currency}", f"Tax {currency}"))
        for tax in draft.taxes:
            table.row(
                (
                    to_pdf_text(tax.name),
                    _rate(tax.rate),
                    _number(tax.base.amount),
                    _number(tax.amount.amount),
                )
            )

    pdf.ln(2)
    for label, amount, style in (
        ("Subtotal", draft.subtotal, ""),
        (_tax_label(draft.taxes), draft.tax, ""),
        ("Total", draft.total, "B"),
    ):
        pdf.set_x(_MARGIN + _WIDTH - 80)
        pdf.set_font(_FONT, style=style, size=11 if style else 9)
        pdf.cell(45, 5.5, label)
        pdf.cell(35, 5.5, to_pdf_text(_money(amount)), align="R", new_x="LMARGIN", new_y="NEXT")


def _tax_label(taxes: Sequence[TaxLine]) -> str:
    if len(taxes) == 1:
        return f"{taxes[0].name} {_rate(taxes[0].rate)}"
    return "Tax"


def _payment_text(invoice: Invoice) -> tuple[str, list[tuple[str, str]], str | None]:
    """What to say about payment: a sentence, the details to copy, and a closing remark."""
    total, payment, seller = invoice.total, invoice.payment, invoice.seller
    owed = _money(Money(abs(total.amount), total.currency))
    due = _day(invoice.due_date)
    if total.amount == 0:
        return "Nothing to pay.", [], None
    if isinstance(payment, DirectDebit):
        account = ("Your account", _masked_iban(payment.debtor_iban))
        if total.amount < 0:
            return f"We will refund {owed} to your account by {due}.", [account], None
        return (
            f"The amount of {owed} will be collected by SEPA direct debit on or after {due}.",
            [
                account,
                ("Mandate reference", payment.mandate_reference),
                ("Creditor identifier", seller.creditor_id or ""),
            ],
            "Please make sure the account is funded on that date.",
        )
    assert isinstance(payment, BankTransfer)
    reference = ("Payment reference", _grouped(payment.reference))
    if total.amount < 0:
        return (
            f"We will refund {owed} by bank transfer by {due}, or set it off against "
            "your next invoice.",
            [reference],
            None,
        )
    rows = [("Account holder", seller.name), ("IBAN", _grouped(seller.iban))]
    if seller.bic:
        rows.append(("BIC", seller.bic))
    rows.append(reference)
    return (
        f"Please transfer {owed} by {due} to:",
        rows,
        "Quote the payment reference exactly, so your payment is matched to this invoice.",
    )


def _draw_payment(pdf: _Document) -> None:
    intro, rows, outro = _payment_text(pdf.invoice)
    # Keep the block on one page: a reference split from its amount is easy to misread.
    if pdf.will_page_break(12 + 5 * len(rows) + (5 if outro else 0)):
        pdf.add_page()
    pdf.heading("Payment")
    pdf.text_line(intro, size=9)
    for label, value in rows:
        pdf.set_font(_FONT, size=9)
        pdf.cell(40, 5, to_pdf_text(label))
        pdf.set_font(_FONT, style="B", size=9)
        pdf.cell(_WIDTH - 40, 5, to_pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    if outro:
        pdf.text_line(outro, size=9)


def render_invoice_pdf(invoice: Invoice, *, compress: bool = True) -> bytes:
    """The invoice or credit note as an A4 PDF; the same invoice gives the same bytes.

    ``compress=False`` leaves the page streams readable, for tests and inspection.
    """
    pdf = _Document(invoice)
    pdf.set_compression(compress)
    # The creation date is part of the file (and of its /ID): take the issue date, not the clock.
    pdf.set_creation_date(datetime.combine(invoice.issue_date, time(0), tzinfo=UTC))
    pdf.set_title(to_pdf_text(f"{_title(invoice)} {invoice.number}"))
    pdf.set_author(to_pdf_text(invoice.seller.name))
    pdf.set_subject(to_pdf_text(f"Supply point {invoice.supply_point.id}"))
    pdf.add_page()
    _draw_header(pdf)
    _draw_consumption(pdf)
    _draw_lines(pdf)
    _draw_payment(pdf)
    return bytes(pdf.output())
