"""stream.lsl.bridge through real LSL on loopback: our outlets read by plain pylsl inlets give back the
samples, the exact rates, the channel metadata, and timestamps from our sample clock; sign events
arrive as JSON markers at their end time."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from stream.config import Config
from stream.lsl.streams import exact_rate_of, rates_agree

from daemon_helpers import synthetic_frames
from lsl_helpers import inlet_for, pull_samples, require_pylsl, unique_prefix

FRAME_S = 0.0135


def test_outlets_carry_the_samples_rates_channels_and_sample_clock():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.lsl.bridge import LslBridge

    config = Config()
    bridge = LslBridge(pylsl, config.layout, prefix, prefix)
    inlets = {name: inlet_for(pylsl, f"{prefix}-{name}") for name in ("emg", "acc", "gyro")}
    frames = synthetic_frames(0.6, [(0.2, 0.4)])
    frames[7].emg[3, 2] = np.nan  # a sensor dropout stays NaN
    lost = range(20, 25)  # frames lost on the way to stream-lsl: a hole in the timestamps
    base = pylsl.local_clock()
    delays = np.random.default_rng(1).uniform(0.002, 0.010, len(frames))
    delays[5] = 0.0005  # the fastest frame sets the offset
    sent = [frame for frame in frames if frame.sequence not in lost]
    for frame in sent:
        bridge.push_frame("run-1", frame, base + (frame.sequence + 1) * FRAME_S + delays[frame.sequence])
    offset = base + delays[5]
    for name, inlet in inlets.items():
        info = inlet.info(5.0)
        rate = Fraction(10000, 9) if name == "emg" else Fraction(4000, 27)
        # The double goes through the stream's XML with 15 significant digits: equal within float precision.
        assert rates_agree(info.nominal_srate(), rate) and not rates_agree(info.nominal_srate(), rate * (1 + 1e-7))
        assert exact_rate_of(info) == f"{rate.numerator}/{rate.denominator}"
        assert info.get_channel_labels() == list(config.layout.channels(name))
        assert set(info.get_channel_units()) == {"mV" if name == "emg" else ("g" if name == "acc" else "deg/s")}
        rows = 15 if name == "emg" else 2
        values, stamps = pull_samples(inlet, rows * len(sent))
        expected = np.concatenate([getattr(frame, name) for frame in sent])
        assert np.array_equal(values, expected, equal_nan=True)
        indices = np.concatenate([frame.sequence * rows + np.arange(rows) for frame in sent])
        # The first frames came before the fastest one: from it on the offset slews down to it, by at
        # most half a sEMG period per frame (the timestamps never go back), done well before frame 25.
        settled = np.concatenate([np.full(rows, frame.sequence >= 25) for frame in sent])
        np.testing.assert_allclose(stamps[settled], offset + indices[settled] / float(rate), rtol=0, atol=2e-6)
        assert np.all(np.diff(stamps) > 0)
    bridge.close()


def test_sign_events_are_json_markers_at_their_end_time():
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.lsl.bridge import LslBridge

    bridge = LslBridge(pylsl, Config().layout, prefix, prefix)
    markers = inlet_for(pylsl, f"{prefix}-markers")
    assert markers.info(5.0).type() == "Markers" and markers.info(5.0).nominal_srate() == 0.0
    base = pylsl.local_clock()
    for frame in synthetic_frames(0.2, []):
        bridge.push_frame("run-1", frame, base + (frame.sequence + 1) * FRAME_S)
    event = {"label": "hello", "confidence": 0.87, "class_index": 2, "model_id": "tiny-1", "start_time_s": 0.05,
             "end_time_s": 0.15, "start_wall": 1.0, "end_wall": 2.0, "source_session": "run-1"}
    bridge.push_event(event)
    wall = pylsl.local_clock()
    bridge.push_event({**event, "label": "water", "source_session": "a-run-never-seen",
                       "start_wall": 1e9, "end_wall": 1e9 + 0.5})
    values, stamps = pull_samples(markers, 2, strings=True)
    first, second = (json.loads(value[0]) for value in values)
    assert first["label"] == "hello" and first["confidence"] == pytest.approx(0.87) and first["clock"] == "frames"
    assert first["start"] == pytest.approx(base + 0.05, abs=1e-9) and first["end"] == pytest.approx(base + 0.15, abs=1e-9)
    assert stamps[0] == pytest.approx(first["end"], abs=1e-9)
    assert (first["start_time_s"], first["end_time_s"], first["source_session"]) == (0.05, 0.15, "run-1")
    # No frame of its run seen: its wall-clock times moved onto the LSL clock.
    import time

    shift = wall - time.time()
    assert second["clock"] == "wall" and second["end"] - second["start"] == pytest.approx(0.5)
    assert second["end"] == pytest.approx(1e9 + 0.5 + shift, abs=0.05) and stamps[1] == pytest.approx(second["end"])
    assert bridge.markers_wall_clock == 1
    bridge.close()
