"""Training blocks (``emorec.train``): determinism, class weights, folds, resumed cross-validation, saving."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from emorec import train
from emorec.config import LABELS
from emorec.models import build
from emorec.train import class_weights, compile_model
from tests.conftest import ROOT


DETERMINISTIC_FIT = ("""
import emorec, numpy as np
from emorec.models import build
from emorec.train import augmentation, compile_model, make_dataset, predict_probabilities, set_seed
x = np.random.default_rng(0).integers(0, 255, (32, 48, 48, 1)).astype(np.uint8)
y = np.arange(32) % 8
for run in range(2):
    set_seed()
    model = build("emorec")
    compile_model(model, "adamw", 1e-3)
    model.fit(make_dataset(x, y, 8, augmentation(), shuffle=True), epochs=2, shuffle=False, verbose=0)
"""
                     "    print(float(sum(np.abs(w).sum() for w in model.get_weights())).hex(), "
                     "float(predict_probabilities(model, x).sum()).hex())\n")


def test_training_repeats_exactly_and_quietly():
    """Two trainings after ``set_seed`` end with the same weights and predictions to the bit (a fresh
    process: op determinism cannot be switched off again), and the log has no error line."""
    result = subprocess.run([sys.executable, "-c", DETERMINISTIC_FIT], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = result.stdout.splitlines()
    assert first == second
    assert "E0000" not in result.stderr, result.stderr[-2000:]


def test_class_weights_favour_rare_classes():
    weights = class_weights(np.array([0] * 90 + [1] * 10), power=1.0)
    assert weights[1] > weights[0] and weights[1] / weights[0] == pytest.approx(9)


def test_folds_protocols(class_folder_dataset):
    from emorec.data import load_dataset

    manifest = load_dataset(class_folder_dataset)
    subject = list(train.folds(manifest, "subject-kfold", n_splits=3))
    image = list(train.folds(manifest, "image-kfold", n_splits=3))
    assert len(subject) == len(image) == 3
    study_split = list(train.folds(manifest, "image-kfold"))  # default: the study's 75/25 split, 4 times
    assert len(study_split) == 4 and all(len(test) / len(manifest) == pytest.approx(0.25, abs=0.05)
                                         for _, test in study_split)
    with pytest.raises(ValueError, match="Unknown protocol"):
        list(train.folds(manifest, "random", 3))


def test_cross_validation_resumes_finished_folds(tmp_path, class_folder_dataset):
    from emorec.data import load_dataset

    manifest = load_dataset(class_folder_dataset)
    x = np.zeros((len(manifest), 4, 4, 1), np.uint8)
    trained = []

    def trainer(x_train, y_train, groups, run_dir):
        trained.append(run_dir.name)
        return lambda images: np.full((len(images), len(LABELS)), 1 / len(LABELS))

    first = train.cross_validate(x, manifest, trainer, "subject-kfold", tmp_path, n_splits=3)
    assert len(trained) == 3 and len(first) == len(manifest)
    again = train.cross_validate(x, manifest, trainer, "subject-kfold", tmp_path, n_splits=3)
    assert len(trained) == 3  # nothing trained twice
    pd.testing.assert_frame_equal(first, again)
    train.cross_validate(x + 1, manifest, trainer, "subject-kfold", tmp_path, n_splits=3)
    assert len(trained) == 6  # other inputs (new crops): trained again
    train.cross_validate(x + 1, manifest, trainer, "subject-kfold", tmp_path, n_splits=3, settings=(20,))
    assert len(trained) == 9  # other settings (more epochs): trained again


def test_save_model_keeps_inference_only_and_can_quantize(tmp_path):
    from emorec.train import save_model

    model = build("tuned_mtcnn")
    compile_model(model, "adam", 1e-3)
    x = np.random.default_rng(0).integers(0, 255, (8, 54, 72, 3)).astype(np.float32)
    model.fit(x, np.arange(8) % 8, epochs=1, verbose=0)
    save_model(model, tmp_path / "plain.keras")
    save_model(model, tmp_path / "int8.keras", quantize=True)
    plain, int8 = (keras.models.load_model(tmp_path / f, compile=False) for f in ("plain.keras", "int8.keras"))
    assert getattr(plain, "optimizer", None) is None
    assert (tmp_path / "int8.keras").stat().st_size < (tmp_path / "plain.keras").stat().st_size / 3
    assert np.allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert np.abs(int8.predict(x, verbose=0) - plain.predict(x, verbose=0)).max() < 0.05
