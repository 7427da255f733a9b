"""Start-up and per-call timings of the runtime on the machine it runs on (arm64-check.sh runs it
inside the emulated root, as the service user, with the units' NUMBA_CACHE_DIR). Prints one JSON
object. Run it once with an empty numba cache (compile) and once more (load from the cache).

    python deploy/emulate/measure.py --config /etc/signstream/signstream.toml --label "cold cache"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

T0 = time.perf_counter()


def _percentiles(values_s: list[float]) -> dict:
    import numpy as np

    values = np.asarray(values_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3),
            "max_ms": round(float(values.max()), 3), "n": int(values.size)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--frames", type=int, default=740, help="frames of DSP to time (740 = 10 s)")
    parser.add_argument("--predictions", type=int, default=100)
    arguments = parser.parse_args()
    figures = {"label": arguments.label, "machine": platform.machine(), "python": platform.python_version(),
               "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR", "")}

    started = time.perf_counter()
    import numpy as np

    from stream.config import load_config
    from stream.dsp.preprocess import Preprocessor
    from stream.dsp.windows import WindowAssembler
    from stream.wire.frames import Frame
    figures["import_dsp_s"] = round(time.perf_counter() - started, 3)

    config = load_config(arguments.config)
    sensors = len(config.sensors.names)
    random = np.random.default_rng(0)

    def frame(sequence: int) -> Frame:
        return Frame(sequence, 15 * sequence, 2 * sequence,
                     (0.01 * random.standard_normal((15, sensors))).astype(np.float32),
                     (np.tile([0.0, 0.0, 1.0], sensors) + 0.01 * random.standard_normal((2, 3 * sensors))).astype(np.float32),
                     (2.0 * random.standard_normal((2, 3 * sensors))).astype(np.float32))

    # The first frame through the chain runs every @njit kernel once: compile (empty cache) or load.
    started = time.perf_counter()
    preprocessor, assembler = Preprocessor(config), WindowAssembler(config)
    block = preprocessor.process_frame(frame(0))
    if block is not None:
        assembler.push(block)
    figures["first_frame_s"] = round(time.perf_counter() - started, 3)
    frame_times, windows = [], []
    for sequence in range(1, arguments.frames + 1):
        next_frame = frame(sequence)
        started = time.perf_counter()
        block = preprocessor.process_frame(next_frame)
        produced = assembler.push(block) if block is not None else []
        frame_times.append(time.perf_counter() - started)
        windows.extend(produced)
    figures["dsp_per_frame"] = _percentiles(frame_times)
    # Kernels compile (or load from the cache) on their first call, which is not always the first
    # frame (the first window, the first resampler output): the whole run's total shows it.
    figures["dsp_total_s"] = round(figures["first_frame_s"] + sum(frame_times), 3)
    figures["windows"] = len(windows)

    started = time.perf_counter()
    from stream.stages.classifier import Classifier
    try:
        classifier = Classifier.from_config(config)
    except (ValueError, OSError) as error:  # no model yet, or one that does not match the config
        figures["model_error"] = str(error)
        print(json.dumps(figures))
        return 1
    figures["model_load_s"] = round(time.perf_counter() - started, 3)
    figures["model"] = {"id": classifier.model_id, "variant": classifier.variant, "threads": config.model.threads}
    if windows:
        classifier.predict(windows[0])  # LiteRT allocates on the first call
        prediction_times = []
        for index in range(arguments.predictions):
            window = windows[index % len(windows)]
            started = time.perf_counter()
            classifier.predict(window)
            prediction_times.append(time.perf_counter() - started)
        figures["predict"] = _percentiles(prediction_times)
    figures["total_s"] = round(time.perf_counter() - T0, 3)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
