"""Sensor layouts as data: every built-in profile's frame, exact timing in index space, the wire, the
recording format, and the stages end to end (replay -> wire -> DSP -> segmenter -> LiteRT -> events)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stream.config import ConfigError, config_from_dict
from stream.wire.layout import PROFILES, frame_period
from stream.wire.protocol import FrameDecoder, FrameEncoder, FrameSpec, ProtocolError, decode_description, decode_frame

from daemon_helpers import layout_signals, tiny_model_card

EXPECTED = {
    # profile: (frame period s, sEMG samples per frame, IMU samples per frame, sEMG channels, acc, gyro)
    "trigno": (Fraction(27, 2000), 15, 2, 6, 18, 18),
    "trigno-emg1259": (Fraction(27, 2000), 17, 2, 6, 18, 18),
    "trigno-emg1926": (Fraction(27, 2000), 26, 1, 6, 18, 18),
    "trigno-emg2148": (Fraction(27, 2000), 29, 1, 6, 18, 18),
    "trigno-emg-acc": (Fraction(27, 2000), 15, 2, 6, 18, 0),
    "trigno-emg": (Fraction(27, 2000), 15, 0, 6, 0, 0),
    "plux": (Fraction(1, 50), 20, 0, 1, 0, 0),
    "myo": (Fraction(1, 50), 4, 1, 8, 3, 3),
}


def profile_config(name: str, **tables):
    return config_from_dict({"sensors": {"profile": name}, **tables})


def test_every_profile_is_tested_here():
    assert set(EXPECTED) == set(PROFILES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_frame_of_each_profile_follows_from_its_rates(name):
    layout = profile_config(name).layout
    period, emg_rows, imu_rows, emg, acc, gyro = EXPECTED[name]
    assert layout.frame_period_s == period
    assert (layout.emg_samples_per_frame, layout.imu_samples_per_frame) == (emg_rows, imu_rows)
    assert [layout.channel_count(modality) for modality in ("emg", "acc", "gyro")] == [emg, acc, gyro]
    assert layout.describe().startswith(f"{name}: emg {emg} x ")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_timing_is_exact_in_index_space_for_every_profile(name):
    """Frame k starts at sample k * per_frame of each clock, at exactly k * period seconds, after a day
    of frames as after one (no float rate anywhere)."""
    layout = profile_config(name).layout
    for frame in (0, 1, 7, 74 * 3600 * 24, 10**9 + 3):
        start_s = frame * layout.frame_period_s
        assert Fraction(frame * layout.emg_samples_per_frame) / layout.emg_rate_hz == start_s
        if layout.has_imu:
            assert Fraction(frame * layout.imu_samples_per_frame) / layout.imu_rate_hz == start_s


def test_frame_period_is_the_shortest_holding_whole_samples():
    assert frame_period([Fraction(10000, 9), Fraction(4000, 27)]) == Fraction(27, 2000)
    assert frame_period([Fraction(200), Fraction(50)]) == Fraction(1, 50)
    assert frame_period([Fraction(52000, 27), Fraction(2000, 27)]) == Fraction(27, 2000)
    for rates in ([Fraction(10000, 9), Fraction(4000, 27)], [Fraction(34000, 27), Fraction(4000, 27)]):
        period = frame_period(rates)
        assert all((rate * period).denominator == 1 for rate in rates)
        assert not all((rate * period / 2).denominator == 1 for rate in rates)  # and no shorter one


def test_a_config_key_overrides_its_profile_and_the_default_is_trigno():
    assert config_from_dict({}).layout == profile_config("trigno").layout
    six = profile_config("myo", sensors={"profile": "myo", "names": [f"e{number}" for number in range(6)]})
    assert six.layout.sensor_names == tuple(f"e{number}" for number in range(6)) and six.layout.imu_names == ("armband",)
    assert six.preprocess.model_rate_hz == 50 and six.filters.emg_bandpass_hz == (10.0, 95.0)


def test_impossible_filters_are_config_errors_naming_key_rate_and_what_to_use():
    with pytest.raises(ConfigError) as raised:
        profile_config("myo", filters={"emg_bandpass_hz": [20.0, 450.0]})
    message = str(raised.value)
    assert "filters.emg_bandpass_hz" in message and "200" in message and "e.g. [" in message
    with pytest.raises(ConfigError, match="notch_hz"):
        profile_config("myo", filters={"notch_hz": 150.0})


def test_the_shipped_model_keeps_its_hash_and_a_model_of_another_layout_is_refused_in_one_line(tmp_path):
    import json

    from stream.config import load_config
    from stream.dsp.preprocess import preprocessing_hash
    from stream.stages.classifier import Classifier
    from stream.stages.model_card import ModelCardError, load_model_card

    config = load_config()
    shipped = json.loads((config.resolve_path(config.model.card)).read_text())
    assert shipped["preprocessing"]["hash"] == preprocessing_hash(config)  # cards made before layouts stay valid
    card = load_model_card(tiny_model_card(tmp_path / "myo", config=profile_config("myo")))
    with pytest.raises(ModelCardError) as raised:
        Classifier(card, expected_layout=config.layout)
    message = str(raised.value)
    assert "\n" not in message and "myo" not in message.split("config's layout")[1]
    assert "emg 8 x 200 Hz (counts)" in message and "emg 6 x 10000/9 Hz (mV)" in message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_profile_end_to_end_replay_wire_dsp_segmenter_model_events(name, tmp_path):
    """A recording made in the profile's layout, written and read back, replayed frame by frame,
    encoded and decoded on the wire, through the Recognizer (DSP, windows, segmenter, a LiteRT model
    with that layout's inputs) and the event stage: the bursts come out as events, and the streamed
    DSP equals the whole-recording DSP bitwise."""
    from stream.recording import Recording, read_recording, write_recording
    from stream.sources.replay import ReplaySource
    from stream.stages.classifier import Classifier
    from stream.stages.events import EventBuilder
    from stream.stages.model_card import load_model_card
    from stream.stages.recognizer import Recognizer

    config = profile_config(name, sink={"confidence_threshold": 0.0},
                            acquire={"source": "replay", "replay": {"path": str(tmp_path / "replay.h5")}})
    layout = config.layout
    bursts = [(3.0, 3.8), (6.0, 6.9), (9.0, 9.6)]
    emg, acc, gyro = layout_signals(layout, 12.0, bursts)
    recording = Recording(emg, acc, gyro, layout.emg_rate_hz, layout.imu_rate_hz, layout.sensor_names,
                          imu_names=layout.imu_names if layout.imu_names != layout.sensor_names else (),
                          emg_unit=layout.emg_unit)
    write_recording(tmp_path / "replay.h5", recording)
    assert read_recording(tmp_path / "replay.h5").layout.signature() == layout.signature()

    spec = FrameSpec.from_config(config)
    encoder = FrameEncoder(spec)
    card = load_model_card(tiny_model_card(tmp_path / "model", config=config))
    classifier = Classifier(card, expected_layout=layout)
    recognizer = Recognizer(config, classifier)
    builder = EventBuilder(config.sink)
    events, blocks = [], []
    source = ReplaySource(config, realtime=False)
    for frame in source:
        header, decoded = decode_frame(encoder.encode(frame), spec)
        for modality in ("emg", "acc", "gyro"):
            np.testing.assert_array_equal(getattr(decoded, modality), getattr(frame, modality))
        block = recognizer.preprocessor.process_frame(decoded)
        if block is not None:
            blocks.append(block)
            for recognition in recognizer.process_block(block):
                prediction = {**recognizer.prediction_fields(recognition, 0.0), "source_session": header.session}
                event = builder.process(prediction)
                if event is not None:
                    events.append(event)
    assert source.frames_per_pass == recording.whole_frames > 0
    starts = sorted(event["start_time_s"] for event in events)
    assert len(events) == len(bursts), (name, starts)
    for (start, end), found in zip(bursts, starts):
        assert start - 0.3 < found < end, (name, starts)
    batch = recognizer.preprocessor.__class__(config).process_recording(emg, acc, gyro)
    streamed = {modality: np.concatenate([getattr(block, modality) for block in blocks]) for modality in ("emg", "acc", "gyro")}
    offset = blocks[0].first_index - batch.first_index
    for modality, values in streamed.items():
        assert values.shape[1] == layout.channel_count(modality)
        np.testing.assert_array_equal(values, getattr(batch, modality)[offset:offset + len(values)])


def test_a_frame_of_another_layout_is_refused_naming_the_configured_one():
    from stream.wire.frames import silent_frame

    myo = FrameSpec.from_config(profile_config("myo"))
    encoder = FrameEncoder(myo)
    message = encoder.encode(silent_frame(myo.layout, 0))
    # Before the publisher's description arrives: the frame names another description than the config's.
    with pytest.raises(ProtocolError, match=r"not the configured layout's \([0-9a-f]{16}: trigno-emg-acc: emg 6 x 10000/9"):
        decode_frame(message, FrameSpec.from_config(profile_config("trigno-emg-acc")))
    # With it (a subscriber hears one with every heartbeat), the refusal says how the two differ.
    for profile, difference in (("trigno-emg-acc", r"streams \['emg', 'acc', 'gyro'\]; the configured layout is trigno-emg-acc"),
                                ("trigno", "stream emg: rate 200 Hz; expected 10000/9 Hz")):
        decoder = FrameDecoder(FrameSpec.from_config(profile_config(profile)))
        decoder.observe_description(decode_description(encoder.encode_description()))
        with pytest.raises(ProtocolError, match=difference):
            decoder.decode(message)
