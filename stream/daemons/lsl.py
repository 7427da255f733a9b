"""stream-lsl: our frames and sign events as Lab Streaming Layer outlets (docs/LSL.md).

Subscribes to ``[endpoints] frames`` (``frame`` and ``description``) and ``[endpoints] events``, and
hands them to ``stream.lsl.bridge.LslBridge``: one LSL stream per modality of the configured layout
(channel labels, units, the exact rate in the stream's description) whose samples carry our sample
clock mapped to ``pylsl.local_clock()``, and an irregular-rate ``Markers`` stream with one JSON
sample per sign event at its end time. LabRecorder then records a session of ours beside any other
LSL device, and any LSL tool sees the signs.

pylsl is the optional extra ``signstream[lsl]``: without it (or without liblsl, on a Pi) the daemon
exits 1 with one line naming the fix. Status heartbeats with the counters (docs/protocol.md) go out
on ``[lsl] status_endpoint``.
"""

from __future__ import annotations

import socket

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.lsl.library import LslUnavailable, load_pylsl
from stream.lsl.streams import marker_stream_name, stream_name
from stream.wire.protocol import (
    TOPIC_DESCRIPTION,
    TOPIC_EVENT,
    TOPIC_FRAME,
    FrameDecoder,
    FrameSpec,
    SequenceTracker,
    decode_description,
    decode_event,
)

# Every counter stream-lsl sends, from its first status message on (docs/protocol.md lists them).
LSL_COUNTERS = (
    "frames", "frame_gaps", "frames_missed", "frames_out_of_order", "acquire_restarts", "samples_pushed",
    "events", "event_gaps", "events_missed", "sink_restarts", "markers", "markers_wall_clock", "consumers",
)


def setup_lsl(daemon: Daemon):
    config = daemon.config
    settings = config.lsl
    try:
        pylsl = load_pylsl()
    except LslUnavailable as error:
        raise DaemonError(str(error)) from None
    from stream.lsl.bridge import LslBridge

    source_id = settings.source_id or f"{settings.stream_prefix}@{socket.gethostname()}"
    bridge = LslBridge(pylsl, config.layout, settings.stream_prefix, source_id)
    daemon.on_close(bridge.close)
    decoder = FrameDecoder(FrameSpec.from_config(config))
    frames_tracker, events_tracker = SequenceTracker(), SequenceTracker()
    daemon.declare_counters(*LSL_COUNTERS)
    daemon.info.update(streams=[stream_name(settings.stream_prefix, stream.modality) for stream in config.layout.streams]
                       + [marker_stream_name(settings.stream_prefix)], source_id=source_id)
    daemon.bind_publisher(settings.status_endpoint)

    def on_frames(parts: list[bytes]) -> None:
        if bytes(parts[0]) == TOPIC_DESCRIPTION:
            description = decode_description(parts)
            decoder.observe_description(description)
            problem = decoder.mismatch(description)
            if problem:
                daemon.log.warning("the frames are not the configured layout's: %s", problem)
            return
        received = bridge.clock()
        header, frame = decoder.decode(parts)
        kind = frames_tracker.observe(header.session, header.sequence)
        if kind == "gap":
            daemon.count("frame_gaps")
        elif kind == "restart":
            daemon.count("acquire_restarts")
        elif kind == "old":
            daemon.count("frames_out_of_order")
            return
        daemon.counters["frames_missed"] = frames_tracker.missed
        bridge.push_frame(header.session, frame, received)
        daemon.count("frames")
        daemon.counters["samples_pushed"] = bridge.samples_pushed

    def on_event(parts: list[bytes]) -> None:
        event = decode_event(parts)
        daemon.count("events")
        kind = events_tracker.observe(event["session"], event["seq"])
        if kind == "gap":
            daemon.count("event_gaps")
        elif kind == "restart":
            daemon.count("sink_restarts")
        daemon.counters["events_missed"] = events_tracker.missed
        marker = bridge.push_event(event)
        daemon.count("markers")
        daemon.counters["markers_wall_clock"] = bridge.markers_wall_clock
        daemon.log.info("marker %s (%.2f) %.3f-%.3f (LSL clock, %s)", marker["label"], marker["confidence"],
                        marker["start"], marker["end"], marker["clock"])

    def tick() -> None:
        daemon.counters["consumers"] = bridge.consumers()

    daemon.connect_subscriber(config.endpoints.frames, (TOPIC_FRAME, TOPIC_DESCRIPTION), on_frames)
    daemon.connect_subscriber(config.endpoints.events, (TOPIC_EVENT,), on_event)
    daemon.log.info("LSL outlets %s (source_id %s)", ", ".join(daemon.info["streams"]), source_id)
    return tick


def main(argv=None) -> int:
    parser = build_parser("stream-lsl", "signstream frames and sign events as Lab Streaming Layer outlets")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    return run_daemon("stream-lsl", config, setup_lsl, exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
