"""python -m train.summary DIR [--json] [--scan]: what a dataset holds.

Counts per sign and signer, recording and sign durations, rates, splits and sessions, from the index
(instant); ``--scan`` also opens every recording to count dropouts (gaps) and NaN samples and to
measure the annotated sign lengths.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

import numpy as np

from stream.recording.dataset import PARTS, DatasetError, open_dataset


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    array = np.asarray(values, dtype=float)
    return {"min": round(float(array.min()), 3), "median": round(float(np.median(array)), 3),
            "max": round(float(array.max()), 3), "total": round(float(array.sum()), 1)}


def summarize(directory: str, scan: bool = False) -> dict:
    with open_dataset(directory) as dataset:
        isolated, sessions = dataset.isolated(), dataset.sessions()
        per_label = Counter(entry.label for entry in isolated)
        per_signer = Counter(entry.signer for entry in isolated)
        summary = {
            "directory": str(dataset.directory),
            "recordings": len(dataset.entries), "isolated": len(isolated), "sessions": len(sessions),
            "labels": len(dataset.labels), "signers": dataset.signers,
            "sensors": list(dataset.sensor_names),
            "emg_rate_hz": f"{dataset.emg_rate_hz} ({float(dataset.emg_rate_hz):.3f})",
            "imu_rate_hz": f"{dataset.imu_rate_hz} ({float(dataset.imu_rate_hz):.3f})",
            "per_label": {label: per_label.get(label, 0) for label in dataset.labels},
            "per_signer": dict(sorted(per_signer.items())),
            "per_signer_and_label_range": [min(Counter((e.signer, e.label) for e in isolated).values(), default=0),
                                           max(Counter((e.signer, e.label) for e in isolated).values(), default=0)],
            "isolated_duration_s": _stats([entry.duration_s for entry in isolated]),
            "session_duration_s": _stats([entry.duration_s for entry in sessions]),
            "session_annotations": sum(entry.annotations for entry in sessions),
            "splits": {"within": {part: len(dataset.splits["within"][part]) for part in PARTS},
                       "loso_folds": [fold["held_out_signer"] for fold in dataset.splits["loso"]]},
            "provenance": {key: value for key, value in dataset.provenance.items() if key != "vocabulary"},
        }
        if scan:
            sign_lengths, gaps, nan_samples, incomplete = [], 0, 0, 0
            emg_rate = float(dataset.emg_rate_hz)
            seen = set()  # the signs of a guided recording share it: count its samples once
            for entry in dataset.entries:
                recording = dataset.load(entry)
                if (entry.file, entry.key) not in seen:
                    seen.add((entry.file, entry.key))
                    gaps += len(recording.gaps)
                    nan_samples += int(np.isnan(recording.emg).any(axis=1).sum())
                    incomplete += not recording.complete
                if entry.kind == "isolated":
                    sign = dataset.sign(entry, recording)
                    sign_lengths.append((sign.end_index - sign.start_index) / emg_rate)
            summary["scan"] = {"sign_duration_s": _stats(sign_lengths), "gaps": gaps,
                               "emg_rows_with_nan": nan_samples, "incomplete_recordings": incomplete}
        return summary


def format_text(summary: dict) -> str:
    lines = [f"dataset {summary['directory']}",
             f"  {summary['recordings']} recordings: {summary['isolated']} isolated, {summary['sessions']} sessions "
             f"({summary['session_annotations']} annotated signs)",
             f"  {summary['labels']} signs, {len(summary['signers'])} signers: {', '.join(summary['signers'])}",
             f"  sensors: {', '.join(summary['sensors'])}",
             f"  rates: sEMG {summary['emg_rate_hz']} Hz, IMU {summary['imu_rate_hz']} Hz",
             f"  isolated recording length (s): {summary['isolated_duration_s']}",
             f"  session length (s): {summary['session_duration_s']}",
             f"  repetitions per signer and sign: {summary['per_signer_and_label_range'][0]}"
             f"-{summary['per_signer_and_label_range'][1]}",
             f"  splits: within {summary['splits']['within']}, LOSO folds {len(summary['splits']['loso_folds'])}",
             "  per signer: " + ", ".join(f"{k} {v}" for k, v in summary["per_signer"].items()),
             "  per sign: " + ", ".join(f"{k} {v}" for k, v in summary["per_label"].items())]
    if "scan" in summary:
        scan = summary["scan"]
        lines.append(f"  sign length (s): {scan['sign_duration_s']}; dropouts (gaps): {scan['gaps']}; "
                     f"sEMG rows with NaN: {scan['emg_rows_with_nan']}; incomplete files: {scan['incomplete_recordings']}")
    if summary["provenance"]:
        lines.append(f"  made by: {summary['provenance'].get('command', summary['provenance'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.summary", description="Summarise a dataset directory.")
    parser.add_argument("directory")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--scan", action="store_true", help="open every recording (gaps, NaN, sign lengths)")
    arguments = parser.parse_args(argv)
    try:
        summary = summarize(arguments.directory, scan=arguments.scan)
    except (DatasetError, ValueError) as error:
        print(f"train.summary: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1) if arguments.json else format_text(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
