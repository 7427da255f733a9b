"""stream-acquire: publish every 13.5 ms frame of a source as it comes, with heartbeats.

Sources, by ``[acquire] source``: ``synthetic`` (the simulated signer performing signs in real time
with rest between them), ``replay`` (a recording at ``speed`` x real time) and ``trigno`` (a Delsys
Trigno base station through its SDK TCP protocol). Frames go out on ``[endpoints] frames`` (PUB:
a slow or absent subscriber never blocks acquisition; at the high-water mark ZeroMQ drops, and the
readers see the gap in the sequence numbers). Before the first frame, and after every status
heartbeat, the ``description`` message says what the frames hold (docs/protocol.md); each frame
header names it by id. A source that knows the ground truth (synthetic,
replay of an annotated recording) also publishes each completed annotation as a ``truth`` message.
"""

from __future__ import annotations

import time

import zmq

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.wire.protocol import FrameEncoder, FrameSpec, ProtocolError, encode_truth
from stream.wire.rates import rate_to_string, sample_time_s


def open_source(config, realtime: bool = True):
    """The configured frame source (imported lazily: a Pi running trigno never loads the simulator)."""
    name = config.acquire.source
    try:
        if name == "synthetic":
            from stream.sources.synthetic import SyntheticSource

            return SyntheticSource(config, realtime=realtime)
        if name == "replay":
            from stream.sources.replay import ReplaySource

            return ReplaySource(config)
        if name == "trigno":
            from stream.sources.trigno import TrignoSource

            return TrignoSource(config)
        if name == "lsl":
            from stream.sources.lsl import LslSource

            return LslSource(config)
    except (OSError, ValueError) as error:
        raise DaemonError(f"[acquire] source = {name!r}: {error}") from None
    raise DaemonError(f"[acquire] source = {name!r}: unknown source")


class TruthPublisher:
    """Publishes the source's completed annotations (sEMG sample indices) once each."""

    def __init__(self, config, session: str):
        self.rate = config.sensors.emg_rate_hz
        self.session = session
        self.published = 0

    def new_messages(self, source) -> list[list[bytes]]:
        annotations = getattr(source, "annotations", None)
        if not annotations or len(annotations) <= self.published:
            return []
        messages = []
        for annotation in list(annotations)[self.published:]:
            messages.append(encode_truth({
                "seq": self.published, "session": self.session, "t_wall": time.time(),
                "label": str(annotation.label), "start_index": int(annotation.start_index),
                "end_index": int(annotation.end_index), "rate": rate_to_string(self.rate),
                "start_time_s": float(sample_time_s(annotation.start_index, self.rate)),
                "end_time_s": float(sample_time_s(annotation.end_index, self.rate)),
            }))
            self.published += 1
        return messages


def acquire(daemon: Daemon, source, max_frames: int = 0, also_bind: tuple[str, ...] = ()) -> None:
    """The acquisition loop: the source paces it; the stop flag is checked after every frame.
    Frames go out on ``[endpoints] frames`` and on each of ``also_bind`` (stream-pipeline's inproc)."""
    config = daemon.config
    publisher = daemon.bind_publisher(config.endpoints.frames)
    for endpoint in also_bind:
        publisher.bind(endpoint)
    encoder = FrameEncoder(FrameSpec.from_config(config), session=daemon.session)
    truth = TruthPublisher(config, daemon.session)
    daemon.info.update(source=config.acquire.source, session=daemon.session)
    daemon.declare_counters("frames", "frames_dropped", "truth", "descriptions", "descriptions_dropped")

    def publish_description() -> None:
        try:
            publisher.send_multipart(encoder.encode_description(), flags=zmq.NOBLOCK)
            daemon.count("descriptions")
        except zmq.Again:
            daemon.count("descriptions_dropped")

    daemon.on_heartbeat(publish_description)
    daemon.state = "running"
    daemon.publish_status()
    frames = iter(source)
    sequence = 0
    while not daemon.stop_requested:
        try:
            frame = next(frames)
        except StopIteration:
            daemon.log.info("source ended after %d frames", sequence)
            break
        except OSError as error:  # the source gave up (e.g. the base station is gone for good)
            raise DaemonError(f"source {config.acquire.source!r} failed: {error}") from error
        frame.sequence = sequence
        try:
            message = encoder.encode(frame)
        except ProtocolError as error:
            daemon.bad_message(error, "frame from the source")
            continue
        try:
            publisher.send_multipart(message, flags=zmq.NOBLOCK, copy=True)
            daemon.count("frames")
        except zmq.Again:
            daemon.count("frames_dropped")
        sequence += 1
        for truth_message in truth.new_messages(source):
            publisher.send_multipart(truth_message, flags=zmq.NOBLOCK)
            daemon.count("truth")
        daemon.maybe_publish_status()
        if max_frames and sequence >= max_frames:
            break
    daemon.stop_requested = True


def main(argv=None) -> int:
    parser = build_parser("stream-acquire", "signstream acquisition: publish sensor frames")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: never)")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)

    def setup(daemon: Daemon):
        source = open_source(config)
        daemon.on_close(getattr(source, "close", lambda: None))
        if hasattr(source, "request_stop"):  # a source that can block for long (a silent Trigno base)
            daemon.on_stop_request(source.request_stop)
        acquire(daemon, source, arguments.max_frames)
        return None

    return run_daemon("stream-acquire", config, setup, exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
