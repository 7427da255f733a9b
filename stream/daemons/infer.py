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

Switching models without a restart: edit ``[model]`` in the config file and send SIGHUP
(``systemctl reload signstream-infer``). stream-infer reads the file again and loads the card it now
names with every check of a start (sha256 of the .tflite, layout, preprocessing hash against the
running DSP, a warm-up run); only then does it replace the running model, between two frames, so the
signal processing and the sign under way go on. A refused model (or an unreadable config) leaves the
running one in place. Either way the next status says so: ``model_switches`` /
``model_switches_refused`` and, in ``info``, ``model_id``, ``model_card`` and ``model_switch``
(the outcome, with the reason of a refusal). Only ``[model]`` is reloaded; a change to any other
section is logged and waits for a restart.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque

import numpy as np
import zmq

from stream.config import ConfigError, load_config, to_dict
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
    "model_switches", "model_switches_refused",
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


def model_info(config, classifier) -> dict:
    return {"model_id": classifier.model_id, "labels": list(classifier.labels),
            "model_card": str(config.resolve_path(config.model.card))}


def switch_model(daemon: Daemon, recognizer: Recognizer, config_path) -> None:
    """SIGHUP: load the model the config file names now, with every start-up check; replace the
    running one only if all pass (see the module docstring)."""
    running = daemon.config
    try:
        fresh = load_config(config_path)
        candidate = dataclasses.replace(running, model=fresh.model, base_dir=fresh.base_dir)
        classifier = load_classifier(candidate)
        warm_up(candidate, classifier)
    except (ConfigError, DaemonError) as error:
        daemon.count("model_switches_refused")
        daemon.info["model_switch"] = {"outcome": "refused", "reason": str(error), "t_wall": time.time()}
        daemon.log.error("model switch refused, still running %s: %s", recognizer.classifier.model_id, error)
        return
    before = to_dict(running)
    ignored = sorted(name for name, table in to_dict(fresh).items()
                     if name not in ("model", "base_dir") and table != before.get(name))
    if ignored:
        daemon.log.warning("SIGHUP reloads [model] only; changed sections wait for a restart: %s", ", ".join(ignored))
    previous = recognizer.classifier.model_id
    recognizer.classifier = classifier
    daemon.config = candidate
    daemon.count("model_switches")
    daemon.info.update(model_info(candidate, classifier))
    daemon.info["model_switch"] = {"outcome": "switched", "from": previous, "to": classifier.model_id,
                                   "t_wall": time.time()}
    daemon.log.info("model switched: %s -> %s (%s)", previous, classifier.model_id, candidate.model.card)
    daemon.publish_status()


def setup_infer(daemon: Daemon, config_path=None):
    config = daemon.config
    classifier = load_classifier(config)
    warm_up(config, classifier)
    recognizer = Recognizer(config, classifier)
    spec = FrameSpec.from_config(config)
    tracker = SequenceTracker()
    clock = WallClockMap()
    emg_rate = float(config.sensors.emg_rate_hz)
    publisher = daemon.bind_publisher(config.endpoints.predictions)
    daemon.info.update(model_info(config, classifier))
    if config_path is not None:
        daemon.on_reload(lambda: switch_model(daemon, recognizer, config_path))
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
    return run_daemon("stream-infer", config, lambda daemon: setup_infer(daemon, arguments.config),
                      exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())
