"""Per-frame benchmark of stream-infer's path, offline (part of ``python -m stream.tools.bench``).

``infer_frame_us``: the median time stream-infer spends on one frame without the model, measured
in ``InferenceStage.process_frame_message`` itself (the daemon's own per-frame path: decoding and
checking the message, sequence tracking, the clock map, the Preprocessor, the window buffer, the
segmenter; the model's invocations when a sign ends are subtracted, as in the status's
``frame_processing_ms``), over a minute of the simulated signer's frames encoded as stream-acquire
sends them. Beside it, in the same rounds: ``infer_frame_decode_us`` (the frame decoder alone) and
``infer_frame_dsp_us`` (the Preprocessor alone), so the share of each is a ratio measured under
the same load. The shipped config and model are used (``SIGNSTREAM_BENCH_CONFIG`` names another).

``infer_frame_paced_us``: the same path and frames, one frame per 13.5 ms frame period (a sleep
between them) as the daemon receives them, for ``PACED_S`` seconds; ``infer_frame_paced_over_hot`` is
its ratio to ``infer_frame_us``. Identical work: what the ratio adds is what the host charges for
code and data gone cold during each pause (on this shared VM about 10x; docs/PERFORMANCE.md), which
is most of a daemon's CPU at real time.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

SECONDS = 60.0
ROUNDS = 5
PACED_S = 10.0


def _frames(config, seconds: float):
    from stream.sources.synthetic import SyntheticSource

    source = SyntheticSource(config, realtime=False)
    count = int(seconds / float(config.layout.frame_period_s))
    return [next(source) for _ in range(count)]


def _median_call_us(function, items) -> float:
    """Median microseconds of ``function(item)`` over ``items``, each call timed alone."""
    times = []
    for item in items:
        started = time.perf_counter()
        function(item)
        times.append(time.perf_counter() - started)
    return 1e6 * float(np.median(times))


def run() -> dict:
    from stream.config import load_config
    from stream.dsp.preprocess import Preprocessor
    from stream.stages.classifier import Classifier
    from stream.stages.inference import InferenceStage
    from stream.wire.protocol import FrameDecoder, FrameEncoder, FrameSpec

    config = load_config(os.environ.get("SIGNSTREAM_BENCH_CONFIG"))
    if not config.resolve_path(config.model.card).exists():
        return {"infer_frame_error": f"no model card at {config.resolve_path(config.model.card)}"}
    classifier = Classifier.from_config(config)
    frames = _frames(config, SECONDS)
    spec = FrameSpec.from_config(config)
    encoder = FrameEncoder(spec)
    messages = [encoder.encode(frame) for frame in frames]
    warm = InferenceStage(config, classifier, "bench")
    for message in messages[:300]:  # numba kernels loaded, the interpreter's buffers allocated
        warm.process_frame_message(message)

    stage_us, decode_us, dsp_us, predictions = [], [], [], 0
    for _ in range(ROUNDS):  # alternating, so all three see the same machine load
        stage = InferenceStage(config, classifier, "bench")
        for message in messages:
            predictions += len(stage.process_frame_message(message))
        stage_us.append(1000 * float(np.median(np.fromiter(stage.frame_processing_ms, float))))
        decode_us.append(_median_call_us(FrameDecoder(spec).decode, messages))
        dsp_us.append(_median_call_us(Preprocessor(config).process_frame, frames))
    infer, decode, dsp = (statistics.median(values) for values in (stage_us, decode_us, dsp_us))
    paced = InferenceStage(config, classifier, "bench")
    period_s = float(config.layout.frame_period_s)
    for message in messages[:int(PACED_S / period_s)]:
        time.sleep(period_s)
        paced.process_frame_message(message)
    paced_us = 1000 * float(np.median(np.fromiter(paced.frame_processing_ms, float)))
    return {"infer_frame_us": round(infer, 2), "infer_frame_decode_us": round(decode, 2),
            "infer_frame_dsp_us": round(dsp, 2), "infer_frame_over_dsp": round(infer / dsp, 2),
            "infer_frame_paced_us": round(paced_us, 2), "infer_frame_paced_over_hot": round(paced_us / infer, 2),
            "infer_frame_predictions": predictions // ROUNDS, "infer_frame_frames": len(frames),
            "infer_frame_host_load_1min": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
