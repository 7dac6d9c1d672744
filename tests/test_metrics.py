"""Evaluation metrics (``emorec.metrics``): cross-validation scores, subject intervals, labelled photos."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emorec import cards, metrics
from emorec.cards import ModelCard
from emorec.config import LABELS
from emorec.metrics import score_labelled


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


def fake_predictions(n_folds=3, correct_every=2) -> pd.DataFrame:
    rows = []
    for fold in range(n_folds):
        for i, label in enumerate(LABELS * 2):
            probabilities = np.full(len(LABELS), 0.02)
            guess = LABELS.index(label) if i % correct_every == 0 else (LABELS.index(label) + 1) % len(LABELS)
            probabilities[guess] = 1 - 0.02 * (len(LABELS) - 1)
            rows.append({"fold": fold, "path": f"{fold}-{i}", "label": label, **dict(zip(LABELS, probabilities))})
    return pd.DataFrame(rows)


def test_scores_from_predictions():
    summary = metrics.summarize(fake_predictions(), "subject-kfold")
    assert summary["classes_8"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert summary["classes_8"]["images"] == 48 and summary["classes_8"]["folds"] == 3
    assert summary["emotions_7"]["classes"] == list(LABELS[1:])
    matrix = np.array(summary["classes_8"]["confusion_matrix"])
    assert matrix.shape == (8, 8) and matrix.sum() == 48 and np.trace(matrix) == 24
    assert 0 <= summary["ece"] <= 1
    json.dumps(summary)


def test_seven_emotion_protocol_ignores_the_neutral_score():
    predictions = fake_predictions(n_folds=1, correct_every=1)
    predictions.loc[predictions["label"] == "anger", "neutral"] = 5.0  # neutral would win over 8 classes
    assert metrics.scores(predictions, LABELS)["accuracy"]["mean"] < 1
    assert metrics.scores(predictions, LABELS[1:])["accuracy"]["mean"] == 1


def test_emotion_frames_scored_as_served_count_neutral_answers_wrong():
    # Fold 0: an angry face the model calls neutral (right only if neutral is ignored); fold 1: right.
    predictions = pd.DataFrame({"fold": [0, 0, 1], "path": ["S1_001_1.png", "S1_002_1.png", "S2_001_1.png"],
                                "label": ["anger", "neutral", "happiness"], **{c: [0.0] * 3 for c in LABELS}})
    predictions.loc[0, ["neutral", "anger"]] = [0.6, 0.4]
    predictions.loc[1, "neutral"] = 1.0
    predictions.loc[2, "happiness"] = 1.0
    assert metrics.scores(predictions, LABELS[1:])["accuracy"]["pooled"] == 1.0
    served = metrics.served_emotion_accuracy(predictions)
    assert served == {"mean": 0.5, "std": 0.5, "pooled": 0.5, "images": 2}
    assert cards.headline(ModelCard("new"), predictions)["CK+ emotion frames, 8-way"] == 0.5
