"""What the train.study tests share: specs written from text (the tiny data set is the
``tiny_dataset`` fixture of tests/conftest.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_spec(directory: Path, text: str) -> Path:
    path = directory / "study.toml"
    path.write_text(textwrap.dedent(text))
    return path
