"""Shared by the Trigno tests: emulators on random ports, client settings and configs pointing at them,
and fake servers that misbehave (silent, garbage)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading

import numpy as np

from stream.config import config_from_dict, load_config
from stream.trigno.client import ClientSettings
from stream.trigno.convert import encode_rows
from stream.trigno.emulator import EmulatorPorts, TrignoEmulator
from stream.trigno.frame_sources import deterministic_frames
from stream.trigno.protocol import layout_for
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ


def profile_layout(profile: str):
    """The layout of a built-in [sensors] profile."""
    return config_from_dict({"sensors": {"profile": profile}}).layout


@contextlib.contextmanager
def running_emulator(slots=(1, 2, 3, 4, 5, 6), seed=0, layout=None, **options):
    """An emulator on random ports streaming ``deterministic_frames`` (of ``layout``, default Trigno's);
    ``mode=`` and the other options go to TrignoEmulator."""
    emulator = TrignoEmulator(deterministic_frames(len(slots), seed, layout), slots=slots, ports=EmulatorPorts.random(),
                              seed=seed, **options)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def client_settings(emulator, slots=(1, 2, 3, 4, 5, 6), legacy_aux=False, timeout_s=1.0, **options) -> ClientSettings:
    ports = emulator.ports
    return ClientSettings(
        host="127.0.0.1", command_port=ports.command,
        emg_port=ports.legacy_emg if legacy_aux else ports.emg, aux_port=ports.legacy_aux if legacy_aux else ports.aux,
        layout=layout_for(legacy_aux), slots=tuple(slots), emg_rate_hz=EMG_RATE_HZ, imu_rate_hz=IMU_RATE_HZ,
        timeout_s=timeout_s, **options,
    )


def config_for(emulator, slots=(1, 2, 3, 4, 5, 6), legacy_aux=False, modalities=None, profile=None, **trigno_options):
    """A config reading ``emulator``: the shipped defaults, or ``profile``'s layout, with one sensor per slot."""
    config = config_from_dict({"sensors": {"profile": profile}}) if profile else load_config(None)
    ports = emulator.ports
    trigno = dataclasses.replace(
        config.acquire.trigno, command_port=ports.command,
        emg_port=ports.legacy_emg if legacy_aux else ports.emg, aux_port=ports.legacy_aux if legacy_aux else ports.aux,
        legacy_aux=legacy_aux, slots=tuple(slots), **{"timeout_s": 1.0, "reconnect_backoff_s": (0.05, 0.2), **trigno_options},
    )
    names = tuple(f"sensor_{slot}" for slot in slots)
    sensors = dataclasses.replace(config.sensors, names=names, **({"modalities": modalities} if modalities else {}))
    return dataclasses.replace(config, sensors=sensors,
                               acquire=dataclasses.replace(config.acquire, source="trigno", trigno=trigno))


def expected_rows(sensor_count: int, slots, legacy_aux: bool, seed: int = 0, frames: int = 400):
    """The rows the emulator sends for its first ``frames`` frames."""
    layout = layout_for(legacy_aux)
    rows = []
    for _, frame in zip(range(frames), deterministic_frames(sensor_count, seed)):
        rows.append(encode_rows(frame.emg, frame.acc, frame.gyro, tuple(slots), layout))
    return rows


def locate(received_emg_rows: np.ndarray, expected) -> int:
    """Index of the expected frame whose EMG rows equal ``received_emg_rows`` exactly."""
    for index, (emg_rows, _) in enumerate(expected):
        if np.array_equal(emg_rows, received_emg_rows):
            return index
    raise AssertionError("received rows match none of the emulator's frames")


class FakeServer:
    """A TCP server on a random port whose behaviour on connect is ``on_connect(client_socket)``."""

    def __init__(self, on_connect) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._on_connect = on_connect
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            self._clients.append(client)
            try:
                self._on_connect(client)
            except OSError:
                pass

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exception) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in [*self._clients, self._listener]:
            sock.close()
