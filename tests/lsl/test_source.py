"""stream.sources.lsl through real LSL on loopback: frames of the layout from LSL streams, sample
counting, gaps and clock jumps reported (never closed silently), and the refusals at start."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from stream.config import config_from_dict

from daemon_helpers import synthetic_frames
from lsl_helpers import require_pylsl, unique_prefix

FRAME_S = 0.0135
EMG_RATE, IMU_RATE = 10000 / 9, 4000 / 27


def lsl_config(prefix: str, **extra):
    keys = {f"{modality}_name": f"{prefix}-{modality}" for modality in ("emg", "acc", "gyro")}
    keys.update({"resolve_timeout_s": 2.0, **extra})
    return config_from_dict({"acquire": {"source": "lsl", "lsl": keys}})


def outlets(pylsl, prefix: str, rates=None, channels=None):
    """Plain outlets named like stream-lsl's (our StreamInfo), with any rate or channel count."""
    from stream.config import Config
    from stream.lsl.streams import outlet_info

    made = {}
    for modality in ("emg", "acc", "gyro"):
        info = outlet_info(pylsl, Config().layout, modality, prefix, prefix)
        if rates or channels:
            count = (channels or {}).get(modality, info.channel_count())
            rate = (rates or {}).get(modality, info.nominal_srate())
            name = f"{prefix}-{modality}"
            info = pylsl.StreamInfo(name, info.type(), count, rate, pylsl.cf_float32, name)
        made[modality] = pylsl.StreamOutlet(info)
    return made


def push(outlets_by_modality, frames, base: float, skip=None) -> None:
    """Each frame's samples with timestamps ``base + index / rate`` (``skip(modality, frame)``: not sent)."""
    for frame in frames:
        for modality, outlet in outlets_by_modality.items():
            if skip is not None and skip(modality, frame):
                continue
            samples = getattr(frame, modality)
            first, rate = (frame.emg_first_index, EMG_RATE) if modality == "emg" else (frame.imu_first_index, IMU_RATE)
            outlet.push_chunk(np.ascontiguousarray(samples), base + (first + len(samples) - 1) / rate, True)


def read_frames(source, count: int, timeout_s: float = 10.0):
    """``count`` frames from the source, or a failure after ``timeout_s`` (the source is stopped)."""
    timer = threading.Timer(timeout_s, source.request_stop)
    timer.start()
    try:
        got = [frame for _, frame in zip(range(count), source)]
    finally:
        timer.cancel()
    assert len(got) == count, f"{len(got)} of {count} frames within {timeout_s} s"
    return got


def test_frames_from_lsl_streams_are_the_samples_sent_counted_from_a_common_start():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource

    sending = outlets(pylsl, prefix)
    source = LslSource(lsl_config(prefix))
    frames = synthetic_frames(0.5, [(0.1, 0.3)])
    base = pylsl.local_clock()
    push(sending, frames, base)
    got = read_frames(source, len(frames))
    for sent, received in zip(frames, got):
        assert (received.sequence, received.emg_first_index, received.imu_first_index) == \
               (sent.sequence, sent.emg_first_index, sent.imu_first_index)
        for modality in ("emg", "acc", "gyro"):
            assert np.array_equal(getattr(received, modality), getattr(sent, modality))
    assert source.gaps == [] and source.clock_jumps == []
    source.close()


def test_lost_samples_of_one_stream_are_nan_and_a_gap_and_of_every_stream_an_index_jump():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource

    sending = outlets(pylsl, prefix)
    source = LslSource(lsl_config(prefix))
    frames = synthetic_frames(0.8, [])
    base = pylsl.local_clock()
    # sEMG alone loses frames 10-12 (NaN there, the IMU goes on); every stream loses frames 30-39.
    push(sending, frames, base, skip=lambda modality, frame: (modality == "emg" and 10 <= frame.sequence < 13)
         or 30 <= frame.sequence < 40)
    got = read_frames(source, len(frames) - 10)
    numbers = [frame.sequence for frame in got]
    assert numbers == [*range(30), *range(40, len(frames))]
    assert [frame.emg_first_index for frame in got] == [15 * number for number in numbers]
    for frame in got:
        original = frames[frame.sequence]
        if 10 <= frame.sequence < 13:
            assert np.isnan(frame.emg).all()
        else:
            assert np.array_equal(frame.emg, original.emg)
        assert np.array_equal(frame.gyro, original.gyro)
    spans = sorted((gap.modality, gap.start_index, gap.end_index) for gap in source.gaps)
    assert spans == [("acc", 60, 80), ("emg", 150, 195), ("emg", 450, 600), ("gyro", 60, 80)]
    source.close()


def test_a_clock_jump_back_is_reported_and_the_counting_goes_on():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource

    sending = outlets(pylsl, prefix)
    source = LslSource(lsl_config(prefix))
    frames = synthetic_frames(0.4, [])
    base = pylsl.local_clock()
    push(sending, frames[:10], base)
    push(sending, frames[10:], base - 0.5)  # the sender's clock stepped back half a second
    got = read_frames(source, len(frames))
    assert [frame.sequence for frame in got] == list(range(len(frames)))
    assert {jump.modality for jump in source.clock_jumps} == {"emg", "acc", "gyro"}
    assert all(jump.seconds == pytest.approx(0.5, abs=0.01) for jump in source.clock_jumps)
    assert source.gaps == []
    source.close()


def test_a_missing_stream_is_an_error_naming_it():
    require_pylsl()  # the resolve itself needs liblsl
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource, LslSourceError

    with pytest.raises(LslSourceError, match=rf"emg_name = '{prefix}-emg'.*no LSL stream matching "
                                             rf"name='{prefix}-emg' and type='EMG' within 0.5 s"):
        LslSource(lsl_config(prefix, resolve_timeout_s=0.5))


def test_a_wrong_channel_count_is_an_error_naming_both():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource, LslSourceError

    keep = outlets(pylsl, prefix, channels={"emg": 8})  # noqa: F841 (alive while resolved)
    with pytest.raises(LslSourceError, match=r"8 channels; the layout \(trigno: .*\) has 6 emg channels"):
        LslSource(lsl_config(prefix))


def test_a_rate_that_is_not_the_layouts_is_an_error_naming_both():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource, LslSourceError

    keep = outlets(pylsl, prefix, rates={"acc": 148.0})  # noqa: F841
    with pytest.raises(LslSourceError, match=r"nominal rate 148.0 Hz is not the layout's acc rate 4000/27 Hz "
                                             r"\(148.14814814814815\)"):
        LslSource(lsl_config(prefix))


def test_the_source_is_refused_clearly_without_pylsl(monkeypatch):
    import builtins

    from stream.sources.lsl import LslSource, LslSourceError

    real_import = builtins.__import__

    def no_pylsl(name, *arguments, **keywords):
        if name == "pylsl":
            raise ModuleNotFoundError("No module named 'pylsl'")
        return real_import(name, *arguments, **keywords)

    monkeypatch.setattr(builtins, "__import__", no_pylsl)
    monkeypatch.delitem(__import__("sys").modules, "pylsl", raising=False)
    with pytest.raises(LslSourceError, match=r"needs pylsl, which is not installed: pip install 'signstream\[lsl\]'"):
        LslSource(lsl_config("no-such-prefix"))


def test_a_chunk_stamped_late_is_jitter_not_a_gap():
    """Device apps stamp a chunk when they push it: one pushed 20 ms late under load (longer than a
    frame) shifts that chunk alone, and nothing is reported or filled."""
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.sources.lsl import LslSource

    sending = outlets(pylsl, prefix)
    source = LslSource(lsl_config(prefix))
    frames = synthetic_frames(0.4, [])
    base = pylsl.local_clock()
    for frame in frames:
        push(sending, [frame], base + (0.020 if frame.sequence == 10 else 0.0))
    got = read_frames(source, len(frames))
    assert [frame.sequence for frame in got] == list(range(len(frames)))
    assert all(np.array_equal(received.emg, sent.emg) for received, sent in zip(got, frames))
    assert source.gaps == [] and source.clock_jumps == []
    source.close()
