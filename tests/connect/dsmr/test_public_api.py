"""The public names of m2mhub.connect.dsmr."""

from __future__ import annotations

import m2mhub.connect.dsmr as dsmr


def test_public_api() -> None:
    assert set(dsmr.__all__) == {
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
    }
    assert all(hasattr(dsmr, name) for name in dsmr.__all__)
    assert issubclass(dsmr.ChecksumError, dsmr.DsmrError)
    assert issubclass(dsmr.TelegramFormatError, dsmr.DsmrError)
