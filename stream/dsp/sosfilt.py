"""Streaming second-order-sections filter: scipy.signal.sosfilt with state carried between chunks.

``sosfilt_chunk(sos, x, zi) -> (y, zf)`` is the pure function (state in, state out, as scipy's
``sosfilt(sos, x, axis=0, zi=zi)``); ``SosFilter`` is the stage that owns the state of one stream.
Signals are time-major ``(samples, channels)``, float32 or float64; arithmetic and state are float64
and the output has the input's dtype. Any chunking gives bitwise the same output as one call.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from stream.dsp._kernels import _sosfilt_kernel

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_sos(sos: np.ndarray) -> np.ndarray:
    """A contiguous float64 (sections, 6) array with a0 = 1 in every section, or ValueError."""
    sos = np.asarray(sos)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise ValueError(f"sos has shape {sos.shape}; expected (sections, 6) as made by scipy.signal.butter(..., "
                         "output='sos')")
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if not np.all(np.isfinite(sos)):
        raise ValueError("sos contains NaN or inf coefficients; check the filter design")
    if not np.allclose(sos[:, 3], 1.0, rtol=0, atol=1e-12):
        raise ValueError("sos sections must be normalised (a0 = 1), as scipy.signal designs them")
    return sos


def check_signal(x: np.ndarray, channels: int | None = None, name: str = "x") -> np.ndarray:
    """A contiguous 2-D float32/float64 (samples, channels) array of finite values, or ValueError."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} is a {type(x).__name__}; pass a numpy array of shape (samples, channels)")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} has dtype {x.dtype}; convert it with .astype(np.float32) or np.float64")
    if x.ndim != 2:
        raise ValueError(f"{name} has shape {x.shape}; expected 2-D (samples, channels); use x[:, None] for one "
                         "channel")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); skip empty chunks instead of passing them")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels; this filter was made for {channels}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf; the plain filter refuses them (the Preprocessor applies the "
                         "documented dropout policy, see docs/DSP.md)")
    return np.ascontiguousarray(x)


def steady_state(sos: np.ndarray, first_sample: np.ndarray) -> np.ndarray:
    """Initial state (sections, 2, channels) for a signal that had been ``first_sample`` forever
    (``sosfilt_zi(sos)[..., None] * first_sample``)."""
    from scipy.signal import sosfilt_zi

    unit = sosfilt_zi(check_sos(sos))
    return np.ascontiguousarray(unit[:, :, None] * np.asarray(first_sample, dtype=np.float64)[None, None, :])


def sosfilt_chunk(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` (samples, channels) along axis 0 from state ``zi`` (sections, 2, channels).
    Returns ``(y, zf)``; ``zi`` is not modified."""
    sos = check_sos(sos)
    x = check_signal(x)
    zi = np.asarray(zi)
    expected = (sos.shape[0], 2, x.shape[1])
    if zi.shape != expected:
        raise ValueError(f"zi has shape {zi.shape}; with {sos.shape[0]} sections and {x.shape[1]} channels it must "
                         f"have shape {expected}")
    state = np.array(zi, dtype=np.float64, order="C", copy=True)
    y = np.empty_like(x)
    _sosfilt_kernel(sos, x, state, y)
    return y, state


class SosFilter:
    """The stage: one stream's filter state, carried from chunk to chunk.

    ``initial_state`` "steady" starts as if the first sample had always been there
    (``sosfilt_zi``), "zeros" from rest (scipy's default without zi).
    """

    def __init__(self, sos: np.ndarray, channels: int, initial_state: Literal["steady", "zeros"] = "steady"):
        if initial_state not in ("steady", "zeros"):
            raise ValueError(f"initial_state {initial_state!r}: expected 'steady' or 'zeros'")
        if channels < 1:
            raise ValueError(f"channels {channels} must be >= 1")
        self.sos = check_sos(sos)
        self.channels = channels
        self.initial_state = initial_state
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = check_signal(chunk, self.channels, name="chunk")
        if self.state is None:
            if self.initial_state == "steady":
                self.state = steady_state(self.sos, chunk[0])
            else:
                self.state = np.zeros((self.sos.shape[0], 2, self.channels))
        y = np.empty_like(chunk)
        _sosfilt_kernel(self.sos, chunk, self.state, y)
        return y
