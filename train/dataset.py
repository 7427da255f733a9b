"""A dataset: a directory of recording files with an index and saved splits.

    DIR/index.json     labels (class order), sensors, rates, one entry per recording, provenance
    DIR/splits.json    train/val/test: "within" and "loso" (see train.splits)
    DIR/recordings/    HDF5 recording files (stream.recording format), several recordings per file

``open_dataset(DIR)`` validates the index and splits up front (clear errors naming the file), and
``Dataset.load(entry)`` reads one recording, checking it against the index (rates, sensors, labels).
Index and splits are written atomically after every recording file is in place, so a directory with an
index.json is always complete.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from stream.atomic import atomic_write_json
from stream.rates import parse_rate
from stream.recording import Recording, RecordingError, RecordingFile
from train.splits import PARTS, check_splits

INDEX_NAME = "index.json"
SPLITS_NAME = "splits.json"
INDEX_FORMAT = "signstream-dataset"
INDEX_VERSION = 2  # 2: entries may name one annotation of a longer recording (``Entry.annotation``)
KINDS = ("isolated", "session")
# stream-record's kinds: a guided recording is signs prompted one by one with rest between (each
# annotated sign becomes an isolated entry); a live one is a continuous session.
RECORDED_KINDS = {"guided": "isolated", "live": "session"}


class DatasetError(ValueError):
    """A dataset directory that is not usable; the message names the file and the problem."""


@dataclass(frozen=True)
class Entry:
    id: str
    file: str  # relative to the dataset directory
    key: str  # recording key inside the file
    kind: str  # "isolated" | "session"
    signer: str
    label: str | None = None  # isolated recordings: the sign
    repetition: int | None = None
    session: int | None = None
    duration_s: float = 0.0
    annotations: int = 0
    annotation: int | None = None  # an isolated sign inside a longer recording: which of its annotations


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


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON (truncated?): {error}") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read: {error}") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return value


class Dataset:
    """An opened dataset. Keeps a few recording files open for fast loading; ``close()`` them."""

    def __init__(self, directory: Path, index: dict, splits: dict, max_open_files: int = 8) -> None:
        self.directory = directory
        self.index = index
        self.splits = splits
        self.labels: tuple[str, ...] = tuple(index["labels"])
        self.sensor_names: tuple[str, ...] = tuple(index["sensor_names"])
        self.emg_rate_hz: Fraction = parse_rate(index["emg_rate_hz"])
        self.imu_rate_hz: Fraction = parse_rate(index["imu_rate_hz"])
        self.provenance: dict = index.get("provenance", {})
        self.entries: list[Entry] = [Entry(**entry) for entry in index["entries"]]
        self._by_id = {entry.id: entry for entry in self.entries}
        self._label_index = {label: position for position, label in enumerate(self.labels)}
        self._open: OrderedDict[str, RecordingFile] = OrderedDict()
        self._max_open_files = max_open_files

    # -- look-ups ----------------------------------------------------------------------------
    def entry(self, entry_id: str) -> Entry:
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise DatasetError(f"{self.directory}: no recording with id {entry_id!r}") from None

    def label_index(self, label: str) -> int:
        try:
            return self._label_index[label]
        except KeyError:
            raise DatasetError(f"{self.directory}: unknown label {label!r}; the dataset's labels are "
                               f"{', '.join(self.labels[:8])}, ...") from None

    @property
    def signers(self) -> list[str]:
        return sorted({entry.signer for entry in self.entries})

    def isolated(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.kind == "isolated"]

    def sessions(self, signer: str | None = None) -> list[Entry]:
        return [entry for entry in self.entries if entry.kind == "session" and signer in (None, entry.signer)]

    def split(self, name: str = "within", held_out_signer: str | None = None) -> dict[str, list[Entry]]:
        """``split("within")`` or ``split("loso", held_out_signer="signer-03")`` -> {train, val, test}."""
        if name == "within":
            fold = self.splits["within"]
        elif name == "loso":
            folds = {fold["held_out_signer"]: fold for fold in self.splits["loso"]}
            if held_out_signer not in folds:
                raise DatasetError(f"{self.directory}: no LOSO fold for signer {held_out_signer!r}; "
                                   f"folds: {', '.join(folds) or 'none (fewer than 2 signers)'}")
            fold = folds[held_out_signer]
        else:
            raise DatasetError(f"unknown split {name!r}; expected 'within' or 'loso'")
        return {part: [self._by_id[entry_id] for entry_id in fold[part]] for part in PARTS}

    def path(self, entry: Entry | str) -> Path:
        """The recording file of ``entry`` (with ``entry.key``: what read_recording needs)."""
        return self.directory / (self.entry(entry) if isinstance(entry, str) else entry).file

    # -- loading -----------------------------------------------------------------------------
    def _file(self, relative: str) -> RecordingFile:
        handle = self._open.get(relative)
        if handle is None:
            handle = RecordingFile(self.directory / relative)
            self._open[relative] = handle
            if len(self._open) > self._max_open_files:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(relative)
        return handle

    def load(self, entry: Entry | str) -> Recording:
        """Read one recording and check it against the index."""
        if isinstance(entry, str):
            entry = self.entry(entry)
        recording = self._file(entry.file).read(entry.key)
        where = f"{self.directory / entry.file}:{entry.key}"
        if (recording.emg_rate_hz, recording.imu_rate_hz) != (self.emg_rate_hz, self.imu_rate_hz):
            raise DatasetError(f"{where}: rates {recording.emg_rate_hz}/{recording.imu_rate_hz} Hz differ from the "
                               f"index's {self.emg_rate_hz}/{self.imu_rate_hz} Hz (mismatched rates; resample or re-import)")
        if recording.sensor_names != self.sensor_names:
            raise DatasetError(f"{where}: sensors {list(recording.sensor_names)} differ from the index's "
                               f"{list(self.sensor_names)}")
        for annotation in recording.annotations:
            if annotation.label not in self._label_index:
                raise DatasetError(f"{where}: annotation label {annotation.label!r} is not one of the dataset's labels")
        if entry.annotation is not None:
            self._check_annotation(entry, recording)
        return recording

    def _check_annotation(self, entry: Entry, recording: Recording) -> None:
        where = f"{self.directory / entry.file}:{entry.key}"
        if not 0 <= entry.annotation < len(recording.annotations):
            raise DatasetError(f"{where}: the index names annotation {entry.annotation} but the recording has "
                               f"{len(recording.annotations)}; the file changed after indexing (index it again)")
        if recording.annotations[entry.annotation].label != entry.label:
            raise DatasetError(f"{where}: annotation {entry.annotation} is "
                               f"{recording.annotations[entry.annotation].label!r} but the index says "
                               f"{entry.label!r}; the file changed after indexing (index it again)")

    def sign(self, entry: Entry | str, recording: Recording | None = None):
        """The annotation that labels an isolated entry (its recording's only one, or the one the entry names).
        ``recording``: the entry's recording if already loaded (one guided file serves many entries)."""
        if isinstance(entry, str):
            entry = self.entry(entry)
        recording = self.load(entry) if recording is None else recording
        if entry.annotation is not None:
            self._check_annotation(entry, recording)  # also when the recording was loaded for another entry
            return recording.annotations[entry.annotation]
        if len(recording.annotations) != 1:
            raise DatasetError(f"{self.directory / entry.file}:{entry.key}: an isolated recording needs exactly one "
                               f"annotation, it has {len(recording.annotations)}")
        return recording.annotations[0]

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.entries)


def open_dataset(directory: str | Path) -> Dataset:
    """Open and validate a dataset directory (index, splits, files present, labels known)."""
    directory = Path(directory)
    if not directory.exists():
        raise DatasetError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory (a dataset is a directory with {INDEX_NAME})")
    index_path = directory / INDEX_NAME
    if not index_path.exists():
        empty = not any(directory.iterdir())
        raise DatasetError(f"{directory}: {'empty directory' if empty else f'no {INDEX_NAME}'}; not a dataset "
                           "(generate one with `python -m train.synth --out DIR`)")
    index = _read_json(index_path)
    if index.get("format") != INDEX_FORMAT:
        raise DatasetError(f"{index_path}: format is {index.get('format')!r}, expected {INDEX_FORMAT!r}")
    if int(index.get("version", -1)) > INDEX_VERSION:
        raise DatasetError(f"{index_path}: version {index.get('version')} is newer than this code ({INDEX_VERSION})")
    for key in ("labels", "sensor_names", "emg_rate_hz", "imu_rate_hz", "entries"):
        if key not in index:
            raise DatasetError(f"{index_path}: missing key {key!r}")
    try:
        parse_rate(index["emg_rate_hz"]), parse_rate(index["imu_rate_hz"])
    except ValueError as error:
        raise DatasetError(f"{index_path}: bad rate: {error}") from None
    labels = index["labels"]
    if not labels or len(set(labels)) != len(labels):
        raise DatasetError(f"{index_path}: labels must be a non-empty list of unique names")
    known_labels = set(labels)
    known_ids: set[str] = set()
    for position, raw in enumerate(index["entries"]):
        try:
            entry = Entry(**raw)
        except TypeError as error:
            raise DatasetError(f"{index_path}: entry {position} is malformed: {error}") from None
        if entry.kind not in KINDS:
            raise DatasetError(f"{index_path}: entry {entry.id!r} has kind {entry.kind!r}; expected one of {KINDS}")
        if entry.kind == "isolated" and entry.label not in known_labels:
            raise DatasetError(f"{index_path}: entry {entry.id!r} has unknown label {entry.label!r}")
        if entry.annotation is not None and (entry.kind != "isolated" or isinstance(entry.annotation, bool)
                                             or not isinstance(entry.annotation, int) or entry.annotation < 0):
            raise DatasetError(f"{index_path}: entry {entry.id!r} has annotation {entry.annotation!r}; only an "
                               "isolated entry may name one, by its position (an integer >= 0)")
        if entry.id in known_ids:
            raise DatasetError(f"{index_path}: duplicate entry id {entry.id!r}")
        known_ids.add(entry.id)
    for relative in sorted({raw["file"] for raw in index["entries"]}):
        if not (directory / relative).is_file():
            raise DatasetError(f"{directory / relative}: listed in {INDEX_NAME} but missing")
    splits_path = directory / SPLITS_NAME
    if not splits_path.exists():
        raise DatasetError(f"{splits_path}: missing; regenerate the dataset or run train.splits")
    splits = _read_json(splits_path)
    try:
        check_splits(splits, known_ids, str(splits_path))
    except ValueError as error:
        raise DatasetError(str(error)) from None
    return Dataset(directory, index, splits)


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


__all__ = ["Dataset", "DatasetError", "Entry", "RecordingError", "index_directory", "open_dataset", "write_index"]

if __name__ == "__main__":
    raise SystemExit(main())
