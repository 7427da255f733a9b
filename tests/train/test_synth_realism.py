"""Generator versions (the old one reproducible, the new one measured against real recordings) and the
realism report (train.synth.realism): its statistics checked on signals with known answers, then on
the real PLUX recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal as sps

from real_data import LIS_MYO_ARCHIVE, PLUX, needs_lis_myo, needs_plux
from stream.synth.session import session_recording
from stream.synth.signer import GENERATOR_VERSION, make_signer
from train.synth.generate import isolated_recording
from train.synth.realism import (
    EMG_STATISTICS,
    SourceStatistics,
    channel_statistics,
    imu_statistics,
    load_real,
    main,
    report,
    synthetic_sessions,
)

RATE = 2000.0


def test_version_4_draws_exactly_what_it_always_did():
    # Sums of |samples| of a synth-v6 session and isolated recording, computed with the code before
    # version 5 existed (commit 94b7db3): version 4 must keep giving these samples.
    session = session_recording(0, make_signer(0, 1, 4), 0)
    isolated = isolated_recording(0, make_signer(0, 2, 4), 7, 3)
    expected = [14009.200658549144, 79758.09050285745, 3248058.205783194,
                715.8896142362374, 4762.508100015242, 150072.53915347988]
    actual = [float(np.nansum(np.abs(array.astype(np.float64))))
              for array in (session.emg, session.acc, session.gyro, isolated.emg, isolated.acc, isolated.gyro)]
    np.testing.assert_allclose(actual, expected, rtol=1e-9)
    assert session.metadata["generator_version"] == 4 and isolated.metadata["generator_version"] == 4


def test_version_5_is_the_same_person_with_real_electrodes():
    old, new = make_signer(0, 1, 4), make_signer(0, 1)
    assert GENERATOR_VERSION == 5 and new.version == 5 and old.electrodes is None
    # The same body and style; only what skin and electrodes add is new.
    np.testing.assert_array_equal(old.style_activation, new.style_activation)
    np.testing.assert_array_equal(old.mixing, new.mixing)
    assert new.electrodes.tonic_activation.min() > 0 and new.mains_mv < old.mains_mv * 2
    recording = session_recording(0, new, 0)
    assert recording.metadata["generator_version"] == 5
    with pytest.raises(ValueError, match="generator version 3 does not exist"):
        make_signer(0, 1, 3)


def test_the_live_source_follows_the_configured_version():
    from stream.config import config_from_dict
    from stream.sources.synthetic import SyntheticSource

    for version in (4, 5):
        config = config_from_dict({"acquire": {"synthetic": {"generator_version": version}}})
        assert SyntheticSource(config, realtime=False).signer.version == version
    # The config's default is the generator's newest version (config does not import the simulator).
    assert config_from_dict({}).acquire.synthetic.generator_version == GENERATOR_VERSION
    with pytest.raises(ValueError, match="generator version 9"):
        SyntheticSource(config_from_dict({"acquire": {"synthetic": {"generator_version": 9}}}), realtime=False)


def known_signal(seed: int = 0, rest_uv: float = 3.0, burst_uv: float = 90.0):
    """30 s at 2 kHz: white noise of ``rest_uv`` RMS band-passed to 20-450 Hz, with five 1.2 s bursts
    of ``burst_uv`` RMS, and 50 Hz mains of 1 uV amplitude; in mV."""
    rng = np.random.default_rng(seed)
    count = int(30 * RATE)
    sos = sps.butter(4, [20, 450], btype="bandpass", fs=RATE, output="sos")
    noise = sps.sosfilt(sos, rng.standard_normal(count))
    noise /= noise.std()
    level = np.full(count, rest_uv)
    for start in (3.0, 8.0, 13.0, 18.0, 23.0):
        level[int(start * RATE):int((start + 1.2) * RATE)] = burst_uv
    mains = 1.0 * np.sin(2 * np.pi * 50 * np.arange(count) / RATE)
    return (noise * level + mains) / 1000.0


def test_channel_statistics_on_a_signal_with_known_answers():
    statistics = channel_statistics(known_signal(), RATE)
    # Rest RMS includes the mains (1 uV amplitude = 0.71 uV RMS): sqrt(3^2 + 0.71^2) = 3.08 uV.
    assert statistics["rest_uv"] == pytest.approx(3.08, rel=0.1)
    assert statistics["contrast"] == pytest.approx(90.0 / 3.08, rel=0.25)
    assert statistics["burst_s"] == pytest.approx(1.2 + 0.2, abs=0.1)  # widened by the 0.2 s envelope
    assert 0.9 < statistics["band_share"] <= 1.0  # a 4th-order band-pass leaves some power in its skirts
    # At rest the 1 uV mains line holds 0.5 / (9 + 0.5) of the power.
    assert statistics["mains_share"] == pytest.approx(0.5 / 9.5, rel=0.35)
    # Median frequency of band-passed white noise: the middle of 20-450 Hz, lowered by the filter edges.
    assert 180 < statistics["median_hz"] < 260
    louder = channel_statistics(known_signal(rest_uv=9.0), RATE)
    assert louder["contrast"] < statistics["contrast"] / 2 and louder["rest_uv"] > 2.5 * statistics["rest_uv"]


def test_statistics_need_the_semg_band_and_ignore_invalid_samples():
    assert channel_statistics(np.zeros(4000), 200.0) == {}  # no 20-450 Hz band at 200 Hz
    signal = known_signal()
    holed = signal.copy()
    holed[int(10.5 * RATE):int(11 * RATE)] = np.nan
    np.testing.assert_allclose(channel_statistics(holed, RATE)["rest_uv"], channel_statistics(signal, RATE)["rest_uv"],
                               rtol=0.1)


def test_imu_statistics_find_rest_noise_and_movement_peaks():
    rng = np.random.default_rng(0)
    rate, count = 148.0, 148 * 20
    gyro = rng.normal(0, 0.5, (count, 3))
    gyro[1000:1100, 0] += 200 * np.sin(np.linspace(0, np.pi, 100))
    acc = np.tile([0.0, 0.0, 1.0], (count, 1)) + rng.normal(0, 0.004, (count, 3))
    (statistics,) = imu_statistics(acc, gyro, rate)
    assert statistics["gyro_rest_dps"] == pytest.approx(0.5, rel=0.3)
    assert statistics["acc_rest_mg"] == pytest.approx(4.0, rel=0.3)
    assert 150 < statistics["gyro_peak_dps"] < 210


def test_report_judges_synthetic_against_the_real_range():
    real = SourceStatistics("real", real=True)
    real.values["contrast"] = [10.0, 20.0, 40.0]
    inside, outside = SourceStatistics("a", real=False), SourceStatistics("b", real=False)
    inside.values["contrast"] = [12.0, 15.0, 30.0]
    outside.values["contrast"] = [60.0, 100.0, 300.0]
    result = report([real], [inside, outside])
    assert result["statistics"]["contrast"]["real_range"] == [9.6, 40.0]  # widened by the documented 9.6x
    assert result["statistics"]["contrast"]["sources"]["a"]["inside"] is True
    assert result["statistics"]["contrast"]["sources"]["b"]["inside"] is False


@needs_plux
def test_real_plux_statistics_and_the_new_version_inside_their_range(tmp_path, capsys):
    plux = load_real(PLUX)
    assert plux.recordings == 3
    assert 1.5 < np.median(plux.values["rest_uv"]) < 6.0
    assert 20 < sorted(plux.values["contrast"])[1] < 60  # the biceps bursts: about 31x
    assert all(60 < value < 100 for value in plux.values["median_hz"])
    new, old = synthetic_sessions(5, 5), synthetic_sessions(4, 5)
    result = report([plux], [new, old])
    for name in EMG_STATISTICS:
        assert result["statistics"][name]["sources"][new.name]["inside"], (name, result["statistics"][name])
    # The old signer's rest is too quiet and its spectrum too high: the reason for version 5.
    assert not result["statistics"]["median_hz"]["sources"][old.name]["inside"]
    assert main(["--real", str(PLUX), "--synthetic-version", "5", "--sessions", "2",
                 "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]) == 0
    table = capsys.readouterr().out
    assert "| rest_uv (uV RMS) |" in table and "synthetic, generator version 5" in table
    assert json.loads((tmp_path / "r.json").read_text())["statistics"]["contrast"]["real_range"]
    assert (tmp_path / "r.png").stat().st_size > 10_000


@needs_lis_myo
def test_lis_myo_imu_is_shown_but_not_judged():
    source = load_real(LIS_MYO_ARCHIVE)
    assert source.values["gyro_peak_dps"] and not source.values["rest_uv"]
    result = report([source], [])
    assert result["statistics"]["gyro_peak_dps"]["real_range"] is None
    assert any("not judged" in note for note in source.notes)


def test_command_line_refuses_nothing_to_compare(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert main(["--real", "x", "--synthetic-version", "a"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
