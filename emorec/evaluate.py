"""Evaluation the way the field measures CK+: k-fold cross-validation grouped by subject.

The study's own protocol (folds by image, so one person's faces sit on both sides) is available
as ``image-kfold`` to show how much it inflates the numbers. Every fold's test predictions are
kept, so metrics, confusion matrices and calibration come from one table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold

from emorec.config import EMOTIONS, LABELS, SEED
from emorec.data import assert_subject_independent, groups_of, label_indices, subject_kfold
from emorec.files import atomic_target, atomic_write_text

PROTOCOLS = {
    "subject-kfold": "10-fold cross-validation grouped by subject (nobody in both training and test data)",
    "image-kfold": "cross-validation by image, as the 2019 study split: 4 folds, each a 75/25 split of the images "
                   "(subjects leak across folds)",
}
FOLDS = {"subject-kfold": 10, "image-kfold": 4}  # default folds per protocol (image-kfold: the study's 75/25)


def folds(manifest: pd.DataFrame, protocol: str, n_splits: int | None = None,
          seed: int = SEED) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Train/test positions of each fold under ``protocol`` (``n_splits`` defaults to ``FOLDS``)."""
    if protocol not in FOLDS:
        raise ValueError(f"Unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}.")
    n_splits = n_splits or FOLDS[protocol]
    if protocol == "subject-kfold":
        for train, test in subject_kfold(manifest, n_splits, seed):
            assert_subject_independent(manifest.iloc[train], manifest.iloc[test])
            yield train, test
    else:  # image-kfold
        yield from StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(manifest, manifest["label"])


# A trainer takes (train images, train label indices, train groups, run folder) and returns a
# function from images to class probabilities.
Trainer = Callable[[np.ndarray, np.ndarray, np.ndarray, Path], Callable[[np.ndarray], np.ndarray]]


def fingerprint(x: np.ndarray, *settings) -> str:
    """What a fold's saved predictions depend on besides its split: the inputs and the settings."""
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(repr(settings).encode())
    return digest.hexdigest()[:16]


def code_fingerprint(*functions: Callable) -> str:
    """What a result depends on in code: the functions' source with their names, docstrings, comments
    and layout left out, so a reworded docstring keeps a cross-validation's finished folds while a changed line
    of training trains them again (a recipe tried and reverted must not leave its folds behind)."""
    import ast
    import inspect
    import textwrap

    digest = hashlib.sha256()
    for function in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        tree.body[0].name = "_"  # a function renamed trains the same
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.unparse(tree).encode())
    return digest.hexdigest()[:16]


def cross_validate(x: np.ndarray, manifest: pd.DataFrame, trainer: Trainer, protocol: str, run_dir: Path,
                   n_splits: int | None = None, progress: Callable[[Iterable], Iterable] = iter,
                   settings: tuple = ()) -> pd.DataFrame:
    """Train and test once per fold; returns one row per test image: its fold, true label and
    the predicted probability of every class. Folds finished before an interruption (their test
    predictions saved in ``run_dir`` with the same inputs and ``settings``) are not trained again."""
    y = label_indices(manifest["label"])
    groups = groups_of(manifest).to_numpy()
    recipe = fingerprint(x, *settings)
    rows = []
    for fold, (train, test) in progress(list(enumerate(folds(manifest, protocol, n_splits)))):
        fold_dir = run_dir / f"{protocol}-fold{fold:02d}"
        done = fold_dir / "test_probabilities.npz"
        test_paths = manifest["path"].iloc[test].to_numpy().astype(str)
        saved = np.load(done) if done.exists() else None
        if saved is not None and np.array_equal(saved["paths"], test_paths) and saved.get("recipe") == recipe:
            probabilities = saved["probabilities"]  # this fold finished before an interruption
        else:
            probabilities = trainer(x[train], y[train], groups[train], fold_dir)(x[test])
            with atomic_target(done) as tmp:
                np.savez(tmp, paths=test_paths, probabilities=probabilities, recipe=recipe)
        rows.append(predictions_frame(probabilities, manifest.iloc[test], fold))
    return pd.concat(rows, ignore_index=True)


def predicted_labels(predictions: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """Argmax over ``classes`` only (for the 7-emotion protocol the model's neutral score is ignored)."""
    return np.array(classes)[predictions[list(classes)].to_numpy().argmax(axis=1)]


def subject_ci95(right: np.ndarray, paths, resamples: int = 9999, seed: int = SEED) -> list[float]:
    """95 % confidence interval of the share of ``right`` answers when the *people* are resampled
    (a cluster bootstrap, BCa, by SciPy): how far the pooled accuracy could move with other subjects
    of the same kind. One subject's frames are not independent, so resampling frames would claim too
    narrow an interval. Subjects come from CK+ file names; any other file counts as its own subject."""
    from scipy.stats import bootstrap

    from emorec.data import parse_ckplus_name

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
    from scipy.optimize import minimize_scalar

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


def evaluate_variant(name: str, data_dir: Path, protocol: str, command: str, n_splits: int | None = None,
                     models_dir: Path | None = None, progress: Callable[[Iterable], Iterable] = iter,
                     epochs: int | None = None) -> dict:
    """Cross-validate a study variant on a dataset (at most ``epochs`` per fold, else its own),
    keep every test prediction beside the model (``cv-<protocol>.csv``) and record the summary in its card."""
    from emorec import registry
    from emorec.config import CACHE_DIR, MODELS_DIR
    from emorec.data import load_dataset
    from emorec.train import best_epoch, study_trainer, training_code, variant_inputs

    models_dir = models_dir or MODELS_DIR
    n_splits = n_splits or FOLDS[protocol]
    manifest = load_dataset(data_dir)
    x = variant_inputs(name, manifest)
    run_dir = CACHE_DIR / "runs" / (f"{name}-{epochs}ep" if epochs else name)  # other epochs: other folds
    from emorec.models import VARIANTS

    predictions = cross_validate(x, manifest, study_trainer(name, epochs), protocol, run_dir, n_splits, progress,
                                 settings=(VARIANTS[name], training_code(name), *([epochs] if epochs else [])))
    out = models_dir / name
    atomic_write_text(out / f"cv-{protocol}.csv", predictions.round(5).to_csv(index=False))
    summary = summarize(predictions, protocol)
    summary["best_epochs"] = [best_epoch(run_dir / f"{protocol}-fold{fold:02d}") for fold in range(n_splits)]
    summary["data"] = str(data_dir)
    summary["command"] = command
    registry.update_card(name, {"evaluation": {protocol: summary}}, models_dir)
    return summary


def score_labelled(results: pd.DataFrame,
                   models_dir: Path | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per-model accuracy and confusion matrices for photos with expected labels.

    ``results`` has one row per photo and model: ``photo``, ``model``, ``expected``, ``predicted``
    (None when no face was found; ``model`` None when the photo could not be read). ``accuracy``
    counts such photos as wrong, so a model cannot look better by finding fewer faces;
    ``accuracy_on_faces``, the macro-F1 and the matrices cover the photos where it found one.
    With ``models_dir`` and a ``digest`` per row, ``seen_in_training`` counts the photos each model
    trained on (``registry.training_images``; None when the model recorded nothing): a score on
    those says nothing about new people.
    """
    columns = ["model", "photos", "faces_found", "accuracy", "accuracy_on_faces", "macro_f1", "seen_in_training"]
    if not {"photo", "model", "expected", "predicted"} <= set(results.columns):
        return pd.DataFrame(columns=columns), {}
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
        summary.append({"model": model, "photos": photos, "faces_found": len(found),
                        "accuracy": round(correct / photos, 4),
                        "accuracy_on_faces": round(correct / len(found), 4) if len(found) else None,
                        "macro_f1": round(float(f1_score(found["expected"], found["predicted"], labels=present,
                                                         average="macro", zero_division=0)), 4) if len(found) else None,
                        "seen_in_training": seen_in_training(rows, model, models_dir)})
        matrices[model] = pd.DataFrame(matrix, index=pd.Index(present, name="expected"),
                                       columns=pd.Index(present, name="predicted"))
    return pd.DataFrame(summary, columns=columns), matrices


def seen_in_training(rows: pd.DataFrame, model: str, models_dir: Path | None) -> int | None:
    """How many of a model's result ``rows`` are photos it trained on (by their ``digest``); None
    when that cannot be known."""
    from emorec.registry import training_images

    seen = training_images(model, models_dir) if models_dir is not None and "digest" in rows else None
    return None if seen is None else int(rows["digest"].isin(seen).sum())


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


def evaluate_labelled(manifest: pd.DataFrame, recognizers: dict, progress: Callable[[Iterable], Iterable] = iter,
                      whole_image: bool = False) -> pd.DataFrame:
    """Every model on a labelled folder of photos (class-folder layout): one row per photo and model
    for each photo's main face (see ``score_labelled``); ``whole_image`` for faces cropped already.
    A photo that fails gets an ``error`` and the others go on."""
    from emorec.images import load_image
    from emorec.predict import classify_photo, labelled_photo_rows

    from emorec.files import content_digest

    rows = []
    for path, label in progress(list(zip(manifest["path"], manifest["label"]))):
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = None  # load_image names the problem
        rows += labelled_photo_rows(Path(path).name, label, lambda path=path, data=data: classify_photo(
            load_image(path if data is None else data, Path(path).name), recognizers, whole_image),
            None if data is None else content_digest(data))
    return pd.DataFrame(rows)


def predictions_frame(probabilities: np.ndarray, manifest: pd.DataFrame, fold: int = 0) -> pd.DataFrame:
    """One row per image of ``manifest``: fold, path, true label and each class's probability (the
    table every score here reads, and the ``cv-<protocol>.csv`` files hold)."""
    frame = pd.DataFrame(probabilities, columns=LABELS)
    frame.insert(0, "fold", fold)
    frame.insert(1, "path", manifest["path"].to_numpy())
    frame.insert(2, "label", manifest["label"].to_numpy())
    return frame


def evaluate_holdout(name: str, data_dir: Path, command: str, models_dir: Path) -> dict:
    """A shipped model on a dataset of pre-cropped faces (FER2013 PublicTest) without the photos it
    trained on (PublicTest repeats some FER2013 train faces; ``registry.training_images``): accuracy
    and macro-F1 over the dataset's own classes (FER2013 has no contempt), and whether its
    temperature (fitted on other data) makes these probabilities honest too (calibration error with
    and without it, over the same classes)."""
    from emorec import registry
    from emorec.crops import cached_model_inputs
    from emorec.data import image_digests, load_dataset
    from emorec.predict import EmotionRecognizer

    recognizer = EmotionRecognizer.load(name, models_dir)
    manifest = load_dataset(data_dir)
    trained_on = registry.training_images(name, models_dir) or frozenset()
    seen = pd.Series(image_digests(manifest)).isin(trained_on).to_numpy()
    manifest = manifest[~seen].reset_index(drop=True)
    x = cached_model_inputs(manifest, recognizer.input_shape, face_crop=False)
    probabilities = np.concatenate([recognizer.classify(x[i:i + 512]) for i in range(0, len(x), 512)])
    classes = tuple(label for label in recognizer.classes if label in set(manifest["label"]))
    result = scores(predictions_frame(probabilities, manifest), classes)
    present = [recognizer.classes.index(c) for c in classes]
    known = manifest["label"].isin(classes).to_numpy()  # a class the model lacks cannot be scored
    labels = np.array([classes.index(label) for label in manifest["label"][known]])

    def calibration_error(served: np.ndarray) -> float:
        return calibration_error_among(served[known], labels, present)

    summary = {"description": f"{data_dir}: pre-cropped faces never trained on ({int(seen.sum())} copies of "
                              "training photos left out), argmax over the dataset's classes",
               "left_out_trained_on": int(seen.sum()),
               "accuracy": result["accuracy"]["pooled"], "macro_f1": result["macro_f1"]["pooled"],
               "ece": calibration_error(probabilities),
               "ece_without_temperature": calibration_error(apply_temperature(probabilities,
                                                                              1 / recognizer.temperature)),
               "per_class": result["per_class"], "confusion_matrix": result["confusion_matrix"],
               "classes": result["classes"], "images": result["images"], "command": command}
    registry.update_card(name, {"evaluation": {"fer2013-publictest": summary}}, models_dir)
    return summary
