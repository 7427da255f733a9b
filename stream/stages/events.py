"""Predictions -> sign events: the stage stream-sink and ``stream.tools.evaluate`` share (no sockets).

``EventBuilder.process(prediction)`` takes a decoded prediction map (docs/protocol.md) and returns the
event map to publish, or None with the reason counted:

- below ``[sink] confidence_threshold``: rejected (the classifier is not sure it saw a known sign);
- a rejection label (a model may carry a "rest"/"unknown" class): rejected;
- the same label again within ``[sink] min_event_gap_s`` of the previous event's end, or a span that
  overlaps the previous event: a duplicate of the sign already reported (a segmenter split one sign
  in two), suppressed.

Spans are times on one acquisition run's sample clock, named by the prediction's ``source_session``
(the frames' session id). Spans of different runs are never compared: a restarted stream-acquire
counts samples from 0 again, so its first signs overlap the previous run's times without being the
same signs. A restarted stream-infer keeps the run (same clock), so a sign it reports again is
still recognised as a repeat.
"""

from __future__ import annotations

REJECTION_LABELS = frozenset({"rest", "_rest", "unknown", "_unknown", "none", "_none", "background"})

EVENT_KEYS = (
    "label", "class_index", "confidence", "model_id", "start_index", "end_index", "rate",
    "start_time_s", "end_time_s", "start_wall", "end_wall", "source_session",
)


class EventBuilder:
    def __init__(self, sink_config):
        self.confidence_threshold = sink_config.confidence_threshold
        self.min_event_gap_s = sink_config.min_event_gap_s
        self.counters = {"events": 0, "rejected_low_confidence": 0, "rejected_label": 0, "duplicates_suppressed": 0,
                         "source_restarts": 0}
        self._previous: dict | None = None
        self._source_session: str | None = None  # the acquisition run of the latest prediction

    def reset(self) -> None:
        """Forget the previous event."""
        self._previous = None
        self._source_session = None

    def process(self, prediction: dict) -> dict | None:
        source_session = prediction["source_session"]
        if self._source_session is not None and source_session != self._source_session:
            self.counters["source_restarts"] += 1
        self._source_session = source_session
        if prediction["confidence"] < self.confidence_threshold:
            self.counters["rejected_low_confidence"] += 1
            return None
        if prediction["label"].lower() in REJECTION_LABELS:
            self.counters["rejected_label"] += 1
            return None
        previous = self._previous
        if previous is not None and previous["source_session"] == source_session:
            overlaps = prediction["start_time_s"] < previous["end_time_s"]
            same_sign_again = (prediction["label"] == previous["label"]
                               and prediction["start_time_s"] - previous["end_time_s"] < self.min_event_gap_s)
            if overlaps or same_sign_again:
                self.counters["duplicates_suppressed"] += 1
                # Extend the reported sign so a third fragment is recognised as the same sign too.
                previous["end_time_s"] = max(previous["end_time_s"], prediction["end_time_s"])
                return None
        event = {key: prediction[key] for key in EVENT_KEYS}
        event["prediction_seq"] = prediction.get("seq", -1)
        self._previous = {"label": event["label"], "end_time_s": event["end_time_s"], "source_session": source_session}
        self.counters["events"] += 1
        return event
