"""Reading bank answers: pain.002 status reports and camt.054 notifications."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from m2mhub.apps.metering.payments import (
    PaymentOutcome,
    StatusReportError,
    read_payment_status,
)
from tests.apps.metering.payment_samples import FIXTURES

PAIN002_NS = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"


def _pain002(body: str, group_status: str = "RJCT") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{PAIN002_NS}">
  <CstmrPmtStsRpt>
    <GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2024-06-04T08:15:27</CreDtTm></GrpHdr>
    <OrgnlGrpInfAndSts>
      <OrgnlMsgId>M2M-2024-05-31-001</OrgnlMsgId>
      <OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>
      <GrpSts>{group_status}</GrpSts>
      <StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf>
    </OrgnlGrpInfAndSts>
    {body}
  </CstmrPmtStsRpt>
</Document>"""


def test_pain002_with_one_accepted_and_one_rejected_transaction() -> None:
    report = read_payment_status((FIXTURES / "pain.002.001.03_partial_reject.xml").read_bytes())
    assert report.kind == "pain.002"
    assert report.message_id == "STRP240604081527000001"
    assert report.created_at == datetime(2024, 6, 4, 8, 15, 27)
    assert report.original_message_id == "M2M-2024-05-31-001"
    assert report.group_status == "PART"
    assert report.rejected_batches == ()
    results = report.by_end_to_end_id()
    assert set(results) == {"INV-2024-0001", "INV-2024-0002"}

    accepted = results["INV-2024-0001"]
    assert accepted.outcome is PaymentOutcome.PENDING  # accepted, money not yet settled
    assert accepted.status == "ACCP"
    assert accepted.reason_code is None
    assert accepted.amount == Decimal("48.20")
    assert accepted.payment_information_id == "M2M-2024-05-31-001-1"

    rejected = results["INV-2024-0002"]
    assert rejected.outcome is PaymentOutcome.REJECTED
    assert rejected.status == "RJCT"
    assert rejected.reason_code == "AM04"
    assert rejected.reason == "insufficient funds"
    assert rejected.amount == Decimal("24.45")


def test_whole_file_rejected_without_transaction_details() -> None:
    report = read_payment_status(_pain002(""))
    assert report.results == ()
    [batch] = report.rejected_batches
    assert batch.original_message_id == "M2M-2024-05-31-001"
    assert batch.payment_information_id is None
    assert (batch.reason_code, batch.reason) == ("FF01", "invalid file format")


def test_block_status_is_inherited_and_a_rejected_block_is_reported() -> None:
    body = """
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>M2M-2024-05-31-001-1</OrgnlPmtInfId>
      <PmtInfSts>RJCT</PmtInfSts>
      <StsRsnInf><Rsn><Cd>MD01</Cd></Rsn></StsRsnInf>
    </OrgnlPmtInfAndSts>
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>M2M-2024-05-31-001-2</OrgnlPmtInfId>
      <PmtInfSts>ACSC</PmtInfSts>
      <TxInfAndSts><OrgnlEndToEndId>INV-7</OrgnlEndToEndId></TxInfAndSts>
      <TxInfAndSts>
        <OrgnlEndToEndId>INV-8</OrgnlEndToEndId>
        <TxSts>RJCT</TxSts>
        <StsRsnInf><Rsn><Prtry>X123</Prtry></Rsn><AddtlInf>Konto gesperrt</AddtlInf></StsRsnInf>
      </TxInfAndSts>
      <TxInfAndSts>
        <OrgnlEndToEndId>INV-9</OrgnlEndToEndId>
        <TxSts>RJCT</TxSts>
        <StsRsnInf><Rsn><Cd>ZZ99</Cd></Rsn></StsRsnInf>
      </TxInfAndSts>
    </OrgnlPmtInfAndSts>"""
    report = read_payment_status(_pain002(body, group_status="PART"))
    [batch] = report.rejected_batches
    assert batch.payment_information_id == "M2M-2024-05-31-001-1"
    assert (batch.reason_code, batch.reason) == ("MD01", "no mandate")
    results = report.by_end_to_end_id()
    assert results["INV-7"].outcome is PaymentOutcome.PAID
    assert results["INV-7"].status == "ACSC"
    assert (results["INV-8"].reason_code, results["INV-8"].reason) == ("X123", "Konto gesperrt")
    assert results["INV-9"].reason == "reason code ZZ99 (see the ISO 20022 external code list)"


def test_camt054_bookings_and_returns() -> None:
    data = (FIXTURES / "camt.054.001.02_collections_and_return.xml").read_bytes()
    report = read_payment_status(data)
    assert report.kind == "camt.054"
    assert report.message_id == "C54-20240607-175901-0007"
    assert report.created_at.isoformat() == "2024-06-07T17:59:01+02:00"
    assert [(r.end_to_end_id, r.outcome.value) for r in report.results] == [
        ("INV-2024-0001", "paid"),
        ("INV-2024-0002", "paid"),
        ("INV-2024-0003", "paid"),
        ("INV-2024-0003", "rejected"),
    ]  # the INFO entry for INV-2024-0009 moves no money and is left out
    latest = report.by_end_to_end_id()
    assert latest["INV-2024-0001"].amount == Decimal("48.20")
    assert latest["INV-2024-0001"].booked_on == date(2024, 6, 5)
    assert latest["INV-2024-0001"].reason is None
    returned = latest["INV-2024-0003"]
    assert returned.outcome is PaymentOutcome.REJECTED
    assert (returned.reason_code, returned.reason) == ("AC04", "account closed")
    assert returned.booked_on == date(2024, 6, 7)
    assert returned.amount == Decimal("36.70")


def test_camt054_of_later_versions_with_coded_entry_status() -> None:
    document = """<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
      <BkToCstmrDbtCdtNtfctn>
        <GrpHdr><MsgId>N-1</MsgId><CreDtTm>2024-06-05T20:00:00Z</CreDtTm></GrpHdr>
        <Ntfctn><Id>N-1-1</Id>
          <Ntry>
            <Amt Ccy="EUR">9.99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts>
            <NtryDtls><TxDtls><Refs><EndToEndId>INV-5</EndToEndId></Refs></TxDtls></NtryDtls>
          </Ntry>
        </Ntfctn>
      </BkToCstmrDbtCdtNtfctn>
    </Document>"""
    [result] = read_payment_status(document).results
    assert (result.end_to_end_id, result.outcome, result.status) == (
        "INV-5",
        PaymentOutcome.PENDING,
        "PDNG",
    )
    assert result.amount == Decimal("9.99")  # the entry amount of a single transaction


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"<Document><CstmrPmtStsRpt>",
        b"not xml at all",
        "<?xml version='1.0' encoding='UTF-8'?><Document>\udcff</Document>".encode(
            "utf-8", "surrogatepass"
        ),
    ],
)
def test_malformed_xml_is_rejected(document: bytes) -> None:
    with pytest.raises(StatusReportError) as caught:
        read_payment_status(document)
    assert caught.value.field == "document"
    assert "not well-formed XML" in caught.value.message


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">
  <CstmrPmtStsRpt><GrpHdr><MsgId>&lol9;</MsgId></GrpHdr></CstmrPmtStsRpt>
</Document>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">
  <CstmrPmtStsRpt><GrpHdr><MsgId>&secret;</MsgId></GrpHdr></CstmrPmtStsRpt>
</Document>"""

BARE_DOCTYPE = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/pain.002.dtd">
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY, BARE_DOCTYPE])
def test_entity_expansion_and_external_references_are_refused(document: bytes) -> None:
    with pytest.raises(StatusReportError) as caught:
        read_payment_status(document)
    assert caught.value.field == "document"
    assert "refused for safety" in caught.value.message


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("<Document><CstmrPmtStsRpt/></Document>", "not an ISO 20022 message"),
        (
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"/>',
            "pain.008.001.02 is not a payment status message",
        ),
        ('<Report xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>', "not an ISO"),
    ],
)
def test_other_messages_are_rejected(document: str, says: str) -> None:
    with pytest.raises(StatusReportError, match=says):
        read_payment_status(document)


def test_missing_required_element_names_its_path() -> None:
    body = """<OrgnlPmtInfAndSts><OrgnlPmtInfId>P-1</OrgnlPmtInfId>
      <TxInfAndSts><TxSts>RJCT</TxSts></TxInfAndSts></OrgnlPmtInfAndSts>"""
    with pytest.raises(StatusReportError) as caught:
        read_payment_status(_pain002(body, group_status="PART"))
    assert caught.value.field == (
        "CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]/OrgnlEndToEndId"
    )
    bad_amount = """<OrgnlPmtInfAndSts><OrgnlPmtInfId>P-1</OrgnlPmtInfId>
      <TxInfAndSts><OrgnlEndToEndId>I-1</OrgnlEndToEndId><TxSts>ACCP</TxSts>
      <OrgnlTxRef><Amt><InstdAmt Ccy="EUR">ten</InstdAmt></Amt></OrgnlTxRef>
      </TxInfAndSts></OrgnlPmtInfAndSts>"""
    with pytest.raises(StatusReportError, match="'ten' is not an amount"):
        read_payment_status(_pain002(bad_amount, group_status="PART"))
