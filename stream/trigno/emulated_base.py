"""The emulator's base station: settings, sensors and the reply to every command. No sockets.

``EmulatedBase.reply(command)`` is the whole command protocol of the emulator, so tests call it
directly; ``stream.trigno.emulator`` only moves bytes. Replies follow what public clients expect
(docs/TRIGNO.md lists which are confirmed by more than one): ``OK`` for accepted settings,
``YES``/``NO`` for yes/no queries, ``UPSAMPLING ON|OFF``, numbers printed plainly, ``INVALID
COMMAND`` for what it does not understand and ``CANNOT COMPLETE`` for a well-formed request it
cannot carry out (an empty slot, a channel that does not exist, a setting changed while running).

Rates follow the base station's settings as public clients report them, and the sensors' mode
(``SENSOR_MODES``, one per Trigno ``[sensors] profile``): with backwards compatibility on and
upsampling off every sensor is resampled to 1111.1 Hz EMG (15 samples per 13.5 ms frame) and
148.1 Hz AUX (2); upsampling on gives 2000 Hz EMG (27). With backwards compatibility off the
sensors send at their mode's own rates: the default mode's 1925.9 Hz EMG (26) and 148.1 Hz AUX, or
the profile's rates for the other modes (trigno-emg1926: 26 EMG + 1 AUX sample per frame). A mode
without a gyroscope (or without any AUX channel) reports fewer AUX channels; its slots' values for
the missing channels are zeros on the data ports. When the frame source's rates are not the base's,
the emulator sends a sample-and-hold copy, good for protocol tests, not for signal processing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from stream.trigno.protocol import (
    CANNOT_COMPLETE,
    INVALID_COMMAND,
    LEGACY_AUX_SAMPLES,
    LEGACY_EMG_SAMPLES,
    PROTOCOL_VERSION,
    SLOT_COUNT,
    UPSAMPLED_EMG_SAMPLES,
    format_rate,
)
from stream.wire.rates import FRAME_PERIOD_S

OK = "OK"
ACC_CHANNELS = 3  # AUX channels of a sensor with an accelerometer only
IMU_CHANNELS = 6  # accelerometer x, y, z, then gyroscope x, y, z
_SENSOR_COMMAND = re.compile(r"^SENSOR (\d+) (.+)$")
_CHANNEL_QUERY = re.compile(r"^CHANNEL (\d+) (RATE|GAIN|UNITS|SAMPLES)\?$")


@dataclass(frozen=True)
class SensorMode:
    """What a sensor sends with backwards compatibility off. Named after the ``[sensors]`` profile
    whose layout it streams; the default ``trigno`` profile is this mode's output with backwards
    compatibility on (the client's default), as the sensors' own EMG rate is 1925.9 Hz."""

    name: str
    number: int  # what MODE? answers; our numbering (the client reports it, never relies on it)
    emg_samples_per_frame: int
    aux_samples_per_frame: int
    aux_channel_count: int  # IMU_CHANNELS, ACC_CHANNELS or 0

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("emg", "acc", "gyro")[:1 + self.aux_channel_count // ACC_CHANNELS]


# Samples per frame are the profiles' rates (tests/trigno/test_trigno_modes.py checks them); the
# sEMG-only mode still frames AUX at 148.1 Hz (our assumption: the AUX port then carries zeros for its
# slots, and the client does not read it).
SENSOR_MODES = {mode.name: mode for mode in (
    SensorMode("trigno", 40, 26, 2, IMU_CHANNELS),
    SensorMode("trigno-emg1259", 41, 17, 2, IMU_CHANNELS),
    SensorMode("trigno-emg1926", 42, 26, 1, IMU_CHANNELS),
    SensorMode("trigno-emg2148", 43, 29, 1, IMU_CHANNELS),
    SensorMode("trigno-emg-acc", 7, 15, 2, ACC_CHANNELS),
    SensorMode("trigno-emg", 1, 15, 2, 0),
)}
DEFAULT_MODE = "trigno"


def sensor_mode(name: str) -> SensorMode:
    try:
        return SENSOR_MODES[name]
    except KeyError:
        raise ValueError(f"unknown sensor mode {name!r}; known: {', '.join(SENSOR_MODES)}") from None


@dataclass(frozen=True)
class EmulatedSensor:
    """One paired sensor: one EMG channel, then accelerometer x, y, z, then (IMU sensors) gyro x, y, z,
    as far as its mode has them. A legacy sensor (``has_gyroscope=False``) stops at the accelerometer."""

    slot: int
    has_gyroscope: bool = True
    sensor_mode: SensorMode = SENSOR_MODES[DEFAULT_MODE]

    @property
    def type_code(self) -> str:
        return "O" if self.has_gyroscope else "A"

    @property
    def mode(self) -> int:
        # A legacy (accelerometer-only) sensor reports its own mode only where the base's mode would
        # give it a gyroscope; in an sEMG + acc or sEMG-only mode it runs that mode like any other.
        legacy_differs = not self.has_gyroscope and self.sensor_mode.aux_channel_count > ACC_CHANNELS
        return 7 if legacy_differs else self.sensor_mode.number

    @property
    def aux_channel_count(self) -> int:
        return min(self.sensor_mode.aux_channel_count, IMU_CHANNELS if self.has_gyroscope else ACC_CHANNELS)

    @property
    def channel_count(self) -> int:
        return 1 + self.aux_channel_count


@dataclass
class EmulatedBase:
    """Settings and sensors of the emulated base station; ``reply`` answers one command."""

    sensors: dict[int, EmulatedSensor]
    mode: SensorMode = SENSOR_MODES[DEFAULT_MODE]
    backwards_compatibility: bool = True
    upsampling: bool = False
    big_endian: bool = False
    running: bool = False
    commands_seen: int = 0
    errors_replied: int = 0
    log: list[str] = field(default_factory=list)

    @classmethod
    def with_slots(cls, slots, acc_only_slots=(), mode: str = DEFAULT_MODE) -> EmulatedBase:
        slots = tuple(slots)
        for slot in (*slots, *acc_only_slots):
            if not 1 <= slot <= SLOT_COUNT:
                raise ValueError(f"slot {slot} is not 1-{SLOT_COUNT}")
        chosen = sensor_mode(mode)
        return cls({slot: EmulatedSensor(slot, slot not in acc_only_slots, chosen) for slot in slots}, chosen)

    @property
    def emg_samples_per_frame(self) -> int:
        if self.upsampling:
            return UPSAMPLED_EMG_SAMPLES
        return LEGACY_EMG_SAMPLES if self.backwards_compatibility else self.mode.emg_samples_per_frame

    @property
    def aux_samples_per_frame(self) -> int:
        return LEGACY_AUX_SAMPLES if self.backwards_compatibility else self.mode.aux_samples_per_frame

    @property
    def emg_rate_hz(self) -> Fraction:
        return self.emg_samples_per_frame / FRAME_PERIOD_S

    @property
    def aux_rate_hz(self) -> Fraction:
        return self.aux_samples_per_frame / FRAME_PERIOD_S

    def reply(self, command: str) -> str:
        """The reply to one command (already stripped of its terminator)."""
        self.commands_seen += 1
        words = " ".join(command.upper().split())
        answer = self._answer(words)
        if answer in (INVALID_COMMAND, CANNOT_COMPLETE):
            self.errors_replied += 1
        self.log.append(words)
        del self.log[:-100]
        return answer

    def _answer(self, words: str) -> str:
        simple = {
            "START": self._start,
            "STOP": self._stop,
            "QUIT": lambda: "BYE",
            "VERSION?": lambda: PROTOCOL_VERSION,
            "MASTER?": lambda: "YES",
            "MASTER": lambda: "NEW MASTER",
            "BACKWARDS COMPATIBILITY?": lambda: _yes_no(self.backwards_compatibility),
            "UPSAMPLING?": lambda: "UPSAMPLING " + ("ON" if self.upsampling else "OFF"),
            "ENDIANNESS?": lambda: "BIG" if self.big_endian else "LITTLE",
            "FRAME INTERVAL?": lambda: f"{float(FRAME_PERIOD_S):.4f}",
            "MAX SAMPLES EMG?": lambda: str(self.emg_samples_per_frame),
            "MAX SAMPLES AUX?": lambda: str(self.aux_samples_per_frame),
        }
        if words in simple:
            return simple[words]()
        settings = {
            "BACKWARDS COMPATIBILITY ON": ("backwards_compatibility", True),
            "BACKWARDS COMPATIBILITY OFF": ("backwards_compatibility", False),
            "UPSAMPLE ON": ("upsampling", True),
            "UPSAMPLE OFF": ("upsampling", False),
            "ENDIAN BIG": ("big_endian", True),
            "ENDIAN LITTLE": ("big_endian", False),
        }
        if words in settings:
            if self.running:
                return CANNOT_COMPLETE
            name, value = settings[words]
            setattr(self, name, value)
            return OK
        match = _SENSOR_COMMAND.match(words)
        if match:
            return self._sensor_answer(int(match.group(1)), match.group(2))
        return INVALID_COMMAND

    def _start(self) -> str:
        self.running = True
        return OK

    def _stop(self) -> str:
        self.running = False
        return OK

    def _sensor_answer(self, slot: int, query: str) -> str:
        if not 1 <= slot <= SLOT_COUNT:
            return CANNOT_COMPLETE
        sensor = self.sensors.get(slot)
        if query == "PAIRED?":
            return _yes_no(sensor is not None)
        if query == "ACTIVE?":
            return _yes_no(sensor is not None)
        known = {"TYPE?", "MODE?", "CHANNELCOUNT?", "EMGCHANNELCOUNT?", "AUXCHANNELCOUNT?", "STARTINDEX?",
                 "SERIAL?", "FIRMWARE?"}
        channel = _CHANNEL_QUERY.match(query)
        if query not in known and channel is None:
            return INVALID_COMMAND
        if sensor is None:
            return CANNOT_COMPLETE
        if channel is not None:
            return self._channel_answer(sensor, int(channel.group(1)), channel.group(2))
        return {
            "TYPE?": sensor.type_code,
            "MODE?": str(sensor.mode),
            "CHANNELCOUNT?": str(sensor.channel_count),
            "EMGCHANNELCOUNT?": "1",
            "AUXCHANNELCOUNT?": str(sensor.aux_channel_count),
            "STARTINDEX?": str(slot),
            "SERIAL?": f"SID EMULATED-{slot:02d}",
            "FIRMWARE?": "EMULATED 1.0",
        }[query]

    def _channel_answer(self, sensor: EmulatedSensor, channel: int, what: str) -> str:
        if not 1 <= channel <= sensor.channel_count:
            return CANNOT_COMPLETE
        if channel == 1:
            rate, samples, unit = self.emg_rate_hz, self.emg_samples_per_frame, "V"
        else:
            rate, samples = self.aux_rate_hz, self.aux_samples_per_frame
            unit = "g" if channel <= 1 + ACC_CHANNELS else "deg/s"
        return {"RATE": format_rate(rate), "GAIN": "1.000", "UNITS": unit, "SAMPLES": str(samples)}[what]


def _yes_no(value: bool) -> str:
    return "YES" if value else "NO"
