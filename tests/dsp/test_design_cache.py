"""The on-disk design cache: a hit equals a fresh design, imports no scipy, and bad files are redone."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from stream.config import Config
from stream.dsp import design_cache
from stream.dsp.design import design_modality
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ

MODALITIES = ("emg", "acc", "gyro")


def assert_same_design(left, right):
    assert left.name == right.name
    np.testing.assert_array_equal(left.sos, right.sos)
    np.testing.assert_array_equal(left.steady_state_unit, right.steady_state_unit)
    assert (left.settle_samples, left.rectify, left.scale) == (right.settle_samples, right.rectify, right.scale)
    assert left.resampler.coefficients.dtype == np.float64 and left.sos.flags.writeable
    np.testing.assert_array_equal(left.resampler.coefficients, right.resampler.coefficients)
    for field in ("input_rate_hz", "output_rate_hz", "up", "down", "half_len"):
        assert getattr(left.resampler, field) == getattr(right.resampler, field)


def cached(name, directory, config=None):
    config = config or Config()
    return design_cache.cached_design_modality(name, config.filters, config.preprocess, EMG_RATE_HZ, IMU_RATE_HZ,
                                               directory=directory)


@pytest.mark.parametrize("name", MODALITIES)
def test_a_miss_writes_a_file_and_a_hit_reads_the_same_design(tmp_path, name):
    config = Config()
    fresh = design_modality(name, config.filters, config.preprocess, EMG_RATE_HZ, IMU_RATE_HZ)
    first = cached(name, tmp_path)
    files = list(tmp_path.glob("design-*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = cached(name, tmp_path)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert_same_design(first, fresh)
    assert_same_design(second, fresh)


def test_a_different_setting_gets_a_different_file(tmp_path):
    config = Config()
    other = dataclasses.replace(config, filters=dataclasses.replace(config.filters, notch_hz=60.0))
    cached("emg", tmp_path, config)
    notched_at_60 = cached("emg", tmp_path, other)
    assert len(list(tmp_path.glob("design-*.npz"))) == 2
    assert_same_design(notched_at_60, design_modality("emg", other.filters, other.preprocess, EMG_RATE_HZ, IMU_RATE_HZ))
    assert design_cache.design_key("emg", config.filters, config.preprocess, EMG_RATE_HZ, IMU_RATE_HZ) != \
        design_cache.design_key("emg", config.filters, config.preprocess, Fraction(EMG_RATE_HZ) * 2, IMU_RATE_HZ)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_a_bad_cache_file_is_designed_again_and_rewritten(tmp_path, caplog, damage):
    fresh = cached("emg", tmp_path)
    path = next(tmp_path.glob("design-*.npz"))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not an npz file at all")
    else:  # a whole, valid file that holds another configuration's design
        config = Config()
        other = dataclasses.replace(config, filters=dataclasses.replace(config.filters, notch_hz=60.0))
        cached("emg", tmp_path / "other", other)
        next((tmp_path / "other").glob("design-*.npz")).replace(path)
    with caplog.at_level(logging.WARNING, logger="stream.dsp.design_cache"):
        again = cached("emg", tmp_path)
    assert "ignoring the design cache file" in caplog.text and path.name in caplog.text
    assert_same_design(again, fresh)
    caplog.clear()
    assert_same_design(cached("emg", tmp_path), fresh)
    assert caplog.text == ""  # the file was rewritten whole


def test_an_unwritable_cache_still_designs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    config = Config()
    assert_same_design(cached("gyro", blocker / "cache"),
                       design_modality("gyro", config.filters, config.preprocess, EMG_RATE_HZ, IMU_RATE_HZ))


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGNSTREAM_CACHE_DIR", str(tmp_path))
    assert design_cache.cache_directory() == tmp_path / "designs"
    monkeypatch.setenv("SIGNSTREAM_CACHE_DIR", "")
    assert design_cache.cache_directory() is None
    monkeypatch.delenv("SIGNSTREAM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert design_cache.cache_directory() == tmp_path / "xdg" / "signstream" / "designs"


def test_a_warm_start_of_the_preprocessor_does_not_import_scipy_signal(tmp_path):
    # What stream-infer gains: scipy.signal costs ~75 MB and most of a second (docs/PERFORMANCE.md).
    program = ("import sys\nfrom stream.config import Config\nfrom stream.dsp.preprocess import Preprocessor\n"
               "Preprocessor(Config())\nprint('scipy.signal' in sys.modules)\n")
    environment = {"SIGNSTREAM_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                           timeout=120) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert [run.stdout.strip() for run in runs] == ["True", "False"]
