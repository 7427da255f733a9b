"""The Trigno client against the emulator (and against servers that misbehave), on random loopback
ports. Every wait has a deadline; every server is stopped in a finally."""

from __future__ import annotations

import dataclasses
import socket
import time

import numpy as np
import pytest

from stream.sources.trigno import TrignoSource
from stream.trigno.client import (
    CommandSession,
    TrignoClient,
    TrignoConnectionError,
    TrignoSetupError,
    configure,
    describe_base,
)
from stream.trigno.frame_sources import deterministic_frames
from stream.trigno.protocol import TrignoProtocolError

from trigno_helpers import FakeServer, client_settings, config_for, expected_rows, locate, running_emulator

pytestmark = pytest.mark.timeout(60)


def test_command_session_reads_the_base_and_every_slot():
    with running_emulator(slots=(2, 5, 9), acc_only_slots=(9,), fragment=True) as emulator:
        settings = client_settings(emulator, slots=(2, 5, 9, 10))
        session = CommandSession(settings.host, settings.command_port, settings.timeout_s)
        try:
            assert session.protocol_version == "3.6.0"
            configure(session, settings)
            info = describe_base(session, settings.slots)
            assert session.query("HELLO THERE") == "INVALID COMMAND"
            assert session.query("SENSOR 10 MODE?") == "CANNOT COMPLETE"
        finally:
            session.close()
    assert (info.backwards_compatibility, info.upsampling) == (True, False)
    assert (info.frame_interval_s, info.max_samples_emg, info.max_samples_aux) == (0.0135, 15, 2)
    two, five, nine, ten = info.slots
    assert two.paired and two.channel_count == 7 and two.start_index == 2 and five.start_index == 5
    assert [channel.unit for channel in two.channels] == ["V", "g", "g", "g", "deg/s", "deg/s", "deg/s"]
    assert two.channels[0].samples_per_frame == 15 and two.channels[1].samples_per_frame == 2
    assert nine.aux_channel_count == 3 and len(nine.channels) == 4
    assert not ten.paired and ten.channels == ()


@pytest.mark.parametrize("legacy_aux", [False, True], ids=["144-value", "48-value legacy"])
def test_frames_are_byte_exact_under_random_fragmentation_with_empty_slots(legacy_aux):
    slots = (3, 16, 1, 8, 9, 12)  # out of order, 10 empty slots between them
    expected = expected_rows(len(slots), slots, legacy_aux)
    with running_emulator(slots=slots, fragment=True, speed=2.0) as emulator:
        client = TrignoClient(client_settings(emulator, slots=slots, legacy_aux=legacy_aux))
        try:
            client.connect()
            received = [client.read_frame() for _ in range(40)]
        finally:
            client.close()
        assert client.reader is None
    first = locate(received[0][0], expected)
    for offset, (emg_rows, aux_rows) in enumerate(received):
        want_emg, want_aux = expected[first + offset]
        assert emg_rows.tobytes() == want_emg.tobytes()
        assert aux_rows.tobytes() == want_aux.tobytes()
        assert aux_rows.shape == (2, 48 if legacy_aux else 144)
        empty = [slot - 1 for slot in range(1, 17) if slot not in slots]
        assert not emg_rows[:, empty].any()


def test_source_converts_to_pipeline_units_and_orders_sensors_by_slot_list():
    slots = (4, 2, 7)
    with running_emulator(slots=slots, speed=2.0) as emulator:
        source = TrignoSource(config_for(emulator, slots=slots))
        try:
            frames = [next(source) for _ in range(10)]
        finally:
            source.close()
    # The accelerometer passes through unchanged (g on the wire and here): it identifies the frame.
    truth_by_acc = {frame.acc.tobytes(): frame for _, frame in zip(range(400), deterministic_frames(3))}
    for index, frame in enumerate(frames):
        frame.validate(source.layout)
        assert (frame.sequence, frame.emg_first_index, frame.imu_first_index) == (index, 15 * index, 2 * index)
        truth = truth_by_acc[frame.acc.tobytes()]
        np.testing.assert_allclose(frame.emg, truth.emg, rtol=1e-6)  # volts on the wire, mV here
        np.testing.assert_array_equal(frame.acc, truth.acc)
        np.testing.assert_array_equal(frame.gyro, truth.gyro)


def test_legacy_layout_gives_nan_gyroscope_and_refuses_a_config_that_needs_it():
    with running_emulator(speed=2.0) as emulator:
        with pytest.raises(ValueError, match="no gyroscope"):
            TrignoSource(config_for(emulator, legacy_aux=True))
        source = TrignoSource(config_for(emulator, legacy_aux=True, modalities=("emg", "acc")))
        try:
            frame = next(source)
        finally:
            source.close()
    assert np.isnan(frame.gyro).all()
    assert np.isfinite(frame.emg).all() and np.isfinite(frame.acc).all()


def test_acc_only_sensor_has_nan_gyroscope_on_the_imu_layout():
    with running_emulator(slots=(1, 2), acc_only_slots=(2,), speed=2.0) as emulator:
        source = TrignoSource(config_for(emulator, slots=(1, 2)))
        try:
            frame = next(source)
        finally:
            source.close()
    assert np.isfinite(frame.gyro[:, :3]).all() and np.isnan(frame.gyro[:, 3:]).all()


def test_disconnect_mid_stream_reconnects_and_reports_the_gap_in_sample_time():
    with running_emulator(fragment=True) as emulator:
        source = TrignoSource(config_for(emulator))
        try:
            before = [next(source) for _ in range(20)]
            skipped_before = emulator.frames_skipped
            emulator.drop_connections()
            after = [next(source) for _ in range(20)]
            generated_at_drop, sent_at_drop = emulator.frames_sent_at_drop[0]
            not_sent_after_drop = (emulator.frames_generated - emulator.frames_sent) - (generated_at_drop - sent_at_drop)
            # The emulator runs in this process: when the test's own thread holds the GIL for over a
            # second it skips ahead, and those frame periods (never generated) were not sent either.
            not_sent_after_drop += emulator.frames_skipped - skipped_before
        finally:
            source.close()
    assert len(source.gaps) == 1 and source.reconnects == 1
    gap = source.gaps[0]
    assert gap.emg_start == 15 * 20 and gap.imu_start == 2 * 20
    assert gap.emg_end == 15 * (20 + gap.frames) and gap.imu_end == 2 * (20 + gap.frames)
    assert after[0].emg_first_index == gap.emg_end and after[0].imu_first_index == gap.imu_end
    assert gap.frames >= 1
    # The client estimates the loss from its clock; the emulator counts the frames it generated but
    # never sent while the link was down: equal within a few frames of scheduling jitter.
    assert abs(gap.frames - not_sent_after_drop) <= 3
    indices = [frame.emg_first_index for frame in before + after]
    assert all(later > earlier for earlier, later in zip(indices, indices[1:]))


def test_garbage_on_the_command_port_gets_error_replies_and_the_emulator_keeps_serving():
    with running_emulator() as emulator:
        with socket.create_connection(("127.0.0.1", emulator.ports.command), timeout=2) as raw:
            banner = _read_message(raw)
            assert banner.startswith(b"Delsys Trigno System Digital Protocol Version")
            raw.sendall(b"\xff\xfe\x00garbage\r\n\r\nSENSOR x PAIRED?\r\n\r\n")
            assert _read_message(raw) == b"INVALID COMMAND"
            assert _read_message(raw) == b"INVALID COMMAND"
            raw.sendall(b"z" * 5000)  # no terminator at all
            assert _read_message(raw) == b"INVALID COMMAND"
        client = TrignoClient(client_settings(emulator))
        try:
            client.connect()
            emg_rows, aux_rows = client.read_frame()
        finally:
            client.close()
    assert emg_rows.shape == (15, 16) and aux_rows.shape == (2, 144)


def _read_message(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, "connection closed"
        data += chunk
    return data[:-4].strip()


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00\xffbinary\r\n\r\n", b"x" * 5000])
def test_client_refuses_a_server_that_speaks_garbage(reply):
    with FakeServer(lambda client: client.sendall(reply)) as server:
        started = time.monotonic()
        with pytest.raises(TrignoProtocolError):
            CommandSession("127.0.0.1", server.port, timeout_s=2.0)
        assert time.monotonic() - started < 2.0


def test_a_server_that_never_answers_times_out_instead_of_hanging():
    with FakeServer(lambda client: None) as silent:
        started = time.monotonic()
        with pytest.raises(TrignoConnectionError, match="no reply to the banner within 0.3 s"):
            CommandSession("127.0.0.1", silent.port, timeout_s=0.3)
        assert time.monotonic() - started < 1.5
    banner = b"Delsys Trigno System Digital Protocol Version 3.6.0 \r\n\r\n"
    with FakeServer(lambda client: client.sendall(banner)) as mute:
        session = CommandSession("127.0.0.1", mute.port, timeout_s=0.3)
        try:
            with pytest.raises(TrignoConnectionError, match="no reply to 'START'"):
                session.query("START")
        finally:
            session.close()


def test_data_ports_going_silent_are_a_dead_connection_and_the_source_gives_up_when_told():
    with running_emulator(speed=2.0) as emulator:
        emulator._frames = iter(())  # the signal stops: data ports go silent, commands still answer
        config = config_for(emulator, timeout_s=0.3, max_reconnect_attempts=2)
        source = TrignoSource(config)
        started = time.monotonic()
        try:
            with pytest.raises(TrignoConnectionError, match="unreachable after 2 attempts"):
                next(source)
        finally:
            source.close()
        assert time.monotonic() - started < 10


def test_nothing_listening_fails_fast_after_the_configured_attempts():
    with running_emulator() as emulator:
        config = config_for(emulator, max_reconnect_attempts=3)
    source = TrignoSource(config)  # the emulator is gone: connections are refused
    started = time.monotonic()
    with pytest.raises(TrignoConnectionError, match="unreachable after 3 attempts"):
        next(source)
    assert time.monotonic() - started < 3


def test_a_sensor_that_drops_out_arrives_as_nan_not_as_zeros():
    def frames_with_sensor_two_out():
        for frame in deterministic_frames(3):
            if frame.sequence % 2:
                frame.emg[:, 1] = np.nan  # the emulator sends zeros for it, as a base station does
                frame.acc[:, 3:6] = np.nan
                frame.gyro[:, 3:6] = np.nan
            yield frame

    with running_emulator(slots=(1, 2, 3), speed=2.0) as emulator:
        emulator._frames = frames_with_sensor_two_out()
        source = TrignoSource(config_for(emulator, slots=(1, 2, 3)))
        try:
            frames = [next(source) for _ in range(6)]
        finally:
            source.close()
    silent = [bool(np.isnan(frame.emg[:, 1]).all() and np.isnan(frame.acc[:, 3:6]).all()) for frame in frames]
    assert sum(silent) == 3 and source.dropped_sensor_frames == 3
    assert all(np.isfinite(frame.emg[:, [0, 2]]).all() for frame in frames)


def test_a_multi_channel_sensor_layout_is_refused():
    with running_emulator(slots=(1, 2)) as emulator:
        reply = emulator.base.reply
        emulator.base.reply = lambda command: "5" if command.strip() == "SENSOR 2 STARTINDEX?" else reply(command)
        client = TrignoClient(client_settings(emulator, slots=(1, 2)))
        with pytest.raises(TrignoSetupError, match="slot 2 reports STARTINDEX 5"):
            client.connect()
        assert client.session is None and client.reader is None


@pytest.mark.parametrize("problem, options, message", [
    ("unpaired slot", {"slots": (1, 2, 7)}, "slot 7 has no paired sensor"),
    ("upsampled rate", {"upsample": True}, "27 EMG and 2 AUX samples per frame"),
    ("native rate", {"backwards_compatibility": False}, "26 EMG"),
])
def test_a_base_set_up_unlike_the_config_is_a_clear_setup_error_not_a_retry(problem, options, message):
    with running_emulator(slots=(1, 2)) as emulator:
        slots = options.pop("slots", (1, 2))
        source = TrignoSource(config_for(emulator, slots=slots, max_reconnect_attempts=5, **options))
        try:
            with pytest.raises(TrignoSetupError, match=message):
                next(source)
        finally:
            source.close()


def test_the_emulator_streams_a_recording_file(tmp_path):
    from stream.recording import Recording, write_recording
    from stream.trigno.frame_sources import open_frame_source
    from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ

    originals = [frame for _, frame in zip(range(12), deterministic_frames(6, seed=9))]
    recording = Recording(
        emg=np.concatenate([frame.emg for frame in originals]), acc=np.concatenate([frame.acc for frame in originals]),
        gyro=np.concatenate([frame.gyro for frame in originals]), emg_rate_hz=EMG_RATE_HZ, imu_rate_hz=IMU_RATE_HZ,
        sensor_names=tuple(f"sensor_{slot}" for slot in range(1, 7)),
    )
    path = write_recording(tmp_path / "recording.h5", recording)
    with running_emulator(speed=2.0) as emulator:
        config = config_for(emulator)
        replay = dataclasses.replace(config.acquire.replay, path=str(path), loop=True)
        config = dataclasses.replace(config, acquire=dataclasses.replace(config.acquire, replay=replay))
        emulator._frames = open_frame_source("replay", config)
        source = TrignoSource(config)
        try:
            received = [next(source) for _ in range(30)]
        finally:
            source.close()
    by_acc = {frame.acc.tobytes(): frame for frame in originals}
    assert all(frame.acc.tobytes() in by_acc for frame in received)  # every frame is one of the file's
    np.testing.assert_allclose(received[0].emg, by_acc[received[0].acc.tobytes()].emg, rtol=1e-6)
    assert len({frame.acc.tobytes() for frame in received}) == 12  # looped over the whole file


def test_close_from_another_thread_ends_a_blocked_iteration():
    import threading

    with running_emulator() as emulator:
        emulator._frames = iter(())  # no data ever: next() blocks on the data ports
        source = TrignoSource(config_for(emulator, timeout_s=20.0))
        closer = threading.Timer(0.5, source.close)
        closer.start()
        started = time.monotonic()
        try:
            with pytest.raises(StopIteration):
                next(source)
        finally:
            closer.cancel()
            source.close()
    assert time.monotonic() - started < 5.0


def test_the_emulator_honours_endian_big():
    expected = expected_rows(6, (1, 2, 3, 4, 5, 6), legacy_aux=False)
    with running_emulator(speed=2.0) as emulator:
        session = CommandSession("127.0.0.1", emulator.ports.command, timeout_s=2.0)
        data = socket.create_connection(("127.0.0.1", emulator.ports.emg), timeout=2.0)
        try:
            assert session.query("ENDIAN BIG") == "OK" and session.query("ENDIANNESS?") == "BIG"
            assert session.query("START") == "OK"
            payload = b""
            while len(payload) < 15 * 16 * 4:
                payload += data.recv(15 * 16 * 4 - len(payload))
        finally:
            data.close()
            session.close()
    rows = np.frombuffer(payload, dtype=">f4").reshape(15, 16).astype(np.float32)
    locate(rows, expected)  # big-endian floats that decode to one of the emulator's frames exactly
