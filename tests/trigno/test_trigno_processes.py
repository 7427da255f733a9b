"""stream-trigno-emulator as a real process, and stream-acquire with ``[acquire] source = "trigno"``
reading it (through a restart of the emulator). Random ports; the ``processes`` fixture kills
everything a test started."""

from __future__ import annotations

import dataclasses
import json
import select
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stream.config import load_config
from stream.sources.trigno import TrignoSource
from stream.wire.protocol import TOPIC_FRAME, FrameSpec, decode_frame

from daemon_helpers import receive_until, stop_and_time, subscriber, write_config

pytestmark = pytest.mark.timeout(90)
EMULATOR_SCRIPT = Path(sys.executable).parent / "stream-trigno-emulator"


def start_emulator(processes, config: Path, ports: str = "0,0,0,0,0", *options: str, source: str | None = "test"):
    command = ([str(EMULATOR_SCRIPT)] if EMULATOR_SCRIPT.exists() else [sys.executable, "-m", "stream.trigno.emulator"])
    source_options = ["--source", source] if source else []  # None: the default source
    process = processes.start([*command, "--config", str(config), *source_options, "--ports", ports, *options])
    ready, _, _ = select.select([process.stdout], [], [], 20)
    assert ready, "the emulator did not report its ports within 20 s"
    line = process.stdout.readline().decode()
    return process, json.loads(line)["listening"]


def trigno_toml(ports: dict, **options) -> str:
    values = {"command_port": ports["command"], "emg_port": ports["emg"], "aux_port": ports["aux"],
              "timeout_s": 1.0, "reconnect_backoff_s": [0.1, 0.4], **options}
    return "[acquire]\nsource = \"trigno\"\n[acquire.trigno]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def test_emulator_process_serves_a_client_and_stops_on_sigterm(processes, tmp_path):
    config_path, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, config_path, "0,0,0,0,0", "--fragment")
    config = load_config(config_path)
    trigno = dataclasses.replace(config.acquire.trigno, command_port=ports["command"], emg_port=ports["emg"],
                                 aux_port=ports["aux"], timeout_s=1.0, max_reconnect_attempts=2)
    source = TrignoSource(dataclasses.replace(config, acquire=dataclasses.replace(config.acquire, trigno=trigno)))
    try:
        frames = [next(source) for _ in range(10)]
    finally:
        source.close()
    assert [frame.emg_first_index for frame in frames] == [15 * index for index in range(10)]
    assert all(np.isfinite(frame.gyro).all() for frame in frames)
    assert stop_and_time(emulator) < 3.0 and emulator.returncode == 0


def test_sigusr1_drops_the_links_and_the_client_reports_the_gap(processes, tmp_path):
    config_path, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, config_path)
    config = load_config(config_path)
    trigno = dataclasses.replace(config.acquire.trigno, command_port=ports["command"], emg_port=ports["emg"],
                                 aux_port=ports["aux"], timeout_s=1.0, reconnect_backoff_s=(0.05, 0.2),
                                 max_reconnect_attempts=5)
    source = TrignoSource(dataclasses.replace(config, acquire=dataclasses.replace(config.acquire, trigno=trigno)))
    try:
        before = [next(source) for _ in range(10)]
        emulator.send_signal(signal.SIGUSR1)
        after = [next(source) for _ in range(10)]
    finally:
        source.close()
    assert len(source.gaps) == 1 and source.gaps[0].emg_start == before[-1].emg_first_index + 15
    assert after[0].emg_first_index == source.gaps[0].emg_end > before[-1].emg_first_index + 15
    assert emulator.poll() is None  # the emulator keeps serving
    assert stop_and_time(emulator) < 3.0 and emulator.returncode == 0


def test_emulator_streams_the_synthetic_signer_by_default(processes, tmp_path):
    config_path, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, config_path, source=None)
    config = load_config(config_path)
    trigno = dataclasses.replace(config.acquire.trigno, command_port=ports["command"], emg_port=ports["emg"],
                                 aux_port=ports["aux"], timeout_s=2.0, max_reconnect_attempts=2)
    source = TrignoSource(dataclasses.replace(config, acquire=dataclasses.replace(config.acquire, trigno=trigno)))
    try:
        frames = [next(source) for _ in range(40)]
    finally:
        source.close()
    emg = np.concatenate([frame.emg for frame in frames])
    acc = np.concatenate([frame.acc for frame in frames])
    assert np.isfinite(emg).all() and 0 < np.sqrt(np.mean(emg ** 2)) < 1.0  # mV, not volts
    gravity = np.linalg.norm(acc.reshape(-1, 3), axis=1)
    assert 0.5 < np.median(gravity) < 1.5  # g
    assert stop_and_time(emulator) < 3.0 and emulator.returncode == 0


def test_emulator_refuses_bad_options_with_exit_2(processes, tmp_path):
    config_path, _ = write_config(tmp_path)
    command = ([str(EMULATOR_SCRIPT)] if EMULATOR_SCRIPT.exists() else [sys.executable, "-m", "stream.trigno.emulator"])
    process = processes.start([*command, "--config", str(config_path), "--ports", "1,2"])
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 2 and b"five ports" in out


def test_stream_acquire_reads_the_emulator_and_survives_its_restart_with_the_gap_in_the_indices(
        processes, zmq_context, tmp_path):
    base_config, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, base_config)
    config_path, endpoints = write_config(tmp_path, trigno_toml(ports))
    spec = FrameSpec.from_config(load_config(config_path))
    frames_socket = subscriber(zmq_context, endpoints["frames"], TOPIC_FRAME)
    acquire = processes.start_python(["-m", "stream.daemons.acquire", "--config", str(config_path)])

    def first_indices(count: int) -> list[int]:
        indices = []

        def enough(parts) -> bool:
            indices.append(decode_frame(parts, spec)[1].emg_first_index)
            return len(indices) >= count

        receive_until(frames_socket, enough, timeout_s=20)
        return indices

    before = first_indices(30)
    assert all(later - earlier == 15 for earlier, later in zip(before[5:], before[6:]))  # contiguous once joined

    # The base station goes away for about a second and comes back on the same ports.
    emulator.send_signal(signal.SIGKILL)
    emulator.wait(timeout=5)
    time.sleep(1.0)
    emulator, _ = start_emulator(processes, base_config,
                                 ",".join(str(ports[kind]) for kind in ("command", "legacy_emg", "legacy_aux", "emg", "aux")))
    after = first_indices(40)
    steps = np.diff(np.array(before + after))
    jumps = steps[steps != 15]
    assert len(jumps) == 1, f"expected one jump over the outage, got steps {sorted(set(steps.tolist()))}"
    # About a second of frames (74 per second) and more, never fewer: the loss is not hidden.
    assert jumps[0] >= 15 * 60
    assert stop_and_time(acquire, timeout_s=8.0) < 8.0 and acquire.returncode == 0
    frames_socket.close(linger=0)


def test_probe_reports_the_base_and_whether_the_pipeline_can_stream(processes, tmp_path):
    base_config, _ = write_config(tmp_path)
    _, ports = start_emulator(processes, base_config)
    good, _ = write_config(tmp_path, trigno_toml(ports))
    probe = processes.start_python(["-m", "stream.trigno.probe", "--config", str(good)])
    out, _ = probe.communicate(timeout=30)
    report = json.loads(out)
    assert probe.returncode == 0 and report["ready"] is True
    assert report["base"]["slots"][0]["channels"][0] == {"rate_hz": "10000/9", "samples_per_frame": 15,
                                                         "gain": 1.0, "unit": "V"}
    unpaired, _ = write_config(tmp_path, trigno_toml(ports, slots=[1, 2, 3, 4, 5, 9]))
    probe = processes.start_python(["-m", "stream.trigno.probe", "--config", str(unpaired)])
    out, _ = probe.communicate(timeout=30)
    report = json.loads(out)
    assert probe.returncode == 1 and report["ready"] is False and "slot 9 has no paired sensor" in report["problem"]


def test_stream_acquire_stops_within_2_s_even_when_the_base_goes_silent(processes, zmq_context, tmp_path):
    # A base station that keeps its sockets open but sends nothing (here: the emulator, frozen with
    # SIGSTOP): the read would wait timeout_s (5 s by default); SIGTERM must not wait for it.
    base_config, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, base_config)
    config_path, endpoints = write_config(tmp_path, trigno_toml(ports, timeout_s=5.0))
    frames_socket = subscriber(zmq_context, endpoints["frames"], TOPIC_FRAME)
    acquire = processes.start_python(["-m", "stream.daemons.acquire", "--config", str(config_path)])
    receive_until(frames_socket, lambda parts: True, timeout_s=20)
    emulator.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.5)  # the read is now waiting on a silent base
        assert stop_and_time(acquire, timeout_s=5.0) < 2.0 and acquire.returncode == 0
    finally:
        emulator.send_signal(signal.SIGCONT)
    frames_socket.close(linger=0)


def test_stream_acquire_streams_a_base_in_another_sensor_mode(processes, zmq_context, tmp_path):
    # One config for both: the emulator takes its sensor mode and test signal from [sensors] profile,
    # stream-acquire its layout; backwards compatibility off gives the mode's own rates.
    profile = '[sensors]\nprofile = "trigno-emg1926"\n'
    base_config, _ = write_config(tmp_path, profile)
    emulator, ports = start_emulator(processes, base_config)
    config_path, endpoints = write_config(tmp_path, profile + trigno_toml(ports, backwards_compatibility=False))
    config = load_config(config_path)
    spec = FrameSpec.from_config(config)
    frames_socket = subscriber(zmq_context, endpoints["frames"], TOPIC_FRAME)
    acquire = processes.start_python(["-m", "stream.daemons.acquire", "--config", str(config_path)])
    frames = []

    def enough(parts) -> bool:
        frames.append(decode_frame(parts, spec)[1])
        return len(frames) >= 60

    receive_until(frames_socket, enough, timeout_s=20)
    assert all(frame.emg.shape == (26, 6) and frame.acc.shape == (1, 18) and frame.gyro.shape == (1, 18)
               for frame in frames)
    joined = frames[5:]  # contiguous once the subscriber has joined
    assert all(later.emg_first_index - earlier.emg_first_index == 26 and later.imu_first_index - earlier.imu_first_index == 1
               for earlier, later in zip(joined, joined[1:]))
    assert all(frame.emg_first_index == 26 * frame.imu_first_index for frame in frames)  # one clock, no drift
    assert all(np.isfinite(frame.gyro).all() for frame in frames)
    assert stop_and_time(acquire, timeout_s=8.0) < 8.0 and acquire.returncode == 0
    assert stop_and_time(emulator) < 3.0 and emulator.returncode == 0
    frames_socket.close(linger=0)


def test_stream_acquire_refuses_a_base_in_another_sensor_mode_in_one_line(processes, tmp_path):
    base_config, _ = write_config(tmp_path)
    emulator, ports = start_emulator(processes, base_config, "0,0,0,0,0", "--mode", "trigno-emg-acc")
    config_path, _ = write_config(tmp_path, trigno_toml(ports, max_reconnect_attempts=5))
    acquire = processes.start_python(["-m", "stream.daemons.acquire", "--config", str(config_path)])
    out, err = acquire.communicate(timeout=30)
    text = (out + err).decode()
    assert acquire.returncode == 1, text[-2000:]
    lines = [line for line in text.splitlines() if "the base sends" in line]
    assert len(lines) == 1 and '[sensors] profile = "trigno-emg-acc" fits the base' in lines[0], text[-2000:]
    assert stop_and_time(emulator) < 3.0 and emulator.returncode == 0
