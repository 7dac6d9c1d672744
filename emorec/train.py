"""Training: tf.data pipelines with Keras augmentation layers, class weights, early stopping,
checkpoints that resume after an interruption, and a history saved beside the model.

Setup -> Prepare data -> Build -> Train, as in the keras-io examples; the recipes at the bottom
are what the CLI runs: ``train_final`` (``python -m emorec train``, the study variants; emorec's
own recipe is ``emorec.recipe``), ``pretrain_fer`` (``pretrain``), ``study_trainer`` (``evaluate``)
and ``train_configuration`` (a Talos table's row, from the Tuning page).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils.class_weight import compute_class_weight

from emorec import registry
from emorec.bench import served_latency
from emorec.config import (CACHE_DIR, LABELS, MODELS_DIR, PRETRAIN_EPOCHS, PRETRAIN_ERASING,
                           PRETRAIN_RESTART_LEARNING_RATE, SEED)
from emorec.crops import cached_model_inputs, detect_dataset
from emorec.data import dataset_summary, image_digests, label_indices, load_dataset
from emorec.files import atomic_target, atomic_write_text
from emorec.models import VARIANTS, build

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
    from emorec.predict import shared_detector

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
# Recipes


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


def train_study_variant(name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, run_dir: Path,
                        epochs: int | None = None, verbose: int = 2) -> keras.Model:
    """A study variant with its own optimizer, batch size and epochs. With ``groups``, 15 % of
    the subjects are held out for early stopping; without (the final model), it trains ``epochs``."""
    set_seed()
    variant = VARIANTS[name]
    model = build(name)
    compile_model(model, variant.optimizer, variant.learning_rate)
    augment = augmentation()
    if groups is not None:
        fit_rows, val_rows = inner_validation_split(y, groups)
        val = make_dataset(x[val_rows], y[val_rows], 256)
    else:
        fit_rows, val = np.arange(len(y)), None
    train = make_dataset(x[fit_rows], y[fit_rows], variant.batch_size, augment, shuffle=True)
    fit(model, train, val, epochs or variant.epochs, run_dir, class_weights(y[fit_rows], 1.0),
        patience=max(5, min(10, (epochs or variant.epochs) // 5)), verbose=verbose)
    return model


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


def pretrain_fer(fer_train_dir: Path, out_dir: Path, epochs: int = PRETRAIN_EPOCHS, batch_size: int | None = None,
                 run_dir: Path | None = None, restart_from: Path | None = None) -> keras.Model:
    """emorec stage 1: learn faces in the wild on FER2013 train (10 % held out to watch the run;
    the PublicTest split is never seen). Trains in ``run_dir`` (resumable, outside the repository)
    and writes ``pretrained.keras``, its history and data counts to ``out_dir`` when done.

    ``restart_from`` continues a finished stage 1 for another cosine cycle (a warm restart, SGDR:
    Loshchilov & Hutter, ICLR 2017) at a lower peak rate and with random erasing, against the
    overfitting the first cycle ended in; the history then continues the first cycle's."""
    set_seed(deterministic=False)  # see set_seed: XLA, and a resumed run is not a repeated one
    if restart_from is None:
        cycle = "pretrain"
    else:  # keyed by the network it starts from: the backup of another start is never resumed
        cycle = f"pretrain-restart-{hashlib.sha256(restart_from.read_bytes()).hexdigest()[:12]}-{epochs}ep"
    run_dir = run_dir or CACHE_DIR / "runs" / "emorec" / cycle
    variant = VARIANTS["emorec"]
    batch_size = batch_size or variant.batch_size
    manifest = load_dataset(fer_train_dir)
    x = cached_model_inputs(manifest, variant.input_shape, face_crop=False)
    y = label_indices(manifest["label"])
    fit_rows, held_out = fer_holdout_split(y)
    x_train, x_val, y_train, y_val = x[fit_rows], x[held_out], y[fit_rows], y[held_out]
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    model = build("emorec")
    earlier: list[dict] = []
    if restart_from is None:
        peak, augment = variant.learning_rate, augmentation()
    else:
        model.set_weights(keras.models.load_model(restart_from, compile=False).get_weights())
        history_path = restart_from.parent / "history.json"
        earlier = json.loads(history_path.read_text()) if history_path.exists() else []
        peak, augment = PRETRAIN_RESTART_LEARNING_RATE, augmentation(erasing=PRETRAIN_ERASING)
    schedule = keras.optimizers.schedules.CosineDecay(peak / 20, steps, warmup_target=peak, warmup_steps=steps // 30)
    compile_model(model, variant.optimizer, schedule)
    fit(model, make_dataset(x_train, y_train, batch_size, augment, shuffle=True),
        make_dataset(x_val, y_val, 512), epochs, run_dir, class_weights(y_train, 0.3), patience=None)
    save_model(model, out_dir / "pretrained.keras")
    cycle_rows = [{**row, "epoch": row["epoch"] + len(earlier)}
                  for row in json.loads((run_dir / "history.json").read_text())]
    atomic_write_text(out_dir / "history.json", json.dumps(earlier + cycle_rows, indent=1))
    atomic_write_text(out_dir / "data_stats.json", json.dumps(dataset_summary(manifest), indent=1))
    return model


def training_code(name: str) -> str:
    """``code_fingerprint`` of what trains a study variant in a fold: its network and its recipe."""
    from emorec import models
    from emorec.evaluate import code_fingerprint

    network = models.cifar10_cnn if name == "baseline" else models.tuned_cnn
    return code_fingerprint(network, train_study_variant, study_trainer, fit, augmentation, make_dataset, class_weights,
                            compile_model, make_optimizer, inner_validation_split, predict_probabilities)


def study_trainer(name: str, epochs: int | None = None):
    """An ``evaluate.Trainer`` for a study variant: trains on a fold, returns its predict function."""

    def train_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, run_dir: Path):
        model = train_study_variant(name, x, y, groups, run_dir, epochs, verbose=0)
        return lambda images: predict_probabilities(model, images)

    return train_fold


def train_final(name: str, data_dir: Path, command: str, epochs: int | None = None,
                models_dir: Path = MODELS_DIR, progress=iter) -> dict:
    """Train a study variant on the whole dataset and ship it: ``models/<name>/model.keras``,
    its history and its card. Without ``epochs``, the median best epoch of its subject-grouped
    cross-validation (when run) or the variant's default."""
    variant = VARIANTS[name]
    manifest = load_dataset(data_dir)
    x = variant_inputs(name, manifest, progress)
    y = label_indices(manifest["label"])
    if epochs is None:
        try:
            best = (registry.read_card(name, models_dir).get("evaluation", {}).get("subject-kfold", {})
                    .get("best_epochs"))
        except registry.ModelUnavailable:
            best = None
        epochs = int(np.median(best)) if best else variant.epochs
    run_dir = CACHE_DIR / "runs" / name / "final"
    model = train_study_variant(name, x, y, None, run_dir, epochs)
    out = models_dir / name
    save_model(model, out / registry.MODEL_FILE, quantize=variant.quantize_dense)
    registry.write_training_images(name, image_digests(manifest), models_dir)
    atomic_write_text(out / "history.json", (run_dir / "history.json").read_text())
    registry.update_card(name, {
        "evaluation": {"fer2013-publictest": None},  # measured on the old model: run again on this one
        "cross_dataset": None,
        "quantization": "Dense kernels int8 (keras quantize), convolutions float32" if variant.quantize_dense else None,
        "description": variant.description,
        "variant": name,
        "classes": list(LABELS),
        "input_shape": list(variant.input_shape),
        "face_crop": variant.face_crop,
        "parameters": int(model.count_params()),
        "file_size_bytes": (out / registry.MODEL_FILE).stat().st_size,
        "data": {**dataset_summary(manifest), "folder": str(data_dir)},
        "training": {"epochs": epochs, "batch_size": variant.batch_size, "optimizer": variant.optimizer,
                     "learning_rate": variant.learning_rate,
                     "augmentation": [type(layer).__name__ for layer in augmentation().layers]},
        "commands": {"train": command},
        "study_reported": {"accuracy": variant.study_reported_accuracy,
                           "protocol": "image-level split (75/25 by image), as reported by the 2019 study"}
        if variant.study_reported_accuracy is not None else None,
    }, models_dir)
    return registry.update_card(name, served_latency(name, models_dir), models_dir)


def train_configuration(params: dict, data_dir: Path, name: str, face_crop: bool, command: str,
                        models_dir: Path = MODELS_DIR,
                        on_epoch: Callable[[int, int, dict], None] | None = None) -> dict:
    """Train one configuration of the study's tuned family (a row of a Talos table) on a dataset,
    validated on a fifth of the subjects held out, and register it in ``models/<name>``. Its run
    folder is keyed by the data and the configuration: an interrupted run of the same resumes,
    another configuration under the same name starts afresh."""
    from emorec.data import groups_of
    from emorec.evaluate import fingerprint, predictions_frame, scores
    from emorec.models import tuned_cnn

    set_seed()
    variant = VARIANTS["tuned_mtcnn" if face_crop else "tuned_full"]
    optimizer = str(params.get("optimizer", variant.optimizer))
    make_optimizer(optimizer, 1e-3)  # an unknown optimizer fails here, before the faces are prepared
    manifest = load_dataset(data_dir)
    x = variant_inputs(variant.name, manifest)
    y = label_indices(manifest["label"])
    fit_rows, val_rows = inner_validation_split(y, groups_of(manifest).to_numpy(), 0.2)
    model = tuned_cnn(variant.input_shape, len(LABELS), params, name="tuned")
    compile_model(model, optimizer, float(params.get("lr", variant.learning_rate)))
    epochs = int(params.get("epochs", variant.epochs))
    batch_size = int(params.get("batch_size", variant.batch_size))
    run_dir = (CACHE_DIR / "runs" / "configurations"
               / f"{name}-{fingerprint(x, sorted(params.items(), key=str), face_crop)}")
    fit(model, make_dataset(x[fit_rows], y[fit_rows], batch_size, augmentation(), shuffle=True),
        make_dataset(x[val_rows], y[val_rows], 256), epochs, run_dir,
        class_weights(y[fit_rows], 1.0), patience=int(params.get("patience", 5)), verbose=0, on_epoch=on_epoch)
    out = models_dir / name
    save_model(model, out / registry.MODEL_FILE)
    registry.write_training_images(name, np.array(image_digests(manifest))[fit_rows], models_dir)
    atomic_write_text(out / "history.json", (run_dir / "history.json").read_text())
    (out / registry.CARD_FILE).unlink(missing_ok=True)  # the card of a model this one replaces says nothing of it
    probabilities = predict_probabilities(model, x[val_rows])
    result = scores(predictions_frame(probabilities, manifest.iloc[val_rows]), LABELS)
    registry.update_card(name, {
        "description": f"A configuration of the study's tuned family, trained from the Tuning page "
                       f"({'MTCNN face crops' if face_crop else 'whole frames'})",
        "variant": variant.name,
        "classes": list(LABELS),
        "input_shape": list(variant.input_shape),
        "face_crop": face_crop,
        "parameters": int(model.count_params()),
        "file_size_bytes": (out / registry.MODEL_FILE).stat().st_size,
        "data": {**dataset_summary(manifest), "folder": str(data_dir)},
        "training": {"params": {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()},
                     "epochs": epochs},
        "evaluation": {"subject-holdout": {
            "description": "one split: a fifth of the subjects held out (they also chose the epoch to stop at)",
            "accuracy": result["accuracy"]["pooled"], "macro_f1": result["macro_f1"]["pooled"],
            "images": result["images"],
            "majority_class": round(max(c["support"] for c in result["per_class"].values()) / result["images"], 4)}},
        "commands": {"train": command},
    }, models_dir)
    return registry.update_card(name, served_latency(name, models_dir), models_dir)
