"""stream-infer: frames in, class probabilities for each segmented sign out.

Subscribes to ``[endpoints] frames``; checks every frame (protocol.decode_frame: layout, rates,
channel names, finite values) and its sequence number; runs the Recognizer stage (Preprocessor ->
WindowAssembler -> Segmenter -> LiteRT Classifier) and publishes one prediction per segment on
``[endpoints] predictions``. The model's sha256 is checked against its card before it is loaded
(``Classifier.from_config``). Missed frames (sequence gaps) are counted; the DSP marks the missing
samples invalid, so no window spanning them is classified. A restarted stream-acquire (new session)
resets every stage.

The status message carries the counters and per-frame timing percentiles (DSP, end-to-end receive
delay) over the last status interval.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import zmq

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.stages.recognizer import Recognizer, WallClockMap
from stream.wire.protocol import TOPIC_FRAME, FrameSpec, SequenceTracker, decode_frame, encode_prediction

TIMING_SAMPLES = 4096
# Every counter stream-infer sends from its first status on, besides the stages' own
# (Recognizer.all_counters()); docs/protocol.md lists them all. Timings are 0 until measured.
INFER_COUNTERS = (
    "frames", "frame_gaps", "frames_missed", "frames_out_of_order", "acquire_restarts", "frames_with_dropout",
    "predictions", "predictions_dropped", "inference_ms_total", "inference_ms_mean",
    "frame_processing_ms_p50", "frame_processing_ms_p99", "frame_delay_ms_p50", "frame_delay_ms_p99",
)


def load_classifier(config):
    from stream.stages.classifier import Classifier

    try:
        return Classifier.from_config(config)
    except (OSError, ValueError) as error:  # missing card, sha256 mismatch, wrong preprocessing hash...
        raise DaemonError(f"[model] card = {config.model.card!r}: {error}") from None


def warm_up(config, classifier) -> None:
    """Run every stage once on silence before announcing readiness: loads the cached numba kernels
    and the interpreter's buffers, so the first real frames are not delayed by it."""
    from stream.dsp.windows import Window, window_length_samples
    from stream.wire.frames import MODALITIES, silent_frame

    scratch = Recognizer(config, classifier)
    for number in range(3):
        scratch.process_frame(silent_frame(config.layout, number))
    length = window_length_samples(config)
    classifier.predict(Window(length, *(np.zeros((length, config.layout.channel_count(name)), np.float32)
                                        for name in MODALITIES), False))


def setup_infer(daemon: Daemon):
    config = daemon.config
    classifier = load_classifier(config)
    warm_up(config, classifier)
    recognizer = Recognizer(config, classifier)
    spec = FrameSpec.from_config(config)
    tracker = SequenceTracker()
    clock = WallClockMap()
    emg_rate = float(config.sensors.emg_rate_hz)
    publisher = daemon.bind_publisher(config.endpoints.predictions)
    daemon.info.update(model_id=classifier.model_id, labels=list(classifier.labels))
    daemon.declare_counters(*INFER_COUNTERS, *recognizer.all_counters())
    frame_process_ms: deque[float] = deque(maxlen=TIMING_SAMPLES)
    frame_delay_ms: deque[float] = deque(maxlen=TIMING_SAMPLES)
    sequence = 0

    def on_frame(parts: list[bytes]) -> None:
        nonlocal sequence
        received_wall = time.time()
        started = time.perf_counter()
        header, frame = decode_frame(parts, spec)
        kind = tracker.observe(header.session, header.sequence)
        if kind == "restart":
            daemon.count("acquire_restarts")
            recognizer.reset()
            clock.reset()
        elif kind == "gap":
            daemon.count("frame_gaps")
        elif kind == "old":
            daemon.count("frames_out_of_order")
            return
        daemon.counters["frames_missed"] = tracker.missed
        daemon.count("frames")
        if np.isnan(frame.emg).any() or np.isnan(frame.acc).any() or np.isnan(frame.gyro).any():
            daemon.count("frames_with_dropout")
        clock.observe((frame.emg_first_index + frame.emg.shape[0]) / emg_rate, header.published_wall)
        recognitions = recognizer.process_frame(frame)
        finished = time.perf_counter()
        inference_s = sum(recognition.inference_s for recognition in recognitions)
        frame_process_ms.append((finished - started - inference_s) * 1000)
        frame_delay_ms.append((received_wall - header.published_wall) * 1000)
        for recognition in recognitions:
            prediction = recognizer.prediction_fields(recognition, clock.offset_s or 0.0)
            prediction.update(
                seq=sequence, session=daemon.session, t_wall=time.time(), source_session=header.session,
                timing={
                    "frame_published_wall": header.published_wall,
                    "frame_received_wall": received_wall,
                    "dsp_ms": (finished - started - inference_s) * 1000,
                    "inference_ms": recognition.inference_s * 1000,
                },
            )
            sequence += 1
            try:
                publisher.send_multipart(encode_prediction(prediction), flags=zmq.NOBLOCK)
                daemon.count("predictions")
            except zmq.Again:
                daemon.count("predictions_dropped")
            daemon.count("inference_ms_total", recognition.inference_s * 1000)
            daemon.log.debug("prediction %s (%.2f) %.2f-%.2f s", prediction["label"], prediction["confidence"],
                             prediction["start_time_s"], prediction["end_time_s"])

    def tick() -> None:
        daemon.counters.update(recognizer.all_counters())
        for name, samples in (("frame_processing_ms", frame_process_ms), ("frame_delay_ms", frame_delay_ms)):
            if samples:
                values = np.fromiter(samples, dtype=np.float64)
                daemon.counters[f"{name}_p50"] = float(np.percentile(values, 50))
                daemon.counters[f"{name}_p99"] = float(np.percentile(values, 99))
        if daemon.counters.get("classifications"):
            daemon.counters["inference_ms_mean"] = daemon.counters["inference_ms_total"] / daemon.counters["classifications"]

    daemon.connect_subscriber(config.endpoints.frames, (TOPIC_FRAME,), on_frame)
    return _every(tick, config.endpoints.heartbeat_interval_s / 2)


def _every(function, interval_s: float):
    """A tick that runs ``function`` at most every ``interval_s`` (status counters need no more)."""
    next_run = 0.0

    def tick() -> None:
        nonlocal next_run
        now = time.monotonic()
        if now >= next_run:
            next_run = now + interval_s
            function()

    return tick


def main(argv=None) -> int:
    arguments = build_parser("stream-infer", "signstream inference: frames -> sign predictions").parse_args(argv)
    config = load_config_or_exit(arguments)
    return run_daemon("stream-infer", config, setup_infer, exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
