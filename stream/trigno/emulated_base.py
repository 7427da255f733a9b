"""The emulator's base station: settings, sensors and the reply to every command. No sockets.

``EmulatedBase.reply(command)`` is the whole command protocol of the emulator, so tests call it
directly; ``stream.trigno.emulator`` only moves bytes. Replies follow what public clients expect
(docs/TRIGNO.md lists which are confirmed by more than one): ``OK`` for accepted settings,
``YES``/``NO`` for yes/no queries, ``UPSAMPLING ON|OFF``, numbers printed plainly, ``INVALID
COMMAND`` for what it does not understand and ``CANNOT COMPLETE`` for a well-formed request it
cannot carry out (an empty slot, a channel that does not exist, a setting changed while running).

Rates follow the base station's modes as public clients report them: with backwards compatibility
on and upsampling off, EMG runs at 1111.1 Hz (15 samples per 13.5 ms frame); upsampling on gives
2000 Hz (27), backwards compatibility off the sensors' native 1925.9 Hz (26). AUX is always 148.1 Hz
(2). The emulator's frame source is at 1111.1 Hz; at the other rates it sends a sample-and-hold
copy, good for protocol tests, not for signal processing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from stream.trigno.protocol import CANNOT_COMPLETE, INVALID_COMMAND, PROTOCOL_VERSION, SLOT_COUNT, format_rate
from stream.wire.rates import FRAME_PERIOD_S

OK = "OK"
EMG_SAMPLES_BY_MODE = {  # (backwards compatibility, upsampling) -> EMG samples per frame
    (True, False): 15,
    (True, True): 27,
    (False, True): 27,
    (False, False): 26,
}
AUX_SAMPLES_PER_FRAME = 2
_SENSOR_COMMAND = re.compile(r"^SENSOR (\d+) (.+)$")
_CHANNEL_QUERY = re.compile(r"^CHANNEL (\d+) (RATE|GAIN|UNITS|SAMPLES)\?$")


@dataclass(frozen=True)
class EmulatedSensor:
    """One paired sensor: one EMG channel, then accelerometer x, y, z, then (IMU sensors) gyro x, y, z."""

    slot: int
    has_gyroscope: bool = True

    @property
    def type_code(self) -> str:
        return "O" if self.has_gyroscope else "A"

    @property
    def mode(self) -> int:
        return 40 if self.has_gyroscope else 7

    @property
    def aux_channel_count(self) -> int:
        return 6 if self.has_gyroscope else 3

    @property
    def channel_count(self) -> int:
        return 1 + self.aux_channel_count


@dataclass
class EmulatedBase:
    """Settings and sensors of the emulated base station; ``reply`` answers one command."""

    sensors: dict[int, EmulatedSensor]
    backwards_compatibility: bool = True
    upsampling: bool = False
    big_endian: bool = False
    running: bool = False
    commands_seen: int = 0
    errors_replied: int = 0
    log: list[str] = field(default_factory=list)

    @classmethod
    def with_slots(cls, slots, acc_only_slots=()) -> EmulatedBase:
        slots = tuple(slots)
        for slot in (*slots, *acc_only_slots):
            if not 1 <= slot <= SLOT_COUNT:
                raise ValueError(f"slot {slot} is not 1-{SLOT_COUNT}")
        return cls({slot: EmulatedSensor(slot, slot not in acc_only_slots) for slot in slots})

    @property
    def emg_samples_per_frame(self) -> int:
        return EMG_SAMPLES_BY_MODE[(self.backwards_compatibility, self.upsampling)]

    @property
    def emg_rate_hz(self) -> Fraction:
        return self.emg_samples_per_frame / FRAME_PERIOD_S

    @property
    def aux_rate_hz(self) -> Fraction:
        return AUX_SAMPLES_PER_FRAME / FRAME_PERIOD_S

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
            "MAX SAMPLES AUX?": lambda: str(AUX_SAMPLES_PER_FRAME),
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
            rate, samples = self.aux_rate_hz, AUX_SAMPLES_PER_FRAME
            unit = "g" if channel <= 4 else "deg/s"
        return {"RATE": format_rate(rate), "GAIN": "1.000", "UNITS": unit, "SAMPLES": str(samples)}[what]


def _yes_no(value: bool) -> str:
    return "YES" if value else "NO"
