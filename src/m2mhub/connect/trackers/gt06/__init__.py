"""GT06 / Concox GPS trackers: framing, decoding, encoding and a sans-I/O session.

Binary frames over TCP (Traccar's default port for it is 5023). A device logs in with
its IMEI, then sends positions (GPS+LBS), status heartbeats and alarms; the server
acknowledges logins, heartbeats and alarms, and may send online commands such as
``RELAY,1#`` (engine cut-off).
"""

from m2mhub.connect.trackers.gt06.const import Alarm, Protocol, TerminalAlarm
from m2mhub.connect.trackers.gt06.decoder import decode_frame
from m2mhub.connect.trackers.gt06.encoder import (
    encode_ack,
    encode_command,
    encode_frame,
    encode_login_ack,
    encode_time_response,
)
from m2mhub.connect.trackers.gt06.errors import (
    CrcError,
    DecodeError,
    DesyncError,
    FrameError,
    GarbageError,
    Gt06Error,
    LengthError,
    NotLoggedInError,
    StopBitsError,
    UnknownProtocolError,
)
from m2mhub.connect.trackers.gt06.framing import Deframer, Frame, crc_itu
from m2mhub.connect.trackers.gt06.packets import (
    AddressRequest,
    AlarmReport,
    Cell,
    CellLocation,
    GpsFix,
    Location,
    Login,
    Packet,
    Status,
    StringInfo,
    TerminalInfo,
    TimeRequest,
)
from m2mhub.connect.trackers.gt06.readings import to_values
from m2mhub.connect.trackers.gt06.session import Gt06Session, Received

__all__ = [
    "AddressRequest",
    "Alarm",
    "AlarmReport",
    "Cell",
    "CellLocation",
    "CrcError",
    "DecodeError",
    "Deframer",
    "DesyncError",
    "Frame",
    "FrameError",
    "GarbageError",
    "GpsFix",
    "Gt06Error",
    "Gt06Session",
    "LengthError",
    "Location",
    "Login",
    "NotLoggedInError",
    "Packet",
    "Protocol",
    "Received",
    "Status",
    "StopBitsError",
    "StringInfo",
    "TerminalAlarm",
    "TerminalInfo",
    "TimeRequest",
    "UnknownProtocolError",
    "crc_itu",
    "decode_frame",
    "encode_ack",
    "encode_command",
    "encode_frame",
    "encode_login_ack",
    "encode_time_response",
    "to_values",
]
