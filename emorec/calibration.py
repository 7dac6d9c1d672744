"""Honest probabilities: temperature scaling and the expected calibration error (ECE).

A model that says 90 % should be right nine times in ten. A temperature T rescales its
probabilities (softmax(log p / T)) after training; it is fitted on predictions for faces the
model never trained on, and measured on others (``cross_fitted``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emorec.config import LABELS


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(ece), 4)


def calibration_error_among(probabilities: np.ndarray, labels: np.ndarray, columns: list[int]) -> float:
    """ECE over some classes only (a dataset without contempt: FER2013): the probabilities of
    ``columns`` renormalised; ``labels`` index into ``columns``."""
    among = probabilities[:, columns] / probabilities[:, columns].sum(axis=1, keepdims=True)
    return expected_calibration_error(among, labels)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(log p / T); with
    ``groups`` (e.g. the domain of each face), every group weighs the same however many rows it has."""
    from scipy.optimize import minimize_scalar  # deferred: SciPy loads in a second, only when fitting

    logits = np.log(np.clip(probabilities, 1e-12, 1.0))
    groups = np.zeros(len(labels)) if groups is None else np.asarray(groups)
    weights = 1 / pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()

    def nll(temperature: float) -> float:
        scaled = logits / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-(weights * log_probs[np.arange(len(labels)), labels]).sum() / weights.sum())

    return round(float(minimize_scalar(nll, bounds=(0.25, 10.0), method="bounded").x), 4)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    scaled = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def with_temperature(predictions: pd.DataFrame, temperature: float) -> pd.DataFrame:
    """A predictions table (one probability column per class) with its probabilities scaled."""
    scaled = predictions.copy()
    scaled[list(LABELS)] = apply_temperature(predictions[list(LABELS)].to_numpy(), temperature)
    return scaled


def cross_fitted(probabilities: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Each fold's probabilities scaled by a temperature fitted on the other folds (see
    ``fit_temperature`` for ``groups``): an ECE measured on the very predictions a temperature was
    fitted on would flatter it."""
    scaled = np.empty_like(probabilities)
    for fold in np.unique(folds):
        inside = folds == fold
        temperature = fit_temperature(probabilities[~inside], labels[~inside],
                                      None if groups is None else groups[~inside])
        scaled[inside] = apply_temperature(probabilities[inside], temperature)
    return scaled
