"""IBAN, BIC and creditor identifier checks, and the SEPA Latin character set."""

from __future__ import annotations

import pytest

from m2mhub.apps.metering.payments import (
    PaymentDataError,
    check_bic,
    check_creditor_id,
    check_iban,
)
from m2mhub.apps.metering.sepa.charset import check_reference, to_sepa_latin


@pytest.mark.parametrize(
    ("typed", "electronic"),
    [
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("FR14 2004 1010 0505 0001 3M02 606", "FR1420041010050500013M02606"),
        ("NL91ABNA0417164300", "NL91ABNA0417164300"),
        ("AT611904300234573201", "AT611904300234573201"),
        ("NO9386011117947", "NO9386011117947"),
        ("MT84MALT011000012345MTLCAST001S", "MT84MALT011000012345MTLCAST001S"),
    ],
)
def test_valid_ibans_come_back_in_electronic_form(typed: str, electronic: str) -> None:
    assert check_iban(typed) == electronic


@pytest.mark.parametrize(
    ("iban", "says"),
    [
        ("DE89370400440532013001", "check digits"),
        ("DE8937040044053201300", "has 22 characters"),
        ("BR1800360305000010009795493C1", "not in the SEPA"),
        ("1234", "not an IBAN"),
        ("DE89-3704-0044", "not an IBAN"),
    ],
)
def test_invalid_ibans_are_rejected_naming_the_field(iban: str, says: str) -> None:
    with pytest.raises(PaymentDataError) as caught:
        check_iban(iban, field="collections[3].debtor_iban")
    assert caught.value.field == "collections[3].debtor_iban"
    assert caught.value.message.startswith("collections[3].debtor_iban: ")
    assert says in caught.value.message


def _creditor_id(country: str, business_code: str, national_id: str) -> str:
    # Check digits computed the way EPC262-08 describes it: 98 - (digits of
    # national id + country + "00") mod 97.
    digits = "".join(str(int(char, 36)) for char in national_id + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{business_code}{national_id}"


def test_creditor_identifiers() -> None:
    assert check_creditor_id("DE98ZZZ09999999999") == "DE98ZZZ09999999999"
    assert check_creditor_id("de98 zzz 0999 9999 999") == "DE98ZZZ09999999999"
    made = _creditor_id("NL", "ZZZ", "302074840000")
    assert check_creditor_id(made) == made
    # The business code is outside the check: any three characters do.
    assert check_creditor_id("DE98ABC09999999999") == "DE98ABC09999999999"


@pytest.mark.parametrize(
    ("creditor_id", "says"),
    [
        ("DE97ZZZ09999999999", "check digits"),
        ("DE98ZZZ09999999998", "check digits"),
        ("US98ZZZ09999999999", "not in the SEPA"),
        ("DE98ZZ", "not a SEPA creditor identifier"),
        ("DE98ZZZ0999999999-9", "not a SEPA creditor identifier"),
    ],
)
def test_invalid_creditor_identifiers_are_rejected(creditor_id: str, says: str) -> None:
    with pytest.raises(PaymentDataError) as caught:
        check_creditor_id(creditor_id, field="creditor.creditor_id")
    assert caught.value.field == "creditor.creditor_id"
    assert says in caught.value.message


@pytest.mark.parametrize("bic", ["COBADEFFXXX", "DEUTDEFF", "bylademm", "BYLADEM1001"])
def test_valid_bics(bic: str) -> None:
    assert check_bic(bic) == bic.upper()


@pytest.mark.parametrize("bic", ["DEUTDEF", "DEUT1EFF", "DEUTDEFF1", "DEUTDE1O", "COBADEFFXXXX"])
def test_invalid_bics_are_rejected(bic: str) -> None:
    with pytest.raises(PaymentDataError) as caught:
        check_bic(bic, field="creditor.bic")
    assert caught.value.field == "creditor.bic"
    assert "8 or 11 characters" in caught.value.message


def test_free_text_is_transliterated_into_the_sepa_latin_set() -> None:
    text = to_sepa_latin("Jürgen  Müßig & Söhne\tŁódź «Œuvre»", field="f", max_length=70)
    assert text == "Jurgen Mussig + Sohne Lodz 'OEuvre'"
    with pytest.raises(PaymentDataError, match="'€'"):
        to_sepa_latin("Abschlag 50 €", field="f", max_length=70)


def test_free_text_without_latin_rendering_is_rejected_naming_the_field() -> None:
    with pytest.raises(PaymentDataError) as caught:
        to_sepa_latin("Иван Петров", field="collections[0].debtor_name", max_length=70)
    assert caught.value.field == "collections[0].debtor_name"
    assert "'И'" in caught.value.message
    with pytest.raises(PaymentDataError, match="shorten"):
        to_sepa_latin("x" * 71, field="f", max_length=70)
    with pytest.raises(PaymentDataError, match="empty"):
        to_sepa_latin(" \t", field="f", max_length=70)


@pytest.mark.parametrize(
    "reference", ["/INV-1", "INV-1/", "INV//1", "INV_1", "RE-Ä1", "", "x" * 36]
)
def test_references_are_never_rewritten_only_checked(reference: str) -> None:
    with pytest.raises(PaymentDataError) as caught:
        check_reference(reference, field="collections[1].end_to_end_id")
    assert caught.value.field == "collections[1].end_to_end_id"
    assert check_reference("INV/2024-0001", field="x") == "INV/2024-0001"
