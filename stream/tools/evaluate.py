"""Offline streaming evaluation: ``python -m stream.tools.evaluate --data DIR``.

Runs the stage objects of stream-infer and stream-sink (Preprocessor, WindowAssembler, Segmenter,
Classifier, EventBuilder, through ``Recognizer``) over a dataset's continuous sessions as fast as
the CPU allows, and prints one JSON object:

- ``event_precision``, ``event_recall``, ``event_f1``: an event is correct when its label is the
  annotated sign's and the middle of its span falls inside that sign's annotated span; each
  annotated sign matches at most one event (a second one is a false event);
- ``false_events_per_min_rest``: events whose middle is outside every sign, per minute of
  unannotated time;
- ``latency_after_sign_end_ms_median`` / ``_p95``: for correct events, from the annotated end of the
  sign to the moment stream-infer would have the decision: the end of the frame that completes the
  window (processing time on top is measured by ``python -m stream.tools.bench``);
- ``realtime_factor``: seconds of sessions per second of computation (files already read);
- ``recall_by_lead_in``: when the sessions say what came before each sign (the synthetic signer's
  ``lead_ins`` metadata: ``rest``, ``held`` transition from the previous sign, ``fidget``), the recall
  of each kind, so an error can be traced to the context it happens in.

By default the Preprocessor runs on each whole session (``process_recording``, bitwise equal to
frame-by-frame streaming, tested) and the rest of the chain on blocks of one second;
``--streaming`` feeds 13.5 ms frames exactly as stream-infer does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from stream.stages.events import EventBuilder

BATCH_BLOCK_SAMPLES = 74  # one second at the model rate


@dataclass
class SessionResult:
    session_id: str
    duration_s: float
    annotations: list  # (label, start_s, end_s)
    events: list = field(default_factory=list)  # event maps with "decision_time_s" added
    lead_ins: list | None = None  # per annotation, what came before it (if the recording says)
    predictions: int = 0
    counters: dict = field(default_factory=dict)


def recording_frames(recording):
    """Cut a recording into the frames a live source would send (its layout's frames)."""
    layout = recording.layout
    for number in range(recording.whole_frames):
        yield recording.frame(number, layout=layout)


def decision_time_s(decided_index: int, model_rate_hz: Fraction, emission_delay_s: Fraction,
                    frame_period_s: Fraction) -> float:
    """When stream-infer has the window ending at ``decided_index``: the end of the frame holding the
    last input sample that model sample ``decided_index - 1`` depends on."""
    last_input_time = Fraction(decided_index - 1) / model_rate_hz + emission_delay_s
    frames = math.floor(last_input_time / frame_period_s) + 1
    return float(frames * frame_period_s)


def run_session(recognizer, builder: EventBuilder, recording, session_id: str, streaming: bool) -> SessionResult:
    """One session through the stages; events carry the time their decision became available."""
    recognizer.reset()
    builder.reset()
    emg_rate = float(recording.emg_rate_hz)
    result = SessionResult(session_id, recording.duration_s,
                           [(a.label, a.start_index / emg_rate, a.end_index / emg_rate) for a in recording.annotations])
    lead_ins = recording.metadata.get("lead_ins")
    if isinstance(lead_ins, list) and len(lead_ins) == len(recording.annotations):
        result.lead_ins = [str(kind) for kind in lead_ins]
    model_rate = recognizer.model_rate_hz
    delay = recognizer.preprocessor.emission_delay_s

    def handle(recognitions, decided_at) -> None:
        for recognition in recognitions:
            prediction = recognizer.prediction_fields(recognition, 0.0)
            prediction.update(seq=result.predictions, session=session_id, t_wall=0.0, source_session=session_id)
            result.predictions += 1
            event = builder.process(prediction)
            if event is not None:
                event["decision_time_s"] = decided_at(recognition)
                result.events.append(event)

    if streaming:
        for frame in recording_frames(recording):
            frame_end_s = float(Fraction(frame.emg_first_index + frame.emg.shape[0]) / recording.emg_rate_hz)
            handle(recognizer.process_frame(frame), lambda _recognition: frame_end_s)
    else:
        block = recognizer.preprocessor.process_recording(
            recording.emg, recording.acc, recording.gyro, recording.emg_first_index, recording.imu_first_index)
        for low in range(0, len(block), BATCH_BLOCK_SAMPLES):
            part = type(block)(block.first_index + low, *(getattr(block, name)[low:low + BATCH_BLOCK_SAMPLES]
                                                           for name in ("emg", "acc", "gyro", "valid")))
            handle(recognizer.process_block(part),
                   lambda recognition: decision_time_s(recognition.segment.decided_index, model_rate, delay,
                                                       recognizer.preprocessor.layout.frame_period_s))
    result.counters = {**recognizer.all_counters(), **builder.counters}
    return result


def score(results: list[SessionResult]) -> dict:
    """Event precision/recall/F1, false events per minute of rest, latency after sign end."""
    correct = false = annotated = 0
    latencies = []
    by_lead_in: dict[str, list[int]] = {}  # kind -> [correct, annotated]
    rest_s = 0.0
    false_in_rest = 0
    for result in results:
        annotated += len(result.annotations)
        rest_s += result.duration_s - sum(end - start for _, start, end in result.annotations)
        matched: set[int] = set()
        for event in result.events:
            middle = 0.5 * (event["start_time_s"] + event["end_time_s"])
            inside = [number for number, (_, start, end) in enumerate(result.annotations) if start <= middle <= end]
            if not inside:
                false += 1
                false_in_rest += 1
                continue
            number = inside[0]
            label, _, end = result.annotations[number]
            if event["label"] == label and number not in matched:
                matched.add(number)
                correct += 1
                latencies.append((event["decision_time_s"] - end) * 1000)
            else:
                false += 1
        if result.lead_ins is not None:
            for number, kind in enumerate(result.lead_ins):
                tally = by_lead_in.setdefault(kind, [0, 0])
                tally[0] += number in matched
                tally[1] += 1
    events = correct + false
    precision = correct / events if events else 0.0
    recall = correct / annotated if annotated else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    summary = {
        "event_precision": round(precision, 4),
        "event_recall": round(recall, 4),
        "event_f1": round(f1, 4),
        "false_events_per_min_rest": round(false_in_rest / (rest_s / 60), 4) if rest_s > 0 else None,
        "latency_after_sign_end_ms_median": round(float(np.median(latencies)), 1) if latencies else None,
        "latency_after_sign_end_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        "signs": annotated,
        "events": events,
        "correct_events": correct,
        "rest_minutes": round(rest_s / 60, 2),
    }
    if by_lead_in:
        summary["recall_by_lead_in"] = {kind: {"recall": round(hits / total, 4), "signs": total}
                                        for kind, (hits, total) in sorted(by_lead_in.items())}
    return summary


def evaluate(config, dataset, sessions, streaming: bool = False, progress=None) -> dict:
    from stream.stages.classifier import Classifier
    from stream.stages.recognizer import Recognizer

    classifier = Classifier.from_config(config)
    recognizer = Recognizer(config, classifier)
    builder = EventBuilder(config.sink)
    results = []
    compute_s = load_s = 0.0
    for number, entry in enumerate(sessions):
        started = time.perf_counter()
        recording = dataset.load(entry)
        loaded = time.perf_counter()
        results.append(run_session(recognizer, builder, recording, entry.id, streaming))
        compute_s += time.perf_counter() - loaded
        load_s += loaded - started
        if progress is not None:
            progress(number + 1, len(sessions))
    duration_s = sum(result.duration_s for result in results)
    summary = score(results)
    counters = results[-1].counters if results else {}  # the stages count across sessions: totals
    summary.update({
        "realtime_factor": round(duration_s / compute_s, 1) if compute_s else None,
        "sessions": len(results),
        "session_minutes": round(duration_s / 60, 2),
        "compute_s": round(compute_s, 2),
        "load_s": round(load_s, 2),
        "mode": "streaming" if streaming else "batch-preprocessing",
        "model_id": classifier.model_id,
        "counters": counters,
    })
    unknown = sorted({label for result in results for label, _, _ in result.annotations} - set(classifier.labels))
    if unknown:
        # The model cannot name these signs: every one of them counts as missed.
        summary["labels_unknown_to_model"] = unknown
    return summary


def main(argv=None) -> int:
    from stream.config.cli import load_config_or_exit

    parser = argparse.ArgumentParser(prog="python -m stream.tools.evaluate",
                                     description="streaming evaluation over a dataset's continuous sessions")
    parser.add_argument("--data", required=True, help="dataset directory (python -m train.synth --out DIR)")
    parser.add_argument("--config", default=None, help="TOML config (default: the shipped defaults)")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--signer", default=None, help="only this signer's sessions (e.g. a LOSO held-out signer)")
    parser.add_argument("--session", default="", help="only these session numbers, e.g. 3,4 (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many sessions (0: all)")
    parser.add_argument("--streaming", action="store_true", help="feed 13.5 ms frames exactly as stream-infer")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    from stream.recording.dataset import DatasetError, open_dataset

    try:
        dataset = open_dataset(arguments.data)
        sessions = dataset.sessions(arguments.signer)
    except (DatasetError, OSError, ValueError) as error:
        print(f"stream.tools.evaluate: {error}", file=sys.stderr)
        return 2
    if arguments.session:
        wanted = {int(number) for number in arguments.session.split(",") if number.strip()}
        sessions = [entry for entry in sessions if entry.session in wanted]
    if arguments.limit:
        sessions = sessions[:arguments.limit]
    if not sessions:
        print(f"stream.tools.evaluate: {arguments.data} has no continuous sessions"
              f"{' for signer ' + arguments.signer if arguments.signer else ''}", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"\rsessions {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        summary = evaluate(config, dataset, sessions, arguments.streaming, progress)
    except ValueError as error:  # a model card that does not fit (labels, preprocessing, sha256)
        print(f"stream.tools.evaluate: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
