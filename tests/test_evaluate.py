"""Scoring of labelled photos (the Classify page's batch tab and the Compare page's own photos)."""

from __future__ import annotations

import pandas as pd

from emorec.metrics import score_labelled
from tests.conftest import calibrated_probabilities


def rows(*items):
    return pd.DataFrame([dict(zip(("photo", "model", "expected", "predicted"), item)) for item in items])


def test_photos_without_a_face_count_against_accuracy():
    results = rows(("a.jpg", "m", "happiness", "happiness"), ("b.jpg", "m", "anger", None),  # no face found
                   ("c.jpg", None, "fear", None),  # unreadable: no model ran
                   ("d.jpg", "m", None, "sadness"),  # no expected label: not scored
                   ("a.jpg", "m", "sadness", "anger"))  # another photo of the same name (sad/a.jpg)
    summary, matrices = score_labelled(results)
    row = summary.set_index("model").loc["m"]
    assert (row["photos"], row["faces_found"]) == (4, 2)
    assert row["accuracy"] == 0.25 and row["accuracy_on_faces"] == 0.5
    assert matrices["m"].to_numpy().sum() == 2


def test_a_model_that_finds_no_face_scores_zero_not_an_error():
    summary, matrices = score_labelled(rows(("a.jpg", "m", "anger", None)))
    row = summary.iloc[0]
    assert row["accuracy"] == 0 and row["faces_found"] == 0 and pd.isna(row["accuracy_on_faces"])
    assert matrices["m"].empty


def test_without_labels_the_summary_is_empty_with_its_columns():
    summary, matrices = score_labelled(pd.DataFrame({"photo": ["a.jpg"], "predicted": ["anger"]}))
    assert summary.empty and "accuracy" in summary.columns and matrices == {}


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


def test_subject_interval_holds_the_pooled_accuracy_and_counts_people_not_frames():
    import numpy as np

    from emorec.metrics import subject_ci95

    rng = np.random.default_rng(0)
    subjects = np.repeat([f"S{i:03d}" for i in range(40)], 8)  # 40 people, 8 frames each
    skill = rng.uniform(0.5, 1.0, 40).repeat(8)  # people differ: their frames are right or wrong together
    right = rng.random(len(subjects)) < skill
    paths = [f"anger/{s}_001_{k:08d}.png" for k, s in enumerate(subjects)]
    low, high = subject_ci95(right, paths)
    assert low < right.mean() < high
    frames_as_people = [f"anger/frame{k}.png" for k in range(len(subjects))]  # no CK+ name: each frame its own subject
    low_frames, high_frames = subject_ci95(right, frames_as_people)
    assert high - low > high_frames - low_frames  # resampling frames would claim too narrow an interval
    fewer_low, fewer_high = subject_ci95(right[:80], paths[:80])
    assert fewer_high - fewer_low > high - low
    assert subject_ci95(np.ones(16, bool), paths[:16]) == [1.0, 1.0]


def test_scores_report_the_interval_of_their_pooled_accuracy():
    import numpy as np

    from emorec.config import LABELS
    from emorec.metrics import scores

    rows = []
    for subject in range(12):
        for frame in range(3):
            probabilities = np.full(len(LABELS), 0.01)
            probabilities[1 if (subject + frame) % 4 else 2] = 0.9  # three in four frames right
            rows.append({"fold": subject % 3, "path": f"anger/S{subject:03d}_001_{frame:08d}.png", "label": "anger",
                         **dict(zip(LABELS, probabilities))})
    accuracy = scores(pd.DataFrame(rows), LABELS)["accuracy"]
    low, high = accuracy["pooled_ci95"]
    assert low < accuracy["pooled"] == 0.75 < high


def _train_a(x):
    """Trains."""
    return x + 1  # a comment


def _train_b(x):
    """Trains, reworded: the same code."""

    return x + 1


def _train_c(x):
    """Trains."""
    return x + 2


def test_code_fingerprint_follows_code_not_docstrings():
    from emorec.files import code_fingerprint

    assert code_fingerprint(_train_a) == code_fingerprint(_train_b)
    assert code_fingerprint(_train_a) != code_fingerprint(_train_c)
    assert code_fingerprint(_train_a, _train_c) != code_fingerprint(_train_c, _train_a)


def test_every_recipe_has_a_training_code_fingerprint():
    from emorec import finetune, study

    prints = ({study.training_code(name) for name in ("baseline", "tuned_full", "tuned_mtcnn")}
              | {finetune.training_code()})
    assert len(prints) == 3  # the two tuned variants share their network and recipe
