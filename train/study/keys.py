"""What makes a run the same run: its key.

key = sha256 of (the command, its options and positional arguments as given, the data set's content
hash, the sha256 of every argument that names an existing file, e.g. a --config TOML or a model card
made by an earlier group). The run directory is not part of it: a study moved elsewhere keeps its keys.

The data set's hash is cheap and stable: sha256 of ``index.json`` and ``splits.json`` (every
recording's id, file, label, signer, repetition and duration; the splits) and of each recording
file's relative path and size in bytes. The recordings' bytes are not read (synth-v7 is 1.1 GB):
data sets are never rewritten in place (train.synth and the importers refuse an existing one), so a
changed data set is a changed index.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from stream.recording.dataset import INDEX_NAME, SPLITS_NAME

KEY_VERSION = 1  # bump when what enters the key changes


class DataSetMissing(ValueError):
    """A study's data set is not there (the message says how to build it)."""


def dataset_hash(directory: Path, build: str | None = None) -> str:
    directory = Path(directory)
    index = directory / INDEX_NAME
    if not index.is_file():
        what = "no such directory" if not directory.exists() else f"no {INDEX_NAME}: not a data set"
        how = build or "python -m train.synth --out DIR (or train.datasets / train.dataset for recordings)"
        raise DataSetMissing(f"{directory}: {what}; build it first: {how}")
    digest = hashlib.sha256()
    index_bytes = index.read_bytes()
    digest.update(b"index\0" + hashlib.sha256(index_bytes).digest())
    splits = directory / SPLITS_NAME
    digest.update(b"splits\0" + (hashlib.sha256(splits.read_bytes()).digest() if splits.is_file() else b"none"))
    try:
        files = sorted({entry["file"] for entry in json.loads(index_bytes).get("entries", [])})
    except (ValueError, TypeError, KeyError) as error:
        raise DataSetMissing(f"{index}: unreadable index ({error}); rebuild the data set") from None
    for relative in files:
        path = directory / relative
        size = path.stat().st_size if path.is_file() else -1
        digest.update(f"file\0{relative}\0{size}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(run, root: Path) -> dict[str, str]:
    """sha256 of each option value or positional argument that names an existing file (relative to
    ``root``, the commands' working directory), the data set and the run's own directory aside."""
    values = [value for _, value in run.options if value] + list(run.positional)
    found = {}
    for value in values:
        if "{run_dir}" in value:
            continue
        path = Path(value) if Path(value).is_absolute() else root / value
        if path.is_file():
            found[value] = file_sha256(path)
    return found


def run_key(run, data_hash: str | None, inputs: dict[str, str], out: Path) -> str:
    """The key; the data set's and the study's directories are written as {data} and {out} in it."""

    def portable(text: str | None) -> str | None:
        if text is None:
            return None
        if run.data is not None:
            text = text.replace(str(run.data.path), "{data}")
        return text.replace(str(out), "{out}")

    identity = {"version": KEY_VERSION, "command": run.module,
                "options": sorted((key, portable(value)) for key, value in run.options),
                "positional": [portable(value) for value in run.positional], "data": data_hash,
                "inputs": {portable(name): digest for name, digest in sorted(inputs.items())}, "stdout": run.stdout}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
