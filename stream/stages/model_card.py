"""``model_card.json``: what a trained model is, what it expects, and how well it did.

The card is written by ``python -m train.distill`` next to the .tflite files it names. The runtime
reads it before it touches a model file: the labels, the input spec (modalities, shapes, rate,
window), the preprocessing hash the model was trained with, and each variant's file with its sha256
and size. Everything else (metrics, training details, versions) is kept as free-form JSON for
people and reports.

Runtime dependencies only: json, hashlib, pathlib.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stream.wire.layout import Layout
from stream.wire.rates import parse_rate

SCHEMA_VERSION = 1
VARIANTS = ("float32", "dynamic_range", "int8")
MODALITY_CHANNELS = {"emg": 6, "acc": 18, "gyro": 18}


class ModelCardError(ValueError):
    """A card that cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class ModelFile:
    variant: str
    path: Path  # absolute: resolved against the card's directory
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ModelCard:
    path: Path
    model_id: str
    labels: tuple[str, ...]
    modalities: tuple[str, ...]
    input_shapes: dict  # modality -> (window_samples, channels)
    model_rate_hz: Fraction
    window_samples: int
    preprocessing_hash: str
    files: dict  # variant -> ModelFile
    document: dict  # the whole JSON, for metrics and reports

    @property
    def layout(self) -> Layout | None:
        """The sensor layout the model was trained on (from the card's preprocessing spec), if it says."""
        sensors = self.document.get("preprocessing", {}).get("spec", {}).get("sensors")
        if not isinstance(sensors, dict):
            return None
        try:
            names = tuple(sensors["names"])
            return Layout(names, tuple(sensors.get("imu_names") or names),
                          tuple(name for name in ("emg", "acc", "gyro") if name in sensors["modalities"]),
                          parse_rate(sensors["emg_rate_hz"]), parse_rate(sensors["imu_rate_hz"]),
                          sensors.get("emg_unit", "mV"))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelCardError(f"{self.path}: preprocessing.spec.sensors does not describe a layout: {error}") from None

    def file(self, variant: str) -> ModelFile:
        if variant not in self.files:
            raise ModelCardError(
                f"{self.path}: no {variant!r} model in this card; it has {', '.join(sorted(self.files)) or 'none'} "
                "(set [model] variant to one of those)"
            )
        return self.files[variant]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field(document: dict, key: str, kind: type, where: str):
    if key not in document:
        raise ModelCardError(f"{where}: missing field {key!r}; the card must be written by python -m train.distill")
    value = document[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelCardError(f"{where}: field {key!r} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _is_hex_digest(value: str) -> bool:
    return len(value) == 64 and all(character in "0123456789abcdef" for character in value)


def parse_model_card(document: dict, path: Path) -> ModelCard:
    """Validate a card's JSON content; ``path`` locates it (model files are relative to it)."""
    where = str(path)
    if not isinstance(document, dict):
        raise ModelCardError(f"{where}: expected a JSON object at the top level")
    version = _field(document, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise ModelCardError(f"{where}: schema_version {version} is not supported (this code reads {SCHEMA_VERSION})")
    model_id = _field(document, "model_id", str, where)
    labels = _field(document, "labels", list, where)
    if len(labels) < 2 or not all(isinstance(label, str) and label for label in labels):
        raise ModelCardError(f"{where}: 'labels' must be a list of at least two non-empty strings")
    if len(set(labels)) != len(labels):
        raise ModelCardError(f"{where}: 'labels' has duplicates")

    spec = _field(document, "input", dict, where)
    window_samples = _field(spec, "window_samples", int, f"{where} input")
    try:
        model_rate_hz = Fraction(_field(spec, "model_rate_hz", str, f"{where} input"))
    except (ValueError, ZeroDivisionError):
        raise ModelCardError(f"{where}: input.model_rate_hz must be a 'p/q' rate string such as '2000/27'") from None
    shapes_document = _field(spec, "shapes", dict, f"{where} input")
    if not shapes_document:
        raise ModelCardError(f"{where}: input.shapes is empty; a model needs at least one modality")
    shapes = {}
    for modality, shape in shapes_document.items():
        if modality not in MODALITY_CHANNELS:
            raise ModelCardError(f"{where}: input.shapes has unknown modality {modality!r}; expected emg, acc or gyro")
        if (not isinstance(shape, list) or len(shape) != 2 or shape[0] != window_samples
                or not isinstance(shape[1], int) or shape[1] < 1):
            raise ModelCardError(f"{where}: input.shapes.{modality} = {shape!r}; expected [{window_samples}, channels]")
        shapes[modality] = (shape[0], shape[1])

    preprocessing = _field(document, "preprocessing", dict, where)
    preprocessing_hash = _field(preprocessing, "hash", str, f"{where} preprocessing")
    if not _is_hex_digest(preprocessing_hash):
        raise ModelCardError(f"{where}: preprocessing.hash must be a sha256 hex digest")

    files_document = _field(document, "files", dict, where)
    files = {}
    for variant, entry in files_document.items():
        if variant not in VARIANTS:
            raise ModelCardError(f"{where}: files has unknown variant {variant!r}; expected {', '.join(VARIANTS)}")
        context = f"{where} files.{variant}"
        relative = _field(entry, "path", str, context) if isinstance(entry, dict) else None
        if relative is None:
            raise ModelCardError(f"{context}: expected an object with path, sha256 and bytes")
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ModelCardError(f"{context}: path {relative!r} must be a file name next to the card")
        digest = _field(entry, "sha256", str, context)
        if not _is_hex_digest(digest):
            raise ModelCardError(f"{context}: sha256 must be 64 lower-case hex digits")
        size = _field(entry, "bytes", int, context)
        files[variant] = ModelFile(variant, path.parent / relative, digest, size)
    if not files:
        raise ModelCardError(f"{where}: 'files' names no model")
    return ModelCard(path=path, model_id=model_id, labels=tuple(labels), modalities=tuple(shapes), input_shapes=shapes,
                     model_rate_hz=model_rate_hz, window_samples=window_samples,
                     preprocessing_hash=preprocessing_hash, files=files, document=document)


def load_model_card(path: str | Path) -> ModelCard:
    """Read and validate a card; raises ModelCardError with the file and the problem."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelCardError(
            f"model card {path} does not exist; train one with python -m train.distill or set [model] card"
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ModelCardError(f"cannot read model card {path}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelCardError(f"{path}: not valid JSON: {error}") from None
    return parse_model_card(document, path)


def read_verified_model(model_file: ModelFile) -> bytes:
    """The model file's bytes, after checking its size and sha256 against the card."""
    try:
        data = model_file.path.read_bytes()
    except FileNotFoundError:
        raise ModelCardError(f"model file {model_file.path} named by the card does not exist") from None
    digest = sha256_of(data)
    if digest != model_file.sha256 or len(data) != model_file.bytes:
        raise ModelCardError(
            f"model file {model_file.path} does not match its card: sha256 {digest[:12]}... ({len(data)} bytes), "
            f"card says {model_file.sha256[:12]}... ({model_file.bytes} bytes); the file was changed or the card "
            "belongs to another model: retrain or restore both together"
        )
    return data
