"""Folds and scan shards as Ray tasks on a local two-node cluster: the same results as in turn, every
result kept when a worker dies mid-run, each configuration once."""

from __future__ import annotations

import faulthandler
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from emorec.data import load_dataset
from emorec.distributed import RayRunner
from emorec.study import study_trainer
from emorec.train import cross_validate, variant_inputs
from emorec.tune_results import read_results
from emorec.tune_scan import run_sharded_scan
from tests.conftest import TINY_SPACE

TIME_LIMIT = 900  # seconds: a hung cluster ends the run instead of blocking CI


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and one worker node on this machine, one CPU each (``ray start --head`` and
    ``ray start --address``, as Ray's own test utility starts them)."""
    cache = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("EMOREC_CACHE")
    os.environ["EMOREC_CACHE"] = str(cache)  # the nodes' processes inherit it: nothing lands in ~/.cache
    faulthandler.dump_traceback_later(TIME_LIMIT, exit=True)
    started = time.perf_counter()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    nodes.startup_seconds = time.perf_counter() - started
    nodes.worker = worker
    yield nodes
    ray.shutdown()
    nodes.shutdown()
    faulthandler.cancel_dump_traceback_later()
    if saved is None:
        os.environ.pop("EMOREC_CACHE", None)
    else:
        os.environ["EMOREC_CACHE"] = saved


def test_cross_validation_on_ray_matches_the_sequential_run_even_when_a_worker_dies(
        cluster, tmp_path, class_folder_dataset):
    manifest = load_dataset(class_folder_dataset)
    x = variant_inputs("baseline", manifest)
    trainer = study_trainer("baseline", epochs=1)
    here = cross_validate(x, manifest, trainer, "subject-kfold", tmp_path / "here", n_splits=2)

    marker = tmp_path / "first-attempt.pid"

    def dies_once(x_train, y_train, groups, fold_dir):
        """Fold 0's first attempt records its process and waits to be killed; the retry trains."""
        if fold_dir.name.endswith("fold00") and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        return trainer(x_train, y_train, groups, fold_dir)

    def kill_first_attempt():
        while not marker.exists():
            time.sleep(0.2)
        time.sleep(1)
        os.kill(int(marker.read_text()), 9)

    killer = threading.Thread(target=kill_first_attempt, daemon=True)
    killer.start()
    on_ray = cross_validate(x, manifest, dies_once, "subject-kfold", tmp_path / "ray", n_splits=2,
                            runner=RayRunner(cluster.address))
    killer.join(timeout=5)
    assert marker.exists()  # the worker did die, and its fold was run again
    assert list(on_ray["path"]) == list(here["path"]) and list(on_ray["fold"]) == list(here["fold"])
    probabilities = on_ray.columns[3:]
    assert np.allclose(on_ray[probabilities], here[probabilities], atol=1e-5)
    for fold in range(2):  # the fold's history came back to the machine that asked
        assert (tmp_path / "ray" / f"subject-kfold-fold{fold:02d}" / "history.json").exists()
    # Finished folds are never run again.
    again = cross_validate(x, manifest, lambda *args: pytest.fail("a finished fold ran again"), "subject-kfold",
                           tmp_path / "ray", n_splits=2, settings=(), runner=RayRunner(cluster.address))
    assert np.array_equal(again[probabilities], on_ray[probabilities])


def test_scan_shards_on_ray_give_the_sequential_table_when_a_node_dies(cluster, tmp_path, class_folder_dataset,
                                                                        monkeypatch):
    import emorec.tune_scan

    monkeypatch.setattr(emorec.tune_scan, "CACHE_DIR", tmp_path / "cache")  # this process's shards, run in turn
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    assert run_sharded_scan(class_folder_dataset, tmp_path / "here.csv", "full", space, rounds=4, shards=2) == 4
    here = read_results(tmp_path / "here.csv")

    shard_tables = tmp_path / "ray" / "shards"

    def remove_worker_node_mid_run():
        deadline = time.time() + 300
        while time.time() < deadline and not any(Path(os.environ["EMOREC_CACHE"], "scans").glob("ray-shard*")):
            time.sleep(0.2)
        time.sleep(2)  # a shard is training there or on the head node: the worker node goes down with its tasks
        cluster.remove_node(cluster.worker)

    remover = threading.Thread(target=remove_worker_node_mid_run, daemon=True)
    remover.start()
    rows = run_sharded_scan(class_folder_dataset, tmp_path / "ray" / "ray.csv", "full", space, rounds=4, shards=2,
                            runner=RayRunner(cluster.address))
    remover.join(timeout=310)
    assert rows == 4 and len(list(shard_tables.glob("*.csv"))) == 2
    on_ray = read_results(tmp_path / "ray" / "ray.csv")
    assert on_ray.frame["_param_hash"].is_unique  # each configuration once
    assert set(on_ray.frame["_param_hash"]) == set(here.frame["_param_hash"])  # the same configurations
    assert ray.cluster_resources().get("CPU") == 1  # the worker node is gone


def test_ray_start_up_cost_is_measured(cluster):
    """Not a speed claim: the seconds a local two-node cluster takes to start (docs/engineering.md)."""
    assert 0 < cluster.startup_seconds < 120
    print(f"\nRay: a local two-node cluster started in {cluster.startup_seconds:.1f} s")


def test_jobs_run_in_turn_without_ray_and_the_cli_refuses_mixed_options(capsys, tmp_path):
    from emorec.cli import main
    from emorec.distributed import run_here, runner

    assert list(run_here([(pow, (2, 3)), (pow, (3, 2))])) == [(0, 8), (1, 9)]
    assert runner("local") is run_here and isinstance(runner("ray", "ray://head:10001"), RayRunner)
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--data", str(tmp_path), "--shard", "0/2", "--shards", "2"])
    assert exit_.value.code == 2 and "give one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--variant", "emorec", "--data", str(tmp_path), "--protocol", "cross-dataset",
              "--address", "ray://head:10001"])
    assert exit_.value.code == 2 and "--address apply to cross-validation" in capsys.readouterr().err
