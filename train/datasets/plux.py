"""Read OpenSignals HDF5 files of PLUX devices (biosignalsplux, bioPLUX) as EMG in mV.

The layout, as read from real files (OpenSignals' export of the three biosignalsnotebooks samples):

    /                         attrs: md5TXT
    /<MAC address>/           one group per device; attrs: "sampling rate" (int, Hz),
                              "resolution" (int array, bits), "channels" (int array), "device"
                              ("channeller" = biosignalsplux, "bioplux"), "macaddress", "date",
                              "time", "nsamples", "duration", "firmware version", ...
    /<MAC>/raw/channel_<k>    (N, 1) unsigned ADC counts; attrs: label ("PORT3_CHN1", "CH2"),
                              sensor ("EMG")
    /<MAC>/raw/nSeq           (N, 1) uint16 sequence counter
    /<MAC>/digital/digital_1  (N, 1) digital input (ignored here)
    /<MAC>/events/..., /<MAC>/support/level_10|100|1000/...  OpenSignals' display decimations (ignored)

Counts become mV with PLUX's EMG sensor transfer function, mV = (ADC / 2**n - 0.5) * VCC / G * 1000
with VCC = 3 V and gain G = 1000, so the full scale is +-1.5 mV. A channel whose "sensor" attribute
says something other than EMG is refused (its transfer function differs).

``nSeq`` counts up by one per sample, but this export stops it at 65535 and repeats 65535 from then on
(both long files): that is not lost samples. Gaps are therefore looked for only while nSeq still
increments; past that point the counter cannot say anything, and ``sequence_checked_samples`` tells
how far the check went. A counter that wraps 65535 -> 0 is also accepted as continuous.

Each file may have a sidecar ``<stem>_info.json`` (biosignalsnotebooks' own summary): its
"Observations" becomes ``description`` and the muscle named in it ``muscle``. Where it disagrees with
the HDF5 file (emg_fatigue_info.json says 16 bits; the file says 12 and its counts span 0..4095) the
file wins and the disagreement is listed in ``notes``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from train.datasets.saturation import saturated_samples

PLUX_VCC_V = 3.0
PLUX_EMG_GAIN = 1000.0
SEQUENCE_LIMIT = 65535
MUSCLE_IN_TEXT = re.compile(r"\b(?:of|from)\s+(?:the\s+)?(?P<muscle>[A-Z][A-Za-z ]*?)(?=\s+muscle\b|\s+for\b|\s*\(|\s*$)")


class PluxFileError(ValueError):
    """A file this reader cannot convert; the message names the file and the problem."""


@dataclass
class PluxRecording:
    path: str
    device: str  # the device attribute: "channeller" (biosignalsplux) or "bioplux"
    mac_address: str
    start: str  # "date time" as the file writes it
    rate_hz: Fraction
    resolution_bits: int
    channel_names: tuple[str, ...]  # dataset names, "channel_3"
    channel_labels: tuple[str, ...]  # the channel's label attribute, "PORT3_CHN1"
    counts: np.ndarray = field(repr=False)  # (N, C) int64 raw ADC counts
    signal_mv: np.ndarray = field(repr=False)  # (N, C) float64 mV
    saturated: np.ndarray = field(repr=False)  # (N, C) bool, see train.datasets.saturation
    sequence_gaps: list[tuple[int, int]]  # (sample index after the gap, samples missing)
    sequence_checked_samples: int  # nSeq was usable for gap detection over samples [0, this)
    description: str | None = None
    muscle: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.counts) / float(self.rate_hz)


def counts_to_mv(counts, resolution_bits: int) -> np.ndarray:
    """PLUX EMG transfer function: (ADC / 2**n - 0.5) * 3 V / 1000 * 1000 mV/V (full scale +-1.5 mV)."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts / 2.0 ** resolution_bits - 0.5) * PLUX_VCC_V / PLUX_EMG_GAIN * 1000.0


def sequence_gaps(sequence) -> tuple[list[tuple[int, int]], int]:
    """Gaps in an nSeq counter, and how many leading samples could be checked.

    The check stops where the counter sticks at 65535 (this export's artefact); a step of 1, or a wrap
    65535 -> 0, is continuous; any other step is a gap of (step - 1) mod 65536 samples.
    """
    sequence = np.asarray(sequence, dtype=np.int64).reshape(-1)
    if len(sequence) < 2:
        return [], len(sequence)
    stuck = np.flatnonzero((sequence[1:] == SEQUENCE_LIMIT) & (sequence[:-1] == SEQUENCE_LIMIT))
    checked = int(stuck[0]) + 1 if len(stuck) else len(sequence)
    steps = np.diff(sequence[:checked]) % (SEQUENCE_LIMIT + 1)
    where = np.flatnonzero(steps != 1)
    return [(int(index) + 1, int((steps[index] - 1) % (SEQUENCE_LIMIT + 1))) for index in where], checked


def _read_info(path: Path) -> dict | None:
    info_path = path.with_name(path.stem + "_info.json")
    if not info_path.is_file():
        return None
    try:
        return json.loads(info_path.read_text())
    except json.JSONDecodeError as error:
        raise PluxFileError(f"{info_path}: not valid JSON ({error})") from None


def _attribute(group, name: str, where: str):
    if name not in group.attrs:
        raise PluxFileError(f"{where}: device group {group.name} has no {name!r} attribute")
    return group.attrs[name]


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_plux(path, device: str | None = None) -> PluxRecording:
    """One device's EMG channels from an OpenSignals .h5 file (``device``: the MAC group, needed only
    when the file holds more than one device)."""
    import h5py

    path = Path(path)
    where = str(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise PluxFileError(f"{where}: not an HDF5 file h5py can open ({error})") from None
    with handle:
        devices = [name for name, item in handle.items() if isinstance(item, h5py.Group) and "raw" in item]
        if not devices:
            raise PluxFileError(f"{where}: no device group with a 'raw' subgroup (an OpenSignals file has "
                                "/<MAC address>/raw/channel_<k>)")
        if device is None:
            if len(devices) > 1:
                raise PluxFileError(f"{where}: {len(devices)} devices ({', '.join(devices)}); pass device=")
            device = devices[0]
        elif device not in devices:
            raise PluxFileError(f"{where}: no device {device!r}; the file has {', '.join(devices)}")
        group = handle[device]
        raw = group["raw"]
        rate_value = _attribute(group, "sampling rate", where)
        rate = Fraction(float(rate_value)).limit_denominator(1000)
        if rate <= 0:
            raise PluxFileError(f"{where}: sampling rate {rate_value} is not positive")
        resolutions = {int(bits) for bits in np.atleast_1d(_attribute(group, "resolution", where))}
        if len(resolutions) != 1:
            raise PluxFileError(f"{where}: channels with different resolutions {sorted(resolutions)} are not "
                                "supported; read them as separate recordings")
        bits = resolutions.pop()
        names = sorted((name for name in raw if re.fullmatch(r"channel_\d+", name)),
                       key=lambda name: int(name.split("_")[1]))
        if not names:
            raise PluxFileError(f"{where}: {raw.name} has no channel_<k> datasets")
        columns, labels = [], []
        for name in names:
            dataset = raw[name]
            sensor = _as_text(dataset.attrs.get("sensor", "EMG"))
            if sensor.upper() != "EMG":
                raise PluxFileError(f"{where}: {dataset.name} is a {sensor!r} sensor; only EMG channels have "
                                    "the transfer function this reader applies")
            if dataset.ndim not in (1, 2) or (dataset.ndim == 2 and dataset.shape[1] != 1):
                raise PluxFileError(f"{where}: {dataset.name} has shape {dataset.shape}, expected (N, 1)")
            columns.append(np.asarray(dataset[()], dtype=np.int64).reshape(-1))
            labels.append(_as_text(dataset.attrs.get("label", name)))
        if len({len(column) for column in columns}) != 1:
            raise PluxFileError(f"{where}: channels have different lengths {[len(c) for c in columns]}")
        counts = np.stack(columns, axis=1)
        top = 2 ** bits - 1
        if counts.size and (counts.min() < 0 or counts.max() > top):
            raise PluxFileError(f"{where}: counts span {counts.min()}..{counts.max()}, outside 0..{top} of the "
                                f"{bits}-bit resolution the file declares")
        if "nSeq" in raw:
            gaps, checked = sequence_gaps(raw["nSeq"][()])
            if len(raw["nSeq"]) != len(counts):
                raise PluxFileError(f"{where}: nSeq has {len(raw['nSeq'])} samples, the channels {len(counts)}")
        else:
            gaps, checked = [], 0
        notes = []
        if checked < len(counts):
            notes.append(f"nSeq stops at {SEQUENCE_LIMIT} after sample {checked}: gaps checked over the first "
                         f"{checked} of {len(counts)} samples only")
        declared = group.attrs.get("nsamples")
        if declared is not None and int(declared) != len(counts):
            notes.append(f"nsamples attribute says {int(declared)}, the channels hold {len(counts)}")
        recording = PluxRecording(
            path=where, device=_as_text(group.attrs.get("device", "")), mac_address=device,
            start=f"{_as_text(group.attrs.get('date', ''))} {_as_text(group.attrs.get('time', ''))}".strip(),
            rate_hz=rate, resolution_bits=bits, channel_names=tuple(names), channel_labels=tuple(labels),
            counts=counts, signal_mv=counts_to_mv(counts, bits), saturated=saturated_samples(counts, bits),
            sequence_gaps=gaps, sequence_checked_samples=checked, notes=notes)
    info = _read_info(path)
    if info is not None:
        _apply_info(recording, info)
    return recording


def _apply_info(recording: PluxRecording, info: dict) -> None:
    observations = info.get("Observations")
    if observations:
        recording.description = str(observations)
        match = MUSCLE_IN_TEXT.search(recording.description)
        recording.muscle = match.group("muscle").strip() if match else None
    bits_text = re.match(r"\s*(\d+)", str(info.get("Resolutions", "")))
    if bits_text and int(bits_text.group(1)) != recording.resolution_bits:
        recording.notes.append(f"info json says {bits_text.group(1)} bits, the HDF5 file {recording.resolution_bits} "
                               f"(its counts span {recording.counts.min()}..{recording.counts.max()}); using the file")
    rate_text = re.match(r"\s*(\d+(?:\.\d+)?)", str(info.get("Sample Rate", "")))
    if rate_text and Fraction(rate_text.group(1)) != recording.rate_hz:
        recording.notes.append(f"info json says {rate_text.group(1)} Hz, the HDF5 file {recording.rate_hz} Hz; using the file")


# --- into our recording format ------------------------------------------------------------------

PLUX_PROFILE = "plux"
PLUX_SENSOR_NAME = "emg"  # the plux profile's one sEMG sensor


def _profile_sensors() -> dict:
    from stream.wire.layout import profile_defaults

    return profile_defaults(PLUX_PROFILE)["sensors"]


def to_recording(plux: PluxRecording, channel: int | None = None):
    """One EMG channel of a PLUX recording as a ``Recording`` in the ``plux`` layout: sEMG in mV at the
    file's rate (the profile's 1000 Hz for these devices), sensor "emg", no IMU (zero-column acc and
    gyro), IMU clock 50 Hz so that frames are 20 ms.

    Saturated ADC samples are flagged, never filtered into a fake envelope: they become NaN and each
    run of them is a ``Gap`` on sensor 0, so the DSP marks every model sample they reach invalid.
    Samples the nSeq counter says were lost are inserted as NaN rows with a ``Gap`` on every sensor
    (``ALL_SENSORS``), so that later samples keep their times. Gaps of a layout without an IMU have an
    empty IMU span (``imu_start == imu_end``). ``channel`` picks the column of a multi-channel file
    (None: the file must have exactly one).
    """
    from stream.recording.model import ALL_SENSORS, Gap, Recording
    from train.datasets.saturation import default_margin_counts, saturated_runs

    where = plux.path
    channels = plux.counts.shape[1]
    if channel is None:
        if channels != 1:
            raise PluxFileError(f"{where}: {channels} EMG channels ({', '.join(plux.channel_names)}); the plux "
                                f"layout has one: pass channel= (0 .. {channels - 1})")
        channel = 0
    if not 0 <= channel < channels:
        raise PluxFileError(f"{where}: channel {channel} does not exist; the file has channels 0 .. {channels - 1}")
    sensors = _profile_sensors()
    imu_rate = Fraction(sensors["imu_rate_hz"])
    emg_rate = Fraction(plux.rate_hz)
    if (emg_rate / imu_rate).denominator != 1:
        raise PluxFileError(f"{where}: {emg_rate} Hz is not a whole number of samples per {1000 / imu_rate} ms frame "
                            f"of the plux layout (IMU clock {imu_rate} Hz)")
    signal = plux.signal_mv[:, channel].astype(np.float32)
    saturated = plux.saturated[:, channel].copy()
    # Lost samples (nSeq gaps) become NaN rows: row i of the file moves to index i + (samples lost before it).
    shift = np.zeros(len(signal), dtype=np.int64)
    for after, missing in plux.sequence_gaps:
        shift[after:] += missing
    total = len(signal) + int(shift[-1]) if len(signal) else 0
    emg = np.full((total, 1), np.nan, dtype=np.float32)
    rows = np.arange(len(signal)) + shift
    emg[rows, 0] = np.where(saturated, np.float32(np.nan), signal)

    def imu_index(emg_index: int) -> int:
        return int(emg_index * imu_rate // emg_rate)

    gaps = []
    for after, missing in plux.sequence_gaps:
        start = after + int(shift[after]) - missing
        gaps.append(Gap(ALL_SENSORS, start, start + missing, imu_index(start), imu_index(start)))
    flagged = np.zeros(total, dtype=bool)
    flagged[rows] = saturated
    flagged_runs = saturated_runs(flagged)  # on the new rows: a run never spans lost samples
    for start, end in flagged_runs:
        gaps.append(Gap(0, start, end, imu_index(start), imu_index(start)))
    gaps.sort(key=lambda gap: (gap.emg_start, gap.sensor))
    metadata = {
        "kind": "continuous",
        "source": "PLUX OpenSignals HDF5 (train.datasets.plux)",
        "file": Path(where).name,
        "device": plux.device,
        "mac_address": plux.mac_address,
        "start": plux.start,
        "channel": plux.channel_names[channel],
        "channel_label": plux.channel_labels[channel],
        "muscle": plux.muscle,
        "description": plux.description,
        "resolution_bits": plux.resolution_bits,
        "full_scale_mv": PLUX_VCC_V / PLUX_EMG_GAIN * 1000.0 / 2,
        "flagged": {
            "saturated_samples": int(saturated.sum()),
            "saturated_runs": len(flagged_runs),
            "saturation_margin_counts": default_margin_counts(plux.resolution_bits),
            "how": "samples within the margin of either ADC rail are NaN and listed as gaps on sensor 0",
            "lost_samples": int(sum(missing for _, missing in plux.sequence_gaps)),
            "sequence_checked_samples": plux.sequence_checked_samples,
        },
        "notes": list(plux.notes),
    }
    recording = Recording(emg=emg, acc=np.zeros((0, 0), np.float32), gyro=np.zeros((0, 0), np.float32),
                          emg_rate_hz=emg_rate, imu_rate_hz=imu_rate, sensor_names=(PLUX_SENSOR_NAME,),
                          metadata=metadata, gaps=gaps, emg_unit=sensors["emg_unit"])
    recording.validate(where)
    return recording


def write_plux_recordings(source_dir, out_dir) -> list[Path]:
    """Every OpenSignals ``.h5`` file of ``source_dir`` (sorted by name) as ``out_dir/<stem>.h5`` in our
    recording format (``stream.recording.write_recording``, key "recording"). Refuses to write into
    ``source_dir`` itself (the outputs would replace the files they come from)."""
    from stream.recording import write_recording

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    files = sorted(path for path in source_dir.glob("*.h5") if path.is_file())
    if not files:
        raise PluxFileError(f"{source_dir}: no .h5 files (OpenSignals exports) to convert")
    if out_dir.resolve() == source_dir.resolve():
        raise PluxFileError(f"{out_dir}: is the source folder; choose another out_dir so the PLUX files stay as they are")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_recording(out_dir / f"{path.stem}.h5", to_recording(read_plux(path))) for path in files]
