"""Judging a soak's output: the recorder's file against the replayed recording, and the events against
the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def check_recording(directory: Path, source: Path, frames_published: int) -> dict:
    """Every frame published from the recorder's first one on is in its file, sample for sample equal
    to the replayed recording, except frames filled (NaN) as reported gaps."""
    import h5py

    from stream.recording import read_recording

    files = sorted(directory.glob("*.h5")) + sorted(directory.glob("*.partial"))
    if len(files) != 1:
        return {"files": [path.name for path in files], "ok": False, "why": "expected exactly one recording file"}
    replayed = read_recording(source).emg
    emg_per_frame = 15
    period = (replayed.shape[0] // emg_per_frame) * emg_per_frame  # replay drops a trailing partial frame
    with h5py.File(files[0], "r") as handle:
        group = next(iter(handle["recordings"].values()))
        first_index = int(group.attrs["emg_first_index"])
        complete = bool(group.attrs.get("complete", False))
        emg = group["emg"]
        rows = emg.shape[0]
        filled = sum(int(gap["emg_end"] - gap["emg_start"]) for gap in group["gaps"][:] if gap["sensor"] == -1)
        differing_rows = 0
        for start in range(0, rows, 200_000):
            block = emg[start:start + 200_000]
            indices = (first_index + start + np.arange(block.shape[0])) % period
            expected = replayed[indices]
            same = (block == expected) | (np.isnan(block) & np.isnan(expected))
            differing_rows += int((~same.all(axis=1)).sum())
    first_frame = first_index // emg_per_frame
    in_file = rows // emg_per_frame
    missing_at_end = frames_published - first_frame - in_file
    return {
        "file": files[0].name, "complete": complete, "first_frame": first_frame, "frames_in_file": in_file,
        "frames_published_since_first": frames_published - first_frame, "frames_missing": missing_at_end,
        "frames_filled_as_reported_gaps": filled // emg_per_frame,
        "frames_differing_from_source": -(-differing_rows // emg_per_frame),
        "ok": bool(complete and missing_at_end == 0 and differing_rows <= filled),
    }


def score_events(truths: list[dict], events: list[dict]) -> dict:
    spans = [(truth["start_time_s"], truth["end_time_s"], truth["label"]) for truth in truths]
    inside = correct = in_rest = 0
    found: set[int] = set()
    last_truth_end = max((end for _, end, _ in spans), default=0.0)
    for event in events:
        if event["end_time_s"] > last_truth_end:
            continue  # past the last completed annotation: cannot be judged yet
        middle = 0.5 * (event["start_time_s"] + event["end_time_s"])
        hits = [number for number, (start, end, _) in enumerate(spans) if start <= middle <= end]
        if not hits:
            in_rest += 1
            continue
        inside += 1
        if event["label"] == spans[hits[0]][2]:
            correct += 1
            found.add(hits[0])
    judged = inside + in_rest
    return {"true_signs": len(spans), "events_judged": judged, "events_inside_a_sign": inside,
            "events_right_label": correct, "events_in_rest": in_rest,
            "signs_found_with_right_label": len(found),
            "recall": round(len(found) / len(spans), 4) if spans else None,
            "precision": round(correct / judged, 4) if judged else None}
