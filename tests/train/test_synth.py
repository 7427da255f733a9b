"""The synthetic signer: seeded, physically plausible levels, sign timing, sessions, nuisances."""

from __future__ import annotations

import numpy as np
import pytest

from stream.synth.session import SESSION_REST_S, session_recording
from stream.synth.signer import make_signer
from stream.synth.vocabulary import LABELS, VOCABULARY
from train.synth.generate import CONTEXT_LEAD_REST_S, ISOLATED_LEAD_REST_S, ISOLATED_TAIL_REST_S, isolated_recording

STATIC = [i for i, sign in enumerate(VOCABULARY) if sign.kind == "static"]
DYNAMIC = [i for i, sign in enumerate(VOCABULARY) if sign.kind == "dynamic"]


@pytest.fixture(scope="module")
def signer():
    return make_signer(0, 1)


@pytest.fixture(scope="module")
def recordings(signer):
    return [isolated_recording(3, signer, sign, repetition) for sign in range(0, 50, 3) for repetition in range(2)]


def rms(values: np.ndarray) -> np.ndarray:
    return np.sqrt(np.nanmean(values.astype(np.float64) ** 2, axis=0))


def test_vocabulary_has_50_real_words_static_and_dynamic():
    assert len(LABELS) == 50 and len(set(LABELS)) == 50
    assert {"hello", "thank_you", "water", "good", "yes", "no"} <= set(LABELS)
    assert len(STATIC) >= 15 and len(DYNAMIC) >= 15


def test_same_seed_same_samples_other_seed_other_samples(signer):
    first, again = isolated_recording(1, signer, 7, 4), isolated_recording(1, signer, 7, 4)
    np.testing.assert_array_equal(first.emg, again.emg)
    np.testing.assert_array_equal(first.gyro, again.gyro)
    assert first.annotations == again.annotations
    other = isolated_recording(2, signer, 7, 4)
    assert first.emg.shape != other.emg.shape or not np.array_equal(first.emg, other.emg)


def test_isolated_timing_rest_sign_rest(recordings):
    for recording in recordings:
        recording.validate()
        (annotation,) = recording.annotations
        rate = float(recording.emg_rate_hz)
        before = annotation.start_index / rate
        sign = (annotation.end_index - annotation.start_index) / rate
        after = recording.duration_s - annotation.end_index / rate
        lead, tail = ISOLATED_LEAD_REST_S, ISOLATED_TAIL_REST_S
        if recording.metadata["lead_in"] == "held_after_sign":
            # In flow: rest, another sign (0.5-1.5 s), the hand held 1.0-2.5 s, then this sign.
            assert recording.metadata["context_sign"] != annotation.label
            lead = (CONTEXT_LEAD_REST_S[0] + 0.5 + SESSION_REST_S[0], CONTEXT_LEAD_REST_S[1] + 1.5 + SESSION_REST_S[1])
        else:
            assert recording.metadata["lead_in"] == "rest" and "context_sign" not in recording.metadata
        assert lead[0] - 0.01 <= before <= lead[1] + 0.01
        assert 0.5 <= sign <= 1.5
        assert tail[0] - 0.01 <= after <= tail[1] + 0.0135 + 0.01  # whole frames
        # The model's 2 s window ending hold_off_s after the sign (jittered 0.15 s earlier in training)
        # lies inside the recording: no training window needs padding (train.distill.data).
        assert annotation.end_index / rate - 2.0 - 0.15 >= 0.3
        assert recording.emg.shape[0] == 15 * (recording.acc.shape[0] // 2)


def test_a_quarter_of_isolated_recordings_follow_another_sign_with_the_hand_held(signer):
    # Sessions hold the hand between signs this often; training on signs made only from rest left
    # those signs recognised far worse (docs/DATA.md).
    lead_ins = [isolated_recording(0, signer, sign, repetition).metadata["lead_in"]
                for sign in range(0, 50, 2) for repetition in range(4)]
    assert 0.15 <= lead_ins.count("held_after_sign") / len(lead_ins) <= 0.35
    held = next(isolated_recording(0, signer, sign, 0) for sign in range(50)
                if isolated_recording(0, signer, sign, 0).metadata["lead_in"] == "held_after_sign")
    (annotation,) = held.annotations
    rate = float(held.imu_rate_hz)
    before = held.acc[: int(annotation.start_index / float(held.emg_rate_hz) * rate)]
    # The arm moved before the annotated sign (the context sign), unlike a recording from rest.
    assert np.nanstd(before, axis=0).max() > 5 * np.nanstd(before[: int(0.4 * rate)], axis=0).max()


def test_levels_match_real_trigno_exports(recordings):
    quiet, active = [], []
    for recording in recordings:
        if recording.metadata["lead_in"] != "rest":
            continue  # made in flow: another sign before this one, no rest to measure
        annotation = recording.annotations[0]
        quiet.append(rms(recording.emg[: annotation.start_index - 150]))
        middle = (annotation.start_index + annotation.end_index) // 2
        active.append(rms(recording.emg[middle - 150: middle + 150]))
        imu_start = annotation.start_index * 2 // 15
        resting_acc = recording.acc[: imu_start - 10].reshape(-1, 6, 3)
        np.testing.assert_allclose(np.nanmean(np.linalg.norm(resting_acc, axis=2)), 1.0, atol=0.03)
        assert np.nanmax(np.abs(recording.gyro[: imu_start - 10])) < 15.0
    quiet, active = np.array(quiet), np.array(active)
    assert 0.0012 < np.median(quiet) < 0.005 and np.percentile(quiet, 95) < 0.008  # 1.5-5 uV
    assert 0.03 < np.median(active.max(axis=1)) < 0.7  # the most active channel: 0.03-0.7 mV
    assert np.max(active) < 1.2


def motion(recording) -> float:
    """Mean |gyro| over the middle 40% of the sign (after the hand arrives, before it leaves)."""
    annotation = recording.annotations[0]
    length = annotation.end_index - annotation.start_index
    start = (annotation.start_index + int(0.3 * length)) * 2 // 15
    end = (annotation.end_index - int(0.3 * length)) * 2 // 15
    return float(np.nanmean(np.abs(recording.gyro[start:end])))


def test_dynamic_signs_move_more_than_static_ones(signer):
    static = np.mean([motion(isolated_recording(0, signer, sign, 0)) for sign in STATIC[:10]])
    dynamic = np.mean([motion(isolated_recording(0, signer, sign, 0)) for sign in DYNAMIC[:10]])
    assert dynamic > 2 * static
    assert 10.0 < dynamic < 300.0  # deg/s: tens during movement


def test_static_signs_differ_mostly_in_semg(signer):
    """Between two static signs at one location the sEMG pattern differs far more, relative to the
    repetition spread, than the IMU pattern does (over two sittings of five repetitions: from
    generator version 5 each sitting has its own electrode gains)."""
    def separation(first: int, second: int, modality: str) -> float:
        def features(sign):
            values = []
            for repetition in range(10):
                recording = isolated_recording(0, signer, sign, repetition)
                annotation = recording.annotations[0]
                middle = (annotation.start_index + annotation.end_index) // 2
                if modality == "emg":
                    values.append(np.log(rms(recording.emg[middle - 200: middle + 200])))
                else:
                    values.append(np.nanmean(recording.acc[middle * 2 // 15 - 20: middle * 2 // 15 + 20], axis=0))
            return np.array(values)
        a, b = features(first), features(second)
        return float(np.linalg.norm(a.mean(0) - b.mean(0)) / np.sqrt(0.5 * (a.var(0) + b.var(0)).sum()))

    good, please = LABELS.index("water"), LABELS.index("who")  # both at the chin
    assert separation(good, please, "emg") > 1.5 * separation(good, please, "acc")


def test_dropouts_are_nan_exactly_inside_their_gaps():
    sessions = (session_recording(0, make_signer(0, index), 0) for index in range(5))
    recording = next((session for session in sessions if session.gaps), None)
    assert recording is not None, "five 60-120 s sessions should have at least one dropout"
    expected = np.zeros(recording.emg.shape, bool)
    for gap in recording.gaps:
        expected[gap.emg_start:gap.emg_end, gap.sensor] = True
        assert np.isnan(recording.acc[gap.imu_start:gap.imu_end, 3 * gap.sensor:3 * gap.sensor + 3]).all()
    np.testing.assert_array_equal(np.isnan(recording.emg), expected)


def test_sessions_are_annotated_signs_with_rest_between(signer):
    recording = session_recording(0, signer, 1)
    rate = float(recording.emg_rate_hz)
    assert 60.0 <= recording.duration_s <= 120.5
    starts = np.array([a.start_index for a in recording.annotations]) / rate
    ends = np.array([a.end_index for a in recording.annotations]) / rate
    assert len(starts) >= 15
    rests = starts[1:] - ends[:-1]
    assert rests.min() >= 1.0 - 0.01 and rests.max() <= 2.5 + 0.01
    assert set(a.label for a in recording.annotations) <= set(LABELS)
    lead_ins = recording.metadata["lead_ins"]
    assert len(lead_ins) == len(recording.annotations) and lead_ins[0] == "rest"
    assert {"rest", "held", "fidget"} == set(lead_ins)


def test_mains_interference_at_rest_is_at_the_real_level(signer):
    # Version 5: a few per cent of the rest power within 2 Hz of 50 and 150 Hz, as in real
    # recordings (PLUX 2.8-6.7 %, train.synth.realism); under the faint tonic sEMG a 2 s rest shows
    # no clean line any more.
    from train.synth.realism import channel_statistics

    recording = session_recording(0, signer, 0)
    shares = [channel_statistics(recording.emg[:, channel], float(recording.emg_rate_hz))["mains_share"]
              for channel in range(recording.emg.shape[1])]
    assert all(0.02 < share < 0.08 for share in shares), shares


def test_mains_interference_is_present_at_50_hz_in_version_4():
    recording = isolated_recording(0, make_signer(0, 1, 4), 0, 0)
    quiet = recording.emg[: recording.annotations[0].start_index - 50, 0].astype(np.float64)
    quiet = np.nan_to_num(quiet - quiet.mean())
    spectrum = np.abs(np.fft.rfft(quiet * np.hanning(quiet.size)))
    frequencies = np.fft.rfftfreq(quiet.size, 1 / float(recording.emg_rate_hz))
    at_mains = spectrum[np.argmin(np.abs(frequencies - 50))]
    neighbourhood = spectrum[(np.abs(frequencies - 50) > 5) & (np.abs(frequencies - 50) < 25)]
    assert at_mains > 3 * np.median(neighbourhood)


def test_bench_reports_positive_figures():
    from train.synth.bench import run

    figures = run(recordings=4, frames=50)
    assert all(value > 0 for value in figures.values())
    assert figures["synthetic_source_realtime_factor"] > 1.0  # faster than real time, even here


def test_command_line_generates_and_refuses_bad_arguments(tmp_path, capsys):
    from train.synth.__main__ import main

    out = tmp_path / "cli"
    assert main(["--out", str(out), "--signers", "1", "--repetitions", "3", "--sessions", "0", "--seed", "7"]) == 0
    captured = capsys.readouterr()
    assert '"recordings": 150' in captured.out and "150/150 recordings" in captured.err  # progress on stderr
    assert main(["--out", str(out), "--signers", "1", "--repetitions", "3"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "bad"), "--signers", "0"]) == 2
