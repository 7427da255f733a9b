"""python -m train.distill.sweep --data DIR --out FILE [--alphas 0.1,0.3,0.6] [--temperatures 2,4,8]

The distillation loss's two knobs, alpha (weight of the hard-label cross-entropy) and T (the
softening temperature), over a grid: the teachers are trained once (as ``python -m train.distill``
trains them, same seed), then one multi-teacher student per (aggregation, alpha, T) and one student
from scratch, all from the same initial weights. Writes FILE (JSON) and prints a table. Choose on
``val``; ``test`` is there to report, not to choose with.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("train.distill.sweep")


def build_parser() -> argparse.ArgumentParser:
    from train.distill.__main__ import build_parser as distill_parser
    from train.distill.__main__ import number_list

    parser = distill_parser()
    parser.prog = "python -m train.distill.sweep"
    parser.description = __doc__.split("\n")[0]
    for action in parser._actions:  # --out is a JSON file here, not a model directory
        if action.dest == "out":
            action.help = "where to write the sweep's results (JSON)"
    parser.add_argument("--alphas", type=number_list, default=[0.1, 0.3, 0.6])
    parser.add_argument("--temperatures", type=number_list, default=[2.0, 4.0, 8.0])
    parser.add_argument("--aggregations", default="mean", help="comma-separated: mean, weighted")
    return parser


def sweep(arguments) -> dict:
    import tf_keras as keras

    from models.architectures import STUDENT_BRANCH, InputSpec, build_student
    from stream.config import load_config
    from stream.recording.dataset import open_dataset
    from train.distill.__main__ import QUICK_EPOCHS, fit_teachers, load_windows
    from train.distill.training import (
        FitOptions,
        classification_metrics,
        distribution_strategy,
        fit_student,
        predict_probabilities,
    )

    aggregations = [name.strip() for name in arguments.aggregations.split(",") if name.strip()]
    unknown = sorted(set(aggregations) - {"mean", "weighted"})
    if unknown or not aggregations:
        raise ValueError(f"--aggregations {arguments.aggregations!r}: choose from mean, weighted")
    if any(not 0.0 <= alpha <= 1.0 for alpha in arguments.alphas):
        raise ValueError(f"--alphas {arguments.alphas}: each must lie in [0, 1]")
    if any(temperature <= 0.0 for temperature in arguments.temperatures):
        raise ValueError(f"--temperatures {arguments.temperatures}: each must be above 0")
    started = time.monotonic()
    config = load_config(arguments.config)
    dataset = open_dataset(arguments.data)
    windows, data_summary = load_windows(arguments, config, dataset)
    classes = len(dataset.labels)
    input_spec = InputSpec(window_samples=windows["train"].window_samples, channels=dict(windows["train"].channels),
                           classes=classes)
    quick = arguments.quick
    teacher_options = FitOptions(epochs=arguments.teacher_epochs or (QUICK_EPOCHS if quick else 35), patience=10)
    student_options = FitOptions(epochs=arguments.student_epochs or (QUICK_EPOCHS if quick else 40), patience=10)
    keras.utils.set_random_seed(arguments.seed)
    strategy = distribution_strategy()
    parts = {part: (windows[part].windows(), windows[part].labels) for part in ("val", "test")}

    def measure(model_or_probabilities) -> dict:
        measured = {}
        for part, (inputs, labels) in parts.items():
            probabilities = (model_or_probabilities[part] if isinstance(model_or_probabilities, dict)
                             else predict_probabilities(model_or_probabilities, inputs))
            measured[part] = classification_metrics(probabilities, labels, classes)["accuracy"]
        return measured

    histories: dict = {}
    teachers = fit_teachers(windows, input_spec, teacher_options, arguments.seed, strategy, histories)
    ensemble = {part: sum(predict_probabilities(teacher, inputs) for teacher in teachers.values()) / len(teachers)
                for part, (inputs, _) in parts.items()}
    rows = [{"model": "teacher_ensemble", **measure(ensemble)}]
    with strategy.scope():
        student = build_student(input_spec, STUDENT_BRANCH)
    initial = student.get_weights()
    grid = [("scratch", None, None)] + list(itertools.product(aggregations, arguments.alphas, arguments.temperatures))
    for aggregation, alpha, temperature in grid:
        student.set_weights(initial)
        with strategy.scope():
            if aggregation == "scratch":
                history = fit_student(student, windows["train"], windows["val"], student_options, arguments.seed)
            else:
                history = fit_student(student, windows["train"], windows["val"], student_options, arguments.seed,
                                      teachers=tuple(teachers.values()), aggregation=aggregation, alpha=alpha,
                                      temperature=temperature)
        row = {"model": "student_scratch" if aggregation == "scratch" else f"student_kd_{aggregation}",
               "alpha": alpha, "temperature": temperature, **measure(student),
               "best_epoch": history["best_epoch"], "seconds": history["seconds"]}
        rows.append(row)
        log.info("%s alpha %s T %s: val %.4f test %.4f", row["model"], alpha, temperature, row["val"], row["test"])
    return {"command": " ".join(["python -m train.distill.sweep", *sys.argv[1:]]), "seed": arguments.seed,
            "protocol": arguments.protocol, "data": data_summary, "dataset": str(Path(arguments.data).resolve()),
            "teacher_fit": teacher_options.__dict__, "student_fit": student_options.__dict__, "rows": rows,
            "total_seconds": round(time.monotonic() - started, 1)}


def table(result: dict) -> str:
    lines = ["| model | alpha | T | val | test |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        alpha = "" if row.get("alpha") is None else f"{row['alpha']:g}"
        temperature = "" if row.get("temperature") is None else f"{row['temperature']:g}"
        lines.append(f"| {row['model']} | {alpha} | {temperature} | {100 * row['val']:.1f} | {100 * row['test']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from stream.common.atomic import atomic_write_json
    from train.distill.__main__ import run_command

    arguments = build_parser().parse_args(argv)
    result, status = run_command(sweep, arguments, "no results written", refused=(ValueError,))
    if status:
        return status
    atomic_write_json(arguments.out, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
