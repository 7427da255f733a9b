"""The shipped student under LiteRT, one thread (``python -m stream.tools.bench --only distill``).

Runtime imports only (no TensorFlow): what a Pi measures. Per variant in the shipped card: median
and p90 latency of ``Classifier.predict`` on one window (the LSTM state reset included) and the file
size; the int8 and dynamic-range latencies as ratios to float32, measured interleaved in one run.
"""

from __future__ import annotations

import time

import numpy as np

from models import STUDENT_DIR

ROUNDS = 5
CALLS_PER_ROUND = 200


def run() -> dict:
    from stream.stages.classifier import Classifier
    from stream.stages.model_card import load_model_card

    card_path = STUDENT_DIR / "model_card.json"
    if not card_path.exists():
        return {"student_bench": f"no shipped model at {card_path}"}
    card = load_model_card(card_path)
    classifiers = {variant: Classifier(card, variant=variant, threads=1) for variant in card.files}
    rng = np.random.default_rng(0)
    window = type("Window", (), {name: rng.normal(size=shape).astype(np.float32)
                                 for name, shape in card.input_shapes.items()})()
    timings = {variant: [] for variant in classifiers}
    for classifier in classifiers.values():
        for _ in range(20):
            classifier.predict(window)
    for _ in range(ROUNDS):
        for variant, classifier in classifiers.items():
            for _ in range(CALLS_PER_ROUND):
                started = time.perf_counter()
                classifier.predict(window)
                timings[variant].append(time.perf_counter() - started)
    figures = {"student_model_id": card.model_id}
    for variant, samples in timings.items():
        figures[f"student_{variant}_predict_ms"] = round(float(np.median(samples)) * 1e3, 4)
        figures[f"student_{variant}_predict_p90_ms"] = round(float(np.percentile(samples, 90)) * 1e3, 4)
        figures[f"student_{variant}_bytes"] = card.files[variant].bytes
    if "float32" in timings:
        for variant in timings:
            if variant != "float32":
                figures[f"student_{variant}_latency_vs_float32"] = round(
                    float(np.median(timings[variant]) / np.median(timings["float32"])), 3)
    return figures
