"""Scoring of labelled photos (the Classify page's batch tab and the Compare page's own photos)."""

from __future__ import annotations

import pandas as pd

from emorec.evaluate import score_labelled


def rows(*items):
    return pd.DataFrame([dict(zip(("photo", "model", "expected", "predicted"), item)) for item in items])


def test_photos_without_a_face_count_against_accuracy():
    results = rows(("a.jpg", "m", "happiness", "happiness"), ("b.jpg", "m", "anger", None),  # no face found
                   ("c.jpg", None, "fear", None),  # unreadable: no model ran
                   ("d.jpg", "m", None, "sadness"))  # no expected label: not scored
    summary, matrices = score_labelled(results)
    row = summary.set_index("model").loc["m"]
    assert (row["photos"], row["faces_found"]) == (3, 1)
    assert row["accuracy"] == round(1 / 3, 4) and row["accuracy_on_faces"] == 1.0
    assert matrices["m"].to_numpy().sum() == 1


def test_a_model_that_finds_no_face_scores_zero_not_an_error():
    summary, matrices = score_labelled(rows(("a.jpg", "m", "anger", None)))
    row = summary.iloc[0]
    assert row["accuracy"] == 0 and row["faces_found"] == 0 and pd.isna(row["accuracy_on_faces"])
    assert matrices["m"].empty


def test_without_labels_the_summary_is_empty_with_its_columns():
    summary, matrices = score_labelled(pd.DataFrame({"photo": ["a.jpg"], "predicted": ["anger"]}))
    assert summary.empty and "accuracy" in summary.columns and matrices == {}
