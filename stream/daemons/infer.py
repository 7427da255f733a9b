"""stream-infer: frames in, class probabilities for each segmented sign out.

Subscribes to ``[endpoints] frames`` (frames and the stream description); the InferenceStage
(stream/stages/inference.py) checks every frame (protocol.FrameDecoder: the configured layout's
description id, sizes, finite values) and its sequence number and runs the Recognizer (Preprocessor
-> WindowAssembler -> Segmenter -> LiteRT Classifier); one prediction per segment goes out on
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

import numpy as np
import zmq

from stream.config import ConfigError, load_config, to_dict
from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.stages.inference import InferenceStage
from stream.stages.recognizer import Recognizer
from stream.wire.protocol import TOPIC_DESCRIPTION, TOPIC_FRAME, encode_prediction

# Every counter stream-infer sends from its first status on, besides its stage's (InferenceStage:
# STAGE_COUNTERS and the Recognizer's); docs/protocol.md lists them all.
INFER_COUNTERS = ("predictions", "predictions_dropped", "model_switches", "model_switches_refused")


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


def switch_model(daemon: Daemon, stage: InferenceStage, config_path) -> None:
    """SIGHUP: load the model the config file names now, with every start-up check; replace the
    running one only if all pass (see the module docstring)."""
    running = daemon.config
    recognizer = stage.recognizer
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


def setup_infer(daemon: Daemon, config_path=None, frames_endpoint: str | None = None,
                predictions_endpoints: tuple[str, ...] = ()):
    """stream-infer on ``daemon``: subscribes to the frames (``frames_endpoint``, default the config's),
    publishes on the config's predictions endpoint and any ``predictions_endpoints`` more (the
    single-process pipeline adds an inproc one)."""
    config = daemon.config
    classifier = load_classifier(config)
    warm_up(config, classifier)
    stage = InferenceStage(config, classifier, daemon.session, counters=daemon.counters)
    publisher = daemon.bind_publisher(config.endpoints.predictions)
    for endpoint in predictions_endpoints:
        publisher.bind(endpoint)
    daemon.info.update(model_info(config, classifier))
    if config_path is not None:
        daemon.on_reload(lambda: switch_model(daemon, stage, config_path))
    daemon.declare_counters(*INFER_COUNTERS)

    def on_message(parts: list[bytes]) -> None:
        if parts and parts[0] == TOPIC_DESCRIPTION:
            stage.process_description(parts)
            return
        for prediction in stage.process_frame_message(parts):
            try:
                publisher.send_multipart(encode_prediction(prediction), flags=zmq.NOBLOCK)
                daemon.count("predictions")
            except zmq.Again:
                daemon.count("predictions_dropped")
            daemon.log.debug("prediction %s (%.2f) %.2f-%.2f s", prediction["label"], prediction["confidence"],
                             prediction["start_time_s"], prediction["end_time_s"])

    daemon.connect_subscriber(frames_endpoint or config.endpoints.frames, (TOPIC_FRAME, TOPIC_DESCRIPTION), on_message)
    return _every(stage.update_counters, config.endpoints.heartbeat_interval_s / 2)


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
