"""Scores from predictions: what every card, page and benchmark reports.

Everything here reads a predictions table (``predictions_frame``: fold, path, true label and each
class's probability) or plain label arrays, and computes with scikit-learn; nothing loads a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, recall_score

from emorec.calibration import expected_calibration_error
from emorec.config import EMOTIONS, LABELS, NO_FACE, PROTOCOLS, SEED
from emorec.data import label_indices, parse_ckplus_name


def predictions_frame(probabilities: np.ndarray, manifest: pd.DataFrame, fold: int = 0) -> pd.DataFrame:
    """One row per image of ``manifest``: fold, path, true label and each class's probability (the
    table every score here reads, and the ``cv-<protocol>.csv`` files hold)."""
    frame = pd.DataFrame(probabilities, columns=LABELS)
    frame.insert(0, "fold", fold)
    frame.insert(1, "path", manifest["path"].to_numpy())
    frame.insert(2, "label", manifest["label"].to_numpy())
    return frame


def predicted_labels(predictions: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """Argmax over ``classes`` only (for the 7-emotion protocol the model's neutral score is ignored)."""
    return np.array(classes)[predictions[list(classes)].to_numpy().argmax(axis=1)]


def accuracy_per_face(probabilities: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Whether the argmax over ``classes`` is each face's label index (False for labels outside them)."""
    columns = [LABELS.index(c) for c in classes]
    return np.array(columns)[probabilities[:, columns].argmax(axis=1)] == labels


def accuracy_among(probabilities: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] = LABELS) -> float:
    """Accuracy of the argmax over ``classes`` on the faces labelled with one of them (FER2013 has
    no contempt; the 7 emotions leave out neutral); NaN when none is."""
    keep = np.isin(labels, [LABELS.index(c) for c in classes])
    return float(accuracy_per_face(probabilities[keep], labels[keep], classes).mean()) if keep.any() else float("nan")


def subject_ci95(right: np.ndarray, paths, resamples: int = 9999, seed: int = SEED) -> list[float]:
    """95 % confidence interval of the share of ``right`` answers when the *people* are resampled
    (a cluster bootstrap, BCa, by SciPy): one subject's frames are not independent, so resampling
    frames would claim too narrow an interval. Subjects come from CK+ file names; any other file
    counts as its own subject."""
    from scipy.stats import bootstrap  # deferred: SciPy loads in a second, only for an interval

    subjects = [parse_ckplus_name(Path(p).name)[0] or str(p) for p in paths]
    _, subject = np.unique(subjects, return_inverse=True)
    right_per, frames_per = np.bincount(subject, weights=np.asarray(right, float)), np.bincount(subject)
    if len(right_per) < 2 or right_per.sum() in (0, frames_per.sum()):
        share = float(right_per.sum() / frames_per.sum()) if len(frames_per) else float("nan")
        return [round(share, 4), round(share, 4)]  # no spread to resample
    result = bootstrap((right_per, frames_per), lambda r, n, axis=-1: r.sum(axis=axis) / n.sum(axis=axis),
                       paired=True, vectorized=True, n_resamples=resamples, random_state=seed)
    return [round(float(result.confidence_interval.low), 4), round(float(result.confidence_interval.high), 4)]


def accuracy_ci95(predictions: pd.DataFrame, classes: tuple[str, ...]) -> list[float]:
    """``subject_ci95`` of the accuracy ``scores`` pools over the test images of ``classes``."""
    subset = predictions[predictions["label"].isin(classes)]
    return subject_ci95(predicted_labels(subset, classes) == subset["label"].to_numpy(), subset["path"])


def scores(predictions: pd.DataFrame, classes: tuple[str, ...]) -> dict:
    """Accuracy (mean ± std over folds, pooled, and the pooled one's 95 % interval over subjects),
    macro-F1 (mean ± std and pooled), per-class precision/recall/F1 and the confusion matrix, on the
    test images whose label is in ``classes``."""
    subset = predictions[predictions["label"].isin(classes)]
    present = [c for c in classes if c in set(subset["label"])]
    predicted = predicted_labels(subset, classes)
    per_fold = []
    for _, fold in subset.groupby("fold"):
        fold_predicted = predicted_labels(fold, classes)
        per_fold.append((accuracy_score(fold["label"], fold_predicted),
                         f1_score(fold["label"], fold_predicted, labels=present, average="macro", zero_division=0)))
    accuracy, macro_f1 = np.array(per_fold).T
    report = classification_report(subset["label"], predicted, labels=present, output_dict=True, zero_division=0)
    return {
        "classes": list(present),
        "images": int(len(subset)),
        "folds": len(per_fold),
        "accuracy": {"mean": round(float(accuracy.mean()), 4), "std": round(float(accuracy.std()), 4),
                     "pooled": round(float(accuracy_score(subset["label"], predicted)), 4),
                     "pooled_ci95": subject_ci95(predicted == subset["label"].to_numpy(), subset["path"])},
        "macro_f1": {"mean": round(float(macro_f1.mean()), 4), "std": round(float(macro_f1.std()), 4),
                     "pooled": round(float(f1_score(subset["label"], predicted, labels=present, average="macro",
                                                    zero_division=0)), 4)},
        "per_class": {c: {k: round(float(report[c][k]), 4) for k in ("precision", "recall", "f1-score", "support")}
                      for c in present},
        "confusion_matrix": confusion_matrix(subset["label"], predicted, labels=present).tolist(),
    }


def served_emotion_accuracy(predictions: pd.DataFrame) -> dict:
    """Accuracy on the emotion frames with the argmax over all eight classes, as the app answers
    (an emotion called neutral is wrong): what the 7-emotion protocol, which ignores the neutral
    score, does not show. Mean ± std over folds and pooled."""
    subset = predictions[predictions["label"].isin(EMOTIONS)]
    right = pd.Series(predicted_labels(subset, LABELS) == subset["label"].to_numpy(), index=subset.index)
    per_fold = right.groupby(subset["fold"]).mean()
    return {"mean": round(float(per_fold.mean()), 4), "std": round(float(per_fold.std(ddof=0)), 4),
            "pooled": round(float(right.mean()), 4), "images": int(len(subset))}


def summarize(predictions: pd.DataFrame, protocol: str) -> dict:
    """Everything a model card holds for one protocol: 8 classes, the 7 emotions, calibration."""
    probabilities = predictions[list(LABELS)].to_numpy()
    labels = label_indices(predictions["label"])
    return {
        "protocol": protocol,
        "description": PROTOCOLS[protocol],
        "classes_8": scores(predictions, LABELS),
        "emotions_7": scores(predictions, EMOTIONS),
        "emotions_7_served": served_emotion_accuracy(predictions),
        "ece": expected_calibration_error(probabilities, labels),
    }


def reliability(predictions: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data: per confidence bin, the mean confidence, the accuracy and the count."""
    probabilities = predictions[list(LABELS)].to_numpy()
    confidence = probabilities.max(axis=1)
    correct = np.array(LABELS)[probabilities.argmax(axis=1)] == predictions["label"].to_numpy()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "confidence": confidence, "correct": correct})
    table = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("correct", "mean"),
                                     images=("correct", "size"))
    return table.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Photos a user labelled, and the cross-dataset sets: a photo without a face counts as wrong


def set_scores(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy (a photo without a face, ``NO_FACE``, is wrong), macro-F1 and recall per class over
    ``classes``, the share of photos with a face, and how often each class is predicted next to its
    true share."""
    labels, predicted = np.asarray(labels, object), np.asarray(predicted, object)
    found = predicted != NO_FACE
    recall = recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
    return {
        "images": int(len(labels)),
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)), 4),
        "face_rate": round(float(found.mean()), 4),
        "recall": {c: round(float(r), 4) for c, r in zip(classes, recall)},
        "predicted_share": {c: round(float((predicted[found] == c).mean()), 4) if found.any() else 0.0
                            for c in classes},
        "true_share": {c: round(float((labels == c).mean()), 4) for c in classes},
    }


def floor_scores(labels: np.ndarray, classes: list[str]) -> dict:
    """What answering the set's most frequent class for every photo scores (``labels``: not empty)."""
    values, counts = np.unique(np.asarray(labels, object), return_counts=True)
    return {"answer": str(values[counts.argmax()]),
            **set_scores(labels, np.full(len(labels), values[counts.argmax()], object), classes)}


LABELLED_SCORE_COLUMNS = ["model", "photos", "faces_found", "accuracy", "accuracy_on_faces", "macro_f1",
                          "seen_in_training"]


def score_labelled(results: pd.DataFrame, trained_on: dict[str, frozenset[str] | None] | None = None,
                   ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per-model accuracy and confusion matrices for photos with expected labels.

    ``results`` has one row per photo and model: ``photo``, ``model``, ``expected``, ``predicted``
    (None when no face was found; ``model`` None when the photo could not be read). ``accuracy``
    counts such photos as wrong, so a model cannot look better by finding fewer faces;
    ``accuracy_on_faces``, the macro-F1 and the matrices cover the photos where it found one.
    ``trained_on`` (model -> the content digests of its training images, None when unknown) and a
    ``digest`` per row count the photos each model trained on, ``seen_in_training``: a score on
    those says nothing about new people.
    """
    if not {"photo", "model", "expected", "predicted"} <= set(results.columns):
        return pd.DataFrame(columns=LABELLED_SCORE_COLUMNS), {}
    labelled = results.dropna(subset=["expected"])
    unreadable = int(labelled["model"].isna().sum())  # one row per photo no model could read
    summary, matrices = [], {}
    for model, rows in labelled.dropna(subset=["model"]).groupby("model", sort=False):
        photos = len(rows) + unreadable  # every model has one row per readable photo (names may repeat)
        found = rows.dropna(subset=["predicted"])
        present = [label for label in LABELS if label in set(found["expected"]) | set(found["predicted"])]
        matrix = (confusion_matrix(found["expected"], found["predicted"], labels=present) if len(found)
                  else np.zeros((0, 0), int))
        correct = int(np.trace(matrix))
        seen = (trained_on or {}).get(model)
        summary.append({"model": model, "photos": photos, "faces_found": len(found),
                        "accuracy": round(correct / photos, 4),
                        "accuracy_on_faces": round(correct / len(found), 4) if len(found) else None,
                        "macro_f1": round(float(f1_score(found["expected"], found["predicted"], labels=present,
                                                         average="macro", zero_division=0)), 4) if len(found) else None,
                        "seen_in_training": (int(rows["digest"].isin(seen).sum())
                                             if seen is not None and "digest" in rows else None)})
        matrices[model] = pd.DataFrame(matrix, index=pd.Index(present, name="expected"),
                                       columns=pd.Index(present, name="predicted"))
    return pd.DataFrame(summary, columns=LABELLED_SCORE_COLUMNS), matrices
