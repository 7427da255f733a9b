"""Appendable, crash-safe writing of a live recording (used by stream-record).

``RecordingWriter(path, sensor_names)`` appends frames to ``<path>.partial`` in HDF5 SWMR mode and
flushes every ``flush_interval_frames`` frames: SWMR orders its metadata writes so the file on disk
is always consistent, so a crash or power cut loses at most the last unflushed chunk and the
``.partial`` file stays readable (``read_recording`` opens it and reports ``complete=False``).
``close()`` marks the file complete and moves it to ``path`` with ``os.replace``; earlier recordings
are separate files and are never touched again.

Lost frames (a jump in the sample indices) are filled with NaN and recorded as a gap of all
sensors: the row of sample ``i`` is always ``i - first_index``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np

from stream.recording.hdf5 import (
    ANNOTATION_DTYPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GAP_DTYPE,
    LIBVER,
    annotations_to_array,
    check_key,
    fsync_directory,
    fsync_file,
    gaps_to_array,
    metadata_to_json,
    write_layout_attributes,
)
from stream.recording.model import ALL_SENSORS, Annotation, Gap, RecordingError
from stream.wire.frames import Frame
from stream.wire.layout import MODALITIES, Layout
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ, parse_rate

PARTIAL_SUFFIX = ".partial"
# HDF5 in SWMR mode does not survive ENOSPC: a full disk crashed the writing process with SIGSEGV
# inside H5Fflush (measured here on a 256 kB tmpfs). So the writer stops while this much plus twice
# the pending data is still free, and leaves the flushed part readable.
DISK_MARGIN_BYTES = 256 * 1024


class DiskFullError(RecordingError):
    """The disk is (nearly) full: the writer stopped; everything flushed before is in the .partial file."""


class RecordingWriter:
    """Append frames, annotations and gaps; ``close()`` to finish. Not thread-safe."""

    def __init__(
        self,
        path: str | Path,
        sensor_names: tuple[str, ...] | list[str],
        emg_rate_hz: Fraction | str = EMG_RATE_HZ,
        imu_rate_hz: Fraction | str = IMU_RATE_HZ,
        metadata: dict | None = None,
        key: str = "recording",
        flush_interval_frames: int = 74,
        max_fill_s: float = 60.0,
        layout: Layout | None = None,
    ) -> None:
        """``layout``: the frames' layout (default: Trigno-style, every sensor with sEMG, acc and gyro
        at the two rates given)."""
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.sensor_names = tuple(sensor_names)
        if not self.sensor_names or len(set(self.sensor_names)) != len(self.sensor_names):
            raise RecordingError(f"{self.path}: sensor names must be non-empty and unique, got {list(sensor_names)}")
        self.emg_rate_hz = parse_rate(emg_rate_hz)
        self.imu_rate_hz = parse_rate(imu_rate_hz)
        if layout is None:
            layout = Layout(self.sensor_names, self.sensor_names, MODALITIES, self.emg_rate_hz, self.imu_rate_hz)
        if (layout.sensor_names, layout.emg_rate_hz, layout.imu_rate_hz) != (self.sensor_names, self.emg_rate_hz,
                                                                              self.imu_rate_hz):
            raise RecordingError(f"{self.path}: the layout ({layout.describe()}) disagrees with the sensor names "
                                 "and rates given")
        self.layout = layout
        self.emg_per_frame = layout.emg_samples_per_frame
        self.imu_per_frame = layout.imu_samples_per_frame
        self.metadata = dict(metadata or {})
        metadata_to_json(self.metadata, str(self.path))  # fail now, not at close
        self.key = check_key(key)
        if flush_interval_frames < 1:
            raise ValueError(f"flush_interval_frames = {flush_interval_frames}: must be >= 1")
        self.flush_interval_frames = flush_interval_frames
        self.max_fill_frames = int(max_fill_s * float(self.emg_rate_hz) / self.emg_per_frame)
        for existing in (self.path, self.partial_path):
            if existing.exists():
                raise RecordingError(f"{existing}: already exists; recordings are never overwritten "
                                     "(choose another name, or recover/remove the old file)")
        self._handle: h5py.File | None = None
        self._group: h5py.Group | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_annotations: list[Annotation] = []
        self._pending_gaps: list[Gap] = []
        self.emg_first_index: int | None = None
        self.imu_first_index: int | None = None
        self._next_emg_index = 0
        self._next_imu_index = 0
        self.frames_written = 0
        self.frames_filled = 0
        self.closed = False

    # -- appending ---------------------------------------------------------------------------
    def append_frame(self, frame: Frame) -> None:
        """Append one frame. A jump forward in the indices is filled with NaN and recorded as a gap;
        a frame that goes back in time, or a jump longer than ``max_fill_s``, raises RecordingError
        (start a new recording after a long outage)."""
        self._check_open()
        try:
            frame.validate(self.layout)
        except ValueError as error:
            raise RecordingError(f"{self.path}: {error}") from None
        if self._handle is None:
            self._create(frame.emg_first_index, frame.imu_first_index)
        emg_jump = frame.emg_first_index - self._next_emg_index
        imu_jump = frame.imu_first_index - self._next_imu_index
        if emg_jump < 0 or imu_jump < 0:
            raise RecordingError(f"{self.path}: frame starts at sEMG sample {frame.emg_first_index} / IMU "
                                 f"{frame.imu_first_index} but the next expected is {self._next_emg_index} / "
                                 f"{self._next_imu_index} (duplicate or out-of-order frame)")
        if emg_jump or imu_jump:
            missing_frames, remainder = divmod(emg_jump, self.emg_per_frame)
            if remainder or imu_jump != missing_frames * self.imu_per_frame:
                raise RecordingError(f"{self.path}: sample indices jump by {emg_jump} sEMG / {imu_jump} IMU samples,"
                                     " which is not a whole number of frames on both clocks")
            if missing_frames > self.max_fill_frames:
                raise RecordingError(f"{self.path}: {missing_frames} frames are missing (more than max_fill_s); "
                                     "close this recording and start a new one")
            self._fill(missing_frames)
        self._pending.append((frame.emg, frame.acc, frame.gyro))
        self._next_emg_index += self.emg_per_frame
        self._next_imu_index += self.imu_per_frame
        if len(self._pending) >= self.flush_interval_frames:
            self.flush()

    def _fill(self, missing_frames: int) -> None:
        emg = np.full((missing_frames * self.emg_per_frame, len(self.sensor_names)), np.nan, dtype=np.float32)
        imu = {name: np.full((missing_frames * self.imu_per_frame, self.layout.channel_count(name)), np.nan,
                             dtype=np.float32) for name in ("acc", "gyro")}
        self._pending.append((emg, imu["acc"], imu["gyro"]))
        imu_rows = missing_frames * self.imu_per_frame
        self._pending_gaps.append(Gap(ALL_SENSORS, self._next_emg_index, self._next_emg_index + emg.shape[0],
                                      self._next_imu_index, self._next_imu_index + imu_rows))
        self._next_emg_index += emg.shape[0]
        self._next_imu_index += imu_rows
        self.frames_filled += missing_frames

    def add_annotation(self, label: str, start_index: int, end_index: int) -> None:
        """A labelled span in sEMG sample indices (end exclusive); written with the next flush."""
        self._check_open()
        if not isinstance(label, str) or not label:
            raise RecordingError(f"{self.path}: annotation label must be a non-empty string, got {label!r}")
        if not 0 <= start_index < end_index:
            raise RecordingError(f"{self.path}: annotation [{start_index}, {end_index}) must have 0 <= start < end")
        self._pending_annotations.append(Annotation(label, int(start_index), int(end_index)))

    def add_gap(self, gap: Gap) -> None:
        self._check_open()
        if not (gap.sensor == ALL_SENSORS or 0 <= gap.sensor < len(self.sensor_names)):
            raise RecordingError(f"{self.path}: gap names sensor {gap.sensor}; must be -1 or 0..{len(self.sensor_names) - 1}")
        self._pending_gaps.append(gap)

    # -- file handling -----------------------------------------------------------------------
    def _create(self, emg_first_index: int, imu_first_index: int) -> None:
        self.emg_first_index = self._next_emg_index = int(emg_first_index)
        self.imu_first_index = self._next_imu_index = int(imu_first_index)
        sensors = len(self.sensor_names)
        handle = h5py.File(self.partial_path, "w-", libver=LIBVER)
        try:
            handle.attrs["format"] = FORMAT_NAME
            handle.attrs["format_version"] = FORMAT_VERSION
            group = handle.create_group("recordings").create_group(self.key)
            group.attrs["emg_rate_hz"] = str(self.emg_rate_hz)
            group.attrs["imu_rate_hz"] = str(self.imu_rate_hz)
            group.attrs["sensor_names"] = json.dumps(list(self.sensor_names))
            group.attrs["emg_first_index"] = self.emg_first_index
            group.attrs["imu_first_index"] = self.imu_first_index
            group.attrs["metadata"] = metadata_to_json(self.metadata, str(self.path))
            group.attrs["complete"] = False
            write_layout_attributes(group, self.layout.imu_names if self.layout.imu_names != self.sensor_names else (),
                                    self.layout.emg_unit)
            emg_chunk = self.emg_per_frame * self.flush_interval_frames
            imu_chunk = max(1, self.imu_per_frame * self.flush_interval_frames)
            group.create_dataset("emg", shape=(0, sensors), maxshape=(None, sensors), dtype=np.float32,
                                 chunks=(emg_chunk, sensors))
            for name in ("acc", "gyro"):
                columns = self.layout.channel_count(name)
                if columns == 0:  # not sent by this device: an empty dataset, never appended to
                    group.create_dataset(name, shape=(0, 0), dtype=np.float32)
                    continue
                group.create_dataset(name, shape=(0, columns), maxshape=(None, columns),
                                     dtype=np.float32, chunks=(imu_chunk, columns))
            group.create_dataset("annotations", shape=(0,), maxshape=(None,), dtype=ANNOTATION_DTYPE, chunks=(64,))
            group.create_dataset("gaps", shape=(0,), maxshape=(None,), dtype=GAP_DTYPE, chunks=(64,))
            # From here on the file is append-only and consistent on disk after every flush.
            handle.swmr_mode = True
        except BaseException:
            handle.close()
            self.partial_path.unlink(missing_ok=True)
            raise
        self._handle, self._group = handle, group

    @staticmethod
    def _append(dataset: h5py.Dataset, rows: np.ndarray) -> None:
        if rows.shape[0] == 0 or (rows.ndim == 2 and rows.shape[1] == 0):
            return
        start = dataset.shape[0]
        dataset.resize(start + rows.shape[0], axis=0)
        dataset[start:] = rows

    def flush(self) -> None:
        """Write everything pending and flush it to disk (called every flush_interval_frames)."""
        self._check_open()
        if self._group is None:
            return
        if self._pending:
            self._check_disk_space(sum(array.nbytes for item in self._pending for array in item))
            for position, name in enumerate(("emg", "acc", "gyro")):
                self._append(self._group[name], np.concatenate([item[position] for item in self._pending]))
            self.frames_written += sum(item[0].shape[0] for item in self._pending) // self.emg_per_frame
            self._pending.clear()
        self._append(self._group["annotations"], annotations_to_array(self._pending_annotations))
        self._append(self._group["gaps"], gaps_to_array(self._pending_gaps))
        self._pending_annotations.clear()
        self._pending_gaps.clear()
        self._handle.flush()

    def _check_disk_space(self, pending_bytes: int) -> None:
        free = shutil.disk_usage(self.partial_path.parent).free
        size_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if size_limit != resource.RLIM_INFINITY:  # EFBIG past it crashes HDF5 the same way as ENOSPC
            free = min(free, size_limit - self.partial_path.stat().st_size)
        if free >= 2 * pending_bytes + DISK_MARGIN_BYTES:
            return
        # Abandon without writing: the file stays as of the last flush (readable, complete=False).
        flushed = self.frames_written
        self._pending.clear()
        self._handle.close()
        self._handle = self._group = None
        self.closed = True
        raise DiskFullError(f"{self.partial_path}: only {free} bytes free (disk space or file-size limit); "
                            f"stopped writing to keep the file intact. Its first {flushed} frames are readable "
                            "(complete=False); free some space and start a new recording")

    def close(self) -> Path:
        """Flush, mark complete, fsync and move ``.partial`` to the final path. Returns that path."""
        if self.closed:
            return self.path
        if self._handle is None:
            self._create(0, 0)  # an empty recording is still a valid file
        self.flush()
        self._handle.close()
        self._handle = self._group = None
        # Attributes cannot change in SWMR mode: reopen normally to finish.
        with h5py.File(self.partial_path, "r+") as handle:
            group = handle["recordings"][self.key]
            group.attrs["metadata"] = metadata_to_json(self.metadata, str(self.path))
            group.attrs["complete"] = True
        fsync_file(self.partial_path)
        os.replace(self.partial_path, self.path)
        fsync_directory(self.path.parent)
        self.closed = True
        return self.path

    def _check_open(self) -> None:
        if self.closed:
            raise RecordingError(f"{self.path}: writer is closed")

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exception_type, exception, traceback) -> None:
        if exception_type is None:
            self.close()
        elif self._handle is not None:
            # Leave the .partial file (readable, complete=False) for inspection; do not pretend it finished.
            self.flush()
            self._handle.close()
            self._handle = None
            self.closed = True
