"""The cross-dataset benchmark: how a shipped model does on people and photos unlike its training data.

CK+ by subject measures one lab. Users bring other people in other light, so every shipped model is
also scored on public sets it never trained on, each the way a user would meet it:

- FER2013 PublicTest, original labels, and FER+ PublicTest (the same faces, the majority of ten
  annotators' votes, eight classes): pre-cropped faces from the web;
- LFW expressions, the validation people (``data.lfw_split``: no emorec model trains on them):
  news photos, classified after MTCNN finds the face (no face = wrong) and as the whole image;
- the London set: 102 people in studio colour photos, neutral and smiling, faces found by MTCNN.

Each set is scored with the argmax over its own classes (FER2013 has no contempt, London only
neutral and happiness), beside "always its most frequent class" as the floor, and with how often
each class is predicted next to its true share (a lab's prior shows there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.config import LABELS, NO_FACE
from emorec.crops import cached_model_inputs, main_face_crops
from emorec.data import DatasetError, ferplus_majority, image_digests, lfw_split, load_dataset, read_ferplus
from emorec.metrics import floor_scores, set_scores


@dataclass(frozen=True)
class BenchmarkSet:
    """One set of the benchmark: where it lies under the data folder and how its photos are framed
    (``whole``: pre-cropped faces, the image is the face; ``detect``: MTCNN finds the face first)."""

    name: str
    title: str
    framing: str
    location: str  # under the data folder
    read: Callable[[Path], pd.DataFrame]  # data folder -> path and label of every photo (DatasetError when absent)


def fer2013_publictest(data_root: Path) -> pd.DataFrame:
    return load_dataset(data_root / "fer2013" / "validation")


def ferplus_publictest(data_root: Path) -> pd.DataFrame:
    votes = read_ferplus(data_root / "ferplus" / "labels.csv")
    votes = votes[votes["split"] == "validation"]
    paths = votes["path"].map(lambda p: str(data_root / p))
    if not paths.map(lambda p: Path(p).is_file()).all():
        raise DatasetError(f"{data_root / 'ferplus' / 'labels.csv'} holds votes for FER2013 PublicTest images that are "
                           f"not under {data_root} (expected {data_root / 'fer2013' / 'validation'}).")
    return pd.DataFrame({"path": paths, "label": ferplus_majority(votes)}).dropna().reset_index(drop=True)


def lfw_validation(data_root: Path) -> pd.DataFrame:
    manifest = load_dataset(data_root / "lfw_expressions")
    return manifest.iloc[lfw_split(manifest)[1]].reset_index(drop=True)


def london(data_root: Path) -> pd.DataFrame:
    return load_dataset(data_root / "london")


SETS: tuple[BenchmarkSet, ...] = (
    BenchmarkSet("fer2013-whole", "FER2013 PublicTest (original labels)", "whole", "fer2013/validation",
                 fer2013_publictest),
    BenchmarkSet("ferplus-whole", "FER+ PublicTest (majority vote)", "whole", "ferplus/labels.csv", ferplus_publictest),
    BenchmarkSet("lfw-detect", "LFW expressions, new people (face found by MTCNN)", "detect", "lfw_expressions",
                 lfw_validation),
    BenchmarkSet("lfw-whole", "LFW expressions, new people (whole image)", "whole", "lfw_expressions", lfw_validation),
    BenchmarkSet("london-detect", "London set (face found by MTCNN)", "detect", "london", london),
)


# ---------------------------------------------------------------------------------------------
# Predictions


def set_classes(manifest: pd.DataFrame) -> list[str]:
    """The classes a set is scored over: those its photos carry, in ``LABELS`` order."""
    present = set(manifest["label"])
    return [c for c in LABELS if c in present]


def main_face_inputs(recognizer, manifest: pd.DataFrame, framing: str, detector=None) -> tuple[np.ndarray, np.ndarray]:
    """What ``recognizer`` sees of each photo, and whether it got a face: the whole image
    (``whole``), or the main face MTCNN found (``detect``; a whole-frame model reads the whole
    photo, as it does in the app)."""
    if framing == "whole" or not recognizer.face_crop:
        return cached_model_inputs(manifest, recognizer.input_shape, face_crop=False), np.ones(len(manifest), bool)
    return main_face_crops(manifest, recognizer.input_shape, recognizer.margin, detector)


def set_predictions(recognizer, manifest: pd.DataFrame, framing: str, classes: list[str], detector=None) -> np.ndarray:
    """Each photo's answer: the argmax over the ``classes`` the model knows of the served
    probabilities (a class it lacks is never answered, so its photos count as wrong), ``NO_FACE``
    where no face was found."""
    known = [c for c in classes if c in recognizer.classes]
    x, found = main_face_inputs(recognizer, manifest, framing, detector)
    probabilities = np.concatenate([recognizer.classify(x[i:i + 512]) for i in range(0, len(x), 512)])
    columns = [recognizer.classes.index(c) for c in known]
    answers = np.array(known, object)[probabilities[:, columns].argmax(axis=1)]
    return np.where(found, answers, NO_FACE)


def benchmark(recognizer, data_root: Path, sets: Iterable[BenchmarkSet] = SETS, detector=None,
              progress: Callable[[Iterable], Iterable] = iter, trained_on: frozenset[str] | None = None) -> dict:
    """Scores of ``recognizer`` on every set found under ``data_root``, with each set's floor (on the
    whole set). Photos the model trained on (``trained_on``: content digests; FER2013 PublicTest
    repeats some FER2013 train faces) are left out and counted. A set that is absent or empty is
    listed under ``skipped`` with the reason."""
    results, skipped = {}, {}
    for spec in progress(list(sets)):
        try:
            manifest = spec.read(data_root)
        except DatasetError as error:
            skipped[spec.name] = str(error)
            continue
        classes = set_classes(manifest)
        floor = floor_scores(manifest["label"].to_numpy(object), classes)
        seen = (pd.Series(image_digests(manifest)).isin(trained_on).to_numpy() if trained_on
                else np.zeros(len(manifest), bool))
        manifest = manifest[~seen].reset_index(drop=True)
        if manifest.empty:
            skipped[spec.name] = f"{spec.location}: no photo the model did not train on."
            continue
        labels = manifest["label"].to_numpy(object)
        predicted = set_predictions(recognizer, manifest, spec.framing, classes, detector)
        results[spec.name] = {"title": spec.title, "framing": spec.framing, "classes": classes,
                              **set_scores(labels, predicted, classes), "left_out_trained_on": int(seen.sum()),
                              "floor": floor}
    return {"sets": results, "skipped": skipped}
