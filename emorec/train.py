"""Training building blocks: seeds, tf.data pipelines with Keras augmentation layers, class
weights, optimizers, resumable fitting, saving, and the cross-validation runner.

Setup -> Prepare data -> Train -> Cross-validate, as in the keras-io examples. The recipes that use
these blocks are ``emorec.study`` (the 2019 study's variants) and ``emorec.finetune`` (emorec's own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers
from sklearn.model_selection import GroupShuffleSplit, StratifiedKFold, train_test_split
from sklearn.utils.class_weight import compute_class_weight

from emorec.config import FOLDS, PROTOCOLS, SEED
from emorec.crops import cached_model_inputs, detect_dataset
from emorec.data import assert_subject_independent, groups_of, label_indices, subject_kfold
from emorec.distributed import run_here
from emorec.faces import shared_detector
from emorec.files import atomic_target, atomic_write_text, fingerprint
from emorec.metrics import predictions_frame
from emorec.models import VARIANTS

# ---------------------------------------------------------------------------------------------
# Setup


_deterministic_ops = False  # TensorFlow cannot switch op determinism off again within a process


def set_seed(seed: int = SEED, deterministic: bool = True) -> None:
    """Fix Python, NumPy and TensorFlow seeds and, with ``deterministic``, TensorFlow's ops too, so
    that a run can be repeated exactly: with seeds alone, two runs of one fold's fine-tuning ended
    up to 0.18 apart in a weight and the same cross-validation 2 points apart (augmentation running
    in parallel draws its random numbers in a varying order). Deterministic ops rule out XLA
    (``compile_model`` follows), which stage 2 hardly notices; FER2013 pretraining, 1.7 times as fast
    with XLA and resumable rather than repeatable, opts out."""
    global _deterministic_ops
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        _deterministic_ops = True


def augmentation(erasing: float = 0.0) -> keras.Sequential:
    """The augmentation every variant trains with: flips, small rotations, zoom, shifts, lighting;
    ``erasing`` > 0 also fills a random patch with noise (random erasing, Zhong et al., AAAI 2020), so
    a network cannot lean on one part of the face: Keras draws each face's chance from [0, erasing],
    so ``erasing`` 0.5 erases a quarter of the faces on average."""
    steps = [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.05, fill_mode="nearest"),
        layers.RandomZoom(0.1, fill_mode="nearest"),
        layers.RandomTranslation(0.08, 0.08, fill_mode="nearest"),
        layers.RandomBrightness(0.2, value_range=(0, 255)),
        layers.RandomContrast(0.2, value_range=(0, 255)),
    ]
    if erasing:
        steps.append(layers.RandomErasing(factor=erasing, value_range=(0, 255)))
    return keras.Sequential(steps, name="augmentation")


# ---------------------------------------------------------------------------------------------
# Prepare data


def variant_inputs(name: str, manifest: pd.DataFrame, progress=iter) -> np.ndarray:
    """The dataset as variant ``name`` sees it: aligned face crops (faces detected once, cached)
    or whole frames, at the variant's input size."""
    variant = VARIANTS[name]
    if variant.face_crop:
        manifest = detect_dataset(manifest, shared_detector(), progress=progress)
    return cached_model_inputs(manifest, variant.input_shape, variant.face_crop, variant.margin)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, augment: keras.Sequential | None = None,
                 shuffle: bool = False) -> tf.data.Dataset:
    """A batched tf.data pipeline; augmentation runs inside it, off the model's graph. Its maps run
    in parallel unless ops must be deterministic (``set_seed``): TensorFlow then runs them one at a
    time anyway, and a parallel map only adds an error line about an unknown attribute to the log."""
    parallel = None if _deterministic_ops else tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=SEED, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda images, labels: (tf.cast(images, tf.float32), labels), num_parallel_calls=parallel)
    if augment is not None:
        ds = ds.map(lambda images, labels: (augment(images, training=True), labels), num_parallel_calls=parallel)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model``'s probabilities for a stack of images, fed as a plain batched pipeline: Keras' own
    pipeline for arrays maps in parallel, which under op determinism logs an error line per call."""
    batches = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).batch(batch_size)
    return model.predict(batches, verbose=0)


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


# The optimizers a variant or a Talos table may name (the study's tables hold all but AdamW).
OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "nadam": keras.optimizers.Nadam,
              "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD, "adagrad": keras.optimizers.Adagrad,
              "adamax": keras.optimizers.Adamax, "adadelta": keras.optimizers.Adadelta}


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    """The Keras optimizer called ``name`` (any case); ValueError naming the known ones otherwise."""
    try:
        return OPTIMIZERS[str(name).lower()](learning_rate=learning_rate)
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}: emorec trains with {', '.join(OPTIMIZERS)}.") from None


def compile_model(model: keras.Model, optimizer: str, learning_rate) -> None:
    """Compile with XLA unless ops must be deterministic (``set_seed``): on two CPU cores XLA trains
    emorec's ResNet 1.7 times as fast as TensorFlow's default graph (Keras' "auto" leaves it off on CPU)."""
    model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=not _deterministic_ops)


def fit(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset | None, epochs: int, run_dir: Path,
        class_weight: dict | None = None, patience: int | None = 10, verbose: int = 2,
        on_epoch: Callable[[int, int, dict], None] | None = None) -> keras.Model:
    """Fit with resumable checkpoints in ``run_dir`` (re-running the same call continues where an
    interrupted one stopped), early stopping on validation loss, and ``history.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        EpochLog(run_dir / "history.json"),
    ]
    if val is not None and patience:
        callbacks.append(keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True))
    if on_epoch is not None:  # progress for a page or a bar: (epochs done, epochs in all, logs)
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, epochs, logs or {})))
    model.fit(train, validation_data=val, epochs=epochs, class_weight=class_weight, callbacks=callbacks,
              shuffle=False, verbose=verbose)  # the tf.data pipeline shuffles
    return model


def save_model(model: keras.Model, path: Path, quantize: bool = False) -> None:
    """Save what inference needs (no optimizer state), atomically: a crash mid-write leaves the
    previous model in place. ``quantize`` stores Dense kernels as int8 (Keras weight-only
    quantization): a quarter of the size for dense-heavy networks, same predictions within ~1 %."""
    bare = type(model).from_config(model.get_config())  # same network, not compiled (clone_model keeps the optimizer)
    bare.set_weights(model.get_weights())
    if quantize:
        bare.quantize("int8")
    with atomic_target(path) as tmp:
        bare.save(tmp)


# ---------------------------------------------------------------------------------------------
# Splits


def inner_validation_split(y: np.ndarray, groups: np.ndarray, fraction: float = 0.15, seed: int = SEED):
    """Train/validation positions with whole subjects held out (early stopping must not peek at
    the faces it is tested on either)."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    return next(splitter.split(y, y, groups))


def best_epoch(run_dir: Path) -> int:
    """The epoch with the lowest validation loss of a finished run (from its history)."""
    history = json.loads((run_dir / "history.json").read_text())
    scored = [row for row in history if "val_loss" in row]
    return min(scored, key=lambda row: row["val_loss"])["epoch"] if scored else history[-1]["epoch"]


def fer_holdout_split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 train positions for stage 1 and the stratified 10 % it never trains on. Stage 2
    draws its FER2013 slice from the first part and measures in-the-wild skill on the second,
    so the PublicTest split stays untouched until the final number."""
    return train_test_split(np.arange(len(y)), test_size=0.1, stratify=y, random_state=SEED)


def without_copies(rows: np.ndarray, of_rows: np.ndarray, digests: list[str]) -> np.ndarray:
    """The ``rows`` whose image has no byte-identical copy among ``of_rows`` (``digests``: each
    image's ``files.content_digest``): FER2013 repeats faces under other names, and a held-out face
    must not be one that was trained on."""
    digests = np.asarray(digests)
    return rows[~np.isin(digests[rows], digests[of_rows])]


# ---------------------------------------------------------------------------------------------
# Cross-validate


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
# A runner runs (function, arguments) jobs and yields (job index, result) as each finishes (emorec.distributed).
Runner = Callable[[list, Callable[[Iterable], Iterable]], Iterable[tuple[int, object]]]


def train_fold(trainer: Trainer, x_train: np.ndarray, y_train: np.ndarray, groups: np.ndarray, fold_dir: Path,
               x_test: np.ndarray) -> tuple[np.ndarray, dict[str, bytes]]:
    """One fold, wherever it runs: the test probabilities and the files training left in ``fold_dir``
    (history, weights), so the machine that asked keeps them even when another machine trained."""
    probabilities = trainer(x_train, y_train, groups, fold_dir)(x_test)
    return probabilities, {path.name: path.read_bytes() for path in fold_dir.glob("*") if path.is_file()}


def cross_validate(x: np.ndarray, manifest: pd.DataFrame, trainer: Trainer, protocol: str, run_dir: Path,
                   n_splits: int | None = None, progress: Callable[[Iterable], Iterable] = iter,
                   settings: tuple = (), runner: Runner = run_here) -> pd.DataFrame:
    """Train and test once per fold; returns one row per test image: its fold, true label and
    the predicted probability of every class. Folds finished before an interruption (their test
    predictions saved in ``run_dir`` with the same inputs and ``settings``) are not trained again;
    the others run as ``runner``'s jobs (in turn here, or as Ray tasks: ``emorec.distributed``)."""
    y = label_indices(manifest["label"])
    groups = groups_of(manifest).to_numpy()
    recipe = fingerprint(x, *settings)
    splits = list(enumerate(folds(manifest, protocol, n_splits)))
    probabilities, jobs, todo = {}, [], []
    for fold, (train, test) in splits:
        fold_dir = run_dir / f"{protocol}-fold{fold:02d}"
        done = fold_dir / "test_probabilities.npz"
        test_paths = manifest["path"].iloc[test].to_numpy().astype(str)
        saved = np.load(done) if done.exists() else None
        if saved is not None and np.array_equal(saved["paths"], test_paths) and saved.get("recipe") == recipe:
            probabilities[fold] = saved["probabilities"]  # this fold finished before an interruption
        else:
            jobs.append((train_fold, (trainer, x[train], y[train], groups[train], fold_dir, x[test])))
            todo.append((fold, done, test_paths))
    for index, (fold_probabilities, files) in runner(jobs, progress):
        fold, done, test_paths = todo[index]
        for name, content in files.items():
            if name != done.name:
                with atomic_target(done.parent / name) as tmp:
                    tmp.write_bytes(content)
        with atomic_target(done) as tmp:
            np.savez(tmp, paths=test_paths, probabilities=fold_probabilities, recipe=recipe)
        probabilities[fold] = fold_probabilities
    return pd.concat([predictions_frame(probabilities[fold], manifest.iloc[test], fold) for fold, (_, test) in splits],
                     ignore_index=True)
