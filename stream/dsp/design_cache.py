"""Designed filters and resamplers, cached on disk so that a daemon's start-up skips scipy.

Designing needs ``scipy.signal``, whose import alone costs stream-infer about 75 MB of memory and
0.6-1.9 s on these machines (docs/PERFORMANCE.md): as much as everything else it imports except numba.
A design is a pure function of the ``[filters]`` and ``[preprocess]`` sections, the rates and the
scipy version, so it is computed once and stored as ``design-<sha256 of those>.npz`` (plain arrays,
read with ``allow_pickle=False``). A hit imports no scipy; a miss, an unreadable or mismatched file
designs afresh and rewrites it; an unwritable directory only costs the next start-up the design again.

Where: ``$SIGNSTREAM_CACHE_DIR`` (the deploy units set it), else ``$XDG_CACHE_HOME/signstream``, else
``~/.cache/signstream``; ``SIGNSTREAM_CACHE_DIR=`` (empty) turns the cache off.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from stream.common.atomic import atomic_write_bytes
from stream.config.loader import config_hash, to_dict
from stream.config.sections import FiltersConfig, PreprocessConfig
from stream.dsp.design import ModalityDesign, ResamplerDesign, design_modality

log = logging.getLogger(__name__)

# Bump when ModalityDesign, the way it is designed, or this file layout changes.
CACHE_FORMAT = 1
CACHE_ENVIRONMENT_VARIABLE = "SIGNSTREAM_CACHE_DIR"


def cache_directory() -> Path | None:
    """The design cache directory, or None when the cache is turned off."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured is not None:
        return Path(configured) / "designs" if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signstream" / "designs"


def design_key(name: str, filters: FiltersConfig, preprocess: PreprocessConfig,
               emg_rate_hz: Fraction, imu_rate_hz: Fraction) -> str:
    """sha256 of everything a modality's design depends on."""
    try:
        scipy_version = importlib.metadata.version("scipy")
    except importlib.metadata.PackageNotFoundError:
        scipy_version = "absent"
    return config_hash({"format": CACHE_FORMAT, "modality": name, "filters": to_dict(filters),
                        "preprocess": to_dict(preprocess), "emg_rate_hz": str(Fraction(emg_rate_hz)),
                        "imu_rate_hz": str(Fraction(imu_rate_hz)), "scipy": scipy_version})


def design_arrays(design: ModalityDesign, key: str) -> dict[str, np.ndarray]:
    """The design as named plain arrays (what the .npz holds)."""
    resampler = design.resampler
    return {
        "key": np.array(key), "name": np.array(design.name), "sos": design.sos,
        "steady_state_unit": design.steady_state_unit, "settle_samples": np.array(design.settle_samples),
        "rectify": np.array(design.rectify), "scale": np.array(design.scale),
        "input_rate_hz": np.array(str(resampler.input_rate_hz)), "output_rate_hz": np.array(str(resampler.output_rate_hz)),
        "up": np.array(resampler.up), "down": np.array(resampler.down), "half_len": np.array(resampler.half_len),
        "coefficients": resampler.coefficients,
    }


def design_from_arrays(arrays, key: str) -> ModalityDesign:
    """Rebuild a design from ``design_arrays``' output; ValueError if it is not the design for ``key``."""
    if str(arrays["key"]) != key:
        raise ValueError(f"it holds the design for key {str(arrays['key'])[:12]}..., not {key[:12]}...")
    sos = np.ascontiguousarray(arrays["sos"], dtype=np.float64)
    steady_state_unit = np.ascontiguousarray(arrays["steady_state_unit"], dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or steady_state_unit.shape != (sos.shape[0], 2):
        raise ValueError(f"sos {sos.shape} and steady_state_unit {steady_state_unit.shape} do not fit together")
    resampler = ResamplerDesign(
        input_rate_hz=Fraction(str(arrays["input_rate_hz"])), output_rate_hz=Fraction(str(arrays["output_rate_hz"])),
        up=int(arrays["up"]), down=int(arrays["down"]), half_len=int(arrays["half_len"]),
        coefficients=np.ascontiguousarray(arrays["coefficients"], dtype=np.float64))
    if resampler.coefficients.shape != (2 * resampler.half_len + 1,):
        raise ValueError(f"{resampler.coefficients.size} resampler taps for half_len {resampler.half_len}")
    return ModalityDesign(name=str(arrays["name"]), sos=sos, steady_state_unit=steady_state_unit,
                          settle_samples=int(arrays["settle_samples"]), rectify=bool(arrays["rectify"]),
                          scale=float(arrays["scale"]), resampler=resampler)


def _read(path: Path, key: str) -> ModalityDesign | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return design_from_arrays(arrays, key)
    except FileNotFoundError:
        return None
    except Exception as error:  # a truncated, corrupt or foreign file: design again and overwrite it
        log.warning("ignoring the design cache file %s (%s); designing the filters again", path, error)
        return None


def _write(path: Path, design: ModalityDesign, key: str) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **design_arrays(design, key))
    try:
        atomic_write_bytes(path, buffer.getvalue())  # readers see no file or a whole one
    except OSError as error:
        log.info("cannot write the design cache %s (%s); start-up will design the filters again next time",
                 path, error)


def cached_design_modality(name: str, filters: FiltersConfig, preprocess: PreprocessConfig,
                           emg_rate_hz: Fraction, imu_rate_hz: Fraction,
                           directory: Path | None | str = "default") -> ModalityDesign:
    """``design.design_modality`` through the on-disk cache (``directory`` None: no cache)."""
    directory = cache_directory() if directory == "default" else directory
    key = design_key(name, filters, preprocess, emg_rate_hz, imu_rate_hz)
    path = None if directory is None else Path(directory) / f"design-{key}.npz"
    if path is not None:
        design = _read(path, key)
        if design is not None:
            return design
    design = design_modality(name, filters, preprocess, emg_rate_hz, imu_rate_hz)
    if path is not None:
        _write(path, design, key)
    return design
