"""Independent jobs (the folds of a cross-validation, the shards of a Talos scan) run one after the
other in this process (``run_here``) or as Ray tasks (``RayRunner``): on a local Ray cluster sized to
this machine, or on the cluster at ``address`` (``ray://host:10001``, or ``RAY_ADDRESS``).

A runner takes a list of jobs (a function and its arguments) and yields ``(index, result)`` as each
job finishes, so the caller keeps every finished result at once: an interrupted run loses only the
jobs still running, and is resumed by running again. Ray retries a job once when its worker dies.
Workers receive emorec's code with each job (``py_modules``); data paths must be the same on every
machine (a shared folder).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

Job = tuple[Callable, tuple]  # a function and its arguments
Progress = Callable[[Iterable], Iterable]
PACKAGE = Path(__file__).resolve().parent


class Completions:
    """Results in the order jobs finish, with a length, so a progress bar knows its total."""

    def __init__(self, results: Iterator[tuple[int, Any]], total: int):
        self.results, self.total = results, total

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self.results

    def __len__(self) -> int:
        return self.total


def run_here(jobs: list[Job], progress: Progress = iter) -> Iterator[tuple[int, Any]]:
    """Each job in turn, in this process."""
    results = ((index, function(*args)) for index, (function, args) in enumerate(jobs))
    yield from progress(Completions(results, len(jobs)))


def connect(address: str | None = None) -> float:
    """Join the Ray cluster at ``address`` (else ``RAY_ADDRESS``; else start a local one sized to this
    machine) unless this process is connected already; returns the seconds it took."""
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False,
                 runtime_env={"py_modules": [str(PACKAGE)], "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
    return time.perf_counter() - started


@dataclass(frozen=True)
class RayRunner:
    """Jobs as Ray tasks of ``cpus`` CPUs each, retried once when a worker dies."""

    address: str | None = None
    cpus: float = 1.0

    def __call__(self, jobs: list[Job], progress: Progress = iter) -> Iterator[tuple[int, Any]]:
        if not jobs:
            return
        connect(self.address)
        pending = {ray.remote(function).options(num_cpus=self.cpus, max_retries=1).remote(*args): index
                   for index, (function, args) in enumerate(jobs)}

        def finished() -> Iterator[tuple[int, Any]]:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                yield pending.pop(done[0]), ray.get(done[0])

        yield from progress(Completions(finished(), len(jobs)))


def runner(engine: str, address: str | None = None, cpus: float = 1.0):
    """The runner an ``--engine`` names: ``ray`` (tasks, local or at ``address``) or ``local``."""
    return RayRunner(address, cpus) if engine == "ray" else run_here
