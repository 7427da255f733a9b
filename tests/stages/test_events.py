"""Predictions -> sign events: threshold, rejection, no duplicate event for one sign."""

from __future__ import annotations

import pytest

from stream.config import config_from_dict
from stream.stages.events import EventBuilder


def prediction(label="hello", confidence=0.9, start=1.0, end=1.8, session="s", seq=0, source="run-1"):
    return {"seq": seq, "session": session, "source_session": source, "t_wall": 0.0, "label": label, "class_index": 3,
            "confidence": confidence, "model_id": "m", "start_index": int(start * 74), "end_index": int(end * 74) + 1,
            "rate": "2000/27", "start_time_s": start, "end_time_s": end, "start_wall": 100 + start,
            "end_wall": 100 + end, "probabilities": [confidence]}


def builder(**sink):
    return EventBuilder(config_from_dict({"sink": sink}).sink)


def test_confident_prediction_becomes_an_event_with_the_protocol_fields():
    event = builder().process(prediction())
    assert event["label"] == "hello" and event["confidence"] == 0.9 and event["prediction_seq"] == 0
    assert event["source_session"] == "run-1"  # whose sample clock the times are on
    assert (event["start_time_s"], event["end_time_s"], event["start_wall"]) == (1.0, 1.8, 101.0)


def test_low_confidence_and_rejection_labels_make_no_event():
    events = builder(confidence_threshold=0.6)
    assert events.process(prediction(confidence=0.59)) is None
    assert events.process(prediction(label="rest")) is None
    assert events.counters == {"events": 0, "rejected_low_confidence": 1, "rejected_label": 1, "duplicates_suppressed": 0,
                               "source_restarts": 0}


def test_one_sign_split_in_two_gives_one_event_but_a_repeated_sign_gives_two():
    events = builder(min_event_gap_s=0.3)
    assert events.process(prediction(start=1.0, end=1.5)) is not None
    assert events.process(prediction(start=1.6, end=1.9, seq=1)) is None  # 0.1 s later: same sign
    assert events.process(prediction(start=2.1, end=2.4, seq=2)) is None  # 0.2 s after the extended end
    assert events.process(prediction(start=3.0, end=3.8, seq=3)) is not None  # the sign again, after rest
    assert events.process(prediction(label="thanks", start=3.9, end=4.5, seq=4)) is not None
    assert events.counters["duplicates_suppressed"] == 2 and events.counters["events"] == 3


def test_overlapping_prediction_is_a_duplicate_whatever_its_label():
    events = builder()
    events.process(prediction(start=1.0, end=2.0))
    assert events.process(prediction(label="thanks", start=1.5, end=2.2)) is None


def test_signs_of_a_restarted_acquisition_run_are_never_merged_with_the_previous_run():
    """A restarted stream-acquire counts samples from 0 again: its first signs overlap the old run's
    times (and may repeat its last label) without being repeats (issue: every sign was lost until the
    new run's clock passed the old one's)."""
    events = builder(min_event_gap_s=0.3)
    assert events.process(prediction(start=40.0, end=41.0, source="run-1")) is not None
    assert events.process(prediction(start=2.0, end=2.8, source="run-2", seq=1)) is not None
    assert events.process(prediction(label="thanks", start=4.0, end=4.6, source="run-2", seq=2)) is not None
    assert events.counters["source_restarts"] == 1 and events.counters["duplicates_suppressed"] == 0
    # Within the new run, repeats are still merged.
    assert events.process(prediction(label="thanks", start=4.7, end=5.0, source="run-2", seq=3)) is None


def test_a_restarted_infer_on_the_same_run_still_merges_a_sign_it_reports_again():
    """Same acquisition run, same clock: a new stream-infer (new session) that reports the end of a
    sign the old one already published does not make a second event."""
    events = builder(min_event_gap_s=0.3)
    assert events.process(prediction(start=10.0, end=11.0, session="infer-1")) is not None
    assert events.process(prediction(start=10.6, end=11.2, session="infer-2", seq=0)) is None
    assert events.process(prediction(label="thanks", start=12.5, end=13.0, session="infer-2", seq=1)) is not None
    assert events.counters["source_restarts"] == 0


def test_pretty_lines_for_people():
    from stream.daemons.subscribe import format_pretty

    event = builder().process(prediction(start=52.31, end=53.18))
    line = format_pretty(b"event", event)
    assert "hello" in line and "0.90" in line and "52.31" in line and "53.18 s" in line
    status = {"daemon": "stream-sink", "state": "running", "counters": {"events": 3, "bad_messages": 0}}
    assert format_pretty(b"status", status) == "[stream-sink running] bad_messages 0, events 3"


def test_wall_clock_map_takes_the_earliest_arrival_and_follows_a_stepped_clock():
    from stream.wire.clock import SampleClockMap

    clock = SampleClockMap(window_s=10.0)
    for frame in range(200):  # 2.7 s: delays of 1-5 ms on top of an offset of 1000 s
        clock.observe(frame * 0.0135, 1000.0 + frame * 0.0135 + 0.001 + 0.004 * (frame % 3) / 2)
    assert clock.offset_s == pytest.approx(1000.001)
    for frame in range(200, 1200):  # the host clock is stepped forward an hour
        clock.observe(frame * 0.0135, 4600.0 + frame * 0.0135 + 0.002)
    assert clock.offset_s == pytest.approx(4600.002)
