"""Real sEMG (the three PLUX files) through our Preprocessor and Segmenter with the plux profile.

The figures asserted here are the ones ``python -m train.datasets.plux_pipeline`` reports. The
pipeline is deterministic (float32 kernels, no randomness), so the counts are exact on a given build;
where a count is asserted exactly, the comment gives the margin that keeps it from flipping on
another platform.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from train.datasets.plux_pipeline import (
    CONTRACTION_OVERRIDES,
    OVERRIDE_REASONS,
    analyse_file,
    main,
    match,
    plux_config,
    stream_preprocess,
)

from real_data import PLUX
from real_data import PLUX_FILES as FILES
from real_data import needs_plux as needs_data


@pytest.fixture(scope="module")
def analysed():
    if not all((PLUX / f"{name}.h5").is_file() for name in FILES):
        pytest.skip(f"real data absent: {PLUX} not found")
    return {name: analyse_file(PLUX / f"{name}.h5") for name in FILES}


# --- no data needed -----------------------------------------------------------------------------

def test_match_counts_hits_misses_rest_and_splits():
    contractions = [(1.0, 3.0), (5.0, 7.0), (9.0, 10.0)]
    segments = [(1.5, 2.0), (2.2, 2.8), (4.0, 4.5), (6.5, 9.5)]
    found = match(segments, contractions, flagged=[False, True, False])
    assert (found["hits"], found["misses"], found["segments_in_rest"], found["split"]) == (3, 0, 1, 1)
    assert found["extra_segments"] == 2 and found["segments_over_two_contractions"] == 1
    assert (found["hits_without_flagged_samples"], found["hits_with_flagged_samples"]) == (2, 1)
    assert match([], contractions)["misses"] == 3 and match([(0.0, 1.0)], [(1.0, 2.0)])["hits"] == 0  # touching is not overlap


def test_every_override_is_explained_and_is_a_valid_config():
    assert set(OVERRIDE_REASONS) == set(CONTRACTION_OVERRIDES)
    config = plux_config(CONTRACTION_OVERRIDES)
    assert config.layout.emg_rate_hz == 1000 and config.layout.frame_period_s * 1000 == 20
    assert config.segmentation.max_sign_s == CONTRACTION_OVERRIDES["max_sign_s"]
    assert plux_config().segmentation.max_sign_s == 1.9  # the defaults stay the defaults


# --- the real files -----------------------------------------------------------------------------

@needs_data
def test_to_recording_flags_saturation_as_nan_and_gaps_and_the_dsp_marks_them_invalid():
    from stream.dsp.preprocess import Preprocessor
    from stream.recording import Gap
    from train.datasets.plux import read_plux, to_recording
    from train.datasets.saturation import saturated_runs

    plux = read_plux(PLUX / "emg_fatigue.h5")
    recording = to_recording(plux)
    config = plux_config()
    assert recording.layout.signature() == config.layout.signature()
    assert recording.sensor_names == ("emg",) and recording.emg_unit == "mV" and recording.acc.shape == (0, 0)
    flagged = np.isnan(recording.emg[:, 0])
    np.testing.assert_array_equal(flagged, plux.saturated[:, 0])
    assert int(flagged.sum()) == 206
    np.testing.assert_array_equal(recording.emg[~flagged, 0], plux.signal_mv[~flagged, 0].astype(np.float32))
    assert recording.gaps == [Gap(0, start, end, start // 20, start // 20) for start, end in saturated_runs(flagged)]
    assert len(recording.gaps) == 136
    meta = recording.metadata
    assert (meta["device"], meta["muscle"], meta["file"], meta["resolution_bits"]) == ("bioplux", "Biceps Brachii",
                                                                                        "emg_fatigue.h5", 12)
    assert (meta["flagged"]["saturated_samples"], meta["flagged"]["saturated_runs"]) == (206, 136)
    json.dumps(meta)

    preprocessor = Preprocessor(config)
    block = preprocessor.process_recording(recording.emg, recording.acc, recording.gyro)
    assert np.all(np.isfinite(block.emg))  # the NaNs are held, never filtered into the envelope ...
    design = preprocessor.designs["emg"]
    half_span = design.resampler.half_len // design.resampler.up  # input samples each side of a model sample
    centres = (block.first_index + np.arange(len(block))) * 20  # model sample k sits at input 20 k
    where = np.flatnonzero(flagged)
    distance = np.abs(centres[:, None] - where[None, :])
    reached = (distance <= half_span).any(axis=1)
    assert not block.valid[reached].any()  # ... and every model sample whose FIR span holds one is invalid
    near = (distance <= half_span + design.settle_samples + 20).any(axis=1)
    assert block.valid[~near].all()  # nothing far from a flagged sample is
    assert 1000 < int((~block.valid).sum()) < 1300  # 1146 of 6341 model samples (18%)


@needs_data
def test_streaming_equals_batch_bitwise_on_the_real_files(analysed):
    for name in FILES:
        check = analysed[name][0]["streaming_equals_batch"]
        assert check["equal"] and check["bitwise_values"] and check["valid_equal"], (name, check)
        assert check["model_samples"] == check["streamed_samples"] > 1000


@needs_data
def test_bursts_our_segmenter_finds_the_nine_contractions_with_the_overrides(analysed):
    figures = analysed["emg_bursts"][0]
    # Margins: the smallest peak energy ratio of a contraction is 13.5 (on threshold 10) and rest more
    # than 0.3 s before / 0.5 s after a contraction stays below 3.0 (off 4): exact counts are safe.
    for name in ("overrides", "overrides_but_max_sign_s_1.9"):
        found = figures[name]["match"]
        assert (found["reference"], found["hits"], found["misses"]) == (9, 9, 0)
        assert (found["segments"], found["segments_in_rest"], found["split"]) == (9, 0, 0)
        assert figures[name]["counters"]["segments_forced"] == 0  # contractions of 1.0-1.5 s: under both caps
    # Our segments start after the reference's onsets (on at +20 dB through a causal smoother, the
    # reference's edge at +12 dB of a centred 0.2 s RMS) and end before (release at half the peak).
    assert 0.2 < figures["overrides"]["match"]["onset_delay_s_median"] < 0.5
    assert 0.5 < figures["overrides"]["match"]["coverage_median"] < 0.8
    # Fixed thresholds tuned on the first synthetic signer do not fit: on 40 is above most contractions'
    # peak ratio (13.5-46).
    fixed = figures["fixed_thresholds"]["match"]
    assert fixed["hits"] <= 2 and fixed["segments_in_rest"] == 0  # measured: 1 hit
    # The defaults' thresholds follow the signer (from a contrast of 30x, on at 12.8x, off at 4.6x, then
    # learned from each contraction): all nine, nothing in rest (issue #22: >= 90 %, none in rest).
    defaults = figures["defaults"]
    assert (defaults["match"]["hits"], defaults["match"]["misses"]) == (9, 0)
    assert (defaults["match"]["segments_in_rest"], defaults["match"]["split"]) == (0, 0)
    assert defaults["counters"]["segments_forced"] == 0


@needs_data
def test_segments_in_rest_stay_within_what_was_measured(analysed):
    measured = {"emg_bursts": (0, 0), "emg_fatigue": (0, 0), "emg_1000_hz_16_bits_solo": (0, 2)}  # (defaults, overrides)
    for name, (defaults, overrides) in measured.items():
        figures = analysed[name][0]
        assert figures["defaults"]["match"]["segments_in_rest"] <= defaults, name
        assert figures["fixed_thresholds"]["match"]["segments_in_rest"] <= defaults, name
        assert figures["overrides"]["match"]["segments_in_rest"] <= overrides, name


@needs_data
def test_fatigue_saturated_contractions_are_dropped_never_segmented_across_flagged_samples(analysed):
    figures, arrays = analysed["emg_fatigue"]
    assert figures["reference"]["with_flagged_samples"] == 26  # of 30 contractions
    valid = arrays["streamed"].valid
    for name in ("defaults", "fixed_thresholds", "overrides"):
        result, _ = arrays["runs"][name]
        for segment in result.segments:
            assert valid[segment.start_index:segment.end_index].all(), (name, segment)  # never across a flagged run
        found = figures[name]["match"]
        assert found["hits_without_flagged_samples"] == 4  # every clean contraction is found
        assert found["segments_in_rest"] == 0
    # With the overrides a clipped sample anywhere in a contraction drops it: 26 signs dropped invalid,
    # 23 contractions missed, all of them clipped ones.
    overrides = figures["overrides"]
    assert overrides["counters"]["segments_dropped_invalid"] >= 20 and overrides["match"]["misses"] >= 20
    assert overrides["match"]["misses"] <= figures["reference"]["with_flagged_samples"]


@needs_data
def test_fatigue_contractions_longer_than_max_sign_s_are_cut_there(analysed):
    figures, arrays = analysed["emg_fatigue"]
    capped = figures["overrides_but_max_sign_s_1.9"]
    assert capped["contractions_longer_than_max_sign_s"] == 30 and figures["overrides"]["contractions_longer_than_max_sign_s"] == 0
    assert capped["counters"]["segments_forced"] >= 3 and figures["overrides"]["counters"]["segments_forced"] == 0
    result, _ = arrays["runs"]["overrides_but_max_sign_s_1.9"]
    forced = [segment for segment in result.segments if segment.forced]
    assert forced and all(segment.end_index - segment.start_index == 95 for segment in forced)  # 1.9 s at 50 Hz
    # The cut loses the rest of the contraction (refractory until rest) but finds the same contractions.
    assert capped["match"]["hits"] == figures["overrides"]["match"]["hits"]


@needs_data
def test_adductor_spikes_start_signs_but_do_not_each_become_a_segment(analysed):
    figures = analysed["emg_1000_hz_16_bits_solo"][0]
    assert len(figures["reference"]["artefacts"]) == 21
    defaults, overrides = figures["defaults"]["artefact_spikes"], figures["overrides"]["artefact_spikes"]
    # Every spike (ratio 100-300) starts a sign; it falls below half its peak within 0.3 s, so with the
    # defaults each is dropped as shorter than min_sign_s (0.3 s): no segment at all.
    assert defaults["started_a_sign"] == 21 and defaults["in_reported_segments"] == 0
    assert defaults["segments_too_short"] >= 21 and figures["defaults"]["match"]["segments"] == 0
    # The overrides' longer smoothing and hold-off stretch the two widest spikes (0.31 and 0.37 s in the
    # reference) just past 0.3 s: two segments in rest, both on spikes; the other 19 stay too short.
    assert overrides["started_a_sign"] == 21 and overrides["in_reported_segments"] <= 3
    assert figures["overrides"]["match"]["segments_in_rest"] == overrides["in_reported_segments"]


@needs_data
def test_cli_prints_the_figures_and_writes_one_png_per_file(tmp_path, capsys):
    assert main([str(PLUX), "--plots", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["files"]) == set(FILES) and summary["configurations"]["overrides"] == CONTRACTION_OVERRIDES
    for name in FILES:
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary["files"][name]["plot"] == str(png)


def test_cli_refuses_a_folder_without_the_files(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "missing emg_bursts.h5" in capsys.readouterr().err


@needs_data
def test_streamed_blocks_are_one_model_sample_per_20_ms_frame():
    from train.datasets.plux import read_plux, to_recording

    recording = to_recording(read_plux(PLUX / "emg_bursts.h5"))
    streamed = stream_preprocess(recording, plux_config())
    assert streamed.frames == 1425 and all(len(block) == 1 for block in streamed.blocks)
