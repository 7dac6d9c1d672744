"""Talos scans of the study's network family on CK+, validated on held-out subjects: in one piece, as
shards run by a runner (in turn, or as Ray tasks on a cluster: ``emorec.distributed``), or one shard
per machine by hand (``tune-merge`` joins their tables; ``tune_results`` reads them)."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import talos
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score
from talos.experiment.serialization import content_hash
from talos.parameters.ParamSpace import ParamSpace

from emorec.config import CACHE_DIR, LABELS, SEARCH_SPACE, SEED
from emorec.data import groups_of, label_indices, load_dataset
from emorec.files import atomic_write_text
from emorec.distributed import Progress, run_here
from emorec.tune_results import SearchSpaceError, load_space, merge_scans
from emorec.models import tuned_cnn
from emorec.train import augmentation, class_weights, inner_validation_split, make_optimizer, variant_inputs

SCAN_VARIANTS = {"full": "tuned_full", "mtcnn": "tuned_mtcnn"}


def scaled_inputs(images: np.ndarray, scale: float) -> np.ndarray:
    """Crops shrunk by ``scale`` (area-averaged): a scan at half size trains ~4x faster, so a
    large scan fits on a laptop CPU; the space file states the scale it used."""
    if not 0 < scale <= 1:
        raise SearchSpaceError(f"input_scale must be in (0, 1], not {scale}.")
    images = images.astype("float32")
    if scale == 1:
        return images
    size = [max(1, round(images.shape[1] * scale)), max(1, round(images.shape[2] * scale))]
    return tf.image.resize(images, size, method="area").numpy()


def balanced_accuracy_logger(x_val, y_val):
    """A callback that adds ``val_balanced_accuracy`` (scikit-learn's mean recall per class) to each
    epoch's logs, so Talos records it and early stopping can watch it. Plain accuracy rewards a
    model that answers "neutral" to every face (0.64 on CK+ validation subjects); this scores it 1/8."""
    truth = y_val.argmax(axis=1)

    class BalancedAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predicted = self.model.predict(x_val, verbose=0).argmax(axis=1)
            logs["val_balanced_accuracy"] = float(balanced_accuracy_score(truth, predicted))

    return BalancedAccuracy()


def scan_model(x_train, y_train, x_val, y_val, params):
    """The Talos model function: the study's tuned family with one configuration's parameters,
    trained with augmentation and class weights, stopped early when the (subject-grouped)
    validation balanced accuracy stops improving. Talos records each metric's last epoch."""
    network = tuned_cnn(x_train.shape[1:], y_train.shape[1], params)
    model = keras.Sequential([keras.Input(x_train.shape[1:]), augmentation(), network])
    model.compile(optimizer=make_optimizer(params["optimizer"], float(params["lr"])), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_balanced_accuracy", mode="max", patience=int(params["patience"]))
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=int(params["epochs"]),
                        batch_size=int(params["batch_size"]), class_weight=class_weights(y_train.argmax(axis=1), 1.0),
                        callbacks=[balanced_accuracy_logger(x_val, y_val), stop], verbose=0)
    return history, model


def shard_space(params: dict[str, list], rounds: int | None, index: int, count: int):
    """The ``index``-th of ``count`` shards of one seeded draw of ``rounds`` configurations: what
    Talos's DistributeParamSpace does, without its step that lists the whole space again for every
    shard (5.6M rows for the study's space: 6.5 minutes on one core before the first trial)."""
    draw = ParamSpace(params, round_limit=rounds, seed=SEED)
    rows = list(draw.param_index)
    random.Random(SEED).shuffle(rows)
    mine = np.array_split(np.array(rows, dtype=int), count)[index]
    if len(mine) == 0:
        raise SearchSpaceError(f"Shard {index}/{count} is empty: {len(rows)} configurations cannot be split "
                               f"in {count} shards; use more --rounds or fewer shards.")
    # The draw becomes the shard: its search strategy walks whatever rows it holds.
    draw.param_space = draw.param_space[mine].copy()
    draw.param_index = list(range(len(mine)))
    draw.dimensions = len(mine)
    draw.shard_id = index
    draw.shard_namespace = content_hash({"params": params, "machines": count, "worker": index,
                                         "original_row_indexes": mine.tolist()})
    return draw


def run_scan(data_dir: Path, out: Path, variant: str = "mtcnn", space: Path = SEARCH_SPACE, rounds: int | None = None,
             shard: tuple[int, int] | None = None, work_dir: Path | None = None) -> tuple[str, int]:
    """A Talos scan of the study's network family on CK+ (whole frames or MTCNN crops), validated
    on held-out subjects. ``rounds`` configurations are drawn from the space (with ``shard`` =
    (i, n), this machine runs the i-th of n parts of that draw). Re-running the same command resumes
    an interrupted scan, as long as emorec's code is unchanged. Returns the scan's status and its
    number of rows; the results table is written to ``out``."""
    params, settings = load_space(space)
    params = {**params, "patience": [int(settings.get("early_stopping_patience", 5))]}
    limit = rounds
    if shard is not None:  # the same sample of ``rounds`` configurations on every machine, split in shards
        params = shard_space(params, rounds, *shard)
        limit = params.dimensions
    manifest = load_dataset(data_dir)
    x = scaled_inputs(variant_inputs(SCAN_VARIANTS[variant], manifest), float(settings.get("input_scale", 1.0)))
    y = keras.utils.to_categorical(label_indices(manifest["label"]), len(LABELS))
    fit_rows, val_rows = inner_validation_split(y.argmax(axis=1), groups_of(manifest).to_numpy(),
                                                float(settings.get("validation_subjects", 0.2)))
    work_dir = work_dir or CACHE_DIR / "scans" / (out.stem + (f"-shard{shard[0]}of{shard[1]}" if shard else ""))
    resume = (work_dir / "checkpoint.json").exists()
    if work_dir.exists() and not resume:
        shutil.rmtree(work_dir)  # a scan that never finished its first trial: start it again
    # Talos makes a scan's git HEAD part of its identity: a commit between the run and its resume
    # would make the resume fail. Scans depend on their parameters and data, not on commits.
    with environment(GIT_DIR="/nonexistent"):
        scan = talos.Scan(x=x[fit_rows], y=y[fit_rows], x_val=x[val_rows], y_val=y[val_rows], params=params,
                          model=scan_model, experiment_name="emorec", experiment_dir=str(work_dir), resume=resume,
                          round_limit=limit, seed=SEED, reduction_metric="val_balanced_accuracy", save_weights=False,
                          n_permutations=limit)  # the progress bar's total (else the whole space: 5.6M)
    atomic_write_text(out, scan.data.to_csv(index=False))
    return scan.status, len(scan.data)




def scan_shard(data_dir: Path, name: str, variant: str, space: Path, rounds: int | None,
               shard: tuple[int, int]) -> str:
    """One shard of the scan ``name``, wherever it runs: its results table as CSV text (resumable on
    the machine that ran it, from ``CACHE_DIR/scans``)."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "shard.csv"
        run_scan(data_dir, table, variant, space, rounds, shard,
                 CACHE_DIR / "scans" / f"{name}-shard{shard[0]}of{shard[1]}")
        return table.read_text()


def shard_tables(out: Path, shards: int) -> list[Path]:
    """Where the shards of the scan written to ``out`` keep their tables."""
    return [out.parent / "shards" / f"{out.stem}-{index}of{shards}.csv" for index in range(shards)]


def run_sharded_scan(data_dir: Path, out: Path, variant: str = "mtcnn", space: Path = SEARCH_SPACE,
                     rounds: int | None = None, shards: int = 2, runner=run_here, progress: Progress = iter) -> int:
    """``run_scan`` split in ``shards`` jobs for ``runner``. Each finished shard's table is kept beside
    ``out`` (``shards/``) and never run again; ``out`` is rewritten with every shard finished so far,
    so the Tuning page shows a running scan's partial results. Returns the number of configurations."""
    load_space(space)  # a bad space file fails here, not in every shard
    tables = shard_tables(out, shards)
    todo = [table for table in tables if not table.exists()]
    jobs = [(scan_shard, (data_dir, out.stem, variant, space, rounds, (tables.index(table), shards)))
            for table in todo]

    def merged() -> int:
        finished = [table for table in tables if table.exists()]
        return merge_scans(finished, out) if finished else 0

    merged()
    for index, text in runner(jobs, progress):
        atomic_write_text(todo[index], text)
        merged()
    return merged()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for the duration of a block, then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
