"""Configuration: one TOML file, read once, flowing one way into every stage.

``load_config(path)`` returns a frozen ``Config``; ``load_config(None)`` reads the documented
defaults shipped as ``stream/default.toml``. Every problem is a ``ConfigError`` whose message is one
line naming the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stream.config.loader import ConfigError, build_section, config_hash, read_toml, to_dict
from stream.config.sections import (
    AcquireConfig,
    Config,
    EndpointsConfig,
    FiltersConfig,
    LoggingConfig,
    ModelConfig,
    MonitorConfig,
    PreprocessConfig,
    RecordConfig,
    SecurityConfig,
    SegmentationConfig,
    SensorsConfig,
    SinkConfig,
    WindowConfig,
)
from stream.wire.layout import PROFILES, profile_defaults

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "default.toml"


def with_profile(table: dict) -> dict:
    """``table`` with its ``[sensors] profile``'s values filled in wherever the table leaves a key out
    (any table the profile names: [sensors], and [filters] / [preprocess] / [window] where its rates
    need other defaults)."""
    sensors = table.get("sensors", {})
    name = sensors.get("profile", "trigno") if isinstance(sensors, dict) else "trigno"
    if not isinstance(name, str) or name not in PROFILES:
        return table  # SensorsConfig refuses it with the list of profiles
    merged = dict(table)
    for section, defaults in profile_defaults(name).items():
        given = table.get(section, {})
        if isinstance(given, dict):
            merged[section] = {**defaults, **given}
    return merged


def config_from_dict(table: dict, *, source: str | None = None, base_dir: str | Path = ".") -> Config:
    """Build a Config from an already parsed TOML table (tests and tools use this)."""
    try:
        config = build_section(Config, with_profile(table))
    except ConfigError as error:
        raise ConfigError(str(error).removeprefix("config error: "), source=source) from None
    return dataclasses.replace(config, base_dir=str(Path(base_dir).resolve()))


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a TOML config file (the shipped defaults when ``path`` is None)."""
    path = DEFAULT_CONFIG_PATH if path is None else Path(path)
    table = read_toml(path)
    return config_from_dict(table, source=str(path), base_dir=path.resolve().parent)


__all__ = [
    "AcquireConfig",
    "Config",
    "ConfigError",
    "DEFAULT_CONFIG_PATH",
    "EndpointsConfig",
    "FiltersConfig",
    "LoggingConfig",
    "ModelConfig",
    "MonitorConfig",
    "PreprocessConfig",
    "RecordConfig",
    "SecurityConfig",
    "SegmentationConfig",
    "SensorsConfig",
    "SinkConfig",
    "WindowConfig",
    "config_from_dict",
    "config_hash",
    "load_config",
    "to_dict",
]
