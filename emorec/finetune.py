"""emorec's own model, stage by stage: pretrained on FER2013, fine-tuned on aligned CK+ faces, mixed, calibrated.

Stage 1 (``pretrain_fer``) learns in-the-wild faces on FER2013 train; stage 1b (``emorec.wild``)
continues on FER+ votes and LFW's training people. Stage 2 (``finetune``) fine-tunes that network
on CK+: the aligned MTCNN crops of the peak and neutral frames, the CK+48 frames of the same
(training) subjects, and a slice of FER2013 so in-the-wild skill is kept. Cross-validation repeats
stage 2 per fold, so CK+ test subjects are never seen.

Fine-tuning on a few hundred posed lab faces pulls the network away from faces in the wild, so the
shipped weights are a mix of the pretrained and the fine-tuned ones (``mixed``: a weight-space
ensemble, WiSE-FT, Wortsman et al., CVPR 2022), the share chosen over held-out domains
(``mixing_scan``). Predictions average the face and its mirror image; a temperature fitted on
faces no fold trained on makes the probabilities honest (``calibrate``). ``emorec.workflows`` runs
the stages and writes the card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from emorec.calibration import (apply_temperature, calibration_error_among, cross_fitted, expected_calibration_error,
                                fit_temperature)
from emorec.config import (CACHE_DIR, EMOTIONS, FER_SLICE, FINETUNE_BATCH, FINETUNE_EPOCHS, FINETUNE_LEARNING_RATE,
                           LABELS, PRETRAIN_EPOCHS, PRETRAIN_ERASING, PRETRAIN_RESTART_LEARNING_RATE, PROBE_EPOCHS,
                           PROBE_LEARNING_RATE, SEED)
from emorec.crops import cached_model_inputs, main_face_crops
from emorec.cross_dataset import lfw_validation, london, set_classes
from emorec.data import (dataset_summary, ferplus_majority, ferplus_votes_for, image_digests, label_indices,
                         load_dataset)
from emorec.files import atomic_write_text, code_fingerprint, read_digests
from emorec.metrics import accuracy_among, accuracy_per_face
from emorec.models import VARIANTS, build
from emorec.predict import mirror_averaged
from emorec.registry import read_history
from emorec.train import (augmentation, class_weights, compile_model, fer_holdout_split, fit, make_dataset,
                          make_optimizer, predict_probabilities, save_model, set_seed, variant_inputs, without_copies)
from emorec.wild import training_images_path

INPUT_SHAPE = VARIANTS["emorec"].input_shape
MIXING_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the fine-tuned weights (0 = pretrained, 1 = fine-tuned)
DEFAULT_MIXING = 0.5  # WiSE-FT's usual choice, when no cross-validation has chosen one
FINETUNED_WEIGHTS = "finetuned.weights.h5"


@dataclass(frozen=True)
class Recipe:
    """Stage 2's data and settings, as ``python -m emorec evaluate/train --variant emorec`` gives them:
    CK+ (``ckplus``), optionally CK+48 frames, FER2013 train (for its slice and held-out faces) and
    the data root of the cross-dataset sets (``transfer``: FER+ labels and the held-out domains)."""

    ckplus: Path
    ck48: Path | None = None
    fer_train: Path | None = None
    transfer: Path | None = None
    epochs: int = FINETUNE_EPOCHS
    probe_epochs: int = PROBE_EPOCHS
    fer_faces: int = FER_SLICE
    batch_size: int = FINETUNE_BATCH
    learning_rate: float = FINETUNE_LEARNING_RATE
    probe_learning_rate: float = PROBE_LEARNING_RATE

    def settings(self) -> tuple:
        """What a fold's cached predictions depend on besides data (``train.cross_validate``)."""
        return (self.epochs, self.probe_epochs, self.batch_size, self.learning_rate, self.probe_learning_rate,
                training_code())


@dataclass(frozen=True)
class HeldOutDomain:
    """Photos of people and conditions no stage trains on, for the mixing choice: the model inputs
    of their main faces, their labels, whether a face was found (no face = wrong) and the classes
    they are scored over (argmax among them, as the cross-dataset benchmark scores)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    found: np.ndarray
    classes: tuple[str, ...]

    def accuracy(self, probabilities: np.ndarray) -> float:
        return float(np.mean(self.found & (accuracy_per_face(probabilities, self.y, self.classes))))


def held_out_domains(data_root: Path) -> tuple[HeldOutDomain, ...]:
    """LFW expressions' validation people and the London set, faces found and cropped as served."""
    domains = []
    for name, read in (("lfw_validation", lfw_validation), ("london", london)):
        manifest = read(data_root)
        x, found = main_face_crops(manifest, INPUT_SHAPE, VARIANTS["emorec"].margin)
        domains.append(HeldOutDomain(name, x, label_indices(manifest["label"]), found, tuple(set_classes(manifest))))
    return tuple(domains)


@dataclass(frozen=True)
class FineTuneData:
    """What stage 2 adds to a fold's CK+ training images: CK+48 frames (kept only for the fold's
    training subjects) and a fixed slice of FER2013 train; and the faces no stage trains on, on
    which the mixing weight's in-the-wild accuracy is measured: the FER2013 faces stage 1 held out
    and, with ``transfer``, LFW's validation people and the London set. FER2013's labels are FER+'s
    majority votes when the FER+ votes are given (faces without an expression majority left out)."""

    ck48_x: np.ndarray
    ck48_y: np.ndarray
    ck48_subjects: np.ndarray
    fer_x: np.ndarray
    fer_y: np.ndarray
    fer_heldout_x: np.ndarray
    fer_heldout_y: np.ndarray
    fer_labels: str = "FER2013"
    transfer: tuple[HeldOutDomain, ...] = ()


def fer_labels(fer: pd.DataFrame, data_root: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """FER2013 train's label indices and which faces have one: without ``data_root``, FER2013's own
    labels; with it, FER+'s majority vote from its ``ferplus/labels.csv`` (``DatasetError`` when
    that file is missing or labels another FER2013)."""
    if data_root is None:
        return label_indices(fer["label"]), np.ones(len(fer), bool), "FER2013"
    labels = ferplus_majority(ferplus_votes_for(fer, data_root / "ferplus" / "labels.csv"))
    known = labels.notna().to_numpy()
    return np.array([LABELS.index(label) if ok else -1 for label, ok in zip(labels, known)], np.int32), known, \
        "FER+ majority vote"


def load_finetune_data(recipe: Recipe) -> FineTuneData:
    """The CK+48 frames, FER2013 slice and held-out faces of ``recipe`` (see ``FineTuneData``)."""
    ck48_dir, fer_train_dir, transfer = recipe.ck48, recipe.fer_train, recipe.transfer
    empty = np.zeros((0, *INPUT_SHAPE), np.uint8), np.zeros(0, np.int32)
    ck48_x, ck48_y, subjects = *empty, np.zeros(0, str)
    if ck48_dir is not None:
        ck48 = load_dataset(ck48_dir)
        ck48_x = cached_model_inputs(ck48, INPUT_SHAPE, face_crop=False)
        ck48_y, subjects = label_indices(ck48["label"]), ck48["subject"].to_numpy().astype(str)
    fer_x, fer_y, heldout_x, heldout_y, labels_from = *empty, *empty, "FER2013"
    if fer_train_dir is not None:
        fer = load_dataset(fer_train_dir)
        x = cached_model_inputs(fer, INPUT_SHAPE, face_crop=False)
        fit_rows, held_out = fer_holdout_split(label_indices(fer["label"]))  # the split stage 1 made
        held_out = without_copies(held_out, fit_rows, image_digests(fer))
        y, known, labels_from = fer_labels(fer, transfer)
        fit_rows, held_out = fit_rows[known[fit_rows]], held_out[known[held_out]]
        fer_rows = np.random.default_rng(SEED).permutation(fit_rows)[:recipe.fer_faces]
        fer_x, fer_y, heldout_x, heldout_y = x[fer_rows], y[fer_rows], x[held_out], y[held_out]
    domains = held_out_domains(transfer) if transfer is not None else ()
    return FineTuneData(ck48_x, ck48_y, subjects, fer_x, fer_y, heldout_x, heldout_y, labels_from, domains)


def mirror_averaged_predict(model: keras.Model):
    """``model``'s predict function with the test-time augmentation it is served with (the face
    and its mirror image, ``predict.mirror_averaged``)."""

    def predict(images: np.ndarray) -> np.ndarray:
        return mirror_averaged(lambda x: predict_probabilities(model, x), images.astype(np.float32))

    return predict


def mixed(pretrained: keras.Model, finetuned: keras.Model, share: float,
          into: keras.Model | None = None) -> keras.Model:
    """The weight-space ensemble: ``(1 - share) * pretrained + share * fine-tuned``, every weight
    (BatchNorm statistics included), one network as fast as either (written ``into`` a given
    copy of the network, else a new one)."""
    model = into or keras.models.clone_model(finetuned)
    model.set_weights([(1 - share) * p + share * f for p, f in zip(pretrained.get_weights(), finetuned.get_weights())])
    return model


def linear_probe(model: keras.Model, train, epochs: int, run_dir: Path, class_weight: dict,
                 learning_rate: float = PROBE_LEARNING_RATE) -> keras.Model:
    """Train the last layer alone on frozen features (BatchNorm statistics included), then make
    every layer trainable again: the first half of LP-FT (Kumar et al., ICLR 2022), so that
    fine-tuning starts from a head that fits the new data (FER2013 never trained the contempt
    output) and distorts the pretrained features less."""
    for layer in model.layers[:-1]:
        layer.trainable = False
    steps = epochs * int(train.cardinality())
    compile_model(model, "adamw", keras.optimizers.schedules.CosineDecay(learning_rate, steps))
    fit(model, train, None, epochs, run_dir, class_weight, patience=None, verbose=0)
    for layer in model.layers:
        layer.trainable = True
    return model


def finetune(pretrained: Path, x: np.ndarray, y: np.ndarray, subjects: np.ndarray, extra: FineTuneData,
             run_dir: Path, recipe: Recipe) -> keras.Model:
    """Stage 2 on one training set (``subjects`` = its CK+ subjects, which select the CK+48 rows),
    after the recipe's epochs of ``linear_probe``, if any."""
    set_seed()
    keep = np.isin(extra.ck48_subjects, subjects)
    x_all = np.concatenate([x, extra.ck48_x[keep], extra.fer_x])
    y_all = np.concatenate([y, extra.ck48_y[keep], extra.fer_y])
    model = keras.models.load_model(pretrained, compile=False)
    train = make_dataset(x_all, y_all, recipe.batch_size, augmentation(), shuffle=True)
    weights = class_weights(y_all, 0.5)
    if recipe.probe_epochs:
        linear_probe(model, train, recipe.probe_epochs, run_dir / "probe", weights, recipe.probe_learning_rate)
    steps = recipe.epochs * int(train.cardinality())
    compile_model(model, "adamw", keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps))
    fit(model, train, None, recipe.epochs, run_dir, weights, patience=None, verbose=0)
    return model


def training_code() -> str:
    """``code_fingerprint`` of what fine-tunes and predicts in a fold of emorec's cross-validation."""
    return code_fingerprint(finetune, linear_probe, emorec_trainer, mirror_averaged_predict, mirror_averaged, fit,
                            augmentation, make_dataset, class_weights, compile_model, make_optimizer,
                            predict_probabilities)


def emorec_trainer(pretrained: Path, extra: FineTuneData, recipe: Recipe):
    """A ``train.Trainer``: fine-tune on the fold, keep the weights (for the mixing scan),
    predict with the mirror image averaged in."""

    def train_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, run_dir: Path):
        model = finetune(pretrained, x, y, groups, extra, run_dir, recipe)
        network = keras.models.load_model(pretrained, compile=False)  # a compiled model's file also holds AdamW's state
        network.set_weights(model.get_weights())
        network.save_weights(run_dir / FINETUNED_WEIGHTS)
        return mirror_averaged_predict(model)

    return train_fold


DOMAINS = ("posed", "fer2013_heldout", "lfw_validation", "london")  # what a share is chosen on, each counting alike


def domain_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per share, the accuracy of each domain measured (NaN columns dropped): posed faces (mean of
    CK+ 8-class and 7-emotion out-of-fold accuracy), FER2013's held-out faces, LFW's validation
    people, the London set."""
    scores = table.assign(posed=table[["ckplus_8", "ckplus_7"]].mean(axis=1)).reindex(columns=list(DOMAINS))
    return scores.dropna(axis=1, how="all")


def mixing_score(table: pd.DataFrame) -> pd.Series:
    """What a share is chosen by: the mean over the domains measured (``domain_scores``), every
    domain counting alike; CK+ alone when nothing else was measured."""
    return domain_scores(table).mean(axis=1)


def choose_share(table: pd.DataFrame, score: pd.Series | None = None) -> float:
    """The share of ``table`` with the best ``score`` (default ``mixing_score``; ties: more fine-tuning)."""
    score = (mixing_score(table) if score is None else score).round(6)
    return float(table.loc[score == score.max(), "share"].max())


def leave_one_domain_out(table: pd.DataFrame) -> dict:
    """For each domain, the share the other domains choose and this domain's accuracy there: how
    the choice does on a kind of photo it was not made on (held-back test sets are such photos)."""
    scores = domain_scores(table)
    result = {}
    for domain in scores.columns if len(scores.columns) > 1 else []:
        share = choose_share(table, scores.drop(columns=domain).mean(axis=1))
        result[domain] = {"share": share,
                          "accuracy": round(float(scores.loc[table["share"] == share, domain].iloc[0]), 4),
                          "best": round(float(scores[domain].max()), 4)}
    return result


@dataclass(frozen=True)
class MixingScan:
    """Every share of ``MIXING_GRID`` applied to every fold's network: the fold's CK+ test
    probabilities and the network's accuracy (and probabilities) on FER2013's held-out faces."""

    probabilities: dict[float, list[np.ndarray]]  # share -> one (test images, classes) array per fold
    labels: list[np.ndarray]  # per fold
    fer_accuracy: np.ndarray  # (shares, folds); NaN without FER2013
    fer_probabilities: dict[float, list[np.ndarray]] | None = None  # share -> one (held-out faces, classes) per fold
    domain_accuracy: dict[str, np.ndarray] | None = None  # held-out domain -> (shares, folds)

    def fer_heldout(self, shares: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """FER2013's held-out faces dealt out to the folds (face i to fold i mod K), each as its
        fold's network at its share sees it: (probabilities, fold of each row), every face once."""
        faces = len(self.fer_probabilities[shares[0]][0])
        fold_of_face = np.arange(faces) % len(shares)
        probabilities = np.empty_like(self.fer_probabilities[shares[0]][0])
        for k, share in enumerate(shares):
            probabilities[fold_of_face == k] = self.fer_probabilities[share][k][fold_of_face == k]
        return probabilities, fold_of_face

    def table(self, folds: list[int] | None = None) -> pd.DataFrame:
        """Per share: CK+ accuracy pooled over ``folds`` (default all), 8 classes and 7 emotions,
        FER2013 held-out accuracy averaged over their networks, and the mixing score."""
        folds = list(range(len(self.labels))) if folds is None else folds
        y = np.concatenate([self.labels[k] for k in folds])
        rows = []
        for i, share in enumerate(MIXING_GRID):
            p = np.concatenate([self.probabilities[share][k] for k in folds])
            rows.append({"share": share, "ckplus_8": accuracy_among(p, y), "ckplus_7": accuracy_among(p, y, EMOTIONS),
                         "fer2013_heldout": float(self.fer_accuracy[i, folds].mean()),
                         **{name: float(a[i, folds].mean()) for name, a in (self.domain_accuracy or {}).items()}})
        table = pd.DataFrame(rows)
        return table.assign(score=mixing_score(table)).round(4)

    def nested(self) -> tuple[list[float], np.ndarray]:
        """Each fold's share chosen on the other folds only, and the out-of-fold probabilities
        under those shares: the cross-validated accuracy does not profit from the choice."""
        folds = range(len(self.labels))
        shares = [choose_share(self.table([j for j in folds if j != k])) for k in folds]
        return shares, np.concatenate([self.probabilities[share][k] for k, share in zip(folds, shares)])


def mixing_scan(pretrained: Path, folds: list[tuple[Path, np.ndarray]], x: np.ndarray, y: np.ndarray,
                extra: FineTuneData, progress=iter) -> MixingScan:
    """Mix every fold's fine-tuned weights (``folds``: the fold's run folder and its CK+ test
    rows) with the pretrained ones at every share of ``MIXING_GRID``, and measure."""
    base = keras.models.load_model(pretrained, compile=False)
    finetuned, model = keras.models.clone_model(base), keras.models.clone_model(base)
    fer_classes = tuple(LABELS[i] for i in np.unique(extra.fer_heldout_y))  # argmax over the labels present
    probabilities = {share: [] for share in MIXING_GRID}
    fer_probabilities = {share: [] for share in MIXING_GRID}
    fer_accuracy = np.full((len(MIXING_GRID), len(folds)), np.nan)
    domain_accuracy = {d.name: np.full((len(MIXING_GRID), len(folds)), np.nan) for d in extra.transfer}
    for k, (fold_dir, rows) in enumerate(progress(folds)):
        finetuned.load_weights(fold_dir / FINETUNED_WEIGHTS)
        for i, share in enumerate(MIXING_GRID):
            predict = mirror_averaged_predict(mixed(base, finetuned, share, into=model))
            probabilities[share].append(predict(x[rows]))
            for domain in extra.transfer:
                domain_accuracy[domain.name][i, k] = domain.accuracy(predict(domain.x))
            if fer_classes:
                if share > 0 or k == 0:  # share 0 is the pretrained network in every fold
                    fer_probabilities[share].append(predict(extra.fer_heldout_x))
                    fer_accuracy[i, k] = accuracy_among(fer_probabilities[share][-1], extra.fer_heldout_y, fer_classes)
                else:
                    fer_probabilities[share].append(fer_probabilities[share][0])
    fer_accuracy[0, :] = fer_accuracy[0, 0]
    return MixingScan(probabilities, [y[rows] for _, rows in folds], fer_accuracy,
                      fer_probabilities if fer_classes else None, domain_accuracy)


def calibrate(scan: MixingScan, fold_shares: list[float], probabilities: np.ndarray, labels: np.ndarray,
              fold_of: np.ndarray, fer_labels: np.ndarray) -> dict:
    """The temperature the app serves, fitted on what the folds' networks (at their shares) said
    of faces they never trained on: the CK+ test subjects and FER2013's held-out faces in the wild
    (each face to one fold), each domain weighing half: posed CK+ alone asks for sharper
    probabilities than photos from the wild bear. Calibration error before and after, cross-fitted
    (each fold scaled by a temperature fitted on the other folds' faces of both domains); on FER2013
    over its seven classes, as PublicTest is scored."""
    ckplus = {"ece_before": expected_calibration_error(probabilities, labels)}
    if scan.fer_probabilities is None:  # CK+ only
        temperature = fit_temperature(probabilities, labels)
        ckplus["ece_after"] = expected_calibration_error(cross_fitted(probabilities, labels, fold_of), labels)
        return {"temperature": temperature, "fitted_on": "out-of-fold CK+ predictions (subject-kfold)", **ckplus,
                "ece_after_measured": "each fold scaled by a temperature fitted on the other folds",
                "ece_after_in_sample": expected_calibration_error(apply_temperature(probabilities, temperature),
                                                                  labels)}
    fer, fer_fold = scan.fer_heldout(fold_shares)
    both, both_y = np.concatenate([probabilities, fer]), np.concatenate([labels, fer_labels])
    domain = np.repeat(["ckplus", "fer2013"], [len(labels), len(fer_labels)])
    temperature = fit_temperature(both, both_y, domain)
    scaled = cross_fitted(both, both_y, np.concatenate([fold_of, fer_fold]), domain)
    present = np.unique(fer_labels)  # FER2013 has no contempt: its error over its own classes

    def fer_error(served: np.ndarray) -> float:
        return calibration_error_among(served, np.searchsorted(present, fer_labels), list(present))

    return {"temperature": temperature,
            "fitted_on": f"out-of-fold CK+ predictions (subject-kfold) and FER2013's {len(fer_labels):,} held-out "
                         "faces (each seen by one fold's network), each domain weighing half",
            **ckplus, "ece_after": expected_calibration_error(scaled[domain == "ckplus"], labels),
            "ece_after_measured": "each fold scaled by a temperature fitted on the other folds",
            "fer2013_heldout": {"ece_before": fer_error(fer), "ece_after": fer_error(scaled[domain == "fer2013"])}}


def ckplus_inputs(ckplus_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    manifest = load_dataset(ckplus_dir)
    return manifest, variant_inputs("emorec", manifest)


# ---------------------------------------------------------------------------------------------
# Where the stages keep their networks

def stage1_path(models_dir: Path) -> Path:
    """Stage 1's network (FER2013 train)."""
    return models_dir / "emorec" / "pretrain" / "pretrained.keras"


def wild_path(models_dir: Path) -> Path:
    """Stage 1b's network (FER+ votes and LFW people, from stage 1's: ``emorec.wild``)."""
    return models_dir / "emorec" / "pretrain" / "wild.keras"


def pretrained_path(models_dir: Path) -> Path:
    """The network stage 2 starts from: stage 1b's when it has been made, else stage 1's."""
    return wild_path(models_dir) if wild_path(models_dir).is_file() else stage1_path(models_dir)


def pretrained_epochs(models_dir: Path) -> int | None:
    """How many epochs stage 1 ran (its history beside its network)."""
    history = read_history(stage1_path(models_dir).parent.relative_to(models_dir).as_posix(), models_dir)
    return len(history) if history else None


def pretrained_faces(models_dir: Path) -> int:
    """How many faces stage 1 read (its data statistics beside its network)."""
    return json.loads((stage1_path(models_dir).parent / "data_stats.json").read_text())["images"]


def emorec_training_images(ckplus: pd.DataFrame, recipe: Recipe, models_dir: Path) -> list[str]:
    """The content digests of every image emorec trained on, in any stage: CK+ and CK+48 (stage 2),
    FER2013 train without its held-out tenth (stages 1 and 2's slice) and, when stage 1b made the
    network, what stage 1b recorded (its FER+ faces and LFW's training people)."""
    digests = image_digests(ckplus)
    if recipe.ck48 is not None:
        digests += image_digests(load_dataset(recipe.ck48))
    if recipe.fer_train is not None:
        fer = load_dataset(recipe.fer_train)
        digests += image_digests(fer.iloc[fer_holdout_split(label_indices(fer["label"]))[0]])
    if pretrained_path(models_dir) == wild_path(models_dir):  # stage 1b recorded its own
        digests += read_digests(training_images_path(wild_path(models_dir))) or []
    return digests


def stage_seconds(history: Path) -> int | None:
    """A stage's training time in seconds, summed over the epochs of its history."""
    try:
        return round(sum(row["seconds"] for row in json.loads(history.read_text())))
    except (OSError, ValueError, KeyError):
        return None


def pretraining(models_dir: Path) -> dict:
    """What the network stage 2 starts from learned, for the card: stage 1 and, when made, stage 1b
    (its data, epochs, wall time and validation accuracy, from ``wild-stats.json``)."""
    stages = {"stage_1": f"{pretrained_epochs(models_dir)} epochs on FER2013 train ({pretrained_faces(models_dir):,} "
                         "faces; models/emorec/pretrain/pretrained.keras)"}
    stats = wild_path(models_dir).with_name("wild-stats.json")
    if pretrained_path(models_dir) == wild_path(models_dir) and stats.is_file():
        stages["stage_1b"] = json.loads(stats.read_text())
    return stages


def finetune_runs(models_dir: Path, extra: FineTuneData, recipe: Recipe) -> Path:
    """Where stage 2 trains: one folder per pretrained network, epoch count and extra data, so
    folds cached by another recipe are never mixed into a cross-validation."""
    digest = hashlib.sha256(pretrained_path(models_dir).read_bytes())
    for part in (extra.ck48_x, extra.ck48_y, extra.fer_x, extra.fer_y):
        digest.update(np.ascontiguousarray(part).tobytes())
    probe = f"-probe{recipe.probe_epochs}" if recipe.probe_epochs else ""
    return CACHE_DIR / "runs" / "emorec" / f"finetune-{digest.hexdigest()[:12]}-{recipe.epochs}ep{probe}"


def forget_folds_without_weights(run_dir: Path) -> None:
    """A fold whose test predictions were kept but whose fine-tuned weights were not (an older
    recipe, a cleaned folder) is trained again: the mixing scan needs its weights."""
    for done in run_dir.glob("subject-kfold-fold*/test_probabilities.npz"):
        if not (done.parent / FINETUNED_WEIGHTS).exists():
            done.unlink()


# ---------------------------------------------------------------------------------------------
# Stage 1


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
