"""Recordings: the in-memory ``Recording`` and its on-disk HDF5 format (spec in docs/DATA.md).

Runtime dependencies only (numpy, h5py): stream-record and replay on the Pi use this package.
"""

from stream.recording.hdf5 import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RecordingFile,
    list_recordings,
    open_recording_file,
    read_recording,
    write_recording,
    write_recordings,
)
from stream.recording.model import ALL_SENSORS, Annotation, Gap, Recording, RecordingError
from stream.recording.writer import PARTIAL_SUFFIX, RecordingWriter

__all__ = [
    "ALL_SENSORS",
    "Annotation",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Gap",
    "PARTIAL_SUFFIX",
    "Recording",
    "RecordingError",
    "RecordingFile",
    "RecordingWriter",
    "list_recordings",
    "open_recording_file",
    "read_recording",
    "write_recording",
    "write_recordings",
]
