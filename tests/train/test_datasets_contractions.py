"""The offline reference contraction detector: synthetic bursts with known answers, then the real files."""

from __future__ import annotations

import numpy as np
import pytest

from train.datasets.contractions import (
    DetectorSettings,
    detect_contractions,
    detect_plux_contractions,
    merge_and_prune,
    quietest_window,
)

RATE = 1000
from real_data import PLUX
from real_data import needs_plux as needs_data

# A centred 0.2 s moving RMS sees a strong burst up to 0.1 s before it starts and after it ends.
EDGE_TOLERANCE_S = 0.12


def synthetic(bursts, seconds=20.0, rest_mv=0.003, burst_mv=0.1, seed=0):
    """White-noise sEMG at rest with bursts [(start_s, end_s)] of stronger noise, in mV."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, rest_mv, int(seconds * RATE))
    for start, end in bursts:
        x[int(start * RATE):int(end * RATE)] += rng.normal(0, burst_mv, int(end * RATE) - int(start * RATE))
    return x


def spike(x, at_s, peak_mv=1.2, length_s=0.15, hz=40.0):
    """A short, near-full-scale oscillation (a movement or stimulus artefact)."""
    start, count = int(at_s * RATE), int(length_s * RATE)
    time = np.arange(count) / RATE
    x[start:start + count] += peak_mv * np.sin(2 * np.pi * hz * time) * np.hanning(count)
    return x


BURSTS = [(1.0, 2.5), (4.0, 5.0), (6.5, 8.5), (10.0, 11.0), (13.0, 15.5), (17.0, 18.2)]


def test_synthetic_bursts_are_counted_with_their_edges():
    detection = detect_contractions(synthetic(BURSTS), RATE)
    assert len(detection.contractions) == len(BURSTS) and detection.artefacts == []
    for (start, end), (true_start, true_end) in zip(detection.contractions, BURSTS):
        assert abs(start / RATE - true_start) <= EDGE_TOLERANCE_S and abs(end / RATE - true_end) <= EDGE_TOLERANCE_S
    # the quietest second is at rest: its envelope is the rest level
    assert detection.baseline_mean == pytest.approx(0.003, rel=0.15)


def test_spike_at_rest_is_an_artefact_not_a_contraction():
    x = spike(synthetic(BURSTS), at_s=3.2)
    detection = detect_contractions(x, RATE, full_scale=1.5)
    assert len(detection.contractions) == len(BURSTS)
    assert len(detection.artefacts) == 1 and abs(detection.artefacts[0][0] / RATE - 3.2) < 0.1
    # without the full scale the spike cannot be judged: it is one more contraction
    assert len(detect_contractions(x, RATE).contractions) == len(BURSTS) + 1


def test_spike_inside_a_contraction_neither_splits_it_nor_is_removed():
    x = spike(synthetic(BURSTS), at_s=7.2)
    detection = detect_contractions(x, RATE, full_scale=1.5)
    assert len(detection.contractions) == len(BURSTS) and detection.artefacts == []


def test_clipped_contraction_is_still_one_contraction_and_counts_its_clipped_samples():
    x = synthetic(BURSTS)
    x[4000:5000] *= 20  # a 2 mV-RMS burst, clipped at the +-1.5 mV rails
    clipped = np.abs(x) >= 1.5
    x = np.clip(x, -1.5, 1.5)
    detection = detect_contractions(x, RATE, full_scale=1.5, saturated=clipped)
    assert len(detection.contractions) == len(BURSTS)
    assert detection.saturated_in[1] == int(clipped.sum()) > 100
    start, end = detection.baseline
    assert not clipped[start:end].any()


def test_time_thresholds_merge_short_gaps_and_drop_short_runs():
    assert merge_and_prune([(0, 100), (300, 400), (1000, 1050)], min_off=250, min_on=100) == [(0, 400)]
    assert merge_and_prune([(0, 100), (400, 500)], min_off=250, min_on=100) == [(0, 100), (400, 500)]
    envelope = np.r_[np.ones(50), np.zeros(20), np.ones(50)]
    assert quietest_window(envelope, 20) == (50, 70)
    excluded = np.zeros(120, dtype=bool)
    excluded[55] = True
    assert quietest_window(envelope, 20, excluded) != (50, 70)


def test_bad_input():
    with pytest.raises(ValueError, match="one channel"):
        detect_contractions(np.zeros((100, 2)), RATE)
    with pytest.raises(ValueError, match="non-finite"):
        detect_contractions(np.r_[np.zeros(5000), np.nan], RATE)
    with pytest.raises(ValueError, match="longer than the signal"):
        detect_contractions(np.random.default_rng(0).normal(size=500), RATE)
    with pytest.raises(ValueError, match="not usable"):
        detect_contractions(np.zeros(5000), 40.0)


# --- the real files: counts checked by eye on the plots (python -m train.datasets.plot_contractions) ---

@pytest.fixture(scope="module")
def detections():
    if not (PLUX / "emg_fatigue.h5").is_file():
        pytest.skip(f"real data absent: {PLUX} not found")
    from train.datasets.plux import read_plux

    recordings = {name: read_plux(PLUX / f"{name}.h5") for name in ("emg_bursts", "emg_fatigue", "emg_1000_hz_16_bits_solo")}
    return {name: (recording, detect_plux_contractions(recording)) for name, recording in recordings.items()}


@needs_data
def test_real_biceps_bursts(detections):
    # 9 bursts on the plot; every one of 27 neighbouring settings (RMS 0.15-0.25 s, on 8-12x, off 3-5x)
    # also gives 9, so the count is exact.
    _, detection = detections["emg_bursts"]
    assert len(detection.contractions) == 9 and detection.artefacts == []
    assert all(1.0 <= (end - start) / RATE <= 1.6 for start, end in detection.contractions)


@needs_data
def test_real_fatigue_cycles(detections):
    # 30 flexions on the plot. Between them the biceps stays at 2-3x rest, so the count depends on the
    # off threshold: neighbouring settings give 28-31. +-1 allows a boundary change, not a lost burst.
    recording, detection = detections["emg_fatigue"]
    assert abs(len(detection.contractions) - 30) <= 1 and detection.artefacts == []
    assert sum(detection.saturated_in) == int(recording.saturated.sum()) == 206  # clipping is all inside


@needs_data
def test_real_adductor_spikes_are_artefacts(detections):
    # 21 spikes of 0.15-0.3 s reaching near full scale, counted on the plot; the weak sustained
    # activity (2-5x rest) stays below the +20 dB on threshold, one 0.55 s build-up before the spike
    # at 26.5 s reaches it.
    _, detection = detections["emg_1000_hz_16_bits_solo"]
    assert len(detection.artefacts) == 21
    assert all((end - start) / RATE <= 0.4 for start, end in detection.artefacts)
    assert len(detection.contractions) <= 1


@needs_data
def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from train.datasets.plot_contractions import plot_recording

    target = plot_recording(PLUX / "emg_bursts.h5", tmp_path)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_are_plain_values():
    settings = DetectorSettings()
    assert (settings.band_hz, settings.envelope_s, settings.baseline_s) == ((20.0, 450.0), 0.2, 1.0)
