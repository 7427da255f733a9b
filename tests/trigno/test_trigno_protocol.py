"""Trigno protocol pieces without sockets: framing, reply parsing, the emulated base's replies,
slot mapping and unit conversion."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.trigno.convert import RowDecoder, SlotMapping, encode_rows
from stream.trigno.emulated_base import EmulatedBase
from stream.trigno.frame_sources import deterministic_frames
from stream.trigno.protocol import (
    IMU_LAYOUT,
    LEGACY_LAYOUT,
    MessageSplitter,
    TrignoProtocolError,
    encode_command,
    exact_rate,
    parse_banner,
    parse_int,
    parse_yes_no,
)
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ


def test_command_framing_and_refusals():
    assert encode_command("SENSOR 1 PAIRED?") == b"SENSOR 1 PAIRED?\r\n\r\n"
    for bad in ("", " START", "START\r\n", "STÄRT"):
        with pytest.raises(ValueError):
            encode_command(bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_splitter_yields_the_same_messages_for_any_read_sizes(cuts):
    messages = ["Delsys Trigno System Digital Protocol Version 3.6.0", "OK", "YES", "1111.111", "UPSAMPLING OFF"]
    stream = b"".join(message.encode() + b"\r\n\r\n" for message in messages)
    splitter, received, position = MessageSplitter(), [], 0
    for cut in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        received += splitter.feed(stream[position:position + cut])
        position += cut
        if position >= len(stream):
            break
    received += splitter.feed(stream[position:])
    assert received == messages
    assert splitter.pending == 0


def test_splitter_refuses_garbage():
    with pytest.raises(TrignoProtocolError, match="non-ASCII"):
        MessageSplitter().feed(b"\xff\xfe\x00\r\n\r\n")
    with pytest.raises(TrignoProtocolError, match="not speaking"):
        MessageSplitter(max_bytes=100).feed(b"x" * 101)


def test_reply_parsers():
    assert parse_banner("Delsys Trigno System Digital Protocol Version 3.6.0") == "3.6.0"
    with pytest.raises(TrignoProtocolError, match="banner"):
        parse_banner("HTTP/1.1 200 OK")
    assert parse_yes_no("Q", "YES") and not parse_yes_no("Q", "NO")
    assert parse_yes_no("UPSAMPLING?", "UPSAMPLING ON") and not parse_yes_no("UPSAMPLING?", "UPSAMPLING OFF")
    with pytest.raises(TrignoProtocolError, match="refused"):
        parse_int("SENSOR 3 MODE?", "CANNOT COMPLETE")
    with pytest.raises(TrignoProtocolError, match="expected an integer"):
        parse_int("MAX SAMPLES EMG?", "many")


def test_printed_rates_become_exact_trigno_rates():
    assert exact_rate(1111.111) == EMG_RATE_HZ
    assert exact_rate(148.148) == IMU_RATE_HZ
    assert exact_rate(1925.926) == Fraction(52000, 27)
    assert exact_rate(2000.0) == 2000
    with pytest.raises(TrignoProtocolError):
        exact_rate(1000.0)


def test_emulated_base_replies():
    base = EmulatedBase.with_slots((1, 2, 5), acc_only_slots=(5,))
    assert base.reply("SENSOR 1 PAIRED?") == "YES"
    assert base.reply("sensor  3 paired?") == "NO"
    assert base.reply("SENSOR 3 TYPE?") == "CANNOT COMPLETE"
    assert base.reply("SENSOR 17 PAIRED?") == "CANNOT COMPLETE"
    assert base.reply("SENSOR 1 CHANNELCOUNT?") == "7"
    assert base.reply("SENSOR 5 AUXCHANNELCOUNT?") == "3"
    assert base.reply("SENSOR 5 STARTINDEX?") == "5"  # 1-based column of its first value in a data row
    assert base.reply("SENSOR 1 CHANNEL 1 UNITS?") == "V"
    assert base.reply("SENSOR 1 CHANNEL 5 UNITS?") == "deg/s"
    assert base.reply("SENSOR 1 CHANNEL 8 RATE?") == "CANNOT COMPLETE"
    assert base.reply("SENSOR 1 CHANNEL 1 RATE?") == "1111.111"
    assert base.reply("SENSOR 1 CHANNEL 2 RATE?") == "148.148"
    assert base.reply("UPSAMPLE ON") == "OK"
    assert base.reply("UPSAMPLING?") == "UPSAMPLING ON"
    assert base.reply("MAX SAMPLES EMG?") == "27"
    assert base.reply("SENSOR 1 CHANNEL 1 RATE?") == "2000.000"
    assert base.reply("START") == "OK"
    assert base.reply("BACKWARDS COMPATIBILITY OFF") == "CANNOT COMPLETE"  # not while running
    assert base.reply("STOP") == "OK"
    assert base.reply("BACKWARDS COMPATIBILITY OFF") == "OK"
    assert base.reply("BACKWARDS COMPATIBILITY?") == "NO"
    assert base.reply("HELLO") == "INVALID COMMAND"
    assert base.reply("\ufffd\ufffd") == "INVALID COMMAND"
    assert base.reply("QUIT") == "BYE"
    assert base.errors_replied == 6


@pytest.mark.parametrize("layout", [IMU_LAYOUT, LEGACY_LAYOUT], ids=["imu", "legacy"])
def test_encode_then_decode_returns_the_frame(layout):
    slots = (3, 1, 16, 7, 8, 2)
    frame = next(deterministic_frames(6, seed=4))
    emg_rows, aux_rows = encode_rows(frame.emg, frame.acc, frame.gyro, slots, layout)
    assert emg_rows.shape == (15, 16) and aux_rows.shape == (2, 16 * layout.aux_values_per_slot)
    empty = [slot - 1 for slot in range(1, 17) if slot not in slots]
    assert not emg_rows[:, empty].any()
    assert emg_rows[0, 2] == np.float32(frame.emg[0, 0] / np.float32(1000))
    decoder = RowDecoder(SlotMapping.build(slots, layout))
    emg, acc, gyro = decoder.decode(emg_rows, aux_rows)
    assert emg.dtype == acc.dtype == gyro.dtype == np.float32
    np.testing.assert_allclose(emg, frame.emg, rtol=1e-6)
    np.testing.assert_array_equal(acc, frame.acc)
    if layout.has_gyroscope:
        np.testing.assert_array_equal(gyro, frame.gyro)
    else:
        assert np.isnan(gyro).all()  # missing, never zeros
    assert decoder.dropped_sensor_frames == 0


def test_a_slot_of_zeros_is_a_dropped_sensor_not_a_signal():
    frame = next(deterministic_frames(3))
    frame.emg[:, 1] = np.nan  # sensor 2 out of range: the base sends zeros for it
    frame.acc[:, 3:6] = np.nan
    frame.gyro[:, 3:6] = np.nan
    emg_rows, aux_rows = encode_rows(frame.emg, frame.acc, frame.gyro, (1, 2, 3), IMU_LAYOUT)
    decoder = RowDecoder(SlotMapping.build((1, 2, 3), IMU_LAYOUT))
    emg, acc, gyro = decoder.decode(emg_rows, aux_rows)
    assert np.isnan(emg[:, 1]).all() and np.isnan(acc[:, 3:6]).all() and np.isnan(gyro[:, 3:6]).all()
    assert np.isfinite(emg[:, [0, 2]]).all() and np.isfinite(acc[:, :3]).all()
    assert decoder.dropped_sensor_frames == 1


def test_unit_factors_are_applied_and_missing_gyroscope_is_nan():
    mapping = SlotMapping.build((1, 2), IMU_LAYOUT, emg_factors=[1.0, 1000.0],
                                gyro_factors=[57.29577951308232] * 3 + [np.nan] * 3)
    emg_rows = np.ones((15, 16), np.float32)
    aux_rows = np.ones((2, 144), np.float32)
    emg, acc, gyro = RowDecoder(mapping).decode(emg_rows, aux_rows)
    assert (emg[:, 0] == 1).all() and (emg[:, 1] == 1000).all()
    np.testing.assert_allclose(gyro[:, :3], 57.29578, rtol=1e-6)
    assert np.isnan(gyro[:, 3:]).all()
    with pytest.raises(ValueError, match="unique slot numbers"):
        SlotMapping.build((1, 1), IMU_LAYOUT)
