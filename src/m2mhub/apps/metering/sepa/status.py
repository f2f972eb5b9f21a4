"""Bank answers to direct debits: pain.002 status reports and camt.054 notifications.

Both are read into one :class:`PaymentStatusReport` whose results are keyed by
the original end-to-end id (the invoice number) and say what the billing
service should do: the invoice is paid, the collection was rejected or
returned (with the reason), or the bank has not given its last word.

- pain.002 (customer payment status report, ISO 20022 pain.002.001.03 and
  later): status per group, payment information block and transaction.
  ``ACSC``/``ACCC`` mean settled, ``RJCT`` rejected, anything else (``ACCP``,
  ``ACTC``, ``ACSP``, ``PDNG``, ``RCVD``) is pending. A transaction without its
  own status inherits its block's, then its group's.
- camt.054 (debit/credit notification, camt.054.001.02 and later): booked
  entries; a credit with an end-to-end id is a collected invoice, a debit or an
  entry with return information is a return (R-transaction) with its reason.

Files are parsed with defusedxml: a document type declaration, entity or
external reference, which bank files never carry, is refused outright.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final, Literal

import defusedxml
import defusedxml.ElementTree as SafeET
import msgspec

from m2mhub.apps.metering.sepa.errors import StatusReportError
from m2mhub.apps.metering.sepa.reasons import describe_reason

_ISO_NS: Final = "urn:iso:std:iso:20022:tech:xsd:"
_SETTLED: Final = frozenset({"ACSC", "ACCC"})
# End-to-end id banks write when the creditor gave none (EPC guidelines).
_NOT_PROVIDED: Final = "NOTPROVIDED"


class PaymentOutcome(StrEnum):
    """What a bank answer means for the invoice behind a collection."""

    PAID = "paid"
    REJECTED = "rejected"
    PENDING = "pending"


class PaymentResult(msgspec.Struct, frozen=True, kw_only=True):
    """The bank's word on one collection, keyed by its original end-to-end id."""

    end_to_end_id: str
    outcome: PaymentOutcome
    status: str
    """The bank's code: pain.002 transaction status (``RJCT``), camt entry status (``BOOK``)."""
    reason_code: str | None = None
    reason: str | None = None
    """Short human text for ``reason_code``."""
    amount: Decimal | None = None
    payment_information_id: str | None = None
    """Original payment information block (pain.002 only)."""
    booked_on: date | None = None
    """Booking date of the entry (camt.054 only)."""


class RejectedBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A whole file or payment information block rejected without per-transaction details.

    Every collection the billing service sent in it is rejected; match them by
    ``original_message_id`` and ``payment_information_id`` (``None`` for the
    whole file) against the ``DirectDebitFile`` kept at export.
    """

    original_message_id: str
    payment_information_id: str | None
    reason_code: str | None
    reason: str | None


class PaymentStatusReport(msgspec.Struct, frozen=True, kw_only=True):
    """A bank status file read into results the billing service can apply."""

    kind: Literal["pain.002", "camt.054"]
    message_id: str
    created_at: datetime
    """When the bank wrote the file, as it wrote it (often local time without a zone)."""
    original_message_id: str | None
    """The pain.008 message the report answers (pain.002 only)."""
    group_status: str | None
    results: tuple[PaymentResult, ...]
    rejected_batches: tuple[RejectedBatch, ...] = ()

    def by_end_to_end_id(self) -> dict[str, PaymentResult]:
        """Results keyed by end-to-end id; a later result for the same id wins (a return
        booked after the collection)."""
        return {result.end_to_end_id: result for result in self.results}


def read_payment_status(document: bytes | str) -> PaymentStatusReport:
    """Read a pain.002 status report or a camt.054 notification.

    Raises :class:`StatusReportError` for malformed XML, an unsafe document
    (DTD, entities, external references), another kind of message, or a
    required element missing; ``field`` is the element path.
    """
    root = _parse(document)
    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", "")
    message = namespace.removeprefix(_ISO_NS)
    if local != "Document" or not namespace.startswith(_ISO_NS):
        raise StatusReportError(
            "document: not an ISO 20022 message; expected a pain.002 or camt.054 Document",
            field="document",
        )
    reader = _Reader(namespace)
    if message.startswith("pain.002."):
        return _read_pain002(reader, reader.child(root, "CstmrPmtStsRpt", "Document"))
    if message.startswith("camt.054."):
        return _read_camt054(reader, reader.child(root, "BkToCstmrDbtCdtNtfctn", "Document"))
    raise StatusReportError(
        f"document: {message} is not a payment status message; expected pain.002 or camt.054",
        field="document",
    )


def _parse(document: bytes | str) -> ET.Element:
    try:
        return SafeET.fromstring(document, forbid_dtd=True)
    except defusedxml.DefusedXmlException:
        raise StatusReportError(
            "document: declares a DTD, entities or external references, which bank files "
            "never do; refused for safety",
            field="document",
        ) from None
    except ET.ParseError as exc:
        raise StatusReportError(
            f"document: not well-formed XML ({exc}); ask the bank for the file again",
            field="document",
        ) from None


class _Reader:
    """Element lookups in one ISO 20022 namespace, with the path named on failure."""

    def __init__(self, namespace: str) -> None:
        self._ns = {"m": namespace}

    def _path(self, path: str) -> str:
        return "/".join(f"m:{step}" for step in path.split("/"))

    def find(self, element: ET.Element, path: str) -> ET.Element | None:
        return element.find(self._path(path), self._ns)

    def findall(self, element: ET.Element, path: str) -> list[ET.Element]:
        return element.findall(self._path(path), self._ns)

    def child(self, element: ET.Element, path: str, where: str) -> ET.Element:
        found = self.find(element, path)
        if found is None:
            raise StatusReportError(f"{where}/{path}: missing", field=f"{where}/{path}")
        return found

    def text(self, element: ET.Element, path: str) -> str | None:
        found = self.find(element, path)
        if found is None or found.text is None or not found.text.strip():
            return None
        return found.text.strip()

    def required(self, element: ET.Element, path: str, where: str) -> str:
        value = self.text(element, path)
        if value is None:
            raise StatusReportError(f"{where}/{path}: missing", field=f"{where}/{path}")
        return value


def _datetime(text: str, where: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise StatusReportError(f"{where}: {text!r} is not a date and time", field=where) from None


def _date(text: str | None, where: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise StatusReportError(f"{where}: {text!r} is not a date", field=where) from None


def _amount(text: str | None, where: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise StatusReportError(f"{where}: {text!r} is not an amount", field=where) from None


def _reason(reader: _Reader, element: ET.Element, path: str) -> tuple[str | None, str | None]:
    """First reason code under ``path`` (``StsRsnInf`` or ``RtrInf``) and its human text."""
    for info in reader.findall(element, path):
        code = reader.text(info, "Rsn/Cd")
        if code is not None:
            return code, describe_reason(code)
        proprietary = reader.text(info, "Rsn/Prtry")
        if proprietary is not None:
            extra = reader.text(info, "AddtlInf")
            return proprietary, extra or f"bank-specific reason {proprietary}"
    return None, None


def _outcome(status: str) -> PaymentOutcome:
    if status == "RJCT":
        return PaymentOutcome.REJECTED
    if status in _SETTLED:
        return PaymentOutcome.PAID
    return PaymentOutcome.PENDING


def _read_pain002(reader: _Reader, report: ET.Element) -> PaymentStatusReport:
    where = "CstmrPmtStsRpt"
    message_id = reader.required(report, "GrpHdr/MsgId", where)
    created_at = _datetime(
        reader.required(report, "GrpHdr/CreDtTm", where), f"{where}/GrpHdr/CreDtTm"
    )
    group = reader.child(report, "OrgnlGrpInfAndSts", where)
    original_message_id = reader.required(group, "OrgnlMsgId", f"{where}/OrgnlGrpInfAndSts")
    group_status = reader.text(group, "GrpSts")
    blocks = reader.findall(report, "OrgnlPmtInfAndSts")

    rejected: list[RejectedBatch] = []
    if group_status == "RJCT" and not blocks:
        code, text = _reason(reader, group, "StsRsnInf")
        rejected.append(
            RejectedBatch(
                original_message_id=original_message_id,
                payment_information_id=None,
                reason_code=code,
                reason=text,
            )
        )

    results: list[PaymentResult] = []
    for block_number, block in enumerate(blocks, start=1):
        block_where = f"{where}/OrgnlPmtInfAndSts[{block_number}]"
        block_id = reader.required(block, "OrgnlPmtInfId", block_where)
        block_status = reader.text(block, "PmtInfSts") or group_status
        transactions = reader.findall(block, "TxInfAndSts")
        if block_status == "RJCT" and not transactions:
            code, text = _reason(reader, block, "StsRsnInf")
            if code is None:
                code, text = _reason(reader, group, "StsRsnInf")
            rejected.append(
                RejectedBatch(
                    original_message_id=original_message_id,
                    payment_information_id=block_id,
                    reason_code=code,
                    reason=text,
                )
            )
        for number, transaction in enumerate(transactions, start=1):
            tx_where = f"{block_where}/TxInfAndSts[{number}]"
            end_to_end_id = reader.required(transaction, "OrgnlEndToEndId", tx_where)
            status = reader.text(transaction, "TxSts") or block_status
            if status is None:
                raise StatusReportError(
                    f"{tx_where}/TxSts: missing, and neither the block nor the group has a status",
                    field=f"{tx_where}/TxSts",
                )
            code, text = _reason(reader, transaction, "StsRsnInf")
            if code is None and status == "RJCT":
                code, text = _reason(reader, block, "StsRsnInf")
            results.append(
                PaymentResult(
                    end_to_end_id=end_to_end_id,
                    outcome=_outcome(status),
                    status=status,
                    reason_code=code,
                    reason=text,
                    amount=_amount(
                        reader.text(transaction, "OrgnlTxRef/Amt/InstdAmt"),
                        f"{tx_where}/OrgnlTxRef/Amt/InstdAmt",
                    ),
                    payment_information_id=block_id,
                )
            )
    return PaymentStatusReport(
        kind="pain.002",
        message_id=message_id,
        created_at=created_at,
        original_message_id=original_message_id,
        group_status=group_status,
        results=tuple(results),
        rejected_batches=tuple(rejected),
    )


def _entry_status(reader: _Reader, entry: ET.Element) -> str | None:
    # camt.054.001.02 writes <Sts>BOOK</Sts>; from .08 on it is <Sts><Cd>BOOK</Cd></Sts>.
    return reader.text(entry, "Sts/Cd") or reader.text(entry, "Sts")


def _read_camt054(reader: _Reader, notification: ET.Element) -> PaymentStatusReport:
    where = "BkToCstmrDbtCdtNtfctn"
    message_id = reader.required(notification, "GrpHdr/MsgId", where)
    created_at = _datetime(
        reader.required(notification, "GrpHdr/CreDtTm", where), f"{where}/GrpHdr/CreDtTm"
    )
    results: list[PaymentResult] = []
    for note_number, note in enumerate(reader.findall(notification, "Ntfctn"), start=1):
        for entry_number, entry in enumerate(reader.findall(note, "Ntry"), start=1):
            entry_where = f"{where}/Ntfctn[{note_number}]/Ntry[{entry_number}]"
            status = _entry_status(reader, entry)
            if status not in ("BOOK", "PDNG"):
                continue  # INFO entries announce, they do not move money
            entry_sign = reader.required(entry, "CdtDbtInd", entry_where)
            booked_on = _date(
                reader.text(entry, "BookgDt/Dt") or reader.text(entry, "BookgDt/DtTm"),
                f"{entry_where}/BookgDt",
            )
            details = reader.findall(entry, "NtryDtls/TxDtls")
            for number, detail in enumerate(details, start=1):
                tx_where = f"{entry_where}/NtryDtls/TxDtls[{number}]"
                end_to_end_id = reader.text(detail, "Refs/EndToEndId")
                if end_to_end_id is None or end_to_end_id == _NOT_PROVIDED:
                    continue  # not one of our collections: nothing to match it to
                amount_text = (
                    reader.text(detail, "AmtDtls/TxAmt/Amt")
                    or reader.text(detail, "Amt")
                    or (reader.text(entry, "Amt") if len(details) == 1 else None)
                )
                sign = reader.text(detail, "CdtDbtInd") or entry_sign
                code, text = _reason(reader, detail, "RtrInf")
                returned = sign == "DBIT" or reader.find(detail, "RtrInf") is not None
                if returned:
                    outcome = PaymentOutcome.REJECTED
                elif status == "BOOK":
                    outcome = PaymentOutcome.PAID
                else:
                    outcome = PaymentOutcome.PENDING
                results.append(
                    PaymentResult(
                        end_to_end_id=end_to_end_id,
                        outcome=outcome,
                        status=status,
                        reason_code=code,
                        reason=text if returned else None,
                        amount=_amount(amount_text, f"{tx_where}/Amt"),
                        booked_on=booked_on,
                    )
                )
    return PaymentStatusReport(
        kind="camt.054",
        message_id=message_id,
        created_at=created_at,
        original_message_id=None,
        group_status=None,
        results=tuple(results),
    )
