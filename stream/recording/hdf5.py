"""The on-disk recording format (HDF5 through h5py; spec in docs/DATA.md).

One file holds one or more recordings, each a group ``/recordings/<key>``::

    /                      attrs: format = "signstream-recordings", format_version = 1
    /recordings/<key>/     attrs: emg_rate_hz, imu_rate_hz ("p/q" strings), sensor_names (JSON list),
                                  emg_first_index, imu_first_index, metadata (JSON object), complete;
                                  optional: imu_names (JSON list, when the IMU sensors are not the
                                  sEMG sensors), emg_unit ("counts"; absent: mV)
        emg          (N, S)  float32  mV
        acc          (M, 3I) float32  g        columns s1x, s1y, s1z, s2x, ...; (M, 0) if not sent
        gyro         (M, 3I) float32  deg/s    I = len(imu_names) or S
        annotations  (K,)    {label: UTF-8 string, start_index: int64, end_index: int64}
        gaps         (G,)    {sensor, emg_start, emg_end, imu_start, imu_end: int64}

Finished files are written whole to a temporary name and moved into place with ``os.replace``: a
crash leaves either the old file or the new one, never half of one. The live writer
(``stream.recording.writer``) appends to a ``.partial`` file in SWMR mode instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np

from stream.recording.model import Annotation, Gap, Recording, RecordingError
from stream.wire.rates import parse_rate

FORMAT_NAME = "signstream-recordings"
FORMAT_VERSION = 1
LIBVER = ("v110", "latest")  # v110: the oldest file format that supports SWMR appends

ANNOTATION_DTYPE = np.dtype([
    ("label", h5py.string_dtype("utf-8")),
    ("start_index", "<i8"),
    ("end_index", "<i8"),
])
GAP_DTYPE = np.dtype([(name, "<i8") for name in ("sensor", "emg_start", "emg_end", "imu_start", "imu_end")])
REQUIRED_DATASETS = ("emg", "acc", "gyro", "annotations", "gaps")
REQUIRED_ATTRIBUTES = ("emg_rate_hz", "imu_rate_hz", "sensor_names", "emg_first_index", "imu_first_index", "metadata")


def annotations_to_array(annotations: list[Annotation]) -> np.ndarray:
    array = np.empty(len(annotations), dtype=ANNOTATION_DTYPE)
    for row, annotation in enumerate(annotations):
        array[row] = (annotation.label, annotation.start_index, annotation.end_index)
    return array


def gaps_to_array(gaps: list[Gap]) -> np.ndarray:
    array = np.empty(len(gaps), dtype=GAP_DTYPE)
    for row, gap in enumerate(gaps):
        array[row] = (gap.sensor, gap.emg_start, gap.emg_end, gap.imu_start, gap.imu_end)
    return array


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
        raise RecordingError(f"recording key {key!r} must be a non-empty name without '/'")
    return key


def metadata_to_json(metadata: dict, where: str) -> str:
    try:
        return json.dumps(metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise RecordingError(f"{where}: metadata is not plain JSON (str, int, float, bool, list, dict): {error}") from None


def write_group_attributes(group: h5py.Group, recording: Recording, where: str, complete: bool) -> None:
    group.attrs["emg_rate_hz"] = str(recording.emg_rate_hz)
    group.attrs["imu_rate_hz"] = str(recording.imu_rate_hz)
    group.attrs["sensor_names"] = json.dumps(list(recording.sensor_names))
    group.attrs["emg_first_index"] = int(recording.emg_first_index)
    group.attrs["imu_first_index"] = int(recording.imu_first_index)
    group.attrs["metadata"] = metadata_to_json(recording.metadata, where)
    group.attrs["complete"] = bool(complete)
    write_layout_attributes(group, recording.imu_names, recording.emg_unit)


def write_layout_attributes(group: h5py.Group, imu_names: tuple[str, ...], emg_unit: str) -> None:
    """Only what a Trigno-style layout does not imply, so files of such layouts stay as they were."""
    if imu_names:
        group.attrs["imu_names"] = json.dumps(list(imu_names))
    if emg_unit != "mV":
        group.attrs["emg_unit"] = emg_unit


def write_group(parent: h5py.Group, key: str, recording: Recording, where: str) -> None:
    """Write one validated recording as ``parent[key]``."""
    group = parent.create_group(check_key(key))
    write_group_attributes(group, recording, where, complete=recording.complete)
    for name in ("emg", "acc", "gyro"):
        group.create_dataset(name, data=getattr(recording, name))
    group.create_dataset("annotations", data=annotations_to_array(recording.annotations))
    group.create_dataset("gaps", data=gaps_to_array(recording.gaps))


def write_recordings(path: str | Path, recordings: Mapping[str, Recording] | Iterator[tuple[str, Recording]]) -> Path:
    """Write recordings to a new file at ``path`` atomically (temporary file, fsync, os.replace)."""
    path = Path(path)
    items = recordings.items() if isinstance(recordings, Mapping) else recordings
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w", libver=LIBVER) as handle:
            handle.attrs["format"] = FORMAT_NAME
            handle.attrs["format_version"] = FORMAT_VERSION
            parent = handle.create_group("recordings")
            for key, recording in items:
                where = f"{path}:{key}"
                recording.validate(where)
                write_group(parent, key, recording, where)
        fsync_file(temporary)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def write_recording(path: str | Path, recording: Recording, key: str = "recording") -> Path:
    """Write one recording to its own file (atomically)."""
    return write_recordings(path, {key: recording})


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem: the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.is_dir():
        raise RecordingError(f"{path}: is a directory, not a recording file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        if "already open for write" in str(error):
            # A writer in SWMR mode crashed (or is still writing): its flushed data is readable.
            try:
                return h5py.File(path, "r", swmr=True)
            except OSError as second:
                error = second
        raise RecordingError(f"{path}: not a readable HDF5 recording file (truncated or corrupt?): {error}") from None


class RecordingFile:
    """An open recording file: ``keys()``, ``read(key)``. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle = _open_h5(self.path)
        try:
            format_name = self._handle.attrs.get("format")
            if isinstance(format_name, bytes):
                format_name = format_name.decode()
            if format_name != FORMAT_NAME:
                raise RecordingError(f"{self.path}: not a signstream recording file (format attribute is "
                                     f"{format_name!r}, expected {FORMAT_NAME!r})")
            version = int(self._handle.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise RecordingError(f"{self.path}: format_version {version} is newer than this reader "
                                     f"({FORMAT_VERSION}); update signstream")
            if "recordings" not in self._handle:
                raise RecordingError(f"{self.path}: has no /recordings group")
        except BaseException:
            self._handle.close()
            raise

    def keys(self) -> list[str]:
        return list(self._handle["recordings"].keys())

    def read(self, key: str | None = None) -> Recording:
        keys = self.keys()
        if key is None:
            if len(keys) != 1:
                raise RecordingError(f"{self.path}: holds {len(keys)} recordings; pass a key (one of "
                                     f"{', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})")
            key = keys[0]
        if key not in self._handle["recordings"]:
            raise RecordingError(f"{self.path}: no recording {key!r}")
        return read_group(self._handle["recordings"][key], f"{self.path}:{key}")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordingFile:
        return self

    def __exit__(self, *exception) -> None:
        self.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_group(group: h5py.Group, where: str) -> Recording:
    """Read and validate one recording group; every problem is a RecordingError naming ``where``."""
    missing = [name for name in REQUIRED_DATASETS if name not in group]
    if missing:
        raise RecordingError(f"{where}: missing dataset(s) {', '.join(missing)}")
    missing = [name for name in REQUIRED_ATTRIBUTES if name not in group.attrs]
    if missing:
        raise RecordingError(f"{where}: missing attribute(s) {', '.join(missing)}")
    try:
        emg_rate: Fraction = parse_rate(_text(group.attrs["emg_rate_hz"]))
        imu_rate: Fraction = parse_rate(_text(group.attrs["imu_rate_hz"]))
    except ValueError as error:
        raise RecordingError(f"{where}: bad rate attribute: {error}") from None
    try:
        sensor_names = tuple(json.loads(_text(group.attrs["sensor_names"])))
        metadata = json.loads(_text(group.attrs["metadata"]))
        imu_names = tuple(json.loads(_text(group.attrs["imu_names"]))) if "imu_names" in group.attrs else ()
    except (json.JSONDecodeError, TypeError) as error:
        raise RecordingError(f"{where}: sensor_names/metadata attribute is not valid JSON: {error}") from None
    try:
        # SWMR-written datasets may be longer on disk than the last flush advertised: refresh first.
        for name in REQUIRED_DATASETS:
            if group.file.swmr_mode:
                group[name].refresh()
        arrays = {name: np.asarray(group[name][()]) for name in ("emg", "acc", "gyro")}
        annotation_rows = group["annotations"][()]
        gap_rows = group["gaps"][()]
    except (OSError, KeyError, ValueError) as error:
        raise RecordingError(f"{where}: cannot read samples (truncated or corrupt file?): {error}") from None
    for name, array in arrays.items():
        if array.dtype != np.float32:
            raise RecordingError(f"{where}: dataset {name} has dtype {array.dtype}; the format stores float32")
    try:
        annotations = [Annotation(_text(row["label"]), int(row["start_index"]), int(row["end_index"]))
                       for row in annotation_rows]
        gaps = [Gap(*(int(row[name]) for name in GAP_DTYPE.names)) for row in gap_rows]
    except (ValueError, IndexError) as error:
        raise RecordingError(f"{where}: annotations/gaps do not have the format's fields: {error}") from None
    recording = Recording(
        emg=arrays["emg"], acc=arrays["acc"], gyro=arrays["gyro"],
        emg_rate_hz=emg_rate, imu_rate_hz=imu_rate, sensor_names=sensor_names,
        emg_first_index=int(group.attrs["emg_first_index"]), imu_first_index=int(group.attrs["imu_first_index"]),
        annotations=annotations, metadata=metadata, gaps=gaps,
        complete=bool(group.attrs.get("complete", True)), imu_names=imu_names,
        emg_unit=_text(group.attrs.get("emg_unit", "mV")),
    )
    recording.validate(where)
    return recording


def read_recording(path: str | Path, key: str | None = None) -> Recording:
    """Read one recording (``key`` may be omitted when the file holds exactly one)."""
    with RecordingFile(path) as handle:
        return handle.read(key)


def list_recordings(path: str | Path) -> list[str]:
    with RecordingFile(path) as handle:
        return handle.keys()


@contextmanager
def open_recording_file(path: str | Path) -> Iterator[RecordingFile]:
    handle = RecordingFile(path)
    try:
        yield handle
    finally:
        handle.close()
