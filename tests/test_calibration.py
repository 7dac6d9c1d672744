"""Calibration (``emorec.calibration``): calibration error and temperature fitting."""

from __future__ import annotations

import numpy as np
import pytest

from emorec.calibration import expected_calibration_error
from tests.conftest import calibrated_probabilities


def test_calibration_error():
    perfect = np.eye(4)
    assert expected_calibration_error(perfect, np.arange(4)) == 0
    overconfident = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(overconfident, np.array([0] * 5 + [1] * 5)) == \
        pytest.approx(0.49, abs=0.01)


def test_cross_fitted_calibration_error_does_not_flatter():
    import numpy as np

    from emorec.calibration import apply_temperature, cross_fitted, expected_calibration_error, fit_temperature

    calibrated, labels = calibrated_probabilities(4000, seed=0)
    folds = np.repeat([0, 1], 2000)
    probabilities = calibrated.copy()
    probabilities[folds == 0] = apply_temperature(calibrated[folds == 0], 1 / 3)  # fold 0 three times too sharp
    in_sample = expected_calibration_error(apply_temperature(probabilities, fit_temperature(probabilities, labels)),
                                           labels)
    # each fold gets the other's temperature: fold 0 stays too sharp, fold 1 turns too soft
    assert expected_calibration_error(cross_fitted(probabilities, labels, folds), labels) > in_sample
    # alike folds: still calibrated
    assert expected_calibration_error(cross_fitted(calibrated, labels, folds), labels) < 0.03


def test_temperature_groups_weigh_alike_however_many_rows():
    import numpy as np

    from emorec.calibration import apply_temperature, fit_temperature

    def faces(n, temperature, seed):  # calibrated faces, then made too sharp (T < 1) or too soft (T > 1)
        calibrated, labels = calibrated_probabilities(n, seed)
        return apply_temperature(calibrated, temperature), labels

    # too soft (wants T = 0.5), too sharp (T = 2)
    (posed, posed_y), (wild, wild_y) = faces(500, 2.0, seed=1), faces(5000, 0.5, seed=2)
    both, both_y = np.concatenate([posed, wild]), np.concatenate([posed_y, wild_y])
    pooled = fit_temperature(both, both_y)
    balanced = fit_temperature(both, both_y, np.repeat(["posed", "wild"], [500, 5000]))
    assert fit_temperature(posed, posed_y) < 0.6 and pooled > 1.8  # pooled: the ten times bigger group decides
    assert 0.6 < balanced < pooled - 0.3  # each group weighing half pulls it well towards the small one
