"""The streaming SOS filter against scipy.signal.sosfilt, for any chunking (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from stream.config import Config
from stream.dsp.design import design_emg_filter, design_imu_filter, settle_samples
from stream.dsp.sosfilt import SosFilter, sosfilt_chunk, steady_state

EMG_SOS = design_emg_filter(Config().filters, Config().sensors.emg_rate_hz)
IMU_SOS = design_imu_filter(Config().filters, Config().sensors.imu_rate_hz)
SIGNAL = np.random.default_rng(7).standard_normal((600, 3)) + np.array([0.0, 1.0, -3.0])

# Tolerances (docs/DSP.md): float64 input, relative to the signal's peak: 1e-12 (same operations
# as scipy's kernel; seen: 0). float32 input is computed in float64 and rounded once at the end:
# equal to float32(scipy on the float64 signal) within 1 float32 ulp of the peak (2e-7 relative).
TOLERANCE = {np.float64: 1e-12, np.float32: 2.5e-7}


def reference(sos, x, initial_state):
    x64 = x.astype(np.float64)
    zi = steady_state(sos, x64[0]) if initial_state == "steady" else np.zeros((sos.shape[0], 2, x.shape[1]))
    return signal.sosfilt(sos, x64, axis=0, zi=zi)[0]


def chunks(x, cuts):
    edges = [0, *sorted(set(cuts)), len(x)]
    return [x[lo:hi] for lo, hi in zip(edges, edges[1:]) if hi > lo]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(1, 599), max_size=20), dtype=st.sampled_from([np.float32, np.float64]),
       initial_state=st.sampled_from(["steady", "zeros"]), which=st.sampled_from(["emg", "imu"]))
def test_any_chunking_equals_one_call_and_scipy(cuts, dtype, initial_state, which):
    sos = EMG_SOS if which == "emg" else IMU_SOS
    x = SIGNAL.astype(dtype)
    whole = SosFilter(sos, 3, initial_state).process(x)
    stage = SosFilter(sos, 3, initial_state)
    pieces = np.concatenate([stage.process(chunk) for chunk in chunks(x, cuts)])
    assert pieces.dtype == dtype
    np.testing.assert_array_equal(pieces, whole)  # bitwise: same operations whatever the chunking
    expected = reference(sos, x, initial_state)
    peak = np.abs(expected).max()
    np.testing.assert_allclose(whole, expected, rtol=0, atol=TOLERANCE[dtype] * peak)


def test_pure_function_carries_state_like_scipy():
    zi = steady_state(EMG_SOS, SIGNAL[0])
    first, state = sosfilt_chunk(EMG_SOS, SIGNAL[:250], zi)
    second, final = sosfilt_chunk(EMG_SOS, SIGNAL[250:], state)
    expected, expected_final = signal.sosfilt(EMG_SOS, SIGNAL, axis=0, zi=zi)
    np.testing.assert_allclose(np.concatenate([first, second]), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(final, expected_final, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(zi, steady_state(EMG_SOS, SIGNAL[0]))  # the input state is not modified


def test_steady_state_start_has_no_transient_on_a_constant():
    constant = np.full((200, 2), 2.5)
    np.testing.assert_allclose(SosFilter(IMU_SOS, 2, "steady").process(constant), 2.5, rtol=1e-12)
    np.testing.assert_allclose(SosFilter(EMG_SOS, 2, "steady").process(constant), 0.0, atol=1e-12)


def test_filters_are_the_configured_designs():
    config = Config()
    _, response = signal.sosfreqz(EMG_SOS, worN=[10.0, 100.0, 50.0, 445.0], fs=float(config.sensors.emg_rate_hz))
    gain = np.abs(response)
    assert gain[0] < 0.1 and gain[1] > 0.9 and gain[3] > 0.5 and gain[2] < 1e-3  # 50 Hz notched out
    # A band-pass of order N is N sections; the notch is one more.
    assert EMG_SOS.shape == (config.filters.emg_bandpass_order + 1, 6)
    _, imu = signal.sosfreqz(IMU_SOS, worN=[1.0, 20.0, 60.0], fs=float(config.sensors.imu_rate_hz))
    np.testing.assert_allclose(np.abs(imu)[1], 2 ** -0.5, rtol=1e-6)  # -3 dB at the cutoff
    assert np.abs(imu)[0] > 0.999 and np.abs(imu)[2] < 0.01
    assert 10 < settle_samples(IMU_SOS) < 100


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: SosFilter(IMU_SOS, 3).process(np.zeros((5, 2))), "2 channels; this filter was made for 3"),
        (lambda: SosFilter(IMU_SOS, 3).process(np.zeros((5, 3), np.int32)), "dtype int32"),
        (lambda: SosFilter(IMU_SOS, 3).process(np.zeros(5)), "expected 2-D"),
        (lambda: SosFilter(IMU_SOS, 3).process(np.zeros((0, 3))), "empty"),
        (lambda: SosFilter(IMU_SOS, 1).process(np.array([[np.nan]])), "NaN or inf"),
        (lambda: SosFilter(IMU_SOS[:, :5], 1), "(sections, 6)"),
        (lambda: SosFilter(IMU_SOS, 1, "warm"), "'steady' or 'zeros'"),
        (lambda: sosfilt_chunk(IMU_SOS, np.zeros((4, 3)), np.zeros((2, 2, 2))), "must have shape (2, 2, 3)"),
    ],
)
def test_bad_input_is_refused_with_the_fix(call, fragment):
    with pytest.raises(ValueError) as raised:
        call()
    assert fragment in str(raised.value)
