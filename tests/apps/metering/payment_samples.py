"""A creditor and invoices to collect, shared by the payment tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from m2mhub.apps.metering.payments import Collection, Creditor, SequenceType

FIXTURES = Path(__file__).parent / "fixtures"
CREATED_AT = datetime(2024, 5, 31, 9, 30, tzinfo=UTC)

# The Bundesbank's published test creditor identifier and well-known sample IBANs.
CREDITOR = Creditor(
    name="Stadtwerke Mühlheim GmbH",
    iban="DE89 3704 0044 0532 0130 00",
    creditor_id="DE98ZZZ09999999999",
    bic="COBADEFFXXX",
)


def collection(number: int, **changes: Any) -> Collection:
    """Invoice ``INV-2024-000n`` collected on 2024-06-05 as a recurring debit."""
    values: dict[str, Any] = {
        "end_to_end_id": f"INV-2024-{number:04d}",
        "amount": Decimal("12.30") * number,
        "debtor_name": "Jürgen Müßig",
        "debtor_iban": "DE02120300000000202051",
        "mandate_id": f"MAND-{number:04d}",
        "mandate_signed_on": date(2023, 11, 2),
        "sequence_type": SequenceType.RECURRING,
        "due_date": date(2024, 6, 5),
        "remittance": f"Stromrechnung Mai 2024 INV-2024-{number:04d}",
    }
    values.update(changes)
    return Collection(**values)
