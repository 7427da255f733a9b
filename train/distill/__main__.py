"""python -m train.distill --data DIR --out DIR [--protocol within|loso] [--seed N] [--quick]

1. windows from the dataset through the DSP Preprocessor (train.distill.data);
2. one teacher per modality, evaluated alone and as an ensemble (mean of probabilities);
3. the student: from scratch, from the best single teacher, from all teachers (mean and CA-MKD
   weighted soft targets), all from the same initial weights;
4. TFLite export of the chosen student (float32, dynamic range, int8) and of the teacher ensemble
   (float32), checked against Keras on the test windows, timed single-threaded under LiteRT;
5. OUT/model_card.json + the .tflite files (written last, atomically), OUT/results.json,
   OUT/report.md with PNG plots.
Ctrl-C stops at once and leaves no half-written file in OUT.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("train.distill")

# Candidates for export, in order of preference when validation accuracy ties.
SHIP_RULES = {"best": ("student_kd_mean", "student_kd_weighted", "student_kd_single", "student_scratch"),
              "kd": ("student_kd_mean", "student_kd_weighted")}
# Within-signer, light distillation (0.9) gives the best students; across signers, on average, heavy
# (0.3) does (docs/RESULTS.md). Validation on the training signers finds the first, rarely the second.
DEFAULT_ALPHAS = (0.9, 0.3)
QUICK_EPOCHS = 8
MODEL_NAMES = ("teacher_emg", "teacher_acc", "teacher_gyro", "teacher_ensemble", "student_scratch",
               "student_kd_single", "student_kd_mean", "student_kd_weighted")


def number_list(text: str) -> list[float]:
    """argparse type: comma-separated numbers, e.g. ``0.9,0.3``."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 0.1,0.3") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="dataset directory (train.dataset format)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (model, card, report)")
    parser.add_argument("--protocol", choices=("within", "loso"), default="within",
                        help="within: split by repetition; loso: leave one signer out")
    parser.add_argument("--held-out-signer", default=None,
                        help="loso: the test signer (default: the seed-th signer, cycling)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a small subset, few epochs, one alpha (about 2 min on 2 cores)")
    parser.add_argument("--config", type=Path, default=None, help="TOML config (preprocessing); default: shipped")
    parser.add_argument("--cache", type=Path, default=None, help="cache preprocessed windows here (npz)")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--student-epochs", type=int, default=None)
    parser.add_argument("--teacher-patience", type=int, default=10,
                        help="epochs without a better validation accuracy before a teacher stops (default 10)")
    parser.add_argument("--student-patience", type=int, default=10, help="the same for students (default 10)")
    parser.add_argument("--tie-break", choices=("earlier", "loss"), default="earlier",
                        help="which epoch to keep among those of equal best validation accuracy: the earlier "
                             "(default) or the one of lower validation loss (for a small validation set that "
                             "saturates, as lis-myo's: docs/RESULTS.md)")
    parser.add_argument("--activation", choices=("sigmoid", "relu"), default="sigmoid",
                        help="the convolutions' activation in every branch (default sigmoid, as the reference; "
                             "relu did 3 points better on real Myo sEMG: docs/RESULTS.md)")
    parser.add_argument("--student-branch", type=branch_spec, default=None, metavar="F1,F2,LSTM",
                        help="the student's branch: two convolution widths and the LSTM units (default "
                             "2,4,50; eight sEMG channels want more, e.g. 8,16,47: docs/RESULTS.md)")
    parser.add_argument("--alpha", type=number_list, default=None,
                        help="weight of the hard-label loss; with several (comma-separated), each distilled student "
                             "is trained at each and the best on validation kept, ties to the earlier "
                             "(default 0.9,0.3; with --quick only 0.9; for people not in the data 0.3 does better, "
                             "which validation rarely sees: docs/RESULTS.md)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--ship", choices=SHIP_RULES, default="best",
                        help="which student to export: best = the best student on validation (ties go to a "
                             "distilled one); kd = the better multi-teacher KD student on validation")
    parser.add_argument("--ensemble", choices=("mean", "product"), default="mean",
                        help="how the teacher ensemble (measured and exported) combines the teachers: mean of "
                             "probabilities (default) or product of experts (softmax of the mean of logits)")
    parser.add_argument("--kd-target", choices=("mean", "product"), default="mean",
                        help="the multi-teacher KD-mean student's soft target: mean of the softened probabilities "
                             "(default) or their product of experts")
    parser.add_argument("--standardise", action="store_true",
                        help="standardise each input channel with the training windows' mean and std, inside "
                             "every model (the runtime input and the preprocessing hash stay the same)")
    parser.add_argument("--allow-unbalanced", action="store_true")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def branch_spec(text: str):
    """"8,16,47" -> BranchSpec(filters=(8, 16), lstm_units=47) (argparse reports a ValueError)."""
    from models.architectures import BranchSpec

    values = [int(value) for value in text.split(",")]
    if len(values) != 3:
        raise ValueError(f"{text!r}: give two convolution widths and the LSTM units, e.g. 8,16,47")
    return BranchSpec(filters=(values[0], values[1]), lstm_units=values[2])


def quick_subset(entries, per_label: int):
    """The first ``per_label`` recordings of each label (in split order): a fixed, balanced subset."""
    taken: dict[str, int] = {}
    chosen = []
    for entry in entries:
        if taken.get(entry.label, 0) < per_label:
            taken[entry.label] = taken.get(entry.label, 0) + 1
            chosen.append(entry)
    return chosen


def load_windows(arguments, config, dataset):
    from train.distill.data import check_balance, load_window_set, plan_from_config

    if arguments.protocol == "within":
        held_out = None
    else:
        signers = dataset.signers
        held_out = arguments.held_out_signer or signers[arguments.seed % len(signers)]
    split = dataset.split(arguments.protocol, held_out_signer=held_out)
    split = {part: [entry for entry in entries if entry.kind == "isolated"] for part, entries in split.items()}
    if arguments.quick:
        split = {part: quick_subset(entries, {"train": 6, "val": 2, "test": 2}[part]) for part, entries in split.items()}
    plan = plan_from_config(config)
    if arguments.quick:
        windows = {part: load_window_set(dataset, entries, config, plan, None) for part, entries in split.items()}
    else:
        # Every isolated recording once (cached across runs), then each part by id.
        everything = load_window_set(dataset, dataset.isolated(), config, plan, arguments.cache)
        row_of = {identifier: row for row, identifier in enumerate(everything.ids.tolist())}
        windows = {part: everything.subset(np.array([row_of[entry.id] for entry in entries if entry.id in row_of],
                                                    dtype=np.int64))
                   for part, entries in split.items()}
    # Training needs every label, in fair proportions; val/test only need to be non-empty (a
    # recording dropped for a sensor dropout must not stop a run).
    check_balance(windows["train"].labels, dataset.labels, "train",
                  max_ratio=np.inf if arguments.allow_unbalanced else 3.0)
    summary = {part: {"recordings": len(split[part]), "windows": len(window_set),
                      "padded_windows": int((window_set.padded > 0).sum()),
                      "padded_samples_median": float(np.median(window_set.padded))}
               for part, window_set in windows.items()}
    return windows, {"protocol": arguments.protocol, "held_out_signer": held_out, "plan": plan.__dict__,
                     "parts": summary}


def choose_shipped(measured: dict, rule: str) -> str:
    """The student to export: the highest validation accuracy among the rule's candidates (max keeps
    the first of equals, so ties go to the earlier, distilled, candidate)."""
    return max(SHIP_RULES[rule], key=lambda name: measured[name]["val"]["accuracy"])


def fit_teachers(windows, input_spec, options, seed: int, strategy, histories: dict, branch=None,
                 normalization=None) -> dict:
    """One expert per modality, trained on its own input; their training histories go into ``histories``."""
    from models.architectures import TEACHER_BRANCH, build_teacher
    from train.distill.training import fit_teacher

    teachers = {}
    for modality in input_spec.channels:
        with strategy.scope():
            teacher = build_teacher(modality, input_spec, branch or TEACHER_BRANCH, normalization=normalization)
        histories[f"teacher_{modality}"] = fit_teacher(teacher, windows["train"], windows["val"], options, seed)
        teachers[modality] = teacher
    return teachers


def run(arguments) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from models.architectures import (
        STUDENT_BRANCH,
        TEACHER_BRANCH,
        InputSpec,
        build_student,
        ensemble_inference_model,
        fit_standardisation,
        inference_model,
        trainable_parameters,
    )
    from stream.config import load_config
    from stream.dsp.preprocess import preprocessing_hash, preprocessing_spec
    from stream.recording.dataset import open_dataset
    from train.distill import card as card_module
    from train.distill.export import Exporter, check_exported, convert
    from train.distill.report import write_report
    from train.distill.training import (
        FitOptions,
        classification_metrics,
        distribution_strategy,
        fit_student,
        predict_batched,
        predict_probabilities,
    )

    started = time.monotonic()
    config = load_config(arguments.config)
    dataset = open_dataset(arguments.data)
    windows, data_summary = load_windows(arguments, config, dataset)
    log.info("windows: %s", {part: len(window_set) for part, window_set in windows.items()})
    classes = len(dataset.labels)
    input_spec = InputSpec(window_samples=windows["train"].window_samples, channels=dict(windows["train"].channels),
                           classes=classes)
    quick = arguments.quick
    teacher_options = FitOptions(epochs=arguments.teacher_epochs or (QUICK_EPOCHS if quick else 35),
                                 patience=arguments.teacher_patience, tie_break_loss=arguments.tie_break == "loss")
    student_options = FitOptions(epochs=arguments.student_epochs or (QUICK_EPOCHS if quick else 40),
                                 patience=arguments.student_patience, tie_break_loss=arguments.tie_break == "loss")
    student_branch = dataclasses.replace(arguments.student_branch or STUDENT_BRANCH, activation=arguments.activation)
    teacher_branch = dataclasses.replace(TEACHER_BRANCH, activation=arguments.activation)
    # A smoke run is not a search: one alpha unless asked for more.
    alphas = arguments.alpha or list(DEFAULT_ALPHAS[:1] if quick else DEFAULT_ALPHAS)
    keras.utils.set_random_seed(arguments.seed)
    strategy = distribution_strategy()
    test_inputs, test_labels = windows["test"].windows(), windows["test"].labels
    val_inputs, val_labels = windows["val"].windows(), windows["val"].labels
    results = {"models": {}, "histories": {}}

    def measure(model_or_probabilities) -> dict:
        measured = {}
        for part, inputs, labels in (("val", val_inputs, val_labels), ("test", test_inputs, test_labels)):
            probabilities = (model_or_probabilities[part] if isinstance(model_or_probabilities, dict)
                             else predict_probabilities(model_or_probabilities, inputs))
            measured[part] = classification_metrics(probabilities, labels, classes)
        return measured

    def record(name, measured):
        results["models"][name] = measured
        log.info("%s: val %.3f test %.3f (macro-F1 %.3f)", name, measured["val"]["accuracy"],
                 measured["test"]["accuracy"], measured["test"]["macro_f1"])

    # 1-2. Teachers and their ensemble.
    # Fitted on the un-jittered training windows; None (the default) builds the models as before.
    normalization = fit_standardisation(windows["train"].windows()) if arguments.standardise else None
    teachers = fit_teachers(windows, input_spec, teacher_options, arguments.seed, strategy, results["histories"],
                            teacher_branch, normalization)
    for modality, teacher in teachers.items():
        record(f"teacher_{modality}", measure(teacher))

    def combined(inputs):
        if arguments.ensemble == "product":
            logits = np.mean([predict_batched(teacher, inputs) for teacher in teachers.values()], axis=0)
            return tf.nn.softmax(logits, axis=-1).numpy()
        return np.mean([predict_probabilities(teacher, inputs) for teacher in teachers.values()], axis=0)

    ensemble = {part: combined(inputs) for part, inputs in (("val", val_inputs), ("test", test_inputs))}
    record("teacher_ensemble", measure(ensemble))
    # Counted now: the Distiller freezes the teachers, after which nothing of theirs is "trainable".
    teacher_parameters = {f"teacher_{modality}": trainable_parameters(teacher) for modality, teacher in teachers.items()}
    best_modality = max(teachers, key=lambda name: results["models"][f"teacher_{name}"]["val"]["accuracy"])

    # 3. Students, all from the same initial weights.
    with strategy.scope():
        student = build_student(input_spec, student_branch, normalization=normalization)
    initial = student.get_weights()
    variants = {"student_scratch": ((), "mean"), "student_kd_single": ((teachers[best_modality],), "mean"),
                "student_kd_mean": (tuple(teachers.values()), arguments.kd_target),
                "student_kd_weighted": (tuple(teachers.values()), "weighted")}
    student_weights, chosen_alpha, alpha_candidates = {}, {}, {}
    for name, (variant_teachers, aggregation) in variants.items():
        # Scratch has no alpha; each distilled student is trained at every alpha and the best kept.
        for alpha in (alphas if variant_teachers else (None,)):
            student.set_weights(initial)
            keras.utils.set_random_seed(arguments.seed)  # the same dropout draws whatever ran before
            with strategy.scope():
                history = fit_student(student, windows["train"], windows["val"], student_options, arguments.seed,
                                      teachers=variant_teachers, aggregation=aggregation,
                                      alpha=1.0 if alpha is None else alpha, temperature=arguments.temperature)
            measured = measure(student)
            if alpha is not None:
                alpha_candidates.setdefault(name, []).append(
                    {"alpha": alpha, **{part: measured[part]["accuracy"] for part in ("val", "test")},
                     "best_epoch": history["best_epoch"], "seconds": history["seconds"]})
                log.info("%s alpha %g: val %.3f test %.3f", name, alpha, measured["val"]["accuracy"],
                         measured["test"]["accuracy"])
            kept = results["models"].get(name)
            if kept is None or measured["val"]["accuracy"] > kept["val"]["accuracy"]:
                record(name, measured)
                results["histories"][name] = history
                student_weights[name] = student.get_weights()
                chosen_alpha[name] = alpha
    shipped = choose_shipped(results["models"], arguments.ship)
    student.set_weights(student_weights[shipped])
    log.info("shipping %s (--ship %s: best on validation)", shipped, arguments.ship)

    # 4. Export and check.
    student_inference = inference_model(student, functools.partial(build_student, input_spec, student_branch,
                                                                      normalization=normalization))
    keras_test = predict_probabilities(student, test_inputs)
    train_inputs = windows["train"].windows()
    calibration_rows = np.random.default_rng(arguments.seed).permutation(len(windows["train"]))[:200]
    representative = {name: array[calibration_rows] for name, array in train_inputs.items()}
    model_files, exported = {}, {}
    repeats = 100 if quick else 500
    exporter = Exporter(student_inference)
    for variant in ("float32", "dynamic_range", "int8"):
        model_files[variant] = exporter.convert(variant, representative)
        check = check_exported(model_files[variant], keras_test, test_inputs, test_labels, repeats, f"student {variant}")
        check.pop("probabilities")
        exported[variant] = check
    teachers_inference = ensemble_inference_model(list(teachers.values()), input_spec, teacher_branch,
                                                  combine=arguments.ensemble, normalization=normalization)
    teachers_bytes = convert(teachers_inference, "float32")
    teachers_check = check_exported(teachers_bytes, ensemble["test"], test_inputs, test_labels, repeats, "teachers")
    teachers_check.pop("probabilities")
    exported["teacher_ensemble_float32"] = teachers_check

    parameters = dict(teacher_parameters)
    parameters["teacher_ensemble"] = sum(parameters.values())
    parameters["student"] = trainable_parameters(student)
    sizes = {"student_float32": len(model_files["float32"]), "student_dynamic_range": len(model_files["dynamic_range"]),
             "student_int8": len(model_files["int8"]), "teacher_ensemble_float32": len(teachers_bytes)}
    sizes["compression_float32"] = round(sizes["teacher_ensemble_float32"] / sizes["student_float32"], 2)
    sizes["compression_dynamic_range"] = round(sizes["teacher_ensemble_float32"] / sizes["student_dynamic_range"], 2)
    sizes["compression_int8"] = round(sizes["teacher_ensemble_float32"] / sizes["student_int8"], 2)

    summary = {name: {part: {key: value for key, value in results["models"][name][part].items() if key != "confusion"}
                      for part in ("val", "test")} for name in results["models"]}
    seconds = round(time.monotonic() - started, 1)
    training = {
        "command": " ".join(["python -m train.distill", *sys.argv[1:]]),
        "seed": arguments.seed, "quick": quick, "dataset": str(arguments.data.resolve()),
        "dataset_provenance": {key: value for key, value in dataset.provenance.items() if key != "vocabulary"},
        "data": data_summary, "shipped_variant": shipped, "best_single_teacher": f"teacher_{best_modality}",
        "alpha": chosen_alpha[shipped], "alpha_chosen": chosen_alpha, "alpha_candidates": alpha_candidates,
        "temperature": arguments.temperature,
        "teacher_fit": teacher_options.__dict__, "student_fit": student_options.__dict__,
        "teacher_branch": teacher_branch.__dict__, "student_branch": student_branch.__dict__,
        "patience": {"teachers": teacher_options.patience, "students": student_options.patience},
        "seconds_per_model": {name: history["seconds"] for name, history in results["histories"].items()},
        "total_seconds": seconds, "devices": [device.name for device in tf.config.list_logical_devices()],
        "replicas": strategy.num_replicas_in_sync,
    }
    # The shipped student's Keras weights (HDF5, no pickle): what `python -m train.adapt` fine-tunes on
    # a workstation. Written before the card, which names them with their sha256.
    out = arguments.out
    from stream.stages.model_card import sha256_file

    weights_path = save_student_weights(student, out)
    training["keras_weights"] = {"file": weights_path.name, "sha256": sha256_file(weights_path)}
    # Recorded only when used, so that a default run's card keeps its keys.
    if arguments.ensemble != "mean":
        training["ensemble"] = arguments.ensemble
    if arguments.kd_target != "mean":
        training["kd_target"] = arguments.kd_target
    if normalization is not None:
        training["standardisation"] = normalization
    metrics = {"summary": summary, "confusion": {name: {part: results["models"][name][part]["confusion"]
                                                        for part in ("val", "test")} for name in results["models"]},
               "exported": exported, "sizes_bytes": sizes}
    card = card_module.build_card(
        labels=dataset.labels, input_spec=input_spec, model_rate_hz=config.preprocess.model_rate_hz,
        window_s=config.window.length_s, preprocessing_spec=preprocessing_spec(config),
        preprocessing_hash=preprocessing_hash(config), model_files=model_files, metrics=metrics, training=training,
        parameters=parameters,
        description=(f"three-branch LSTM student ({shipped}: "
                     + ("trained on labels alone, better on validation than the distilled students"
                        if shipped == "student_scratch" else "distilled from per-modality teachers")
                     + f"), seed {arguments.seed}"))
    # What a per-user input alignment matches a new user's channels to (stream.adapt.alignment).
    from train.adapt.statistics import input_statistics

    card["input_statistics"] = input_statistics(train_inputs)
    # 5. Results, report, then the model files and the card last.
    from stream.common.atomic import atomic_write_json
    atomic_write_json(out / "results.json", {"summary": summary, "exported": exported, "sizes_bytes": sizes,
                                             "parameters": parameters, "training": training,
                                             "histories": results["histories"], "labels": list(dataset.labels),
                                             "confusion": metrics["confusion"]})
    write_report(out, card, results["histories"])
    card_path = card_module.write_model(out, model_files, card)
    log.info("wrote %s in %.0f s", card_path, time.monotonic() - started)
    return card


STUDENT_WEIGHTS_FILE = "student.weights.h5"


def save_student_weights(student, out: Path) -> Path:
    """``out/student.weights.h5``, complete or not at all (written beside it, then renamed)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / STUDENT_WEIGHTS_FILE
    partial = out / "student.partial.weights.h5"  # the same ending: tf_keras picks the format by it
    student.save_weights(str(partial))
    os.replace(partial, target)
    return target


def run_command(function, arguments, interrupted: str, refused: tuple = ()):
    """Logging set up, then ``function(arguments)``: (its result, 0), or (None, exit status) with one
    line on stderr when Ctrl-C stops it (130) or bad input refuses it (2)."""
    logging.basicConfig(level=getattr(logging, arguments.log_level), stream=sys.stderr, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stream.config import ConfigError
    from stream.recording.dataset import DatasetError
    from train.distill.data import TrainingDataError

    try:
        return function(arguments), 0
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return None, 130
    except (DatasetError, TrainingDataError, ConfigError, *refused) as error:
        print(f"error: {error}", file=sys.stderr)
        return None, 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if any(not 0.0 <= alpha <= 1.0 for alpha in arguments.alpha or ()):
        parser.error(f"--alpha {arguments.alpha}: each must lie in [0, 1]")
    card, status = run_command(run, arguments, "nothing half-written (files are written whole or not at all)")
    if status:
        return status
    shipped = card["training"]["shipped_variant"]
    test = card["metrics"]["summary"]
    print(json.dumps({"model_id": card["model_id"], "shipped": shipped,
                      "test_accuracy": {name: test[name]["test"]["accuracy"] for name in test},
                      "sizes_bytes": card["metrics"]["sizes_bytes"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
