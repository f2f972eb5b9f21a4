"""DSMR P1: the Dutch and Belgian smart-meter port (DSMR 2.2 to 5.0, e-MUCS).

``TelegramFramer`` cuts a serial byte stream into telegrams, ``split_telegrams``
does the same, strictly, for an HTTP body, and ``decode_telegram`` checks a
telegram's CRC and turns it into a :class:`Telegram` whose ``readings()`` feed
the ingest pipeline. See docs/devices.md, "Smart meters: DSMR P1".
"""

from m2mhub.connect.dsmr.decoder import (
    MBusDevice,
    Measurement,
    PowerFailure,
    Telegram,
    decode_telegram,
)
from m2mhub.connect.dsmr.errors import ChecksumError, DsmrError, TelegramFormatError
from m2mhub.connect.dsmr.framing import TelegramFramer, crc16, split_telegrams

__all__ = [
    "ChecksumError",
    "DsmrError",
    "MBusDevice",
    "Measurement",
    "PowerFailure",
    "Telegram",
    "TelegramFormatError",
    "TelegramFramer",
    "crc16",
    "decode_telegram",
    "split_telegrams",
]
