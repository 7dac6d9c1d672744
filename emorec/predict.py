"""The prediction API every page and the CLI use: image in, one prediction per face out.

    recognizer = EmotionRecognizer.load("emorec")
    for face in recognizer.predict(load_image("friends.jpg")):
        print(face.box, face.label, face.probabilities)
"""

from __future__ import annotations

import datetime
import os
import platform
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.calibration import apply_temperature
from emorec.cards import ModelCard
from emorec.config import MODELS_DIR
from emorec.faces import Face, FaceDetector, align_crop, main_face, shared_detector, whole_image_face
from emorec.files import content_digest
from emorec.images import ImageError, load_image, to_model_input
from emorec.registry import MODEL_FILE, ModelUnavailable, model_names, read_card


@dataclass(frozen=True)
class FacePrediction:
    """One face: ``box`` = [x, y, w, h] in original image pixels, the detector's ``score``, the
    winning ``label``, every class's probability, and whether the model is ``sure`` (its top
    probability reaches the model's threshold)."""

    box: list[int]
    score: float
    label: str
    probabilities: dict[str, float]
    sure: bool

    def to_dict(self) -> dict:
        return {"box": self.box, "score": round(self.score, 4), "label": self.label,
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}, "sure": self.sure}


def mirror_averaged(forward, images: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of ``forward``'s probabilities for the faces and for
    their mirror images, computed as one batch."""
    both = np.asarray(forward(np.concatenate([images, images[:, :, ::-1]])), np.float64)
    return (both[:len(images)] + both[len(images):]) / 2


class EmotionRecognizer:
    """A shipped model with what it needs to see faces the way it was trained: input size,
    colour mode, face crop or whole frame, crop margin, temperature and "not sure" threshold."""

    def __init__(self, name: str, model, card: ModelCard):
        import tensorflow as tf  # deferred: listing models and cards must not load TensorFlow

        self.name = name
        self.classes: tuple[str, ...] = card.classes
        self.input_shape: tuple[int, int, int] = card.input_shape
        self.face_crop: bool = bool(card.face_crop)
        self.margin: float = float(card.margin)
        self.temperature: float = float(card.temperature)
        self.threshold: float = float(card.threshold)
        self.mirror_averaged: bool = bool(card.mirror_averaged)
        # One traced graph for any batch size: calling a Keras model eagerly costs far more per face.
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, *self.input_shape), tf.float32)],
        )

    @classmethod
    def load(cls, name: str, models_dir: Path = MODELS_DIR) -> EmotionRecognizer:
        """Load ``models/<name>``; raises ``ModelUnavailable`` saying why when it cannot."""
        import keras  # deferred: listing models and cards must not load TensorFlow

        card = checked_card(name, models_dir)
        path = models_dir / name / MODEL_FILE
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for a damaged file; all mean the same here
            raise ModelUnavailable(f"Model {name!r}: {path.name} cannot be loaded "
                                   f"({type(error).__name__}: {str(error)[:200]}).") from None
        if tuple(model.input_shape[1:]) != card.input_shape or model.output_shape[-1] != len(card.classes):
            raise ModelUnavailable(f"Model {name!r}: the model file does not match its card (input or classes).")
        return cls(name, model, card)

    # -- the pipeline: detect -> crop -> classify ------------------------------------------------

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """What the model sees of ``face``: its aligned crop, or the whole frame for whole-frame models."""
        height, width, channels = self.input_shape
        if self.face_crop and face.keypoints:
            return align_crop(image, face, (height, width), channels, self.margin)
        return to_model_input(image, self.input_shape)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for a batch of model inputs (N, h, w, c)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        crops = np.asarray(crops, np.float32)
        if self.mirror_averaged:  # as the model was evaluated
            probabilities = mirror_averaged(lambda x: self._forward(x).numpy(), crops)
        else:
            probabilities = self._forward(crops).numpy().astype(np.float64)
        return apply_temperature(probabilities, self.temperature) if self.temperature != 1.0 else probabilities

    def latency_ms(self, repeats: int = 50) -> float:
        """Median milliseconds to classify one face as the app does (this model file, the mirror
        image when the card asks for it, the temperature), after warm-up."""
        face = np.zeros((1, *self.input_shape), np.float32)
        self.classify(face)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            self.classify(face)
            times.append(time.perf_counter() - started)
        return round(1000 * float(np.median(times)), 2)

    def faces_of(self, image: np.ndarray, whole_image: bool = False,
                 detector: FaceDetector | None = None) -> list[Face]:
        """The faces this model classifies: detected faces, or the whole image when asked for (or
        when the model reads whole frames)."""
        if whole_image or not self.face_crop:
            return [whole_image_face(image)]
        return (detector or shared_detector()).detect(image)

    def _prediction(self, face: Face, probabilities: np.ndarray) -> FacePrediction:
        best = int(np.argmax(probabilities))
        return FacePrediction(
            box=[int(v) for v in face.box], score=float(face.score), label=self.classes[best],
            probabilities={c: float(p) for c, p in zip(self.classes, probabilities)},
            sure=bool(probabilities[best] >= self.threshold),
        )

    def predict_faces(self, image: np.ndarray, faces: list[Face]) -> list[FacePrediction]:
        """Classify given faces of ``image`` (so several models can share one detection)."""
        probabilities = self.classify(np.stack([self.crop(image, f) for f in faces])) if faces else []
        return [self._prediction(face, row) for face, row in zip(faces, probabilities)]

    def predict(self, image: np.ndarray, whole_image: bool = False) -> list[FacePrediction]:
        """Every face of an RGB uint8 image (see ``emorec.images.load_image``), in reading order."""
        return self.predict_faces(image, self.faces_of(image, whole_image))


@dataclass(frozen=True)
class PhotoResult:
    """Every model's view of one photo: the detected ``faces`` and, per model, one prediction per
    face (face-crop models) or one prediction for the whole photo repeated per face (whole-frame
    models), so a page can put all models side by side for each face."""

    faces: list[Face]
    predictions: dict[str, list[FacePrediction]]
    whole_image: bool
    whole_frame_models: frozenset[str] = frozenset()  # models that answered once for the whole photo

    def face_rows(self, photo: str) -> list[dict]:
        """One row per face and model (what a results table or CSV holds): the face's box in the
        photo's pixels (x, y of its top-left corner, width, height), the answer and every class's
        probability; a photo without a face gets one row saying so (``photo_row``)."""
        if not self.faces:
            return [photo_row(photo, "no face")]
        return [{"photo": photo, "status": "classified", "face": index + 1,
                 **dict(zip(("x", "y", "width", "height"), map(int, face.box))), "model": name,
                 "predicted": preds[index].label,
                 "confidence": round(preds[index].probabilities[preds[index].label], 4),
                 "sure": preds[index].sure, "whole photo": name in self.whole_frame_models or self.whole_image,
                 **{label: round(p, 4) for label, p in preds[index].probabilities.items()}}
                for index, face in enumerate(self.faces) for name, preds in self.predictions.items()]

    def main_face_rows(self, photo: str, expected: str | None) -> list[dict]:
        """One row per model for the photo's largest face (what a labelled photo is about)."""
        if not self.faces:
            return [{"photo": photo, "model": name, "expected": expected, "predicted": None, "confidence": None,
                     "sure": None, "faces": 0} for name in self.predictions]
        main = self.faces.index(main_face(self.faces))
        return [{"photo": photo, "model": name, "expected": expected, "predicted": preds[main].label,
                 "confidence": round(preds[main].probabilities[preds[main].label], 4), "sure": preds[main].sure,
                 "faces": len(self.faces)} for name, preds in self.predictions.items()]

    def disagreements(self, face_index: int) -> dict[str, str]:
        """Model name -> label for one face, when the models do not all agree (else empty). In a
        photo of several faces, a whole-frame model's one answer is about none of them in particular:
        only the face models count there."""
        judges = {name: preds for name, preds in self.predictions.items()
                  if len(self.faces) == 1 or name not in self.whole_frame_models}
        labels = {name: preds[face_index].label for name, preds in judges.items()}
        return labels if len(set(labels.values())) > 1 else {}


def photo_row(photo: str, status: str, error: str | None = None) -> dict:
    """The results row of a photo without faces to list: ``no face``, or ``error`` with its message."""
    return {"photo": photo, "status": status, "error": error}


def checked_card(name: str, models_dir: Path = MODELS_DIR) -> ModelCard:
    """The card of a model whose files look usable, checked without loading the network (a page can
    list models at once); ``ModelUnavailable`` saying why otherwise: no or unreadable card, no
    model file, a damaged archive, a card without classes or input shape."""
    card = read_card(name, models_dir)
    path = models_dir / name / MODEL_FILE
    if not path.exists():
        raise ModelUnavailable(f"Model {name!r} has a card but no model file ({path}).")
    missing = [key for key in ("classes", "input_shape") if not getattr(card, key)]
    if missing:
        raise ModelUnavailable(f"Model {name!r}: its card lacks {', '.join(sorted(missing))}.")
    if not zipfile.is_zipfile(path):  # Keras would call a damaged archive "file not found"
        raise ModelUnavailable(f"Model {name!r}: {path.name} is damaged or incomplete (not a .keras archive).")
    return card


def load_recognizers(models_dir: Path = MODELS_DIR) -> tuple[dict[str, EmotionRecognizer], dict[str, str]]:
    """Every model in ``models/``: the usable ones, and for the others the reason they are not."""
    available, unavailable = {}, {}
    for name in model_names(models_dir):
        try:
            available[name] = EmotionRecognizer.load(name, models_dir)
        except ModelUnavailable as error:
            unavailable[name] = str(error)
    return available, unavailable


def classify_photo(image: np.ndarray, recognizers: dict[str, EmotionRecognizer], whole_image: bool = False,
                   detector: FaceDetector | None = None) -> PhotoResult:
    """Detect once, then let every model classify every face (the detect -> crop -> classify
    pipeline, shared between models)."""
    faces = [whole_image_face(image)] if whole_image else (detector or shared_detector()).detect(image)
    predictions, whole_frame = {}, frozenset(name for name, r in recognizers.items() if not r.face_crop)
    for name, recognizer in recognizers.items():
        if not faces:
            predictions[name] = []
        elif recognizer.face_crop:
            predictions[name] = recognizer.predict_faces(image, faces)
        else:
            whole = recognizer.predict_faces(image, [whole_image_face(image)])[0]
            predictions[name] = [whole] * len(faces)
    return PhotoResult(faces, predictions, whole_image, whole_frame)


def labelled_photo_rows(photo: str, expected: str | None, classify: Callable[[], PhotoResult],
                        digest: str | None = None) -> list[dict]:
    """``PhotoResult.main_face_rows`` of one photo of a batch (with the ``digest`` of its bytes, to
    recognise photos a model trained on), or a single row with its ``error`` when the photo cannot
    be read or classified: one photo must never lose a batch."""
    try:
        return [{**row, "digest": digest} for row in classify().main_face_rows(photo, expected)]
    except Exception as error:  # ImageError: a message for the user; anything else: named
        message = str(error) if isinstance(error, ImageError) else f"{type(error).__name__}: {error}"
        return [{"photo": photo, "model": None, "expected": expected, "predicted": None, "error": message,
                 "digest": digest}]


def classify_labelled_photos(manifest: pd.DataFrame, recognizers: dict[str, EmotionRecognizer],
                             progress: Callable[[Iterable], Iterable] = iter,
                             whole_image: bool = False) -> pd.DataFrame:
    """Every model on a labelled folder of photos (class-folder layout): one row per photo and model
    for each photo's main face (``labelled_photo_rows``; scored by ``metrics.score_labelled``);
    ``whole_image`` for faces cropped already. A photo that fails gets an ``error`` and the others go on."""
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


def machine() -> str:
    """This CPU and its cores, for numbers that hold only on the machine that measured them."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def served_latency(name: str, models_dir: Path = MODELS_DIR) -> dict:
    """A shipped model's latency per face as the app serves it, with when and where it was measured
    (the card fields ``latency_ms_per_face`` and ``latency_measured``)."""
    return {"latency_ms_per_face": EmotionRecognizer.load(name, models_dir).latency_ms(),
            "latency_measured": f"{datetime.date.today()}, {machine()}"}
