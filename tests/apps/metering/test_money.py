"""Money: exact decimals, floats refused, half-up rounding to the minor unit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2mhub.apps.metering.money import Money, minor_unit, round_amount, to_decimal


def test_amounts_are_exact_decimals() -> None:
    assert Money("0.1", "EUR") + Money("0.2", "EUR") == Money("0.3", "EUR")
    assert Money(3, "EUR").amount == Decimal(3)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1.005", "1.01"),  # half up, where banker's rounding would give 1.00
        ("1.015", "1.02"),
        ("1.0049", "1.00"),
        ("-0.125", "-0.13"),  # a credit rounds away from zero, the mirror of a charge
        ("-0.124", "-0.12"),
        ("2", "2.00"),
    ],
)
def test_rounding_is_half_up_to_cents(amount: str, expected: str) -> None:
    rounded = Money(amount, "EUR").rounded()
    assert rounded.amount == Decimal(expected)
    assert str(rounded.amount) == expected


def test_minor_units_follow_the_currency() -> None:
    assert minor_unit("EUR") == 2
    assert minor_unit("JPY") == 0
    assert Money("1234.5", "JPY").rounded() == Money("1235", "JPY")
    assert round_amount(Decimal("0.0005"), "KWD") == Decimal("0.001")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Money(0.1, "EUR"),  # type: ignore[arg-type]
        lambda: Money("1", "EUR") * 1.5,  # type: ignore[operator]
        lambda: to_decimal(0.25),
        lambda: to_decimal(True),
    ],
)
def test_floats_and_bools_are_refused(make: object) -> None:
    assert callable(make)
    with pytest.raises(TypeError):
        make()


def test_float_message_says_what_to_pass_instead() -> None:
    with pytest.raises(TypeError, match=r"pass a Decimal or a string such as '0.1'"):
        Money(0.1, "EUR")  # type: ignore[arg-type]


def test_two_currencies_do_not_mix() -> None:
    with pytest.raises(ValueError, match="cannot combine EUR with GBP"):
        Money("1", "EUR") + Money("1", "GBP")
    with pytest.raises(ValueError, match="ISO 4217"):
        Money("1", "euro")


def test_bad_decimal_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="not a decimal number"):
        Money("1,50", "EUR")
    with pytest.raises(ValueError, match="not a finite number"):
        Money("NaN", "EUR")


def test_arithmetic_and_order() -> None:
    a, b = Money("2.50", "EUR"), Money("1.25", "EUR")
    assert a - b == Money("1.25", "EUR")
    assert -b == Money("-1.25", "EUR")
    assert 2 * b == a
    assert b < a and a >= b and str(a) == "2.50 EUR"
    assert Money.zero("EUR") == Money("0.00", "EUR")


@given(st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=6))
def test_rounding_moves_by_at_most_half_a_cent(amount: Decimal) -> None:
    rounded = Money(amount, "EUR").rounded().amount
    assert abs(rounded - amount) <= Decimal("0.005")
    assert rounded == rounded.quantize(Decimal("0.01"))
    # Symmetric: a credit rounds to exactly minus the matching charge.
    assert Money(-amount, "EUR").rounded().amount == -rounded
