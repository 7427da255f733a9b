"""Delsys CSV exports -> Recording: three header layouts, blank cells, mixed sensors, bad files."""

from __future__ import annotations

import csv
from fractions import Fraction

import numpy as np
import pytest

from stream.recording import read_recording
from train.delsys_csv import DelsysCsvError, main, read_delsys_csv

EMG_RATE, IMU_RATE = Fraction(34000, 27), Fraction(4000, 27)  # 1259.259 Hz and 148.148 Hz
AXES = "XYZ"


def signals(sensors=3, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    emg_n, imu_n = int(seconds * EMG_RATE), int(seconds * IMU_RATE)
    return (rng.normal(0, 0.05, (emg_n, sensors)), rng.normal(0, 0.5, (imu_n, 3 * sensors)),
            rng.normal(0, 40, (imu_n, 3 * sensors)))


def discover_columns(emg, acc, gyro, emg_rate=EMG_RATE, imu_rate=IMU_RATE, drop=(), extra_ekg=False):
    """(sensor row, channel row, rate row, columns) in Trigno Discover's layout: each channel after its
    own time column, the sensor name above the first column of its group."""
    sensor_row, names, rates, columns = [], [], [], []

    def add(sensor_label, first, name, rate, values):
        sensor_row.extend([sensor_label if first else "", ""])
        names.extend([f"{name.split(' (')[0]} Time Series (s)", name])
        rates.extend(["", f"{float(rate):.3f} Hz"])
        columns.extend([np.arange(len(values)) / float(rate), values])

    for sensor in range(emg.shape[1]):
        label = f"Avanti Sensor {sensor + 1} (8954{sensor})"
        channel_list = [(f"EMG 1 (mV)", emg_rate, emg[:, sensor])]
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


def write_discover(path, emg, acc, gyro, **options):
    sensor_row, names, rates, columns = discover_columns(emg, acc, gyro, **options)
    head = [["Application:", "Trigno Discover (2.1.0.7)"], ["Date/Time:", "2026/09/29 15:50:51"],
            ["Collection Length (seconds):", "1.0"], sensor_row, ["sensor mode: 40"] + [""] * (len(names) - 1),
            names, rates, ["" if not rate else f"{1 / float(rate.split()[0]):.6f} s" for rate in rates]]
    write_rows(path, head, columns)


def test_trigno_discover_layout_round_trips(tmp_path):
    emg, acc, gyro = signals()
    write_discover(tmp_path / "discover.csv", emg, acc, gyro, extra_ekg=True)
    recording = read_delsys_csv(tmp_path / "discover.csv", sensor_names=["a", "b", "c"], label="hello")
    assert (recording.emg_rate_hz, recording.imu_rate_hz) == (EMG_RATE, IMU_RATE)
    assert recording.sensor_names == ("a", "b", "c")
    np.testing.assert_array_equal(recording.emg, emg.astype(np.float32))
    np.testing.assert_array_equal(recording.acc, acc.astype(np.float32))
    np.testing.assert_array_equal(recording.gyro, gyro.astype(np.float32))
    assert recording.metadata["application"] == "Trigno Discover (2.1.0.7)"
    assert recording.metadata["ignored_channels"] == ["EKG (mV)"]
    assert recording.annotations[0].label == "hello" and recording.annotations[0].end_index == len(emg)


def test_emgworks_layout_reads_rates_from_the_time_columns(tmp_path):
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


def test_rates_inside_the_channel_names(tmp_path):
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


def test_command_line_writes_our_format(tmp_path, capsys):
    emg, acc, gyro = signals()
    write_discover(tmp_path / "d.csv", emg, acc, gyro)
    assert main([str(tmp_path / "d.csv"), "--out", str(tmp_path / "d.h5"), "--label", "water", "--signer", "s9"]) == 0
    recording = read_recording(tmp_path / "d.h5")
    assert recording.metadata["signer"] == "s9" and recording.annotations[0].label == "water"
    assert main([str(tmp_path / "d.csv"), "--out", str(tmp_path / "d.h5")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_missing_channel_is_named(tmp_path):
    emg, acc, gyro = signals()
    write_discover(tmp_path / "m.csv", emg, acc, gyro, drop={(1, "GYRO Z (deg/s)")})
    with pytest.raises(DelsysCsvError, match=r"m.csv: sensor 'Avanti Sensor 2 \(89541\)' is missing channel\(s\) GYRO Z"):
        read_delsys_csv(tmp_path / "m.csv")


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
    with pytest.raises(DelsysCsvError, match="r.csv: mismatched rates among EMG channels"):
        read_delsys_csv(tmp_path / "r.csv")


def test_non_trigno_rate_is_refused(tmp_path):
    emg, acc, gyro = signals()
    write_discover(tmp_path / "k.csv", emg, acc, gyro, emg_rate=Fraction(1500))
    with pytest.raises(DelsysCsvError, match="rate 1500 Hz is not a Trigno rate"):
        read_delsys_csv(tmp_path / "k.csv")


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("Application:,Trigno Discover\nhello,world\n", "no channel-name row"),
    ("EMG 1 Time Series (s),EMG 1 (mV)\n, 1259.259 Hz\n", "no data rows"),
    ("X[s],Sensor 1: EMG 1 (furlongs)\n0.0,1.0\n", "unit 'furlongs'"),
    ("X[s],Sensor 1: EMG 1 (mV),X[s],Sensor 1: ACC X 1 (g)\n0,1,0,1\n0.00675,1,0.00675,2\n0.0135,1,0.0135,oops\n",
     "'oops' is not a number"),
])
def test_bad_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DelsysCsvError, match=message):
        read_delsys_csv(path)


def test_truncated_export_and_blank_holes(tmp_path):
    emg, acc, gyro = signals()
    write_discover(tmp_path / "t.csv", emg, acc, gyro)
    text = (tmp_path / "t.csv").read_text()
    (tmp_path / "cut.csv").write_text(text[: int(len(text) * 0.6)])  # cut mid-row: shorter, still usable
    recording = read_delsys_csv(tmp_path / "cut.csv")
    assert 0 < recording.emg.shape[0] < len(emg) and recording.acc.shape[0] < len(acc)
    assert recording.metadata["trimmed_to_common_span"]["emg_samples"][1] == recording.emg.shape[0]
    lines = text.splitlines()
    cells = lines[20].split(",")
    cells[1] = ""  # a hole in an EMG column with values below it
    lines[20] = ",".join(cells)
    (tmp_path / "hole.csv").write_text("\n".join(lines))
    with pytest.raises(DelsysCsvError, match="blank cell at line 21 and values after it"):
        read_delsys_csv(tmp_path / "hole.csv")
    with pytest.raises(DelsysCsvError, match="no such file"):
        read_delsys_csv(tmp_path / "absent.csv")
