"""pain.008 export: schema-valid files, counts and sums, grouping, rejected input."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
import xmlschema

from m2mhub.apps.metering.payments import (
    Collection,
    Creditor,
    PaymentDataError,
    SchemaViolationError,
    SequenceType,
    export_direct_debit,
    validate_direct_debit,
)
from tests.apps.metering.payment_samples import CREATED_AT, CREDITOR, collection

SCHEMAS = ("pain.008.001.02", "pain.008.001.08")


def _xsd(schema: str) -> xmlschema.XMLSchema:
    path = resources.files("sepaxml").joinpath("schemas", f"{schema}.xsd")
    with resources.as_file(path) as file:
        return xmlschema.XMLSchema(str(file))


def _export(collections: list[Collection], **options: Any) -> Any:
    options.setdefault("message_id", "M2M-2024-05-31-001")
    options.setdefault("created_at", CREATED_AT)
    return export_direct_debit(CREDITOR, collections, **options)


def _ns(schema: str) -> dict[str, str]:
    return {"d": f"urn:iso:std:iso:20022:tech:xsd:{schema}"}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_file_validates_against_the_iso_schema(schema: str) -> None:
    collections = [
        collection(1),
        collection(2, debtor_bic="BYLADEM1001"),
        collection(3, sequence_type=SequenceType.FIRST),
    ]
    result = _export(collections, schema=schema)
    assert _xsd(schema).is_valid(result.xml)
    assert result.xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = ET.fromstring(result.xml)
    assert root.tag == f"{{urn:iso:std:iso:20022:tech:xsd:{schema}}}Document"
    bic_tag = "BIC" if schema == "pain.008.001.02" else "BICFI"
    ns = _ns(schema)
    assert root.findtext(f".//d:DbtrAgt/d:FinInstnId/d:{bic_tag}", namespaces=ns) == "BYLADEM1001"
    assert root.findtext(f".//d:CdtrAgt/d:FinInstnId/d:{bic_tag}", namespaces=ns) == "COBADEFFXXX"
    # A debtor without BIC is written the way EPC asks for it.
    assert root.findtext(".//d:DbtrAgt/d:FinInstnId/d:Othr/d:Id", namespaces=ns) == "NOTPROVIDED"


def test_header_and_block_counts_and_control_sums_match_the_transactions() -> None:
    collections = [collection(1), collection(2), collection(3, amount=Decimal("0.01"))]
    result = _export(collections)
    ns = _ns("pain.008.001.02")
    root = ET.fromstring(result.xml)
    assert root.findtext("*/d:GrpHdr/d:NbOfTxs", namespaces=ns) == "3"
    assert root.findtext("*/d:GrpHdr/d:CtrlSum", namespaces=ns) == "36.91"
    assert root.findtext("*/d:GrpHdr/d:MsgId", namespaces=ns) == "M2M-2024-05-31-001"
    assert root.findtext("*/d:GrpHdr/d:CreDtTm", namespaces=ns) == "2024-05-31T09:30:00+00:00"
    for block in root.findall("*/d:PmtInf", ns):
        amounts = [Decimal(a.text or "") for a in block.findall("d:DrctDbtTxInf/d:InstdAmt", ns)]
        assert block.findtext("d:NbOfTxs", namespaces=ns) == str(len(amounts))
        assert Decimal(block.findtext("d:CtrlSum", namespaces=ns) or "") == sum(amounts)
    written = root.findall(".//d:InstdAmt", ns)
    assert [a.text for a in written] == ["12.30", "24.60", "0.01"]
    assert {a.get("Ccy") for a in written} == {"EUR"}
    assert result.number_of_transactions == 3
    assert result.control_sum == Decimal("36.91")


def test_collections_are_grouped_by_sequence_type_and_due_date() -> None:
    later = date(2024, 6, 12)
    collections = [
        collection(1),
        collection(2, sequence_type=SequenceType.FIRST),
        collection(3, due_date=later),
        collection(4),
        collection(5, sequence_type=SequenceType.FIRST, due_date=later),
        collection(6, sequence_type=SequenceType.FINAL),
    ]
    result = _export(collections)
    summary = [
        (b.payment_information_id, b.sequence_type.value, b.due_date, b.end_to_end_ids)
        for b in result.batches
    ]
    assert summary == [
        ("M2M-2024-05-31-001-1", "FRST", date(2024, 6, 5), ("INV-2024-0002",)),
        ("M2M-2024-05-31-001-2", "RCUR", date(2024, 6, 5), ("INV-2024-0001", "INV-2024-0004")),
        ("M2M-2024-05-31-001-3", "FNAL", date(2024, 6, 5), ("INV-2024-0006",)),
        ("M2M-2024-05-31-001-4", "FRST", later, ("INV-2024-0005",)),
        ("M2M-2024-05-31-001-5", "RCUR", later, ("INV-2024-0003",)),
    ]
    ns = _ns("pain.008.001.02")
    blocks = ET.fromstring(result.xml).findall("*/d:PmtInf", ns)
    written = [
        (
            block.findtext("d:PmtInfId", namespaces=ns),
            block.findtext("d:PmtTpInf/d:SeqTp", namespaces=ns),
            block.findtext("d:ReqdColltnDt", namespaces=ns),
            tuple(e.text for e in block.findall("d:DrctDbtTxInf/d:PmtId/d:EndToEndId", ns)),
        )
        for block in blocks
    ]
    assert written == [(i, s, d.isoformat(), e) for i, s, d, e in summary]
    assert [b.control_sum for b in result.batches] == [
        Decimal("24.60"),
        Decimal("61.50"),
        Decimal("73.80"),
        Decimal("61.50"),
        Decimal("36.90"),
    ]


def test_the_same_input_gives_the_same_bytes() -> None:
    first = _export([collection(1), collection(2)]).xml
    assert first == _export([collection(1), collection(2)]).xml


def test_names_and_remittance_are_transliterated_identifiers_kept() -> None:
    result = _export([collection(1, remittance="Abschlag Straße 5 \u2013 Mai")])
    ns = _ns("pain.008.001.02")
    root = ET.fromstring(result.xml)
    assert root.findtext(".//d:Dbtr/d:Nm", namespaces=ns) == "Jurgen Mussig"
    assert root.findtext(".//d:Cdtr/d:Nm", namespaces=ns) == "Stadtwerke Muhlheim GmbH"
    assert root.findtext(".//d:Ustrd", namespaces=ns) == "Abschlag Strasse 5 - Mai"
    assert root.findtext(".//d:MndtId", namespaces=ns) == "MAND-0001"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"debtor_iban": "DE02120300000000202052"}, "collections[1].debtor_iban", "check digits"),
        ({"amount": Decimal("0")}, "collections[1].amount", "more than zero"),
        ({"amount": Decimal("-5.00")}, "collections[1].amount", "more than zero"),
        ({"amount": Decimal("10.005")}, "collections[1].amount", "two decimals"),
        ({"amount": Decimal("NaN")}, "collections[1].amount", "not an amount"),
        ({"amount": 10.5}, "collections[1].amount", "decimal.Decimal"),
        ({"amount": Decimal("1000000000.00")}, "collections[1].amount", "more than a SEPA"),
        ({"debtor_bic": "BYLA"}, "collections[1].debtor_bic", "8 or 11"),
        ({"mandate_id": "M//1"}, "collections[1].mandate_id", "'//'"),
        ({"end_to_end_id": "INV 2024/ä"}, "collections[1].end_to_end_id", "SEPA Latin"),
        ({"debtor_name": "Δημήτρης"}, "collections[1].debtor_name", "SEPA Latin"),
        ({"remittance": "r" * 141}, "collections[1].remittance", "allows 140"),
        ({"sequence_type": "RECUR"}, "collections[1].sequence_type", "FRST, RCUR, OOFF or FNAL"),
        ({"due_date": date(2024, 5, 30)}, "collections[1].due_date", "before"),
        ({"mandate_signed_on": date(2024, 6, 1)}, "collections[1].mandate_signed_on", "future"),
        ({"end_to_end_id": "INV-2024-0001"}, "collections[1].end_to_end_id", "collections[0]"),
    ],
)
def test_invalid_collections_are_rejected_naming_the_field(
    changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(PaymentDataError) as caught:
        _export([collection(1), collection(2, **changes)])
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("creditor", "field"),
    [
        (Creditor(name="SW", iban="DE89370400440532013000", creditor_id="DE97ZZZ09999999999"),
         "creditor.creditor_id"),
        (Creditor(name="SW", iban="DE89370400440532013001", creditor_id="DE98ZZZ09999999999"),
         "creditor.iban"),
        (Creditor(name="", iban="DE89370400440532013000", creditor_id="DE98ZZZ09999999999"),
         "creditor.name"),
    ],
)  # fmt: skip
def test_invalid_creditor_is_rejected_naming_the_field(creditor: Creditor, field: str) -> None:
    with pytest.raises(PaymentDataError) as caught:
        export_direct_debit(creditor, [collection(1)], message_id="M-1", created_at=CREATED_AT)
    assert caught.value.field == field


def test_file_level_input_is_checked() -> None:
    with pytest.raises(PaymentDataError) as caught:
        _export([])
    assert caught.value.field == "collections"
    with pytest.raises(PaymentDataError) as caught:
        _export([collection(1)], message_id="M" * 36)
    assert caught.value.field == "message_id"
    with pytest.raises(PaymentDataError) as caught:
        _export([collection(1)], created_at=datetime(2024, 5, 31, 9, 30))
    assert caught.value.field == "created_at"
    with pytest.raises(PaymentDataError) as caught:
        _export([collection(1)], schema="pain.008.003.02")
    assert caught.value.field == "schema"


def test_a_file_that_breaks_the_schema_is_an_error_never_a_file() -> None:
    good = _export([collection(1)]).xml
    validate_direct_debit(good)
    broken = good.replace(b"<SeqTp>RCUR</SeqTp>", b"<SeqTp>NEXT</SeqTp>")
    with pytest.raises(SchemaViolationError) as caught:
        validate_direct_debit(broken)
    assert "SeqTp" in (caught.value.field or "")
    assert "must not be sent to the bank" in caught.value.message
    with pytest.raises(SchemaViolationError):
        validate_direct_debit(good, schema="pain.008.001.08")
