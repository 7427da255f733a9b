"""Print what arm64-check.sh saw: the events (with the recording's ground truth beside them), the
daemons' last status counters, and the timings from measure.py. Every figure is from the EMULATED
arm64 root (qemu user mode), not a Raspberry Pi.

    python deploy/emulate/summarise.py EVENTS_JSONL TRUTH_JSONL MEASURE_COLD_JSON MEASURE_WARM_JSON
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def read_json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short when the subscriber was stopped
    return lines


def overlapping_truth(event: dict, truth: list[dict]) -> dict | None:
    best, best_overlap = None, 0.0
    for annotation in truth:
        overlap = min(event["end_time_s"], annotation["end_s"]) - max(event["start_time_s"], annotation["start_s"])
        if overlap > best_overlap:
            best, best_overlap = annotation, overlap
    return best


def main(events_path: str, truth_path: str, *measure_paths: str) -> int:
    messages = read_json_lines(Path(events_path))
    truth = read_json_lines(Path(truth_path))
    events = [message for message in messages if "label" in message and "confidence" in message]
    statuses = {message["daemon"]: message for message in messages if "daemon" in message}

    print("EMULATED arm64 (qemu user mode on an x86_64 host): not Raspberry Pi figures")
    print(f"\nevents: {len(events)}  (ground truth: {len(truth)} signs)")
    print(f"{'time (s)':>15}  {'event':<16} {'conf':>5}   {'truth':<16}")
    matched, correct, latencies = set(), 0, []
    for event in events:
        annotation = overlapping_truth(event, truth)
        truth_label = annotation["label"] if annotation else "-"
        if annotation is not None:
            matched.add(id(annotation))
            correct += annotation["label"] == event["label"]
        if "received_wall" in event and "end_wall" in event:
            latencies.append(event["received_wall"] - event["end_wall"])
        print(f"{event['start_time_s']:6.2f}-{event['end_time_s']:6.2f}  {event['label']:<16} "
              f"{event['confidence']:5.2f}   {truth_label:<16}")
    missed = [annotation["label"] for annotation in truth if id(annotation) not in matched]
    print(f"\ncorrect label: {correct}/{len(events)} events; truth signs with no event: {len(missed)}"
          + (f" ({', '.join(missed)})" if missed else ""))
    if latencies:
        print(f"sign end -> event received: median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms (EMULATED)")
    for name, status in sorted(statuses.items()):
        counters = " ".join(f"{key}={value}" for key, value in sorted(status.get("counters", {}).items()))
        print(f"last status {name}: {counters}")
    for path in measure_paths:
        try:
            print(f"measure: {json.dumps(json.loads(Path(path).read_text().strip().splitlines()[-1]))}")
        except (OSError, IndexError, json.JSONDecodeError) as error:
            print(f"measure: {path}: unreadable ({error})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(*sys.argv[1:]))
