"""Per-user adaptation on the device: the head correction, the input alignment, and the adapted card
that the classifier runs (real TFLite models, real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.adapt.alignment import InputAlignment, fit_alignment
from stream.adapt.card import Adaptation, load_adaptation, write_adapted_card
from stream.adapt.head import AdaptationError, Head, choose_l2, cross_validated_accuracy, fit_head


def user_problem(seed: int = 0, classes: int = 5, per_class: int = 6, width: int = 12):
    """A base model that confuses this user's classes (it puts class c's mass on c + 1) and features
    that do separate them: what a new person looks like to a model trained on others."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (classes, width))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + rng.normal(0, 0.7, (len(labels), width))
    probabilities = np.full((len(labels), classes), 0.1 / (classes - 1))
    probabilities[np.arange(len(labels)), (labels + 1) % classes] = 0.9
    groups = np.tile(np.arange(per_class), classes)
    return probabilities, features, labels, groups


def test_a_zero_correction_is_the_base_model():
    probabilities, features, _, _ = user_problem()
    identity = Head.identity(features.shape[1], probabilities.shape[1])
    np.testing.assert_allclose(identity.apply(probabilities, features), probabilities, rtol=1e-5, atol=1e-7)


def test_the_head_learns_the_users_classes_and_generalises_to_new_repetitions():
    probabilities, features, labels, groups = user_problem()
    assert np.mean(probabilities.argmax(axis=1) == labels) == 0.0
    train = groups < 2  # two repetitions per class
    head = fit_head(probabilities[train], features[train], labels[train], l2=0.1)
    held = head.apply(probabilities[~train], features[~train]).argmax(axis=1)
    assert np.mean(held == labels[~train]) >= 0.9
    assert head.weights.dtype == np.float32 and head.weights.shape == (features.shape[1], probabilities.shape[1])


def test_the_penalty_keeps_the_base_model_where_the_user_agrees_with_it():
    probabilities, features, labels, _ = user_problem()
    right = np.eye(probabilities.shape[1])[labels] * 0.9 + 0.1 / probabilities.shape[1]
    strong = fit_head(right, features, labels, l2=100.0)
    assert np.abs(strong.weights).max() < 0.05  # nothing to correct: close to zero
    np.testing.assert_array_equal(strong.apply(right, features).argmax(axis=1), labels)


def test_standardisation_is_folded_into_the_weights():
    probabilities, features, labels, _ = user_problem()
    scaled = features * 1000.0 + 50.0  # a feature scale far from 1 gives the same decisions
    plain, big = fit_head(probabilities, features, labels, 1.0), fit_head(probabilities, scaled, labels, 1.0)
    np.testing.assert_allclose(plain.apply(probabilities, features), big.apply(probabilities, scaled), atol=2e-3)


def test_cross_validation_holds_out_whole_repetitions_and_chooses_a_penalty():
    probabilities, features, labels, groups = user_problem()
    keep = groups < 3
    score = cross_validated_accuracy(probabilities[keep], features[keep], labels[keep], groups[keep], 0.1)
    assert 0.8 <= score <= 1.0
    chosen, scores = choose_l2(probabilities[keep], features[keep], labels[keep], groups[keep])
    assert chosen in scores and scores[chosen] == max(scores.values())
    # One repetition: nothing to hold out, the base model's accuracy is all cross-validation can say.
    single = groups == 0
    assert cross_validated_accuracy(probabilities[single], features[single], labels[single], groups[single], 1.0) == 0.0


def test_bad_calibration_data_is_refused_with_what_to_do():
    probabilities, features, labels, _ = user_problem()
    with pytest.raises(AdaptationError, match="one of each per calibration window"):
        fit_head(probabilities, features[:-1], labels)
    broken = features.copy()
    broken[0, 0] = np.nan
    with pytest.raises(AdaptationError, match="record the calibration again"):
        fit_head(probabilities, broken, labels)
    with pytest.raises(AdaptationError, match="class indices"):
        fit_head(probabilities, features, labels + 10)


def test_alignment_matches_each_channel_to_the_training_statistics():
    rng = np.random.default_rng(1)
    training = rng.normal(0.5, 0.2, (40, 30, 3))
    statistics = {"emg": {"mean": training.reshape(-1, 3).mean(0).tolist(), "std": training.reshape(-1, 3).std(0).tolist()}}
    # The same person's signals through other electrode gains and offsets.
    user = training * np.array([2.0, 0.5, 1.3]) + np.array([0.1, -0.2, 0.0])
    alignment = fit_alignment({"emg": user}, statistics)
    aligned = alignment.apply("emg", user)
    np.testing.assert_allclose(aligned.reshape(-1, 3).mean(0), statistics["emg"]["mean"], atol=1e-5)
    np.testing.assert_allclose(aligned.reshape(-1, 3).std(0), statistics["emg"]["std"], rtol=1e-4)
    np.testing.assert_allclose(aligned, training, atol=1e-5)  # gains and offsets undone exactly
    assert alignment.apply("acc", user) is user  # a modality without statistics passes through
    with pytest.raises(AdaptationError, match="no input statistics"):
        fit_alignment({"gyro": user}, statistics)
    # A channel the user never moved is not blown up into noise.
    still = user.copy()
    still[..., 2] = 0.3
    assert fit_alignment({"emg": still}, statistics).scales["emg"][2] <= 10.0


def test_an_adapted_card_runs_in_the_classifier_and_refuses_tampering(tmp_path):
    from daemon_helpers import tiny_model_card

    from stream.config import Config
    from stream.dsp.windows import Window
    from stream.stages.classifier import Classifier
    from stream.stages.model_card import load_model_card

    config = Config()
    base_path = tiny_model_card(tmp_path / "base", features=True)
    base = Classifier.from_config(Config(model=type(config.model)(card=str(base_path))))
    assert base.model.feature_count > 0 and base.adaptation is None
    rng = np.random.default_rng(2)
    shapes = base.card.input_shapes
    windows = {name: rng.random((8, *shapes[name])).astype(np.float32) for name in ("emg", "acc", "gyro")}
    probabilities, features = base.base_outputs(windows["emg"], windows["acc"], windows["gyro"])
    labels = np.arange(8) % len(base.labels)
    head = fit_head(probabilities, features, labels, l2=0.3)
    alignment = InputAlignment({"emg": np.full(shapes["emg"][1], 2.0, np.float32)},
                               {"emg": np.zeros(shapes["emg"][1], np.float32)})
    card_path = write_adapted_card(load_model_card(base_path), tmp_path / "me", Adaptation("alignment+head", alignment, head),
                                   {"user": "me", "k": 2})
    document = json.loads(card_path.read_text())
    assert document["adaptation"]["base_model_id"] == base.model_id and document["model_id"].startswith(base.model_id)
    adapted = Classifier.from_config(Config(model=type(config.model)(card=str(card_path))))
    expected = head.apply(*base.base_outputs(windows["emg"] * 2.0, windows["acc"], windows["gyro"]))
    np.testing.assert_allclose(adapted.predict_batch(windows["emg"], windows["acc"], windows["gyro"]), expected,
                               rtol=1e-5, atol=1e-6)
    one = adapted.predict(Window(shapes["emg"][0], windows["emg"][0], windows["acc"][0], windows["gyro"][0], False))
    np.testing.assert_allclose(one, expected[0], rtol=1e-5, atol=1e-6)
    assert load_adaptation(adapted.card).method == "alignment+head"

    # Never over the base, never over another card; a changed adaptation file is refused.
    with pytest.raises(AdaptationError, match="never overwrites its base"):
        write_adapted_card(load_model_card(base_path), base_path.parent, Adaptation("head", None, head), {})
    with pytest.raises(AdaptationError, match="already holds a model card"):
        write_adapted_card(load_model_card(base_path), tmp_path / "me", Adaptation("head", None, head), {})
    (tmp_path / "me" / "adaptation.npz").write_bytes(b"PK not the arrays")
    with pytest.raises(AdaptationError, match="does not match the card's sha256"):
        Classifier.from_config(Config(model=type(config.model)(card=str(card_path))))


def test_a_head_needs_the_features_output(tmp_path):
    from daemon_helpers import tiny_model_card

    from stream.config import Config
    from stream.stages.classifier import Classifier
    from stream.stages.model_card import ModelCardError, load_model_card

    base_path = tiny_model_card(tmp_path / "plain")
    head = Head.identity(4, 4)
    card_path = write_adapted_card(load_model_card(base_path), tmp_path / "me", Adaptation("head", None, head), {"user": "me"})
    with pytest.raises(ModelCardError, match="features output"):
        Classifier.from_config(Config(model=type(Config().model)(card=str(card_path))))
