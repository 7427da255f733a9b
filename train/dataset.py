"""Building a dataset: index a directory of recordings you recorded or imported (``python -m
train.dataset index DIR``), writing index.json and splits.json next to them atomically after every
recording file is in place, so a directory with an index.json is always complete. Reading one is
``stream.recording.dataset``.
"""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

from stream.common.atomic import atomic_write_json
from stream.recording import RecordingError, RecordingFile
from stream.recording.dataset import (
    INDEX_FORMAT,
    INDEX_NAME,
    INDEX_VERSION,
    KINDS,
    RECORDED_KINDS,
    SPLITS_NAME,
    DatasetError,
    Entry,
)


def write_index(directory: Path, labels: list[str], sensor_names: list[str], emg_rate_hz: Fraction,
                imu_rate_hz: Fraction, entries: list[Entry], provenance: dict) -> None:
    atomic_write_json(Path(directory) / INDEX_NAME, {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION if any(entry.annotation is not None for entry in entries) else 1,
        "labels": list(labels), "sensor_names": list(sensor_names),
        "emg_rate_hz": str(emg_rate_hz), "imu_rate_hz": str(imu_rate_hz),
        "provenance": provenance,
        # Entries of whole recordings are written as before (version 1 readers can read such an index).
        "entries": [{key: value for key, value in asdict(entry).items() if key != "annotation" or value is not None}
                    for entry in entries],
    })


def index_directory(directory: str | Path, labels: list[str] | None = None, seed: int = 0) -> Path:
    """Make a dataset of recording files you recorded or imported (``*.h5`` anywhere under
    ``directory``): writes index.json and splits.json next to them.

    Every recording needs ``metadata.signer``. A recording with ``metadata.kind == "isolated"``, or
    without a kind and with exactly one annotation, is an isolated sign (its annotation is the label;
    ``metadata.repetition`` or the file order numbers the repetitions); others are sessions. Labels
    are the annotations' labels, sorted, unless ``labels`` gives the class order. Rates and sensors
    must agree across files. Unfinished ``.partial`` files are skipped (recover them first)."""
    from train.splits import make_splits

    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory")
    if (directory / INDEX_NAME).exists():
        raise DatasetError(f"{directory}: already has {INDEX_NAME}; delete it and {SPLITS_NAME} to index again")
    files = sorted(path for path in directory.rglob("*.h5") if path.is_file())
    if not files:
        raise DatasetError(f"{directory}: no recording files (*.h5) to index")
    entries: list[Entry] = []
    common: tuple | None = None
    seen_labels: set[str] = set()
    repetitions: dict[tuple[str, str], int] = {}
    for path in files:
        with RecordingFile(path) as handle:
            for key in handle.keys():
                recording = handle.read(key)
                where = f"{path}:{key}"
                signature = (recording.emg_rate_hz, recording.imu_rate_hz, recording.sensor_names)
                if common is None:
                    common = signature
                elif signature != common:
                    raise DatasetError(f"{where}: rates/sensors {signature[0]}/{signature[1]} Hz {list(signature[2])} differ "
                                       f"from the first file's {common[0]}/{common[1]} Hz {list(common[2])} "
                                       "(mismatched rates or sensors)")
                signer = recording.metadata.get("signer")
                if not isinstance(signer, str) or not signer:
                    raise DatasetError(f"{where}: metadata has no 'signer'; set it when recording or importing")
                kind = recording.metadata.get("kind") or ("isolated" if len(recording.annotations) == 1 else "session")
                kind = RECORDED_KINDS.get(kind, kind)
                if kind not in KINDS:
                    raise DatasetError(f"{where}: metadata kind {kind!r} is not one of "
                                       f"{KINDS + tuple(RECORDED_KINDS)}")
                seen_labels.update(annotation.label for annotation in recording.annotations)
                relative = path.relative_to(directory).as_posix()
                common_fields = dict(file=relative, key=key, signer=signer, duration_s=round(recording.duration_s, 4),
                                     annotations=len(recording.annotations))
                if kind == "session":
                    entries.append(Entry(id=f"{relative}:{key}", kind=kind, **common_fields))
                    continue
                whole = recording.metadata.get("kind") == "isolated" or len(recording.annotations) == 1
                if whole and len(recording.annotations) != 1:
                    raise DatasetError(f"{where}: an isolated recording needs exactly one annotation, "
                                       f"it has {len(recording.annotations)}")
                if not recording.annotations:
                    raise DatasetError(f"{where}: a guided recording without annotations has no signs to train on "
                                       "(the guided session stopped before its first prompt?); move it out of the directory")
                for position, annotation in enumerate(recording.annotations):
                    label = annotation.label
                    repetition = recording.metadata.get("repetition") if whole else None
                    if not isinstance(repetition, int):
                        repetition = repetitions.get((signer, label), 0)
                    repetitions[(signer, label)] = max(repetitions.get((signer, label), 0), repetition + 1)
                    entries.append(Entry(id=f"{relative}:{key}" + ("" if whole else f"#{position}"), kind=kind,
                                         label=label, repetition=repetition, annotation=None if whole else position,
                                         **common_fields))
    if labels is None:
        labels = sorted(seen_labels)
    unknown = sorted(seen_labels - set(labels))
    if unknown:
        raise DatasetError(f"{directory}: recordings use label(s) {', '.join(map(repr, unknown))} that --labels does not list")
    try:
        splits = make_splits([asdict(entry) for entry in entries], seed=seed)
    except ValueError as error:
        raise DatasetError(f"{directory}: {error}") from None
    atomic_write_json(directory / SPLITS_NAME, splits)
    write_index(directory, list(labels), list(common[2]), common[0], common[1], entries,
                {"indexed_by": "train.dataset index", "seed": seed, "files": len(files)})
    return directory / INDEX_NAME


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m train.dataset",
                                     description="Index a directory of recordings as a dataset (index.json, splits.json).")
    parser.add_argument("command", choices=["index"])
    parser.add_argument("directory")
    parser.add_argument("--labels", default=None, help="comma-separated class order (default: sorted labels found)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    arguments = parser.parse_args(argv)
    try:
        path = index_directory(arguments.directory, arguments.labels.split(",") if arguments.labels else None,
                               arguments.seed)
    except (DatasetError, RecordingError) as error:
        print(f"train.dataset: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
