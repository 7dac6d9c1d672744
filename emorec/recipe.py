"""emorec's own model: pretrained on FER2013, fine-tuned on aligned CK+ faces, calibrated.

Stage 1 (``train.pretrain_fer``) learns in-the-wild faces on FER2013 train. Stage 2 fine-tunes
those weights on CK+: the aligned MTCNN crops of the peak and neutral frames, the CK+48 frames of
the same (training) subjects as extra samples, and a slice of FER2013 so in-the-wild skill is
kept. Cross-validation repeats stage 2 per fold, so CK+ test subjects are never seen. Predictions
average the face and its mirror image; a temperature fitted on out-of-fold predictions makes the
probabilities honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from emorec.config import LABELS, SEED
from emorec.crops import cached_model_inputs
from emorec.data import load_dataset
from emorec.files import atomic_write_text
from emorec.models import VARIANTS
from emorec.train import (augmentation, class_weights, compile_model, fit, label_indices, make_dataset,
                          set_seed, variant_inputs)

INPUT_SHAPE = VARIANTS["emorec"].input_shape


@dataclass(frozen=True)
class FineTuneData:
    """What stage 2 adds to a fold's CK+ training images: CK+48 frames (kept only for the fold's
    training subjects) and a fixed slice of FER2013 train."""

    ck48_x: np.ndarray
    ck48_y: np.ndarray
    ck48_subjects: np.ndarray
    fer_x: np.ndarray
    fer_y: np.ndarray


def load_finetune_data(ck48_dir: Path | None, fer_train_dir: Path | None, fer_images: int = 2000) -> FineTuneData:
    empty = np.zeros((0, *INPUT_SHAPE), np.uint8), np.zeros(0, np.int32)
    ck48_x, ck48_y, subjects = *empty, np.zeros(0, str)
    if ck48_dir is not None:
        ck48 = load_dataset(ck48_dir)
        ck48_x = cached_model_inputs(ck48, INPUT_SHAPE, face_crop=False)
        ck48_y, subjects = label_indices(ck48["label"]), ck48["subject"].to_numpy().astype(str)
    fer_x, fer_y = empty
    if fer_train_dir is not None:
        fer = load_dataset(fer_train_dir).sample(frac=1.0, random_state=SEED).head(fer_images)
        fer_x, fer_y = cached_model_inputs(fer, INPUT_SHAPE, face_crop=False), label_indices(fer["label"])
    return FineTuneData(ck48_x, ck48_y, subjects, fer_x, fer_y)


def flip_averaged(model: keras.Model):
    """Test-time augmentation: the mean of the face's and its mirror image's probabilities."""

    def predict(images: np.ndarray) -> np.ndarray:
        images = images.astype(np.float32)
        return (model.predict(images, batch_size=256, verbose=0) + model.predict(images[:, :, ::-1], batch_size=256, verbose=0)) / 2

    return predict


def finetune(pretrained: Path, x: np.ndarray, y: np.ndarray, subjects: np.ndarray, extra: FineTuneData,
             run_dir: Path, epochs: int = 10, batch_size: int = 64, learning_rate: float = 5e-4) -> keras.Model:
    """Stage 2 on one training set (``subjects`` = its CK+ subjects, which select the CK+48 rows)."""
    set_seed()
    keep = np.isin(extra.ck48_subjects, subjects)
    x_all = np.concatenate([x, extra.ck48_x[keep], extra.fer_x])
    y_all = np.concatenate([y, extra.ck48_y[keep], extra.fer_y])
    model = keras.models.load_model(pretrained, compile=False)
    steps = epochs * int(np.ceil(len(x_all) / batch_size))
    compile_model(model, "adamw", keras.optimizers.schedules.CosineDecay(learning_rate, steps))
    fit(model, make_dataset(x_all, y_all, batch_size, augmentation(), shuffle=True), None, epochs, run_dir,
        class_weights(y_all, 0.5), patience=None, verbose=0)
    return model


def emorec_trainer(pretrained: Path, extra: FineTuneData, epochs: int = 10):
    """An ``evaluate.Trainer``: fine-tune on the fold, predict with flip averaging."""

    def train_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, run_dir: Path):
        return flip_averaged(finetune(pretrained, x, y, groups, extra, run_dir, epochs))

    return train_fold


def ckplus_inputs(ckplus_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    manifest = load_dataset(ckplus_dir)
    return manifest, variant_inputs("emorec", manifest)


def predictions_frame(probabilities: np.ndarray, manifest: pd.DataFrame, fold: int = 0) -> pd.DataFrame:
    frame = pd.DataFrame(probabilities, columns=LABELS)
    frame.insert(0, "fold", fold)
    frame.insert(1, "path", manifest["path"].to_numpy())
    frame.insert(2, "label", manifest["label"].to_numpy())
    return frame


# ---------------------------------------------------------------------------------------------
# The commands: pretrain, cross-validate, ship, and test on FER2013 PublicTest

def pretrained_path(models_dir: Path) -> Path:
    return models_dir / "emorec" / "pretrain" / "pretrained.keras"


def pretrained_epochs(models_dir: Path) -> int | None:
    """How many epochs stage 1 ran (its history beside the pretrained model)."""
    from emorec.registry import read_history

    history = read_history(pretrained_path(models_dir).parent.relative_to(models_dir).as_posix(), models_dir)
    return len(history) if history else None


def cross_validate_emorec(ckplus_dir: Path, ck48_dir: Path | None, fer_train_dir: Path | None, command: str,
                          models_dir: Path, epochs: int = 10, n_splits: int = 10, progress=iter) -> dict:
    """Subject-grouped cross-validation of stage 2, temperature fitted on the out-of-fold predictions."""
    from emorec import registry
    from emorec.config import CACHE_DIR
    from emorec.evaluate import apply_temperature, cross_validate, expected_calibration_error, fit_temperature, summarize

    manifest, x = ckplus_inputs(ckplus_dir)
    extra = load_finetune_data(ck48_dir, fer_train_dir)
    trainer = emorec_trainer(pretrained_path(models_dir), extra, epochs)
    predictions = cross_validate(x, manifest, trainer, "subject-kfold", CACHE_DIR / "runs" / "emorec", n_splits, progress)
    out = models_dir / "emorec"
    atomic_write_text(out / "cv-subject-kfold.csv", predictions.round(5).to_csv(index=False))
    probabilities, labels = predictions[list(LABELS)].to_numpy(), label_indices(predictions["label"])
    temperature = fit_temperature(probabilities, labels)
    summary = {**summarize(predictions, "subject-kfold"), "data": str(ckplus_dir), "command": command,
               "extra_training_data": {"ck48": str(ck48_dir) if ck48_dir else None,
                                       "fer2013_slice": int(len(extra.fer_y))}}
    calibration = {"temperature": temperature, "fitted_on": "out-of-fold CK+ predictions (subject-kfold)",
                   "ece_before": expected_calibration_error(probabilities, labels),
                   "ece_after": expected_calibration_error(apply_temperature(probabilities, temperature), labels)}
    registry.update_card("emorec", {"evaluation": {"subject-kfold": summary}, "calibration": calibration,
                                    "temperature": temperature, "finetune_epochs": epochs}, models_dir)
    return summary


def ship_emorec(ckplus_dir: Path, ck48_dir: Path | None, fer_train_dir: Path | None, command: str,
                models_dir: Path, epochs: int = 10) -> dict:
    """Stage 2 on all of CK+, saved as ``models/emorec/model.keras`` with its card."""
    from emorec import registry
    from emorec.config import CACHE_DIR, FaceDefaults
    from emorec.data import dataset_summary
    from emorec.train import measure_latency_ms, save_model

    manifest, x = ckplus_inputs(ckplus_dir)
    extra = load_finetune_data(ck48_dir, fer_train_dir)
    y = label_indices(manifest["label"])
    model = finetune(pretrained_path(models_dir), x, y, manifest["subject"].to_numpy().astype(str), extra,
                     CACHE_DIR / "runs" / "emorec" / "final", epochs)
    out = models_dir / "emorec"
    save_model(model, out / registry.MODEL_FILE)
    atomic_write_text(out / "history.json", (CACHE_DIR / "runs" / "emorec" / "final" / "history.json").read_text())
    variant = VARIANTS["emorec"]
    return registry.update_card("emorec", {
        "description": variant.description,
        "variant": "emorec",
        "classes": list(LABELS),
        "input_shape": list(INPUT_SHAPE),
        "face_crop": True,
        "margin": FaceDefaults.margin,
        "tta_flip": True,
        "threshold": 0.5,
        "parameters": int(model.count_params()),
        "file_size_bytes": (out / registry.MODEL_FILE).stat().st_size,
        "data": {**dataset_summary(manifest), "folder": str(ckplus_dir),
                 "extra": {"ck48_frames": int(len(extra.ck48_y)), "fer2013_slice": int(len(extra.fer_y)),
                           "pretrained_on": "FER2013 train (28,709 faces)"}},
        "training": {"finetune_epochs": epochs, "optimizer": "adamw", "augmentation": [type(l).__name__ for l in augmentation().layers],
                     "pretraining": f"{pretrained_epochs(models_dir)} epochs on FER2013 train (models/emorec/pretrain)"},
        "latency_ms_per_face": measure_latency_ms(model, INPUT_SHAPE),
        "commands": {"train": command},
    }, models_dir)


def evaluate_holdout(name: str, data_dir: Path, command: str, models_dir: Path) -> dict:
    """A shipped model on a dataset of pre-cropped faces it never trained on (FER2013 PublicTest):
    accuracy and macro-F1 over the dataset's own classes (FER2013 has no contempt)."""
    from emorec import registry
    from emorec.evaluate import scores
    from emorec.predict import EmotionRecognizer

    recognizer = EmotionRecognizer.load(name, models_dir)
    manifest = load_dataset(data_dir)
    x = cached_model_inputs(manifest, recognizer.input_shape, face_crop=False)
    probabilities = np.concatenate([recognizer.classify(x[i:i + 512]) for i in range(0, len(x), 512)])
    classes = tuple(label for label in recognizer.classes if label in set(manifest["label"]))
    result = scores(predictions_frame(probabilities, manifest), classes)
    summary = {"description": f"{data_dir}: pre-cropped faces never trained on, argmax over the dataset's classes",
               "accuracy": result["accuracy"]["pooled"], "macro_f1": result["macro_f1"]["pooled"],
               "per_class": result["per_class"], "confusion_matrix": result["confusion_matrix"],
               "classes": result["classes"], "images": result["images"], "command": command}
    registry.update_card(name, {"evaluation": {"fer2013-publictest": summary}}, models_dir)
    return summary
