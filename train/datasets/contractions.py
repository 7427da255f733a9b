"""An offline reference detector of muscle contractions in one channel of sEMG.

It is deliberately independent of the streaming segmenter it checks: zero-phase filters, the whole
recording at once, a baseline chosen after the fact. It follows the threshold family of onset
detectors (Hodges & Bui 1996, Electroencephalogr. Clin. Neurophysiol. 101: 511-519: threshold = rest
mean + k SD of the envelope; Bonato, D'Alessio & Knaflitz 1998, IEEE Trans. Biomed. Eng. 45: 287-299:
a "double threshold", amplitude and time), with a hysteresis pair of amplitude thresholds:

1. Band-pass 20-450 Hz, 4th-order Butterworth, zero phase (``sosfiltfilt``); the upper edge is
   lowered to 0.45 * rate where 450 Hz is too close to Nyquist.
2. Artefact spikes are replaced (below) when the full scale is known.
3. Envelope: centred moving RMS over ``envelope_s`` (0.2 s) of the band-passed signal. (A rectified,
   5 Hz low-passed envelope was tried first: its zero-phase ringing dips to zero beside every burst,
   which made the "quietest second" land in a gap between contractions of the fatigue recording.)
4. Baseline: the quietest ``baseline_s`` (1 s), the window of lowest mean envelope (cumulative
   sums), never overlapping saturated samples or spikes. Rest mean mu and SD sigma of the envelope
   there.
5. Amplitude thresholds: off = max(mu + k sigma, ``off_ratio`` mu), on = max(mu + k sigma,
   ``on_ratio`` mu), k = 3, off_ratio = 4 (+12 dB), on_ratio = 10 (+20 dB). A contraction is a run of
   envelope > off that somewhere exceeds on. (On these recordings the envelope at rest is so smooth,
   sigma/mu = 0.05-0.1, that mu + 3 sigma is only 1.3 mu and the ratios bind: between the flexions of
   the fatigue recording the muscle sits at 2-3x rest, not at rest, so a threshold at mu + 3 sigma
   would join most of its 30 bursts.)
6. Time thresholds: contractions separated by less than ``min_off_s`` (0.25 s) are merged, then those
   shorter than ``min_on_s`` (0.1 s) dropped.

Artefact spikes (step 2), when ``full_scale`` is given (the largest |value| the signal can have: 1.5 mV
for PLUX EMG): on the band-passed signal, a 50 ms moving RMS r; a spike is a run of
r >= ``artefact_fraction`` * full_scale / 4 that reaches ``artefact_fraction`` * full_scale (0.1, so
0.15 mV RMS), lasts at most ``artefact_max_s`` (0.3 s), and rises out of a level ``artefact_jump``
(10x, 20 dB) lower: the median r over 0.5 s on each side is at most its peak / 10. A voluntary
contraction does not jump from rest to a tenth of an EMG amplifier's range and back within 300 ms; a
movement or stimulus artefact does, and a peak inside a real contraction fails the flank test. Each
spike is widened on both sides until r is back within 3x of that side's median, and its samples are
replaced by the flanks' RMS level, so a spike neither creates a contraction nor inflates or splits one
it falls in. Spikes are returned as ``artefacts``.

Saturated samples (``saturated``, from the raw counts) stay in the envelope (dropping them would make a
clipped contraction look weaker, not absent) but are kept out of the baseline, and are counted per
contraction. Everything is returned as half-open ``(start, end)`` sample indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps


@dataclass
class DetectorSettings:
    band_hz: tuple[float, float] = (20.0, 450.0)
    envelope_s: float = 0.2
    baseline_s: float = 1.0
    k: float = 3.0
    off_ratio: float = 4.0
    on_ratio: float = 10.0
    min_on_s: float = 0.1
    min_off_s: float = 0.25
    artefact_fraction: float = 0.1
    artefact_max_s: float = 0.3
    artefact_jump: float = 10.0
    artefact_rms_s: float = 0.05
    artefact_flank_s: float = 0.5


@dataclass
class Detection:
    contractions: list[tuple[int, int]]
    artefacts: list[tuple[int, int]]
    envelope: np.ndarray  # (N,) moving-RMS envelope after spike removal, the signal's units
    threshold: float  # the off (lower) threshold
    on_threshold: float
    baseline: tuple[int, int]  # the quietest window, (start, end)
    baseline_mean: float
    baseline_sd: float
    saturated_in: list[int] = field(default_factory=list)  # saturated samples in each contraction


def band_passed(x: np.ndarray, rate_hz: float, band_hz=(20.0, 450.0)) -> np.ndarray:
    low, high = band_hz
    high = min(high, 0.45 * rate_hz)
    if not 0 < low < high:
        raise ValueError(f"band {band_hz} Hz is not usable at {rate_hz} Hz")
    sos = sps.butter(4, [low, high], btype="bandpass", fs=rate_hz, output="sos")
    return sps.sosfiltfilt(sos, x - np.mean(x))


def moving_rms(x: np.ndarray, length: int) -> np.ndarray:
    """Centred moving RMS over ``length`` samples (shorter at the ends)."""
    squares = np.concatenate(([0.0], np.cumsum(x * x)))
    index = np.arange(len(x))
    low = np.clip(index - length // 2, 0, len(x))
    high = np.clip(index - length // 2 + length, 0, len(x))
    return np.sqrt((squares[high] - squares[low]) / (high - low))


def quietest_window(envelope: np.ndarray, length: int, excluded: np.ndarray | None = None) -> tuple[int, int]:
    """(start, end) of the ``length``-sample window with the lowest mean envelope, avoiding windows
    that contain any ``excluded`` sample."""
    if length > len(envelope):
        raise ValueError(f"the baseline window ({length} samples) is longer than the signal ({len(envelope)})")
    sums = np.concatenate(([0.0], np.cumsum(envelope)))
    means = (sums[length:] - sums[:-length]) / length
    if excluded is not None and excluded.any():
        bad = np.concatenate(([0], np.cumsum(excluded.astype(np.int64))))
        means = np.where(bad[length:] - bad[:-length] > 0, np.inf, means)
        if not np.isfinite(means).any():
            raise ValueError("every baseline window contains excluded (saturated or artefact) samples")
    start = int(np.argmin(means))
    return start, start + length


def runs_of(on: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D boolean array, as half-open (start, end)."""
    edges = np.diff(np.concatenate(([0], np.asarray(on, dtype=np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def merge_and_prune(runs: list[tuple[int, int]], min_off: int, min_on: int) -> list[tuple[int, int]]:
    """Merge runs separated by fewer than ``min_off`` samples, then drop those shorter than ``min_on``."""
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < min_off:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged if end - start >= min_on]


def find_spikes(band: np.ndarray, rate_hz: float, full_scale: float,
                settings: DetectorSettings) -> list[tuple[int, int, float]]:
    """Artefact spikes in a band-passed signal (see the module docstring): (start, end, flank RMS)."""
    rms = moving_rms(band, max(1, int(round(settings.artefact_rms_s * rate_hz))))
    level = settings.artefact_fraction * full_scale
    flank = int(round(settings.artefact_flank_s * rate_hz))
    spikes = []
    for start, end in runs_of(rms >= level / 4):
        peak = rms[start:end].max()
        if peak < level or end - start > settings.artefact_max_s * rate_hz:
            continue
        before, after = rms[max(0, start - flank):start], rms[end:end + flank]
        sides = [side for side in (before, after) if len(side)]
        if not sides or any(np.median(side) * settings.artefact_jump > peak for side in sides):
            continue
        low_before = np.median(before) if len(before) else 0.0
        low_after = np.median(after) if len(after) else 0.0
        floor = max(0, start - flank)
        while start > floor and rms[start - 1] > 3 * low_before:
            start -= 1
        ceiling = min(len(band), end + flank)
        while end < ceiling and rms[end] > 3 * low_after:
            end += 1
        around = np.concatenate((band[max(0, start - flank):start], band[end:end + flank]))
        spikes.append((start, end, float(np.sqrt(np.mean(around ** 2))) if len(around) else 0.0))
    return spikes


def detect_contractions(x, rate_hz: float, settings: DetectorSettings | None = None,
                        full_scale: float | None = None, saturated=None) -> Detection:
    """Contractions in a single-channel sEMG signal ``x`` (1-D, any unit) sampled at ``rate_hz``.

    ``full_scale`` (same unit as ``x``) enables the artefact-spike step; ``saturated`` is a mask of
    clipped samples (train.datasets.saturation), kept out of the baseline and counted per contraction.
    """
    settings = settings or DetectorSettings()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"x must be one channel, shape (N,) or (N, 1); got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has non-finite samples")
    rate_hz = float(rate_hz)
    if saturated is not None:
        saturated = np.asarray(saturated, dtype=bool).reshape(-1)
        if len(saturated) != len(x):
            raise ValueError(f"saturated has {len(saturated)} samples, x {len(x)}")
    band = band_passed(x, rate_hz, settings.band_hz)
    spikes = find_spikes(band, rate_hz, full_scale, settings) if full_scale else []
    window = max(1, int(round(settings.envelope_s * rate_hz)))
    excluded = np.zeros(len(x), dtype=bool) if saturated is None else saturated.copy()
    for start, end, level in spikes:
        band[start:end] = level
        excluded[max(0, start - window):end + window] = True
    envelope = moving_rms(band, window)
    baseline = quietest_window(envelope, int(round(settings.baseline_s * rate_hz)), excluded)
    rest = envelope[baseline[0]:baseline[1]]
    mean, sd = float(rest.mean()), float(rest.std())
    off = max(mean + settings.k * sd, settings.off_ratio * mean)
    on = max(mean + settings.k * sd, settings.on_ratio * mean)
    candidates = [(start, end) for start, end in runs_of(envelope > off) if envelope[start:end].max() > on]
    contractions = merge_and_prune(candidates, int(round(settings.min_off_s * rate_hz)),
                                   int(round(settings.min_on_s * rate_hz)))
    saturated_in = [int(saturated[start:end].sum()) if saturated is not None else 0 for start, end in contractions]
    artefacts = [(start, end) for start, end, _ in spikes]
    return Detection(contractions, artefacts, envelope, off, on, baseline, mean, sd, saturated_in)


def detect_plux_contractions(recording, channel: int = 0, settings: DetectorSettings | None = None) -> Detection:
    """``detect_contractions`` on one channel of a ``PluxRecording`` (full scale 1.5 mV)."""
    from train.datasets.plux import PLUX_EMG_GAIN, PLUX_VCC_V

    full_scale = PLUX_VCC_V / PLUX_EMG_GAIN * 1000.0 / 2
    return detect_contractions(recording.signal_mv[:, channel], recording.rate_hz, settings,
                               full_scale=full_scale, saturated=recording.saturated[:, channel])
