"""The SEPA Latin character set, and how free text is brought into it.

Every bank in the SEPA schemes must accept the basic Latin set of EPC217-08
(``a-z A-Z 0-9 / - ? : ( ) . , ' +`` and space); wider sets are optional per
country. Names and remittance text are therefore transliterated (``Müller`` to
``Muller``, ``Straße`` to ``Strasse``); a character with no Latin rendering
(Cyrillic, Greek, emoji, the euro sign) is rejected so that a person decides
how it should read. Identifiers (message, end-to-end and mandate ids) are never
rewritten: the bank echoes them back in status reports, so they must match
byte for byte.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from m2mhub.apps.metering.sepa.errors import PaymentDataError

_LATIN: Final = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]*$")

# Letters that Unicode does not decompose into a base letter and an accent, and
# punctuation with a close neighbour in the set.
_REPLACEMENTS: Final = str.maketrans(
    {
        "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
        "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th",
        "Þ": "TH", "ł": "l", "Ł": "L", "\u0131": "i", "ħ": "h", "Ħ": "H",
        "&": "+", "_": "-", ";": ",", "!": ".", '"': "'", "`": "'",
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": "'", "\u201d": "'", "\u201e": "'",
        "\u00ab": "'", "\u00bb": "'",
        "\u2013": "-", "\u2014": "-", "[": "(", "]": ")", "{": "(", "}": ")",
    }
)  # fmt: skip


def is_sepa_latin(text: str) -> bool:
    """Whether ``text`` uses only characters of the basic SEPA Latin set."""
    return _LATIN.match(text) is not None


def to_sepa_latin(text: str, *, field: str, max_length: int) -> str:
    """Transliterate free text (a name, remittance information) into the SEPA Latin set.

    Whitespace runs become one space. Raises :class:`PaymentDataError` naming
    ``field`` when the text is empty, longer than ``max_length`` after
    transliteration, or holds a character with no Latin rendering.
    """
    folded = " ".join(text.split()).translate(_REPLACEMENTS)
    decomposed = unicodedata.normalize("NFKD", folded)
    latin = "".join(char for char in decomposed if not unicodedata.combining(char))
    if not latin:
        raise PaymentDataError(f"{field}: must not be empty", field=field)
    bad = sorted({char for char in latin if not _LATIN.match(char)})
    if bad:
        shown = " ".join(repr(char) for char in bad)
        raise PaymentDataError(
            f"{field}: {shown} cannot be written in the SEPA Latin character set; "
            "replace with Latin letters, digits or / - ? : ( ) . , ' +",
            field=field,
        )
    if len(latin) > max_length:
        raise PaymentDataError(
            f"{field}: {len(latin)} characters, a SEPA file allows {max_length}; shorten it",
            field=field,
        )
    return latin


def check_reference(value: str, *, field: str, max_length: int = 35) -> str:
    """Validate an identifier echoed back by banks (end-to-end, mandate, message id).

    EPC implementation guidelines: 1-35 characters of the SEPA Latin set,
    neither starting nor ending with ``/`` and never containing ``//``.
    """
    if not value or len(value) > max_length:
        raise PaymentDataError(
            f"{field}: must be 1 to {max_length} characters, got {len(value)}", field=field
        )
    if not is_sepa_latin(value):
        raise PaymentDataError(
            f"{field}: {value!r} has characters outside the SEPA Latin set; use letters "
            "A-Z a-z, digits and / - ? : ( ) . , ' +",
            field=field,
        )
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise PaymentDataError(
            f"{field}: {value!r} must not start or end with '/' nor contain '//'",
            field=field,
        )
    return value
