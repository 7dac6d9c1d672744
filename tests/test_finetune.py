"""emorec's recipe (``emorec.finetune``) on tiny synthetic data, and end to end through the workflows:
pretrain, cross-validate with calibration, ship, and test on a held-out set of pre-cropped faces."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import emorec.config
from emorec import cards, finetune, registry, workflows
from emorec.calibration import apply_temperature, expected_calibration_error, fit_temperature
from emorec.config import LABELS
from emorec.data import label_indices
from emorec.finetune import Recipe, pretrain_fer
from emorec.metrics import accuracy_among
from emorec.predict import EmotionRecognizer
from emorec.train import folds
from tests.conftest import calibrated_probabilities, write_image


def test_temperature_fitting_recovers_overconfidence():
    calibrated, labels = calibrated_probabilities(2000, seed=0)
    overconfident = apply_temperature(calibrated, 1 / 3)  # three times too sharp
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.15)
    assert expected_calibration_error(apply_temperature(overconfident, 3.0), labels) < \
        expected_calibration_error(overconfident, labels)


def test_weight_mixing_spans_pretrained_to_finetuned():
    from emorec.models import emorec_cnn

    pretrained, finetuned = emorec_cnn(widths=(8,)), emorec_cnn(widths=(8,))
    for share, expected in ((0.0, pretrained), (1.0, finetuned)):
        for got, want in zip(finetune.mixed(pretrained, finetuned, share).get_weights(), expected.get_weights()):
            assert np.allclose(got, want)
    halfway = finetune.mixed(pretrained, finetuned, 0.5).get_weights()
    assert all(np.allclose(h, (p + f) / 2)
               for h, p, f in zip(halfway, pretrained.get_weights(), finetuned.get_weights()))


def test_mixing_share_counts_posed_and_wild_faces_alike():
    scan = pd.DataFrame({"share": finetune.MIXING_GRID, "ckplus_8": [.80, .90, .92, .93, .93],
                         "ckplus_7": [.60, .85, .90, .92, .92], "fer2013_heldout": [.66, .66, .65, .60, .57]})
    assert finetune.choose_share(scan) == 0.5  # (posed + wild) / 2: .68, .7675, .78, .7625, .7475
    assert finetune.choose_share(scan.assign(fer2013_heldout=np.nan)) == 1.0  # CK+ only: ties go to more fine-tuning
    assert finetune.choose_share(scan.assign(ckplus_8=.9, ckplus_7=.9, fer2013_heldout=.6)) == 1.0


def test_mixing_share_counts_every_held_out_domain_alike_and_each_is_left_out_once():
    scan = pd.DataFrame({"share": finetune.MIXING_GRID, "ckplus_8": [.60, .85, .90, .93, .94],
                         "ckplus_7": [.60, .85, .90, .93, .94], "fer2013_heldout": [.75, .75, .74, .70, .65],
                         "lfw_validation": [.60, .63, .60, .55, .50], "london": [.80, .90, .92, .90, .85]})
    assert finetune.choose_share(scan) == 0.5  # means .6875 .7825 .79 .77 .735
    held_out = finetune.leave_one_domain_out(scan)
    assert set(held_out) == {"posed", "fer2013_heldout", "lfw_validation", "london"}
    # the wild alone prefers less fine-tuning
    assert held_out["posed"] == {"share": 0.25, "accuracy": 0.85, "best": 0.94}
    assert held_out["london"]["share"] == 0.5 and held_out["london"]["accuracy"] == 0.92
    assert finetune.leave_one_domain_out(scan[["share", "ckplus_8", "ckplus_7"]].assign(fer2013_heldout=np.nan)) == {}


def test_held_out_domain_counts_photos_without_a_face_as_wrong():
    probabilities = np.eye(8)[[0, 5, 5, 1]]
    domain = finetune.HeldOutDomain("london", np.zeros((4, 48, 48, 1)), np.array([0, 5, 5, 0]),
                                  np.array([True, True, False, True]), ("neutral", "happiness"))
    # The third is right but had no face: wrong. The fourth says anger, which is not a choice: among neutral and
    # happiness (both 0) the argmax takes neutral, which is right.
    assert list(finetune.accuracy_per_face(probabilities, domain.y, domain.classes)) == [True, True, True, True]
    assert domain.accuracy(probabilities) == 0.75


def test_nested_mixing_scores_each_fold_at_the_share_the_other_folds_chose():
    happy, anger = np.eye(8)[5], np.eye(8)[1]
    right = {0: {1.0}, 1: {0.25}, 2: {0.25}}  # which shares get each fold's two faces right
    probabilities = {share: [np.stack([happy if share in right[k] else anger] * 2) for k in range(3)]
                     for share in finetune.MIXING_GRID}
    scan = finetune.MixingScan(probabilities, [np.array([5, 5])] * 3, np.full((5, 3), np.nan))
    assert finetune.choose_share(scan.table()) == 0.25  # on all folds: right on two of three
    shares, nested = scan.nested()
    assert shares == [0.25, 1.0, 1.0]  # fold 0 by folds 1-2; folds 1 and 2: a tie, more fine-tuning
    assert accuracy_among(nested, np.array([5] * 6)) == 0.0  # the choice does not flatter the score


def test_fer_heldout_faces_are_dealt_to_the_folds_once_each():
    by_share = {0.5: [np.full((5, 8), 1.0), np.full((5, 8), 2.0)], 1.0: [np.full((5, 8), 3.0), np.full((5, 8), 4.0)]}
    scan = finetune.MixingScan({}, [], np.zeros((0, 2)), by_share)
    probabilities, fold = scan.fer_heldout([1.0, 0.5])
    assert list(fold) == [0, 1, 0, 1, 0]
    assert list(probabilities[:, 0]) == [3.0, 2.0, 3.0, 2.0, 3.0]  # fold 0's network at share 1, fold 1's at 0.5


def test_calibration_weighs_posed_and_wild_faces_alike():
    rng = np.random.default_rng(2)

    def faces(n, temperature):
        labels = rng.integers(0, 8, n)
        logits = rng.normal(0, 1, (n, 8))
        logits[np.arange(n), labels] += 1.0  # softmax(logits) is then the true posterior: calibrated
        return apply_temperature(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), temperature), labels

    (ckplus, ckplus_y), (wild, wild_y) = faces(200, 1.5), faces(1000, 0.5)  # CK+ too soft, the wild too sharp
    fold_of = np.repeat([0, 1], 100)
    scan = finetune.MixingScan({}, [], np.zeros((0, 2)), {1.0: [wild, wild]})
    calibration = finetune.calibrate(scan, [1.0, 1.0], ckplus, ckplus_y, fold_of, wild_y)
    assert 0.8 < calibration["temperature"] < 1.9 and "each domain weighing half" in calibration["fitted_on"]
    ckplus_only = finetune.calibrate(finetune.MixingScan({}, [], np.zeros((0, 2))), [1.0, 1.0], ckplus, ckplus_y,
                                     fold_of, wild_y)
    assert ckplus_only["temperature"] < 0.8 and "fer2013_heldout" not in ckplus_only  # without FER2013: CK+ alone
    # In the wild, the two-domain temperature is far more honest than the CK+ one would be.
    ckplus_temperature_in_the_wild = expected_calibration_error(apply_temperature(wild, ckplus_only["temperature"]),
                                                                wild_y)
    assert calibration["fer2013_heldout"]["ece_after"] < ckplus_temperature_in_the_wild / 2
    assert calibration["fer2013_heldout"]["ece_after"] < calibration["fer2013_heldout"]["ece_before"]


def test_accuracy_ignores_classes_outside_the_protocol():
    probabilities = np.eye(8)[[0, 2, 5, 5]] * 0.6 + 0.05
    probabilities[1, 5] = 0.5  # contempt face: second choice happiness
    labels = np.array([0, 5, 5, 2])
    assert accuracy_among(probabilities, labels) == 0.5
    # FER2013 classes (no contempt): the contempt face is not counted, the contempt column not chosen
    assert accuracy_among(probabilities, labels, tuple(c for c in LABELS if c != "contempt")) == 1.0


def test_linear_probe_moves_only_the_classifier(tmp_path):
    from emorec.models import emorec_cnn
    from emorec.train import make_dataset

    model = emorec_cnn(widths=(8,))
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    train = make_dataset(rng.integers(0, 255, (16, 48, 48, 1)).astype(np.uint8), rng.integers(0, 8, 16), 8)
    finetune.linear_probe(model, train, 2, tmp_path, None, learning_rate=0.1)
    head = {id(w) for w in model.layers[-1].weights}
    for variable, old in zip(model.weights, before):
        moved = not np.allclose(variable.numpy(), old)
        assert moved == (id(variable) in head), variable.path  # BatchNorm statistics stay too
    assert all(layer.trainable for layer in model.layers)  # ready for the fine-tuning that follows


def test_finetuning_never_sees_the_fer2013_faces_held_out_for_the_mixing_choice(tmp_path):
    for label in ("happy", "angry", "neutral"):
        for i in range(10):
            write_image(tmp_path / label / f"{label}_{i}.jpg", size=(48, 48))
    extra = finetune.load_finetune_data(Recipe(tmp_path / "ckplus", fer_train=tmp_path))
    assert len(extra.fer_y) == 27 and len(extra.fer_heldout_y) == 3
    assert not {face.tobytes() for face in extra.fer_x} & {face.tobytes() for face in extra.fer_heldout_x}
    # `--fer-faces 5`: the first 5 of the same draw
    smaller = finetune.load_finetune_data(Recipe(tmp_path / "ckplus", fer_train=tmp_path, fer_faces=5))
    assert np.array_equal(smaller.fer_x, extra.fer_x[:5]) and np.array_equal(smaller.fer_heldout_x, extra.fer_heldout_x)


def test_transfer_data_labels_fer2013_by_ferplus_votes_and_adds_held_out_domains(wild_data_root):
    fer = wild_data_root / "fer2013" / "train"
    plain = finetune.load_finetune_data(Recipe(wild_data_root / "ckplus", fer_train=fer))
    voted = finetune.load_finetune_data(Recipe(wild_data_root / "ckplus", fer_train=fer, transfer=wild_data_root))
    assert plain.fer_labels == "FER2013" and plain.transfer == ()
    assert (voted.fer_labels == "FER+ majority vote"
            and len(voted.fer_y) + len(voted.fer_heldout_y) == 29)  # one not-a-face
    assert [d.name for d in voted.transfer] == ["lfw_validation", "london"]
    london = voted.transfer[1]
    assert london.classes == ("neutral", "happiness") and list(london.found) == [True, False, True, False]
    assert london.x.shape == (4, 48, 48, 1)


def test_pretraining_restart_continues_the_first_cycle(tmp_path, monkeypatch):
    import keras

    monkeypatch.setattr(emorec.config, "CACHE_DIR", tmp_path / "cache")
    for label in ("happy", "angry", "neutral"):
        for i in range(10):
            write_image(tmp_path / "fer" / label / f"{label}_{i}.jpg", size=(48, 48))
    out = tmp_path / "pretrain"
    first = pretrain_fer(tmp_path / "fer", out, epochs=1, run_dir=tmp_path / "cycle1")
    second = pretrain_fer(tmp_path / "fer", out, epochs=2, run_dir=tmp_path / "cycle2",
                          restart_from=out / "pretrained.keras")
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]  # one history across both cycles
    shipped = keras.models.load_model(out / "pretrained.keras", compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(shipped.get_weights(), second.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(second.get_weights(), first.get_weights()))


def test_random_erasing_is_added_only_when_asked():
    from emorec.train import augmentation

    assert "RandomErasing" not in [type(layer).__name__ for layer in augmentation().layers]
    assert "RandomErasing" in [type(layer).__name__ for layer in augmentation(erasing=0.5).layers]


def test_recipe_end_to_end(tmp_path, class_folder_dataset, monkeypatch):
    monkeypatch.setattr(emorec.config, "CACHE_DIR", tmp_path / "cache")  # fold runs stay out of the user's cache
    fer = tmp_path / "fer"
    for split in ("train", "validation"):
        for label in ("happy", "angry", "neutral"):
            for i in range(10):
                write_image(fer / split / label / f"{split}_{label}_{i}.jpg", size=(48, 48))
    ck48 = tmp_path / "ck48"
    for subject in range(1, 7):
        write_image(ck48 / "happy" / f"S{subject:03d}_001_00000011.png", size=(48, 48))
    models = tmp_path / "models"

    pretrain_fer(fer / "train", finetune.pretrained_path(models).parent, epochs=1, run_dir=tmp_path / "run")
    assert finetune.pretrained_path(models).exists()
    recipe = Recipe(class_folder_dataset, ck48, fer / "train", epochs=1)
    summary = workflows.cross_validate_emorec(recipe, "cmd", models, n_splits=2)
    assert summary["classes_8"]["folds"] == 2 and summary["extra_training_data"]["fer2013_slice"] == 27
    assert not summary["published"] and not (models / "emorec" / "card.json").exists()  # nothing shipped yet
    mixing = summary["weight_mixing"]
    assert mixing["share"] in finetune.MIXING_GRID and mixing["fer2013_heldout_faces"] == 3  # the 10 % stage 1 held out
    assert [row["share"] for row in mixing["scan"]] == list(finetune.MIXING_GRID) and len(mixing["fold_shares"]) == 2

    # The scan mixes the very networks the folds trained: at share 1 it repeats their test predictions.
    extra = finetune.load_finetune_data(recipe)
    run_dir = finetune.finetune_runs(models, extra, recipe)
    assert run_dir.name == mixing["runs"]
    manifest, x = finetune.ckplus_inputs(class_folder_dataset)
    fold_runs = [(run_dir / f"subject-kfold-fold{k:02d}", test)
                 for k, (_, test) in enumerate(folds(manifest, "subject-kfold", 2))]
    scan = finetune.mixing_scan(finetune.pretrained_path(models), fold_runs, x, label_indices(manifest["label"]), extra)
    for k, (fold_dir, _) in enumerate(fold_runs):
        kept = np.load(fold_dir / "test_probabilities.npz")["probabilities"]
        assert np.allclose(scan.probabilities[1.0][k], kept, atol=1e-5)
        with h5py.File(fold_dir / finetune.FINETUNED_WEIGHTS) as weights:
            assert "optimizer" not in weights  # the network only, not AdamW's moments

    card = workflows.ship_emorec(recipe, "cmd", models)
    assert card.mirror_averaged and card.calibration["temperature"] > 0 and card.data["extra"]["ck48_frames"] == 6
    assert card.result("subject-kfold")["weight_mixing"]["runs"] == run_dir.name  # its own recipe's numbers
    assert card.calibration == json.loads((run_dir / workflows.CV_RESULTS).read_text())["calibration"]
    assert (models / "emorec" / "cv-subject-kfold.csv").exists()
    assert (card.weight_mixing == mixing["share"]
            and "chosen by the subject-grouped" in card.training["weight_mixing"])
    assert "| 0.25 |" in (models / "emorec" / "card.md").read_text()  # the scan, readable
    # CK+, CK+48, FER2013 without its held-out tenth
    assert len(registry.training_images("emorec", models)) == 18 + 6 + 27
    holdout = workflows.evaluate_holdout("emorec", fer / "validation", "cmd", models)
    assert holdout["images"] == 30 and holdout["classes"] == ["neutral", "anger", "happiness"]
    assert 0 <= holdout["ece"] <= 1 and 0 <= holdout["ece_without_temperature"] <= 1
    assert (holdout["ece"] == holdout["ece_without_temperature"]) == (card.temperature == 1.0)
    assert "without the temperature" in (models / "emorec" / "card.md").read_text()
    assert cards.headline(registry.read_card("emorec", models))["FER2013 PublicTest"] == holdout["accuracy"]
    recognizer = EmotionRecognizer.load("emorec", models)
    crops = np.zeros((2, 48, 48, 1), np.float32)
    assert np.allclose(recognizer.classify(crops).sum(axis=1), 1)

    # Trying another recipe leaves the shipped card alone; cross-validating the shipped one again updates it.
    shipped = registry.read_card("emorec", models)
    other = workflows.cross_validate_emorec(dataclasses.replace(recipe, probe_epochs=1), "cmd", models, n_splits=2)
    assert not other["published"] and (Path(other["run_dir"]) / workflows.CV_RESULTS).exists()
    assert registry.read_card("emorec", models) == shipped
    registry.update_card("emorec", {"calibration": {"stale": 1}}, models)  # as a card written by older code
    again = workflows.cross_validate_emorec(recipe, "again", models, n_splits=2)
    assert again["published"] and again["weight_mixing"]["share"] == shipped.weight_mixing  # same folds, same choice
    assert registry.read_card("emorec", models).calibration == \
        json.loads((run_dir / workflows.CV_RESULTS).read_text())["calibration"]

    # Shipping a recipe nobody cross-validated: no borrowed numbers, no borrowed temperature.
    card = workflows.ship_emorec(dataclasses.replace(recipe, fer_faces=5), "cmd", models)
    assert card.temperature == 1.0 and card.calibration == {} and card.evaluation == {}
    assert card.weight_mixing == finetune.DEFAULT_MIXING and not (models / "emorec" / "cv-subject-kfold.csv").exists()
