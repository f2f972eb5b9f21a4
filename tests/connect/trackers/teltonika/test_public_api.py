"""The package's public names stay deliberate."""

from __future__ import annotations

import m2mhub.connect.trackers.teltonika as teltonika
from m2mhub.connect.trackers.teltonika import errors
from m2mhub.core.errors import PayloadError


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(teltonika.__all__)) == len(teltonika.__all__)
    assert all(hasattr(teltonika, name) for name in teltonika.__all__)


def test_server_facing_names_are_exported() -> None:
    assert {
        "TcpDeframer",
        "parse_udp_datagram",
        "encode_imei_answer",
        "encode_tcp_ack",
        "encode_udp_ack",
        "encode_codec12_command",
        "to_values",
        "TeltonikaError",
    } <= set(teltonika.__all__)


def test_every_error_is_a_payload_error_with_its_own_code() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.TeltonikaError)
    ]

    assert all(issubclass(cls, PayloadError) for cls in classes)
    assert all(cls.__doc__ for cls in classes)
    assert len({cls.code for cls in classes}) == len(classes)
    fatal = {cls.__name__ for cls in classes if cls.is_fatal}
    assert fatal == {"BadImeiError", "BadPreambleError", "BadLengthError", "StreamClosedError"}
