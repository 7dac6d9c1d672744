"""emorec's stage 1b (FER+ votes, LFW people, domain-balanced batches) on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import emorec.config
from emorec import wild
from emorec.config import LABELS


def test_balancing_weights_lift_rare_classes_and_average_one():
    targets = np.eye(8, dtype=np.float32)[[0] * 90 + [5] * 10]
    weights = wild.balancing_weights(targets, power=1.0)
    assert weights.mean() == pytest.approx(1.0) and weights[-1] == pytest.approx(9 * weights[0])
    assert np.allclose(wild.balancing_weights(targets, power=0.0), 1.0)


def test_gamma_changes_midtones_only_in_training():
    images = np.full((64, 8, 8, 1), 128.0, np.float32)
    images[:, 0, 0] = 0.0
    images[:, 0, 1] = 255.0
    gamma = wild.RandomGamma(0.5, seed=1)
    out = np.asarray(gamma(images, training=True))
    assert np.allclose(out[:, 0, 0], 0) and np.allclose(out[:, 0, 1], 255)  # black and white stay
    midtones = out[:, 4, 4, 0]
    assert midtones.min() < 110 and midtones.max() > 150 and (midtones > 0).all() and (midtones < 255).all()
    assert np.array_equal(np.asarray(gamma(images, training=False)), images)


def test_batches_draw_each_domain_at_its_share():
    ones = wild.Domain("a", np.zeros((50, 48, 48, 1), np.uint8), np.eye(8, dtype=np.float32)[[0] * 50],
                       np.ones(50, np.float32))
    other = wild.Domain("b", np.full((7, 48, 48, 1), 200, np.uint8), np.eye(8, dtype=np.float32)[[5] * 7],
                        np.full(7, 2.0, np.float32))
    import keras

    batches = list(wild.domain_balanced([ones, other], [0.75, 0.25], 2048, keras.Sequential([keras.layers.Identity()])))
    x, y, w = (np.concatenate(parts) for parts in zip(*[(b[0], b[1], b[2]) for b in batches]))
    assert len(y) == 2048 and x.shape[1:] == (48, 48, 1)
    from_b = y[:, 5] == 1
    assert 0.22 < from_b.mean() < 0.28  # the small domain keeps its share however few faces it has
    assert np.all(w[from_b] == 2.0) and np.all(x[from_b] == 200)


def test_ferplus_domains_keep_stage_1s_held_out_faces_apart(wild_data_root):
    fit, held_out = wild.ferplus_domains(wild_data_root / "ferplus" / "labels.csv",
                                          wild_data_root / "fer2013" / "train")
    assert len(fit) + len(held_out) == 29  # 30 faces, one voted not-a-face
    assert len(held_out) in (2, 3)  # the tenth stage 1 held out (train.fer_holdout_split)
    assert np.allclose(fit.y.sum(axis=1), 1) and np.allclose(fit.y[:, LABELS.index("contempt")], 0.4)  # soft targets


def test_stage_1b_trains_from_stage_1_and_writes_its_network_and_numbers(wild_data_root, tmp_path, monkeypatch):
    from emorec.models import emorec_cnn

    monkeypatch.setattr(emorec.config, "CACHE_DIR", tmp_path / "cache")
    start = tmp_path / "models" / "pretrained.keras"
    start.parent.mkdir()
    emorec_cnn(widths=(8,)).save(start)
    out = tmp_path / "models" / "wild.keras"
    stats = wild.pretrain_wild(start, wild_data_root / "ferplus" / "labels.csv", wild_data_root / "fer2013" / "train",
                               wild_data_root / "lfw_expressions", out, epochs=2, steps=2, run_dir=tmp_path / "run")
    assert out.is_file() and stats["epochs"] == 2 and stats["faces"]["lfw"] + stats["faces"]["lfw-validation"] == 36
    assert set(stats["majority_vote_accuracy"]) == {"ferplus-heldout", "lfw-validation"}
    history = json.loads(out.with_name("wild-history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2] and "val_accuracy" in history[0]
    assert json.loads(out.with_name("wild-stats.json").read_text()) == stats
