"""Writing a model card and the shipped model files (read back by ``stream.stages.model_card``).

The .tflite files are written first, each atomically, and the card last: a card on disk always
names complete files with the right sha256, and an interrupted run leaves the previous model
intact (or nothing) rather than a card that points at half a file.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

from stream.common.atomic import atomic_write_bytes, atomic_write_json
from stream.stages.model_card import SCHEMA_VERSION, parse_model_card, sha256_of

FILE_NAMES = {"float32": "student_float32.tflite", "dynamic_range": "student_dynamic_range.tflite",
              "int8": "student_int8.tflite"}


def library_versions() -> dict:
    import importlib.metadata

    versions = {"python": platform.python_version()}
    for distribution in ("numpy", "scipy", "tensorflow", "tf-keras", "ai-edge-litert", "signstream"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def input_section(input_spec, model_rate_hz, window_s: float) -> dict:
    return {
        "modalities": list(input_spec.channels),
        "shapes": {name: [input_spec.window_samples, channels] for name, channels in input_spec.channels.items()},
        "dtype": "float32",
        "model_rate_hz": str(model_rate_hz),
        "window_samples": input_spec.window_samples,
        "window_s": window_s,
        "batch_size": 1,
        "output": {"name": "probabilities", "shape": [input_spec.classes], "dtype": "float32"},
    }


def build_card(*, labels, input_spec, model_rate_hz, window_s, preprocessing_spec: dict, preprocessing_hash: str,
               model_files: dict, metrics: dict, training: dict, parameters: dict, description: str) -> dict:
    """The card document. ``model_files``: variant -> .tflite bytes (named and hashed here)."""
    files = {variant: {"path": FILE_NAMES[variant], "sha256": sha256_of(data), "bytes": len(data)}
             for variant, data in model_files.items()}
    reference = files.get("float32") or next(iter(files.values()))
    return {
        "schema_version": SCHEMA_VERSION,
        "model_id": f"student-{reference['sha256'][:12]}",
        "description": description,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": list(labels),
        "input": input_section(input_spec, model_rate_hz, window_s),
        "preprocessing": {"hash": preprocessing_hash, "spec": preprocessing_spec},
        "files": files,
        "parameters": parameters,
        "metrics": metrics,
        "training": training,
        "versions": library_versions(),
    }


def write_model(directory: Path, model_files: dict, card: dict) -> Path:
    """Write the .tflite files, then the card (validated first); returns the card's path."""
    directory = Path(directory)
    card_path = directory / "model_card.json"
    parse_model_card(card, card_path)  # never write a card the runtime would refuse
    for variant, data in model_files.items():
        atomic_write_bytes(directory / FILE_NAMES[variant], data)
    atomic_write_json(card_path, card)
    return card_path
