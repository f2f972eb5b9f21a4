"""SEPA Core direct debit collections as ISO 20022 pain.008 files.

The XML is written here rather than with ``sepaxml``'s writer, which stamps
the creation time with the clock, truncates names silently and reports errors
as bare ``Exception``: here the message id and creation time are the caller's
(the same input gives the same bytes), and every value is checked with its
field named before a byte is written. The result is then validated against the
ISO 20022 schema shipped with ``sepaxml``; a file that fails is an error, never
a file handed to a bank.

Collections are grouped into one payment information block per sequence type
and due date, as the EPC implementation guidelines require (a block carries a
single ``SeqTp`` and ``ReqdColltnDt``). Bank lead times (D-1 for CORE) and
business-day calendars are the bank's to enforce; only a due date before the
file's creation date is refused here.
"""

from __future__ import annotations

import functools
import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Final, Literal

import msgspec
import xmlschema

from m2mhub.apps.metering.sepa.charset import check_reference, to_sepa_latin
from m2mhub.apps.metering.sepa.errors import PaymentDataError, SchemaViolationError
from m2mhub.apps.metering.sepa.identifiers import check_bic, check_creditor_id, check_iban

Schema = Literal["pain.008.001.02", "pain.008.001.08"]
LocalInstrument = Literal["CORE", "B2B"]

_CENT: Final = Decimal("0.01")
# EPC SDD Core rulebook: amounts from 0.01 to 999,999,999.99 EUR.
MAX_AMOUNT: Final = Decimal("999999999.99")
_NAME_LENGTH: Final = 70  # EPC: party names are Max70Text
_REMITTANCE_LENGTH: Final = 140  # one unstructured remittance line, Max140Text
# EPC: a debtor or creditor agent without a BIC is written as Othr/Id NOTPROVIDED.
_NO_BIC: Final = "NOTPROVIDED"


class SequenceType(StrEnum):
    """Where a collection stands in its mandate's life (``SeqTp``)."""

    FIRST = "FRST"
    RECURRING = "RCUR"
    ONE_OFF = "OOFF"
    FINAL = "FNAL"


class Creditor(msgspec.Struct, frozen=True, kw_only=True):
    """The party collecting the money: the utility or operator issuing the invoices."""

    name: str
    iban: str
    creditor_id: str
    """SEPA creditor identifier issued by the creditor's national bank, e.g. DE98ZZZ09999999999."""
    bic: str | None = None


class Collection(msgspec.Struct, frozen=True, kw_only=True):
    """One direct debit: the amount of one invoice taken from one debtor under a mandate."""

    end_to_end_id: str
    """The invoice number; banks echo it back in status reports and statements."""
    amount: Decimal
    """EUR, more than zero, at most two decimals."""
    debtor_name: str
    debtor_iban: str
    mandate_id: str
    mandate_signed_on: date
    sequence_type: SequenceType
    due_date: date
    """Requested collection date (``ReqdColltnDt``)."""
    remittance: str
    """Unstructured remittance information shown on the debtor's statement."""
    debtor_bic: str | None = None


class PaymentBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One payment information block of a file: the collections sharing type and date."""

    payment_information_id: str
    sequence_type: SequenceType
    due_date: date
    end_to_end_ids: tuple[str, ...]
    control_sum: Decimal

    @property
    def number_of_transactions(self) -> int:
        """How many collections the block holds."""
        return len(self.end_to_end_ids)


class DirectDebitFile(msgspec.Struct, frozen=True, kw_only=True):
    """A schema-valid pain.008 file and what it holds, to be kept with the invoices."""

    xml: bytes
    schema: Schema
    message_id: str
    created_at: datetime
    number_of_transactions: int
    control_sum: Decimal
    batches: tuple[PaymentBatch, ...]


def export_direct_debit(
    creditor: Creditor,
    collections: Sequence[Collection],
    *,
    message_id: str,
    created_at: datetime,
    schema: Schema = "pain.008.001.02",
    local_instrument: LocalInstrument = "CORE",
) -> DirectDebitFile:
    """Write ``collections`` as a pain.008 file for ``creditor``'s bank.

    Every input is checked first; a :class:`PaymentDataError` names the field at
    fault (``creditor.iban``, ``collections[3].debtor_iban``). Names and
    remittance text are transliterated into the SEPA Latin set, identifiers
    must already be in it. The generated XML is validated against the ISO 20022
    schema; :class:`SchemaViolationError` is raised if it does not conform.

    ``created_at`` must carry a time zone. ``message_id`` must be unique per
    creditor: banks refuse a file whose message id they have already seen.
    """
    if schema not in ("pain.008.001.02", "pain.008.001.08"):
        raise PaymentDataError(
            f"schema: {schema!r} is not supported; use pain.008.001.02 or pain.008.001.08",
            field="schema",
        )
    if local_instrument not in ("CORE", "B2B"):
        raise PaymentDataError(
            f"local_instrument: {local_instrument!r} is not a SEPA direct debit scheme; "
            "use CORE or B2B",
            field="local_instrument",
        )
    message_id = check_reference(message_id, field="message_id")
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise PaymentDataError(
            "created_at: give a time zone (e.g. datetime.now(UTC))", field="created_at"
        )
    checked_creditor = _check_creditor(creditor)
    if not collections:
        raise PaymentDataError(
            "collections: a direct debit file needs at least one collection",
            field="collections",
        )
    checked = [
        _check_collection(collection, f"collections[{index}]", created_at.date())
        for index, collection in enumerate(collections)
    ]
    _check_unique_end_to_end_ids(checked)

    groups: dict[tuple[date, SequenceType], list[Collection]] = {}
    for collection in checked:
        groups.setdefault((collection.due_date, collection.sequence_type), []).append(collection)
    order = list(SequenceType)
    keys = sorted(groups, key=lambda key: (key[0], order.index(key[1])))
    batches = tuple(
        PaymentBatch(
            payment_information_id=_batch_id(message_id, number),
            sequence_type=sequence_type,
            due_date=due_date,
            end_to_end_ids=tuple(c.end_to_end_id for c in groups[due_date, sequence_type]),
            control_sum=sum((c.amount for c in groups[due_date, sequence_type]), Decimal(0)),
        )
        for number, (due_date, sequence_type) in enumerate(keys, start=1)
    )
    control_sum = sum((c.amount for c in checked), Decimal(0))
    xml = _write_xml(
        checked_creditor,
        groups,
        batches,
        message_id=message_id,
        created_at=created_at,
        schema=schema,
        local_instrument=local_instrument,
        control_sum=control_sum,
    )
    validate_direct_debit(xml, schema=schema)
    return DirectDebitFile(
        xml=xml,
        schema=schema,
        message_id=message_id,
        created_at=created_at,
        number_of_transactions=len(checked),
        control_sum=control_sum,
        batches=batches,
    )


def validate_direct_debit(xml: bytes, *, schema: Schema = "pain.008.001.02") -> None:
    """Validate a pain.008 file against its ISO 20022 schema.

    Raises :class:`SchemaViolationError` with the path of the first offending
    element as ``field`` and every violation (up to five) in the message.
    """
    errors = list(_schema(schema).iter_errors(io.BytesIO(xml)))
    if errors:
        shown = "; ".join(f"{error.path}: {error.reason}" for error in errors[:5])
        raise SchemaViolationError(
            f"the {schema} file does not conform to its schema ({len(errors)} errors: {shown}); "
            "it must not be sent to the bank",
            field=errors[0].path,
        )


@functools.cache
def _schema(schema: Schema) -> xmlschema.XMLSchema:
    xsd = resources.files("sepaxml").joinpath("schemas", f"{schema}.xsd")
    with resources.as_file(xsd) as path:
        return xmlschema.XMLSchema(str(path))


def _batch_id(message_id: str, number: int) -> str:
    suffix = f"-{number}"
    return message_id[: 35 - len(suffix)].rstrip("/") + suffix


def _check_creditor(creditor: Creditor) -> Creditor:
    return Creditor(
        name=to_sepa_latin(creditor.name, field="creditor.name", max_length=_NAME_LENGTH),
        iban=check_iban(creditor.iban, field="creditor.iban"),
        creditor_id=check_creditor_id(creditor.creditor_id, field="creditor.creditor_id"),
        bic=None if creditor.bic is None else check_bic(creditor.bic, field="creditor.bic"),
    )


def _check_amount(amount: object, field: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise PaymentDataError(
            f"{field}: {amount!r} is not an amount; pass a decimal.Decimal such as "
            "Decimal('12.34')",
            field=field,
        )
    if amount <= 0:
        raise PaymentDataError(f"{field}: {amount} EUR must be more than zero", field=field)
    if amount != amount.quantize(_CENT):
        raise PaymentDataError(
            f"{field}: {amount} EUR has more than two decimals; round it to cents first",
            field=field,
        )
    if amount > MAX_AMOUNT:
        raise PaymentDataError(
            f"{field}: {amount} EUR is more than a SEPA direct debit allows ({MAX_AMOUNT})",
            field=field,
        )
    return amount.quantize(_CENT)


def _check_collection(collection: Collection, path: str, created_on: date) -> Collection:
    try:
        sequence_type = SequenceType(collection.sequence_type)
    except ValueError:
        raise PaymentDataError(
            f"{path}.sequence_type: {collection.sequence_type!r} is not a sequence type; "
            "use FRST, RCUR, OOFF or FNAL",
            field=f"{path}.sequence_type",
        ) from None
    if collection.due_date < created_on:
        raise PaymentDataError(
            f"{path}.due_date: {collection.due_date} is before the file's creation date "
            f"{created_on}; choose a future collection date",
            field=f"{path}.due_date",
        )
    if collection.mandate_signed_on > created_on:
        raise PaymentDataError(
            f"{path}.mandate_signed_on: {collection.mandate_signed_on} is in the future; "
            "give the date the debtor signed the mandate",
            field=f"{path}.mandate_signed_on",
        )
    debtor_bic = collection.debtor_bic
    if debtor_bic is not None:
        debtor_bic = check_bic(debtor_bic, field=f"{path}.debtor_bic")
    return Collection(
        end_to_end_id=check_reference(collection.end_to_end_id, field=f"{path}.end_to_end_id"),
        amount=_check_amount(collection.amount, f"{path}.amount"),
        debtor_name=to_sepa_latin(
            collection.debtor_name, field=f"{path}.debtor_name", max_length=_NAME_LENGTH
        ),
        debtor_iban=check_iban(collection.debtor_iban, field=f"{path}.debtor_iban"),
        mandate_id=check_reference(collection.mandate_id, field=f"{path}.mandate_id"),
        mandate_signed_on=collection.mandate_signed_on,
        sequence_type=sequence_type,
        due_date=collection.due_date,
        remittance=to_sepa_latin(
            collection.remittance, field=f"{path}.remittance", max_length=_REMITTANCE_LENGTH
        ),
        debtor_bic=None
        if debtor_bic is None
        else check_bic(debtor_bic, field=f"{path}.debtor_bic"),
    )


def _check_unique_end_to_end_ids(collections: Sequence[Collection]) -> None:
    # Status reports are matched back by end-to-end id: two equal ids could not be told apart.
    seen: dict[str, int] = {}
    for index, collection in enumerate(collections):
        first = seen.setdefault(collection.end_to_end_id, index)
        if first != index:
            field = f"collections[{index}].end_to_end_id"
            raise PaymentDataError(
                f"{field}: {collection.end_to_end_id!r} is already used by "
                f"collections[{first}]; each invoice may be collected once per file",
                field=field,
            )


def _amount_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _agent(parent: ET.Element, tag: str, bic: str | None, schema: Schema) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if bic is None:
        _sub(_sub(institution, "Othr"), "Id", _NO_BIC)
    else:
        _sub(institution, "BIC" if schema == "pain.008.001.02" else "BICFI", bic)


def _account(parent: ET.Element, tag: str, iban: str) -> None:
    _sub(_sub(_sub(parent, tag), "Id"), "IBAN", iban)


def _write_xml(
    creditor: Creditor,
    groups: dict[tuple[date, SequenceType], list[Collection]],
    batches: Sequence[PaymentBatch],
    *,
    message_id: str,
    created_at: datetime,
    schema: Schema,
    local_instrument: LocalInstrument,
    control_sum: Decimal,
) -> bytes:
    document = ET.Element("Document", xmlns=f"urn:iso:std:iso:20022:tech:xsd:{schema}")
    initiation = _sub(document, "CstmrDrctDbtInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.isoformat(timespec="seconds"))
    _sub(header, "NbOfTxs", str(sum(batch.number_of_transactions for batch in batches)))
    _sub(header, "CtrlSum", _amount_text(control_sum))
    _sub(_sub(header, "InitgPty"), "Nm", creditor.name)

    for batch in batches:
        block = _sub(initiation, "PmtInf")
        _sub(block, "PmtInfId", batch.payment_information_id)
        _sub(block, "PmtMtd", "DD")
        _sub(block, "BtchBookg", "true")
        _sub(block, "NbOfTxs", str(batch.number_of_transactions))
        _sub(block, "CtrlSum", _amount_text(batch.control_sum))
        payment_type = _sub(block, "PmtTpInf")
        _sub(_sub(payment_type, "SvcLvl"), "Cd", "SEPA")
        _sub(_sub(payment_type, "LclInstrm"), "Cd", local_instrument)
        _sub(payment_type, "SeqTp", batch.sequence_type.value)
        _sub(block, "ReqdColltnDt", batch.due_date.isoformat())
        _sub(_sub(block, "Cdtr"), "Nm", creditor.name)
        _account(block, "CdtrAcct", creditor.iban)
        _agent(block, "CdtrAgt", creditor.bic, schema)
        _sub(block, "ChrgBr", "SLEV")
        scheme_id = _sub(_sub(_sub(block, "CdtrSchmeId"), "Id"), "PrvtId")
        other = _sub(scheme_id, "Othr")
        _sub(other, "Id", creditor.creditor_id)
        _sub(_sub(other, "SchmeNm"), "Prtry", "SEPA")

        for collection in groups[batch.due_date, batch.sequence_type]:
            transaction = _sub(block, "DrctDbtTxInf")
            _sub(_sub(transaction, "PmtId"), "EndToEndId", collection.end_to_end_id)
            _sub(transaction, "InstdAmt", _amount_text(collection.amount), Ccy="EUR")
            mandate = _sub(_sub(transaction, "DrctDbtTx"), "MndtRltdInf")
            _sub(mandate, "MndtId", collection.mandate_id)
            _sub(mandate, "DtOfSgntr", collection.mandate_signed_on.isoformat())
            _agent(transaction, "DbtrAgt", collection.debtor_bic, schema)
            _sub(_sub(transaction, "Dbtr"), "Nm", collection.debtor_name)
            _account(transaction, "DbtrAcct", collection.debtor_iban)
            _sub(_sub(transaction, "RmtInf"), "Ustrd", collection.remittance)

    ET.indent(document)
    xml: bytes = ET.tostring(document, encoding="UTF-8", xml_declaration=True)
    return xml
