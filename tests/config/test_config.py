"""The config file: strict types, unknown keys refused, one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest

from stream.config import DEFAULT_CONFIG_PATH, Config, ConfigError, config_from_dict, config_hash, load_config
from stream.wire.rates import parse_rate, sample_index_at, sample_time_s, samples_per_frame


def test_shipped_default_file_spells_out_exactly_the_code_defaults():
    assert load_config(DEFAULT_CONFIG_PATH) == Config()


def test_default_file_names_every_key():
    import tomllib

    from stream.config import to_dict

    with open(DEFAULT_CONFIG_PATH, "rb") as handle:
        table = tomllib.load(handle)

    def keys(mapping, prefix=""):
        for key, value in mapping.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    defaults = to_dict(Config())
    defaults.pop("base_dir")
    assert set(keys(table)) == set(keys(defaults))


@pytest.mark.parametrize(
    "table, fragment",
    [
        ({"filters": {"notch_hz": "fifty"}}, "[filters.notch_hz] notch_hz = 'fifty': expected a number"),
        ({"filters": {"notch_hz": 50.0, "notch_width": 2}}, "unknown key 'notch_width' in filters"),
        ({"nonsense": {}}, "unknown key 'nonsense' in top level"),
        ({"filters": {"emg_bandpass_hz": [450.0, 20.0]}}, "0 < low < high"),
        ({"filters": {"emg_bandpass_order": True}}, "expected an integer"),
        ({"window": {"gap_policy": "close"}}, "one of 'drop', 'flag'"),
        ({"sensors": {"emg_rate_hz": "1111.11"}}, "write rates exactly, as 'p/q' strings (1111.1 Hz is '10000/9'"),
        ({"sensors": {"profile": "myo"}, "filters": {"emg_bandpass_hz": [20.0, 450.0]}},
         "must be below the Nyquist frequency 100 Hz of sensors.emg_rate_hz = '200'"),
        ({"sensors": {"profile": "trigno-emg1926"}, "filters": {"imu_lowpass_hz": 40.0}},
         "below the Nyquist frequency 37.037 Hz of sensors.imu_rate_hz = '2000/27'"),
        ({"sensors": {"profile": "gopro"}}, "one of trigno, trigno-emg1259"),
        ({"sensors": {"modalities": ["acc", "gyro"]}}, "a list with 'emg'"),
        ({"sensors": {"profile": "myo"}, "preprocess": {"model_rate_hz": "2000/27"}}, "a whole number of samples per 20 ms frame"),
        ({"endpoints": {"frames": "127.0.0.1:5555"}}, "ZeroMQ endpoint"),
        ({"acquire": {"source": "replay"}}, "acquire.replay.path"),
        ({"acquire": {"trigno": {"slots": [1, 17]}}}, "slot numbers 1-16"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(table, fragment):
    with pytest.raises(ConfigError) as raised:
        config_from_dict(table, source="test.toml")
    message = str(raised.value)
    assert fragment in message
    assert message.startswith("config error: test.toml:")
    assert "\n" not in message


def test_rates_accept_fractions_and_refuse_inexact_floats():
    assert config_from_dict({"sensors": {"emg_rate_hz": "10000/9"}}).sensors.emg_rate_hz == Fraction(10000, 9)
    assert parse_rate(2000) == 2000
    with pytest.raises(ValueError, match="not exact"):
        parse_rate(1111.11)


def test_sample_time_is_exact_after_a_day():
    rate = Fraction(10000, 9)
    one_day_index = 24 * 3600 * 10000 // 9 * 9 // 9  # an index near a day of samples
    index = 96_000_000 - 1
    assert sample_time_s(index, rate) == Fraction(index * 9, 10000)
    assert sample_index_at(sample_time_s(index, rate), rate) == index
    assert samples_per_frame(rate) == 15
    assert one_day_index > 0


def test_config_hash_is_stable_and_sensitive():
    base = Config()
    assert config_hash(base.filters) == config_hash(Config().filters)
    changed = config_from_dict({"filters": {"notch_hz": 60.0}})
    assert config_hash(changed.filters) != config_hash(base.filters)
    hash(base)  # frozen, hashable


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    config_file = tmp_path / "site.toml"
    config_file.write_text('[model]\ncard = "cards/model_card.json"\n')
    config = load_config(config_file)
    assert config.resolve_path(config.model.card) == tmp_path / "cards" / "model_card.json"


@pytest.mark.parametrize("script", ["stream.daemons.acquire", "stream.daemons.infer", "stream.daemons.sink", "stream.daemons.subscribe"])
@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "does not exist"),
        ("[filters]\nnotch_hz = 'x'\n", "expected a number"),
        ("[filters]\nbogus = 1\n", "unknown key 'bogus'"),
        ("[filters\n", "not valid TOML"),
    ],
)
def test_console_scripts_exit_2_with_one_line(tmp_path, script, content, fragment):
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", script, "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_base_dir_is_not_a_file_key_and_is_not_offered_as_one():
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"base_dir": "/etc"})
    assert "unknown key 'base_dir'" in str(raised.value)
    assert "base_dir," not in str(raised.value) and not str(raised.value).endswith("base_dir")
