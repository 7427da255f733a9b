"""Helpers of the LSL tests: liblsl reads tests/lsl/lsl_api.cfg (discovery on this machine only, its
log quiet); each test names its own streams (``unique_prefix()``) so parallel runs never read each
other's; inlets and pulls that fail instead of hanging; ``require_pylsl()`` skips, with the reason,
where pylsl or liblsl cannot be loaded."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

LSL_CONFIG = Path(__file__).parent / "lsl" / "lsl_api.cfg"
os.environ.setdefault("LSLAPICFG", str(LSL_CONFIG))
RESOLVE_TIMEOUT_S = 5.0


def lsl_skip_reason() -> str | None:
    from stream.lsl.library import unavailable_reason

    reason = unavailable_reason()
    return None if reason is None else f"LSL tests need pylsl with liblsl: {reason}"


def unique_prefix() -> str:
    """Stream names and source ids of one test alone."""
    return f"sstest-{uuid.uuid4().hex[:10]}"


def require_pylsl():
    """pylsl, or the test skips with the reason (no pylsl, or no liblsl for it)."""
    reason = lsl_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from stream.lsl.library import load_pylsl

    return load_pylsl()


def inlet_for(pylsl, name: str, processing_flags: int = 0):
    """An open inlet on the stream called ``name`` (fails after RESOLVE_TIMEOUT_S instead of hanging)."""
    found = pylsl.resolve_byprop("name", name, 1, RESOLVE_TIMEOUT_S)
    assert found, f"no LSL stream {name!r} within {RESOLVE_TIMEOUT_S} s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=processing_flags)
    inlet.open_stream(RESOLVE_TIMEOUT_S)
    return inlet


def pull_samples(inlet, count: int, timeout_s: float = 10.0, strings: bool = False):
    """Exactly ``count`` samples (values, timestamps) or an assertion error after ``timeout_s``."""
    values, stamps = [], []
    deadline = time.monotonic() + timeout_s
    while len(stamps) < count and time.monotonic() < deadline:
        chunk, chunk_stamps = inlet.pull_chunk(timeout=0.1, max_samples=count - len(stamps))
        values.extend(chunk)
        stamps.extend(chunk_stamps)
    assert len(stamps) == count, f"{len(stamps)} of {count} samples within {timeout_s} s"
    return (values if strings else np.asarray(values, np.float32)), np.asarray(stamps)


def lsl_source_toml(prefix: str, resolve_timeout_s: float = 5.0, **extra: str) -> str:
    """[acquire.lsl] reading the streams stream-lsl (or LslBridge) publishes under ``prefix``."""
    keys = {f"{modality}_name": f'"{prefix}-{modality}"' for modality in ("emg", "acc", "gyro")}
    keys.update(resolve_timeout_s=str(resolve_timeout_s), **extra)
    return "[acquire.lsl]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
