"""Talos tables: the search spaces a scan tries, every dialect of results table read into one clean
DataFrame, and what a scan found.

Tables written by Talos 0.x/1.x (the 2019 study's) and by Talos 2.x differ: a leading index
column, the name ``loss`` used twice (the metric and the loss-function parameter), float noise
such as ``0.30000000000000004``, optimizers stored as ``<class 'keras.optimizers.Nadam'>``, empty
columns, ``round_epochs`` in older files and ``start,end,duration`` in newer ones. ``read_results``
hides all of that; unknown columns are kept.
"""

from __future__ import annotations

import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.config import CHANCE, SEARCH_SPACE
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
    from scipy.stats import f_oneway  # deferred: SciPy's statistics load in a second, only for importance

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


# ---------------------------------------------------------------------------------------------
# Search spaces


class SearchSpaceError(ValueError):
    """A search-space file that cannot be used; the message says why."""


def load_space(path: str | Path = SEARCH_SPACE) -> tuple[dict[str, list], dict]:
    """A search space file (TOML): ``[params]`` name = [values...] and optional ``[scan]`` settings."""
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
