"""Predictions -> sign events: the stage stream-sink and ``stream.tools.evaluate`` share (no sockets).

``EventBuilder.process(prediction)`` takes a decoded prediction map (docs/protocol.md) and returns the
event map to publish, or None with the reason counted:

- below ``[sink] confidence_threshold``: rejected (the classifier is not sure it saw a known sign);
- a rejection label (a model may carry a "rest"/"unknown" class): rejected;
- the same label again within ``[sink] min_event_gap_s`` of the previous event's end, or a span that
  overlaps the previous event: a duplicate of the sign already reported (a segmenter split one sign
  in two), suppressed.
"""

from __future__ import annotations

REJECTION_LABELS = frozenset({"rest", "_rest", "unknown", "_unknown", "none", "_none", "background"})

EVENT_KEYS = (
    "label", "class_index", "confidence", "model_id", "start_index", "end_index", "rate",
    "start_time_s", "end_time_s", "start_wall", "end_wall",
)


class EventBuilder:
    def __init__(self, sink_config):
        self.confidence_threshold = sink_config.confidence_threshold
        self.min_event_gap_s = sink_config.min_event_gap_s
        self.counters = {"events": 0, "rejected_low_confidence": 0, "rejected_label": 0, "duplicates_suppressed": 0}
        self._previous: dict | None = None

    def reset(self) -> None:
        """Forget the previous event (after the prediction stream restarted)."""
        self._previous = None

    def process(self, prediction: dict) -> dict | None:
        if prediction["confidence"] < self.confidence_threshold:
            self.counters["rejected_low_confidence"] += 1
            return None
        if prediction["label"].lower() in REJECTION_LABELS:
            self.counters["rejected_label"] += 1
            return None
        previous = self._previous
        if previous is not None and previous.get("session") == prediction.get("session"):
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
        self._previous = {"label": event["label"], "end_time_s": event["end_time_s"],
                          "session": prediction.get("session")}
        self.counters["events"] += 1
        return event
