"""stream-monitor: a live web page of the signals, the segmentation, the signs and every daemon's health.

Only a subscriber on the ZeroMQ side (frames and stream-acquire's status, predictions and
stream-infer's, events and stream-sink's; the same host and CURVE rules as every daemon), so it can
never slow the pipeline: a publisher drops for a slow subscriber at its high-water mark, and the
monitor counts that as a sequence gap like anyone. It publishes its own status on ``[monitor]
status_endpoint``. The page is served on ``[monitor] host:port`` (127.0.0.1:8080) by ``stream.monitor.web``;
the traces are computed by ``stream.monitor.traces`` (the project's own Preprocessor and Segmenter on
the monitor's copies) and the health by ``stream.monitor.health``. docs/MONITOR.md describes the page.

At start it prints one line on stdout, ``stream-monitor: open URL`` (with ``?token=`` when bound
beyond loopback), which is how `python -m stream.tools.demo --monitor` learns the address.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from stream.config import ConfigError
from stream.config.cli import EXIT_CONFIG_ERROR, build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.wire.protocol import (
    TOPIC_EVENT,
    TOPIC_FRAME,
    TOPIC_PREDICTION,
    TOPIC_STATUS,
    FrameSpec,
    decode_frame,
    decode_map_message,
)

HEALTH_INTERVAL_S = 0.5
MONITOR_COUNTERS = ("frames", "frame_gaps", "frames_missed", "acquire_restarts", "predictions", "events", "statuses",
                    "clients", "connections", "requests_refused", "updates", "updates_dropped", "clients_skipped",
                    "clients_stalled")
INSTALL_HINT = ("stream-monitor needs aiohttp, in the optional extra 'monitor': pip install -e '.[monitor]' "
                "(make install-dev installs it)")


def require_web():
    """The web module, or a DaemonError saying what to install."""
    try:
        from stream.monitor import web
    except ImportError as error:
        if error.name != "aiohttp" and not str(error).startswith("No module named 'aiohttp"):
            raise
        raise DaemonError(INSTALL_HINT) from None
    return web


def _json(message: dict) -> str:
    # NaN marks a sensor dropout in the traces; JSON has no NaN, the page reads null as a break.
    return json.dumps(message, separators=(",", ":")).replace("NaN", "null")


def page_prediction(message: dict, labels: dict[str, list[str]]) -> dict:
    return {
        "kind": "prediction", "seq": message["seq"], "session": message["session"], "label": message["label"],
        "class_index": message["class_index"], "confidence": round(float(message["confidence"]), 4),
        "model_id": message["model_id"], "start_time_s": message["start_time_s"], "end_time_s": message["end_time_s"],
        "source_session": message["source_session"], "forced": bool(message.get("forced", False)),
        "probabilities": [round(float(value), 4) for value in message["probabilities"]],
        "labels": labels.get(message["model_id"]),
    }


def page_event(message: dict) -> dict:
    return {
        "kind": "event", "seq": message["seq"], "label": message["label"],
        "confidence": round(float(message["confidence"]), 4), "prediction_seq": message["prediction_seq"],
        "start_time_s": message["start_time_s"], "end_time_s": message["end_time_s"],
        "source_session": message["source_session"], "t_wall": message["t_wall"],
        # From the sign's end (estimated on stream-infer's clock) to the event's publication.
        "latency_ms": round(1000.0 * (message["t_wall"] - message["end_wall"]), 1),
    }


def setup_monitor(daemon: Daemon, config) -> callable:
    web = require_web()
    from stream.monitor.health import HealthBoard
    from stream.monitor.traces import TraceBuilder

    monitor = config.monitor
    builder = TraceBuilder(config)
    frame_period_s = float(config.layout.frame_period_s)
    board = HealthBoard(gone_after_s=3.0 * config.endpoints.heartbeat_interval_s,
                        stale_after_s=max(0.5, 20 * frame_period_s))
    server = web.MonitorServer(monitor, history_updates=int(monitor.history_s * monitor.updates_per_s * 1.5) + 1)
    daemon.declare_counters(*MONITOR_COUNTERS)
    daemon.bind_publisher(monitor.status_endpoint)
    try:
        server.start()
    except web.MonitorServerError as error:
        raise DaemonError(str(error)) from None
    daemon.on_close(server.stop)
    daemon.info.update(url=server.url, access="loopback" if server.token is None else "token")
    server.publish("hello", _json({"kind": "hello", **builder.describe(), "history_s": monitor.history_s,
                                   "updates_per_s": monitor.updates_per_s,
                                   "confidence_threshold": config.sink.confidence_threshold,
                                   "gone_after_s": board.gone_after_s}))
    print(f"stream-monitor: open {server.url_with_token}", flush=True)
    daemon.log.info("serving the monitor page on %s (%s)", server.url,
                    "loopback only" if server.token is None else "token required")
    spec = FrameSpec.from_config(config)
    epoch = {"value": builder.epoch}

    def on_status(parts: list[bytes]) -> None:
        _, status = decode_map_message(parts)
        daemon.count("statuses")
        board.observe_status(status)

    def on_frames(parts: list[bytes]) -> None:
        topic = bytes(parts[0])
        if topic == TOPIC_STATUS:
            on_status(parts)
            return
        if topic != TOPIC_FRAME:
            return  # a topic this reader does not know (the protocol may add some): ignored
        header, frame = decode_frame(parts, spec)
        daemon.count("frames")
        board.observe_frame(header.session, header.sequence)
        builder.add_frame(header.session, frame)

    def on_maps(parts: list[bytes]) -> None:
        topic = bytes(parts[0])
        if topic == TOPIC_STATUS:
            on_status(parts)
        elif topic == TOPIC_PREDICTION:
            _, message = decode_map_message(parts)
            daemon.count("predictions")
            server.publish("prediction", _json(page_prediction(message, board.labels)))
        elif topic == TOPIC_EVENT:
            _, message = decode_map_message(parts)
            daemon.count("events")
            server.publish("event", _json(page_event(message)))

    daemon.connect_subscriber(config.endpoints.frames, (TOPIC_FRAME, TOPIC_STATUS), on_frames)
    daemon.connect_subscriber(config.endpoints.predictions, (TOPIC_PREDICTION, TOPIC_STATUS), on_maps)
    daemon.connect_subscriber(config.endpoints.events, (TOPIC_EVENT, TOPIC_STATUS), on_maps)
    update_interval_s = 1.0 / monitor.updates_per_s
    clock = {"update": 0.0, "health": 0.0}

    def tick() -> None:
        now = time.monotonic()
        if now >= clock["update"]:
            clock["update"] = now + update_interval_s
            if builder.epoch != epoch["value"]:
                epoch["value"] = builder.epoch
                server.publish("reset", None)
            update = builder.flush()
            if update is not None:
                server.publish("traces", _json(update))
        if now >= clock["health"]:
            clock["health"] = now + HEALTH_INTERVAL_S
            daemon.counters.update(server.counters())
            frames = board.frames
            daemon.counters.update(frame_gaps=frames.gaps, frames_missed=frames.missed, acquire_restarts=frames.restarts)
            server.publish("health", _json(board.summary(daemon.status())))

    return tick


def main(argv=None) -> int:
    parser = build_parser("stream-monitor", "a live web page of the signals, segmentation, signs and health")
    parser.add_argument("--host", default=None, help="address to serve the page on (default: [monitor] host)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: [monitor] port; 0: any free port)")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    overrides = {key: value for key, value in (("host", arguments.host), ("port", arguments.port)) if value is not None}
    if overrides:
        try:
            config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, **overrides))
        except ConfigError as error:
            print(f"stream-monitor: {error}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
    return run_daemon("stream-monitor", config, lambda daemon: setup_monitor(daemon, config), exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
