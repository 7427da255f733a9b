"""Load Delsys CSV exports (Trigno Discover, EMGworks, Control Utility) into our Recording format.

What real exports look like (see /work/shared/NOTES.md, "Levels and units in real Trigno exports"):
- a few metadata rows ("Application:, Trigno Discover (2.1.0.7)", "Date/Time:, ..."), sometimes a row of
  sensor names with the name only above each sensor's first column ("Avanti Sensor 1 (89542), , ...")
  and a "sensor mode" row;
- a channel-name row where every data column follows its own time column ("EMG 1 Time Series (s)",
  "EMG 1 (mV)", "ACC X Time Series (s)", "ACC X (G)", ...; EMGworks writes "X[s]" instead);
- the rates either in a row below the names ("1259.259 Hz"), or inside the names ("EMG 1 (mV) 1259.26 Hz"),
  or only implied by the time column;
- slower channels (ACC, GYRO) end earlier: blank cells below their last sample;
- other sensor kinds (EKG, analog, force, orientation) can be mixed in: they are ignored and listed.

Rates are read from the file (never assumed) and snapped to the exact Trigno rate k * 1000/27 Hz they
display (1259.259 -> 34000/27); a rate that is not such a multiple, channels of one modality at
different rates, a sensor without all of EMG + ACC X/Y/Z + GYRO X/Y/Z, unknown units, or cells that
are not numbers are refused with an error naming the file, the column and the problem.

    python -m train.delsys_csv EXPORT.csv --out RECORDING.h5 [--sensor-names a,b,...] [--label hello --signer s1]
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from stream.recording import Annotation, Recording, write_recording

TRIGNO_RATE_QUANTUM = Fraction(1000, 27)
RATE_TOLERANCE = 2e-4  # "1259.259 Hz" -> 34 x 1000/27 (relative error of the printed digits)
TIME_COLUMN = re.compile(r"(time series\s*\(s\)|^x\s*\[s\]$|^time\s*\(s\)$|^time$)", re.IGNORECASE)
CHANNEL = re.compile(r"\b(?P<kind>EMG|ACC|GYRO)\b\s*(?P<axis>[XYZ](?![A-Za-z]))?\s*(?P<number>\d+)?", re.IGNORECASE)
RATE_IN_TEXT = re.compile(r"(?P<rate>\d+(?:\.\d+)?)\s*Hz", re.IGNORECASE)
UNIT = re.compile(r"[(\[](?P<unit>[^)\]]*)[)\]]")
UNIT_SCALES = {
    "emg": {"mv": 1.0, "v": 1000.0, "uv": 1e-3, "µv": 1e-3},
    "acc": {"g": 1.0, "m/s^2": 1 / 9.80665, "m/s²": 1 / 9.80665, "m/s2": 1 / 9.80665},
    "gyro": {"deg/s": 1.0, "°/s": 1.0, "dps": 1.0, "rad/s": 180.0 / math.pi},
}


class DelsysCsvError(ValueError):
    """A CSV file this loader cannot convert; the message names the file and the problem."""


@dataclass
class Channel:
    column: int
    name: str
    sensor: str
    kind: str  # emg | acc | gyro
    axis: str  # "" for emg
    scale: float
    rate_hz: Fraction | None = None
    time_column: int | None = None
    values: np.ndarray = field(default_factory=lambda: np.empty(0))


def snap_rate(value: float, where: str) -> Fraction:
    """The exact Trigno rate (a whole multiple of 1000/27 Hz) that ``value`` Hz displays."""
    multiple = round(value / float(TRIGNO_RATE_QUANTUM))
    if multiple < 1 or abs(multiple * float(TRIGNO_RATE_QUANTUM) - value) > RATE_TOLERANCE * value:
        raise DelsysCsvError(f"{where}: rate {value:g} Hz is not a Trigno rate (a whole multiple of 1000/27 Hz "
                             "such as 1111.1, 1259.3, 1925.9, 2148.1, 148.1 or 74.07 Hz); signstream's 13.5 ms frames "
                             "need one")
    return multiple * TRIGNO_RATE_QUANTUM


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _find_header(rows: list[list[str]], path: Path) -> int:
    for number, row in enumerate(rows[:200]):
        if any(TIME_COLUMN.search(cell) for cell in row) and any(CHANNEL.search(cell) for cell in row
                                                                    if not TIME_COLUMN.search(cell)):
            return number
    raise DelsysCsvError(f"{path}: no channel-name row found (expected time columns such as 'EMG 1 Time Series (s)' "
                         "or 'X[s]' next to channels such as 'EMG 1', 'ACC X 1', 'GYRO X 1'); is this a Delsys CSV export?")


def _sensor_row(rows: list[list[str]], header: int) -> list[str] | None:
    """The row of sensor names above the channel names (Trigno Discover), forward-filled."""
    for number in range(header - 1, max(-1, header - 4), -1):
        row = rows[number]
        cells = [cell for cell in row if cell]
        if not cells or all(cell.lower().startswith("sensor mode") for cell in cells):
            continue
        if cells[0].endswith(":") or all(_is_number(cell) for cell in cells):
            return None  # a metadata row ("Application:, ...") or data: there is no sensor row
        filled, current = [], ""
        for cell in row:
            current = cell or current
            filled.append(current)
        return filled
    return None


def _channels(rows: list[list[str]], header: int, path: Path) -> tuple[list[Channel], list[str], int]:
    names = rows[header]
    sensors = _sensor_row(rows, header)
    rate_row: list[str] | None = None
    data_start = header + 1
    while data_start < len(rows) and not any(_is_number(cell) for cell in rows[data_start][:1] + rows[data_start][1:2]):
        row = rows[data_start]
        if rate_row is None and any(RATE_IN_TEXT.search(cell) for cell in row):
            rate_row = row
        data_start += 1
    channels, ignored = [], []
    time_column = None
    for column, name in enumerate(names):
        if not name:
            continue
        if TIME_COLUMN.search(name):
            time_column = column
            continue
        match = CHANNEL.search(name)
        if match is None:
            ignored.append(name)
            continue
        kind = match["kind"].lower()
        axis = (match["axis"] or "").lower()
        if kind in ("acc", "gyro") and not axis:
            ignored.append(name)  # e.g. an orientation or magnitude channel
            continue
        if ":" in name:  # EMGworks: "R BICEPS: EMG 1" / "Sensor 3: ACC X 3"
            sensor = name.split(":", 1)[0].strip()
        elif sensors is not None and column < len(sensors) and sensors[column]:
            sensor = sensors[column]
        elif match["number"]:
            sensor = f"sensor {match['number']}"  # "ACC X 1": the number is the sensor's
        else:
            raise DelsysCsvError(f"{path}: column {column + 1} {name!r}: cannot tell which sensor it belongs to")
        if kind == "emg" and any(c.sensor == sensor and c.kind == "emg" for c in channels):
            ignored.append(name)  # a second EMG channel of a multi-channel (Duo/Quattro) sensor
            continue
        unit_match = UNIT.search(name[match.end():]) or UNIT.search(name)
        unit = unit_match["unit"].strip().lower() if unit_match else ""
        unit = re.sub(RATE_IN_TEXT, "", unit).strip()
        if unit not in UNIT_SCALES[kind]:
            raise DelsysCsvError(f"{path}: column {column + 1} {name!r}: unit {unit or '(none)'!r} is not one of "
                                 f"{', '.join(UNIT_SCALES[kind])}")
        rate = None
        in_name = RATE_IN_TEXT.search(name)
        in_row = RATE_IN_TEXT.search(rate_row[column]) if rate_row is not None and column < len(rate_row) else None
        for found in (in_row, in_name):
            if found:
                rate = snap_rate(float(found["rate"]), f"{path}: column {column + 1} {name!r}")
                break
        channels.append(Channel(column, name, sensor, kind, axis, UNIT_SCALES[kind][unit], rate, time_column))
    return channels, ignored, data_start


def _column_values(rows: list[list[str]], start: int, column: int, path: Path, name: str) -> np.ndarray:
    """Numbers from the top of a column down to its first blank cell (slower channels end early)."""
    values = []
    for number in range(start, len(rows)):
        row = rows[number]
        cell = row[column] if column < len(row) else ""
        if cell == "":
            for later in range(number + 1, min(len(rows), number + 50)):
                if column < len(rows[later]) and rows[later][column] != "":
                    raise DelsysCsvError(f"{path}: column {column + 1} {name!r} has a blank cell at line {number + 1} "
                                         f"and values after it (corrupt or hand-edited file)")
            break
        try:
            values.append(float(cell))
        except ValueError:
            raise DelsysCsvError(f"{path}: line {number + 1}, column {column + 1} {name!r}: {cell!r} is not a number") from None
    return np.asarray(values, dtype=np.float64)


def _rate_from_time(times: np.ndarray, where: str) -> Fraction:
    if times.size < 3:
        raise DelsysCsvError(f"{where}: fewer than 3 samples; cannot read the rate from the time column")
    step = float(np.median(np.diff(times)))
    if step <= 0:
        raise DelsysCsvError(f"{where}: the time column does not increase")
    return snap_rate(1.0 / step, where)


def read_delsys_csv(path: str | Path, sensor_names: list[str] | None = None, label: str | None = None,
                    metadata: dict | None = None) -> Recording:
    """Convert one export. ``sensor_names`` renames the sensors in file order (e.g. to [sensors] names);
    ``label`` annotates the whole recording with one sign."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="strict") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except FileNotFoundError:
        raise DelsysCsvError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise DelsysCsvError(f"{path}: not a readable CSV text file: {error}") from None
    if not rows:
        raise DelsysCsvError(f"{path}: empty file")
    header = _find_header(rows, path)
    channels, ignored, data_start = _channels(rows, header, path)
    if data_start >= len(rows):
        raise DelsysCsvError(f"{path}: no data rows after the header (truncated export?)")
    by_sensor: dict[str, dict[str, Channel]] = {}
    for channel in channels:
        channel.values = _column_values(rows, data_start, channel.column, path, channel.name) * channel.scale
        where = f"{path}: column {channel.column + 1} {channel.name!r}"
        if channel.time_column is not None:
            times = _column_values(rows, data_start, channel.time_column, path, rows[header][channel.time_column])
            if channel.rate_hz is None:
                channel.rate_hz = _rate_from_time(times, where)
            elif times.size >= 3 and abs(float(np.median(np.diff(times))) * float(channel.rate_hz) - 1) > 0.01:
                raise DelsysCsvError(f"{where}: the header says {float(channel.rate_hz):.3f} Hz but its time column "
                                     f"steps {float(np.median(np.diff(times))):.6f} s (mismatched rates)")
        elif channel.rate_hz is None:
            raise DelsysCsvError(f"{where}: has no rate and no time column")
        by_sensor.setdefault(channel.sensor, {})[channel.kind + channel.axis] = channel
    if not by_sensor:
        raise DelsysCsvError(f"{path}: no EMG/ACC/GYRO channels found (only: {', '.join(ignored) or 'nothing'})")
    required = ["emg", "accx", "accy", "accz", "gyrox", "gyroy", "gyroz"]
    for sensor, found in by_sensor.items():
        missing = [name for name in required if name not in found]
        if missing:
            pretty = ", ".join(name.upper().replace("ACC", "ACC ").replace("GYRO", "GYRO ").strip() for name in missing)
            raise DelsysCsvError(f"{path}: sensor {sensor!r} is missing channel(s) {pretty}; every sensor needs "
                                 "EMG, ACC X/Y/Z and GYRO X/Y/Z")
    rates = {"emg": {}, "imu": {}}
    for channel in channels:
        rates["emg" if channel.kind == "emg" else "imu"].setdefault(channel.rate_hz, []).append(channel.name)
    for modality, found in rates.items():
        if len(found) > 1:
            detail = "; ".join(f"{float(rate):.3f} Hz: {', '.join(names[:3])}" for rate, names in found.items())
            raise DelsysCsvError(f"{path}: mismatched rates among {modality.upper()} channels ({detail}); "
                                 "export all sensors in the same mode")
    emg_rate, imu_rate = next(iter(rates["emg"])), next(iter(rates["imu"]))
    sensors = list(by_sensor)
    emg_length = min(by_sensor[s]["emg"].values.size for s in sensors)
    imu_length = min(by_sensor[s][name].values.size for s in sensors for name in required[1:])
    # A truncated export ends the fast (sEMG) columns early while the slow ones are complete (they fill
    # only the top rows): keep the span both modalities cover.
    full_emg, full_imu = emg_length, imu_length
    ratio = emg_rate / imu_rate
    emg_length = min(emg_length, math.ceil((imu_length + 1) * ratio))
    imu_length = min(imu_length, math.ceil(emg_length / ratio) + 1)
    emg = np.stack([by_sensor[s]["emg"].values[:emg_length] for s in sensors], axis=1).astype(np.float32)
    acc = np.stack([by_sensor[s][f"acc{a}"].values[:imu_length] for s in sensors for a in "xyz"], axis=1).astype(np.float32)
    gyro = np.stack([by_sensor[s][f"gyro{a}"].values[:imu_length] for s in sensors for a in "xyz"], axis=1).astype(np.float32)
    if sensor_names is not None and len(sensor_names) != len(sensors):
        raise DelsysCsvError(f"{path}: {len(sensor_names)} sensor names given for {len(sensors)} sensors in the file "
                             f"({', '.join(sensors)})")
    names = tuple(sensor_names) if sensor_names else tuple(re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") for s in sensors)
    info = {"source_file": path.name, "source_format": "delsys-csv", "source_sensors": sensors,
            "ignored_channels": ignored}
    for row in rows[:header]:
        if len(row) >= 2 and row[0].endswith(":"):
            info[row[0].rstrip(":").strip().lower().replace(" ", "_")] = row[1]
    if (emg_length, imu_length) != (full_emg, full_imu):
        info["trimmed_to_common_span"] = {"emg_samples": [full_emg, emg_length], "imu_samples": [full_imu, imu_length]}
    info.update(metadata or {})
    annotations = []
    if label:
        annotations = [Annotation(label, 0, emg_length)]
        info["label"] = label
    recording = Recording(emg=emg, acc=acc, gyro=gyro, emg_rate_hz=emg_rate, imu_rate_hz=imu_rate,
                          sensor_names=names, annotations=annotations, metadata=info)
    try:
        recording.validate(str(path))
    except ValueError as error:
        raise DelsysCsvError(str(error)) from None
    return recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.delsys_csv", description="Convert a Delsys CSV export.")
    parser.add_argument("csv", help="the exported CSV file")
    parser.add_argument("--out", required=True, help="recording file to write (.h5); never overwritten")
    parser.add_argument("--sensor-names", default=None, help="comma-separated names, in the file's sensor order")
    parser.add_argument("--label", default=None, help="annotate the whole recording with this sign")
    parser.add_argument("--signer", default=None)
    parser.add_argument("--repetition", type=int, default=None)
    arguments = parser.parse_args(argv)
    extra = {key: value for key, value in (("signer", arguments.signer), ("repetition", arguments.repetition),
                                           ("kind", "isolated" if arguments.label else None)) if value is not None}
    try:
        if Path(arguments.out).exists():
            raise DelsysCsvError(f"{arguments.out}: already exists; choose another --out")
        names = arguments.sensor_names.split(",") if arguments.sensor_names else None
        recording = read_delsys_csv(arguments.csv, names, arguments.label, extra)
        write_recording(arguments.out, recording)
    except (DelsysCsvError, ValueError, OSError) as error:
        print(f"train.delsys_csv: {error}", file=sys.stderr)
        return 2
    print(f"{arguments.out}: {len(recording.sensor_names)} sensors, {recording.duration_s:.2f} s, "
          f"sEMG {float(recording.emg_rate_hz):.2f} Hz, IMU {float(recording.imu_rate_hz):.2f} Hz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
