"""stream-calibrate: a new user in two minutes. A guided session, then the student adapted to this
person, then a model card of their own beside (never over) the base model.

    stream-calibrate --config FILE --user NAME --out DIR [--signs a,b,... | all] [--repetitions 2]
                     [--rest-s 2 --sign-s 2] [--method alignment+head] [--from REC.h5 ...]

1. Unless ``--from`` gives recordings already made, stream-record's guided mode runs (same prompts,
   same clock-based labels: "get ready: water", "perform sign water now") for ``--repetitions``
   rounds through the signs, into ``DIR/calibration-<time>.h5``, from the running stream-acquire.
2. Each recording goes through the DSP and the segmenter exactly as in stream-infer; in each prompted
   span the sign the segmenter finds is cut into the window stream-infer would classify (ending when
   the sign is decided over), and into windows ending a little before and after it
   (``stream.adapt.shifts``). A prompt where no sign is found, or whose window meets missing samples
   (a sensor dropout), is reported by name and round: repeat it.
3. The base model ([model] card, or ``--model``) is adapted on the device (stream.adapt, no
   TensorFlow): input alignment and/or a head correction, the penalty chosen by leave-one-round-out
   cross-validation, which also gives the accuracy reported (on rounds not used to fit).
4. ``DIR/model_card.json`` appears last, atomically, complete with the copied model files, the
   adaptation, the calibration recordings' sha256, k, the accuracies and the time; or not at all.

To run it: set ``[model] card`` to ``DIR/model_card.json`` and reload stream-infer (SIGHUP).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from stream.adapt.head import AdaptationError

METHODS = ("alignment+head", "head", "alignment")
DEFAULT_METHOD = "alignment+head"


@dataclasses.dataclass
class CalibrationWindows:
    windows: dict  # modality -> (n, samples, channels); one row per sign and shift
    labels: list[str]
    rounds: list[int]
    problems: list[str]  # what to repeat, one line each
    shifts: list[int]  # model samples after the window stream-infer would classify (0: that window)

    @property
    def signs(self) -> np.ndarray:
        """Rows of the windows stream-infer would classify: one per sign."""
        return np.asarray(self.shifts) == 0


def calibration_windows(recording, config, where: str = "recording", shifts_s=None) -> CalibrationWindows:
    """The windows stream-infer would classify for each prompted sign of a guided recording, and the
    same sign's windows ending ``shifts_s`` later (default ``CALIBRATION_SHIFTS_S``; a shifted window
    that would leave the recording or meet missing samples is left out)."""
    from stream.adapt.shifts import CALIBRATION_SHIFTS_S, shift_samples
    from stream.dsp.preprocess import Preprocessor
    from stream.dsp.windows import window_length_samples
    from stream.stages.segmenter import Segmenter
    from stream.wire.rates import sample_index_at

    if recording.layout.signature() != config.layout.signature():
        raise AdaptationError(f"{where}: its layout ({recording.layout.describe()}) is not the config's "
                              f"({config.layout.describe()}); calibrate with the sensors the model runs on")
    if not recording.annotations:
        raise AdaptationError(f"{where}: no prompted signs in it (record it with stream-calibrate or stream-record --signs)")
    block = Preprocessor(config).process_recording(recording.emg, recording.acc, recording.gyro,
                                                   recording.emg_first_index, recording.imu_first_index)
    segments = Segmenter(config).process(block)
    length = window_length_samples(config)
    model_rate = config.preprocess.model_rate_hz
    emg_rate = recording.emg_rate_hz
    arrays = {"emg": block.emg, "acc": block.acc, "gyro": block.gyro}
    windows = {name: [] for name in arrays}
    labels, rounds, problems, shifts = [], [], [], []
    offsets = shift_samples(model_rate, CALIBRATION_SHIFTS_S if shifts_s is None else shifts_s)
    seen: Counter = Counter()
    for annotation in recording.annotations:
        round_number = seen[annotation.label]
        seen[annotation.label] += 1
        start = sample_index_at(annotation.start_index / emg_rate, model_rate)
        end = sample_index_at(annotation.end_index / emg_rate, model_rate)
        inside = [segment for segment in segments if segment.start_index < end and segment.end_index > start]
        name = f"{annotation.label} (round {round_number + 1})"
        if not inside:
            problems.append(f"{name}: no sign found in its prompt; repeat it, clearly, inside the prompt")
            continue
        segment = max(inside, key=lambda candidate: candidate.end_index - candidate.start_index)
        low = segment.decided_index - length - block.first_index
        high = segment.decided_index - block.first_index
        if low < 0 or high > len(block) or not block.valid[low:high].all():
            problems.append(f"{name}: its window meets missing samples (a sensor dropout?); repeat it")
            continue
        for offset in offsets:
            if offset and (low + offset < 0 or high + offset > len(block) or not block.valid[low + offset:high + offset].all()):
                continue
            for modality, array in arrays.items():
                windows[modality].append(array[low + offset:high + offset])
            labels.append(annotation.label)
            rounds.append(round_number)
            shifts.append(offset)
    stacked = {name: np.stack(values) if values else np.zeros((0, length, arrays[name].shape[1]), np.float32)
               for name, values in windows.items()}
    return CalibrationWindows(stacked, labels, rounds, problems, shifts)


def adapt(classifier, calibration: CalibrationWindows, method: str) -> tuple:
    """(Adaptation, the card's ``adaptation`` figures) fitted on the calibration windows."""
    from stream.adapt.alignment import fit_alignment
    from stream.adapt.card import Adaptation
    from stream.adapt.head import fit_user_head

    if method not in METHODS:
        raise AdaptationError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    label_index = {label: index for index, label in enumerate(classifier.labels)}
    unknown = sorted(set(calibration.labels) - set(label_index))
    if unknown:
        raise AdaptationError(f"signs {unknown} are not among the model's labels; calibrate the model's signs")
    labels = np.array([label_index[label] for label in calibration.labels])
    rounds = np.array(calibration.rounds)
    windows = calibration.windows
    started = time.process_time()
    alignment = None
    if "alignment" in method:
        statistics = classifier.card.document.get("input_statistics")
        if statistics is None:
            raise AdaptationError(f"{classifier.card.path} has no input_statistics (a card from before Dec 2026); "
                                  "use --method head, or retrain the model")
        alignment = fit_alignment(windows, statistics)
    model_started = time.process_time()
    probabilities, features = classifier.base_outputs(windows["emg"], windows["acc"], windows["gyro"], alignment=alignment)
    signs = calibration.signs
    base_probabilities = probabilities[signs] if alignment is None else classifier.base_outputs(
        *(windows[name][signs] for name in ("emg", "acc", "gyro")))[0]
    model_seconds = time.process_time() - model_started
    figures = {"windows": int(signs.sum()), "windows_with_shifts": int(len(labels)),
               "shifts_samples": sorted(set(calibration.shifts)),
               "base_accuracy_on_calibration": float(np.mean(base_probabilities.argmax(1) == labels[signs])),
               "aligned_accuracy_on_calibration": float(np.mean(probabilities[signs].argmax(1) == labels[signs]))}
    head = None
    if "head" in method:
        if features is None:
            raise AdaptationError(f"{classifier.card.path}: the model has no features output (exported before Dec "
                                  "2026); use --method alignment, or retrain the model")
        head, head_figures = fit_user_head(probabilities, features, labels, rounds)
        figures.update(head_figures)
    figures["seconds"] = time.process_time() - started
    # The model's outputs on every calibration window, and the rest (alignment, the head's fit):
    # under emulation the first dominates, on a CPU with its own vector unit the second.
    figures["model_seconds"] = model_seconds
    figures["fit_seconds"] = figures["seconds"] - model_seconds
    return Adaptation(method, alignment, head), figures


def run_guided_session(arguments, out_dir: Path) -> Path:
    from stream.daemons import record

    path = out_dir / time.strftime("calibration-%Y%m%d-%H%M%S.h5")
    argv = ["--out", str(path), "--signs", arguments.signs, "--repetitions", str(arguments.repetitions),
            "--rest-s", str(arguments.rest_s), "--sign-s", str(arguments.sign_s), "--signer", arguments.user,
            "--seed", str(arguments.seed)]
    if arguments.config:
        argv += ["--config", str(arguments.config)]
    if record.main(argv) != 0 or not path.exists():
        raise AdaptationError(f"the guided session did not complete ({path}); nothing was adapted")
    return path


def build_parser() -> argparse.ArgumentParser:
    from stream.config.cli import build_parser as daemon_parser

    parser = daemon_parser("stream-calibrate", "a guided calibration, then the model adapted to this user")
    parser.add_argument("--user", required=True, help="who is calibrating (in the card and its id)")
    parser.add_argument("--out", required=True, type=Path, help="new directory for this user's model")
    parser.add_argument("--signs", default="all", help="comma-separated labels, or all (default) of the model's")
    parser.add_argument("--repetitions", type=int, default=2, help="rounds through the signs (k, default 2)")
    parser.add_argument("--rest-s", type=float, default=2.0)
    parser.add_argument("--sign-s", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0, help="order of the prompts")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS)
    parser.add_argument("--model", type=Path, default=None, help="the base card (default: the config's [model] card)")
    parser.add_argument("--from", dest="recordings", type=Path, nargs="+", default=None,
                        help="adapt from these guided recordings instead of recording now")
    return parser


def main(argv: list[str] | None = None) -> int:
    from stream.adapt.card import sha256_file, write_adapted_card
    from stream.config.cli import load_config_or_exit
    from stream.recording import RecordingError, open_recording_file
    from stream.stages.classifier import Classifier

    arguments = build_parser().parse_args(argv)
    config = load_config_or_exit(arguments)
    if arguments.model is not None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, card=str(arguments.model.resolve())))
    try:
        classifier = Classifier.from_config(config)
        if arguments.signs == "all":
            arguments.signs = ",".join(classifier.labels)
        wanted = [label.strip() for label in arguments.signs.split(",") if label.strip()]
        unknown = [label for label in wanted if label not in classifier.labels]
        if unknown or arguments.repetitions < 1:
            raise AdaptationError(f"--signs: {unknown} are not the model's labels" if unknown else "--repetitions must be >= 1")
        if (arguments.out / "model_card.json").exists():
            raise AdaptationError(f"{arguments.out} already holds a model card; choose a new --out")
        arguments.out.mkdir(parents=True, exist_ok=True)
        paths = arguments.recordings or [run_guided_session(arguments, arguments.out)]
        parts = []
        for path in paths:
            with open_recording_file(path) as handle:
                keys = handle.keys()
                recordings = [handle.read(key) for key in keys]
            parts += [calibration_windows(recording, config, f"{path}:{key}") for key, recording in zip(keys, recordings)]
        calibration = CalibrationWindows(
            {name: np.concatenate([part.windows[name] for part in parts]) for name in ("emg", "acc", "gyro")},
            [label for part in parts for label in part.labels], [number for part in parts for number in part.rounds],
            [problem for part in parts for problem in part.problems], [shift for part in parts for shift in part.shifts])
        for problem in calibration.problems:
            print(f"stream-calibrate: warning: {problem}", file=sys.stderr)
        missing = [label for label in wanted if label not in calibration.labels]
        if missing:
            raise AdaptationError(f"no usable repetition of {', '.join(missing)}: record them again (stream-calibrate "
                                  f"--signs {','.join(missing)} ... --out NEW) and pass both with --from")
        adaptation, figures = adapt(classifier, calibration, arguments.method)
        counts = Counter(np.asarray(calibration.labels)[calibration.signs].tolist())
        section = {"user": arguments.user, "k": int(min(counts.values())), "signs": wanted,
                   "repetitions_requested": arguments.repetitions, "problems": calibration.problems,
                   "calibration": [{"path": str(path.resolve()), "sha256": sha256_file(path)} for path in paths], **figures}
        card_path = write_adapted_card(classifier.card, arguments.out, adaptation, section)
    except (AdaptationError, RecordingError, OSError, ValueError) as error:
        print(f"stream-calibrate: {error}", file=sys.stderr)
        return 1
    summary = {"card": str(card_path), "model_id": json.loads(card_path.read_text())["model_id"],
               **{key: section[key] for key in ("k", "windows", "base_accuracy_on_calibration", "cross_validated_accuracy",
                                                "seconds", "model_seconds", "fit_seconds") if key in section}}
    print(json.dumps(summary))
    print(f"to use it: set [model] card = \"{card_path}\" and reload stream-infer (systemctl reload signstream-infer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
