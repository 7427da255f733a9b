"""stream-sink: predictions in, sign events out (and optionally a JSON-lines log of every event).

Subscribes to ``[endpoints] predictions``, turns each prediction into at most one sign event with
``stream.stages.events.EventBuilder`` (threshold, rejection, no duplicates) and publishes events on
``[endpoints] events``. Bad messages are counted and dropped; missed predictions (sequence gaps) and
a restarted stream-infer are counted and reported in the status message.
"""

from __future__ import annotations

import json
import time

import zmq

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.stages.events import EventBuilder
from stream.wire.protocol import TOPIC_PREDICTION, SequenceTracker, decode_prediction, encode_event

# Every counter stream-sink sends, from its first status message on (docs/protocol.md lists them).
SINK_COUNTERS = (
    "predictions", "prediction_gaps", "predictions_missed", "predictions_out_of_order", "infer_restarts",
    "source_restarts", "events", "events_dropped", "rejected_low_confidence", "rejected_label",
    "duplicates_suppressed",
)


def setup_sink(daemon: Daemon, predictions_endpoint: str | None = None):
    """stream-sink on ``daemon``; ``predictions_endpoint`` (default the config's) is where it subscribes."""
    config = daemon.config
    builder = EventBuilder(config.sink)
    tracker = SequenceTracker()
    daemon.declare_counters(*SINK_COUNTERS)
    publisher = daemon.bind_publisher(config.endpoints.events)
    log_file = None
    if config.sink.jsonl_log:
        path = config.resolve_path(config.sink.jsonl_log)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(path, "a", encoding="utf-8")
        except OSError as error:
            raise DaemonError(f"[sink] jsonl_log = {config.sink.jsonl_log!r}: cannot open for appending ({error})") from None
        daemon.on_close(log_file.close)
    sequence = 0

    def on_prediction(parts: list[bytes]) -> None:
        nonlocal sequence
        received_wall = time.time()
        prediction = decode_prediction(parts)
        daemon.count("predictions")
        kind = tracker.observe(prediction["session"], prediction["seq"])
        if kind == "gap":
            daemon.count("prediction_gaps")
        elif kind == "restart":
            # The sensor clock is the acquisition run's, not stream-infer's: a new infer on the same
            # run keeps comparing spans with the events already published (EventBuilder).
            daemon.count("infer_restarts")
        elif kind == "old":
            daemon.count("predictions_out_of_order")
            return
        daemon.counters["predictions_missed"] = tracker.missed
        event = builder.process(prediction)
        daemon.counters.update({key: value for key, value in builder.counters.items() if key != "events"})
        if event is None:
            return
        timing = dict(prediction.get("timing", {}))
        timing["prediction_published_wall"] = prediction["t_wall"]
        timing["prediction_received_wall"] = received_wall
        event.update(seq=sequence, session=daemon.session, timing=timing, t_wall=time.time())
        sequence += 1
        try:
            publisher.send_multipart(encode_event(event), flags=zmq.NOBLOCK)
        except zmq.Again:
            daemon.count("events_dropped")
        daemon.count("events")
        if log_file is not None:
            log_file.write(json.dumps(event, sort_keys=True) + "\n")
            log_file.flush()
        daemon.log.info("event %s (%.2f) %.2f-%.2f s", event["label"], event["confidence"],
                        event["start_time_s"], event["end_time_s"])

    daemon.connect_subscriber(predictions_endpoint or config.endpoints.predictions, (TOPIC_PREDICTION,), on_prediction)
    return None


def main(argv=None) -> int:
    arguments = build_parser("stream-sink", "signstream sink: predictions -> sign events").parse_args(argv)
    config = load_config_or_exit(arguments)
    return run_daemon("stream-sink", config, setup_sink, exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
