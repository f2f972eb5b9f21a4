"""Bank identifiers of a SEPA direct debit: IBAN, BIC and SEPA creditor identifier.

Each ``check_*`` function takes the value as a person typed it (spaces and lower
case allowed), returns it in its electronic form (upper case, no spaces) and
raises :class:`PaymentDataError` naming ``field`` and what is wrong otherwise.
"""

from __future__ import annotations

import re
from typing import Final

from m2mhub.apps.metering.sepa.errors import PaymentDataError

# IBAN lengths of the countries and territories in the SEPA schemes' geographical
# scope (EPC409-09, IBAN registry of SWIFT as ISO 13616 registration authority).
# Åland (FI), the French overseas departments (FR) and the Channel Islands and
# Isle of Man (GB) use their mother country's IBAN prefix. AL, MD, ME, MK and RS
# joined the schemes in 2024/2025.
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AL": 28, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23,
    "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "RS": 22, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "VA": 22,
}  # fmt: skip

_IBAN_SHAPE: Final = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]+$")
# BICIdentifier / BICFIDec2014Identifier pattern of the pain.008 schemas (ISO 9362).
_BIC_SHAPE: Final = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")
# EPC262-08: country, two check digits, three-character creditor business code,
# national identifier of up to 28 characters; 35 at most in all.
_CREDITOR_ID_SHAPE: Final = re.compile(r"^([A-Z]{2})([0-9]{2})([A-Z0-9]{3})([A-Z0-9]{1,28})$")


def _compact(value: str) -> str:
    return "".join(value.split()).upper()


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 remainder of ``text``, letters counted as A=10 ... Z=35."""
    return int("".join(str(int(char, 36)) for char in text)) % 97


def check_iban(value: str, *, field: str = "iban") -> str:
    """Validate an IBAN of a SEPA country: shape, length of its country and mod-97 check."""
    iban = _compact(value)
    if not _IBAN_SHAPE.match(iban):
        raise PaymentDataError(
            f"{field}: {value!r} is not an IBAN; write the country code, two check digits "
            "and the account number (letters and digits only), e.g. DE89370400440532013000",
            field=field,
        )
    country = iban[:2]
    length = IBAN_LENGTHS.get(country)
    if length is None:
        raise PaymentDataError(
            f"{field}: country {country} of IBAN {iban} is not in the SEPA direct debit scheme",
            field=field,
        )
    if len(iban) != length:
        raise PaymentDataError(
            f"{field}: an IBAN of {country} has {length} characters, {iban} has {len(iban)}; "
            "check for a missing or extra digit",
            field=field,
        )
    if _mod97(iban[4:] + iban[:4]) != 1:
        raise PaymentDataError(
            f"{field}: IBAN {iban} fails its check digits (ISO 13616 mod 97); "
            "check it for a typing error",
            field=field,
        )
    return iban


def check_bic(value: str, *, field: str = "bic") -> str:
    """Validate the format of a BIC (ISO 9362): 8 or 11 characters."""
    bic = _compact(value)
    if not _BIC_SHAPE.match(bic):
        raise PaymentDataError(
            f"{field}: {value!r} is not a BIC; write 8 or 11 characters: bank (4 letters), "
            "country (2 letters), location (2) and an optional branch (3), e.g. COBADEFFXXX",
            field=field,
        )
    return bic


def check_creditor_id(value: str, *, field: str = "creditor_id") -> str:
    """Validate a SEPA creditor identifier (EPC262-08), e.g. ``DE98ZZZ09999999999``.

    The check digits are ISO 7064 MOD 97-10 over the national identifier followed
    by the country code; the creditor business code (characters 5-7) is not
    part of the check.
    """
    creditor_id = _compact(value)
    shape = _CREDITOR_ID_SHAPE.match(creditor_id)
    if shape is None:
        raise PaymentDataError(
            f"{field}: {value!r} is not a SEPA creditor identifier; write country code, "
            "two check digits, a three-character business code and the national "
            "identifier, e.g. DE98ZZZ09999999999",
            field=field,
        )
    country, check_digits, _business_code, national_id = shape.groups()
    if country not in IBAN_LENGTHS:
        raise PaymentDataError(
            f"{field}: country {country} of creditor identifier {creditor_id} is not in the "
            "SEPA direct debit scheme",
            field=field,
        )
    if _mod97(national_id + country + check_digits) != 1:
        raise PaymentDataError(
            f"{field}: creditor identifier {creditor_id} fails its check digits "
            "(ISO 7064 mod 97-10); copy it again from the bank's letter",
            field=field,
        )
    return creditor_id
