"""Where the real recordings are (``../shared/data`` beside the project, see its README.md for each
set's terms) and the marks that skip a test, saying why, when they are absent (a user's fresh clone)."""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
LIS_MYO_ARCHIVE = SHARED_DATA / "lis-myo" / "Dataset.tar.xz"
PLUX = SHARED_DATA / "plux-emg"
PLUX_FILES = ("emg_bursts", "emg_fatigue", "emg_1000_hz_16_bits_solo")

needs_lis_myo = pytest.mark.skipif(not LIS_MYO_ARCHIVE.is_file(), reason=f"real data absent: {LIS_MYO_ARCHIVE} not "
                                   "found (a fresh clone has no ../shared/data; see its README for the terms)")
needs_plux = pytest.mark.skipif(not all((PLUX / f"{name}.h5").is_file() for name in PLUX_FILES),
                                reason=f"real data absent: {PLUX} not found (a fresh clone has no ../shared/data)")
