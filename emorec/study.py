"""The 2019 study's variants (``baseline``, ``tuned_full``, ``tuned_mtcnn``): how one is trained on a
cross-validation fold or on a whole dataset, with its own optimizer, batch size and epochs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from emorec import models
from emorec.files import code_fingerprint
from emorec.models import VARIANTS, build
from emorec.train import (augmentation, class_weights, compile_model, fit, inner_validation_split, make_dataset,
                          make_optimizer, predict_probabilities, set_seed)


def train_study_variant(name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, run_dir: Path,
                        epochs: int | None = None, verbose: int = 2) -> keras.Model:
    """A study variant with its own optimizer, batch size and epochs. With ``groups``, 15 % of
    the subjects are held out for early stopping; without (the final model), it trains ``epochs``."""
    set_seed()
    variant = VARIANTS[name]
    model = build(name)
    compile_model(model, variant.optimizer, variant.learning_rate)
    augment = augmentation()
    if groups is not None:
        fit_rows, val_rows = inner_validation_split(y, groups)
        val = make_dataset(x[val_rows], y[val_rows], 256)
    else:
        fit_rows, val = np.arange(len(y)), None
    train = make_dataset(x[fit_rows], y[fit_rows], variant.batch_size, augment, shuffle=True)
    fit(model, train, val, epochs or variant.epochs, run_dir, class_weights(y[fit_rows], 1.0),
        patience=max(5, min(10, (epochs or variant.epochs) // 5)), verbose=verbose)
    return model


def study_trainer(name: str, epochs: int | None = None):
    """A ``train.Trainer`` for a study variant: trains on a fold, returns its predict function."""

    def train_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, run_dir: Path):
        model = train_study_variant(name, x, y, groups, run_dir, epochs, verbose=0)
        return lambda images: predict_probabilities(model, images)

    return train_fold


def training_code(name: str) -> str:
    """``code_fingerprint`` of what trains a study variant in a fold: its network and its recipe."""
    network = models.cifar10_cnn if name == "baseline" else models.tuned_cnn
    return code_fingerprint(network, train_study_variant, study_trainer, fit, augmentation, make_dataset, class_weights,
                            compile_model, make_optimizer, inner_validation_split, predict_probabilities)
