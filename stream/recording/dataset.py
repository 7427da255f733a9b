"""A dataset: a directory of recording files with an index and saved splits (reading it).

    DIR/index.json     labels (class order), sensors, rates, one entry per recording, provenance
    DIR/splits.json    train/val/test: "within" and "loso" (made by train.splits)
    DIR/recordings/    HDF5 recording files (stream.recording format), several recordings per file

``open_dataset(DIR)`` validates the index and splits up front (clear errors naming the file), and
``Dataset.load(entry)`` reads one recording, checking it against the index (rates, sensors, labels).
Reading lives on the runtime side because evaluation and a user's calibration read data sets on the
device; building one (``train.dataset index``, ``train.synth``) is offline.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stream.recording import Recording, RecordingFile
from stream.wire.rates import parse_rate

INDEX_NAME = "index.json"
SPLITS_NAME = "splits.json"
INDEX_FORMAT = "signstream-dataset"
INDEX_VERSION = 2  # 2: entries may name one annotation of a longer recording (``Entry.annotation``)
KINDS = ("isolated", "session")
# stream-record's kinds: a guided recording is signs prompted one by one with rest between (each
# annotated sign becomes an isolated entry); a live one is a continuous session.
RECORDED_KINDS = {"guided": "isolated", "live": "session"}
PARTS = ("train", "val", "test")


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


def check_splits(splits: dict, known_ids: set[str], where: str) -> None:
    """Raise ValueError (naming ``where``) if the splits overlap or name unknown recordings."""
    try:
        folds = [("within", splits["within"])] + [(f"loso[{fold['held_out_signer']}]", fold) for fold in splits["loso"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{where}: splits are missing {error}; regenerate them") from None
    for name, fold in folds:
        seen: set[str] = set()
        for part in PARTS:
            ids = set(fold.get(part, []))
            unknown = ids - known_ids
            if unknown:
                raise ValueError(f"{where}: split {name}.{part} names {len(unknown)} unknown recording(s), "
                                 f"e.g. {sorted(unknown)[0]!r}")
            overlap = ids & seen
            if overlap:
                raise ValueError(f"{where}: split {name} has recording {sorted(overlap)[0]!r} in two parts")
            seen |= ids
