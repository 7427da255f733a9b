"""Samples clipped at the rails of an ADC, found from the raw counts.

A clipped sEMG sample carries no amplitude information: band-passing, rectifying and smoothing it
turns the flat tops into a plausible-looking but false envelope. So clipping is found on the raw
counts, before any filter, and travels with the signal as a mask.

An unsigned n-bit ADC reads 0 .. 2**n - 1. A sample is saturated when it lies at or within
``margin_counts`` of either rail. The margin exists because real converters pile up just inside the
rail too: the 12-bit bioPLUX fatigue recording has 12 samples at 0 but 157 more at 1 (and 26 at 4095,
3 at 4094), the plateau of a clipped swing, not a signal value that happens to be small.
"""

from __future__ import annotations

import numpy as np


def default_margin_counts(resolution_bits: int) -> int:
    """1/2048 of the ADC range (2 counts at 12 bits, 32 at 16 bits), at least 1 count."""
    return max(1, 2 ** resolution_bits // 2048)


def saturated_samples(counts, resolution_bits: int, margin_counts: int | None = None) -> np.ndarray:
    """Boolean mask, same shape as ``counts``: True where a sample is within ``margin_counts`` of 0 or
    of ``2**resolution_bits - 1``. ``margin_counts`` defaults to ``default_margin_counts``.

    Counts outside the ADC's range are refused: they mean the resolution is wrong.
    """
    counts = np.asarray(counts)
    if not (isinstance(resolution_bits, (int, np.integer)) and 1 <= resolution_bits <= 32):
        raise ValueError(f"resolution_bits must be an integer from 1 to 32, got {resolution_bits!r}")
    if counts.dtype.kind not in "iu":
        whole = counts.dtype.kind == "f" and bool(np.all(np.isfinite(counts))) and np.array_equal(counts, np.round(counts))
        if not whole:
            raise ValueError(f"counts must be whole ADC counts; got dtype {counts.dtype} with values that are not")
    if margin_counts is None:
        margin_counts = default_margin_counts(int(resolution_bits))
    if margin_counts < 0:
        raise ValueError(f"margin_counts must be >= 0, got {margin_counts}")
    top = 2 ** int(resolution_bits) - 1
    if counts.size:
        low, high = counts.min(), counts.max()
        if low < 0 or high > top:
            raise ValueError(f"counts span {low}..{high}, outside 0..{top} of a {resolution_bits}-bit ADC: "
                             "is resolution_bits right?")
    wide = counts.astype(np.int64)
    return (wide <= margin_counts) | (wide >= top - margin_counts)


def saturated_runs(mask) -> list[tuple[int, int]]:
    """Runs of True in a 1-D mask as half-open ``(start, end)`` sample indices (``mask[start:end]``
    is all True). For a 2-D (samples, channels) mask, a sample counts if any channel is saturated."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 2:
        mask = mask.any(axis=1)
    if mask.ndim != 1:
        raise ValueError(f"mask must be 1-D (samples) or 2-D (samples, channels), got shape {mask.shape}")
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(start), int(end)) for start, end in zip(starts, ends)]
