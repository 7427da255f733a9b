"""Write files so that an interrupted run (Ctrl-C, crash, full disk) never leaves half a file.

Each file is written to a temporary name in the same directory, flushed to disk, then renamed over
the target with ``os.replace`` (atomic on POSIX): readers see the old file or the new one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; models and cards are meant to be read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_NUMBER_LIST = re.compile(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]")


def json_text(document: object) -> str:
    """Indented JSON with lists of numbers on one line (confusion matrices stay readable)."""
    text = json.dumps(document, indent=1, sort_keys=False)
    return _NUMBER_LIST.sub(lambda match: "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]", text) + "\n"


def atomic_write_json(path: Path, document: object) -> None:
    atomic_write_text(path, json_text(document))
