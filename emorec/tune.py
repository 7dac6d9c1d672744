"""Talos tuning: scans of the study's network family, and every dialect of Talos results table
read into one clean DataFrame.

Tables written by Talos 0.x/1.x (the 2019 study's) and by Talos 2.x differ: a leading index
column, the name ``loss`` used twice (the metric and the loss-function parameter), float noise
such as ``0.30000000000000004``, optimizers stored as ``<class 'keras.optimizers.Nadam'>``, empty
columns, ``round_epochs`` in older files and ``start,end,duration`` in newer ones. ``read_results``
hides all of that; unknown columns are kept.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd

from emorec.config import CHANCE
from emorec.files import atomic_write_text

METRICS = ("val_balanced_accuracy", "val_accuracy", "val_loss", "accuracy", "loss")
METRIC_ALIASES = {"val_acc": "val_accuracy", "acc": "accuracy", "categorical_accuracy": "accuracy",
                  "val_categorical_accuracy": "val_accuracy"}
BOOKKEEPING = ("start", "end", "duration", "execution_time", "round_epochs", "_trial_id", "_param_hash",
               "_round_index", "_warnings", "id", "_id")
OPTIMIZER_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


class TalosTableError(ValueError):
    """A file that is not a Talos results table; the message says what is missing."""


@dataclass(frozen=True)
class TalosResults:
    """A clean results table: one row per tried configuration."""

    frame: pd.DataFrame
    metrics: list[str]  # metric columns present, best first (val_balanced_accuracy, else val_accuracy)
    params: list[str]  # hyper-parameter columns
    dialect: str  # "talos-2" or "talos-legacy"
    name: str

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def incomplete(self) -> pd.Series:
        """Rows missing a metric or parameter value that every other row has: what a scan cut off
        mid-write (a truncated CSV) leaves as its last line."""
        columns = [c for c in (*self.metrics, *self.params) if self.frame[c].isna().sum() == 1]
        return self.frame[columns].isna().any(axis=1) if columns else pd.Series(False, index=self.frame.index)

    def top(self, n: int = 10, metric: str | None = None) -> pd.DataFrame:
        metric = metric or self.primary_metric
        return self.frame.sort_values(metric, ascending=metric.endswith("loss")).head(n)


def without_outliers(values: pd.Series, spread: float = 10.0) -> tuple[pd.Series, int]:
    """The values a histogram should show, and how many were left out: those beyond the 95th
    percentile plus ``spread`` interquartile ranges (losses of diverged runs, up to 350,000 in the
    study's scan, next to ordinary ones near 1); none left out when there are no such values."""
    finite = values[np.isfinite(values)]
    if finite.empty:
        return finite, 0
    q25, q75, q95 = finite.quantile([0.25, 0.75, 0.95])
    limit = q95 + spread * max(q75 - q25, 1e-12)
    return finite[finite <= limit], int((finite > limit).sum())


def readable(rows: pd.DataFrame, results: TalosResults, leading: list[str] | tuple = ()) -> pd.DataFrame:
    """Rows of a results table with ``leading`` columns (e.g. the metric in use and the parameters
    that matter most), then the other metrics and parameters, and Talos' bookkeeping (timestamps,
    ids, warnings) last, so a table on screen starts with what was tried and scored."""
    first = list(dict.fromkeys(c for c in (*leading, *results.metrics, *results.params) if c in rows))
    return rows[first + [c for c in rows if c not in first]]


def _denoise(values: pd.Series) -> pd.Series:
    """Floats written with binary noise (0.30000000000000004) back to what was meant."""
    rounded = values.round(10)
    return (rounded.astype(int) if (rounded.dropna() == rounded.dropna().round()).all() and rounded.notna().all()
            else rounded)


def _read_csv(source: str | Path | bytes, name: str) -> pd.DataFrame:
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TalosTableError(f"{name} is not UTF-8 text (is it a CSV file?).") from None
    else:
        path = Path(source)
        if not path.is_file():
            raise TalosTableError(f"{name}: no such file.")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise TalosTableError(f"{name} is not UTF-8 text (is it a CSV file?).") from None
    if not text.strip():
        raise TalosTableError(f"{name} is empty.")
    if "\x00" in text:
        raise TalosTableError(f"{name} is binary, not a CSV table.")
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise TalosTableError(f"{name} is not a readable CSV table ({error}).") from None


def read_results(source: str | Path | bytes, name: str | None = None) -> TalosResults:
    """Read a Talos results CSV (a path or the file's bytes) of any dialect."""
    name = name or (Path(source).name if not isinstance(source, bytes) else "The file")
    raw = _read_csv(source, name)
    if raw.empty:
        raise TalosTableError(f"{name} has a header but no rows: the scan recorded no configuration yet.")
    frame = raw.drop(columns=[c for c in raw.columns if c == "" or str(c).startswith("Unnamed: ")])
    frame = frame.rename(columns=METRIC_ALIASES)

    # "loss" twice: pandas calls the second "loss.1". Whichever holds text is the loss function.
    duplicates = [c for c in frame.columns if re.fullmatch(r"loss\.\d+", str(c))]
    for column in ["loss", *duplicates]:
        if column in frame and frame[column].dtype == object:
            frame = frame.rename(columns={column: "loss_function"})
    frame = frame.rename(columns={c: "loss" for c in duplicates if c in frame and "loss" not in frame})

    frame = frame.loc[:, ~frame.columns.duplicated()]  # e.g. both val_acc and val_accuracy: keep the first
    frame = frame.dropna(axis=1, how="all")
    metrics = [m for m in METRICS if m in frame.columns and pd.api.types.is_numeric_dtype(frame[m])
               and not pd.api.types.is_bool_dtype(frame[m])]
    if not metrics:
        raise TalosTableError(
            f"{name} is not a Talos results table: it has no metric column "
            f"(expected one of {', '.join(METRICS)}; found {', '.join(map(str, raw.columns[:12]))})."
        )
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]) and column not in metrics:
            frame[column] = _denoise(frame[column])
        elif frame[column].dtype == object:
            frame[column] = frame[column].astype(str).str.replace(OPTIMIZER_CLASS, r"\1", regex=True)

    dialect = "talos-2" if {"start", "end"} <= set(frame.columns) or "_param_hash" in frame else "talos-legacy"
    if "duration" not in frame and {"start", "end"} <= set(frame.columns):
        frame["duration"] = (pd.to_datetime(frame["end"], errors="coerce")
                             - pd.to_datetime(frame["start"], errors="coerce")).dt.total_seconds()
    params = [c for c in frame.columns if c not in metrics and c not in BOOKKEEPING]
    return TalosResults(frame.reset_index(drop=True), metrics, params, dialect, name)


# Talos 0.x/1.x ``lr_normalizer``: scan tables store the learning rate in these units.
LR_NORMALIZER_DIVISOR = {"sgd": 100.0, "adagrad": 100.0, "adam": 1000.0, "nadam": 1000.0, "rmsprop": 1000.0,
                         "adamax": 500.0}


def configuration(results: TalosResults, row: int) -> dict:
    """One table row as parameters ``emorec.models.tuned_cnn`` and training understand: plain
    Python values, and learning rates written in Talos's normalised units (values above 0.1, as
    in the study's tables) converted to real ones."""
    values = results.frame.loc[row, results.params].to_dict()
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items() if pd.notna(v)}
    optimizer = str(params.get("optimizer", "adam")).lower()
    if "lr" in params and float(params["lr"]) > 0.1:
        params["lr"] = float(params["lr"]) / LR_NORMALIZER_DIVISOR.get(optimizer, 1000.0)
    return params


def parameter_importance(results: TalosResults, metric: str | None = None) -> pd.DataFrame:
    """How much each hyper-parameter matters: the share of the metric's variance explained by its
    values (one-way ANOVA eta squared), with the F-test's p-value. Parameters with one value are skipped."""
    from scipy.stats import f_oneway

    metric = metric or results.primary_metric
    frame = results.frame.dropna(subset=[metric])
    total = ((frame[metric] - frame[metric].mean()) ** 2).sum()
    rows = []
    for param in results.params:
        groups = [g[metric].to_numpy() for _, g in frame.groupby(param) if len(g) > 0]
        if len(groups) < 2 or total == 0:
            continue
        between = sum(len(g) * (g.mean() - frame[metric].mean()) ** 2 for g in groups)
        p_value = f_oneway(*groups).pvalue if all(len(g) > 1 for g in groups) else np.nan
        rows.append({"parameter": param, "eta_squared": round(float(between / total), 4),
                     "p_value": float(p_value), "values": len(groups)})
    return pd.DataFrame(rows).sort_values("eta_squared", ascending=False, ignore_index=True) if rows else \
        pd.DataFrame(columns=["parameter", "eta_squared", "p_value", "values"])


def repeated_outcomes(results: TalosResults, metric: str | None = None, min_share: float = 0.05) -> pd.DataFrame:
    """Metric values that many different configurations ended on exactly: the signature of models
    that predict one class for every image (e.g. half the study's scan at val_accuracy 0.2048)."""
    metric = metric or results.primary_metric
    counts = results.frame[metric].round(4).value_counts()
    shares = counts / len(results.frame)
    kept = shares[(shares >= min_share) & (counts >= 3)]  # one or two equal rows prove nothing
    return pd.DataFrame({metric: kept.index, "runs": counts[kept.index].to_numpy(), "share": kept.round(4).to_numpy()})


def collapsed(rows: pd.DataFrame, results: TalosResults, metric: str) -> int:
    """How many of ``rows`` end on a value many configurations share (``repeated_outcomes``): runs
    that likely answer one class for every image, however high they rank."""
    values = set(repeated_outcomes(results, metric)[metric])
    return int(rows[metric].round(4).isin(values).sum())


def chance_metric(results: TalosResults, metric: str | None = None) -> str | None:
    """The accuracy column that says whether runs learned anything: ``metric`` when it is an
    accuracy, otherwise (a loss) the table's first validation accuracy."""
    accuracies = [m for m in results.metrics if m.endswith("accuracy")]
    return metric if metric in accuracies else next((m for m in accuracies if m.startswith("val_")), None)


def broken_share(results: TalosResults, chance: float, metric: str | None = None) -> float:
    """The share of rows whose validation (balanced) accuracy (``chance_metric``) is no better than
    chance: scans that did not learn at all (the study's tables are mostly such rows)."""
    counted = chance_metric(results, metric)
    if counted is None:
        return 0.0
    return round(float((results.frame[counted] <= chance).mean()), 4)


@dataclass(frozen=True)
class ScanSummary:
    """A scan's headline numbers, as the Tuning page and ``tune-report`` show them."""

    metric: str
    configurations: int
    best: float
    median: float
    below_chance: float  # share of runs at or below chance
    chance_metric: str | None  # the accuracy that share counts (``metric`` itself unless it is a loss)
    repeated: pd.DataFrame  # metric values many runs ended on exactly (see repeated_outcomes)
    minutes: float | None  # training time of all runs, when the table records durations
    median_seconds: float | None


def summarize(results: TalosResults, metric: str | None = None, chance: float = CHANCE) -> ScanSummary:
    metric = metric or results.primary_metric
    frame = results.frame
    duration = frame["duration"] if "duration" in frame else None
    return ScanSummary(metric, len(frame), float(results.top(1, metric)[metric].iloc[0]), float(frame[metric].median()),
                       broken_share(results, chance, metric), chance_metric(results, metric),
                       repeated_outcomes(results, metric),
                       None if duration is None else float(duration.sum() / 60),
                       None if duration is None else float(duration.median()))


# ---------------------------------------------------------------------------------------------
# Scanning (Talos 2.x)

DEFAULT_SPACE = Path(__file__).parent / "spaces" / "study.toml"
SCAN_VARIANTS = {"full": "tuned_full", "mtcnn": "tuned_mtcnn"}


class SearchSpaceError(ValueError):
    """A search-space file that cannot be used; the message says why."""


def load_space(path: str | Path = DEFAULT_SPACE) -> tuple[dict[str, list], dict]:
    """A search space file (TOML): ``[params]`` name = [values...] and optional ``[scan]`` settings."""
    import tomllib

    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SearchSpaceError(f"{path}: no such search-space file.") from None
    except OSError as error:
        raise SearchSpaceError(f"{path} cannot be read as a search-space file ({error.strerror or error}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SearchSpaceError(f"{path} is not valid TOML: {error}") from None
    params = spec.get("params")
    if not isinstance(params, dict) or not params:
        raise SearchSpaceError(f"{path} has no [params] table of parameter = [values].")
    not_lists = [name for name, values in params.items() if not isinstance(values, list) or not values]
    if not_lists:
        raise SearchSpaceError(f"{path}: parameters must be non-empty lists of values: {', '.join(not_lists)}.")
    return params, spec.get("scan", {})


def scaled_inputs(images: np.ndarray, scale: float) -> np.ndarray:
    """Crops shrunk by ``scale`` (area-averaged): a scan at half size trains ~4x faster, so a
    large scan fits on a laptop CPU; the space file states the scale it used."""
    if not 0 < scale <= 1:
        raise SearchSpaceError(f"input_scale must be in (0, 1], not {scale}.")
    images = images.astype("float32")
    if scale == 1:
        return images
    import tensorflow as tf

    size = [max(1, round(images.shape[1] * scale)), max(1, round(images.shape[2] * scale))]
    return tf.image.resize(images, size, method="area").numpy()


def balanced_accuracy_logger(x_val, y_val):
    """A callback that adds ``val_balanced_accuracy`` (scikit-learn's mean recall per class) to each
    epoch's logs, so Talos records it and early stopping can watch it. Plain accuracy rewards a
    model that answers "neutral" to every face (0.64 on CK+ validation subjects); this scores it 1/8."""
    import keras
    from sklearn.metrics import balanced_accuracy_score

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
    import keras

    from emorec.models import tuned_cnn
    from emorec.train import augmentation, class_weights, make_optimizer

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
    import random

    from talos.experiment.serialization import content_hash
    from talos.parameters.ParamSpace import ParamSpace

    from emorec.config import SEED

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


def run_scan(data_dir: Path, out: Path, variant: str = "mtcnn", space: Path = DEFAULT_SPACE, rounds: int | None = None,
             shard: tuple[int, int] | None = None, work_dir: Path | None = None) -> tuple[str, int]:
    """A Talos scan of the study's network family on CK+ (whole frames or MTCNN crops), validated
    on held-out subjects. ``rounds`` configurations are drawn from the space (with ``shard`` =
    (i, n), this machine runs the i-th of n parts of that draw). Re-running the same command resumes
    an interrupted scan, as long as emorec's code is unchanged. Returns the scan's status and its
    number of rows; the results table is written to ``out``."""
    import shutil

    import keras
    import talos

    from emorec.config import CACHE_DIR, LABELS, SEED
    from emorec.data import groups_of, load_dataset
    from emorec.data import label_indices
    from emorec.train import inner_validation_split, variant_inputs

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
    with patch.dict(os.environ, {"GIT_DIR": "/nonexistent"}):
        scan = talos.Scan(x=x[fit_rows], y=y[fit_rows], x_val=x[val_rows], y_val=y[val_rows], params=params,
                          model=scan_model, experiment_name="emorec", experiment_dir=str(work_dir), resume=resume,
                          round_limit=limit, seed=SEED, reduction_metric="val_balanced_accuracy", save_weights=False,
                          n_permutations=limit)  # the progress bar's total (else the whole space: 5.6M)
    atomic_write_text(out, scan.data.to_csv(index=False))
    return scan.status, len(scan.data)


def merge_scans(tables: list[Path], out: Path) -> int:
    """Shards of one scan (run on several machines) as one table; each configuration once."""
    frames = [read_results(path).frame for path in tables]
    merged = pd.concat(frames, ignore_index=True)
    if "_param_hash" in merged:
        merged = merged.drop_duplicates("_param_hash")
    try:
        atomic_write_text(out, merged.to_csv(index=False))
    except OSError as error:
        raise TalosTableError(f"{out} cannot be written ({error.strerror or error}).") from None
    return len(merged)
