"""Read the lis-myo data set: Italian Sign Language letters from a Myo armband (sEMG + IMU).

Pacifici, Sernani, Falcionelli, Tomassini & Dragoni, "A surface electromyography and inertial
measurement unit dataset for the Italian Sign Language alphabet", Data in Brief 33 (2020) 106455,
doi:10.1016/j.dib.2020.106455. Free for research and education; cite the paper; do not redistribute.

``read_lis_myo(source)`` takes the dataset repository's own layout, a folder of ``<letter>/<guid>.json``
(or a folder holding ``Dataset/`` or ``Dataset.tar.xz``), or the ``.tar.xz`` itself, read in place with
``tarfile``. Each JSON holds ``timestamp`` ("dd/mm/yy/HH:MM:SS"), ``duration`` (2000 ms), ``emg``
{``frequency`` 200, ``data`` 400 x 8 signed 8-bit counts} and ``imu`` {``frequency`` 200, ``data`` 400
records of ``gyroscope`` [3] deg/s, ``acceleration`` [3] g, ``orientation`` [4] unit quaternion}
(the data set's description calls the last one ``rotation``; both are accepted).

The IMU is not 200 Hz (measured on the 702 samples of our copy). The Myo's IMU runs at 50 Hz; about
a quarter of the records (25.2%; 22.8-29.0% per file) repeat the previous record exactly, runs of
two almost always (139,673 single records, 69,837 doubled, 483 tripled), so a file holds 284-309
distinct IMU samples. Each distinct sample is one 50 Hz step: the rotation between consecutive
distinct orientation quaternions divided by the gyroscope rate gives 21 ms (median 22 ms) per step,
the same after a repeat as without one (so a repeat is a copy, not a held sample that took time),
and the direction of gravity in the accelerometer gives 22 ms too. Taking every 4th record instead
gives 62 ms steps (three samples, unevenly spaced), and keeping all 400 records at 200 Hz would claim
a 2 s window for what is about 6 s of movement. So by default (``imu="native"``) the repeats are
dropped and the IMU is returned at 50 Hz, ``n`` = 284-309 samples; ``imu="declared"`` returns the 400
records at the file's rate as they are. How the ~6 s of IMU line up with the 2 s of sEMG is not in
the files (correlating the sEMG envelope with the gyroscope magnitude puts the sEMG window at about
IMU samples 40-140 for most letters). The sEMG itself has copies too: 6% of rows repeat the previous
row exactly, at any amplitude; they are kept (400 rows at 200 Hz, as declared).

Sessions: the day and the sitting, from the timestamps. A new sitting starts after a pause longer than
``SITTING_GAP`` (10 minutes; within a sitting the longest pause between consecutive samples is 107 s); see
``sessions_per_letter``.
"""

from __future__ import annotations

import json
import math
import re
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np

EMG_CHANNELS = 8
MYO_IMU_RATE = Fraction(50)
SITTING_GAP = timedelta(minutes=10)
TIMESTAMP_FORMAT = "%d/%m/%y/%H:%M:%S"
GYRO_LIMIT_DPS = 2000.0  # the Myo's gyroscope range
ACC_LIMIT_G = 16.0  # the Myo's accelerometer range
QUATERNION_NORM_TOLERANCE = 0.01
MEMBER = re.compile(r"(?:^|/)(?P<letter>[A-Za-z])/(?P<guid>[^/]+)\.json$")
IMU_MODES = ("native", "declared")


class LisMyoError(ValueError):
    """A file or folder this reader cannot use; the message names it and the problem."""


@dataclass
class LisMyoSample:
    letter: str
    guid: str
    timestamp: datetime
    day: date
    session: str  # "2020-06-27/2": the day and the sitting within it, from 1
    emg: np.ndarray = field(repr=False)  # (400, 8) float32 counts, -128..127
    acc: np.ndarray = field(repr=False)  # (n, 3) float64 g
    gyro: np.ndarray = field(repr=False)  # (n, 3) float64 deg/s
    orientation: np.ndarray = field(repr=False)  # (n, 4) float64 unit quaternion, in the file's component order
    emg_rate_hz: Fraction
    imu_rate_hz: Fraction
    imu_repeats: int  # records that repeated the previous one (dropped when imu="native")
    source: str  # the file, or archive!member


def _fail(where: str, problem: str):
    raise LisMyoError(f"{where}: {problem}")


def _matrix(values, columns: int, name: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(where, f"{name} is not a rectangular table of numbers")
    if array.ndim != 2 or array.shape[1] != columns:
        _fail(where, f"{name} has shape {array.shape}, expected (rows, {columns})")
    if not np.all(np.isfinite(array)):
        _fail(where, f"{name} has non-finite values")
    return array


def _get(mapping, key: str, where: str, inside: str = ""):
    if not isinstance(mapping, dict) or key not in mapping:
        _fail(where, f"missing key {inside + key!r}")
    return mapping[key]


def parse_sample(text: str | bytes, letter: str, guid: str, where: str, imu: str = "native") -> LisMyoSample:
    """One sample from the text of its JSON file (session left empty; ``read_lis_myo`` sets it)."""
    if imu not in IMU_MODES:
        raise ValueError(f"imu must be one of {IMU_MODES}, got {imu!r}")
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _fail(where, f"not valid JSON ({error})")
    stamp_text = _get(record, "timestamp", where)
    try:
        stamp = datetime.strptime(str(stamp_text), TIMESTAMP_FORMAT)
    except ValueError:
        _fail(where, f"timestamp {stamp_text!r} is not dd/mm/yy/HH:MM:SS")
    duration = _get(record, "duration", where)
    if not isinstance(duration, (int, float)) or not duration > 0:
        _fail(where, f"duration {duration!r} is not a positive number of milliseconds")
    emg_part, imu_part = _get(record, "emg", where), _get(record, "imu", where)
    rates = {}
    for name, part in (("emg", emg_part), ("imu", imu_part)):
        frequency = _get(part, "frequency", where, f"{name}.")
        if not isinstance(frequency, (int, float)) or not math.isfinite(frequency) or frequency <= 0:
            _fail(where, f"{name}.frequency {frequency!r} is not a positive rate in Hz")
        rates[name] = Fraction(frequency).limit_denominator(1000)
    emg_rows = rates["emg"] * Fraction(duration) / 1000
    emg = _matrix(_get(emg_part, "data", where, "emg."), EMG_CHANNELS, "emg.data", where)
    if len(emg) != emg_rows:
        _fail(where, f"emg.data has {len(emg)} rows, but {rates['emg']} Hz x {duration} ms is {emg_rows}")
    if emg.min() < -128 or emg.max() > 127 or not np.array_equal(emg, np.round(emg)):
        _fail(where, f"emg.data must be signed 8-bit counts (whole numbers -128..127), found {emg.min():g}..{emg.max():g}")
    records = _get(imu_part, "data", where, "imu.")
    imu_rows = rates["imu"] * Fraction(duration) / 1000
    if not isinstance(records, list) or len(records) != imu_rows:
        count = len(records) if isinstance(records, list) else type(records).__name__
        _fail(where, f"imu.data has {count} records, but {rates['imu']} Hz x {duration} ms is {imu_rows}")
    fields = {}
    for name, key, width in (("gyro", "gyroscope", 3), ("acc", "acceleration", 3), ("orientation", "orientation", 4)):
        try:
            if key == "orientation" and records and "orientation" not in records[0] and "rotation" in records[0]:
                key = "rotation"
            values = [item[key] for item in records]
        except (KeyError, TypeError):
            _fail(where, f"an imu.data record has no {key!r}")
        fields[name] = _matrix(values, width, f"imu.data[*].{key}", where)
    if np.abs(fields["gyro"]).max() > GYRO_LIMIT_DPS:
        _fail(where, f"gyroscope reaches {np.abs(fields['gyro']).max():g} deg/s, beyond the Myo's +-{GYRO_LIMIT_DPS:g}")
    if np.abs(fields["acc"]).max() > ACC_LIMIT_G:
        _fail(where, f"acceleration reaches {np.abs(fields['acc']).max():g} g, beyond the Myo's +-{ACC_LIMIT_G:g}")
    norm_error = np.abs(np.linalg.norm(fields["orientation"], axis=1) - 1).max()
    if norm_error > QUATERNION_NORM_TOLERANCE:
        _fail(where, f"orientation is not a unit quaternion (norm off by {norm_error:.3g})")
    stacked = np.hstack([fields["gyro"], fields["acc"], fields["orientation"]])
    repeats = np.concatenate(([False], np.all(stacked[1:] == stacked[:-1], axis=1)))
    keep = ~repeats if imu == "native" else np.ones(len(stacked), dtype=bool)
    return LisMyoSample(
        letter=letter.upper(), guid=guid, timestamp=stamp, day=stamp.date(), session="",
        emg=emg.astype(np.float32), acc=fields["acc"][keep], gyro=fields["gyro"][keep],
        orientation=fields["orientation"][keep], emg_rate_hz=rates["emg"],
        imu_rate_hz=MYO_IMU_RATE if imu == "native" else rates["imu"], imu_repeats=int(repeats.sum()),
        source=where)


def _archive_members(path: Path):
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as error:
        _fail(str(path), f"not a tar archive tarfile can read ({error})")
    with archive:
        for member in archive:
            match = MEMBER.search(member.name)
            if member.isfile() and match:
                handle = archive.extractfile(member)
                yield match["letter"], match["guid"], f"{path}!{member.name}", handle.read()


def _folder_members(folder: Path):
    for path in sorted(folder.glob("*/*.json")):
        match = MEMBER.search(path.as_posix())
        if match:
            yield match["letter"], match["guid"], str(path), path.read_bytes()


def _members(source: Path):
    if source.is_file():
        return _archive_members(source)
    if not source.is_dir():
        _fail(str(source), "no such file or folder")
    if any(source.glob("*/*.json")):
        return _folder_members(source)
    if (source / "Dataset").is_dir():
        return _folder_members(source / "Dataset")
    archives = sorted(source.glob("*.tar*"))
    if len(archives) == 1:
        return _archive_members(archives[0])
    _fail(str(source), "no <letter>/<guid>.json files, no Dataset/ folder and no single .tar.xz archive")


def assign_sessions(samples: list[LisMyoSample], gap: timedelta = SITTING_GAP) -> list[LisMyoSample]:
    """The same samples with ``session`` set: a new sitting after a pause over ``gap`` or a new day."""
    order = sorted(range(len(samples)), key=lambda index: samples[index].timestamp)
    sessions = [""] * len(samples)
    previous, sitting = None, 0
    for index in order:
        stamp = samples[index].timestamp
        if previous is None or stamp.date() != previous.date():
            sitting = 1
        elif stamp - previous > gap:
            sitting += 1
        sessions[index] = f"{stamp.date().isoformat()}/{sitting}"
        previous = stamp
    return [replace(sample, session=session) for sample, session in zip(samples, sessions)]


def read_lis_myo(source, imu: str = "native") -> list[LisMyoSample]:
    """Every sample under ``source`` (see the module docstring), sorted by letter then timestamp."""
    if imu not in IMU_MODES:
        raise ValueError(f"imu must be one of {IMU_MODES}, got {imu!r}")
    source = Path(source)
    samples = [parse_sample(text, letter, guid, where, imu) for letter, guid, where, text in _members(source)]
    if not samples:
        _fail(str(source), "holds no <letter>/<guid>.json samples")
    samples = assign_sessions(samples)
    return sorted(samples, key=lambda sample: (sample.letter, sample.timestamp, sample.guid))


def sessions_per_letter(samples: list[LisMyoSample]) -> dict[str, dict[str, int]]:
    """{letter: {session: number of samples}}."""
    table: dict[str, Counter] = defaultdict(Counter)
    for sample in samples:
        table[sample.letter][sample.session] += 1
    return {letter: dict(sorted(counts.items())) for letter, counts in sorted(table.items())}


def imu_repeat_pattern(samples: list[LisMyoSample], declared: bool = False) -> dict:
    """Summary of repeated IMU records: the fraction per file and, when the samples were read with
    imu="declared", the run lengths of identical consecutive records."""
    fractions = [sample.imu_repeats / (sample.imu_repeats + len(sample.acc)) if not declared
                 else sample.imu_repeats / len(sample.acc) for sample in samples]
    summary = {"mean": float(np.mean(fractions)), "min": float(np.min(fractions)), "max": float(np.max(fractions))}
    if declared:
        runs: Counter = Counter()
        for sample in samples:
            stacked = np.hstack([sample.gyro, sample.acc, sample.orientation])
            same = np.all(stacked[1:] == stacked[:-1], axis=1)
            starts = np.flatnonzero(np.concatenate(([True], ~same)))
            runs.update(np.diff(np.concatenate((starts, [len(stacked)]))).tolist())
        summary["run_lengths"] = dict(sorted(runs.items()))
    return summary


# -------------------------------------------------------------------------------- our format

SIGNER = "lis-myo-signer"  # the files do not name the person; the paper's recordings are taken as one signer
IMU_OFFSET = 40  # the native IMU sample the 2 s of sEMG start at (see the module docstring)
IMU_WINDOW = 100  # 2 s at 50 Hz: the IMU samples that go with the sEMG


def to_recording(sample: LisMyoSample, repetition: int):
    """One sample as a Recording in the ``myo`` layout: 400 x 8 sEMG counts at 200 Hz, accelerometer
    and gyroscope of the armband's one IMU at 50 Hz over the same 2 s (native samples
    ``IMU_OFFSET`` .. ``IMU_OFFSET + IMU_WINDOW``), the letter annotated over the whole window (the
    files say only that the sign is inside it). The orientation quaternion is not kept: the pipeline
    has no orientation modality yet."""
    from stream.recording import Annotation, Recording
    from stream.wire.layout import profile_defaults

    sensors = profile_defaults("myo")["sensors"]
    if sample.imu_rate_hz != MYO_IMU_RATE:
        raise LisMyoError(f"{sample.source}: IMU at {sample.imu_rate_hz} Hz; read it with imu='native' (50 Hz)")
    if len(sample.acc) < IMU_OFFSET + IMU_WINDOW:
        raise LisMyoError(f"{sample.source}: {len(sample.acc)} native IMU samples, fewer than the "
                          f"{IMU_OFFSET + IMU_WINDOW} that cover its sEMG")
    imu = slice(IMU_OFFSET, IMU_OFFSET + IMU_WINDOW)
    recording = Recording(
        emg=np.ascontiguousarray(sample.emg, dtype=np.float32),
        acc=np.ascontiguousarray(sample.acc[imu], dtype=np.float32),
        gyro=np.ascontiguousarray(sample.gyro[imu], dtype=np.float32),
        emg_rate_hz=sample.emg_rate_hz, imu_rate_hz=sample.imu_rate_hz,
        sensor_names=tuple(sensors["names"]), imu_names=tuple(sensors["imu_names"]), emg_unit="counts",
        annotations=[Annotation(sample.letter, 0, len(sample.emg))],
        metadata={"kind": "isolated", "label": sample.letter, "signer": SIGNER, "repetition": repetition,
                  "session": sample.session, "guid": sample.guid, "timestamp": sample.timestamp.isoformat(),
                  "source": "lis-myo (Pacifici et al., Data in Brief 33 (2020) 106455)",
                  "imu_native_samples": len(sample.acc), "imu_offset": IMU_OFFSET,
                  "imu_repeats_dropped": sample.imu_repeats},
    )
    recording.validate(sample.source)
    return recording


def test_session(samples: list[LisMyoSample]):
    """``samples`` back to back as one continuous recording (``myo`` layout), each letter annotated
    over its 2 s: a stream to replay through the daemons. There is no rest between them (the set has
    none), so a segmenter meets signs without the pauses it looks for."""
    from stream.recording import Annotation, Recording

    pieces = [to_recording(sample, repetition) for repetition, sample in enumerate(samples)]
    rows = len(pieces[0].emg)
    session = Recording(
        emg=np.concatenate([piece.emg for piece in pieces]), acc=np.concatenate([piece.acc for piece in pieces]),
        gyro=np.concatenate([piece.gyro for piece in pieces]), emg_rate_hz=pieces[0].emg_rate_hz,
        imu_rate_hz=pieces[0].imu_rate_hz, sensor_names=pieces[0].sensor_names, imu_names=pieces[0].imu_names,
        emg_unit="counts", annotations=[Annotation(piece.annotations[0].label, number * rows, (number + 1) * rows)
                                        for number, piece in enumerate(pieces)],
        metadata={"kind": "session", "signer": SIGNER, "session": 0, "guids": [sample.guid for sample in samples],
                  "source": pieces[0].metadata["source"],
                  "made_by": "train.datasets lis-myo: the within-test samples back to back, in recording order"})
    session.validate("lis-myo test session")
    return session


def write_dataset(source, out, seed: int = 0, validation_fraction: float = 0.10, test_fraction: float = 0.20) -> Path:
    """The lis-myo samples as a dataset directory of ours (index.json, splits.json, one recording
    file per letter): repetitions numbered by timestamp, splits stratified by letter
    (70/10/20 by default, as in the issue's reference experiment)."""
    from dataclasses import asdict

    from stream.common.atomic import atomic_write_json
    from stream.recording import write_recordings
    from stream.recording.dataset import INDEX_NAME, SPLITS_NAME, DatasetError, Entry
    from stream.wire.layout import profile_defaults
    from train.dataset import write_index
    from train.splits import make_splits

    out = Path(out)
    if (out / INDEX_NAME).exists():
        raise DatasetError(f"{out}: already has {INDEX_NAME}; choose an empty directory")
    samples = read_lis_myo(source)
    by_letter: dict[str, list[LisMyoSample]] = defaultdict(list)
    for sample in samples:
        by_letter[sample.letter].append(sample)
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    entries = []
    for letter, members in sorted(by_letter.items()):
        members.sort(key=lambda sample: (sample.timestamp, sample.guid))
        relative = f"recordings/{letter}.h5"
        recordings = {f"{letter}-{sample.guid}": to_recording(sample, repetition)
                      for repetition, sample in enumerate(members)}
        write_recordings(out / relative, recordings)
        for key, recording in recordings.items():
            entries.append(Entry(id=f"{relative}:{key}", file=relative, key=key, kind="isolated", signer=SIGNER,
                                 label=letter, repetition=recording.metadata["repetition"],
                                 duration_s=round(recording.duration_s, 4), annotations=1))
    splits = make_splits([asdict(entry) for entry in entries], seed=seed, validation_fraction=validation_fraction,
                         test_fraction=test_fraction)
    # The test samples again, one after another in the order they were recorded, as one continuous
    # stream: what the daemons and stream.tools.evaluate can replay (the set has no rest between signs).
    test_ids = set(splits["within"]["test"])
    in_test = sorted((sample for sample in samples if f"recordings/{sample.letter}.h5:{sample.letter}-{sample.guid}"
                      in test_ids), key=lambda sample: (sample.timestamp, sample.guid))
    session = test_session(in_test)
    write_recordings(out / "recordings" / "test-session.h5", {"session": session})
    entries.append(Entry(id="recordings/test-session.h5:session", file="recordings/test-session.h5", key="session",
                         kind="session", signer=SIGNER, session=0, duration_s=round(session.duration_s, 4),
                         annotations=len(session.annotations)))
    splits["sessions"] = {SIGNER: ["recordings/test-session.h5:session"]}
    atomic_write_json(out / SPLITS_NAME, splits)
    sensors = profile_defaults("myo")["sensors"]
    write_index(out, sorted(by_letter), list(sensors["names"]), Fraction(200), MYO_IMU_RATE, entries,
                {"imported_by": "train.datasets lis-myo", "source": str(source), "seed": seed,
                 "samples": len(samples), "profile": "myo",
                 "citation": "Pacifici et al., Data in Brief 33 (2020) 106455"})
    return out / INDEX_NAME
