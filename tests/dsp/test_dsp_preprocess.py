"""The preprocessing chain: against scipy.signal, streaming against batch, gaps, NaN, bad input."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from stream.config import Config, config_from_dict
from stream.dsp.preprocess import Preprocessor, preprocessing_hash, preprocessing_spec
from stream.wire.frames import Frame

FRAMES = 240  # 3.24 s


def make_recording(frames: int = FRAMES, seed: int = 0):
    rng = np.random.default_rng(seed)
    emg = (rng.standard_normal((15 * frames, 6)) * 0.05).astype(np.float32)
    acc = (rng.standard_normal((2 * frames, 18)) * 0.1 + 1.0).astype(np.float32)
    gyro = (rng.standard_normal((2 * frames, 18)) * 10.0).astype(np.float32)
    return emg, acc, gyro


def frames_of(emg, acc, gyro, first_frame: int = 0):
    for frame in range(emg.shape[0] // 15):
        yield Frame(first_frame + frame, 15 * (first_frame + frame), 2 * (first_frame + frame),
                    emg[15 * frame:15 * frame + 15], acc[2 * frame:2 * frame + 2], gyro[2 * frame:2 * frame + 2])


def stream_all(preprocessor, frames):
    blocks = [block for block in map(preprocessor.process_frame, frames) if block is not None]
    for previous, block in zip(blocks, blocks[1:]):
        assert block.first_index == previous.end_index
    return blocks


def concatenated(blocks, name):
    return np.concatenate([getattr(block, name) for block in blocks])


def scipy_chain(x, design, steady=True):
    """The same chain from scipy.signal calls on the whole signal (float64)."""
    x = x.astype(np.float64)
    zi = signal.sosfilt_zi(design.sos)[:, :, None] * x[0] if steady else np.zeros((design.sos.shape[0], 2, x.shape[1]))
    y, _ = signal.sosfilt(design.sos, x, axis=0, zi=zi)
    if design.rectify:
        y = np.abs(y)
    resampler = design.resampler
    return signal.resample_poly(y, resampler.up, resampler.down, window=resampler.coefficients / resampler.up,
                                padtype="edge" if steady else "constant", axis=0) * design.scale


@pytest.mark.parametrize("initial_state", ["steady", "zeros"])
def test_recording_equals_the_scipy_chain(initial_state):
    config = config_from_dict({"filters": {"initial_state": initial_state}})
    preprocessor = Preprocessor(config)
    emg, acc, gyro = make_recording()
    block = preprocessor.process_recording(emg, acc, gyro)
    assert block.first_index == 0 and block.valid.all()
    # Everything but the last emission delay (4 model samples) comes out; nothing is invented.
    assert len(block) == FRAMES - 4
    for name, data in (("emg", emg), ("acc", acc), ("gyro", gyro)):
        reference = scipy_chain(data, preprocessor.designs[name], initial_state == "steady")[:len(block)]
        ours = getattr(block, name)
        assert ours.dtype == np.float32
        # float32 output of a float64 computation: the only difference is the final rounding.
        np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-6 * np.abs(reference).max())


def test_streaming_frames_equal_the_recording_bitwise():
    preprocessor = Preprocessor(Config())
    emg, acc, gyro = make_recording()
    batch = Preprocessor(Config()).process_recording(emg, acc, gyro)
    blocks = stream_all(preprocessor, frames_of(emg, acc, gyro))
    assert blocks[0].first_index == 0
    for name in ("emg", "acc", "gyro", "valid"):
        np.testing.assert_array_equal(concatenated(blocks, name), getattr(batch, name))


def test_emission_delay_is_four_frames_and_indices_are_times():
    preprocessor = Preprocessor(Config())
    assert preprocessor.emission_delay_s == Fraction(54, 1000)
    emg, acc, gyro = make_recording(10)
    emitted = [preprocessor.process_frame(frame) for frame in frames_of(emg, acc, gyro)]
    assert emitted[:4] == [None] * 4
    # After frame f (samples up to 15f+14), model sample f-4 is complete: one per frame.
    assert [(block.first_index, len(block)) for block in emitted[4:]] == [(f - 4, 1) for f in range(4, 10)]


def test_late_start_near_a_day_of_samples_is_exact():
    # Frame 6.4 million is 24 h in; indices stay integers and the output equals a stream from 0.
    first_frame = 6_400_000
    emg, acc, gyro = make_recording(40)
    late = stream_all(Preprocessor(Config()), frames_of(emg, acc, gyro, first_frame))
    early = stream_all(Preprocessor(Config()), frames_of(emg, acc, gyro, 0))
    assert late[0].first_index == first_frame
    assert isinstance(late[0].first_index, int)
    np.testing.assert_array_equal(concatenated(late, "emg"), concatenated(early, "emg"))
    batch = Preprocessor(Config()).process_recording(emg, acc, gyro, 15 * first_frame, 2 * first_frame)
    assert batch.first_index == first_frame
    np.testing.assert_array_equal(batch.acc, concatenated(late, "acc"))


@pytest.mark.parametrize("emg_first, imu_first", [(52, 4), (45, 6), (15 * 10**6 + 1, 2 * 10**6 - 1)])
def test_first_indices_anywhere_land_on_the_model_grid(emg_first, imu_first):
    # Filters at rest and a zero past: starting at index i0 must give exactly what a stream of
    # zeros from index 0 gives from the first model sample on (sEMG 15k and IMU 2k are model k).
    config = config_from_dict({"filters": {"initial_state": "zeros"}})
    emg, acc, gyro = make_recording(30)
    block = Preprocessor(config).process_recording(emg, acc, gyro, emg_first, imu_first)
    expected_first = max(-(-emg_first // 15), -(-imu_first // 2))
    assert block.first_index == expected_first
    if emg_first > 1000:
        return  # the zero-padded reference would be a day long; the index arithmetic is the point
    padded = [np.concatenate([np.zeros((first, data.shape[1]), np.float32), data])
              for data, first in ((emg, emg_first), (acc, imu_first), (gyro, imu_first))]
    reference = Preprocessor(config).process_recording(*padded)
    for name in ("emg", "acc", "gyro"):
        np.testing.assert_array_equal(getattr(block, name),
                                      getattr(reference, name)[block.first_index:block.end_index])


def test_nan_dropout_is_held_marked_invalid_and_does_not_poison_the_state():
    emg, acc, gyro = make_recording()
    emg[1500:1530, 2] = np.nan  # sensor 3 drops out for two frames (around model sample 100)
    acc[400:402, 0:3] = np.inf  # and sensor 1's accelerometer for one IMU frame (model sample 200)
    preprocessor = Preprocessor(Config())
    block = preprocessor.process_recording(emg, acc, gyro)
    for name in ("emg", "acc", "gyro"):
        assert np.isfinite(getattr(block, name)).all()
    # Model sample k is invalid when a bad input lies in its FIR span (input index within half_len
    # of k * down) or at most settle_samples before that span. sEMG: down 15, half_len 60, settle
    # 143; IMU: down 2, half_len 8, settle 18.
    emg_settle = preprocessor.designs["emg"].settle_samples
    imu_settle = preprocessor.designs["acc"].settle_samples
    assert (emg_settle, imu_settle) == (143, 18)
    expected = set()
    for k in range(len(block)):
        if 15 * k - 60 - emg_settle <= 1529 and 15 * k + 60 >= 1500:
            expected.add(k)
        if 2 * k - 8 - imu_settle <= 401 and 2 * k + 8 >= 400:
            expected.add(k)
    assert set(np.flatnonzero(~block.valid)) == expected
    assert min(expected) == 96 and max(expected) == 213
    clean = Preprocessor(Config()).process_recording(*make_recording())
    # Long after the dropout, the output is the clean output again (state not poisoned).
    np.testing.assert_allclose(block.emg[180:], clean.emg[180:], atol=1e-3 * np.abs(clean.emg).max())
    streamed = stream_all(Preprocessor(Config()), frames_of(emg, acc, gyro))
    np.testing.assert_array_equal(concatenated(streamed, "valid"), block.valid)
    np.testing.assert_array_equal(concatenated(streamed, "emg"), block.emg)


def test_short_gap_is_filled_invalid_and_equals_a_recording_with_nan_there():
    emg, acc, gyro = make_recording()
    frames = list(frames_of(emg, acc, gyro))
    del frames[100:103]
    preprocessor = Preprocessor(Config())
    blocks = stream_all(preprocessor, frames)
    assert preprocessor.gap_count == 3  # emg, acc, gyro
    assert {(gap.modality, gap.first_missing_index, gap.missing_samples, gap.action) for gap in preprocessor.gaps} == {
        ("emg", 1500, 45, "filled"), ("acc", 200, 6, "filled"), ("gyro", 200, 6, "filled")}
    holes = [array.copy() for array in (emg, acc, gyro)]
    holes[0][1500:1545] = np.nan
    holes[1][200:206] = np.nan
    holes[2][200:206] = np.nan
    batch = Preprocessor(Config()).process_recording(*holes)
    np.testing.assert_array_equal(concatenated(blocks, "valid"), batch.valid)
    np.testing.assert_array_equal(concatenated(blocks, "gyro"), batch.gyro)
    assert not batch.valid[100:103].any()


def test_long_gap_restarts_the_chain_at_the_new_frame():
    config = config_from_dict({"preprocess": {"max_gap_fill_s": 0.1}})
    emg, acc, gyro = make_recording()
    frames = list(frames_of(emg, acc, gyro))
    preprocessor = Preprocessor(config)
    blocks = stream_all(preprocessor, frames[:100])
    after = [block for block in map(preprocessor.process_frame, frames[150:]) if block is not None]
    assert {gap.action for gap in preprocessor.gaps} == {"restarted"}
    assert after[0].first_index == 150  # a fresh start at the new frame, the gap left open
    fresh = Preprocessor(config).process_recording(emg[15 * 150:], acc[300:], gyro[300:], 15 * 150, 300)
    np.testing.assert_array_equal(concatenated(after, "emg"), fresh.emg)
    assert blocks[-1].end_index == 96


def test_preprocessing_hash_is_stable_and_covers_the_sections():
    base = preprocessing_hash(Config())
    assert base == preprocessing_hash(Config()) and len(base) == 64
    spec = preprocessing_spec(Config())
    assert set(spec) == {"version", "sensors", "filters", "preprocess", "window"}
    assert spec["preprocess"]["model_rate_hz"] == "2000/27"
    for table in ({"filters": {"notch_hz": 60.0}}, {"preprocess": {"emg_scale": 10.0}},
                  {"window": {"length_s": 1.5}}, {"sensors": {"imu_rate_hz": "2000/27"}}):
        assert preprocessing_hash(config_from_dict(table)) != base, table
    # Sections that do not touch the signal do not change it.
    assert preprocessing_hash(config_from_dict({"sink": {"confidence_threshold": 0.9}})) == base


def good_frame(sequence=0):
    emg, acc, gyro = make_recording(1)
    return Frame(sequence, 15 * sequence, 2 * sequence, emg, acc, gyro)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"emg": np.zeros((15, 5), np.float32)}, "expected (samples, 6)"),
        ({"acc": np.zeros((3, 18), np.float32)}, "holds 2"),
        ({"gyro": np.zeros((2, 18), np.int16)}, "dtype int16"),
        ({"emg": np.zeros((0, 6), np.float32)}, "no samples"),
        ({"emg": [[0.0] * 6] * 15}, "numpy array"),
        ({"emg_first_index": -15}, "negative"),
    ],
)
def test_bad_frames_are_refused_with_the_problem_named(change, fragment):
    frame = dataclasses.replace(good_frame(), **change)
    with pytest.raises(ValueError) as raised:
        Preprocessor(Config()).process_frame(frame)
    assert fragment in str(raised.value)


def test_indices_going_backwards_are_refused_and_leave_the_state_untouched():
    emg, acc, gyro = make_recording(30)
    frames = list(frames_of(emg, acc, gyro))
    preprocessor = Preprocessor(Config())
    blocks = stream_all(preprocessor, frames[:12])
    with pytest.raises(ValueError, match="goes backwards"):
        preprocessor.process_frame(frames[11])
    with pytest.raises(ValueError, match="goes backwards"):
        preprocessor.process_frame(dataclasses.replace(frames[12], imu_first_index=20))  # IMU alone went back
    with pytest.raises(ValueError, match="expected \\(samples, 6\\)"):
        preprocessor.process_frame(dataclasses.replace(frames[12], emg=emg[:15, :5]))
    blocks += stream_all(preprocessor, frames[12:])
    reference = stream_all(Preprocessor(Config()), frames)
    np.testing.assert_array_equal(concatenated(blocks, "emg"), concatenated(reference, "emg"))
    preprocessor.reset()
    assert preprocessor.process_frame(frames[0]) is None  # a new stream after reset()


def test_recording_with_wrong_rates_or_lengths_is_refused():
    preprocessor = Preprocessor(Config())
    emg, acc, gyro = make_recording(20)
    with pytest.raises(ValueError, match="disagrees with \\[sensors\\] emg_rate_hz"):
        preprocessor.process_recording(emg, acc, gyro, emg_rate_hz=Fraction(2000))
    with pytest.raises(ValueError, match="imu_rate_hz"):
        preprocessor.process_recording(emg, acc, gyro, imu_rate_hz="2000/27")
    preprocessor.process_recording(emg, acc, gyro, emg_rate_hz="10000/9", imu_rate_hz=Fraction(4000, 27))
    with pytest.raises(ValueError, match="same length"):
        preprocessor.process_recording(emg, acc, gyro[:-1])
    with pytest.raises(ValueError, match="no samples"):
        preprocessor.process_recording(emg[:0], acc, gyro)
    with pytest.raises(ValueError, match="integer"):
        preprocessor.process_recording(emg, acc, gyro, emg_first_index=1.5)


@settings(max_examples=25, deadline=None)
@given(dropped=st.sets(st.integers(5, FRAMES - 5), max_size=6),
       nan_runs=st.lists(st.tuples(st.integers(0, 15 * FRAMES - 40), st.integers(1, 40), st.integers(0, 5)),
                         max_size=3))
def test_streaming_with_dropped_frames_and_nan_equals_the_recording_with_nan(dropped, nan_runs):
    # Any pattern of lost frames (short gaps) and sensor dropouts: the stream's blocks equal the
    # whole recording processed at once with NaN where the data was missing.
    emg, acc, gyro = make_recording()
    for start, length, sensor in nan_runs:
        emg[start:start + length, sensor] = np.nan
    frames = [frame for frame in frames_of(emg, acc, gyro) if frame.sequence not in dropped]
    preprocessor = Preprocessor(Config())
    blocks = stream_all(preprocessor, frames)
    holes = [emg.copy(), acc.copy(), gyro.copy()]
    for frame in dropped:
        holes[0][15 * frame:15 * frame + 15] = np.nan
        holes[1][2 * frame:2 * frame + 2] = np.nan
        holes[2][2 * frame:2 * frame + 2] = np.nan
    batch = Preprocessor(Config()).process_recording(*holes)
    for name in ("emg", "acc", "gyro", "valid"):
        np.testing.assert_array_equal(concatenated(blocks, name), getattr(batch, name))
    assert all(not batch.valid[frame] for frame in dropped if frame < len(batch))


def test_the_kernel_refuses_a_chunk_that_does_not_continue_its_chain():
    from stream.dsp.chain import ChainBank, ChainSpec

    preprocessor = Preprocessor(Config())
    bank = ChainBank([ChainSpec.from_design(preprocessor.designs["acc"], 18, True)])
    _, acc, _ = make_recording(10)
    bank.process(0, acc[:4], 0)
    with pytest.raises(ValueError, match="expects 4"):
        bank.process(0, acc[4:], 6)  # skipping ahead would overflow the output buffer: refused
    assert bank.next_input_index(0) == 4


@pytest.mark.parametrize(
    "table",
    [
        {"filters": {"notch_hz": 60.0, "notch_quality": 10.0, "emg_bandpass_hz": [10.0, 400.0]}},
        {"filters": {"notch_hz": 0.0, "imu_lowpass_hz": 10.0, "imu_lowpass_order": 2}},
        {"preprocess": {"emg_envelope": False, "resample_half_length": 6, "resample_kaiser_beta": 8.0}},
        # A Trigno mode with sEMG at 2148.1 Hz (29 samples per frame) and IMU at 74.07 Hz (1).
        {"sensors": {"emg_rate_hz": "58000/27", "imu_rate_hz": "2000/27"}},
    ],
)
def test_other_configurations_equal_their_scipy_chain_and_stream_equals_batch(table):
    config = config_from_dict(table)
    preprocessor = Preprocessor(config)
    emg_per_frame = preprocessor.samples_per_frame["emg"]
    imu_per_frame = preprocessor.samples_per_frame["acc"]
    rng = np.random.default_rng(5)
    frames = 120
    emg = (rng.standard_normal((emg_per_frame * frames, 6)) * 0.05).astype(np.float32)
    acc = (rng.standard_normal((imu_per_frame * frames, 18)) + 1.0).astype(np.float32)
    gyro = (rng.standard_normal((imu_per_frame * frames, 18)) * 10.0).astype(np.float32)
    batch = preprocessor.process_recording(emg, acc, gyro)
    for name, data in (("emg", emg), ("acc", acc), ("gyro", gyro)):
        reference = scipy_chain(data, preprocessor.designs[name])[:len(batch)]
        np.testing.assert_allclose(getattr(batch, name), reference, rtol=1e-6, atol=1e-6 * np.abs(reference).max())
    streamed = stream_all(Preprocessor(config), (
        Frame(k, emg_per_frame * k, imu_per_frame * k, emg[emg_per_frame * k:emg_per_frame * (k + 1)],
              acc[imu_per_frame * k:imu_per_frame * (k + 1)], gyro[imu_per_frame * k:imu_per_frame * (k + 1)])
        for k in range(frames)))
    for name in ("emg", "acc", "gyro", "valid"):
        np.testing.assert_array_equal(concatenated(streamed, name), getattr(batch, name))


def test_a_subset_of_modalities_gives_empty_columns_for_the_others():
    config = config_from_dict({"sensors": {"modalities": ["emg", "acc"]}})
    emg, acc, gyro = make_recording(60)
    batch = Preprocessor(config).process_recording(emg, acc, gyro[:0].reshape(0, 18))
    assert batch.gyro.shape == (len(batch), 0) and batch.acc.shape == (len(batch), 18)
    streamed = stream_all(Preprocessor(config), frames_of(emg, acc, gyro))
    np.testing.assert_array_equal(concatenated(streamed, "acc"), batch.acc)
    np.testing.assert_array_equal(Preprocessor(Config()).process_recording(emg, acc, gyro).acc, batch.acc)


def test_absurd_values_are_treated_as_dropouts_not_allowed_to_overflow_the_state():
    emg, acc, gyro = make_recording()
    clean = Preprocessor(Config()).process_recording(emg, acc, gyro)
    emg[1500, 1] = 3e38  # a corrupted float32, finite but far beyond any sensor's range
    gyro[200, 4] = -1e7
    block = Preprocessor(Config()).process_recording(emg, acc, gyro)
    assert np.isfinite(block.emg).all() and np.isfinite(block.gyro).all()
    assert not block.valid[100] and block.valid[:90].all() and block.valid[130:].all()
    np.testing.assert_allclose(block.emg[200:], clean.emg[200:], atol=1e-3 * np.abs(clean.emg).max())


def test_any_number_of_sensors():
    config = config_from_dict({"sensors": {"names": ["left", "right"]}})
    emg, acc, gyro = make_recording(40)
    emg, acc, gyro = emg[:, :2], acc[:, :6], gyro[:, :6]
    batch = Preprocessor(config).process_recording(emg, acc, gyro)
    assert (batch.emg.shape[1], batch.acc.shape[1], batch.gyro.shape[1]) == (2, 6, 6)
    streamed = stream_all(Preprocessor(config), frames_of(np.ascontiguousarray(emg), np.ascontiguousarray(acc),
                                                          np.ascontiguousarray(gyro)))
    np.testing.assert_array_equal(concatenated(streamed, "gyro"), batch.gyro)
    # The six-sensor chain gives the same numbers on the same two sensors' channels.
    six = Preprocessor(Config()).process_recording(*make_recording(40))
    np.testing.assert_array_equal(six.acc[:, :6], batch.acc)


@settings(max_examples=25, deadline=None)
@given(emg_offset=st.integers(0, 10**8), skew=st.integers(-20, 20), initial_state=st.sampled_from(["steady", "zeros"]))
def test_streams_starting_anywhere_equal_the_recording(emg_offset, skew, initial_state):
    # sEMG and IMU frames starting at unrelated indices (up to 20 IMU samples apart in time): the
    # modalities are buffered until they align on the model grid; the stream equals the batch.
    imu_offset = max(0, emg_offset * 2 // 15 + skew)
    config = config_from_dict({"filters": {"initial_state": initial_state}})
    emg, acc, gyro = make_recording(50)
    frames = [Frame(k, emg_offset + 15 * k, imu_offset + 2 * k, emg[15 * k:15 * k + 15], acc[2 * k:2 * k + 2],
                    gyro[2 * k:2 * k + 2]) for k in range(50)]
    blocks = stream_all(Preprocessor(config), frames)
    batch = Preprocessor(config).process_recording(emg, acc, gyro, emg_offset, imu_offset)
    assert blocks[0].first_index == batch.first_index == max(-(-emg_offset // 15), -(-imu_offset // 2))
    for name in ("emg", "acc", "gyro", "valid"):
        np.testing.assert_array_equal(concatenated(blocks, name), getattr(batch, name))
