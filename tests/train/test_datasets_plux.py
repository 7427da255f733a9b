"""PLUX OpenSignals reader and saturation masks: the three real files, synthetic HDF5 files, clipped sines."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from train.datasets.plux import PluxFileError, counts_to_mv, read_plux, sequence_gaps
from train.datasets.saturation import default_margin_counts, saturated_runs, saturated_samples

from real_data import PLUX
from real_data import needs_plux as needs_data


@pytest.fixture(scope="module")
def real():
    if not (PLUX / "emg_fatigue.h5").is_file():
        pytest.skip(f"real data absent: {PLUX} not found")
    return {name: read_plux(PLUX / f"{name}.h5") for name in ("emg_bursts", "emg_fatigue", "emg_1000_hz_16_bits_solo")}


def write_opensignals(path: Path, counts, bits=16, sequence=None, sensor="EMG", devices=("00:07:80:00:00:01",),
                      rate=1000, raw=True):
    """A minimal file in OpenSignals' layout (as read from the real files)."""
    import h5py

    counts = np.asarray(counts)
    with h5py.File(path, "w") as handle:
        for mac in devices:
            group = handle.create_group(mac)
            group.attrs.update({"sampling rate": np.int32(rate), "resolution": np.array([bits], dtype=np.int32),
                                "channels": np.array([1], dtype=np.int32), "device": "channeller",
                                "date": "2020-1-2", "time": "10:00:00.0", "nsamples": np.int32(len(counts))})
            if not raw:
                continue
            dataset = group.create_dataset("raw/channel_1", data=counts.reshape(-1, 1).astype(np.uint32))
            dataset.attrs.update({"label": "PORT1_CHN1", "sensor": sensor})
            if sequence is None:
                sequence = np.arange(len(counts)) % 65536
            group.create_dataset("raw/nSeq", data=np.asarray(sequence).reshape(-1, 1).astype(np.uint16))
    return path


# --- the real files -----------------------------------------------------------------------------

@needs_data
def test_real_layout_rates_and_units(real):
    expected = {"emg_bursts": ("channeller", 16, "channel_3", "PORT3_CHN1", 28519, "Biceps Brachii"),
                "emg_fatigue": ("bioplux", 12, "channel_2", "CH2", 126900, "Biceps Brachii"),
                "emg_1000_hz_16_bits_solo": ("channeller", 16, "channel_1", "PORT1_CHN1", 87600, "Adductor pollicis")}
    for name, (device, bits, channel, label, samples, muscle) in expected.items():
        recording = real[name]
        assert (recording.device, recording.resolution_bits, recording.rate_hz) == (device, bits, Fraction(1000))
        assert recording.channel_names == (channel,) and recording.channel_labels == (label,)
        assert recording.counts.shape == recording.signal_mv.shape == recording.saturated.shape == (samples, 1)
        assert recording.muscle == muscle and recording.description
        assert np.abs(recording.signal_mv).max() <= 1.5
        np.testing.assert_allclose(recording.signal_mv, counts_to_mv(recording.counts, bits))
    assert abs(real["emg_fatigue"].duration_s - 126.9) < 1e-9 and abs(real["emg_bursts"].duration_s - 28.519) < 1e-9


@needs_data
def test_real_fatigue_info_json_disagrees_on_resolution_and_the_file_wins(real):
    fatigue = real["emg_fatigue"]
    assert json.loads((PLUX / "emg_fatigue_info.json").read_text())["Resolutions"] == "16 bits"
    assert fatigue.resolution_bits == 12 and (fatigue.counts.min(), fatigue.counts.max()) == (0, 4095)
    assert any("info json says 16 bits" in note for note in fatigue.notes)


@needs_data
def test_real_sequence_counter_stops_at_65535_without_gaps(real):
    assert real["emg_bursts"].sequence_gaps == [] and real["emg_bursts"].sequence_checked_samples == 28519
    for name in ("emg_fatigue", "emg_1000_hz_16_bits_solo"):
        assert real[name].sequence_gaps == []
        assert real[name].sequence_checked_samples == 65536
        assert any("nSeq stops at 65535" in note for note in real[name].notes)


@needs_data
def test_real_saturation_counts(real):
    fatigue = real["emg_fatigue"]
    # 12 samples at 0, 157 at 1, 6 at 2; 26 at 4095, 3 at 4094, 2 at 4093 (margin 2 counts).
    assert int(fatigue.saturated.sum()) == 206 and len(saturated_runs(fatigue.saturated)) == 136
    exact = saturated_samples(fatigue.counts, 12, margin_counts=0)
    assert int(exact.sum()) == 38 and len(saturated_runs(exact)) == 34
    assert int(real["emg_bursts"].saturated.sum()) == 0
    assert int(real["emg_1000_hz_16_bits_solo"].saturated.sum()) == 1  # a spike down to 21 counts of 65535


# --- synthetic files ----------------------------------------------------------------------------

def test_synthetic_file_round_trip_and_transfer_function(tmp_path):
    counts = np.array([0, 16384, 32768, 49152, 65535] * 20)
    recording = read_plux(write_opensignals(tmp_path / "a.h5", counts))
    np.testing.assert_allclose(recording.signal_mv[:5, 0], [-1.5, -0.75, 0.0, 0.75, 1.5 - 3 / 65536])
    assert recording.sequence_gaps == [] and recording.sequence_checked_samples == 100
    assert recording.description is None and recording.notes == []
    assert recording.saturated[:5, 0].tolist() == [True, False, False, False, True]


def test_sequence_gaps_wrap_and_stuck_counter():
    assert sequence_gaps(np.r_[np.arange(10), np.arange(15, 20)]) == ([(10, 5)], 15)
    assert sequence_gaps(np.r_[np.arange(65530, 65536), np.arange(0, 5)]) == ([], 11)
    stuck = np.r_[np.arange(65536), np.full(1000, 65535)]
    assert sequence_gaps(stuck) == ([], 65536)
    with_gap = np.r_[np.arange(100), np.arange(102, 65536), np.full(10, 65535)]
    assert sequence_gaps(with_gap) == ([(100, 2)], 65534)


def test_gap_reported_from_file(tmp_path):
    sequence = np.r_[np.arange(50), np.arange(53, 103)]
    recording = read_plux(write_opensignals(tmp_path / "g.h5", np.full(100, 30000), sequence=sequence))
    assert recording.sequence_gaps == [(50, 3)]


@pytest.mark.parametrize("kwargs, expected", [
    ({"sensor": "ECG"}, "'ECG' sensor"),
    ({"devices": ("00:07:80:00:00:01", "00:07:80:00:00:02")}, "2 devices"),
    ({"raw": False}, "no device group with a 'raw' subgroup"),
    ({"bits": 12}, "outside 0..4095"),
], ids=["not-emg", "two-devices", "no-raw", "counts-beyond-resolution"])
def test_unreadable_files_fail_naming_file_and_problem(tmp_path, kwargs, expected):
    path = write_opensignals(tmp_path / "bad.h5", np.full(100, 5000), **kwargs)
    with pytest.raises(PluxFileError) as caught:
        read_plux(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_second_device_can_be_chosen(tmp_path):
    path = write_opensignals(tmp_path / "two.h5", np.full(100, 5000), devices=("AA", "BB"))
    assert read_plux(path, device="BB").mac_address == "BB"
    with pytest.raises(PluxFileError, match="no device 'CC'"):
        read_plux(path, device="CC")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(PluxFileError, match="not an HDF5 file"):
        read_plux(tmp_path / "text.h5")


def test_info_json_is_read_beside_the_file(tmp_path):
    path = write_opensignals(tmp_path / "rec.h5", np.full(100, 5000))
    (tmp_path / "rec_info.json").write_text(json.dumps({"Observations": "Bursts of the Tibialis anterior muscle",
                                                        "Resolutions": "16 bits", "Sample Rate": "1000 Hz"}))
    recording = read_plux(path)
    assert recording.muscle == "Tibialis anterior" and recording.notes == []


# --- saturation ---------------------------------------------------------------------------------

def test_clipped_sine_is_found_exactly():
    rate, bits = 1000, 12
    time = np.arange(3 * rate) / rate
    ideal = 2048 + 1.3 * 2048 * np.sin(2 * np.pi * 2 * time)  # 2 Hz, 30% beyond both rails
    counts = np.clip(np.round(ideal), 0, 4095).astype(np.int64)
    mask = saturated_samples(counts, bits, margin_counts=0)
    np.testing.assert_array_equal(mask, (ideal <= 0.5) | (ideal >= 4094.5))
    runs = saturated_runs(mask)
    assert len(runs) == 12  # 6 cycles, each clipped once at the top rail and once at the bottom
    assert all(counts[start:end].min() == counts[start:end].max() for start, end in runs)
    # 1.3 x beyond the rail: each clipped stretch lasts (pi - 2 asin(1/1.3)) / (2 pi) of a cycle
    expected = (np.pi - 2 * np.arcsin(1 / 1.3)) / (2 * np.pi) * rate / 2
    assert all(abs((end - start) - expected) <= 2 for start, end in runs)


def test_margin_and_errors():
    assert default_margin_counts(12) == 2 and default_margin_counts(16) == 32 and default_margin_counts(8) == 1
    counts = np.array([[0, 2], [3, 4093], [2000, 4095]])
    assert saturated_samples(counts, 12).tolist() == [[True, True], [False, True], [False, True]]
    assert saturated_runs(saturated_samples(counts, 12)) == [(0, 3)]
    assert saturated_runs(np.array([False, True, True, False, True])) == [(1, 3), (4, 5)]
    assert saturated_runs(np.zeros(5, dtype=bool)) == []
    with pytest.raises(ValueError, match="outside 0..4095"):
        saturated_samples([0, 5000], 12)
    with pytest.raises(ValueError, match="whole ADC counts"):
        saturated_samples([0.5, 2.0], 12)
    assert saturated_samples(np.array([0.0, 7.0, 4095.0]), 12).tolist() == [True, False, True]


# --- into our recording format (train.datasets.plux.to_recording, write_plux_recordings) ----------

def test_to_recording_clipped_samples_become_nan_gaps_and_lost_samples_nan_rows(tmp_path):
    from stream.recording import ALL_SENSORS, Gap
    from train.datasets.plux import to_recording

    counts = np.full(100, 32768)
    counts[[10, 11, 60]] = [65535, 65530, 3]  # two runs of clipped samples (margin 32 counts at 16 bits)
    sequence = np.concatenate([np.arange(50), np.arange(55, 105)])  # 5 samples lost after row 50
    recording = to_recording(read_plux(write_opensignals(tmp_path / "a.h5", counts, sequence=sequence)))
    assert recording.emg.shape == (105, 1) and recording.emg.dtype == np.float32
    nan_rows = np.flatnonzero(np.isnan(recording.emg[:, 0])).tolist()
    assert nan_rows == [10, 11, 50, 51, 52, 53, 54, 65]  # row 60 of the file is index 65 after the loss
    assert recording.gaps == [Gap(0, 10, 12, 0, 0), Gap(ALL_SENSORS, 50, 55, 2, 2), Gap(0, 65, 66, 3, 3)]
    assert recording.metadata["flagged"]["saturated_samples"] == 3 and recording.metadata["flagged"]["lost_samples"] == 5
    assert recording.layout.signature()["sensor_names"] == ["emg"] and recording.imu_rate_hz == 50


def test_to_recording_refuses_what_the_plux_layout_cannot_hold(tmp_path):
    from train.datasets.plux import to_recording

    recording = read_plux(write_opensignals(tmp_path / "a.h5", np.full(100, 30000)))
    two = dataclasses.replace(recording, channel_names=("channel_1", "channel_2"), channel_labels=("a", "b"),
                              counts=np.repeat(recording.counts, 2, axis=1),
                              signal_mv=np.repeat(recording.signal_mv, 2, axis=1),
                              saturated=np.repeat(recording.saturated, 2, axis=1))
    with pytest.raises(PluxFileError, match="2 EMG channels.*pass channel="):
        to_recording(two)
    assert to_recording(two, channel=1).metadata["channel"] == "channel_2"
    with pytest.raises(PluxFileError, match="channel 2 does not exist"):
        to_recording(two, channel=2)
    odd = read_plux(write_opensignals(tmp_path / "b.h5", np.full(100, 30000), rate=1025))
    with pytest.raises(PluxFileError, match="1025 Hz is not a whole number of samples"):
        to_recording(odd)


def test_write_plux_recordings_round_trip_and_refuses_the_source_folder(tmp_path):
    from stream.recording import read_recording
    from train.datasets.plux import to_recording, write_plux_recordings

    source = tmp_path / "plux"
    source.mkdir()
    counts = np.full(200, 32768)
    counts[5] = 0
    write_opensignals(source / "b.h5", counts)
    write_opensignals(source / "a.h5", np.full(100, 30000))
    paths = write_plux_recordings(source, tmp_path / "out")
    assert [path.name for path in paths] == ["a.h5", "b.h5"]
    back = read_recording(paths[1])
    expected = to_recording(read_plux(source / "b.h5"))
    np.testing.assert_array_equal(back.emg, expected.emg)  # NaN where clipped, in both
    assert back.gaps == expected.gaps and back.metadata == expected.metadata and back.emg_unit == "mV"
    assert back.acc.shape[1] == back.gyro.shape[1] == 0
    with pytest.raises(PluxFileError, match="is the source folder"):
        write_plux_recordings(source, source)
    with pytest.raises(PluxFileError, match="no .h5 files"):
        write_plux_recordings(tmp_path / "out" / "empty", tmp_path / "elsewhere")
