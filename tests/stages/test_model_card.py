"""model_card.json: validation with clear errors; the shipped card matches the code and its files."""

from __future__ import annotations

import copy
import json

import pytest

from stream.stages.model_card import ModelCardError, load_model_card, parse_model_card, read_verified_model, sha256_of

MODEL_BYTES = b"TFL3 pretend model bytes"


def card_document(**changes) -> dict:
    document = {
        "schema_version": 1,
        "model_id": "student-abc",
        "labels": ["good", "bad", "water"],
        "input": {"modalities": ["emg", "acc"], "shapes": {"emg": [148, 6], "acc": [148, 18]}, "dtype": "float32",
                  "model_rate_hz": "2000/27", "window_samples": 148, "window_s": 2.0},
        "preprocessing": {"hash": "a" * 64, "spec": {}},
        "files": {"float32": {"path": "student_float32.tflite", "sha256": sha256_of(MODEL_BYTES),
                              "bytes": len(MODEL_BYTES)}},
        "metrics": {},
    }
    document.update(changes)
    return document


def write_card(directory, document) -> str:
    (directory / "student_float32.tflite").write_bytes(MODEL_BYTES)
    path = directory / "model_card.json"
    path.write_text(json.dumps(document))
    return path


def test_a_valid_card_loads_and_its_file_verifies(tmp_path):
    card = load_model_card(write_card(tmp_path, card_document()))
    assert card.labels == ("good", "bad", "water")
    assert card.input_shapes == {"emg": (148, 6), "acc": (148, 18)}
    assert card.file("float32").path == tmp_path / "student_float32.tflite"
    assert read_verified_model(card.file("float32")) == MODEL_BYTES


def test_a_changed_model_file_is_refused(tmp_path):
    card = load_model_card(write_card(tmp_path, card_document()))
    (tmp_path / "student_float32.tflite").write_bytes(MODEL_BYTES.replace(b"pretend", b"modified"))
    with pytest.raises(ModelCardError, match="does not match its card"):
        read_verified_model(card.file("float32"))
    (tmp_path / "student_float32.tflite").unlink()
    with pytest.raises(ModelCardError, match="does not exist"):
        read_verified_model(card.file("float32"))


def test_missing_variant_names_what_is_there(tmp_path):
    card = load_model_card(write_card(tmp_path, card_document()))
    with pytest.raises(ModelCardError, match="no 'int8' model.*float32"):
        card.file("int8")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("labels"), "missing field 'labels'"),
    (lambda d: d.update(labels=["a", "a"]), "duplicates"),
    (lambda d: d.update(labels="good"), "expected list"),
    (lambda d: d.update(schema_version=7), "schema_version 7"),
    (lambda d: d["input"]["shapes"].update(emg=[100, 6]), r"expected \[148, channels\]"),
    (lambda d: d["input"]["shapes"].update(mag=[148, 3]), "unknown modality"),
    (lambda d: d["input"].update(model_rate_hz="fast"), "rate string"),
    (lambda d: d["preprocessing"].update(hash="xyz"), "sha256 hex digest"),
    (lambda d: d["files"]["float32"].update(path="../../etc/passwd"), "next to the card"),
    (lambda d: d["files"]["float32"].update(sha256="00"), "64 lower-case hex"),
    (lambda d: d["files"].update(float16=d["files"]["float32"]), "unknown variant"),
    (lambda d: d.update(files={}), "names no model"),
])
def test_bad_cards_are_refused_with_the_field_named(tmp_path, mutate, message):
    document = copy.deepcopy(card_document())
    mutate(document)
    with pytest.raises(ModelCardError, match=message):
        parse_model_card(document, tmp_path / "model_card.json")


def test_unreadable_cards(tmp_path):
    with pytest.raises(ModelCardError, match="does not exist"):
        load_model_card(tmp_path / "nope.json")
    (tmp_path / "model_card.json").write_text("{ not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        load_model_card(tmp_path / "model_card.json")


def test_the_shipped_card_matches_the_code_and_its_files():
    """The student in models/student/ runs with the shipped config: same preprocessing, intact files."""
    import numpy as np

    from models import STUDENT_DIR
    from stream.config import load_config
    from stream.dsp.preprocess import preprocessing_hash
    from stream.stages.classifier import Classifier

    card = load_model_card(STUDENT_DIR / "model_card.json")
    config = load_config(None)
    assert card.preprocessing_hash == preprocessing_hash(config), (
        "the shipped student was trained with other preprocessing than stream/default.toml gives: retrain it "
        "(README: Training and the shipped model) or restore the preprocessing settings")
    for model_file in card.files.values():
        read_verified_model(model_file)
    assert set(card.files) == {"float32", "dynamic_range", "int8"}
    classifier = Classifier.from_config(config)
    assert len(classifier.labels) == 50
    shapes = card.input_shapes
    probabilities = classifier.predict_batch(*(np.zeros((1, *shapes[name]), np.float32) for name in ("emg", "acc", "gyro")))
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-4)
    sizes = card.document["metrics"]["sizes_bytes"]
    assert sizes["teacher_ensemble_float32"] >= 4 * sizes["student_dynamic_range"]
    assert not card.document["training"]["quick"]
