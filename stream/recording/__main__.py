"""python -m stream.recording info FILE... | recover FILE.partial

``info`` prints one JSON line per recording (key, duration, rates, sensors, annotations, gaps,
complete). ``recover`` turns the ``.partial`` file a crashed recorder left into a finished recording
(everything it had flushed; ``metadata.recovered = true``) next to it, then removes the ``.partial``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stream.recording.hdf5 import RecordingFile, write_recordings
from stream.recording.model import RecordingError
from stream.recording.writer import PARTIAL_SUFFIX


def info(path: Path) -> list[dict]:
    with RecordingFile(path) as handle:
        rows = []
        for key in handle.keys():
            recording = handle.read(key)
            rows.append({
                "file": str(path), "key": key, "complete": recording.complete,
                "duration_s": round(recording.duration_s, 3), "emg_rate_hz": str(recording.emg_rate_hz),
                "imu_rate_hz": str(recording.imu_rate_hz), "sensors": list(recording.sensor_names),
                "emg_first_index": recording.emg_first_index, "annotations": len(recording.annotations),
                "gaps": len(recording.gaps), "metadata": recording.metadata,
            })
        return rows


def recover(path: Path) -> Path:
    if not path.name.endswith(PARTIAL_SUFFIX):
        raise RecordingError(f"{path}: not a {PARTIAL_SUFFIX} file; only unfinished recordings need recovering")
    target = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    if target.exists():
        raise RecordingError(f"{target}: already exists; move it away first")
    with RecordingFile(path) as handle:
        recordings = {key: handle.read(key) for key in handle.keys()}
    for recording in recordings.values():
        recording.metadata["recovered"] = True
        recording.complete = True
    write_recordings(target, recordings)
    path.unlink()
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.recording", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["info", "recover"])
    parser.add_argument("files", nargs="+", type=Path)
    arguments = parser.parse_args(argv)
    status = 0
    for path in arguments.files:
        try:
            if arguments.command == "info":
                for row in info(path):
                    print(json.dumps(row))
            else:
                print(recover(path))
        except RecordingError as error:
            print(f"stream.recording: {error}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
