"""Money for invoices: exact decimals with a currency, and one written-down rounding rule.

Binary floats cannot hold 0.1 exactly, so nothing here accepts a ``float``: every
constructor and operator raises ``TypeError`` on one. Amounts are
:class:`~decimal.Decimal` (or ``int``, or a decimal string such as ``"0.2534"``).

The rounding rule of an invoice, applied by :mod:`m2mhub.apps.metering.pricing`:

1. **Unit prices** are kept as written in the tariff, at most
   :data:`PRICE_PLACES` (6) decimal places; a tariff with more is refused, never
   rounded silently.
2. **Quantities** (kWh, days, kW) are kept exact. The only computed quantity
   that is rounded is a tier block limit prorated by days, which is rounded to
   :data:`QUANTITY_PLACES` (3) decimals, i.e. to the watt-hour.
3. **Each line amount** is ``quantity * unit_price`` rounded once to the
   currency's minor unit (cents for EUR) with ``ROUND_HALF_UP``. Decimal's half-up
   rounds halves away from zero, so a credit of -0.125 becomes -0.13, the mirror
   of a charge of 0.125.
4. **The subtotal** is the exact sum of the rounded line amounts.
5. **Tax** is computed per tax rate: the rate times the sum of the rounded
   amounts of the lines at that rate, rounded once (half up) to the minor unit.
   Tax is never computed per line, so a customer who adds up the lines and
   applies the rate gets the same figure.
6. **The total** is subtotal plus the sum of the taxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

__all__ = [
    "PRICE_PLACES",
    "QUANTITY_PLACES",
    "Money",
    "minor_unit",
    "round_amount",
    "to_decimal",
]

#: Decimal places a unit price may carry (0.123456 EUR/kWh).
PRICE_PLACES: Final = 6
#: Decimal places of a computed quantity (kWh to the watt-hour).
QUANTITY_PLACES: Final = 3

# ISO 4217 minor units of the currencies that differ from the usual two decimals;
# every other three-letter code is taken to have cents.
_MINOR_UNITS: Final[dict[str, int]] = {
    "BHD": 3,
    "CLP": 0,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "OMR": 3,
    "TND": 3,
    "VND": 0,
}


def to_decimal(value: object, *, what: str = "amount") -> Decimal:
    """``Decimal``, ``int`` or a decimal string -> ``Decimal``; floats and the rest are refused.

    Raises ``TypeError`` for a ``float`` (or ``bool``) and ``ValueError`` for a string
    that is not a finite decimal number.
    """
    if isinstance(value, float):
        raise TypeError(
            f"{what}: {value!r} is a float; pass a Decimal or a string such as '{value}' "
            "so no binary rounding creeps in"
        )
    if isinstance(value, bool):
        raise TypeError(f"{what}: {value!r} is a bool, not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: {value!r} is not a decimal number, e.g. '0.25'") from None
    else:
        raise TypeError(f"{what}: expected a Decimal, int or decimal string, got {type(value)}")
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


def minor_unit(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (2 for EUR, 0 for JPY)."""
    return _MINOR_UNITS.get(currency, 2)


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up (away from zero) to ``currency``'s minor unit."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency, exact until :meth:`rounded` is asked for.

    ``Money("1.005", "EUR").rounded()`` is ``Money("1.01", "EUR")``. Adding or
    subtracting two currencies raises ``ValueError``; a float anywhere raises
    ``TypeError``.
    """

    amount: Decimal
    currency: str

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            raise ValueError(f"currency: {currency!r} is not an ISO 4217 code such as 'EUR'")
        object.__setattr__(self, "amount", to_decimal(amount))
        object.__setattr__(self, "currency", currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in ``currency``."""
        return cls(Decimal(0), currency)

    def rounded(self) -> Money:
        """This amount rounded half up to the currency's minor unit."""
        return Money(round_amount(self.amount, self.currency), self.currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * to_decimal(factor, what="factor"), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
