"""stream-subscribe: print each recognised sign as one JSON line (``--pretty`` for people).

A reference subscriber: everything it does is described in docs/protocol.md, so the same can be
written in any language. ``--count N`` exits after N events, ``--timeout S`` after S seconds;
``--status`` also prints the sink's status messages; ``--endpoint`` overrides ``[endpoints] events``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, run_daemon
from stream.wire.protocol import TOPIC_EVENT, TOPIC_STATUS, SequenceTracker, decode_map_message


def format_pretty(topic: bytes, message: dict) -> str:
    if topic == TOPIC_EVENT:
        clock = datetime.fromtimestamp(message["end_wall"]).strftime("%H:%M:%S.%f")[:-3]
        return (f"{clock}  {message['label']:<16} {message['confidence']:5.2f}   "
                f"{message['start_time_s']:9.2f} - {message['end_time_s']:9.2f} s")
    counters = ", ".join(f"{key} {value}" for key, value in sorted(message["counters"].items()))
    return f"[{message['daemon']} {message['state']}] {counters}"


def main(argv=None) -> int:
    parser = build_parser("stream-subscribe", "print recognised signs as JSON lines")
    parser.add_argument("--pretty", action="store_true", help="one readable line per sign instead of JSON")
    parser.add_argument("--status", action="store_true", help="also print the sink's status messages")
    parser.add_argument("--endpoint", default=None, help="events endpoint (default: [endpoints] events)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many events (0: never)")
    parser.add_argument("--timeout", type=float, default=0.0, help="exit after this many seconds (0: never)")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    endpoint = arguments.endpoint or config.endpoints.events

    def setup(daemon: Daemon):
        tracker = SequenceTracker()
        deadline = time.monotonic() + arguments.timeout if arguments.timeout > 0 else None
        topics = (TOPIC_EVENT, TOPIC_STATUS) if arguments.status else (TOPIC_EVENT,)

        def on_message(parts: list[bytes]) -> None:
            received_wall = time.time()
            topic, message = decode_map_message(parts)
            if topic == TOPIC_EVENT:
                daemon.count("events")
                if tracker.observe(message["session"], message["seq"]) == "gap":
                    daemon.log.warning("missed %d events (sequence gap)", tracker.missed)
                message["received_wall"] = received_wall
            if arguments.pretty:
                print(format_pretty(topic, message), flush=True)
            else:
                print(json.dumps(message, sort_keys=True), flush=True)
            if arguments.count and daemon.counters.get("events", 0) >= arguments.count:
                daemon.stop_requested = True

        def tick() -> None:
            if deadline is not None and time.monotonic() >= deadline:
                daemon.stop_requested = True

        daemon.connect_subscriber(endpoint, topics, on_message)
        return tick

    try:
        return run_daemon("stream-subscribe", config, setup, exit_process=argv is None)
    except BrokenPipeError:  # piped into `head`: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
