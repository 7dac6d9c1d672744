"""Talos scans: shards of one seeded draw, resumed and merged; inputs scaled for faster scans."""

from __future__ import annotations

import os

import numpy as np
import pytest

from emorec import tune_results, tune_scan
from emorec.config import SEED
from tests.conftest import TINY_SPACE



def test_scan_shards_resume_and_merge(tmp_path, class_folder_dataset):
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    tables = []
    for shard in ((0, 2), (1, 2)):
        out = tmp_path / f"scan-{shard[0]}.csv"
        status, rows = tune_scan.run_scan(class_folder_dataset, out, "full", space, rounds=4, shard=shard,
                                          work_dir=tmp_path / f"work-{shard[0]}")
        assert status == "complete" and rows == 2
        results = tune_results.read_results(out)
        assert results.dialect == "talos-2" and results.primary_metric == "val_balanced_accuracy"
        assert results.frame["val_balanced_accuracy"].between(0, 1).all() and "val_accuracy" in results.metrics
        assert {"activation_1", "optimizer", "patience"} <= set(results.params)
        tables.append(out)
    again = tune_scan.run_scan(class_folder_dataset, tables[0], "full", space, rounds=4, shard=(0, 2),
                               work_dir=tmp_path / "work-0")
    assert again == ("complete", 2)  # finished scan: resumed, nothing trained again
    assert os.environ.get("GIT_DIR") != "/nonexistent"  # hidden from Talos only, not from the rest of the process
    merged = tmp_path / "merged.csv"
    assert tune_results.merge_scans(tables, merged) == 4
    assert tune_results.read_results(merged).frame["_param_hash"].nunique() == 4


def test_shards_split_talos_draw_without_listing_the_space():
    from talos.parameters.DistributeParamSpace import DistributeParamSpace

    params = {"a": [1, 2, 3, 4], "b": ["x", "y", "z"], "c": [0.1, 0.2]}
    talos_shards = DistributeParamSpace(params, round_limit=10, machines=3, seed=SEED).param_spaces
    ours = [tune_scan.shard_space(params, 10, index, 3) for index in range(3)]
    for shard, theirs in zip(ours, talos_shards.values()):
        assert shard.param_space.tolist() == theirs.param_space.tolist()
        assert shard.shard_namespace == theirs.shard_namespace
        assert shard.round_parameters() == theirs.round_parameters()  # the strategy walks the shard's rows
    assert sum(len(shard.param_space) for shard in ours) == 10


def test_an_empty_shard_is_a_clear_error():
    with pytest.raises(tune_results.SearchSpaceError, match="Shard 3/4 is empty: 3 configurations"):
        tune_scan.shard_space({"a": [1, 2, 3], "b": [0.1]}, 3, 3, 4)


def test_scaled_inputs_average_areas():
    images = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    half = tune_scan.scaled_inputs(images, 0.5)
    assert half.shape == (2, 2, 3, 3) and half.dtype == np.float32
    assert half[0, 0, 0, 0] == pytest.approx(images[0, :2, :2, 0].mean())
    assert tune_scan.scaled_inputs(images, 1.0).shape == images.shape
    with pytest.raises(tune_results.SearchSpaceError, match="input_scale"):
        tune_scan.scaled_inputs(images, 1.5)

