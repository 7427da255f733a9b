"""The live RecordingWriter: appends frames, fills lost frames with NaN gaps, survives a crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.recording import ALL_SENSORS, PARTIAL_SUFFIX, Gap, RecordingError, RecordingWriter, read_recording
from stream.wire.frames import Frame

SENSORS = ("s1", "s2")


def frame(number: int, sensors: int = 2) -> Frame:
    rng = np.random.default_rng(number)
    return Frame(number, 15 * number, 2 * number,
                 rng.standard_normal((15, sensors)).astype(np.float32),
                 rng.standard_normal((2, 3 * sensors)).astype(np.float32),
                 rng.standard_normal((2, 3 * sensors)).astype(np.float32))


def test_frames_annotations_and_gaps_round_trip(tmp_path):
    path = tmp_path / "live.h5"
    numbers = [n for n in range(10, 200) if n not in (50, 51, 52)]
    with RecordingWriter(path, SENSORS, metadata={"signer": "x"}, flush_interval_frames=7) as writer:
        for number in numbers:
            writer.append_frame(frame(number))
        writer.add_annotation("hello", 200, 400)
        writer.add_gap(Gap(1, 1500, 1515, 200, 202))
        writer.metadata["note"] = "set before close"
        assert writer.partial_path.exists() and not path.exists()
    assert not writer.partial_path.exists()
    recording = read_recording(path)
    assert recording.complete and recording.metadata == {"signer": "x", "note": "set before close"}
    assert (recording.emg_first_index, recording.imu_first_index) == (150, 20)
    assert recording.emg.shape == (15 * 190, 2) and recording.acc.shape == (2 * 190, 6)
    expected_emg = np.concatenate([frame(n).emg if n in numbers else np.full((15, 2), np.nan, np.float32)
                                   for n in range(10, 200)])
    np.testing.assert_array_equal(recording.emg, expected_emg)
    assert recording.gaps == [Gap(ALL_SENSORS, 750, 795, 100, 106), Gap(1, 1500, 1515, 200, 202)]
    assert [a.label for a in recording.annotations] == ["hello"]


def test_out_of_order_and_wrong_frames_are_refused(tmp_path):
    writer = RecordingWriter(tmp_path / "w.h5", SENSORS)
    writer.append_frame(frame(5))
    with pytest.raises(RecordingError, match="duplicate or out-of-order"):
        writer.append_frame(frame(5))
    with pytest.raises(RecordingError, match=r"frame emg has shape \(15, 3\); the layout .* needs \(15, 2\)"):
        writer.append_frame(frame(6, sensors=3))
    writer.append_frame(frame(6))
    writer.close()
    assert read_recording(tmp_path / "w.h5").emg.shape == (30, 2)
    with pytest.raises(RecordingError, match="writer is closed"):
        writer.append_frame(frame(7))


def test_existing_recordings_are_never_overwritten(tmp_path):
    path = tmp_path / "once.h5"
    RecordingWriter(path, SENSORS).close()
    with pytest.raises(RecordingError, match="already exists"):
        RecordingWriter(path, SENSORS)


def test_long_outage_asks_for_a_new_recording(tmp_path):
    writer = RecordingWriter(tmp_path / "gap.h5", SENSORS, max_fill_s=1.0)
    writer.append_frame(frame(0))
    with pytest.raises(RecordingError, match="start a new one"):
        writer.append_frame(frame(500))


def test_a_killed_writer_leaves_earlier_recordings_intact_and_its_flushed_data_readable(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.recording.test_recording_writer import frame
        from stream.recording import RecordingWriter
        first = RecordingWriter({str(tmp_path / 'first.h5')!r}, ("s1", "s2"))
        for n in range(100):
            first.append_frame(frame(n))
        first.close()
        second = RecordingWriter({str(tmp_path / 'second.h5')!r}, ("s1", "s2"), flush_interval_frames=10)
        for n in range(95):
            second.append_frame(frame(n))
            if n == 40:
                second.add_annotation("hello", 15, 30)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    first = read_recording(tmp_path / "first.h5")
    assert first.complete and first.emg.shape == (1500, 2)
    partial = read_recording(tmp_path / ("second.h5" + PARTIAL_SUFFIX))
    assert not partial.complete
    assert partial.emg.shape == (15 * 90, 2)  # the last 5 frames were never flushed
    np.testing.assert_array_equal(partial.emg[-15:], frame(89).emg)
    assert [a.label for a in partial.annotations] == ["hello"]

    from stream.recording.__main__ import main

    assert main(["recover", str(tmp_path / "first.h5")]) == 2  # finished files need no recovery
    assert main(["recover", str(tmp_path / ("second.h5" + PARTIAL_SUFFIX))]) == 0
    recovered = read_recording(tmp_path / "second.h5")
    assert recovered.complete and recovered.metadata["recovered"] is True
    np.testing.assert_array_equal(recovered.emg, partial.emg)
    assert not (tmp_path / ("second.h5" + PARTIAL_SUFFIX)).exists()
    assert main(["info", str(tmp_path / "second.h5")]) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flush=st.integers(1, 40), first=st.integers(0, 500),
       lost=st.sets(st.integers(1, 78), max_size=10), total=st.integers(1, 80))
def test_any_flush_interval_and_loss_pattern_gives_the_same_file(tmp_path, flush, first, lost, total):
    """Streaming (flush every N frames, frames lost anywhere) equals the one-shot expectation."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "h.h5"  # one directory per example
    kept = [k for k in range(total) if k == 0 or k not in lost]
    with RecordingWriter(path, SENSORS, flush_interval_frames=flush) as writer:
        for k in kept:
            writer.append_frame(frame(first + k))
    recording = read_recording(path)
    assert recording.emg_first_index == 15 * first and recording.imu_first_index == 2 * first
    emitted = range(kept[0], kept[-1] + 1)
    expected = np.concatenate([frame(first + k).emg if k in kept else np.full((15, 2), np.nan, np.float32)
                               for k in emitted])
    np.testing.assert_array_equal(recording.emg, expected)
    missing = sorted(set(emitted) - set(kept))
    assert sum(gap.emg_end - gap.emg_start for gap in recording.gaps) == 15 * len(missing)
    for gap in recording.gaps:
        assert gap.sensor == ALL_SENSORS and np.isnan(recording.emg[gap.emg_start - 15 * first:gap.emg_end - 15 * first]).all()
