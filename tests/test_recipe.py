"""emorec's recipe end to end on tiny synthetic data: pretrain, cross-validate with calibration,
ship, and test on a held-out set of pre-cropped faces."""

from __future__ import annotations

import numpy as np
import pytest

from emorec import evaluate, recipe, registry
from emorec.predict import EmotionRecognizer
from emorec.train import pretrain_fer
from tests.conftest import write_image


def test_temperature_fitting_recovers_overconfidence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    logits = rng.normal(0, 1, (2000, 4))
    logits[np.arange(2000), labels] += 1.0
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    overconfident = evaluate.apply_temperature(calibrated, 1 / 3)  # three times too sharp
    assert evaluate.fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.15)
    assert evaluate.expected_calibration_error(evaluate.apply_temperature(overconfident, 3.0), labels) < \
        evaluate.expected_calibration_error(overconfident, labels)


def test_recipe_end_to_end(tmp_path, class_folder_dataset):
    fer = tmp_path / "fer"
    for split in ("train", "validation"):
        for label in ("happy", "angry", "neutral"):
            for i in range(10):
                write_image(fer / split / label / f"{split}_{label}_{i}.jpg", size=(48, 48))
    ck48 = tmp_path / "ck48"
    for subject in range(1, 7):
        write_image(ck48 / "happy" / f"S{subject:03d}_001_00000011.png", size=(48, 48))
    models = tmp_path / "models"

    pretrain_fer(fer / "train", recipe.pretrained_path(models).parent, epochs=1, run_dir=tmp_path / "run")
    assert recipe.pretrained_path(models).exists()
    summary = recipe.cross_validate_emorec(class_folder_dataset, ck48, fer / "train", "cmd", models, epochs=1, n_splits=2)
    assert summary["classes_8"]["folds"] == 2 and summary["extra_training_data"]["fer2013_slice"] == 30
    card = recipe.ship_emorec(class_folder_dataset, ck48, fer / "train", "cmd", models, epochs=1)
    assert card["tta_flip"] and card["calibration"]["temperature"] > 0 and card["data"]["extra"]["ck48_frames"] == 6
    holdout = recipe.evaluate_holdout("emorec", fer / "validation", "cmd", models)
    assert holdout["images"] == 30 and holdout["classes"] == ["neutral", "anger", "happiness"]
    assert registry.headline(registry.read_card("emorec", models))["FER2013 PublicTest"] == holdout["accuracy"]
    recognizer = EmotionRecognizer.load("emorec", models)
    crops = np.zeros((2, 48, 48, 1), np.float32)
    assert np.allclose(recognizer.classify(crops).sum(axis=1), 1)
