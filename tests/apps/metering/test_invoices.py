"""Invoices and credit notes: the document, its JSON, CSV and PDF renderings.

The invoice under test is the first worked example of test_pricing (tiered
blocks, a price change on 11 April, two estimated days), whose figures are
worked out by hand there and repeated here:

    part 1, 1-10 April:   standing 10 d * 0.40 = 4.00, block 1 33.333 kWh * 0.20 = 6.67,
                          block 2 16.667 kWh * 0.30 = 5.00
    part 2, 11-30 April:  standing 20 d * 0.50 = 10.00, block 1 66.667 kWh * 0.22 = 14.67,
                          block 2 13.333 kWh * 0.33 = 4.40
    subtotal 44.74, VAT 21 % = 9.3954 -> 9.40, total 54.14
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from m2mhub.apps.metering import invoice_export, invoice_pdf, invoices
from m2mhub.apps.metering.invoice_export import (
    CSV_COLUMNS,
    SCHEMA,
    invoice_json_schema,
    parse_invoice_json,
    render_invoice_json,
    render_lines_csv,
)
from m2mhub.apps.metering.invoice_pdf import render_invoice_pdf, to_pdf_text
from m2mhub.apps.metering.invoices import (
    BankTransfer,
    CustomerAccount,
    DirectDebit,
    Invoice,
    InvoiceError,
    InvoiceKind,
    MeterReads,
    RegisterRead,
    Seller,
    SupplyPoint,
    correct_invoice,
    credit_note,
    creditor_reference,
)
from m2mhub.apps.metering.money import Money
from m2mhub.apps.metering.pricing import Interval, InvoiceDraft, price_period
from m2mhub.apps.metering.tariffs import Tariff, load_tariff, parse_tariff_yaml
from m2mhub.core.errors import PayloadError

AMS = ZoneInfo("Europe/Amsterdam")
D = Decimal
APRIL, MAY = date(2026, 4, 1), date(2026, 5, 1)

TIERED_WITH_PRICE_CHANGE = """
name: Tiered home
currency: EUR
timezone: Europe/Amsterdam
versions:
  - valid_from: 2026-01-01
    tax: {name: VAT, rate: 0.21}
    standing_charge: {per_day: 0.40}
    energy:
      type: tiered
      blocks: [{up_to_kwh: 100, price_per_kwh: 0.20}, {price_per_kwh: 0.30}]
  - valid_from: 2026-04-11
    tax: {name: VAT, rate: 0.21}
    standing_charge: {per_day: 0.50}
    energy:
      type: tiered
      blocks: [{up_to_kwh: 100, price_per_kwh: 0.22}, {price_per_kwh: 0.33}]
"""


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def local_days(
    first: date, kwh: list[str], *, estimated: frozenset[int] = frozenset()
) -> list[Interval]:
    """One interval per local day (23 h or 25 h at a DST change); ``estimated`` by index."""
    reads = []
    for i, value in enumerate(kwh):
        day = first + timedelta(days=i)
        start = datetime(day.year, day.month, day.day, tzinfo=AMS).astimezone(UTC)
        end = (datetime.combine(day + timedelta(days=1), datetime.min.time(), AMS)).astimezone(UTC)
        minutes = int((end - start).total_seconds()) // 60
        reads.append(Interval(start, minutes, D(value), is_estimated=i in estimated))
    return reads


def april_draft(*, estimated: bool = True, tenth_day_kwh: str = "5") -> InvoiceDraft:
    # 5 kWh a day for 1-10 April (9 and 10 April estimated), 4 kWh a day for 11-30 April.
    kwh = ["5"] * 9 + [tenth_day_kwh] + ["4"] * 20
    intervals = local_days(APRIL, kwh, estimated=frozenset({8, 9}) if estimated else frozenset())
    return price_period(parse_tariff_yaml(TIERED_WITH_PRICE_CHANGE), APRIL, MAY, intervals)


SELLER = Seller(
    name="Stroomkracht B.V.",
    address=("Keizersgracht 1", "1015 CJ Amsterdam"),
    vat_id="NL123456789B01",
    iban="NL91 ABNA 0417 1643 00",
    creditor_id="NL69ZZZ123456780000",
    bic="ABNANL2A",
)
CUSTOMER = CustomerAccount(
    number="100234567",
    name="J. de Vries",
    address=("Prinsengracht 263", "1016 GV Amsterdam"),
)
SUPPLY_POINT = SupplyPoint(
    id="871687120000123456", address=("Prinsengracht 263", "1016 GV Amsterdam")
)
METER = MeterReads(
    meter="E0031400000123456",
    register="1.8.0",
    first=RegisterRead(read_on=APRIL, value=D("12345.678")),
    last=RegisterRead(read_on=MAY, value=D("12475.678"), is_estimated=True),
)
DEBIT = DirectDebit(mandate_reference="MNDT-100234567", debtor_iban="NL20INGB0001234567")


def make_invoice(draft: InvoiceDraft | None = None, **changes: Any) -> Invoice:
    fields: dict[str, Any] = {
        "number": "INV-2026-000123",
        "kind": InvoiceKind.INVOICE,
        "issue_date": date(2026, 5, 4),
        "due_date": date(2026, 5, 18),
        "seller": SELLER,
        "customer": CUSTOMER,
        "supply_point": SUPPLY_POINT,
        "meters": (METER,),
        "draft": april_draft() if draft is None else draft,
        "payment": DEBIT,
    }
    fields.update(changes)
    return Invoice(**fields)


def pdf_text(pdf: bytes) -> str:
    """The text shown by an uncompressed PDF: every ``(...) Tj`` string, one per line."""
    shown = re.findall(rb"\(((?:[^()\\]|\\.)*)\) Tj", pdf)
    # Core-font strings are WinAnsiEncoding (cp1252) bytes, escaped as PDF literal strings.
    unescaped = [re.sub(rb"\\(.)", rb"\1", s) for s in shown]
    return "\n".join(s.decode("cp1252") for s in unescaped)


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", pdf))


# --- the document ------------------------------------------------------------------------


def test_public_api_is_documented() -> None:
    for module in (invoices, invoice_export, invoice_pdf):
        for name in module.__all__:
            assert inspect.getdoc(getattr(module, name)), f"{module.__name__}.{name}"
    assert issubclass(InvoiceError, PayloadError)


def test_worked_example_invoice_carries_the_draft_and_what_a_customer_checks() -> None:
    invoice = make_invoice()
    draft = invoice.draft
    assert [(ln.description, ln.quantity, ln.unit_price, ln.amount) for ln in draft.lines] == [
        ("Standing charge", D(10), D("0.40"), eur("4.00")),
        (
            "Energy block 1 (up to 100 kWh/month x 10/30 month = 33.333 kWh)",
            D("33.333"),
            D("0.20"),
            eur("6.67"),
        ),
        ("Energy block 2 (above 33.333 kWh)", D("16.667"), D("0.30"), eur("5.00")),
        ("Standing charge", D(20), D("0.50"), eur("10.00")),
        (
            "Energy block 1 (up to 100 kWh/month x 20/30 month = 66.667 kWh)",
            D("66.667"),
            D("0.22"),
            eur("14.67"),
        ),
        ("Energy block 2 (above 66.667 kWh)", D("13.333"), D("0.33"), eur("4.40")),
    ]
    assert (draft.subtotal, draft.tax, invoice.total) == (eur("44.74"), eur("9.40"), eur("54.14"))
    assert invoice.currency == "EUR"
    # The register advanced 12475.678 - 12345.678 = 130 kWh, the kWh the intervals add up to.
    assert METER.advance == D(130) == draft.import_kwh
    assert METER.is_estimated
    assert (draft.actual_kwh, draft.estimated_kwh) == (D(120), D(10))
    # Identifiers are kept in their electronic form.
    assert (SELLER.iban, SELLER.creditor_id) == ("NL91ABNA0417164300", "NL69ZZZ123456780000")


def test_a_register_that_wraps_counts_across_its_modulus() -> None:
    # A five-digit register: 99990 -> 00012 is 22 kWh.
    meter = MeterReads(
        meter="M1",
        register="1.8.0",
        first=RegisterRead(read_on=APRIL, value=D(99990)),
        last=RegisterRead(read_on=MAY, value=D(12)),
        modulus=D(100000),
    )
    assert meter.advance == D(22)
    with pytest.raises(InvoiceError, match="give its modulus") as caught:
        msgspec.structs.replace(meter, modulus=None)
    assert caught.value.field == "meters.last.value"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"number": "INV/2026//1"}, "number", "must not start or end with '/'"),
        ({"number": "Rechnung Nr. 5 \u2013 Mai"}, "number", "SEPA Latin"),
        ({"due_date": date(2026, 5, 1)}, "due_date", "before the issue date"),
        ({"kind": InvoiceKind.CREDIT_NOTE}, "corrects", "must name the invoice"),
        ({"corrects": "INV-2026-000123"}, "corrects", "own number"),
        (
            {"seller": msgspec.structs.replace(SELLER, creditor_id=None)},
            "seller.creditor_id",
            "direct debit needs",
        ),
    ],
)
def test_an_invoice_that_cannot_be_issued_names_the_field(
    changes: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvoiceError, match=words) as caught:
        make_invoice(**changes)
    assert caught.value.field == field


def test_parties_are_checked_with_the_field_named() -> None:
    with pytest.raises(InvoiceError, match="check digits") as caught:
        msgspec.structs.replace(SELLER, iban="NL91ABNA0417164301")
    assert caught.value.field == "seller.iban"
    with pytest.raises(InvoiceError, match="list of lines") as caught:
        msgspec.structs.replace(CUSTOMER, address="Prinsengracht 263")
    assert caught.value.field == "customer.address"
    with pytest.raises(InvoiceError) as caught:
        DirectDebit(mandate_reference="M-1", debtor_iban="XX00")
    assert caught.value.field == "payment.debtor_iban"


def test_direct_debit_is_for_euro_invoices_only() -> None:
    tariff = load_tariff(
        {
            "name": "GBP flat",
            "currency": "GBP",
            "timezone": "Europe/London",
            "versions": [
                {"valid_from": "2026-01-01", "energy": {"type": "flat", "price_per_kwh": "0.25"}}
            ],
        }
    )
    draft = price_period(tariff, APRIL, MAY, [])
    with pytest.raises(InvoiceError, match="EUR only") as caught:
        make_invoice(draft)
    assert caught.value.field == "payment"
    reference = creditor_reference("INV-2026-000123")
    assert make_invoice(draft, payment=BankTransfer(reference=reference)).currency == "GBP"


def test_creditor_references_follow_iso_11649() -> None:
    # The example of ISO 11649: RF18 5390 0754 7034.
    assert creditor_reference("539007547034") == "RF18539007547034"
    assert BankTransfer(reference="rf18 5390 0754 7034").reference == "RF18539007547034"
    reference = creditor_reference("INV-2026-000123")
    assert reference.startswith("RF") and reference.endswith("INV2026000123")
    assert BankTransfer(reference=reference).reference == reference
    with pytest.raises(InvoiceError, match="check digits") as caught:
        BankTransfer(reference="RF19539007547034")
    assert caught.value.field == "payment.reference"
    with pytest.raises(InvoiceError, match="creditor_reference"):
        BankTransfer(reference="+++090/9337/55493+++")
    with pytest.raises(InvoiceError, match="1 to 21"):
        creditor_reference("A" * 22)


def test_a_draft_whose_figures_do_not_add_up_is_refused() -> None:
    draft = april_draft()
    with pytest.raises(InvoiceError, match=r"add up to 54\.14 EUR") as caught:
        make_invoice(dataclasses.replace(draft, total=eur("54.15")))
    assert caught.value.field == "draft.total"


# --- credit notes and corrections --------------------------------------------------------


def test_a_credit_note_negates_every_line_tax_and_total() -> None:
    invoice = make_invoice()
    credit = credit_note(
        invoice, number="CN-2026-000007", issue_date=date(2026, 5, 10), note="Move-out date"
    )
    assert credit.kind is InvoiceKind.CREDIT_NOTE and credit.is_credit_note
    assert (credit.corrects, credit.due_date, credit.note) == (
        "INV-2026-000123",
        date(2026, 5, 10),
        "Move-out date",
    )
    for old, new in zip(invoice.draft.lines, credit.draft.lines, strict=True):
        assert new.quantity == -old.quantity
        assert new.amount == -old.amount
        assert (new.description, new.unit_price, new.tax_rate) == (
            old.description,
            old.unit_price,
            old.tax_rate,
        )
        # Each line still checks by hand: amount = quantity * unit price, rounded.
        assert new.amount == Money(new.quantity * new.unit_price, "EUR").rounded()
    assert [(t.base, t.amount) for t in credit.draft.taxes] == [(eur("-44.74"), eur("-9.40"))]
    assert (credit.draft.subtotal, credit.draft.tax, credit.total) == (
        eur("-44.74"),
        eur("-9.40"),
        eur("-54.14"),
    )
    assert (credit.draft.import_kwh, credit.draft.estimated_kwh) == (D(-130), D(-10))
    # The reads behind it and the parties are the invoice's.
    assert (credit.meters, credit.customer, credit.payment) == (
        invoice.meters,
        invoice.customer,
        invoice.payment,
    )
    assert invoice.total + credit.total == eur("0")
    with pytest.raises(InvoiceError, match="itself a credit note"):
        credit_note(credit, number="CN-2026-000008", issue_date=date(2026, 5, 11))
    with pytest.raises(InvoiceError, match="before invoice") as caught:
        credit_note(invoice, number="CN-2026-000008", issue_date=date(2026, 5, 1))
    assert caught.value.field == "issue_date"


def test_a_zero_line_stays_zero_on_the_credit_note() -> None:
    flat = load_tariff(
        {
            "name": "flat",
            "currency": "EUR",
            "timezone": "Europe/Amsterdam",
            "versions": [
                {"valid_from": "2026-01-01", "energy": {"type": "flat", "price_per_kwh": "0.25"}}
            ],
        }
    )
    invoice = make_invoice(price_period(flat, APRIL, MAY, []))
    credit = credit_note(invoice, number="CN-1", issue_date=date(2026, 5, 4))
    line = credit.draft.lines[0]
    assert (str(line.quantity), str(line.amount.amount), str(credit.total.amount)) == (
        "0",
        "0.00",
        "0.00",
    )


def test_a_correction_is_a_credit_note_and_a_new_invoice() -> None:
    # The meter reported 9 and 10 April after all: 5 and 3 kWh, so 1-10 April is 48 kWh.
    # Part 1 block 2 becomes 48 - 33.333 = 14.667 kWh * 0.30 = 4.4001 -> 4.40 (was 5.00):
    # subtotal 44.14, VAT 9.2694 -> 9.27, total 53.41; the customer gets back 54.14 - 53.41.
    old = make_invoice(april_draft())
    actual = april_draft(estimated=False, tenth_day_kwh="3")
    read = RegisterRead(read_on=MAY, value=D("12473.678"))
    credit, new = correct_invoice(
        old,
        actual,
        credit_number="CN-2026-000007",
        new_number="INV-2026-000200",
        issue_date=date(2026, 5, 20),
        due_date=date(2026, 6, 3),
        meters=[msgspec.structs.replace(METER, last=read)],
        note="Estimated reads of 9 and 10 April replaced by actual reads.",
    )
    assert (credit.kind, credit.corrects, credit.total) == (
        InvoiceKind.CREDIT_NOTE,
        "INV-2026-000123",
        eur("-54.14"),
    )
    assert (new.kind, new.corrects, new.number, new.total) == (
        InvoiceKind.INVOICE,
        "INV-2026-000123",
        "INV-2026-000200",
        eur("53.41"),
    )
    assert new.draft.lines[2].amount == eur("4.40")
    assert new.meters[0].advance == D(128) == new.draft.import_kwh
    assert credit.total + new.total == eur("-0.73")
    assert new.note == credit.note
    with pytest.raises(InvoiceError, match="keeps the currency") as caught:
        correct_invoice(
            old,
            dataclasses.replace(actual, currency="GBP"),
            credit_number="CN-2",
            new_number="INV-3",
            issue_date=date(2026, 5, 20),
            due_date=date(2026, 6, 3),
        )
    assert caught.value.field == "draft.currency"
    with pytest.raises(InvoiceError, match="also the credit note's number"):
        correct_invoice(
            old,
            actual,
            credit_number="CN-2",
            new_number="CN-2",
            issue_date=date(2026, 5, 20),
            due_date=date(2026, 6, 3),
        )


# --- JSON ------------------------------------------------------------------------------


def test_json_round_trip_keeps_every_amount_exact() -> None:
    invoice = make_invoice()
    data = render_invoice_json(invoice)
    assert parse_invoice_json(data) == invoice
    assert parse_invoice_json(data.decode()) == invoice
    document = json.loads(data)
    assert document["schema"] == SCHEMA == "m2mhub.invoice/1"
    # Amounts are decimal strings, dates ISO, end dates exclusive.
    assert [line["amount"] for line in document["lines"]] == [
        "4.00", "6.67", "5.00", "10.00", "14.67", "4.40",
    ]  # fmt: skip
    assert (document["subtotal"], document["tax"], document["total"]) == ("44.74", "9.40", "54.14")
    assert sum(D(line["amount"]) for line in document["lines"]) == D(document["subtotal"])
    assert document["taxes"] == [{"name": "VAT", "rate": "0.21", "base": "44.74", "amount": "9.40"}]
    assert document["lines"][1]["quantity"] == "33.333"
    assert document["lines"][1]["unit_price"] == "0.20"
    assert document["period"] == {
        "start": "2026-04-01",
        "end": "2026-05-01",
        "days": 30,
        "timezone": "Europe/Amsterdam",
        "tariff": "Tiered home",
    }
    assert document["meters"][0]["last"] == {
        "read_on": "2026-05-01",
        "value": "12475.678",
        "is_estimated": True,
    }
    assert document["consumption"]["estimated_kwh"] == "10"
    assert document["consumption"]["estimated_reads"] == 2
    assert document["payment"] == {
        "method": "sepa_direct_debit",
        "mandate_reference": "MNDT-100234567",
        "debtor_iban": "NL20INGB0001234567",
    }
    assert list(document)[:4] == ["schema", "number", "kind", "corrects"]


def test_json_is_stable_and_credit_notes_round_trip() -> None:
    invoice = make_invoice(payment=BankTransfer(reference=creditor_reference("INV-2026-000123")))
    assert render_invoice_json(invoice) == render_invoice_json(
        make_invoice(payment=invoice.payment)
    )
    credit = credit_note(invoice, number="CN-2026-000007", issue_date=date(2026, 5, 10))
    document = json.loads(render_invoice_json(credit))
    assert (document["kind"], document["corrects"], document["total"]) == (
        "credit_note",
        "INV-2026-000123",
        "-54.14",
    )
    assert document["payment"]["method"] == "bank_transfer"
    assert parse_invoice_json(render_invoice_json(credit)) == credit


def test_json_schema_describes_the_document() -> None:
    schema = invoice_json_schema()
    document = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(document["required"]) >= {"schema", "number", "lines", "taxes", "total", "payment"}
    assert "decimal string" in json.dumps(schema)


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda d: d["lines"][0].update(amount="four"), "lines[0].amount", "decimal"),
        (lambda d: d.update(total="54.15"), "draft.total", r"add up to 54\.14"),
        (lambda d: d["seller"].update(iban="NL91ABNA0417164301"), "seller.iban", "check digits"),
        (lambda d: d["payment"].pop("method"), "payment", "method"),
        (lambda d: d.update(schema="m2mhub.invoice/2"), "schema", "Invalid enum value"),
    ],
)
def test_a_bad_document_names_the_field(edit: Any, field: str, words: str) -> None:
    document = json.loads(render_invoice_json(make_invoice()))
    edit(document)
    with pytest.raises(InvoiceError, match=words) as caught:
        parse_invoice_json(json.dumps(document))
    assert caught.value.field == field


def test_json_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvoiceError, match="not valid JSON"):
        parse_invoice_json(b'{"schema": ')


# --- CSV -------------------------------------------------------------------------------


def test_csv_has_one_row_per_line_of_each_invoice() -> None:
    invoice = make_invoice()
    credit = credit_note(invoice, number="CN-2026-000007", issue_date=date(2026, 5, 10))
    text = render_lines_csv([invoice, credit])
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 12
    assert rows[1] == {
        "invoice_number": "INV-2026-000123",
        "kind": "invoice",
        "line": "2",
        "description": "Energy block 1 (up to 100 kWh/month x 10/30 month = 33.333 kWh)",
        "start": "2026-04-01",
        "end": "2026-04-11",
        "quantity": "33.333",
        "unit": "kWh",
        "unit_price": "0.20",
        "amount": "6.67",
        "currency": "EUR",
        "tax_rate": "0.21",
    }
    assert [r["amount"] for r in rows if r["invoice_number"] == "CN-2026-000007"] == [
        "-4.00", "-6.67", "-5.00", "-10.00", "-14.67", "-4.40",
    ]  # fmt: skip
    assert sum(D(r["amount"]) for r in rows) == 0


def test_csv_text_never_runs_as_a_spreadsheet_formula() -> None:
    draft = april_draft()
    line = dataclasses.replace(draft.lines[0], description='=HYPERLINK("http://x","y")')
    invoice = make_invoice(dataclasses.replace(draft, lines=(line, *draft.lines[1:])))
    row = next(csv.DictReader(io.StringIO(render_lines_csv([invoice]))))
    assert row["description"] == '\'=HYPERLINK("http://x","y")'
    assert row["amount"] == "4.00"


# --- PDF -------------------------------------------------------------------------------


def test_pdf_shows_the_number_total_and_estimated_reads() -> None:
    pdf = render_invoice_pdf(make_invoice(), compress=False)
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "INV-2026-000123" in text
    assert "\u20ac 54.14" in text  # the euro sign, byte 0x80 of WinAnsiEncoding
    assert "12,475.678 E" in text
    assert "E = estimated read: the meter was not read on that date." in text
    assert "10 kWh from 2 estimated reads" in text
    assert "Energy block 2 (above 66.667 kWh)" in text
    assert "11 Apr - 30 Apr 2026" in text
    assert "Mandate reference\nMNDT-100234567" in text
    assert "Your account\nNL20 **** **** **45 67" in text  # the debtor's IBAN, masked
    assert re.search(r"Page 1 of\s*1", text)
    assert page_count(pdf) == 1


def test_pdf_is_byte_identical_for_the_same_invoice() -> None:
    invoice = make_invoice()
    first = render_invoice_pdf(invoice)
    assert first.startswith(b"%PDF-")
    assert render_invoice_pdf(make_invoice()) == first
    # The issue date is the creation date, so a reissue on another day differs.
    other_day = render_invoice_pdf(make_invoice(issue_date=date(2026, 5, 5)))
    assert other_day != first
    assert b"/CreationDate (D:20260504000000Z" in render_invoice_pdf(invoice, compress=False)


def test_pdf_of_a_credit_note_and_of_a_bank_transfer() -> None:
    invoice = make_invoice(payment=BankTransfer(reference=creditor_reference("INV-2026-000123")))
    paid_by_transfer = pdf_text(render_invoice_pdf(invoice, compress=False))
    assert "Please transfer \u20ac 54.14 by 18 May 2026 to:" in paid_by_transfer
    assert "Account holder\nStroomkracht B.V.\nIBAN\nNL91 ABNA 0417 1643 00" in paid_by_transfer
    reference = " ".join(re.findall(".{1,4}", creditor_reference("INV-2026-000123")))
    assert f"Payment reference\n{reference}" in paid_by_transfer
    credit = credit_note(invoice, number="CN-2026-000007", issue_date=date(2026, 5, 10))
    text = pdf_text(render_invoice_pdf(credit, compress=False))
    assert "Credit note" in text
    assert "CN-2026-000007" in text
    assert "This credit note reverses invoice INV-2026-000123 in full" in text
    assert "\u20ac -54.14" in text
    assert "-14.67" in text
    assert "We will refund \u20ac 54.14 by bank transfer by 10 May 2026" in text


def test_text_outside_the_core_font_is_transliterated() -> None:
    assert to_pdf_text("Łódź, Ștefan cel Mare 5\u20137 € ½") == "Lódz, Stefan cel Mare 5\u20137 € ½"
    assert to_pdf_text("Ж 3 kW ≥ 2\tkW") == "? 3 kW >= 2 kW"
    customer = msgspec.structs.replace(
        CUSTOMER, name="Zoë Wróblewska-Łukasz", address=("Grüner Weg 1", "50667 Köln")
    )
    text = pdf_text(render_invoice_pdf(make_invoice(customer=customer), compress=False))
    assert "Zoë Wróblewska-Lukasz" in text
    assert "50667 Köln" in text


def daily_price_tariff() -> Tariff:
    """A day-ahead style tariff: a new price every day of March, so every day is a part."""
    versions = [
        {
            "valid_from": f"2026-03-{day:02d}",
            "tax": {"name": "VAT", "rate": "0.21"},
            "standing_charge": {"per_day": "0.40"},
            "energy": {"type": "flat", "price_per_kwh": f"0.{200 + day}"},
        }
        for day in range(1, 32)
    ]
    return load_tariff(
        {"name": "Daily", "currency": "EUR", "timezone": "Europe/Amsterdam", "versions": versions}
    )


def test_a_many_line_invoice_runs_onto_a_second_page() -> None:
    # 31 days * (standing charge + energy) = 62 lines.
    draft = price_period(
        daily_price_tariff(),
        date(2026, 3, 1),
        date(2026, 4, 1),
        local_days(date(2026, 3, 1), ["10"] * 31),
    )
    assert len(draft.lines) == 62
    invoice = make_invoice(
        draft, meters=(), issue_date=date(2026, 4, 2), due_date=date(2026, 4, 16)
    )
    pdf = render_invoice_pdf(invoice, compress=False)
    assert page_count(pdf) == 2
    text = pdf_text(pdf)
    assert re.search(r"Page 1 of\s*2", text) and re.search(r"Page 2 of\s*2", text)
    assert text.count("Description") == 2  # the headings are repeated on the second page
    assert f"\u20ac {draft.total.amount:,}" in text
    assert render_invoice_pdf(invoice) == render_invoice_pdf(invoice)


def test_pdf_lists_consumption_per_time_of_use_period() -> None:
    # Worked example 2 of test_pricing: 25-28 April 2026, 1 kWh every hour; King's Day
    # (Monday 27 April) is priced as the weekend. peak 16 kWh * 0.30 = 4.80, weekend
    # 72 kWh * 0.18 = 12.96, night 8 kWh * 0.22 = 1.76, standing 4 * 0.45 = 1.80, energy tax
    # 96 * 0.10 = 9.60; subtotal 30.92, VAT 6.4932 -> 6.49, total 37.41.
    tariff = parse_tariff_yaml(
        """
        name: Home time-of-use
        currency: EUR
        timezone: Europe/Amsterdam
        holidays: {country: NL}
        versions:
          - valid_from: 2026-01-01
            tax: {rate: 0.21}
            standing_charge: {per_day: 0.45}
            energy_tax: {per_kwh: 0.10}
            energy:
              type: time_of_use
              periods:
                - {name: peak, price_per_kwh: 0.30, days: [weekday],
                   hours: [{from: "07:00", to: "23:00"}]}
                - {name: weekend, price_per_kwh: 0.18, days: [weekend, holiday]}
                - {name: night, price_per_kwh: 0.22, days: [weekday],
                   hours: [{from: "23:00", to: "07:00"}]}
        """
    )
    start = datetime(2026, 4, 25, tzinfo=AMS).astimezone(UTC)
    hours = [Interval(start + timedelta(hours=h), 60, D(1)) for h in range(96)]
    draft = price_period(tariff, date(2026, 4, 25), date(2026, 4, 29), hours)
    assert draft.total == eur("37.41")
    meter = MeterReads(
        meter="E0031400000123456",
        register="1.8.0",
        first=RegisterRead(read_on=date(2026, 4, 25), value=D("5000.000")),
        last=RegisterRead(read_on=date(2026, 4, 29), value=D("5096.000")),
    )
    invoice = make_invoice(draft, meters=(meter,))
    text = pdf_text(render_invoice_pdf(invoice, compress=False))
    assert "peak\n16\nweekend\n72\nnight\n8\nTotal imported\n96" in text
    assert "96 kWh from 96 actual reads, 0 kWh from 0 estimated reads" in text
    assert "E = estimated read" not in text  # both register reads are actual
    assert "Energy tax" in text and "\u20ac 37.41" in text


# --- units and estimated days ------------------------------------------------------------

RUNTIME_TARIFF = """
name: Excavator rent
currency: EUR
timezone: Europe/Amsterdam
versions:
  - valid_from: 2026-01-01
    tax: {rate: 0.21}
    standing_charge: {per_day: 35}
    energy: {type: flat, price_per_kwh: 12.5}
"""


def runtime_invoice() -> Invoice:
    # A rented excavator billed by runtime hours, 2-4 June 2026: 2.5 h, 0.25 h (estimated),
    # 8 h. Rent 3 * 35 = 105.00, hours 10.75 * 12.50 = 134.375 -> 134.38; subtotal 239.38,
    # VAT 50.2698 -> 50.27, total 289.65. The service relabels the pricing core's kWh to
    # the register's unit, as here.
    intervals = local_days(date(2026, 6, 2), ["2.5", "0.25", "8"], estimated=frozenset({1}))
    draft = price_period(
        parse_tariff_yaml(RUNTIME_TARIFF), date(2026, 6, 2), date(2026, 6, 5), intervals
    )
    lines = tuple(
        dataclasses.replace(line, unit="h" if line.unit == "kWh" else line.unit)
        for line in draft.lines
    )
    draft = dataclasses.replace(draft, lines=lines, unit="h")
    meter = MeterReads(
        meter="excavator-7",
        register="runtime_h",
        unit="h",
        first=RegisterRead(read_on=date(2026, 6, 2), value=D("1200.5")),
        last=RegisterRead(read_on=date(2026, 6, 5), value=D("1211.25")),
    )
    return make_invoice(draft, meters=(meter,))


def test_a_usage_invoice_never_says_kwh() -> None:
    invoice = runtime_invoice()
    assert invoice.draft.total == eur("289.65")
    text = pdf_text(render_invoice_pdf(invoice, compress=False))
    assert "kWh" not in text
    assert "Tariff period\nh\nTotal imported\n10.75" in text
    assert "10.5 h from 2 actual reads, 0.25 h from 1 estimated reads" in text
    rows = list(csv.DictReader(io.StringIO(render_lines_csv([invoice]))))
    assert [(r["description"], r["quantity"], r["unit"]) for r in rows] == [
        ("Standing charge", "3", "day"),
        ("Energy", "10.75", "h"),
    ]
    again = parse_invoice_json(render_invoice_json(invoice))
    assert again == invoice and again.draft.unit == "h"


def test_csv_prints_energy_to_the_watt_hour_and_other_units_as_needed() -> None:
    draft = april_draft()
    lines = (
        dataclasses.replace(draft.lines[0], quantity=D("10.000")),  # days
        dataclasses.replace(draft.lines[1], quantity=D("33.3330")),
        dataclasses.replace(draft.lines[2], quantity=D("16.7")),
    )
    invoice = make_invoice(dataclasses.replace(draft, lines=(*lines, *draft.lines[3:])))
    rows = list(csv.DictReader(io.StringIO(render_lines_csv([invoice]))))
    assert [(r["quantity"], r["unit"]) for r in rows[:3]] == [
        ("10", "day"),
        ("33.333", "kWh"),
        ("16.700", "kWh"),
    ]


def test_the_pdf_names_the_days_with_estimated_intervals() -> None:
    draft = april_draft()  # 9 and 10 April estimated
    assert draft.estimated_dates == (date(2026, 4, 9), date(2026, 4, 10))
    text = pdf_text(render_invoice_pdf(make_invoice(draft), compress=False))
    assert "Estimated on: 9 Apr - 10 Apr 2026." in text.replace("\n", " ")
    document = json.loads(render_invoice_json(make_invoice(draft)))
    assert document["consumption"]["estimated_dates"] == ["2026-04-09", "2026-04-10"]
    assert document["consumption"]["unit"] == "kWh"
    # A document archived before these keys existed reads as kWh without dates.
    del document["consumption"]["estimated_dates"], document["consumption"]["unit"]
    old = parse_invoice_json(json.dumps(document))
    assert (old.draft.unit, old.draft.estimated_dates) == ("kWh", ())
    assert "Estimated on" not in pdf_text(render_invoice_pdf(old, compress=False))
