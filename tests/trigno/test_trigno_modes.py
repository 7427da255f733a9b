"""The Trigno sensor modes other than the default (the trigno-* [sensors] profiles): the emulated base
answers for each mode, the client streams frames of the configured layout with exact sample counts,
and a base in one mode with a config for another is refused in one line. Random loopback ports;
every emulator is stopped in a finally."""

from __future__ import annotations

import itertools
import socket
import time
from fractions import Fraction

import numpy as np
import pytest

from stream.sources.trigno import TrignoSource
from stream.trigno.client import CommandSession, TrignoSetupError
from stream.trigno.emulated_base import SENSOR_MODES, EmulatedBase
from stream.trigno.frame_sources import deterministic_frames
from stream.trigno.protocol import CANNOT_COMPLETE, format_rate

from trigno_helpers import config_for, profile_layout, running_emulator

pytestmark = pytest.mark.timeout(60)
OTHER_PROFILES = ("trigno-emg1259", "trigno-emg1926", "trigno-emg2148", "trigno-emg-acc", "trigno-emg")
AUX_CHANNELS = {("emg", "acc", "gyro"): 6, ("emg", "acc"): 3, ("emg",): 0}


@pytest.mark.parametrize("profile", OTHER_PROFILES)
def test_the_emulated_base_answers_as_its_mode_with_backwards_compatibility_off(profile):
    layout = profile_layout(profile)
    base = EmulatedBase.with_slots((1, 2), mode=profile)
    assert base.reply("BACKWARDS COMPATIBILITY OFF") == "OK"
    aux_channels = AUX_CHANNELS[layout.modalities]
    assert SENSOR_MODES[profile].modalities == layout.modalities
    imu_samples = int(layout.imu_rate_hz * layout.frame_period_s)  # the AUX clock, also without an IMU modality
    assert base.reply("FRAME INTERVAL?") == "0.0135" and layout.frame_period_s == Fraction(27, 2000)
    assert base.reply("MAX SAMPLES EMG?") == str(layout.emg_samples_per_frame)
    assert base.reply("MAX SAMPLES AUX?") == str(imu_samples)
    assert base.reply("SENSOR 2 MODE?") == str(SENSOR_MODES[profile].number)
    assert base.reply("SENSOR 2 CHANNELCOUNT?") == str(1 + aux_channels)
    assert base.reply("SENSOR 2 EMGCHANNELCOUNT?") == "1"
    assert base.reply("SENSOR 2 AUXCHANNELCOUNT?") == str(aux_channels)
    assert base.reply("SENSOR 2 CHANNEL 1 RATE?") == format_rate(layout.emg_rate_hz)
    assert base.reply("SENSOR 2 CHANNEL 1 SAMPLES?") == str(layout.emg_samples_per_frame)
    for channel in range(2, 2 + aux_channels):
        assert base.reply(f"SENSOR 2 CHANNEL {channel} RATE?") == format_rate(layout.imu_rate_hz)
        assert base.reply(f"SENSOR 2 CHANNEL {channel} SAMPLES?") == str(imu_samples)
        assert base.reply(f"SENSOR 2 CHANNEL {channel} UNITS?") == ("g" if channel <= 4 else "deg/s")
    assert base.reply(f"SENSOR 2 CHANNEL {2 + aux_channels} RATE?") == CANNOT_COMPLETE
    # Backwards compatibility resamples every mode to the legacy rates; upsampling gives 2000 Hz EMG.
    assert base.reply("BACKWARDS COMPATIBILITY ON") == "OK"
    assert (base.reply("MAX SAMPLES EMG?"), base.reply("MAX SAMPLES AUX?")) == ("15", "2")
    assert base.reply("SENSOR 1 CHANNEL 1 RATE?") == "1111.111"
    assert base.reply("UPSAMPLE ON") == "OK" and base.reply("MAX SAMPLES EMG?") == "27"


def test_the_default_mode_is_unchanged():
    base = EmulatedBase.with_slots((1,))
    assert [base.reply(query) for query in ("MAX SAMPLES EMG?", "MAX SAMPLES AUX?", "SENSOR 1 MODE?",
                                            "SENSOR 1 AUXCHANNELCOUNT?")] == ["15", "2", "40", "6"]
    base.reply("BACKWARDS COMPATIBILITY OFF")
    assert (base.reply("MAX SAMPLES EMG?"), base.reply("MAX SAMPLES AUX?")) == ("26", "2")
    with pytest.raises(ValueError, match="unknown sensor mode 'trigno-emg9999'"):
        EmulatedBase.with_slots((1,), mode="trigno-emg9999")


@pytest.mark.parametrize("profile", OTHER_PROFILES)
def test_each_trigno_profile_streams_frames_of_its_layout_with_exact_sample_counts(profile):
    layout = profile_layout(profile)
    slots = (5, 1, 12)  # out of order, empty slots between them
    frame_count = 200
    with running_emulator(slots=slots, layout=layout, mode=profile, speed=4.0) as emulator:
        # The sensors' own rates: the legacy resampling (on by default) would give 1111.1 / 148.1 Hz.
        source = TrignoSource(config_for(emulator, slots=slots, profile=profile, backwards_compatibility=False))
        try:
            frames = [next(source) for _ in range(frame_count)]
        finally:
            source.close()
    emg_rows, imu_rows = layout.emg_samples_per_frame, layout.imu_samples_per_frame
    imu_columns = 3 * len(slots)
    for index, frame in enumerate(frames):
        frame.validate(source.layout)
        assert frame.emg.shape == (emg_rows, len(slots))
        for name in ("acc", "gyro"):
            array = getattr(frame, name)
            assert array.shape == ((imu_rows, imu_columns) if name in layout.modalities else (imu_rows, 0))
        # Index space: frame k starts at sample k * per-frame of each stream, at exactly k frame periods.
        assert (frame.sequence, frame.emg_first_index, frame.imu_first_index) == (index, index * emg_rows, index * imu_rows)
        assert Fraction(frame.emg_first_index) / layout.emg_rate_hz == index * layout.frame_period_s
        if layout.has_imu:
            assert Fraction(frame.imu_first_index) / layout.imu_rate_hz == index * layout.frame_period_s
    assert frames[-1].emg_first_index + emg_rows == frame_count * emg_rows  # no sample gained or lost
    assert source.gaps == [] and source.dropped_sensor_frames == 0

    # Values: 200 consecutive frames of what the emulator generated, none skipped or repeated.
    truth = list(itertools.islice(deterministic_frames(len(slots), 0, layout), 3000))
    first = next(number for number, sent in enumerate(truth) if np.allclose(frames[0].emg, sent.emg, rtol=1e-6, atol=0))
    for frame, sent in zip(frames, truth[first:]):
        np.testing.assert_allclose(frame.emg, sent.emg, rtol=1e-6)  # volts on the wire, mV here
        np.testing.assert_array_equal(frame.acc, sent.acc)
        np.testing.assert_array_equal(frame.gyro, sent.gyro)


@pytest.mark.parametrize("profile, zero_values", [
    ("trigno-emg-acc", range(3, 9)),  # no gyroscope (and never a magnetometer)
    ("trigno-emg", range(0, 9)),  # no AUX channel at all
])
def test_slots_without_a_channel_carry_zeros_on_the_data_ports(profile, zero_values):
    slots = (2, 3)
    with running_emulator(slots=slots, mode=profile, speed=2.0) as emulator:  # the source still has every modality
        session = CommandSession("127.0.0.1", emulator.ports.command, timeout_s=2.0)
        data = socket.create_connection(("127.0.0.1", emulator.ports.aux), timeout=2.0)
        try:
            assert session.query("START") == "OK"
            payload = _receive(data, 2 * 144 * 4)
        finally:
            data.close()
            session.close()
    rows = np.frombuffer(payload, dtype="<f4").reshape(2, 16, 9)
    sent = [slot - 1 for slot in slots]
    assert not rows[:, sent][:, :, list(zero_values)].any()
    assert not np.delete(rows, sent, axis=1).any()  # empty slots
    if profile == "trigno-emg-acc":
        assert np.abs(rows[:, sent, 2] - 1.0).max() < 0.5  # the accelerometer is there: about 1 g on z


def _receive(sock: socket.socket, size: int) -> bytes:
    payload = b""
    while len(payload) < size:
        chunk = sock.recv(size - len(payload))
        assert chunk, "connection closed"
        payload += chunk
    return payload


@pytest.mark.parametrize("mode, profile, options, pieces", [
    ("trigno-emg1926", "trigno", {"backwards_compatibility": False},
     ["the base sends 26 EMG and 1 AUX samples per frame (sEMG 1925.926 Hz, IMU 74.074 Hz; emg, acc, gyro)",
      "[sensors] profile trigno needs 15 EMG and 2 AUX samples per frame (sEMG 1111.111 Hz, IMU 148.148 Hz",
      '[sensors] profile = "trigno-emg1926" fits the base', "backwards_compatibility = false"]),
    ("trigno-emg1259", "trigno-emg2148", {"backwards_compatibility": False},
     ["the base sends 17 EMG and 2 AUX", "profile trigno-emg2148 needs 29 EMG and 1 AUX",
      '[sensors] profile = "trigno-emg1259" fits the base']),
    ("trigno-emg2148", "trigno-emg2148", {},  # the right mode, but resampled by backwards compatibility
     ["the base sends 15 EMG and 2 AUX", "profile trigno-emg2148 needs 29 EMG and 1 AUX",
      '[sensors] profile = "trigno" fits the base', "backwards_compatibility = true resamples"]),
    ("trigno-emg-acc", "trigno", {},
     ["(sEMG 1111.111 Hz, IMU 148.148 Hz; emg, acc), but [sensors] profile trigno needs",
      "IMU 148.148 Hz; emg, acc, gyro)", '[sensors] profile = "trigno-emg-acc" fits the base', "sends no gyro"]),
    ("trigno-emg", "trigno-emg-acc", {},
     ["; emg), but [sensors] profile trigno-emg-acc needs", '[sensors] profile = "trigno-emg" fits', "sends no acc"]),
])
def test_a_base_in_another_mode_than_the_config_is_refused_in_one_line(mode, profile, options, pieces):
    with running_emulator(slots=(1, 2), mode=mode) as emulator:
        source = TrignoSource(config_for(emulator, slots=(1, 2), profile=profile, max_reconnect_attempts=5, **options))
        started = time.monotonic()
        try:
            with pytest.raises(TrignoSetupError) as raised:
                next(source)
        finally:
            source.close()
        assert time.monotonic() - started < 2.0  # at once: a setup error is never retried
        assert emulator.frames_sent == 0  # refused before START
    message = str(raised.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, (piece, message)


@pytest.mark.parametrize("profile", ["trigno-emg2148", "trigno-emg"])
def test_a_reconnect_gap_is_whole_frames_of_both_streams_at_other_rates(profile):
    layout = profile_layout(profile)
    with running_emulator(layout=layout, mode=profile) as emulator:
        source = TrignoSource(config_for(emulator, profile=profile, backwards_compatibility=False))
        try:
            before = [next(source) for _ in range(10)]
            emulator.drop_connections()
            after = [next(source) for _ in range(10)]
        finally:
            source.close()
    emg_rows, imu_rows = layout.emg_samples_per_frame, layout.imu_samples_per_frame
    assert len(source.gaps) == 1 and source.gaps[0].frames >= 1
    gap = source.gaps[0]
    assert (gap.emg_start, gap.imu_start) == (10 * emg_rows, 10 * imu_rows)
    assert (gap.emg_end - gap.emg_start, gap.imu_end - gap.imu_start) == (gap.frames * emg_rows, gap.frames * imu_rows)
    frame_numbers = [frame.emg_first_index // emg_rows for frame in before + after]
    assert all(frame.emg_first_index % emg_rows == 0 for frame in before + after)
    assert all(frame.imu_first_index == number * imu_rows for frame, number in zip(before + after, frame_numbers))
    assert frame_numbers == list(range(10)) + list(range(10 + gap.frames, 20 + gap.frames))
