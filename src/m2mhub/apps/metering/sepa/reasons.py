"""ISO 20022 status and return reason codes of SEPA direct debits, in plain words.

Codes from the ISO 20022 External Code Sets (ExternalStatusReason1Code,
ExternalReturnReason1Code) as the EPC SDD rulebooks use them for rejects,
returns and refunds (R-transactions).
"""

from __future__ import annotations

from typing import Final

REASONS: Final[dict[str, str]] = {
    "AC01": "account identifier incorrect (invalid IBAN)",
    "AC04": "account closed",
    "AC06": "account blocked",
    "AC13": "debtor account is a consumer account (not allowed for B2B)",
    "AG01": "direct debits forbidden on this account",
    "AG02": "invalid bank operation code",
    "AM04": "insufficient funds",
    "AM05": "duplicate collection",
    "BE05": "creditor (initiating party) not recognised",
    "CNOR": "creditor bank not reachable for direct debits",
    "DNOR": "debtor bank not reachable for direct debits",
    "DUPL": "duplicate payment",
    "FF01": "invalid file format",
    "FOCR": "returned after a cancellation request",
    "MD01": "no mandate",
    "MD02": "mandate data missing or incorrect",
    "MD06": "refund requested by the debtor",
    "MD07": "debtor deceased",
    "MS02": "refused by the debtor",
    "MS03": "reason not specified by the bank",
    "RC01": "BIC incorrect",
    "RR01": "debtor account or identification missing (regulatory)",
    "RR02": "debtor name or address missing (regulatory)",
    "RR03": "creditor name or address missing (regulatory)",
    "RR04": "regulatory reason",
    "SL01": "specific service of the debtor's bank (e.g. blocked creditor)",
}

#: Transaction and group status codes (ExternalPaymentTransactionStatus1Code).
STATUSES: Final[dict[str, str]] = {
    "ACCC": "settled on the creditor's account",
    "ACCP": "accepted by the bank, not yet settled",
    "ACSC": "settled",
    "ACSP": "accepted, settlement in process",
    "ACTC": "passed the bank's technical checks",
    "ACWC": "accepted with changes",
    "PART": "partly accepted",
    "PDNG": "pending",
    "RCVD": "received by the bank",
    "RJCT": "rejected",
}


def describe_reason(code: str) -> str:
    """A short human text for a reason code; unknown codes are named as such."""
    return REASONS.get(code, f"reason code {code} (see the ISO 20022 external code list)")
