"""Training: tf.data pipelines with Keras augmentation layers, class weights, early stopping,
checkpoints that resume after an interruption, and a history saved beside the model.

Setup -> Prepare data -> Build -> Train, as in the keras-io examples; the recipes at the bottom
(``pretrain_fer``) are what ``python -m emorec train`` runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

from emorec.config import CACHE_DIR, LABELS, SEED
from emorec.data import dataset_summary, load_dataset
from emorec.models import VARIANTS, build

# ---------------------------------------------------------------------------------------------
# Setup


def set_seed(seed: int = SEED) -> None:
    """Fix Python, NumPy and TensorFlow seeds so a run can be repeated."""
    keras.utils.set_random_seed(seed)


def augmentation(height: int, width: int) -> keras.Sequential:
    """The augmentation every variant trains with: flips, small rotations, zoom, shifts, lighting."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.05, fill_mode="nearest"),
            layers.RandomZoom(0.1, fill_mode="nearest"),
            layers.RandomTranslation(0.08, 0.08, fill_mode="nearest"),
            layers.RandomBrightness(0.2, value_range=(0, 255)),
            layers.RandomContrast(0.2, value_range=(0, 255)),
        ],
        name="augmentation",
    )


# ---------------------------------------------------------------------------------------------
# Prepare data


def load_pre_cropped(manifest: pd.DataFrame, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Images that already are faces (FER2013, CK+48), resized to the model's input as uint8."""
    from emorec.images import to_model_input
    from emorec.data import fer2013_pixels
    from PIL import Image

    height, width, channels = input_shape
    out = np.empty((len(manifest), height, width, channels), np.uint8)
    pixels = manifest["pixels"] if "pixels" in manifest else [None] * len(manifest)
    for i, (path, row_pixels) in enumerate(zip(manifest["path"], pixels)):
        if isinstance(row_pixels, str):
            image = fer2013_pixels(row_pixels)
        else:
            with Image.open(path) as file:
                image = np.asarray(file.convert("L"))
        out[i] = to_model_input(image, input_shape)
    return out


def cached_arrays(manifest: pd.DataFrame, input_shape: tuple[int, int, int], name: str) -> np.ndarray:
    """``load_pre_cropped`` once per dataset and shape, kept as .npy in the cache folder."""
    key = f"{name}-{len(manifest)}-{'x'.join(map(str, input_shape))}.npy"
    path = CACHE_DIR / "arrays" / key
    if path.exists():
        return np.load(path)
    images = load_pre_cropped(manifest, input_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, images)
    os.replace(tmp, path)
    return images


def label_indices(labels: pd.Series | list[str]) -> np.ndarray:
    return np.array([LABELS.index(label) for label in labels], np.int32)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, augment: keras.Sequential | None = None,
                 shuffle: bool = False) -> tf.data.Dataset:
    """A batched tf.data pipeline; augmentation runs inside it, off the model's graph."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=SEED, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda images, labels: (tf.cast(images, tf.float32), labels), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda images, labels: (augment(images, training=True), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def class_weights(y: np.ndarray, power: float = 0.5) -> dict[int, float]:
    """Inverse-frequency weights softened by ``power`` (1 = fully balanced, 0 = none)."""
    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y) ** power
    return {int(c): float(w) for c, w in zip(present, weights)}


# ---------------------------------------------------------------------------------------------
# Train


class EpochLog(keras.callbacks.Callback):
    """One line per epoch (for logs of background runs) and the history as JSON after every epoch,
    so an interrupted run still leaves its curves."""

    def __init__(self, history_path: Path):
        super().__init__()
        self.history_path = history_path
        self.rows: list[dict] = json.loads(history_path.read_text()) if history_path.exists() else []
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": round(time.time() - self.started, 1),
               **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        atomic_write_text(self.history_path, json.dumps(self.rows, indent=1))
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def compile_model(model: keras.Model, optimizer: str, learning_rate) -> None:
    opt = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "nadam": keras.optimizers.Nadam,
           "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}[optimizer.lower()](learning_rate=learning_rate)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def fit(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset | None, epochs: int, run_dir: Path,
        class_weight: dict | None = None, patience: int | None = 10, verbose: int = 2) -> keras.Model:
    """Fit with resumable checkpoints in ``run_dir`` (re-running the same call continues where an
    interrupted one stopped), early stopping on validation loss, and ``history.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        EpochLog(run_dir / "history.json"),
    ]
    if val is not None and patience:
        callbacks.append(keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True))
    model.fit(train, validation_data=val, epochs=epochs, class_weight=class_weight, callbacks=callbacks, verbose=verbose)
    return model


def save_model(model: keras.Model, path: Path) -> None:
    """Save atomically: a crash mid-write leaves the previous model in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Recipes


def pretrain_fer(fer_train_dir: Path, run_dir: Path, epochs: int = 30, batch_size: int = 128) -> keras.Model:
    """emorec stage 1: learn faces in the wild on FER2013 train (10 % held out for early stopping;
    the PublicTest split is never seen)."""
    set_seed()
    variant = VARIANTS["emorec"]
    manifest = load_dataset(fer_train_dir)
    x = cached_arrays(manifest, variant.input_shape, "fer2013-train")
    y = label_indices(manifest["label"])
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.1, stratify=y, random_state=SEED)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(1e-4, steps, warmup_target=variant.learning_rate,
                                                      warmup_steps=steps // 30)
    model = build("emorec")
    compile_model(model, "adamw", schedule)
    augment = augmentation(*variant.input_shape[:2])
    fit(model, make_dataset(x_train, y_train, batch_size, augment, shuffle=True),
        make_dataset(x_val, y_val, 512), epochs, run_dir, class_weights(y_train, 0.3), patience=None)
    save_model(model, run_dir / "pretrained.keras")
    atomic_write_text(run_dir / "data_stats.json", json.dumps(dataset_summary(manifest), indent=1))
    return model
