"""Wire constants of the Teltonika protocols.

Source: Teltonika's "Teltonika Data Sending Protocols" (formerly "Codec") wiki
page, https://wiki.teltonika-gps.com/view/Teltonika_Data_Sending_Protocols,
unless a comment says otherwise.
"""

from __future__ import annotations

from typing import Final

# -- Codec ids: the first byte of the data field -------------------------------------------
CODEC_8: Final = 0x08  # AVL data, 1-byte IO ids and counts
CODEC_8E: Final = 0x8E  # Codec 8 Extended: 2-byte IO ids and counts, variable-length IO
CODEC_16: Final = 0x10  # AVL data with 2-byte IO ids and a generation type per record
CODEC_12: Final = 0x0C  # GPRS commands (server -> device) and their responses

#: Codecs whose data field is a list of AVL records.
AVL_CODECS: Final = frozenset({CODEC_8, CODEC_8E, CODEC_16})
#: Every codec this package decodes.
KNOWN_CODECS: Final = AVL_CODECS | {CODEC_12}

# -- TCP handshake ------------------------------------------------------------------------------
#: An IMEI is 15 decimal digits (3GPP TS 23.003, 6.2.1), sent as ASCII after a 2-byte length.
IMEI_LENGTH: Final = 15
IMEI_ACCEPT: Final = b"\x01"
IMEI_REJECT: Final = b"\x00"

# -- TCP packet layout --------------------------------------------------------------------------
PREAMBLE: Final = b"\x00\x00\x00\x00"
#: Preamble (4) and data field length (4).
HEADER_SIZE: Final = 8
#: The CRC field is 4 bytes: two zero bytes, then CRC-16/IBM of the data field.
CRC_FIELD_SIZE: Final = 4
#: Codec id, number of data 1 and number of data 2: the smallest data field that parses.
MIN_DATA_LENGTH: Final = 3
#: Teltonika caps an AVL packet at 1280 bytes (512 on FMB63x/64x, FM63xy); Codec 12 answers
#: stay well below. 16 KiB leaves room for firmware that sends more while still rejecting
#: garbage read as a length (four ASCII bytes make a length above 800 MB).
MAX_DATA_LENGTH: Final = 16 * 1024

# -- UDP channel --------------------------------------------------------------------------------
#: The byte after the packet id is "not usable"; devices send 0x01 and so does the server ack.
UDP_UNUSED_BYTE: Final = 0x01
#: A UDP ack is 5 bytes after its 2-byte length: packet id, unused byte, AVL packet id, count.
UDP_ACK_LENGTH: Final = 5

# -- Codec 12 message types ---------------------------------------------------------------------
CODEC12_COMMAND: Final = 0x05  # server -> device
CODEC12_RESPONSE: Final = 0x06  # device -> server

# -- AVL record priority ------------------------------------------------------------------------
PRIORITY_LOW: Final = 0
PRIORITY_HIGH: Final = 1
PRIORITY_PANIC: Final = 2

# -- Codec 16 generation types ------------------------------------------------------------------
GENERATION_ON_EXIT: Final = 0
GENERATION_ON_ENTRANCE: Final = 1
GENERATION_ON_BOTH: Final = 2
GENERATION_HYSTERESIS: Final = 4
GENERATION_ON_CHANGE: Final = 5
GENERATION_EVENTUAL: Final = 6
GENERATION_PERIODICAL: Final = 7

# -- Well-known AVL IO element ids --------------------------------------------------------------
# From Teltonika's "FMB Teltonika Data Sending Parameters ID" tables ("Permanent I/O
# elements", e.g. https://wiki.teltonika-gps.com/view/FMB920_Teltonika_Data_Sending_Parameters_ID);
# the same ids hold across the FMB/FMC/FMM/FMT families. Width and unit as sent.
IO_DIGITAL_INPUT_1: Final = 1  # 1 byte, 0/1
IO_DIGITAL_INPUT_2: Final = 2  # 1 byte, 0/1
IO_ANALOG_INPUT_1: Final = 9  # 2 bytes, mV
IO_TOTAL_ODOMETER: Final = 16  # 4 bytes, m
IO_GSM_SIGNAL: Final = 21  # 1 byte, 0-5 bars
IO_SPEED: Final = 24  # 2 bytes, km/h (GNSS speed)
IO_EXTERNAL_VOLTAGE: Final = 66  # 2 bytes, mV
IO_BATTERY_VOLTAGE: Final = 67  # 2 bytes, mV
IO_BATTERY_CURRENT: Final = 68  # 2 bytes, mA
IO_GNSS_STATUS: Final = 69  # 1 byte: 0 off, 1 on with fix, 2 on without fix, 3 sleep
IO_DATA_MODE: Final = 80  # 1 byte: home/roaming/unknown, on stop/moving
IO_FUEL_LEVEL: Final = 89  # 1 byte, % (from the CAN bus or LV-CAN adapter)
IO_BATTERY_LEVEL: Final = 113  # 1 byte, %
IO_DIGITAL_OUTPUT_1: Final = 179  # 1 byte, 0/1
IO_DIGITAL_OUTPUT_2: Final = 180  # 1 byte, 0/1
IO_GNSS_PDOP: Final = 181  # 2 bytes, x0.1
IO_GNSS_HDOP: Final = 182  # 2 bytes, x0.1
IO_TRIP_ODOMETER: Final = 199  # 4 bytes, m
IO_SLEEP_MODE: Final = 200  # 1 byte: 0 none, 1 GPS, 2 deep, 3 online, 4 ultra
IO_GSM_CELL_ID: Final = 205  # 2 bytes
IO_GSM_AREA_CODE: Final = 206  # 2 bytes
IO_IGNITION: Final = 239  # 1 byte, 0/1
IO_MOVEMENT: Final = 240  # 1 byte, 0/1
IO_ACTIVE_GSM_OPERATOR: Final = 241  # 4 bytes, MCC+MNC
