"""Load Delsys CSV exports (Trigno Discover 1.4-1.7, EMGworks) in two steps.

1. ``read_delsys_export(path) -> DelsysExport``: what the file holds, parsed and checked: per sEMG
   sensor its channels (EMG, ACC X/Y/Z, GYRO X/Y/Z, whichever it has), each with its exact rate (a
   Fraction) and its values in mV / g / deg/s; notes on what was skipped; the file's metadata.
2. ``to_recording(export) -> Recording``: the Recording under the layout the file has (sEMG + ACC +
   GYRO, sEMG + ACC, or sEMG only; a channel set only some sensors have is left out with a note),
   with one sEMG rate and one IMU rate. ``read_delsys_csv`` does both.

Layouts read (see /work/shared/NOTES.md, "Levels and units in real Trigno exports"):
- Trigno Discover: "Application:", "Date/Time:", "Collection Length (seconds):" rows; a row of sensor
  names, each above its sensor's first column; a "sensor mode: 55" row aligned alike; the channel
  row; then either rates inside the names ("EMG 1 (1259Hz)", 1.4), a rate row under unit names
  ("EMG 1 (mV)" over "1259.2593 Hz", 1.5 on), or time columns paired with the channels ("EMG 1 Time
  Series (s)", "EMG 1 (mV)"; the rate row is blank under the time columns); then the data, slower
  channels ending earlier (blank cells below their last sample). Units not written are mV, g, deg/s.
- EMGworks: one header row of pairs "X[s]", "Avanti sensor 1: EMG 1", "X[s]", "Avanti sensor 1:
  ACC.X 1", no units (EMG in V, ACC in g, GYRO in deg/s), rates only in the time columns.
Sensors of other kinds are skipped with a note, by their name (EKG, Analog, FSR, Snap Lead, Quattro,
VO2 Master...: real EKG and Snap Lead sensors label their channel "EMG 1") or their channels (no EMG
channel, several EMG channels); so are channels other than EMG/ACC/GYRO. Rates are read from the file
and snapped to the exact Trigno rate k x 1000/27 Hz they display; a rate that fits none (or several)
is refused naming its column; so are channels whose spans disagree by more than 0.25 s (wrong rates), blank
cells with values below them, cells that are not numbers (naming line and column). Also read: a UTF-8 BOM,
Windows line endings, quoted cells, trailing empty columns, ";" separators with decimal commas, a file cut
mid-row (the row is dropped and noted). The data rows are streamed: only the kept columns are held.

    python -m train.delsys_csv EXPORT.csv --out RECORDING.h5 [--sensor-names a,b,...] [--label hello --signer s1]
"""

from __future__ import annotations

import argparse
import codecs
import csv
import itertools
import math
import operator
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np

from stream.recording import Annotation, Recording, write_recording
from stream.recording.model import DURATION_TOLERANCE_S
from stream.wire.layout import PROFILES

TRIGNO_RATE_QUANTUM = Fraction(1000, 27)
RATE_RELATIVE_TOLERANCE = 1e-6  # beyond the printed digits' rounding: a printer that truncates
HEADER_SEARCH_ROWS = 100  # the channel row is within these
HEAD_ROWS = HEADER_SEARCH_ROWS + 20  # read as a list; the data rows are streamed
ROWS_PER_CHUNK = 1 << 14
AXES = ("x", "y", "z")
NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
TIME_COLUMN = re.compile(r"time series|^x\s*\[s\]$|^time\s*[(\[]s[)\]]$|^time$", re.IGNORECASE)
CHANNEL = re.compile(r"^(?P<modality>EMG|ACC|GYRO)[\s.]*(?:(?P<axis>[XYZ])(?![A-Za-z]))?\s*(?P<number>\d+)?"
                     r"(?![A-Za-z])", re.IGNORECASE)  # "EMG 1 (mV)", "ACC X (G)", EMGworks' "ACC.X 1"
RATE_IN_NAME = re.compile(rf"(?P<rate>{NUMBER})\s*Hz\b", re.IGNORECASE)
RATE_CELL = re.compile(rf"^(?P<rate>{NUMBER})\s*(?:Hz)?$", re.IGNORECASE)
HZ_CELL = re.compile(rf"^{NUMBER}\s*Hz$", re.IGNORECASE)
PERIOD_CELL = re.compile(rf"^{NUMBER}\s*(?:s|sec|ms)$", re.IGNORECASE)
BRACKETS = re.compile(r"[(\[](?P<inside>[^)\]]*)[)\]]")
SENSOR_MODE = re.compile(r"^sensor mode\s*:", re.IGNORECASE)
OTHER_SENSOR_KIND = re.compile(r"\b(EKG|ECG|Analog|FSR|Force|Load ?Cell|Goniometer|Snap[- ]?Lead|Quattro|Duo|VO2|"
                               r"HR Strap|Trigger)\b", re.IGNORECASE)
UNIT_SCALES = {
    "emg": {"mv": 1.0, "v": 1000.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3},
    "acc": {"g": 1.0, "m/s^2": 1 / 9.80665, "m/s²": 1 / 9.80665, "m/s2": 1 / 9.80665},
    "gyro": {"deg/s": 1.0, "°/s": 1.0, "dps": 1.0, "rad/s": 180.0 / math.pi},
}
UNITS = {"emg": "mV", "acc": "g", "gyro": "deg/s"}
UNITS_NOT_WRITTEN = {"Trigno Discover": {"emg": "mV", "acc": "g", "gyro": "deg/s"},
                     "EMGworks": {"emg": "V", "acc": "g", "gyro": "deg/s"}}


class DelsysCsvError(ValueError):
    """A CSV file this loader cannot convert; the message (one line) names the file and the problem."""


@dataclass(frozen=True)
class Skipped:
    """Something in the file that was not loaded, and why."""

    what: str  # "sensor 'EKG 11 00254 (56807)'", "channel 'MAG X' of sensor 'A'", "last row"
    where: str  # "columns 43-49", "line 812"
    reason: str

    def __str__(self) -> str:
        return f"{self.what} ({self.where}): {self.reason}"


@dataclass(frozen=True, eq=False)
class DelsysChannel:
    name: str  # as written in the file, e.g. "ACC X (G)"
    column: int  # 1-based, as a spreadsheet counts
    modality: str  # emg | acc | gyro
    axis: str  # x | y | z; "" for emg
    unit: str  # of ``values``: mV | g | deg/s
    file_unit: str  # as written in the file, or the exporting software's unit when none is written
    rate_hz: Fraction
    values: np.ndarray  # float64, converted to ``unit``

    @property
    def duration_s(self) -> float:
        return self.values.size / float(self.rate_hz)


@dataclass(frozen=True, eq=False)
class DelsysSensor:
    name: str
    mode: str | None  # the "sensor mode" cell (Trigno Discover)
    channels: tuple[DelsysChannel, ...]

    def channel(self, modality: str, axis: str = "") -> DelsysChannel | None:
        return next((c for c in self.channels if (c.modality, c.axis) == (modality, axis)), None)

    @property
    def layout(self) -> str:
        """The channel set: "EMG + ACC + GYRO", "EMG + ACC (no GYRO)", "EMG only (no ACC, no GYRO)", ..."""
        parts, missing = ["EMG"], []
        for modality in ("acc", "gyro"):
            found = [axis for axis in AXES if self.channel(modality, axis)]
            if len(found) == 3:
                parts.append(modality.upper())
            elif found:
                parts.append(f"{modality.upper()} {'/'.join(a.upper() for a in found)}")
                missing.append(f"{modality.upper()} {'/'.join(a.upper() for a in AXES if a not in found)}")
            else:
                missing.append(modality.upper())
        text = " + ".join(parts) if len(parts) > 1 else "EMG only"
        return text + (f" (no {', no '.join(missing)})" if missing else "")


@dataclass(frozen=True, eq=False)
class DelsysExport:
    path: Path
    software: str | None  # "Trigno Discover" | "EMGworks" | None
    application: str | None  # the "Application:" cell, e.g. "Trigno Discover (1.5.0)"
    date_time: str | None
    metadata: dict  # every "Key:, value" row above the header
    sensors: tuple[DelsysSensor, ...]
    skipped: tuple[Skipped, ...]
    truncated: bool = False  # the file ends mid-row: the last row was dropped


def snap_rate(printed: str | float, where: str, uncertainty_hz: float = 0.0) -> Fraction:
    """The exact Trigno rate k x 1000/27 Hz that ``printed`` stands for: the one k within the rounding
    of the printed digits ("148Hz": 0.5 Hz; "148.1481": 0.00005 Hz) plus ``uncertainty_hz`` plus a
    small relative tolerance. Refuses (naming ``where``) when no k or several fit."""
    if isinstance(printed, str):
        try:
            decimal = Decimal(printed.strip())
        except InvalidOperation:
            raise DelsysCsvError(f"{where}: rate {printed!r} is not a number") from None
        if not decimal.is_finite():
            raise DelsysCsvError(f"{where}: rate {printed!r} is not a number")
        value, exponent = float(decimal), decimal.as_tuple().exponent
        shown = printed.strip()
        shown = shown.rstrip("0").rstrip(".") if "." in shown and "e" not in shown.lower() else shown
    else:
        value, exponent, shown = float(printed), None, f"{float(printed):.4f}"
    quantum = float(TRIGNO_RATE_QUANTUM)
    low, high = 1, 0  # no multiple fits
    if 0 < value < 1e6:
        half_unit = 0.0 if exponent is None else 0.5 * 10.0 ** exponent  # exponent < 6 here
        tolerance = half_unit + uncertainty_hz + RATE_RELATIVE_TOLERANCE * value
        low, high = max(1, math.ceil((value - tolerance) / quantum)), math.floor((value + tolerance) / quantum)
    if low == high:
        return low * TRIGNO_RATE_QUANTUM
    if high < low:
        nearest = f"; the nearest is {max(1, round(value / quantum)) * quantum:.4f} Hz" if 0 < value < 1e6 else ""
        raise DelsysCsvError(f"{where}: rate {shown} Hz is not a Trigno rate (a whole multiple of 1000/27 Hz such as "
                             f"1111.1, 1259.3, 1925.9, 2148.1, 148.1 or 74.07 Hz{nearest}); signstream's 13.5 ms "
                             "frames need one")
    raise DelsysCsvError(f"{where}: rate {shown} Hz is too coarse to tell which Trigno rate it is ({high - low + 1} "
                         f"multiples of 1000/27 Hz fit, {low * quantum:.4f} to {high * quantum:.4f} Hz)")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _is_data_row(row: list[str]) -> bool:
    """Numbers, from the first cell on (text further right, e.g. a table of markers, is tolerated)."""
    cells = [cell for cell in row if cell]
    return bool(cells) and _is_number(cells[0]) and 2 * sum(map(_is_number, cells)) >= len(cells)


def _is_annotation_row(row: list[str]) -> bool:
    """An empty row, or a rate row ("1259.2593 Hz") or period row ("0.000794 s") below the names."""
    cells = [cell for cell in row if cell]
    if not cells:
        return True
    return not any(map(_is_number, cells)) and any(HZ_CELL.match(c) or PERIOD_CELL.match(c) for c in cells)


def _split_sensor(cell: str) -> tuple[str, str]:
    """EMGworks' "Avanti sensor 1: EMG 1" -> ("Avanti sensor 1", "EMG 1"); "EMG 1 (mV)" -> ("", ...)."""
    sensor, colon, channel = cell.partition(":")
    return (sensor.strip(), channel.strip()) if colon and channel.strip() else ("", cell)


def _is_channel_row(row: list[str]) -> bool:
    cells = [cell for cell in row if cell]
    if not cells or cells[0].endswith(":"):
        return False
    return any(CHANNEL.match(_split_sensor(cell)[1]) or TIME_COLUMN.search(cell) for cell in cells)


def _find_channel_row(head: list[list[str]]) -> int | None:
    """The first row of channel names followed (after rate / period rows) by data or the end of the file."""
    for index, row in enumerate(head[:HEADER_SEARCH_ROWS]):
        if not _is_channel_row(row):
            continue
        after = index + 1
        while after < len(head) and _is_annotation_row(head[after]):
            after += 1
        if after == len(head) or _is_data_row(head[after]):
            return index
    return None


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DelsysCsvError(f"{path}: no such file") from None
    except OSError as error:
        raise DelsysCsvError(f"{path}: cannot read it: {error.strerror or error}") from None
    encodings = ("utf-16",) if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else ("utf-8-sig", "cp1252")
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DelsysCsvError(f"{path}: not a text file (neither UTF-8 nor Windows-1252)")
    if not text.strip():
        raise DelsysCsvError(f"{path}: empty file")
    return text


def _reader(text: str, delimiter: str):
    return csv.reader(text.splitlines(keepends=True), delimiter=delimiter, skipinitialspace=True)


def _head(text: str, delimiter: str, path: Path) -> list[list[str]]:
    """The first rows, cells stripped (a ";" file's decimal commas made points)."""
    try:
        rows = list(itertools.islice(_reader(text, delimiter), HEAD_ROWS))
    except csv.Error as error:
        raise DelsysCsvError(f"{path}: not readable as CSV: {error}") from None
    return [[cell.strip().replace(",", ".") if delimiter == ";" else cell.strip() for cell in row] for row in rows]


def _forward_filled(row: list[str], width: int) -> list[tuple[str, int]]:
    """Each column's (sensor cell, column where that cell stands): the name is above the first column only."""
    filled, current = [], ("", -1)
    for column in range(width):
        cell = row[column] if column < len(row) else ""
        current = (cell, column) if cell else current
        filled.append(current)
    return filled


def _sensor_rows(head: list[list[str]], channel_row: int, width: int):
    """(sensor per column, mode per column) from the rows above the channel names, or None each."""
    sensors = modes = None
    for index in range(channel_row - 1, max(-1, channel_row - 4), -1):
        cells = [cell for cell in head[index] if cell]
        if not cells:
            continue
        if all(SENSOR_MODE.match(cell) for cell in cells):
            modes = modes or _forward_filled(head[index], width)
            continue
        if not (cells[0].endswith(":") or _is_data_row(head[index])):
            sensors = _forward_filled(head[index], width)
        break
    return sensors, modes


@dataclass
class _Column:
    """A channel column as the header describes it."""

    index: int
    name: str
    channel: str  # the name without an EMGworks "Sensor: " prefix
    match: re.Match | None
    time_index: int | None  # the time column before it, if any
    time_name: str
    mode: str | None


def _group_by_sensor(names: list[str], sensors, modes, path: Path) -> dict[tuple, list[_Column]]:
    groups: dict[tuple, list[_Column]] = {}
    time_index, time_name, unnamed = None, "", 0
    for index, name in enumerate(names):
        if not name:
            continue
        prefix, channel = _split_sensor(name)
        if TIME_COLUMN.search(channel):
            time_index, time_name = index, name
            continue
        match = CHANNEL.match(channel)
        mode = modes[index][0] if modes and modes[index][0] else None
        if sensors and sensors[index][0]:
            key = sensors[index]
        elif prefix:
            key = (prefix, -1)
        elif match:  # no sensor names at all: each EMG channel starts a sensor
            unnamed += match["modality"].lower() == "emg"
            if not unnamed:
                raise DelsysCsvError(f"{path}: column {index + 1} {name!r}: cannot tell which sensor it belongs to "
                                     "(no sensor-name row above the channel names, no 'Sensor: ' prefix, no EMG "
                                     "channel before it)")
            key = (f"sensor {unnamed}", -1)
        else:
            key = (name, index)  # an unnamed column of another kind: skipped with a note
        groups.setdefault(key, []).append(_Column(index, name, channel, match, time_index, time_name, mode))
    return groups


def _modality_axis(match: re.Match | None) -> tuple[str | None, str]:
    """("emg", ""), ("acc", "x"), ...; (None, "") for a channel of another kind."""
    if match is None:
        return None, ""
    modality = match["modality"].lower()
    return modality, (match["axis"] or "").lower() if modality != "emg" else ""


def _columns_text(columns: list[_Column]) -> str:
    """The sensor's columns, counting the time column before its first channel."""
    first, last = columns[0].index + 1, columns[-1].index + 1
    first -= columns[0].time_index == columns[0].index - 1
    return f"column {first}" if first == last else f"columns {first}-{last}"


def _kept_columns(groups: dict, skipped: list[Skipped]) -> dict[str, list[_Column]]:
    """Per sEMG sensor its EMG/ACC/GYRO columns; everything else goes to ``skipped`` with the reason."""
    kept = {}
    for (label, _), columns in groups.items():
        what = f"sensor {label!r}"
        emg = [column for column in columns if _modality_axis(column.match)[0] == "emg"]
        kind = OTHER_SENSOR_KIND.search(label)
        if kind:
            reason = f"{kind.group(1)} sensor, not an sEMG sensor"
        elif not emg:
            listed = ", ".join(repr(column.name) for column in columns[:4])
            reason = f"no EMG channel ({listed}{', ...' if len(columns) > 4 else ''})"
        elif len(emg) > 1:
            reason = f"{len(emg)} EMG channels (a multi-channel sensor such as a Quattro or Duo): not supported"
        else:
            reason = None
        if reason:
            skipped.append(Skipped(what, _columns_text(columns), reason))
            continue
        seen, keep = set(), []
        for column in columns:
            modality, axis = _modality_axis(column.match)
            if modality is None:
                problem = "not EMG, ACC X/Y/Z or GYRO X/Y/Z"
            elif modality != "emg" and not axis:
                problem = f"{modality.upper()} without an axis"
            elif (modality, axis) in seen:  # (a second EMG channel has skipped the sensor above)
                problem = f"a second {modality.upper()} {axis.upper()} channel"
            else:
                problem = None
            if problem:
                skipped.append(Skipped(f"channel {column.name!r} of {what}", f"column {column.index + 1}", problem))
                continue
            seen.add((modality, axis))
            keep.append(column)
        kept[label if label not in kept else f"{label} (column {columns[0].index + 1})"] = keep
    return kept


def _rate_row(head: list[list[str]], channel_row: int, columns: list[_Column]) -> tuple[list[str] | None, int]:
    """(the rate row or None, index of the first data row). Below the names: rate and period rows, or a rate
    row of bare numbers ("1111.1111") where the rates are in no name and no time column, or where it is blank
    under every time column (data rows never are)."""
    data_start, rate_row = channel_row + 1, None
    while data_start < len(head) and _is_annotation_row(head[data_start]):
        if rate_row is None and any(HZ_CELL.match(cell) for cell in head[data_start]):
            rate_row = head[data_start]
        data_start += 1
    if rate_row is None and data_start < len(head) and not any(RATE_IN_NAME.search(c.channel) for c in columns):
        row = head[data_start]
        filled = {index for index, cell in enumerate(row) if cell}
        times = {column.time_index for column in columns} - {None}
        if not times or (not times & filled and any(column.index in filled for column in columns)):
            rate_row, data_start = row, data_start + 1
            while data_start < len(head) and _is_annotation_row(head[data_start]):
                data_start += 1
    return rate_row, data_start


class _ColumnReader:
    """One column's numbers, fed a chunk of rows at a time: numbers from the top down to its first blank cell,
    then only blank cells (slower channels end early)."""

    def __init__(self, index: int, name: str, path: Path):
        self.index, self.name, self.path = index, name, path
        self.arrays, self.blank_line, self.tail = [], None, []

    def feed(self, cells: list[str], lines: list[int]) -> None:
        count = 0 if self.blank_line else cells.index("") if "" in cells else len(cells)
        if any(cells[count:]):
            later = next(number for number in range(count, len(cells)) if cells[number])
            raise DelsysCsvError(f"{self.path}: column {self.index + 1} {self.name!r} has a blank cell at line "
                                 f"{self.blank_line or lines[count]} and values after it (line {lines[later]}): a "
                                 "corrupt or hand-edited file")
        if self.blank_line or count == 0:
            self.blank_line = self.blank_line or (lines[0] if cells else None)
            return
        if count < len(cells):
            self.blank_line = lines[count]
        try:
            self.arrays.append(np.array(cells[:count], dtype=np.float64))  # float() rules: spaces around are fine
        except ValueError:
            number = next(n for n in range(count) if not _is_number(cells[n]))
            raise DelsysCsvError(f"{self.path}: line {lines[number]}, column {self.index + 1} {self.name!r}: "
                                 f"{cells[number]!r} is not a number") from None
        self.tail = (self.tail + cells[max(0, count - 5):count])[-5:]

    def values(self) -> np.ndarray:
        return np.concatenate(self.arrays) if self.arrays else np.empty(0)


def _read_columns(text: str, delimiter: str, data_start: int, readers: list[_ColumnReader], width: int,
                  path: Path) -> int | None:
    """Feed the data rows to the column readers, in chunks (a long export stays small in memory); return the
    line of a last row cut short (dropped), else None. Empty rows at the end are ignored."""

    indices = [reader.index for reader in readers]
    width_needed = max(indices) + 1
    take = operator.itemgetter(*indices, indices[0])  # always a tuple, even for one column

    def feed(lines: list[int], chunk: list[list[str]]) -> None:
        padded = [row if len(row) >= width_needed else row + [""] * (width_needed - len(row)) for row in chunk]
        for reader, column in zip(readers, zip(*map(take, padded))):  # transposed in C: fast
            # No strip: skipinitialspace removes the spaces of Discover's ", " (a blank cell is "").
            reader.feed([cell.replace(",", ".") for cell in column] if delimiter == ";" else list(column), lines)

    lines, chunk = [], []
    reader = _reader(text, delimiter)
    try:
        for row in itertools.islice(reader, data_start, None):
            lines.append(reader.line_num)
            chunk.append(row)
            if len(chunk) > ROWS_PER_CHUNK:
                feed(lines[:ROWS_PER_CHUNK], chunk[:ROWS_PER_CHUNK])
                lines, chunk = lines[ROWS_PER_CHUNK:], chunk[ROWS_PER_CHUNK:]
    except csv.Error as error:
        raise DelsysCsvError(f"{path}: line {reader.line_num + 1}: not readable as CSV: {error}") from None
    trailing_empty = False
    while chunk and not any(cell.strip() for cell in chunk[-1]):
        lines.pop(), chunk.pop()
        trailing_empty = True
    cut_line = None
    if chunk and not trailing_empty and not text.endswith(("\n", "\r")) and len(chunk[-1]) < width:
        cut_line = lines.pop()
        chunk.pop()
    feed(lines, chunk)
    return cut_line


def _rate_from_time(times: np.ndarray, cells: list[str], where: str) -> tuple[float, float]:
    """(rate, uncertainty) in Hz from a time column: the median step over half-file baselines (robust to a
    few bad cells, precise to the printed digits), checked against the median single step."""
    if times.size < 3:
        raise DelsysCsvError(f"{where}: fewer than 3 samples; cannot read the rate from its time column")
    typical = float(np.median(np.diff(times)))
    if not typical > 0:
        raise DelsysCsvError(f"{where}: its time column does not increase")
    lag = (times.size - 1) // 2
    step = float(np.median((times[lag:] - times[:-lag]) / lag))
    units = []
    for cell in cells:  # the last printed cells: the coarsest digits when the times are printed to N figures
        try:
            decimal = Decimal(cell)
        except InvalidOperation:
            continue
        if decimal.is_finite() and decimal != 0 and decimal.as_tuple().exponent < 4:
            units.append(10.0 ** decimal.as_tuple().exponent)
    resolution = float(np.median(units)) if units else 0.0
    if not step > 0 or abs(typical - step) > resolution + 0.02 * step:
        raise DelsysCsvError(f"{where}: its time column is irregular (typical step {typical:.7f} s, {step:.7f} s on "
                             "average): gaps or restarts in the recording are not supported")
    return 1.0 / step, resolution / lag / step**2


def _channel(column: _Column, readers: dict[int, _ColumnReader], rate_row: list[str] | None, software: str | None,
             path: Path) -> DelsysChannel:
    where = f"{path}: column {column.index + 1} {column.name!r}"
    modality, axis = _modality_axis(column.match)
    rest = column.channel[column.match.end():]
    written = [b.strip() for b in BRACKETS.findall(rest) if b.strip() and not RATE_IN_NAME.search(b)]
    if not written and software is None:
        raise DelsysCsvError(f"{where}: no unit in the name, and the file does not say which software wrote it (no "
                             "'Application:' row, no X[s] time columns); write the unit, e.g. 'EMG 1 (mV)'")
    unit = written[0] if written else UNITS_NOT_WRITTEN[software][modality]
    key = unit.lower().replace(" ", "")
    if key not in UNIT_SCALES[modality]:
        raise DelsysCsvError(f"{where}: unit {unit!r} is not one of {', '.join(UNIT_SCALES[modality])}")
    values = readers[column.index].values() * UNIT_SCALES[modality][key]
    if not values.size:
        raise DelsysCsvError(f"{where}: no samples (its first data cell is blank)")
    printed = RATE_IN_NAME.search(column.channel)
    printed = printed["rate"] if printed else None
    cell = rate_row[column.index] if rate_row is not None and column.index < len(rate_row) else ""
    if printed is None and cell:
        if not RATE_CELL.match(cell):
            raise DelsysCsvError(f"{where}: {cell!r} in the rate row is not a rate such as '1259.2593 Hz'")
        printed = RATE_CELL.match(cell)["rate"]
    timed = None
    if column.time_index is not None:
        time_reader = readers[column.time_index]
        timed = _rate_from_time(time_reader.values(), time_reader.tail, where)
    if printed is not None:
        rate = snap_rate(printed, where)
        if timed and abs(timed[0] - float(rate)) > timed[1] + 0.01 * float(rate):
            raise DelsysCsvError(f"{where}: the header says {float(rate):.3f} Hz but its time column steps "
                                 f"{1 / timed[0]:.6f} s, {timed[0]:.3f} Hz (mismatched rates)")
    elif timed:
        rate = snap_rate(timed[0], f"{where} (rate from its time column)", timed[1])
    else:
        raise DelsysCsvError(f"{where}: no rate (none in its name, no rate row, no time column)")
    return DelsysChannel(column.name, column.index + 1, modality, axis, UNITS[modality], unit, rate, values)


def _check_spans(sensors: tuple[DelsysSensor, ...], path: Path) -> None:
    """All channels cover the same time, as Recording.validate asks of sEMG and IMU (catches wrong rates)."""
    channels = [(sensor, channel) for sensor in sensors for channel in sensor.channels]
    longest = max(channels, key=lambda pair: pair[1].duration_s)
    shortest = min(channels, key=lambda pair: pair[1].duration_s)
    if longest[1].duration_s - shortest[1].duration_s > DURATION_TOLERANCE_S:
        describe = [f"sensor {s.name!r} {c.name!r} (column {c.column}) spans {c.duration_s:.3f} s ({c.values.size} "
                    f"samples at {float(c.rate_hz):.4f} Hz)" for s, c in (longest, shortest)]
        raise DelsysCsvError(f"{path}: {describe[0]} but {describe[1]}: more than {DURATION_TOLERANCE_S} s apart; the "
                             "rates in the file do not match the sample counts")


def _software(application: str | None, names: list[str], modes) -> str | None:
    """Which program wrote the file, for the units it does not write."""
    if application and "emgworks" in application.lower():
        return "EMGworks"
    if application and "discover" in application.lower():
        return "Trigno Discover"
    if any(re.fullmatch(r"x\s*\[s\]", name, re.IGNORECASE) for name in names):
        return "EMGworks"
    if modes or any("time series" in name.lower() for name in names):
        return "Trigno Discover"
    return None


def read_delsys_export(path: str | Path) -> DelsysExport:
    """Parse one export into a plain description (no Recording constraints): see the module docstring."""
    path = Path(path)
    text = _decode(path)
    delimiter = ","
    head = _head(text, delimiter, path)
    header = _find_channel_row(head)
    if header is None and ";" in text[:4000]:  # ";" exports write decimal commas
        semicolon_head = _head(text, ";", path)
        header = _find_channel_row(semicolon_head)
        delimiter, head = (";", semicolon_head) if header is not None else (delimiter, head)
    if header is None:
        raise DelsysCsvError(f"{path}: no channel-name row found: expected, just above the data (or above its rate "
                             "row), a row naming each column's channel, such as 'EMG 1 (mV), ACC X (G), GYRO X "
                             "(deg/s)', 'EMG 1 (1259Hz)' or 'EMG 1 Time Series (s), EMG 1 (mV)' (Trigno Discover), "
                             "or 'X[s], Avanti sensor 1: EMG 1' (EMGworks); is this a Delsys CSV export?")
    names = head[header]
    width = max((index + 1 for index, name in enumerate(names) if name), default=0)
    metadata = {}
    for row in head[:header]:
        cells = [cell for cell in row if cell]
        if cells and cells[0].endswith(":"):
            metadata[cells[0][:-1].strip()] = cells[1] if len(cells) > 1 else ""
    sensors_row, modes_row = _sensor_rows(head, header, width)
    software = _software(metadata.get("Application"), names, modes_row)
    skipped: list[Skipped] = []
    kept = _kept_columns(_group_by_sensor(names, sensors_row, modes_row, path), skipped)
    if not kept:
        raise DelsysCsvError(f"{path}: no sEMG sensor found (skipped: {'; '.join(map(str, skipped)) or 'nothing'})")
    columns = [column for group in kept.values() for column in group]
    rate_row, data_start = _rate_row(head, header, columns)
    readers = {column.index: _ColumnReader(column.index, column.name, path) for column in columns}
    readers.update({c.time_index: _ColumnReader(c.time_index, c.time_name, path)
                    for c in columns if c.time_index is not None})
    cut_line = _read_columns(text, delimiter, data_start, list(readers.values()), width, path)
    if cut_line is not None:
        skipped.append(Skipped("last row", f"line {cut_line}", "the file ends in the middle of it (an export cut "
                               "short?): dropped; to_recording cuts the channels to their common span"))
    if not any(reader.arrays for reader in readers.values()):
        raise DelsysCsvError(f"{path}: no data rows after the header (truncated export?)")
    sensors = tuple(DelsysSensor(label, group[0].mode, tuple(_channel(column, readers, rate_row, software, path)
                                                             for column in group))
                    for label, group in kept.items())
    if cut_line is None:
        _check_spans(sensors, path)
    return DelsysExport(path, software, metadata.get("Application"), metadata.get("Date/Time"), metadata, sensors,
                        tuple(skipped), cut_line is not None)


def _recording_modalities(export: DelsysExport) -> tuple[tuple[str, ...], list[str]]:
    """The IMU modalities every kept sensor has on all three axes (the file's layout), and a note for
    each channel set left out because some sensor lacks it (a recording has one layout for all
    sensors: sensors without a gyroscope beside ones with it load as sEMG + ACC)."""
    kept, dropped = [], []
    for modality in ("acc", "gyro"):
        complete = [all(sensor.channel(modality, axis) for axis in AXES) for sensor in export.sensors]
        if all(complete):
            kept.append(modality)
        elif any(sensor.channel(modality, axis) for sensor in export.sensors for axis in AXES):
            lacking = [sensor.name for sensor, has in zip(export.sensors, complete) if not has]
            dropped.append(f"{modality.upper()} left out of every sensor: {', '.join(map(repr, lacking))} "
                           f"{'has' if len(lacking) == 1 else 'have'} no complete {modality.upper()} X/Y/Z")
    return tuple(kept), dropped


# The IMU rate of each Trigno sEMG sensor mode (the trigno profiles of stream.wire.layout): it sets the
# 13.5 ms frame even when no IMU channel is exported.
TRIGNO_IMU_RATE_FOR_EMG = {Fraction(profile["sensors"]["emg_rate_hz"]): Fraction(profile["sensors"]["imu_rate_hz"])
                           for name, profile in PROFILES.items() if name.startswith("trigno")}


def _shared_rate(export: DelsysExport, modalities: tuple[str, ...], what: str) -> Fraction:
    found: dict[Fraction, list[str]] = {}
    for sensor in export.sensors:
        for channel in sensor.channels:
            if channel.modality in modalities:
                found.setdefault(channel.rate_hz, []).append(f"{sensor.name!r} {channel.name!r}")
    if len(found) > 1:
        detail = "; ".join(f"{float(rate):.4f} Hz: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
                           for rate, names in found.items())
        raise DelsysCsvError(f"{export.path}: mismatched rates among {what} channels ({detail}): a recording holds one "
                             f"{what} rate: export all sensors in the same sensor mode")
    return next(iter(found))


def _common_span(emg: list[DelsysChannel], imu: list[DelsysChannel], ratio: Fraction) -> tuple[int, int]:
    """(sEMG samples, IMU samples) that every channel has, cut to the span both modalities cover (a truncated
    export ends the fast sEMG columns early while the slow ones, which fill only the top rows, are complete)."""
    emg_length, imu_length = min(c.values.size for c in emg), min(c.values.size for c in imu)
    emg_length = min(emg_length, math.ceil((imu_length + 1) * ratio))
    return emg_length, min(imu_length, math.ceil(emg_length / ratio) + 1)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def to_recording(export: DelsysExport, sensor_names: list[str] | None = None, label: str | None = None,
                 metadata: dict | None = None) -> Recording:
    """The export as a Recording under the layout it has: every kept sensor's sEMG, and the IMU
    modalities (ACC, GYRO) that every sensor has on all three axes: EMG + ACC + GYRO, EMG + ACC, or
    EMG only (a channel set only some sensors have is left out, with a note in ``metadata.dropped``).
    One sEMG rate and one IMU rate; anything else raises DelsysCsvError with one line.
    ``sensor_names`` renames the sensors in file order; ``label`` annotates the whole recording."""
    sensors = export.sensors
    modalities, dropped = _recording_modalities(export)
    emg_rate = _shared_rate(export, ("emg",), "EMG")
    if modalities:
        imu_rate = _shared_rate(export, modalities, "IMU (" + "/".join(name.upper() for name in modalities) + ")")
    else:
        imu_rate = TRIGNO_IMU_RATE_FOR_EMG.get(emg_rate, Fraction(2000, 27))
    if sensor_names is not None and len(sensor_names) != len(sensors):
        raise DelsysCsvError(f"{export.path}: {len(sensor_names)} sensor names given for {len(sensors)} sensors in the "
                             f"file ({', '.join(sensor.name for sensor in sensors)})")
    emg = [sensor.channel("emg") for sensor in sensors]
    imu = {modality: [sensor.channel(modality, axis) for sensor in sensors for axis in AXES] for modality in modalities}
    imu_channels = [channel for channels in imu.values() for channel in channels]
    if imu_channels:
        emg_length, imu_length = _common_span(emg, imu_channels, emg_rate / imu_rate)
        full = (max(c.values.size for c in emg), max(c.values.size for c in imu_channels))
    else:
        emg_length = min(c.values.size for c in emg)
        imu_length = 0
        full = (max(c.values.size for c in emg), 0)
    info = {_slug(key): value for key, value in export.metadata.items()}  # application, date_time, ...
    info.update({"source_file": export.path.name, "source_format": "delsys-csv", "source_software": export.software,
                 "source_sensors": [s.name for s in sensors], "sensor_modes": [s.mode for s in sensors],
                 "skipped": [str(note) for note in export.skipped],
                 "layout": " + ".join(["EMG"] + [name.upper() for name in modalities])})
    if dropped:
        info["dropped"] = dropped
    if (emg_length, imu_length) != full:
        info["trimmed_to_common_span"] = {"emg_samples": [full[0], emg_length], "imu_samples": [full[1], imu_length]}
    info.update(metadata or {})
    if label:
        info["label"] = label

    def stack(channels: list[DelsysChannel], length: int) -> np.ndarray:
        return np.stack([channel.values[:length] for channel in channels], axis=1).astype(np.float32)

    arrays = {modality: stack(imu[modality], imu_length) if modality in imu else np.zeros((imu_length, 0), np.float32)
              for modality in ("acc", "gyro")}
    recording = Recording(emg=stack(emg, emg_length), acc=arrays["acc"], gyro=arrays["gyro"],
                          emg_rate_hz=emg_rate, imu_rate_hz=imu_rate,
                          sensor_names=tuple(sensor_names or (_slug(sensor.name) for sensor in sensors)),
                          annotations=[Annotation(label, 0, emg_length)] if label else [], metadata=info)
    try:
        recording.validate(str(export.path))
    except ValueError as error:
        raise DelsysCsvError(str(error)) from None
    return recording


def read_delsys_csv(path: str | Path, sensor_names: list[str] | None = None, label: str | None = None,
                    metadata: dict | None = None) -> Recording:
    """``to_recording(read_delsys_export(path), ...)``."""
    return to_recording(read_delsys_export(path), sensor_names, label, metadata)


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
        export = read_delsys_export(arguments.csv)
        for note in export.skipped:
            print(f"train.delsys_csv: skipped {note}", file=sys.stderr)
        recording = to_recording(export, names, arguments.label, extra)
        write_recording(arguments.out, recording)
    except (DelsysCsvError, ValueError, OSError) as error:
        print(f"train.delsys_csv: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    for note in recording.metadata.get("dropped", []):
        print(f"train.delsys_csv: {note}", file=sys.stderr)
    print(f"{arguments.out}: {len(recording.sensor_names)} sensors, {recording.duration_s:.2f} s, "
          f"{recording.layout.describe().removeprefix('custom: ')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
