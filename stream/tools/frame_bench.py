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

Two controls beside it. ``infer_frame_spin_paced_us``: the same, but the 13.5 ms between frames are
spent busy-waiting (the thread never sleeps, so the core is never idle or given away): if it stays
far above the hot figure, the penalty comes with elapsed time itself, not with sleeping or waking.
``host_numpy_call_hot_us`` / ``host_numpy_call_paced_us``: nothing of ours, one small numpy
conversion of a frame-sized buffer (frombuffer + astype), back to back and after each 13.5 ms
sleep; their ratio says what this host charges any code after a pause. On a computer without that
penalty (a Pi running nothing else, we expect; to be measured there) the paced figures come close to
the hot ones, and the daemons' CPU at real time with them.
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
    period_s = float(config.layout.frame_period_s)
    paced_count = int(PACED_S / period_s)
    paced_us = _paced_us(InferenceStage(config, classifier, "bench"), messages[:paced_count], period_s, time.sleep)
    spin_us = _paced_us(InferenceStage(config, classifier, "bench"), messages[:paced_count], period_s, _busy_wait)
    return {"infer_frame_us": round(infer, 2), "infer_frame_decode_us": round(decode, 2),
            "infer_frame_dsp_us": round(dsp, 2), "infer_frame_over_dsp": round(infer / dsp, 2),
            "infer_frame_paced_us": round(paced_us, 2), "infer_frame_paced_over_hot": round(paced_us / infer, 2),
            "infer_frame_spin_paced_us": round(spin_us, 2),
            **_host_anchor(period_s, min(paced_count, 300)),
            "infer_frame_predictions": predictions // ROUNDS, "infer_frame_frames": len(frames),
            "infer_frame_host_load_1min": round(os.getloadavg()[0], 2)}


def _paced_us(stage, messages, period_s: float, wait) -> float:
    """The stage's median per-frame microseconds with ``wait(period_s)`` before each frame."""
    for message in messages:
        wait(period_s)
        stage.process_frame_message(message)
    return 1000 * float(np.median(np.fromiter(stage.frame_processing_ms, float)))


def _busy_wait(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _host_anchor(period_s: float, count: int) -> dict:
    """Nothing of ours on the path: a frame-sized numpy conversion, back to back and after pauses."""
    payload = np.zeros(162, dtype="<f4").tobytes()  # a Trigno frame's payload: 15 x 6 + 2 x 2 x 18 floats

    def once() -> float:
        started = time.perf_counter()
        np.frombuffer(payload, dtype="<f4").astype(np.float32)
        return 1e6 * (time.perf_counter() - started)

    hot = [once() for _ in range(count)]
    paced = []
    for _ in range(count):
        time.sleep(period_s)
        paced.append(once())
    hot_us, paced_us = float(np.median(hot)), float(np.median(paced))
    return {"host_numpy_call_hot_us": round(hot_us, 2), "host_numpy_call_paced_us": round(paced_us, 2),
            "host_numpy_call_paced_over_hot": round(paced_us / hot_us, 1)}


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
