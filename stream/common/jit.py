"""Numba options in one place (as stumpy's config.py): every kernel uses ``njit`` from here.

``cache=True`` because start-up time matters on a Raspberry Pi: compiled kernels are written next to
the source (or to $NUMBA_CACHE_DIR, which the deploy units set to a writable directory) and loaded
by later processes instead of being compiled again.
"""

from __future__ import annotations

import numba

NJIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def njit(*args, **overrides):
    """``numba.njit`` with the project's options; use as ``@njit`` or ``@njit(parallel=...)``."""
    options = {**NJIT_OPTIONS, **overrides}
    if len(args) == 1 and callable(args[0]) and not overrides:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
