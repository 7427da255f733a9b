"""Timeline -> raw sensor samples at the native rates: sEMG (mV), accelerometer (g), gyroscope (deg/s).

sEMG model: each muscle is a band-limited Gaussian source (a classic surface-EMG spectrum peaking near
80-120 Hz, inside the 20-450 Hz band of the sensor) whose RMS is its activation times its MVC level;
sensors hear a signer-specific mix of muscles (crosstalk), times their own gain, plus an electrode noise
floor, 50 Hz mains (and a 150 Hz harmonic), slow baseline wander and motion artefacts when the arm
accelerates. IMU: kinematics of the performed joint angles (stream.synth.body) plus postural sway and
8-12 Hz physiological tremor, sensor noise and gyroscope bias. Dropouts blank whole frames of one
sensor (all its channels) with NaN and are returned as gaps.

Everything that is a function of time (mains, wander, sway, tremor) is evaluated at absolute sample
times with phases fixed per stream (``StreamState``): pieces of one stream rendered separately join
without a discontinuity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from stream.recording import Gap
from stream.synth.body import imu_signals
from stream.synth.performance import SignEvent, perform, upper_arm_activation
from stream.synth.signer import SENSOR_COUNT, SignerProfile
from stream.wire.rates import EMG_RATE_HZ, EMG_SAMPLES_PER_FRAME, IMU_RATE_HZ, IMU_SAMPLES_PER_FRAME

MAINS_HZ = 50.0


@dataclass(frozen=True)
class StreamState:
    """Per-stream (one recording, one session, one live source) constants of the nuisances."""

    mains_scale: float
    wander_mv: np.ndarray  # (3,)
    wander_hz: np.ndarray  # (3,)
    wander_phase: np.ndarray  # (3, 6)
    sway_deg: np.ndarray  # (5,)
    sway_phase: np.ndarray  # (2, 5)
    tremor_deg: float
    tremor_hz: float
    # Generator version 5 on (ones / zeros before): the gain of this sitting's electrodes
    # (signer.donning_gain), and their contact changing slowly while the stream runs (sweat).
    session_gain: np.ndarray = field(default_factory=lambda: np.ones(SENSOR_COUNT))  # (6,)
    gain_drift: np.ndarray = field(default_factory=lambda: np.zeros(SENSOR_COUNT))  # (6,) relative amplitude
    gain_drift_hz: float = 0.0
    gain_drift_phase: np.ndarray = field(default_factory=lambda: np.zeros(SENSOR_COUNT))  # (6,)

    @classmethod
    def draw(cls, rng: np.random.Generator, version: int = 4, session_gain: np.ndarray | None = None) -> StreamState:
        state = cls(
            mains_scale=float(rng.lognormal(0.0, 0.5)),
            wander_mv=rng.uniform(0.0003, 0.0012, 3),
            wander_hz=rng.uniform(0.08, 0.7, 3),
            wander_phase=rng.uniform(0, 2 * np.pi, (3, SENSOR_COUNT)),
            sway_deg=rng.uniform(0.2, 0.6, 5),
            sway_phase=rng.uniform(0, 2 * np.pi, (2, 5)),
            tremor_deg=float(rng.uniform(0.015, 0.05)),
            tremor_hz=float(rng.uniform(8.0, 12.0)),
        )
        if version < 5:
            return state
        # Mains pick-up varies less between streams than version 4 let it (real rest: 3-7 % of the power).
        return dataclasses.replace(
            state, mains_scale=float(rng.lognormal(0.0, 0.25)),
            session_gain=np.ones(SENSOR_COUNT) if session_gain is None else np.asarray(session_gain, dtype=np.float64),
            gain_drift=rng.uniform(0.0, 0.15, SENSOR_COUNT), gain_drift_hz=float(rng.uniform(0.002, 0.01)),
            gain_drift_phase=rng.uniform(0, 2 * np.pi, SENSOR_COUNT))


def semg_spectrum(frequencies: np.ndarray, low=60.0, high=120.0) -> np.ndarray:
    """Amplitude response giving a surface-EMG-like spectrum: the two-pole model of Shwedyk et al.
    (low corner ``low``, high corner ``high`` Hz: 60 and 120 up to generator version 4) inside the
    sensor's 20-450 Hz band (4th-order edges). Corners given per channel (arrays) give (F, channels)."""
    frequency = np.maximum(frequencies, 1e-6)
    if np.ndim(low) or np.ndim(high):
        frequency = frequency[:, None]
    power = (high ** 4 * frequency ** 2) / ((frequency ** 2 + low ** 2) * (frequency ** 2 + high ** 2) ** 2)
    band = 1.0 / np.sqrt(1 + (20.0 / frequency) ** 8) / np.sqrt(1 + (frequency / 450.0) ** 8)
    return np.sqrt(power) * band


def band_limited_noise(rng: np.random.Generator, samples: int, channels: int, rate_hz: float,
                       low_hz=60.0, high_hz=120.0) -> np.ndarray:
    """Unit-RMS Gaussian noise (samples, channels) with the sEMG spectrum (FFT shaping); corners per
    channel when given as arrays."""
    size = max(samples, 64)
    spectrum = np.fft.rfft(rng.standard_normal((size, channels)), axis=0)
    shape = semg_spectrum(np.fft.rfftfreq(size, 1.0 / rate_hz), low_hz, high_hz)
    if shape.ndim == 1:
        shape /= np.sqrt(np.mean(shape[1:] ** 2) * (size // 2) / (size // 2 + 1))
        noise = np.fft.irfft(spectrum * shape[:, None], n=size, axis=0)[:samples]
        return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    noise = np.fft.irfft(spectrum * shape, n=size, axis=0)[:samples]
    return noise / np.maximum(np.sqrt(np.mean(noise ** 2, axis=0)), 1e-12)


def _motion_artefacts(times_s: np.ndarray, events: list, signer: SignerProfile, rng: np.random.Generator) -> np.ndarray:
    """Cable/electrode movement: damped low-frequency transients at sign onsets on one or two sensors."""
    artefacts = np.zeros((times_s.size, SENSOR_COUNT))
    for event in events:
        if not isinstance(event, SignEvent) or rng.random() > signer.artefact_rate:
            continue
        start = event.onset_s + rng.uniform(0.0, 0.15)
        first = np.searchsorted(times_s, start)
        last = np.searchsorted(times_s, start + 0.6)
        if last <= first:
            continue
        local = times_s[first:last] - start
        sensors = rng.choice(SENSOR_COUNT, size=int(rng.integers(1, 3)), replace=False)
        for sensor in sensors:
            amplitude = rng.uniform(0.02, 0.12)
            artefacts[first:last, sensor] += (amplitude * np.exp(-local / rng.uniform(0.05, 0.2))
                                              * np.sin(2 * np.pi * rng.uniform(2.0, 12.0) * local))
    return artefacts


def _dropouts(frames: int, first_frame: int, signer: SignerProfile, rng: np.random.Generator,
              dropout_scale: float) -> list[Gap]:
    """Short radio dropouts of one sensor, whole frames (15 sEMG + 2 IMU samples) at a time."""
    duration_min = frames * 0.0135 / 60.0
    count = rng.poisson(signer.dropout_rate * dropout_scale * duration_min)
    gaps = []
    for _ in range(count):
        length = int(rng.integers(2, 23))  # 27-300 ms
        if length >= frames:
            continue
        start = first_frame + int(rng.integers(0, frames - length))
        sensor = int(rng.integers(0, SENSOR_COUNT))
        gaps.append(Gap(sensor, start * EMG_SAMPLES_PER_FRAME, (start + length) * EMG_SAMPLES_PER_FRAME,
                        start * IMU_SAMPLES_PER_FRAME, (start + length) * IMU_SAMPLES_PER_FRAME))
    return gaps


def render(events: list, signer: SignerProfile, state: StreamState, rng: np.random.Generator,
           first_frame: int, frames: int, dropout_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Gap]]:
    """Samples of frames ``[first_frame, first_frame + frames)`` of a stream: emg (15F, 6) mV,
    acc (2F, 18) g, gyro (2F, 18) deg/s, float32, NaN in dropouts; and the dropouts as gaps
    (indices absolute, like the events' times)."""
    emg_rate, imu_rate = float(EMG_RATE_HZ), float(IMU_RATE_HZ)
    emg_first = first_frame * EMG_SAMPLES_PER_FRAME
    imu_first = first_frame * IMU_SAMPLES_PER_FRAME
    emg_times = (emg_first + np.arange(frames * EMG_SAMPLES_PER_FRAME)) / emg_rate
    # Kinematics on the IMU grid plus a margin so the numeric derivatives are clean at the edges.
    margin = 4
    imu_index = np.arange(imu_first - margin, imu_first + frames * IMU_SAMPLES_PER_FRAME + margin)
    imu_times = imu_index / imu_rate
    posture, activation = perform(events, imu_times, signer)
    sway = (state.sway_deg * np.sin(2 * np.pi * 0.23 * imu_times[:, None] + state.sway_phase[0])
            + 0.5 * state.sway_deg * np.sin(2 * np.pi * 0.61 * imu_times[:, None] + state.sway_phase[1]))
    tremor = state.tremor_deg * np.sin(2 * np.pi * state.tremor_hz * imu_times)[:, None] * np.array([0, 0, 0.3, 1, 1])
    acc, gyro, horizontal = imu_signals(posture + sway + tremor, imu_rate, signer)
    # Muscles drive the performed movement; sway and tremor are too small to show in the sEMG.
    activation[:, 4:] += upper_arm_activation(posture, horizontal, signer.rest_posture_deg, imu_rate)
    electrodes = signer.electrodes
    if electrodes is not None:
        activation += electrodes.tonic_activation
    keep = slice(margin, margin + frames * IMU_SAMPLES_PER_FRAME)
    acc, gyro, activation_imu = acc[keep], gyro[keep], activation
    acc = acc + rng.normal(0.0, 0.003, acc.shape)
    gyro = gyro + signer.gyro_bias_dps.reshape(-1) + rng.normal(0.0, 0.25, gyro.shape)

    # sEMG: activation envelopes (smooth, < 10 Hz) interpolated to the sEMG grid.
    envelope = np.empty((emg_times.size, SENSOR_COUNT))
    for muscle in range(SENSOR_COUNT):
        envelope[:, muscle] = np.interp(emg_times, imu_times, activation_imu[:, muscle])
    if electrodes is None:
        sources = band_limited_noise(rng, emg_times.size, SENSOR_COUNT, emg_rate) * (envelope * signer.mvc_mv)
        emg = (sources @ signer.mixing.T) * signer.emg_gain
    else:
        sources = band_limited_noise(rng, emg_times.size, SENSOR_COUNT, emg_rate, electrodes.spectrum_low_hz,
                                     electrodes.spectrum_high_hz) * (envelope * signer.mvc_mv)
        gain = signer.emg_gain * state.session_gain * (
            1.0 + state.gain_drift * np.sin(2 * np.pi * state.gain_drift_hz * emg_times[:, None] + state.gain_drift_phase))
        emg = (sources @ signer.mixing.T) * gain
    emg += band_limited_noise(rng, emg_times.size, SENSOR_COUNT, emg_rate) * signer.noise_floor_mv
    mains = signer.mains_mv * state.mains_scale
    emg += mains * (np.sin(2 * np.pi * MAINS_HZ * emg_times[:, None] + signer.mains_phase)
                    + 0.3 * np.sin(2 * np.pi * 3 * MAINS_HZ * emg_times[:, None] + 2 * signer.mains_phase))
    for component in range(3):
        emg += state.wander_mv[component] * np.sin(2 * np.pi * state.wander_hz[component] * emg_times[:, None]
                                                   + state.wander_phase[component])
    emg += _motion_artefacts(emg_times, events, signer, rng)

    emg, acc, gyro = emg.astype(np.float32), acc.astype(np.float32), gyro.astype(np.float32)
    gaps = _dropouts(frames, first_frame, signer, rng, dropout_scale)
    for gap in gaps:
        emg[gap.emg_start - emg_first:gap.emg_end - emg_first, gap.sensor] = np.nan
        columns = slice(3 * gap.sensor, 3 * gap.sensor + 3)
        acc[gap.imu_start - imu_first:gap.imu_end - imu_first, columns] = np.nan
        gyro[gap.imu_start - imu_first:gap.imu_end - imu_first, columns] = np.nan
    return emg, acc, gyro, gaps


def sample_index(time_s: float, rate_hz: Fraction = EMG_RATE_HZ) -> int:
    """Nearest sample index of ``time_s`` on a stream at ``rate_hz``."""
    return int(round(time_s * float(rate_hz)))
