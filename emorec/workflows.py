"""What the CLI and the Tuning page run: evaluate, train and ship a model, and write its card.

Each workflow puts the building blocks together (``study`` and ``finetune`` train, ``metrics`` and
``cross_dataset`` score, ``predict`` serves) and is the one place that writes a model's card and
files (``registry``), so a card always describes the model file beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from emorec import finetune as stage2
from emorec import registry
from emorec.calibration import apply_temperature, calibration_error_among
from emorec.cards import ModelCard
from emorec.config import CACHE_DIR, FOLDS, LABELS, MODELS_DIR, NOT_SURE_BELOW
from emorec.crops import cached_model_inputs
from emorec.cross_dataset import SETS, benchmark
from emorec.data import DatasetError, dataset_summary, groups_of, image_digests, label_indices, load_dataset
from emorec.distributed import run_here
from emorec.files import atomic_write_text, fingerprint
from emorec.metrics import predictions_frame, scores, summarize
from emorec.models import VARIANTS, tuned_cnn
from emorec.predict import EmotionRecognizer, served_latency
from emorec.study import study_trainer, train_study_variant, training_code
from emorec.train import (Runner, augmentation, best_epoch, class_weights, compile_model, cross_validate, fit, folds,
                          inner_validation_split, make_dataset, make_optimizer, predict_probabilities, save_model,
                          set_seed, variant_inputs)

Progress = Callable[[Iterable], Iterable]


def register(name: str, card: dict, models_dir: Path) -> ModelCard:
    """The card of a model just saved in ``models/<name>``: ``card``'s fields, its file size and its
    latency as served, measured now (so a card never carries the speed of the model it replaced)."""
    size = (models_dir / name / registry.MODEL_FILE).stat().st_size
    registry.update_card(name, {**card, "file_size_bytes": size}, models_dir)
    record_latency(name, models_dir)
    return registry.read_card(name, models_dir)


def record_latency(name: str, models_dir: Path = MODELS_DIR) -> dict:
    """Measure a shipped model's latency per face as served, on this machine, into its card; returns
    the fields written (``predict.served_latency``)."""
    measured = served_latency(name, models_dir)
    registry.update_card(name, measured, models_dir)
    return measured


# ---------------------------------------------------------------------------------------------
# Evaluate


def evaluate_variant(name: str, data_dir: Path, protocol: str, command: str, n_splits: int | None = None,
                     models_dir: Path = MODELS_DIR, progress: Progress = iter, epochs: int | None = None,
                     runner: Runner = run_here) -> dict:
    """Cross-validate a study variant on a dataset (at most ``epochs`` per fold, else its own; the folds
    run as ``runner``'s jobs), keep every test prediction beside the model (``cv-<protocol>.csv``) and
    record the summary in its card."""
    n_splits = n_splits or FOLDS[protocol]
    manifest = load_dataset(data_dir)
    x = variant_inputs(name, manifest)
    run_dir = CACHE_DIR / "runs" / (f"{name}-{epochs}ep" if epochs else name)  # other epochs: other folds
    predictions = cross_validate(x, manifest, study_trainer(name, epochs), protocol, run_dir, n_splits, progress,
                                 settings=(VARIANTS[name], training_code(name), *([epochs] if epochs else [])),
                                 runner=runner)
    atomic_write_text(models_dir / name / f"cv-{protocol}.csv", predictions.to_csv(index=False))
    summary = summarize(predictions, protocol)
    summary["best_epochs"] = [best_epoch(run_dir / f"{protocol}-fold{fold:02d}") for fold in range(n_splits)]
    summary["data"] = str(data_dir)
    summary["command"] = command
    registry.update_card(name, {"evaluation": {protocol: summary}}, models_dir)
    return summary


def evaluate_holdout(name: str, data_dir: Path, command: str, models_dir: Path = MODELS_DIR) -> dict:
    """A shipped model on a dataset of pre-cropped faces (FER2013 PublicTest) without the photos it
    trained on (PublicTest repeats some FER2013 train faces; ``registry.training_images``): accuracy
    and macro-F1 over the dataset's own classes (FER2013 has no contempt), and whether its
    temperature (fitted on other data) makes these probabilities honest too (calibration error with
    and without it, over the same classes)."""
    recognizer = EmotionRecognizer.load(name, models_dir)
    manifest = load_dataset(data_dir)
    trained_on = registry.training_images(name, models_dir) or frozenset()
    seen = pd.Series(image_digests(manifest)).isin(trained_on).to_numpy()
    manifest = manifest[~seen].reset_index(drop=True)
    x = cached_model_inputs(manifest, recognizer.input_shape, face_crop=False)
    probabilities = np.concatenate([recognizer.classify(x[i:i + 512]) for i in range(0, len(x), 512)])
    classes = tuple(label for label in recognizer.classes if label in set(manifest["label"]))
    result = scores(predictions_frame(probabilities, manifest), classes)
    present = [recognizer.classes.index(c) for c in classes]
    known = manifest["label"].isin(classes).to_numpy()  # a class the model lacks cannot be scored
    labels = np.array([classes.index(label) for label in manifest["label"][known]])

    def calibration_error(served: np.ndarray) -> float:
        return calibration_error_among(served[known], labels, present)

    summary = {"description": f"{data_dir}: pre-cropped faces never trained on ({int(seen.sum())} copies of "
                              "training photos left out), argmax over the dataset's classes",
               "left_out_trained_on": int(seen.sum()),
               "accuracy": result["accuracy"]["pooled"], "macro_f1": result["macro_f1"]["pooled"],
               "ece": calibration_error(probabilities),
               "ece_without_temperature": calibration_error(apply_temperature(probabilities,
                                                                              1 / recognizer.temperature)),
               "per_class": result["per_class"], "confusion_matrix": result["confusion_matrix"],
               "classes": result["classes"], "images": result["images"], "command": command}
    registry.update_card(name, {"evaluation": {"fer2013-publictest": summary}}, models_dir)
    return summary


def evaluate_cross_dataset(name: str, data_root: Path, command: str, models_dir: Path = MODELS_DIR,
                           progress: Progress = iter) -> dict:
    """``cross_dataset.benchmark`` of a shipped model, recorded in its card (``cross_dataset``)."""
    result = benchmark(EmotionRecognizer.load(name, models_dir), Path(data_root), progress=progress,
                       trained_on=registry.training_images(name, models_dir))
    if not result["sets"]:
        locations = ", ".join(dict.fromkeys(s.location for s in SETS))
        raise DatasetError(f"{data_root} holds none of the benchmark's sets ({locations}).")
    registry.update_card(name, {"cross_dataset": {**result["sets"], "command": command}}, models_dir)
    return result


# ---------------------------------------------------------------------------------------------
# Train the study's variants


def train_final(name: str, data_dir: Path, command: str, epochs: int | None = None,
                models_dir: Path = MODELS_DIR, progress: Progress = iter) -> ModelCard:
    """Train a study variant on the whole dataset and ship it: ``models/<name>/model.keras``,
    its history and its card. Without ``epochs``, the median best epoch of its subject-grouped
    cross-validation (when run) or the variant's default."""
    variant = VARIANTS[name]
    manifest = load_dataset(data_dir)
    x = variant_inputs(name, manifest, progress)
    y = label_indices(manifest["label"])
    if epochs is None:
        best = registry.read_cards([name], models_dir).get(name, ModelCard(name)).result("subject-kfold")
        epochs = int(np.median(best["best_epochs"])) if best.get("best_epochs") else variant.epochs
    run_dir = CACHE_DIR / "runs" / name / "final"
    model = train_study_variant(name, x, y, None, run_dir, epochs)
    out = models_dir / name
    save_model(model, out / registry.MODEL_FILE, quantize=variant.quantize_dense)
    registry.write_training_images(name, image_digests(manifest), models_dir)
    atomic_write_text(out / "history.json", (run_dir / "history.json").read_text())
    return register(name, {
        "evaluation": {"fer2013-publictest": None},  # measured on the old model: run again on this one
        "cross_dataset": None,
        "quantization": "Dense kernels int8 (keras quantize), convolutions float32" if variant.quantize_dense else None,
        "description": variant.description,
        "variant": name,
        "classes": list(LABELS),
        "input_shape": list(variant.input_shape),
        "face_crop": variant.face_crop,
        "parameters": int(model.count_params()),
        "data": {**dataset_summary(manifest), "folder": str(data_dir)},
        "training": {"epochs": epochs, "batch_size": variant.batch_size, "optimizer": variant.optimizer,
                     "learning_rate": variant.learning_rate,
                     "augmentation": [type(layer).__name__ for layer in augmentation().layers]},
        "commands": {"train": command},
        "study_reported": {"accuracy": variant.study_reported_accuracy,
                           "protocol": "image-level split (75/25 by image), as reported by the 2019 study"}
        if variant.study_reported_accuracy is not None else None,
    }, models_dir)


def train_configuration(params: dict, data_dir: Path, name: str, face_crop: bool, command: str,
                        models_dir: Path = MODELS_DIR,
                        on_epoch: Callable[[int, int, dict], None] | None = None) -> ModelCard:
    """Train one configuration of the study's tuned family (a row of a Talos table) on a dataset,
    validated on a fifth of the subjects held out, and register it in ``models/<name>``. Its run
    folder is keyed by the data and the configuration: an interrupted run of the same resumes,
    another configuration under the same name starts afresh."""
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
    return register(name, {
        "description": f"A configuration of the study's tuned family, trained from the Tuning page "
                       f"({'MTCNN face crops' if face_crop else 'whole frames'})",
        "variant": variant.name,
        "classes": list(LABELS),
        "input_shape": list(variant.input_shape),
        "face_crop": face_crop,
        "parameters": int(model.count_params()),
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


# ---------------------------------------------------------------------------------------------
# emorec's own model: cross-validate stage 2, ship it

MIXING_CRITERION = ("best mean over the domains measured, each counting alike: posed faces (CK+ 8-class and 7-emotion "
                    "out-of-fold accuracy), FER2013's held-out faces, LFW's validation people, the London set")
CV_RESULTS = "cv-results.json"  # in a recipe's run folder: what its cross-validation adds to the card
CV_PREDICTIONS = "cv-subject-kfold.csv"


def shipped_recipe(models_dir: Path) -> tuple[str | None, float | None]:
    """The shipped model's recipe (its run folder's name) and mixing share, as its card's
    cross-validation holds them (``ship_emorec`` writes only the cross-validation of the recipe
    it trained); (None, None) without one."""
    card = registry.read_cards(["emorec"], models_dir).get("emorec")
    if card is None:
        return None, None
    return card.result("subject-kfold").get("weight_mixing", {}).get("runs"), card.weight_mixing


def publish_cross_validation(run_dir: Path, models_dir: Path) -> None:
    """Copy a recipe's cross-validation (numbers, temperature, out-of-fold predictions) into the
    shipped model's card and folder."""
    results = json.loads((run_dir / CV_RESULTS).read_text())
    atomic_write_text(models_dir / "emorec" / CV_PREDICTIONS, (run_dir / CV_PREDICTIONS).read_text())
    registry.update_card("emorec", {"calibration": None}, models_dir)  # replaced whole: no key of an older fit stays
    registry.update_card("emorec", results, models_dir)


def cross_validate_emorec(recipe: stage2.Recipe, command: str, models_dir: Path = MODELS_DIR,
                          n_splits: int | None = None, progress: Progress = iter,
                          scan_progress: Progress = iter, runner: Runner = run_here) -> dict:
    """Subject-grouped cross-validation of stage 2, then the mixing scan on the folds' networks.
    Each fold is scored at the share the other folds chose (nested, so the number is honest);
    the share for the shipped model is chosen on all folds; a temperature fitted on the
    out-of-fold predictions calibrates them. The results stay in the recipe's run folder, and
    reach the card only when they describe the shipped model (same recipe, same share): a recipe
    being tried never changes what the app serves; ``ship_emorec`` publishes its own."""
    manifest, x = stage2.ckplus_inputs(recipe.ckplus)
    extra = stage2.load_finetune_data(recipe)
    pretrained = stage2.pretrained_path(models_dir)
    run_dir = stage2.finetune_runs(models_dir, extra, recipe)
    stage2.forget_folds_without_weights(run_dir)
    predictions = cross_validate(x, manifest, stage2.emorec_trainer(pretrained, extra, recipe), "subject-kfold",
                                 run_dir, n_splits, progress, recipe.settings(), runner)
    fold_runs = [(run_dir / f"subject-kfold-fold{fold:02d}", test)
                 for fold, (_, test) in enumerate(folds(manifest, "subject-kfold", n_splits))]
    scan = stage2.mixing_scan(pretrained, fold_runs, x, label_indices(manifest["label"]), extra, scan_progress)
    table, share = scan.table(), stage2.choose_share(scan.table())
    fold_shares, predictions[list(LABELS)] = scan.nested()  # rows of both in fold order
    atomic_write_text(run_dir / CV_PREDICTIONS, predictions.to_csv(index=False))
    probabilities, labels = predictions[list(LABELS)].to_numpy(), label_indices(predictions["label"])
    calibration = stage2.calibrate(scan, fold_shares, probabilities, labels, predictions["fold"].to_numpy(),
                                   extra.fer_heldout_y)
    mixing = {"share": share, "fold_shares": fold_shares, "criterion": MIXING_CRITERION,
              "fer2013_heldout_faces": int(len(extra.fer_heldout_y)), "fer2013_labels": extra.fer_labels,
              "held_out_domains": {d.name: int(len(d.y)) for d in extra.transfer},
              "leave_one_domain_out": stage2.leave_one_domain_out(table), "runs": run_dir.name,
              "scan": table.astype(object).where(table.notna(), None).to_dict("records")}
    summary = {**summarize(predictions, "subject-kfold"), "data": str(recipe.ckplus), "command": command,
               "extra_training_data": {"ck48": str(recipe.ck48) if recipe.ck48 else None,
                                       "fer2013_slice": int(len(extra.fer_y))},
               "weight_mixing": mixing}
    results = {"evaluation": {"subject-kfold": summary}, "calibration": calibration,
               "temperature": calibration["temperature"], "finetune_epochs": recipe.epochs,
               "probe_epochs": recipe.probe_epochs}
    atomic_write_text(run_dir / CV_RESULTS, json.dumps(results, indent=1) + "\n")
    shipped = shipped_recipe(models_dir) == (run_dir.name, share)
    if shipped:
        publish_cross_validation(run_dir, models_dir)
    return {**summary, "published": shipped, "run_dir": str(run_dir)}


def ship_emorec(recipe: stage2.Recipe, command: str, models_dir: Path = MODELS_DIR) -> ModelCard:
    """Stage 2 on all of CK+, mixed with the pretrained weights at the share this recipe's
    cross-validation chose, saved as ``models/emorec/model.keras``; the card gets that
    cross-validation (numbers, temperature) or, without one, says so and serves T = 1."""
    manifest, x = stage2.ckplus_inputs(recipe.ckplus)
    extra = stage2.load_finetune_data(recipe)
    pretrained = stage2.pretrained_path(models_dir)
    runs = stage2.finetune_runs(models_dir, extra, recipe)
    finetuned = stage2.finetune(pretrained, x, label_indices(manifest["label"]),
                                manifest["subject"].to_numpy().astype(str), extra, runs / "final", recipe)
    cross_validated = (runs / CV_RESULTS).exists()
    if cross_validated:
        share = json.loads((runs / CV_RESULTS).read_text())["evaluation"]["subject-kfold"]["weight_mixing"]["share"]
        source = "chosen by the subject-grouped cross-validation"
    else:
        share, source = stage2.DEFAULT_MIXING, "WiSE-FT's default: no cross-validation of this recipe has chosen one"
    model = stage2.mixed(keras.models.load_model(pretrained, compile=False), finetuned, share)
    out = models_dir / "emorec"
    save_model(model, out / registry.MODEL_FILE)
    registry.write_training_images("emorec", stage2.emorec_training_images(manifest, recipe, models_dir), models_dir)
    atomic_write_text(out / "history.json", (runs / "final" / "history.json").read_text())
    # The old model's numbers go (PublicTest is measured again on the new one); this recipe's
    # cross-validation comes in, else the card says it has none and serves uncalibrated (T = 1).
    (out / CV_PREDICTIONS).unlink(missing_ok=True)
    registry.update_card("emorec", {"evaluation": {"subject-kfold": None, "fer2013-publictest": None},
                                    "cross_dataset": None, "calibration": None, "temperature": 1.0}, models_dir)
    if cross_validated:
        publish_cross_validation(runs, models_dir)
    variant = VARIANTS["emorec"]
    pretraining = stage2.pretraining(models_dir)
    return register("emorec", {
        "description": variant.description,
        "variant": "emorec",
        "classes": list(LABELS),
        "input_shape": list(variant.input_shape),
        "face_crop": True,
        "margin": variant.margin,
        "mirror_averaged": True,
        "threshold": NOT_SURE_BELOW,
        "parameters": int(model.count_params()),
        "data": {**dataset_summary(manifest), "folder": str(recipe.ckplus),
                 "extra": {"ck48_frames": int(len(extra.ck48_y)), "fer2013_slice": int(len(extra.fer_y)),
                           "fer2013_labels": extra.fer_labels,
                           "pretrained_on": f"FER2013 train ({stage2.pretrained_faces(models_dir):,} faces)"
                                            + (", then FER+ votes and LFW's training people (stage 1b)"
                                               if "stage_1b" in pretraining else "")}},
        "training": {"finetune_epochs": recipe.epochs, "probe_epochs": recipe.probe_epochs, "optimizer": "adamw",
                     "augmentation": [type(layer).__name__ for layer in augmentation().layers],
                     "weight_mixing": f"{share:g} x fine-tuned + {1 - share:g} x pretrained weights "
                                      f"(WiSE-FT), {source}",
                     "pretraining": pretraining,
                     "wall_seconds": {"stage_1": stage2.stage_seconds(stage2.stage1_path(models_dir)
                                                                      .with_name("history.json")),
                                      "stage_2_final": stage2.stage_seconds(runs / "final" / "history.json")}},
        "weight_mixing": share,
        "commands": {"train": command},
    }, models_dir)
