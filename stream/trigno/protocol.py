"""The Delsys Trigno SDK TCP protocol as far as public open-source clients show it.

Nothing here touches a socket: ports, command framing, reply parsing and data-port layouts are pure
values and functions, shared by the client (``stream.trigno.client``) and the emulator
(``stream.trigno.emulator``). docs/TRIGNO.md says which details more than one public client
confirms and which rest on a single source.

Command port (50040): ASCII commands, each terminated by CR LF CR LF; every reply (and the banner
sent on connect) is terminated the same way. Data ports: raw float32 rows, no header, no timestamp,
one row per sample period holding a value for each of the 16 base-station slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from stream.wire.rates import FRAME_PERIOD_S

COMMAND_PORT = 50040
LEGACY_EMG_PORT = 50041
LEGACY_AUX_PORT = 50042
EMG_PORT = 50043
AUX_PORT = 50044

TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = "Delsys Trigno System Digital Protocol Version"
PROTOCOL_VERSION = "3.6.0"
SLOT_COUNT = 16
FLOAT_BYTES = 4
MAX_REPLY_BYTES = 4096  # a reply longer than this is garbage, not a Trigno reply
# Samples per 13.5 ms frame that the base's settings impose on every sensor mode (public clients'
# reports; docs/TRIGNO.md): backwards compatibility resamples to 1111.1 Hz EMG and 148.1 Hz AUX,
# upsampling gives 2000 Hz EMG. With backwards compatibility off each sensor sends at its mode's rates.
LEGACY_EMG_SAMPLES = 15
LEGACY_AUX_SAMPLES = 2
UPSAMPLED_EMG_SAMPLES = 27

# Error replies. Clients that check for errors look for "INVALID"; "CANNOT COMPLETE" is what the
# emulator answers to a well-formed request it cannot carry out (an empty slot, a channel that
# does not exist).
INVALID_COMMAND = "INVALID COMMAND"
CANNOT_COMPLETE = "CANNOT COMPLETE"

# What SENSOR n CHANNEL c UNITS? may answer, and the factor to our units (mV, g, deg/s).
UNIT_FACTORS = {
    "V": ("emg", 1000.0),
    "mV": ("emg", 1.0),
    "g": ("acc", 1.0),
    "deg/s": ("gyro", 1.0),
    "°/s": ("gyro", 1.0),
    "dps": ("gyro", 1.0),
    "rad/s": ("gyro", 57.29577951308232),
}


class TrignoProtocolError(ConnectionError):
    """The server said something that is not the Trigno protocol, or refused a request.

    A ConnectionError (an OSError) so that a daemon reading a source treats it as the source
    failing; reconnecting does not retry it (the peer is not a Trigno server, or refuses us)."""


@dataclass(frozen=True)
class DataLayout:
    """Which values one data-port row carries for each slot."""

    name: str
    aux_values_per_slot: int
    has_gyroscope: bool

    @property
    def emg_row_values(self) -> int:
        return SLOT_COUNT

    @property
    def aux_row_values(self) -> int:
        return SLOT_COUNT * self.aux_values_per_slot

    @property
    def emg_row_bytes(self) -> int:
        return self.emg_row_values * FLOAT_BYTES

    @property
    def aux_row_bytes(self) -> int:
        return self.aux_row_values * FLOAT_BYTES


# 50041/50042: 16 EMG values, 48 AUX values (accelerometer x, y, z per slot).
LEGACY_LAYOUT = DataLayout("legacy", aux_values_per_slot=3, has_gyroscope=False)
# 50043/50044: 16 EMG values, 144 AUX values (acc xyz, gyro xyz, magnetometer xyz per slot).
IMU_LAYOUT = DataLayout("imu", aux_values_per_slot=9, has_gyroscope=True)


def layout_for(legacy_aux: bool) -> DataLayout:
    return LEGACY_LAYOUT if legacy_aux else IMU_LAYOUT


def encode_command(command: str) -> bytes:
    """One command as sent on the wire. Refuses text that would break the framing."""
    if not command or command != command.strip():
        raise ValueError(f"command {command!r} must be non-empty without leading/trailing whitespace")
    if "\r" in command or "\n" in command:
        raise ValueError(f"command {command!r} must not contain CR or LF (they frame commands)")
    try:
        return command.encode("ascii") + TERMINATOR
    except UnicodeEncodeError:
        raise ValueError(f"command {command!r} must be ASCII") from None


class MessageSplitter:
    """Splits a byte stream into CR LF CR LF terminated messages, whatever the read sizes were.

    ``feed(data)`` returns the messages completed by ``data`` (decoded, without the terminator).
    A message that is not ASCII or grows past ``MAX_REPLY_BYTES`` raises TrignoProtocolError:
    the peer is not speaking this protocol.
    """

    def __init__(self, max_bytes: int = MAX_REPLY_BYTES) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        messages = []
        while True:
            end = self._buffer.find(TERMINATOR)
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + len(TERMINATOR)]
            messages.append(_decode(raw))
        if len(self._buffer) > self._max_bytes:
            raise TrignoProtocolError(
                f"{len(self._buffer)} bytes without a CR LF CR LF terminator: the peer is not speaking the "
                "Trigno command protocol (wrong port?)"
            )
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TrignoProtocolError(f"non-ASCII bytes on the command port: {raw[:40]!r}") from None


def parse_banner(message: str) -> str:
    """The protocol version from the connect banner, or TrignoProtocolError."""
    if not message.startswith(BANNER_PREFIX):
        raise TrignoProtocolError(
            f"expected a banner starting {BANNER_PREFIX!r}, got {message[:80]!r}: is this the Trigno Control "
            "Utility's command port (default 50040)?"
        )
    return message[len(BANNER_PREFIX):].strip()


def is_error_reply(reply: str) -> bool:
    return reply.startswith("INVALID") or reply.startswith(CANNOT_COMPLETE)


def check_reply(command: str, reply: str) -> str:
    if is_error_reply(reply):
        raise TrignoProtocolError(f"{command!r} was refused: {reply!r}")
    return reply


def parse_yes_no(command: str, reply: str) -> bool:
    """YES/NO, ON/OFF, and the 'UPSAMPLING ON' form one public client reports."""
    word = check_reply(command, reply).upper().split()[-1] if reply.strip() else ""
    if word in ("YES", "ON", "TRUE"):
        return True
    if word in ("NO", "OFF", "FALSE"):
        return False
    raise TrignoProtocolError(f"{command!r}: expected YES or NO, got {reply!r}")


def parse_int(command: str, reply: str) -> int:
    try:
        return int(check_reply(command, reply))
    except ValueError:
        raise TrignoProtocolError(f"{command!r}: expected an integer, got {reply!r}") from None


def parse_float(command: str, reply: str) -> float:
    try:
        value = float(check_reply(command, reply))
    except ValueError:
        raise TrignoProtocolError(f"{command!r}: expected a number, got {reply!r}") from None
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; no Trigno setting is either
        raise TrignoProtocolError(f"{command!r}: expected a finite number, got {reply!r}")
    return value


def exact_rate(rate_hz: float) -> Fraction:
    """The exact Trigno rate a printed rate stands for: a whole number of samples per 13.5 ms frame.

    The server prints rates rounded (``1111.111``, ``148.148``); every Trigno rate is n/13.5 ms.
    """
    samples = rate_hz * float(FRAME_PERIOD_S)
    whole = round(samples)
    if whole < 1 or abs(samples - whole) > 0.01:
        raise TrignoProtocolError(
            f"rate {rate_hz} Hz is not a whole number of samples per 13.5 ms frame ({samples:.4f})"
        )
    return Fraction(whole) / FRAME_PERIOD_S


def format_rate(rate_hz: Fraction) -> str:
    """A rate as the server prints it (three decimals)."""
    return f"{float(rate_hz):.3f}"


def unit_factor(unit: str) -> tuple[str, float]:
    """(modality, factor to our units) for a UNITS? reply, or TrignoProtocolError."""
    try:
        return UNIT_FACTORS[unit.strip()]
    except KeyError:
        raise TrignoProtocolError(
            f"unit {unit!r} is not one this client converts; known: {', '.join(UNIT_FACTORS)}"
        ) from None
