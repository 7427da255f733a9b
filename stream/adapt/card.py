"""A user's adapted model: a directory with a copy of the base model's files, ``adaptation.npz`` (the
fitted alignment and head, plain arrays: no pickle) and ``model_card.json``, written last and
atomically, so a card either names complete, verified files or does not exist.

The card is the base card with a new ``model_id`` and an ``adaptation`` section::

    "adaptation": {"method": "alignment+head", "base_model_id": "student-...", "base_card": "/abs/path",
                   "file": {"path": "adaptation.npz", "sha256": "...", "bytes": 123},
                   "user": "me", "k": 2, "signs": [...], "windows": 100,
                   "cross_validated_accuracy": 0.93, "base_accuracy_on_calibration": 0.71,
                   "l2": 1.0, "l2_scores": {...}, "seconds": 4.2,
                   "calibration": [{"path": "me-1.h5", "sha256": "..."}], "created_utc": "..."}

The base model is never written to: its .tflite files are copied (and their sha256 checked again
when the adapted card is loaded, like any card's).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.adapt.alignment import InputAlignment
from stream.adapt.head import AdaptationError, Head
from stream.common.atomic import atomic_write_bytes, atomic_write_json
from stream.stages.model_card import sha256_file

ADAPTATION_FILE = "adaptation.npz"
METHODS = ("head", "alignment", "alignment+head")


@dataclass(frozen=True)
class Adaptation:
    method: str
    alignment: InputAlignment | None
    head: Head | None

    def align(self, inputs: dict) -> dict:
        if self.alignment is None:
            return inputs
        return {name: self.alignment.apply(name, array) for name, array in inputs.items()}


def adaptation_arrays(adaptation: Adaptation) -> dict:
    arrays = {}
    if adaptation.alignment is not None:
        for name in adaptation.alignment.modalities:
            arrays[f"scale_{name}"] = adaptation.alignment.scales[name]
            arrays[f"offset_{name}"] = adaptation.alignment.offsets[name]
    if adaptation.head is not None:
        arrays["head_weights"] = adaptation.head.weights
        arrays["head_bias"] = adaptation.head.bias
        arrays["head_l2"] = np.float64(adaptation.head.l2)
    return arrays


def load_adaptation(card) -> Adaptation | None:
    """The adaptation a card carries (None for a base model), its file's sha256 checked first."""
    section = card.document.get("adaptation")
    if section is None:
        return None
    where = f"{card.path}: adaptation"
    try:
        method = section["method"]
        entry = section["file"]
        path = Path(card.path).parent / entry["path"]
        expected = entry["sha256"]
    except (KeyError, TypeError) as error:
        raise AdaptationError(f"{where} lacks {error}; write the card again with stream-calibrate") from None
    if method not in METHODS:
        raise AdaptationError(f"{where}: method {method!r} is not one of {', '.join(METHODS)}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AdaptationError(f"{where}: cannot read {path} ({error.strerror})") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise AdaptationError(f"{where}: {path.name} does not match the card's sha256 (changed or damaged); "
                              "calibrate again")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        values = {name: arrays[name] for name in arrays.files}
    alignment = None
    if "alignment" in method:
        names = sorted(name.removeprefix("scale_") for name in values if name.startswith("scale_"))
        alignment = InputAlignment({name: values[f"scale_{name}"].astype(np.float32) for name in names},
                                   {name: values[f"offset_{name}"].astype(np.float32) for name in names})
    head = None
    if "head" in method:
        head = Head(values["head_weights"].astype(np.float32), values["head_bias"].astype(np.float32),
                    float(values["head_l2"]))
    return Adaptation(method, alignment, head)


def write_adapted_card(base_card, out_dir, adaptation: Adaptation, section: dict) -> Path:
    """Write ``out_dir`` (new or empty) with the base model's files, the adaptation and the card, the
    card last, each file atomically. Returns the card's path."""
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(base_card.path).parent.resolve():
        raise AdaptationError(f"{out_dir} is the base model's directory: an adapted model never overwrites its "
                              "base; choose another --out")
    if (out_dir / "model_card.json").exists():
        raise AdaptationError(f"{out_dir} already holds a model card; choose a new --out (cards are never "
                              "overwritten: the model you chose before stays as it was)")
    out_dir.mkdir(parents=True, exist_ok=True)
    document = json.loads(json.dumps(base_card.document))
    files = {}
    for variant, model_file in base_card.files.items():
        data = model_file.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != model_file.sha256:
            raise AdaptationError(f"{model_file.path} does not match its card's sha256; the base model is damaged")
        target = out_dir / model_file.path.name
        atomic_write_bytes(target, data)
        files[variant] = {"path": target.name, "sha256": model_file.sha256, "bytes": model_file.bytes}
    arrays_path = out_dir / ADAPTATION_FILE
    atomic_write_bytes(arrays_path, _npz_bytes(adaptation_arrays(adaptation)))
    digest = sha256_file(arrays_path)
    document["files"] = files
    document["model_id"] = f"{base_card.model_id}-{section.get('user', 'user')}-{digest[:8]}"
    document["description"] = (f"{base_card.model_id} adapted to {section.get('user', 'a user')} "
                               f"({adaptation.method}, k = {section.get('k')})")
    document["adaptation"] = {
        **section, "method": adaptation.method, "base_model_id": base_card.model_id,
        "base_card": str(Path(base_card.path).resolve()),
        "file": {"path": ADAPTATION_FILE, "sha256": digest, "bytes": arrays_path.stat().st_size},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    card_path = out_dir / "model_card.json"
    atomic_write_json(card_path, document)
    return card_path


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
