"""Our LSL streams (names, types, channel metadata) and the checks on streams we read.

One LSL stream per modality of the layout, named ``<prefix>-<modality>``, with the channel labels,
units and types in ``desc/channels`` (the XDF meta-data convention), and the exact rate in
``desc/signstream/exact_rate`` as a "p/q" string: LSL's ``nominal_srate`` is a double, and 10000/9 Hz
is not one. Sign events go out on ``<prefix>-markers`` (type ``Markers``, irregular rate, one string
channel). A stream read from elsewhere is accepted when its channel count is the layout's and its
nominal rate equals the layout's exact rate to within float precision; anything else is refused
naming both.
"""

from __future__ import annotations

import math
from fractions import Fraction

from stream.wire.rates import rate_to_string

STREAM_TYPES = {"emg": "EMG", "acc": "Accelerometer", "gyro": "Gyroscope"}
CHANNEL_TYPES = {"emg": "EMG", "acc": "ACC", "gyro": "GYRO"}
MARKER_TYPE = "Markers"
EXACT_RATE_KEY = "exact_rate"
RATE_RELATIVE_TOLERANCE = 1e-9  # a double holds ~16 digits; LSL tools may print and re-read a few fewer


class LslStreamError(ValueError):
    """An LSL stream that does not fit the configured layout, or that cannot be found."""


def stream_name(prefix: str, modality: str) -> str:
    return f"{prefix}-{modality}"


def marker_stream_name(prefix: str) -> str:
    return f"{prefix}-markers"


def rates_agree(nominal_hz: float, exact_hz: Fraction) -> bool:
    """A stream's double nominal rate is the layout's exact rate (within float precision)."""
    return math.isclose(float(nominal_hz), float(exact_hz), rel_tol=RATE_RELATIVE_TOLERANCE, abs_tol=0.0)


def check_stream(where: str, modality: str, channel_count: int, nominal_hz: float, layout,
                 exact_rate: str = "") -> None:
    """Raise LslStreamError naming ``where`` unless the stream fits ``layout``'s ``modality``.
    ``exact_rate``: the stream's own exact rate (our desc key), checked when present."""
    expected_channels = layout.channel_count(modality)
    rate = layout.rate(modality)
    if channel_count != expected_channels:
        raise LslStreamError(
            f"{where}: {channel_count} channels; the layout ({layout.describe()}) has {expected_channels} {modality} "
            f"channels ({', '.join(layout.channels(modality)[:3])}, ...): choose the right stream in [acquire.lsl] "
            f"or the matching [sensors] profile")
    if not rates_agree(nominal_hz, rate):
        raise LslStreamError(
            f"{where}: nominal rate {nominal_hz!r} Hz is not the layout's {modality} rate {rate_to_string(rate)} Hz "
            f"({float(rate)!r}): signstream never resamples a live stream; use a [sensors] profile or rates that "
            f"match the device")
    if exact_rate:
        try:
            given = Fraction(exact_rate)
        except (ValueError, ZeroDivisionError):
            raise LslStreamError(f"{where}: desc/{EXACT_RATE_KEY} {exact_rate!r} is not a 'p/q' rate") from None
        if given != rate:
            raise LslStreamError(f"{where}: exact rate {exact_rate} Hz is not the layout's {modality} rate "
                                 f"{rate_to_string(rate)} Hz")


def outlet_info(pylsl, layout, modality: str, prefix: str, source_id: str, session: str = ""):
    """The StreamInfo of our outlet for ``modality``: labels, units, types and the exact rate."""
    stream = next(stream for stream in layout.streams if stream.modality == modality)
    info = pylsl.StreamInfo(stream_name(prefix, modality), STREAM_TYPES[modality], len(stream.channels),
                            float(stream.rate_hz), pylsl.cf_float32, f"{source_id}-{modality}")
    description = info.desc()
    channels = description.append_child("channels")
    for label in stream.channels:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", stream.unit)
        channel.append_child_value("type", CHANNEL_TYPES[modality])
    ours = description.append_child("signstream")
    ours.append_child_value(EXACT_RATE_KEY, rate_to_string(stream.rate_hz))
    ours.append_child_value("layout", layout.describe())
    ours.append_child_value("samples_per_frame", str(stream.samples_per_frame))
    ours.append_child_value("clock", "sample index / exact_rate since acquisition start, mapped to local_clock()")
    description.append_child("acquisition").append_child_value("manufacturer", "signstream")
    return info


def marker_info(pylsl, prefix: str, source_id: str):
    """The StreamInfo of the sign-event marker outlet (irregular rate, one string channel)."""
    info = pylsl.StreamInfo(marker_stream_name(prefix), MARKER_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                            f"{source_id}-markers")
    ours = info.desc().append_child("signstream")
    ours.append_child_value("format", "JSON: label, confidence, class_index, model_id, start, end (LSL clock), "
                                      "start_time_s, end_time_s (sensor clock), source_session")
    return info


def exact_rate_of(info) -> str:
    """Our ``desc/signstream/exact_rate`` of a StreamInfo ('' when the stream is not ours)."""
    return info.desc().child("signstream").child_value(EXACT_RATE_KEY)
