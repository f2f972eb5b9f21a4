"""Wire constants of the GT06 / Concox protocol.

Sources: the "GT06 GPS Tracker Communication Protocol" document (v1.8) and Concox's
later GT06N / GK310 revisions, which keep the frame and add protocol numbers. Numbers
named "Concox" below are those later additions.
"""

from __future__ import annotations

import enum
from typing import Final

#: Start bits of a frame whose length field is one byte.
START_SHORT: Final = b"\x78\x78"
#: Start bits of a frame whose length field is two bytes (Concox, long payloads).
START_LONG: Final = b"\x79\x79"
#: Stop bits closing every frame.
STOP: Final = b"\x0d\x0a"

#: The length field counts protocol number, content, serial number and CRC:
#: an empty content gives 1 + 2 + 2.
MIN_LENGTH: Final = 5
#: A short frame's length is one byte by construction.
MAX_SHORT_LENGTH: Final = 0xFF
#: Longest long frame accepted. The largest published frames (0x94 information
#: transmissions, 0x70 modular GPS) stay under 300 bytes; a larger value in a length
#: field is a false start in garbage, so give up on it at once instead of waiting.
MAX_LONG_LENGTH: Final = 1024
#: Bytes dropped (garbage, false starts, corrupt frames) since the last good frame
#: after which a connection is considered unable to resynchronise.
MAX_JUNK_BYTES: Final = 4096


class Protocol(enum.IntEnum):
    """Protocol numbers: the byte after the length field."""

    LOGIN = 0x01
    GPS = 0x10  # Concox: GPS only
    LBS = 0x11  # Concox: cell tower only
    GPS_LBS = 0x12  # GT06: the position report
    STATUS = 0x13  # GT06: status information, the heartbeat
    STRING_INFO = 0x15  # GT06: the device's answer to an online command
    ALARM = 0x16  # GT06: GPS, LBS and status with an alarm
    GPS_ADDRESS_REQUEST = 0x1A  # GT06: the device asks for a street address by SMS
    STRING_INFO_LONG = 0x21  # Concox: command answer in a 0x7979 frame, ASCII or UTF-16
    GPS_LBS_2 = 0x22  # Concox GT06N: position with ACC and upload mode
    HEARTBEAT = 0x23  # Concox GK310: heartbeat with the battery voltage in 0.01 V
    ALARM_2 = 0x26  # Concox GT06N: alarm, same layout as 0x16
    COMMAND = 0x80  # GT06: online command, server -> device
    TIME_REQUEST = 0x8A  # Concox: the device asks for the time


class Alarm(enum.IntEnum):
    """Alarm byte of status and alarm packets (the first of "alarm/language")."""

    NORMAL = 0x00
    SOS = 0x01
    POWER_CUT = 0x02
    SHOCK = 0x03
    FENCE_IN = 0x04
    FENCE_OUT = 0x05
    OVERSPEED = 0x06  # Concox GT06N
    DISPLACEMENT = 0x09  # Concox GT06N: moved while the defence was on


class TerminalAlarm(enum.IntEnum):
    """Bits 5..3 of the terminal information byte."""

    NORMAL = 0b000
    SHOCK = 0b001
    POWER_CUT = 0b010
    LOW_BATTERY = 0b011
    SOS = 0b100


class Language(enum.IntEnum):
    """Second byte of "alarm/language": the language of the device's SMS replies."""

    CHINESE = 0x01
    ENGLISH = 0x02


# Terminal information byte (status and alarm packets), GT06 document 5.4.1.1.
TERMINAL_FUEL_CUT: Final = 0x80  # oil and electricity disconnected (relay engaged)
TERMINAL_GPS_TRACKING: Final = 0x40
TERMINAL_CHARGING: Final = 0x04
TERMINAL_ACC_HIGH: Final = 0x02  # ignition on
TERMINAL_DEFENCE: Final = 0x01
TERMINAL_ALARM_SHIFT: Final = 3
TERMINAL_ALARM_MASK: Final = 0b111

# Course/status word of GPS packets, GT06 document 5.2.1.8.
COURSE_MASK: Final = 0x03FF
STATUS_NORTH: Final = 0x0400  # latitude north (else south)
STATUS_WEST: Final = 0x0800  # longitude west (else east)
STATUS_POSITIONED: Final = 0x1000  # the GPS has a fix
STATUS_DIFFERENTIAL: Final = 0x2000  # differential fix (else real time)
# Concox units use the two bits the GT06 document leaves at 0 for the ignition: bit 14
# says the word carries ACC, bit 15 is ACC (as Traccar reads them).
STATUS_HAS_ACC: Final = 0x4000
STATUS_ACC_ON: Final = 0x8000

#: Latitude and longitude are minutes x 30000, i.e. degrees x 1 800 000.
COORDINATE_SCALE: Final = 1_800_000

#: Voltage level of a status packet: 0 (no power) .. 6 (very high).
MAX_VOLTAGE_LEVEL: Final = 6
#: GSM signal of a status packet: 0 (no signal) .. 4 (strong).
MAX_GSM_SIGNAL: Final = 4

# Login "time zone / language" word (Concox GT06N): bits 15..4 hold the offset as
# hours x 100 + minutes, bit 3 is set for west of Greenwich.
TIMEZONE_WEST: Final = 0x0008
TIMEZONE_SHIFT: Final = 4

#: The phone number field of a GPS address request is 21 ASCII bytes.
PHONE_NUMBER_LENGTH: Final = 21

#: String info encoding byte of 0x21 packets.
ENCODING_ASCII: Final = 0x01
ENCODING_UTF16: Final = 0x02

#: Commands used for engine cut-off on GT06 family units ("Relay" is accepted in
#: either case by the firmware; the manual writes it upper case).
COMMAND_ENGINE_STOP: Final = "RELAY,1#"
COMMAND_ENGINE_RESUME: Final = "RELAY,0#"
COMMAND_WHERE: Final = "WHERE#"
