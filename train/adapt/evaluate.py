"""How much a short calibration gives a person the model has not seen: accuracy against k.

    python -m train.adapt.evaluate --model CARD --data DIR [--signer S ...] [--k 0,1,2,3,5]
        [--methods alignment,head,alignment+head] [--draws 3] [--seed 0] [--out FILE]

For each signer (default: every signer of the data set) its isolated recordings are cut into the
windows the model is trained and tested on (``train.distill.data``: ending ``hold_off_s`` after the
annotated sign). For each k, ``draws`` times: k repetition rounds are drawn at random (seeded; a
round = one repetition of every sign, as in a guided calibration), each method is fitted on those
rounds' windows with the on-device code (``stream.adapt``: no TensorFlow), and tested on the rounds
not drawn. As stream-calibrate does, each calibration sign also gives windows ending
``stream.adapt.shifts.CALIBRATION_SHIFTS_S`` later (``--shifts 0`` for the one window only); tests
use the un-shifted window. k = 0 is the model as it is. ``--methods ...,finetune`` adds the
workstation option (TensorFlow, ``train.adapt.finetune``) on the same draws. Prints one JSON object:
per signer and k, each method's accuracy (mean over draws) and adaptation seconds (process CPU: the
model on the calibration windows plus the fit), then the mean over signers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from stream.adapt.alignment import fit_alignment
from stream.adapt.head import L2_CHOICES, fit_user_head
from stream.adapt.shifts import CALIBRATION_SHIFTS_S, shift_samples

METHODS = ("alignment", "head", "alignment+head")
# TensorFlow on a workstation (train.adapt.finetune): measured beside the device's methods on request.
WORKSTATION_METHODS = ("finetune",)


def parse_list(text: str, kind=int) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list") from None


def signer_windows(dataset, signer: str, config, model_labels):
    """(``train.distill.data.WindowSet``, labels as the model's class indices, repetition rounds) of
    ``signer``."""
    from train.distill.data import build_window_set, plan_from_config

    entries = [entry for entry in dataset.entries if entry.signer == signer and entry.kind == "isolated"]
    if not entries:
        raise ValueError(f"signer {signer!r} has no isolated recordings in {dataset.directory}")
    unknown = sorted({entry.label for entry in entries} - set(model_labels))
    if unknown:
        raise ValueError(f"signer {signer!r} has signs the model does not know: {unknown[:5]}")
    windows = build_window_set(dataset, entries, config, plan_from_config(config), progress_every=0)
    rounds = {entry.id: entry.repetition for entry in entries}
    labels = np.array([list(model_labels).index(dataset.labels[index]) for index in windows.labels])
    return windows, labels, np.array([rounds[identifier] for identifier in windows.ids])


def calibration_set(window_set, rows: np.ndarray, offsets: list[int]) -> tuple[dict, np.ndarray]:
    """(windows, their rows) for the calibration ``rows``: each ending at its anchor plus each offset,
    as far as the recording allows (an end outside it is left out, as stream-calibrate does)."""
    parts, taken = [], []
    for offset in offsets:
        ends = window_set.anchor[rows] + offset
        inside = (ends >= window_set.lowest_end[rows]) & (ends <= window_set.highest_end[rows])
        parts.append(window_set.windows(rows[inside], ends[inside]))
        taken.append(rows[inside])
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}, np.concatenate(taken)


def adapt_and_score(classifier, method: str, window_set, labels: np.ndarray, rounds: np.ndarray,
                    calibration: np.ndarray, test_windows: dict, base_test: tuple, statistics: dict | None,
                    offsets: list[int], student=None) -> tuple[float, float]:
    """(accuracy on the rounds not in ``calibration``, adaptation seconds) for one method and draw."""
    test = ~calibration
    started = time.process_time()
    windows, rows = calibration_set(window_set, np.flatnonzero(calibration), offsets)
    if method == "finetune":
        from train.adapt.finetune import finetune, probabilities

        model = finetune(student, windows, labels[rows])
        seconds = time.process_time() - started
        return float(np.mean(probabilities(model, test_windows).argmax(axis=1) == labels[test])), seconds
    alignment = None
    if "alignment" in method:
        alignment = fit_alignment(windows, statistics)
    head = None
    if "head" in method:
        probabilities, features = classifier.base_outputs(*(windows[name] for name in ("emg", "acc", "gyro")),
                                                          alignment=alignment)
        head = fit_user_head(probabilities, features, labels[rows], rounds[rows])[0]
    seconds = time.process_time() - started
    if alignment is None:
        probabilities, features = base_test
    else:
        probabilities, features = classifier.base_outputs(*(test_windows[name] for name in ("emg", "acc", "gyro")),
                                                          alignment=alignment)
    if head is not None:
        probabilities = head.apply(probabilities, features)
    return float(np.mean(probabilities.argmax(axis=1) == labels[test])), seconds


def evaluate_signer(classifier, window_set, labels, rounds, ks, methods, draws: int, seed: int,
                    offsets: list[int] = (0,), student=None) -> dict:
    statistics = classifier.card.document.get("input_statistics")
    if statistics is None and any("alignment" in method for method in methods):
        raise ValueError(f"{classifier.card.path}: no input_statistics in the card; alignment needs a model "
                         "trained by train.distill from Dec 2026 on")
    distinct = np.unique(rounds)
    rng = np.random.default_rng(seed)
    result = {"windows": int(len(labels)), "rounds": int(len(distinct)), "by_k": {}}
    windows = window_set.windows()
    for k in ks:
        if k >= len(distinct):
            raise ValueError(f"k = {k}: the signer has only {len(distinct)} repetition rounds, one must stay for testing")
        scores = {method: [] for method in ("none", *methods)}
        seconds = {method: [] for method in methods}
        for _ in range(draws if k else 1):
            chosen = rng.choice(distinct, size=k, replace=False) if k else np.array([], dtype=rounds.dtype)
            calibration = np.isin(rounds, chosen)
            test = ~calibration
            test_windows = {name: array[test] for name, array in windows.items()}
            base_test = classifier.base_outputs(*(test_windows[name] for name in ("emg", "acc", "gyro")))
            scores["none"].append(float(np.mean(base_test[0].argmax(axis=1) == labels[test])))
            if k == 0:
                continue
            for method in methods:
                accuracy, spent = adapt_and_score(classifier, method, window_set, labels, rounds, calibration,
                                                  test_windows, base_test, statistics, offsets, student)
                scores[method].append(accuracy)
                seconds[method].append(spent)
        result["by_k"][str(k)] = {
            "accuracy": {method: float(np.mean(values)) for method, values in scores.items() if values},
            "seconds": {method: float(np.mean(values)) for method, values in seconds.items() if values},
            "draws": draws if k else 1,
        }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.adapt.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="the model card to adapt")
    parser.add_argument("--data", required=True, type=Path, help="a data set with isolated recordings")
    parser.add_argument("--signer", action="append", default=[], help="only these signers (repeatable)")
    parser.add_argument("--k", type=parse_list, default=[0, 1, 2, 3, 5], help="rounds of calibration (default 0,1,2,3,5)")
    parser.add_argument("--methods", type=lambda text: parse_list(text, str), default=list(METHODS),
                        help=f"comma-separated, of {', '.join(METHODS + WORKSTATION_METHODS)} (default: the "
                             "device's; finetune needs TensorFlow and the card's Keras weights)")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the calibration rounds per k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shifts", type=lambda text: parse_list(text, float), default=list(CALIBRATION_SHIFTS_S),
                        help="seconds: each calibration sign's windows end this much after stream-infer's (default "
                             f"{','.join(str(value) for value in CALIBRATION_SHIFTS_S)}, as stream-calibrate; 0 = one window)")
    parser.add_argument("--config", type=Path, default=None, help="TOML config (preprocessing); default: shipped")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    from stream.config import Config, ConfigError, load_config
    from stream.recording.dataset import DatasetError, open_dataset
    from stream.stages.classifier import Classifier

    arguments = build_parser().parse_args(argv)
    unknown = [method for method in arguments.methods if method not in METHODS + WORKSTATION_METHODS]
    if unknown:
        print(f"train.adapt.evaluate: unknown method(s) {unknown}; choose from "
              f"{', '.join(METHODS + WORKSTATION_METHODS)}", file=sys.stderr)
        return 2
    try:
        config = load_config(arguments.config) if arguments.config else Config()
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, card=str(arguments.model.resolve())))
        classifier = Classifier.from_config(config)
        student = None
        if "finetune" in arguments.methods:
            from train.adapt.finetune import load_student

            student = load_student(arguments.model, classifier.card.document)
        dataset = open_dataset(arguments.data)
        signers = arguments.signer or sorted({entry.signer for entry in dataset.entries if entry.kind == "isolated"})
        report = {"model": classifier.model_id, "data": str(arguments.data), "k": arguments.k,
                  "methods": arguments.methods, "draws": arguments.draws, "seed": arguments.seed,
                  "l2_choices": list(L2_CHOICES), "shifts_s": arguments.shifts, "signers": {}}
        offsets = shift_samples(config.preprocess.model_rate_hz, arguments.shifts)
        for signer in signers:
            windows, labels, rounds = signer_windows(dataset, signer, config, classifier.labels)
            report["signers"][signer] = evaluate_signer(classifier, windows, labels, rounds, arguments.k,
                                                        arguments.methods, arguments.draws, arguments.seed, offsets,
                                                        student)
    except (ConfigError, DatasetError, OSError, ValueError) as error:
        print(f"train.adapt.evaluate: {error}", file=sys.stderr)
        return 2
    report["mean"] = {str(k): {method: float(np.mean([result["by_k"][str(k)]["accuracy"][method]
                                                       for result in report["signers"].values()]))
                               for method in ("none", *(arguments.methods if k else ()))}
                      for k in arguments.k}
    text = json.dumps(report, indent=1)
    print(text)
    if arguments.out:
        arguments.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
