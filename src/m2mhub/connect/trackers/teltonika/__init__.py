"""Teltonika trackers (FMB, FMC, FMM, FMT...): Codec 8, 8 Extended and 16 data, Codec 12 commands.

No sockets here: a server feeds :class:`TcpDeframer` the bytes of each TCP
connection (or :func:`parse_udp_datagram` each datagram), answers with the
``encode_*`` functions and maps records to reading values with :func:`to_values`.
"""

from m2mhub.connect.trackers.teltonika.crc import crc16_ibm
from m2mhub.connect.trackers.teltonika.decoder import (
    AvlPacket,
    AvlRecord,
    Codec12Message,
    decode_avl_data,
    decode_codec12,
    decode_data,
)
from m2mhub.connect.trackers.teltonika.encoder import (
    encode_avl_data,
    encode_codec12_command,
    encode_codec12_response,
    encode_imei,
    encode_imei_answer,
    encode_tcp_ack,
    encode_tcp_packet,
    encode_udp_ack,
    encode_udp_datagram,
)
from m2mhub.connect.trackers.teltonika.errors import (
    BadImeiError,
    BadLengthError,
    BadPreambleError,
    CrcMismatchError,
    DecodeError,
    EncodeError,
    StreamClosedError,
    TeltonikaError,
    UnknownCodecError,
)
from m2mhub.connect.trackers.teltonika.framing import (
    ImeiHandshake,
    Ping,
    TcpDeframer,
    TcpEvent,
    UdpDatagram,
    parse_udp_datagram,
)
from m2mhub.connect.trackers.teltonika.readings import to_values

__all__ = [
    "AvlPacket",
    "AvlRecord",
    "BadImeiError",
    "BadLengthError",
    "BadPreambleError",
    "Codec12Message",
    "CrcMismatchError",
    "DecodeError",
    "EncodeError",
    "ImeiHandshake",
    "Ping",
    "StreamClosedError",
    "TcpDeframer",
    "TcpEvent",
    "TeltonikaError",
    "UdpDatagram",
    "UnknownCodecError",
    "crc16_ibm",
    "decode_avl_data",
    "decode_codec12",
    "decode_data",
    "encode_avl_data",
    "encode_codec12_command",
    "encode_codec12_response",
    "encode_imei",
    "encode_imei_answer",
    "encode_tcp_ack",
    "encode_tcp_packet",
    "encode_udp_ack",
    "encode_udp_datagram",
    "parse_udp_datagram",
    "to_values",
]
