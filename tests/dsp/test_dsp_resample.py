"""The streaming polyphase resampler against scipy.signal.resample_poly, for any chunking."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from stream.dsp.design import design_resampler
from stream.dsp.resample import Resampler
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ, sample_time_s

MODEL_RATE_HZ = Fraction(2000, 27)
RATIOS = {
    "emg": (EMG_RATE_HZ, MODEL_RATE_HZ),  # 1/15
    "imu": (IMU_RATE_HZ, MODEL_RATE_HZ),  # 1/2
    "up 3/2": (MODEL_RATE_HZ, Fraction(1000, 9)),
    "2/3": (Fraction(1000, 9), MODEL_RATE_HZ),
}
SIGNAL = np.random.default_rng(3).standard_normal((900, 2)) + np.array([0.0, 4.0])


def chunks(x, cuts):
    edges = [0, *sorted(set(cuts)), len(x)]
    return [(lo, x[lo:hi]) for lo, hi in zip(edges, edges[1:]) if hi > lo]


def reference(design, x, edge):
    return signal.resample_poly(x.astype(np.float64), design.up, design.down, window=design.coefficients / design.up,
                                padtype="edge" if edge == "steady" else "constant", axis=0)


def test_designs_are_exact_ratios_built_as_resample_poly_builds_them():
    emg = design_resampler(EMG_RATE_HZ, MODEL_RATE_HZ, 4, 5.0)
    assert (emg.up, emg.down, emg.half_len, emg.coefficients.size) == (1, 15, 60, 121)
    assert emg.delay_s == Fraction(54, 1000)
    imu = design_resampler(IMU_RATE_HZ, MODEL_RATE_HZ, 4, 5.0)
    assert (imu.up, imu.down, imu.half_len) == (1, 2, 8) and imu.delay_s == Fraction(54, 1000)
    # With resample_poly's own half-length (10) our FIR is resample_poly's default FIR.
    default = design_resampler(IMU_RATE_HZ, MODEL_RATE_HZ, 10, 5.0)
    x = SIGNAL[:, :1]
    np.testing.assert_allclose(Resampler(default, 1, "zeros").process(x).values,
                               signal.resample_poly(x, 1, 2, axis=0)[:len(x) // 2 - 10], rtol=0, atol=1e-12)
    np.testing.assert_allclose(emg.coefficients.sum(), 1.0, rtol=1e-12)  # unit DC gain


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(1, 899), max_size=25), ratio=st.sampled_from(sorted(RATIOS)),
       edge=st.sampled_from(["steady", "zeros"]), dtype=st.sampled_from([np.float32, np.float64]))
def test_any_chunking_equals_resample_poly(cuts, ratio, edge, dtype):
    design = design_resampler(*RATIOS[ratio], 4, 5.0)
    x = SIGNAL.astype(dtype)
    stage = Resampler(design, 2, edge)
    outputs = [stage.process(chunk, first) for first, chunk in chunks(x, cuts)]
    index = 0
    for output in outputs:
        assert output.first_index == index and output.values.dtype == dtype
        index += len(output.values)
    ours = np.concatenate([output.values for output in outputs])
    whole = Resampler(design, 2, edge).process(x).values
    np.testing.assert_array_equal(ours, whole)  # bitwise, whatever the chunking
    expected = reference(design, x, edge)
    # Every output whose inputs have all arrived: all but the last half_len / up inputs' worth.
    # Every output whose inputs have all arrived: k * down + half_len <= up * len(x) - 1.
    assert len(ours) == (design.up * len(x) - 1 - design.half_len) // design.down + 1
    tolerance = 1e-12 if dtype == np.float64 else 3e-7
    np.testing.assert_allclose(ours, expected[:len(ours)], rtol=0, atol=tolerance * np.abs(expected).max())


def test_output_k_is_at_input_position_k_down_over_up_after_a_day():
    design = design_resampler(EMG_RATE_HZ, MODEL_RATE_HZ, 4, 5.0)
    day = 24 * 3600 * EMG_RATE_HZ  # sEMG samples in 24 h: 96 million, exactly
    assert day == 96_000_000
    for offset in (0, 7):
        late = Resampler(design, 2).process(SIGNAL, int(day) + offset)
        early = Resampler(design, 2).process(SIGNAL, offset)
        assert late.first_index == -(-(int(day) + offset) // 15) and isinstance(late.first_index, int)
        np.testing.assert_array_equal(late.values, early.values)
        assert sample_time_s(late.first_index, MODEL_RATE_HZ) == sample_time_s(15 * late.first_index, EMG_RATE_HZ)
        assert sample_time_s(late.first_index, MODEL_RATE_HZ) - 24 * 3600 == Fraction(27, 2000) * (offset > 0)


def test_start_edge_hold_versus_zeros():
    design = design_resampler(IMU_RATE_HZ, MODEL_RATE_HZ, 4, 5.0)
    constant = np.full((40, 1), 3.0)
    # "steady": the past is a hold of the first sample, so a constant stays constant from output 0.
    np.testing.assert_allclose(Resampler(design, 1, "steady").process(constant).values, 3.0, rtol=1e-12)
    # "zeros": the first outputs ramp up as resample_poly's zero padding does.
    ramp = Resampler(design, 1, "zeros").process(constant).values[:, 0]
    assert ramp[0] < 2.5 and abs(ramp[-1] - 3.0) < 1e-9
    np.testing.assert_allclose(ramp, reference(design, constant, "zeros")[:len(ramp), 0], rtol=1e-12)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda r: r.process(SIGNAL[:10], -1), "negative"),
        (lambda r: (r.process(SIGNAL[:10], 0), r.process(SIGNAL[:10], 5)), "goes backwards"),
        (lambda r: (r.process(SIGNAL[:10], 0), r.process(SIGNAL[:10], 11)), "skips samples"),
        (lambda r: r.process(SIGNAL[:10, :1], 0), "1 channels; this filter was made for 2"),
        (lambda r: r.process(SIGNAL[:0], 0), "empty"),
        (lambda r: r.process(SIGNAL[:10], 1.0), "integer"),
    ],
)
def test_bad_chunks_are_refused(call, fragment):
    stage = Resampler(design_resampler(IMU_RATE_HZ, MODEL_RATE_HZ, 4, 5.0), 2)
    with pytest.raises(ValueError) as raised:
        call(stage)
    assert fragment in str(raised.value)
