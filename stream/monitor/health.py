"""Each daemon's health as the monitor hears it: alive, stopped or gone, with its counters.

Socket-free: ``observe`` takes decoded status messages, ``summary`` says what the page shows. A
daemon is *gone* when no heartbeat came for ``gone_after_s`` (three heartbeat intervals: a killed
process sends nothing more), *stopped* when its last status said ``stopping`` (a clean exit), and
*restarted* is counted when its ``session`` changes. The frame stream has its own state: *no frames*
when none came for ``stale_after_s`` while acquisition should be running, and every sequence jump
counted (frames lost on the way to the monitor) beside the frames lost at the sensor side.
"""

from __future__ import annotations

import time

from stream.wire.protocol import SequenceTracker

EXPECTED_DAEMONS = ("stream-acquire", "stream-infer", "stream-sink", "stream-monitor")
# Counters the page shows on each daemon's card (all of them are in its details).
HEADLINE_COUNTERS = {
    "stream-acquire": ("frames", "frames_dropped", "truth"),
    "stream-infer": ("frames", "frame_gaps", "frames_missed", "frames_with_dropout", "predictions",
                     "frame_processing_ms_p99", "frame_delay_ms_p99"),
    "stream-sink": ("predictions", "predictions_missed", "events", "rejected_low_confidence", "rejected_label"),
    "stream-monitor": ("frames", "frames_missed", "clients", "updates_dropped"),
}
PROBLEM_COUNTERS = ("bad_messages", "handler_errors", "status_dropped", "frames_dropped", "frame_gaps",
                    "frames_missed", "predictions_missed", "predictions_dropped", "events_dropped", "updates_dropped")
# The labels list can be 50 names: it goes to the page with each prediction, not with every health.
INFO_LEFT_OUT = ("labels",)


class DaemonHealth:
    def __init__(self, name: str):
        self.name = name
        self.status: dict | None = None
        self.heard_monotonic: float | None = None
        self.tracker = SequenceTracker()

    def observe(self, status: dict, now: float) -> None:
        self.tracker.observe(status["session"], status["seq"])
        self.status = status
        self.heard_monotonic = now

    def summary(self, now: float, gone_after_s: float) -> dict:
        if self.status is None:
            return {"daemon": self.name, "state": "not heard", "age_s": None}
        age = now - self.heard_monotonic
        status = self.status
        if status["state"] == "stopping":
            state = "stopped"
        elif age > gone_after_s:
            state = "gone"
        else:
            state = status["state"]
        counters = status["counters"]
        return {
            "daemon": self.name,
            "state": state,
            "age_s": round(age, 2),
            "pid": status["pid"],
            "host": status.get("host", ""),
            "uptime_s": round(status["uptime_s"], 1),
            "restarts": self.tracker.restarts,
            "status_missed": self.tracker.missed,
            "headline": [name for name in HEADLINE_COUNTERS.get(self.name, ()) if name in counters],
            "problems": [name for name in PROBLEM_COUNTERS if counters.get(name, 0)],
            "counters": counters,
            "info": {key: value for key, value in status.get("info", {}).items() if key not in INFO_LEFT_OUT},
        }


class HealthBoard:
    """Every daemon heard (the expected ones listed from the start) and the frame stream's state."""

    def __init__(self, gone_after_s: float, stale_after_s: float, clock=time.monotonic):
        self.gone_after_s = gone_after_s
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.daemons = {name: DaemonHealth(name) for name in EXPECTED_DAEMONS}
        self.frames = SequenceTracker()
        self.last_frame_monotonic: float | None = None
        self.labels: dict[str, list[str]] = {}  # model_id -> class names, from stream-infer's info

    def observe_status(self, status: dict) -> None:
        name = status["daemon"]
        health = self.daemons.get(name)
        if health is None:
            health = self.daemons[name] = DaemonHealth(name)
        health.observe(status, self.clock())
        info = status.get("info", {})
        labels, model_id = info.get("labels"), info.get("model_id")
        if isinstance(labels, list) and isinstance(model_id, str):
            self.labels = {model_id: labels}

    def observe_frame(self, session: str, sequence: int) -> str:
        self.last_frame_monotonic = self.clock()
        return self.frames.observe(session, sequence)

    def summary(self, own_status: dict | None = None) -> dict:
        if own_status is not None:  # the monitor's own counters, read in process (no sequence to follow)
            own = self.daemons["stream-monitor"]
            own.status, own.heard_monotonic = own_status, self.clock()
        now = self.clock()
        acquire = self.daemons["stream-acquire"].summary(now, self.gone_after_s)
        frames_age = None if self.last_frame_monotonic is None else now - self.last_frame_monotonic
        if frames_age is None:
            stream_state = "waiting"
        elif frames_age > self.stale_after_s:
            stream_state = "no frames"
        else:
            stream_state = "flowing"
        return {
            "kind": "health",
            "daemons": [health.summary(now, self.gone_after_s) for health in self.daemons.values()],
            "stream": {
                "state": stream_state,
                "frames_age_s": None if frames_age is None else round(frames_age, 2),
                "frame_gaps": self.frames.gaps,
                "frames_missed": self.frames.missed,
                "acquire_restarts": self.frames.restarts,
                "acquire_state": acquire["state"],
            },
        }
