"""Delsys CSV exports -> DelsysExport -> Recording: the layouts real Trigno Discover (1.4-1.7) and EMGworks
files have, other sensor kinds mixed in, rounded rates, sensor layouts today's Recording cannot hold, bad files.

Every file is written here, from synthetic numbers, in the shape of a real export."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from stream.recording import read_recording
from train.delsys_csv import DelsysCsvError, main, read_delsys_csv, read_delsys_export, snap_rate, to_recording

EMG_RATE, IMU_RATE = Fraction(34000, 27), Fraction(4000, 27)  # 1259.259 Hz and 148.148 Hz
AXES = "XYZ"
# How Trigno Discover prints each rate: inside the names (1.4) and in the rate row (1.5 on).
IN_NAMES = {Fraction(34000, 27): "1259", Fraction(4000, 27): "148", Fraction(30000, 27): "1111",
            Fraction(2000, 27): "74", Fraction(52000, 27): "1926", Fraction(58000, 27): "2148",
            Fraction(120000, 27): "4444", Fraction(60000, 27): "2222"}
IN_RATE_ROW = {Fraction(34000, 27): "1259.2593", Fraction(4000, 27): "148.1481", Fraction(30000, 27): "1111.1111",
               Fraction(2000, 27): "74.0741", Fraction(52000, 27): "1925.9259", Fraction(58000, 27): "2148.1481",
               Fraction(120000, 27): "4444.4444", Fraction(60000, 27): "2222.2222"}


@dataclass
class Channel:
    base: str  # "EMG 1", "ACC X"
    unit: str  # as Trigno Discover writes it: mV, G, deg/s
    rate: Fraction | None  # None: a VO2 Master channel ("-1 Hz", irregular times)
    values: np.ndarray  # NaN: a blank cell


@dataclass
class Sensor:
    label: str
    channels: list[Channel]
    mode: str = "sensor mode: 55"


def trigno_sensor(label, seed, seconds=0.5, emg_rate=EMG_RATE, imu_rate=IMU_RATE, imu=("ACC", "GYRO"), emg="EMG 1"):
    """A Trigno sensor's channels, values rounded to 7 decimals as Trigno Discover prints them."""
    rng = np.random.default_rng(seed)
    channels = [Channel(emg, "mV", emg_rate, np.round(rng.normal(0, 0.05, int(seconds * emg_rate)), 7))]
    for kind, scale, unit in (("ACC", 0.5, "G"), ("GYRO", 40, "deg/s")):
        if kind in imu:
            channels += [Channel(f"{kind} {axis}", unit, imu_rate,
                                 np.round(rng.normal(0, scale, int(seconds * imu_rate)), 7)) for axis in AXES]
    return channels


def other_sensors(seconds=0.5):
    """Sensors that must be skipped, as real Discover exports show them: an EKG and a Snap Lead sensor whose
    channel is labelled 'EMG 1', an analog trigger, a Quattro (four EMG channels)."""
    return [Sensor("SnapLead 05 01332 (62910)", trigno_sensor("", 11, seconds)),
            Sensor("EKG 11 00254 (56807)", trigno_sensor("", 12, seconds)),
            Sensor("Analog 12 00125 trigger (62202)", [Channel("Analog I", "V", Fraction(120000, 27),
                                                               np.zeros(int(seconds * 4444)))], "sensor mode: 423"),
            Sensor("Quattro 19 01639 (79082)", [Channel(f"EMG {n}", "mV", Fraction(60000, 27),
                                                        np.ones(int(seconds * 2222))) for n in range(1, 5)],
                   "sensor mode: 296")]


def vo2_master():
    """A VO2 Master link device: '-1 Hz' rates, irregular times, a blank in the middle of a column."""
    times = np.array([4.194473, 7.371535, 11.26916, 13.945772])
    return Sensor("VO2 Master  (5)", [Channel("Resp. Rate", "BrPM", None, times),
                                       Channel("VO2 Absolute", "mL/min", None, np.array([34689, np.nan, 38212.7, 1]))],
                  "sensor mode: 0")


def cell(value) -> str:
    return "" if np.isnan(value) else repr(float(value))


def time_cell(seconds: float) -> str:
    return f"{seconds:.7f}".rstrip("0").rstrip(".") or "0"  # "0", "0.0005192", "0.0135" as Discover 1.6 writes


def write_lines(path, header, columns, separator=", ", line_end="\n", encoding="utf-8", quote=False):
    length = max(len(column) for column in columns)
    lines = [separator.join(f'"{c}"' if quote and c else c for c in row) for row in header]
    for row in range(length):
        cells = [column[row] if row < len(column) else "" for column in columns]
        lines.append(separator.join(f'"{c}"' if quote and c else c for c in cells))
    path.write_bytes((line_end.join(lines) + line_end).encode(encoding))


def write_discover(path, sensors, variant, application="Trigno Discover (1.5.0)", seconds=0.5, **options):
    """Trigno Discover's layout: three metadata rows, the sensor row (each name above its first column),
    the mode row, the channel row, and per ``variant``: rates in the names (1.4), a rate row under unit
    names (1.5 on), or channels paired with time columns (blank cells under them in the rate row)."""
    sensor_row, mode_row, names, rates, columns = [], [], [], [], []
    for sensor in sensors:
        first = len(names)
        for channel in sensor.channels:
            printed = "-1" if channel.rate is None else (IN_NAMES if variant == "names" else IN_RATE_ROW)[channel.rate]
            values = [cell(v) for v in channel.values]
            if variant == "names":
                names.append(f"{channel.base} ({printed}Hz)")
                columns.append(values)
            elif variant in ("rate_row", "bare_rate_row"):
                names.append(f"{channel.base} ({channel.unit})")
                rates.append(f"{printed} Hz" if variant == "rate_row" else printed)
                columns.append(values)
            else:
                times = (np.arange(len(channel.values)) / float(channel.rate) if channel.rate else
                         np.cumsum(np.full(len(channel.values), 3.1)))
                names += [f"{channel.base} Time Series (s)", f"{channel.base} ({channel.unit})"]
                rates += ["", f"{printed} Hz"]
                columns += [[time_cell(t) for t in times], values]
        sensor_row += [sensor.label] + [""] * (len(names) - first - 1)
        mode_row += [sensor.mode] + [""] * (len(names) - first - 1)
    header = [["Application:", application], ["Date/Time:", "10/8/2022 9:03:20 AM"],
              ["Collection Length (seconds):", f"{seconds:.6f}"], sensor_row + [""], mode_row + [""], names + [""]]
    if rates:
        header.append(rates)
    write_lines(path, header, columns, **options)


def write_emgworks(path, sensors, time_format="{:.10g}"):
    """EMGworks' layout: one header row of X[s] / "Sensor: CHANNEL n" pairs, no units (EMG in V), times in 10
    significant digits. ``sensors``: (label, number, [Channel]) with bases "EMG", "ACC.X", "GYRO.Y", ..."""
    names, columns = [], []
    for label, number, channels in sensors:
        for channel in channels:
            names += ["X[s]", f'"{label}: {channel.base} {number}"']
            times = np.arange(len(channel.values)) / float(channel.rate)
            scale = 1e-3 if channel.base == "EMG" else 1.0  # mV -> V
            columns += [["0.000000"] + [time_format.format(t) for t in times[1:]],
                        [cell(v * scale) for v in channel.values]]
    write_lines(path, [names], columns, separator=",")


def emgworks_channels(seed, seconds=0.5, emg_rate=EMG_RATE, gyro=True):
    channels = trigno_sensor("", seed, seconds, emg_rate, imu=("ACC", "GYRO") if gyro else ("ACC",))
    for channel in channels:
        channel.base = "EMG" if channel.base.startswith("EMG") else channel.base.replace(" ", ".")
    return channels


def assert_channels_equal(export_sensor, channels):
    assert len(export_sensor.channels) == len(channels)
    for parsed, written in zip(export_sensor.channels, channels):
        assert parsed.rate_hz == written.rate and isinstance(parsed.rate_hz, Fraction)
        np.testing.assert_array_equal(parsed.values, written.values)
        assert parsed.values.dtype == np.float64


def assert_recording_holds(recording, sensors):
    emg = np.stack([sensor.channels[0].values for sensor in sensors], axis=1)
    acc = np.stack([c.values for s in sensors for c in s.channels if c.base.startswith("ACC")], axis=1)
    gyro = np.stack([c.values for s in sensors for c in s.channels if c.base.startswith("GYRO")], axis=1)
    np.testing.assert_array_equal(recording.emg, emg.astype(np.float32))
    np.testing.assert_array_equal(recording.acc, acc.astype(np.float32))
    np.testing.assert_array_equal(recording.gyro, gyro.astype(np.float32))
    assert recording.emg.dtype == recording.acc.dtype == recording.gyro.dtype == np.float32


# --- the three Trigno Discover layouts ---------------------------------------------------------------------

def test_discover_1_4_rates_in_the_names(tmp_path):
    kept = [Sensor("EMG 01 04498 (54717)", trigno_sensor("", 1)), Sensor("EMG 02 04284 (55240)", trigno_sensor("", 2))]
    write_discover(tmp_path / "d14.csv", kept[:1] + other_sensors() + kept[1:], "names", "Trigno Discover (1.4.2)")
    export = read_delsys_export(tmp_path / "d14.csv")
    assert (export.application, export.software, export.date_time) == ("Trigno Discover (1.4.2)", "Trigno Discover",
                                                                       "10/8/2022 9:03:20 AM")
    assert [sensor.name for sensor in export.sensors] == ["EMG 01 04498 (54717)", "EMG 02 04284 (55240)"]
    for parsed, written in zip(export.sensors, kept):
        assert_channels_equal(parsed, written.channels)  # "1259Hz" -> exactly 34000/27, "148Hz" -> 4000/27
        assert parsed.mode == "sensor mode: 55" and parsed.layout == "EMG + ACC + GYRO"
    assert [(c.modality, c.axis, c.unit, c.file_unit) for c in export.sensors[0].channels[:2]] == [
        ("emg", "", "mV", "mV"), ("acc", "x", "g", "g")]
    notes = [str(note) for note in export.skipped]
    assert notes == ["sensor 'SnapLead 05 01332 (62910)' (columns 8-14): SnapLead sensor, not an sEMG sensor",
                     "sensor 'EKG 11 00254 (56807)' (columns 15-21): EKG sensor, not an sEMG sensor",
                     "sensor 'Analog 12 00125 trigger (62202)' (column 22): Analog sensor, not an sEMG sensor",
                     "sensor 'Quattro 19 01639 (79082)' (columns 23-26): Quattro sensor, not an sEMG sensor"]
    recording = to_recording(export, label="hello")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    assert recording.sensor_names == ("emg_01_04498_54717", "emg_02_04284_55240")
    assert_recording_holds(recording, kept)
    assert recording.metadata["skipped"] == notes and recording.metadata["application"] == "Trigno Discover (1.4.2)"
    assert recording.annotations[0].end_index == recording.emg.shape[0]


def test_discover_1_5_unit_names_and_a_rate_row(tmp_path):
    rates = dict(emg_rate=Fraction(30000, 27), imu_rate=Fraction(2000, 27))  # printed 1111.1111 Hz, 74.0741 Hz
    kept = [Sensor("EMG 01 04498 (54717)", trigno_sensor("", 3, **rates)),
            Sensor("EMG 03 00191 (71459)", trigno_sensor("", 4, **rates))]
    ekg = Sensor("EKG 09 00254 (56807)", trigno_sensor("", 5, emg="EKG 1", **rates))
    magnetometer = Channel("MAG X", "uT", Fraction(2000, 27), np.ones(37))
    write_discover(tmp_path / "d15.csv", [kept[0], ekg, Sensor(kept[1].label, kept[1].channels + [magnetometer],
                                                                "Sensor Mode: 66")], "rate_row")
    export = read_delsys_export(tmp_path / "d15.csv")
    for parsed, written in zip(export.sensors, kept):
        assert_channels_equal(parsed, written.channels)
    assert export.sensors[0].channels[0].rate_hz == Fraction(10000, 9)
    assert [sensor.mode for sensor in export.sensors] == ["sensor mode: 55", "Sensor Mode: 66"]
    assert [str(note) for note in export.skipped] == [
        "sensor 'EKG 09 00254 (56807)' (columns 8-14): EKG sensor, not an sEMG sensor",
        "channel 'MAG X (uT)' of sensor 'EMG 03 00191 (71459)' (column 22): not EMG, ACC X/Y/Z or GYRO X/Y/Z"]
    recording = to_recording(export, sensor_names=["left", "right"])
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (Fraction(10000, 9), Fraction(2000, 27))
    assert recording.sensor_names == ("left", "right")
    assert_recording_holds(recording, kept)


def test_discover_1_5_rate_row_of_bare_numbers(tmp_path):
    kept = [Sensor("EMG 01 (1)", trigno_sensor("", 6, emg_rate=Fraction(58000, 27)))]  # "2148.1481"
    write_discover(tmp_path / "bare.csv", kept, "bare_rate_row")
    export = read_delsys_export(tmp_path / "bare.csv")
    assert_channels_equal(export.sensors[0], kept[0].channels)


def test_discover_1_6_time_series_pairs_of_emg_and_acc_sensors(tmp_path):
    """Like a real 1.6.4 export: sEMG + ACC sensors (no gyroscope) at 1925.9 / 74.07 Hz beside a VO2 Master."""
    rates = dict(emg_rate=Fraction(52000, 27), imu_rate=Fraction(2000, 27), imu=("ACC",))
    kept = [Sensor("EMG 01 04498 (54717)", trigno_sensor("", 7, **rates)),
            Sensor("EMG 02 04284 (55240)", trigno_sensor("", 8, **rates))]
    write_discover(tmp_path / "d16.csv", kept + [other_sensors()[2], vo2_master()], "time_series",
                   "Trigno Discover (1.6.4)")
    export = read_delsys_export(tmp_path / "d16.csv")
    for parsed, written in zip(export.sensors, kept):
        assert_channels_equal(parsed, written.channels)
        assert parsed.layout == "EMG + ACC (no GYRO)"
    assert [note.what for note in export.skipped] == ["sensor 'Analog 12 00125 trigger (62202)'",
                                                      "sensor 'VO2 Master  (5)'"]
    recording = to_recording(export)  # loaded under the layout it has: sEMG + accelerometer
    assert recording.layout.modalities == ("emg", "acc") and recording.gyro.shape == (recording.acc.shape[0], 0)
    assert recording.acc.shape[1] == 6 and recording.metadata["layout"] == "EMG + ACC"
    np.testing.assert_array_equal(recording.acc[:, 0], kept[0].channels[1].values[:recording.acc.shape[0]].astype(np.float32))


def test_discover_1_7_time_series_pairs_convert(tmp_path):
    kept = [Sensor(f"EMG 0{n} 0000{n} (7000{n})", trigno_sensor("", 20 + n, emg_rate=Fraction(58000, 27)))
            for n in range(1, 4)]
    write_discover(tmp_path / "d17.csv", kept + [vo2_master()], "time_series", "Trigno Discover (1.7.0)")
    recording = read_delsys_csv(tmp_path / "d17.csv")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (Fraction(58000, 27), IMU_RATE)
    assert_recording_holds(recording, kept)


def test_emg_only_sensors_load_as_an_emg_only_layout(tmp_path):
    kept = [Sensor(f"EMG 0{n} (1)", trigno_sensor("", n, imu=())) for n in (1, 2)]
    write_discover(tmp_path / "emg.csv", kept, "rate_row")
    export = read_delsys_export(tmp_path / "emg.csv")
    assert [sensor.layout for sensor in export.sensors] == ["EMG only (no ACC, no GYRO)"] * 2
    assert_channels_equal(export.sensors[1], kept[1].channels)
    recording = to_recording(export)
    assert recording.layout.modalities == ("emg",) and recording.acc.shape == recording.gyro.shape == (0, 0)
    # No IMU channel: the sensor mode's IMU rate still sets the 13.5 ms frame (profile trigno-emg).
    assert recording.layout.frame_period_s == Fraction(27, 2000)
    np.testing.assert_array_equal(recording.emg[:, 1], kept[1].channels[0].values[:len(recording.emg)].astype(np.float32))


# --- EMGworks ---------------------------------------------------------------------------------------------

def test_emgworks_rates_from_the_time_columns(tmp_path):
    sensors = [("Avanti sensor 1", 1, emgworks_channels(30)), ("Avanti sensor 2", 2, emgworks_channels(31))]
    write_emgworks(tmp_path / "w.csv", sensors + [("Analog Input adapter 12", 12, [
        Channel("Analog", "V", Fraction(60000, 27), np.zeros(1111))])])
    export = read_delsys_export(tmp_path / "w.csv")
    assert export.software == "EMGworks" and export.application is None
    assert [note.what for note in export.skipped] == ["sensor 'Analog Input adapter 12'"]
    emg = export.sensors[0].channels[0]
    assert (emg.rate_hz, emg.unit, emg.file_unit) == (EMG_RATE, "mV", "V")
    recording = to_recording(export)
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    assert recording.sensor_names == ("avanti_sensor_1", "avanti_sensor_2")
    written = np.stack([channels[0].values for _, _, channels in sensors], axis=1)
    np.testing.assert_allclose(recording.emg, written, rtol=1e-6, atol=1e-9)  # V -> mV
    np.testing.assert_array_equal(recording.gyro[:, 3:], np.stack([c.values for c in sensors[1][2][4:]], axis=1)
                                  .astype(np.float32))


def test_emgworks_mixed_channel_sets_and_sensor_kinds(tmp_path):
    """As a real EMGworks export: sensor 1 without gyroscope at 1925.9 Hz, sensor 2 with one at 1259.3 Hz,
    Snap-Lead, FSR and EKG sensors mixed in."""
    first, second = emgworks_channels(40, emg_rate=Fraction(52000, 27), gyro=False), emgworks_channels(41)
    fsr = [Channel(f"FSR.{letter}", "%", Fraction(14000, 27), np.zeros(259)) for letter in "AB"]
    ekg = emgworks_channels(42)
    ekg[0].base = "EKG"
    write_emgworks(tmp_path / "mixed.csv", [("Avanti sensor 1", 1, first), ("Avanti sensor 2", 2, second),
                                            ("Snap-Lead sensor 5", 5, emgworks_channels(43)),
                                            ("FSR adapter 9", 9, fsr), ("EKG sensor 11", 11, ekg)])
    export = read_delsys_export(tmp_path / "mixed.csv")
    assert [(s.name, s.layout) for s in export.sensors] == [("Avanti sensor 1", "EMG + ACC (no GYRO)"),
                                                            ("Avanti sensor 2", "EMG + ACC + GYRO")]
    assert [c.rate_hz for c in export.sensors[0].channels] == [Fraction(52000, 27)] + [IMU_RATE] * 3
    np.testing.assert_allclose(export.sensors[0].channels[0].values, first[0].values, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(export.sensors[1].channels[6].values, second[6].values)
    assert [note.what for note in export.skipped] == ["sensor 'Snap-Lead sensor 5'", "sensor 'FSR adapter 9'",
                                                      "sensor 'EKG sensor 11'"]
    # The two sensors run different sensor modes (sEMG at 1925.9 and 1259.3 Hz): one recording has one
    # sEMG clock, so this file is refused in one line naming both (the channel sets alone would load).
    with pytest.raises(DelsysCsvError, match=re.escape(
            "mismatched rates among EMG channels (1925.9259 Hz: 'Avanti sensor 1' 'Avanti sensor 1: EMG 1'; "
            "1259.2593 Hz: 'Avanti sensor 2' 'Avanti sensor 2: EMG 2'): a recording holds one EMG rate")):
        to_recording(export)


def test_emgworks_rates_from_coarse_and_glitched_time_columns(tmp_path):
    """Times printed to 0.1 ms (a 2148 Hz step is 0.47 ms) with two bad cells still give the exact rates."""
    channels = emgworks_channels(45, seconds=1.0, emg_rate=Fraction(58000, 27))
    write_emgworks(tmp_path / "coarse.csv", [("Avanti sensor 1", 1, channels)], time_format="{:.4f}")
    lines = (tmp_path / "coarse.csv").read_text().splitlines()
    for line in (300, 900):
        cells = lines[line].split(",")
        cells[0] = "0.0001"  # a glitch in the EMG time column
        lines[line] = ",".join(cells)
    (tmp_path / "coarse.csv").write_text("\n".join(lines) + "\n")
    export = read_delsys_export(tmp_path / "coarse.csv")
    assert [c.rate_hz for c in export.sensors[0].channels] == [Fraction(58000, 27)] + [IMU_RATE] * 6


def test_emgworks_time_column_that_fits_no_trigno_rate(tmp_path):
    channels = emgworks_channels(50)
    channels[0].rate = Fraction(1500)
    write_emgworks(tmp_path / "t.csv", [("Avanti sensor 1", 1, channels)])
    with pytest.raises(DelsysCsvError, match=r"column 2 'Avanti sensor 1: EMG 1' \(rate from its time column\): "
                                             r"rate 1500.0000 Hz is not a Trigno rate"):
        read_delsys_export(tmp_path / "t.csv")


# --- rates ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("printed, exact", [
    ("1259", Fraction(34000, 27)), ("148", Fraction(4000, 27)), ("74", Fraction(2000, 27)),
    ("1259.2593", Fraction(34000, 27)), ("148.1481", Fraction(4000, 27)), ("1111.1111", Fraction(10000, 9)),
    ("74.0741", Fraction(2000, 27)), ("1925.9259", Fraction(52000, 27)), ("2148.1481", Fraction(58000, 27)),
    ("1259.259", Fraction(34000, 27)), ("2000", Fraction(2000)), ("1.2592593e3", Fraction(34000, 27)),
])
def test_printed_rates_snap_to_the_exact_trigno_rate(printed, exact):
    assert snap_rate(printed, "here") == exact


@pytest.mark.parametrize("printed, message", [
    ("1250", "rate 1250 Hz is not a Trigno rate"), ("1500.000", "rate 1500 Hz is not a Trigno rate"),
    ("1259.2", "rate 1259.2 Hz is not a Trigno rate"), ("-1", "rate -1 Hz is not a Trigno rate"),
    ("0", "rate 0 Hz is not a Trigno rate"), ("1E+3", r"rate 1E\+3 Hz is too coarse to tell which Trigno rate it is"),
    ("fast", "rate 'fast' is not a number"),
])
def test_rates_that_fit_no_trigno_rate_are_refused(printed, message):
    with pytest.raises(DelsysCsvError, match=f"^here: {message}"):
        snap_rate(printed, "here")


def test_a_rate_in_a_name_that_fits_no_trigno_rate_names_the_column(tmp_path):
    sensor = Sensor("EMG 01 (1)", trigno_sensor("", 60))
    write_discover(tmp_path / "n.csv", [sensor], "names")
    text = (tmp_path / "n.csv").read_text().replace("GYRO Y (148Hz)", "GYRO Y (150Hz)")
    (tmp_path / "n.csv").write_text(text)
    with pytest.raises(DelsysCsvError, match=r"n.csv: column 6 'GYRO Y \(150Hz\)': rate 150 Hz is not a Trigno rate"):
        read_delsys_export(tmp_path / "n.csv")


def test_acc_and_gyro_at_different_rates_are_refused(tmp_path):
    channels = trigno_sensor("", 61)
    for channel in channels[4:]:
        channel.rate, channel.values = Fraction(2000, 27), channel.values[:37]
    write_discover(tmp_path / "g.csv", [Sensor("EMG 01 (1)", channels)], "rate_row")
    with pytest.raises(DelsysCsvError, match=r"g.csv: mismatched rates among IMU \(ACC/GYRO\) channels \(148.1481 Hz: "
                                             r"'EMG 01 \(1\)' 'ACC X \(G\)'.*74.0741 Hz: 'EMG 01 \(1\)' 'GYRO X"):
        read_delsys_csv(tmp_path / "g.csv")


def test_spans_that_disagree_are_refused(tmp_path):
    channels = trigno_sensor("", 62, seconds=1.0)
    channels[0].values = np.concatenate([channels[0].values, channels[0].values])  # really 2518.5 Hz
    write_discover(tmp_path / "s.csv", [Sensor("EMG 01 (1)", channels)], "rate_row")
    with pytest.raises(DelsysCsvError, match=r"s.csv: sensor 'EMG 01 \(1\)' 'EMG 1 \(mV\)' \(column 1\) spans 2.000 s "
                                             r"\(2518 samples at 1259.2593 Hz\) but .* spans 0.999 s .*more than "
                                             "0.25 s apart; the rates in the file do not match the sample counts"):
        read_delsys_export(tmp_path / "s.csv")


# --- what else real files do -------------------------------------------------------------------------------

def test_bom_windows_line_endings_quoted_cells_trailing_columns(tmp_path):
    kept = [Sensor("EMG 01 (1)", trigno_sensor("", 70)), Sensor("EMG 02 (2)", trigno_sensor("", 71))]
    write_discover(tmp_path / "w.csv", kept, "rate_row", line_end="\r\n", encoding="utf-8-sig", quote=True)
    recording = read_delsys_csv(tmp_path / "w.csv")
    assert recording.metadata["application"] == "Trigno Discover (1.5.0)"
    assert_recording_holds(recording, kept)


def test_semicolons_and_decimal_commas(tmp_path):
    kept = [Sensor("EMG 01 (1)", trigno_sensor("", 72))]
    write_discover(tmp_path / "c.csv", kept, "rate_row", separator=";")
    text = (tmp_path / "c.csv").read_text()
    (tmp_path / "c.csv").write_text(re.sub(r"(\d)\.(\d)", r"\1,\2", text))
    assert_recording_holds(read_delsys_csv(tmp_path / "c.csv"), kept)


def test_command_line_prints_skipped_and_refuses_in_one_line(tmp_path, capsys):
    kept = [Sensor("EMG 01 04498 (54717)", trigno_sensor("", 80))]
    write_discover(tmp_path / "d.csv", kept + other_sensors()[:2], "names")
    assert main([str(tmp_path / "d.csv"), "--out", str(tmp_path / "d.h5"), "--label", "water", "--signer", "s9"]) == 0
    recording = read_recording(tmp_path / "d.h5")
    assert recording.metadata["signer"] == "s9" and recording.annotations[0].label == "water"
    assert capsys.readouterr().err.splitlines() == [
        "train.delsys_csv: skipped sensor 'SnapLead 05 01332 (62910)' (columns 8-14): SnapLead sensor, not an sEMG "
        "sensor",
        "train.delsys_csv: skipped sensor 'EKG 11 00254 (56807)' (columns 15-21): EKG sensor, not an sEMG sensor"]
    assert main([str(tmp_path / "d.csv"), "--out", str(tmp_path / "d.h5")]) == 2
    assert "already exists" in capsys.readouterr().err
    write_discover(tmp_path / "acc.csv", [Sensor("EMG 01 (1)", trigno_sensor("", 81, imu=("ACC",)))], "rate_row")
    assert main([str(tmp_path / "acc.csv"), "--out", str(tmp_path / "acc.h5")]) == 0
    assert read_recording(tmp_path / "acc.h5").layout.modalities == ("emg", "acc")
    assert "emg 1 x" in capsys.readouterr().out


# --- the layouts of the first version of this loader (kept working) ----------------------------------------

def signals(sensors=3, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    emg_n, imu_n = int(seconds * EMG_RATE), int(seconds * IMU_RATE)
    return (rng.normal(0, 0.05, (emg_n, sensors)), rng.normal(0, 0.5, (imu_n, 3 * sensors)),
            rng.normal(0, 40, (imu_n, 3 * sensors)))


def discover_columns(emg, acc, gyro, emg_rate=EMG_RATE, imu_rate=IMU_RATE, drop=(), extra_ekg=False):
    """(sensor row, channel row, rate row, columns): each channel after its own time column."""
    sensor_row, names, rates, columns = [], [], [], []

    def add(sensor_label, first, name, rate, values):
        sensor_row.extend([sensor_label if first else "", ""])
        names.extend([f"{name.split(' (')[0]} Time Series (s)", name])
        rates.extend(["", f"{float(rate):.3f} Hz"])
        columns.extend([np.arange(len(values)) / float(rate), values])

    for sensor in range(emg.shape[1]):
        label = f"Avanti Sensor {sensor + 1} (8954{sensor})"
        channel_list = [("EMG 1 (mV)", emg_rate, emg[:, sensor])]
        channel_list += [(f"ACC {a} (G)", imu_rate, acc[:, 3 * sensor + k]) for k, a in enumerate(AXES)]
        channel_list += [(f"GYRO {a} (deg/s)", imu_rate, gyro[:, 3 * sensor + k]) for k, a in enumerate(AXES)]
        first = True
        for name, rate, values in channel_list:
            if (sensor, name) in drop:
                continue
            add(label, first, name, rate, values)
            first = False
    if extra_ekg:
        add("EKG Sensor 9 (77777)", True, "EKG (mV)", Fraction(2000), np.zeros(len(emg) * 2000 // 1259))
    return sensor_row, names, rates, columns


def write_rows(path, head, columns):
    length = max(len(column) for column in columns)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(head)
        for row in range(length):
            writer.writerow([repr(float(column[row])) if row < len(column) else "" for column in columns])


def write_old_discover(path, emg, acc, gyro, **options):
    sensor_row, names, rates, columns = discover_columns(emg, acc, gyro, **options)
    head = [["Application:", "Trigno Discover (2.1.0.7)"], ["Date/Time:", "2026/09/29 15:50:51"],
            ["Collection Length (seconds):", "1.0"], sensor_row, ["sensor mode: 40"] + [""] * (len(names) - 1),
            names, rates, ["" if not rate else f"{1 / float(rate.split()[0]):.6f} s" for rate in rates]]
    write_rows(path, head, columns)


def test_time_series_layout_with_a_period_row_round_trips(tmp_path):
    emg, acc, gyro = signals()
    write_old_discover(tmp_path / "discover.csv", emg, acc, gyro, extra_ekg=True)
    recording = read_delsys_csv(tmp_path / "discover.csv", sensor_names=["a", "b", "c"], label="hello")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    assert recording.sensor_names == ("a", "b", "c")
    np.testing.assert_array_equal(recording.emg, emg.astype(np.float32))
    np.testing.assert_array_equal(recording.acc, acc.astype(np.float32))
    np.testing.assert_array_equal(recording.gyro, gyro.astype(np.float32))
    assert recording.metadata["application"] == "Trigno Discover (2.1.0.7)"
    assert recording.metadata["skipped"] == ["sensor 'EKG Sensor 9 (77777)' (columns 43-44): EKG sensor, not an "
                                             "sEMG sensor"]
    assert recording.annotations[0].label == "hello" and recording.annotations[0].end_index == len(emg)


def test_emgworks_units_in_the_names(tmp_path):
    emg, acc, gyro = signals(sensors=2, seed=1)
    names, columns = [], []
    for sensor in range(2):
        names += ["X[s]", f"R MUSCLE {sensor + 1}: EMG {sensor + 1} [V]"]
        columns += [np.arange(len(emg)) / float(EMG_RATE), emg[:, sensor] / 1000.0]
        for kind, data, unit in (("ACC", acc, "g"), ("GYRO", gyro, "deg/s")):
            for k, axis in enumerate(AXES):
                names += ["X[s]", f"R MUSCLE {sensor + 1}: {kind} {axis} {sensor + 1} [{unit}]"]
                columns += [np.arange(len(data)) / float(IMU_RATE), data[:, 3 * sensor + k]]
    write_rows(tmp_path / "emgworks.csv", [["Label:", "trial 3"], [], names], columns)
    recording = read_delsys_csv(tmp_path / "emgworks.csv")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    assert recording.sensor_names == ("r_muscle_1", "r_muscle_2")
    np.testing.assert_allclose(recording.emg, emg, rtol=1e-6, atol=1e-9)  # V -> mV
    np.testing.assert_array_equal(recording.gyro, gyro.astype(np.float32))


def test_rates_and_units_inside_the_channel_names(tmp_path):
    emg, acc, gyro = signals(sensors=1, seed=2)
    names, columns = [], []
    names += ["Time Series (s)", "Sensor 1: EMG 1 (mV) 1259.259 Hz"]
    columns += [np.arange(len(emg)) / float(EMG_RATE), emg[:, 0]]
    for kind, data, unit in (("ACC", acc, "G"), ("GYRO", gyro, "deg/s")):
        for k, axis in enumerate(AXES):
            names += ["Time Series (s)", f"Sensor 1: {kind} {axis} ({unit}) 148.148 Hz"]
            columns += [np.arange(len(data)) / float(IMU_RATE), data[:, k]]
    write_rows(tmp_path / "named.csv", [names], columns)
    recording = read_delsys_csv(tmp_path / "named.csv")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    np.testing.assert_array_equal(recording.acc, acc.astype(np.float32))


def test_missing_axis_is_named(tmp_path):
    emg, acc, gyro = signals()
    write_old_discover(tmp_path / "m.csv", emg, acc, gyro, drop={(1, "GYRO Z (deg/s)")})
    recording = read_delsys_csv(tmp_path / "m.csv")  # a gyroscope without Z is no gyroscope: left out, said so
    assert recording.layout.modalities == ("emg", "acc")
    assert recording.metadata["dropped"] == ["GYRO left out of every sensor: 'Avanti Sensor 2 (89541)' has no complete "
                                             "GYRO X/Y/Z"]


def test_mismatched_rates_are_refused(tmp_path):
    emg, acc, gyro = signals()
    sensor_row, names, rates, columns = discover_columns(emg, acc, gyro)
    rates[1] = "1111.111 Hz"  # the header disagrees with the time column
    write_rows(tmp_path / "h.csv", [sensor_row, names, rates], columns)
    with pytest.raises(DelsysCsvError, match="h.csv: column 2 'EMG 1 .mV.': the header says 1111.111 Hz.*mismatched"):
        read_delsys_csv(tmp_path / "h.csv")
    columns[0] = np.arange(1111) / (30000 / 27)  # sensor 1 really recorded in another mode
    columns[1] = np.zeros(1111)
    write_rows(tmp_path / "r.csv", [sensor_row, names, rates], columns)
    with pytest.raises(DelsysCsvError, match=r"r.csv: mismatched rates among EMG channels \(1111.1111 Hz: 'Avanti "
                                             r"Sensor 1 \(89540\)' 'EMG 1 \(mV\)'; 1259.2593 Hz: "):
        read_delsys_csv(tmp_path / "r.csv")


def test_non_trigno_rate_is_refused(tmp_path):
    emg, acc, gyro = signals()
    write_old_discover(tmp_path / "k.csv", emg, acc, gyro, emg_rate=Fraction(1500))
    with pytest.raises(DelsysCsvError, match=r"k.csv: column 2 'EMG 1 \(mV\)': rate 1500 Hz is not a Trigno rate"):
        read_delsys_csv(tmp_path / "k.csv")


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("Application:,Trigno Discover\nhello,world\n", "no channel-name row found: expected, just above the data "
                                                    r"\(or above its rate row\), a row naming each column's channel"),
    ("EMG 1 Time Series (s),EMG 1 (mV)\n, 1259.259 Hz\n", "no data rows"),
    ("X[s],Sensor 1: EMG 1 (furlongs)\n0.0,1.0\n", "unit 'furlongs'"),
    ("X[s],Sensor 1: EMG 1 (mV),X[s],Sensor 1: ACC X 1 (g)\n0,1,0,1\n0.00675,1,0.00675,2\n0.0135,1,0.0135,oops\n",
     "line 4, column 4 'Sensor 1: ACC X 1 .g.': 'oops' is not a number"),
    ("EKG 11 00254 (56807),\nEMG 1 (mV),ACC X (G)\n1259.2593 Hz,148.1481 Hz\n0.1,0.2\n",
     r"no sEMG sensor found \(skipped: sensor 'EKG 11 00254 \(56807\)' \(columns 1-2\): EKG sensor"),
])
def test_bad_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DelsysCsvError, match=message):
        read_delsys_csv(path)


def test_truncated_export_and_blank_holes(tmp_path):
    emg, acc, gyro = signals()
    write_old_discover(tmp_path / "t.csv", emg, acc, gyro)
    text = (tmp_path / "t.csv").read_text()
    (tmp_path / "cut.csv").write_text(text[: int(len(text) * 0.6)])  # cut mid-row: shorter, still usable
    export = read_delsys_export(tmp_path / "cut.csv")
    assert export.truncated and export.skipped[-1].what == "last row"
    recording = to_recording(export)
    assert 0 < recording.emg.shape[0] < len(emg) and recording.acc.shape[0] < len(acc)
    assert recording.metadata["trimmed_to_common_span"]["emg_samples"][1] == recording.emg.shape[0]
    np.testing.assert_array_equal(recording.emg, emg[: recording.emg.shape[0]].astype(np.float32))
    lines = text.splitlines()
    cells = lines[20].split(",")
    cells[1] = ""  # a hole in an EMG column with values below it
    lines[20] = ",".join(cells)
    (tmp_path / "hole.csv").write_text("\n".join(lines))
    with pytest.raises(DelsysCsvError, match="column 2 'EMG 1 .mV.' has a blank cell at line 21 and values after it"):
        read_delsys_csv(tmp_path / "hole.csv")
    with pytest.raises(DelsysCsvError, match="no such file"):
        read_delsys_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 7, 148])
def test_reading_in_chunks_matches_reading_at_once(tmp_path, monkeypatch, rows_per_chunk):
    kept = [Sensor("EMG 01 (1)", trigno_sensor("", 90, seconds=0.2)), Sensor("EMG 02 (2)", trigno_sensor("", 91, 0.2))]
    write_discover(tmp_path / "c.csv", kept, "time_series", seconds=0.2)
    monkeypatch.setattr("train.delsys_csv.ROWS_PER_CHUNK", rows_per_chunk)
    assert_recording_holds(read_delsys_csv(tmp_path / "c.csv"), kept)
    lines = (tmp_path / "c.csv").read_text().splitlines()
    cells = lines[-3].split(", ")
    cells[3] = "0.5"  # a value under the end of the ACC X column (column 4), in a later chunk
    lines[-3] = ", ".join(cells)
    (tmp_path / "hole.csv").write_text("\n".join(lines) + "\n")
    acc_end = 7 + len(kept[0].channels[1].values) + 1  # header rows, then the ACC X samples; first blank line
    with pytest.raises(DelsysCsvError, match=f"column 4 'ACC X \\(G\\)' has a blank cell at line {acc_end} and values "
                                             f"after it \\(line {len(lines) - 2}\\)"):
        read_delsys_export(tmp_path / "hole.csv")
