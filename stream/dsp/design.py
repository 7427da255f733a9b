"""Filter and resampler design, done once at start-up with scipy.signal (or read from the cache,
``design_cache``, which is why scipy is imported inside the functions: a cache hit never imports it).

Nothing here runs per frame: the streaming kernels only read the coefficient arrays made here.
Every design is returned as a small frozen dataclass holding contiguous float64 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stream.config.sections import FiltersConfig, PreprocessConfig

# An output sample counts as settled once the filter's impulse response has decayed below this
# fraction of its peak: samples that close after a NaN or a gap are still marked invalid. 1e-2 and
# not smaller: the 50 Hz notch (Q 30) rings for ~0.6 s down to 1e-3, and a held sample's error is
# of the signal's own size, so 1 % of it is below the noise.
SETTLE_RELATIVE_LEVEL = 1e-2


@dataclass(frozen=True)
class ResamplerDesign:
    """A polyphase FIR resampler from ``input_rate_hz`` to ``output_rate_hz``.

    ``coefficients`` is the FIR built exactly as ``scipy.signal.resample_poly`` builds it
    (``firwin(2 * half_len + 1, 1 / max(up, down), window=('kaiser', beta))``) times ``up``;
    ``scipy.signal.resample_poly(x, up, down, window=coefficients / up)`` is the batch reference.
    Output sample ``k`` sits at upsampled position ``k * down``, i.e. exactly at input position
    ``k * down / up``: the filter is centred (zero phase), so it costs ``half_len / up`` input
    samples of delay in streaming and no index shift.
    """

    input_rate_hz: Fraction
    output_rate_hz: Fraction
    up: int
    down: int
    half_len: int
    coefficients: np.ndarray

    @property
    def delay_input_samples(self) -> Fraction:
        """How many input samples after output k's position the last input it needs arrives."""
        return Fraction(self.half_len, self.up)

    @property
    def delay_s(self) -> Fraction:
        return self.delay_input_samples / self.input_rate_hz


@dataclass(frozen=True)
class ModalityDesign:
    """Everything the streaming chain of one modality needs."""

    name: str
    sos: np.ndarray  # (sections, 6) float64: the whole cascade, e.g. band-pass then notch
    steady_state_unit: np.ndarray  # (sections, 2) float64: sosfilt_zi(sos), scaled per channel by x[0]
    settle_samples: int  # input samples after a bad sample whose outputs are still marked invalid
    rectify: bool
    scale: float
    resampler: ResamplerDesign


def design_resampler(input_rate_hz: Fraction, output_rate_hz: Fraction, half_length: int,
                     kaiser_beta: float) -> ResamplerDesign:
    """The anti-aliased polyphase FIR for an exact rational ratio (``half_length`` in units of
    ``max(up, down)``, as resample_poly's fixed 10)."""
    from scipy import signal

    ratio = Fraction(output_rate_hz) / Fraction(input_rate_hz)
    up, down = ratio.numerator, ratio.denominator
    if half_length < 1:
        raise ValueError(f"resample half_length {half_length} must be >= 1")
    max_rate = max(up, down)
    if max_rate == 1:
        # Same rate: nothing to anti-alias (resample_poly returns a copy). A one-tap identity FIR.
        return ResamplerDesign(Fraction(input_rate_hz), Fraction(output_rate_hz), 1, 1, 0, np.ones(1))
    half_len = half_length * max_rate
    taps = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", float(kaiser_beta)))
    coefficients = np.ascontiguousarray(taps * up, dtype=np.float64)
    return ResamplerDesign(Fraction(input_rate_hz), Fraction(output_rate_hz), up, down, half_len, coefficients)


def settle_samples(sos: np.ndarray, level: float = SETTLE_RELATIVE_LEVEL, max_samples: int = 100_000) -> int:
    """Samples until the impulse response stays below ``level`` times its peak (bounded)."""
    from scipy import signal

    length = 1024
    while True:
        impulse = np.zeros(length)
        impulse[0] = 1.0
        response = np.abs(signal.sosfilt(sos, impulse))
        above = np.flatnonzero(response >= level * response.max())
        last = int(above[-1]) + 1
        if last < length // 2 or length >= max_samples:
            return min(last, max_samples)
        length *= 4


def _contiguous(array: np.ndarray) -> np.ndarray:
    # Not write-protected: scipy.signal refuses read-only sos arrays (tests compare against it).
    return np.ascontiguousarray(array, dtype=np.float64)


def design_emg_filter(filters: FiltersConfig, emg_rate_hz: Fraction) -> np.ndarray:
    """sEMG cascade: Butterworth band-pass then (unless notch_hz = 0) the powerline notch."""
    from scipy import signal

    rate = float(emg_rate_hz)
    low, high = filters.emg_bandpass_hz
    if high >= rate / 2:
        raise ValueError(f"[filters] emg_bandpass_hz high edge {high} Hz must be below the sEMG Nyquist "
                         f"frequency {rate / 2:.1f} Hz for [sensors] emg_rate_hz = {emg_rate_hz}")
    sections = [signal.butter(filters.emg_bandpass_order, [low, high], btype="bandpass", output="sos", fs=rate)]
    if filters.notch_hz:
        b, a = signal.iirnotch(filters.notch_hz, filters.notch_quality, fs=rate)
        sections.append(signal.tf2sos(b, a))
    return np.concatenate(sections, axis=0)


def design_imu_filter(filters: FiltersConfig, imu_rate_hz: Fraction) -> np.ndarray:
    """Accelerometer and gyroscope: Butterworth low-pass."""
    from scipy import signal

    rate = float(imu_rate_hz)
    if filters.imu_lowpass_hz >= rate / 2:
        raise ValueError(f"[filters] imu_lowpass_hz {filters.imu_lowpass_hz} Hz must be below the IMU Nyquist "
                         f"frequency {rate / 2:.1f} Hz for [sensors] imu_rate_hz = {imu_rate_hz}")
    return signal.butter(filters.imu_lowpass_order, filters.imu_lowpass_hz, btype="lowpass", output="sos", fs=rate)


def design_modality(name: str, filters: FiltersConfig, preprocess: PreprocessConfig,
                    emg_rate_hz: Fraction, imu_rate_hz: Fraction) -> ModalityDesign:
    """The full chain design of one modality ('emg', 'acc' or 'gyro')."""
    from scipy import signal

    if name == "emg":
        sos, rate, rectify, scale = design_emg_filter(filters, emg_rate_hz), emg_rate_hz, preprocess.emg_envelope, \
            preprocess.emg_scale
    elif name in ("acc", "gyro"):
        sos, rate, rectify = design_imu_filter(filters, imu_rate_hz), imu_rate_hz, False
        scale = preprocess.acc_scale if name == "acc" else preprocess.gyro_scale
    else:
        raise ValueError(f"unknown modality {name!r}; expected 'emg', 'acc' or 'gyro'")
    resampler = design_resampler(rate, preprocess.model_rate_hz, preprocess.resample_half_length,
                                 preprocess.resample_kaiser_beta)
    return ModalityDesign(name=name, sos=_contiguous(sos), steady_state_unit=_contiguous(signal.sosfilt_zi(sos)),
                          settle_samples=settle_samples(sos), rectify=bool(rectify), scale=float(scale),
                          resampler=resampler)
